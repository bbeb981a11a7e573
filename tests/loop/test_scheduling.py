"""call_soon: ordering, arguments, iteration boundaries, handles and contexts."""

import asyncio
import contextvars
import functools
import threading

import pytest

from ._util import run, run_forever

var = contextvars.ContextVar("var", default="default")


def test_call_soon_runs_callbacks_in_fifo_order(loop):
    out = []
    for i in range(1000):
        loop.call_soon(out.append, i)
    loop.call_soon(loop.stop)
    run_forever(loop)
    assert out == list(range(1000))


def test_call_soon_passes_positional_args(loop):
    got = []

    def cb(*args):
        got.append(args)

    obj = object()
    loop.call_soon(cb)
    loop.call_soon(cb, 1)
    loop.call_soon(cb, "a", None, obj, (1, 2))
    loop.call_soon(loop.stop)
    run_forever(loop)
    assert got == [(), (1,), ("a", None, obj, (1, 2))]


def test_call_soon_accepts_partials_methods_and_builtins(loop):
    out = []

    class Box:
        def put(self, x):
            out.append(("method", x))

    loop.call_soon(functools.partial(out.append, "partial"))
    loop.call_soon(Box().put, 1)
    loop.call_soon(out.append, "builtin")
    loop.call_soon(lambda: out.append("lambda"))
    loop.call_soon(loop.stop)
    run_forever(loop)
    assert out == ["partial", ("method", 1), "builtin", "lambda"]


def test_call_soon_returns_a_handle(loop):
    h = loop.call_soon(lambda: None)
    assert hasattr(h, "cancel") and hasattr(h, "cancelled")
    assert h.cancelled() is False
    h.cancel()


def test_callbacks_scheduled_while_running_go_after_the_current_batch(loop):
    out = []

    def first():
        out.append("first")
        loop.call_soon(out.append, "scheduled-by-first")

    loop.call_soon(first)
    loop.call_soon(out.append, "second")
    loop.call_soon(out.append, "third")
    loop.call_soon(loop.stop)
    run_forever(loop)
    # Whatever the batching, FIFO order puts new callbacks behind those already queued.
    assert out[:3] == ["first", "second", "third"]
    if len(out) < 4:  # stopped before the next iteration: it runs on the next run
        loop.call_soon(loop.stop)
        run_forever(loop)
    assert out == ["first", "second", "third", "scheduled-by-first"]


def test_self_rescheduling_callback_does_not_starve_timers_or_io(loop):
    # A callback that always reschedules itself must not stop the loop from
    # polling for I/O and running due timers: new callbacks wait for the next
    # iteration, so each iteration ends.
    import socket

    spins = [0]
    done = loop.create_future()
    seen = set()

    def spin():
        spins[0] += 1
        if not done.done():
            loop.call_soon(spin)

    def mark(what):
        seen.add(what)
        if seen == {"timer", "io"} and not done.done():
            done.set_result(None)

    a, b = socket.socketpair()
    try:
        loop.add_reader(a.fileno(), mark, "io")
        b.send(b"x")
        loop.call_later(0.01, mark, "timer")
        loop.call_soon(spin)
        run(loop, done)
        loop.remove_reader(a.fileno())
    finally:
        a.close()
        b.close()
    assert spins[0] > 0


def test_cancelled_handle_does_not_run(loop):
    out = []
    h = loop.call_soon(out.append, "cancelled")
    loop.call_soon(out.append, "kept")
    h.cancel()
    assert h.cancelled()
    loop.call_soon(loop.stop)
    run_forever(loop)
    assert out == ["kept"]


def test_cancel_from_earlier_callback_in_same_batch(loop):
    out = []
    handles = {}

    def canceller():
        out.append("canceller")
        handles["victim"].cancel()

    loop.call_soon(canceller)
    handles["victim"] = loop.call_soon(out.append, "victim")
    loop.call_soon(out.append, "after")
    loop.call_soon(loop.stop)
    run_forever(loop)
    assert out == ["canceller", "after"]
    assert handles["victim"].cancelled()


def test_cancel_is_idempotent_and_harmless_after_run(loop):
    out = []
    h = loop.call_soon(out.append, 1)
    loop.call_soon(loop.stop)
    run_forever(loop)
    assert out == [1]
    h.cancel()
    h.cancel()
    assert h.cancelled()
    h2 = loop.call_soon(out.append, 2)
    h2.cancel()
    h2.cancel()
    assert h2.cancelled()


def test_handle_repr(loop):
    def my_callback_name():
        pass

    h = loop.call_soon(my_callback_name)
    r = repr(h)
    assert "Handle" in r
    assert "my_callback_name" in r
    h.cancel()
    assert "cancelled" in repr(h)


@pytest.mark.skipif(not hasattr(asyncio.Handle, "get_context"), reason="Handle.get_context is 3.12+")
def test_handle_get_context(loop):
    ctx = contextvars.copy_context()
    h = loop.call_soon(lambda: None, context=ctx)
    assert h.get_context() is ctx
    h.cancel()


def test_callback_runs_in_given_context(loop):
    ctx = contextvars.Context()
    ctx.run(var.set, "in-ctx")
    seen = []

    def cb():
        seen.append(var.get())
        var.set("changed-by-callback")

    loop.call_soon(cb, context=ctx)
    loop.call_soon(loop.stop)
    run_forever(loop)
    assert seen == ["in-ctx"]
    # The callback ran *in* ctx, so its change is visible there...
    assert ctx[var] == "changed-by-callback"
    # ...and not in the caller's context.
    assert var.get() == "default"


def test_callback_default_context_is_a_copy_of_the_current_one(loop):
    seen = []

    def reader(tag):
        seen.append((tag, var.get()))

    def writer():
        var.set("written-by-callback")

    token = var.set("outer")
    try:
        loop.call_soon(writer)
        loop.call_soon(reader, "first")
        var.set("outer-changed-after-scheduling")
        loop.call_soon(reader, "second")
    finally:
        var.reset(token)
    loop.call_soon(loop.stop)
    run_forever(loop)
    # Each callback gets its own copy taken at scheduling time: the writer's
    # change leaks neither into other callbacks nor into the caller.
    assert seen == [("first", "outer"), ("second", "outer-changed-after-scheduling")]
    assert var.get() == "default"


def _from_an_empty_context(schedule):
    """Run ``schedule`` in a context holding no variable (where asyncio's copy is empty)."""
    contextvars.Context().run(schedule)


def test_callbacks_scheduled_from_an_empty_context_do_not_share_what_they_set(loop):
    seen = []
    tokens = []

    def writer(keep_token):
        seen.append(var.get())
        token = var.set("written")
        if keep_token:
            tokens.append(token)

    def schedule():
        loop.call_soon(writer, False)
        loop.call_soon(writer, True)
        loop.call_soon(writer, False)
        loop.call_later(0, writer, False)
        loop.call_soon(loop.call_soon, writer, False)

    _from_an_empty_context(schedule)
    loop.call_later(0.01, loop.stop)
    run_forever(loop)
    assert seen == ["default"] * 5
    assert var.get() == "default"


def test_get_context_of_a_callback_scheduled_from_an_empty_context(loop):
    def writer():
        var.set("written")

    handles = []
    _from_an_empty_context(lambda: handles.extend([loop.call_soon(writer), loop.call_soon(lambda: None),
                                                   loop.call_soon(var.get)]))
    if not hasattr(handles[0], "get_context"):
        for handle in handles:
            handle.cancel()
        pytest.skip("asyncio's Handle.get_context is 3.12+")
    before = handles[2].get_context()
    assert len(before) == 0
    assert handles[2].get_context() is before
    before.run(var.set, "set before the run")
    seen = []
    loop.call_soon(lambda: seen.append(handles[2].get_context()[var]))
    loop.call_soon(loop.stop)
    run_forever(loop)
    # The callback's context is the one it ran in, its own change included...
    assert handles[0].get_context()[var] == "written"
    # ...one left empty is still an empty context, and what was set in a
    # context fetched before the run was seen by the callback.
    assert len(handles[1].get_context()) == 0
    assert handles[2].get_context() is before
    assert seen == ["set before the run"]


def test_threadsafe_callbacks_from_a_fresh_thread_get_separate_contexts(loop):
    seen = []

    def callback():
        seen.append(var.get())
        var.set("set by a callback")

    def worker():                    # a new thread: no context of its own yet
        for _ in range(3):
            loop.call_soon_threadsafe(callback)
        loop.call_soon_threadsafe(loop.stop)

    thread = threading.Thread(target=worker)
    loop.call_soon(thread.start)
    run_forever(loop)
    thread.join(60)
    assert seen == ["default"] * 3


def test_same_context_shared_by_several_callbacks(loop):
    ctx = contextvars.copy_context()
    seen = []

    def bump():
        seen.append(var.get())
        var.set(var.get() + "+")

    for _ in range(3):
        loop.call_soon(bump, context=ctx)
    loop.call_soon(loop.stop)
    run_forever(loop)
    assert seen == ["default", "default+", "default++"]
    assert ctx[var] == "default+++"


def test_timer_and_threadsafe_callbacks_honour_context(loop):
    ctx = contextvars.Context()
    ctx.run(var.set, "ctx")
    seen = []
    loop.call_later(0, lambda: seen.append(("later", var.get())), context=ctx)
    loop.call_at(loop.time(), lambda: seen.append(("at", var.get())), context=ctx)
    loop.call_soon_threadsafe(lambda: seen.append(("threadsafe", var.get())), context=ctx)
    loop.call_later(0.01, loop.stop)
    run_forever(loop)
    assert sorted(seen) == [("at", "ctx"), ("later", "ctx"), ("threadsafe", "ctx")]


def test_tasks_see_context_of_creator(loop):
    async def child():
        return var.get()

    async def main():
        var.set("parent")
        t = asyncio.ensure_future(child())
        return await t

    assert run(loop, main()) == "parent"
    assert var.get() == "default"


def test_handles_show_asyncios_attributes(loop):
    """The attributes of asyncio's handles that code in the wild reads (aiohttp's tests read _when)."""
    def cb(*args):
        pass

    soon = loop.call_soon(cb, 1, 2)
    later = loop.call_later(3600, cb)
    assert soon._callback is cb and soon._args == (1, 2) and soon._loop is loop and not soon._cancelled
    assert later._when == later.when() and later._scheduled and later._args == ()
    later.cancel()
    soon.cancel()
    assert later._cancelled and soon._cancelled
    assert later._callback is None and soon._args is None
