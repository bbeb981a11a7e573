/* Reactor: readiness, masking, interest changes, tokens, timeouts, signals,
 * closed and reused fds, high fd numbers, hang-ups.
 *
 * Only the public interface is used, so the same cases run against every
 * backend the driver is built with.  kqueue may report the read and write
 * side of one fd as two events, so checks merge events per fd first. */
#include "pltest.h"
#include "pl_clock.h"
#include "reactor.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define MAX_EVENTS 256
/* A "wait until it happens" that cannot hang the suite forever. */
#define LONG_NS (10LL * 1000000000LL)

typedef struct merged_s {
    int count;          /* events seen for the fd */
    uint32_t events;    /* OR of their bits */
    uint32_t token;
} merged_t;

static pl_reactor_t *open_reactor(void)
{
    pl_reactor_t *r = NULL;

    CHECK_OK(pl_reactor_open(&r));
    CHECK(r != NULL);
    return r;
}

static int wait_n(pl_reactor_t *r, pl_event_t *ev, int max, int64_t timeout)
{
    int n = pl_reactor_wait(r, ev, max, timeout);

    CHECK_OK(n);
    CHECK(n <= max);
    return n;
}

/* Everything reported for fd in one wait; checks the token is the same on
 * every event of the fd. */
static merged_t wait_fd(pl_reactor_t *r, int fd, int64_t timeout)
{
    pl_event_t ev[MAX_EVENTS];
    merged_t m = {0, 0, 0};
    int n = wait_n(r, ev, MAX_EVENTS, timeout), i;

    for (i = 0; i < n; i++) {
        if (ev[i].fd != fd)
            continue;
        if (m.count > 0)
            CHECK_EQ(ev[i].token, m.token);
        m.count++;
        m.events |= ev[i].events;
        m.token = ev[i].token;
    }
    return m;
}

static void put_byte(int fd)
{
    CHECK_EQ(write(fd, "x", 1), 1);
}

static void drain_fd(int fd)
{
    char buf[4096];

    while (read(fd, buf, sizeof(buf)) > 0)
        ;
}

/* Fill a non-blocking pipe or socket until the kernel says EAGAIN. */
static void fill_fd(int fd)
{
    static char buf[65536];
    ssize_t n;

    do
        n = write(fd, buf, sizeof(buf));
    while (n > 0);
    CHECK(errno == EAGAIN || errno == EWOULDBLOCK);
    /* Pipes accept a short write into the last page; insist on EAGAIN. */
    while (write(fd, buf, 1) > 0)
        ;
}

void test_reactor_open_close(void)
{
    pl_reactor_t *r = open_reactor();
    int fd = pl_reactor_fd(r), flags;

    CHECK(fd >= 0);
    flags = fcntl(fd, F_GETFD);
    CHECK_SYS(flags);
    CHECK(flags & FD_CLOEXEC);
    pl_reactor_close(r);
    CHECK(fcntl(fd, F_GETFD) < 0 && errno == EBADF);
    pl_reactor_close(NULL);
}

void test_reactor_open_enomem(void)
{
    long k;

    if (!pltest_have_alloc_faults())
        SKIP("built without allocation fault injection");
    for (k = 0; k < 2; k++) {
        pl_reactor_t *r = NULL;
        int probe_before, probe_after;

        /* The lowest free fd number shows whether a failure leaked one. */
        probe_before = dup(0);
        CHECK_SYS(probe_before);
        pltest_close(probe_before);
        pltest_alloc_fail_after(k);
        CHECK_EQ(pl_reactor_open(&r), -ENOMEM);
        pltest_alloc_fail_after(-1);
        CHECK(r == NULL);
        probe_after = dup(0);
        CHECK_SYS(probe_after);
        pltest_close(probe_after);
        CHECK_EQ(probe_after, probe_before);
    }
}

void test_reactor_pipe_readable(void)
{
    pl_reactor_t *r = open_reactor();
    int p[2];
    merged_t m;

    pltest_pipe(p);
    CHECK_OK(pl_reactor_add(r, p[0], PL_EV_READ, 7));
    m = wait_fd(r, p[0], 0);
    CHECK_EQ(m.count, 0);
    put_byte(p[1]);
    m = wait_fd(r, p[0], LONG_NS);
    CHECK_EQ(m.count, 1);
    CHECK_EQ(m.events, PL_EV_READ);
    CHECK_EQ(m.token, 7);
    /* Level-triggered: still reported until read. */
    m = wait_fd(r, p[0], 0);
    CHECK_EQ(m.events, PL_EV_READ);
    drain_fd(p[0]);
    m = wait_fd(r, p[0], 0);
    CHECK_EQ(m.count, 0);
    pltest_close(p[0]);
    pltest_close(p[1]);
    pl_reactor_close(r);
}

void test_reactor_pipe_writable(void)
{
    pl_reactor_t *r = open_reactor();
    int p[2];
    merged_t m;

    pltest_pipe(p);
    CHECK_OK(pl_reactor_add(r, p[1], PL_EV_WRITE, 9));
    m = wait_fd(r, p[1], LONG_NS);
    CHECK_EQ(m.count, 1);
    CHECK_EQ(m.events, PL_EV_WRITE);
    CHECK_EQ(m.token, 9);
    fill_fd(p[1]);
    m = wait_fd(r, p[1], 0);
    CHECK_EQ(m.count, 0);
    drain_fd(p[0]);
    m = wait_fd(r, p[1], LONG_NS);
    CHECK_EQ(m.events, PL_EV_WRITE);
    pltest_close(p[0]);
    pltest_close(p[1]);
    pl_reactor_close(r);
}

/* A socket that is readable and writable reports only what was asked. */
void test_reactor_mask_only_asked_events(void)
{
    pl_reactor_t *r = open_reactor();
    int s[2];
    merged_t m;

    pltest_socketpair(s);
    put_byte(s[1]);
    CHECK_OK(pl_reactor_add(r, s[0], PL_EV_READ, 1));
    m = wait_fd(r, s[0], LONG_NS);
    CHECK_EQ(m.events, PL_EV_READ);
    CHECK_OK(pl_reactor_modify(r, s[0], PL_EV_WRITE, 2));
    m = wait_fd(r, s[0], LONG_NS);
    CHECK_EQ(m.events, PL_EV_WRITE);
    CHECK_EQ(m.token, 2);
    CHECK_OK(pl_reactor_modify(r, s[0], PL_EV_READ | PL_EV_WRITE, 3));
    m = wait_fd(r, s[0], LONG_NS);
    CHECK_EQ(m.events, PL_EV_READ | PL_EV_WRITE);
    CHECK_EQ(m.token, 3);
    /* The peer is writable too but was never registered. */
    CHECK_EQ(wait_fd(r, s[1], 0).count, 0);
    pltest_close(s[0]);
    pltest_close(s[1]);
    pl_reactor_close(r);
}

void test_reactor_modify(void)
{
    pl_reactor_t *r = open_reactor();
    int s[2];
    merged_t m;

    /* s[0]: data waiting to be read, send buffer full (not writable).  A
     * socket rather than a pipe: some kqueues refuse EVFILT_WRITE on a
     * pipe's read end. */
    pltest_socketpair(s);
    put_byte(s[1]);
    fill_fd(s[0]);
    CHECK_OK(pl_reactor_add(r, s[0], PL_EV_READ, 1));
    CHECK_EQ(wait_fd(r, s[0], LONG_NS).events, PL_EV_READ);
    CHECK_OK(pl_reactor_modify(r, s[0], PL_EV_WRITE, 2));
    CHECK_EQ(wait_fd(r, s[0], 0).count, 0);
    CHECK_OK(pl_reactor_modify(r, s[0], PL_EV_READ, 3));
    m = wait_fd(r, s[0], LONG_NS);
    CHECK_EQ(m.events, PL_EV_READ);
    CHECK_EQ(m.token, 3);
    /* Same events, new token only. */
    CHECK_OK(pl_reactor_modify(r, s[0], PL_EV_READ, 4));
    CHECK_EQ(wait_fd(r, s[0], LONG_NS).token, 4);
    /* Both, then writable again once the peer reads: READ|WRITE. */
    CHECK_OK(pl_reactor_modify(r, s[0], PL_EV_READ | PL_EV_WRITE, 5));
    CHECK_EQ(wait_fd(r, s[0], LONG_NS).events, PL_EV_READ);
    drain_fd(s[1]);
    m = wait_fd(r, s[0], LONG_NS);
    CHECK_EQ(m.events, PL_EV_READ | PL_EV_WRITE);
    CHECK_EQ(m.token, 5);
    pltest_close(s[0]);
    pltest_close(s[1]);
    pl_reactor_close(r);
}

void test_reactor_remove(void)
{
    pl_reactor_t *r = open_reactor();
    int p[2], closed_fd;

    pltest_pipe(p);
    put_byte(p[1]);
    CHECK_OK(pl_reactor_add(r, p[0], PL_EV_READ, 1));
    CHECK_OK(pl_reactor_add(r, p[1], PL_EV_WRITE, 2));
    CHECK_EQ(wait_fd(r, p[0], LONG_NS).count, 1);
    CHECK_OK(pl_reactor_remove(r, p[0]));
    CHECK_EQ(wait_fd(r, p[0], 0).count, 0);
    CHECK_EQ(wait_fd(r, p[1], LONG_NS).count, 1);   /* the other stays */
    CHECK_EQ(pl_reactor_remove(r, p[0]), -ENOENT);
    CHECK_OK(pl_reactor_remove(r, p[1]));
    CHECK_EQ(wait_fd(r, p[1], 0).count, 0);
    /* Re-adding after remove works. */
    CHECK_OK(pl_reactor_add(r, p[0], PL_EV_READ, 5));
    CHECK_EQ(wait_fd(r, p[0], LONG_NS).token, 5);
    CHECK_OK(pl_reactor_remove(r, p[0]));
    /* A closed fd number. */
    closed_fd = p[1];
    pltest_close(p[1]);
    CHECK_EQ(pl_reactor_remove(r, closed_fd), -EBADF);
    pltest_close(p[0]);
    pl_reactor_close(r);
}

void test_reactor_add_twice_updates(void)
{
    pl_reactor_t *r = open_reactor();
    int s[2];
    merged_t m;

    pltest_socketpair(s);
    put_byte(s[1]);
    CHECK_OK(pl_reactor_add(r, s[0], PL_EV_READ, 1));
    CHECK_OK(pl_reactor_add(r, s[0], PL_EV_READ, 2));
    m = wait_fd(r, s[0], LONG_NS);
    CHECK_EQ(m.count, 1);
    CHECK_EQ(m.token, 2);
    /* add replaces the interest set, it does not merge into it. */
    CHECK_OK(pl_reactor_add(r, s[0], PL_EV_WRITE, 3));
    m = wait_fd(r, s[0], LONG_NS);
    CHECK_EQ(m.events, PL_EV_WRITE);
    CHECK_EQ(m.token, 3);
    pltest_close(s[0]);
    pltest_close(s[1]);
    pl_reactor_close(r);
}

void test_reactor_modify_unknown_adds(void)
{
    pl_reactor_t *r = open_reactor();
    int p[2];
    merged_t m;

    pltest_pipe(p);
    put_byte(p[1]);
    CHECK_OK(pl_reactor_modify(r, p[0], PL_EV_READ, 11));
    m = wait_fd(r, p[0], LONG_NS);
    CHECK_EQ(m.events, PL_EV_READ);
    CHECK_EQ(m.token, 11);
    CHECK_OK(pl_reactor_remove(r, p[0]));
    /* Errors other than "not known" come through. */
    CHECK(pl_reactor_modify(r, 1 << 20, PL_EV_READ, 1) == -EBADF);
    CHECK(pl_reactor_add(r, 1 << 20, PL_EV_READ, 1) == -EBADF);
    pltest_close(p[0]);
    pltest_close(p[1]);
    pl_reactor_close(r);
}

void test_reactor_token_round_trip(void)
{
    static const uint32_t tokens[] = {0, 1, 0x7fffffffu, 0x80000000u,
                                      0xffffffffu, 0xdeadbeefu, 0x10000u};
    enum { N = sizeof(tokens) / sizeof(tokens[0]) };
    pl_reactor_t *r = open_reactor();
    int p[N][2], i, round;

    for (i = 0; i < N; i++) {
        pltest_pipe(p[i]);
        put_byte(p[i][1]);
        CHECK_OK(pl_reactor_add(r, p[i][0], PL_EV_READ, tokens[i]));
    }
    for (round = 0; round < 2; round++) {
        pl_event_t ev[MAX_EVENTS];
        int n = wait_n(r, ev, MAX_EVENTS, LONG_NS), seen = 0, j;

        CHECK_EQ(n, N);
        for (j = 0; j < n; j++) {
            for (i = 0; i < N; i++) {
                if (ev[j].fd != p[i][0])
                    continue;
                CHECK_EQ(ev[j].token,
                         round == 0 ? tokens[i] : ~tokens[i]);
                CHECK_EQ(ev[j].events, PL_EV_READ);
                seen++;
            }
        }
        CHECK_EQ(seen, N);
        for (i = 0; i < N; i++)
            CHECK_OK(pl_reactor_modify(r, p[i][0], PL_EV_READ, ~tokens[i]));
    }
    for (i = 0; i < N; i++) {
        pltest_close(p[i][0]);
        pltest_close(p[i][1]);
    }
    pl_reactor_close(r);
}

void test_reactor_timeout_zero_polls(void)
{
    pl_reactor_t *r = open_reactor();
    pl_event_t ev[4];
    int p[2], i;

    /* Empty, then with an idle fd: never blocks (a hang here would be
     * caught by the runner's timeout). */
    for (i = 0; i < 1000; i++)
        CHECK_EQ(pl_reactor_wait(r, ev, 4, 0), 0);
    pltest_pipe(p);
    CHECK_OK(pl_reactor_add(r, p[0], PL_EV_READ, 1));
    for (i = 0; i < 1000; i++)
        CHECK_EQ(pl_reactor_wait(r, ev, 4, 0), 0);
    pltest_close(p[0]);
    pltest_close(p[1]);
    pl_reactor_close(r);
}

/* A positive timeout is never cut short: the wait returns no earlier than
 * the deadline as CLOCK_MONOTONIC sees it (the clock the loop schedules
 * timers with).  Values straddle the millisecond boundaries where a
 * truncating conversion would return early. */
void test_reactor_timeout_never_early(void)
{
    static const int64_t timeouts[] = {
        1, 1000, 999999, 1000000, 1000001, 1500000, 2000000, 2999999,
        10000000, 20300000,
    };
    pl_reactor_t *r = open_reactor();
    pl_event_t ev[4];
    int p[2];
    size_t i;
    int round;

    pltest_pipe(p);
    CHECK_OK(pl_reactor_add(r, p[0], PL_EV_READ, 1));
    for (round = 0; round < 3; round++) {
        for (i = 0; i < sizeof(timeouts) / sizeof(timeouts[0]); i++) {
            int64_t t0 = pl_clock_now_ns(), elapsed;
            int rc = pl_reactor_wait(r, ev, 4, timeouts[i]);

            elapsed = pl_clock_now_ns() - t0;
            CHECK_EQ(rc, 0);
            if (elapsed < timeouts[i])
                pltest_fail(__FILE__, __LINE__,
                            "timeout %lld ns returned after %lld ns",
                            (long long)timeouts[i], (long long)elapsed);
        }
    }
    pltest_close(p[0]);
    pltest_close(p[1]);
    pl_reactor_close(r);
}

/* Huge timeouts must not overflow into "poll" or an error. */
void test_reactor_timeout_huge_with_event(void)
{
    pl_reactor_t *r = open_reactor();
    int p[2];

    pltest_pipe(p);
    put_byte(p[1]);
    CHECK_OK(pl_reactor_add(r, p[0], PL_EV_READ, 1));
    CHECK_EQ(wait_fd(r, p[0], INT64_MAX).count, 1);
    CHECK_EQ(wait_fd(r, p[0], INT64_MAX / 2 + 12345).count, 1);
    CHECK_EQ(wait_fd(r, p[0], (int64_t)1 << 40).count, 1);
    CHECK_EQ(wait_fd(r, p[0], -1).count, 1);
    CHECK_EQ(wait_fd(r, p[0], INT64_MIN).count, 1);
    pltest_close(p[0]);
    pltest_close(p[1]);
    pl_reactor_close(r);
}

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
    (void)sig;
    alarms++;
}

/* Periodic SIGALRM through a handler without SA_RESTART: whichever wait
 * is in progress when one lands must return -EINTR.  The timer repeats, so
 * a signal that lands before the wait starts does not make the test hang. */
void test_reactor_eintr(void)
{
    static const int64_t timeouts[] = {-1, LONG_NS * 6, 1500000000LL};
    pl_reactor_t *r = open_reactor();
    struct sigaction sa, old;
    struct itimerval it, off;
    pl_event_t ev[4];
    size_t i;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = 0;                /* no SA_RESTART */
    CHECK_SYS(sigaction(SIGALRM, &sa, &old));
    memset(&off, 0, sizeof(off));
    memset(&it, 0, sizeof(it));
    it.it_value.tv_usec = 20000;
    it.it_interval.tv_usec = 20000;
    for (i = 0; i < sizeof(timeouts) / sizeof(timeouts[0]); i++) {
        int rc;

        alarms = 0;
        CHECK_SYS(setitimer(ITIMER_REAL, &it, NULL));
        rc = pl_reactor_wait(r, ev, 4, timeouts[i]);
        CHECK_SYS(setitimer(ITIMER_REAL, &off, NULL));
        CHECK_EQ(rc, -EINTR);
        CHECK(alarms >= 1);
    }
    CHECK_SYS(sigaction(SIGALRM, &old, NULL));
    pl_reactor_close(r);
}

/* Closing the only descriptor of a registered fd drops the registration
 * in the kernel; remove() then says so, and the number can be reused. */
void test_reactor_fd_closed_while_registered(void)
{
    pl_reactor_t *r = open_reactor();
    int p[2], s[2], num;
    merged_t m;

    pltest_pipe(p);
    /* Opened now so that its numbers differ from the one freed below. */
    pltest_socketpair(s);
    num = p[0];
    put_byte(p[1]);
    CHECK_OK(pl_reactor_add(r, num, PL_EV_READ, 1));
    CHECK_EQ(wait_fd(r, num, LONG_NS).count, 1);
    pltest_close(num);
    CHECK_EQ(wait_fd(r, num, 0).count, 0);
    CHECK_EQ(pl_reactor_remove(r, num), -EBADF);

    /* Reuse the number for something else, never registered. */
    CHECK_SYS(dup2(s[0], num));
    pltest_close(s[0]);
    CHECK_EQ(wait_fd(r, num, 0).count, 0);
    CHECK_EQ(pl_reactor_remove(r, num), -ENOENT);
    put_byte(s[1]);
    CHECK_OK(pl_reactor_add(r, num, PL_EV_READ, 2));
    m = wait_fd(r, num, LONG_NS);
    CHECK_EQ(m.count, 1);
    CHECK_EQ(m.token, 2);
    CHECK_EQ(m.events, PL_EV_READ);
    pltest_close(num);
    pltest_close(s[1]);
    pltest_close(p[1]);
    pl_reactor_close(r);
}

/* The number of a registered fd closed behind the reactor's back and reused
 * by a dup of the same open file: epoll still has the old registration
 * (EEXIST on add), kqueue dropped it.  add() must work either way and the
 * new token must win. */
void test_reactor_fd_reused_by_dup(void)
{
    pl_reactor_t *r = open_reactor();
    int p[2], num, d;
    merged_t m;

    pltest_pipe(p);
    num = p[0];
    CHECK_OK(pl_reactor_add(r, num, PL_EV_READ, 1));
    d = dup(num);
    CHECK_SYS(d);
    pltest_close(num);
    CHECK_SYS(dup2(d, num));
    CHECK_OK(pl_reactor_add(r, num, PL_EV_READ, 2));
    put_byte(p[1]);
    m = wait_fd(r, num, LONG_NS);
    CHECK_EQ(m.count, 1);
    CHECK_EQ(m.token, 2);
    CHECK_EQ(m.events, PL_EV_READ);
    /* modify() on the same situation: ENOENT/EEXIST handled inside. */
    CHECK_OK(pl_reactor_modify(r, num, PL_EV_READ, 3));
    CHECK_EQ(wait_fd(r, num, LONG_NS).token, 3);
    CHECK_OK(pl_reactor_remove(r, num));
    CHECK_EQ(wait_fd(r, num, 0).count, 0);
    pltest_close(num);
    pltest_close(d);
    pltest_close(p[1]);
    pl_reactor_close(r);
}

/* A registration left behind by a close while a dup keeps the file open: no
 * number names that file any more, so it can never be removed.  With
 * PL_EV_EDGE it reports each change of the file at most once (epoll: EPOLLET;
 * kqueue drops it at the close) instead of on every wait for as long as the
 * file stays readable, which would make every wait of the loop return at
 * once.  The ready fd itself is reported once per write too. */
void test_reactor_edge_leftover_is_quiet(void)
{
    pl_reactor_t *r = open_reactor();
    int p[2], num, d;
    merged_t m;

    pltest_pipe(p);
    num = p[0];
    CHECK_OK(pl_reactor_add(r, num, PL_EV_READ | PL_EV_EDGE, 1));
    put_byte(p[1]);
    m = wait_fd(r, num, LONG_NS);
    CHECK_EQ(m.count, 1);
    CHECK_EQ(m.events, PL_EV_READ);     /* EDGE is asked for, never reported */
    CHECK_EQ(m.token, 1);
    d = dup(num);
    CHECK_SYS(d);
    pltest_close(num);
    put_byte(p[1]);
    CHECK(wait_fd(r, num, 0).count <= 1);
    CHECK_EQ(wait_fd(r, num, 0).count, 0);
    CHECK_EQ(wait_fd(r, num, 0).count, 0);
    put_byte(p[1]);
    CHECK(wait_fd(r, num, 0).count <= 1);
    CHECK_EQ(wait_fd(r, num, 0).count, 0);
    pltest_close(d);
    pltest_close(p[1]);
    pl_reactor_close(r);
}

/* fds far above 1024 (FD_SETSIZE) and up to the soft limit: the fd must
 * survive the trip through the 32-bit half of the event data. */
void test_reactor_high_fds(void)
{
    pl_reactor_t *r = open_reactor();
    struct rlimit old, want;
    int targets[8], ntargets = 0, p[2], i, top;
    pl_event_t ev[MAX_EVENTS];
    int n, seen = 0;

    CHECK_SYS(getrlimit(RLIMIT_NOFILE, &old));
    want = old;
    if (old.rlim_max == RLIM_INFINITY || old.rlim_max > 65536)
        want.rlim_cur = 65536;
    else
        want.rlim_cur = old.rlim_max;
    if (want.rlim_cur > old.rlim_cur &&
        setrlimit(RLIMIT_NOFILE, &want) < 0) {
        /* e.g. under valgrind, which keeps the top of the range: keep
         * what we have. */
        want = old;
    }
    CHECK_SYS(getrlimit(RLIMIT_NOFILE, &want));
    top = want.rlim_cur > 65536 ? 65535 : (int)want.rlim_cur - 1;
    if (top < 1100)
        SKIP("RLIMIT_NOFILE too low (%d)", top + 1);
    targets[ntargets++] = 1023;
    targets[ntargets++] = 1024;
    targets[ntargets++] = 1025;
    if (top > 4000)
        targets[ntargets++] = 4000;
    if (top > 4097)
        targets[ntargets++] = 4097;
    targets[ntargets++] = top - 1;
    targets[ntargets++] = top;

    pltest_pipe(p);
    for (i = 0; i < ntargets; i++) {
        CHECK(fcntl(targets[i], F_GETFD) < 0);     /* free before */
        CHECK_SYS(dup2(p[0], targets[i]));
        CHECK_OK(pl_reactor_add(r, targets[i], PL_EV_READ,
                                (uint32_t)targets[i] ^ 0xA5A50000u));
    }
    put_byte(p[1]);
    n = wait_n(r, ev, MAX_EVENTS, LONG_NS);
    CHECK_EQ(n, ntargets);
    for (i = 0; i < n; i++) {
        int j;

        for (j = 0; j < ntargets; j++) {
            if (ev[i].fd != targets[j])
                continue;
            CHECK_EQ(ev[i].token, (uint32_t)targets[j] ^ 0xA5A50000u);
            CHECK_EQ(ev[i].events, PL_EV_READ);
            seen++;
        }
    }
    CHECK_EQ(seen, ntargets);
    for (i = 0; i < ntargets; i++) {
        CHECK_OK(pl_reactor_remove(r, targets[i]));
        pltest_close(targets[i]);
    }
    pltest_close(p[0]);
    pltest_close(p[1]);
    CHECK_SYS(setrlimit(RLIMIT_NOFILE, &old));
    pl_reactor_close(r);
}

/* The writer went away: a reader waiting for READ must wake, with HUP (and
 * epoll reports it even with no data left). */
void test_reactor_hup_pipe_peer_closed(void)
{
    pl_reactor_t *r = open_reactor();
    int p[2];
    merged_t m;

    pltest_pipe(p);
    CHECK_OK(pl_reactor_add(r, p[0], PL_EV_READ, 4));
    CHECK_EQ(wait_fd(r, p[0], 0).count, 0);
    pltest_close(p[1]);
    m = wait_fd(r, p[0], LONG_NS);
    CHECK(m.count >= 1);
    CHECK(m.events & PL_EV_HUP);
    CHECK(!(m.events & PL_EV_WRITE));
    CHECK_EQ(m.token, 4);
    pltest_close(p[0]);
    pl_reactor_close(r);
}

void test_reactor_hup_socket_peer_closed(void)
{
    pl_reactor_t *r = open_reactor();
    int s[2], t[2];
    merged_t m;

    /* Full close: HUP on the reader. */
    pltest_socketpair(s);
    CHECK_OK(pl_reactor_add(r, s[0], PL_EV_READ, 5));
    CHECK_EQ(wait_fd(r, s[0], 0).count, 0);
    pltest_close(s[1]);
    m = wait_fd(r, s[0], LONG_NS);
    CHECK(m.events & PL_EV_HUP);
    CHECK(!(m.events & PL_EV_WRITE));
    CHECK_EQ(m.token, 5);

    /* Half close: EOF is readable, which READ reports. */
    pltest_socketpair(t);
    CHECK_OK(pl_reactor_add(r, t[0], PL_EV_READ, 6));
    CHECK_SYS(shutdown(t[1], SHUT_WR));
    m = wait_fd(r, t[0], LONG_NS);
    CHECK(m.events & PL_EV_READ);

    /* A writer-only registration on a socket whose peer is gone still
     * wakes, with HUP or ERROR, and never with READ (not asked). */
    CHECK_OK(pl_reactor_modify(r, s[0], PL_EV_WRITE, 7));
    m = wait_fd(r, s[0], LONG_NS);
    CHECK(m.count >= 1);
    CHECK(m.events & (PL_EV_HUP | PL_EV_ERROR));
    CHECK(!(m.events & PL_EV_READ));
    pltest_close(s[0]);
    pltest_close(t[0]);
    pltest_close(t[1]);
    pl_reactor_close(r);
}

/* The reader went away under a blocked writer: the writer must wake. */
void test_reactor_write_side_reader_gone(void)
{
    pl_reactor_t *r = open_reactor();
    int p[2];
    merged_t m;

    pltest_pipe(p);
    fill_fd(p[1]);
    CHECK_OK(pl_reactor_add(r, p[1], PL_EV_WRITE, 8));
    CHECK_EQ(wait_fd(r, p[1], 0).count, 0);
    pltest_close(p[0]);
    m = wait_fd(r, p[1], LONG_NS);
    CHECK(m.count >= 1);
    CHECK(m.events & (PL_EV_ERROR | PL_EV_HUP));
    CHECK(!(m.events & PL_EV_READ));
    CHECK_EQ(m.token, 8);
    pltest_close(p[1]);
    pl_reactor_close(r);
}

/* More ready fds than max_events: each wait returns at most max_events,
 * and level-triggered readiness brings the rest in the next waits. */
void test_reactor_max_events_fairness(void)
{
    enum { N = 10 };
    pl_reactor_t *r = open_reactor();
    int p[N][2], seen[N] = {0}, i, round, all = 0;

    for (i = 0; i < N; i++) {
        pltest_pipe(p[i]);
        put_byte(p[i][1]);
        CHECK_OK(pl_reactor_add(r, p[i][0], PL_EV_READ, (uint32_t)i));
    }
    for (round = 0; round < 20 && !all; round++) {
        pl_event_t ev[3];
        int n = wait_n(r, ev, 3, LONG_NS), j;

        CHECK(n >= 1 && n <= 3);
        for (j = 0; j < n; j++) {
            CHECK(ev[j].token < N);
            CHECK_EQ(ev[j].fd, p[ev[j].token][0]);
            seen[ev[j].token] = 1;
        }
        all = 1;
        for (i = 0; i < N; i++)
            all &= seen[i];
    }
    CHECK(all);
    for (i = 0; i < N; i++) {
        pltest_close(p[i][0]);
        pltest_close(p[i][1]);
    }
    pl_reactor_close(r);
}

/* Hundreds of fds, a third of them ready: exactly those are reported,
 * and the kernel event buffer grows to the caller's array. */
void test_reactor_many_fds(void)
{
    enum { N = 400 };
    static int p[N][2];
    static pl_event_t ev[1024];
    pl_reactor_t *r = open_reactor();
    int i, n, expected = 0, seen[N] = {0};

    for (i = 0; i < N; i++) {
        pltest_pipe(p[i]);
        CHECK_OK(pl_reactor_add(r, p[i][0], PL_EV_READ, (uint32_t)i));
        if (i % 3 == 0) {
            put_byte(p[i][1]);
            expected++;
        }
    }
    n = wait_n(r, ev, 1024, LONG_NS);
    CHECK_EQ(n, expected);
    for (i = 0; i < n; i++) {
        CHECK(ev[i].token < N);
        CHECK_EQ(ev[i].token % 3, 0);
        CHECK_EQ(ev[i].fd, p[ev[i].token][0]);
        CHECK_EQ(seen[ev[i].token], 0);
        seen[ev[i].token] = 1;
    }
    for (i = 0; i < N; i++) {
        pltest_close(p[i][0]);
        pltest_close(p[i][1]);
    }
    pl_reactor_close(r);
}
