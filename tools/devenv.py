"""The project's virtual environments and the pins that make them reproducible.

The README's two commands (``tools/test.sh``, ``tools/bench.sh``) never install into
the Python that runs them: they call this script, which makes a venv under
``.venv/`` and installs pyloop there (editable, built without build isolation) with
the build tools and the extra the command needs, every distribution at the version
pinned in ``constraints/py3.X.txt`` for that interpreter.  ``pip install pyloop-aio``
for users keeps pyproject's loose lower bounds; only these environments are pinned.

Subcommands
-----------
``venv [--extras test] [--latest] [--python PY]``
    Make (or refresh) the venv and print its interpreter's path on stdout.  Pinned:
    ``.venv/py3.X``; ``--latest``: ``.venv/py3.X-latest``, with the newest release of
    every dependency instead of the pins (``tools/test.sh --latest``).
``pin [--python PY ...]``
    Write ``constraints/py3.X.txt`` anew from the newest releases, for each given
    interpreter (default: every CPython >= 3.11 found).  Moving the pins is a
    deliberate step: run ``tools/test.sh --latest`` first, fix what breaks, pin,
    run ``tools/test.sh``, review the diff and commit it on its own.
``check``
    Compare this interpreter's installed distributions with its pins; print what
    differs and exit 1 if anything does (the test suite runs the same comparison).
``pythons``
    List the CPython >= 3.11 interpreters found (PATH and pyenv), one per line.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "constraints"
VENVS = ROOT / ".venv"
MIN_VERSION = (3, 11)
# What the build needs when pip is told not to isolate it: pyproject's build
# requirements plus the CMake and Ninja that scikit-build-core would otherwise
# fetch itself (pinned like everything else).
BUILD_TOOLS = ("cmake", "ninja")


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def build_requirements() -> list[str]:
    return [*_pyproject()["build-system"]["requires"], *BUILD_TOOLS]


def extra_requirements(*extras: str) -> list[str]:
    optional = _pyproject()["project"]["optional-dependencies"]
    return [req for extra in extras for req in optional[extra]]


def project_name() -> str:
    """The canonical name of this project's distribution (``pyloop-aio``; it imports as pyloop)."""
    return canonical(_pyproject()["project"]["name"])


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    """The canonical distribution name of a PEP 508 requirement string."""
    return canonical(re.split(r"[\s<>=!~;\[]", requirement, maxsplit=1)[0])


def pins_file(version: tuple[int, int]) -> Path:
    return CONSTRAINTS / f"py{version[0]}.{version[1]}.txt"


def read_pins(path: Path) -> dict[str, str]:
    """``{canonical name: version}`` from a constraints file of ``name==version`` lines."""
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        if not sep:
            raise ValueError(f"{path}: not a pin: {line!r}")
        pins[canonical(name)] = version.strip()
    return pins


def interpreter_version(python: str) -> tuple[int, int]:
    out = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:2])"],
                         check=True, capture_output=True, text=True).stdout
    major, minor = out.split()
    return int(major), int(minor)


def find_pythons() -> list[str]:
    """One interpreter per CPython version >= 3.11: ``python3.X`` on PATH, else pyenv's."""
    found: dict[tuple[int, int], str] = {}
    candidates = [shutil.which(f"python3.{minor}") for minor in range(MIN_VERSION[1], 20)]
    pyenv_root = os.environ.get("PYENV_ROOT", os.path.expanduser("~/.pyenv"))
    candidates += sorted(glob.glob(os.path.join(pyenv_root, "versions", "3.*", "bin", "python3")))
    for python in candidates:
        if not python:
            continue
        try:
            version = interpreter_version(python)
        except (OSError, subprocess.CalledProcessError):
            continue   # a pyenv shim for a version that is not installed
        if version >= MIN_VERSION and version not in found:
            found[version] = python
    return [found[v] for v in sorted(found)]


def log(*args) -> None:
    print("devenv:", *args, file=sys.stderr, flush=True)


def pip(python: Path | str, *args: str) -> None:
    subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", *args], check=True,
                   stdout=sys.stderr)


def make_venv(where: Path, python: str) -> Path:
    venv_python = where / "bin" / "python"
    if venv_python.exists():
        try:
            if interpreter_version(str(venv_python)) == interpreter_version(python):
                return venv_python
        except (OSError, subprocess.CalledProcessError):
            pass
        shutil.rmtree(where)    # made by another or a removed interpreter
    log(f"creating {where.relative_to(ROOT) if where.is_relative_to(ROOT) else where}")
    subprocess.run([python, "-m", "venv", str(where)], check=True)
    return venv_python


def build_dir(venv_name: str) -> list[str]:
    """pip options that keep scikit-build-core's build tree of a venv's pyloop in
    ``build/venv-py3.X`` (one per venv and Python): re-running the test command after an
    edit recompiles what changed instead of everything (its default is a fresh temporary
    directory per install)."""
    return ["--config-settings", f"build-dir={ROOT / 'build' / f'venv-{venv_name}'}"]


def cmd_venv(args) -> int:
    python = args.python or sys.executable
    version = interpreter_version(python)
    name = f"py{version[0]}.{version[1]}" + ("-latest" if args.latest else "")
    venv_python = make_venv(VENVS / name, python)
    # Until 0.1.0 the distribution was called "pyloop" (a name that belongs to another project on
    # the package index): a venv made then has it installed editable, and its import hook would
    # compete with pyloop-aio's.
    if subprocess.run([str(venv_python), "-m", "pip", "--disable-pip-version-check", "show", "-q", "pyloop"],
                      capture_output=True).returncode == 0:
        log("removing the distribution installed under the old name pyloop")
        pip(venv_python, "uninstall", "-q", "-y", "pyloop")
    extras = ",".join(args.extras)
    target = f"{ROOT}[{extras}]" if extras else str(ROOT)
    if args.latest:
        log(f"installing the newest releases into .venv/{name}")
        pip(venv_python, "install", "-q", "--upgrade", "pip")
        pip(venv_python, "install", "-q", "--upgrade", "--upgrade-strategy", "eager", *build_requirements())
        pip(venv_python, "install", "-q", "--upgrade", "--upgrade-strategy", "eager",
            "--no-build-isolation", *build_dir(name), "-e", target)
    else:
        pins = pins_file(version)
        if not pins.exists():
            log(f"no pins for Python {version[0]}.{version[1]} ({pins.relative_to(ROOT)} is missing):"
                f" run `python{version[0]}.{version[1]} tools/devenv.py pin` first")
            return 2
        log(f"installing the pinned versions ({pins.relative_to(ROOT)}) into .venv/{name}")
        constraint = ["-c", str(pins)]
        pip(venv_python, "install", "-q", *constraint, "pip")
        pip(venv_python, "install", "-q", *constraint, *build_requirements())
        pip(venv_python, "install", "-q", *constraint, "--no-build-isolation", *build_dir(name), "-e", target)
    print(venv_python)
    return 0


def freeze(python: Path) -> list[str]:
    out = subprocess.run([str(python), "-m", "pip", "--disable-pip-version-check", "freeze", "--all"],
                         check=True, capture_output=True, text=True).stdout
    lines = []
    for line in out.splitlines():
        name = line.split("==", 1)[0]
        if "==" not in line or canonical(name) in (project_name(), "setuptools", "wheel"):
            continue   # the project itself (an editable or path install), and venv seeds
        lines.append(line)
    return sorted(lines, key=lambda s: canonical(s.split("==", 1)[0]))


def cmd_pin(args) -> int:
    pythons = args.python or find_pythons()
    requirements = [*build_requirements(), *extra_requirements(*_pyproject()["project"]["optional-dependencies"])]
    CONSTRAINTS.mkdir(exist_ok=True)
    for python in pythons:
        version = interpreter_version(python)
        with tempfile.TemporaryDirectory(prefix="pyloop-pin-") as tmp:
            venv_python = make_venv(Path(tmp) / "venv", python)
            log(f"resolving the newest releases for Python {version[0]}.{version[1]} ({python})")
            pip(venv_python, "install", "-q", "--upgrade", "pip")
            pip(venv_python, "install", "-q", *requirements)
            pins = freeze(venv_python)
        path = pins_file(version)
        header = [
            f"# Pinned build, test and bench dependencies for CPython {version[0]}.{version[1]}:",
            "# the versions tools/test.sh and tools/bench.sh install (pip -c).",
            f"# Generated by `python tools/devenv.py pin` on {date.today().isoformat()};"
            " do not edit by hand.",
        ]
        path.write_text("\n".join(header + pins) + "\n", encoding="utf-8")
        log(f"wrote {path.relative_to(ROOT)} ({len(pins)} pins)")
    return 0


def installed_versions() -> dict[str, str]:
    import importlib.metadata

    return {canonical(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()}


def pin_mismatches(pins: dict[str, str], installed: dict[str, str]) -> list[str]:
    """What this environment has that its pins do not say: a different version of a pinned
    distribution, or a pinned requirement of the build/test extras that is missing."""
    wanted = {requirement_name(req) for req in [*build_requirements(), *extra_requirements("test")]}
    problems = []
    for name, version in sorted(pins.items()):
        have = installed.get(name)
        if have is None:
            if name in wanted:
                problems.append(f"{name}: pinned {version}, not installed")
        elif have != version:
            problems.append(f"{name}: pinned {version}, installed {have}")
    return problems


def cmd_check(args) -> int:
    path = pins_file(sys.version_info[:2])
    problems = pin_mismatches(read_pins(path), installed_versions())
    for problem in problems:
        print(problem)
    return 1 if problems else 0


def cmd_pythons(args) -> int:
    for python in find_pythons():
        print(python)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    venv = sub.add_parser("venv", help="make the project venv, print its python")
    venv.add_argument("--extras", action="append", default=[], help="an extra of pyproject (repeatable)")
    venv.add_argument("--latest", action="store_true", help="newest releases instead of the pins")
    venv.add_argument("--python", help="the interpreter to build the venv from (default: this one)")
    venv.set_defaults(run=cmd_venv)
    pin = sub.add_parser("pin", help="write constraints/py3.X.txt from the newest releases")
    pin.add_argument("--python", action="append", help="an interpreter (repeatable; default: all found)")
    pin.set_defaults(run=cmd_pin)
    sub.add_parser("check", help="compare the installed versions with the pins").set_defaults(run=cmd_check)
    sub.add_parser("pythons", help="list the CPython >= 3.11 found").set_defaults(run=cmd_pythons)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
