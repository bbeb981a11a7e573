/* The ready queue's out-of-line parts: setup, teardown and growth.
 *
 * push/pop live in the header because they run once per callback.  Growth
 * is the only slow path; it copies the live items into a ring twice the size,
 * oldest first, so that head becomes 0 and the mask arithmetic in push/pop
 * stays valid without touching each item twice. */
#include "ready_queue.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Below this, a ring costs more in regrowth than it saves in memory:
 * a loop with a handful of callbacks per iteration never grows past it. */
#define PL__READY_QUEUE_MIN_CAP 16

int pl_ready_queue_init(pl_ready_queue_t *q, size_t initial_cap)
{
    size_t cap = PL__READY_QUEUE_MIN_CAP;

    assert(q != NULL);
    /* Leave a failed init in the destroyed state so destroy stays safe. */
    q->items = NULL;
    q->head = 0;
    q->len = 0;
    q->mask = 0;
    /* Round up to a power of two; stop before the shift would overflow or
     * the byte count would not fit in a size_t. */
    while (cap < initial_cap) {
        if (cap > SIZE_MAX / 2 / sizeof(void *))
            return -ENOMEM;
        cap <<= 1;
    }
    q->items = malloc(cap * sizeof(void *));
    if (q->items == NULL)
        return -ENOMEM;
    q->head = 0;
    q->len = 0;
    q->mask = cap - 1;
    return 0;
}

void pl_ready_queue_destroy(pl_ready_queue_t *q)
{
    assert(q != NULL);
    /* Tokens are opaque: whoever pushed them owns them.  Only the ring goes. */
    free(q->items);
    q->items = NULL;
    q->head = 0;
    q->len = 0;
    q->mask = 0;
}

int pl__ready_queue_grow(pl_ready_queue_t *q)
{
    size_t cap, new_cap, first;
    void **items;

    assert(q != NULL);
    assert(q->items != NULL);
    cap = q->mask + 1;
    if (cap > SIZE_MAX / 2 / sizeof(void *))
        return -ENOMEM;
    new_cap = cap * 2;
    /* malloc + two copies rather than realloc: realloc may copy the whole
     * old ring and we would then move the wrapped part a second time. */
    items = malloc(new_cap * sizeof(void *));
    if (items == NULL)
        return -ENOMEM;     /* the old ring is untouched and still valid */

    /* The live items run from head to the end of the ring, then wrap to 0. */
    first = cap - q->head;
    if (first > q->len)
        first = q->len;
    memcpy(items, q->items + q->head, first * sizeof(void *));
    memcpy(items + first, q->items, (q->len - first) * sizeof(void *));

    free(q->items);
    q->items = items;
    q->head = 0;
    q->mask = new_cap - 1;
    return 0;
}
