"""A/B of two checkouts under load: setup (h) from `--old` and from this tree, one after the
other, alternating, at concurrency 32; prints the processor CPU per request of each run.
Both run pure Python (EXTPROC_PURE=1), the old tree having no compiled modules.

    EXTPROC_PURE=1 python bench/ab_old_new.py --old /tmp/oldwt [--rounds 3] [--seconds 10]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from cpu import CpuSample, us_per_request
from load import WORKLOADS, ensure_wrk, run_wrk, wrk_script
from setups import running

ROOT = Path(__file__).resolve().parent.parent


def _prefix(tree: Path) -> list[str]:
    code = (f"import sys; sys.path.insert(0, {str(tree)!r}); from extproc.cli import main; "
            "sys.exit(main(sys.argv[1:]))")
    return [sys.executable, "-c", code]


def measure(tree: Path, wl: object, seconds: float, log_dir: Path) -> float:
    with running("h", log_dir, processor=_prefix(tree)) as run:
        script = wrk_script(wl.with_headers(run.headers), log_dir, tag="h")  # type: ignore[attr-defined]
        run_wrk(run.base_url, script, 32, 2.0, run.path)
        cpu0 = CpuSample.take(run.pids())
        result = run_wrk(run.base_url, script, 32, seconds, run.path)
        cpu1 = CpuSample.take(run.pids())
    return us_per_request(cpu1.seconds_since(cpu0).get("processor"), result.requests) or 0.0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--old", required=True)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--workloads", default="non-streamed,streamed-paced")
    args = p.parse_args()
    os.environ["EXTPROC_PURE"] = "1"
    ensure_wrk()
    names = args.workloads.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        for wl in (w for w in WORKLOADS if w.name in names):
            got: dict[str, list[float]] = {"old": [], "new": []}
            for r in range(args.rounds):
                order = (("old", Path(args.old)), ("new", ROOT))
                for name, tree in order if r % 2 == 0 else order[::-1]:
                    got[name].append(measure(tree, wl, args.seconds, Path(tmp)))
            print(f"{wl.name}: old {sorted(round(x) for x in got['old'])} "
                  f"new {sorted(round(x) for x in got['new'])}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
