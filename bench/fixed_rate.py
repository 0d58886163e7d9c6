"""Processor CPU per request at a fixed offered rate, below saturation: (h) against (b).

The judged ratios of #10 are read at concurrency 32, where wrk sends each request as soon as
the last one on its connection is answered: every setup runs flat out, and the ratio of two
processors' CPU per request then also measures how each behaves saturated (how many
completions one turn of the event loop gathers, how often gRPC's threads sleep). A user's
gateway mostly runs below saturation. This tool offers the same requests at a fixed rate
instead (wrk's `delay()` hook, `load.pacer_lua`: one start every 1/rate s over 32
connections), the same rate to every setup, and reads what each processor's CPU per request
then is (from `/proc`, the whole process tree, as the judged bench does), with Envoy's and
the latency wrk saw.

Each round starts every setup once and runs every workload on it (a warm-up at the same
rate first); rows keep the median over rounds, and the setups alternate within a round, so
the machine's drift hits them alike. A setup that cannot keep up with a rate (achieved below
97% of it) is marked: its row is a saturated one again.

    .venv/bin/python bench/fixed_rate.py [--rates non-streamed=400,streamed=300,streamed-paced=100]
        [--setups b,h] [--rounds 3] [--duration 10] [--concurrency 32]

Writes bench/out/fixed_rate.json and bench/FIXED_RATE.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import calibrate
from cpu import CpuSample, run_meta, us_per_request, wait_quiet
from load import WORKLOADS, ensure_wrk, run_wrk, wrk_script
from report import CPU_TARGETS
from setups import BENCH, PROCESSORS, running

OUT = BENCH / "out"
#: well below (h)'s saturation on the 2-core bench machine (about 900 non-streamed, 500
#: back-to-back and 190 paced requests per second at concurrency 32)
DEFAULT_RATES = "non-streamed=400,streamed=300,streamed-paced=100"
#: achieved / offered below this: the setup did not keep up
KEPT_UP = 0.97


def parse_rates(text: str) -> dict[str, float]:
    """`name=rate,...` -> {workload: requests per second}, in WORKLOADS order."""
    rates: dict[str, float] = {}
    for item in (i.strip() for i in text.split(",")):
        if not item:
            continue
        name, sep, value = item.partition("=")
        try:
            rate = float(value) if sep else float("nan")
        except ValueError:
            rate = float("nan")
        if not rate > 0:
            raise ValueError(f"{item!r}: give a workload and a positive rate, name=rate")
        rates[name.strip()] = rate
    unknown = set(rates) - {wl.name for wl in WORKLOADS}
    if unknown:
        raise ValueError(f"unknown workload {sorted(unknown)[0]!r}; workloads are "
                         + ", ".join(wl.name for wl in WORKLOADS))
    if not rates:
        raise ValueError("no workload given")
    return {wl.name: rates[wl.name] for wl in WORKLOADS if wl.name in rates}


def _options(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rates", default=DEFAULT_RATES,
                   help=f"workload=requests per second, comma list ({DEFAULT_RATES})")
    p.add_argument("--setups", default="b,h", help="bench setups, in order (b,h)")
    p.add_argument("--concurrency", type=int, default=32, help="wrk connections (32)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per row (10)")
    p.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per row (2)")
    p.add_argument("--rounds", type=int, default=3, help="rows keep the median of N (3)")
    args = p.parse_args(argv)
    try:
        args.rate_of = parse_rates(args.rates)
    except ValueError as exc:
        p.error(f"--rates: {exc}")
    args.keys = [k.strip() for k in args.setups.split(",") if k.strip()]
    bad = [k for k in args.keys if k not in ("b", "r", *PROCESSORS)]
    if bad or not args.keys:
        p.error("--setups takes bench setups with an ext_proc processor (b, r, "
                f"{', '.join(PROCESSORS)}); not {', '.join(bad) or repr(args.setups)}")
    if args.rounds < 1 or args.duration < 1 or args.concurrency < 1:
        p.error("--rounds, --duration and --concurrency must be >= 1")
    return args


def _one(key: str, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """One start of setup `key`: each workload at its rate."""
    out: dict[str, dict[str, float]] = {}
    with running(key, OUT / "logs") as run:
        for wl in WORKLOADS:
            rate = args.rate_of.get(wl.name)
            if rate is None:
                continue
            script = wrk_script(wl.with_headers(run.headers), OUT, tag=f"rate-{key}",
                                rate=rate)
            wait_quiet()
            run_wrk(run.base_url, script, args.concurrency, args.warmup, run.path)
            cpu0 = CpuSample.take(run.pids())
            result = run_wrk(run.base_url, script, args.concurrency, args.duration, run.path)
            spent = CpuSample.take(run.pids()).seconds_since(cpu0)
            out[wl.name] = {
                "rate": rate, "rps": result.rps,
                "cpu_us": us_per_request(spent.get("processor"), result.requests) or 0.0,
                "envoy_us": us_per_request(spent.get("envoy"), result.requests) or 0.0,
                "p50_ms": result.p50_ms, "p99_ms": result.p99_ms,
                "errors": float(sum(result.errors.values()))}
    return out


def medians(samples: list[dict[str, dict[str, float]]]) -> dict[str, dict[str, Any]]:
    """Each workload's medians over the rounds (`calibrate.medians`), and whether the
    setup kept up with the offered rate in every round."""
    out = calibrate.medians(samples)
    for name, row in out.items():
        row["kept_up"] = all(s[name]["rps"] >= KEPT_UP * s[name]["rate"] for s in samples)
    return out


def measure(args: argparse.Namespace) -> dict[str, dict[str, dict[str, Any]]]:
    """{setup: {workload: medians}} over `args.rounds` rounds of every setup."""
    samples: dict[str, list[dict[str, dict[str, float]]]] = {k: [] for k in args.keys}
    for n in range(args.rounds):
        for key in args.keys:
            samples[key].append(_one(key, args))
            for name, r in samples[key][-1].items():
                print(f"  round {n + 1} ({key}) {name:15} {r['rate']:6.0f}/s offered "
                      f"{r['rps']:7.1f} done  {r['cpu_us']:7.0f} us CPU/req  "
                      f"p50 {r['p50_ms']:.2f} ms", flush=True)
    return {key: medians(runs) for key, runs in samples.items()}


def rows(result: dict[str, dict[str, dict[str, Any]]], base: str = "b",
         ours: str = "h") -> list[dict[str, Any]]:
    """One row per workload: both setups' figures and (ours)/(base) for CPU and p50."""
    out = []
    for wl in WORKLOADS:
        name = wl.name
        b, h = result.get(base, {}).get(name), result.get(ours, {}).get(name)
        if b is None or h is None or name not in CPU_TARGETS:
            continue
        out.append({"workload": name, "rate": h["rate"], "target": CPU_TARGETS[name],
                    "base": b, "ours": h,
                    "cpu_ratio": round(h["cpu_us"] / b["cpu_us"], 3) if b["cpu_us"] else None,
                    "p50_added_ms": round(h["p50_ms"] - b["p50_ms"], 3),
                    "kept_up": b["kept_up"] and h["kept_up"]})
    return out


def markdown(result: dict[str, dict[str, dict[str, Any]]], meta: dict[str, Any]) -> str:
    lines = ["# Processor CPU per request at a fixed rate", "",
             f"- Date: {meta['date']}", f"- Command: `{meta['command']}`",
             f"- CPU probe before the run: {meta['probe_ms']} ms", "",
             f"Each workload offered at a fixed rate over {meta['concurrency']} connections "
             "(wrk with a pacer), the same rate to each setup; the processor's CPU per "
             "request (us, all its processes, from /proc), Envoy's, the latency wrk saw; "
             f"medians of {meta['rounds']} rounds (the rounds' processor CPU in brackets). "
             "The target column is #10's, which is judged at concurrency 32 "
             "(`bench/RESULTS.md`), not here.", "",
             "| workload | offered | setup | achieved req/s | processor us/req | "
             "Envoy us/req | p50 ms | p99 ms |", "|---|---|---|---|---|---|---|---|"]
    for key, by in result.items():
        for name, r in by.items():
            mark = "" if r["kept_up"] else " (did not keep up)"
            lines.append(f"| {name} | {r['rate']:g}/s | ({key}) | {r['rps']:.0f}{mark} | "
                         f"{r['cpu_us']:.0f} {r['cpu_rounds']} | {r['envoy_us']:.0f} | "
                         f"{r['p50_ms']:.2f} | {r['p99_ms']:.2f} |")
    table = rows(result)
    if table:
        lines += ["", "| workload | offered | (h)/(b) processor CPU per request | "
                  "#10's target (at c=32) | (h)'s added p50 |", "|---|---|---|---|---|"]
        for r in table:
            ratio = "-" if r["cpu_ratio"] is None else f"{r['cpu_ratio']:.2f}x"
            if not r["kept_up"]:
                ratio += " (saturated)"
            lines.append(f"| {r['workload']} | {r['rate']:g}/s | {ratio} | "
                         f"{r['target']:g}x | {r['p50_added_ms']:+.2f} ms |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    args = _options(argv)
    ensure_wrk()
    OUT.mkdir(parents=True, exist_ok=True)
    meta = {**run_meta("bench/fixed_rate.py --rates "
                       + ",".join(f"{k}={v:g}" for k, v in args.rate_of.items())
                       + f" --setups {','.join(args.keys)} --rounds {args.rounds}"
                       + f" --duration {args.duration:g} --concurrency {args.concurrency}"),
            "concurrency": args.concurrency, "rounds": args.rounds}
    result = measure(args)
    (OUT / "fixed_rate.json").write_text(json.dumps({"meta": meta, "setups": result,
                                                     "rows": rows(result)}, indent=1))
    text = markdown(result, meta)
    Path(BENCH / "FIXED_RATE.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
