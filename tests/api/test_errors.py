"""The toolbox's exceptions can be found from one place: docs/ARCHITECTURE.md, "Errors of the toolbox".

Each exception that a public toolbox module exports is a row of that table, with the module to import
it from; each row names a class that module really exports; no class is exported by two modules (one
import path each, so nothing can drift); and each module's docstring has an "Errors" paragraph that
names its own exceptions.  When a test fails, the message says which side to update.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLBOX = ["pyloop.task", "pyloop.time", "pyloop.sync", "pyloop.fs", "pyloop.net", "pyloop.serving"]
SECTION = "## Errors of the toolbox"
ROW = re.compile(r"^\| `(\w+)` \| `(pyloop[\w.]*)` \|", re.M)
ERRORS_PARAGRAPH = re.compile(r"^Errors\b", re.M)


def _table() -> dict[str, str]:
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    assert SECTION in text, f"docs/ARCHITECTURE.md has no {SECTION!r} section"
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    return dict(ROW.findall(text[start:end if end >= 0 else None]))


def _exported() -> list[tuple[str, str, type]]:
    """(name, module, class) for every exception class in a toolbox module's ``__all__``."""
    found = []
    for module_name in TOOLBOX:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if inspect.isclass(obj) and issubclass(obj, BaseException):
                found.append((name, module_name, obj))
    return found


def test_every_exported_exception_is_in_the_table_and_only_those():
    exported = {name: module for name, module, _ in _exported()}
    table = _table()
    missing = {n: m for n, m in exported.items() if table.get(n) != m}
    stale = {n: m for n, m in table.items() if exported.get(n) != m}
    assert not missing, f"add these rows to docs/ARCHITECTURE.md, {SECTION!r}: {missing}"
    assert not stale, f"these rows of docs/ARCHITECTURE.md, {SECTION!r}, name no exported class: {stale}"


def test_each_exception_has_one_public_import_path():
    paths: dict[type, list[str]] = {}
    for name, module, cls in _exported():
        paths.setdefault(cls, []).append(f"{module}.{name}")
    assert {cls.__name__: p for cls, p in paths.items() if len(p) > 1} == {}


@pytest.mark.parametrize("module_name", TOOLBOX)
def test_module_docstring_says_what_it_raises(module_name):
    doc = importlib.import_module(module_name).__doc__ or ""
    match = ERRORS_PARAGRAPH.search(doc)
    assert match, f"{module_name}: its docstring needs an 'Errors' paragraph"
    errors = doc[match.start():]
    own = [name for name, module, _ in _exported() if module == module_name]
    assert [name for name in own if name not in errors] == [], (
        f"{module_name}: name its own exceptions in the docstring's 'Errors' paragraph")
