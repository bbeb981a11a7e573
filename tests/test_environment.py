"""The test environment is the one the pins describe (tools/devenv.py, constraints/py3.X.txt).

``tools/test.sh`` sets ``PYLOOP_TEST_DEPS``: ``pinned`` (the default command, and CI) or
``latest`` (``tools/test.sh --latest``).  Pinned, every installed distribution that has a
pin must be at the pinned version and every pinned build/test requirement installed: a run
that quietly used other versions would make a green run mean nothing.  Latest, the
differences from the pins are what the run is for; the session header lists them.
"""

from __future__ import annotations

import os
import sys

import pytest
from _devenv import devenv

MODE = os.environ.get("PYLOOP_TEST_DEPS")


def test_pins_exist_for_this_python():
    pins = devenv.read_pins(devenv.pins_file(sys.version_info[:2]))
    for requirement in [*devenv.build_requirements(), *devenv.extra_requirements("test", "bench")]:
        name = devenv.requirement_name(requirement)
        assert name in pins, f"{name} (a requirement of pyproject.toml) has no pin"


@pytest.mark.skipif(MODE == "latest", reason="tools/test.sh --latest tests the newest releases, not the pins")
def test_installed_versions_are_the_pinned_ones():
    if MODE is None and not os.environ.get("CI"):
        pytest.skip("not run through tools/test.sh: this environment was not made from the pins")
    pins = devenv.read_pins(devenv.pins_file(sys.version_info[:2]))
    assert devenv.pin_mismatches(pins, devenv.installed_versions()) == []


def test_pin_mismatches_reports_other_versions_and_missing_requirements():
    pins = {"pytest": "9.2.0", "uvicorn": "0.55.0", "matplotlib": "3.11.2", "cython": "3.3.1"}
    installed = {"pytest": "9.2.0", "uvicorn": "0.54.0"}
    assert devenv.pin_mismatches(pins, installed) == [
        "cython: pinned 3.3.1, not installed",          # a build requirement
        "uvicorn: pinned 0.55.0, installed 0.54.0",
    ]                                                   # matplotlib is bench-only: not required here


def test_read_pins_refuses_a_line_that_is_not_a_pin(tmp_path):
    path = tmp_path / "pins.txt"
    path.write_text("# comment\nFoo_Bar==1.0  # why\n\n", encoding="utf-8")
    assert devenv.read_pins(path) == {"foo-bar": "1.0"}
    path.write_text("foo>=1.0\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not a pin"):
        devenv.read_pins(path)


def test_the_project_itself_is_known_by_its_distribution_name():
    # freeze() leaves the project out of the pins by this name (it imports as pyloop)
    assert devenv.project_name() == "pyloop-aio"
