"""The process side of ``pyloop.serve``: a supervisor in the parent, one loop per forked worker.

Why it is built this way
------------------------
* **fork, not multiprocessing's spawn.**  The worker runs the start function exactly as the
  user wrote it (a closure, a lambda, a bound method): fork hands it over without pickling,
  and nothing is imported twice.  The parent never runs an event loop, so a worker inherits
  no loop; each worker builds its own with ``loop_factory`` after the fork.

* **The parent waits with select(), not with an event loop.**  All it does is wait for three
  things: a signal (through ``signal.set_wakeup_fd``), a worker saying it is ready (a pipe),
  and a worker exiting (SIGCHLD, then ``waitpid`` on each of *its own* pids, never -1, so
  children that the application's parent code made are left alone).  A loop would add
  nothing and would be copied into every fork.

* **Signals are blocked around fork.**  SIGINT/SIGTERM/SIGCHLD are blocked in the parent
  while it forks; the child starts with them blocked, installs its own SIGTERM handler, and
  only then unblocks.  A SIGTERM that the parent forwards to a worker that is still starting
  therefore waits, pending, for the worker's handler instead of killing the worker with the
  default action.

* **Workers ignore SIGINT.**  Ctrl-C in a terminal signals the whole process group.  If
  workers reacted to it too, each would see the interrupt twice (from the terminal and from
  the parent).  The parent is the only one that listens; it sends each worker one SIGTERM.
  Both are set again once the start function has run, since a framework set up there may
  have installed handlers of its own (aiohttp's ``handle_signals=True``).

* **A lifeline pipe.**  The parent holds the write end; every worker watches the read end.
  If the parent dies without a word (SIGKILL, OOM killer), the workers see EOF and stop
  gracefully instead of serving on forever as orphans.

* **The port is held by the parent.**  With SO_REUSEPORT (Linux), the parent binds one socket
  to the address but never listens on it: that reserves the port (port 0 becomes a real
  number here, once) and keeps it reserved while workers restart, yet the kernel never
  queues a connection on it, because only listening sockets join the load-balancing group.
  Each worker binds and listens on its own socket, and the kernel spreads new connections
  over them by a hash of the connection's addresses.  Elsewhere (no SO_REUSEPORT, or one
  that does not balance, as on macOS) the parent binds and listens once and every worker
  accepts from that inherited socket.

* **Graceful stop.**  A worker told to stop calls ``server.close()`` (no more accepts; its
  listening socket is closed) and waits for the connections it accepted to close, at most
  ``grace`` seconds, then exits 0.  ``wait_closed()`` is entered *before* ``close()``: Python
  3.11's ``Server.wait_closed`` (asyncio's and pyloop's alike) returns at once when called on
  an already closed server, but waits for the connections when it was waiting already.

Known limit: a connection that the kernel has queued on a worker's listening socket but that
the worker had not accepted yet when it stopped is reset by the kernel when that socket
closes.  Linux 5.14+ can hand such connections to another listener of the group
(``sysctl net.ipv4.tcp_migrate_req=1``), which helps when workers restart one at a time.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import select
import signal
import socket
import struct
import sys
import time
import traceback
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, NoReturn, Protocol

_READY = struct.Struct("!I")        # a worker's index, written to the ready pipe
_PARENT_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD)
# How long the parent waits for workers beyond their own grace period before it kills them.
_BACKSTOP_S = 10.0
# Restart backoff for a worker that keeps crashing soon after it starts.
_QUICK_CRASH_S = 5.0
_MAX_BACKOFF_S = 5.0
# After the connections are gone, how long a stopping worker lets its other tasks finish.
_SETTLE_S = 0.1
_SETTLE_AFTER_ABORT_S = 1.0


def _n_workers(n: int) -> str:
    return f"{n} worker" if n == 1 else f"{n} workers"


def say(message: str) -> None:
    """Report on stderr, one line, prefixed so that it stands out among the app's output.

    One write(2) per line: workers share the parent's stderr, and print() writes the text and
    the newline separately, so lines from two workers could interleave.  A pipe write of up to
    PIPE_BUF bytes is atomic.
    """
    line = f"pyloop.serve: {message}\n"
    try:
        sys.stderr.flush()
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):   # replaced or closed stderr
        try:
            print(line, end="", file=sys.stderr, flush=True)
        except (AttributeError, OSError, ValueError):
            pass
        return
    try:
        os.write(fd, line.encode(errors="replace"))
    except OSError:
        pass


class ServerLike(Protocol):
    """What a start function must return: ``asyncio.Server`` and ``pyloop.Server`` are such."""

    def close(self) -> None: ...

    async def wait_closed(self) -> None: ...


StartFunction = Callable[[socket.socket], Awaitable[ServerLike]]


@dataclasses.dataclass(frozen=True)
class ServeInfo:
    """What ``pyloop.serve`` passes to its ``ready`` callback once every worker is serving.

    ``host`` and ``port`` are the bound address (``port`` is the real number when 0 was asked
    for), ``workers`` how many worker processes serve it, ``reuse_port`` whether each worker
    has its own SO_REUSEPORT socket (True) or all accept from one shared socket (False), and
    ``pids`` the workers' process ids in worker order.
    """

    host: str
    port: int
    workers: int
    reuse_port: bool
    pids: tuple[int, ...]

    def __str__(self) -> str:
        how = "SO_REUSEPORT" if self.reuse_port else "one shared socket"
        pids = ", ".join(map(str, self.pids))
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"serving on {host}:{self.port} with {_n_workers(self.workers)} ({how}; pids {pids})"


class Worker:
    """The worker process the calling code runs in; see ``pyloop.serving.current_worker()``.

    ``index`` is the worker's slot, 0 to ``workers - 1`` (a restarted worker takes over the
    slot of the one it replaces), ``pid`` its process id, and ``stopping`` an
    ``asyncio.Event`` set when the worker has been told to stop: from then on it accepts no
    new connections and waits for open ones to close.  Protocols that keep idle connections
    open (HTTP keep-alive) should close them once ``stopping`` is set, or the worker waits
    for them until the grace period ends.
    """

    def __init__(self, index: int, stopping: asyncio.Event) -> None:
        self.index = index
        self.pid = os.getpid()
        self.stopping = stopping

    def __repr__(self) -> str:
        state = "stopping" if self.stopping.is_set() else "serving"
        return f"<pyloop.serving.Worker index={self.index} pid={self.pid} {state}>"


_current_worker: Worker | None = None


def current_worker() -> Worker | None:
    """Return the ``Worker`` this process is, inside a ``pyloop.serve`` worker; else None."""
    return _current_worker


# ---- the listening address ---------------------------------------------------------------

def reuse_port_balances() -> bool:
    """Whether SO_REUSEPORT spreads connections over the sockets sharing a port.

    Linux (3.9+) hashes each new connection to one of the listening sockets.  BSD and macOS
    accept the option but hand every connection to one socket, which is no use here.
    """
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def _bound_socket(family: int, address: Any, reuse_port: bool) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock


class Listener:
    """The address every worker serves, bound once in the parent (see the module docstring)."""

    def __init__(self, host: str | None, port: int, reuse_port: bool, backlog: int) -> None:
        infos = socket.getaddrinfo(host, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0,
                                   socket.AI_PASSIVE)
        if not infos:  # pragma: no cover - getaddrinfo raises instead
            raise OSError(f"cannot resolve {host!r}")
        family, _, _, _, address = infos[0]
        self.family = family
        self.reuse_port = reuse_port
        self.backlog = backlog
        # reuse_port: bound, never listening; otherwise: the one listening socket.
        self._parent_sock: socket.socket | None = _bound_socket(family, address, reuse_port)
        bound = self._parent_sock.getsockname()
        self.address = bound
        self.host: str = bound[0]
        self.port: int = bound[1]
        if not reuse_port:
            self._parent_sock.listen(backlog)

    def worker_socket(self) -> socket.socket:
        """In a worker: the listening socket it serves (its own, or the inherited shared one)."""
        parent_sock = self._parent_sock
        if parent_sock is None:
            raise RuntimeError("the listening socket was closed before the worker started")
        if not self.reuse_port:
            parent_sock.setblocking(False)
            return parent_sock
        # The reservation socket is the parent's business; the worker's copy would only keep
        # the port bound after the parent is gone.
        parent_sock.close()
        self._parent_sock = None
        sock = _bound_socket(self.family, self.address, True)
        try:
            sock.listen(self.backlog)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    def stop_accepting(self) -> None:
        """In the parent, once stopping: without SO_REUSEPORT, close the parent's copy of the
        shared listening socket, so that once every worker has closed theirs, new connections
        are refused instead of queuing where nobody will accept them."""
        if not self.reuse_port:
            self.close()

    def close(self) -> None:
        if self._parent_sock is not None:
            self._parent_sock.close()
            self._parent_sock = None


# ---- the worker ----------------------------------------------------------------------------

@dataclasses.dataclass
class WorkerPlan:
    """Everything a forked worker needs, fixed before the first fork."""

    start: StartFunction
    listener: Listener
    grace: float
    loop_factory: Callable[[], asyncio.AbstractEventLoop]
    ready_w: int = -1
    lifeline_r: int = -1


def _describe_server(server: object) -> str:
    return f"{type(server).__module__}.{type(server).__qualname__}"


async def _drain(index: int, server: ServerLike, grace: float) -> None:
    closed = asyncio.ensure_future(server.wait_closed())
    await asyncio.sleep(0)          # wait_closed is waiting before close() (module docstring)
    server.close()
    say(f"worker {index} (pid {os.getpid()}): stopped accepting; waiting up to {grace:g} s "
        f"for open connections to close")
    try:
        await asyncio.wait_for(closed, grace)
    except TimeoutError:
        abort = getattr(server, "abort_clients", None)      # asyncio 3.13+, pyloop there too
        if abort is not None:
            abort()
        else:
            # pyloop's Server on older Pythons; for others, exiting closes the sockets anyway
            for transport in getattr(server, "_live_clients", list)():
                transport.abort()
        say(f"worker {index} (pid {os.getpid()}): the {grace:g} s grace period ran out; "
            f"connections still open were closed")
        settle = _SETTLE_AFTER_ABORT_S
    else:
        settle = _SETTLE_S
    # Connection handlers (streams' client_connected_cb tasks) usually finish one or two
    # iterations after their connection is gone; let them, rather than have the Runner cancel
    # them (Python 3.11's streams then log a spurious CancelledError).  Bounded: a background
    # task that never ends costs this much at shutdown, no more.
    others = asyncio.all_tasks() - {asyncio.current_task()}
    if others:
        await asyncio.wait(others, timeout=settle)


async def _worker_main(index: int, plan: WorkerPlan, mask: Iterable[int]) -> int:
    global _current_worker
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    _current_worker = Worker(index, stopping)
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)    # a SIGTERM kept pending arrives now

    def parent_gone() -> None:
        loop.remove_reader(plan.lifeline_r)
        if not stopping.is_set():
            say(f"worker {index} (pid {os.getpid()}): the parent process is gone; stopping")
            stopping.set()

    loop.add_reader(plan.lifeline_r, parent_gone)

    sock = plan.listener.worker_socket()
    server = await plan.start(sock)
    if not (callable(getattr(server, "close", None))
            and callable(getattr(server, "wait_closed", None))):
        sock.close()
        raise TypeError(f"the start function must return a server (an object with close() "
                        f"and wait_closed(), such as what loop.create_server returns), "
                        f"not {_describe_server(server)}")
    _reclaim_signals(loop, stopping)
    os.write(plan.ready_w, _READY.pack(index))
    await stopping.wait()
    await _drain(index, server, plan.grace)
    return 0


def _reclaim_signals(loop: asyncio.AbstractEventLoop, stopping: asyncio.Event) -> None:
    """After the start function: the worker's SIGTERM handler and ignored SIGINT again.

    A framework set up by the start function may have installed its own handlers (aiohttp's
    ``AppRunner(handle_signals=True)`` does, for both); they would stop the worker without the
    graceful drain, or on the terminal's Ctrl-C that the parent already turns into one SIGTERM.
    """
    loop.add_signal_handler(signal.SIGTERM, stopping.set)
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        loop.remove_signal_handler(signal.SIGINT)
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def run_worker(index: int, plan: WorkerPlan, closing: list[int],
               mask: Iterable[int]) -> NoReturn:
    """The forked child's whole life; it never returns to the caller's stack."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in closing:
            os.close(fd)
        with asyncio.Runner(loop_factory=plan.loop_factory) as runner:
            code = runner.run(_worker_main(index, plan, mask))
    except SystemExit as exc:
        code = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        say(f"worker {index} (pid {os.getpid()}) failed:")
        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError, AttributeError):
                pass
        os._exit(code)


# ---- the supervisor ------------------------------------------------------------------------

@dataclasses.dataclass
class _Slot:
    index: int
    pid: int | None = None
    ready: bool = False
    started_at: float = 0.0
    quick_crashes: int = 0
    restart_at: float | None = None


def _exit_description(status: int) -> str:
    code = os.waitstatus_to_exitcode(status)
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"was killed by {name}"
    return f"exited with status {code}"


class Supervisor:
    """The parent: forks the workers, forwards stop signals, reaps and reports, restarts."""

    def __init__(self, plan: WorkerPlan, workers: int, restart: bool,
                 ready: Callable[[ServeInfo], object] | None) -> None:
        self.plan = plan
        self.slots = [_Slot(i) for i in range(workers)]
        self.restart = restart
        self.ready_callback = ready
        self.failed = False
        self.stopping = False
        self.serving = False            # every worker has been ready once
        self.backstop: float | None = None
        self._signals: list[int] = []
        self._ready_buf = b""

    # -- the run ---------------------------------------------------------------------------

    def run(self) -> int:
        ready_r, ready_w = os.pipe()
        lifeline_r, lifeline_w = os.pipe()
        wake_r, wake_w = os.pipe()
        for fd in (ready_r, wake_r, wake_w):
            os.set_blocking(fd, False)
        self.plan.ready_w, self.plan.lifeline_r = ready_w, lifeline_r
        self._ready_r, self._wake_r = ready_r, wake_r
        self._in_child_close = [ready_r, lifeline_w, wake_r, wake_w]
        previous = {sig: signal.signal(sig, self._on_signal) for sig in _PARENT_SIGNALS}
        previous_wakeup = signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        try:
            for slot in self.slots:
                self._spawn(slot)
            return self._supervise()
        finally:
            signal.set_wakeup_fd(previous_wakeup)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self._kill_leftovers()
            self.plan.listener.close()
            for fd in (ready_r, ready_w, lifeline_r, lifeline_w, wake_r, wake_w):
                os.close(fd)

    def _supervise(self) -> int:
        while True:
            self._handle_signals()
            self._read_ready()
            self._reap()
            live = [s for s in self.slots if s.pid is not None]
            if self.stopping and not live:
                break
            if not self.stopping and not live and not self._restarts_pending():
                say("no workers left; stopping")
                self.failed = True
                break
            now = time.monotonic()
            if self.backstop is not None and now >= self.backstop:
                self._kill_all("workers did not stop in time")
                continue
            self._restart_due(now)
            select.select([self._wake_r, self._ready_r], [], [], self._timeout(now))
            try:
                while os.read(self._wake_r, 512):
                    pass
            except BlockingIOError:
                pass
        return 1 if self.failed else 0

    def _timeout(self, now: float) -> float:
        deadlines = [s.restart_at for s in self.slots if s.restart_at is not None]
        if self.backstop is not None:
            deadlines.append(self.backstop)
        # Signals and child exits wake select() through the wakeup pipe; the cap only bounds
        # the damage should a wakeup ever be lost.
        return max(0.0, min([1.0] + [d - now for d in deadlines]))

    # -- events ----------------------------------------------------------------------------

    def _on_signal(self, signum: int, frame: object) -> None:
        self._signals.append(signum)

    def _handle_signals(self) -> None:
        while self._signals:
            signum = self._signals.pop(0)
            if signum == signal.SIGCHLD:
                continue                # _reap looks at every worker anyway
            name = signal.Signals(signum).name
            if not self.stopping:
                self._begin_stop(f"{name} received")
            else:
                self._kill_all(f"a second {name}: not waiting for open connections")

    def _read_ready(self) -> None:
        try:
            while chunk := os.read(self._ready_r, 4096):
                self._ready_buf += chunk
        except BlockingIOError:
            pass
        n = len(self._ready_buf) // _READY.size * _READY.size
        for (index,) in _READY.iter_unpack(self._ready_buf[:n]):
            slot = self.slots[index]
            if slot.pid is None or slot.ready:
                continue
            slot.ready = True
            if self.serving:
                say(f"worker {index} restarted (pid {slot.pid})")
        self._ready_buf = self._ready_buf[n:]
        if not self.serving and not self.stopping and all(s.ready for s in self.slots):
            self.serving = True
            listener = self.plan.listener
            info = ServeInfo(listener.host, listener.port, len(self.slots), listener.reuse_port,
                             tuple(s.pid for s in self.slots if s.pid is not None))
            if self.ready_callback is None:
                say(str(info))
            else:
                self.ready_callback(info)

    def _reap(self) -> None:
        for slot in self.slots:
            if slot.pid is None:
                continue
            try:
                pid, status = os.waitpid(slot.pid, os.WNOHANG)
            except ChildProcessError:   # reaped by someone else: nothing to tell
                pid, status = slot.pid, 0
            if pid == 0:
                continue
            self._worker_exited(slot, status)

    def _worker_exited(self, slot: _Slot, status: int) -> None:
        pid = slot.pid
        slot.pid, slot.ready = None, False
        what = f"worker {slot.index} (pid {pid}) {_exit_description(status)}"
        if self.stopping:
            if os.waitstatus_to_exitcode(status) != 0:
                self.failed = True
                say(what)
            return
        self.failed = True
        if not self.serving:
            say(f"{what} before it was ready: its error is above.  serve() stops when a worker "
                f"cannot start; fix that error and start again")
            self._begin_stop("a worker failed to start")
            return
        if self.restart:
            uptime = time.monotonic() - slot.started_at
            slot.quick_crashes = slot.quick_crashes + 1 if uptime < _QUICK_CRASH_S else 0
            delay = min(_MAX_BACKOFF_S, 0.1 * 2 ** slot.quick_crashes) if slot.quick_crashes else 0
            slot.restart_at = time.monotonic() + delay
            say(f"{what}; restarting it" + (f" in {delay:g} s" if delay else ""))
        else:
            left = sum(s.pid is not None for s in self.slots)
            say(f"{what}; {left} of {len(self.slots)} workers left")

    def _restarts_pending(self) -> bool:
        return any(s.restart_at is not None for s in self.slots)

    def _restart_due(self, now: float) -> None:
        for slot in self.slots:
            if slot.restart_at is not None and now >= slot.restart_at:
                slot.restart_at = None
                self._spawn(slot)

    # -- actions ---------------------------------------------------------------------------

    def _spawn(self, slot: _Slot) -> None:
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _PARENT_SIGNALS)
        try:
            pid = os.fork()
            if pid == 0:
                run_worker(slot.index, self.plan, self._in_child_close, mask)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        slot.pid, slot.ready, slot.started_at = pid, False, time.monotonic()

    def _begin_stop(self, why: str) -> None:
        self.stopping = True
        for slot in self.slots:
            slot.restart_at = None
        live = [s for s in self.slots if s.pid is not None]
        say(f"{why}: stopping {_n_workers(len(live))} (grace period {self.plan.grace:g} s)")
        self.plan.listener.stop_accepting()
        self.backstop = time.monotonic() + self.plan.grace + _BACKSTOP_S
        self._send(live, signal.SIGTERM)

    def _kill_all(self, why: str) -> None:
        live = [s for s in self.slots if s.pid is not None]
        if live:
            say(f"{why}: killing {_n_workers(len(live))}")
        self.failed = True
        self.stopping = True
        self.backstop = None
        self._send(live, signal.SIGKILL)

    def _send(self, slots: list[_Slot], sig: signal.Signals) -> None:
        for slot in slots:
            if slot.pid is not None:
                try:
                    os.kill(slot.pid, sig)
                except ProcessLookupError:
                    pass

    def _kill_leftovers(self) -> None:
        """After an exception out of the supervisor (the ready callback raised, say): no worker
        may outlive serve()."""
        for slot in self.slots:
            if slot.pid is not None:
                try:
                    os.kill(slot.pid, signal.SIGKILL)
                    os.waitpid(slot.pid, 0)
                except (ProcessLookupError, ChildProcessError):
                    pass
                slot.pid = None
