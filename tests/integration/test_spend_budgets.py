"""Spend budgets through the real Envoy: reservations at the worst case and settlement on the
provider's real usage for each provider, streamed or not, 429s in each provider's format with
the x-ratelimit-*-spend headers and when the budget refills, the 403 for a model the route
cannot price, two extproc replicas sharing Redis admitting exactly what fits, and
`extproc spend` reading the budgets back from a running server and from Redis.

Every route prices every token at 1000 per million (0.001 USD a token; the shipped table is
left out), so amounts are token
counts over a thousand. Each test keys its budget on its own client id."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from tests.harness import Gateway, Mock, RedisServer, Server, add_route, write_config
from tests.integration.test_ratelimit_redis import two_endpoints

pytestmark = pytest.mark.envoy

D = Decimal
KEY = ["header:x-test-client"]
PROVIDERS = ("openai", "azure", "anthropic", "gemini", "vertex")
PRICE = {"input": 1000, "output": 1000}
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
MONTH = 30 * 86400


def config() -> dict[str, Any]:
    routes: list[dict[str, Any]] = [
        {"name": f"sb-{p}", "provider": p, "default_price": PRICE, "rate_limits": [
            {"name": "budget", "key": KEY, "spend": [{"limit": 1.00, "per": "30d"}]}]}
        for p in PROVIDERS]
    routes += [{"name": f"sb-unpriced-{p}", "provider": p, "rate_limits": [
        {"name": "budget", "key": KEY, "spend": [{"limit": 1.00, "per": "30d"}]}]}
        for p in ("openai", "anthropic")]
    # without the shipped table, every model is priced at the route's default_price
    return {"server": {"max_request_body_bytes": 1048576}, "prices": {"defaults": False},
            "limits": {"backend": "memory"}, "routes": routes}


def adjust(doc: dict[str, Any]) -> None:
    for p in PROVIDERS:
        add_route(doc, f"/sb-{p}/", p, f"sb-{p}")
    for p in ("openai", "anthropic"):
        add_route(doc, f"/sb-unpriced-{p}/", p, f"sb-unpriced-{p}")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    gateway = Gateway(tmp_path_factory.mktemp("spend"), config(), mock=mock, adjust=adjust)
    yield gateway
    gateway.close()


def client_id() -> dict[str, str]:
    return {"x-test-client": uuid.uuid4().hex}


def request(gw: Gateway, provider: str, route: str, headers: dict[str, str], *,
            stream: bool = False, max_tokens: int = 200, model: str = "gpt-4o-mini"
            ) -> httpx.Response:
    base = f"{gw.url}/{route}"
    body = {**CHAT, "model": model, "stream": stream, "max_tokens": max_tokens}
    if provider in ("openai", "azure"):
        path = "/v1/chat/completions" if provider == "openai" \
            else "/openai/deployments/d/chat/completions?api-version=2024-10-21"
        return httpx.post(base + path, json=body, headers=headers, timeout=30)
    if provider == "anthropic":
        return httpx.post(f"{base}/v1/messages", json=body, headers=headers, timeout=30)
    prefix = "/v1beta/models/gemini-2.5-flash" if provider == "gemini" else \
        "/v1/projects/p/locations/l/publishers/google/models/gemini-2.5-flash"
    method = ":streamGenerateContent?alt=sse" if stream else ":generateContent"
    return httpx.post(base + prefix + method, headers=headers, timeout=30, json={
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "generationConfig": {"maxOutputTokens": max_tokens}})


def remaining(r: httpx.Response) -> Decimal:
    return D(r.headers["x-ratelimit-remaining-spend"])


def error_message(provider: str, r: httpx.Response, status: int) -> str:
    body = r.json()
    if provider in ("openai", "azure"):
        assert body["error"]["type"] == ("rate_limit_error" if status == 429
                                         else "permission_error"), body
    elif provider == "anthropic":
        assert body["type"] == "error" and body["error"]["type"] == (
            "rate_limit_error" if status == 429 else "permission_error"), body
    else:
        assert body["error"]["status"] == ("RESOURCE_EXHAUSTED" if status == 429
                                           else "PERMISSION_DENIED"), body
    return str(body["error"]["message"])


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_reserved_at_the_worst_case_settled_at_the_real_cost(gw: Gateway, provider: str,
                                                             stream: bool) -> None:
    route, who, rid = f"sb-{provider}", client_id(), uuid.uuid4().hex
    r = request(gw, provider, route, {**who, "x-request-id": rid,
                                      "x-mock-reply": "one two three four five six"},
                stream=stream, max_tokens=600)
    assert r.status_code == 200, r.text
    # reserved: (1 prompt token + 600 output tokens) x 0.001
    assert r.headers["x-ratelimit-limit-spend"] == "1.00"
    assert r.headers["x-ratelimit-remaining-spend"] == "0.399"
    assert r.headers["x-ratelimit-reset-spend"].endswith("s")
    gw.server.wait_idle()                            # settlement runs when the exchange ends
    entry = gw.access_log(rid)["extproc"]
    cost = D(entry["input_tokens"] + entry["output_tokens"]) / 1000
    assert D("0.006") <= cost < D("0.1"), entry
    # 1.000 no longer fits: a 429 that says which budget and when it refills (the cost
    # drains back at 1.00 per 30 days)
    r = request(gw, provider, route, who, stream=stream, max_tokens=999)
    assert r.status_code == 429, r.text
    wait = int(r.headers["retry-after"])
    assert abs(wait - float(cost) * MONTH) <= 2, (wait, cost)
    assert error_message(provider, r, 429) == (
        f"spend limit 'budget' exceeded: 1.00 USD per 30d; retry after {wait}s")
    assert abs(remaining(r) - (1 - cost)) <= D("0.000002")
    # the probe fits, and sees exactly the real cost gone
    r = request(gw, provider, route, {**who, "x-mock-reply": "ok"}, max_tokens=1)
    assert r.status_code == 200, r.text
    assert abs(remaining(r) - (1 - cost - D("0.002"))) <= D("0.000002")


@pytest.mark.parametrize("provider", ["openai", "vertex"])
def test_a_client_gone_before_the_reply_pays_its_worst_case(gw: Gateway, provider: str
                                                            ) -> None:
    """The client gives up while the provider generates a whole reply: nothing crossed the
    gateway, the provider bills it all the same, so the budget keeps the worst case it
    reserved (0.601), not nothing."""
    route, who = f"sb-{provider}", client_id()
    base = f"{gw.url}/{route}"
    path = "/v1/chat/completions" if provider == "openai" else \
        "/v1/projects/p/locations/l/publishers/google/models/gemini-2.5-flash:generateContent"
    body = {**CHAT, "model": "gpt-4o-mini", "max_tokens": 600} if provider == "openai" else {
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "generationConfig": {"maxOutputTokens": 600}}
    with pytest.raises(httpx.TimeoutException):
        httpx.post(base + path, json=body, headers={**who, "x-mock-wait-ms": "1500"},
                   timeout=0.5)
    time.sleep(1.5)
    gw.server.wait_idle()
    r = request(gw, provider, route, {**who, "x-mock-reply": "ok"}, max_tokens=1)
    assert r.status_code == 200, r.text
    # the probe reserves 0.002 on top of the 0.601 kept
    assert remaining(r) == D("0.397"), r.headers


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_request_dearer_than_the_whole_budget_is_refused_for_good(gw: Gateway,
                                                                    provider: str) -> None:
    r = request(gw, provider, f"sb-{provider}", client_id(), max_tokens=5000)
    assert r.status_code == 429
    assert "retry-after" not in r.headers
    assert r.headers["x-ratelimit-limit-spend"] == "1.00"
    assert r.headers["x-ratelimit-remaining-spend"] == "1.00"
    assert error_message(provider, r, 429) == (
        "request may cost up to 5.001 USD, more than the whole 'budget' budget of 1.00 USD "
        "per 30d")


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_model_the_route_cannot_price_is_refused(gw: Gateway, provider: str) -> None:
    r = request(gw, provider, f"sb-unpriced-{provider}", client_id(), model="no-such-model")
    assert r.status_code == 403
    message = error_message(provider, r, 403)
    assert "'no-such-model'" in message and "prices.models" in message
    assert "default_price" in message


def run_spend(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "extproc", "spend", *args],
                          capture_output=True, text=True, timeout=60)


def test_extproc_spend_reads_a_servers_memory_budgets(gw: Gateway) -> None:
    who = client_id()
    r = request(gw, "openai", "sb-openai", {**who, "x-mock-reply": "ok"}, max_tokens=1)
    assert r.status_code == 200
    gw.server.wait_idle()
    assert gw.server is not None
    done = run_spend("--admin", f"http://127.0.0.1:{gw.server.admin_port}", "--json")
    assert done.returncode == 0, done.stderr
    (row,) = [row for row in json.loads(done.stdout) if row["key"] == {
        "header:x-test-client": who["x-test-client"]}]
    assert row["route"] == "sb-openai" and row["limit"] == "budget" and row["per"] == "30d"
    assert row["budget"] == "1.00" and row["currency"] == "USD"
    # 2 tokens (1 + 1: the mock's "ok") at 0.001, minus what drained since (< 1 micro-unit/s)
    assert abs(D(row["spent"]) - D("0.002")) <= D("0.00002")
    assert abs(D(row["remaining"]) - D("0.998")) <= D("0.00002")
    with urllib.request.urlopen(f"http://127.0.0.1:{gw.server.admin_port}/spend",
                                timeout=5) as answer:
        assert json.loads(answer.read())["configured"] >= 1
    text = run_spend("--admin", f"http://127.0.0.1:{gw.server.admin_port}")
    assert text.returncode == 0 and who["x-test-client"] in text.stdout
    assert text.stdout.startswith("ROUTE")
    assert "HTTP Request" not in text.stderr   # the HTTP library's own log stays out of it


# --- two replicas sharing Redis ---------------------------------------------------------

def redis_config(url: str) -> dict[str, Any]:
    return {"server": {"max_request_body_bytes": 1048576}, "prices": {"defaults": False},
            "limits": {"backend": "redis", "redis_url": url, "timeout_ms": 500,
                       "on_backend_error": "deny"},
            # 0.05 a token: a request of "hi" (1 token) and max_tokens 1 reserves 0.10, and
            # costs exactly that (the mock answers "ok": 1 + 1 tokens), so a burst admits
            # exactly 20 of 2.00 however its requests interleave with their settlements
            "routes": [{"name": "shared", "provider": "openai",
                        "default_price": {"input": 50000, "output": 50000},
                        "rate_limits": [{"name": "team", "key": KEY,
                                         "spend": [{"limit": 2.00, "per": "30d"}]}]}]}


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, mock: Mock, redis: RedisServer
         ) -> Iterator[tuple[Gateway, Server]]:
    tmp = tmp_path_factory.mktemp("spend-pair")
    doc = redis_config(redis.url)
    second = Server(write_config(tmp / "second.yaml", doc), tmp, name="extproc-2")
    try:
        gw = Gateway(tmp, doc, mock=mock, adjust=two_endpoints(second.port))
    except BaseException:
        second.stop()
        raise
    yield gw, second
    gw.close()
    second.stop()


def test_two_replicas_sharing_redis_admit_exactly_what_fits(pair: tuple[Gateway, Server],
                                                            redis: RedisServer) -> None:
    gw, second = pair
    who = {**client_id(), "x-mock-reply": "ok"}

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(
                max_connections=60)) as http:
            return await asyncio.gather(*(http.post(
                f"{gw.url}/shared/v1/chat/completions", json={**CHAT, "max_tokens": 1},
                headers=who) for _ in range(60)))

    replies = asyncio.run(burst())
    codes = [r.status_code for r in replies]
    assert codes.count(200) == 20 and codes.count(429) == 40, codes
    assert gw.server is not None
    assert gw.server.stats()["streams_total"] > 0 and second.stats()["streams_total"] > 0
    limited = next(r for r in replies if r.status_code == 429)
    assert "spend limit 'team' exceeded: 2.00 USD per 30d" in limited.json()["error"][
        "message"]
    gw.server.wait_idle()
    second.wait_idle()
    # read back from Redis itself, and from either server's admin endpoint
    for args in (("--redis", redis.url), ("--admin", f"http://127.0.0.1:{second.admin_port}")):
        done = run_spend(*args, "--json")
        assert done.returncode == 0, done.stderr
        (row,) = [row for row in json.loads(done.stdout)
                  if row["key"] == {"header:x-test-client": who["x-test-client"]}]
        assert row["route"] == "shared" and row["limit"] == "team"
        assert abs(D(row["spent"]) - D("2.00")) <= D("0.0001"), row
        assert D(row["remaining"]) <= D("0.0001"), row
    text = run_spend("--redis", redis.url)
    assert text.returncode == 0 and "2.00 USD" in text.stdout


def test_no_state_is_left_behind(gw: Gateway, pair: tuple[Gateway, Server]) -> None:
    for server in (gw.server, pair[0].server, pair[1]):
        assert server is not None
        stats = server.wait_idle()
        assert stats["streams_active"] == 0 and stats["exchanges_alive"] == 0
