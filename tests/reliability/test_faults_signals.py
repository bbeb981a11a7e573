"""A storm of signals while serving, on asyncio and pyloop.

A child process runs an echo server with ``loop.add_signal_handler(SIGUSR1)``
installed; thousands of SIGUSR1 per second arrive -- from the test process,
or from a thread of the child itself -- while the test pushes echo traffic
through several connections.  Every byte must come back intact (a signal
interrupting a system call must not lose or repeat data), the handler must
run, the loop must keep serving, and nothing may reach the exception handler.

The child is a separate process so that a SIGUSR1 arriving after its handler
is gone kills the child, not the test runner.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import threading
import time

import pytest

from ._fault_util import TIMEOUT, LineReader, spawn_python

pytestmark = [
    pytest.mark.timeout(180),
    pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="POSIX signals"),
]

STORM_SERVER = r"""
import asyncio, os, signal, sys, threading

name, sender = sys.argv[1], sys.argv[2]
if name == "pyloop":
    import pyloop
    loop = pyloop.new_event_loop()
else:
    loop = asyncio.new_event_loop()

handled = [0]
reports = []
stop = threading.Event()
sent = [0]

def say(*words):
    print(*words, flush=True)

def storm():
    pid = os.getpid()
    while not stop.is_set():
        for _ in range(50):
            os.kill(pid, signal.SIGUSR1)
            sent[0] += 1
        stop.wait(0.002)   # pace: a few thousand a second

class Echo(asyncio.Protocol):
    def connection_made(self, tr):
        self.tr = tr
    def data_received(self, data):
        self.tr.write(data)

async def main():
    loop.set_exception_handler(lambda lp, ctx: reports.append(ctx))
    loop.add_signal_handler(signal.SIGUSR1, lambda: handled.__setitem__(0, handled[0] + 1))
    server = await loop.create_server(Echo, "127.0.0.1", 0)
    thread = None
    if sender == "thread":
        thread = threading.Thread(target=storm)
        thread.start()
    say("PORT", server.sockets[0].getsockname()[1])
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.read()            # until the parent closes our stdin
    if thread is not None:
        stop.set()
        await loop.run_in_executor(None, thread.join)
    # Every signal was delivered before our stdin reached EOF (the senders
    # stopped first); a few iterations run the Python-level handlers.
    for _ in range(10):
        await asyncio.sleep(0)
    for ctx in reports:
        print("REPORT", repr(ctx), file=sys.stderr)
    say("DONE", handled[0], len(reports), sent[0])
    loop.remove_signal_handler(signal.SIGUSR1)
    server.close()

loop.run_until_complete(main())
loop.close()
"""


def _storm_from_here(pid: int, stop: threading.Event, sent: list[int]) -> None:
    while not stop.is_set():
        for _ in range(50):
            try:
                os.kill(pid, signal.SIGUSR1)
            except ProcessLookupError:
                return
            sent[0] += 1
        stop.wait(0.002)  # pace: a few thousand a second


def _echo_traffic(port: int, connections: int, rounds: int, seed: int,
                  min_seconds: float) -> int:
    """Round trips of random sizes over several connections, at least
    ``rounds`` of them and for at least ``min_seconds`` (so that the storm
    lasts long enough to mean something however fast the machine); returns
    bytes echoed.  Fails on any lost, repeated or reordered byte."""
    rng = random.Random(seed)
    socks = [socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
             for _ in range(connections)]
    total = 0
    t_end = time.monotonic() + min_seconds
    i = 0
    try:
        while i < rounds or time.monotonic() < t_end:
            i += 1
            s = socks[i % connections]
            payload = rng.randbytes(rng.choice([1, 100, 4096, 65536, 300_000]))
            s.sendall(payload)
            got = bytearray()
            while len(got) < len(payload):
                chunk = s.recv(len(payload) - len(got))
                assert chunk, "the server closed the connection"
                got += chunk
            assert got == payload, f"round {i}: echo differs"
            total += len(payload)
    finally:
        for s in socks:
            s.close()
    return total


@pytest.mark.parametrize("sender", ["process", "thread"])
def test_signal_storm_while_serving(loop_name, sender):
    proc = spawn_python(STORM_SERVER, loop_name, sender, stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stop = threading.Event()
    sent = [0]
    storm = None
    try:
        out = LineReader(proc)
        (port,) = out.expect("PORT")
        if sender == "process":
            storm = threading.Thread(target=_storm_from_here, args=(proc.pid, stop, sent))
            storm.start()
        t0 = time.monotonic()
        echoed = _echo_traffic(int(port), connections=6, rounds=300, seed=5, min_seconds=1.5)
        elapsed = time.monotonic() - t0
        stop.set()
        if storm is not None:
            storm.join(TIMEOUT)
        proc.stdin.close()
        handled, reports, child_sent = (int(x) for x in out.expect("DONE"))
        assert proc.wait(TIMEOUT) == 0, proc.stderr.read().decode(errors="replace")
        total_sent = sent[0] + child_sent
        assert echoed > 0
        assert total_sent > 1000, f"storm too weak to mean anything: {total_sent}"
        # Signals coalesce while one is pending, so fewer handler calls than
        # kill() calls is expected; none at all would be a lost wakeup.
        assert 0 < handled <= total_sent
        assert reports == 0
        print(f"{loop_name}/{sender}: {total_sent} signals in {elapsed:.2f}s "
              f"({total_sent / elapsed:.0f}/s), handler ran {handled} times, "
              f"{echoed} bytes echoed")
    finally:
        stop.set()
        if storm is not None:
            storm.join(TIMEOUT)
        if proc.poll() is None:
            proc.kill()
            proc.wait(TIMEOUT)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None and not stream.closed:
                stream.close()
