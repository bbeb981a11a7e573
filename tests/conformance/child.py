"""Child process: run some tests of one class against one loop implementation.

    python -m tests.conformance.child SPEC.json

SPEC names the loop, the module/class, the test methods, the per-test timeout
and two files: the event log (JSON lines, written unbuffered so that what was
written survives a crash or a kill) and the fault file (faulthandler output).

Per test the child writes {"ev": "start"} and then {"ev": "end", status...}.
Hangs: faulthandler.dump_traceback_later(timeout, exit=True) is armed around
each test; its watchdog is a C thread that needs no GIL, so it also fires
when a C loop spins with the GIL held.  It dumps every thread's stack to the
fault file and _exit()s; the parent then sees a "start" without an "end" and
a "Timeout" dump, reports the test as hung and resumes the rest in a new
child.  Crashes (SIGSEGV & co.) leave faulthandler's fatal-error dump instead.
"""

import asyncio
import faulthandler
import json
import os
import sys
import time
import traceback
import unittest
import weakref

from . import impls
from .catalog import Catalog
from .generate import build_runnable

REASON_MAX = 300
DETAILS_MAX = 6000


class LoopTracker:
    """Which loops a test created: loops under test (made through the
    runner's factory or policy) and any asyncio.BaseEventLoop made otherwise
    (TestLoop, a bare BaseEventLoop, an explicit SelectorEventLoop...)."""

    def __init__(self):
        # Loops under test still alive, for is_loop_under_test(): id -> weak
        # reference that drops the id when the loop dies (so a recycled id
        # is not mistaken for one); loops without weakref support are kept.
        self.live_impl = {}
        self.reset()

    def reset(self):
        self.impl_ids = set()
        self.created = []

    def note_impl(self, loop):
        self.impl_ids.add(id(loop))
        key = id(loop)
        try:
            self.live_impl[key] = weakref.ref(
                loop, lambda _ref, key=key: self.live_impl.pop(key, None))
        except TypeError:
            self.live_impl[key] = loop

    def is_live_impl(self, loop):
        return id(loop) in self.live_impl

    def note_created(self, loop):
        self.created.append((id(loop), type(loop).__name__))

    def summary(self):
        foreign = sorted({name for ident, name in self.created
                          if ident not in self.impl_ids})
        return {"impl": len(self.impl_ids), "foreign": foreign}

    def hook_asyncio(self):
        base = asyncio.base_events.BaseEventLoop
        original = base.__init__
        tracker = self

        def __init__(self, *args, **kwargs):
            tracker.note_created(self)
            original(self, *args, **kwargs)
        base.__init__ = __init__


class LoopContext:
    """Makes loops under test, and the policy that hands them out."""

    def __init__(self, impl, tracker):
        self.impl = impl
        self.tracker = tracker
        ctx = self

        class ConformancePolicy(impl.policy_class):
            def new_event_loop(self):
                return ctx.adopt(super().new_event_loop())

        ConformancePolicy.__name__ = f"{impl.name}ConformancePolicy"
        self.policy_class = ConformancePolicy

    def adopt(self, loop):
        if not isinstance(loop, self.impl.loop_types):
            raise AssertionError(
                f"expected a {self.impl.name} loop, got {type(loop).__module__}."
                f"{type(loop).__qualname__}")
        self.tracker.note_impl(loop)
        return loop

    def new_loop(self):
        return self.adopt(self.impl.new_event_loop())

    def is_loop_under_test(self, loop):
        return self.tracker.is_live_impl(loop)

    def install_policy(self):
        # Tests (and every module's tearDownModule) reset the policy; put
        # ours back before each test.
        if type(asyncio.events._event_loop_policy) is not self.policy_class:
            asyncio.set_event_loop_policy(self.policy_class())


def one_line(exc_type, exc_value):
    line = traceback.format_exception_only(exc_type, exc_value)[-1].strip()
    line = " ".join(line.split())
    return line[:REASON_MAX]


class RecordingResult(unittest.TestResult):
    ORDER = {"passed": 0, "skipped": 1, "failed": 2, "errored": 3}

    def __init__(self, emit, ctx, tracker, timeout, fault_file):
        super().__init__()
        self.emit = emit
        self.ctx = ctx
        self.tracker = tracker
        self.timeout = timeout
        self.fault_file = fault_file
        self.current = None

    # ---------------------------------------------------------------- tests
    def startTest(self, test):
        super().startTest(test)
        self.ctx.install_policy()
        self.tracker.reset()
        self.current = {"status": "passed", "reason": None, "details": None,
                        "notes": []}
        self.t0 = time.monotonic()
        self.emit(ev="start", method=test._testMethodName)
        faulthandler.dump_traceback_later(self.timeout, exit=True,
                                          file=self.fault_file)
        self._selftest(test)

    def _selftest(self, test):
        # PYLOOP_CONFORMANCE_SELFTEST="crash:<id suffix>,hang:<id suffix>,..."
        # makes the child misbehave on purpose so that the runner's crash
        # and hang handling can be tested (test_conformance.py does).
        spec = os.environ.get("PYLOOP_CONFORMANCE_SELFTEST")
        if not spec:
            return
        for item in spec.split(","):
            what, _, suffix = item.partition(":")
            if suffix and test.id().endswith(suffix):
                if what == "crash":
                    faulthandler._sigsegv()
                elif what == "hang":
                    while True:      # spins holding the GIL
                        pass

    def stopTest(self, test):
        faulthandler.cancel_dump_traceback_later()
        cur = self.current
        loops = self.tracker.summary()
        if loops["impl"] == 0:
            where = (f"ran on {', '.join(loops['foreign'])}" if loops["foreign"]
                     else "no event loop created")
            if cur["status"] == "passed":
                cur["status"] = "excluded"
                cur["reason"] = f"did not use the loop under test ({where})"
            elif cur["status"] in ("failed", "errored"):
                cur["notes"].append(f"loop under test not used ({where})")
        self.emit(ev="end", method=test._testMethodName, status=cur["status"],
                  reason=cur["reason"], details=cur["details"],
                  notes=cur["notes"], loops=loops,
                  duration=round(time.monotonic() - self.t0, 3))
        self.current = None
        super().stopTest(test)

    def _set(self, status, reason, details=None):
        cur = self.current
        if self.ORDER[status] >= self.ORDER[cur["status"]]:
            if status != cur["status"] or cur["reason"] is None:
                cur["status"], cur["reason"] = status, reason
            if details:
                cur["details"] = ((cur["details"] + "\n") if cur["details"] else "") + details
                cur["details"] = cur["details"][-DETAILS_MAX:]

    def _fixture(self, test, status, reason, details=None):
        self.emit(ev="fixture", desc=test.description, status=status,
                  reason=reason, details=details)

    def addSuccess(self, test):
        super().addSuccess(test)

    def addError(self, test, err):
        super().addError(test, err)
        details = self._exc_info_to_string(err, test)[-DETAILS_MAX:]
        if isinstance(test, unittest.suite._ErrorHolder):
            self._fixture(test, "errored", one_line(*err[:2]), details)
        else:
            self._set("errored", one_line(*err[:2]), details)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._set("failed", one_line(*err[:2]),
                  self._exc_info_to_string(err, test)[-DETAILS_MAX:])

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        if isinstance(test, unittest.suite._ErrorHolder):
            self._fixture(test, "skipped", str(reason)[:REASON_MAX])
        else:
            self._set("skipped", str(reason)[:REASON_MAX])

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self.current["notes"].append("expected failure")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._set("failed", "unexpected success (test is marked expectedFailure)")

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            status = ("failed" if issubclass(err[0], test.failureException)
                      else "errored")
            self._set(status, f"{subtest._subDescription()}: {one_line(*err[:2])}",
                      self._exc_info_to_string(err, test)[-DETAILS_MAX:])


def main(argv):
    with open(argv[1]) as f:
        spec = json.load(f)
    events_fd = os.open(spec["events"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)

    def emit(**record):
        os.write(events_fd, (json.dumps(record) + "\n").encode())

    fault_file = open(spec["fault"], "w")
    faulthandler.enable(fault_file, all_threads=True)

    try:
        impl = impls.load(spec["loop"])
        probe = impl.new_event_loop()
        probe.close()
    except BaseException as exc:
        emit(ev="fatal", reason=f"loop implementation {spec['loop']!r} unusable: "
                                f"{one_line(type(exc), exc)}",
             details=traceback.format_exc()[-DETAILS_MAX:])
        os._exit(2)

    tracker = LoopTracker()
    tracker.hook_asyncio()
    ctx = LoopContext(impl, tracker)
    ctx.install_policy()

    try:
        catalog = Catalog(modules=[spec["module"]])
        run_class = catalog.classes[(spec["module"], spec["cls"])]
        adapt = {}
        for e in catalog.entries:
            if e.cls == spec["cls"] and e.method in spec["methods"]:
                for fn in e.adapt:
                    adapt.setdefault(fn, []).append(e.method)
        cls = build_runnable(run_class, adapt, ctx)
        suite = unittest.TestSuite(cls(m) for m in spec["methods"])
    except BaseException as exc:
        emit(ev="fatal", reason=f"cannot build {spec['module']}.{spec['cls']}: "
                                f"{one_line(type(exc), exc)}",
             details=traceback.format_exc()[-DETAILS_MAX:])
        os._exit(2)

    result = RecordingResult(emit, ctx, tracker, spec["timeout"], fault_file)
    try:
        suite.run(result)
    except BaseException as exc:
        # KeyboardInterrupt (or worse) escaped a test: unittest lets it
        # through and the run is over.  Report it against the current test.
        faulthandler.cancel_dump_traceback_later()
        emit(ev="abort", reason=f"{one_line(type(exc), exc)} escaped the test",
             details=traceback.format_exc()[-DETAILS_MAX:])
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(3)
    emit(ev="done")
    sys.stdout.flush()
    sys.stderr.flush()
    # Skip interpreter shutdown: a thread a test leaked must not hang us.
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv)
