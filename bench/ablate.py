"""Which policy costs what under load: setup (h) with one policy taken out at a time, beside
(b), alternated, at concurrency 32.

Each variant is (h)'s config (the reference config, limits out of reach) less one thing:
`-log` the access log, `-guards` the guards, `-limits` the rate limits, `-auth` the routes'
auth, `-all` all four (the exchange itself and usage metering are left). Every round runs
(b) and then each variant once per workload; the table gives each one's median processor
CPU per request (from `/proc`, as the bench's own column) and its ratio to (b)'s.

    python bench/ablate.py [--workloads non-streamed,streamed-paced] [--rounds 2]
                           [--seconds 8] [--variants full,-log,-guards,-limits,-auth,-all]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

import setups
import split
from load import WORKLOADS, ensure_wrk

PARTS = ("-log", "-guards", "-limits", "-auth")
_reference = setups.reference_config_all


def without(doc: dict[str, Any], variant: str) -> dict[str, Any]:
    """(h)'s config less what `variant` names ("full": nothing)."""
    out = _reference(doc)
    drop = PARTS if variant == "-all" else (variant,)
    if "-log" in drop:
        out["server"] = {**(out.get("server") or {}), "access_log": False}
    for route in out["routes"]:
        for part, key in (("-guards", "guards"), ("-limits", "rate_limits"),
                          ("-auth", "auth")):
            if part in drop:
                route.pop(key, None)
        if "-auth" in drop:
            route["auth"] = "none"   # anonymous on purpose (the key is still injected)
    if "-guards" in drop:
        out.pop("guards", None)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workloads", default="non-streamed,streamed-paced")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--seconds", type=float, default=8.0, help="wrk seconds per run (8)")
    p.add_argument("--variants", default="full," + ",".join(PARTS) + ",-all")
    args = p.parse_args(argv)
    names = [n.strip() for n in args.workloads.split(",") if n.strip()]
    chosen = [wl for wl in WORKLOADS if wl.name in names]
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    bad = [v for v in variants if v not in ("full", "-all", *PARTS)]
    if len(chosen) != len(names) or bad:
        p.error(f"workloads: {', '.join(w.name for w in WORKLOADS)}; variants: full, "
                f"{', '.join(PARTS)}, -all")
    ensure_wrk()
    runs: dict[tuple[str, str], list[float]] = {}
    current = ["full"]
    setups.reference_config_all = lambda doc: without(doc, current[0])  # type: ignore[assignment]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(args.rounds):
                for wl in chosen:
                    b = split.measure("b", wl, args.seconds, Path(tmp))
                    runs.setdefault((wl.name, "(b)"), []).append(b["cpu_us"])
                    for variant in variants:
                        current[0] = variant
                        h = split.measure("h", wl, args.seconds, Path(tmp))
                        runs.setdefault((wl.name, variant), []).append(h["cpu_us"])
                        print(f"{wl.name} {variant}: {h['cpu_us']:.0f} us "
                              f"((b) {b['cpu_us']:.0f})", flush=True)
    finally:
        setups.reference_config_all = _reference
    print("\n| workload | setup | processor CPU us per request (median) | runs | vs (b) |")
    print("|---|---|---|---|---|")
    for wl in chosen:
        base = statistics.median(runs[(wl.name, "(b)")])
        for variant in ("(b)", *variants):
            xs = runs[(wl.name, variant)]
            m = statistics.median(xs)
            print(f"| {wl.name} | {variant} | {m:.0f} | {', '.join(f'{x:.0f}' for x in xs)} | "
                  f"{m / base:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
