/* Wakeup: from another thread, from a signal handler, many then one drain. */
#include "pltest.h"
#include "reactor.h"
#include "wakeup.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LONG_NS (10LL * 1000000000LL)

static void open_both(pl_reactor_t **r, pl_wakeup_t *w)
{
    CHECK_OK(pl_reactor_open(r));
    CHECK_OK(pl_wakeup_open(w));
    CHECK_OK(pl_reactor_add(*r, w->read_fd, PL_EV_READ, 0xEEEEu));
}

static void close_both(pl_reactor_t *r, pl_wakeup_t *w)
{
    pl_reactor_close(r);
    pl_wakeup_close(w);
}

/* How many events the wakeup fd produced in one wait. */
static int woken(pl_reactor_t *r, const pl_wakeup_t *w, int64_t timeout)
{
    pl_event_t ev[8];
    int n, i, hits = 0;

    n = pl_reactor_wait(r, ev, 8, timeout);
    CHECK_OK(n);
    for (i = 0; i < n; i++) {
        CHECK_EQ(ev[i].fd, w->read_fd);
        CHECK_EQ(ev[i].token, 0xEEEEu);
        CHECK(ev[i].events & PL_EV_READ);
        hits++;
    }
    return hits;
}

void test_wakeup_open_flags(void)
{
    pl_wakeup_t w;
    int fds[2], i;

    CHECK_OK(pl_wakeup_open(&w));
    fds[0] = w.read_fd;
    fds[1] = w.write_fd;
    for (i = 0; i < 2; i++) {
        CHECK(fds[i] >= 0);
        CHECK(fcntl(fds[i], F_GETFD) & FD_CLOEXEC);
        CHECK(fcntl(fds[i], F_GETFL) & O_NONBLOCK);
    }
#if defined(__linux__) && !defined(PL_WAKEUP_FORCE_PIPE)
    CHECK_EQ(w.read_fd, w.write_fd);        /* one eventfd */
#else
    CHECK(w.read_fd != w.write_fd);         /* a pipe */
#endif
    pl_wakeup_close(&w);
    CHECK_EQ(w.read_fd, -1);
    CHECK_EQ(w.write_fd, -1);
    CHECK(fcntl(fds[0], F_GETFD) < 0 && errno == EBADF);
    CHECK(fcntl(fds[1], F_GETFD) < 0 && errno == EBADF);
}

void test_wakeup_signal_wakes_reactor(void)
{
    pl_reactor_t *r;
    pl_wakeup_t w;

    open_both(&r, &w);
    CHECK_EQ(woken(r, &w, 0), 0);
    CHECK_OK(pl_wakeup_signal(&w));
    CHECK_EQ(woken(r, &w, LONG_NS), 1);
    /* Level-triggered: still pending until drained. */
    CHECK_EQ(woken(r, &w, 0), 1);
    CHECK_OK(pl_wakeup_drain(&w));
    CHECK_EQ(woken(r, &w, 0), 0);
    /* And again. */
    CHECK_OK(pl_wakeup_signal(&w));
    CHECK_EQ(woken(r, &w, LONG_NS), 1);
    CHECK_OK(pl_wakeup_drain(&w));
    CHECK_EQ(woken(r, &w, 0), 0);
    close_both(r, &w);
}

void test_wakeup_drain_empty(void)
{
    pl_wakeup_t w;

    CHECK_OK(pl_wakeup_open(&w));
    CHECK_OK(pl_wakeup_drain(&w));
    CHECK_OK(pl_wakeup_drain(&w));
    pl_wakeup_close(&w);
}

/* More signals than a pipe can hold: the overflow is still success, and one
 * drain consumes them all. */
void test_wakeup_many_signals_one_drain(void)
{
    pl_reactor_t *r;
    pl_wakeup_t w;
    int i;

    open_both(&r, &w);
    for (i = 0; i < 200000; i++)
        CHECK_OK(pl_wakeup_signal(&w));
    CHECK_EQ(woken(r, &w, LONG_NS), 1);
    CHECK_OK(pl_wakeup_drain(&w));
    CHECK_EQ(woken(r, &w, 0), 0);
    close_both(r, &w);
}

static void *signal_later(void *arg)
{
    struct timespec ts = {0, 30 * 1000000};

    /* Give the main thread time to block (not required for correctness:
     * an earlier signal just makes the wait return at once). */
    nanosleep(&ts, NULL);
    return (void *)(intptr_t)pl_wakeup_signal(arg);
}

void test_wakeup_from_thread(void)
{
    pl_reactor_t *r;
    pl_wakeup_t w;
    int round;

    open_both(&r, &w);
    for (round = 0; round < 5; round++) {
        pthread_t th;
        void *rc;
        int hits;

        CHECK_EQ(pthread_create(&th, NULL, signal_later, &w), 0);
        /* Blocks with no timeout: only the other thread can end it. */
        hits = woken(r, &w, -1);
        CHECK_EQ(pthread_join(th, &rc), 0);
        CHECK_EQ((intptr_t)rc, 0);
        CHECK_EQ(hits, 1);
        CHECK_OK(pl_wakeup_drain(&w));
        CHECK_EQ(woken(r, &w, 0), 0);
    }
    close_both(r, &w);
}

static pl_wakeup_t *handler_wakeup;
static volatile sig_atomic_t handler_calls, handler_errno_ok = 1,
                             handler_rc_ok = 1;

static void on_alarm_wake(int sig)
{
    int rc;

    (void)sig;
    errno = EDOM;   /* whatever the interrupted code had must survive */
    rc = pl_wakeup_signal(handler_wakeup);
    if (errno != EDOM)
        handler_errno_ok = 0;
    if (rc != 0)
        handler_rc_ok = 0;
    handler_calls++;
}

/* A signal handler wakes the loop: the wait ends with -EINTR or with the
 * wakeup event, and in either case the wakeup is readable afterwards. */
void test_wakeup_from_signal_handler(void)
{
    pl_reactor_t *r;
    pl_wakeup_t w;
    struct sigaction sa, old;
    struct itimerval it, off;
    int rc, hits = 0, tries;
    pl_event_t ev[8];

    open_both(&r, &w);
    handler_wakeup = &w;
    handler_calls = 0;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_alarm_wake;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;   /* epoll/kevent are never restarted anyway */
    CHECK_SYS(sigaction(SIGALRM, &sa, &old));
    memset(&it, 0, sizeof(it));
    memset(&off, 0, sizeof(off));
    it.it_value.tv_usec = 10000;
    CHECK_SYS(setitimer(ITIMER_REAL, &it, NULL));
    for (tries = 0; tries < 3 && hits == 0; tries++) {
        rc = pl_reactor_wait(r, ev, 8, -1);
        CHECK(rc == -EINTR || rc == 1);
        if (rc == 1)
            hits = 1;
        else
            hits = woken(r, &w, 0);
    }
    CHECK_SYS(setitimer(ITIMER_REAL, &off, NULL));
    CHECK_SYS(sigaction(SIGALRM, &old, NULL));
    CHECK_EQ(hits, 1);
    CHECK_EQ(handler_calls, 1);
    CHECK(handler_errno_ok);
    CHECK(handler_rc_ok);
    CHECK_OK(pl_wakeup_drain(&w));
    CHECK_EQ(woken(r, &w, 0), 0);
    close_both(r, &w);
}

void test_wakeup_preserves_errno(void)
{
    pl_wakeup_t w, bad;

    CHECK_OK(pl_wakeup_open(&w));
    errno = ERANGE;
    CHECK_OK(pl_wakeup_signal(&w));
    CHECK_EQ(errno, ERANGE);
    errno = EILSEQ;
    CHECK_OK(pl_wakeup_drain(&w));
    /* drain may leave errno changed (it is not for signal handlers); only
     * signal promises to keep it. */
    pl_wakeup_close(&w);

    /* A failing signal reports the error and still keeps errno. */
    bad.read_fd = bad.write_fd = 1 << 20;
    errno = ERANGE;
    CHECK_EQ(pl_wakeup_signal(&bad), -EBADF);
    CHECK_EQ(errno, ERANGE);
}

void test_wakeup_close_twice(void)
{
    pl_wakeup_t w;
    int probe;

    CHECK_OK(pl_wakeup_open(&w));
    pl_wakeup_close(&w);
    /* Something else now gets the number; a second close must not hit it. */
    probe = dup(0);
    CHECK_SYS(probe);
    pl_wakeup_close(&w);
    CHECK(fcntl(probe, F_GETFD) >= 0);
    pltest_close(probe);
}
