"""Child processes: ``loop.subprocess_exec`` / ``subprocess_shell`` and the
``SubprocessTransport`` behind ``asyncio.create_subprocess_exec``.

Starting
--------
The child is forked synchronously by ``Popen`` (``pyloop._process.spawn``:
``subprocess.Popen`` that leaves the exec status to us), so every error Popen
raises before or at the fork is raised from the coroutine, and Popen itself
closes the pipes it made; nothing of ours exists yet, so nothing leaks.  The
child is watched for exit at once (below).  Then the loop reads the child's
exec status through its reactor instead of blocking on it as Popen does: a
failed exec (a missing program, a bad cwd) raises what Popen would have raised,
``FileNotFoundError`` and so on, once the child has been reaped and its pipes
closed.  Then its stdin/stdout/stderr pipes are connected with the loop's own
``connect_write_pipe`` / ``connect_read_pipe`` (pyloop's pipe transports).
Only then is the protocol's ``connection_made`` scheduled; pipe data, pipe
losses and the exit that happen before it are queued and delivered after it,
in order.  If connecting fails or the coroutine is cancelled meanwhile, the
child is killed, the pipes are closed and the coroutine waits for the child to
be reaped before it re-raises: no orphan, no zombie.

Callback order (what asyncio guarantees, no more)
-------------------------------------------------
``connection_made`` first; ``pipe_data_received`` / ``pipe_connection_lost``
per pipe in order; ``process_exited`` once, in any order relative to the
pipes; ``connection_lost(None)`` last, only after the exit *and* the loss of
every pipe.  ``Process.wait()`` (``transport._wait()``) returns at once when
the exit status is known, else when ``connection_lost`` has run -- as in the
running Python's asyncio.  Every one of them runs in the protocol's context,
``_context`` (a copy of the context current when the transport was made), as
uvloop does; ``pause_writing``/``resume_writing`` for the child's stdin in a
copy of it (see ``pyloop._transports.flow``).

Reaping
-------
Each child is reaped by the loop that started it, by pid, never with
``waitpid(-1)``: children the application started otherwise are left alone.

1. ``os.pidfd_open(pid)`` (Linux >= 5.3): the pidfd becomes readable when the
   child exits; the loop watches it like any fd and then calls
   ``waitpid(pid, WNOHANG)`` -- which cannot block, the child is a zombie.
2. Without pidfds (other systems, old kernels, a seccomp filter saying
   ENOSYS/EPERM), a loop in the main thread listens for SIGCHLD through its
   signal machinery (``pyloop._process.signals``) and, on each, tries ``waitpid(pid,
   WNOHANG)`` for each of *its* children.  It also tries once right after the
   start, in case the child is already gone.
3. Elsewhere (a loop in another thread, where SIGCHLD cannot be handled) a
   helper thread per child blocks in ``waitpid(pid, 0)`` and hands the status
   to the loop with ``call_soon_threadsafe``.

``Popen.poll()`` -- which ``Popen.send_signal`` and ``transport.close()``
call, as asyncio's do -- may reap the child first; ``waitpid`` then fails with
ECHILD and the status Popen recorded is used.  The status is stored into the
``Popen`` object as soon as we reap, so later ``send_signal`` calls become
no-ops instead of signalling a recycled pid.  Like asyncio, a child whose
status was lost (SIGCHLD set to SIG_IGN: the kernel reaps) reports 255.

The exit reaches the transport one loop iteration after the reap (as with
asyncio's watchers), so output already sitting in a pipe is normally delivered
before ``process_exited``.

When the loop is closed with children still running, ``_close_subprocesses()``
(to be called from the loop's ``close()``) hands each of them to a helper
thread that reaps it when it exits; the children are not killed (asyncio
does not kill them either).
"""

import contextvars
import errno
import logging
import os
import signal
import subprocess
import threading
import warnings
from asyncio import protocols as _aio_protocols
from asyncio import transports as _aio_transports

from .spawn import exec_error, popen_class, read_exec_status

logger = logging.getLogger("asyncio")

_PIDFD_UNSUPPORTED = frozenset({errno.ENOSYS, errno.EPERM, errno.EINVAL,
                                errno.EOPNOTSUPP})

# Which fd of the child each pipe is.
_STDIN, _STDOUT, _STDERR = 0, 1, 2


def _wake(future):
    if not future.done():
        future.set_result(None)


def _exit_code(status):
    """A waitpid() status as a returncode (negative: killed by a signal)."""
    try:
        return os.waitstatus_to_exitcode(status)
    except ValueError:
        return status   # not an exit: pass on what we got


class _PipeProto(_aio_protocols.Protocol):
    """The protocol of one child pipe: forwards to the subprocess transport.

    It registers itself in the transport's pipe table when it is made, so the
    table never misses a pipe that connected and was lost in between.
    """

    def __init__(self, owner, fd):
        self.owner = owner
        self.fd = fd
        self.pipe = None
        self.disconnected = False
        owner._pipes[fd] = self

    def __repr__(self):
        return f"<{type(self).__name__} fd={self.fd} pipe={self.pipe!r}>"

    def connection_made(self, transport):
        self.pipe = transport

    def data_received(self, data):
        self.owner._pipe_data_received(self.fd, data)

    def eof_received(self):
        return None     # let the pipe transport close

    def connection_lost(self, exc):
        self.disconnected = True
        owner, self.owner = self.owner, None
        owner._pipe_connection_lost(self.fd, exc)

    # Write flow control of the child's stdin is the protocol's.
    def pause_writing(self):
        owner = self.owner
        if owner is not None and owner._protocol is not None:
            owner._context.copy().run(owner._protocol.pause_writing)

    def resume_writing(self):
        owner = self.owner
        if owner is not None and owner._protocol is not None:
            owner._context.copy().run(owner._protocol.resume_writing)


class SubprocessTransport(_aio_transports.SubprocessTransport):
    """A child process and its pipes (``asyncio.SubprocessTransport``)."""

    # Read by __del__/__repr__, which may see a half-built instance.
    _closed = True
    _proc = None
    _pid = None
    _returncode = None
    _pipes = {}

    def __init__(self, loop, protocol, args, shell, stdin, stdout, stderr,
                 bufsize, extra=None, **kwargs):
        super().__init__(extra)
        self._loop = loop
        self._protocol = protocol
        self._context = contextvars.copy_context()
        self._pipes = {}
        for fd, how in ((_STDIN, stdin), (_STDOUT, stdout), (_STDERR, stderr)):
            if how == subprocess.PIPE:
                self._pipes[fd] = None      # until its protocol exists
        self._pending = []          # calls held back until connection_made
        self._exit_waiters = []     # _wait(): woken after connection_lost
        self._reap_waiters = []     # _wait_reaped(): woken at the exit
        self._finished = False
        self._abandoned = False     # creation failed: the protocol never hears
        self._exec_status_fd = -1   # until _wait_exec has read it

        # The child starts here; Popen's errors propagate (it cleans up its
        # own pipes), and nothing of ours exists yet to clean up.
        self._proc = popen_class()(
            args, shell=shell, stdin=stdin, stdout=stdout, stderr=stderr,
            universal_newlines=False, bufsize=bufsize, **kwargs)
        self._exec_status_fd = getattr(self._proc, "exec_status_fd", -1)
        self._closed = False
        self._pid = self._proc.pid
        self._extra["subprocess"] = self._proc
        try:
            loop._watch_child(self._proc, self._process_exited)
        except BaseException:
            # Nobody watches the child: kill and reap it here (a rare path;
            # the wait after SIGKILL is short).
            self._abandon()
            try:
                self._proc.wait()
            except ChildProcessError:
                pass
            raise

    def __repr__(self):
        info = [type(self).__name__]
        if self._closed:
            info.append("closed")
        if self._pid is not None:
            info.append(f"pid={self._pid}")
        if self._returncode is not None:
            info.append(f"returncode={self._returncode}")
        elif self._pid is not None:
            info.append("running")
        else:
            info.append("not started")
        pipes = {fd: getattr(proto, "pipe", None)
                 for fd, proto in self._pipes.items()}
        if pipes.get(_STDIN) is not None:
            info.append(f"stdin={pipes[_STDIN]}")
        for fd, name in ((_STDOUT, "stdout"), (_STDERR, "stderr")):
            if pipes.get(fd) is not None:
                info.append(f"{name}={pipes[fd]}")
        return "<{}>".format(" ".join(info))

    # ---- creation -------------------------------------------------------

    async def _wait_exec(self):
        """Wait (through the reactor) until the child has exec'ed; if its
        exec failed, wait until it is reaped and raise what Popen raises."""
        fd = self._exec_status_fd
        if fd < 0:
            return      # plain Popen read it already
        try:
            status = await read_exec_status(self._loop, fd)
        finally:
            self._close_exec_status()
        if status:
            proc = self._proc
            exc = exec_error(status, proc.exec_filename, proc.exec_cwd)
            # The child exits right after writing the status: reap it first,
            # so that _abandon finds nothing to kill.
            await self._wait_reaped()
            raise exc

    def _close_exec_status(self):
        fd, self._exec_status_fd = self._exec_status_fd, -1
        if fd >= 0:
            os.close(fd)

    async def _connect(self):
        """Connect the child's pipes, then schedule ``connection_made`` and
        whatever happened meanwhile."""
        proc = self._proc
        loop = self._loop
        if proc.stdin is not None:
            await loop.connect_write_pipe(lambda: _PipeProto(self, _STDIN),
                                          proc.stdin)
        if proc.stdout is not None:
            await loop.connect_read_pipe(lambda: _PipeProto(self, _STDOUT),
                                         proc.stdout)
        if proc.stderr is not None:
            await loop.connect_read_pipe(lambda: _PipeProto(self, _STDERR),
                                         proc.stderr)
        loop.call_soon(self._protocol.connection_made, self, context=self._context)
        pending, self._pending = self._pending, None
        for callback, args in pending:
            loop.call_soon(callback, *args, context=self._context)
        # Return only after connection_made has run: asyncio.subprocess
        # reads the protocol's streams as soon as the creator resumes.
        connected = loop.create_future()
        loop.call_soon(_wake, connected)
        await connected

    def _abandon(self):
        """Creation failed: kill the child, close every pipe; the protocol
        (which never saw connection_made) hears nothing."""
        self._abandoned = True
        self._pending = []
        self._close_exec_status()
        self.close()
        # A pipe whose transport got as far as connection_made is closed by
        # close() above, through its transport.  Any other was never taken
        # over, or its transport was closed (and stopped watching the fd)
        # when the connect call failed: close the file here.  Closing a file
        # twice is harmless.
        proc = self._proc
        for fd, f in ((_STDIN, proc.stdin), (_STDOUT, proc.stdout),
                      (_STDERR, proc.stderr)):
            proto = self._pipes.get(fd)
            if f is not None and (proto is None or proto.pipe is None):
                f.close()

    async def _wait_reaped(self):
        """Wait until the child has been reaped (creation-failure path)."""
        if self._returncode is not None:
            return self._returncode
        waiter = self._loop.create_future()
        self._reap_waiters.append(waiter)
        return await waiter

    # ---- asyncio.SubprocessTransport ------------------------------------

    def get_protocol(self):
        return self._protocol

    def set_protocol(self, protocol):
        self._protocol = protocol

    def is_closing(self):
        return self._closed

    def get_pid(self):
        """The child's process id."""
        return self._pid

    def get_returncode(self):
        """The exit code (negative: killed by that signal), None while the
        child runs."""
        return self._returncode

    def get_pipe_transport(self, fd):
        """The pipe transport of the child's fd 0, 1 or 2, or None."""
        proto = self._pipes.get(fd)
        return proto.pipe if proto is not None else None

    def _check_proc(self):
        if self._proc is None:
            raise ProcessLookupError()

    def send_signal(self, signal):
        """Send ``signal`` to the child (nothing once it has exited;
        ProcessLookupError once the transport has finished)."""
        self._check_proc()
        self._proc.send_signal(signal)

    def terminate(self):
        self._check_proc()
        self._proc.terminate()

    def kill(self):
        self._check_proc()
        self._proc.kill()

    def close(self):
        """Close the pipes; kill the child if it still runs."""
        if self._closed:
            return
        self._closed = True
        loop = self._loop
        if loop is None or not loop.is_closed():
            for proto in self._pipes.values():
                if proto is not None and proto.pipe is not None:
                    proto.pipe.close()
        # (After the loop was closed the pipe transports cannot schedule
        # their endings; they close their pipes when they are collected.)
        proc = self._proc
        if (proc is not None and self._returncode is None
                and proc.poll() is None):
            if self._loop is not None and self._loop.get_debug():
                logger.warning("Close running child process: kill %r", self)
            try:
                proc.kill()
            except ProcessLookupError:
                pass

    def __del__(self, _warn=warnings.warn):
        if not self._closed:
            _warn(f"unclosed transport {self!r}", ResourceWarning, source=self)
            self.close()

    # ---- events ---------------------------------------------------------

    def _call(self, callback, *args):
        if self._pending is not None:
            self._pending.append((callback, args))
        else:
            self._loop.call_soon(callback, *args, context=self._context)

    def _notify(self, method, *args):
        """Schedule ``protocol.method(*args)`` -- unless creation failed
        (the protocol never heard of us, and ``_protocol`` may be gone)."""
        if not self._abandoned and self._protocol is not None:
            self._call(getattr(self._protocol, method), *args)

    def _pipe_data_received(self, fd, data):
        self._notify("pipe_data_received", fd, data)

    def _pipe_connection_lost(self, fd, exc):
        self._notify("pipe_connection_lost", fd, exc)
        self._try_finish()

    def _process_exited(self, returncode):
        """The child was reaped (called by the loop's child watcher)."""
        if self._returncode is not None:
            return
        self._returncode = returncode
        proc = self._proc
        if proc is not None and proc.returncode is None:
            proc.returncode = returncode
        loop = self._loop
        if loop is not None and loop.get_debug():
            logger.info("%r exited with return code %r", self, returncode)
        for waiter in self._reap_waiters:
            if not waiter.done():
                waiter.set_result(returncode)
        self._reap_waiters = []
        self._notify("process_exited")
        self._try_finish()

    def _try_finish(self):
        if self._finished or self._returncode is None:
            return
        if all(p is not None and p.disconnected for p in self._pipes.values()):
            self._finished = True
            if self._abandoned:
                self._release()
            else:
                self._call(self._call_connection_lost, None)

    def _call_connection_lost(self, exc):
        try:
            self._protocol.connection_lost(exc)
        finally:
            self._release()

    def _release(self):
        waiters, self._exit_waiters = self._exit_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(self._returncode)
        self._loop = None
        self._proc = None
        self._protocol = None

    async def _wait(self):
        """The returncode, once known (``asyncio.subprocess.Process.wait``)."""
        if self._returncode is not None:
            return self._returncode
        waiter = self._loop.create_future()
        self._exit_waiters.append(waiter)
        return await waiter


class _ChildWatch:
    """One child being watched by a loop."""

    __slots__ = ("proc", "pid", "callback", "how", "pidfd", "done")

    def __init__(self, proc, callback):
        self.proc = proc
        self.pid = proc.pid
        self.callback = callback
        self.how = None         # 'pidfd', 'sigchld' or 'thread'
        self.pidfd = -1
        self.done = False


def _reap_nohang(watch):
    """Reap the child if it exited: its returncode, or None if it runs."""
    try:
        pid, status = os.waitpid(watch.pid, os.WNOHANG)
    except ChildProcessError:
        # Reaped elsewhere (Popen.poll() from send_signal/close, or the kernel
        # because SIGCHLD is ignored).
        return _lost_status(watch.proc)
    if pid == 0:
        return None
    return _exit_code(status)


def _lost_status(proc):
    if proc.returncode is not None:
        return proc.returncode
    logger.warning("Unknown child process pid %d, will report returncode 255",
                   proc.pid)
    return 255


def _reap_in_thread(loop, watch):
    """Helper thread: block until the child exits, then tell the loop."""
    try:
        _, status = os.waitpid(watch.pid, 0)
    except ChildProcessError:
        returncode = None
    else:
        returncode = _exit_code(status)
        if watch.proc.returncode is None:
            watch.proc.returncode = returncode
    if loop is None:
        return
    try:
        loop.call_soon_threadsafe(loop._child_reaped_in_thread, watch,
                                  returncode)
    except RuntimeError:
        pass    # the loop was closed meanwhile; the child is reaped anyway


def _check_popen_args(want_shell, universal_newlines, shell, bufsize, text, encoding, errors):
    """Refuse the Popen arguments the asyncio subprocess API does not take:
    the transport's pipes carry bytes, unbuffered, and exec/shell is chosen by
    the method called.  The errors and their order are asyncio's."""
    if universal_newlines:
        raise ValueError("universal_newlines must be False")
    if bool(shell) != want_shell:
        raise ValueError(f"shell must be {want_shell}")
    if bufsize != 0:
        raise ValueError("bufsize must be 0")
    if text:
        raise ValueError("text must be False")
    if encoding is not None:
        raise ValueError("encoding must be None")
    if errors is not None:
        raise ValueError("errors must be None")


class SubprocessMixin:
    """``subprocess_exec`` / ``subprocess_shell`` of ``AbstractEventLoop``
    and the loop's child watcher.

    Service of ``Loop``: state created by ``_init_subprocesses``, released
    by ``_close_subprocesses`` (from ``close()``).  Needs from the loop:
    ``_add_reader`` / ``_remove_reader`` (pidfds), ``call_soon`` /
    ``call_soon_threadsafe``, ``create_future``, the signal service's
    ``_signal_add_listener`` / ``_signal_remove_listener`` (SIGCHLD), and
    ``connect_read_pipe`` / ``connect_write_pipe`` (the child's pipes).
    """

    # Configuration, not state: which reapers may be used, best first; tests
    # subclass to turn them off and exercise the fallbacks (the helper thread
    # is always allowed).
    _use_pidfd = hasattr(os, "pidfd_open")
    _use_sigchld = True

    def _init_subprocesses(self):
        self._child_watches = {}     # pid -> _ChildWatch of every unreaped child
        self._sigchld_listening = False

    async def subprocess_exec(self, protocol_factory, program, *args,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=False,
                              shell=False, bufsize=0, encoding=None,
                              errors=None, text=None, **kwargs):
        """Run ``program`` with ``args`` as a child process:
        ``(transport, protocol)``; ``protocol_factory()`` makes a
        ``SubprocessProtocol``."""
        _check_popen_args(False, universal_newlines, shell, bufsize, text, encoding, errors)
        protocol = protocol_factory()
        if self.get_debug():
            # The arguments may hold secrets: name the program only.
            logger.debug("execute program %r", program)
        transport = await self._make_subprocess_transport(
            protocol, (program,) + args, False, stdin, stdout, stderr,
            bufsize, **kwargs)
        return transport, protocol

    async def subprocess_shell(self, protocol_factory, cmd, *,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE,
                               universal_newlines=False, shell=True,
                               bufsize=0, encoding=None, errors=None,
                               text=None, **kwargs):
        """Run the shell command ``cmd`` (str or bytes) as a child process:
        ``(transport, protocol)``."""
        if not isinstance(cmd, (bytes, str)):
            raise ValueError("cmd must be a string")
        _check_popen_args(True, universal_newlines, shell, bufsize, text, encoding, errors)
        protocol = protocol_factory()
        if self.get_debug():
            logger.debug("run shell command (%d characters)", len(cmd))
        transport = await self._make_subprocess_transport(
            protocol, cmd, True, stdin, stdout, stderr, bufsize, **kwargs)
        return transport, protocol

    async def _make_subprocess_transport(self, protocol, args, shell, stdin,
                                         stdout, stderr, bufsize, extra=None,
                                         **kwargs):
        if self.is_closed():
            raise RuntimeError("Event loop is closed")
        transport = SubprocessTransport(self, protocol, args, shell, stdin,
                                        stdout, stderr, bufsize, extra,
                                        **kwargs)
        try:
            await transport._wait_exec()
            await transport._connect()
        except BaseException:
            if transport._pending is None:
                # The protocol was told already (cancelled at the very end):
                # it gets its usual events; wait for connection_lost.
                transport.close()
                await transport._wait()
            else:
                transport._abandon()
                try:
                    await transport._wait_reaped()
                finally:
                    transport._release()
            raise
        if self.get_debug():
            logger.debug("started %r", transport)
        return transport

    # ---- the child watcher ----------------------------------------------

    def _watch_child(self, proc, callback):
        """Call ``callback(returncode)`` from the loop once ``proc`` has
        exited and been reaped."""
        watch = _ChildWatch(proc, callback)
        self._child_watches[watch.pid] = watch
        try:
            if self._use_pidfd and self._watch_with_pidfd(watch):
                return
            if self._watch_with_sigchld(watch):
                return
            self._watch_with_thread(watch)
        except BaseException:
            self._child_watches.pop(watch.pid, None)
            raise

    def _watch_with_pidfd(self, watch):
        try:
            pidfd = os.pidfd_open(watch.pid)
        except OSError as exc:
            if exc.errno in _PIDFD_UNSUPPORTED:
                # This system has none: do not try again on this loop.
                self._use_pidfd = False
                return False
            if exc.errno == errno.ESRCH:
                # Already reaped by someone else.
                self._child_gone(watch, _lost_status(watch.proc))
                return True
            raise
        try:
            self._add_reader(pidfd, self._on_pidfd_readable, watch)
        except BaseException:
            os.close(pidfd)
            raise
        watch.pidfd = pidfd
        watch.how = "pidfd"
        return True

    def _on_pidfd_readable(self, watch):
        returncode = _reap_nohang(watch)
        if returncode is not None:
            self._child_gone(watch, returncode)

    def _watch_with_sigchld(self, watch):
        if not self._use_sigchld:
            return False
        if threading.current_thread() is not threading.main_thread():
            return False
        if not self._sigchld_listening:
            try:
                self._signal_add_listener(signal.SIGCHLD, self._on_sigchld)
            except RuntimeError:
                return False
            self._sigchld_listening = True
        watch.how = "sigchld"
        # The child may have exited before we listened.
        returncode = _reap_nohang(watch)
        if returncode is not None:
            self._child_gone(watch, returncode)
        return True

    def _on_sigchld(self):
        for watch in list(self._child_watches.values()):
            if watch.how == "sigchld" and not watch.done:
                returncode = _reap_nohang(watch)
                if returncode is not None:
                    self._child_gone(watch, returncode)

    def _watch_with_thread(self, watch):
        watch.how = "thread"
        thread = threading.Thread(target=_reap_in_thread, args=(self, watch),
                                  name=f"pyloop-waitpid-{watch.pid}",
                                  daemon=True)
        thread.start()

    def _child_reaped_in_thread(self, watch, returncode):
        if returncode is None:
            returncode = _lost_status(watch.proc)
        self._child_gone(watch, returncode)

    def _child_gone(self, watch, returncode):
        """The child was reaped: stop watching, tell the transport on the
        next iteration."""
        if watch.done:
            return
        watch.done = True
        if watch.proc.returncode is None:
            watch.proc.returncode = returncode
        self._child_watches.pop(watch.pid, None)
        if watch.pidfd >= 0:
            self._remove_reader(watch.pidfd)
            os.close(watch.pidfd)
            watch.pidfd = -1
        if self._sigchld_listening and not any(
                w.how == "sigchld" for w in self._child_watches.values()):
            self._sigchld_listening = False
            self._signal_remove_listener(signal.SIGCHLD, self._on_sigchld)
        self.call_soon(watch.callback, returncode)

    def _close_subprocesses(self):
        """Called by the loop's ``close()``: stop watching; children still
        running are reaped by helper threads when they exit (not killed)."""
        watches = self._child_watches
        if not watches:
            return
        self._child_watches = {}
        if self._sigchld_listening:
            self._sigchld_listening = False
            try:
                self._signal_remove_listener(signal.SIGCHLD, self._on_sigchld)
            except (ValueError, OSError, RuntimeError) as exc:
                logger.info("could not restore the SIGCHLD handler: %s", exc)
        for watch in watches.values():
            if watch.pidfd >= 0:
                os.close(watch.pidfd)
                watch.pidfd = -1
            # Nothing will be delivered any more: do not keep the transport
            # alive (collecting it unclosed kills the child, as in asyncio).
            watch.callback = None
            # A 'thread' child has its helper thread already.
            if not watch.done and watch.how != "thread":
                watch.done = True
                thread = threading.Thread(
                    target=_reap_in_thread, args=(None, watch),
                    name=f"pyloop-waitpid-{watch.pid}", daemon=True)
                thread.start()
