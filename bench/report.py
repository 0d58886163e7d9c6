"""The results table, the bottleneck notes, bench/RESULTS.md and bench/out/results.json."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

TARGET = 0.85  # row (c) streamed throughput over row (b)
AUTH_TARGET = 0.05  # (d) may add at most 5% more latency over (a) than (c) does
LIMITS_TARGET = 0.95  # (e) in-memory limits keep this share of (c)'s throughput
MOCK_BOUND = 85.0  # mock CPU, % of one core, from which it is taken as the bottleneck
FOREIGN = 40.0  # CPU outside the bench's processes (% of a core) worth a warning
#: issue #10: (h)'s processor CPU per request over (b)'s at concurrency 32, by workload
CPU_TARGETS = {"non-streamed": 1.5, "streamed-paced": 1.5, "streamed": 2.0}
ADDED_P50_MS = 1.0  # (h) adds at most this p50 over (b) at concurrency 1
ADDED_TTFB_MS = 1.0  # and at most this time to first byte on paced streams

HOW_TO_READ = """\
Each row is one setup under one workload at one concurrency (connections kept open by the
client). `req/s` and the latency percentiles come from `wrk` (one thread, keep-alive,
latency measured to the last byte of the response, so a streamed row includes the whole
stream). `TTFB` (streamed rows only) is measured separately with a small asyncio client: the
time from writing the request to receiving the first byte of the response body, i.e. the
first SSE event. `x(a)` is the row's throughput over the same row of setup (a), Envoy
straight to the mock; `x(b)` is setups (c) and (d) over setup (b), a do-nothing Python
ext_proc, so it isolates what our server costs beyond the ext_proc protocol itself; (d)
differs from (c) only by authentication (JWT check and provider key injection) on every
request. (h) is the reference config as shipped, every policy at once (JWT auth and the
provider key, the PII guard on prompts and replies, usage metering, the per-subject request
and token limits in memory, raised out of reach); (h2) is (h) on `serve --workers 2`, on
two rows only; (l) is LiteLLM's proxy with its master key and a masking guardrail, the
load sent to it directly (no Envoy). `+p50` is the p50 latency added over (a). `CPU%` is
per process in percent of one core during the wrk run (E = Envoy, P = ext_proc processor,
or LiteLLM for (l), M = mock provider, wrk, and `other`: the rest of the machine's busy
time, normally near 0, more when something else runs on the machine; 2 cores = 200 in all).
Everything shares 2 cores, so at concurrency 32 the numbers say how the CPU is split, not
what each part could do alone: when the mock is near 100% it, not the gateway, caps the
direct setup, which flatters the ratios to (a). `probe ms` is how long a fixed pure-Python
loop took just before the row: on a shared VM it moves by tens of percent from minute to
minute, and rows measured on a slow minute are slow in every column. With `--rounds N` each
row is the round with the median req/s and the bracket gives the range over the rounds:
compare setups by those ranges, not by single numbers.

`CPU us/req P` and `CPU us/req E` are the CPU time (user + system, from `/proc/PID/stat`)
the processor and Envoy spent during the wrk run, divided by the requests wrk completed in
it, in microseconds. Each counts the whole process tree, so `--workers` children (and
LiteLLM's) are in P. Unlike req/s, which swings with the machine's neighbours, CPU per
request stays steady, so it is the judged measure of what a processor costs. `cpu x(b)` is
the row's P over (b)'s P in the same workload and concurrency: what the processor costs per
request next to a do-nothing one. With `--rounds N` these three are the median over the
rounds (brackets: the range of P), while the other columns come from the median-req/s round.

The two streamed workloads carry the same 43 events. In `streamed` the mock writes them back
to back, so Envoy hands a processor the whole body in one or two chunks (see the messages per
stream below); our server, which asks OpenAI for the usage chunk the client did not request
(`stream_options.include_usage`, for exact token counts) and must cut it out again, then
rewrites that whole 13 KB chunk, and the request body too: the worst case of this design.
In `streamed-paced` the events leave the mock 1 ms apart, as a provider streams tokens over
time (real ones take tens of ms per token), so every event is its own ext_proc message and
only the last, small chunk that holds the usage is rewritten: the common case. The frames a
provider sends once generation has ended (the usage chunk, `[DONE]`) follow the finish chunk
at once, as a provider sends them (until 2026-12-05 the mock paced them too, which made the
stream of a setup that asks for usage one 1 ms gap longer)."""

LATENCY_PLOT = """\
wrk's latency percentiles for every row (`rows[].wrk.percentiles` in results.json), one curve
per setup, one plot per workload and concurrency. The x axis is 1/(1 - p) on a log scale, so
50%, 90%, 99% and 99.9% get equal room and the tail is visible; each curve ends at the row's
slowest request, drawn at the (1 - 1/N) percentile for N requests."""


#: how a round went through the setups (`meta["order"]`)
ORDERS = {
    "interleaved": "all setups but (l) up at once, each row measured on one after the other "
                   "(reversed every other round), so the rows a ratio compares are a minute "
                   "or two apart, not a setup's whole run; (l) alone after them",
    "sequential": "one setup after another, each through every row"}


def _fmt(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


def _find(rows: list[dict[str, Any]], key: str, row: dict[str, Any]) -> dict[str, Any] | None:
    return next((r for r in rows if r["setup_key"] == key and r["workload"] == row["workload"]
                 and r["concurrency"] == row["concurrency"]), None)


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def merge_rounds(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (setup, workload, concurrency): the round with the median req/s.

    Each kept row lists every round's req/s in `rps_rounds`; with one round it is the row.
    Its `cpu_us_per_req` is the median over the rounds, role by role, and
    `cpu_us_rounds` every round's values.
    """
    groups: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["setup_key"], r["workload"], r["concurrency"]), []).append(r)
    merged = []
    for group in groups.values():
        ordered = sorted(group, key=lambda r: r["wrk"]["rps"])
        row = dict(ordered[(len(ordered) - 1) // 2])
        row["rps_rounds"] = [r["wrk"]["rps"] for r in group]
        rounds = [r.get("cpu_us_per_req") or {} for r in group]
        row["cpu_us_rounds"] = rounds
        roles = {role for per in rounds for role in per}
        row["cpu_us_per_req"] = {
            role: round(_median(values), 1) if values else None
            for role in sorted(roles)
            for values in [[per[role] for per in rounds if per.get(role) is not None]]}
        merged.append(row)
    return merged


def cpu_us(row: dict[str, Any] | None, role: str = "processor") -> float | None:
    """The row's CPU microseconds per request for `role`, if measured."""
    return None if row is None else (row.get("cpu_us_per_req") or {}).get(role)


def cpu_ratio(row: dict[str, Any], base: dict[str, Any] | None) -> float | None:
    """The row's processor CPU per request over `base`'s (None without both)."""
    mine, theirs = cpu_us(row), cpu_us(base)
    if mine is None or not theirs:
        return None
    return round(mine / theirs, 2)


def add_comparisons(rows: list[dict[str, Any]]) -> None:
    """Fill each row's ratio_a, ratio_b, cpu_ratio_b and added_p50_ms (None where not
    applicable)."""
    for row in rows:
        a, b = _find(rows, "a", row), _find(rows, "b", row)
        row["cpu_ratio_b"] = cpu_ratio(row, b) if row["setup_key"] != "b" else None
        rps, p50 = row["wrk"]["rps"], row["wrk"]["p50_ms"]
        row["ratio_a"] = round(rps / a["wrk"]["rps"], 3) if a and row["setup_key"] != "a" \
            else None
        row["ratio_b"] = round(rps / b["wrk"]["rps"], 3) \
            if b and row["setup_key"] not in ("a", "b") else None
        row["added_p50_ms"] = round(p50 - a["wrk"]["p50_ms"], 3) \
            if a and row["setup_key"] != "a" else None


def _rps(row: dict[str, Any]) -> str:
    rounds = row.get("rps_rounds") or []
    if len(rounds) < 2:
        return _fmt(row["wrk"]["rps"], 0)
    return f"{row['wrk']['rps']:.0f} ({min(rounds):.0f}-{max(rounds):.0f})"


def _cpu_cell(row: dict[str, Any], role: str) -> str:
    value = cpu_us(row, role)
    rounds = [per.get(role) for per in row.get("cpu_us_rounds") or []]
    rounds = [v for v in rounds if v is not None]
    if value is None:
        return "-"
    if role != "processor" or len(rounds) < 2:
        return f"{value:.0f}"
    return f"{value:.0f} ({min(rounds):.0f}-{max(rounds):.0f})"


def table(rows: list[dict[str, Any]]) -> str:
    head = ["setup", "workload", "c", "req/s", "p50 ms", "p90 ms", "p99 ms", "TTFB p50",
            "TTFB p99", "x(a)", "x(b)", "+p50 ms", "CPU us/req P", "CPU us/req E", "cpu x(b)",
            "CPU% E/P/M/wrk/other", "probe ms"]
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        w, t, cpu = r["wrk"], r.get("ttfb") or {}, r["cpu"]
        cpu_text = "/".join(_fmt(cpu.get(k), 0) for k in ("envoy", "processor", "mock", "wrk",
                                                          "other"))
        cells = [f"({r['setup_key']}) {r['setup']}", r["workload"], str(r["concurrency"]),
                 _rps(r), _fmt(w["p50_ms"]), _fmt(w["p90_ms"]), _fmt(w["p99_ms"]),
                 _fmt(t.get("p50_ms")), _fmt(t.get("p99_ms")), _fmt(r["ratio_a"]),
                 _fmt(r["ratio_b"]), _fmt(r["added_p50_ms"]), _cpu_cell(r, "processor"),
                 _cpu_cell(r, "envoy"), _fmt(r.get("cpu_ratio_b")), cpu_text,
                 _fmt(r.get("speed_probe_ms"), 0)]
        out.append("| " + " | ".join(cells) + " |")
    return "\n".join(out)


def _verdict(ok: bool) -> str:
    return "meets" if ok else "MISSES"


def judged_notes(rows: list[dict[str, Any]]) -> list[str]:
    """Issue #10's targets for (h), the reference config with every policy, against (b)."""
    out: list[str] = []
    for workload, limit in CPU_TARGETS.items():
        h = next((r for r in rows if r["setup_key"] == "h" and r["workload"] == workload
                  and r["concurrency"] == 32), None)
        b = _find(rows, "b", h) if h else None
        ratio = cpu_ratio(h, b) if h else None
        if h is None or b is None or ratio is None:
            continue
        out.append(f"target: (h) processor CPU per request, {workload} c=32: {cpu_us(h):.0f} "
                   f"us against (b)'s {cpu_us(b):.0f} us = {ratio:.2f}x, "
                   f"{_verdict(ratio <= limit)} the {limit}x target")
    for r in rows:
        b = _find(rows, "b", r)
        if r["setup_key"] != "h" or b is None:
            continue
        if r["concurrency"] == 1:
            added = r["wrk"]["p50_ms"] - b["wrk"]["p50_ms"]
            out.append(f"target: (h) {r['workload']} c=1 adds {added:+.2f} ms of p50 over (b), "
                       f"{_verdict(added <= ADDED_P50_MS)} the +{ADDED_P50_MS:g} ms target")
        if r["workload"] == "streamed-paced" and r.get("ttfb") and b.get("ttfb"):
            added = r["ttfb"]["p50_ms"] - b["ttfb"]["p50_ms"]
            if r["concurrency"] == 1:
                out.append(f"target: (h) streamed-paced c=1 TTFB p50 {added:+.2f} ms over "
                           f"(b), {_verdict(added <= ADDED_TTFB_MS)} the "
                           f"+{ADDED_TTFB_MS:g} ms target")
            else:   # at c=32 a first byte waits behind 31 other streams: throughput, not latency
                out.append(f"(h) streamed-paced c={r['concurrency']} TTFB p50 {added:+.2f} ms "
                           "over (b) (not judged: at this concurrency it measures queueing)")
    return out


def peer_notes(rows: list[dict[str, Any]]) -> list[str]:
    """(h2) against (h): scaling over workers; (h) against LiteLLM (l)."""
    out: list[str] = []
    for r in rows:
        h = _find(rows, "h", r)
        if r["setup_key"] == "h2" and h is not None:
            spread = r.get("worker_streams")
            split = f"; streams per worker {spread}" if spread else ""
            out.append(f"workers: (h2) {r['workload']} c={r['concurrency']} on 2 workers "
                       f"{r['wrk']['rps']:.0f} req/s = {r['wrk']['rps'] / h['wrk']['rps']:.2f}x "
                       f"of (h) on 1 ({h['wrk']['rps']:.0f}); processor CPU per request "
                       f"{_fmt(cpu_us(r), 0)} against {_fmt(cpu_us(h), 0)} us{split}")
        if r["setup_key"] == "l" and h is not None and r["wrk"]["rps"]:
            out.append(f"peer: (h) {r['workload']} c={r['concurrency']} does "
                       f"{h['wrk']['rps'] / r['wrk']['rps']:.1f}x LiteLLM's throughput "
                       f"({h['wrk']['rps']:.0f} against {r['wrk']['rps']:.0f} req/s); CPU per "
                       f"request: ours {_fmt(cpu_us(h), 0)} us (+ Envoy "
                       f"{_fmt(cpu_us(h, 'envoy'), 0)}), LiteLLM {_fmt(cpu_us(r), 0)} us")
    return out


def notes(rows: list[dict[str, Any]], raw: list[dict[str, Any]] | None = None,
          skipped: dict[str, str] | None = None) -> list[str]:
    """Skipped setups, errors, likely bottlenecks, machine speed drift, and the targets."""
    out: list[str] = [f"({key}) skipped: {why}" for key, why in (skipped or {}).items()]
    speeds = [r["speed_probe_ms"] for r in raw or rows if r.get("speed_probe_ms")]
    if speeds and max(speeds) > 1.1 * min(speeds):
        out.append(f"the machine's speed drifted during the run: the fixed CPU probe took "
                   f"{min(speeds):.0f}-{max(speeds):.0f} ms across rows "
                   f"({100 * (max(speeds) / min(speeds) - 1):.0f}% slower at worst)")
    for r in rows:
        name = f"({r['setup_key']}) {r['workload']} c={r['concurrency']}"
        if not r["wrk"]["requests"]:
            out.append(f"{name}: no request completed within the row (a slower setup needs "
                       "longer rows: --duration)")
        errs = {k: v for k, v in r["wrk"]["errors"].items() if v}
        if errs or (r.get("ttfb") or {}).get("errors"):
            out.append(f"{name}: errors {errs} ttfb errors {(r.get('ttfb') or {}).get('errors')}")
        other = r["cpu"].get("other", 0.0)
        if other >= FOREIGN:
            out.append(f"{name}: {other:.0f}% of a core went to other work on the machine "
                       "(kernel networking or foreign load): treat this row with care")
        mock = r["cpu"].get("mock", 0.0)
        if r["concurrency"] > 1 and mock >= MOCK_BOUND:
            out.append(f"{name}: the mock is the bottleneck (it uses {mock:.0f}% of a core)")
    for r in rows:
        if r["setup_key"] == "c" and r["workload"].startswith("streamed") \
                and r["ratio_b"] is not None:
            verdict = "meets" if r["ratio_b"] >= TARGET else "MISSES"
            floor = _find(rows, "r", r)
            beside = "" if floor is None else (
                f" ((r), the noop doing only the usage rewrite, is "
                f"{floor['ratio_b']:.2f}x of (b); (c) is "
                f"{r['wrk']['rps'] / floor['wrk']['rps']:.2f}x of (r))")
            out.append(f"target: (c) {r['workload']} c={r['concurrency']} is "
                       f"{r['ratio_b']:.2f}x of (b), {verdict} the {TARGET}x target{beside}")
    for r in rows:
        c = _find(rows, "c", r)
        if r["setup_key"] != "d" or c is None or r["added_p50_ms"] is None:
            continue
        base, with_auth = c["added_p50_ms"], r["added_p50_ms"]
        if base and base > 0:
            more = with_auth / base - 1
            verdict = "meets" if more <= AUTH_TARGET else "MISSES"
            out.append(f"auth: (d) {r['workload']} c={r['concurrency']} adds {with_auth:.3f} ms "
                       f"at p50 over (a), (c) adds {base:.3f} ms: {100 * more:+.1f}%, "
                       f"{verdict} the +{100 * AUTH_TARGET:.0f}% target")
    for r in rows:
        c = _find(rows, "c", r)
        if r["setup_key"] not in ("e", "f", "g") or c is None:
            continue
        ratio = r["wrk"]["rps"] / c["wrk"]["rps"]
        what = {"e": "in-memory limits", "f": "Redis limits", "g": "guards"}[r["setup_key"]]
        target = f", {'meets' if ratio >= LIMITS_TARGET else 'MISSES'} the " \
            f"{LIMITS_TARGET}x target" if r["setup_key"] == "e" else ""
        added = ""
        if r["setup_key"] == "g" and r.get("ttfb") and c.get("ttfb"):
            added = f", TTFB p50 {r['ttfb']['p50_ms'] - c['ttfb']['p50_ms']:+.2f} ms"
        out.append(f"({r['setup_key']}) {what} {r['workload']} c={r['concurrency']} "
                   f"is {ratio:.2f}x of (c)'s throughput{target}{added}")
    return out + judged_notes(rows) + paired_notes(raw or []) + peer_notes(rows)


def paired_notes(raw: list[dict[str, Any]]) -> list[str]:
    """(h)/(b) processor CPU per request within each round at c=32 (the judged column divides
    medians taken over the rounds separately, so its (h) and (b) may come from different
    rounds): the median of the rounds' ratios and their range."""
    out: list[str] = []
    for workload in CPU_TARGETS:
        ratios = []
        for h in raw:
            if h["setup_key"] != "h" or h["workload"] != workload or h["concurrency"] != 32:
                continue
            b = next((r for r in raw if r["setup_key"] == "b" and r["workload"] == workload
                      and r["concurrency"] == 32 and r.get("round") == h.get("round")), None)
            ratio = cpu_ratio(h, b)
            if ratio is not None:
                ratios.append(ratio)
        if len(ratios) > 1:
            out.append(f"(h)/(b) processor CPU per request, {workload} c=32, round by round: "
                       f"median {_median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}x)")
    return out


def _stats_section(stats: dict[str, list[dict[str, Any]]]) -> list[str]:
    out = ["## ext_proc traffic per setup (first round, warm-ups and probes included)", ""]
    for name, per_round in stats.items():
        s = per_round[0]
        envoy = {k.rsplit(".", 1)[-1]: v for k, v in s.get("envoy", {}).items()}
        line = f"- {name}: Envoy ext_proc counters {json.dumps(envoy, sort_keys=True)}"
        if envoy.get("streams_started"):
            per = envoy.get("stream_msgs_sent", 0) / envoy["streams_started"]
            line += f" ({per:.1f} messages per stream to the processor"
            by_workload = [f"{workload} {c.get('stream_msgs_sent', 0) / c['streams_started']:.1f}"
                           for workload, c in (s.get("workloads") or {}).items()
                           if c.get("streams_started")]
            if by_workload:
                line += "; by workload: " + ", ".join(by_workload)
            line += ")"
        proc = s.get("processor") or {}
        if proc.get("messages"):
            line += f"; server messages {json.dumps(proc['messages'], sort_keys=True)}"
        out.append(line)
    return [*out, ""]


def markdown(meta: dict[str, Any], rows: list[dict[str, Any]], raw: list[dict[str, Any]],
             stats: dict[str, Any], image: str | None = None) -> str:
    """RESULTS.md; `image` is the latency plot's path relative to it, linked when given."""
    lines = ["# Gateway overhead bench", "",
             f"- Date: {meta['date']}",
             f"- CPU: {meta['cpu_model']}, {meta['cores']} cores",
             f"- Envoy: {meta['envoy_version']} (`--concurrency 1` in every setup)",
             *([f"- LiteLLM: {meta['litellm']} (setup (l))"] if meta.get("litellm") else []),
             f"- Python: {meta['python']}",
             f"- Command: `{meta['command']}`",
             f"- Rows: {meta['duration_s']} s of wrk after a {meta['warmup_s']} s warm-up; "
             f"TTFB over {meta['ttfb_requests']}",
             f"- Rounds: {meta['rounds']}" + (
                 " (each row is its median-throughput round; req/s shows the range over "
                 "rounds in brackets)" if meta["rounds"] > 1 else ""),
             *([f"- Order: {ORDERS[meta['order']]}"] if meta.get("order") in ORDERS else []),
             "", "## How to read this", "", HOW_TO_READ, "", "## Results", "", table(rows), ""]
    found = notes(rows, raw, meta.get("skipped"))
    if found:
        lines += ["## Notes", "", *(f"- {n}" for n in found), ""]
    if image:
        lines += ["## Latency distribution", "", LATENCY_PLOT, "", f"![latency]({image})", ""]
    if meta.get("guards_micro"):
        import guards_micro
        lines += guards_micro.markdown(meta["guards_micro"])
    lines += _stats_section(stats)
    return "\n".join(lines)


def write(meta: dict[str, Any], rows: list[dict[str, Any]], raw: list[dict[str, Any]],
          stats: dict[str, Any], json_path: Path, md_paths: list[Path],
          image: str | None = None) -> None:
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps({"meta": meta, "rows": rows, "all_rounds": raw,
                                     "stats": stats}, indent=2))
    text = markdown(meta, rows, raw, stats, image)
    for path in md_paths:
        path.write_text(text)
