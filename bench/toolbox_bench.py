"""The "toolbox" benchmark group: pyloop.sync channels and primitives, pyloop.task, each next to the
nearest asyncio equivalent (asyncio.Queue, asyncio.Semaphore, create_task, asyncio.wait), on every loop.

The benchmarks live in toolbox_channels.py, toolbox_sync.py and toolbox_tasks.py; this module only
gathers them for compare.py (``python bench/compare.py --group toolbox``).
"""
from __future__ import annotations

try:  # imported as bench.toolbox_bench or with bench/ on sys.path
    from . import toolbox_channels, toolbox_sync, toolbox_tasks
except ImportError:
    import toolbox_channels
    import toolbox_sync
    import toolbox_tasks

BENCHMARKS = [*toolbox_channels.BENCHMARKS, *toolbox_sync.BENCHMARKS, *toolbox_tasks.BENCHMARKS]
