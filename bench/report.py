"""Turning measurements into the console table, bench/results/*.md and *.png (used by compare.py)."""
from __future__ import annotations

import dataclasses
import datetime
import os
import platform
import statistics
import sys

from benchlib import LOOPS, SUBJECT, Benchmark


@dataclasses.dataclass
class Cell:
    """One (benchmark, loop) pair: one value per round, or the error that stopped it."""
    values: list[float] = dataclasses.field(default_factory=list)
    error: str | None = None

    @property
    def median(self) -> float | None:
        return statistics.median(self.values) if self.values and not self.error else None


Results = dict[str, dict[str, Cell]]  # bench name -> loop name -> Cell


@dataclasses.dataclass
class Row:
    bench: Benchmark
    medians: dict[str, float | None]  # loop -> median (None: failed)
    base: str | None                  # loop the ratios are taken against (pyloop, else the fastest)
    ratios: dict[str, float]          # loop -> how many times faster base is than it (paired, see below)
    best_other: str | None            # fastest loop that is not pyloop
    speedup: float | None             # pyloop vs best_other, > 1 means pyloop is faster
    status: str                       # met / MISSED / n/a / ""


def _faster(bench: Benchmark, a: float, b: float) -> float:
    """How many times faster a is than b (a and b in the bench's unit)."""
    return b / a if bench.lower_is_better else a / b


def paired_ratio(bench: Benchmark, fast: Cell, slow: Cell) -> float:
    """How many times faster `fast` is than `slow`: the median over rounds of the ratio within each round.

    The two were measured back to back in every round, so a slow patch of the machine (which here lasts
    seconds and moves every loop alike) cancels out of each round's ratio; the ratio of the two medians
    keeps it whenever the patch hit the rounds that set one median but not the other.
    """
    return statistics.median(_faster(bench, a, b) for a, b in zip(fast.values, slow.values))


def summarize(bench: Benchmark, cells: dict[str, Cell], loops: list[str]) -> Row:
    medians = {name: cells[name].median if name in cells else None for name in loops}
    ok = {k: v for k, v in medians.items() if v is not None}
    pick = min if bench.lower_is_better else max
    others = {k: v for k, v in ok.items() if k != SUBJECT}
    best_other = pick(others, key=others.get) if others else None
    subject = ok.get(SUBJECT)
    base = SUBJECT if subject is not None else (pick(ok, key=ok.get) if ok else None)
    ratios = {name: paired_ratio(bench, cells[base], cells[name]) for name in ok if name != base}
    speedup = ratios[best_other] if subject and best_other else None
    if bench.target is None:
        status = ""
    elif subject is None:
        status = "error" if SUBJECT in cells and cells[SUBJECT].error else "n/a"
    else:
        met = subject <= bench.target if bench.lower_is_better else subject >= bench.target
        status = "met" if met else "MISSED"
    return Row(bench, medians, base, ratios, best_other, speedup, status)


def fmt(value: float | None, unit: str = "ns/op") -> str:
    if value is None:
        return "-"
    if unit.startswith("ns") or value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _cells(row: Row, loops: list[str], errors: dict[str, str]) -> list[str]:
    out = []
    for name in loops:
        v = row.medians[name]
        if v is None:
            out.append("error" if name in errors else "-")
        elif name in row.ratios:
            out.append(f"{fmt(v, row.bench.unit)} ({row.ratios[name]:.2f}x)")
        else:
            out.append(fmt(v, row.bench.unit))
    return out


def _columns(rows: list[Row], loops: list[str], results: Results) -> tuple[list[str], list[list[str]]]:
    head = ["benchmark", "unit", *loops, "fastest other", f"{SUBJECT} speed-up", "target", "status"]
    body = []
    for row in rows:
        errors = {k: c.error for k, c in results[row.bench.name].items() if c.error}
        best = (f"{row.best_other} {fmt(row.medians[row.best_other], row.bench.unit)}"
                if row.best_other else "-")
        speed = f"{row.speedup:.2f}x" if row.speedup else "-"
        body.append([row.bench.name, row.bench.unit, *_cells(row, loops, errors), best, speed,
                     row.bench.target_label or "-", row.status or "-"])
    return head, body


def ratio_note(loops: list[str]) -> str:
    against = SUBJECT if SUBJECT in loops else "the fastest loop in the row"
    return (f"Medians over rounds. (N.NNx) after a number: how many times faster {against} is than that "
            f"loop;\n'{SUBJECT} speed-up': fastest other loop's time / {SUBJECT}'s (> 1: {SUBJECT} wins). "
            "Ratios are medians of the per-round ratios\n(loops run back to back in each round), so they "
            "need not equal the ratio of the two medians.")


def console_table(rows: list[Row], loops: list[str], results: Results) -> str:
    head, body = _columns(rows, loops, results)
    widths = [max(len(r[i]) for r in [head, *body]) for i in range(len(head))]
    line = lambda r: "  ".join(c.ljust(w) if i < 2 else c.rjust(w)  # noqa: E731
                               for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([line(head), "  ".join("-" * w for w in widths), *map(line, body)])


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for text in f:
                if text.lower().startswith(("model name", "hardware", "cpu model")):
                    return text.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def system_info() -> dict[str, str]:
    return {
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "python": f"{platform.python_implementation()} {sys.version.split()[0]}",
        "cpu": f"{cpu_model()} ({os.cpu_count()} logical CPUs)",
        "os": platform.platform(),
    }


def markdown(rows: list[Row], loops: list[str], results: Results, info: dict[str, str],
             versions: dict[str, str], missing: dict[str, str], settings: str,
             title: str = "pyloop micro-benchmarks") -> str:
    head, body = _columns(rows, loops, results)
    md = lambda r: "| " + " | ".join(r) + " |"  # noqa: E731
    out = [f"# {title}", "",
           f"- Date: {info['date']}", f"- Python: {info['python']}", f"- CPU: {info['cpu']}",
           f"- OS: {info['os']}", f"- Load: {info.get('load', '?')}",
           "- Loops: " + ", ".join(versions[name] for name in loops),
           *[f"- Not measured: {name} ({why})" for name, why in missing.items()],
           f"- Settings: {settings}", "",
           md(head), md(["---", "---"] + ["---:"] * (len(head) - 2)), *map(md, body), "",
           ratio_note(loops), "",
           "## Spread (min - max of the per-round values)", "",
           md(["benchmark", *loops]), md(["---"] + ["---:"] * len(loops))]
    for row in rows:
        spread = []
        for name in loops:
            cell = results[row.bench.name].get(name)
            if cell is None or not cell.values or cell.error:
                spread.append("-")
            else:
                spread.append(f"{fmt(min(cell.values))} - {fmt(max(cell.values))}")
        out.append(md([row.bench.name, *spread]))
    errors = [(b, n, c.error) for b, per in results.items() for n, c in per.items() if c.error]
    if errors:
        out += ["", "## Errors", ""] + [f"- {b} on {n}: `{e}`" for b, n, e in errors]
    out += ["", "## Benchmarks", ""] + [f"- **{r.bench.name}**: {r.bench.description}" for r in rows]
    return "\n".join(out) + "\n"


def plot(rows: list[Row], loops: list[str], results: Results, path: str, title: str) -> str | None:
    """Grouped bar chart, log scale, one panel per unit; returns why it was skipped, or None."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed (pip install matplotlib)"
    units = list(dict.fromkeys(r.bench.unit for r in rows))
    fig, axes = plt.subplots(len(units), 1, squeeze=False,
                             figsize=(max(6.0, 1.6 * len(rows) + 2), 4.8 * len(units)))
    width = 0.8 / max(len(loops), 1)
    for ax, unit in zip(axes[:, 0], units):
        panel = [r for r in rows if r.bench.unit == unit]
        for i, name in enumerate(loops):
            xs, ys, lo, hi = [], [], [], []
            for x, row in enumerate(panel):
                cell = results[row.bench.name].get(name)
                med = row.medians[name]
                if med is None or cell is None:
                    continue
                xs.append(x - 0.4 + width * (i + 0.5))
                ys.append(med)
                lo.append(med - min(cell.values))
                hi.append(max(cell.values) - med)
            color = f"C{list(LOOPS).index(name) if name in LOOPS else i}"  # same colour in every plot
            ax.bar(xs, ys, width, yerr=[lo, hi], capsize=2, label=name, color=color,
                   edgecolor="black", linewidth=0.5 if name != SUBJECT else 1.5)
        for x, row in enumerate(panel):
            if row.bench.target is not None:
                ax.hlines(row.bench.target, x - 0.45, x + 0.45, colors="red", linestyles="dashed",
                          label=f"{SUBJECT} target" if x == next(
                              j for j, r in enumerate(panel) if r.bench.target is not None) else None)
        ax.set_yscale("log")
        ax.set_xticks(range(len(panel)))
        ax.set_xticklabels([r.bench.name for r in panel], rotation=20, ha="right")
        better = "lower" if panel[0].bench.lower_is_better else "higher"
        ax.set_ylabel(f"{unit} (median, log scale; {better} is better)")
        ax.grid(axis="y", which="both", alpha=0.3)
        ax.legend(fontsize="small")
    axes[0, 0].set_title(title + "\nbars: median over rounds; whiskers: min - max")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return None
