"""tools/devenv.py (the venvs and the pins) as an importable module, for the tests and conftest."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_PATH = Path(__file__).resolve().parents[1] / "tools" / "devenv.py"
_spec = importlib.util.spec_from_file_location("_pyloop_devenv", _PATH)
devenv = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(devenv)
