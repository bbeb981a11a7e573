/* Shared parts of the libFuzzer harnesses in this folder.
 *
 * Each harness includes the csrc/ file it tests as source, after this header,
 * so that the file's allocator calls can be redirected to fz_malloc /
 * fz_realloc (see the harnesses): that is how an input makes an allocation
 * fail, and it leaves the allocator of libFuzzer itself alone (a link-time
 * --wrap would catch libFuzzer's allocations too).
 *
 * An input is a byte string read front to back: an opcode byte, then that
 * operation's arguments.  Reading past the end yields zeros, so every input
 * is valid and a truncated one is simply a shorter run. */
#ifndef PL_FUZZ_UTIL_H
#define PL_FUZZ_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fz_in_s {
    const uint8_t *data;
    size_t size;
    size_t pos;
} fz_in_t;

static inline int fz_more(const fz_in_t *in)
{
    return in->pos < in->size;
}

static inline uint8_t fz_u8(fz_in_t *in)
{
    return in->pos < in->size ? in->data[in->pos++] : 0;
}

static inline uint16_t fz_u16(fz_in_t *in)
{
    uint16_t lo = fz_u8(in);
    return (uint16_t)(lo | (uint16_t)fz_u8(in) << 8);
}

static inline uint64_t fz_u64(fz_in_t *in)
{
    uint64_t v = 0;
    int i;

    for (i = 0; i < 8; i++)
        v |= (uint64_t)fz_u8(in) << (8 * i);
    return v;
}

/* Which step of which input failed: printed with every mismatch so that a
 * crash report reads as "step 17 (pop): ...". */
static long fz_step;
static const char *fz_op = "setup";

__attribute__((noreturn, format(printf, 3, 4))) static void
fz_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "\nMODEL MISMATCH at %s:%d, step %ld (%s): ", file, line,
            fz_step, fz_op);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}

#define FZ_CHECK(cond)                                                       \
    do {                                                                     \
        if (!(cond))                                                         \
            fz_fail(__FILE__, __LINE__, "%s", #cond);                        \
    } while (0)

#define FZ_CHECK_EQ(a, b)                                                    \
    do {                                                                     \
        long long a_ = (long long)(a), b_ = (long long)(b);                  \
        if (a_ != b_)                                                        \
            fz_fail(__FILE__, __LINE__, "%s == %s (%lld != %lld)", #a, #b,   \
                    a_, b_);                                                 \
    } while (0)

/* ---- allocation fault injection -------------------------------------------
 * fz_fail_alloc_in = n > 0: the n-th allocation from now returns NULL (once).
 * Requests above FZ_ALLOC_LIMIT fail as well, as they would on a machine
 * without that much memory, instead of tripping libFuzzer's malloc limit. */
#define FZ_ALLOC_LIMIT ((size_t)64 << 20)

static long fz_fail_alloc_in;
static long fz_injected_failures;   /* armed failures that fired */
static long fz_refused_allocs;      /* requests above FZ_ALLOC_LIMIT */

static int fz_alloc_should_fail(size_t n)
{
    if (n > FZ_ALLOC_LIMIT) {
        fz_refused_allocs++;
        return 1;
    }
    if (fz_fail_alloc_in > 0 && --fz_fail_alloc_in == 0) {
        fz_injected_failures++;
        return 1;
    }
    return 0;
}

/* Each harness redirects only what its csrc/ file calls. */
__attribute__((unused)) static void *fz_malloc(size_t n)
{
    return fz_alloc_should_fail(n) ? NULL : malloc(n);
}

__attribute__((unused)) static void *fz_realloc(void *p, size_t n)
{
    return fz_alloc_should_fail(n) ? NULL : realloc(p, n);
}

/* A small deterministic generator for the bulk operations: one input byte
 * seeds many values, so the fuzzer reaches large structures cheaply. */
static inline uint32_t fz_xorshift(uint32_t *s)
{
    uint32_t x = *s ? *s : 0x9E3779B9u;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *s = x;
    return x;
}

#endif
