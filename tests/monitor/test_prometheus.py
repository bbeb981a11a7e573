"""pyloop.monitor.prometheus, and examples/monitor_metrics.py serving /metrics."""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

import pyloop
from pyloop import monitor

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from pyloop.monitor.prometheus import PyloopCollector, register  # noqa: E402

from .conftest import TIMEOUT, child_env  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "monitor_metrics.py"


def _scrape(registry) -> dict[str, dict[tuple, float]]:
    text = prometheus_client.generate_latest(registry).decode()
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return samples


def test_the_collector_exports_the_core_counters():
    loop = pyloop.new_event_loop()
    try:
        for _ in range(50):
            loop.call_soon(lambda: None)
        loop.call_later(0.01, loop.stop)
        loop.run_forever()
        registry = prometheus_client.CollectorRegistry()
        register(registry, loop=loop)
        samples = _scrape(registry)
        m = monitor.metrics(loop)
    finally:
        loop.close()
    one = (("loop", "0"),)
    assert samples["pyloop_loop_callbacks_total"][one] == m.callbacks == 51
    assert samples["pyloop_loop_iterations_total"][one] == m.iterations
    assert samples["pyloop_loop_timers_scheduled_total"][one] == 1
    assert samples["pyloop_loop_timers_fired_total"][one] == 1
    assert samples["pyloop_loop_max_ready_callbacks"][one] == 50
    assert samples["pyloop_loop_idle_seconds_total"][one] == pytest.approx(m.idle_time)
    assert samples["pyloop_loop_running_seconds_total"][one] == pytest.approx(m.running_time)
    assert samples["pyloop_loop_tasks"][one] == 0
    buckets = sorted(((float(dict(k)["le"]), v) for k, v in samples["pyloop_loop_lag_seconds_bucket"].items()))
    counts = [v for _, v in buckets]
    assert counts == sorted(counts) and counts[-1] == m.lag_count
    assert buckets[0][0] == 1e-6 and buckets[-1][0] == float("inf")
    assert samples["pyloop_loop_lag_seconds_count"][one] == m.lag_count
    assert samples["pyloop_loop_lag_seconds_sum"][one] == pytest.approx(m.lag_sum)
    assert "pyloop_loop_stalled_seconds" not in samples      # no watch, no sample


def test_every_live_loop_by_default_and_a_stall_gauge():
    registry = prometheus_client.CollectorRegistry()
    collector = register(registry)
    first, second = pyloop.new_event_loop(), pyloop.new_event_loop()
    just_second = prometheus_client.CollectorRegistry()
    register(just_second, loop=second)
    try:
        async def main():
            with monitor.watch_stalls(0.5, on_stall=lambda r: None):
                return _scrape(registry), _scrape(just_second)

        samples, mine = second.run_until_complete(main())
        labels = {dict(k)["loop"] for k in samples["pyloop_loop_callbacks_total"]}
        assert len(labels) >= 2
        assert mine["pyloop_loop_stalled_seconds"] == {(("loop", "0"),): 0.0}
        first.close()
        again = {dict(k)["loop"] for k in _scrape(registry)["pyloop_loop_callbacks_total"]}
        assert len(again) == len(labels) - 1
    finally:
        first.close()
        second.close()
    assert list(collector.describe())       # names without a loop


def test_bad_arguments():
    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(RuntimeError, match="pyloop loop"):
            PyloopCollector(loop)
    finally:
        loop.close()
    with pytest.raises(TypeError):
        PyloopCollector("loop")
    with pytest.raises(ValueError):
        PyloopCollector(namespace="not a name")
    assert next(iter(PyloopCollector(namespace="app").describe())).name == "app_loop_iterations"


def _get(port: int, path: str) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=TIMEOUT) as answer:
        return answer.read().decode()


def test_the_example_serves_metrics_and_reports_a_stall(runtime_dir):
    pytest.importorskip("aiohttp")
    proc = subprocess.Popen([sys.executable, str(EXAMPLE), "--port", "0"], env=child_env(runtime_dir, None),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        match = re.search(r"serving on http://127\.0\.0\.1:(\d+) \(pid (\d+), monitor at (.*)\)", line)
        assert match, line + proc.stderr.read()
        port, pid = int(match.group(1)), int(match.group(2))
        assert match.group(3) == str(runtime_dir / "pyloop" / f"monitor-{pid}.sock")
        assert _get(port, "/") == "hello\n"
        first = {f.name: f for f in text_string_to_metric_families(_get(port, "/metrics"))}
        assert first["pyloop_loop_callbacks"].samples[0].value > 0
        assert _get(port, "/block?seconds=0.3") == "blocked the loop for 0.3 s\n"
        later = {f.name: f for f in text_string_to_metric_families(_get(port, "/metrics"))}
        lag_sum = next(s.value for s in later["pyloop_loop_lag_seconds"].samples if s.name.endswith("_sum"))
        assert lag_sum >= 0.25
        ps = subprocess.run([sys.executable, "-m", "pyloop", "ps", str(pid)], env=child_env(runtime_dir, None),
                            capture_output=True, text=True, timeout=TIMEOUT)
        assert ps.returncode == 0 and "awaiting Event.wait" in ps.stdout
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    sleep_line = next(n for n, text in enumerate(EXAMPLE.read_text().splitlines(), 1)
                      if "time.sleep(seconds)" in text)
    assert "event loop blocked for" in err
    assert f'monitor_metrics.py", line {sleep_line}, in block' in err
    final = re.search(r"event loop was blocked for (\d+\.\d+) s", err)
    assert final and 0.25 <= float(final.group(1)) < 5, err
