"""Operations through the real Envoy: Prometheus counts, token sums and histogram counts match
the traffic sent; Envoy's access log carries the processor's metadata; the server writes one
JSON line per request; a config reload (file watch or SIGHUP) drops no stream in flight, new
requests see the new config, and an invalid file is refused while the old one keeps serving."""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import Gateway, Mock, Server, add_route, write_config

pytestmark = pytest.mark.envoy

EMAIL = "john.doe@example.com"


def config(placeholder: str = "<EMAIL>") -> dict[str, Any]:
    return {
        "server": {"max_request_body_bytes": 1048576, "grace_period_s": 5},
        "guards": {"pii": {"detectors": ["email"], "placeholders": {"email": placeholder}}},
        "routes": [
            {"name": "ops-openai", "provider": "openai", "guards": ["pii"]},
            {"name": "ops-anthropic", "provider": "anthropic"},
            {"name": "ops-limited", "provider": "openai", "rate_limits": [
                {"name": "tiny", "key": [], "requests": [{"limit": 2, "per": "1h"}]}]},
        ]}


def adjust(doc: dict[str, Any]) -> None:
    add_route(doc, "/ops-openai/", "openai", "ops-openai")
    add_route(doc, "/ops-anthropic/", "anthropic", "ops-anthropic")
    add_route(doc, "/ops-limited/", "openai", "ops-limited")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    log_dir = tmp_path_factory.mktemp("ops")
    gateway = Gateway(log_dir, config(), mock=mock, adjust=adjust, start_server=False)
    gateway.server = Server(gateway.config_path, log_dir, port=gateway.server_port,
                            extra=["--watch-config"])
    yield gateway
    gateway.close()


def scrape(gw: Gateway) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    assert gw.server is not None
    with urllib.request.urlopen(f"http://127.0.0.1:{gw.server.admin_port}/metrics",
                                timeout=5) as r:
        text = r.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    """The sum of every sample of `name` whose labels include `labels`."""
    return sum(v for (n, ls), v in samples.items()
               if n == name and all((k, want) in ls for k, want in labels.items()))


def chat(gw: Gateway, route: str, content: str = "hi", stream: bool = False,
         headers: dict[str, str] | None = None) -> httpx.Response:
    body: dict[str, Any] = {"model": "gpt-4o-mini", "stream": stream,
                            "messages": [{"role": "user", "content": content}]}
    if stream:
        body["stream_options"] = {"include_usage": True}
    return httpx.post(f"{gw.url}/{route}/v1/chat/completions", json=body, timeout=30,
                      headers=headers or {})


def sse_usage(text: str) -> tuple[int, int]:
    for line in text.splitlines():
        if line.startswith("data: {") and '"usage":{' in line.replace(" ", ""):
            usage = json.loads(line[6:]).get("usage")
            if usage:
                return usage["prompt_tokens"], usage["completion_tokens"]
    raise AssertionError("no usage in the stream")


def test_extproc_spend_says_the_config_sets_no_spend_budget(gw: Gateway) -> None:
    import subprocess
    import sys
    assert gw.server is not None
    admin = f"http://127.0.0.1:{gw.server.admin_port}"
    with urllib.request.urlopen(f"{admin}/spend", timeout=5) as r:
        assert json.loads(r.read()) == {"store": "memory", "budgets": [], "configured": 0}
    done = subprocess.run([sys.executable, "-m", "extproc", "spend", "--admin", admin],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("no spend budgets are configured"), done.stdout


def test_envoys_own_413_is_a_gateway_refusal_not_an_upstream_error(gw: Gateway) -> None:
    """A body past Envoy's buffer limit is answered by Envoy before the processor sees it or
    anything goes upstream: counted and logged as `gateway_rejected`, not as a provider
    error that an operator's error-ratio alert would fire on."""
    before = scrape(gw)
    r = chat(gw, "ops-openai", "x" * (12 * 1048576))
    assert r.status_code == 413, r.text[:200]
    assert gw.server is not None
    gw.server.wait_idle()
    after = scrape(gw)
    for outcome, want in (("gateway_rejected", 1), ("upstream_error", 0)):
        assert value(after, "extproc_requests_total", route="ops-openai", outcome=outcome) \
            - value(before, "extproc_requests_total", route="ops-openai",
                    outcome=outcome) == want, outcome


def test_metrics_match_the_traffic(gw: Gateway) -> None:
    before = scrape(gw)
    inp = out = 0
    for _ in range(3):
        r = chat(gw, "ops-openai")
        assert r.status_code == 200
        inp += r.json()["usage"]["prompt_tokens"]
        out += r.json()["usage"]["completion_tokens"]
    for _ in range(2):
        r = chat(gw, "ops-openai", stream=True, headers={"x-mock-chunk-bytes": "40"})
        assert r.status_code == 200
        i, o = sse_usage(r.text)
        inp, out = inp + i, out + o
    r = httpx.post(f"{gw.url}/ops-anthropic/v1/messages", timeout=30, json={
        "model": "claude-sonnet-4-5", "max_tokens": 50, "stream": True,
        "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 200
    r = chat(gw, "ops-openai", f"mail {EMAIL}", headers={"x-mock-reply": "echo"})
    assert r.status_code == 200 and "<EMAIL>" in r.text
    statuses = [chat(gw, "ops-limited").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    r = chat(gw, "ops-openai", headers={"x-mock-status": "503"})
    assert r.status_code == 503
    assert gw.server is not None
    gw.server.wait_idle()
    after = scrape(gw)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    ok = {"route": "ops-openai", "outcome": "ok"}
    assert delta("extproc_requests_total", **ok) == 6
    assert delta("extproc_requests_total", route="ops-openai", outcome="upstream_error") == 1
    assert delta("extproc_requests_total", route="ops-limited", outcome="rate_limited") == 1
    assert delta("extproc_requests_total", route="ops-limited", outcome="ok") == 2
    assert delta("extproc_requests_total", route="ops-anthropic", outcome="ok",
                 model="claude-sonnet-4-5", provider="anthropic") == 1
    # tokens: the first five openai requests carried `inp`/`out`; the echo request its own
    tokens = {"route": "ops-openai", "gen_ai_request_model": "gpt-4o-mini"}
    assert delta("gen_ai_client_token_usage_count", gen_ai_token_type="output", **tokens) == 6
    got_out = delta("gen_ai_client_token_usage_sum", gen_ai_token_type="output", **tokens)
    got_in = delta("gen_ai_client_token_usage_sum", gen_ai_token_type="input", **tokens)
    assert got_out >= out and got_in >= inp   # plus the echo request's tokens
    assert delta("gen_ai_server_time_to_first_token_seconds_count", route="ops-openai") == 2
    assert delta("extproc_time_to_first_delivered_token_seconds_count",
                 route="ops-openai") == 2
    assert delta("gen_ai_server_time_to_first_token_seconds_count",
                 route="ops-anthropic") == 1
    assert delta("gen_ai_server_request_duration_seconds_count", route="ops-openai") == 7
    assert delta("extproc_guard_decisions_total", route="ops-openai", guard="pii",
                 direction="request", decision="masked") == 1
    assert delta("extproc_ratelimit_decisions_total", route="ops-limited", limit="tiny",
                 decision="allowed") == 2
    assert delta("extproc_ratelimit_decisions_total", route="ops-limited", limit="tiny",
                 decision="limited") == 1
    assert delta("extproc_message_duration_seconds_count", message="request_headers") == 11
    assert value(after, "extproc_active_streams") == 0
    assert value(after, "extproc_held_bytes") == 0
    # no request data in any label: no prompt, no e-mail, no path
    for (_, labels), _v in after.items():
        for _k, v in labels:
            assert EMAIL not in v and "/v1/" not in v and "hi" != v


def test_the_envoy_access_log_and_the_server_log_carry_the_request(gw: Gateway) -> None:
    rid = uuid.uuid4().hex
    r = chat(gw, "ops-openai", f"mail {EMAIL}", stream=True,
             headers={"x-request-id": rid, "x-mock-reply": "echo"})
    assert r.status_code == 200
    entry = gw.access_log(rid)
    md = entry["extproc"]
    assert md["model"] == "gpt-4o-mini" and md["provider"] == "openai"
    assert md["output_tokens"] > 0 and md["guard_request"] == "pii:masked:email"
    assert gw.server is not None
    line = gw.server_access_line(rid)
    assert line["request_id"] == rid and line["outcome"] == "ok" and line["status"] == 200
    assert line["model"] == "gpt-4o-mini" and line["stream"] is True
    assert line["ttft_ms"] <= line["ttft_delivered_ms"] <= line["duration_ms"]
    assert line["guard_request"] == "pii:masked:email"
    assert EMAIL not in gw.server.proc.log()   # text is never logged


def slow_stream(gw: Gateway, results: list[str]) -> None:
    r = chat(gw, "ops-openai", stream=True,
             headers={"x-mock-reply": "one two three four five six seven eight",
                      "x-mock-chunk-bytes": "20", "x-mock-delay-ms": "150"})
    results.append(r.text if r.status_code == 200 else f"status {r.status_code}")


def wait_reloads(gw: Gateway, result: str, count: float, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while value(scrape(gw), "extproc_config_reloads_total", result=result) < count:
        assert time.monotonic() < deadline, f"no {result} reload"
        time.sleep(0.1)


def masked_as(gw: Gateway) -> str:
    r = chat(gw, "ops-openai", f"mail {EMAIL}", headers={"x-mock-reply": "echo"})
    assert r.status_code == 200
    return r.json()["choices"][0]["message"]["content"]


def test_reload_under_load_drops_nothing_and_refuses_a_bad_file(gw: Gateway) -> None:
    assert gw.server is not None
    path = Path(gw.config_path)
    base = scrape(gw)
    ok0 = value(base, "extproc_config_reloads_total", result="ok")
    bad0 = value(base, "extproc_config_reloads_total", result="refused")
    results: list[str] = []
    threads = [threading.Thread(target=slow_stream, args=(gw, results)) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.3)                                  # the streams are in flight
    write_config(path, config("<MAIL>"))             # picked up by the file watch
    wait_reloads(gw, "ok", ok0 + 1)
    assert masked_as(gw) == "mail <MAIL>"            # new requests see the new config
    for t in threads:
        t.join(30)
    assert len(results) == 4
    for text in results:                             # every stream in flight finished whole
        assert text.rstrip().endswith("data: [DONE]"), text[-200:]
    # an invalid file (SIGHUP this time) is refused; the running config stays
    path.write_text("routes: [{name: x, provider: gemni}]\n")
    gw.server.proc.signal(signal.SIGHUP)
    wait_reloads(gw, "refused", bad0 + 1)
    assert masked_as(gw) == "mail <MAIL>"
    assert "provider: unknown provider 'gemni'" in gw.server.proc.log()
    write_config(path, config())
    gw.server.proc.signal(signal.SIGHUP)
    wait_reloads(gw, "ok", ok0 + 2)
    assert masked_as(gw) == "mail <EMAIL>"
