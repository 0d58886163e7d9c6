"""What per-message work costs a Python ext_proc under load, on this machine.

Runs setup (b), the do-nothing processor, again and again, each time spinning a fixed number
of microseconds of CPU per ext_proc message (`noop_extproc.py --burn-us N`), and reads for
each workload its req/s and the processor's CPU per request (from `/proc`, as the judged
bench does), each as a ratio to the noop that burns nothing. In the same run it measures
setup (h), our server with every reference policy on, and (with `--replay`) our work per
request on a quiet core (`bench/replay.py --config full`, in a subprocess).

So it answers the question #10's targets pose: how much work per request, measured in
process, can a processor do and stay within 1.5x (or 2x) of (b)'s CPU per request under the
judged load? The spin is the cheapest work there is (a few bytes of code and data, no
allocation), so where it crosses a target bounds every real processor's budget from above.
Each workload's line says where the spin crosses the target (in us per request, Envoy's
messages per request times N) and how far (h)'s own work is from it; and how much one us
of in-process work costs under load ("stretch": extra processor CPU per request over the
spin per request).

    .venv/bin/python bench/calibrate.py [--burn 0,10,20,40,80] [--duration 10] [--rounds 1]
        [--workloads non-streamed,streamed,streamed-paced] [--concurrency 32] [--no-h]
        [--replay]

Writes bench/out/calibration.json and bench/CALIBRATION.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from cpu import CpuSample, run_meta, us_per_request, wait_quiet
from load import WORKLOADS, ensure_wrk, run_wrk, wrk_script
from report import CPU_TARGETS
from setups import BENCH, counter_delta, envoy_ext_proc_stats, running

OUT = BENCH / "out"


def _options(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--burn", default="0,10,20,40,80",
                   help="microseconds of CPU per message, comma list; 0 is the reference")
    p.add_argument("--workloads", default="non-streamed,streamed,streamed-paced")
    p.add_argument("--concurrency", type=int, default=32, help="wrk connections (32)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per row (10)")
    p.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per row (2)")
    p.add_argument("--rounds", type=int, default=1, help="rows keep the median of N (1)")
    p.add_argument("--no-h", dest="with_h", action="store_false",
                   help="leave out setup (h)")
    p.add_argument("--replay", action="store_true",
                   help="also measure (h)'s work per request in process (bench/replay.py)")
    args = p.parse_args(argv)
    try:
        args.burns = sorted({float(x) for x in args.burn.split(",") if x.strip()} | {0.0})
    except ValueError:
        p.error(f"--burn takes a comma list of numbers; got {args.burn!r}")
    if min(args.burns) < 0 or args.rounds < 1 or args.duration < 1 or args.concurrency < 1:
        p.error("burns must be >= 0, --rounds, --duration and --concurrency >= 1")
    names = [n.strip() for n in args.workloads.split(",") if n.strip()]
    args.chosen = [wl for wl in WORKLOADS if wl.name in names]
    if len(args.chosen) != len(names):
        p.error(f"workloads are {', '.join(wl.name for wl in WORKLOADS)}")
    return args


def _one(key: str, args: argparse.Namespace, burn: float = 0.0) -> dict[str, dict[str, float]]:
    """One start of setup `key`: each chosen workload's req/s, processor CPU per request
    and Envoy's ext_proc messages per request."""
    out: dict[str, dict[str, float]] = {}
    with running(key, OUT / "logs", burn_us=burn) as run:
        for wl in args.chosen:
            script = wrk_script(wl.with_headers(run.headers), OUT, tag=f"cal-{key}")
            wait_quiet()
            run_wrk(run.base_url, script, args.concurrency, args.warmup, run.path)
            stats0, cpu0 = envoy_ext_proc_stats(run), CpuSample.take(run.pids())
            result = run_wrk(run.base_url, script, args.concurrency, args.duration, run.path)
            cpu1, stats1 = CpuSample.take(run.pids()), envoy_ext_proc_stats(run)
            sent = counter_delta(stats0, stats1).get("stream_msgs_sent", 0)
            out[wl.name] = {
                "rps": result.rps,
                "cpu_us": us_per_request(cpu1.seconds_since(cpu0).get("processor"),
                                         result.requests) or 0.0,
                "messages": sent / max(result.requests, 1)}
    return out


def medians(samples: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, Any]]:
    """Each workload's medians over the rounds (and the rounds' CPU figures)."""
    out: dict[str, dict[str, Any]] = {}
    for name in samples[0]:
        runs = [s[name] for s in samples]
        out[name] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        out[name]["cpu_rounds"] = [round(r["cpu_us"]) for r in runs]
    return out


def replay_work() -> dict[str, float]:
    """(h)'s work per request on a quiet core, by workload: `bench/replay.py --config full`
    (our server's us per request minus its servicer answering canned replies)."""
    done = subprocess.run([sys.executable, str(BENCH / "replay.py"), "--config", "full",
                           "--json"], capture_output=True, text=True, check=True,
                          cwd=BENCH.parent)
    rows = json.loads(done.stdout)
    return {r["workload"]: r["us_per_request"] - r["loop_us_per_request"] for r in rows}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    b: dict[float, list[dict[str, dict[str, float]]]] = {burn: [] for burn in args.burns}
    h: list[dict[str, dict[str, float]]] = []
    for _ in range(args.rounds):   # a round: every burn, then (h): the same machine state
        for burn in args.burns:
            b[burn].append(_one("b", args, burn))
            for name, r in b[burn][-1].items():
                print(f"  (b) burn {burn:5.0f} us  {name:15} {r['rps']:8.1f} req/s "
                      f"{r['cpu_us']:7.0f} us CPU/req  {r['messages']:.1f} msgs", flush=True)
        if args.with_h:
            h.append(_one("h", args))
            for name, r in h[-1].items():
                print(f"  (h)                  {name:15} {r['rps']:8.1f} req/s "
                      f"{r['cpu_us']:7.0f} us CPU/req", flush=True)
    rows: list[dict[str, Any]] = []
    for burn, samples in b.items():
        for name, r in medians(samples).items():
            rows.append({"burn_us": burn, "workload": name, **r})
    base = {r["workload"]: r for r in rows if r["burn_us"] == 0}
    for row in rows:
        ref = base[row["workload"]]
        row["spin_us"] = row["burn_us"] * row["messages"]   # per request
        row["rps_ratio"] = round(row["rps"] / ref["rps"], 3) if ref["rps"] else None
        row["cpu_ratio"] = round(row["cpu_us"] / ref["cpu_us"], 3) if ref["cpu_us"] else None
    return {"rows": rows, "h": medians(h) if h else {},
            "work": replay_work() if args.replay else {}}


def crossing(points: list[tuple[float, float]], target: float) -> float | None:
    """Where a rising curve of (spin us per request, CPU ratio) points first reaches
    `target`, by linear interpolation between the two points around it; None when no point
    reaches it (the budget lies beyond the largest spin measured)."""
    points = sorted(points)
    for (x0, y0), (x1, y1) in itertools.pairwise(points):
        if y0 >= target:
            return x0
        if y1 >= target:
            return x0 + (target - y0) * (x1 - x0) / (y1 - y0)
    if points and points[-1][1] >= target:
        return points[-1][0]
    return None


def stretch(extra_cpu_us: float, work_us: float) -> float | None:
    """Processor CPU per request added under load per us of work per request added in
    process (None without work)."""
    return extra_cpu_us / work_us if work_us > 0 else None


def summary(result: dict[str, Any]) -> list[str]:
    """One line per workload: the spin that reaches the target, and (h) against it."""
    lines = []
    for name in dict.fromkeys(r["workload"] for r in result["rows"]):
        rows = [r for r in result["rows"] if r["workload"] == name]
        base = next(r for r in rows if r["burn_us"] == 0)
        target = CPU_TARGETS.get(name)
        text = f"- {name}:"
        if target is not None:
            at = crossing([(r["spin_us"], r["cpu_ratio"] or 0.0) for r in rows], target)
            text += (f" the spin reaches {target:g}x of (b)'s CPU per request at "
                     + (f"about {at:.0f} us per request" if at is not None else
                        f"more than {max(r['spin_us'] for r in rows):.0f} us per request"))
        spun = [s for r in rows if r["burn_us"] > 0
                and (s := stretch(r["cpu_us"] - base["cpu_us"], r["spin_us"])) is not None]
        if spun:
            text += (f"; each us of spin per request costs {min(spun):.1f}-{max(spun):.1f} "
                     "us of processor CPU under load")
        h = result["h"].get(name)
        if h is not None:
            text += f"; (h) {h['cpu_us']:.0f} us ({h['cpu_us'] / base['cpu_us']:.2f}x)"
            work = result["work"].get(name)
            if work is not None:
                s = stretch(h["cpu_us"] - base["cpu_us"], work)
                text += f", its work in process {work:.0f} us per request"
                if s is not None:
                    text += f" (stretch {s:.1f})"
        lines.append(text)
    return lines


def markdown(result: dict[str, Any], meta: dict[str, Any]) -> str:
    rows = result["rows"]
    names = list(dict.fromkeys(r["workload"] for r in rows))
    by = {(r["burn_us"], r["workload"]): r for r in rows}
    lines = ["# Per-message budget of a Python ext_proc", "",
             f"- Date: {meta['date']}", f"- Command: `{meta['command']}`",
             f"- CPU probe before the run: {meta['probe_ms']} ms", "",
             f"Setup (b), the do-nothing processor, spinning N us of CPU on every ext_proc "
             f"message, at concurrency {meta['concurrency']}: the processor's CPU per request "
             "(us, and its ratio to N = 0), req/s (and its ratio), and the spin per request "
             "(N times Envoy's ext_proc messages per request). Setup (h), our server with "
             "every reference policy on, measured in the same run.", "",
             "| us per message | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for burn in sorted({r["burn_us"] for r in rows}):
        cells = []
        for name in names:
            r = by.get((burn, name))
            cells.append("-" if r is None else
                         f"{r['cpu_us']:.0f} us ({r['cpu_ratio']:.2f}x), "
                         f"{r['rps']:.0f} req/s ({r['rps_ratio']:.2f}x), "
                         f"spin {r['spin_us']:.0f} us/req")
        lines.append(f"| {burn:g} | " + " | ".join(cells) + " |")
    if result["h"]:
        cells = [f"{result['h'][n]['cpu_us']:.0f} us, {result['h'][n]['rps']:.0f} req/s"
                 if n in result["h"] else "-" for n in names]
        lines.append("| (h) | " + " | ".join(cells) + " |")
    lines += ["", *summary(result)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    args = _options(argv)
    ensure_wrk()
    OUT.mkdir(parents=True, exist_ok=True)
    meta = {**run_meta("bench/calibrate.py --burn " + ",".join(f"{b:g}" for b in args.burns)
                       + f" --workloads {','.join(wl.name for wl in args.chosen)}"
                       + f" --concurrency {args.concurrency} --duration {args.duration:g}"
                       + f" --rounds {args.rounds}" + ("" if args.with_h else " --no-h")
                       + (" --replay" if args.replay else "")),
            "concurrency": args.concurrency}
    result = measure(args)
    (OUT / "calibration.json").write_text(json.dumps({"meta": meta, **result}, indent=1))
    text = markdown(result, meta)
    Path(BENCH / "CALIBRATION.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
