"""Load generators: wrk (throughput and latency) and a small asyncio client (time to first byte).

Both send the same request: POST /openai/v1/chat/completions with a tiny chat body, over
keep-alive HTTP/1.1 connections, one connection per unit of concurrency. Every request
carries the same bearer token (minted once with the local stack's development key) and
client id, so the bytes on the wire are identical in every setup; only setup (d) checks the
token and only (e) and (f) count the client's requests and tokens. A setup that is not
Envoy (LiteLLM, setup (l)) gets the same bodies on its own path, with its own credential
(`for_setup`).
"""

from __future__ import annotations

import asyncio
import json
import os
import resource
import shutil
import subprocess
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from extproc.auth.devtoken import mint

PATH = "/openai/v1/chat/completions"
STREAM_REPLY = (
    "The gateway forwards this fixed reply one word at a time so that every streamed "
    "response carries about forty server sent events, which is enough to make the cost "
    "of each body chunk visible next to the cost of the request and response headers."
)


@dataclass(frozen=True)
class Workload:
    name: str
    stream: bool
    headers: dict[str, str] = field(default_factory=dict)

    def with_headers(self, headers: dict[str, str]) -> Workload:
        """The same workload with `headers` replacing its own of the same names."""
        return replace(self, headers={**self.headers, **headers}) if headers else self

    @property
    def body(self) -> bytes:
        return json.dumps({"model": "gpt-4o-mini", "stream": self.stream,
                           "messages": [{"role": "user", "content": "hi"}]},
                          separators=(",", ":")).encode()


COMMON = {"authorization": f"Bearer {mint('bench-client', ttl_s=2 * 86400)}",
          "x-bench-client": "bench"}   # the rate-limit key of setups (e) and (f)
#: the paced stream's gap between events: far shorter than a real provider's (tens of ms
#: per token) so the rows stay CPU-bound, long enough that each event is its own chunk
PACED_DELAY_MS = 1
WORKLOADS = (
    Workload("non-streamed", False, COMMON),
    # the mock writes all 43 events at once: Envoy hands the processor one or two chunks
    Workload("streamed", True, {**COMMON, "x-mock-reply": STREAM_REPLY}),
    # the same stream with the events 1 ms apart, as providers stream tokens over time: one
    # ext_proc message per event; the usage chunk and [DONE] follow the finish chunk at once
    Workload("streamed-paced", True, {**COMMON, "x-mock-reply": STREAM_REPLY,
                                      "x-mock-delay-ms": str(PACED_DELAY_MS)}),
)


# --- wrk ------------------------------------------------------------------------------------
@dataclass
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    errors: dict[str, int]
    cpu_percent: float  # wrk's own CPU, % of one core
    #: the whole latency distribution: [[percentile, ms], ...] at PERCENTILES, from
    #: [0, min] to [100, max]; empty when wrk completed no request
    percentiles: list[list[float]] = field(default_factory=list)


#: the points of the latency distribution wrk reports per row, besides 0 (min) and 100 (max)
PERCENTILES = (1, 5, 10, 20, 25, 30, 40, 50, 60, 70, 75, 80, 90, 95, 97.5, 99, 99.5, 99.9,
               99.95, 99.99, 99.995, 99.999)

# wrk's latency:percentile(100) is 0 (its rank runs past the count), hence latency.max.
_LUA_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH_RESULT %d %d %d %d %d %d %d %.1f %.1f %.1f %.1f\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean))
  local points = {string.format("0=%.1f", latency.min)}
  for _, p in ipairs({@PERCENTILES@}) do
    points[#points + 1] = string.format("%g=%.1f", p, latency:percentile(p))
  end
  points[#points + 1] = string.format("100=%.1f", latency.max)
  io.write("BENCH_PERCENTILES " .. table.concat(points, " ") .. "\\n")
end
""".replace("@PERCENTILES@", ", ".join(f"{p:g}" for p in PERCENTILES))


def _lua_string(text: str) -> str:
    if "]==]" in text:
        raise ValueError("text cannot be quoted as a Lua long string")
    return f"[==[{text}]==]"


#: wrk's `delay()` hook as a pacer: the requests of all connections start on one schedule,
#: one every 1/rate s (a monotonic clock through LuaJIT's ffi: wrk runs LuaJIT). A connection
#: that finished its request waits for the next free start; when the server falls behind,
#: starts already past go at once, so the schedule catches up and the offered rate holds
#: while the connections suffice. wrk measures each latency from the request's own start.
_LUA_PACER = """
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local bench_ts = ffi.new("bench_timespec")
local function bench_now_ms()
  ffi.C.clock_gettime(1, bench_ts)   -- CLOCK_MONOTONIC
  return tonumber(bench_ts.tv_sec) * 1000 + tonumber(bench_ts.tv_nsec) / 1e6
end
local bench_interval_ms = @INTERVAL_MS@
local bench_next_ms = nil
delay = function()
  local now = bench_now_ms()
  if bench_next_ms == nil then bench_next_ms = now end
  local wait = bench_next_ms - now
  bench_next_ms = bench_next_ms + bench_interval_ms
  if wait < 0 then return 0 end
  return wait
end
"""


def pacer_lua(rate: float) -> str:
    """The Lua that makes wrk start `rate` requests per second over all its connections
    (run wrk with one thread: each thread keeps its own schedule)."""
    if not rate > 0:
        raise ValueError(f"a request rate must be positive, not {rate!r}")
    return _LUA_PACER.replace("@INTERVAL_MS@", repr(1000.0 / rate))


def wrk_script(wl: Workload, directory: Path, tag: str = "", rate: float | None = None
               ) -> Path:
    """Write the wrk Lua script for a workload (method, body, headers, result lines);
    `tag` goes into the file name (a setup sending other headers); with `rate`, wrk offers
    that many requests per second (`pacer_lua`) instead of one after another."""
    lines = ['wrk.method = "POST"', f"wrk.body = {_lua_string(wl.body.decode())}",
             'wrk.headers["Content-Type"] = "application/json"']
    lines += [f'wrk.headers["{k}"] = {_lua_string(v)}' for k, v in wl.headers.items()]
    directory.mkdir(parents=True, exist_ok=True)
    paced = "" if rate is None else f"-{rate:g}rps"
    path = directory / f"wrk-{tag + '-' if tag else ''}{wl.name}{paced}.lua"
    pacer = "" if rate is None else pacer_lua(rate)
    path.write_text("\n".join(lines) + "\n" + pacer + _LUA_DONE)
    return path


def run_wrk(url: str, script: Path, connections: int, seconds: float,
            path: str = PATH) -> WrkResult:
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency",
            "--timeout", "10s", "-s", str(script), url + path]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60,
                          check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    out = proc.stdout.splitlines()
    line = next((ln for ln in out if ln.startswith("BENCH_RESULT ")), None)
    dist = next((ln for ln in out if ln.startswith("BENCH_PERCENTILES ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr or proc.stdout}")
    v = line.split()[1:]
    requests, duration_us = int(v[0]), int(v[1])
    errors = dict(zip(("connect", "read", "write", "status", "timeout"),
                      (int(x) for x in v[2:7]), strict=True))
    secs = duration_us / 1e6
    return WrkResult(requests, round(secs, 3), round(requests / secs, 1),
                     float(v[7]) / 1000, float(v[8]) / 1000, float(v[9]) / 1000,
                     round(float(v[10]) / 1000, 3), errors, round(100 * cpu_s / secs, 1),
                     parse_percentiles(dist) if dist and requests else [])


def parse_percentiles(line: str) -> list[list[float]]:
    """`BENCH_PERCENTILES 0=us 1=us ... 100=us` -> [[0.0, ms], [1.0, ms], ..., [100.0, ms]]."""
    points = []
    for item in line.split()[1:]:
        pct, _, micros = item.partition("=")
        points.append([float(pct), round(float(micros) / 1000, 3)])
    return sorted(points)


def ensure_wrk() -> str:
    """The wrk binary; installs the Debian package when running as root."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise SystemExit("wrk is not installed: run `sudo apt-get install -y wrk` and retry")
    print("wrk not found: apt-get install -y wrk", flush=True)
    install = ["apt-get", "install", "-y", "wrk"]
    if subprocess.run(install, check=False).returncode != 0:
        subprocess.run(["apt-get", "update"], check=False)
        subprocess.run(install, check=True)
    found = shutil.which("wrk")
    if not found:
        raise SystemExit("apt-get install wrk finished but wrk is still not on PATH")
    return found


# --- time to first byte ---------------------------------------------------------------------
@dataclass
class Response:
    status: int
    ttfb: float  # seconds to the first byte of the body
    total: float
    body: bytes


def _request_bytes(wl: Workload, host: str, port: int, path: str = PATH) -> bytes:
    body = wl.body
    head = [f"POST {path} HTTP/1.1", f"Host: {host}:{port}", "Content-Type: application/json",
            f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in wl.headers.items())]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    request: bytes, keep_body: bool = False) -> tuple[Response, bool]:
    """One request on an open connection; returns the response and whether to reconnect."""
    t0 = time.perf_counter()
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in
               (ln.partition(":") for ln in lines[1:] if ln)}
    parts: list[bytes] = []
    if headers.get("transfer-encoding", "").lower() == "chunked":
        ttfb = None
        while True:
            size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
            if ttfb is None:
                ttfb = time.perf_counter() - t0
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b""):
                    pass
                break
            data = await reader.readexactly(size + 2)
            if keep_body:
                parts.append(data[:-2])
    else:
        data = await reader.readexactly(int(headers.get("content-length", "0")))
        ttfb = time.perf_counter() - t0
        parts.append(data)
    total = time.perf_counter() - t0
    close = headers.get("connection", "").lower() == "close"
    return Response(status, ttfb, total, b"".join(parts)), close


async def probe(host: str, port: int, wl: Workload, path: str = PATH) -> Response:
    """One request with the body kept, to check a setup answers the workload correctly."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        async with asyncio.timeout(30):
            resp, _ = await _exchange(reader, writer, _request_bytes(wl, host, port, path),
                                      True)
        return resp
    finally:
        writer.close()


@dataclass
class TtfbResult:
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile of values (not empty)."""
    ordered = sorted(values)
    rank = max(1, round(pct / 100 * len(ordered) + 0.4999))
    return ordered[min(rank, len(ordered)) - 1]


async def measure_ttfb(host: str, port: int, wl: Workload, concurrency: int, n: int,
                       warmup_per_conn: int = 3, path: str = PATH,
                       max_seconds: float | None = None) -> TtfbResult:
    """n requests over `concurrency` keep-alive connections, after a short warm-up on each;
    no new request starts `max_seconds` after the warm-up (a slow peer's rows end in time)."""
    request = _request_bytes(wl, host, port, path)
    deadline = float("inf")
    remaining = n
    ttfbs: list[float] = []
    errors = 0
    barrier = asyncio.Barrier(concurrency)

    async def worker() -> None:
        nonlocal remaining, errors, deadline
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for _ in range(warmup_per_conn):
                await _exchange(reader, writer, request)
            if await barrier.wait() == 0 and max_seconds is not None:
                deadline = time.monotonic() + max_seconds
            while remaining > 0 and time.monotonic() < deadline:
                remaining -= 1
                async with asyncio.timeout(30):
                    resp, close = await _exchange(reader, writer, request)
                if resp.status == 200:
                    ttfbs.append(resp.ttfb)
                else:
                    errors += 1
                if close:
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    if not ttfbs:
        return TtfbResult(0, errors, float("nan"), float("nan"))
    return TtfbResult(len(ttfbs), errors, round(percentile(ttfbs, 50) * 1000, 3),
                      round(percentile(ttfbs, 99) * 1000, 3))
