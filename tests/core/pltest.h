/* A very small test harness for the C core.
 *
 * Each test is a void function named test_<name>, listed once in cases.h.
 * The runner (test_main.c) runs one named case, or all of them; a failed
 * CHECK prints where and why and jumps back to the runner.  The pytest file
 * (test_core.py) builds the driver, asks it for the case list and runs each
 * case in its own process, so each shows up as its own pytest test. */
#ifndef PLTEST_H
#define PLTEST_H

#include <stddef.h>
#include <stdint.h>

void pltest_fail(const char *file, int line, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));
void pltest_skip(const char *fmt, ...)
    __attribute__((noreturn, format(printf, 1, 2)));

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond))                                                         \
            pltest_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);             \
    } while (0)

#define CHECK_EQ(a, b)                                                       \
    do {                                                                     \
        long long a_ = (long long)(a), b_ = (long long)(b);                  \
        if (a_ != b_)                                                        \
            pltest_fail(__FILE__, __LINE__, "%s == %s (%lld != %lld)", #a,   \
                        #b, a_, b_);                                         \
    } while (0)

/* For calls returning 0 or a negative errno. */
#define CHECK_OK(expr)                                                       \
    do {                                                                     \
        long long rc_ = (long long)(expr);                                   \
        if (rc_ < 0)                                                         \
            pltest_fail(__FILE__, __LINE__, "%s failed: %lld (%s)", #expr,   \
                        rc_, pltest_strerror((int)-rc_));                    \
    } while (0)

/* For system calls returning -1 and setting errno. */
#define CHECK_SYS(expr)                                                      \
    do {                                                                     \
        if ((expr) < 0)                                                      \
            pltest_fail(__FILE__, __LINE__, "%s: %s", #expr,                 \
                        pltest_strerror(errno));                             \
    } while (0)

#define SKIP(...) pltest_skip(__VA_ARGS__)

const char *pltest_strerror(int err);

/* Deterministic pseudo-random numbers (xorshift64*): every run of a test
 * sees the same sequence, so a failure reproduces. */
typedef struct pltest_rng_s {
    uint64_t s;
} pltest_rng_t;

static inline void pltest_rng_seed(pltest_rng_t *r, uint64_t seed)
{
    r->s = seed ? seed : 0x9E3779B97F4A7C15ULL;
}

static inline uint64_t pltest_rng_next(pltest_rng_t *r)
{
    r->s ^= r->s >> 12;
    r->s ^= r->s << 25;
    r->s ^= r->s >> 27;
    return r->s * 0x2545F4914F6CDD1DULL;
}

/* Uniform enough in [0, n) for tests. */
static inline uint64_t pltest_rng_below(pltest_rng_t *r, uint64_t n)
{
    return pltest_rng_next(r) % n;
}

/* Allocation fault injection (links with -Wl,--wrap=malloc,...).
 * pltest_alloc_fail_after(n): the next n allocations succeed, the one after
 * fails once; -1 disarms.  pltest_have_alloc_faults() says whether the
 * wrappers are linked in (else tests that need them skip). */
void pltest_alloc_fail_after(long n);
int pltest_have_alloc_faults(void);

/* Helpers shared by the reactor and wakeup tests. */
void pltest_pipe(int fds[2]);             /* non-blocking, close-on-exec */
void pltest_socketpair(int fds[2]);       /* non-blocking, close-on-exec */
void pltest_close(int fd);

#endif
