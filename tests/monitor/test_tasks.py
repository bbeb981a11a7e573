"""monitor.tasks() / format_tasks(): await chains and who awaits whom, on asyncio and pyloop loops."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

import pyloop
from pyloop import monitor
from pyloop import task as ptask
from pyloop.monitor import TaskInfo

FOREVER = 3600


async def leaf():
    await asyncio.sleep(FOREVER)


async def in_gather():
    await asyncio.gather(leaf(), leaf())


async def in_joinset():
    async with ptask.JoinSet() as js:
        js.spawn(leaf(), name="js-1")
        js.spawn(leaf(), name="js-2")
        await js.join_next()


async def in_taskgroup():
    async with asyncio.TaskGroup() as tg:
        tg.create_task(in_gather(), name="inner-gather")
        tg.create_task(in_joinset(), name="inner-joinset")


async def in_select():
    await ptask.select(a=leaf(), b=leaf())


async def awaits_a_task(other):
    await other


async def agen():
    await asyncio.sleep(FOREVER)
    yield 1


async def in_async_for():
    async for _ in agen():
        pass


def _snapshot(loop, setup):
    """Start the tasks ``setup`` makes, let them settle, take tasks(), cancel everything."""
    async def main():
        made = setup()
        for _ in range(5):
            await asyncio.sleep(0)
        infos = monitor.tasks()
        for t in asyncio.all_tasks() - {asyncio.current_task()}:
            t.cancel()
        await asyncio.gather(*made, return_exceptions=True)
        return infos

    return loop.run_until_complete(main())


def _by_name(infos):
    return {i.name: i for i in infos}


def _children(infos, parent):
    return sorted((i.name, i.via) for i in infos if i.parent == parent.id)


def test_nested_taskgroup_gather_joinset_tree(loop):
    infos = _snapshot(loop, lambda: [asyncio.create_task(in_taskgroup(), name="outer")])
    named = _by_name(infos)
    outer, gathering, joining = named["outer"], named["inner-gather"], named["inner-joinset"]
    assert outer.parent is None              # main, taking the snapshot, awaits nothing
    assert _children(infos, outer) == [("inner-gather", "TaskGroup"), ("inner-joinset", "TaskGroup")]
    assert [via for _, via in _children(infos, gathering)] == ["gather", "gather"]
    assert _children(infos, joining) == [("js-1", "JoinSet"), ("js-2", "JoinSet")]
    assert outer.awaiting == "TaskGroup.__aexit__"
    assert gathering.awaiting == "gather"
    assert joining.awaiting == "JoinSet.join_next"
    for info in infos:
        if info.coro.endswith("leaf"):
            assert info.awaiting == "sleep"
            assert info.where.endswith(" in leaf")
            assert info.state == "pending"
    text = monitor.format_tasks(infos)
    assert "├── [TaskGroup] 'inner-gather'" in text
    assert "│   ├── [gather] " in text
    assert "    ├── [JoinSet] 'js-1'" in text or "    └── [JoinSet] 'js-1'" in text


def test_select_children_and_a_direct_await(loop):
    def setup():
        target = asyncio.create_task(leaf(), name="target")
        return [target, asyncio.create_task(awaits_a_task(target), name="waiter"),
                asyncio.create_task(in_select(), name="selector")]

    infos = _snapshot(loop, setup)
    named = _by_name(infos)
    assert named["target"].parent == named["waiter"].id and named["target"].via == "await"
    assert named["waiter"].awaiting == "task 'target'"
    assert [via for _, via in _children(infos, named["selector"])] == ["select", "select"]
    assert named["selector"].awaiting == "select"


def test_await_chain_goes_through_async_generators(loop):
    infos = _snapshot(loop, lambda: [asyncio.create_task(in_async_for(), name="consumer")])
    consumer = _by_name(infos)["consumer"]
    functions = [frame.rsplit(" in ", 1)[1] for frame in consumer.frames]
    assert functions[:2] == ["in_async_for", "agen"]
    assert consumer.frames[0].startswith(f"{__file__}:")
    assert consumer.awaiting == "sleep"


def test_the_running_task_and_roots(loop):
    async def main():
        return monitor.tasks(), asyncio.current_task()

    infos, me = loop.run_until_complete(main())
    (info,) = infos
    assert info.id == id(me) and info.state == "running" and info.parent is None
    assert info.awaiting is None
    assert TaskInfo.from_dict(info.as_dict()) == info


def test_joinset_members_hang_under_the_task_that_holds_it(loop):
    async def owner():
        js = ptask.JoinSet()
        js.spawn(leaf(), name="member")
        await asyncio.sleep(FOREVER)        # not joining: busy with something else
        del js

    infos = _snapshot(loop, lambda: [asyncio.create_task(owner(), name="owner")])
    named = _by_name(infos)
    assert named["member"].parent == named["owner"].id
    assert named["member"].via == "JoinSet"


def test_tasks_from_another_thread_and_when_the_loop_is_blocked(loop):
    box = {}

    def other_thread(release):
        box["infos"] = monitor.tasks(loop)
        release.set()

    async def main():
        release = threading.Event()
        sleeper = asyncio.create_task(leaf(), name="sleeper")
        thread = threading.Thread(target=other_thread, args=(release,))
        thread.start()
        await asyncio.to_thread(release.wait, 30)
        # Now block the loop and ask again: the loop cannot answer.
        errors = []
        asked = threading.Event()

        def ask_blocked():
            try:
                monitor.tasks(loop, timeout=0.2)
            except TimeoutError as exc:
                errors.append(exc)
            asked.set()

        thread = threading.Thread(target=ask_blocked)
        thread.start()
        asked.wait(30)              # blocks the loop, on purpose
        thread.join()
        sleeper.cancel()
        return errors

    errors = loop.run_until_complete(main())
    assert "sleeper" in _by_name(box["infos"])
    assert len(errors) == 1 and "blocked" in str(errors[0])


def test_ages_are_known_for_tasks_created_while_tracking():
    loop = pyloop.new_event_loop()
    try:
        monitor.track_task_ages(True)

        async def main():
            t = asyncio.create_task(leaf(), name="aged")
            await asyncio.sleep(0.05)
            infos = _by_name(monitor.tasks())
            t.cancel()
            return infos

        infos = loop.run_until_complete(main())
    finally:
        loop.close()
    assert infos["aged"].age is not None and 0.04 <= infos["aged"].age < 30


def test_format_tasks_defaults_to_the_running_loop(loop):
    async def main():
        t = asyncio.create_task(leaf(), name="child")
        await asyncio.sleep(0)
        text = monitor.format_tasks()
        t.cancel()
        return text

    text = loop.run_until_complete(main())
    assert "'child' pending" in text and "awaiting sleep" in text
    with pytest.raises(RuntimeError):
        monitor.tasks()
    start = time.monotonic()
    assert monitor.format_tasks([]) == ""
    assert time.monotonic() - start < 5
