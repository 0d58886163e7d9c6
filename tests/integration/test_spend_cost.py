"""The cost of every request through the real Envoy: for each provider, streamed and not, the
cost in Envoy's access log (the dynamic metadata), in the server's JSON access line and in
/metrics equals the hand-computed cost of the usage the mock reported, at the config's round
prices (which override the shipped table); a model nothing prices is reported as unpriced."""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.harness import Gateway, Mock, add_route

pytestmark = pytest.mark.envoy

D = Decimal
PROVIDERS = ("openai", "azure", "anthropic", "gemini", "vertex")
#: per million tokens: a token counted in the wrong part changes the sum
PRICES = [
    {"provider": "openai", "model": "gpt-4o-mini", "input": 1, "cached_input": "0.5",
     "output": 2},     # overrides the shipped gpt-4o-mini (0.15 / 0.60)
    {"provider": "azure", "model": "gpt4o", "input": 3, "output": 5},   # a deployment's name
    {"provider": "anthropic", "model": "claude-sonnet-4-5", "input": 7, "cached_input": 1,
     "cache_write": 9, "output": 11},
    {"provider": "gemini", "model": "gemini-2.5-flash", "input": 13, "output": 17,
     "reasoning": 19},
    {"provider": "vertex", "model": "gemini-2.5-flash", "input": 23, "output": 29,
     "reasoning": 31},
]
PRICE = {p["provider"]: p for p in PRICES}
VERTEX = "/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-flash:"
CHAT = {"messages": [{"role": "user", "content": "how much is this?"}]}
CONTENTS = {"contents": [{"role": "user", "parts": [{"text": "how much is this?"}]}]}
REPLY = "seven words of a reply for pricing"


def config() -> dict[str, Any]:
    return {"prices": {"models": PRICES},
            "routes": [{"name": f"cost-{p}", "provider": p} for p in PROVIDERS]}


def adjust(doc: dict[str, Any]) -> None:
    for p in PROVIDERS:
        add_route(doc, f"/cost-{p}/", p, f"cost-{p}")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    gateway = Gateway(tmp_path_factory.mktemp("spend"), config(), mock=mock, adjust=adjust)
    yield gateway
    gateway.close()


def request(provider: str, stream: bool, model: str | None = None) -> tuple[str, dict]:
    """(path, body) of a request to the provider's route."""
    if provider == "openai":
        body: dict[str, Any] = {**CHAT, "model": model or "gpt-4o-mini", "stream": stream}
        if stream:
            body["stream_options"] = {"include_usage": True}   # so the test sees the usage
        return "/cost-openai/v1/chat/completions", body
    if provider == "azure":
        body = {**CHAT, "stream": stream}
        if stream:
            body["stream_options"] = {"include_usage": True}
        return ("/cost-azure/openai/deployments/gpt4o/chat/completions"
                "?api-version=2024-10-21", body)
    if provider == "anthropic":
        return "/cost-anthropic/v1/messages", {**CHAT, "model": "claude-sonnet-4-5",
                                               "max_tokens": 100, "stream": stream}
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    if provider == "gemini":
        return f"/cost-gemini/v1beta/models/gemini-2.5-flash:{method}", CONTENTS
    return f"/cost-vertex{VERTEX}{method}", CONTENTS


def sse_data(text: str) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in text.replace("\r\n", "\n").split("\n")
            if line.startswith("data: {")]


def reported(provider: str, r: httpx.Response, stream: bool) -> dict[str, int]:
    """The usage the mock reported to the client, in the provider's own field names."""
    if provider in ("openai", "azure"):
        usage = [e["usage"] for e in sse_data(r.text) if e.get("usage")][-1] if stream \
            else r.json()["usage"]
        return {"input": usage["prompt_tokens"],
                "cached": usage["prompt_tokens_details"]["cached_tokens"],
                "output": usage["completion_tokens"]}
    if provider == "anthropic":
        if stream:
            events = sse_data(r.text)
            start = events[0]["message"]["usage"]
            usage = {**start, "output_tokens": [e for e in events
                                                if e["type"] == "message_delta"][-1]["usage"]
                     ["output_tokens"]}
        else:
            usage = r.json()["usage"]
        return {"input": usage["input_tokens"], "cached": usage["cache_read_input_tokens"],
                "written": usage["cache_creation_input_tokens"],
                "output": usage["output_tokens"]}
    usage = sse_data(r.text)[-1]["usageMetadata"] if stream else r.json()["usageMetadata"]
    return {"input": usage["promptTokenCount"], "output": usage["candidatesTokenCount"],
            "thoughts": usage.get("thoughtsTokenCount", 0)}


def hand_cost(provider: str, u: dict[str, int]) -> Decimal:
    """The cost by hand, per the provider's own usage semantics (per million tokens)."""
    p = {k: D(str(v)) for k, v in PRICE[provider].items() if k not in ("provider", "model")}
    if provider in ("openai", "azure"):   # prompt_tokens include the cached ones
        total = (u["input"] - u["cached"]) * p["input"] \
            + u["cached"] * p.get("cached_input", p["input"]) + u["output"] * p["output"]
    elif provider == "anthropic":         # input_tokens exclude cache reads and writes
        total = u["input"] * p["input"] + u["cached"] * p["cached_input"] \
            + u["written"] * p["cache_write"] + u["output"] * p["output"]
    else:                                 # candidates exclude the thoughts
        total = u["input"] * p["input"] + u["output"] * p["output"] \
            + u["thoughts"] * p["reasoning"]
    return total / D(1_000_000)


def scrape(gw: Gateway) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    assert gw.server is not None
    with urllib.request.urlopen(f"http://127.0.0.1:{gw.server.admin_port}/metrics",
                                timeout=5) as r:
        text = r.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return sum(v for (n, ls), v in samples.items()
               if n == name and all((k, want) in ls for k, want in labels.items()))


def send(gw: Gateway, provider: str, stream: bool, headers: dict[str, str] | None = None,
         model: str | None = None) -> tuple[str, httpx.Response]:
    rid = f"spend-{uuid.uuid4()}"
    path, body = request(provider, stream, model)
    r = httpx.post(f"{gw.url}{path}", json=body, timeout=30,
                   headers={"x-request-id": rid, "x-mock-reply": REPLY, **(headers or {})})
    assert r.status_code == 200, r.text
    return rid, r


CASES = [(p, s, None) for p in PROVIDERS for s in (False, True)] + [
    ("gemini", True, "thinking"), ("vertex", False, "thinking")]


@pytest.mark.parametrize(("provider", "stream", "shape"), CASES,
                         ids=[f"{p}-{'stream' if s else 'whole'}{'-' + t if t else ''}"
                              for p, s, t in CASES])
def test_the_cost_is_the_usage_at_the_configured_price(gw: Gateway, provider: str,
                                                       stream: bool, shape: str | None) -> None:
    model = PRICE[provider]["model"]
    labels = {"route": f"cost-{provider}", "provider": provider, "model": model, "team": "-",
              "currency": "USD"}
    before = scrape(gw)
    rid, r = send(gw, provider, stream, {"x-mock-shape": shape} if shape else None)
    usage = reported(provider, r, stream)
    assert usage["input"] > 0 and usage["output"] > 0
    if shape == "thinking":
        assert usage["thoughts"] > 0     # the reasoning price is exercised
    want = hand_cost(provider, usage)
    assert want > 0

    md = gw.access_log(rid)["extproc"]
    assert md["model"] == model and md["stream"] is stream
    assert D(str(md["cost"])) == want and md["currency"] == "USD"
    assert "cost_status" not in md
    line = gw.server_access_line(rid)
    assert D(repr(line["cost"])) == want and line["currency"] == "USD"
    assert "cost_status" not in line

    assert gw.server is not None
    gw.server.wait_idle()
    after = scrape(gw)
    spent = value(after, "extproc_spend_total", **labels) \
        - value(before, "extproc_spend_total", **labels)
    assert spent == pytest.approx(float(want), rel=1e-9)


@pytest.mark.parametrize("stream", [False, True])
def test_an_unpriced_model_is_unpriced_in_metadata_log_and_metrics(gw: Gateway,
                                                                   stream: bool) -> None:
    model = "gpt-without-a-price"
    labels = {"route": "cost-openai", "provider": "openai", "model": model}
    before = scrape(gw)
    rid, r = send(gw, "openai", stream, model=model)
    assert reported("openai", r, stream)["output"] > 0
    md = gw.access_log(rid)["extproc"]
    assert md["cost_status"] == "unpriced" and "cost" not in md and "currency" not in md
    assert md["output_tokens"] > 0
    line = gw.server_access_line(rid)
    assert line["cost_status"] == "unpriced" and "cost" not in line
    assert gw.server is not None
    gw.server.wait_idle()
    after = scrape(gw)
    assert value(after, "extproc_unpriced_requests_total", **labels) \
        - value(before, "extproc_unpriced_requests_total", **labels) == 1
    assert value(after, "extproc_spend_total", model=model) == 0
