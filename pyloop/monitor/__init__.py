"""See inside a running loop: metrics, stall reports, task trees, and ``python -m pyloop``.

Three questions an operator asks of a slow server, and where the answer is:

* **How busy is the loop?**  :func:`metrics` -- a snapshot of counters the C core
  keeps anyway (iterations, callbacks, fd events, timers, busy ratio, loop lag
  histogram with p50/p99).  Always on, free to read.
* **Is the loop blocked, and by which line?**  :func:`watch_stalls` -- a watchdog
  thread that, while the loop is still blocked in one callback, reads its stack
  and reports the file and line, the task, and how long (then the final
  duration).  Free on pyloop loops.
* **What are my tasks waiting on?**  :func:`tasks` / :func:`format_tasks` -- every
  live task with its await chain and who awaits it (``TaskGroup``, ``gather``,
  ``JoinSet``, ``select`` parents and their children), as a tree.

From another terminal: :func:`serve` (or ``PYLOOP_MONITOR=1`` in the environment)
makes the process answer, read-only, on a Unix socket only its own user can
connect to; then ``python -m pyloop ps PID`` prints the task tree, ``python -m
pyloop top PID`` shows a live view and ``python -m pyloop stats PID --json`` the
metrics.  :mod:`pyloop.monitor.prometheus` exports the metrics to Prometheus
(``pip install 'pyloop-aio[monitor]'`` for it and for ``top``).

    from pyloop import monitor

    async def main():
        with monitor.watch_stalls(0.1):          # warns on the pyloop.monitor logger
            monitor.serve()                      # python -m pyloop top <pid>
            ...
        print(monitor.metrics().lag_p99)
        print(monitor.format_tasks())

The parts: ``_metrics.py`` (the snapshot), ``_stalls.py`` (the watchdog),
``_tasks.py`` (task trees), ``_server.py`` (the socket and its protocol),
``_client.py`` and ``_cli.py`` (``python -m pyloop``), ``_top.py`` (the live
view).  The monitor reads a loop's core counters through
``pyloop._core.metrics`` and everything else through public asyncio APIs: it is
not part of the loop (docs/ARCHITECTURE.md).

Errors
------
``RuntimeError`` for :func:`metrics` on a loop that is not pyloop's (it has no
core counters), for any call without a loop outside a running one, and for a
second :func:`serve` at another path; ``TimeoutError`` from :func:`tasks` when a
running loop does not answer from another thread; ``TypeError``/``ValueError``
for bad arguments; ``OSError`` from :func:`serve` when its socket cannot be made.
"""

from ._metrics import LAG_BUCKET_BOUNDS, LoopMetrics, metrics
from ._server import MonitorServer, serve, socket_path
from ._stalls import StallReport, StallWatch, watch_stalls
from ._tasks import TaskInfo, format_tasks, tasks, track_task_ages

__all__ = ["metrics", "LoopMetrics", "LAG_BUCKET_BOUNDS", "watch_stalls", "StallWatch", "StallReport",
           "tasks", "TaskInfo", "format_tasks", "track_task_ages", "serve", "MonitorServer",
           "socket_path"]


def _autostart() -> None:
    """``PYLOOP_MONITOR`` is set: serve the monitor socket (pyloop/__init__.py calls this)."""
    from ._server import autostart

    autostart()
