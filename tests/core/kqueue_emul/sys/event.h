/* A stand-in for <sys/event.h> so that csrc/reactor_kqueue.c can be built
 * and tested on Linux, where Debian no longer ships libkqueue.
 *
 * The declarations follow FreeBSD's (the struct layout is simplified: no
 * ext[] array); kqueue_emul.c implements the subset the reactor uses on top
 * of epoll.  Defining PLTEST_KQ_NO_RECEIPT hides EV_RECEIPT so the
 * one-change-per-call path of the backend is exercised too. */
#ifndef PLTEST_SYS_EVENT_H
#define PLTEST_SYS_EVENT_H

#include <stdint.h>
#include <time.h>

#define EVFILT_READ  (-1)
#define EVFILT_WRITE (-2)

#define EV_ADD     0x0001
#define EV_DELETE  0x0002
#define EV_ENABLE  0x0004
#define EV_DISABLE 0x0008
#define EV_ONESHOT 0x0010
#define EV_CLEAR   0x0020
#ifndef PLTEST_KQ_NO_RECEIPT
#define EV_RECEIPT 0x0040
#endif
#define EV_ERROR   0x4000
#define EV_EOF     0x8000

struct kevent {
    uintptr_t ident;
    short filter;
    unsigned short flags;
    unsigned int fflags;
    int64_t data;
    void *udata;
};

#define EV_SET(kevp, a, b, c, d, e, f)                                      \
    do {                                                                    \
        struct kevent *kevp_ = (kevp);                                      \
        kevp_->ident = (a);                                                 \
        kevp_->filter = (b);                                                \
        kevp_->flags = (c);                                                 \
        kevp_->fflags = (d);                                                \
        kevp_->data = (e);                                                  \
        kevp_->udata = (f);                                                 \
    } while (0)

int kqueue(void);
int kevent(int kq, const struct kevent *changelist, int nchanges,
           struct kevent *eventlist, int nevents,
           const struct timespec *timeout);

#endif
