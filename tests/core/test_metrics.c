/* pl_metrics.h: the lag histogram's buckets, the per-batch accounting, and
 * the stall watch that pyloop.monitor runs in another thread. */
#include "pltest.h"
#include "pl_metrics.h"

#include <string.h>

void test_metrics_lag_buckets(void)
{
    unsigned b;

    CHECK_EQ(pl_metrics_lag_bucket(-5), 0);
    CHECK_EQ(pl_metrics_lag_bucket(0), 0);
    CHECK_EQ(pl_metrics_lag_bucket(999), 0);
    CHECK_EQ(pl_metrics_lag_bound_ns(0), 1000);
    for (b = 0; b < PL_LAG_BUCKETS - 1; b++) {
        int64_t bound = pl_metrics_lag_bound_ns(b);
        CHECK_EQ(bound, ((int64_t)1 << b) * 1000);
        /* Exclusive upper bound: the bound itself is in the next bucket. */
        CHECK_EQ(pl_metrics_lag_bucket(bound - 1), b);
        CHECK_EQ(pl_metrics_lag_bucket(bound), b + 1 < PL_LAG_BUCKETS - 1 ? b + 1 : PL_LAG_BUCKETS - 1);
    }
    CHECK_EQ(pl_metrics_lag_bound_ns(PL_LAG_BUCKETS - 1), -1);
    CHECK_EQ(pl_metrics_lag_bucket(INT64_MAX), PL_LAG_BUCKETS - 1);
}

void test_metrics_batch_accounting(void)
{
    pl_metrics_t m;

    memset(&m, 0, sizeof(m));
    pl_metrics_run_begin(&m, 100);
    CHECK_EQ(m.running, 1);
    /* Busy from the run's start to now: 1000 ns of lag. */
    pl_metrics_batch(&m, 1100, 1100, 1);
    CHECK_EQ(m.iterations, 1);
    CHECK_EQ(m.lag_buckets[1], 1);
    CHECK_EQ(pl_metrics_lag_bucket0(&m), 0);
    /* A poll began at 2100 and slept until 5000: the sleep is not lag, and
     * an iteration with nothing to run takes no sample. */
    pl_metrics_batch(&m, 5000, 2100, 0);
    CHECK_EQ(m.iterations, 2);
    CHECK_EQ(m.batch_start_ns, 5000);
    CHECK_EQ(m.empty_iterations, 1);
    pl_metrics_batch(&m, 9000, 7000, 3);
    CHECK_EQ(m.lag_buckets[2], 1);     /* 2000 ns */
    CHECK_EQ(m.lag_sum_ns, 3000);
    CHECK_EQ(m.lag_max_ns, 2000);
    CHECK_EQ(m.max_ready, 3);
    /* Lags under 1 us are counted by difference. */
    pl_metrics_batch(&m, 9500, 9500, 1);
    pl_metrics_batch(&m, 9600, 9600, 1);
    CHECK_EQ(m.lag_buckets[0], 0);
    CHECK_EQ(pl_metrics_lag_bucket0(&m), 2);
    CHECK_EQ(m.lag_sum_ns, 3600);
    pl_metrics_callback(&m);
    CHECK_EQ(m.callbacks, 1);
    pl_metrics_run_end(&m, 10100);
    CHECK_EQ(m.running, 0);
    CHECK_EQ(m.run_ns, 10000);
}

void test_metrics_wait_stall(void)
{
    pl_metrics_t m;
    pl_stall_cursor_t c;
    int waiting = 0;
    uint64_t step = 0;
    int64_t since = 0, t0, end = 0;

    memset(&m, 0, sizeof(m));
    pl_stall_cursor_init(&c);
    /* Not running: never a stall. */
    CHECK_EQ(pl_metrics_wait_stall(&m, &waiting, &c, 0, 1000000, 20000000, (uint64_t)-1, &step, &since), 0);
    m.running = 1;
    m.iterations = 7;
    m.callbacks = 5;
    /* Asleep in the reactor: not a stall either. */
    waiting = 1;
    CHECK_EQ(pl_metrics_wait_stall(&m, &waiting, &c, 0, 1000000, 20000000, (uint64_t)-1, &step, &since), 0);
    waiting = 0;
    t0 = pl_clock_now_ns();
    CHECK_EQ(pl_metrics_wait_stall(&m, &waiting, &c, 5000000, 1000000, 2000000000, (uint64_t)-1, &step, &since), 1);
    CHECK_EQ(step, 12);
    CHECK(since <= t0);                 /* the last check that saw it asleep */
    CHECK(pl_clock_now_ns() - since >= 5000000);
    /* The step already reported is not reported again. */
    CHECK_EQ(pl_metrics_wait_stall(&m, &waiting, &c, 0, 1000000, 20000000, 12, &step, &since), 0);
    /* Still in it: no end; then the loop moves on. */
    CHECK_EQ(pl_metrics_wait_step_end(&m, &waiting, 12, 1000000, 10000000, &end), 0);
    m.callbacks++;
    CHECK_EQ(pl_metrics_wait_step_end(&m, &waiting, 12, 1000000, 10000000, &end), 1);
    CHECK(end >= since);
}

void test_metrics_stall_start_is_dated_by_the_batch(void)
{
    pl_metrics_t m;
    pl_stall_cursor_t c;
    int waiting = 1;
    uint64_t step = 0;
    int64_t since = 0, checked;

    memset(&m, 0, sizeof(m));
    m.running = 1;
    pl_stall_cursor_init(&c);
    /* A first check, with the loop asleep. */
    CHECK_EQ(pl_metrics_wait_stall(&m, &waiting, &c, 0, 1000000, 0, (uint64_t)-1, &step, &since), 0);
    checked = pl_clock_now_ns();
    /* Then a batch starts after that check and blocks: its own clock read
     * dates the stall, however late the next check comes. */
    m.iterations++;
    m.batch_start_ns = checked + 1;
    waiting = 0;
    CHECK_EQ(pl_metrics_wait_stall(&m, &waiting, &c, 2000000, 1000000, 2000000000, (uint64_t)-1, &step, &since), 1);
    CHECK_EQ(since, checked + 1);
    /* A batch that started before the last check that saw the loop elsewhere:
     * the step began after that check. */
    waiting = 1;
    CHECK_EQ(pl_metrics_wait_stall(&m, &waiting, &c, 0, 1000000, 0, (uint64_t)-1, &step, &since), 0);
    checked = pl_clock_now_ns();
    m.callbacks++;
    m.batch_start_ns = 1;
    waiting = 0;
    CHECK_EQ(pl_metrics_wait_stall(&m, &waiting, &c, 2000000, 1000000, 2000000000, (uint64_t)-1, &step, &since), 1);
    CHECK(since > 1 && since <= checked);
    /* A fresh cursor knows nothing before its first check: "now". */
    pl_stall_cursor_init(&c);
    m.callbacks++;
    checked = pl_clock_now_ns();
    CHECK_EQ(pl_metrics_wait_stall(&m, &waiting, &c, 2000000, 1000000, 2000000000, (uint64_t)-1, &step, &since), 1);
    CHECK(since >= checked);
}
