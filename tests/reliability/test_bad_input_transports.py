"""Bad input to transports: stream, datagram, pipe and subprocess transports, and the
loop's sendfile/start_tls that take a transport.

Each row says which exception stock asyncio raises; pyloop must raise the same type.
The table machinery (and how to add a row) is in _bad_input.py.
"""
from __future__ import annotations

import array
import asyncio
import ssl
import sys

import pytest

from ._bad_input import NO_RAISE, Case, apply_bugs, params, run_case

pytestmark = pytest.mark.timeout(60)


def on_stream(fn, closed: bool = False, aborted: bool = False):
    """A case body: ``fn(transport, loop, env)`` on a connected stream transport."""
    def call(loop, env):
        async def main():
            tr, _, _ = await env.transport()
            if closed:
                tr.close()
            if aborted:
                tr.abort()
            result = fn(tr, loop, env)
            if asyncio.iscoroutine(result):
                result = await result
            return result
        return main()
    return call


def on_datagram(fn, closed: bool = False):
    def call(loop, env):
        async def main():
            tr, _ = await env.datagram()
            if closed:
                tr.close()
            return fn(tr, loop, env)
        return main()
    return call


def on_write_pipe(fn, closed: bool = False):
    def call(loop, env):
        async def main():
            tr, _, _ = await env.write_pipe()
            if closed:
                tr.close()
            return fn(tr, loop, env)
        return main()
    return call


def on_process(fn):
    """fn(transport) on the transport of a child that has exited."""
    def call(loop, env):
        async def main():
            exited = loop.create_future()

            class Proto(asyncio.SubprocessProtocol):
                def process_exited(self):
                    if not exited.done():
                        exited.set_result(None)

            tr, _ = await loop.subprocess_exec(Proto, sys.executable, "-c", "pass")
            env.track(tr)
            await exited
            return fn(tr, loop, env)
        return main()
    return call


def _write_after_eof(tr, loop, env):
    tr.write_eof()
    tr.write(b"x")


def _write_eof_twice(tr, loop, env):
    tr.write_eof()
    tr.write_eof()


def _writelines_after_eof(tr, loop, env):
    tr.write_eof()
    tr.writelines([b"x"])


def _write_after_close_is_dropped(tr, loop, env):
    tr.close()
    tr.write(b"dropped")
    assert tr.get_write_buffer_size() == 0


def _pause_twice(tr, loop, env):
    tr.pause_reading()
    tr.pause_reading()
    assert not tr.is_reading()


def _resume_unpaused(tr, loop, env):
    tr.resume_reading()
    assert tr.is_reading()


async def _memoryview_of_ints(loop, env):
    tr, _, peer = await env.transport()
    tr.write(memoryview(array.array("i", [1, 2, 3])))
    peer.setblocking(False)
    got = b""
    while len(got) < 12:
        try:
            got += peer.recv(64)
        except BlockingIOError:
            await asyncio.sleep(0.01)
    assert got == array.array("i", [1, 2, 3]).tobytes()


def _extra_unknown(tr, loop, env):
    assert tr.get_extra_info("no-such-key") is None
    assert tr.get_extra_info("no-such-key", 5) == 5


def _extra_unhashable(tr, loop, env):
    tr.get_extra_info(["list"])


def _limits(**kw):
    return lambda tr, loop, env: tr.set_write_buffer_limits(**kw)


def _limits_roundtrip(tr, loop, env):
    tr.set_write_buffer_limits(high=100, low=10)
    assert tr.get_write_buffer_limits() == (10, 100)


def _limits_zero(tr, loop, env):
    tr.set_write_buffer_limits(high=0)
    assert tr.get_write_buffer_limits() == (0, 0)


def _set_protocol_then_get(tr, loop, env):
    p = asyncio.Protocol()
    tr.set_protocol(p)
    assert tr.get_protocol() is p


def _server_ctx():
    return ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)


async def _start_tls(loop, env, ctx=None, transport="stream", **kw):
    if transport == "stream":
        tr, pr, _ = await env.transport()
    else:
        tr, pr = await env.datagram()
    return await loop.start_tls(tr, pr, ctx, **kw)


def _tls(**kw):
    return lambda loop, env: _start_tls(loop, env, **kw)


async def _sendfile(loop, env, mode="rb", closing=False, transport="stream", **kw):
    if transport == "stream":
        tr, _, _ = await env.transport()
    else:
        tr, _ = await env.datagram()
    if closing:
        tr.close()
    return await loop.sendfile(tr, env.file(mode), **kw)


def _sf(**kw):
    return lambda loop, env: _sendfile(loop, env, **kw)


CASES: list[Case] = [
    # --- stream transports: write
    Case("write-str", on_stream(lambda tr, lp, env: tr.write("text")), TypeError),
    Case("write-None", on_stream(lambda tr, lp, env: tr.write(None)), TypeError),
    Case("write-int", on_stream(lambda tr, lp, env: tr.write(5)), TypeError),
    Case("write-list", on_stream(lambda tr, lp, env: tr.write([b"x"])), TypeError),
    Case("write-array", on_stream(lambda tr, lp, env: tr.write(array.array("b", [1]))), TypeError,
         reason="asyncio accepts bytes, bytearray and memoryview only"),
    Case("write-memoryview-of-ints", _memoryview_of_ints, NO_RAISE,
         reason="a memoryview of any format is sent as its raw bytes"),
    Case("write-noncontiguous-memoryview", on_stream(lambda tr, lp, env: tr.write(memoryview(b"abcdef")[::2])),
         NO_RAISE, per_loop={"pyloop": BufferError},
         reason="asyncio hits BufferError inside send() and closes the transport through its fatal-error"
                " path; pyloop raises it to the caller and keeps the connection, which is the better answer",
         marks=(pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),)),
    Case("write-empty", on_stream(lambda tr, lp, env: tr.write(b"")), NO_RAISE),
    Case("write-after-write_eof", on_stream(_write_after_eof), RuntimeError),
    Case("write-after-close-dropped", on_stream(_write_after_close_is_dropped), NO_RAISE,
         reason="asyncio drops it (and logs after a few); no exception"),
    Case("write-after-abort", on_stream(lambda tr, lp, env: tr.write(b"x"), aborted=True), NO_RAISE),
    Case("write_eof-twice", on_stream(_write_eof_twice), NO_RAISE),
    Case("write_eof-after-close", on_stream(lambda tr, lp, env: tr.write_eof(), closed=True), NO_RAISE),
    Case("writelines-str-items", on_stream(lambda tr, lp, env: tr.writelines(["a", "b"])), TypeError),
    Case("writelines-None", on_stream(lambda tr, lp, env: tr.writelines(None)), TypeError,
         per_loop={"asyncio": NO_RAISE} if sys.version_info >= (3, 12) else {},
         reason="3.12's asyncio returns at once on an empty (falsy) argument; pyloop keeps the TypeError"),
    Case("writelines-int-items", on_stream(lambda tr, lp, env: tr.writelines([1])), TypeError),
    Case("writelines-after-write_eof", on_stream(_writelines_after_eof), RuntimeError),
    Case("writelines-empty", on_stream(lambda tr, lp, env: tr.writelines([])), NO_RAISE),
    # --- stream transports: flow control
    Case("set_write_buffer_limits-negative-high", on_stream(_limits(high=-1)), ValueError),
    Case("set_write_buffer_limits-negative-low", on_stream(_limits(low=-1)), ValueError),
    Case("set_write_buffer_limits-low-above-high", on_stream(_limits(high=10, low=20)), ValueError),
    Case("set_write_buffer_limits-str", on_stream(_limits(high="x")), TypeError),
    Case("set_write_buffer_limits-float", on_stream(_limits(high=1e6)), NO_RAISE),
    Case("set_write_buffer_limits-float-low", on_stream(_limits(high=2 ** 20, low=1e3)), NO_RAISE),
    Case("set_write_buffer_limits-huge", on_stream(_limits(high=2 ** 70)), NO_RAISE,
         per_loop={"pyloop": OverflowError},
         reason="asyncio stores any number; pyloop keeps limits as ssize_t and says so with OverflowError"),
    Case("set_write_buffer_limits-roundtrip", on_stream(_limits_roundtrip), NO_RAISE),
    Case("set_write_buffer_limits-zero", on_stream(_limits_zero), NO_RAISE),
    Case("set_write_buffer_limits-after-close", on_stream(_limits(high=10), closed=True), NO_RAISE),
    Case("pause_reading-twice", on_stream(_pause_twice), NO_RAISE),
    Case("resume_reading-not-paused", on_stream(_resume_unpaused), NO_RAISE),
    Case("pause_reading-closed", on_stream(lambda tr, lp, env: tr.pause_reading(), closed=True), NO_RAISE),
    Case("resume_reading-closed", on_stream(lambda tr, lp, env: tr.resume_reading(), closed=True), NO_RAISE),
    Case("is_reading-closed", on_stream(lambda tr, lp, env: tr.is_reading(), closed=True), NO_RAISE),
    Case("get_write_buffer_size-closed", on_stream(lambda tr, lp, env: tr.get_write_buffer_size(), closed=True),
         NO_RAISE),
    # --- stream transports: lifecycle and introspection
    Case("close-twice", on_stream(lambda tr, lp, env: tr.close(), closed=True), NO_RAISE),
    Case("abort-twice", on_stream(lambda tr, lp, env: tr.abort(), aborted=True), NO_RAISE),
    Case("abort-after-close", on_stream(lambda tr, lp, env: tr.abort(), closed=True), NO_RAISE),
    Case("close-after-abort", on_stream(lambda tr, lp, env: tr.close(), aborted=True), NO_RAISE),
    Case("get_extra_info-unknown-key", on_stream(_extra_unknown), NO_RAISE),
    Case("get_extra_info-unhashable-key", on_stream(_extra_unhashable), TypeError),
    Case("get_extra_info-after-close", on_stream(lambda tr, lp, env: tr.get_extra_info("peername"),
                                                 closed=True), NO_RAISE),
    Case("set_protocol-None", on_stream(lambda tr, lp, env: tr.set_protocol(None)), NO_RAISE,
         per_loop={"pyloop": TypeError},
         reason="asyncio stores None and fails later in a callback; pyloop refuses it at once (TypeError,"
                " as uvloop)"),
    Case("set_protocol-then-get", on_stream(_set_protocol_then_get), NO_RAISE),
    Case("can_write_eof-closed", on_stream(lambda tr, lp, env: tr.can_write_eof(), closed=True), NO_RAISE),
    # --- datagram transports
    Case("sendto-str", on_datagram(lambda tr, lp, env: tr.sendto("text", ("127.0.0.1", 9))), TypeError),
    Case("sendto-None", on_datagram(lambda tr, lp, env: tr.sendto(None, ("127.0.0.1", 9))), TypeError),
    Case("sendto-no-address-unconnected", on_datagram(lambda tr, lp, env: tr.sendto(b"x")), NO_RAISE,
         reason="asyncio hands the send error to error_received instead of raising"),
    Case("sendto-after-close", on_datagram(lambda tr, lp, env: tr.sendto(b"x", ("127.0.0.1", 9)), closed=True),
         NO_RAISE, reason="asyncio drops datagrams after close"),
    Case("datagram-close-twice", on_datagram(lambda tr, lp, env: tr.close(), closed=True), NO_RAISE),
    Case("datagram-abort-after-close", on_datagram(lambda tr, lp, env: tr.abort(), closed=True), NO_RAISE),
    Case("datagram-get_extra_info-unknown", on_datagram(lambda tr, lp, env: tr.get_extra_info("nope")), NO_RAISE),
    Case("datagram-set_write_buffer_limits-negative", on_datagram(_limits(high=-1)), ValueError),
    Case("datagram-set_write_buffer_limits-float", on_datagram(_limits(high=1e6)), NO_RAISE),
    Case("datagram-set_write_buffer_limits-low-above-high", on_datagram(_limits(high=1, low=2)), ValueError),
    # --- write pipe transports
    Case("pipe-write-str", on_write_pipe(lambda tr, lp, env: tr.write("text")), AssertionError,
         per_loop={"pyloop": TypeError},
         reason="asyncio's pipe transport checks the type with an assert (gone under -O); pyloop raises the"
                " TypeError its socket transports raise"),
    Case("pipe-write-None", on_write_pipe(lambda tr, lp, env: tr.write(None)), AssertionError,
         per_loop={"pyloop": TypeError},
         reason="asyncio's pipe transport checks the type with an assert; pyloop raises TypeError"),
    Case("pipe-write-int", on_write_pipe(lambda tr, lp, env: tr.write(5)), AssertionError,
         per_loop={"pyloop": TypeError},
         reason="asyncio's pipe transport checks the type with an assert; pyloop raises TypeError"),
    Case("pipe-write-after-write_eof", on_write_pipe(_write_after_eof), NO_RAISE,
         reason="unlike socket transports, asyncio's pipe transport drops the data silently after write_eof"),
    Case("pipe-write-after-close", on_write_pipe(lambda tr, lp, env: tr.write(b"x"), closed=True), NO_RAISE),
    Case("pipe-write_eof-twice", on_write_pipe(_write_eof_twice), NO_RAISE),
    Case("pipe-set_write_buffer_limits-negative", on_write_pipe(_limits(high=-1)), ValueError),
    Case("pipe-set_write_buffer_limits-float", on_write_pipe(_limits(high=1e6)), NO_RAISE),
    Case("pipe-set_write_buffer_limits-low-above-high", on_write_pipe(_limits(high=1, low=2)), ValueError),
    Case("pipe-close-twice", on_write_pipe(lambda tr, lp, env: tr.close(), closed=True), NO_RAISE),
    Case("pipe-get_extra_info-unknown", on_write_pipe(lambda tr, lp, env: tr.get_extra_info("nope")), NO_RAISE),
    # --- subprocess transports (the child has exited)
    Case("process-get_pipe_transport-unknown-fd", on_process(lambda tr, lp, env: tr.get_pipe_transport(5)),
         NO_RAISE),
    Case("process-send_signal-after-close", on_process(lambda tr, lp, env: (tr.close(), tr.send_signal(15))),
         ProcessLookupError),
    Case("process-kill-after-close", on_process(lambda tr, lp, env: (tr.close(), tr.kill())), ProcessLookupError),
    Case("process-terminate-after-close", on_process(lambda tr, lp, env: (tr.close(), tr.terminate())),
         ProcessLookupError),
    Case("process-close-twice", on_process(lambda tr, lp, env: (tr.close(), tr.close())), NO_RAISE),
    Case("process-get_returncode", on_process(lambda tr, lp, env: tr.get_returncode()), NO_RAISE),
    # --- start_tls
    Case("start_tls-no-context", _tls(ctx=None), TypeError),
    Case("start_tls-str-context", _tls(ctx="ctx"), TypeError),
    Case("start_tls-datagram-transport", lambda lp, env: _start_tls(lp, env, ctx=_server_ctx(),
                                                                    transport="datagram"), TypeError),
    # --- loop.sendfile
    Case("sendfile-text-file", _sf(mode="r"), ValueError),
    Case("sendfile-negative-offset", _sf(offset=-1), ValueError),
    Case("sendfile-str-offset", _sf(offset="x"), TypeError),
    Case("sendfile-zero-count", _sf(count=0), ValueError),
    Case("sendfile-negative-count", _sf(count=-5), ValueError),
    Case("sendfile-str-count", _sf(count="x"), TypeError),
    Case("sendfile-closing-transport", _sf(closing=True), RuntimeError),
    Case("sendfile-datagram-no-fallback", _sf(transport="datagram", fallback=False), RuntimeError),
]


@pytest.mark.parametrize("case", params(CASES))
def test_bad_input(case: Case, loop_factory, request) -> None:
    apply_bugs(request, case)
    run_case(case, loop_factory)


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 50
