"""Release metadata agrees with itself: the version pyloop reports, pyproject's, the changelog's.

The single source of the version is ``__version__`` in pyloop/__init__.py.  pyproject.toml either
repeats it (``version = "..."``) or reads it from there (``dynamic = ["version"]`` with
scikit-build-core's regex provider); both are accepted, a mismatch is not.
"""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from pathlib import Path

import pytest

import pyloop

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / 'pyproject.toml').read_text(encoding='utf-8'))
CHANGELOG = (ROOT / 'CHANGELOG.md').read_text(encoding='utf-8')


def test_version_is_pep440_like():
    assert re.fullmatch(r'\d+\.\d+\.\d+((a|b|rc)\d+)?(\.dev\d+)?', pyloop.__version__)


def test_pyproject_version_is_pyloops():
    project = PYPROJECT['project']
    if 'version' in project:
        assert project['version'] == pyloop.__version__, (
            'pyproject.toml and pyloop/__init__.py disagree on the version')
    else:
        assert 'version' in project.get('dynamic', []), 'pyproject.toml sets no version'
        provider = PYPROJECT['tool']['scikit-build']['metadata']['version']
        assert provider['provider'] == 'scikit_build_core.metadata.regex'
        assert provider['input'] == 'pyloop/__init__.py'


DISTRIBUTION = PYPROJECT['project']['name']


def test_distribution_name_is_not_the_import_name():
    # "pyloop" on the package index is an unrelated project: `pip install pyloop` must not be a
    # command the README tells anyone to run (it may say not to).
    assert DISTRIBUTION == 'pyloop-aio'
    readme = (ROOT / 'README.md').read_text(encoding='utf-8')
    assert f'pip install {DISTRIBUTION}' in readme
    assert not re.search(r'^\s+pip install pyloop(?![-\w])', readme, flags=re.M)


def test_installed_metadata_matches_when_installed():
    try:
        installed = importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip('pyloop is not installed (tests run from the source tree)')
    if Path(pyloop.__file__).resolve().parent != ROOT / 'pyloop':
        assert installed == pyloop.__version__


def test_changelog_has_the_current_version():
    headings = re.findall(r'^## \[([^\]]+)\]', CHANGELOG, flags=re.M)
    assert headings and headings[0] == 'Unreleased', 'CHANGELOG.md starts with [Unreleased]'
    assert pyloop.__version__ in headings, (
        f'CHANGELOG.md has no "## [{pyloop.__version__}]" section for the current version')
    for version in headings[1:]:
        assert re.search(rf'^## \[{re.escape(version)}\] - \d{{4}}-\d{{2}}-\d{{2}}$', CHANGELOG,
                         flags=re.M), f'release {version} has no date (YYYY-MM-DD)'
