"""bench/fixed_rate.py and load.py's pacer: rates parsed, rows compared, wrk paced."""

from __future__ import annotations

import http.server
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))
import fixed_rate  # noqa: E402
import load  # noqa: E402


def test_rates_parse_in_workload_order() -> None:
    assert fixed_rate.parse_rates("streamed-paced=100, non-streamed=400") == {
        "non-streamed": 400.0, "streamed-paced": 100.0}
    assert list(fixed_rate.parse_rates(fixed_rate.DEFAULT_RATES)) == [
        "non-streamed", "streamed", "streamed-paced"]


@pytest.mark.parametrize("text", ["non-streamed", "non-streamed=0", "non-streamed=-5",
                                  "non-streamed=fast", "nope=10", "", " , "])
def test_bad_rates_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        fixed_rate.parse_rates(text)


def test_options_refuse_setups_without_a_processor() -> None:
    assert fixed_rate._options(["--setups", "b,h"]).keys == ["b", "h"]
    for bad in ("a,h", "l", "b,zz"):
        with pytest.raises(SystemExit):
            fixed_rate._options(["--setups", bad])


def _sample(cpu: float, rps: float, rate: float = 100.0, p50: float = 1.0) -> dict[str, float]:
    return {"rate": rate, "rps": rps, "cpu_us": cpu, "envoy_us": 50.0, "p50_ms": p50,
            "p99_ms": 2 * p50, "errors": 0.0}


def test_medians_keep_the_rounds_and_flag_a_setup_that_fell_behind() -> None:
    kept = fixed_rate.medians([{"non-streamed": _sample(c, 100.0)} for c in (900, 1000, 1200)])
    assert kept["non-streamed"]["cpu_us"] == 1000
    assert kept["non-streamed"]["cpu_rounds"] == [900, 1000, 1200]
    assert kept["non-streamed"]["kept_up"] is True
    behind = fixed_rate.medians([{"non-streamed": _sample(1000, 100.0)},
                                 {"non-streamed": _sample(1000, 90.0)}])
    assert behind["non-streamed"]["kept_up"] is False


def test_rows_compare_ours_to_the_do_nothing_processor() -> None:
    result = {"b": fixed_rate.medians([{"non-streamed": _sample(1000, 400, 400, 1.5)}]),
              "h": fixed_rate.medians([{"non-streamed": _sample(1500, 400, 400, 2.25)}])}
    [row] = fixed_rate.rows(result)
    assert row["cpu_ratio"] == pytest.approx(1.5)
    assert row["p50_added_ms"] == pytest.approx(0.75)
    assert row["target"] == 1.5 and row["kept_up"]
    text = fixed_rate.markdown(result, {"date": "d", "command": "c", "probe_ms": 1.0,
                                        "concurrency": 32, "rounds": 1})
    assert "| non-streamed | 400/s | 1.50x | 1.5x | +0.75 ms |" in text
    result["h"]["non-streamed"]["kept_up"] = False
    assert "1.50x (saturated)" in fixed_rate.markdown(
        result, {"date": "d", "command": "c", "probe_ms": 1.0, "concurrency": 32, "rounds": 1})


def test_pacer_sets_the_interval_and_refuses_a_rate_of_nothing(tmp_path: Path) -> None:
    assert "local bench_interval_ms = 2.5\n" in load.pacer_lua(400)
    for bad in (0, -1, float("nan")):
        with pytest.raises(ValueError):
            load.pacer_lua(bad)
    wl = load.WORKLOADS[0]
    paced = load.wrk_script(wl, tmp_path, rate=400).read_text()
    plain = load.wrk_script(wl, tmp_path).read_text()
    assert "delay = function()" in paced and "delay" not in plain
    assert paced.count("BENCH_RESULT") == plain.count("BENCH_RESULT") == 1


class _Ok(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.send_response(200)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (make bench "
                    "installs it)")
def test_wrk_with_the_pacer_offers_the_rate_not_as_many_as_it_can(tmp_path: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/x"
        script = load.wrk_script(load.WORKLOADS[0], tmp_path, rate=20)
        out = subprocess.run(["wrk", "-t1", "-c4", "-d2s", "-s", str(script), url],
                             capture_output=True, text=True, timeout=60, check=True).stdout
        done = int(re.search(r"BENCH_RESULT (\d+)", out)[1])  # type: ignore[index]
    finally:
        server.shutdown()
    # 2 s at 20/s: about 40 starts (a local server answers hundreds a second unpaced)
    assert 20 <= done <= 60, out
