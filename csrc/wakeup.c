/* Waking the reactor: an eventfd on Linux, a self-pipe elsewhere.
 *
 * Why an eventfd: one fd instead of two, and a write never fails for lack of
 * room until the 64-bit counter would overflow, so any number of signals
 * collapse into one readable event and one read drains them all.  A pipe
 * holds a few kilobytes of one-byte wakeups; when it is full the reader is
 * certainly going to wake, so EAGAIN on the write side means success.
 *
 * pl_wakeup_signal may run in a signal handler: it only calls write(), which
 * is async-signal-safe, and it restores errno so the code the signal
 * interrupted does not see it change.
 *
 * PL_WAKEUP_FORCE_PIPE selects the pipe on Linux too, so the tests can cover
 * the path the BSDs and macOS take (PL_WAKEUP_NO_PIPE2: macOS's exactly). */
#if defined(__linux__) && !defined(_GNU_SOURCE)
#define _GNU_SOURCE     /* pipe2 */
#endif

#include "wakeup.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <unistd.h>

#if defined(__linux__) && !defined(PL_WAKEUP_FORCE_PIPE)
#define PL__WAKEUP_EVENTFD 1
#include <sys/eventfd.h>
#endif

#ifdef PL__WAKEUP_EVENTFD

int pl_wakeup_open(pl_wakeup_t *w)
{
    int fd;

    assert(w != NULL);
    w->read_fd = w->write_fd = -1;
    fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (fd < 0)
        return -errno;
    w->read_fd = w->write_fd = fd;
    return 0;
}

int pl_wakeup_signal(pl_wakeup_t *w)
{
    const uint64_t one = 1;
    int saved_errno = errno;
    int rc = 0;
    ssize_t n;

    assert(w != NULL);
    do
        n = write(w->write_fd, &one, sizeof(one));
    while (n < 0 && errno == EINTR);
    /* EAGAIN: the counter is saturated, so the reader is already woken. */
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
        rc = -errno;
    errno = saved_errno;
    return rc;
}

int pl_wakeup_drain(pl_wakeup_t *w)
{
    uint64_t count;
    ssize_t n;

    assert(w != NULL);
    /* One read returns and resets the whole counter, so one successful read
     * is a full drain.  A signal racing with it makes the fd readable again,
     * which costs one more (correct) wakeup, not a lost one. */
    for (;;) {
        n = read(w->read_fd, &count, sizeof(count));
        if (n >= 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        return -errno;
    }
}

#else /* a self-pipe */

/* PL_WAKEUP_NO_PIPE2 takes the macOS path (pipe + fcntl) anywhere, for
 * the tests. */
#if !defined(PL_WAKEUP_NO_PIPE2) &&                                       \
    (defined(__linux__) || defined(__FreeBSD__) || defined(__NetBSD__) ||  \
     defined(__OpenBSD__) || defined(__DragonFly__))
#define PL__HAVE_PIPE2 1
#endif

#ifndef PL__HAVE_PIPE2
static int set_cloexec_nonblock(int fd)
{
    int flags = fcntl(fd, F_GETFD);

    if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0)
        return -errno;
    flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}
#endif

int pl_wakeup_open(pl_wakeup_t *w)
{
    int fds[2];
#ifndef PL__HAVE_PIPE2
    int rc;
#endif

    assert(w != NULL);
    w->read_fd = w->write_fd = -1;
#ifdef PL__HAVE_PIPE2
    /* pipe2 sets both flags atomically: no window in which a concurrent
     * fork+exec in another thread could inherit the fds. */
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
        return -errno;
#else
    /* macOS has no pipe2; the window above is the price. */
    if (pipe(fds) < 0)
        return -errno;
    if ((rc = set_cloexec_nonblock(fds[0])) < 0 ||
        (rc = set_cloexec_nonblock(fds[1])) < 0) {
        close(fds[0]);
        close(fds[1]);
        return rc;
    }
#endif
    w->read_fd = fds[0];
    w->write_fd = fds[1];
    return 0;
}

int pl_wakeup_signal(pl_wakeup_t *w)
{
    const char byte = 1;
    int saved_errno = errno;
    int rc = 0;
    ssize_t n;

    assert(w != NULL);
    do
        n = write(w->write_fd, &byte, 1);
    while (n < 0 && errno == EINTR);
    /* EAGAIN: the pipe is full, so the reader is already woken. */
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
        rc = -errno;
    errno = saved_errno;
    return rc;
}

int pl_wakeup_drain(pl_wakeup_t *w)
{
    /* Signals are one byte each; 1 KiB empties a typical backlog in a call
     * or two without a big stack frame. */
    char buf[1024];
    ssize_t n;

    assert(w != NULL);
    for (;;) {
        n = read(w->read_fd, buf, sizeof(buf));
        if (n == (ssize_t)sizeof(buf))
            continue;
        if (n >= 0)
            return 0;   /* a short read (or EOF) emptied the pipe */
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        return -errno;
    }
}

#endif

void pl_wakeup_close(pl_wakeup_t *w)
{
    assert(w != NULL);
    if (w->write_fd >= 0 && w->write_fd != w->read_fd)
        close(w->write_fd);
    if (w->read_fd >= 0)
        close(w->read_fd);
    w->read_fd = w->write_fd = -1;
}
