/* The monotonic clock's resolution.  pl_clock_now_ns() is inline in the
 * header because the loop reads the clock every iteration. */
#include "pl_clock.h"

int64_t pl_clock_resolution_ns(void)
{
    struct timespec ts;
    int64_t ns;

    if (clock_getres(CLOCK_MONOTONIC, &ts) != 0)
        return 1;   /* CLOCK_MONOTONIC is mandatory where we build; be safe */
    ns = (int64_t)ts.tv_sec * 1000000000LL + (int64_t)ts.tv_nsec;
    /* A zero would make callers divide by it; no clock is finer than 1 ns. */
    return ns > 0 ? ns : 1;
}
