"""Event loop implementations the runner can test.

Each profile says how to make a loop, which policy class routes
``asyncio.new_event_loop()`` / ``asyncio.run()`` / ``asyncio.Runner()`` to it,
and which class its loops are instances of (used to verify that a test really
ran on the implementation under test).  Profiles are looked up by name in the
child process only, so importing this module never imports uvloop or pyloop.
"""

import asyncio
import importlib
from dataclasses import dataclass
from typing import Callable, Tuple


@dataclass(frozen=True)
class LoopImpl:
    name: str
    new_event_loop: Callable[[], asyncio.AbstractEventLoop]
    policy_class: type
    loop_types: Tuple[type, ...]


def _asyncio():
    # What asyncio.new_event_loop() gives on this platform under the default
    # policy: _UnixSelectorEventLoop with the best selector (epoll here).
    return LoopImpl(
        name="asyncio",
        new_event_loop=lambda: asyncio.DefaultEventLoopPolicy().new_event_loop(),
        policy_class=asyncio.DefaultEventLoopPolicy,
        loop_types=(asyncio.SelectorEventLoop,),
    )


def _uvloop():
    uvloop = importlib.import_module("uvloop")
    return LoopImpl(
        name="uvloop",
        new_event_loop=uvloop.new_event_loop,
        # uvloop builds this class lazily (deprecated alias); fetch it once.
        policy_class=uvloop.EventLoopPolicy,
        loop_types=(uvloop.Loop,),
    )


def _pyloop():
    pyloop = importlib.import_module("pyloop")
    return LoopImpl(
        name="pyloop",
        new_event_loop=pyloop.new_event_loop,
        policy_class=pyloop.EventLoopPolicy,
        loop_types=(pyloop.Loop,),
    )


PROFILES = {"asyncio": _asyncio, "uvloop": _uvloop, "pyloop": _pyloop}


def load(name):
    try:
        return PROFILES[name]()
    except KeyError:
        raise SystemExit(f"unknown loop implementation {name!r}; "
                         f"choose from {', '.join(PROFILES)}") from None
