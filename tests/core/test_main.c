/* The test runner.
 *
 *   driver --list        print every case name, one a line
 *   driver NAME...       run the named cases
 *   driver [--all]       run every case
 *
 * Each case prints one line: "PASS name", "SKIP name: why" or
 * "FAIL name: file:line: what".  The exit status is 1 if any case failed. */
#include "pltest.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define PL_TEST(name) void test_##name(void);
#include "cases.h"
#undef PL_TEST

typedef struct case_s {
    const char *name;
    void (*fn)(void);
} case_t;

static const case_t cases[] = {
#define PL_TEST(name) {#name, test_##name},
#include "cases.h"
#undef PL_TEST
};

#define NCASES (sizeof(cases) / sizeof(cases[0]))

enum { OUTCOME_PASS, OUTCOME_FAIL, OUTCOME_SKIP };

static jmp_buf jump;
static char message[1024];

void pltest_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    int n;

    n = snprintf(message, sizeof(message), "%s:%d: ", file, line);
    va_start(ap, fmt);
    vsnprintf(message + n, sizeof(message) - (size_t)n, fmt, ap);
    va_end(ap);
    longjmp(jump, OUTCOME_FAIL);
}

void pltest_skip(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    longjmp(jump, OUTCOME_SKIP);
}

const char *pltest_strerror(int err)
{
    return strerror(err);
}

/* ---- allocation fault injection ---------------------------------------- */

static long alloc_countdown = -1;

void pltest_alloc_fail_after(long n)
{
    alloc_countdown = n;
}

#ifdef PLTEST_WRAP_ALLOC
void *__real_malloc(size_t size);
void *__real_realloc(void *p, size_t size);
void *__real_calloc(size_t n, size_t size);
void *__wrap_malloc(size_t size);
void *__wrap_realloc(void *p, size_t size);
void *__wrap_calloc(size_t n, size_t size);

/* Non-zero if this allocation is the one to fail. */
static int should_fail(void)
{
    if (alloc_countdown < 0)
        return 0;
    if (alloc_countdown == 0) {
        alloc_countdown = -1;
        return 1;
    }
    alloc_countdown--;
    return 0;
}

void *__wrap_malloc(size_t size)
{
    return should_fail() ? NULL : __real_malloc(size);
}

void *__wrap_realloc(void *p, size_t size)
{
    return should_fail() ? NULL : __real_realloc(p, size);
}

void *__wrap_calloc(size_t n, size_t size)
{
    return should_fail() ? NULL : __real_calloc(n, size);
}

int pltest_have_alloc_faults(void)
{
    return 1;
}
#else
int pltest_have_alloc_faults(void)
{
    return 0;
}
#endif

/* ---- fd helpers -------------------------------------------------------- */

static void set_flags(int fd)
{
    CHECK_SYS(fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK));
    CHECK_SYS(fcntl(fd, F_SETFD, FD_CLOEXEC));
}

void pltest_pipe(int fds[2])
{
    CHECK_SYS(pipe(fds));
    set_flags(fds[0]);
    set_flags(fds[1]);
}

void pltest_socketpair(int fds[2])
{
    CHECK_SYS(socketpair(AF_UNIX, SOCK_STREAM, 0, fds));
    set_flags(fds[0]);
    set_flags(fds[1]);
}

void pltest_close(int fd)
{
    CHECK_SYS(close(fd));
}

/* ---- runner ------------------------------------------------------------ */

static int run_case(const case_t *c)
{
    int outcome;

    alloc_countdown = -1;
    message[0] = '\0';
    outcome = setjmp(jump);
    if (outcome == 0) {
        c->fn();
        outcome = OUTCOME_PASS;
    }
    alloc_countdown = -1;
    switch (outcome) {
    case OUTCOME_PASS:
        printf("PASS %s\n", c->name);
        break;
    case OUTCOME_SKIP:
        printf("SKIP %s: %s\n", c->name, message);
        break;
    default:
        printf("FAIL %s: %s\n", c->name, message);
        break;
    }
    fflush(stdout);
    return outcome;
}

int main(int argc, char **argv)
{
    size_t i;
    int passed = 0, failed = 0, skipped = 0, a;

    /* Unbuffered enough that a crash still shows which case ran. */
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (i = 0; i < NCASES; i++)
            printf("%s\n", cases[i].name);
        return 0;
    }
    for (a = 1; a < argc || (a == 1 && argc == 1); a++) {
        int all = argc == 1 || strcmp(argv[a], "--all") == 0;
        int found = 0;

        for (i = 0; i < NCASES; i++) {
            if (!all && strcmp(argv[a], cases[i].name) != 0)
                continue;
            found = 1;
            switch (run_case(&cases[i])) {
            case OUTCOME_PASS: passed++; break;
            case OUTCOME_SKIP: skipped++; break;
            default: failed++; break;
            }
        }
        if (!found) {
            printf("FAIL %s: no such case\n", argv[a]);
            failed++;
        }
        if (argc == 1)
            break;
    }
    printf("driver summary: passed=%d failed=%d skipped=%d\n", passed, failed,
           skipped);
    return failed ? 1 : 0;
}
