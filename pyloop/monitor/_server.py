"""The monitor socket: the process answers ``python -m pyloop ps|top|stats PID``.

``serve()`` (or ``PYLOOP_MONITOR=1`` in the environment) opens a Unix stream
socket and answers on it from a thread of its own.  Why a thread and not the
loop: the socket must answer exactly when the loop cannot -- a blocked loop is
the case an operator most needs to see -- and a slow or vanished client must
never cost the loop anything.  So every byte of socket I/O, the JSON, and the
metrics (read from the core counters, which any thread may do) happen in this
thread; the loop is touched only to list its tasks, which must be done on its
own thread: a short callback sent with ``call_soon_threadsafe`` that hands its
answer back through a queue and a wake-up socket, never blocking on a client.
If the loop does not run it within 2 s, the client gets an error that carries
the stall the watchdog sees instead.

Security, in layers:

* the socket lives in a directory only the user can enter (``$XDG_RUNTIME_DIR``,
  or a ``pyloop-UID`` directory of mode 0700 in the temp dir, checked to be
  owned by the user and not a symlink), is made mode 0600 before it listens,
  and is removed at exit;
* each connection's peer is checked with ``SO_PEERCRED`` (``LOCAL_PEERCRED`` on
  macOS and FreeBSD): a uid other than the process's effective uid is answered
  with an error and disconnected (root included: root can read the process's
  memory anyway, and should ask as the owner);
* the protocol is read-only: a client can ask for metrics, stalls and tasks,
  and nothing it sends is run, imported or unpickled.

Protocol: newline-delimited JSON.  A request is an object ``{"cmd": ...}`` with
an optional ``"loop"`` (an id from ``loops``; default: a running loop) and an
optional ``"id"`` echoed in the reply; commands ``hello``, ``loops``, ``stats``,
``tasks``, ``stall``.  A reply is one line, ``{"ok": true, ...}`` or ``{"ok":
false, "error": "..."}``.  A request over 4 KiB, malformed JSON or an unknown
command gets an error reply (a request that never ends is cut off and the
connection closed after its reply); a client that stops reading while its
replies pile up past 8 MiB, or sends nothing for 2 minutes, is disconnected.
At most 8 clients at a time.
"""

from __future__ import annotations

import asyncio
import atexit
import collections
import dataclasses
import errno
import json
import logging
import os
import selectors
import socket
import stat
import struct
import sys
import tempfile
import threading
import time
import weakref
from typing import Any

from pyloop._core import metrics as _counters

from . import _tasks
from ._metrics import metrics as _metrics
from ._stalls import StallWatch, current_watch

__all__ = ["MonitorServer", "autostart", "candidate_paths", "serve", "socket_path"]

logger = logging.getLogger("pyloop.monitor")

MAX_REQUEST = 4096
MAX_OUTBOX = 8 << 20
MAX_CLIENTS = 8
IDLE_TIMEOUT = 120.0
LOOP_ANSWER_TIMEOUT = 2.0
_SELECT_TIMEOUT = 0.5
_WATCH_SYNC_INTERVAL = 1.0
_COMMANDS = ("hello", "loops", "stats", "tasks", "stall")


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("pyloop-aio")
    except metadata.PackageNotFoundError:
        return "unknown"


# ---- where the socket lives -------------------------------------------------------------

def _runtime_dir() -> str | None:
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and os.path.isabs(base) and os.path.isdir(base):
        return os.path.join(base, "pyloop")
    return None


def _temp_dir() -> str:
    return os.path.join(tempfile.gettempdir(), f"pyloop-{os.geteuid()}")


def socket_path(pid: int | None = None) -> str:
    """Where :func:`serve` puts the socket of process ``pid`` (this one by default):
    ``$XDG_RUNTIME_DIR/pyloop/monitor-PID.sock``, or ``pyloop-UID/monitor-PID.sock``
    in the temp directory when there is no runtime directory."""
    pid = os.getpid() if pid is None else pid
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        raise ValueError(f"a process id is a positive int, got {pid!r}")
    return os.path.join(_runtime_dir() or _temp_dir(), f"monitor-{pid}.sock")


def candidate_paths(pid: int) -> list[str]:
    """The paths a process ``pid`` may serve at, most likely first (the client's
    environment may differ from the server's, e.g. under sudo)."""
    paths = [socket_path(pid)]
    fallback = os.path.join(_temp_dir(), f"monitor-{pid}.sock")
    if fallback not in paths:
        paths.append(fallback)
    return paths


def _private_dir(path: str) -> None:
    """Make ``path`` a directory only this user can enter, or refuse one that is not."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise PermissionError(f"{path} is not a directory (a symlink?): refusing to serve there")
    if st.st_uid != os.geteuid():
        raise PermissionError(f"{path} belongs to uid {st.st_uid}, not to this user: refusing to serve there")
    if st.st_mode & 0o077:
        raise PermissionError(f"{path} is open to other users (mode {stat.S_IMODE(st.st_mode):o}): "
                              f"refusing to serve there")


def _remove_dead(directory: str) -> None:
    """Remove the sockets that processes which are gone left in our directory (a
    process killed by a signal, or ended with ``os._exit``, cannot remove its own)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if not (name.startswith("monitor-") and name.endswith(".sock")):
            continue
        try:
            pid = int(name[len("monitor-"):-len(".sock")])
            os.kill(pid, 0)
        except ValueError:
            continue
        except ProcessLookupError:
            path = os.path.join(directory, name)
            try:
                if stat.S_ISSOCK(os.lstat(path).st_mode):
                    os.unlink(path)
            except OSError:
                pass
        except OSError:         # alive, someone else's (EPERM)
            continue


def _bind(path: str) -> socket.socket:
    if os.path.lexists(path):
        if not stat.S_ISSOCK(os.lstat(path).st_mode):
            raise FileExistsError(errno.EEXIST, "exists and is not a socket", path)
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
        except OSError:             # nobody listens: left by a process that died
            os.unlink(path)
        else:
            raise FileExistsError(errno.EADDRINUSE, "another process serves there", path)
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        # Before listen(): until then a connect() is refused, so there is no
        # window in which the socket has the umask's mode and accepts.
        os.chmod(path, 0o600)
        sock.listen(16)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def peer_uid(sock: socket.socket) -> int | None:
    """The uid of the process at the other end of a Unix socket, if the OS says."""
    if hasattr(socket, "SO_PEERCRED"):
        data = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
        return int(struct.unpack("3i", data)[1])
    if sys.platform.startswith(("darwin", "freebsd")):
        # struct xucred { u_int cr_version; uid_t cr_uid; short cr_ngroups; gid_t cr_groups[16]; }
        local_peercred, sol_local = 0x001, 0
        data = sock.getsockopt(sol_local, local_peercred, struct.calcsize("IIh16I"))
        return int(struct.unpack_from("II", data)[1])
    return None


# ---- the server ----------------------------------------------------------------------------

class _Conn:
    __slots__ = ("sock", "inbuf", "outbuf", "last_active", "pending", "closing")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.last_active = time.monotonic()
        # A tasks request waiting for its loop: (token, deadline, request id, loop).
        self.pending: tuple[object, float, Any, Any] | None = None
        self.closing = False


class MonitorServer:
    """The process's monitor socket (what :func:`serve` returns).

    ``path`` is where it listens; ``close()`` (or leaving a ``with`` block, or
    the process exiting) stops it and removes the socket.
    """

    def __init__(self, path: str, stall_threshold: float) -> None:
        self.path = path
        self.stall_threshold = stall_threshold
        self._pid = os.getpid()
        self._extra_loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()
        self._own_watches: weakref.WeakKeyDictionary[Any, StallWatch] = weakref.WeakKeyDictionary()
        self._answers: collections.deque[tuple[_Conn, object, dict[str, Any]]] = collections.deque()
        self._conns: dict[int, _Conn] = {}
        self._stopping = False
        self._closed = False
        self._listener = _bind(path)
        self._inode = os.stat(path).st_ino
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._listener, selectors.EVENT_READ, "listen")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._thread = threading.Thread(target=self._run, name="pyloop-monitor-server", daemon=True)
        self._thread.start()

    @property
    def closed(self) -> bool:
        """True once the server was closed."""
        return self._closed

    def add_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Serve ``loop`` too: for a loop that is not pyloop's (pyloop loops are all
        served without asking)."""
        if not _counters.supports(loop):
            self._extra_loops.add(loop)

    def close(self) -> None:
        """Stop serving and remove the socket (idempotent)."""
        global _server
        if self._closed:
            return
        self._closed = True
        self._stopping = True
        self._wake()
        if self._thread is not threading.current_thread():
            self._thread.join()
        for watch in list(self._own_watches.values()):
            watch.stop()
        if os.getpid() == self._pid:
            try:
                if os.stat(self.path).st_ino == self._inode:
                    os.unlink(self.path)
            except OSError:
                pass
        with _lock:
            if _server is self:
                _server = None

    def __enter__(self) -> MonitorServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<MonitorServer {self.path!r}{' closed' if self._closed else ''}>"

    # ---- the thread -------------------------------------------------------------------

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:             # full (a wake-up is pending anyway) or closed
            pass

    def _run(self) -> None:
        last_sync = 0.0
        try:
            while not self._stopping:
                for key, mask in self._sel.select(self._select_timeout()):
                    if key.data == "listen":
                        self._accept()
                    elif key.data == "wake":
                        self._drain_wake()
                    else:
                        self._service(key.data, mask)
                self._deliver_answers()
                now = time.monotonic()
                self._expire(now)
                if now - last_sync >= _WATCH_SYNC_INTERVAL:
                    last_sync = now
                    self._sync_watches()
        except Exception:
            logger.exception("pyloop.monitor: the monitor socket stopped")
        finally:
            for conn in list(self._conns.values()):
                self._drop(conn)
            self._sel.close()
            self._listener.close()
            self._wake_r.close()
            self._wake_w.close()

    def _select_timeout(self) -> float:
        timeout = _SELECT_TIMEOUT
        now = time.monotonic()
        for conn in self._conns.values():
            if conn.pending is not None:
                timeout = min(timeout, max(conn.pending[1] - now, 0.0))
        return timeout

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except OSError:
            pass

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:      # EMFILE and friends: try again later
                logger.warning("pyloop.monitor: accept failed: %s", exc)
                return
            sock.setblocking(False)
            try:
                uid = peer_uid(sock)
            except OSError:
                uid = -1
            if uid is not None and uid != os.geteuid():
                self._refuse(sock, f"permission denied: the monitor of process {os.getpid()} "
                                   f"answers its own user only")
                continue
            if len(self._conns) >= MAX_CLIENTS:
                self._refuse(sock, f"too many monitor clients (at most {MAX_CLIENTS})")
                continue
            conn = _Conn(sock)
            self._conns[sock.fileno()] = conn
            self._sel.register(sock, selectors.EVENT_READ, conn)

    def _refuse(self, sock: socket.socket, message: str) -> None:
        try:
            sock.send(_encode({"ok": False, "error": message}))
        except OSError:
            pass
        sock.close()

    def _service(self, conn: _Conn, mask: int) -> None:
        if mask & selectors.EVENT_READ:
            try:
                data = conn.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError:
                self._drop(conn)
                return
            if data == b"":
                self._drop(conn)
                return
            if data:
                conn.last_active = time.monotonic()
                conn.inbuf += data
                self._process(conn)
        if mask & selectors.EVENT_WRITE and conn.sock.fileno() in self._conns:
            self._flush(conn)

    def _process(self, conn: _Conn) -> None:
        while conn.pending is None and not conn.closing and conn.sock.fileno() in self._conns:
            end = conn.inbuf.find(b"\n")
            if end < 0:
                if len(conn.inbuf) > MAX_REQUEST:
                    # No end in sight: answer, then hang up (nothing to resync on).
                    conn.inbuf.clear()
                    self._send(conn, {"ok": False, "error": f"request too large (at most {MAX_REQUEST} "
                                                            f"bytes, ending in a newline)"})
                    conn.closing = True
                    self._flush(conn)
                return
            line = bytes(conn.inbuf[:end])
            del conn.inbuf[:end + 1]
            if len(line) > MAX_REQUEST:
                self._send(conn, {"ok": False, "error": f"request too large (at most {MAX_REQUEST} bytes)"})
                continue
            if line.strip():
                self._request(conn, line)

    def _request(self, conn: _Conn, line: bytes) -> None:
        try:
            request = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            self._send(conn, {"ok": False, "error": "malformed request: not JSON"})
            return
        if not isinstance(request, dict):
            self._send(conn, {"ok": False, "error": "malformed request: not a JSON object"})
            return
        rid = request.get("id")
        if not isinstance(rid, (int, str, type(None))) or isinstance(rid, bool):
            rid = None
        cmd = request.get("cmd")
        if cmd not in _COMMANDS:
            self._send(conn, {"ok": False, "id": rid,
                              "error": f"unknown command {cmd!r}; commands: {', '.join(_COMMANDS)}"})
            return
        try:
            if cmd in ("hello", "loops"):
                reply: dict[str, Any] = {"loops": [_describe(loop) for loop in self._loops()]}
                if cmd == "hello":
                    reply.update(pid=os.getpid(), python=sys.version.split()[0], pyloop=_version(),
                                 argv=sys.argv[:8])
                self._send(conn, {"ok": True, "id": rid, **reply})
                return
            loop = self._pick(request.get("loop"))
            if cmd == "stats":
                self._send(conn, {"ok": True, "id": rid, **self._stats(loop)})
            elif cmd == "stall":
                self._send(conn, {"ok": True, "id": rid, "loop": _describe(loop), **self._stall(loop)})
            else:
                self._tasks(conn, loop, rid)
        except LookupError as exc:
            self._send(conn, {"ok": False, "id": rid, "error": str(exc.args[0])})
        except Exception as exc:
            self._send(conn, {"ok": False, "id": rid, "error": f"{type(exc).__name__}: {exc}"})

    # ---- what is served ---------------------------------------------------------------

    def _loops(self) -> list[asyncio.AbstractEventLoop]:
        loops: list[asyncio.AbstractEventLoop] = list(_counters.live_loops())
        loops += [loop for loop in list(self._extra_loops) if not loop.is_closed()]
        return loops

    def _pick(self, wanted: Any) -> asyncio.AbstractEventLoop:
        loops = self._loops()
        if wanted is not None:
            for loop in loops:
                if id(loop) == wanted:
                    return loop
            raise LookupError(f"no loop {wanted!r} here; ask 'loops' for their ids")
        for loop in loops:
            if loop.is_running():
                return loop
        if loops:
            return loops[0]
        raise LookupError(f"process {os.getpid()} has no event loop to monitor")

    def _stall(self, loop: asyncio.AbstractEventLoop) -> dict[str, Any]:
        watch = current_watch(loop)
        if watch is None:
            return {"stall": None, "last_stall": None, "stalls": None, "stall_threshold": None}
        current, last = watch.current, watch.last
        if current is not None:
            # The report was made when the stall was seen; say how long it is now.
            current = dataclasses.replace(current, blocked_for=time.monotonic() - current.started_at)
        return {"stall": current.as_dict() if current else None,
                "last_stall": last.as_dict() if last else None,
                "stalls": watch.count, "stall_threshold": watch.threshold}

    def _stats(self, loop: asyncio.AbstractEventLoop) -> dict[str, Any]:
        reply: dict[str, Any] = {"loop": _describe(loop)}
        if _counters.supports(loop):
            reply["metrics"] = _metrics(loop).as_dict()
        else:
            reply["metrics"] = None
            reply["live_tasks"] = len(asyncio.all_tasks(loop))
        reply.update(self._stall(loop))
        return reply

    def _tasks(self, conn: _Conn, loop: asyncio.AbstractEventLoop, rid: Any) -> None:
        head = {"ok": True, "id": rid, "loop": _describe(loop)}
        if not loop.is_running():
            infos = _tasks._collect(loop)
            self._send(conn, {**head, "tasks": [i.as_dict() for i in infos]})
            return
        token = object()

        def collect() -> None:          # on the loop's thread
            try:
                reply = {**head, "tasks": [i.as_dict() for i in _tasks._collect(loop)]}
            except Exception as exc:
                reply = {"ok": False, "id": rid, "error": f"{type(exc).__name__}: {exc}"}
            self._answers.append((conn, token, reply))
            self._wake()

        loop.call_soon_threadsafe(collect)
        conn.pending = (token, time.monotonic() + LOOP_ANSWER_TIMEOUT, rid, weakref.ref(loop))

    def _deliver_answers(self) -> None:
        while self._answers:
            conn, token, reply = self._answers.popleft()
            if conn.pending is None or conn.pending[0] is not token:
                continue            # answered by the timeout already
            conn.pending = None
            if conn.sock.fileno() in self._conns:
                self._send(conn, reply)
                self._process(conn)

    def _expire(self, now: float) -> None:
        for conn in list(self._conns.values()):
            if conn.pending is not None and now >= conn.pending[1]:
                rid, loop = conn.pending[2], conn.pending[3]()
                conn.pending = None
                stall = self._stall(loop)["stall"] if loop is not None else None
                self._send(conn, {"ok": False, "id": rid, "stall": stall,
                                  "error": f"the loop did not answer within {LOOP_ANSWER_TIMEOUT} s: "
                                           f"it is blocked (see 'stall')"})
                self._process(conn)
            elif conn.pending is None and now - conn.last_active > IDLE_TIMEOUT:
                self._drop(conn)

    def _sync_watches(self) -> None:
        # A silent watchdog on every pyloop loop that has none, so that 'stats' and
        # top can show a stall as it happens (free: it reads counters without the GIL).
        for loop in _counters.live_loops():
            if current_watch(loop) is None:
                try:
                    self._own_watches[loop] = StallWatch(loop, self.stall_threshold, _ignore)
                except RuntimeError:
                    pass

    # ---- output -------------------------------------------------------------------------

    def _send(self, conn: _Conn, reply: dict[str, Any]) -> None:
        conn.outbuf += _encode(reply)
        if len(conn.outbuf) > MAX_OUTBOX:
            self._drop(conn)        # it stopped reading: not our memory's problem
            return
        self._flush(conn)

    def _flush(self, conn: _Conn) -> None:
        try:
            while conn.outbuf:
                sent = conn.sock.send(conn.outbuf)
                del conn.outbuf[:sent]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self._drop(conn)
            return
        if conn.outbuf:
            self._sel.modify(conn.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, conn)
        elif conn.closing:
            self._drop(conn)
        else:
            self._sel.modify(conn.sock, selectors.EVENT_READ, conn)

    def _drop(self, conn: _Conn) -> None:
        fd = conn.sock.fileno()
        if self._conns.pop(fd, None) is not None:
            try:
                self._sel.unregister(conn.sock)
            except (KeyError, ValueError):
                pass
        conn.sock.close()

    def _forget_in_child(self) -> None:
        # After fork(): the thread is gone and the socket is the parent's.
        self._closed = True
        for sock in [self._listener, self._wake_r, self._wake_w] + [c.sock for c in self._conns.values()]:
            try:
                sock.close()
            except OSError:
                pass
        try:
            self._sel.close()
        except (OSError, ValueError):
            pass


def _ignore(report: Any) -> None:
    pass


def _encode(reply: dict[str, Any]) -> bytes:
    return json.dumps(reply, default=str, separators=(",", ":")).encode() + b"\n"


def _describe(loop: asyncio.AbstractEventLoop) -> dict[str, Any]:
    kind = type(loop)
    return {"id": id(loop), "type": f"{kind.__module__}.{kind.__qualname__}",
            "pyloop": _counters.supports(loop), "running": loop.is_running(),
            "closed": loop.is_closed()}


# ---- the process's one server ---------------------------------------------------------------

_server: MonitorServer | None = None
_lock = threading.Lock()
_autostarted = False
_atexit_registered = False


def serve(path: str | None = None, *, loop: asyncio.AbstractEventLoop | None = None,
          stall_threshold: float = 0.1) -> MonitorServer:
    """Answer ``python -m pyloop ps|top|stats PID`` on a Unix socket, from a thread.

    One server per process, serving every pyloop loop of the process (and
    ``loop``, or the running loop, if it is another asyncio loop).  The socket
    is at ``path`` or :func:`socket_path`, mode 0600 in a directory only this
    user can enter, and removed at exit; only this user's processes may connect
    (checked with ``SO_PEERCRED``); the protocol is read-only.  A watchdog with
    ``stall_threshold`` records stalls for ``top`` and ``stats`` (silently; use
    :func:`watch_stalls` to have them logged), and task creation times are noted
    from now on (:func:`track_task_ages`).  Calling it again returns the same
    server; ``PYLOOP_MONITOR=1`` in the environment calls it when pyloop is
    imported (``PYLOOP_MONITOR=/path/to.sock`` picks the path).

    >>> server = monitor.serve()
    >>> server.path
    '/run/user/1000/pyloop/monitor-4242.sock'
    """
    global _server, _atexit_registered
    if path is not None and not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {path!r}")
    if isinstance(stall_threshold, bool) or not isinstance(stall_threshold, (int, float)) \
            or not 0 < stall_threshold < float("inf"):
        raise ValueError(f"stall_threshold must be a positive number of seconds, got {stall_threshold!r}")
    if loop is None:
        loop = asyncio._get_running_loop()
    elif not isinstance(loop, asyncio.AbstractEventLoop):
        raise TypeError(f"an asyncio event loop was expected, got {loop!r}")
    with _lock:
        if _server is not None and not _server.closed:
            if path is not None and os.path.abspath(os.fspath(path)) != _server.path:
                raise RuntimeError(f"this process already serves its monitor at {_server.path}")
            server = _server
        else:
            if path is None:
                target = socket_path()
                _private_dir(os.path.dirname(target))
                _remove_dead(os.path.dirname(target))
            else:
                target = os.path.abspath(os.fspath(path))
            server = _server = MonitorServer(target, float(stall_threshold))
            if not _atexit_registered:
                atexit.register(_close_at_exit)
                _atexit_registered = True
    _tasks.track_task_ages(True)
    if loop is not None:
        server.add_loop(loop)
    return server


def _close_at_exit() -> None:
    server = _server
    if server is not None:
        server.close()


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


def autostart() -> None:
    """Serve as ``PYLOOP_MONITOR`` says: 1/true/yes/on for the default path, an
    absolute path for that path, nothing for 0/false/no/off/unset."""
    global _autostarted
    value = os.environ.get("PYLOOP_MONITOR", "").strip()
    if value.lower() in _FALSE:
        return
    try:
        if value.lower() in _TRUE:
            serve()
        elif os.path.isabs(value):
            serve(value)
        else:
            logger.warning("pyloop.monitor: PYLOOP_MONITOR=%r is neither 1 nor an absolute path; "
                           "not serving", value)
            return
    except Exception as exc:        # monitoring must never stop the program from starting
        logger.warning("pyloop.monitor: PYLOOP_MONITOR is set but the socket could not be made: %s", exc)
        return
    _autostarted = True


def _after_fork_in_child() -> None:
    global _server, _lock
    _lock = threading.Lock()    # another thread may have held it at the fork
    server = _server
    if server is None:
        return
    _server = None
    server._forget_in_child()
    if _autostarted:
        autostart()             # the child is a process of its own: its own socket


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
