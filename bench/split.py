"""Where the processor's CPU goes under load: setup (h) beside the same server answering
canned replies, and beside (b), in one run.

Setup (h) is our server with every reference policy on. Its "canned" twin is the very same
server (gRPC server, servicer loop, metrics) with each exchange replaced by one that answers
every message with its empty reply, as `bench/replay.py` does in process: the cost of our
gRPC plumbing without the policies. (b) is the do-nothing processor of the judged ratios.
For each workload at concurrency 32 it prints each one's processor CPU per request (from
`/proc`, the whole process tree) and, for (h), the time its message handlers took per
request by message kind (the server's own `extproc_message_duration_seconds`). So:

* (h) minus canned is what the policies cost under load;
* (h)'s handler time is the part of that spent answering messages; the rest is outside the
  handlers: the stream's end (access log, metrics, settlement) and gRPC's own threads,
  which work harder when the event loop is busy;
* a second table splits each setup's processor CPU by thread (`cpu.thread_split`): the
  event loop thread, gRPC's completion-queue poller and gRPC's C++ engine threads, with
  how often per request the loop thread went to sleep. A loop that hardly ever sleeps is
  saturated: there, CPU a change saves in process mostly goes to more loop turns.

    python bench/split.py [--seconds 10] [--workloads non-streamed,streamed-paced]
    python bench/split.py --serve-canned serve ...   # the canned server (split.py runs it)
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import urllib.request
from pathlib import Path
from typing import Any

from cpu import THREAD_ROLES, CpuSample, thread_delta, thread_split, us_per_request
from load import WORKLOADS, Workload, ensure_wrk, run_wrk, wrk_script
from setups import running

KINDS = ("request_headers", "request_body", "response_headers", "response_body")
_SERIES = re.compile(r'^extproc_message_duration_seconds_(sum|count)\{message="(\w+)"\} (\S+)$',
                     re.M)


def message_seconds(text: str) -> dict[str, tuple[float, float]]:
    """{message kind: (seconds, messages)} from the server's Prometheus text."""
    out: dict[str, list[float]] = {}
    for m in _SERIES.finditer(text):
        pair = out.setdefault(m[2], [0.0, 0.0])
        pair[0 if m[1] == "sum" else 1] = float(m[3])
    return {k: (v[0], v[1]) for k, v in out.items()}


def handler_split(before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]],
                  requests: int) -> dict[str, dict[str, float]]:
    """Per message kind, between two `message_seconds` readings: messages per request and
    handler microseconds per request."""
    out = {}
    for kind in KINDS:
        s0, n0 = before.get(kind, (0.0, 0.0))
        s1, n1 = after.get(kind, (0.0, 0.0))
        if n1 > n0 and requests > 0:
            out[kind] = {"messages": (n1 - n0) / requests, "us": 1e6 * (s1 - s0) / requests}
    return out


def _metrics(admin: int | None) -> dict[str, tuple[float, float]]:
    if admin is None:
        return {}
    with urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5) as resp:
        return message_seconds(resp.read().decode())


def measure(key: str, wl: Workload, seconds: float, log_dir: Path, canned: bool = False
            ) -> dict[str, Any]:
    """One setup under one workload at concurrency 32: processor CPU and handler time."""
    prefix = [sys.executable, str(Path(__file__).resolve()), "--serve-canned"] if canned \
        else None
    with running(key, log_dir, processor=prefix) as run:
        script = wrk_script(wl.with_headers(run.headers), log_dir, tag=key)
        run_wrk(run.base_url, script, 32, 2.0, run.path)   # warm-up
        pid = run.pids()["processor"]
        cpu0, m0 = CpuSample.take(run.pids()), _metrics(run.processor_admin)
        t0 = thread_split(pid)
        result = run_wrk(run.base_url, script, 32, seconds, run.path)
        t1 = thread_split(pid)
        cpu1, m1 = CpuSample.take(run.pids()), _metrics(run.processor_admin)
    # the processor's CPU as the bench's own column counts it (its whole process tree)
    secs = cpu1.seconds_since(cpu0).get("processor")
    n = max(result.requests, 1)
    threads = {role: (1e6 * secs_ / n, sleeps / n)
               for role, (secs_, sleeps) in thread_delta(t0, t1).items()}
    return {"cpu_us": us_per_request(secs, result.requests) or 0.0,
            "rps": result.rps, "handlers": handler_split(m0, m1, result.requests),
            "threads": threads}


def thread_row(workload: str, setup: str, threads: dict[str, tuple[float, float]]) -> str:
    """One line of the threads table: us per request by thread role, and how often per
    request the loop thread went to sleep."""
    cells = " | ".join(f"{threads.get(role, (0.0, 0.0))[0]:.0f}" for role in THREAD_ROLES)
    return f"| {workload} | {setup} | {cells} | {threads.get('loop', (0.0, 0.0))[1]:.1f} |"


def serve_canned(argv: list[str]) -> int:
    """Our server, every exchange answering each message with its empty reply."""
    import replay

    from extproc import cli, servicer
    servicer.Exchange = replay._Canned  # type: ignore[misc]
    return cli.main(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--serve-canned"]:
        return serve_canned(argv[1:])
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=10.0, help="wrk seconds per setup (10)")
    p.add_argument("--workloads", default="non-streamed,streamed-paced")
    args = p.parse_args(argv)
    names = [n.strip() for n in args.workloads.split(",") if n.strip()]
    chosen = [wl for wl in WORKLOADS if wl.name in names]
    if len(chosen) != len(names):
        p.error(f"workloads are {', '.join(wl.name for wl in WORKLOADS)}")
    ensure_wrk()
    print("| workload | (b) noop | canned (our server, no policies) | (h) all policies | "
          "(h) handlers | (h) outside handlers | handlers by message (us per request) |")
    print("|---|---|---|---|---|---|---|")
    rows: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for wl in chosen:
            b = measure("b", wl, args.seconds, Path(tmp))
            c = measure("h", wl, args.seconds, Path(tmp), canned=True)
            h = measure("h", wl, args.seconds, Path(tmp))
            rows += [thread_row(wl.name, name, m["threads"])
                     for name, m in (("(b)", b), ("canned", c), ("(h)", h))]
            handlers = sum(v["us"] for v in h["handlers"].values())
            by_kind = ", ".join(f"{k} {v['us']:.0f} ({v['messages']:.1f} msgs)"
                                for k, v in h["handlers"].items())
            outside = h["cpu_us"] - c["cpu_us"] - handlers
            print(f"| {wl.name} | {b['cpu_us']:.0f} | {c['cpu_us']:.0f} | {h['cpu_us']:.0f} | "
                  f"{handlers:.0f} | {outside:.0f} | {by_kind} |", flush=True)
    print()
    print("Processor CPU by thread (us per request) and how often per request its event "
          "loop thread went to sleep (near 0: the loop is saturated):")
    print()
    print("| workload | setup | " + " | ".join(THREAD_ROLES) + " | loop sleeps |")
    print("|---|---|" + "---|" * (len(THREAD_ROLES) + 1))
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
