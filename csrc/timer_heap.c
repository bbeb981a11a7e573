/* The timer heap: a 4-ary min-heap ordered by (deadline_ns, seq).
 *
 * Why lazy cancellation.  asyncio programs cancel most of the timers they
 * start (every wait_for/timeout that finishes in time cancels one), so a
 * cancel must be O(1).  Removing an entry from the middle of a heap needs its
 * index, which would have to be kept up to date in the owner's object on every
 * sift; instead the owner just flags its object and tells us the count went
 * up.  Dead entries are dropped when they surface at the top (peek) or, once
 * they are the majority, all at once by compaction: one O(n) pass that keeps
 * the live entries followed by an O(n) bottom-up heapify.  Waiting for "more
 * than half" makes the compaction cost amortised O(1) per cancel, and keeps
 * the heap at most twice as large as its live set.
 *
 * The `cancelled` counter counts entries the owner noted as cancelled that
 * are still stored here.  It goes down by one whenever we drop an entry that
 * ops->is_cancelled calls cancelled; it is clamped at zero in case the owner
 * flags an object before (or without) noting it.
 *
 * ops->release and ops->is_cancelled must not call back into this heap: they
 * run while entries are being moved. */
#include "timer_heap.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

/* Four children per node: the heap is half as deep as a binary one, and the
 * four children sit next to each other in memory (see the header). */
#define D 4

/* First allocation: enough for a typical loop's handful of timers. */
#define PL__TIMER_HEAP_INITIAL_CAP 16

static inline int timer_less(const pl_timer_t *a, const pl_timer_t *b)
{
    if (a->deadline_ns != b->deadline_ns)
        return a->deadline_ns < b->deadline_ns;
    return a->seq < b->seq;
}

/* Both sifts move a "hole" instead of swapping: one copy per level. */
static void sift_up(pl_timer_t *items, size_t i)
{
    pl_timer_t t = items[i];

    while (i > 0) {
        size_t parent = (i - 1) / D;
        if (!timer_less(&t, &items[parent]))
            break;
        items[i] = items[parent];
        i = parent;
    }
    items[i] = t;
}

static void sift_down(pl_timer_t *items, size_t len, size_t i)
{
    pl_timer_t t = items[i];

    for (;;) {
        size_t first = i * D + 1, end, best, c;

        if (first >= len)
            break;
        end = first + D < len ? first + D : len;
        best = first;
        for (c = first + 1; c < end; c++)
            if (timer_less(&items[c], &items[best]))
                best = c;
        if (!timer_less(&items[best], &t))
            break;
        items[i] = items[best];
        i = best;
    }
    items[i] = t;
}

static void heapify(pl_timer_heap_t *h)
{
    size_t i;

    if (h->len < 2)
        return;
    /* Bottom-up: every node from the last parent to the root, O(n) total. */
    i = (h->len - 2) / D + 1;
    while (i-- > 0)
        sift_down(h->items, h->len, i);
}

/* Take the root out; the caller has copied whatever it needs from it. */
static void remove_top(pl_timer_heap_t *h)
{
    assert(h->len > 0);
    h->len--;
    if (h->len > 0) {
        h->items[0] = h->items[h->len];
        sift_down(h->items, h->len, 0);
    }
}

static void forget_one_cancelled(pl_timer_heap_t *h)
{
    if (h->cancelled > 0)
        h->cancelled--;
}

int pl_timer_heap_init(pl_timer_heap_t *h, const pl_timer_ops_t *ops)
{
    assert(h != NULL);
    assert(ops != NULL);
    assert(ops->is_cancelled != NULL);
    assert(ops->release != NULL);
    /* Storage is allocated on the first push: many loops never use timers. */
    h->items = NULL;
    h->len = 0;
    h->cap = 0;
    h->cancelled = 0;
    h->next_seq = 0;
    h->ops = *ops;
    return 0;
}

void pl_timer_heap_clear(pl_timer_heap_t *h)
{
    size_t i, n;

    assert(h != NULL);
    /* Empty the heap before releasing so it is consistent if release frees
     * memory the owner also uses to find the heap. */
    n = h->len;
    h->len = 0;
    h->cancelled = 0;
    for (i = 0; i < n; i++)
        h->ops.release(h->items[i].token, h->ops.ctx);
}

void pl_timer_heap_destroy(pl_timer_heap_t *h)
{
    assert(h != NULL);
    pl_timer_heap_clear(h);
    free(h->items);
    h->items = NULL;
    h->cap = 0;
}

static int grow(pl_timer_heap_t *h)
{
    size_t new_cap;
    pl_timer_t *items;

    if (h->cap == 0) {
        new_cap = PL__TIMER_HEAP_INITIAL_CAP;
    } else {
        if (h->cap > SIZE_MAX / 2 / sizeof(pl_timer_t))
            return -ENOMEM;
        new_cap = h->cap * 2;
    }
    items = realloc(h->items, new_cap * sizeof(pl_timer_t));
    if (items == NULL)
        return -ENOMEM;     /* realloc left the old block (and the heap) as is */
    h->items = items;
    h->cap = new_cap;
    return 0;
}

int pl_timer_heap_push(pl_timer_heap_t *h, int64_t deadline_ns, void *token)
{
    pl_timer_t *t;

    assert(h != NULL);
    if (h->len == h->cap) {
        int rc = grow(h);
        if (rc < 0)
            return rc;
    }
    t = &h->items[h->len];
    t->deadline_ns = deadline_ns;
    t->seq = h->next_seq++;
    t->token = token;
    h->len++;
    sift_up(h->items, h->len - 1);
    return 0;
}

const pl_timer_t *pl_timer_heap_peek(pl_timer_heap_t *h)
{
    assert(h != NULL);
    while (h->len > 0) {
        void *token = h->items[0].token;

        if (!h->ops.is_cancelled(token, h->ops.ctx))
            return &h->items[0];
        remove_top(h);
        forget_one_cancelled(h);
        h->ops.release(token, h->ops.ctx);
    }
    return NULL;
}

int pl_timer_heap_pop(pl_timer_heap_t *h, pl_timer_t *out)
{
    const pl_timer_t *top;

    assert(h != NULL);
    assert(out != NULL);
    top = pl_timer_heap_peek(h);
    if (top == NULL)
        return 0;
    *out = *top;
    remove_top(h);
    return 1;
}

/* After a storm of cancellations the array may be mostly empty; give the
 * memory back, but keep room to double the live set without a realloc. */
static void maybe_shrink(pl_timer_heap_t *h)
{
    size_t new_cap;
    pl_timer_t *items;

    if (h->cap <= PL__TIMER_HEAP_INITIAL_CAP * 4 || h->len >= h->cap / 4)
        return;
    new_cap = h->cap / 2;
    while (new_cap / 4 > h->len && new_cap / 2 >= PL__TIMER_HEAP_INITIAL_CAP)
        new_cap /= 2;
    items = realloc(h->items, new_cap * sizeof(pl_timer_t));
    if (items == NULL)
        return;     /* shrinking is only an optimisation: keep the old block */
    h->items = items;
    h->cap = new_cap;
}

size_t pl_timer_heap_compact(pl_timer_heap_t *h)
{
    size_t i, kept = 0, dropped = 0;

    assert(h != NULL);
    for (i = 0; i < h->len; i++) {
        void *token = h->items[i].token;

        if (h->ops.is_cancelled(token, h->ops.ctx)) {
            h->ops.release(token, h->ops.ctx);
            dropped++;
        } else {
            h->items[kept++] = h->items[i];
        }
    }
    h->len = kept;
    h->cancelled = h->cancelled > dropped ? h->cancelled - dropped : 0;
    if (dropped > 0) {
        heapify(h);
        maybe_shrink(h);
    }
    return dropped;
}

void pl_timer_heap_note_cancelled(pl_timer_heap_t *h)
{
    assert(h != NULL);
    assert(h->cancelled < h->len);   /* the entry is still stored here */
    h->cancelled++;
    /* Small heaps: popping cancelled tops is cheaper than a full pass. */
    if (h->len >= PL_TIMER_HEAP_COMPACT_MIN && h->cancelled * 2 > h->len)
        pl_timer_heap_compact(h);
}
