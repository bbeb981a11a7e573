"""One style and the layer rules, enforced: ruff, cython-lint, import-linter, and the C/Cython rules
that import-linter cannot see (it reads Python imports only).

The configuration is in pyproject.toml ([tool.ruff], [tool.cython-lint], [tool.importlinter]); the
rules themselves are explained in docs/ARCHITECTURE.md.  The linters are test dependencies: missing,
these tests skip locally and fail under CI.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "pyloop"
TIMEOUT = 300


def _tool(name: str) -> str:
    """The console script of a test dependency, next to this interpreter first."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is a test dependency and is missing", pytrace=False)
        pytest.skip(f"{name} is not installed (pip install -e '.[test]')")
    return found


def _run(*args: str) -> subprocess.CompletedProcess:
    # The interpreter's directory first on PATH: cython-lint starts pycodestyle from there.
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
               PYTHONPATH=str(ROOT))
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT)


def _cython_sources() -> list[Path]:
    return sorted(p for ext in ("*.pyx", "*.pxi", "*.pxd") for p in PACKAGE.rglob(ext))


def test_ruff():
    proc = _run(_tool("ruff"), "check", "--no-cache", ".")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cython_lint():
    proc = _run(_tool("cython-lint"), *map(str, _cython_sources()))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_import_contracts():
    proc = _run(_tool("lint-imports"), "--no-cache")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def test_csrc_is_plain_c():
    offenders = [p.name for p in (ROOT / "csrc").iterdir()
                 if p.suffix in (".c", ".h") and re.search(r'#\s*include\s*[<"]Python\.h', p.read_text())]
    assert offenders == [], "csrc/ is plain C: no Python.h"


_CIMPORT = re.compile(r"^\s*(?:from\s+(\S+)\s+cimport|cimport\s+(\S+))", re.M)


def test_only_core_cimports_the_engine():
    """csrc/'s declarations (pyloop/_core/includes) are cimported by pyloop/_core alone."""
    offenders = []
    for path in _cython_sources():
        inside_core = path.is_relative_to(PACKAGE / "_core")
        for match in _CIMPORT.finditer(path.read_text()):
            module = match.group(1) or match.group(2)
            if module.startswith("pyloop._core.includes") and not inside_core:
                offenders.append(f"{path.relative_to(ROOT)}: cimports {module}")
    assert offenders == []


def test_core_cython_imports_nothing_above_it():
    """import-linter reads .py files only: the same rule for _core's Cython sources."""
    offenders = []
    pattern = re.compile(r"^\s*(?:from\s+(\S+)\s+c?import|c?import\s+(\S+))", re.M)
    for path in (p for p in _cython_sources() if p.is_relative_to(PACKAGE / "_core")):
        for match in pattern.finditer(path.read_text()):
            module = match.group(1) or match.group(2)
            if module.startswith(".") or (module.startswith("pyloop") and not module.startswith("pyloop._core")):
                offenders.append(f"{path.relative_to(ROOT)}: {module}")
    assert offenders == [], "pyloop/_core imports absolute pyloop._core paths and nothing above"


_TOOLBOX = ("task.py", "time.py", "_blocking.py", "sync", "fs", "net")
_SEAM = "pyloop._core.clock"


def _imported_modules(path: Path) -> list[str]:
    """The absolute names a source file imports (``from X import a, b`` gives X.a and X.b)."""
    package = list(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = []
    for match in re.finditer(r"^\s*(?:from\s+(\S+)\s+c?import\s+(\([^)]*\)|[^#\n]*)|c?import\s+(\S+))",
                             path.read_text(), re.M):
        module = match.group(1) or match.group(3)
        if module.startswith("."):
            dots = len(module) - len(module.lstrip("."))
            module = ".".join(package[:len(package) - dots + 1] + [module.lstrip(".")]).rstrip(".")
        if match.group(1):
            names = [n.split()[0] for n in re.sub(r"#.*", "", match.group(2)).strip("()").split(",")
                     if n.strip()]
            found.extend(f"{module}.{name}" for name in names)
        else:
            found.append(module)
    return found


def test_toolbox_reaches_core_through_the_clock_seam_only():
    """The toolbox imports nothing of pyloop._core but its clock seam, pyloop/_core/clock.py.

    import-linter has the same rule, but it sees an import of a compiled module
    (``from pyloop._core.loop import BaseLoop``) as an import of the root package: this reads
    the sources, Python and Cython.
    """
    offenders = []
    for entry in _TOOLBOX:
        root = PACKAGE / entry
        paths = [root] if root.is_file() else sorted(
            p for p in root.rglob("*") if p.suffix in (".py", ".pyx", ".pxi", ".pxd"))
        for path in paths:
            for name in _imported_modules(path):
                if name.startswith("pyloop._core") and not (name + ".").startswith(_SEAM + "."):
                    offenders.append(f"{path.relative_to(ROOT)}: {name}")
    assert offenders == [], f"the toolbox reaches pyloop._core through {_SEAM} only"


def test_cython_strings_use_double_quotes():
    """The package's one quote style (ruff's Q000 for .py) holds in the Cython sources too: a string
    delimited by single quotes is one that contains a double quote, as ruff allows."""
    offenders = []
    # From Python 3.12 (PEP 701) the strings inside an f-string's replacement fields are tokens of
    # their own; before 3.12 they must use the other quote, so they are not held to the style.
    fstring_start, fstring_end = getattr(tokenize, "FSTRING_START", None), getattr(tokenize, "FSTRING_END", None)
    for path in _cython_sources():
        lines = path.read_text().splitlines(keepends=True)
        fstrings = []       # (start token, the parts seen) of the f-strings being read
        for tok in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
            if tok.type == fstring_start:
                fstrings.append((tok, []))
            elif tok.type == fstring_end:
                start, _ = fstrings.pop()
                (r0, c0), (r1, c1) = start.start, tok.end
                text = "".join(lines[r0 - 1:r1])[c0:len("".join(lines[r0 - 1:r1 - 1])) + c1]
                if not fstrings:
                    tok = tokenize.TokenInfo(tokenize.STRING, text, start.start, tok.end, tok.line)
            if fstrings or tok.type != tokenize.STRING:
                continue
            body = tok.string.lstrip("rRbBuUfF")
            if body.startswith("'") and not body.startswith("'''") and '"' not in body:
                offenders.append(f"{path.relative_to(ROOT)}:{tok.start[0]}: {tok.string}")
    assert offenders == []


def test_no_cython_def_constants():
    """``DEF`` is deprecated in Cython 3: constants are ``cdef enum`` members."""
    offenders = [f"{p.relative_to(ROOT)}:{n}" for p in _cython_sources()
                 for n, line in enumerate(p.read_text().splitlines(), 1) if re.match(r"\s*DEF\s", line)]
    assert offenders == []


def test_no_module_over_900_lines():
    """One concern per file: a module near 900 lines is split by concern."""
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines())
             for p in PACKAGE.rglob("*") if p.suffix in (".py", ".pyx", ".pxi")}
    assert {name: n for name, n in sizes.items() if n > 900} == {}
