"""Latency distributions of a bench run as one PNG: per (workload, concurrency) a plot of
wrk's latency against percentile, one curve per setup, on the HdrHistogram-style x axis
x = 1/(1 - p) (log), which gives 50%, 90%, 99%, 99.9%... equal room so the tail is visible.

    python bench/plot.py [bench/out/results.json] [bench/latency.png]

`bench/run.py` calls render() after every run. It needs matplotlib (the `bench` extra:
`pip install -e '.[bench]'`); without it the plot is skipped with a one-line hint.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
HINT = "latency plot skipped: matplotlib is not installed (pip install -e '.[bench]')"
#: percentile tick labels and where they sit on the x = 1/(1 - p) axis (which starts at 0%)
TICKS = (("50%", 2.0), ("90%", 10.0), ("99%", 1e2), ("99.9%", 1e3),
         ("99.99%", 1e4), ("99.999%", 1e5), ("99.9999%", 1e6))


def _requirement() -> str:
    """The `bench` extra's matplotlib requirement from pyproject.toml."""
    try:
        extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
            "optional-dependencies"]
        return next(r for r in extras["bench"] if r.startswith("matplotlib"))
    except (OSError, KeyError, StopIteration, tomllib.TOMLDecodeError):
        return "matplotlib>=3.8"


def ensure_matplotlib() -> bool:
    """Whether matplotlib is importable; installs the bench extra's matplotlib with this
    interpreter's pip when it is missing. Never raises: without it the plot is skipped."""
    if importlib.util.find_spec("matplotlib"):
        return True
    requirement = _requirement()
    print(f"matplotlib not found: pip install '{requirement}'", flush=True)
    install = [sys.executable, "-m", "pip", "install", "-q", requirement]
    try:
        ok = subprocess.run(install, check=False, timeout=600).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    importlib.invalidate_caches()
    if ok and importlib.util.find_spec("matplotlib"):
        return True
    print(HINT, flush=True)
    return False


def tail_x(pct: float) -> float:
    """Where percentile `pct` (0-100, below 100) sits on the x axis: 1/(1 - p)."""
    return 1.0 / (1.0 - pct / 100.0)


def curve(row: dict[str, Any]) -> tuple[list[float], list[float]] | None:
    """A row's (x, latency ms) points, or None when it has no distribution.

    Out of N requests the slowest is the (1 - 1/N) quantile: the max is drawn there, and the
    points past it (which wrk can only answer with the max) are left out.
    """
    wrk = row.get("wrk") or {}
    points, n = wrk.get("percentiles") or [], wrk.get("requests") or 0
    if not points or n < 1:
        return None
    last = 100.0 * (1.0 - 1.0 / n)
    kept = [(p, ms) for p, ms in points if p < 100 and p <= last + 1e-9]
    kept.append((last, max(ms for _, ms in points)))
    return [tail_x(p) for p, _ in kept], [max(ms, 1e-3) for _, ms in kept]


def figure_title(meta: dict[str, Any]) -> str:
    """The figure's title from results.json's meta."""
    text = "Gateway overhead bench: wrk latency (to the last byte) by percentile"
    when = [str(meta[k]) for k in ("date",) if meta.get(k)]
    if meta.get("duration_s"):
        when.append(f"{meta['duration_s']:g} s rows")
    if (meta.get("rounds") or 1) > 1:
        when.append(f"median-throughput round of {meta['rounds']}")
    return text + (f"\n{', '.join(when)}" if when else "")


def render(rows: list[dict[str, Any]], path: Path | str, title: str | None = None
           ) -> Path | None:
    """Draw rows' latency distributions into one PNG at `path`; returns the path, or None
    (with a one-line message) when matplotlib is missing or no row has a distribution."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
        from matplotlib.ticker import (
            FixedLocator,
            FuncFormatter,
            LogLocator,
            NullFormatter,
            NullLocator,
        )
    except ImportError:
        print(HINT, flush=True)
        return None
    curves = {id(r): c for r in rows if (c := curve(r)) is not None}
    if not curves:
        print("latency plot skipped: no row has wrk percentiles", flush=True)
        return None
    workloads = list(dict.fromkeys(r["workload"] for r in rows if id(r) in curves))
    concurrencies = sorted({r["concurrency"] for r in rows if id(r) in curves})
    setups = dict(sorted({r["setup_key"]: r["setup"] for r in rows if id(r) in curves}.items()))
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
               "#7f7f7f", "#bcbd22", "#17becf"]
    colors = {k: palette[i % len(palette)] for i, k in enumerate(setups)}

    nrows, ncols = len(workloads), len(concurrencies)
    fig = Figure(figsize=(6.4 * ncols, 4.4 * nrows + 1.2), dpi=110, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    labels = {x: label for label, x in TICKS}
    for i, workload in enumerate(workloads):
        for j, conc in enumerate(concurrencies):
            ax = axes[i][j]
            here = [r for r in rows if r["workload"] == workload
                    and r["concurrency"] == conc and id(r) in curves]
            for r in here:
                xs, ys = curves[id(r)]
                ax.plot(xs, ys, color=colors[r["setup_key"]], linewidth=1.6, marker="o",
                        markersize=2.5)
            # up to the first tick at or past this plot's slowest request, and at least 99%
            xmax = max((max(curves[id(r)][0]) for r in here), default=100.0)
            right = next((x for _, x in TICKS if x >= max(100.0, xmax * 0.9999)), TICKS[-1][1])
            ax.set_title(f"{workload}, concurrency {conc}", fontsize=11)
            ax.set_xscale("log")
            ax.set_xlim(1.0, right)
            ax.xaxis.set_major_locator(FixedLocator([x for x in labels if x <= right]))
            ax.xaxis.set_major_formatter(FuncFormatter(
                lambda x, _pos: labels.get(x, f"{100 * (1 - 1 / x):g}%")))
            ax.xaxis.set_minor_locator(NullLocator())
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 3.0, 5.0)))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _pos: f"{y:g}"))
            ax.yaxis.set_minor_formatter(NullFormatter())
            ax.grid(True, which="major", alpha=0.35)
            ax.grid(True, which="minor", axis="y", alpha=0.12)
            ax.set_xlabel("percentile (x = 1/(1 - p), log scale; left edge 0%)")
            ax.set_ylabel("latency (ms, log scale)")
    handles = [Line2D([], [], color=colors[k], linewidth=2) for k in setups]
    names = [f"({k}) {name}" for k, name in setups.items()]
    fig.legend(handles, names, loc="outside lower center", ncol=min(len(names), 4),
               frameon=False, fontsize=10)
    if title:
        fig.suptitle(title, fontsize=12)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="?", type=Path,
                   default=Path(__file__).resolve().parent / "out" / "results.json",
                   help="a bench results.json (bench/out/results.json)")
    p.add_argument("png", nargs="?", type=Path,
                   help="the PNG to write (latency.png beside the results)")
    args = p.parse_args(argv)
    data = json.loads(args.results.read_text())
    made = render(data["rows"], args.png or args.results.with_name("latency.png"),
                  figure_title(data.get("meta") or {}))
    if made:
        print(f"wrote {made}")
    return 0 if made else 1


if __name__ == "__main__":
    sys.exit(main())
