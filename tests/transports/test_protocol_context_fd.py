"""Datagram, pipe and subprocess transports run every protocol callback in the
protocol's context (the stream transports: ``test_protocol_context``).

uvloop's behaviour is the reference (``PYLOOP_TEST_LOOPS=asyncio,pyloop,uvloop``);
where stock asyncio runs a callback in the context of whoever triggered it, the
test skips asyncio and says so.
"""

import asyncio
import os
import socket
import sys

import pytest

from ._ctxutil import CVAR, Events, RecordingProtocol
from ._netutil import run

pytestmark = pytest.mark.timeout(120)

ASYNCIO_SCHEDULES_IN_CALLERS_CONTEXT = (
    "asyncio schedules connection_lost in the context of whoever called close()")
ASYNCIO_CALLS_IN_CALLERS_CONTEXT = (
    "asyncio calls it at once, in the context of whoever called sendto()/write()")


class DatagramRecorder(asyncio.DatagramProtocol):
    def __init__(self, loop):
        self.events = Events(loop)
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        self.events.note("connection_made")

    def datagram_received(self, data, addr):
        self.events.note("datagram_received")

    def error_received(self, exc):
        self.events.note("error_received")

    def connection_lost(self, exc):
        self.events.note("connection_lost")


def _closer(transport, how="close"):
    def close():
        CVAR.set("closing")
        getattr(transport, how)()
    return close


# ----------------------------------------------------------------- datagram


@pytest.mark.parametrize("closing_elsewhere", [
    False, pytest.param(True, marks=pytest.mark.skip_loops(
        "asyncio", reason=ASYNCIO_SCHEDULES_IN_CALLERS_CONTEXT))])
def test_datagram_callbacks(loop, closing_elsewhere):
    async def main():
        CVAR.set("inner")
        proto = DatagramRecorder(loop)
        transport, _ = await loop.create_datagram_endpoint(
            lambda: proto, local_addr=("127.0.0.1", 0))
        CVAR.set("changed after creating")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
            peer.sendto(b"data", transport.get_extra_info("sockname"))
            assert await proto.events.first("connection_made") == "inner"
            assert await proto.events.first("datagram_received") == "inner"
        if closing_elsewhere:
            loop.call_soon(_closer(transport))
        else:
            transport.close()
        lost = await proto.events.first("connection_lost")
        if closing_elsewhere:
            assert lost == "inner"

    run(loop, main())


def _broadcast_refused():
    """(a datagram sendto refused at once by the kernel: EACCES for a
    broadcast address without SO_BROADCAST)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.sendto(b"x", ("255.255.255.255", 9))
        except PermissionError:
            return True
        except OSError:
            return False
    return False


needs_refused_broadcast = pytest.mark.skipif(
    not _broadcast_refused(), reason="this system does not refuse a broadcast without SO_BROADCAST")


@needs_refused_broadcast
@pytest.mark.skip_loops("asyncio", reason=ASYNCIO_CALLS_IN_CALLERS_CONTEXT)
def test_error_received_for_a_sendto_from_another_context(loop):
    async def main():
        CVAR.set("inner")
        proto = DatagramRecorder(loop)
        transport, _ = await loop.create_datagram_endpoint(
            lambda: proto, local_addr=("127.0.0.1", 0))

        def sender():
            CVAR.set("sender")
            transport.sendto(b"x", ("255.255.255.255", 9))

        loop.call_soon(sender)
        assert await proto.events.first("error_received") == "inner"
        transport.close()
        assert await proto.events.first("connection_lost") == "inner"

    run(loop, main())


@needs_refused_broadcast
def test_error_received_for_a_sendto_from_inside_a_callback(loop):
    """sendto() in datagram_received fails at once: error_received runs
    while the protocol's context is entered, and nothing fails for that."""
    async def main():
        CVAR.set("inner")
        errors = []
        loop.set_exception_handler(lambda lp, ctx: errors.append(ctx))

        class Replier(DatagramRecorder):
            def datagram_received(self, data, addr):
                super().datagram_received(data, addr)
                CVAR.set("received")
                self.transport.sendto(b"x", ("255.255.255.255", 9))

        proto = Replier(loop)
        transport, _ = await loop.create_datagram_endpoint(
            lambda: proto, local_addr=("127.0.0.1", 0))
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
            peer.sendto(b"data", transport.get_extra_info("sockname"))
            assert await proto.events.first("error_received") == "received"
        transport.close()
        await proto.events.first("connection_lost")
        assert errors == []

    run(loop, main())


# -------------------------------------------------------------------- pipes


@pytest.mark.parametrize("closing_elsewhere", [
    False, pytest.param(True, marks=pytest.mark.skip_loops(
        "asyncio", reason=ASYNCIO_SCHEDULES_IN_CALLERS_CONTEXT))])
def test_read_pipe_callbacks(loop, closing_elsewhere):
    async def main():
        rfd, wfd = os.pipe()
        CVAR.set("inner")
        proto = RecordingProtocol(loop)
        transport, _ = await loop.connect_read_pipe(lambda: proto, os.fdopen(rfd, "rb", 0))
        CVAR.set("changed after connecting")
        events = proto.events
        try:
            assert await events.first("connection_made") == "inner"
            os.write(wfd, b"data")
            assert await events.first("data_received") == "inner"
            if closing_elsewhere:
                loop.call_soon(_closer(transport))
            else:
                os.close(wfd)
                wfd = -1
                assert await events.first("eof_received") == "inner"
            assert await events.first("connection_lost") == "inner"
        finally:
            if wfd >= 0:
                os.close(wfd)

    run(loop, main())


@pytest.mark.skip_loops("asyncio", reason=ASYNCIO_CALLS_IN_CALLERS_CONTEXT)
def test_write_pipe_callbacks(loop):
    async def main():
        rfd, wfd = os.pipe()
        CVAR.set("inner")
        proto = RecordingProtocol(loop)
        transport, _ = await loop.connect_write_pipe(lambda: proto, os.fdopen(wfd, "wb", 0))
        events = proto.events
        reader = os.fdopen(rfd, "rb", 0)
        try:
            assert await events.first("connection_made") == "inner"

            def writer():
                CVAR.set("writer")
                transport.set_write_buffer_limits(high=1024, low=0)
                while not transport.get_write_buffer_size():
                    transport.write(b"q" * 65536)
                loop.call_soon(_closer(transport))

            loop.call_soon(writer)
            assert await events.first("pause_writing") == "inner"
            drained = loop.run_in_executor(None, reader.read)
            assert await events.first("resume_writing") == "inner"
            assert await events.first("connection_lost") == "inner"
            assert await drained
        finally:
            reader.close()

    run(loop, main())


# --------------------------------------------------------------- subprocess


class SubprocessRecorder(asyncio.SubprocessProtocol):
    def __init__(self, loop):
        self.events = Events(loop)
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        self.events.note("connection_made")

    def pipe_data_received(self, fd, data):
        self.events.note("pipe_data_received")

    def pipe_connection_lost(self, fd, exc):
        self.events.note("pipe_connection_lost")

    def process_exited(self):
        self.events.note("process_exited")

    def connection_lost(self, exc):
        self.events.note("connection_lost")


@pytest.mark.skip_loops("asyncio", reason=(
    "asyncio runs process_exited and connection_lost in the child watcher's context"))
def test_subprocess_callbacks(loop):
    async def main():
        CVAR.set("inner")
        proto = SubprocessRecorder(loop)
        transport, _ = await loop.subprocess_exec(
            lambda: proto, sys.executable, "-c",
            "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read())")
        CVAR.set("changed after starting")
        events = proto.events
        try:
            assert await events.first("connection_made") == "inner"
            stdin = transport.get_pipe_transport(0)
            stdin.write(b"data")
            stdin.write_eof()
            assert await events.first("pipe_data_received") == "inner"
            assert await events.first("process_exited") == "inner"
            assert await events.first("connection_lost") == "inner"
            assert events.all_values() == {"inner"}
        finally:
            transport.close()

    run(loop, main())
