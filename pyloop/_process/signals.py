"""Unix signal handlers: ``loop.add_signal_handler`` / ``remove_signal_handler``.

How a signal reaches a callback
-------------------------------
Python's own C-level signal handler does two things when a signal arrives:
it marks the signal "tripped" so the Python-level handler runs later in the
main thread, and it writes the signal number (one byte) to the *wakeup fd*
set with ``signal.set_wakeup_fd``.  We use the second half:

* the first handler added creates a non-blocking socket pair, makes its write
  end the wakeup fd (``warn_on_full_buffer=False``: when the buffer is full a
  burst of the same signal has already been recorded, nothing is lost that
  matters) and watches the read end with the loop's reactor;
* for every signal with a handler, a do-nothing Python-level handler is
  installed with ``signal.signal`` -- that is what makes Python write the byte
  (a signal left at SIG_DFL would kill or be ignored, never reported);
* the read end becoming readable wakes the reactor, even when the signal was
  delivered to another thread; the reader drains the bytes and schedules each
  registered callback with ``call_soon`` in the ``contextvars.Context`` that was
  current when the handler was added.  A callback raising goes to the loop's
  exception handler like any other callback.

Bytes for signals this loop has no handler for (SIGINT under asyncio.Runner,
say) arrive too and are ignored: their Python-level handlers run on their own.

Validation follows asyncio: TypeError for a coroutine (function) callback or a
non-int signal, ValueError for a number outside ``signal.valid_signals()``,
RuntimeError for an uncatchable signal (SIGKILL, SIGSTOP: ``signal.signal``
fails with EINVAL), for a closed loop, and when ``set_wakeup_fd`` refuses
(not the main thread).  Stricter than asyncio: a callback that is not callable
is refused at once (it could only fail later, inside the loop).

What is restored
----------------
Like asyncio, removing a handler (or closing the loop) puts SIG_DFL back --
``default_int_handler`` for SIGINT -- with one exception: a signal that was
ignored (SIG_IGN) before the loop took it is ignored again.  That is how a
program started under ``nohup``, or as a background job whose shell ignores
SIGINT, keeps its inherited dispositions; asyncio loses them.

Why not put back whatever Python handler was there before?  Its owner may be
gone by then.  The common case is ``asyncio.run(main())`` whose ``main`` adds
a SIGINT handler and never removes it: the Runner's own SIGINT handler was
there before, the Runner does not restore it (it sees ours), and restoring it
at ``loop.close()`` would leave a dead Runner's handler installed -- and the
next ``asyncio.run`` would then not install its own, so Ctrl-C would no longer
cancel its main task cleanly.  ``default_int_handler`` is what the Runner
itself would have put back.

When the last handler goes, the wakeup fd goes back to what it was before the
loop took it, provided that is still the same open file (an fd number that
was closed and reused since must not start receiving signal bytes); otherwise
it is cleared, as asyncio does.

Internal listeners
------------------
``_signal_add_listener(sig, func)`` lets the loop itself react to a signal
(the SIGCHLD child reaper of ``pyloop._process.subprocess`` on systems without pidfds):
``func()`` runs directly from the reader, before user callbacks are
scheduled, and shares the installed Python handler with a user handler for
the same signal.

The loop's ``close()`` must call ``_close_signals()``: it removes every handler
and listener, restores the wakeup fd and closes the socket pair.

SIGCHLD
-------
``add_signal_handler(signal.SIGCHLD, ...)`` is honoured, as asyncio honours it
(uvloop refuses it, because libuv reaps through SIGCHLD): the loop's own
children are reaped whatever the application does with the signal.  They are
reaped by pid -- through a pidfd each where the kernel has them, which does not
involve SIGCHLD at all; else through the SIGCHLD *listener* above, which runs
before the application's callback is scheduled and stays installed when the
application removes its handler (the disposition goes back only when neither
uses the signal).  So a handler sees every SIGCHLD, the loop's children
included, and ``Process.wait()`` still returns each child's own status.  What
no loop can protect against is a handler that reaps children it did not start
(``os.waitpid(-1, ...)``, as asyncio's old ``FastChildWatcher`` does): a child
of the loop reaped that way reports returncode 255, as in asyncio.

After fork
----------
The wakeup fd is process state that ``os.fork()`` copies, and the socket
pair is shared with the parent: a forked child (multiprocessing's default
start method) would write *its* signals into the parent's loop, so a SIGTERM
sent to one worker would run the parent's SIGTERM handler.  An at-fork hook
clears, in the child, every loop's claim: the wakeup fd is reset, the signals'
dispositions are restored as ``close()`` would, and the child's copies of the
sockets are closed -- without touching the reactor, which the child shares
with the parent too.
"""

import contextvars
import errno
import logging
import os
import signal
import socket
import sys
import warnings
import weakref
from asyncio import coroutines as _aio_coroutines

logger = logging.getLogger("asyncio")


def _ignore_signal(signum, frame):
    """The Python-level handler of every signal the loop handles: it exists
    only so that Python reports the signal through the wakeup fd."""


def _file_identity(fd):
    """(st_dev, st_ino) of an open fd, or None if it is not open."""
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


# Loops that hold a signal socket pair, for the at-fork hook.
_loops_with_signals = weakref.WeakSet()

# Socket pairs that may still be the process's wakeup fd although their loop
# is closed: a loop closed from a thread other than the main thread cannot
# call set_wakeup_fd, and closing the sockets then would leave Python's C
# signal handler writing signal bytes to a closed fd number -- which the next
# socket, pipe or file opened in the process reuses.  They stay open (the
# bytes go nowhere: the pair is non-blocking and warn_on_full_buffer is off)
# until the main thread next sets the wakeup fd through _reclaim_orphans.
_orphaned_channels = []


def _reclaim_orphans(current):
    """Close every orphaned pair except the one whose write end is the wakeup
    fd ``current``; return -1 if ``current`` is an orphan's (so that nobody
    restores it later), else ``current``."""
    keep = []
    for rsock, wsock in _orphaned_channels:
        if wsock.fileno() == current:
            keep.append((rsock, wsock))
        else:
            rsock.close()
            wsock.close()
    _orphaned_channels[:] = keep
    return -1 if keep else current


def _restored_disposition(sig, previous):
    """What to put back for ``sig`` (see the module docstring)."""
    if previous == signal.SIG_IGN:
        return previous
    return signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL


def _forget_signals_after_fork():
    for loop in list(_loops_with_signals):
        loop._signal_forget_in_child()
    _loops_with_signals.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_signals_after_fork)


class _SignalHandler:
    """A registered ``add_signal_handler`` callback."""

    __slots__ = ("callback", "args", "context")

    def __init__(self, callback, args, context):
        self.callback = callback
        self.args = args
        self.context = context

    def __repr__(self):
        return f"<signal handler {self.callback!r} args={self.args!r}>"


class SignalMixin:
    """``add_signal_handler`` / ``remove_signal_handler`` of
    ``AbstractEventLoop``, through ``signal.set_wakeup_fd``.

    Service of ``Loop``: state created by ``_init_signals``, released by
    ``_close_signals`` (from ``close()``) or ``_signal_forget_in_child``
    (after a fork).  Needs from the loop: ``is_closed``, ``_add_reader`` /
    ``_remove_reader`` (the socket pair's read end), ``call_soon`` (handlers
    run as callbacks) and ``call_exception_handler``.
    """

    def _init_signals(self):
        self._sig_handlers = {}      # signum -> _SignalHandler
        self._sig_listeners = {}     # signum -> [func]: the loop's own reactions
        self._sig_previous = {}      # signum -> disposition before ours
        self._sig_rsock = None       # the socket pair: read end (watched) ...
        self._sig_wsock = None       # ... and write end (the wakeup fd)
        self._sig_prev_wakeup = -1   # the wakeup fd before ours ...
        self._sig_prev_wakeup_id = None   # ... and the file it was then

    # ---- public API -----------------------------------------------------

    def add_signal_handler(self, sig, callback, *args):
        """Call ``callback(*args)`` (via ``call_soon``) whenever signal
        ``sig`` arrives; replaces an earlier handler for ``sig``.

        Raise ValueError if ``sig`` is not a valid signal number, RuntimeError
        if it cannot be caught or handlers cannot be installed here (a thread
        other than the main thread, a closed loop).  A SIGCHLD handler is
        honoured and leaves the reaping of the loop's own children alone (see
        the module docstring).
        """
        if (_aio_coroutines.iscoroutine(callback)
                or _aio_coroutines.iscoroutinefunction(callback)):
            raise TypeError("coroutines cannot be used "
                            "with add_signal_handler()")
        self._check_signal(sig)
        if self.is_closed():
            raise RuntimeError("Event loop is closed")
        if not callable(callback):
            raise TypeError(f"a callable object was expected by "
                            f"add_signal_handler(), got {callback!r}")
        self._signal_take(sig)
        self._sig_handlers[sig] = _SignalHandler(
            callback, args, contextvars.copy_context())

    def remove_signal_handler(self, sig):
        """Remove the handler for ``sig``; return True if there was one.

        SIG_DFL (``default_int_handler`` for SIGINT) is put back, or SIG_IGN
        if the signal was ignored before the loop took it.
        """
        self._check_signal(sig)
        handlers = self._sig_handlers
        if not handlers or sig not in handlers:
            return False
        del handlers[sig]
        self._signal_release(sig)
        return True

    def _check_signal(self, sig):
        if not isinstance(sig, int):
            raise TypeError(f"sig must be an int, not {sig!r}")
        if sig not in signal.valid_signals():
            raise ValueError(f"invalid signal number {sig}")

    # ---- the loop's own listeners ---------------------------------------

    def _signal_add_listener(self, sig, func):
        """Have ``func()`` called from the loop whenever ``sig`` arrives.
        Raises RuntimeError where signals cannot be handled (not the main
        thread)."""
        self._check_signal(sig)
        if self.is_closed():
            raise RuntimeError("Event loop is closed")
        self._signal_take(sig)
        self._sig_listeners.setdefault(sig, []).append(func)

    def _signal_remove_listener(self, sig, func):
        listeners = self._sig_listeners
        if not listeners or func not in listeners.get(sig, ()):
            return False
        listeners[sig].remove(func)
        if not listeners[sig]:
            del listeners[sig]
        self._signal_release(sig)
        return True

    # ---- installing and restoring ---------------------------------------

    def _signal_in_use(self, sig):
        return sig in self._sig_handlers or sig in self._sig_listeners

    def _signal_take(self, sig):
        """Make sure ``sig`` is reported through our wakeup fd."""
        self._signal_open_channel()
        if self._signal_in_use(sig):
            return      # our Python-level handler is installed already
        try:
            previous = signal.signal(sig, _ignore_signal)
            # Restart interrupted system calls instead of failing with EINTR.
            signal.siginterrupt(sig, False)
        except OSError as exc:
            if not self._sig_previous:
                self._signal_close_channel()
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f"sig {sig} cannot be caught") from None
            raise
        except ValueError as exc:      # not the main thread after all
            if not self._sig_previous:
                self._signal_close_channel()
            raise RuntimeError(str(exc)) from None
        self._sig_previous[sig] = previous

    def _signal_release(self, sig):
        """``sig`` lost a handler or listener: restore its disposition once
        nothing of ours uses it."""
        if self._signal_in_use(sig):
            return
        previous = _restored_disposition(sig, self._sig_previous.pop(sig, None))
        try:
            signal.signal(sig, previous)
        except OSError as exc:
            if exc.errno == errno.EINVAL:
                raise RuntimeError(f"sig {sig} cannot be caught") from None
            raise
        finally:
            if not self._sig_previous:
                self._signal_close_channel()

    def _signal_open_channel(self):
        """Create the socket pair (once) and make it the wakeup fd.

        ``set_wakeup_fd`` is called every time: it is also the check that we
        are in the main thread, and it takes the wakeup fd back from whoever
        replaced it since.
        """
        created = self._sig_wsock is None
        if created:
            rsock, wsock = socket.socketpair()
            rsock.setblocking(False)
            wsock.setblocking(False)
        else:
            rsock, wsock = self._sig_rsock, self._sig_wsock
        try:
            previous = signal.set_wakeup_fd(wsock.fileno(),
                                            warn_on_full_buffer=False)
        except (ValueError, OSError) as exc:
            if created:
                rsock.close()
                wsock.close()
            raise RuntimeError(str(exc)) from None
        # No longer the wakeup fd: the pairs of loops closed off the main
        # thread can go now (an orphan that was `previous` is never restored).
        previous = _reclaim_orphans(previous)
        if not created:
            return
        try:
            self._add_reader(rsock.fileno(), self._signal_read)
        except BaseException:
            signal.set_wakeup_fd(previous)
            rsock.close()
            wsock.close()
            raise
        self._sig_rsock, self._sig_wsock = rsock, wsock
        _loops_with_signals.add(self)
        self._sig_prev_wakeup = previous
        self._sig_prev_wakeup_id = (_file_identity(previous)
                                    if previous >= 0 else None)

    def _signal_close_channel(self):
        """Restore the wakeup fd and close the socket pair."""
        rsock, wsock = self._sig_rsock, self._sig_wsock
        if wsock is None:
            return
        self._sig_rsock = self._sig_wsock = None
        _loops_with_signals.discard(self)
        ours = wsock.fileno()
        restore = self._sig_prev_wakeup
        if restore >= 0 and _file_identity(restore) != self._sig_prev_wakeup_id:
            restore = -1        # closed (and maybe reused) since: forget it
        self._sig_prev_wakeup = -1
        self._sig_prev_wakeup_id = None
        try:
            current = signal.set_wakeup_fd(restore)
            if current != ours:
                # Someone else took the wakeup fd after us: leave theirs.
                signal.set_wakeup_fd(current)
        except (ValueError, OSError) as exc:
            # Not the main thread: the wakeup fd may still be `ours`, so the
            # pair must stay open (see _orphaned_channels).
            logger.info("set_wakeup_fd(%d) failed: %s", restore, exc)
            if not self.is_closed():
                self._remove_reader(rsock.fileno())
            _orphaned_channels.append((rsock, wsock))
            return
        if not self.is_closed():
            self._remove_reader(rsock.fileno())
        _reclaim_orphans(-1 if current == ours else current)
        rsock.close()
        wsock.close()

    # ---- delivery -------------------------------------------------------

    def _signal_read(self):
        """The read end is readable: dispatch every signal byte in it."""
        rsock = self._sig_rsock
        while rsock is not None:
            try:
                data = rsock.recv(4096)
            except InterruptedError:
                continue
            except BlockingIOError:
                return
            if not data:
                return
            for signum in data:
                self._signal_dispatch(signum)
            rsock = self._sig_rsock

    def _signal_dispatch(self, signum):
        listeners = self._sig_listeners.get(signum)
        if listeners:
            for func in list(listeners):
                try:
                    func()
                except (SystemExit, KeyboardInterrupt):
                    raise
                except BaseException as exc:
                    self.call_exception_handler({
                        "message": f"Exception in the loop's own handler "
                                   f"of signal {signum}",
                        "exception": exc,
                    })
        handlers = self._sig_handlers
        handler = handlers.get(signum) if handlers else None
        if handler is not None:
            self.call_soon(handler.callback, *handler.args,
                           context=handler.context)

    # ---- closing --------------------------------------------------------

    def _signal_forget_in_child(self):
        """In a forked child: drop this loop's signal handling (see the
        module docstring); never raises."""
        wsock = self._sig_wsock
        try:
            if wsock is not None:
                current = signal.set_wakeup_fd(-1)
                if current != wsock.fileno():
                    signal.set_wakeup_fd(current)   # not ours: leave it
            for sig, previous in list(self._sig_previous.items()):
                signal.signal(sig, _restored_disposition(sig, previous))
        except (ValueError, OSError):
            pass
        for d in (self._sig_handlers, self._sig_listeners, self._sig_previous):
            d.clear()
        for sock in (self._sig_rsock, wsock):
            if sock is not None:
                sock.close()
        self._sig_rsock = self._sig_wsock = None

    def _close_signals(self):
        """Remove every handler and listener, put back the previous
        Python-level handlers and wakeup fd, close the socket pair.  Called by
        the loop's ``close()``; idempotent."""
        if not self._sig_previous and self._sig_wsock is None:
            return      # never took a signal, or already closed
        if sys.is_finalizing():
            if self._sig_handlers:
                warnings.warn(f"Closing the loop {self!r} at interpreter "
                              f"shutdown: signal handlers are not removed",
                              ResourceWarning, source=self)
            self._sig_handlers.clear()
            self._sig_listeners.clear()
            self._sig_previous.clear()
            rsock, wsock = self._sig_rsock, self._sig_wsock
            self._sig_rsock = self._sig_wsock = None
            if wsock is None:
                return
            try:
                current = signal.set_wakeup_fd(-1)
                if current != wsock.fileno():
                    signal.set_wakeup_fd(current)
            except (ValueError, OSError):
                # Perhaps still the wakeup fd: never close it under Python's
                # signal handler (see _orphaned_channels).
                _orphaned_channels.append((rsock, wsock))
                return
            rsock.close()
            wsock.close()
            return
        self._sig_handlers.clear()
        self._sig_listeners.clear()
        for sig in list(self._sig_previous):
            try:
                self._signal_release(sig)
            except (ValueError, OSError, RuntimeError) as exc:
                # close() from another thread: signal.signal() refuses.
                logger.info("could not restore the handler of signal %d: %s",
                            sig, exc)
                self._sig_previous.pop(sig, None)
        self._signal_close_channel()
