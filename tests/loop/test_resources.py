"""The loop must not keep user objects alive longer than needed (no hidden leaks)."""

import gc
import socket
import weakref

from ._util import run_forever


class Payload:
    """Something a callback argument can hold; weakref-able so we can watch it die."""


def _collected(ref):
    for _ in range(3):
        gc.collect()
    return ref() is None


def test_callback_args_released_after_running(loop):
    obj = Payload()
    ref = weakref.ref(obj)
    loop.call_soon(lambda o: None, obj)
    loop.call_later(0, lambda o: None, obj)
    del obj
    loop.call_later(0.005, loop.stop)
    run_forever(loop)
    assert _collected(ref)


def test_cancelled_far_timer_releases_its_callback_and_args(loop):
    # A cancelled timer may stay in the timer queue until its deadline (lazy
    # deletion), but what it refers to must be released right away.
    obj = Payload()
    ref = weakref.ref(obj)
    h = loop.call_later(3600, lambda o: None, obj)
    del obj
    h.cancel()
    del h
    loop.call_soon(loop.stop)
    run_forever(loop)
    assert _collected(ref)


def test_cancelled_handle_kept_by_user_releases_args(loop):
    obj = Payload()
    ref = weakref.ref(obj)
    h = loop.call_soon(lambda o: None, obj)
    del obj
    h.cancel()
    loop.call_soon(loop.stop)
    run_forever(loop)
    assert _collected(ref)
    assert h.cancelled()


def test_close_releases_pending_callbacks(loop):
    objs = [Payload() for _ in range(3)]
    refs = [weakref.ref(o) for o in objs]
    loop.call_soon(lambda o: None, objs[0])
    loop.call_later(3600, lambda o: None, objs[1])
    loop.call_soon_threadsafe(lambda o: None, objs[2])
    del objs
    loop.close()
    assert all(_collected(r) for r in refs)


def test_remove_reader_releases_callback_args(loop):
    a, b = socket.socketpair()
    try:
        obj = Payload()
        ref = weakref.ref(obj)
        loop.add_reader(a.fileno(), lambda o: None, obj)
        loop.add_writer(a.fileno(), lambda o: None, obj)
        del obj
        loop.remove_reader(a.fileno())
        loop.remove_writer(a.fileno())
        loop.call_soon(loop.stop)
        run_forever(loop)
        assert _collected(ref)
    finally:
        a.close()
        b.close()


def test_closed_loop_is_collectable(loop_impl):
    lp = loop_impl.new_loop()
    lp.call_soon(lambda: None)
    lp.call_later(3600, lambda: None)
    lp.close()
    ref = weakref.ref(lp)
    del lp
    assert _collected(ref)
