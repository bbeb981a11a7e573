/* The clock: CLOCK_MONOTONIC, non-decreasing, with a sane resolution. */
#include "pltest.h"
#include "pl_clock.h"

#include <errno.h>

void test_clock_monotonic(void)
{
    int64_t prev = pl_clock_now_ns(), now;
    struct timespec ts;
    int i;

    CHECK(prev > 0);
    for (i = 0; i < 100000; i++) {
        now = pl_clock_now_ns();
        CHECK(now >= prev);
        prev = now;
    }
    /* The same clock Python's time.monotonic() reads. */
    CHECK_SYS(clock_gettime(CLOCK_MONOTONIC, &ts));
    now = (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    CHECK(now >= prev);
    CHECK(pl_clock_now_ns() >= now);
}

void test_clock_resolution(void)
{
    int64_t res = pl_clock_resolution_ns();
    struct timespec ts;

    CHECK(res >= 1);
    CHECK(res <= 1000000000LL);
    CHECK_SYS(clock_getres(CLOCK_MONOTONIC, &ts));
    CHECK_EQ(res, (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec);
}
