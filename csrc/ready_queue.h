/* The ready queue: a FIFO ring of opaque tokens.
 *
 * Capacity is a power of two so that wrapping is a mask; push and pop are
 * inline because they run once per callback.  Growth doubles the ring and
 * unwraps it, so there is no per-item allocation, ever. */
#ifndef PL_READY_QUEUE_H
#define PL_READY_QUEUE_H

#include <stddef.h>

typedef struct pl_ready_queue_s {
    void **items;
    size_t head;   /* index of the oldest item */
    size_t len;
    size_t mask;   /* capacity - 1 */
} pl_ready_queue_t;

/* initial_cap is rounded up to a power of two (minimum 16). */
int pl_ready_queue_init(pl_ready_queue_t *q, size_t initial_cap);
void pl_ready_queue_destroy(pl_ready_queue_t *q);

/* Out-of-line slow path of push: double the ring. 0 or -ENOMEM. */
int pl__ready_queue_grow(pl_ready_queue_t *q);

static inline int pl_ready_queue_push(pl_ready_queue_t *q, void *token)
{
    if (q->len > q->mask) {
        int rc = pl__ready_queue_grow(q);
        if (rc < 0)
            return rc;
    }
    q->items[(q->head + q->len) & q->mask] = token;
    q->len++;
    return 0;
}

/* Returns the oldest token, or NULL if the queue is empty. */
static inline void *pl_ready_queue_pop(pl_ready_queue_t *q)
{
    void *token;
    if (q->len == 0)
        return NULL;
    token = q->items[q->head];
    q->head = (q->head + 1) & q->mask;
    q->len--;
    return token;
}

static inline size_t pl_ready_queue_len(const pl_ready_queue_t *q)
{
    return q->len;
}

#endif
