# cdef extern declarations of the C engine in csrc/ -- declarations only.
from libc.stdint cimport int64_t, uint32_t, uint64_t


cdef extern from "pl_clock.h" nogil:
    int64_t pl_clock_now_ns()
    int64_t pl_clock_resolution_ns()


cdef extern from "reactor.h" nogil:
    unsigned int PL_EV_READ
    unsigned int PL_EV_WRITE
    unsigned int PL_EV_ERROR
    unsigned int PL_EV_HUP
    unsigned int PL_EV_EDGE

    ctypedef struct pl_reactor_t:
        pass

    ctypedef struct pl_event_t:
        int fd
        uint32_t events
        uint32_t token

    int pl_reactor_open(pl_reactor_t **out)
    void pl_reactor_close(pl_reactor_t *r)
    int pl_reactor_fd(const pl_reactor_t *r)
    int pl_reactor_add(pl_reactor_t *r, int fd, uint32_t events, uint32_t token)
    int pl_reactor_modify(pl_reactor_t *r, int fd, uint32_t events, uint32_t token)
    int pl_reactor_remove(pl_reactor_t *r, int fd)
    int pl_reactor_wait(pl_reactor_t *r, pl_event_t *out, int max_events,
                        int64_t timeout_ns)


cdef extern from "timer_heap.h" nogil:
    ctypedef struct pl_timer_t:
        int64_t deadline_ns
        uint64_t seq
        void *token

    ctypedef struct pl_timer_ops_t:
        int (*is_cancelled)(void *token, void *ctx) noexcept
        void (*release)(void *token, void *ctx) noexcept
        void *ctx

    ctypedef struct pl_timer_heap_t:
        size_t len
        size_t cancelled

    int pl_timer_heap_init(pl_timer_heap_t *h, const pl_timer_ops_t *ops)
    void pl_timer_heap_destroy(pl_timer_heap_t *h)
    void pl_timer_heap_clear(pl_timer_heap_t *h)
    int pl_timer_heap_push(pl_timer_heap_t *h, int64_t deadline_ns, void *token)
    const pl_timer_t *pl_timer_heap_peek(pl_timer_heap_t *h)
    int pl_timer_heap_pop(pl_timer_heap_t *h, pl_timer_t *out)
    void pl_timer_heap_note_cancelled(pl_timer_heap_t *h)
    size_t pl_timer_heap_compact(pl_timer_heap_t *h)
    size_t pl_timer_heap_len(const pl_timer_heap_t *h)


cdef extern from "ready_queue.h" nogil:
    ctypedef struct pl_ready_queue_t:
        size_t len

    int pl_ready_queue_init(pl_ready_queue_t *q, size_t initial_cap)
    void pl_ready_queue_destroy(pl_ready_queue_t *q)
    int pl_ready_queue_push(pl_ready_queue_t *q, void *token)
    void *pl_ready_queue_pop(pl_ready_queue_t *q)
    size_t pl_ready_queue_len(const pl_ready_queue_t *q)


cdef extern from "wakeup.h" nogil:
    ctypedef struct pl_wakeup_t:
        int read_fd
        int write_fd

    int pl_wakeup_open(pl_wakeup_t *w)
    int pl_wakeup_signal(pl_wakeup_t *w)
    int pl_wakeup_drain(pl_wakeup_t *w)
    void pl_wakeup_close(pl_wakeup_t *w)


cdef extern from "pl_metrics.h" nogil:
    enum:
        PL_LAG_BUCKETS

    ctypedef struct pl_metrics_t:
        uint64_t iterations
        uint64_t callbacks
        int64_t batch_start_ns
        int64_t lag_sum_ns
        int64_t lag_max_ns
        uint64_t max_ready
        uint64_t fd_events
        uint64_t empty_iterations
        int64_t poll_start_ns
        int64_t idle_ns
        uint64_t timers_scheduled
        uint64_t timers_fired
        uint64_t timers_cancelled
        int64_t run_ns
        int64_t run_start_ns
        int running
        uint64_t lag_buckets[PL_LAG_BUCKETS]

    pl_metrics_t *pl_metrics_new()
    void pl_metrics_free(pl_metrics_t *m)
    unsigned pl_metrics_lag_bucket(int64_t lag_ns)
    int64_t pl_metrics_lag_bound_ns(unsigned b)
    void pl_metrics_run_begin(pl_metrics_t *m, int64_t now)
    void pl_metrics_run_end(pl_metrics_t *m, int64_t now)
    void pl_metrics_batch(pl_metrics_t *m, int64_t now, int64_t busy_end, uint64_t nready)
    void pl_metrics_callback(pl_metrics_t *m)
    uint64_t pl_metrics_lag_bucket0(const pl_metrics_t *m)
    uint64_t pl_metrics_step(const pl_metrics_t *m)
    int pl_metrics_busy(const pl_metrics_t *m, const int *waiting)
    ctypedef struct pl_stall_cursor_t:
        pass

    void pl_stall_cursor_init(pl_stall_cursor_t *c)
    int pl_metrics_wait_stall(const pl_metrics_t *m, const int *waiting, pl_stall_cursor_t *c,
                              int64_t threshold_ns, int64_t tick_ns, int64_t timeout_ns,
                              uint64_t ignore, uint64_t *step, int64_t *since_ns)
    int pl_metrics_wait_step_end(const pl_metrics_t *m, const int *waiting, uint64_t step,
                                 int64_t tick_ns, int64_t timeout_ns, int64_t *end_ns)
