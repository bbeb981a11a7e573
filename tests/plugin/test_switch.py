"""The switch (``--pyloop``, ``pyloop = true``): real pytest-asyncio and anyio test files, and plain
``asyncio.run`` in tests, run on pyloop with it and on asyncio's loop without it.

Every test here runs a small project under pytest in a subprocess (tests/plugin/_runner.py) and
asserts the loop class each of its tests saw.
"""

from __future__ import annotations

import pytest

from ._runner import project, run_pytest

pytest.importorskip("pyloop._core.loop", reason="pyloop is not built")
pytest.importorskip("pytest_asyncio")
pytest.importorskip("anyio")

PYTEST_ASYNCIO = {
    "test_pytest_asyncio.py": '''
        import asyncio

        import pytest
        import pytest_asyncio

        from conftest import seen


        @pytest_asyncio.fixture
        async def server_loop():
            seen("async_fixture")
            yield asyncio.get_running_loop()


        @pytest.mark.asyncio
        async def test_marked(server_loop):
            seen("marked")
            assert asyncio.get_running_loop() is server_loop


        @pytest.mark.asyncio(loop_scope="module")
        async def test_module_scoped_loop():
            seen("module_scoped")


        class TestInAClass:
            @pytest.mark.asyncio
            async def test_method(self):
                seen("method")
    ''',
}

ANYIO = {
    "test_anyio_backend.py": '''
        import anyio
        import pytest

        from conftest import seen

        pytestmark = pytest.mark.anyio


        @pytest.fixture(params=["asyncio", ("asyncio", {"debug": True})], ids=["name", "options"])
        def anyio_backend(request):
            return request.param


        async def test_anyio(anyio_backend):
            await anyio.sleep(0)
            seen(f"anyio_{'options' if isinstance(anyio_backend, tuple) else 'name'}")
    ''',
}

PLAIN = {
    "test_plain.py": '''
        import asyncio

        from conftest import seen


        async def where():
            seen("asyncio_run")


        def test_asyncio_run():
            asyncio.run(where())


        def test_runner_and_new_event_loop():
            with asyncio.Runner() as runner:
                seen("runner", runner.get_loop())
            loop = asyncio.new_event_loop()
            try:
                seen("new_event_loop", loop)
            finally:
                loop.close()
    ''',
}

EVERY_KIND = {**PYTEST_ASYNCIO, **ANYIO, **PLAIN}
LABELS = {"async_fixture", "marked", "module_scoped", "method", "anyio_name", "anyio_options",
          "asyncio_run", "runner", "new_event_loop"}


def _assert_all(result, kind_is_pyloop: bool, labels=LABELS):
    assert result.returncode == 0, result
    assert set(result.seen) == labels, result
    wrong = {label: kind for label, kind in result.seen.items() if (kind == "pyloop") != kind_is_pyloop}
    assert not wrong, f"{wrong}\n{result}"


def test_switch_runs_pytest_asyncio_anyio_and_asyncio_run_tests_on_pyloop(tmp_path):
    result = run_pytest(project(tmp_path, EVERY_KIND), "--pyloop")
    _assert_all(result, kind_is_pyloop=True)
    assert "pyloop: on" in result.output        # the session header says so
    assert "7 passed" in result.output


def test_off_by_default_nothing_changes(tmp_path):
    files = {**EVERY_KIND, "test_policy.py": '''
        import asyncio


        def test_policy_is_asyncios():
            assert type(asyncio.get_event_loop_policy()) is asyncio.DefaultEventLoopPolicy
    '''}
    result = run_pytest(project(tmp_path, files))
    _assert_all(result, kind_is_pyloop=False)
    assert "pyloop: on" not in result.output
    assert "8 passed" in result.output


def test_ini_option_and_no_pyloop(tmp_path):
    ini = """
        [pytest]
        asyncio_default_fixture_loop_scope = function
        pyloop = true
    """
    project(tmp_path, PLAIN, ini=ini)
    _assert_all(run_pytest(tmp_path), kind_is_pyloop=True, labels={"asyncio_run", "runner", "new_event_loop"})
    _assert_all(run_pytest(tmp_path, "--no-pyloop"), kind_is_pyloop=False,
                labels={"asyncio_run", "runner", "new_event_loop"})


def test_bad_ini_value_is_a_usage_error(tmp_path):
    ini = """
        [pytest]
        pyloop = maybe
    """
    result = run_pytest(project(tmp_path, PLAIN, ini=ini))
    assert result.returncode == 4, result          # pytest's usage error
    assert "invalid truth value 'maybe'" in result.output, result


def test_pytest_asyncio_auto_mode(tmp_path):
    files = {"test_auto.py": '''
        from conftest import seen


        async def test_unmarked():
            seen("auto")
    '''}
    ini = """
        [pytest]
        asyncio_mode = auto
        asyncio_default_fixture_loop_scope = function
    """
    result = run_pytest(project(tmp_path, files, ini=ini), "--pyloop")
    assert result.seen == {"auto": "pyloop"}, result


def test_works_without_pytest_asyncio_and_anyio(tmp_path):
    # Neither plugin loaded: no loop-factory hook to register, asyncio.run still on pyloop.
    result = run_pytest(project(tmp_path, PLAIN, ini="[pytest]\n"), "--pyloop", plugins=())
    _assert_all(result, kind_is_pyloop=True, labels={"asyncio_run", "runner", "new_event_loop"})


def test_a_policy_reset_by_a_test_is_undone_but_a_policy_of_its_own_is_kept(tmp_path):
    files = {"test_policies.py": '''
        import asyncio

        from conftest import seen


        class Mine(asyncio.DefaultEventLoopPolicy):
            pass


        async def where(label):
            seen(label)


        def test_1_resets_the_policy():
            asyncio.set_event_loop_policy(None)
            asyncio.run(where("after_reset_same_test"))


        def test_2_gets_pyloop_back():
            asyncio.run(where("next_test"))
            asyncio.set_event_loop_policy(Mine())


        def test_3_keeps_a_policy_installed_on_purpose():
            assert type(asyncio.get_event_loop_policy()) is Mine
            asyncio.run(where("own_policy"))
    '''}
    result = run_pytest(project(tmp_path, files), "--pyloop")
    assert result.returncode == 0, result
    assert result.seen == {"after_reset_same_test": "_UnixSelectorEventLoop", "next_test": "pyloop",
                           "own_policy": "_UnixSelectorEventLoop"}, result


def test_the_policy_is_restored_at_the_end_of_the_session(tmp_path):
    files = {"test_inprocess.py": '''
        import asyncio

        import pytest


        def test_session_restores_the_policy(tmp_path):
            before = asyncio.get_event_loop_policy()
            assert pytest.main(["-p", "pyloop.pytest_plugin", "-p", "no:cacheprovider", "--pyloop",
                                "-q", str(tmp_path)]) == 5          # no tests collected
            assert asyncio.get_event_loop_policy() is before
    '''}
    result = run_pytest(project(tmp_path, files, ini="[pytest]\n"), plugins=("pytester",))
    assert result.returncode == 0, result


def test_a_projects_own_loop_factory_hook_wins(tmp_path):
    plugin = pytest.importorskip("pytest_asyncio.plugin")
    if not hasattr(plugin, "PytestAsyncioSpecs"):
        pytest.skip("this pytest-asyncio has no loop-factory hook")
    project(tmp_path, {"test_own.py": '''
        import pytest

        from conftest import seen


        @pytest.mark.asyncio
        async def test_own_factory():
            seen("own")
    '''})
    with open(tmp_path / "conftest.py", "a", encoding="utf-8") as conftest:
        conftest.write('''

def pytest_asyncio_loop_factories(config, item):
    return {"selector": asyncio.SelectorEventLoop}
''')
    result = run_pytest(tmp_path, "--pyloop")
    assert result.seen == {"own": "_UnixSelectorEventLoop"}, result
