"""Gateway overhead bench: (a) Envoy direct, (b) Envoy + do-nothing ext_proc, (r) the same
noop doing only the usage rewrite, (c) our server, (d) with authentication, (e) with rate
limits in memory, (f) with rate limits in Redis, (g) with prompt guards, (h) with every
policy of the reference config, (h2) the same on 2 workers, (l) LiteLLM's proxy as a peer.

    .venv/bin/python bench/run.py [--duration 10] [--only a,b,h,l] [--quick] [--rounds 1]

Starts the setups (all at once, then each row measured on one setup after the other;
--sequential: one setup after another), runs the non-streamed, streamed and paced streamed
workloads at concurrency 1 and 32 (wrk for throughput and latency, an asyncio client for
time to first byte), prints the table and writes bench/out/results.json and
bench/out/RESULTS.md; a full run (all setups, not --quick) also writes bench/RESULTS.md. See
bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

import plot
import uvloop
from cpu import CpuSample, speed_probe, us_per_request, wait_quiet
from load import WORKLOADS, Workload, ensure_wrk, measure_ttfb, probe, run_wrk, wrk_script
from report import FOREIGN, add_comparisons, merge_rounds, notes, table, write
from setups import (
    BENCH,
    ROOT,
    SETUPS,
    Running,
    counter_delta,
    envoy_ext_proc_stats,
    envoy_version,
    processor_stats,
    running,
    worker_streams,
)

CONCURRENCY = (1, 32)
OUT = BENCH / "out"


def _options(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=10.0, help="seconds per row (10)")
    p.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds per row (2)")
    p.add_argument("--only", default=",".join(SETUPS),
                   help=f"setups to run, e.g. a,c ({','.join(SETUPS)})")
    p.add_argument("--quick", action="store_true", help="2 s rows, 1 s warm-up, fewer TTFB")
    p.add_argument("--rounds", type=int, default=1,
                   help="repeat the whole sequence of setups N times; rows keep the median (1)")
    p.add_argument("--sequential", action="store_true",
                   help="run one setup after another, each through every row, instead of "
                   "starting them all and measuring each row on every setup in turn")
    p.add_argument("--retries", type=int, default=2,
                   help="re-measure a row disturbed by foreign CPU load up to N times (2)")
    p.add_argument("--record", action="store_true",
                   help="write bench/RESULTS.md and bench/latency.png even when --only picks "
                   "some setups (a run of all setups does it anyway; never with --quick)")
    p.add_argument("--ttfb-requests", type=int, default=0,
                   help="TTFB requests per row (default max(200, 20 x concurrency))")
    args = p.parse_args(argv)
    if args.quick:
        args.duration, args.warmup = 2.0, 1.0
    if args.rounds < 1 or args.retries < 0 or args.duration < 1:
        p.error("--rounds must be >= 1, --retries >= 0 and --duration >= 1")
    if args.record and args.quick:
        p.error("--record keeps a real run: not with --quick")
    keys = [k.strip() for k in args.only.split(",") if k.strip()]
    bad = [k for k in keys if k not in SETUPS]
    if bad or not keys:
        p.error(f"--only takes a comma list of {', '.join(SETUPS)}; got {args.only!r}")
    args.keys = [k for k in SETUPS if k in keys]
    return args


def _ttfb_count(args: argparse.Namespace, concurrency: int) -> int:
    if args.ttfb_requests:
        return max(args.ttfb_requests, concurrency)
    return max(50, 5 * concurrency) if args.quick else max(200, 20 * concurrency)


def _meta(args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    exe = os.path.relpath(sys.executable, ROOT)
    script = os.path.relpath(Path(__file__).resolve(), Path.cwd())
    return {"date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "cpu_model": model,
            "cores": os.cpu_count(), "envoy_version": envoy_version(),
            "python": f"{platform.python_implementation()} {platform.python_version()}",
            "command": shlex.join([exe, script, *argv]), "duration_s": args.duration,
            "warmup_s": args.warmup, "setups": args.keys, "rounds": args.rounds,
            "order": "sequential" if args.sequential else "interleaved",
            "ttfb_requests": "max(50, 5 x c)" if args.quick and not args.ttfb_requests
            else f"{args.ttfb_requests or 'max(200, 20 x c)'} requests"}


def _check(run: Running) -> None:
    """One request per workload: the setup must answer 200 with a well-formed body."""
    for wl in WORKLOADS:
        resp = uvloop.run(probe("127.0.0.1", run.port, wl.with_headers(run.headers), run.path))
        if resp.status != 200:
            raise RuntimeError(f"({run.key}) {wl.name}: status {resp.status}: {resp.body[:300]!r}")
        if wl.stream:
            events = resp.body.count(b"data: ")
            if events < 40 or b"data: [DONE]" not in resp.body:
                raise RuntimeError(f"({run.key}) {wl.name}: only {events} events")
            print(f"  probe {wl.name}: 200, {events} SSE events, {len(resp.body)} bytes")
        else:
            if "choices" not in json.loads(resp.body):
                raise RuntimeError(f"({run.key}) non-streamed: no choices in the reply")
            print(f"  probe {wl.name}: 200, {len(resp.body)} bytes of JSON")


def _alive(run: Running) -> None:
    dead = {r: p.returncode for r, p in run.procs.items() if p.poll() is not None}
    if dead:
        raise RuntimeError(f"({run.key}) processes exited during the run: {dead}")


def _measure(run: Running, wl: Workload, script: Path, c: int,
             args: argparse.Namespace) -> dict[str, Any]:
    idle_busy = wait_quiet()
    speed = min(speed_probe() for _ in range(3))
    run_wrk(run.base_url, script, c, args.warmup, run.path)
    spread = worker_streams(run)
    before = CpuSample.take(run.pids())
    result = run_wrk(run.base_url, script, c, args.duration, run.path)
    after = CpuSample.take(run.pids())
    cpu = after.since(before)
    cpu["wrk"] = result.cpu_percent
    cpu["other"] = round(max(0.0, cpu["other"] - result.cpu_percent), 1)
    cpu["before_row"] = idle_busy
    # CPU microseconds per completed request, per role (its whole process tree)
    per_req = {role: us_per_request(secs, result.requests)
               for role, secs in after.seconds_since(before).items()}
    if spread is not None:   # streams each worker served during the wrk run
        spread = [n - b for n, b in zip(worker_streams(run) or [], spread, strict=False)]
    ttfb = None
    if wl.stream:
        ttfb = uvloop.run(measure_ttfb("127.0.0.1", run.port, wl.with_headers(run.headers), c,
                                       _ttfb_count(args, c), path=run.path,
                                       max_seconds=max(10.0, args.duration)))
    _alive(run)
    return {"setup_key": run.key, "setup": run.name, "workload": wl.name, "concurrency": c,
            "wrk": vars(result), "ttfb": vars(ttfb) if ttfb else None, "cpu": cpu,
            "cpu_us_per_req": per_req, "worker_streams": spread, "speed_probe_ms": speed}


def _row(run: Running, wl: Workload, script: Path, c: int,
         args: argparse.Namespace) -> dict[str, Any]:
    """One row; measured again (up to --retries times) while foreign load disturbs it."""
    tries: list[dict[str, Any]] = []
    while True:
        tries.append(_measure(run, wl, script, c, args))
        other = tries[-1]["cpu"]["other"]
        if other < FOREIGN or len(tries) > args.retries:
            break
        who = "" if args.sequential else f"({run.key}) "
        print(f"  {who}{wl.name:>12} c={c:<2} disturbed ({other:.0f}% of a core went "
              "elsewhere): measuring again", flush=True)
    row = min(tries, key=lambda r: r["cpu"]["other"])
    row["attempts"] = len(tries)
    result, ttfb, cpu = row["wrk"], row["ttfb"], row["cpu"]
    extra = f"  TTFB p50 {ttfb['p50_ms']:.2f} ms" if ttfb else ""
    who = "" if args.sequential else f"({run.key}) "
    load = " ".join(f"{k}={v:.0f}" for k, v in cpu.items())
    per_req = " ".join(f"{k}={v:.0f}" for k, v in row["cpu_us_per_req"].items()
                       if v is not None)
    print(f"  {who}{wl.name:>12} c={c:<2} {result['rps']:7.0f} req/s  "
          f"p50 {result['p50_ms']:.2f} ms  p99 {result['p99_ms']:.2f} ms{extra}  "
          f"cpu% {load}  cpu us/req {per_req}", flush=True)
    return row


def _setup_rows(args: argparse.Namespace, key: str, rnd: int,
                stats: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with running(key, OUT / "logs") as run:
        _check(run)
        traffic: dict[str, dict[str, int]] = {}
        for wl in WORKLOADS:
            wanted = [c for c in CONCURRENCY if run.wants(wl.name, c)]
            if not wanted:
                continue
            script = wrk_script(wl.with_headers(run.headers), OUT, run.key if run.headers else "")
            before = envoy_ext_proc_stats(run)
            for c in wanted:
                rows.append({**_row(run, wl, script, c, args), "round": rnd})
            traffic[wl.name] = counter_delta(before, envoy_ext_proc_stats(run))
        stats.setdefault(run.name, []).append(
            {"round": rnd, "envoy": envoy_ext_proc_stats(run),
             "processor": processor_stats(run), "workloads": traffic})
    return rows


def _round(args: argparse.Namespace, rnd: int, stats: dict[str, list[dict[str, Any]]],
           skipped: dict[str, str]) -> list[dict[str, Any]]:
    """Every selected setup once, one after another; returns its rows. The peer (l) failing
    to start or to answer is recorded in `skipped` and the bench goes on without it."""
    rows: list[dict[str, Any]] = []
    for key in args.keys:
        if key in skipped:
            continue
        tag = f" (round {rnd}/{args.rounds})" if args.rounds > 1 else ""
        print(f"== ({key}) {SETUPS[key]}{tag}", flush=True)
        rows += _setup_rows(args, key, rnd, stats) if key != "l" \
            else _peer_rows(args, rnd, stats, skipped)
    return rows


def _peer_rows(args: argparse.Namespace, rnd: int, stats: dict[str, list[dict[str, Any]]],
               skipped: dict[str, str]) -> list[dict[str, Any]]:
    """The peer (l)'s rows; none, and the reason in `skipped`, when it fails to start or to
    answer (it must not cost the rest of the bench)."""
    try:
        return _setup_rows(args, "l", rnd, stats)
    except Exception as exc:
        skipped["l"] = f"LiteLLM did not serve the bench: {exc!r}"[:300]
        print(f"  skipped: {skipped['l']}", flush=True)
        return []


def _round_interleaved(args: argparse.Namespace, rnd: int,
                       stats: dict[str, list[dict[str, Any]]],
                       skipped: dict[str, str]) -> list[dict[str, Any]]:
    """Every selected setup but the peer started at once, each on ports of its own, then each
    workload and concurrency measured on one setup after the other (in reverse order every
    other round): the rows a ratio compares are a minute or two apart, not a whole setup's
    run, so a drift of the machine's speed (a shared VM's neighbours) moves both alike. Idle
    setups cost nothing measurable (their CPU would show as `other`). The peer (l), whose
    proxy keeps busy when idle, runs after them on its own, as in `_round`."""
    keys = [k for k in args.keys if k != "l" and k not in skipped]
    rows: list[dict[str, Any]] = []
    tag = f" (round {rnd}/{args.rounds})" if args.rounds > 1 else ""
    with contextlib.ExitStack() as stack:
        runs: list[Running] = []
        for key in keys:
            print(f"== ({key}) {SETUPS[key]}: starting{tag}", flush=True)
            run = stack.enter_context(running(key, OUT / "logs"))
            _check(run)
            runs.append(run)
        traffic: dict[str, dict[str, dict[str, int]]] = {run.key: {} for run in runs}
        order = runs if rnd % 2 else runs[::-1]
        for wl in WORKLOADS:
            scripts = {run.key: wrk_script(wl.with_headers(run.headers), OUT,
                                           run.key if run.headers else "") for run in runs}
            print(f"== {wl.name}{tag}", flush=True)
            for c in CONCURRENCY:
                for run in order:
                    if not run.wants(wl.name, c):
                        continue
                    before = envoy_ext_proc_stats(run)
                    rows.append({**_row(run, wl, scripts[run.key], c, args), "round": rnd})
                    seen = traffic[run.key].setdefault(wl.name, {})
                    for name, n in counter_delta(before, envoy_ext_proc_stats(run)).items():
                        seen[name] = seen.get(name, 0) + n
        for run in runs:
            stats.setdefault(run.name, []).append(
                {"round": rnd, "envoy": envoy_ext_proc_stats(run),
                 "processor": processor_stats(run),
                 "workloads": {k: v for k, v in traffic[run.key].items() if v}})
    if "l" in args.keys and "l" not in skipped:
        print(f"== (l) {SETUPS['l']}{tag}", flush=True)
        rows += _peer_rows(args, rnd, stats, skipped)
    return rows


def _on_sigterm(signum: int, _frame: object) -> NoReturn:
    raise SystemExit(128 + signum)


def _plot(meta: dict[str, Any], rows: list[dict[str, Any]], full: bool) -> list[Path]:
    """bench/out/latency.png, and for a full run bench/latency.png; a failure to draw is
    reported and never fails the bench."""
    try:
        made = plot.render(rows, OUT / "latency.png", plot.figure_title(meta))
        if made is None:
            return []
        if full:
            shutil.copyfile(made, BENCH / "latency.png")
            return [made, BENCH / "latency.png"]
        return [made]
    except Exception as exc:  # the plot must not cost the measurements
        print(f"latency plot failed: {exc!r}", flush=True)
        return []


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _options(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    ensure_wrk()
    plot.ensure_matplotlib()
    if "f" in args.keys and not shutil.which("redis-server"):
        subprocess.run([str(ROOT / "scripts" / "ensure-redis")], check=True)
    full = not args.quick and (args.record or args.keys == list(SETUPS))
    skipped: dict[str, str] = {}
    if "l" in args.keys:
        import litellm_peer
        why = litellm_peer.ensure_installed()
        if why:
            skipped["l"] = why
            print(f"(l) skipped: {why}", flush=True)
    meta = _meta(args, argv)
    if "l" in args.keys:
        meta["litellm"] = litellm_peer.VERSION
    print(f"bench: setups {', '.join(args.keys)}; {args.duration:g} s rows after "
          f"{args.warmup:g} s warm-up; Envoy {meta['envoy_version']}", flush=True)
    rows: list[dict[str, Any]] = []
    stats: dict[str, list[dict[str, Any]]] = {}
    md_paths = [OUT / "RESULTS.md", *([BENCH / "RESULTS.md"] if full else [])]
    try:
        for rnd in range(1, args.rounds + 1):
            one = _round if args.sequential else _round_interleaved
            rows += one(args, rnd, stats, skipped)
    except KeyboardInterrupt:
        print("\ninterrupted: every process started by the bench has been stopped")
        return 130
    except RuntimeError as exc:
        print(f"\nbench failed: {exc}\n(process logs and Envoy configs: bench/out/logs/)")
        return 1
    if "g" in args.keys:
        import guards_micro
        print("== guards, in process", flush=True)
        meta["guards_micro"] = guards_micro.measure()
    meta["skipped"] = skipped
    merged = merge_rounds(rows)
    add_comparisons(merged)
    print()
    print(table(merged))
    for note in notes(merged, rows, skipped):
        print(f"- {note}")
    pngs = _plot(meta, merged, full)
    write(meta, merged, rows, stats, OUT / "results.json", md_paths,
          image="latency.png" if pngs else None)
    written = [OUT / "results.json", *md_paths, *pngs]
    print(f"\nwrote {', '.join(os.path.relpath(p) for p in written)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
