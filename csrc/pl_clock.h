/* Monotonic clock shared by the reactor and the timer heap.
 *
 * CLOCK_MONOTONIC is what Python's time.monotonic() reads on Linux and the
 * BSDs, so loop.time() computed from pl_clock_now_ns() agrees with it. */
#ifndef PL_CLOCK_H
#define PL_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t pl_clock_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + (int64_t)ts.tv_nsec;
}

/* Resolution of the clock in nanoseconds (1 on Linux). */
int64_t pl_clock_resolution_ns(void);

#endif
