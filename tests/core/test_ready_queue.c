/* Ready queue: FIFO order across wraps and growth, against a model. */
#include "pltest.h"
#include "ready_queue.h"

#include <errno.h>
#include <stdlib.h>

/* Tokens are opaque pointers; encode a counter so order is checkable and
 * NULL (the "empty" answer) is never a token. */
#define TOK(i) ((void *)(uintptr_t)((i) + 1))
#define UNTOK(p) ((size_t)(uintptr_t)(p) - 1)

void test_ready_queue_init_rounds_up(void)
{
    static const struct { size_t ask, mask; } cases[] = {
        {0, 15}, {1, 15}, {15, 15}, {16, 15}, {17, 31}, {31, 31}, {32, 31},
        {33, 63}, {1000, 1023}, {1024, 1023}, {1025, 2047},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pl_ready_queue_t q;

        CHECK_OK(pl_ready_queue_init(&q, cases[i].ask));
        CHECK_EQ(q.mask, cases[i].mask);
        CHECK_EQ(q.len, 0);
        CHECK_EQ(q.head, 0);
        CHECK(q.items != NULL);
        pl_ready_queue_destroy(&q);
        CHECK(q.items == NULL);
    }
}

void test_ready_queue_empty_pop(void)
{
    pl_ready_queue_t q;

    CHECK_OK(pl_ready_queue_init(&q, 0));
    CHECK(pl_ready_queue_pop(&q) == NULL);
    CHECK_OK(pl_ready_queue_push(&q, TOK(0)));
    CHECK(pl_ready_queue_pop(&q) == TOK(0));
    CHECK(pl_ready_queue_pop(&q) == NULL);
    CHECK(pl_ready_queue_pop(&q) == NULL);
    CHECK_EQ(pl_ready_queue_len(&q), 0);
    pl_ready_queue_destroy(&q);
}

void test_ready_queue_fifo_simple(void)
{
    pl_ready_queue_t q;
    size_t i;

    CHECK_OK(pl_ready_queue_init(&q, 16));
    for (i = 0; i < 100; i++)
        CHECK_OK(pl_ready_queue_push(&q, TOK(i)));
    CHECK_EQ(pl_ready_queue_len(&q), 100);
    CHECK_EQ(q.mask, 127);      /* 16 -> 32 -> 64 -> 128 */
    for (i = 0; i < 100; i++)
        CHECK_EQ(UNTOK(pl_ready_queue_pop(&q)), i);
    CHECK(pl_ready_queue_pop(&q) == NULL);
    pl_ready_queue_destroy(&q);
}

/* Grow while the live items wrap around the end of the ring: the unwrap
 * must keep the oldest first. */
void test_ready_queue_grow_while_wrapped(void)
{
    size_t start;

    for (start = 0; start < 16; start++) {
        pl_ready_queue_t q;
        size_t next_in = 0, next_out = 0, i;

        CHECK_OK(pl_ready_queue_init(&q, 16));
        /* Move head to `start`. */
        for (i = 0; i < start; i++)
            CHECK_OK(pl_ready_queue_push(&q, TOK(next_in++)));
        for (i = 0; i < start; i++)
            CHECK_EQ(UNTOK(pl_ready_queue_pop(&q)), next_out++);
        CHECK_EQ(q.head, start);
        /* Fill exactly (wrapping unless start == 0), then one more grows. */
        for (i = 0; i < 16; i++)
            CHECK_OK(pl_ready_queue_push(&q, TOK(next_in++)));
        CHECK_EQ(q.mask, 15);
        CHECK_OK(pl_ready_queue_push(&q, TOK(next_in++)));
        CHECK_EQ(q.mask, 31);
        CHECK_EQ(q.head, 0);
        while (pl_ready_queue_len(&q) > 0)
            CHECK_EQ(UNTOK(pl_ready_queue_pop(&q)), next_out++);
        CHECK_EQ(next_out, next_in);
        pl_ready_queue_destroy(&q);
    }
}

/* Bursts of pushes and pops of random sizes: the ring wraps thousands of
 * times and grows at random head positions.  Tokens are consecutive, so the
 * model is just the next expected number. */
void test_ready_queue_fifo_many_wraps_vs_model(void)
{
    pl_ready_queue_t q;
    pltest_rng_t rng;
    size_t next_in = 0, next_out = 0, wraps = 0, grows = 0, round;

    pltest_rng_seed(&rng, 12345);
    CHECK_OK(pl_ready_queue_init(&q, 16));
    for (round = 0; round < 100000; round++) {
        size_t pushes = (size_t)pltest_rng_below(&rng, 40);
        size_t pops = (size_t)pltest_rng_below(&rng, 44);
        size_t i, mask_before = q.mask;

        for (i = 0; i < pushes; i++)
            CHECK_OK(pl_ready_queue_push(&q, TOK(next_in++)));
        if (q.mask != mask_before)
            grows++;
        for (i = 0; i < pops && pl_ready_queue_len(&q) > 0; i++) {
            size_t head_before = q.head;
            CHECK_EQ(UNTOK(pl_ready_queue_pop(&q)), next_out++);
            if (q.head < head_before)
                wraps++;
        }
        CHECK_EQ(pl_ready_queue_len(&q), next_in - next_out);
        CHECK(pl_ready_queue_len(&q) <= q.mask + 1);
    }
    while (pl_ready_queue_len(&q) > 0)
        CHECK_EQ(UNTOK(pl_ready_queue_pop(&q)), next_out++);
    CHECK_EQ(next_out, next_in);
    CHECK(wraps > 1000);
    CHECK(grows >= 2);
    pl_ready_queue_destroy(&q);
}

void test_ready_queue_large(void)
{
    pl_ready_queue_t q;
    size_t i, n = 1u << 20;

    CHECK_OK(pl_ready_queue_init(&q, 0));
    for (i = 0; i < n; i++)
        CHECK_OK(pl_ready_queue_push(&q, TOK(i)));
    CHECK_EQ(q.mask + 1, n);
    for (i = 0; i < n; i++)
        CHECK_EQ(UNTOK(pl_ready_queue_pop(&q)), i);
    pl_ready_queue_destroy(&q);
}

void test_ready_queue_grow_enomem_intact(void)
{
    pl_ready_queue_t q;
    size_t i;

    if (!pltest_have_alloc_faults())
        SKIP("built without allocation fault injection");
    pltest_alloc_fail_after(0);
    CHECK_EQ(pl_ready_queue_init(&q, 16), -ENOMEM);
    pl_ready_queue_destroy(&q);     /* safe after a failed init */
    CHECK_EQ(pl_ready_queue_init(&q, (size_t)-1), -ENOMEM);

    CHECK_OK(pl_ready_queue_init(&q, 16));
    /* Wrap first so the failed grow happens with head != 0. */
    for (i = 0; i < 10; i++)
        CHECK_OK(pl_ready_queue_push(&q, TOK(i)));
    for (i = 0; i < 10; i++)
        CHECK_EQ(UNTOK(pl_ready_queue_pop(&q)), i);
    for (i = 0; i < 16; i++)
        CHECK_OK(pl_ready_queue_push(&q, TOK(100 + i)));
    pltest_alloc_fail_after(0);
    CHECK_EQ(pl_ready_queue_push(&q, TOK(999)), -ENOMEM);
    CHECK_EQ(pl_ready_queue_len(&q), 16);
    CHECK_EQ(q.mask, 15);
    /* Still works, and grows next time. */
    CHECK_OK(pl_ready_queue_push(&q, TOK(116)));
    for (i = 0; i < 17; i++)
        CHECK_EQ(UNTOK(pl_ready_queue_pop(&q)), 100 + i);
    CHECK(pl_ready_queue_pop(&q) == NULL);
    pl_ready_queue_destroy(&q);
}

void test_ready_queue_destroy_reinit(void)
{
    pl_ready_queue_t q;
    int round;

    for (round = 0; round < 3; round++) {
        size_t i;

        CHECK_OK(pl_ready_queue_init(&q, 4));
        for (i = 0; i < 50; i++)
            CHECK_OK(pl_ready_queue_push(&q, TOK(i)));
        /* Destroy with items still queued: only the ring is freed. */
        pl_ready_queue_destroy(&q);
        CHECK_EQ(pl_ready_queue_len(&q), 0);
    }
}
