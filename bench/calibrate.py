"""What per-message work costs a Python ext_proc in throughput, on this machine.

Runs setup (b), the do-nothing processor, again and again, each time spinning a fixed number
of microseconds of CPU per ext_proc message (`noop_extproc.py --burn-us N`), under the two
streamed workloads at concurrency 1 and 32, and prints each row's req/s as a ratio to the
noop that burns nothing. The microseconds at which a row falls to 0.85x are the per-message
budget a real processor has against the 0.85x target; compare them with our server's own
work per message (its `extproc_message_duration_seconds` histogram, or the in-process figures
in docs/benchmark.md).

    .venv/bin/python bench/calibrate.py [--burn 0,20,40,80] [--duration 10] [--rounds 1]

Writes bench/out/calibration.json and bench/CALIBRATION.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from cpu import speed_probe, wait_quiet
from load import WORKLOADS, ensure_wrk, run_wrk, wrk_script
from setups import BENCH, running

OUT = BENCH / "out"
CONCURRENCY = (1, 32)
STREAMED = [wl for wl in WORKLOADS if wl.stream]


def _options() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--burn", default="0,20,40,80",
                   help="microseconds of CPU per message, comma list; 0 is the reference")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per row (10)")
    p.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per row (2)")
    p.add_argument("--rounds", type=int, default=1, help="rows keep the median of N (1)")
    args = p.parse_args()
    try:
        args.burns = sorted({float(x) for x in args.burn.split(",") if x.strip()} | {0.0})
    except ValueError:
        p.error(f"--burn takes a comma list of numbers; got {args.burn!r}")
    if min(args.burns) < 0 or args.rounds < 1 or args.duration < 1:
        p.error("burns must be >= 0, --rounds >= 1 and --duration >= 1")
    return args


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    scripts = {wl.name: wrk_script(wl, OUT) for wl in STREAMED}
    for burn in args.burns:
        samples: dict[tuple[str, int], list[float]] = {}
        for _ in range(args.rounds):
            with running("b", OUT / "logs", burn_us=burn) as run:
                for wl in STREAMED:
                    for c in CONCURRENCY:
                        wait_quiet()
                        run_wrk(run.base_url, scripts[wl.name], c, args.warmup)
                        result = run_wrk(run.base_url, scripts[wl.name], c, args.duration)
                        samples.setdefault((wl.name, c), []).append(result.rps)
        for (name, c), values in samples.items():
            rows.append({"burn_us": burn, "workload": name, "concurrency": c,
                         "rps": statistics.median(values), "rounds": values})
            print(f"  burn {burn:5.0f} us  {name:15} c={c:<3} {rows[-1]['rps']:8.1f} req/s",
                  flush=True)
    base = {(r["workload"], r["concurrency"]): r["rps"] for r in rows if r["burn_us"] == 0}
    for r in rows:
        ref = base.get((r["workload"], r["concurrency"]))
        r["ratio"] = round(r["rps"] / ref, 3) if ref else None
    return rows


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    burns = sorted({r["burn_us"] for r in rows})
    cols = [(wl.name, c) for wl in STREAMED for c in CONCURRENCY]
    by = {(r["burn_us"], r["workload"], r["concurrency"]): r for r in rows}
    lines = ["# Per-message budget of a Python ext_proc", "",
             f"- Date: {meta['date']}", f"- Command: `{meta['command']}`",
             f"- CPU probe before the run: {meta['probe_ms']} ms", "",
             "Setup (b), the do-nothing processor, spinning N us of CPU on every ext_proc "
             "message; req/s and the ratio to N = 0. The row where a column falls under "
             "0.85x bounds the work per message a processor can do and still meet the "
             "target on that workload.", "",
             "| us per message | " + " | ".join(f"{n} c={c}" for n, c in cols) + " |",
             "|---|" + "---|" * len(cols)]
    for burn in burns:
        cells = []
        for name, c in cols:
            r = by.get((burn, name, c))
            cells.append("-" if r is None else f"{r['rps']:.0f} ({r['ratio']:.2f}x)")
        lines.append(f"| {burn:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    args = _options()
    ensure_wrk()
    OUT.mkdir(parents=True, exist_ok=True)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            "command": "bench/calibrate.py --burn " + ",".join(f"{b:g}" for b in args.burns)
            + f" --duration {args.duration:g} --rounds {args.rounds}",
            "probe_ms": round(min(speed_probe() for _ in range(3)), 1)}
    rows = measure(args)
    (OUT / "calibration.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    text = markdown(rows, meta)
    Path(BENCH / "CALIBRATION.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
