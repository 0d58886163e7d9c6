"""bench/report.py and bench/setups.py: CPU per request columns, issue #10's targets, (h)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
import litellm_guard  # noqa: E402
import report  # noqa: E402
import setups  # noqa: E402


def _row(key: str, workload: str, c: int, rps: float, p50: float, proc_us: float | None,
         envoy_us: float = 500.0, ttfb: float | None = None, rnd: int = 1) -> dict[str, Any]:
    return {"setup_key": key, "setup": setups.SETUPS[key], "workload": workload,
            "concurrency": c, "round": rnd,
            "wrk": {"rps": rps, "requests": int(rps * 10), "p50_ms": p50, "p90_ms": p50,
                    "p99_ms": p50, "errors": {}},
            "ttfb": {"p50_ms": ttfb, "p99_ms": ttfb, "errors": 0} if ttfb else None,
            "cpu": {"envoy": 50.0, "processor": 80.0},
            "cpu_us_per_req": {"processor": proc_us, "envoy": envoy_us}}


def test_cpu_ratio_to_b_and_the_table_columns() -> None:
    rows = [_row("b", "non-streamed", 32, 1000, 10, 600.0),
            _row("h", "non-streamed", 32, 600, 20, 840.0),
            _row("a", "non-streamed", 32, 3000, 5, None)]
    merged = report.merge_rounds(rows)
    report.add_comparisons(merged)
    h = next(r for r in merged if r["setup_key"] == "h")
    assert h["cpu_ratio_b"] == 1.4
    assert next(r for r in merged if r["setup_key"] == "b")["cpu_ratio_b"] is None
    text = report.table(merged)
    assert "| CPU us/req P | CPU us/req E | cpu x(b) |" in text
    assert "| 840 | 500 | 1.40 |" in text
    assert "| 600 | 500 | - |" in text           # (b) itself
    assert "| - | 500 | - |" in text             # (a) has no processor


def test_rounds_keep_the_median_cpu_per_request() -> None:
    rows = [_row("h", "non-streamed", 32, rps, 20, us, rnd=i)
            for i, (rps, us) in enumerate([(600, 900.0), (650, 700.0), (500, 800.0)], 1)]
    merged = report.merge_rounds(rows)
    assert merged[0]["cpu_us_per_req"]["processor"] == 800.0
    assert merged[0]["wrk"]["rps"] == 600          # the median-req/s round, as before
    assert "| 800 (700-900) |" in report.table([{**merged[0], "ratio_a": None,
                                                 "ratio_b": None, "added_p50_ms": None}])


def test_the_judged_targets_are_in_the_notes() -> None:
    rows = [_row("b", "non-streamed", 32, 1000, 10, 600.0),
            _row("h", "non-streamed", 32, 600, 20, 960.0),          # 1.6x: misses 1.5x
            _row("b", "streamed", 32, 1000, 10, 800.0),
            _row("h", "streamed", 32, 600, 20, 1600.0),             # 2.0x: meets 2x
            _row("b", "streamed-paced", 32, 400, 90, 5400.0, ttfb=9.0),
            _row("h", "streamed-paced", 32, 380, 95, 8100.0, ttfb=9.5),   # 1.5x: meets
            _row("b", "non-streamed", 1, 500, 2.0, 600.0),
            _row("h", "non-streamed", 1, 400, 3.5, 900.0),          # +1.5 ms: misses
            _row("b", "streamed-paced", 1, 17, 60.0, 5000.0, ttfb=3.0),
            _row("h", "streamed-paced", 1, 17, 60.4, 7000.0, ttfb=3.8)]
    merged = report.merge_rounds(rows)
    report.add_comparisons(merged)
    found = "\n".join(report.notes(merged))
    assert ("(h) processor CPU per request, non-streamed c=32: 960 us against (b)'s 600 us "
            "= 1.60x, MISSES the 1.5x target") in found
    assert "streamed c=32: 1600 us against (b)'s 800 us = 2.00x, meets the 2.0x" in found
    assert "streamed-paced c=32: 8100 us against (b)'s 5400 us = 1.50x, meets the 1.5x" in found
    assert "(h) non-streamed c=1 adds +1.50 ms of p50 over (b), MISSES the +1 ms" in found
    assert "(h) streamed-paced c=1 adds +0.40 ms of p50 over (b), meets the +1 ms" in found
    assert "(h) streamed-paced c=1 TTFB p50 +0.80 ms over (b), meets the +1 ms" in found
    assert "(h) streamed-paced c=32 TTFB p50 +0.50 ms over (b) (not judged" in found


def test_peer_and_worker_notes_and_skips() -> None:
    rows = [_row("h", "non-streamed", 32, 600, 20, 900.0),
            _row("h2", "non-streamed", 32, 900, 15, 1000.0),
            _row("l", "non-streamed", 32, 40, 800, 45000.0, envoy_us=0)]
    rows[1]["worker_streams"] = [1200, 1150]
    merged = report.merge_rounds(rows)
    report.add_comparisons(merged)
    found = "\n".join(report.notes(merged, skipped={"l": "pip install failed: no network"}))
    assert found.startswith("(l) skipped: pip install failed: no network")
    assert "(h2) non-streamed c=32 on 2 workers 900 req/s = 1.50x of (h) on 1 (600)" in found
    assert "streams per worker [1200, 1150]" in found
    assert "(h) non-streamed c=32 does 15.0x LiteLLM's throughput (600 against 40 req/s)" in found
    assert "no request completed" not in found
    stalled = _row("l", "streamed", 32, 0, 0, None)
    assert "(l) streamed c=32: no request completed within the row" in "\n".join(
        report.notes([stalled]))


def test_setup_h_is_the_reference_config_with_its_limits_out_of_reach(tmp_path: Path) -> None:
    from extproc import loader
    doc = yaml.safe_load((ROOT / "config" / "gateway.yaml").read_text())
    path = setups.processor_config("h", tmp_path)
    out = yaml.safe_load(path.read_text())
    assert out["auth"]["jwt_providers"].keys() == doc["auth"]["jwt_providers"].keys()
    assert out["guards"] == doc["guards"] and out["limits"]["backend"] == "memory"
    for mine, ref in zip(out["routes"], doc["routes"], strict=True):
        assert mine["auth"] == ref["auth"] and mine["guards"] == ref["guards"]
        holders = list(mine["backends"].values()) if "backends" in mine else [mine]
        assert all(Path(h["upstream_credential"]["file"]).is_file() for h in holders)
        for limit, ref_limit in zip(mine["rate_limits"], ref["rate_limits"], strict=True):
            assert limit["key"] == ref_limit["key"] == ["subject"]   # per subject, as shipped
            assert [w["per"] for w in limit["requests"]] == [
                w["per"] for w in ref_limit["requests"]]
            assert all(w["limit"] >= 10**9 for w in limit["requests"] + limit["tokens"])
    cfg = loader.load(path)                  # a valid config for the server
    assert set(cfg.routes) == {r["name"] for r in doc["routes"]}


def test_only_h2_skips_rows_and_gets_more_connections() -> None:
    run = setups.Running("h2", setups.SETUPS["h2"], 1, 2)
    assert run.wants("non-streamed", 32) and run.wants("streamed-paced", 32)
    assert not run.wants("non-streamed", 1) and not run.wants("streamed", 32)
    assert setups.Running("h", "x", 1, 2).wants("streamed", 1)
    doc = setups.envoy_config_for("h2", 10000, 10001, 10002, 10003)
    cluster = next(c for c in doc["static_resources"]["clusters"] if c["name"] == "extproc")
    opts = cluster["typed_extension_protocol_options"][
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
    assert opts["explicit_http_config"]["http2_protocol_options"][
        "max_concurrent_streams"] == setups.H2_STREAMS_PER_CONNECTION


def test_the_litellm_guardrail_masks_what_our_pii_guard_masks() -> None:
    text = ("mail bob.smith@example.co.uk or call +1 (555) 123-4567; card 4111 1111 1111 1111, "
            "ssn 123-45-6789, iban GB82 WEST 1234 5698 7654 32")
    assert litellm_guard.mask(text) == ("mail <EMAIL> or call <PHONE>; card <CARD>, "
                                        "ssn <SSN>, iban <IBAN>")
    # checksums: a number failing Luhn or mod 97 is left alone
    assert litellm_guard.mask("order 4111 1111 1111 1112") == "order 4111 1111 1111 1112"
    assert litellm_guard.mask("GB82 WEST 1234 5698 7654 33") == "GB82 WEST 1234 5698 7654 33"
    assert litellm_guard.mask("hello world") == "hello world"


def test_results_say_in_which_order_the_setups_ran() -> None:
    meta = {"date": "d", "cpu_model": "m", "cores": 2, "envoy_version": "1.40", "python": "3",
            "command": "c", "duration_s": 10, "warmup_s": 2, "ttfb_requests": "200",
            "rounds": 3}
    rows = report.merge_rounds([_row("b", "non-streamed", 32, 1000, 10, 600.0)])
    report.add_comparisons(rows)
    for order, words in (("interleaved", "each row measured on one after the other"),
                         ("sequential", "one setup after another")):
        text = report.markdown({**meta, "order": order}, rows, rows, {})
        assert f"- Order: {report.ORDERS[order]}" in text and words in text
    assert "- Order:" not in report.markdown(meta, rows, rows, {})   # (older results.json)


def test_the_notes_give_the_ratio_round_by_round() -> None:
    raw = [_row("b", "non-streamed", 32, 1000, 10, 400.0, rnd=1),
           _row("h", "non-streamed", 32, 600, 20, 1000.0, rnd=1),
           _row("b", "non-streamed", 32, 1000, 10, 600.0, rnd=2),
           _row("h", "non-streamed", 32, 600, 20, 1200.0, rnd=2),
           _row("b", "non-streamed", 32, 1000, 10, 500.0, rnd=3),
           _row("h", "non-streamed", 32, 600, 20, 1100.0, rnd=3)]
    (line,) = report.paired_notes(raw)
    # 2.5, 2.0 and 2.2 within the rounds; the medians taken apart would give 1100/500 = 2.2
    assert line.endswith("round by round: median 2.20x (2.00-2.50x)")
