"""Build the TestCase classes the runner executes.

Generated classes mirror how CPython builds its concrete classes, e.g.::

    class EPollEventLoopTests(UnixEventLoopTestsMixin, SubprocessTestsMixin,
                              test_utils.TestCase):
        def create_event_loop(self):
            return asyncio.SelectorEventLoop(selectors.EpollSelector())

becomes ``EventLoopTests(EventLoopTestsMixin, SubprocessTestsMixin,
test_utils.TestCase)`` whose ``create_event_loop`` returns a loop of the
implementation under test.  Policy-driven classes are run through a plain
subclass of CPython's class, so that adaptations can override methods without
touching the original.  Every class keeps ``__module__`` of its test module,
so unittest runs that module's setUpModule/tearDownModule around it.
"""

from . import adaptations
from .catalog import import_test_module


def resolve(mod, dotted):
    """Look a (possibly dotted) name up in a test module's namespace."""
    head, *rest = dotted.split(".")
    obj = getattr(mod, head)
    for part in rest:
        obj = getattr(obj, part)
    return obj


def _new_loop_from_ctx(self):
    ctx = type(self)._conformance_ctx
    if ctx is None:
        raise RuntimeError("conformance class used without a loop context")
    return ctx.new_loop()


def build_generated(mod, rule):
    bases = tuple(resolve(mod, b) for b in rule["bases"])
    name = rule["name"]
    ns = {"__module__": mod.__name__, "__qualname__": name,
          "_conformance_ctx": None}
    how = rule["loop_method"]
    if how in ("create_event_loop", "new_loop"):
        ns[how] = _new_loop_from_ctx
    elif how == "setUp":
        def setUp(self):
            super(cls, self).setUp()
            self.loop = _new_loop_from_ctx(self)
            self.set_event_loop(self.loop)
        ns["setUp"] = setUp
    else:
        raise ValueError(f"unknown loop_method {how!r} in rule {name}")
    cls = type(name, bases, ns)
    return cls


def build_policy(cls):
    return type(cls.__name__, (cls,), {
        "__module__": cls.__module__, "__qualname__": cls.__qualname__,
        "_conformance_ctx": None})


def build_runnable(run_class, adapt_fns, ctx):
    """The class a child runs: generated or policy subclass, with the loop
    context attached and the adaptations applied."""
    mod = import_test_module(run_class.module)
    if run_class.kind == "generated":
        cls = build_generated(mod, run_class.rule)
    else:
        cls = build_policy(getattr(mod, run_class.name))
    cls._conformance_ctx = ctx
    for fn_name, methods in adapt_fns.items():
        getattr(adaptations, fn_name)(cls, methods, ctx)
    return cls
