"""Starting a child without waiting for its exec in the loop thread.

``subprocess.Popen`` forks the child, then reads the child's *exec status*
from a pipe whose write end only the child holds: a successful ``exec``
closes it (close-on-exec), a failed one writes the reason
(``"OSError:2:noexec"``-style: exception name, hex errno, text) and exits.
Popen reads it with a blocking ``os.read`` until end of file.  With vfork
(Popen's default when there is no ``preexec_fn``) the parent thread is
suspended until the exec anyway, so the read is short; after a plain fork
(``preexec_fn``, vfork disabled) it waits for whatever the child does before
its exec.  Either way it is a blocking read in the loop thread, and the
blocking-call detectors that aiohttp's and anyio's test suites switch on fail
it (they exempt asyncio's own ``subprocess_exec`` by name only).

``Popen`` here is ``subprocess.Popen`` with its POSIX ``_execute_child``
stopping short of that read: it does Popen's preparation (argv, environment,
the candidate executables of ``PATH``), forks the child with
``_posixsubprocess.fork_exec`` exactly as Popen does, and leaves the read end
of the exec-status pipe, non-blocking, in ``exec_status_fd``.  The loop then
reads it through its reactor (``read_exec_status``): the read is tried at
once -- after a vfork the answer is already there, and no reactor round trip
is paid -- and only when nothing is there yet does the loop watch the pipe.
The read is made from C (``pyloop._process._syscalls``).  A failed exec
becomes the exception Popen would have raised (``exec_error``):
``FileNotFoundError`` for a missing program, with the program (or, when the
child failed before its exec, the cwd) as the filename.

Everything else is Popen's own: its argument checks and errors before the
fork, its pipes, its cleanup when the fork fails.  ``fork_exec``'s argument
list is private and has changed between Python versions; it is the same in
3.11 to 3.13 (checked) and 3.14.  On other versions, or where
``subprocess.Popen`` was replaced (say by a test double), ``popen_class()``
returns plain ``subprocess.Popen``, whose exec-status read blocks as it
always did; and should ``fork_exec`` refuse our arguments (TypeError, before
any fork), Popen's own ``_execute_child`` starts the child instead.
"""

import builtins
import os
import subprocess
import sys

from . import _syscalls

try:
    from _posixsubprocess import fork_exec as _fork_exec
except ImportError:         # not POSIX
    _fork_exec = None

# Popen reads at most this much of the exec status; so do we.
_EXEC_STATUS_LIMIT = 50000

_FORK_EXEC_KNOWN = (3, 11) <= sys.version_info[:2] <= (3, 14)

_STDLIB_POPEN = subprocess.Popen


def _wake(future):
    if not future.done():
        future.set_result(None)


def _argv(args, shell, executable):
    """The child's argv, as Popen builds it."""
    if isinstance(args, (str, bytes)):
        args = [args]
    elif isinstance(args, os.PathLike):
        if shell:
            raise TypeError("path-like args is not allowed when shell is true")
        args = [args]
    else:
        args = list(args)
    if shell:
        sh = "/system/bin/sh" if hasattr(sys, "getandroidapilevel") else "/bin/sh"
        args = [sh, "-c", *args]
        if executable:
            args[0] = executable
    return args


def _env_list(env):
    """``env`` as ``KEY=value`` bytes for execve, or None to inherit ours."""
    if env is None:
        return None
    out = []
    for key, value in env.items():
        key = os.fsencode(key)
        if b"=" in key:
            raise ValueError("illegal environment variable name")
        out.append(key + b"=" + os.fsencode(value))
    return out


def _executable_candidates(executable, env):
    """The paths the child tries to exec, in order (``PATH`` search without a slash)."""
    executable = os.fsencode(executable)
    if os.path.dirname(executable):
        return (executable,)
    return tuple(os.path.join(os.fsencode(d), executable) for d in os.get_exec_path(env))


def _exec_status_pipe():
    """(read end, non-blocking; write end, not one of fds 0-2, which the child's stdio
    set-up would overwrite).  Both close-on-exec."""
    r, w = os.pipe()
    low = []
    try:
        while w < 3:
            low.append(w)
            w = os.dup(w)
        os.set_blocking(r, False)
    except BaseException:
        for fd in (r, w, *low):
            os.close(fd)
        raise
    for fd in low:
        os.close(fd)
    return r, w


class Popen(_STDLIB_POPEN):
    """``subprocess.Popen`` that forks its child without reading the exec status: the
    caller reads ``exec_status_fd`` (see the module docstring) and owns that fd."""

    def __init__(self, *args, **kwargs):
        self.exec_status_fd = -1
        self.exec_filename = None   # what a failed exec's OSError names ...
        self.exec_cwd = None        # ... or this, when it failed before the exec
        super().__init__(*args, **kwargs)

    def _execute_child(self, args, executable, preexec_fn, close_fds, pass_fds, cwd, env,
                       startupinfo, creationflags, shell, p2cread, p2cwrite, c2pread, c2pwrite,
                       errread, errwrite, restore_signals, gid, gids, uid, umask,
                       start_new_session, process_group):
        argv = _argv(args, shell, executable)
        program = argv[0] if executable is None else executable
        sys.audit("subprocess.Popen", program, argv, cwd, env)
        self.exec_filename = program
        self.exec_cwd = cwd
        env_list = _env_list(env)
        candidates = _executable_candidates(program, env)
        status_r, status_w = _exec_status_pipe()
        try:
            try:
                keep = tuple(sorted({*map(int, pass_fds), status_w}))
                self.pid = _fork_exec(
                    argv, candidates, close_fds, keep, cwd, env_list,
                    p2cread, p2cwrite, c2pread, c2pwrite, errread, errwrite,
                    status_r, status_w, restore_signals, start_new_session,
                    process_group, gid, gids, uid, umask, preexec_fn,
                    getattr(subprocess, "_USE_VFORK", True))
            finally:
                os.close(status_w)
        except TypeError:
            # fork_exec refused its arguments before forking: an argument Popen lets
            # through to it (a non-path in argv), or a Python whose private fork_exec
            # takes others.  Popen's own path gives the answer Popen gives (and, for
            # the latter, starts the child with the blocking read).
            os.close(status_r)
            return super()._execute_child(
                args, executable, preexec_fn, close_fds, pass_fds, cwd, env,
                startupinfo, creationflags, shell, p2cread, p2cwrite, c2pread, c2pwrite,
                errread, errwrite, restore_signals, gid, gids, uid, umask,
                start_new_session, process_group)
        except BaseException:
            os.close(status_r)
            raise
        self._child_created = True
        try:
            # The child has its copies of the stdio pipe ends now.
            self._close_pipe_fds(p2cread, p2cwrite, c2pread, c2pwrite, errread, errwrite)
        except BaseException:
            os.close(status_r)      # Popen.__init__ fails: nobody would read it
            raise
        self.exec_status_fd = status_r      # the caller's from here on


def popen_class():
    """The Popen class to start a child with: ours where it can be, else whatever
    ``subprocess.Popen`` is now (a replacement there is honoured)."""
    if (_fork_exec is not None and _FORK_EXEC_KNOWN
            and subprocess.Popen is _STDLIB_POPEN):
        return Popen
    return subprocess.Popen


async def read_exec_status(loop, fd):
    """Read the exec-status pipe ``fd`` to its end, through ``loop``'s reactor when the
    child has not answered yet; return what the child wrote (empty: the exec succeeded).
    The caller closes ``fd``."""
    data = b""
    while True:
        chunk = _syscalls.read_nonblocking(fd, _EXEC_STATUS_LIMIT)
        if chunk is None:
            readable = loop.create_future()
            loop._add_reader(fd, _wake, readable)
            try:
                await readable
            finally:
                loop._remove_reader(fd)
            continue
        data += chunk
        if not chunk or len(data) > _EXEC_STATUS_LIMIT:
            return data


def exec_error(data, filename, cwd):
    """The exception Popen raises for the exec status ``data`` a failed child wrote."""
    try:
        name, hex_errno, message = bytes(data).split(b":", 2)
        message = message.decode()
        exc_type = getattr(builtins, name.decode("ascii"), None)
        err = int(hex_errno, 16) if hex_errno else 0
    except ValueError:      # UnicodeDecodeError included
        return subprocess.SubprocessError(f"Bad exception data from child: {bytes(data)!r}")
    if not (isinstance(exc_type, type) and issubclass(exc_type, Exception)):
        exc_type = subprocess.SubprocessError
    if issubclass(exc_type, OSError) and hex_errno:
        if message == "noexec:chdir":
            # 3.13+: the child says which step before its exec failed.
            message = ""
            filename = cwd
        elif message == "noexec":
            # Up to 3.12 chdir is the only step before the exec that reports so; 3.13
            # reports chdir as above and names no file for the others.
            message = ""
            filename = cwd if sys.version_info < (3, 13) else None
        if err:
            message = os.strerror(err)
        return exc_type(err, message, filename)
    return exc_type(message)
