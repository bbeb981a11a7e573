"""``python -m pyloop top PID``: a live, full-screen view of another process's loop.

Each refresh asks the monitor socket for ``stats`` and ``tasks`` and draws, with
``rich`` (the ``monitor`` extra): the loop's busy share, lag p50/p99 and the
rates of callbacks, fd events and iterations -- all over the last interval,
from the difference of two snapshots -- the stall going on now (in red) and the
last one, and the live tasks sorted by age or name.  Keys: ``q`` quits, ``s``
switches the sort order.  When the loop is blocked, its tasks cannot be listed
(they live on the blocked thread) and are not asked for while a stall is going
on; the stall line says where the loop is blocked.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import select
import sys
import time
from typing import Any, Iterator

from ._client import MonitorClient, MonitorError
from ._metrics import LoopMetrics, lag_quantile

__all__ = ["render", "run_top"]


def _fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f}us"
    if seconds < 1:
        return f"{seconds * 1e3:.1f}ms"
    return f"{seconds:.2f}s"


def _rate(now: LoopMetrics, before: LoopMetrics | None, field: str) -> str:
    if before is None or now.taken_at <= before.taken_at:
        return "-"
    per_s = (getattr(now, field) - getattr(before, field)) / (now.taken_at - before.taken_at)
    return f"{per_s:,.0f}"


def _interval_view(now: LoopMetrics, before: LoopMetrics | None) -> tuple[str, str, str]:
    """(busy %, lag p50, lag p99) over the last interval, or over the loop's life."""
    if before is None or now.running_time <= before.running_time:
        ratio = now.busy_ratio
        return (f"{ratio * 100:.1f}%" if ratio is not None else "-",
                _fmt_time(now.lag_p50), _fmt_time(now.lag_p99))
    running = now.running_time - before.running_time
    busy = max(now.busy_time - before.busy_time, 0.0)
    buckets = [a - b for a, b in zip(now.lag_buckets, before.lag_buckets)]
    return (f"{min(busy / running, 1.0) * 100:.1f}%",
            _fmt_time(lag_quantile(buckets, 0.5, now.lag_max)),
            _fmt_time(lag_quantile(buckets, 0.99, now.lag_max)))


def render(pid: int, stats: dict[str, Any], tasks: list[dict[str, Any]] | None, tasks_error: str | None,
           before: LoopMetrics | None, sort: str, height: int) -> Any:
    """The screen for one refresh, as a rich renderable."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    loop = stats["loop"]
    header = Text()
    header.append("pyloop top", style="bold")
    header.append(f"  pid {pid}  loop {loop['type'].rsplit('.', 1)[-1]} {loop['id']:#x}  ")
    header.append("running" if loop["running"] else "not running",
                  style="green" if loop["running"] else "yellow")
    other = "name" if sort == "age" else "age"
    header.append(f"  {time.strftime('%H:%M:%S')}  (q quits, s sorts by {other})")
    lines: list[Any] = [header]
    data = stats.get("metrics")
    if data is not None:
        m = LoopMetrics.from_dict(data)
        busy, p50, p99 = _interval_view(m, before)
        row = Text()
        row.append("busy ", style="bold")
        row.append(f"{busy:>6}   ")
        row.append("lag ", style="bold")
        row.append(f"p50 {p50}  p99 {p99}  max {_fmt_time(m.lag_max)}   ")
        row.append("callbacks/s ", style="bold")
        row.append(f"{_rate(m, before, 'callbacks')}   ")
        row.append("fd events/s ", style="bold")
        row.append(f"{_rate(m, before, 'fd_events')}   ")
        row.append("iterations/s ", style="bold")
        row.append(_rate(m, before, "iterations"))
        lines.append(row)
        lines.append(Text(f"tasks {m.live_tasks}   ready {m.ready} (max {m.max_ready})   timers {m.timers}   "
                          f"uptime {m.running_time:.1f}s"))
    else:
        lines.append(Text(f"not a pyloop loop: no core counters   tasks {stats.get('live_tasks')}"))
    stall = stats.get("stall")
    if stall is not None:
        lines.append(Text(f"STALL: blocked for {stall['blocked_for']:.2f}s{_where(stall)}", style="bold red"))
    else:
        text = "no stall now"
        last = stats.get("last_stall")
        if last is not None:
            text += f"; last: {last['blocked_for']:.2f}s{_where(last)}"
        if stats.get("stalls") is not None:
            text += f"; {stats['stalls']} over {stats['stall_threshold']}s so far"
        lines.append(Text(text, style="dim"))

    table = Table(expand=True, box=None, pad_edge=False, header_style="bold reverse")
    table.add_column("TASK", no_wrap=True, ratio=2)
    table.add_column("STATE", no_wrap=True)
    table.add_column("AGE", justify="right", no_wrap=True)
    table.add_column("WAITED BY", no_wrap=True, ratio=2)
    table.add_column("IN", no_wrap=True, ratio=3)
    table.add_column("AWAITING", no_wrap=True, ratio=2)
    if tasks is None:
        lines.append(Text(f"tasks: {tasks_error}", style="yellow"))
    else:
        names = {t["id"]: t["name"] for t in tasks}
        if sort == "name":
            ordered = sorted(tasks, key=lambda t: t["name"])
        else:
            ordered = sorted(tasks, key=lambda t: -(t["age"] if t["age"] is not None else -1.0))
        room = max(height - len(lines) - 2, 1)
        for t in ordered[:room]:
            parent = f"{t['via']} {names.get(t['parent'], '?')}" if t["parent"] is not None else ""
            table.add_row(t["name"], t["state"], _fmt_age(t["age"]), parent, _where_task(t),
                          t["awaiting"] or "")
        if len(ordered) > room:
            table.caption = f"... and {len(ordered) - room} more"
    lines.append(table)
    return Group(*lines)


def _fmt_age(age: float | None) -> str:
    if age is None:
        return "?"
    if age < 60:
        return f"{age:.1f}s"
    if age < 3600:
        return f"{age / 60:.1f}m"
    return f"{age / 3600:.1f}h"


def _where(stall: dict[str, Any]) -> str:
    what = f" in task {stall['task']!r}" if stall.get("task") else ""
    return what + (f" at {_short(stall['where'])}" if stall.get("where") else "")


def _where_task(task: dict[str, Any]) -> str:
    """``function file:line`` of the task's innermost frame of its own code: the
    file's base name, since the column is narrow."""
    from ._tasks import TaskInfo

    where = TaskInfo.from_dict(task).where
    if not where:
        return ""
    location, _, function = where.rpartition(" in ")
    path, _, line = location.rpartition(":")
    return f"{function} {os.path.basename(path)}:{line}"


def _short(location: str) -> str:
    cwd = os.getcwd() + os.sep
    return location[len(cwd):] if location.startswith(cwd) else location


@contextlib.contextmanager
def _keys() -> Iterator[Any]:
    """Single keystrokes from the terminal, without echo, while the block runs."""
    fd = sys.stdin.fileno() if sys.stdin is not None and sys.stdin.isatty() else None
    if fd is None:
        yield None
        return
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)
    try:
        yield fd
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _read_key(fd: int | None, timeout: float) -> str | None:
    if fd is None:
        time.sleep(timeout)
        return None
    ready, _, _ = select.select([fd], [], [], timeout)
    if not ready:
        return None
    data = os.read(fd, 1)
    if not data:
        return "q"          # the terminal went away
    return data.decode(errors="replace")


def run_top(client: MonitorClient, args: argparse.Namespace) -> int:
    """The refresh loop of ``top``; returns the exit status."""
    try:
        from rich.console import Console
        from rich.live import Live
    except ImportError:
        print("python -m pyloop top needs rich: pip install 'pyloop-aio[monitor]'", file=sys.stderr)
        return 1
    if not args.interval > 0:
        print("python -m pyloop top: --interval must be positive", file=sys.stderr)
        return 2
    console = Console()
    sort = args.sort
    before: LoopMetrics | None = None
    error: str | None = None
    with _keys() as fd, Live(console=console, screen=True, auto_refresh=False, transient=True) as live:
        try:
            while True:
                try:
                    stats = client.request("stats", loop=args.loop)
                    tasks: list[dict[str, Any]] | None = None
                    tasks_error: str | None = "not listed while the loop is blocked"
                    if stats.get("stall") is None:
                        try:
                            tasks, tasks_error = client.request("tasks", loop=args.loop)["tasks"], None
                        except MonitorError as exc:
                            if len(exc.args) < 2:       # the connection, not the loop
                                raise
                            tasks_error = exc.args[0]
                            # It blocked meanwhile (the request waited): what is it now?
                            stats = client.request("stats", loop=args.loop)
                except MonitorError as exc:
                    error = exc.args[0]
                    break
                live.update(render(args.pid, stats, tasks, tasks_error, before, sort, console.height),
                            refresh=True)
                if stats.get("metrics") is not None:
                    before = LoopMetrics.from_dict(stats["metrics"])
                key = _read_key(fd, args.interval)
                if key in ("q", "Q", "\x03", "\x04"):
                    break
                if key in ("s", "S"):
                    sort = "name" if sort == "age" else "age"
        except KeyboardInterrupt:
            pass
    if error is not None:
        print(f"python -m pyloop top: {error}", file=sys.stderr)
        return 1
    return 0
