"""A loop with signal handlers closed from a thread other than the main
thread (issue #12): Python's signal wakeup fd must not be left pointing at a
closed fd number.

``signal.set_wakeup_fd`` works only in the main thread, so a loop closed from
another thread cannot hand the wakeup fd back.  Before the fix it closed its
socket pair anyway: the process's wakeup fd was then a closed number, the
next file, socket or pipe the process opened reused it, and every signal with
a Python-level handler wrote a byte into that unrelated file.  Now the pair
stays open (parked) until the main thread next sets the wakeup fd through a
loop (``add_signal_handler``), which closes it.

Everything is observed from outside: the public loop API, and the wakeup fd
read back with ``signal.set_wakeup_fd`` (set to -1, then put back).  Each case
runs in a child interpreter: the wakeup fd and signal dispositions are
process-wide, and before the fix a signal byte went into whatever file had
the number.
"""

import os
import subprocess
import sys
import textwrap

import pytest

from ._util import PY

pytestmark = [
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals"),
    pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc"),
]

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CHILD = textwrap.dedent("""
    import os, signal, sys, tempfile, threading
    import pyloop

    where = sys.argv[1]          # 'thread' or 'main': who calls close()
    SIG = signal.SIGUSR1

    def wakeup_fd():
        # The wakeup fd, left as it was -- except that set_wakeup_fd refuses
        # to put back a closed fd or a blocking one (a reused number): that
        # one stays -1.
        fd = signal.set_wakeup_fd(-1)
        if fd >= 0:
            try:
                signal.set_wakeup_fd(fd, warn_on_full_buffer=False)
            except (OSError, ValueError):
                pass
        return fd

    def is_open(fd):
        try:
            os.fstat(fd)
        except OSError:
            return False
        return True

    def open_fds():
        return set(os.listdir('/proc/self/fd'))

    assert wakeup_fd() == -1, 'a fresh interpreter has no wakeup fd'
    fds_before = open_fds()

    loop = pyloop.new_event_loop()
    loop.add_signal_handler(SIG, print, 'handler')
    ours = wakeup_fd()
    assert ours >= 0 and is_open(ours), ours

    if where == 'thread':
        t = threading.Thread(target=loop.close)
        t.start()
        t.join()
    else:
        loop.close()
    assert loop.is_closed()

    # Open unrelated files: they get the lowest free numbers, so any number
    # the close freed is reused here.
    tmp = tempfile.mkdtemp()
    files = [open(os.path.join(tmp, f'f{i}'), 'wb', buffering=0)
             for i in range(8)]
    numbers = [f.fileno() for f in files]

    # A signal now: with a Python-level handler for it, Python's C handler
    # writes the signal's byte to the wakeup fd (kill() of the process itself
    # delivers it before returning).
    signal.signal(SIG, lambda *args: None)
    os.kill(os.getpid(), SIG)
    written = {f.fileno(): os.fstat(f.fileno()).st_size for f in files}

    after = wakeup_fd()
    print('wakeup fd: ours', ours, 'after close', after,
          '; unrelated files got', numbers)
    assert not any(written.values()), (
        f'a signal wrote into unrelated files: {written} (fd: bytes)')
    assert after == -1 or (after not in numbers and is_open(after)), (
        f'the wakeup fd {after} is closed or reused by an unrelated file')
    if where == 'main':
        assert after == -1, after

    for f in files:
        f.close()
        os.unlink(f.name)
    os.rmdir(tmp)

    # The main thread takes the wakeup fd again through a new loop: a parked
    # pair is closed then, and closing that loop puts back "no wakeup fd".
    loop2 = pyloop.new_event_loop()
    fut = loop2.create_future()
    loop2.add_signal_handler(SIG, fut.set_result, 'second')
    os.kill(os.getpid(), SIG)
    assert loop2.run_until_complete(fut) == 'second'
    loop2.close()
    assert wakeup_fd() == -1, wakeup_fd()
    assert signal.getsignal(SIG) == signal.SIG_DFL, signal.getsignal(SIG)
    leaked = open_fds() - fds_before
    assert not leaked, f'fds left open: {sorted(leaked)}'
    print('OK')
""")


def _run_child(where):
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("PYTHONASYNCIODEBUG", None)
    return subprocess.run([PY, "-c", CHILD, where], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("where", ["thread", "main"])
def test_close_leaves_no_dangling_wakeup_fd(where):
    """``close()`` from another thread (the bug) and from the main thread
    (the reference): afterwards the wakeup fd is -1 or an fd that is still
    open, a signal writes into no file that reused a freed number, and once
    the main thread sets up signals again nothing is left open."""
    proc = _run_child(where)
    assert proc.returncode == 0 and "OK" in proc.stdout, (
        f"exit status {proc.returncode}\n{proc.stdout}\n{proc.stderr}")

