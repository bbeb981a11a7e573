"""pyloop.monitor is outside the loop: _core's counters seam and public asyncio APIs only.

import-linter holds the same rule (pyproject.toml), but it sees an import of a compiled module as an
import of the root package; this reads the sources.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MONITOR = ROOT / "pyloop" / "monitor"
SEAM = "pyloop._core.metrics"
FORBIDDEN = ("pyloop._eventloop", "pyloop._transports", "pyloop._process", "pyloop.task", "pyloop.time",
             "pyloop.sync", "pyloop.fs", "pyloop.net", "pyloop.serving", "pyloop._blocking")


def _imports(path: Path) -> list[str]:
    found = []
    for match in re.finditer(r"^\s*(?:from\s+(\S+)\s+import\s+(\([^)]*\)|[^#\n]*)|import\s+(\S+))",
                             path.read_text(), re.M):
        module = match.group(1) or match.group(3)
        if match.group(1):
            names = [n.split()[0] for n in match.group(2).strip("()").split(",") if n.strip()]
            found.extend(f"{module}.{name}" for name in names)
        else:
            found.append(module)
    return found


def test_monitor_reaches_core_through_the_counters_seam_only():
    offenders = []
    for path in sorted(MONITOR.glob("*.py")):
        for name in _imports(path):
            if name.startswith("pyloop._core") and not (name + ".").startswith(SEAM + "."):
                offenders.append(f"{path.name}: {name}")
            if name.startswith(FORBIDDEN):
                offenders.append(f"{path.name}: {name}")
    assert offenders == []


def test_the_seam_is_what_the_monitor_uses():
    users = sorted(p.name for p in MONITOR.glob("*.py") if any(n.startswith(SEAM) for n in _imports(p)))
    assert users == ["_metrics.py", "_server.py", "_stalls.py", "_tasks.py", "prometheus.py"]
