/* Timer heap: ordering, ties, lazy cancellation, compaction, ownership. */
#include "pltest.h"
#include "timer_heap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct ttok_s {
    size_t id;
    int64_t deadline;
    size_t order;       /* push order, the model's tie-breaker */
    int cancelled;
    int released;       /* times ops->release saw it */
    int popped;         /* times pop handed it out */
} ttok_t;

typedef struct tctx_s {
    size_t releases;
    int allow_live_release;     /* clear/destroy release live timers too */
} tctx_t;

static int tok_is_cancelled(void *token, void *ctx)
{
    (void)ctx;
    return ((ttok_t *)token)->cancelled;
}

static void tok_release(void *token, void *ctx)
{
    ttok_t *t = token;
    tctx_t *c = ctx;

    /* The heap may only drop on its own what the owner cancelled. */
    CHECK(t->cancelled || c->allow_live_release);
    CHECK_EQ(t->released, 0);
    CHECK_EQ(t->popped, 0);
    t->released++;
    c->releases++;
}

static void heap_init(pl_timer_heap_t *h, tctx_t *ctx)
{
    pl_timer_ops_t ops;

    memset(ctx, 0, sizeof(*ctx));
    ops.is_cancelled = tok_is_cancelled;
    ops.release = tok_release;
    ops.ctx = ctx;
    CHECK_OK(pl_timer_heap_init(h, &ops));
    CHECK_EQ(pl_timer_heap_len(h), 0);
}

static int timer_before(const pl_timer_t *a, const pl_timer_t *b)
{
    if (a->deadline_ns != b->deadline_ns)
        return a->deadline_ns < b->deadline_ns;
    return a->seq < b->seq;
}

/* The 4-ary heap property and the counters' bounds. */
static void check_heap(const pl_timer_heap_t *h)
{
    size_t i;

    CHECK(h->len <= h->cap);
    CHECK(h->cancelled <= h->len);
    for (i = 1; i < h->len; i++)
        CHECK(!timer_before(&h->items[i], &h->items[(i - 1) / 4]));
}

static ttok_t *make_tokens(size_t n)
{
    ttok_t *toks = calloc(n, sizeof(*toks));
    size_t i;

    CHECK(toks != NULL);
    for (i = 0; i < n; i++)
        toks[i].id = i;
    return toks;
}

static void push(pl_timer_heap_t *h, ttok_t *t, int64_t deadline, size_t *order)
{
    t->deadline = deadline;
    t->order = (*order)++;
    CHECK_OK(pl_timer_heap_push(h, deadline, t));
}

static void cancel(pl_timer_heap_t *h, ttok_t *t)
{
    CHECK(!t->cancelled);
    t->cancelled = 1;
    pl_timer_heap_note_cancelled(h);
}

static int by_deadline_then_order(const void *a, const void *b)
{
    const ttok_t *x = *(ttok_t *const *)a, *y = *(ttok_t *const *)b;

    if (x->deadline != y->deadline)
        return x->deadline < y->deadline ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Pop everything and check it against the live tokens sorted. */
static void pop_all_vs_model(pl_timer_heap_t *h, ttok_t *toks, size_t n)
{
    ttok_t **live = malloc((n ? n : 1) * sizeof(*live));
    size_t nlive = 0, i;
    pl_timer_t out;

    CHECK(live != NULL);
    for (i = 0; i < n; i++)
        if (!toks[i].cancelled && !toks[i].popped)
            live[nlive++] = &toks[i];
    qsort(live, nlive, sizeof(*live), by_deadline_then_order);
    for (i = 0; i < nlive; i++) {
        ttok_t *t;

        CHECK_EQ(pl_timer_heap_pop(h, &out), 1);
        t = out.token;
        if (t != live[i])
            pltest_fail(__FILE__, __LINE__,
                        "pop %zu: got id %zu (deadline %lld), want id %zu "
                        "(deadline %lld)", i, t->id, (long long)t->deadline,
                        live[i]->id, (long long)live[i]->deadline);
        CHECK_EQ(out.deadline_ns, t->deadline);
        t->popped++;
    }
    CHECK_EQ(pl_timer_heap_pop(h, &out), 0);
    CHECK(pl_timer_heap_peek(h) == NULL);
    CHECK_EQ(pl_timer_heap_len(h), 0);
    CHECK_EQ(h->cancelled, 0);
    free(live);
}

void test_timer_heap_empty(void)
{
    pl_timer_heap_t h;
    tctx_t ctx;
    pl_timer_t out;

    heap_init(&h, &ctx);
    CHECK(pl_timer_heap_peek(&h) == NULL);
    CHECK_EQ(pl_timer_heap_pop(&h, &out), 0);
    CHECK_EQ(pl_timer_heap_compact(&h), 0);
    pl_timer_heap_clear(&h);
    pl_timer_heap_destroy(&h);
    pl_timer_heap_destroy(&h);      /* twice is harmless */
    CHECK_EQ(ctx.releases, 0);
}

void test_timer_heap_random_vs_sorted(void)
{
    static const int64_t ranges[] = {10, 1000, 1000000000LL};
    size_t r;

    for (r = 0; r < sizeof(ranges) / sizeof(ranges[0]); r++) {
        pl_timer_heap_t h;
        tctx_t ctx;
        pltest_rng_t rng;
        size_t n = 20000, i, order = 0;
        ttok_t *toks = make_tokens(n);

        pltest_rng_seed(&rng, 42 + r);
        heap_init(&h, &ctx);
        for (i = 0; i < n; i++) {
            /* Negative deadlines too: the clock's origin is arbitrary. */
            int64_t d = (int64_t)pltest_rng_below(&rng, (uint64_t)ranges[r]) -
                        ranges[r] / 2;
            push(&h, &toks[i], d, &order);
            if (i % 1024 == 0)
                check_heap(&h);
        }
        check_heap(&h);
        CHECK_EQ(pl_timer_heap_len(&h), n);
        pop_all_vs_model(&h, toks, n);
        CHECK_EQ(ctx.releases, 0);
        pl_timer_heap_destroy(&h);
        free(toks);
    }
}

void test_timer_heap_equal_deadlines_fifo(void)
{
    pl_timer_heap_t h;
    tctx_t ctx;
    size_t n = 3000, i, order = 0;
    ttok_t *toks = make_tokens(n);
    pl_timer_t out;

    heap_init(&h, &ctx);
    /* Three deadlines, pushed interleaved and out of order. */
    for (i = 0; i < n; i++)
        push(&h, &toks[i], (int64_t[]){7, 3, 5}[i % 3], &order);
    for (i = 0; i < n; i++) {
        /* Expected: all 3s, then 5s, then 7s, each in push order. */
        size_t group = i / (n / 3), k = i % (n / 3);
        size_t want = k * 3 + (group == 0 ? 1 : group == 1 ? 2 : 0);

        CHECK_EQ(pl_timer_heap_pop(&h, &out), 1);
        CHECK_EQ(((ttok_t *)out.token)->id, want);
    }
    CHECK_EQ(pl_timer_heap_pop(&h, &out), 0);

    /* One deadline for all: pure push order. */
    for (i = 0; i < n; i++)
        push(&h, &toks[i], 1000, &order);
    for (i = 0; i < n; i++) {
        CHECK_EQ(pl_timer_heap_pop(&h, &out), 1);
        CHECK_EQ(((ttok_t *)out.token)->id, i);
        CHECK(i == 0 || out.seq > 0);
    }
    pl_timer_heap_destroy(&h);
    free(toks);
}

void test_timer_heap_extreme_deadlines(void)
{
    static const int64_t ds[] = {INT64_MAX, 0, INT64_MIN, -1, 1,
                                 INT64_MAX, INT64_MIN, INT64_MAX - 1,
                                 INT64_MIN + 1};
    size_t n = sizeof(ds) / sizeof(ds[0]), i, order = 0;
    ttok_t *toks = make_tokens(n);
    pl_timer_heap_t h;
    tctx_t ctx;

    heap_init(&h, &ctx);
    for (i = 0; i < n; i++)
        push(&h, &toks[i], ds[i], &order);
    pop_all_vs_model(&h, toks, n);
    pl_timer_heap_destroy(&h);
    free(toks);
}

/* What a loop does: schedule relative to "now", expire what is due, move
 * on.  Compared against the sorted model at every step. */
void test_timer_heap_interleaved_push_pop(void)
{
    pl_timer_heap_t h;
    tctx_t ctx;
    pltest_rng_t rng;
    size_t n = 30000, pushed = 0, order = 0, popped = 0, i;
    ttok_t *toks = make_tokens(n);
    int64_t now = 0, last = INT64_MIN;
    pl_timer_t out;

    pltest_rng_seed(&rng, 7);
    heap_init(&h, &ctx);
    while (popped < n) {
        size_t burst = (size_t)pltest_rng_below(&rng, 8);
        const pl_timer_t *top;

        for (i = 0; i < burst && pushed < n; i++)
            push(&h, &toks[pushed++],
                 now + (int64_t)pltest_rng_below(&rng, 100), &order);
        now += (int64_t)pltest_rng_below(&rng, 30);
        if (pushed == n)
            now += 1000;
        while ((top = pl_timer_heap_peek(&h)) != NULL && top->deadline_ns <= now) {
            ttok_t *t;

            CHECK_EQ(pl_timer_heap_pop(&h, &out), 1);
            t = out.token;
            /* Everything pushed is due at or after "now", and everything
             * due by "now" was popped: so timers fire in deadline order. */
            CHECK(out.deadline_ns >= last);
            CHECK(out.deadline_ns <= now);
            last = out.deadline_ns;
            t->popped++;
            popped++;
        }
        /* Everything left is in the future. */
        top = pl_timer_heap_peek(&h);
        CHECK(top == NULL || top->deadline_ns > now);
    }
    for (i = 0; i < n; i++)
        CHECK_EQ(toks[i].popped, 1);
    pl_timer_heap_destroy(&h);
    free(toks);
}

void test_timer_heap_peek_drops_cancelled_tops(void)
{
    pl_timer_heap_t h;
    tctx_t ctx;
    ttok_t *toks = make_tokens(5);
    size_t i, order = 0;
    const pl_timer_t *top;
    pl_timer_t out;

    heap_init(&h, &ctx);
    for (i = 0; i < 5; i++)
        push(&h, &toks[i], (int64_t)(i + 1) * 10, &order);
    cancel(&h, &toks[0]);
    cancel(&h, &toks[1]);
    CHECK_EQ(h.cancelled, 2);
    CHECK_EQ(pl_timer_heap_len(&h), 5);     /* lazy: nothing dropped yet */
    CHECK_EQ(ctx.releases, 0);

    top = pl_timer_heap_peek(&h);
    CHECK(top != NULL && top->token == &toks[2]);
    CHECK_EQ(top->deadline_ns, 30);
    CHECK_EQ(toks[0].released, 1);
    CHECK_EQ(toks[1].released, 1);
    CHECK_EQ(ctx.releases, 2);
    CHECK_EQ(h.cancelled, 0);
    CHECK_EQ(pl_timer_heap_len(&h), 3);

    /* A cancelled entry below the top stays until it surfaces. */
    cancel(&h, &toks[4]);
    top = pl_timer_heap_peek(&h);
    CHECK(top != NULL && top->token == &toks[2]);
    CHECK_EQ(h.cancelled, 1);
    CHECK_EQ(toks[4].released, 0);
    /* Peeking again changes nothing. */
    CHECK(pl_timer_heap_peek(&h) == top);

    CHECK_EQ(pl_timer_heap_pop(&h, &out), 1);
    CHECK(out.token == &toks[2]);
    CHECK_EQ(pl_timer_heap_pop(&h, &out), 1);
    CHECK(out.token == &toks[3]);
    CHECK_EQ(pl_timer_heap_pop(&h, &out), 0);    /* drops toks[4] */
    CHECK_EQ(toks[4].released, 1);
    CHECK_EQ(h.cancelled, 0);
    CHECK_EQ(pl_timer_heap_len(&h), 0);
    CHECK_EQ(ctx.releases, 3);
    pl_timer_heap_destroy(&h);
    CHECK_EQ(ctx.releases, 3);
    free(toks);
}

void test_timer_heap_small_never_compacts(void)
{
    pl_timer_heap_t h;
    tctx_t ctx;
    size_t n = PL_TIMER_HEAP_COMPACT_MIN - 1, i, order = 0;
    ttok_t *toks = make_tokens(n + 1);
    const pl_timer_t *top;

    heap_init(&h, &ctx);
    for (i = 0; i < n; i++)
        push(&h, &toks[i], (int64_t)i, &order);
    for (i = 0; i + 1 < n; i++) {
        cancel(&h, &toks[i]);
        CHECK_EQ(pl_timer_heap_len(&h), n);
    }
    CHECK_EQ(ctx.releases, 0);
    top = pl_timer_heap_peek(&h);
    CHECK(top != NULL && top->token == &toks[n - 1]);
    CHECK_EQ(ctx.releases, n - 1);
    CHECK_EQ(pl_timer_heap_len(&h), 1);
    ctx.allow_live_release = 1;
    pl_timer_heap_destroy(&h);

    /* At the threshold, the first cancel past half compacts. */
    n = PL_TIMER_HEAP_COMPACT_MIN;
    memset(toks, 0, (n) * sizeof(*toks));
    heap_init(&h, &ctx);
    for (i = 0; i < n; i++)
        push(&h, &toks[i], (int64_t)(n - i), &order);
    for (i = 0; i < n / 2; i++)
        cancel(&h, &toks[i]);
    CHECK_EQ(pl_timer_heap_len(&h), n);
    cancel(&h, &toks[n / 2]);
    CHECK_EQ(pl_timer_heap_len(&h), n / 2 - 1);
    CHECK_EQ(h.cancelled, 0);
    CHECK_EQ(ctx.releases, n / 2 + 1);
    check_heap(&h);
    pop_all_vs_model(&h, toks, n);
    pl_timer_heap_destroy(&h);
    free(toks);
}

void test_timer_heap_compact_explicit(void)
{
    pl_timer_heap_t h;
    tctx_t ctx;
    size_t n = 10, i, order = 0;
    ttok_t *toks = make_tokens(n);

    heap_init(&h, &ctx);
    for (i = 0; i < n; i++)
        push(&h, &toks[i], (int64_t)((i * 7) % n), &order);
    for (i = 0; i < n; i += 3)
        cancel(&h, &toks[i]);      /* 0, 3, 6, 9 */
    CHECK_EQ(h.cancelled, 4);
    CHECK_EQ(pl_timer_heap_compact(&h), 4);
    CHECK_EQ(h.cancelled, 0);
    CHECK_EQ(pl_timer_heap_len(&h), 6);
    CHECK_EQ(ctx.releases, 4);
    check_heap(&h);
    CHECK_EQ(pl_timer_heap_compact(&h), 0);

    /* Flagged by the owner but not (yet) noted: still dropped, the counter
     * does not go below zero. */
    toks[1].cancelled = 1;
    CHECK_EQ(pl_timer_heap_compact(&h), 1);
    CHECK_EQ(h.cancelled, 0);
    CHECK_EQ(toks[1].released, 1);
    pop_all_vs_model(&h, toks, n);
    pl_timer_heap_destroy(&h);
    free(toks);
}

/* Cancel 90% of 100k timers in random order: compaction must happen, the
 * survivors come out in order, and every cancelled token is released exactly
 * once (live ones never). */
void test_timer_heap_cancellation_storm(void)
{
    pl_timer_heap_t h;
    tctx_t ctx;
    pltest_rng_t rng;
    size_t n = 100000, ncancel = 90000, i, order = 0, compactions = 0;
    size_t cap_full;
    size_t *perm = malloc(n * sizeof(*perm));
    ttok_t *toks = make_tokens(n);

    CHECK(perm != NULL);
    pltest_rng_seed(&rng, 2024);
    heap_init(&h, &ctx);
    for (i = 0; i < n; i++)
        push(&h, &toks[i], (int64_t)pltest_rng_below(&rng, 1000000), &order);
    cap_full = h.cap;
    for (i = 0; i < n; i++)
        perm[i] = i;
    for (i = n - 1; i > 0; i--) {       /* Fisher-Yates */
        size_t j = (size_t)pltest_rng_below(&rng, i + 1), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (i = 0; i < ncancel; i++) {
        size_t len_before = pl_timer_heap_len(&h);

        cancel(&h, &toks[perm[i]]);
        if (pl_timer_heap_len(&h) < len_before)
            compactions++;
        /* Compaction runs as soon as cancelled entries are the majority. */
        CHECK(h.cancelled * 2 <= pl_timer_heap_len(&h) ||
              pl_timer_heap_len(&h) < PL_TIMER_HEAP_COMPACT_MIN);
        CHECK(h.cancelled <= pl_timer_heap_len(&h));
    }
    CHECK(compactions >= 1);
    /* The heap never holds more than twice its live entries. */
    CHECK(pl_timer_heap_len(&h) <= 2 * (n - ncancel) + 1);
    /* And gave memory back. */
    CHECK(h.cap < cap_full);
    check_heap(&h);

    pop_all_vs_model(&h, toks, n);
    for (i = 0; i < n; i++) {
        if (toks[i].cancelled) {
            CHECK_EQ(toks[i].released, 1);
            CHECK_EQ(toks[i].popped, 0);
        } else {
            CHECK_EQ(toks[i].released, 0);
            CHECK_EQ(toks[i].popped, 1);
        }
    }
    CHECK_EQ(ctx.releases, ncancel);
    pl_timer_heap_destroy(&h);
    CHECK_EQ(ctx.releases, ncancel);
    free(perm);
    free(toks);
}

void test_timer_heap_cancel_all(void)
{
    pl_timer_heap_t h;
    tctx_t ctx;
    size_t n = 5000, i, order = 0;
    ttok_t *toks = make_tokens(n);

    heap_init(&h, &ctx);
    for (i = 0; i < n; i++)
        push(&h, &toks[i], (int64_t)(i % 17), &order);
    for (i = 0; i < n; i++)
        cancel(&h, &toks[i]);
    CHECK(pl_timer_heap_len(&h) < PL_TIMER_HEAP_COMPACT_MIN);
    CHECK(pl_timer_heap_peek(&h) == NULL);
    CHECK_EQ(pl_timer_heap_len(&h), 0);
    CHECK_EQ(h.cancelled, 0);
    CHECK_EQ(ctx.releases, n);
    for (i = 0; i < n; i++)
        CHECK_EQ(toks[i].released, 1);
    /* Reusable after. */
    for (i = 0; i < n; i++) {
        memset(&toks[i], 0, sizeof(toks[i]));
        toks[i].id = i;
        push(&h, &toks[i], (int64_t)(n - i), &order);
    }
    pop_all_vs_model(&h, toks, n);
    pl_timer_heap_destroy(&h);
    free(toks);
}

void test_timer_heap_clear_releases_all(void)
{
    pl_timer_heap_t h;
    tctx_t ctx;
    size_t n = 1000, i, order = 0, cap;
    ttok_t *toks = make_tokens(n);
    uint64_t seq_before;

    heap_init(&h, &ctx);
    for (i = 0; i < n; i++)
        push(&h, &toks[i], (int64_t)(i * 31 % 97), &order);
    for (i = 0; i < n; i += 5)
        cancel(&h, &toks[i]);
    cap = h.cap;
    seq_before = h.next_seq;
    ctx.allow_live_release = 1;
    pl_timer_heap_clear(&h);
    ctx.allow_live_release = 0;
    CHECK_EQ(pl_timer_heap_len(&h), 0);
    CHECK_EQ(h.cancelled, 0);
    CHECK_EQ(h.cap, cap);       /* storage kept */
    CHECK(h.items != NULL);
    CHECK_EQ(ctx.releases, n);
    for (i = 0; i < n; i++)
        CHECK_EQ(toks[i].released, 1);
    CHECK(pl_timer_heap_peek(&h) == NULL);

    /* Still usable; sequence numbers keep increasing. */
    for (i = 0; i < n; i++) {
        memset(&toks[i], 0, sizeof(toks[i]));
        toks[i].id = i;
        push(&h, &toks[i], 5, &order);
    }
    CHECK(h.items[0].seq >= seq_before);
    pop_all_vs_model(&h, toks, n);
    CHECK_EQ(ctx.releases, n);
    pl_timer_heap_destroy(&h);
    free(toks);
}

void test_timer_heap_destroy_releases_all(void)
{
    pl_timer_heap_t h;
    tctx_t ctx;
    size_t n = 300, i, order = 0;
    ttok_t *toks = make_tokens(n);
    const pl_timer_t *top;

    heap_init(&h, &ctx);
    for (i = 0; i < n; i++)
        push(&h, &toks[i], (int64_t)i, &order);
    for (i = 0; i < 10; i++)
        cancel(&h, &toks[n - 1 - i]);
    ctx.allow_live_release = 1;
    pl_timer_heap_destroy(&h);
    CHECK(h.items == NULL);
    CHECK_EQ(pl_timer_heap_len(&h), 0);
    CHECK_EQ(ctx.releases, n);
    for (i = 0; i < n; i++)
        CHECK_EQ(toks[i].released, 1);

    /* Re-init after destroy. */
    memset(toks, 0, n * sizeof(*toks));
    heap_init(&h, &ctx);
    push(&h, &toks[0], 1, &order);
    top = pl_timer_heap_peek(&h);
    CHECK(top != NULL && top->token == &toks[0]);
    ctx.allow_live_release = 1;
    pl_timer_heap_destroy(&h);
    CHECK_EQ(toks[0].released, 1);
    free(toks);
}

void test_timer_heap_push_enomem_intact(void)
{
    pl_timer_heap_t h;
    tctx_t ctx;
    size_t n = 100, order = 0, pushed = 0, failures = 0;
    ttok_t *toks = make_tokens(n);
    ttok_t extra = {0};

    if (!pltest_have_alloc_faults())
        SKIP("built without allocation fault injection");
    heap_init(&h, &ctx);
    /* The very first push allocates. */
    pltest_alloc_fail_after(0);
    CHECK_EQ(pl_timer_heap_push(&h, 1, &extra), -ENOMEM);
    CHECK_EQ(pl_timer_heap_len(&h), 0);
    /* Fail every growth once, then retry. */
    while (pushed < n) {
        int rc;

        if (pl_timer_heap_len(&h) == h.cap) {
            size_t cap = h.cap;

            pltest_alloc_fail_after(0);
            rc = pl_timer_heap_push(&h, 1, &extra);
            CHECK_EQ(rc, -ENOMEM);
            CHECK_EQ(h.cap, cap);
            CHECK_EQ(pl_timer_heap_len(&h), pushed);
            check_heap(&h);
            failures++;
        }
        push(&h, &toks[pushed], (int64_t)((pushed * 37) % 11), &order);
        pushed++;
    }
    CHECK(failures >= 3);
    CHECK_EQ(extra.released, 0);
    pop_all_vs_model(&h, toks, n);
    pl_timer_heap_destroy(&h);
    free(toks);
}
