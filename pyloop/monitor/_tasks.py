"""Task trees: every live task of a loop, what it is waiting on, and who waits for it.

For each task ``tasks()`` walks the coroutine's await chain -- ``cr_await`` of
coroutines, ``ag_await`` of async generators, ``gi_yieldfrom`` of generators, and
through the small wrappers in between (a future's ``__await__`` iterator, an async
generator's ``asend``) by what they refer to (``gc.get_referents``) -- down to the
future it is suspended on.  Those frames, outermost first, are where the task is.

Who awaits whom is read from the other end, the way the task will be woken: the
done callbacks of the task.  A callback that is another task's wake-up means
that task awaits this one directly; a ``TaskGroup``'s callback names the group's
parent task; a callback that refers (in its closure, its partial arguments, or
attributes of asyncio's or pyloop's own objects) to another future leads to
whoever awaits *that* future -- which covers ``gather``'s outer future,
``asyncio.wait``, ``shield``, and pyloop's ``JoinSet``, ``JoinHandle``,
``join``/``try_join``/``select``.  The link is labelled by the group
(``TaskGroup``, ``gather``) or by the library call the parent is inside
(``JoinSet``, ``select``, ``wait``...), else ``await``.  A member of a group
that nobody is waiting on at the moment (a ``JoinSet`` whose owner is busy
elsewhere) is attached to the task that holds the group in a local variable.

All of this reads public attributes of coroutines and frames, plus three of
asyncio's long-standing private ones (a future's ``_callbacks``, a
``TaskGroup``'s ``_parent_task``, a gathering future's type): where one is
missing, a link is simply not found.  Nothing is modified.  It must run on the
loop's thread (or while the loop is not running): ``tasks()`` sends itself
there when called from another thread.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import functools
import gc
import os
import time
import types
import weakref
from dataclasses import dataclass
from typing import Any, Iterable

from pyloop._core import metrics as _counters

from ._metrics import resolve_loop

__all__ = ["TaskInfo", "format_tasks", "tasks", "track_task_ages"]

_ASYNCIO_DIR = os.path.dirname(asyncio.__file__) + os.sep
_PYLOOP_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_MAX_CHAIN = 64          # frames of one await chain
_MAX_DEPTH = 6           # hops from a done callback to the task it wakes
_MAX_ITEMS = 64          # items of one container looked at


@dataclass(frozen=True)
class TaskInfo:
    """One live task: where it is, what it waits on, and who waits for it."""

    id: int
    """``id()`` of the task: unique among the live tasks, links ``parent``."""
    name: str
    """The task's name."""
    state: str
    """``running`` (its step is executing now), ``cancelling`` or ``pending``."""
    age: float | None
    """Seconds since it was created, if that was noted (see ``track_task_ages``)."""
    coro: str
    """Qualified name of its coroutine."""
    frames: tuple[str, ...]
    """Its await chain, outermost first, as ``file:line in function``."""
    awaiting: str | None
    """What the innermost await waits on: ``task 'name'``, the library call
    (``sleep``, ``Queue.get``, ``JoinSet.join_next``...) or the future's type."""
    parent: int | None
    """``id`` of the task that waits for this one, if any."""
    via: str | None
    """How the parent waits for it: ``await``, ``TaskGroup``, ``gather``,
    ``JoinSet``, ``select``, ``wait``..."""
    awaited_by: tuple[tuple[int, str], ...]
    """Every ``(task id, via)`` that waits for it (``parent`` is the first)."""

    @property
    def where(self) -> str | None:
        """The innermost frame of the chain that is not asyncio's or pyloop's own."""
        for frame in reversed(self.frames):
            if not _is_library(frame):
                return frame
        return self.frames[-1] if self.frames else None

    def as_dict(self) -> dict[str, Any]:
        """The record as plain JSON-able types."""
        return {"id": self.id, "name": self.name, "state": self.state, "age": self.age,
                "coro": self.coro, "frames": list(self.frames), "awaiting": self.awaiting,
                "parent": self.parent, "via": self.via,
                "awaited_by": [list(pair) for pair in self.awaited_by]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskInfo:
        """The record ``as_dict()`` described."""
        return cls(id=data["id"], name=data["name"], state=data["state"], age=data["age"],
                   coro=data["coro"], frames=tuple(data["frames"]), awaiting=data["awaiting"],
                   parent=data["parent"], via=data["via"],
                   awaited_by=tuple((int(i), str(v)) for i, v in data["awaited_by"]))


def _is_library(filename: str) -> bool:
    return filename.startswith((_ASYNCIO_DIR, _PYLOOP_DIR))


def track_task_ages(enabled: bool = True) -> None:
    """Note the creation time of every task pyloop loops create from now on, so that
    :func:`tasks` can give their ``age``.

    Costs ``create_task`` one weak-dictionary insert while on; ``serve()`` and
    ``PYLOOP_MONITOR=1`` turn it on.  Tasks created before, and tasks of other
    asyncio loops, have ``age`` None.
    """
    _counters.track_task_births(bool(enabled))


# ---- the await chain -----------------------------------------------------------------

def _chain(task: Any) -> tuple[list[types.FrameType], Any]:
    """The frames of a task's await chain, outermost first, and the awaitable at its end."""
    frames: list[types.FrameType] = []
    aw = task.get_coro() if hasattr(task, "get_coro") else None
    seen: set[int] = set()
    while aw is not None and id(aw) not in seen and len(frames) < _MAX_CHAIN:
        seen.add(id(aw))
        if isinstance(aw, types.CoroutineType):
            frame, nxt = aw.cr_frame, aw.cr_await
        elif isinstance(aw, types.AsyncGeneratorType):
            frame, nxt = aw.ag_frame, aw.ag_await
        elif isinstance(aw, types.GeneratorType):
            frame, nxt = aw.gi_frame, aw.gi_yieldfrom
        elif asyncio.isfuture(aw):
            return frames, aw
        else:
            # A wrapper: a future's __await__ iterator, an asend/athrow of an async
            # generator, a coroutine's __await__ wrapper.  Follow what it wraps.
            frame = None
            nxt = next((r for r in gc.get_referents(aw) if _steppable(r)), None)
            if nxt is None:
                return frames, aw
        if frame is not None:
            frames.append(frame)
        aw = nxt
    return frames, None


def _steppable(obj: Any) -> bool:
    return isinstance(obj, (types.CoroutineType, types.AsyncGeneratorType, types.GeneratorType)) \
        or asyncio.isfuture(obj)


def _frame_text(frame: types.FrameType) -> str:
    code = frame.f_code
    return f"{code.co_filename}:{frame.f_lineno} in {getattr(code, 'co_qualname', code.co_name)}"


def _library_call(frames: list[types.FrameType]) -> str | None:
    """The qualified name of the outermost asyncio or pyloop function in the chain:
    the library call the task is inside (``sleep``, ``JoinSet.join_next``)."""
    for frame in frames:
        if _is_library(frame.f_code.co_filename):
            code = frame.f_code
            return getattr(code, "co_qualname", code.co_name).split(".<locals>")[0]
    return None


def _label(call: str | None) -> str | None:
    # "JoinSet.join_next" -> "JoinSet"; "select" -> "select".
    return call.split(".")[0] if call else None


# ---- who is woken when a future completes --------------------------------------------

class _Link:
    """A task woken through a chain of callbacks: ``hint`` names a group that says
    how (``TaskGroup``, ``gather``, ``await`` for a direct wake-up), ``fallback``
    the function whose closure led there, ``group`` the group object passed on
    the way (``task`` None: a group whose waiter was not found)."""

    __slots__ = ("task", "hint", "fallback", "group")

    def __init__(self, task: Any, hint: str | None, group: Any, fallback: str | None = None) -> None:
        self.task = task
        self.hint = hint
        self.group = group
        self.fallback = fallback


def _wakes(fut: Any, depth: int, seen: set[int]) -> list[_Link]:
    """The tasks woken when ``fut`` completes, found through its done callbacks."""
    if depth > _MAX_DEPTH or id(fut) in seen:
        return []
    seen.add(id(fut))
    links: list[_Link] = []
    for item in list(getattr(fut, "_callbacks", None) or ())[:_MAX_ITEMS]:
        callback = item[0] if isinstance(item, tuple) else item
        links.extend(_follow(callback, depth, seen, None))
    return links


def _ours(obj: Any) -> bool:
    module = getattr(type(obj), "__module__", "") or ""
    return module.startswith(("asyncio", "pyloop", "_asyncio"))


def _follow(obj: Any, depth: int, seen: set[int], group: Any) -> list[_Link]:
    """Who is woken through ``obj``: a callback, or something a callback refers to."""
    if obj is None or depth > _MAX_DEPTH:
        return []
    if isinstance(obj, asyncio.Task):
        return [_Link(obj, "await", group)]
    if isinstance(obj, asyncio.TaskGroup):
        return [_Link(getattr(obj, "_parent_task", None), "TaskGroup", obj)]
    if asyncio.isfuture(obj):
        if type(obj).__name__ == "_GatheringFuture":
            return [_Link(link.task, "gather", obj) for link in _wakes(obj, depth + 1, seen)]
        # Whoever awaits this other future waits for ours only through it: the
        # link's name comes from where they wait, not from "await".
        return [_Link(link.task, link.hint if link.hint != "await" else None,
                      link.group or group, link.fallback)
                for link in _wakes(obj, depth + 1, seen)]
    if id(obj) in seen:
        return []
    seen.add(id(obj))
    if isinstance(obj, weakref.ref):
        return _follow(obj(), depth + 1, seen, group)
    if isinstance(obj, functools.partial):
        parts = [obj.func, *obj.args, *(obj.keywords or {}).values()]
        return [link for part in parts for link in _follow(part, depth + 1, seen, group)]
    if isinstance(obj, (types.MethodType, types.BuiltinMethodType)):
        owner = getattr(obj, "__self__", None)
        if isinstance(owner, types.ModuleType):
            return []
        return _follow(owner, depth + 1, seen, group)
    if isinstance(obj, types.FunctionType):
        cells = obj.__closure__ or ()
        links = []
        for cell in cells:
            try:
                value = cell.cell_contents
            except ValueError:          # an empty cell
                continue
            links.extend(_follow(value, depth + 1, seen, group))
        for link in links:
            if link.fallback is None:
                link.fallback = obj.__qualname__.split(".")[0].lstrip("_") or None
        return links
    if isinstance(obj, (list, tuple, collections.deque)):
        return [link for item in list(obj)[:_MAX_ITEMS]
                if asyncio.isfuture(item) or callable(item) or isinstance(item, weakref.ref)
                for link in _follow(item, depth + 1, seen, group)]
    if _ours(obj) and not isinstance(obj, (set, frozenset, dict, type)):
        # One of asyncio's or pyloop's own objects (a JoinSet, a JoinHandle's
        # bookkeeping): what it holds in attributes.  A public class is a group
        # its members can be attached to.
        public = not type(obj).__name__.startswith("_")
        if public:
            group = obj
        links = []
        for value in _attributes(obj):
            links.extend(_follow(value, depth + 1, seen, group))
        if public and not any(link.task is not None for link in links):
            links.append(_Link(None, None, obj))
        return links
    return []


def _attributes(obj: Any) -> Iterable[Any]:
    values = list(getattr(obj, "__dict__", {}).values())
    for klass in type(obj).__mro__:
        for slot in getattr(klass, "__slots__", ()):
            if isinstance(slot, str) and not slot.startswith("__"):
                try:
                    values.append(getattr(obj, slot))
                except AttributeError:
                    pass
    return [v for v in values if asyncio.isfuture(v) or callable(v)
            or isinstance(v, (weakref.ref, list, tuple, collections.deque))]


# ---- the snapshot ---------------------------------------------------------------------

def _collect(loop: asyncio.AbstractEventLoop) -> list[TaskInfo]:
    live = asyncio.all_tasks(loop)
    by_id = {id(t): t for t in live}
    current = asyncio.current_task(loop)
    now_ns = time.monotonic_ns()
    chains = {id(t): _chain(t) for t in live}

    awaited_by: dict[int, list[tuple[int, str]]] = {}
    orphan_groups: dict[int, tuple[Any, list[int]]] = {}
    for task in live:
        links = _wakes(task, 0, set())
        pairs: list[tuple[int, str]] = []
        for link in links:
            parent = link.task
            if parent is None or parent is task or id(parent) not in by_id:
                continue
            via = link.hint
            if via not in ("TaskGroup", "gather"):
                # Named by the library call the parent is in (JoinSet.join_next,
                # select, wait...), else by the callback's function.
                frames, _ = chains[id(parent)]
                via = _label(_library_call(frames)) or via or link.fallback or "await"
            if (id(parent), via) not in pairs:
                pairs.append((id(parent), via))
        if not pairs:
            for link in links:
                if link.group is not None and not isinstance(link.group, asyncio.Future):
                    members = orphan_groups.setdefault(id(link.group), (link.group, []))[1]
                    if id(task) not in members:
                        members.append(id(task))
        awaited_by[id(task)] = pairs
    if orphan_groups:
        _attach_to_holders(live, chains, orphan_groups, awaited_by)

    infos = []
    for task in live:
        frames, leaf = chains[id(task)]
        pairs = awaited_by.get(id(task), [])
        parent, via = _acyclic_parent(id(task), pairs, awaited_by)
        birth = _counters.task_birth_ns(task)
        coro = task.get_coro()
        infos.append(TaskInfo(
            id=id(task),
            name=task.get_name(),
            state=_state(task, current),
            age=(now_ns - birth) / 1e9 if birth is not None else None,
            coro=getattr(coro, "__qualname__", type(coro).__name__),
            frames=tuple(_frame_text(f) for f in frames),
            awaiting=_awaiting(leaf, frames, task is current),
            parent=parent,
            via=via,
            awaited_by=tuple(pairs),
        ))
    infos.sort(key=lambda i: (-(i.age if i.age is not None else float("inf")), i.name))
    return infos


def _attach_to_holders(live: set[Any], chains: dict[int, Any],
                       orphan_groups: dict[int, tuple[Any, list[int]]],
                       awaited_by: dict[int, list[tuple[int, str]]]) -> None:
    """Members of a group nobody waits on now: their parent is the task that holds
    the group in a local variable of its await chain."""
    for holder in live:
        frames, _ = chains[id(holder)]
        for frame in frames:
            for value in list(frame.f_locals.values()):
                entry = orphan_groups.get(id(value))
                if entry is None:
                    continue
                group, members = entry
                for member in members:
                    if member != id(holder) and not awaited_by.get(member):
                        awaited_by[member] = [(id(holder), type(group).__name__)]


def _acyclic_parent(task_id: int, pairs: list[tuple[int, str]],
                    awaited_by: dict[int, list[tuple[int, str]]]) -> tuple[int | None, str | None]:
    # Awaiting is acyclic in a live program; the guard keeps a tree a tree anyway.
    for parent, via in pairs:
        node: int | None = parent
        hops = 0
        while node is not None and node != task_id and hops < 1000:
            up = awaited_by.get(node)
            node = up[0][0] if up else None
            hops += 1
        if node is None:
            return parent, via
    return None, None


def _state(task: Any, current: Any) -> str:
    if task is current:
        return "running"
    cancelling = getattr(task, "cancelling", None)
    if cancelling is not None and cancelling():
        return "cancelling"
    return "pending"


def _awaiting(leaf: Any, frames: list[types.FrameType], running: bool) -> str | None:
    if running:
        return None
    if isinstance(leaf, asyncio.Task):
        return f"task {leaf.get_name()!r}"
    call = _library_call(frames)
    if call is not None:
        return call
    if leaf is None:
        return None
    name = type(leaf).__name__
    return "gather" if name == "_GatheringFuture" else name


def tasks(loop: asyncio.AbstractEventLoop | None = None, *, timeout: float = 5.0) -> list[TaskInfo]:
    """Every live task of ``loop`` (the running loop by default), with its await chain
    and who awaits it, oldest first.

    Works on any asyncio loop.  Called from another thread while the loop runs, it
    asks the loop's thread to take the snapshot and waits up to ``timeout`` seconds
    (``TimeoutError`` if the loop does not answer: it may be blocked -- see
    ``watch_stalls``).  ``format_tasks`` prints the result as a tree.

    >>> for t in monitor.tasks():
    ...     print(t.name, t.state, t.via, t.where)
    """
    loop = resolve_loop(loop)
    if not loop.is_running() or asyncio._get_running_loop() is loop:
        return _collect(loop)
    answer: concurrent.futures.Future[list[TaskInfo]] = concurrent.futures.Future()

    def collect() -> None:
        if answer.set_running_or_notify_cancel():
            try:
                answer.set_result(_collect(loop))
            except BaseException as exc:
                answer.set_exception(exc)

    loop.call_soon_threadsafe(collect)
    try:
        return answer.result(timeout)
    except concurrent.futures.TimeoutError:
        answer.cancel()
        raise TimeoutError(f"the loop did not answer within {timeout} s: it may be blocked") from None


def format_tasks(infos: list[TaskInfo] | None = None, *,
                 loop: asyncio.AbstractEventLoop | None = None) -> str:
    """The task tree as text, like ``pstree``: each task under the one that awaits it,
    with how (``[TaskGroup]``, ``[gather]``...), its state and age, where it is and
    what it waits on.  ``infos`` defaults to ``tasks(loop)``.

    >>> print(monitor.format_tasks())
    'main' pending 2.0s main at app.py:30, awaiting TaskGroup.__aexit__
    ├── [TaskGroup] 'worker-1' pending 2.0s worker at app.py:12, awaiting sleep
    └── [TaskGroup] 'worker-2' pending 2.0s worker at app.py:12, awaiting task 'fetch'
        └── [await] 'fetch' pending 1.9s fetch at app.py:20, awaiting Queue.get
    """
    if infos is None:
        infos = tasks(loop)
    by_id = {i.id: i for i in infos}
    children: dict[int | None, list[TaskInfo]] = {}
    for info in infos:
        parent = info.parent if info.parent in by_id else None
        children.setdefault(parent, []).append(info)
    lines: list[str] = []

    def walk(info: TaskInfo, prefix: str, branch: str, depth: int) -> None:
        lines.append(prefix + branch + _line(info, depth > 0))
        kids = children.get(info.id, [])
        extension = "" if depth == 0 else ("    " if branch.startswith("└") else "│   ")
        for n, kid in enumerate(kids):
            last = n == len(kids) - 1
            walk(kid, prefix + extension, "└── " if last else "├── ", depth + 1)

    for root in children.get(None, []):
        walk(root, "", "", 0)
    return "\n".join(lines)


def _line(info: TaskInfo, show_via: bool) -> str:
    parts = []
    if show_via and info.via:
        parts.append(f"[{info.via}]")
    parts.append(repr(info.name))
    parts.append(info.state)
    if info.age is not None:
        parts.append(f"{info.age:.1f}s")
    where = info.where
    if where is not None:
        location, _, function = where.rpartition(" in ")
        parts.append(f"{function} at {_short(location)}")
    if info.awaiting:
        parts[-1] += f", awaiting {info.awaiting}"
    return " ".join(parts)


def _short(location: str) -> str:
    # Paths relative to the working directory when they are below it.
    cwd = os.getcwd() + os.sep
    return location[len(cwd):] if location.startswith(cwd) else location
