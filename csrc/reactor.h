/* The reactor: readiness notification for file descriptors.
 *
 * One small interface, one backend file per kernel API (reactor_epoll.c,
 * reactor_kqueue.c), chosen by CMake.  The interface is fd-based and
 * level-triggered unless an interest asks for changes only (PL_EV_EDGE): the
 * caller says which events it wants for an fd, and wait() reports fds that
 * are ready for (a subset of) them.  Each interest carries a 32-bit user
 * token that comes back with its events; the loop uses it as a generation
 * number so that events for an fd that was closed and reused during one
 * dispatch batch can be told apart.
 *
 * All functions return 0 (or a count) on success and a negative errno on
 * failure.  None of them touch Python. */
#ifndef PL_REACTOR_H
#define PL_REACTOR_H

#include <stdint.h>

#define PL_EV_READ   0x1u  /* readable, or peer hung up / error (see below) */
#define PL_EV_WRITE  0x2u  /* writable */
#define PL_EV_ERROR  0x4u  /* reported only in events; wakes reader and writer */
#define PL_EV_HUP    0x8u  /* reported only in events; wakes reader and writer */
/* Requested with READ/WRITE, never reported: report an fd when it *becomes*
 * ready (new data, buffer space, a hang-up), not for as long as it stays
 * ready.  For callers that always try the system call first and wait only
 * after EAGAIN, which need nothing more.  What it buys: a registration that
 * outlives its fd -- closed while the kernel still holds it because a dup()
 * or a forked child keeps the file open, so that it can never be removed
 * again -- wakes the loop once per change of that file instead of on every
 * wait for as long as it is readable.  epoll: EPOLLET.  kqueue ignores it:
 * close() there removes the fd's filters, so no registration outlives it. */
#define PL_EV_EDGE   0x10u

typedef struct pl_reactor_s pl_reactor_t;

typedef struct pl_event_s {
    int fd;
    uint32_t events;   /* PL_EV_* bits */
    uint32_t token;    /* the token given to add/modify */
} pl_event_t;

/* Create a reactor (close-on-exec).  *out is set on success. */
int pl_reactor_open(pl_reactor_t **out);

/* Release the kernel object and the memory.  Safe on NULL. */
void pl_reactor_close(pl_reactor_t *r);

/* The kernel fd behind the reactor (epoll or kqueue fd).  It polls readable
 * while any registered fd has an event pending, so a host event loop can
 * watch it in place of calling pl_reactor_wait (BaseLoop.backend_fd). */
int pl_reactor_fd(const pl_reactor_t *r);

/* Start watching fd for events (PL_EV_READ | PL_EV_WRITE, non-zero, plus
 * PL_EV_EDGE if wanted).
 * If the kernel already knows the fd (it was registered, closed behind our
 * back and the number reused with a dup of the old description), falls back
 * to modify. */
int pl_reactor_add(pl_reactor_t *r, int fd, uint32_t events, uint32_t token);

/* Change the interest set of a watched fd (READ/WRITE non-zero, plus
 * EDGE if wanted).  If the kernel forgot the fd (it was closed and the number reused), falls back to add. */
int pl_reactor_modify(pl_reactor_t *r, int fd, uint32_t events, uint32_t token);

/* Stop watching fd.  Returns -ENOENT / -EBADF if the kernel had already
 * dropped it (the fd was closed); callers may ignore those. */
int pl_reactor_remove(pl_reactor_t *r, int fd);

/* Wait for events.  timeout_ns < 0 waits forever, 0 polls.  A positive
 * timeout is rounded *up* to the backend's resolution so that a timer is
 * never seen as due early.  Returns the number of events stored in out
 * (at most max_events), 0 on timeout, -EINTR if a signal interrupted the
 * wait, or another negative errno.  kqueue may report the read and write
 * side of one fd as two events; the caller must cope with that. */
int pl_reactor_wait(pl_reactor_t *r, pl_event_t *out, int max_events,
                    int64_t timeout_ns);

#endif
