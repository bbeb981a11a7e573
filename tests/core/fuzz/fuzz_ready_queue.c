/* libFuzzer harness: csrc/ready_queue.c against a plain deque model.
 *
 * The model is an array holding the queued values oldest first.  After every
 * operation the ring must hold exactly those values, in that order, starting
 * at head and wrapping through the mask; checked besides:
 *
 *   - pop returns the oldest value, or NULL when empty;
 *   - init rounds the capacity up to a power of two, at least 16, and a
 *     failed init (a size that cannot be allocated or would overflow) returns
 *     -ENOMEM and leaves the queue in the destroyed state;
 *   - a push into a full ring doubles the capacity and unwraps the ring
 *     (head 0); a push whose growth fails returns -ENOMEM and leaves every
 *     queued value where it was;
 *   - capacity never shrinks and is always a power of two >= 16.
 *
 * Input: opcode bytes with arguments; see the switch in
 * LLVMFuzzerTestOneInput. */
#include "fuzz_util.h"

/* The ring's allocations go through the fault injector. */
#define malloc fz_malloc
#include "ready_queue.c"
#undef malloc

/* Enough to make the ring grow eight times from its minimum. */
#define MODEL_CAP 4096

static struct model_s {
    uintptr_t v[MODEL_CAP];  /* a ring too, but a trivially simple one */
    size_t head;
    size_t len;
    uintptr_t next;     /* next value to push; never 0 (NULL means empty) */
    int live;           /* the queue is initialised */
    int grew;           /* a push grew the ring since the last full check */
} M;

static pl_ready_queue_t Q;

static size_t cap_of(const pl_ready_queue_t *q)
{
    return q->mask + 1;
}

/* The capacity init must choose, or 0 if its byte size overflows size_t. */
static size_t expected_cap(uint64_t initial)
{
    size_t cap = 16;

    while (cap < initial) {
        if (cap > SIZE_MAX / 2 / sizeof(void *))
            return 0;
        cap <<= 1;
    }
    return cap;
}

static void do_init(uint64_t initial)
{
    size_t want = expected_cap(initial);
    long injected = fz_injected_failures;
    int rc;

    rc = pl_ready_queue_init(&Q, (size_t)initial);
    M.head = 0;
    M.len = 0;
    if (rc == -ENOMEM) {
        /* Only a size we cannot have may fail (its byte count overflows, or
         * is more than the injector grants), or an armed failure. */
        FZ_CHECK(want == 0 || want > FZ_ALLOC_LIMIT / sizeof(void *) ||
                 fz_injected_failures > injected);
        FZ_CHECK(Q.items == NULL);
        FZ_CHECK_EQ(Q.len, 0);
        FZ_CHECK_EQ(Q.mask, 0);
        M.live = 0;
        return;
    }
    FZ_CHECK_EQ(rc, 0);
    FZ_CHECK_EQ(cap_of(&Q), want);
    FZ_CHECK_EQ(Q.head, 0);
    FZ_CHECK_EQ(Q.len, 0);
    M.live = 1;
}

static void do_destroy(void)
{
    pl_ready_queue_destroy(&Q);
    FZ_CHECK(Q.items == NULL);
    FZ_CHECK_EQ(Q.len, 0);
    M.live = 0;
    M.head = 0;
    M.len = 0;
}

static uintptr_t model_at(size_t i)
{
    return M.v[(M.head + i) % MODEL_CAP];
}

/* Returns 0 when the model is full (the caller stops a burst). */
static int do_push(void)
{
    size_t cap = cap_of(&Q), len = Q.len, head = Q.head;
    long injected = fz_injected_failures;
    int rc;

    if (M.len == MODEL_CAP)
        return 0;
    rc = pl_ready_queue_push(&Q, (void *)M.next);
    if (rc == -ENOMEM) {
        FZ_CHECK(len == cap);               /* only growth allocates */
        FZ_CHECK(fz_injected_failures > injected);
        FZ_CHECK_EQ(cap_of(&Q), cap);
        FZ_CHECK_EQ(Q.head, head);
        FZ_CHECK_EQ(Q.len, len);
        return 1;
    }
    FZ_CHECK_EQ(rc, 0);
    if (len == cap) {
        FZ_CHECK_EQ(cap_of(&Q), 2 * cap);
        FZ_CHECK_EQ(Q.head, 0);
    } else {
        FZ_CHECK_EQ(cap_of(&Q), cap);
        FZ_CHECK_EQ(Q.head, head);
    }
    M.v[(M.head + M.len++) % MODEL_CAP] = M.next++;
    /* The new value sits at the tail; the rest is checked by
     * check_invariants (all of it after a growth). */
    FZ_CHECK((uintptr_t)Q.items[(Q.head + Q.len - 1) & Q.mask] == M.next - 1);
    if (len == cap)
        M.grew = 1;
    return 1;
}

static void do_pop(void)
{
    void *got = pl_ready_queue_pop(&Q);

    if (M.len == 0) {
        FZ_CHECK(got == NULL);
        return;
    }
    if ((uintptr_t)got != model_at(0))
        fz_fail(__FILE__, __LINE__, "popped %lu, model wants %lu",
                (unsigned long)(uintptr_t)got, (unsigned long)model_at(0));
    M.head = (M.head + 1) % MODEL_CAP;
    M.len--;
}

/* The whole ring against the model is O(len): done after a growth or a
 * burst, at the end, and every 16th step; other steps check the shape and
 * the slots they touched. */
static void check_invariants(int full)
{
    size_t cap, i;

    if (!M.live)
        return;
    cap = cap_of(&Q);
    FZ_CHECK(cap >= 16);
    FZ_CHECK((cap & (cap - 1)) == 0);
    FZ_CHECK(Q.head <= Q.mask);
    FZ_CHECK_EQ(pl_ready_queue_len(&Q), M.len);
    FZ_CHECK(Q.len <= cap);
    if (!full && !M.grew && fz_step % 16 != 0)
        return;
    M.grew = 0;
    for (i = 0; i < M.len; i++) {
        uintptr_t got = (uintptr_t)Q.items[(Q.head + i) & Q.mask];

        if (got != model_at(i))
            fz_fail(__FILE__, __LINE__, "slot %zu from head holds %lu, "
                    "model wants %lu", i, (unsigned long)got,
                    (unsigned long)model_at(i));
    }
}

static uint64_t read_initial_cap(fz_in_t *in)
{
    uint8_t mode = fz_u8(in);

    switch (mode % 4) {
    case 0:
        return mode >> 2;                   /* 0..63 */
    case 1:
        return fz_u16(in);
    case 2:
        return fz_u64(in);                  /* mostly far too large */
    default:
        return (uint64_t)1 << (mode >> 2);  /* powers of two, up to 2^63 */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_in_t in = {data, size, 0};

    memset(&M, 0, sizeof(M));
    M.next = 1;
    fz_fail_alloc_in = 0;
    fz_step = 0;
    fz_op = "init";
    do_init(fz_u8(&in) % 40);

    while (fz_more(&in)) {
        uint8_t op = fz_u8(&in);
        unsigned n, k;
        int full;

        fz_step++;
        if (!M.live) {
            /* Nothing but init is allowed on a destroyed queue. */
            fz_op = "reinit";
            do_init(read_initial_cap(&in));
            check_invariants(1);
            continue;
        }
        full = 0;
        switch (op % 8) {
        case 0: case 1:
            fz_op = "push";
            do_push();
            break;
        case 2: case 3:
            fz_op = "pop";
            do_pop();
            break;
        case 4:
            fz_op = "push_many";
            n = 1 + fz_u8(&in) * 4u;
            for (k = 0; k < n && do_push(); k++)
                ;
            full = 1;
            break;
        case 5:
            fz_op = "pop_many";
            n = 1 + fz_u8(&in) * 4u;
            for (k = 0; k < n; k++)
                do_pop();
            full = 1;
            break;
        case 6:
            fz_op = "fail_alloc";
            fz_fail_alloc_in = 1 + fz_u8(&in) % 4;
            break;
        default:
            fz_op = "destroy";
            do_destroy();
            break;
        }
        check_invariants(full);
    }
    check_invariants(1);
    if (M.live)
        do_destroy();
    return 0;
}
