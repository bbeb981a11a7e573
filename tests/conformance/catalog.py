"""The catalog: every test of test.test_asyncio, classified by manifest.toml.

Used by the parent (to plan and to list) and by each child (to build the one
class it runs).  Building a class never needs the loop implementation: the
loop comes in later through :class:`LoopContext` (see generate.py).
"""

import fnmatch
import importlib
import os
import sys
import tomllib
import unittest
from dataclasses import dataclass, field
from typing import Dict, List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))
MANIFEST = os.path.join(HERE, "manifest.toml")
PACKAGE = "test.test_asyncio"


def load_manifest(path=MANIFEST):
    with open(path, "rb") as f:
        data = tomllib.load(f)
    for key in ("generated", "policy", "exclude", "adapt"):
        data.setdefault(key, [])
    return data


def package_dir():
    pkg = importlib.import_module(PACKAGE)
    return os.path.dirname(pkg.__file__)


def module_names():
    return sorted(fn[:-3] for fn in os.listdir(package_dir())
                  if fn.startswith("test_") and fn.endswith(".py"))


def import_test_module(short):
    return importlib.import_module(f"{PACKAGE}.{short}")


def defined_test_classes(mod):
    """TestCase classes defined in a module, in name order."""
    out = []
    for name, obj in sorted(vars(mod).items()):
        if (isinstance(obj, type) and issubclass(obj, unittest.TestCase)
                and obj.__module__ == mod.__name__):
            out.append(obj)
    return out


def test_method_names(cls):
    return list(unittest.TestLoader().getTestCaseNames(cls))


def id_matches(test_id, patterns):
    """fnmatch over ids; a pattern without wildcards also matches as a
    prefix of dotted components (so 'test_events' or
    'test_events.EventLoopTests' select whole modules/classes)."""
    for pat in patterns:
        if any(ch in pat for ch in "*?["):
            if fnmatch.fnmatchcase(test_id, pat):
                return True
        elif test_id == pat or test_id.startswith(pat + "."):
            return True
    return False


@dataclass
class Entry:
    """One test id and what the catalog says about it."""
    id: str
    module: str
    cls: str
    method: str
    kind: str                      # "generated" | "policy" | "excluded" | "unclassified" | "import-error"
    reason: Optional[str] = None   # for excluded / unclassified / import-error
    adapt: List[str] = field(default_factory=list)   # adaptation fn names

    @property
    def runnable(self):
        return self.kind in ("generated", "policy")


@dataclass
class RunClass:
    """A class the runner executes in a child: its rule and its tests."""
    module: str
    name: str
    kind: str                      # "generated" | "policy"
    rule: dict
    methods: List[str]
    cls: type = None               # as built for discovery (no loop attached)


def applies(rule):
    """A rule with ``since = "3.X"`` names classes that CPython's tests have from 3.X on."""
    since = rule.get("since")
    return since is None or sys.version_info[:2] >= tuple(int(p) for p in since.split("."))


class Catalog:
    def __init__(self, manifest=None, modules=None):
        self.manifest = manifest or load_manifest()
        self.entries: List[Entry] = []
        self.classes: Dict[tuple, RunClass] = {}
        self.problems: List[str] = []
        self.modules = list(modules or module_names())
        # "A rule matches nothing" is only meaningful over every module.
        self.complete = modules is None
        for short in self.modules:
            self._add_module(short)
        self._apply_test_rules()

    # ------------------------------------------------------------ building
    def _rules(self, kind, short):
        return [r for r in self.manifest[kind] if r.get("module") == short and applies(r)]

    def _add_module(self, short):
        try:
            mod = import_test_module(short)
        except BaseException as exc:   # SkipTest for Windows-only modules
            self._add_unimportable(short, exc)
            return
        classes = defined_test_classes(mod)
        claimed = {}

        def claim(cname, how):
            if cname in claimed:
                self.problems.append(f"{short}.{cname}: claimed twice "
                                     f"({claimed[cname]} and {how})")
            claimed[cname] = how

        # Generated classes from mixins.
        from .generate import build_generated  # local: avoid import cycle
        for rule in self._rules("generated", short):
            cls = build_generated(mod, rule)
            methods = test_method_names(cls)
            self.classes[(short, rule["name"])] = RunClass(
                short, rule["name"], "generated", rule, methods, cls)
            for m in methods:
                self.entries.append(Entry(f"{short}.{rule['name']}.{m}", short,
                                          rule["name"], m, "generated"))
            for sup in rule.get("supersedes", []):
                claim(sup, f"generated {rule['name']}")

        by_name = {c.__name__: c for c in classes}
        # Superseded classes: excluded with a pointer to the generated one.
        for rule in self._rules("generated", short):
            for sup in rule.get("supersedes", []):
                if sup in by_name:
                    self._add_excluded_class(
                        short, by_name[sup],
                        f"asyncio-specific instantiation of the same mixins; "
                        f"run as {short}.{rule['name']}")

        star_policy = None
        for rule in self._rules("policy", short):
            if rule.get("classes") == "*":
                star_policy = rule
                continue
            for cname in rule["classes"]:
                claim(cname, "policy")
                if cname in by_name:
                    self._add_policy_class(short, by_name[cname], rule)
                else:
                    self.problems.append(f"{short}.{cname}: named by a policy "
                                         "rule but not found")
        star_exclude = None
        for rule in self._rules("exclude", short):
            if "classes" not in rule:
                continue
            if rule["classes"] == "*":
                star_exclude = rule
                continue
            for cname in rule["classes"]:
                if cname in claimed and claimed[cname].startswith("generated"):
                    continue   # already listed as superseded
                claim(cname, "exclude")
                if cname in by_name:
                    self._add_excluded_class(short, by_name[cname], rule["reason"])
        for cls in classes:
            if cls.__name__ in claimed:
                continue
            if star_policy is not None:
                self._add_policy_class(short, cls, star_policy)
            elif star_exclude is not None:
                self._add_excluded_class(short, cls, star_exclude["reason"])
            else:
                methods = test_method_names(cls)
                for m in methods:
                    self.entries.append(Entry(
                        f"{short}.{cls.__name__}.{m}", short, cls.__name__, m,
                        "unclassified",
                        "class not classified in tests/conformance/manifest.toml"))

    def _add_unimportable(self, short, exc):
        rules = [r for r in self._rules("exclude", short) if r.get("classes") == "*"]
        if rules:
            self.entries.append(Entry(f"{short}.*", short, "*", "*", "excluded",
                                      rules[0]["reason"]))
        else:
            self.entries.append(Entry(
                f"{short}.*", short, "*", "*", "import-error",
                f"module failed to import: {type(exc).__name__}: {exc}"))

    def _add_excluded_class(self, short, cls, reason):
        for m in test_method_names(cls):
            self.entries.append(Entry(f"{short}.{cls.__name__}.{m}", short,
                                      cls.__name__, m, "excluded", reason))

    def _add_policy_class(self, short, cls, rule):
        methods = test_method_names(cls)
        only = rule.get("only")
        run = [m for m in methods if only is None or m in only]
        if only is not None:
            for m in only:
                if m not in methods:
                    self.problems.append(f"{short}.{cls.__name__}.{m}: named in "
                                         "'only' but not found")
        if run:
            self.classes[(short, cls.__name__)] = RunClass(
                short, cls.__name__, "policy", rule, run, cls)
        for m in methods:
            if m in run:
                self.entries.append(Entry(f"{short}.{cls.__name__}.{m}", short,
                                          cls.__name__, m, "policy"))
            else:
                self.entries.append(Entry(f"{short}.{cls.__name__}.{m}", short,
                                          cls.__name__, m, "excluded",
                                          rule["reason"]))

    def _apply_test_rules(self):
        by_id = {e.id: e for e in self.entries}
        for rule in self.manifest["exclude"]:
            if "tests" not in rule:
                continue
            hit = False
            for e in self.entries:
                if e.runnable and id_matches(e.id, rule["tests"]):
                    e.kind, e.reason, hit = "excluded", rule["reason"], True
            if not hit and self.complete:
                self.problems.append(f"exclude rule matches no runnable test: "
                                     f"{rule['tests']}")
        for rule in self.manifest["adapt"]:
            hit = False
            base = rule.get("subclass_of")
            if base:
                modname, _, attr = base.rpartition(".")
                base = getattr(importlib.import_module(modname), attr)
            for e in self.entries:
                if not (e.runnable and id_matches(e.id, rule["tests"])):
                    continue
                rc = self.classes.get((e.module, e.cls))
                if base is not None and not issubclass(rc.cls, base):
                    continue
                e.adapt.append(rule["fn"])
                hit = True
            if not hit and self.complete:
                self.problems.append(f"adapt rule {rule['fn']} matches no test")
        # Drop excluded methods from the classes to run.
        for key, rc in list(self.classes.items()):
            rc.methods = [m for m in rc.methods
                          if by_id[f"{rc.module}.{rc.name}.{m}"].runnable]
            if not rc.methods:
                del self.classes[key]

    # ------------------------------------------------------------- queries
    def adapt_rule(self, fn):
        for rule in self.manifest["adapt"]:
            if rule["fn"] == fn:
                return rule
        raise KeyError(fn)
