/* The reactor on Linux: epoll.
 *
 * Why it is shaped this way:
 *
 * - Level-triggered.  The loop reads or writes until EAGAIN only when it
 *   wants to; with level triggering an fd it left readable is simply
 *   reported again next iteration, which is what asyncio's add_reader means.
 *
 * - epoll watches open file *descriptions*, keyed by fd number.  If the
 *   user closes an fd behind our back, the kernel drops the registration
 *   only when the last descriptor of that description is gone.  So:
 *     * remove() may fail with EBADF (the number is closed) or ENOENT (the
 *       number was reused for something we never registered): harmless.
 *     * add() may fail with EEXIST if the number was reused by a dup of a
 *       still-registered description: we MOD instead.
 *     * modify() may fail with ENOENT if the kernel already dropped the fd
 *       (closed and the number reused): we ADD instead.
 *   The loop additionally tags every registration with a 32-bit token (a
 *   generation number) so stale events can be recognised.  A registration
 *   whose fd was closed while a dup or a forked child keeps the file open
 *   can never be removed (its number no longer names that file): level-
 *   triggered and readable, it would end every wait at once.  Interests that
 *   may be left registered past a close (the sock_* operations', see
 *   loop_sock.pxi) are therefore edge-triggered (PL_EV_EDGE, EPOLLET): such a
 *   leftover wakes the loop once per change of its file, and the stale token
 *   has the loop ignore it.
 *
 * - The event's 64-bit user data carries both: token in the high half, fd in
 *   the low half, so no lookup table is needed to route an event.
 *
 * - EPOLLRDHUP is not requested: EPOLLIN already reports a half-closed peer
 *   (read returns 0), and asking for it would make a half-closed socket look
 *   "hung up" and wake its writer, which can still send.
 *
 * - Timeouts.  epoll_wait takes milliseconds; a timer due in 0.4 ms would be
 *   polled with 0 ms and the loop would spin, or with a truncated value and
 *   fire early.  epoll_pwait2 (Linux 5.11) takes a timespec, so the loop can
 *   sleep exactly as long as the nearest timer needs.  Where it is missing
 *   (old kernels and valgrind: ENOSYS; some container seccomp profiles:
 *   EPERM) we remember that once per process and round the timeout *up* to
 *   whole milliseconds instead, so a timer is never seen as due early. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE     /* syscall() */
#endif

#include "reactor.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <sys/epoll.h>
#include <sys/syscall.h>
#include <unistd.h>

/* PL_EPOLL_NO_PWAIT2 forces the millisecond path, so the tests can cover
 * what older kernels get. */
#if defined(PL_EPOLL_NO_PWAIT2)
/* epoll_wait only */
#elif defined(SYS_epoll_pwait2)
#define PL__SYS_EPOLL_PWAIT2 SYS_epoll_pwait2
#elif defined(__NR_epoll_pwait2)
#define PL__SYS_EPOLL_PWAIT2 __NR_epoll_pwait2
#endif

/* The first kernel event buffer; it grows to the caller's max_events. */
#define PL__EPOLL_INITIAL_EVENTS 64

struct pl_reactor_s {
    int epfd;
    int cap;                    /* entries in kevents */
    struct epoll_event *kevents;
};

#ifdef PL__SYS_EPOLL_PWAIT2
/* Whether the kernel has epoll_pwait2: a property of the process, probed by
 * the first positive-timeout wait of any reactor.  Loops in several threads
 * may race on it; relaxed atomics suffice because every thread that probes
 * reaches the same answer. */
enum { PWAIT2_UNKNOWN = 0, PWAIT2_YES, PWAIT2_NO };
static _Atomic int pwait2_state = PWAIT2_UNKNOWN;
#endif

/* epoll_pwait2 takes the kernel's 64-bit timespec, which differs from the
 * libc struct timespec on 32-bit targets with a 32-bit time_t. */
struct pl__kernel_timespec {
    int64_t tv_sec;
    long long tv_nsec;
};

static uint32_t to_epoll(uint32_t events)
{
    uint32_t e = 0;

    if (events & PL_EV_READ)
        e |= EPOLLIN;
    if (events & PL_EV_WRITE)
        e |= EPOLLOUT;
    if (events & PL_EV_EDGE)
        e |= EPOLLET;
    return e;
}

static uint32_t from_epoll(uint32_t e)
{
    uint32_t events = 0;

    if (e & EPOLLIN)
        events |= PL_EV_READ;
    if (e & EPOLLOUT)
        events |= PL_EV_WRITE;
    if (e & EPOLLERR)
        events |= PL_EV_ERROR;
    if (e & (EPOLLHUP | EPOLLRDHUP))
        events |= PL_EV_HUP;
    return events;
}

int pl_reactor_open(pl_reactor_t **out)
{
    pl_reactor_t *r;

    assert(out != NULL);
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    r->kevents = malloc(PL__EPOLL_INITIAL_EVENTS * sizeof(struct epoll_event));
    if (r->kevents == NULL) {
        free(r);
        return -ENOMEM;
    }
    r->cap = PL__EPOLL_INITIAL_EVENTS;
    r->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (r->epfd < 0) {
        int err = errno;
        free(r->kevents);
        free(r);
        return -err;
    }
    *out = r;
    return 0;
}

void pl_reactor_close(pl_reactor_t *r)
{
    if (r == NULL)
        return;
    close(r->epfd);
    free(r->kevents);
    free(r);
}

int pl_reactor_fd(const pl_reactor_t *r)
{
    assert(r != NULL);
    return r->epfd;
}

static int ctl(pl_reactor_t *r, int op, int fd, uint32_t events,
               uint32_t token)
{
    struct epoll_event ev;

    ev.events = to_epoll(events);
    ev.data.u64 = ((uint64_t)token << 32) | (uint32_t)fd;
    if (epoll_ctl(r->epfd, op, fd, &ev) < 0)
        return -errno;
    return 0;
}

int pl_reactor_add(pl_reactor_t *r, int fd, uint32_t events, uint32_t token)
{
    int rc;

    assert(r != NULL);
    assert(fd >= 0);
    assert((events & (PL_EV_READ | PL_EV_WRITE)) != 0);
    assert((events & ~(PL_EV_READ | PL_EV_WRITE | PL_EV_EDGE)) == 0);
    rc = ctl(r, EPOLL_CTL_ADD, fd, events, token);
    if (rc == -EEXIST)
        rc = ctl(r, EPOLL_CTL_MOD, fd, events, token);
    return rc;
}

int pl_reactor_modify(pl_reactor_t *r, int fd, uint32_t events,
                      uint32_t token)
{
    int rc;

    assert(r != NULL);
    assert(fd >= 0);
    assert((events & (PL_EV_READ | PL_EV_WRITE)) != 0);
    assert((events & ~(PL_EV_READ | PL_EV_WRITE | PL_EV_EDGE)) == 0);
    rc = ctl(r, EPOLL_CTL_MOD, fd, events, token);
    if (rc == -ENOENT)
        rc = ctl(r, EPOLL_CTL_ADD, fd, events, token);
    return rc;
}

int pl_reactor_remove(pl_reactor_t *r, int fd)
{
    /* Linux < 2.6.9 wanted a non-NULL event even for DEL. */
    struct epoll_event ev = {0};

    assert(r != NULL);
    assert(fd >= 0);
    if (epoll_ctl(r->epfd, EPOLL_CTL_DEL, fd, &ev) < 0)
        return -errno;
    return 0;
}

/* Make room for max_events kernel events.  If memory is short, keep the
 * buffer we have: level triggering reports the rest next time. */
static int reserve(pl_reactor_t *r, int max_events)
{
    struct epoll_event *kevents;

    if (max_events <= r->cap)
        return max_events;
    kevents = realloc(r->kevents, (size_t)max_events * sizeof(*kevents));
    if (kevents == NULL)
        return r->cap;
    r->kevents = kevents;
    r->cap = max_events;
    return max_events;
}

static int wait_ms(pl_reactor_t *r, int n, int64_t timeout_ns)
{
    int ms;

    if (timeout_ns < 0) {
        ms = -1;
    } else if (timeout_ns > (int64_t)INT_MAX * 1000000) {
        ms = INT_MAX;   /* ~24 days; the loop recomputes and waits again */
    } else {
        /* Round up: a wait that ends early would make a timer fire early. */
        ms = (int)((timeout_ns + 999999) / 1000000);
    }
    return epoll_wait(r->epfd, r->kevents, n, ms);
}

static int wait_kernel(pl_reactor_t *r, int n, int64_t timeout_ns)
{
#ifdef PL__SYS_EPOLL_PWAIT2
    int state = atomic_load_explicit(&pwait2_state, memory_order_relaxed);

    if (timeout_ns > 0 && state != PWAIT2_NO) {
        struct pl__kernel_timespec ts;
        long rc;

        ts.tv_sec = timeout_ns / 1000000000;
        ts.tv_nsec = timeout_ns % 1000000000;
        /* No signal mask: the size argument is then ignored; pass the
         * kernel's sigset size (8) anyway, as libc does. */
        rc = syscall(PL__SYS_EPOLL_PWAIT2, r->epfd, r->kevents, n, &ts,
                     (void *)0, (size_t)8);
        if (rc >= 0 || (errno != ENOSYS && errno != EPERM)) {
            if (state == PWAIT2_UNKNOWN)
                atomic_store_explicit(&pwait2_state, PWAIT2_YES,
                                      memory_order_relaxed);
            return (int)rc;
        }
        if (state == PWAIT2_YES)
            return (int)rc;     /* worked before: a real EPERM, report it */
        atomic_store_explicit(&pwait2_state, PWAIT2_NO, memory_order_relaxed);
    }
#endif
    return wait_ms(r, n, timeout_ns);
}

int pl_reactor_wait(pl_reactor_t *r, pl_event_t *out, int max_events,
                    int64_t timeout_ns)
{
    int n, i;

    assert(r != NULL);
    assert(out != NULL);
    assert(max_events > 0);
    n = reserve(r, max_events);
    n = wait_kernel(r, n, timeout_ns);
    if (n < 0)
        return -errno;
    for (i = 0; i < n; i++) {
        uint64_t data = r->kevents[i].data.u64;

        out[i].fd = (int)(uint32_t)data;
        out[i].token = (uint32_t)(data >> 32);
        out[i].events = from_epoll(r->kevents[i].events);
    }
    return n;
}
