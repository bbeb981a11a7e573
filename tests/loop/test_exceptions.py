"""Exceptions raised by callbacks, the exception handler API, and BaseExceptions."""

import asyncio
import gc
import logging
import socket

import pytest

from ._util import run, run_forever, socketpair_nb


class Boom(Exception):
    pass


def _raise(exc):
    raise exc


@pytest.fixture
def contexts(loop):
    got = []
    loop.set_exception_handler(lambda lp, ctx: got.append((lp, ctx)))
    return got


def test_call_soon_exception_goes_to_handler(loop, contexts):
    exc = Boom("soon")
    h = loop.call_soon(_raise, exc)
    after = []
    loop.call_soon(after.append, "still-running")
    loop.call_soon(loop.stop)
    run_forever(loop)
    assert after == ["still-running"]
    assert len(contexts) == 1
    lp, ctx = contexts[0]
    assert lp is loop
    assert ctx["exception"] is exc
    assert ctx["handle"] is h
    assert isinstance(ctx["message"], str) and ctx["message"]


def test_timer_exception_goes_to_handler(loop, contexts):
    exc = Boom("timer")
    h = loop.call_later(0.001, _raise, exc)
    loop.call_later(0.01, loop.stop)
    run_forever(loop)
    assert len(contexts) == 1
    ctx = contexts[0][1]
    assert ctx["exception"] is exc
    assert ctx["handle"] is h
    assert isinstance(ctx["message"], str)


def test_threadsafe_callback_exception_goes_to_handler(loop, contexts):
    exc = Boom("threadsafe")
    h = loop.call_soon_threadsafe(_raise, exc)
    loop.call_soon(loop.stop)
    run_forever(loop)
    assert [c["exception"] for _, c in contexts] == [exc]
    assert contexts[0][1]["handle"] is h


def test_reader_exception_goes_to_handler_and_reader_stays(loop, contexts):
    a, b = socketpair_nb()
    calls = []
    try:
        def on_readable():
            calls.append(1)
            if len(calls) == 3:
                loop.remove_reader(a.fileno())
                loop.stop()
            raise Boom(len(calls))

        loop.add_reader(a.fileno(), on_readable)
        b.send(b"x")
        run_forever(loop)
    finally:
        a.close()
        b.close()
    assert len(calls) == 3
    assert [c["exception"].args for _, c in contexts] == [(1,), (2,), (3,)]
    for _, ctx in contexts:
        assert "handle" in ctx and "message" in ctx


def test_many_exceptions_do_not_stop_the_loop(loop, contexts):
    for i in range(100):
        loop.call_soon(_raise, Boom(i))
    loop.call_soon(loop.stop)
    run_forever(loop)
    assert [c["exception"].args[0] for _, c in contexts] == list(range(100))


def test_get_and_set_exception_handler(loop):
    assert loop.get_exception_handler() is None

    def handler(lp, ctx):
        pass

    loop.set_exception_handler(handler)
    assert loop.get_exception_handler() is handler
    loop.set_exception_handler(None)
    assert loop.get_exception_handler() is None


@pytest.mark.parametrize("bad", [1, "handler", object()])
def test_set_exception_handler_rejects_non_callables(loop, bad):
    with pytest.raises(TypeError):
        loop.set_exception_handler(bad)
    assert loop.get_exception_handler() is None


def test_call_exception_handler_uses_custom_handler(loop, contexts):
    ctx = {"message": "custom", "extra": 1}
    loop.call_exception_handler(ctx)
    assert contexts == [(loop, ctx)]


def test_default_handler_logs_to_asyncio_logger(loop, caplog):
    exc = Boom("logged")
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.call_soon(_raise, exc)
        loop.call_soon(loop.stop)
        run_forever(loop)
    records = [r for r in caplog.records if r.name == "asyncio"]
    assert len(records) == 1
    rec = records[0]
    assert rec.levelno == logging.ERROR
    assert rec.exc_info and rec.exc_info[1] is exc
    assert "_raise" in rec.getMessage()


def test_default_exception_handler_called_directly(loop, caplog):
    exc = Boom("direct")
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.default_exception_handler({"message": "Something odd happened", "exception": exc})
        loop.default_exception_handler({"message": "Without exception", "detail": 42})
    records = [r for r in caplog.records if r.name == "asyncio"]
    assert len(records) == 2
    assert "Something odd happened" in records[0].getMessage()
    assert records[0].exc_info[1] is exc
    assert "Without exception" in records[1].getMessage()
    assert "42" in records[1].getMessage()  # extra context keys are shown


def test_call_exception_handler_without_custom_handler_logs(loop, caplog):
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.call_exception_handler({"message": "via call_exception_handler"})
    assert any("via call_exception_handler" in r.getMessage() for r in caplog.records)


def test_custom_handler_can_delegate_to_default(loop, caplog):
    seen = []

    def handler(lp, ctx):
        seen.append(ctx["message"])
        lp.default_exception_handler(ctx)

    loop.set_exception_handler(handler)
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.call_soon(_raise, Boom("delegated"))
        loop.call_soon(loop.stop)
        run_forever(loop)
    assert len(seen) == 1
    assert any(r.exc_info and isinstance(r.exc_info[1], Boom) for r in caplog.records)


def test_failing_custom_handler_is_logged_and_loop_continues(loop, caplog):
    handler_exc = RuntimeError("handler broke")

    def handler(lp, ctx):
        raise handler_exc

    loop.set_exception_handler(handler)
    after = []
    with caplog.at_level(logging.ERROR, logger="asyncio"):
        loop.call_soon(_raise, Boom("cb"))
        loop.call_soon(after.append, "ran")
        loop.call_soon(loop.stop)
        run_forever(loop)
    assert after == ["ran"]
    assert any(r.exc_info and r.exc_info[1] is handler_exc for r in caplog.records)


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_base_exceptions_from_callback_propagate_out_of_run_forever(loop, contexts, exc_type):
    loop.call_soon(_raise, exc_type())
    with pytest.raises(exc_type):
        run_forever(loop)
    assert contexts == []  # not routed to the handler
    assert not loop.is_running()
    assert asyncio._get_running_loop() is None
    # The loop is still usable.
    out = []
    loop.call_soon(out.append, "again")
    loop.call_soon(loop.stop)
    run_forever(loop)
    assert out == ["again"]
    assert run(loop, asyncio.sleep(0, "ok")) == "ok"


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_base_exceptions_from_timer_propagate(loop, exc_type):
    loop.call_later(0.001, _raise, exc_type())
    with pytest.raises(exc_type):
        run_forever(loop)
    assert not loop.is_running()
    assert run(loop, asyncio.sleep(0.001, "ok")) == "ok"


def test_keyboard_interrupt_from_reader_propagates(loop):
    a, b = socketpair_nb()
    try:
        def on_readable():
            loop.remove_reader(a.fileno())
            raise KeyboardInterrupt

        loop.add_reader(a.fileno(), on_readable)
        b.send(b"x")
        with pytest.raises(KeyboardInterrupt):
            run_forever(loop)
        assert run(loop, asyncio.sleep(0, "ok")) == "ok"
    finally:
        a.close()
        b.close()


def test_keyboard_interrupt_out_of_run_until_complete(loop):
    async def main():
        await asyncio.sleep(0)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        loop.run_until_complete(main())
    assert not loop.is_running()
    assert run(loop, asyncio.sleep(0, "ok")) == "ok"


def test_callbacks_after_base_exception_run_on_next_run(loop):
    out = []
    loop.call_soon(_raise, KeyboardInterrupt())
    loop.call_soon(out.append, "queued-after")
    with pytest.raises(KeyboardInterrupt):
        run_forever(loop)
    loop.call_soon(loop.stop)
    run_forever(loop)
    assert out == ["queued-after"]


def test_unretrieved_task_exception_reported(loop, contexts):
    exc = Boom("never retrieved")

    async def failing():
        raise exc

    task = loop.create_task(failing())
    loop.call_soon(loop.stop)
    run_forever(loop)
    while not task.done():  # pragma: no cover - at most a couple of iterations
        loop.call_soon(loop.stop)
        run_forever(loop)
    del task
    gc.collect()
    assert len(contexts) == 1
    ctx = contexts[0][1]
    assert ctx["exception"] is exc
    assert "future" in ctx
    assert "never retrieved" in ctx["message"]


def test_exception_in_sock_callback_does_not_leak_into_loop(loop, contexts):
    # An error inside a sock_* operation belongs to its future, not the handler.
    a, b = socket.socketpair()
    a.setblocking(False)
    b.close()
    try:
        async def main():
            with pytest.raises(OSError):
                for _ in range(100):
                    await loop.sock_sendall(a, b"x" * 65536)

        run(loop, main())
    finally:
        a.close()
    assert contexts == []
