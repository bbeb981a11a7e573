"""``python -m pyloop ps|top|stats PID``: the monitor of another process, from a terminal.

* ``ps PID`` prints the task tree once (``--json`` for the raw records);
* ``top PID`` shows a live, refreshing view (``_top.py``; needs ``rich``);
* ``stats PID`` prints the metrics (``--json`` for scripts).

The process must serve its monitor: ``PYLOOP_MONITOR=1`` in its environment, or
``pyloop.monitor.serve()`` in its code.  Exit status: 0, or 1 with a message on
stderr when the monitor cannot be reached or answers with an error.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Sequence

from ._client import MonitorClient, MonitorError
from ._metrics import LoopMetrics
from ._tasks import TaskInfo, format_tasks

__all__ = ["format_stats", "main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pyloop",
        description="Look inside the event loops of a running process that serves its monitor "
                    "(PYLOOP_MONITOR=1, or pyloop.monitor.serve()).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{ps,top,stats}")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("pid", type=int, help="the process id")
        p.add_argument("--socket", metavar="PATH", help="the monitor socket, if not at its default path")
        p.add_argument("--loop", type=int, metavar="ID", help="which loop (an id from --json output); "
                                                              "default: a running one")

    ps = sub.add_parser("ps", help="print the task tree once")
    common(ps)
    ps.add_argument("--json", action="store_true", help="the raw task records, as JSON")
    stats = sub.add_parser("stats", help="print the loop's metrics")
    common(stats)
    stats.add_argument("--json", action="store_true", help="as JSON, for scripts")
    top = sub.add_parser("top", help="a live view: busy %%, lag, rates, tasks, stalls (q quits)")
    common(top)
    top.add_argument("--interval", type=float, default=1.0, help="seconds between refreshes (default 1)")
    top.add_argument("--sort", choices=("age", "name"), default="age", help="task order (s toggles)")
    return parser


def _fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} us"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def format_stats(reply: dict[str, Any], pid: int) -> str:
    """A ``stats`` reply as the text ``python -m pyloop stats`` prints."""
    loop = reply["loop"]
    state = "running" if loop["running"] else "not running"
    lines = [f"process {pid}, loop {loop['type']} (id {loop['id']}), {state}"]
    data = reply.get("metrics")
    if data is None:
        lines.append("  no core counters: not a pyloop loop")
        lines.append(f"  live tasks        {reply.get('live_tasks')}")
    else:
        m = LoopMetrics.from_dict(data)
        busy = f"{m.busy_ratio * 100:.1f} %" if m.busy_ratio is not None else "-"
        lines += [
            f"  running time      {m.running_time:.3f} s, busy {busy} (idle {m.idle_time:.3f} s)",
            f"  iterations        {m.iterations}",
            f"  callbacks         {m.callbacks}",
            f"  fd events         {m.fd_events}",
            f"  timers            {m.timers_scheduled} scheduled, {m.timers_fired} fired, "
            f"{m.timers_cancelled} cancelled, {m.timers} in the heap",
            f"  ready callbacks   {m.ready} now, {m.max_ready} at most",
            f"  live tasks        {m.live_tasks}",
            f"  loop lag          p50 {_fmt_time(m.lag_p50)}, p99 {_fmt_time(m.lag_p99)}, "
            f"max {_fmt_time(m.lag_max)} ({m.lag_count} samples)",
        ]
    stall = reply.get("stall")
    if stall is not None:
        lines.append(f"  STALL NOW         blocked for {stall['blocked_for']:.3f} s"
                     f"{_stall_where(stall)}")
    elif reply.get("stalls") is not None:
        lines.append("  stall             none now")
    last = reply.get("last_stall")
    if last is not None:
        lines.append(f"  last stall        {last['blocked_for']:.3f} s{_stall_where(last)}")
    if reply.get("stalls") is not None:
        lines.append(f"  stalls seen       {reply['stalls']} (over {reply['stall_threshold']} s)")
    return "\n".join(lines)


def _stall_where(stall: dict[str, Any]) -> str:
    what = f" in task {stall['task']!r}" if stall.get("task") else ""
    where = f" at {stall['where']}" if stall.get("where") else ""
    return what + where


def _ps(client: MonitorClient, args: argparse.Namespace) -> int:
    reply = client.request("tasks", loop=args.loop)
    if args.json:
        print(json.dumps(reply, indent=2))
        return 0
    loop = reply["loop"]
    infos = [TaskInfo.from_dict(t) for t in reply["tasks"]]
    print(f"process {args.pid}, loop {loop['type']} (id {loop['id']}), {len(infos)} tasks")
    if infos:
        print(format_tasks(infos))
    return 0


def _stats(client: MonitorClient, args: argparse.Namespace) -> int:
    reply = client.request("stats", loop=args.loop)
    if args.json:
        print(json.dumps(reply, indent=2))
    else:
        print(format_stats(reply, args.pid))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    _not_a_server_ourselves()
    args = _parser().parse_args(argv)
    try:
        with MonitorClient(args.pid, path=args.socket) as client:
            if args.command == "ps":
                return _ps(client, args)
            if args.command == "stats":
                return _stats(client, args)
            from ._top import run_top

            return run_top(client, args)
    except MonitorError as exc:
        print(f"python -m pyloop {args.command}: {exc.args[0]}", file=sys.stderr)
        return 1
    except BrokenPipeError:         # `python -m pyloop ps PID | head`
        return 0


def _not_a_server_ourselves() -> None:
    # PYLOOP_MONITOR=1 exported in the shell also reached this process, which
    # then started serving when pyloop was imported: it has nothing to show.
    from . import _server

    server = _server._server
    if server is not None and _server._autostarted:
        server.close()
