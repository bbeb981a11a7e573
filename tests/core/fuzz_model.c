/* Randomized model tests with a fixed seed and a bounded number of steps:
 * the timer heap against a brute-force "scan for the minimum" model, the
 * ready queue against a plain array deque.  Deterministic: a failure prints
 * the step, and the same seed reproduces it. */
#include "pltest.h"
#include "ready_queue.h"
#include "timer_heap.h"

#include <stdlib.h>
#include <string.h>

/* ---- timer heap --------------------------------------------------------- */

#define POOL 512

typedef struct mtok_s {
    int in_heap;        /* pushed and neither popped nor released */
    int cancelled;
    int64_t deadline;
    uint64_t seq;       /* what the heap must have assigned */
} mtok_t;

typedef struct model_s {
    mtok_t toks[POOL];
    size_t in_heap;     /* model count of entries stored in the heap */
    size_t noted;       /* model of h->cancelled */
    uint64_t next_seq;
    int clearing;
} model_t;

static int m_is_cancelled(void *token, void *ctx)
{
    (void)ctx;
    return ((mtok_t *)token)->cancelled;
}

static void m_release(void *token, void *ctx)
{
    mtok_t *t = token;
    model_t *m = ctx;

    CHECK(t->in_heap);
    CHECK(t->cancelled || m->clearing);
    if (t->cancelled)
        m->noted--;
    t->in_heap = 0;
    m->in_heap--;
}

/* The earliest live entry by brute force. */
static mtok_t *m_min(model_t *m)
{
    mtok_t *best = NULL;
    size_t i;

    for (i = 0; i < POOL; i++) {
        mtok_t *t = &m->toks[i];

        if (!t->in_heap || t->cancelled)
            continue;
        if (best == NULL || t->deadline < best->deadline ||
            (t->deadline == best->deadline && t->seq < best->seq))
            best = t;
    }
    return best;
}

static mtok_t *m_pick(model_t *m, pltest_rng_t *rng, int want_in_heap,
                      int want_live)
{
    size_t start = (size_t)pltest_rng_below(rng, POOL), i;

    for (i = 0; i < POOL; i++) {
        mtok_t *t = &m->toks[(start + i) % POOL];

        if (t->in_heap == want_in_heap && (!want_live || !t->cancelled))
            return t;
    }
    return NULL;
}

void test_fuzz_timer_heap_model(void)
{
    static model_t m;
    pl_timer_heap_t h;
    pl_timer_ops_t ops = {m_is_cancelled, m_release, &m};
    pltest_rng_t rng;
    long step, steps = 200000;
    size_t compactions = 0;

    memset(&m, 0, sizeof(m));
    pltest_rng_seed(&rng, 0xC0FFEE);
    CHECK_OK(pl_timer_heap_init(&h, &ops));
    for (step = 0; step < steps; step++) {
        unsigned op = (unsigned)pltest_rng_below(&rng, 100);
        mtok_t *t, *want;
        const pl_timer_t *top;
        pl_timer_t out;

        if (op < 45) {                          /* push */
            t = m_pick(&m, &rng, 0, 0);
            if (t == NULL)
                continue;
            t->cancelled = 0;
            /* A small range makes ties common. */
            t->deadline = (int64_t)pltest_rng_below(&rng, 64);
            t->seq = m.next_seq++;
            CHECK_OK(pl_timer_heap_push(&h, t->deadline, t));
            t->in_heap = 1;
            m.in_heap++;
        } else if (op < 70) {                   /* cancel */
            size_t len_before = pl_timer_heap_len(&h);

            t = m_pick(&m, &rng, 1, 1);
            if (t == NULL)
                continue;
            t->cancelled = 1;
            m.noted++;
            pl_timer_heap_note_cancelled(&h);
            if (pl_timer_heap_len(&h) < len_before)
                compactions++;
        } else if (op < 85) {                   /* pop */
            want = m_min(&m);
            if (want == NULL) {
                CHECK_EQ(pl_timer_heap_pop(&h, &out), 0);
            } else {
                CHECK_EQ(pl_timer_heap_pop(&h, &out), 1);
                if (out.token != want)
                    pltest_fail(__FILE__, __LINE__, "step %ld: pop mismatch",
                                step);
                CHECK_EQ(out.deadline_ns, want->deadline);
                CHECK_EQ(out.seq, want->seq);
                want->in_heap = 0;
                m.in_heap--;
            }
        } else if (op < 97) {                   /* peek */
            want = m_min(&m);
            top = pl_timer_heap_peek(&h);
            CHECK((top == NULL) == (want == NULL));
            if (top != NULL && top->token != want)
                pltest_fail(__FILE__, __LINE__, "step %ld: peek mismatch",
                            step);
        } else if (op < 99) {                   /* explicit compaction */
            size_t stored = m.in_heap, dropped;
            size_t i, flagged = 0;

            for (i = 0; i < POOL; i++)
                flagged += m.toks[i].in_heap && m.toks[i].cancelled;
            dropped = pl_timer_heap_compact(&h);
            CHECK_EQ(dropped, flagged);
            CHECK_EQ(m.in_heap, stored - flagged);
        } else if (pltest_rng_below(&rng, 20) == 0) {   /* rare clear */
            m.clearing = 1;
            pl_timer_heap_clear(&h);
            m.clearing = 0;
            CHECK_EQ(m.in_heap, 0);
            m.noted = 0;
        }
        CHECK_EQ(pl_timer_heap_len(&h), m.in_heap);
        CHECK_EQ(h.cancelled, m.noted);
        CHECK(h.cancelled <= h.len);
    }
    CHECK(compactions > 0);
    m.clearing = 1;
    pl_timer_heap_destroy(&h);
    CHECK_EQ(m.in_heap, 0);
}

/* ---- ready queue -------------------------------------------------------- */

void test_fuzz_ready_queue_model(void)
{
    pl_ready_queue_t q;
    pltest_rng_t rng;
    size_t cap = 1 << 16, head = 0, len = 0, next = 1;
    uintptr_t *model = malloc(cap * sizeof(*model));
    long step;

    CHECK(model != NULL);
    pltest_rng_seed(&rng, 99);
    CHECK_OK(pl_ready_queue_init(&q, (size_t)pltest_rng_below(&rng, 40)));
    for (step = 0; step < 300000; step++) {
        /* Drift between push-heavy and pop-heavy phases so the queue both
         * grows and empties many times. */
        unsigned bias = (step / 5000) % 2 ? 60 : 40;

        if (pltest_rng_below(&rng, 100) < bias && len < cap) {
            CHECK_OK(pl_ready_queue_push(&q, (void *)(uintptr_t)next));
            model[(head + len) % cap] = next++;
            len++;
        } else {
            void *got = pl_ready_queue_pop(&q);

            if (len == 0) {
                CHECK(got == NULL);
            } else {
                if ((uintptr_t)got != model[head])
                    pltest_fail(__FILE__, __LINE__,
                                "step %ld: popped %lu, want %lu", step,
                                (unsigned long)(uintptr_t)got,
                                (unsigned long)model[head]);
                head = (head + 1) % cap;
                len--;
            }
        }
        CHECK_EQ(pl_ready_queue_len(&q), len);
    }
    pl_ready_queue_destroy(&q);
    free(model);
}
