"""A/B of two checkouts under load: setup (h) from `--old` and from this tree, one after the
other, alternating, at concurrency 32 (or `--concurrency`); prints each run's processor CPU
per request, wrk's p50 latency and, for streams, the p50 time to the first byte.
Both run pure Python (EXTPROC_PURE=1), the old tree having no compiled modules.

    EXTPROC_PURE=1 python bench/ab_old_new.py --old /tmp/oldwt [--rounds 3] [--seconds 10]
        [--concurrency 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import uvloop
from cpu import CpuSample, us_per_request
from load import WORKLOADS, ensure_wrk, measure_ttfb, run_wrk, wrk_script
from setups import running

ROOT = Path(__file__).resolve().parent.parent


def _prefix(tree: Path) -> list[str]:
    code = (f"import sys; sys.path.insert(0, {str(tree)!r}); from extproc.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    return [sys.executable, "-c", code]


def measure(tree: Path, wl: object, seconds: float, log_dir: Path,
            concurrency: int) -> tuple[float, float, float]:
    """(processor CPU us per request, wrk's p50 ms, p50 ms to the first byte or 0)."""
    with running("h", log_dir, processor=_prefix(tree)) as run:
        wl = wl.with_headers(run.headers)  # type: ignore[attr-defined]
        script = wrk_script(wl, log_dir, tag="h")
        run_wrk(run.base_url, script, concurrency, 2.0, run.path)
        cpu0 = CpuSample.take(run.pids())
        result = run_wrk(run.base_url, script, concurrency, seconds, run.path)
        cpu1 = CpuSample.take(run.pids())
        ttfb = 0.0
        if wl.stream:
            ttfb = uvloop.run(measure_ttfb("127.0.0.1", run.port, wl, concurrency,
                                           max(200, 20 * concurrency), path=run.path,
                                           max_seconds=seconds)).p50_ms
    cpu = us_per_request(cpu1.seconds_since(cpu0).get("processor"), result.requests) or 0.0
    return cpu, result.p50_ms, ttfb


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--old", required=True)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--workloads", default="non-streamed,streamed-paced")
    p.add_argument("--concurrency", type=int, default=32)
    args = p.parse_args()
    os.environ["EXTPROC_PURE"] = "1"
    ensure_wrk()
    names = args.workloads.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        for wl in (w for w in WORKLOADS if w.name in names):
            got: dict[str, list[tuple[float, float, float]]] = {"old": [], "new": []}
            for r in range(args.rounds):
                order = (("old", Path(args.old)), ("new", ROOT))
                for name, tree in order if r % 2 == 0 else order[::-1]:
                    got[name].append(measure(tree, wl, args.seconds, Path(tmp),
                                             args.concurrency))
            for name in ("old", "new"):
                cpu, p50, ttfb = ([row[i] for row in got[name]] for i in range(3))
                print(f"{wl.name} c={args.concurrency} {name}: CPU us/req "
                      f"{sorted(round(x) for x in cpu)}, p50 ms {sorted(p50)}"
                      + (f", TTFB p50 ms {sorted(ttfb)}" if wl.stream else ""), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
