/* Waking the reactor from another thread or a signal handler.
 *
 * Linux: one eventfd (read_fd == write_fd).  Elsewhere: a non-blocking pipe.
 * pl_wakeup_signal is async-signal-safe and never blocks: a full pipe or a
 * saturated eventfd already means "wake up". */
#ifndef PL_WAKEUP_H
#define PL_WAKEUP_H

typedef struct pl_wakeup_s {
    int read_fd;
    int write_fd;
} pl_wakeup_t;

/* Both fds are non-blocking and close-on-exec.  0 or negative errno. */
int pl_wakeup_open(pl_wakeup_t *w);

/* 0, or a negative errno other than EAGAIN. */
int pl_wakeup_signal(pl_wakeup_t *w);

/* Consume every pending wakeup.  0 or negative errno (EAGAIN is not one). */
int pl_wakeup_drain(pl_wakeup_t *w);

/* Close the fds (safe to call twice). */
void pl_wakeup_close(pl_wakeup_t *w);

#endif
