/* The reactor on the BSDs and macOS: kqueue.
 *
 * Why it is shaped this way:
 *
 * - kqueue has one filter per direction (EVFILT_READ, EVFILT_WRITE) instead
 *   of a bit mask, so "watch fd for READ|WRITE" is two registrations, and a
 *   fd that is both readable and writable comes back as two events.  The
 *   header lets us report them separately.
 *
 * - We keep no per-fd state.  modify() therefore cannot know which filters
 *   are registered now: it adds the wanted ones and deletes the others,
 *   ignoring ENOENT for a filter that was not there.  remove() deletes both
 *   and reports ENOENT only if neither existed.
 *
 * - Closing an fd drops its knotes in the kernel (unlike epoll, which keys on
 *   the open file description), so a reused fd number starts clean; add()
 *   still works if it did not (EV_ADD on an existing knote just updates it).
 *
 * - Changes are submitted with EV_RECEIPT where the kernel has it, so each
 *   change reports its own error and no pending event is consumed by the
 *   kevent() call that applies them.  Without EV_RECEIPT each change is a
 *   separate call with no event list.
 *
 * - The token rides in udata.  EV_EOF maps to PL_EV_HUP (with a non-zero
 *   fflags it carries the socket error, mapped to PL_EV_ERROR): on the read
 *   filter the peer closed, on the write filter the reader is gone.  Both
 *   wake reader and writer, as the header says.
 *
 * - kevent's timeout is a timespec: nanoseconds, no rounding needed. */
#include "reactor.h"

#include <sys/types.h>
#include <sys/event.h>
#include <sys/time.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

/* NetBSD before 10 declares udata as intptr_t, everyone else as void *. */
#if defined(__NetBSD__)
#define PL__UDATA(token) ((intptr_t)(uintptr_t)(token))
#else
#define PL__UDATA(token) ((void *)(uintptr_t)(token))
#endif

/* Longer waits are cut to this (about 24 days, what epoll_wait's int of
 * milliseconds allows): a 32-bit time_t could not hold the full range, some
 * kernels reject huge timeouts with EINVAL, and the loop recomputes its
 * timeout and waits again anyway. */
#define PL__KQUEUE_MAX_TIMEOUT_NS ((int64_t)2147483647 * 1000000)

/* The first kernel event buffer; it grows to the caller's max_events. */
#define PL__KQUEUE_INITIAL_EVENTS 64

struct pl_reactor_s {
    int kq;
    int cap;                    /* entries in kevents */
    struct kevent *kevents;
};

int pl_reactor_open(pl_reactor_t **out)
{
    pl_reactor_t *r;
    int err;

    assert(out != NULL);
    r = calloc(1, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    r->kevents = malloc(PL__KQUEUE_INITIAL_EVENTS * sizeof(struct kevent));
    if (r->kevents == NULL) {
        free(r);
        return -ENOMEM;
    }
    r->cap = PL__KQUEUE_INITIAL_EVENTS;
#if defined(__NetBSD__)
    r->kq = kqueue1(O_CLOEXEC);
#elif defined(KQUEUE_CLOEXEC)           /* FreeBSD 14 */
    r->kq = kqueuex(KQUEUE_CLOEXEC);
#else
    /* A child never inherits a kqueue through fork, but exec without fork
     * would keep it open: set close-on-exec by hand. */
    r->kq = kqueue();
    if (r->kq >= 0 && fcntl(r->kq, F_SETFD, FD_CLOEXEC) < 0) {
        err = errno;
        close(r->kq);
        errno = err;
        r->kq = -1;
    }
#endif
    if (r->kq < 0) {
        err = errno;
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
    close(r->kq);
    free(r->kevents);
    free(r);
}

int pl_reactor_fd(const pl_reactor_t *r)
{
    assert(r != NULL);
    return r->kq;
}

/* Apply n changes; errs[i] receives 0 or the positive errno of change i.
 * Returns 0, or a negative errno if the call itself failed. */
static int apply(pl_reactor_t *r, struct kevent *changes, int n, int *errs)
{
    int i;

#ifdef EV_RECEIPT
    struct kevent results[2];
    int got;

    assert(n <= 2);
    for (i = 0; i < n; i++)
        changes[i].flags |= EV_RECEIPT;
    do
        got = kevent(r->kq, changes, n, results, n, NULL);
    while (got < 0 && errno == EINTR);
    if (got < 0)
        return -errno;
    for (i = 0; i < n; i++)
        errs[i] = 0;
    /* With EV_RECEIPT every change comes back flagged EV_ERROR, with data
     * 0 on success; match them by filter, the order is not promised. */
    for (i = 0; i < got; i++) {
        int j;

        if (!(results[i].flags & EV_ERROR))
            continue;
        for (j = 0; j < n; j++)
            if (changes[j].filter == results[i].filter)
                errs[j] = (int)results[i].data;
    }
#else
    for (i = 0; i < n; i++) {
        int rc;

        do
            rc = kevent(r->kq, &changes[i], 1, NULL, 0, NULL);
        while (rc < 0 && errno == EINTR);
        errs[i] = rc < 0 ? errno : 0;
    }
#endif
    return 0;
}

/* Register the wanted filters and, if drop_others, delete the unwanted. */
static int set_interest(pl_reactor_t *r, int fd, uint32_t events,
                        uint32_t token, int drop_others)
{
    struct kevent changes[2];
    int errs[2];
    int n = 0, i, rc;

    if (events & PL_EV_READ)
        EV_SET(&changes[n++], fd, EVFILT_READ, EV_ADD, 0, 0, PL__UDATA(token));
    else if (drop_others)
        EV_SET(&changes[n++], fd, EVFILT_READ, EV_DELETE, 0, 0, PL__UDATA(0));
    if (events & PL_EV_WRITE)
        EV_SET(&changes[n++], fd, EVFILT_WRITE, EV_ADD, 0, 0,
               PL__UDATA(token));
    else if (drop_others)
        EV_SET(&changes[n++], fd, EVFILT_WRITE, EV_DELETE, 0, 0,
               PL__UDATA(0));

    rc = apply(r, changes, n, errs);
    if (rc < 0)
        return rc;
    for (i = 0; i < n; i++) {
        /* Deleting a filter that was not registered is what we wanted. */
        if (errs[i] == ENOENT && (changes[i].flags & EV_DELETE))
            continue;
        if (errs[i] != 0)
            return -errs[i];
    }
    return 0;
}

int pl_reactor_add(pl_reactor_t *r, int fd, uint32_t events, uint32_t token)
{
    assert(r != NULL);
    assert(fd >= 0);
    assert((events & (PL_EV_READ | PL_EV_WRITE)) != 0);
    assert((events & ~(PL_EV_READ | PL_EV_WRITE | PL_EV_EDGE)) == 0);
    /* Drop the other filter too: if the number was reused while a knote
     * survived, the new interest set must be exactly what was asked. */
    return set_interest(r, fd, events, token, 1);
}

int pl_reactor_modify(pl_reactor_t *r, int fd, uint32_t events,
                      uint32_t token)
{
    assert(r != NULL);
    assert(fd >= 0);
    assert((events & (PL_EV_READ | PL_EV_WRITE)) != 0);
    assert((events & ~(PL_EV_READ | PL_EV_WRITE | PL_EV_EDGE)) == 0);
    return set_interest(r, fd, events, token, 1);
}

int pl_reactor_remove(pl_reactor_t *r, int fd)
{
    struct kevent changes[2];
    int errs[2];
    int rc;

    assert(r != NULL);
    assert(fd >= 0);
    EV_SET(&changes[0], fd, EVFILT_READ, EV_DELETE, 0, 0, PL__UDATA(0));
    EV_SET(&changes[1], fd, EVFILT_WRITE, EV_DELETE, 0, 0, PL__UDATA(0));
    rc = apply(r, changes, 2, errs);
    if (rc < 0)
        return rc;
    if (errs[0] == 0 || errs[1] == 0)
        return 0;               /* at least one filter was registered */
    /* Neither was: EBADF (closed) wins over ENOENT (never registered). */
    if (errs[0] == EBADF || errs[1] == EBADF)
        return -EBADF;
    if (errs[0] == ENOENT && errs[1] == ENOENT)
        return -ENOENT;
    return -(errs[0] != ENOENT ? errs[0] : errs[1]);
}

/* Make room for max_events kernel events.  If memory is short, keep the
 * buffer we have: level triggering reports the rest next time. */
static int reserve(pl_reactor_t *r, int max_events)
{
    struct kevent *kevents;

    if (max_events <= r->cap)
        return max_events;
    kevents = realloc(r->kevents, (size_t)max_events * sizeof(*kevents));
    if (kevents == NULL)
        return r->cap;
    r->kevents = kevents;
    r->cap = max_events;
    return max_events;
}

static uint32_t from_kevent(const struct kevent *kev)
{
    uint32_t events = 0;

    if (kev->flags & EV_ERROR)
        return PL_EV_ERROR;
    if (kev->filter == EVFILT_READ)
        events |= PL_EV_READ;
    else if (kev->filter == EVFILT_WRITE)
        events |= PL_EV_WRITE;
    if (kev->flags & EV_EOF) {
        events |= PL_EV_HUP;
        if (kev->fflags != 0)
            events |= PL_EV_ERROR;      /* fflags holds the socket error */
    }
    return events;
}

int pl_reactor_wait(pl_reactor_t *r, pl_event_t *out, int max_events,
                    int64_t timeout_ns)
{
    struct timespec ts, *tsp = NULL;
    int n, i;

    assert(r != NULL);
    assert(out != NULL);
    assert(max_events > 0);
    if (timeout_ns > PL__KQUEUE_MAX_TIMEOUT_NS)
        timeout_ns = PL__KQUEUE_MAX_TIMEOUT_NS;
    if (timeout_ns >= 0) {
        ts.tv_sec = (time_t)(timeout_ns / 1000000000);
        ts.tv_nsec = (long)(timeout_ns % 1000000000);
        tsp = &ts;
    }
    n = reserve(r, max_events);
    n = kevent(r->kq, NULL, 0, r->kevents, n, tsp);
    if (n < 0)
        return -errno;
    for (i = 0; i < n; i++) {
        out[i].fd = (int)r->kevents[i].ident;
        out[i].token = (uint32_t)(uintptr_t)r->kevents[i].udata;
        out[i].events = from_kevent(&r->kevents[i]);
    }
    return n;
}
