/* libFuzzer harness: csrc/timer_heap.c against a brute-force model.
 *
 * The model is a pool of tokens, each knowing whether it is stored in the
 * heap, its deadline and the sequence number the heap must have given it,
 * and whether its owner flagged it cancelled and noted that.  The earliest
 * live timer is found by scanning the pool.  Everything timer_heap.h
 * promises is checked after every operation:
 *
 *   - pop/peek return the live entry with the least (deadline, seq), ties
 *     broken in push order, for any int64 deadline;
 *   - peek drops exactly the cancelled entries that sort before the earliest
 *     live one, and hands each to release once;
 *   - note_cancelled compacts exactly when the heap holds at least
 *     PL_TIMER_HEAP_COMPACT_MIN entries and more than half are noted, and
 *     compaction releases every flagged entry and nothing else;
 *   - release is called only for flagged entries (any entry, in clear and
 *     destroy), never twice, never for a popped token; is_cancelled is asked
 *     only about stored tokens; push calls neither;
 *   - the `cancelled` counter follows its documented rule (one per note,
 *     minus one per flagged entry dropped, clamped at zero) and never
 *     exceeds len;
 *   - a failed allocation makes push return -ENOMEM and leaves the heap as
 *     it was; a failed shrink loses nothing;
 *   - the capacity is 16 times a power of two, and a compaction that gives
 *     memory back keeps room to double the live set;
 *   - the array is a 4-ary min-heap holding exactly the stored tokens with
 *     their deadlines and sequence numbers.
 *
 * Input: opcode bytes with arguments; see the switch in
 * LLVMFuzzerTestOneInput. */
#include "fuzz_util.h"

/* The heap's allocations go through the fault injector. */
#define realloc fz_realloc
#include "timer_heap.c"
#undef realloc

#define POOL 512

typedef struct tok_s {
    int stored;         /* pushed; neither popped nor released */
    int flagged;        /* the owner's "cancelled" flag */
    int noted;          /* note_cancelled was called for this entry */
    int64_t deadline;
    uint64_t seq;
} tok_t;

static struct model_s {
    tok_t tok[POOL];
    size_t stored;
    size_t flagged;        /* stored entries whose owner flagged them */
    size_t counter;        /* model of h->cancelled */
    uint64_t next_seq;
    int callbacks_allowed;
    int clearing;          /* in clear/destroy: live entries may go too */
    size_t released;       /* release calls since the last reset */
} M;

static pl_timer_heap_t H;

static tok_t *tok_of(void *token)
{
    tok_t *t = token;

    if (t < M.tok || t >= M.tok + POOL)
        fz_fail(__FILE__, __LINE__, "foreign token %p", token);
    return t;
}

static int cb_is_cancelled(void *token, void *ctx)
{
    tok_t *t = tok_of(token);

    FZ_CHECK(ctx == &M);
    FZ_CHECK(M.callbacks_allowed);
    FZ_CHECK(t->stored);
    return t->flagged;
}

static void cb_release(void *token, void *ctx)
{
    tok_t *t = tok_of(token);

    FZ_CHECK(ctx == &M);
    FZ_CHECK(M.callbacks_allowed);
    FZ_CHECK(t->stored);                  /* not released twice, not popped */
    FZ_CHECK(t->flagged || M.clearing);   /* never a live timer otherwise */
    if (!M.clearing)
        M.counter = M.counter ? M.counter - 1 : 0;
    if (t->flagged)
        M.flagged--;
    t->stored = 0;
    t->flagged = 0;
    t->noted = 0;
    M.stored--;
    M.released++;
}

static const pl_timer_ops_t OPS = {cb_is_cancelled, cb_release, &M};

static int key_less(const tok_t *a, const tok_t *b)
{
    if (a->deadline != b->deadline)
        return a->deadline < b->deadline;
    return a->seq < b->seq;
}

static tok_t *model_min(int live)
{
    tok_t *best = NULL;
    size_t i;

    for (i = 0; i < POOL; i++) {
        tok_t *t = &M.tok[i];

        if (!t->stored || (live && t->flagged))
            continue;
        if (best == NULL || key_less(t, best))
            best = t;
    }
    return best;
}

/* A token with stored == want_stored (and, for stored ones, the given
 * flagged/noted state), searching the pool from index start. */
static tok_t *pick_at(size_t start, int want_stored, int want_flagged,
                      int want_noted)
{
    size_t i;

    for (i = 0; i < POOL; i++) {
        tok_t *t = &M.tok[(start + i) % POOL];

        if (t->stored != want_stored)
            continue;
        if (want_stored && (t->flagged != want_flagged || t->noted != want_noted))
            continue;
        return t;
    }
    return NULL;
}

static tok_t *pick(fz_in_t *in, int want_stored, int want_flagged,
                   int want_noted)
{
    return pick_at(fz_u16(in) % POOL, want_stored, want_flagged, want_noted);
}

static int64_t read_deadline(fz_in_t *in)
{
    uint8_t mode = fz_u8(in);

    switch (mode % 8) {
    case 0: case 1: case 2: case 3:
        return mode >> 3;                       /* tiny range: many ties */
    case 4:
        return (int64_t)fz_u16(in) - 32768;
    case 5:
        return (int64_t)fz_u64(in);             /* anything, negative too */
    case 6:
        return mode & 8 ? INT64_MAX : INT64_MIN;
    default:
        return (int64_t)(fz_u8(in)) * 1000000;  /* ms-like spacing */
    }
}

static void do_push(tok_t *t, int64_t deadline)
{
    size_t len = H.len, cap = H.cap;
    long injected = fz_injected_failures;
    int rc;

    M.callbacks_allowed = 0;
    rc = pl_timer_heap_push(&H, deadline, t);
    M.callbacks_allowed = 1;
    if (rc == -ENOMEM) {
        /* Only a push that had to grow may fail, and only if we made it. */
        FZ_CHECK(len == cap);
        FZ_CHECK(fz_injected_failures > injected);
        FZ_CHECK_EQ(H.len, len);
        return;
    }
    FZ_CHECK_EQ(rc, 0);
    t->stored = 1;
    t->flagged = 0;
    t->noted = 0;
    t->deadline = deadline;
    t->seq = M.next_seq++;
    M.stored++;
}

/* After a compaction: giving memory back must leave room to double. */
static void check_shrink(size_t cap_before)
{
    if (H.cap < cap_before)
        FZ_CHECK(H.cap >= 2 * H.len);
}

/* Flag t cancelled and, if note, tell the heap; check the compaction rule. */
static void do_cancel(tok_t *t, int note)
{
    size_t flagged, cap;
    int expect_compaction;

    FZ_CHECK(t->stored && !t->noted);
    if (!t->flagged) {
        t->flagged = 1;
        M.flagged++;
    }
    if (!note)
        return;
    t->noted = 1;
    M.counter++;
    expect_compaction = M.stored >= PL_TIMER_HEAP_COMPACT_MIN &&
                        M.counter * 2 > M.stored;
    flagged = M.flagged;
    M.released = 0;
    cap = H.cap;
    pl_timer_heap_note_cancelled(&H);
    check_shrink(cap);
    if (expect_compaction) {
        FZ_CHECK_EQ(M.released, flagged);
        FZ_CHECK_EQ(M.flagged, 0);
    } else {
        FZ_CHECK_EQ(M.released, 0);
    }
}

/* What peek must drop first: every flagged entry before the earliest live
 * one (all flagged entries if none is live). */
static size_t expected_top_drops(const tok_t *live_min)
{
    size_t i, n = 0;

    for (i = 0; i < POOL; i++) {
        const tok_t *t = &M.tok[i];

        if (t->stored && t->flagged &&
            (live_min == NULL || key_less(t, live_min)))
            n++;
    }
    return n;
}

static void do_peek(void)
{
    tok_t *want = model_min(1);
    size_t drops = expected_top_drops(want);
    const pl_timer_t *top;

    M.released = 0;
    top = pl_timer_heap_peek(&H);
    FZ_CHECK_EQ(M.released, drops);
    if (want == NULL) {
        FZ_CHECK(top == NULL);
        FZ_CHECK_EQ(H.len, 0);
        return;
    }
    FZ_CHECK(top != NULL);
    FZ_CHECK(top == &H.items[0]);
    if (top->token != want)
        fz_fail(__FILE__, __LINE__, "peek gave token %ld, model wants %ld",
                (long)(tok_of(top->token) - M.tok), (long)(want - M.tok));
    FZ_CHECK_EQ(top->deadline_ns, want->deadline);
    FZ_CHECK_EQ(top->seq, want->seq);
}

static void do_pop(void)
{
    tok_t *want = model_min(1);
    size_t drops = expected_top_drops(want);
    pl_timer_t out;
    int got;

    M.released = 0;
    memset(&out, 0xA5, sizeof(out));
    got = pl_timer_heap_pop(&H, &out);
    FZ_CHECK_EQ(M.released, drops);
    if (want == NULL) {
        FZ_CHECK_EQ(got, 0);
        return;
    }
    FZ_CHECK_EQ(got, 1);
    if (out.token != want)
        fz_fail(__FILE__, __LINE__, "pop gave token %ld, model wants %ld",
                (long)(tok_of(out.token) - M.tok), (long)(want - M.tok));
    FZ_CHECK_EQ(out.deadline_ns, want->deadline);
    FZ_CHECK_EQ(out.seq, want->seq);
    /* Ownership passes to us: the heap must never mention it again. */
    want->stored = 0;
    want->flagged = 0;
    want->noted = 0;
    M.stored--;
}

static void do_compact(void)
{
    size_t flagged = M.flagged, dropped, cap = H.cap;

    M.released = 0;
    dropped = pl_timer_heap_compact(&H);
    check_shrink(cap);
    FZ_CHECK_EQ(dropped, flagged);
    FZ_CHECK_EQ(M.released, flagged);
}

/* clear, or destroy followed by a fresh init (the heap must be reusable). */
static void do_clear(int destroy)
{
    size_t stored = M.stored;

    M.released = 0;
    M.clearing = 1;
    if (destroy) {
        pl_timer_heap_destroy(&H);
        FZ_CHECK(H.items == NULL);
        FZ_CHECK_EQ(H.cap, 0);
    } else {
        pl_timer_heap_clear(&H);
    }
    M.clearing = 0;
    FZ_CHECK_EQ(M.released, stored);
    FZ_CHECK_EQ(M.stored, 0);
    M.counter = 0;
    if (destroy) {
        FZ_CHECK_EQ(pl_timer_heap_init(&H, &OPS), 0);
        M.next_seq = 0;
    }
}

/* The structure itself: a 4-ary min-heap of exactly the stored tokens. */
static void check_invariants(void)
{
    static unsigned char seen[POOL];
    size_t i, flagged = 0;

    FZ_CHECK_EQ(pl_timer_heap_len(&H), M.stored);
    FZ_CHECK(H.len <= H.cap);
    FZ_CHECK(H.cap == 0 || H.items != NULL);
    FZ_CHECK(H.cap % PL__TIMER_HEAP_INITIAL_CAP == 0);
    FZ_CHECK((H.cap & (H.cap - 1)) == 0);
    FZ_CHECK_EQ(H.cancelled, M.counter);
    FZ_CHECK(H.cancelled <= H.len);
    FZ_CHECK_EQ(H.next_seq, M.next_seq);
    memset(seen, 0, sizeof(seen));
    for (i = 0; i < H.len; i++) {
        const pl_timer_t *e = &H.items[i];
        tok_t *t = tok_of(e->token);
        size_t idx = (size_t)(t - M.tok);

        FZ_CHECK(t->stored);
        FZ_CHECK(!seen[idx]);
        seen[idx] = 1;
        flagged += t->flagged;
        FZ_CHECK_EQ(e->deadline_ns, t->deadline);
        FZ_CHECK_EQ(e->seq, t->seq);
        if (i > 0 && timer_less(e, &H.items[(i - 1) / D]))
            fz_fail(__FILE__, __LINE__, "heap order broken at index %zu", i);
    }
    FZ_CHECK_EQ(flagged, M.flagged);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in_t in = {data, size, 0};

    memset(&M, 0, sizeof(M));
    M.callbacks_allowed = 1;
    fz_fail_alloc_in = 0;
    fz_step = 0;
    fz_op = "init";
    FZ_CHECK_EQ(pl_timer_heap_init(&H, &OPS), 0);

    while (fz_more(&in)) {
        uint8_t op = fz_u8(&in);
        tok_t *t;

        fz_step++;
        switch (op % 13) {
        case 0: case 1: case 2:
            fz_op = "push";
            t = pick(&in, 0, 0, 0);
            if (t != NULL)
                do_push(t, read_deadline(&in));
            break;
        case 3: {                   /* many pushes from one seed */
            uint32_t seed = fz_u16(&in);
            unsigned n = 1 + fz_u8(&in), spread = 1 + fz_u8(&in), k;

            fz_op = "push_many";
            for (k = 0; k < n; k++) {
                t = pick_at(fz_xorshift(&seed) % POOL, 0, 0, 0);
                if (t == NULL)
                    break;
                do_push(t, (int64_t)(fz_xorshift(&seed) % spread));
            }
            break;
        }
        case 4: case 5:
            fz_op = "cancel";
            t = pick(&in, 1, 0, 0);
            if (t != NULL)
                do_cancel(t, 1);
            break;
        case 6: {
            /* Cancel every stride-th live entry; with the top bit, only flag
             * them, so that an explicit compaction later finds a heap that is
             * almost all dead (what shrinking needs). */
            uint8_t arg = fz_u8(&in);
            unsigned stride = 1 + arg % 8, k = 0;
            size_t i;

            fz_op = arg & 0x80 ? "flag_many" : "cancel_many";
            for (i = 0; i < POOL; i++) {
                t = &M.tok[i];
                if (t->stored && !t->flagged && k++ % stride == 0)
                    do_cancel(t, !(arg & 0x80));
            }
            break;
        }
        case 7:                     /* flagged now, noted later or never */
            fz_op = "flag";
            t = pick(&in, 1, 0, 0);
            if (t != NULL)
                do_cancel(t, 0);
            break;
        case 8:
            fz_op = "note_flagged";
            t = pick(&in, 1, 1, 0);
            if (t != NULL)
                do_cancel(t, 1);
            break;
        case 9:
            fz_op = "pop";
            do_pop();
            break;
        case 10:
            fz_op = "peek";
            do_peek();
            break;
        case 11:
            fz_op = "compact";
            do_compact();
            break;
        default: {
            uint8_t arg = fz_u8(&in);

            if (arg < 200) {
                /* Make one of the next few allocations fail. */
                fz_op = "fail_alloc";
                fz_fail_alloc_in = 1 + arg % 4;
            } else {
                fz_op = arg & 1 ? "destroy" : "clear";
                do_clear(arg & 1);
            }
            break;
        }
        }
        check_invariants();
    }

    fz_op = "destroy";
    do_clear(1);
    M.clearing = 1;
    pl_timer_heap_destroy(&H);
    return 0;
}
