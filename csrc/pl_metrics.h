/* Counters of the loop iteration, and the stall watch that reads them.
 *
 * The loop's thread writes these as plain increments in the steps of an
 * iteration (pyloop/_core/loop_iteration.pxi); timings reuse the clock reads
 * the iteration makes anyway, plus one read before a poll that may block
 * (only such a poll can be idle time).  Nothing here allocates or locks.
 *
 * Loop lag.  An iteration starts its batch of ready handles at `now` (the
 * iteration's clock read).  Whatever became ready since the previous batch
 * started -- a callback scheduled by it, an fd that turned readable, a timer
 * that fell due -- waited at most the time the loop was busy since then: from
 * the previous batch's start to `now`, or to the start of this iteration's
 * poll if that poll could sleep (the sleep is idle time, not lag).  One
 * sample per iteration that runs at least one handle goes into a histogram
 * with fixed buckets: bucket 0
 * counts lags under 1 us, bucket k (1 <= k < PL_LAG_BUCKETS - 1) lags in
 * [2^(k-1), 2^k) us, the last bucket everything from 2^(PL_LAG_BUCKETS - 2) us
 * (about 16.8 s) up.  Upper bounds: pl_metrics_lag_bound_ns().
 *
 * Threads.  Only the loop's thread writes, with the GIL held; readers holding
 * the GIL see a consistent snapshot.  The stall watch reads a few fields from
 * another thread *without* the GIL -- `running`, `iterations`, `callbacks`,
 * `batch_start_ns` and the loop's own `waiting` flag -- with relaxed atomic
 * loads.  The loop writes them with plain stores (the two counters with plain
 * increments, which is one instruction where an atomic store of x + 1 is
 * three, on the hottest path): each is a naturally aligned word, which every
 * platform pyloop builds for stores in one piece, and between two of these
 * stores the loop calls out of line, so the compiler neither splits nor
 * drops them.  The watch only needs to see that a value changed, not any
 * ordering, and a stale read costs it one tick.  The block lives as long as
 * the loop object, and a thread that reads it holds a reference to the
 * loop. */
#ifndef PL_METRICS_H
#define PL_METRICS_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pl_clock.h"

#define PL_LAG_BUCKETS 26

#if defined(__GNUC__) || defined(__clang__)
#define PL_LOAD_RELAXED(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define PL_STORE_RELAXED(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#else
#define PL_LOAD_RELAXED(p) (*(p))
#define PL_STORE_RELAXED(p, v) (*(p) = (v))
#endif

typedef struct pl_metrics_s {
    /* Written by every iteration or handle: together, so that they share as
     * few cache lines as possible. */
    uint64_t iterations;       /* iterations of the loop (_run_once) */
    uint64_t callbacks;        /* handles run; a task step is one */
    int64_t batch_start_ns;    /* when the last batch started (its `now`) */
    int64_t lag_sum_ns;
    int64_t lag_max_ns;
    uint64_t max_ready;        /* largest batch one iteration ran */
    uint64_t fd_events;        /* reader/writer handles queued by polls */
    uint64_t empty_iterations; /* iterations that ran no handle: no lag sample */
    /* Written by a poll that may block. */
    int64_t poll_start_ns;     /* when the current blocking poll began */
    int64_t idle_ns;           /* time asleep in the reactor, finished polls */
    /* Written by timers and runs. */
    uint64_t timers_scheduled; /* call_at / call_later */
    uint64_t timers_fired;     /* timers moved to the ready queue */
    uint64_t timers_cancelled; /* scheduled timers cancelled */
    int64_t run_ns;            /* time inside run_forever, finished runs */
    int64_t run_start_ns;      /* when the current run began */
    int running;               /* inside run_forever */
    /* One bucket a sample, except bucket 0 (under 1 us, the common case on a
     * busy loop), which is not stored: it is every iteration that took a
     * sample minus the other buckets (pl_metrics_lag_bucket0). */
    uint64_t lag_buckets[PL_LAG_BUCKETS];
} pl_metrics_t;

/* A zeroed block of counters on its own cache lines (the hot fields first):
 * kept out of the loop object, which stays small, and out of its lines.
 * NULL when out of memory. */
static inline pl_metrics_t *pl_metrics_new(void)
{
    void *p = NULL;

    if (posix_memalign(&p, 64, sizeof(pl_metrics_t)) != 0)
        return NULL;
    memset(p, 0, sizeof(pl_metrics_t));
    return (pl_metrics_t *)p;
}

static inline void pl_metrics_free(pl_metrics_t *m)
{
    free(m);
}

/* The bucket of a lag, see above. */
static inline unsigned pl_metrics_lag_bucket(int64_t lag_ns)
{
    uint64_t us = lag_ns > 0 ? (uint64_t)lag_ns / 1000u : 0;
    unsigned b = 0;
#if defined(__GNUC__) || defined(__clang__)
    if (us)
        b = 64u - (unsigned)__builtin_clzll(us);
#else
    while (us) {
        b++;
        us >>= 1;
    }
#endif
    return b < PL_LAG_BUCKETS - 1 ? b : PL_LAG_BUCKETS - 1;
}

/* Exclusive upper bound of bucket b in ns; -1 for the last (unbounded). */
static inline int64_t pl_metrics_lag_bound_ns(unsigned b)
{
    if (b >= PL_LAG_BUCKETS - 1)
        return -1;
    return ((int64_t)1 << b) * 1000;
}

static inline void pl_metrics_run_begin(pl_metrics_t *m, int64_t now)
{
    m->run_start_ns = now;
    m->batch_start_ns = now;
    PL_STORE_RELAXED(&m->running, 1);
}

static inline void pl_metrics_run_end(pl_metrics_t *m, int64_t now)
{
    PL_STORE_RELAXED(&m->running, 0);
    m->run_ns += now - m->run_start_ns;
}

/* An iteration is about to run `nready` handles, at `now`; the loop was busy
 * from the previous batch's start until `busy_end`: `now`, or when this
 * iteration began a poll that may have slept. */
static inline void pl_metrics_batch(pl_metrics_t *m, int64_t now, int64_t busy_end,
                                    uint64_t nready)
{
    int64_t lag;

    m->iterations++;            /* plain: see "Threads" above */
    if (nready) {
        lag = busy_end - m->batch_start_ns;   /* >= 0: a monotonic clock */
        m->lag_sum_ns += lag;
        if (lag > m->lag_max_ns)
            m->lag_max_ns = lag;
        if (lag >= 1000)
            m->lag_buckets[pl_metrics_lag_bucket(lag)]++;
        if (nready > m->max_ready)
            m->max_ready = nready;
    } else {
        m->empty_iterations++;
    }
    m->batch_start_ns = now;
}

/* Samples in bucket 0: not counted one by one (see the struct). */
static inline uint64_t pl_metrics_lag_bucket0(const pl_metrics_t *m)
{
    uint64_t n = m->iterations - m->empty_iterations;
    unsigned b;

    for (b = 1; b < PL_LAG_BUCKETS; b++)
        n -= m->lag_buckets[b];
    return n;
}

/* A handle is about to run. */
static inline void pl_metrics_callback(pl_metrics_t *m)
{
    m->callbacks++;             /* plain: see "Threads" above */
}

/* What identifies "the loop is still in the same place": it changes when an
 * iteration or a handle starts.  Any thread. */
static inline uint64_t pl_metrics_step(const pl_metrics_t *m)
{
    return PL_LOAD_RELAXED(&m->iterations) + PL_LOAD_RELAXED(&m->callbacks);
}

/* Busy: running and not asleep in the reactor -- `waiting` is the loop's
 * flag for that, set around the wait that releases the GIL.  Any thread. */
static inline int pl_metrics_busy(const pl_metrics_t *m, const int *waiting)
{
    return PL_LOAD_RELAXED(&m->running) && !PL_LOAD_RELAXED(waiting);
}

static inline void pl_metrics_sleep_ns(int64_t ns)
{
    struct timespec ts;

    if (ns <= 0)
        return;
    ts.tv_sec = (time_t)(ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* What the stall watch remembers between two calls of pl_metrics_wait_stall. */
typedef struct pl_stall_cursor_s {
    uint64_t seen;      /* the step of the last check */
    int64_t since;      /* when that step began */
    int64_t prev;       /* time of the last check; INT64_MAX: none yet */
    int have;           /* the last check saw the loop busy in `seen` */
} pl_stall_cursor_t;

static inline void pl_stall_cursor_init(pl_stall_cursor_t *c)
{
    c->seen = 0;
    c->since = 0;
    c->prev = INT64_MAX;
    c->have = 0;
}

/* The stall watch, from another thread and without the GIL: check every
 * tick_ns whether the loop is busy in the same step as at the previous check.
 * Returns 1 once it has been so for threshold_ns or more -- with the step in
 * *step and when it began in *since_ns -- or 0 after timeout_ns.  A step
 * equal to `ignore` (one already reported) is not reported again.  The cursor
 * carries the watch from one call to the next.
 *
 * When a step began: after the last check that saw the loop elsewhere, and
 * not before its batch started (batch_start_ns, the iteration's clock read);
 * the later of the two.  That is exact for the first handle of a batch, and
 * within one tick otherwise, also when this thread was starved of CPU and its
 * checks came late.  Before the first check, nothing is known: a step seen
 * then began "now" (a lower bound of its duration). */
static inline int pl_metrics_wait_stall(const pl_metrics_t *m, const int *waiting,
                                        pl_stall_cursor_t *c, int64_t threshold_ns,
                                        int64_t tick_ns, int64_t timeout_ns,
                                        uint64_t ignore, uint64_t *step,
                                        int64_t *since_ns)
{
    int64_t now = pl_clock_now_ns();
    int64_t deadline = now + timeout_ns, batch;
    uint64_t s;

    for (;;) {
        if (pl_metrics_busy(m, waiting)) {
            s = pl_metrics_step(m);
            if (!c->have || s != c->seen) {
                /* At the previous check the loop was elsewhere. */
                batch = PL_LOAD_RELAXED(&m->batch_start_ns);
                c->since = batch > c->prev ? batch : c->prev;
                if (c->since > now)
                    c->since = now;
                c->seen = s;
                c->have = 1;
            }
            if (s != ignore && now - c->since >= threshold_ns) {
                c->prev = now;
                *step = s;
                *since_ns = c->since;
                return 1;
            }
        } else {
            c->have = 0;
        }
        c->prev = now;
        if (now >= deadline)
            return 0;
        pl_metrics_sleep_ns(tick_ns < deadline - now ? tick_ns : deadline - now);
        now = pl_clock_now_ns();
    }
}

/* Wait until the loop left `step` (started another handle or iteration, went
 * to sleep in the reactor, or stopped running): 1 with the time it was seen
 * to in *end_ns, or 0 after timeout_ns. */
static inline int pl_metrics_wait_step_end(const pl_metrics_t *m, const int *waiting,
                                           uint64_t step,
                                           int64_t tick_ns, int64_t timeout_ns,
                                           int64_t *end_ns)
{
    int64_t now = pl_clock_now_ns();
    int64_t deadline = now + timeout_ns;

    for (;;) {
        if (!pl_metrics_busy(m, waiting) || pl_metrics_step(m) != step) {
            *end_ns = now;
            return 1;
        }
        if (now >= deadline)
            return 0;
        pl_metrics_sleep_ns(tick_ns < deadline - now ? tick_ns : deadline - now);
        now = pl_clock_now_ns();
    }
}

#endif
