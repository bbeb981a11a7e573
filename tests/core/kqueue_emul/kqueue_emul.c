/* A small kqueue emulation over epoll, for testing reactor_kqueue.c on
 * Linux.  Test code only: it models what the reactor relies on, as the BSD
 * man pages describe it, and nothing more.
 *
 *  - EVFILT_READ / EVFILT_WRITE knotes per fd, each with its own udata;
 *    EV_ADD creates or updates one, EV_DELETE drops one (ENOENT if absent,
 *    EBADF if the fd is not open).
 *  - Closing an fd drops its knotes.  epoll cannot tell us about a close, so
 *    each knote remembers the file's (st_dev, st_ino) and is forgotten when
 *    the fd no longer names that file.
 *  - Level-triggered events; the read filter reports EV_EOF when the peer
 *    hung up (epoll's RDHUP/HUP/ERR), the write filter when the reader is
 *    gone (HUP/ERR).
 *  - Errors in the changelist go to the eventlist as EV_ERROR entries when
 *    there is room (always with EV_RECEIPT), and then kevent() returns at
 *    once without collecting events; otherwise kevent() fails with errno.
 *  - The timeout is rounded up to milliseconds, so waits never end early. */
#include "sys/event.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <unistd.h>

enum { RD = 1, WR = 2 };

typedef struct knotes_s {
    unsigned mask;          /* RD | WR registered */
    void *udata[3];         /* indexed by RD, WR */
    dev_t dev;
    ino_t ino;
} knotes_t;

typedef struct kq_s {
    int live;
    size_t nfds;
    knotes_t *fds;          /* indexed by fd */
} kq_t;

static kq_t *kqs;           /* indexed by the kqueue's (epoll) fd */
static size_t nkqs;

__attribute__((destructor)) static void free_all(void)
{
    size_t i;

    for (i = 0; i < nkqs; i++)
        free(kqs[i].fds);
    free(kqs);
    kqs = NULL;
    nkqs = 0;
}

int kqueue(void)
{
    /* No EPOLL_CLOEXEC: a real kqueue() is not close-on-exec either, and
     * the reactor must set it. */
    int fd = epoll_create1(0);

    if (fd < 0)
        return -1;
    if ((size_t)fd >= nkqs) {
        size_t n = (size_t)fd + 1;
        kq_t *p = realloc(kqs, n * sizeof(*p));

        if (p == NULL) {
            close(fd);
            errno = ENOMEM;
            return -1;
        }
        memset(p + nkqs, 0, (n - nkqs) * sizeof(*p));
        kqs = p;
        nkqs = n;
    }
    /* The number may be a closed kqueue's: start clean. */
    free(kqs[fd].fds);
    memset(&kqs[fd], 0, sizeof(kqs[fd]));
    kqs[fd].live = 1;
    return fd;
}

static kq_t *find_kq(int kq)
{
    if (kq < 0 || (size_t)kq >= nkqs || !kqs[kq].live)
        return NULL;
    return &kqs[kq];
}

/* The knotes of fd, or NULL; forgets them if fd no longer names the file
 * they were made for (it was closed, maybe reused). */
static knotes_t *lookup(kq_t *q, int fd)
{
    knotes_t *k;
    struct stat st;

    if (fd < 0 || (size_t)fd >= q->nfds)
        return NULL;
    k = &q->fds[fd];
    if (k->mask == 0)
        return NULL;
    if (fstat(fd, &st) < 0 || st.st_dev != k->dev || st.st_ino != k->ino) {
        k->mask = 0;
        return NULL;
    }
    return k;
}

static knotes_t *slot(kq_t *q, int fd)
{
    if ((size_t)fd >= q->nfds) {
        size_t n = (size_t)fd + 1 > q->nfds * 2 ? (size_t)fd + 1 : q->nfds * 2;
        knotes_t *p = realloc(q->fds, n * sizeof(*p));

        if (p == NULL)
            return NULL;
        memset(p + q->nfds, 0, (n - q->nfds) * sizeof(*p));
        q->fds = p;
        q->nfds = n;
    }
    return &q->fds[fd];
}

static uint32_t epoll_mask(unsigned mask)
{
    uint32_t e = 0;

    if (mask & RD)
        e |= EPOLLIN | EPOLLRDHUP;
    if (mask & WR)
        e |= EPOLLOUT;
    return e;
}

/* Make epoll's interest for fd match mask.  Positive errno or 0. */
static int sync_epoll(int epfd, int fd, unsigned old_mask, unsigned mask)
{
    struct epoll_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.events = epoll_mask(mask);
    ev.data.fd = fd;
    if (mask == 0) {
        if (epoll_ctl(epfd, EPOLL_CTL_DEL, fd, &ev) < 0 && errno != ENOENT)
            return errno;
        return 0;
    }
    if (epoll_ctl(epfd, old_mask ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) == 0)
        return 0;
    /* Our bookkeeping and the kernel's disagree after a close: retry the
     * other way round. */
    if (errno == ENOENT || errno == EEXIST) {
        int op = errno == ENOENT ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;

        if (epoll_ctl(epfd, op, fd, &ev) == 0)
            return 0;
    }
    return errno;
}

/* Apply one change.  Positive errno or 0. */
static int change(int kq, kq_t *q, const struct kevent *c)
{
    int fd = (int)c->ident;
    unsigned bit;
    knotes_t *k;
    struct stat st;
    int err;

    if (c->filter == EVFILT_READ)
        bit = RD;
    else if (c->filter == EVFILT_WRITE)
        bit = WR;
    else
        return EINVAL;
    if (fstat(fd, &st) < 0)
        return EBADF;
    k = lookup(q, fd);
    if (c->flags & EV_DELETE) {
        unsigned old;

        if (k == NULL || !(k->mask & bit))
            return ENOENT;
        old = k->mask;
        err = sync_epoll(kq, fd, old, old & ~bit);
        if (err)
            return err;
        k->mask &= ~bit;
        return 0;
    }
    if (c->flags & EV_ADD) {
        unsigned old = k ? k->mask : 0;

        k = slot(q, fd);
        if (k == NULL)
            return ENOMEM;
        err = sync_epoll(kq, fd, old, old | bit);
        if (err)
            return err;
        k->mask = old | bit;
        k->udata[bit] = c->udata;
        k->dev = st.st_dev;
        k->ino = st.st_ino;
        return 0;
    }
    return EINVAL;
}

static int64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int kevent(int kq, const struct kevent *changelist, int nchanges,
           struct kevent *eventlist, int nevents,
           const struct timespec *timeout)
{
    kq_t *q = find_kq(kq);
    struct epoll_event evs[256];
    int i, nout = 0, nerrors = 0;
    int64_t ms = -1, deadline = 0;

    if (q == NULL) {
        errno = EBADF;
        return -1;
    }
    for (i = 0; i < nchanges; i++) {
        int err = change(kq, q, &changelist[i]);
        int receipt = 0;

#ifdef EV_RECEIPT
        receipt = (changelist[i].flags & EV_RECEIPT) != 0;
#endif
        if (err == 0 && !receipt)
            continue;
        if (nout < nevents) {
            eventlist[nout] = changelist[i];
            eventlist[nout].flags = EV_ERROR;
            eventlist[nout].data = err;
            nout++;
            nerrors++;
        } else if (err) {
            errno = err;
            return -1;
        }
    }
    if (nerrors > 0 || nevents == 0)
        return nout;

    if (timeout != NULL) {
        /* Round up: never wake before the caller's deadline. */
        ms = (int64_t)timeout->tv_sec * 1000 +
             (timeout->tv_nsec + 999999) / 1000000;
        deadline = now_ms() + ms;
    }
    for (;;) {
        int n, max = nevents < 256 ? nevents : 256, wait_ms;

        if (ms > 0x7fffffff)
            wait_ms = 0x7fffffff;
        else
            wait_ms = (int)ms;
        n = epoll_wait(kq, evs, max, wait_ms);
        if (n < 0)
            return -1;
        for (i = 0; i < n && nout < nevents; i++) {
            int fd = evs[i].data.fd;
            uint32_t e = evs[i].events;
            knotes_t *k = lookup(q, fd);

            if (k == NULL)
                continue;       /* a stale epoll entry of a closed fd */
            if ((k->mask & RD) &&
                (e & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
                struct kevent *o = &eventlist[nout++];

                EV_SET(o, (uintptr_t)fd, EVFILT_READ, 0, 0, 0, k->udata[RD]);
                if (e & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                    o->flags |= EV_EOF;
            }
            /* With no room for the write side, it comes back next time. */
            if ((k->mask & WR) && nout < nevents &&
                (e & (EPOLLOUT | EPOLLHUP | EPOLLERR))) {
                struct kevent *o = &eventlist[nout++];

                EV_SET(o, (uintptr_t)fd, EVFILT_WRITE, 0, 0, 0, k->udata[WR]);
                if (e & (EPOLLHUP | EPOLLERR))
                    o->flags |= EV_EOF;
            }
        }
        if (nout > 0 || n == 0 || ms == 0)
            return nout;
        /* Only stale entries woke us: wait out the rest of the timeout. */
        if (ms > 0) {
            ms = deadline - now_ms();
            if (ms <= 0)
                return 0;
        }
    }
}
