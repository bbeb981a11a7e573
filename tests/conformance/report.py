"""Result assembly (JSON) and reports (markdown / terminal)."""

import platform
import sys
import time
from collections import Counter, OrderedDict

STATUSES = ["passed", "failed", "errored", "skipped", "hung", "crashed", "excluded"]
BAD = ("failed", "errored", "hung", "crashed")


def count_line(results):
    c = Counter(r["status"] for r in results)
    return ", ".join(f"{c[s]} {s}" for s in STATUSES if c[s]) or "nothing"


def assemble(loop, entries, units, catalog, duration, started, selection):
    by_unit = {(u.module, u.cls): u for u in units}
    tests = []
    for e in entries:
        rec = OrderedDict(id=e.id, module=e.module, cls=e.cls, method=e.method)
        if e.kind == "excluded":
            rec.update(status="excluded", reason=e.reason)
        elif e.kind in ("unclassified", "import-error"):
            rec.update(status="errored", reason=f"{e.kind}: {e.reason}")
        else:
            res = by_unit[(e.module, e.cls)].results.get(e.method) or {
                "status": "errored", "reason": "no result (runner bug)"}
            rec.update(res)
            rec["mode"] = e.kind
        if e.adapt:
            rec["adapted"] = list(e.adapt)
        tests.append(rec)
    fixtures = []
    for u in units:
        for fx in u.fixtures:
            fixtures.append(dict(fx, unit=u.name))
    modules = OrderedDict()
    for t in tests:
        modules.setdefault(t["module"], Counter())[t["status"]] += 1
    totals = Counter(t["status"] for t in tests)
    adaptations = []
    used = Counter(fn for t in tests for fn in t.get("adapted", ()))
    for rule in catalog.manifest["adapt"]:
        if used[rule["fn"]]:
            adaptations.append({"fn": rule["fn"], "tests": rule["tests"],
                                "why": rule["why"], "does": rule["does"],
                                "count": used[rule["fn"]]})
    return {
        "loop": loop,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
        "duration_s": round(duration, 1),
        "selection": selection,
        "catalog_problems": list(catalog.problems),
        "totals": {s: totals[s] for s in STATUSES},
        "modules": {m: {s: c[s] for s in STATUSES} for m, c in modules.items()},
        "fixtures": fixtures,
        "adaptations": adaptations,
        "tests": tests,
    }


def _table(data, md):
    head = ["module"] + STATUSES + ["total"]
    rows = []
    for m, c in data["modules"].items():
        rows.append([m] + [str(c[s]) for s in STATUSES] + [str(sum(c.values()))])
    t = data["totals"]
    rows.append(["**total**" if md else "TOTAL"] + [str(t[s]) for s in STATUSES]
                + [str(sum(t.values()))])
    if md:
        out = ["| " + " | ".join(head) + " |",
               "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
        out += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(out)
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    def fmt(r):
        return "  ".join(
            (r[i].ljust(widths[i]) if i == 0 else r[i].rjust(widths[i]))
            for i in range(len(r)))
    lines = [fmt(head), fmt(["-" * w for w in widths])]
    lines += [fmt(r) for r in rows[:-1]]
    lines += [fmt(["-" * w for w in widths]), fmt(rows[-1])]
    return "\n".join(lines)


def summary_table(data):
    return (f"{data['loop']}: {data['duration_s']}s\n" + _table(data, md=False))


def problem_list(data, limit=None):
    bad = [t for t in data["tests"] if t["status"] in BAD]
    lines = []
    for t in bad[:limit]:
        lines.append(f"{t['status'].upper():8s} {t['id']}: {t.get('reason')}")
    if limit is not None and len(bad) > limit:
        lines.append(f"... and {len(bad) - limit} more (see the .md/.json)")
    for fx in data["fixtures"]:
        lines.append(f"FIXTURE  {fx['unit']}: {fx['desc']}: {fx['status']}: "
                     f"{fx['reason']}")
    for p in data["catalog_problems"]:
        lines.append(f"CATALOG  {p}")
    return "\n".join(lines) if lines else "no failures"


def markdown(data):
    out = [f"# Conformance of `{data['loop']}` to CPython's asyncio tests", ""]
    out.append(f"Python {data['python']} on {data['platform']}; run started "
               f"{data['started']}, took {data['duration_s']} s.")
    sel = {k: v for k, v in data["selection"].items() if v}
    if sel:
        out.append(f"Selection: {sel}.")
    out += ["", "## Summary by module", "", _table(data, md=True), ""]

    bad = [t for t in data["tests"] if t["status"] in BAD]
    out += ["## Failed, errored, hung, crashed", ""]
    if not bad and not data["fixtures"]:
        out.append("None.")
    for t in bad:
        notes = f" _({'; '.join(t['notes'])})_" if t.get("notes") else ""
        out.append(f"- **{t['status']}** `{t['id']}`: {_md(t.get('reason'))}{notes}")
    for fx in data["fixtures"]:
        out.append(f"- **fixture {fx['status']}** `{fx['unit']}` {fx['desc']}: "
                   f"{_md(fx['reason'])}")
    out.append("")

    skipped = [t for t in data["tests"] if t["status"] == "skipped"]
    if skipped:
        out += ["## Skipped (by the tests themselves)", ""]
        reasons = Counter(t.get("reason") for t in skipped)
        for reason, n in reasons.most_common():
            out.append(f"- {n} × {_md(reason)}")
        out.append("")

    excluded = [t for t in data["tests"] if t["status"] == "excluded"]
    if excluded:
        out += ["## Excluded (not loop-generic)", "",
                "Static exclusions come from `manifest.toml`; \"did not use the "
                "loop under test\" is the per-test check of policy-driven "
                "classes.", ""]
        groups = OrderedDict()
        for t in excluded:
            key = t.get("reason") or "?"
            if key.startswith("did not use the loop under test"):
                key = "did not use the loop under test"
            groups.setdefault(key, []).append(t)
        for reason, ts in sorted(groups.items(), key=lambda kv: -len(kv[1])):
            classes = OrderedDict()
            for t in ts:
                classes.setdefault(f"{t['module']}.{t['cls']}", 0)
                classes[f"{t['module']}.{t['cls']}"] += 1
            where = ", ".join(f"`{c}` ({n})" for c, n in classes.items())
            out.append(f"- {len(ts)} × {_md(reason)}: {where}")
        out.append("")

    if data["adaptations"]:
        out += ["## Adapted tests", "",
                "| adaptation | tests | why | what it does |",
                "|---|---:|---|---|"]
        for a in data["adaptations"]:
            out.append(f"| `{a['fn']}` | {a['count']} | {_md(a['why'])} | "
                       f"{_md(a['does'])} |")
        out.append("")
    return "\n".join(out)


def _md(text):
    return (text or "").replace("|", "\\|").replace("\n", " ")


def compare(datas):
    """Markdown table of the totals of several runs (one row per run)."""
    head = ["run", "when"] + STATUSES + ["total", "time (s)"]
    out = ["| " + " | ".join(head) + " |",
           "|---|---|" + "|".join(["---:"] * (len(head) - 2)) + "|"]
    for d in datas:
        sel = d["selection"].get("milestone")
        name = d["loop"] + (f" ({sel})" if sel else "")
        t = d["totals"]
        out.append("| " + " | ".join([name, d["started"]] + [str(t[s]) for s in STATUSES]
                                     + [str(sum(t.values())), str(d["duration_s"])]) + " |")
    return "\n".join(out)


if __name__ == "__main__":
    # python -m tests.conformance.report results/asyncio.json results/uvloop.json ...
    import json
    datas = []
    for path in sys.argv[1:]:
        with open(path) as f:
            datas.append(json.load(f))
    print(compare(datas))
