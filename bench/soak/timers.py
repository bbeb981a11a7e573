"""One million timers on one loop, half of them cancelled.

    PYTHONPATH=. python bench/soak/timers.py [--loop pyloop|asyncio|uvloop|all] [--quick] [--count N]

Schedules ``--count`` timers with ``call_at`` at distinct deadlines spread over
``--spread`` seconds, starting once scheduling is expected to be over (in a shuffled order, so the heap sees them out of order),
cancels a random half, runs the loop until the last live one fires, and checks:

* exactly the timers that were not cancelled fired, each once;
* they fired in deadline order, and none fired before its deadline.

Prints the time to schedule, cancel and run, the peak RSS and how late timers ran
(counted from their deadline, or from the start of the run for the ones whose
deadline passed while the million were still being scheduled).
"""
from __future__ import annotations

import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _common as C  # noqa: E402


def measure(loop_name: str, count: int, spread: float, head: float, seed: int) -> dict:
    loop = C.loop_factory(loop_name)()
    rng = random.Random(seed)
    order = list(range(count))
    rng.shuffle(order)
    cancel = set(rng.sample(range(count), count // 2))
    fired: list[tuple[int, float, float]] = []
    remaining = [count - len(cancel)]
    rss0 = C.settled_rss_kib()

    def on_timer(i: int, when: float) -> None:
        fired.append((i, when, loop.time()))
        remaining[0] -= 1
        if remaining[0] == 0:
            loop.stop()

    # The first deadline should come after the last timer is scheduled, so that the run
    # measures timers firing at their deadlines rather than a backlog being drained.
    # Scheduling speed varies 5x between loops and with the machine's load, and a small
    # sample underestimates it (the big heap and the fresh memory cost more): the head
    # start is a generous constant per timer, and the figures say how many were overdue.
    base = loop.time() + head
    step = spread / count
    handles = [None] * count
    t0 = time.perf_counter()
    for i in order:
        when = base + i * step
        handles[i] = loop.call_at(when, on_timer, i, when)
    t_schedule = time.perf_counter() - t0
    rss_scheduled = C.rss_kib()

    t0 = time.perf_counter()
    for i in cancel:
        handles[i].cancel()
    t_cancel = time.perf_counter() - t0

    run_start = loop.time()
    t0 = time.perf_counter()
    guard = loop.call_later(spread + 600, loop.stop)  # a hang ends the run, and the checks fail
    loop.run_forever()
    t_run = time.perf_counter() - t0
    guard.cancel()
    loop.close()

    # uvloop's clock has 1 ms granularity: it may run a timer up to 1 ms early and
    # reorders deadlines closer than that; the other loops are held to exact order.
    slack = 1e-3 if loop_name == "uvloop" else 0.0
    fired_ids = [f[0] for f in fired]
    expected = sorted(set(range(count)) - cancel)
    exact = sorted(fired_ids) == expected and len(fired_ids) == len(set(fired_ids))
    max_inversion = 0.0  # how far a timer ran after one with a later deadline
    latest = float("-inf")
    for _, when, _ in fired:
        latest = max(latest, when)
        max_inversion = max(max_inversion, latest - when)
    in_order = max_inversion <= slack
    never_early = all(now >= when - slack for _, when, now in fired)
    # Lateness counts from when a timer became runnable: its deadline, or the start of
    # the run for deadlines that passed while the timers were still being scheduled.
    late_ms = [(now - max(when, run_start)) * 1e3 for _, when, now in fired]
    overdue = sum(1 for _, when, _ in fired if when < run_start)
    return {
        "loop": loop_name, "count": count, "cancelled": len(cancel), "fired": len(fired),
        "slack_ms": slack * 1e3, "max_inversion_ms": max_inversion * 1e3, "exact": exact, "in_order": in_order, "never_early": never_early,
        "schedule_s": t_schedule, "cancel_s": t_cancel, "run_s": t_run,
        "schedule_ns_per_timer": t_schedule / count * 1e9,
        "rss_start_kib": rss0, "rss_scheduled_kib": rss_scheduled, "peak_rss_kib": C.peak_rss_kib(),
        "head_s": head, "overdue_at_start": overdue, "late_ms_p50": C.percentile(late_ms, 50), "late_ms_p99": C.percentile(late_ms, 99),
        "late_ms_max": max(late_ms) if late_ms else float("nan"),
    }


def lines_for(r: dict) -> list[str]:
    verdict = "OK" if r["exact"] and r["in_order"] and r["never_early"] else "FAILED"
    return [
        f"{r['loop']}: {r['count']:,} timers, {r['cancelled']:,} cancelled, {r['fired']:,} fired -- {verdict}"
        f" (exact={r['exact']}, deadline order={r['in_order']}, none early={r['never_early']},"
        f" tolerance {r['slack_ms']:g} ms, worst inversion {r['max_inversion_ms']:.3f} ms)",
        f"  schedule {r['schedule_s']:.2f} s ({r['schedule_ns_per_timer']:.0f} ns/timer), "
        f"cancel {r['cancel_s']:.2f} s, run {r['run_s']:.2f} s",
        f"  RSS start {r['rss_start_kib'] / 1024:.1f} MiB, after scheduling {r['rss_scheduled_kib'] / 1024:.1f} MiB,"
        f" peak {r['peak_rss_kib'] / 1024:.1f} MiB",
        f"  first deadline {r['head_s']:.1f} s after scheduling began;"
        f" lateness (from max(deadline, run start); {r['overdue_at_start']:,} were due before the run began):"
        f" p50 {r['late_ms_p50']:.2f} ms, p99 {r['late_ms_p99']:.2f} ms, max {r['late_ms_max']:.2f} ms",
    ]


def summarise(results: dict[str, dict]) -> list[str]:
    rows = []
    for name, r in results.items():
        ok = "yes" if r["exact"] and r["in_order"] and r["never_early"] else "NO"
        rows.append([name, f"{r['count']:,}", f"{r['fired']:,}", ok, f"{r['schedule_s']:.2f}",
                     f"{r['cancel_s']:.2f}", f"{r['run_s']:.2f}", f"{r['peak_rss_kib'] / 1024:.0f}",
                     f"{r['late_ms_p99']:.1f}"])
    return C.table(["loop", "timers", "fired", "exact+ordered", "schedule s", "cancel s", "run s",
                    "peak RSS MiB", "late p99 ms"], rows)


def main() -> int:
    def extra(p):
        p.add_argument("--count", type=int, default=None, help="timers (default 1,000,000; 100,000 with --quick)")
        p.add_argument("--spread", type=float, default=None, help="deadline spread in seconds (default 5; 1 quick)")
        p.add_argument("--head", type=float, default=None,
                       help="seconds from the start of scheduling to the first deadline (default 15 us per timer)")
        p.add_argument("--seed", type=int, default=1)

    args = C.parse_args(__doc__.splitlines()[0], extra)
    if args.count is None:
        args.count = 100_000 if args.quick else 1_000_000
    if args.spread is None:
        args.spread = 1.0 if args.quick else 5.0
    if args.head is None:
        args.head = max(0.5, args.count * 15e-6)
    if args.loop == "all":
        return C.run_all(__file__, args, C.child_argv(args, ["count", "spread", "head", "seed"]), 1800, summarise)
    r = measure(args.loop, args.count, args.spread, args.head, args.seed)
    C.emit(args, r, lines_for(r))
    return 0 if r["exact"] and r["in_order"] and r["never_early"] else 1


if __name__ == "__main__":
    sys.exit(main())
