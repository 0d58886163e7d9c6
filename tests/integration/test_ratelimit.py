"""Rate limits through the real Envoy with the in-memory backend: exact admission under a
concurrent burst, 429s with Retry-After in each provider's format, x-ratelimit-* headers on
every response, and token reservations settled against real usage, streamed or not, also
when the client goes away mid-stream. Each test keys its limits on its own client id."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import MODES
from tests.harness import Gateway, Mock, add_route
from tests.integration.test_operations import scrape, value

pytestmark = pytest.mark.envoy

KEY = ["header:x-test-client"]
TOKENS = 10_000
PROVIDERS = ("openai", "azure", "anthropic", "gemini", "vertex")


def config() -> dict[str, Any]:
    routes: list[dict[str, Any]] = [
        {"name": "rl-requests", "provider": "openai", "rate_limits": [
            {"name": "burst", "key": KEY, "requests": [{"limit": 10, "per": "1h"}]}]},
        {"name": "rl-short", "provider": "openai", "rate_limits": [
            {"name": "short", "key": KEY, "requests": [{"limit": 2, "per": "2s"}]}]},
        {"name": "rl-two", "provider": "openai", "rate_limits": [
            {"name": "hourly", "key": KEY, "requests": [{"limit": 100, "per": "1h"}]},
            {"name": "tokens", "key": KEY, "tokens": [{"limit": 300, "per": "1h"}]}]},
    ]
    routes += [{"name": f"rl-tokens-{p}", "provider": p, "rate_limits": [
        # a 30-day window refills so slowly (a token per 4 minutes) that the tests can read
        # exact token counts from the headers
        {"name": "tokens", "key": KEY, "tokens": [{"limit": TOKENS, "per": "30d"}],
         "requests": [{"limit": 1000, "per": "30d"}]}]} for p in PROVIDERS]
    routes += [{"name": f"rl-small-events-{p}", "provider": p,
                "streams": {"max_event_bytes": 1024}, "rate_limits": [
                    {"name": "tokens", "key": KEY, "tokens": [{"limit": TOKENS, "per": "30d"}]}]}
               for p in ("openai", "gemini")]
    return {"server": {"max_request_body_bytes": 1048576},
            "limits": {"backend": "memory", "default_max_tokens": 500}, "routes": routes}


def adjust(doc: dict[str, Any]) -> None:
    add_route(doc, "/rl-requests/", "openai", "rl-requests")
    add_route(doc, "/rl-short/", "openai", "rl-short")
    add_route(doc, "/rl-two/", "openai", "rl-two")
    for p in PROVIDERS:
        add_route(doc, f"/rl-tokens-{p}/", p, f"rl-tokens-{p}")
    for p in ("openai", "gemini"):
        add_route(doc, f"/rl-small-events-{p}/", p, f"rl-small-events-{p}")
    # the same route with Envoy sending the reply FULL_DUPLEX_STREAMED
    add_route(doc, "/rl-small-events-duplex/", "gemini", "rl-small-events-gemini",
              {"request_header_mode": "SEND", "response_header_mode": "SEND",
               **MODES["duplex"]})


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    gateway = Gateway(tmp_path_factory.mktemp("ratelimit"), config(), mock=mock, adjust=adjust)
    yield gateway
    gateway.close()


def client_id() -> dict[str, str]:
    return {"x-test-client": uuid.uuid4().hex}


CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def post(gw: Gateway, route: str, headers: dict[str, str], **body: Any) -> httpx.Response:
    return httpx.post(f"{gw.url}/{route}/v1/chat/completions", json={**CHAT, **body},
                      headers=headers, timeout=30)


def test_a_burst_admits_exactly_the_budget(gw: Gateway) -> None:
    who = client_id()

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30, limits=httpx.Limits(
                max_connections=40)) as client:
            return await asyncio.gather(*(client.post(
                f"{gw.url}/rl-requests/v1/chat/completions", json=CHAT, headers=who)
                for _ in range(40)))

    replies = asyncio.run(burst())
    codes = sorted(r.status_code for r in replies)
    assert codes.count(200) == 10 and codes.count(429) == 30, codes
    limited = next(r for r in replies if r.status_code == 429)
    error = limited.json()["error"]
    assert error["type"] == "rate_limit_error"
    assert "rate limit 'burst' exceeded: 10 requests per 1h" in error["message"]
    assert int(limited.headers["retry-after"]) > 0
    assert limited.headers["x-ratelimit-limit-requests"] == "10"
    assert limited.headers["x-ratelimit-remaining-requests"] == "0"
    # another client has its own budget
    assert post(gw, "rl-requests", client_id()).status_code == 200


def test_every_response_carries_the_headers(gw: Gateway) -> None:
    who = client_id()
    seen = []
    for _ in range(3):
        r = post(gw, "rl-requests", who)
        assert r.status_code == 200
        seen.append(int(r.headers["x-ratelimit-remaining-requests"]))
        assert r.headers["x-ratelimit-limit-requests"] == "10"
        assert r.headers["x-ratelimit-reset-requests"].endswith("s")
    assert seen == [9, 8, 7]


def test_retry_after_is_right(gw: Gateway) -> None:
    who = client_id()
    assert [post(gw, "rl-short", who).status_code for _ in range(2)] == [200, 200]
    r = post(gw, "rl-short", who)
    assert r.status_code == 429
    wait = int(r.headers["retry-after"])
    assert 1 <= wait <= 2
    time.sleep(wait)
    assert post(gw, "rl-short", who).status_code == 200


def _remaining_tokens(gw: Gateway, route: str, who: dict[str, str]) -> int:
    """The token budget left after a probe request, read from the probe's own header: the
    probe reserves prompt 'hi' (1 token) + max_tokens 1 and really costs exactly that (the
    mock answers one word and reports 1 + 1 tokens), so its settlement changes nothing."""
    gw.server.wait_idle()   # settlement runs when the exchange ends
    provider = route.rsplit("-", 1)[-1]
    r = request(gw, provider, route, {**who, "x-mock-reply": "ok"}, max_tokens=1)
    assert r.status_code == 200, r.text
    return int(r.headers["x-ratelimit-remaining-tokens"])


def request(gw: Gateway, provider: str, route: str, headers: dict[str, str], *,
            stream: bool = False, max_tokens: int = 200, timeout: float = 30) -> httpx.Response:
    base = f"{gw.url}/{route}"
    if provider in ("openai", "azure"):
        path = "/v1/chat/completions" if provider == "openai" \
            else "/openai/deployments/d/chat/completions?api-version=2024-10-21"
        return httpx.post(base + path, json={**CHAT, "stream": stream, "max_tokens": max_tokens},
                          headers=headers, timeout=timeout)
    if provider == "anthropic":
        return httpx.post(f"{base}/v1/messages", json={**CHAT, "stream": stream,
                                                       "max_tokens": max_tokens},
                          headers=headers, timeout=timeout)
    prefix = "/v1beta/models/gemini-2.5-flash" if provider == "gemini" else \
        "/v1/projects/p/locations/l/publishers/google/models/gemini-2.5-flash"
    method = ":streamGenerateContent?alt=sse" if stream else ":generateContent"
    return httpx.post(base + prefix + method, headers=headers, timeout=timeout, json={
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "generationConfig": {"maxOutputTokens": max_tokens}})


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("provider", PROVIDERS)
def test_tokens_are_settled_on_real_usage(gw: Gateway, provider: str, stream: bool) -> None:
    route = f"rl-tokens-{provider}"
    who = client_id()
    before = _remaining_tokens(gw, route, who)
    rid = uuid.uuid4().hex
    r = request(gw, provider, route, {**who, "x-request-id": rid,
                                      "x-mock-reply": "one two three four five six"},
                stream=stream, max_tokens=200)
    assert r.status_code == 200, r.text
    # reserved up front: prompt estimate (1) + max_tokens (200)
    assert int(r.headers["x-ratelimit-remaining-tokens"]) == before - 201
    used = gw.access_log(rid)["extproc"]["total_tokens"]
    assert 6 <= used < 201
    after = _remaining_tokens(gw, route, who)
    assert after == before - used - 2             # settled to usage (and the probe's 2)


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_whole_reply_without_its_usage_pays_its_reservation(gw: Gateway,
                                                              provider: str) -> None:
    """A whole reply of a generating endpoint with no usage report in it (the upstream, or
    something on the way, left it out): its output is unknown, so the budget is charged
    the whole reservation, not the prompt estimate alone (which would make the output
    free), and the metric says why."""
    route = f"rl-tokens-{provider}"
    who = client_id()
    before = _remaining_tokens(gw, route, who)
    rid = uuid.uuid4().hex
    scraped = scrape(gw)
    r = request(gw, provider, route, {**who, "x-request-id": rid, "x-mock-usage": "omit",
                                      "x-mock-reply": "one two three four five six"},
                max_tokens=200)
    assert r.status_code == 200, r.text
    assert not {"usage", "usageMetadata"} & set(r.json())
    assert r.headers["x-ratelimit-remaining-tokens"] == str(before - 201)
    assert gw.access_log(rid)["extproc"]["usage_unread"] == "a reply without its usage report"
    assert _remaining_tokens(gw, route, who) == before - 201 - 2
    assert value(scrape(gw), "extproc_usage_unread_total", route=route, reason="no_usage") \
        == value(scraped, "extproc_usage_unread_total", route=route, reason="no_usage") + 1


@pytest.mark.parametrize(("provider", "path", "field", "value"), [
    ("openai", "/v1/chat/completions", "max_tokens", "5000"),
    ("openai", "/v1/chat/completions", "max_completion_tokens", 5000.5),
    ("openai", "/v1/chat/completions", "n", "4"),
    ("azure", "/openai/deployments/d/chat/completions?api-version=2024-10-21", "max_tokens",
     [5000]),
    ("anthropic", "/v1/messages", "max_tokens", "5000"),
    ("anthropic", "/v1/messages", "max_tokens", True),
    ("openai", "/v1/responses", "max_output_tokens", "5000"),
    ("openai", "/v1/completions", "best_of", "4"),
])
def test_a_count_budgets_cannot_read_is_refused(gw: Gateway, provider: str, path: str,
                                                field: str, value: Any) -> None:
    """A max-tokens or choices count as a string (which a lenient OpenAI-compatible server
    may take as the number) or any other non-integer: the budget would reserve the default
    for a reply that may run longer, or one choice for four. Refused in the provider's
    format before anything is reserved or sent."""
    route = f"rl-tokens-{provider}"
    who = client_id()
    before = _remaining_tokens(gw, route, who)
    body: dict[str, Any] = {"model": "gpt-4o-mini", field: value}
    if path.endswith("responses"):
        body["input"] = "hi"
    elif path.endswith("/completions") and "chat" not in path:
        body["prompt"] = "hi"
    else:
        body["messages"] = CHAT["messages"]
        if provider == "anthropic" and field != "max_tokens":
            body["max_tokens"] = 10
    last = gw.mock.last()
    r = httpx.post(f"{gw.url}/{route}{path}", json=body, headers=who, timeout=30)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert f"'{field}' must be a non-negative integer" in error["message"]
    assert error["type"] == "invalid_request_error"
    assert gw.mock.last() == last
    assert _remaining_tokens(gw, route, who) == before - 2     # (the probe's own 2)


@pytest.mark.parametrize("provider", ["gemini", "vertex"])
def test_a_google_count_given_as_a_string_is_read_as_google_reads_it(gw: Gateway,
                                                                     provider: str) -> None:
    """Google's proto3 JSON takes an integer as a string: reserved as the number it is."""
    route = f"rl-tokens-{provider}"
    who = client_id()
    before = _remaining_tokens(gw, route, who)
    prefix = "/v1beta/models/gemini-2.5-flash" if provider == "gemini" else \
        "/v1/projects/p/locations/l/publishers/google/models/gemini-2.5-flash"
    r = httpx.post(f"{gw.url}/{route}{prefix}:generateContent", headers=who, timeout=30,
                   json={"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                         "generationConfig": {"maxOutputTokens": "300"}})
    assert r.status_code == 200, r.text
    assert r.headers["x-ratelimit-remaining-tokens"] == str(before - 301)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_a_client_gone_before_the_reply_pays_its_reservation(gw: Gateway, provider: str,
                                                             stream: bool) -> None:
    """The request went upstream, and the client gave up before any reply came (a whole
    reply being generated, a reasoning model thinking before its first event). The provider
    bills what it generated; nothing of it crossed the gateway: charged the whole
    reservation, never nothing (which would make such requests free, in any number)."""
    route = f"rl-tokens-{provider}"
    who = client_id()
    before = _remaining_tokens(gw, route, who)
    with pytest.raises(httpx.TimeoutException):
        request(gw, provider, route, {**who, "x-mock-wait-ms": "1500"}, stream=stream,
                max_tokens=300, timeout=0.5)
    time.sleep(1.5)
    assert _remaining_tokens(gw, route, who) == before - 301 - 2    # (the probe's own 2)


@pytest.mark.parametrize(("status", "charged"), [(504, True), (503, False), (429, False)])
def test_a_timeout_pays_its_reservation_other_errors_nothing(gw: Gateway, status: int,
                                                              charged: bool) -> None:
    """A 504 (Envoy's own when the upstream takes longer than its timeouts, as a whole
    reasoning reply can; or the provider's deadline): the upstream may have generated it
    all, so it is charged the reservation. Other errors cost nothing."""
    route = "rl-tokens-openai"
    who = client_id()
    before = _remaining_tokens(gw, route, who)
    r = request(gw, "openai", route, {**who, "x-mock-status": str(status)}, max_tokens=300)
    assert r.status_code == status
    assert _remaining_tokens(gw, route, who) == before - 2 - (301 if charged else 0)


def _leave_after_ten_events(gw: Gateway, route: str, who: dict[str, str],
                            body: dict[str, Any]) -> bytes:
    """Stream a 200-word chat reply, paced, and go away after its first ten events: what
    the client got."""
    words = " ".join(f"w{i}" for i in range(200))
    received = b""
    with httpx.Client(timeout=30) as client, client.stream(
            "POST", f"{gw.url}/{route}/v1/chat/completions",
            json={**CHAT, "stream": True, **body},
            headers={**who, "x-mock-reply": words, "x-mock-delay-ms": "20"}) as r:
        assert r.status_code == 200
        for chunk in r.iter_raw():
            received += chunk
            if received.count(b"data: ") >= 10:
                break                             # the client goes away
    return received


def test_a_client_gone_mid_stream_pays_for_what_was_delivered(gw: Gateway) -> None:
    route = "rl-tokens-openai"
    who = client_id()
    before = _remaining_tokens(gw, route, who)
    received = _leave_after_ten_events(gw, route, who, {"max_tokens": 2000})
    delivered = received.count(b'"content":"')
    charged = before - _remaining_tokens(gw, route, who) - 2
    # the prompt estimate (1) plus at least what the client got, far less than the
    # 2001 reserved, and less than the whole 200-word reply
    assert 1 + delivered <= charged < 150, (delivered, charged)


WORD = "x" * 3000    # one piece: one stream event of over 3 KiB
SLOW_CHUNKS = {"x-mock-reply": WORD, "x-mock-chunk-bytes": "256", "x-mock-delay-ms": "2"}


def _events(text: str) -> list[str]:
    return [line[6:] for line in text.split("\n") if line.startswith("data: ")]


@pytest.mark.parametrize("provider", ["openai", "gemini"])
def test_an_event_past_the_size_limit_goes_by_and_the_usage_is_still_exact(
        gw: Gateway, provider: str) -> None:
    """An event past the route's streams.max_event_bytes (1 KiB here; one 3,000-character
    word sent in 256-byte chunks 2 ms apart) goes by unread, never held whole, and the
    stream is read on after it. OpenAI's usage chunk, which follows, is read and dropped as
    usual; Gemini's usageMetadata, which ends the big event itself, is read at its place on
    the way. Before, the OpenAI stream was reset, and an unguarded stream's usage went
    unread."""
    route = f"rl-small-events-{provider}"
    who = client_id()
    rid = uuid.uuid4().hex
    r = request(gw, provider, route, {**who, **SLOW_CHUNKS, "x-request-id": rid},
                stream=True, max_tokens=200)
    assert r.status_code == 200
    assert int(r.headers["x-ratelimit-remaining-tokens"]) == TOKENS - 201
    docs = [json.loads(e) for e in _events(r.text) if e != "[DONE]"]
    if provider == "openai":
        assert _events(r.text)[-1] == "[DONE]"
        assert all(d["choices"] for d in docs)     # the usage chunk it asked for is cut
        text = "".join(d["choices"][0]["delta"].get("content") or "" for d in docs)
    else:
        text = "".join(p.get("text", "") for d in docs
                       for p in d["candidates"][0]["content"]["parts"])
    assert text == WORD
    logged = gw.access_log(rid)["extproc"]
    assert "usage_unread" not in logged
    used = logged["total_tokens"]
    assert used < 201
    gw.server.wait_idle()
    probe = request(gw, provider, route, {**who, "x-mock-reply": "ok"}, max_tokens=1)
    assert int(probe.headers["x-ratelimit-remaining-tokens"]) == TOKENS - used - 2


@pytest.mark.parametrize("prefix", ["rl-small-events-gemini", "rl-small-events-duplex"])
def test_an_array_element_past_the_size_limit_is_rewritten_and_metered_exactly(
        gw: Gateway, prefix: str) -> None:
    """Gemini's stream without alt=sse is one JSON array, rewritten to SSE (on by default).
    An element past the route's max_event_bytes (the 3,000-character word in 256-byte
    chunks) is never held whole: it goes out as the one SSE event it is, piece by piece, and
    its usageMetadata is read at its place on the way. Before, the rewrite ended the stream
    there with an error event, and the usage went unread."""
    route = "rl-small-events-gemini"
    who = client_id()
    rid = uuid.uuid4().hex
    r = httpx.post(f"{gw.url}/{prefix}/v1beta/models/gemini-2.5-flash:streamGenerateContent",
                   headers={**who, **SLOW_CHUNKS, "x-request-id": rid}, timeout=30, json={
                       "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                       "generationConfig": {"maxOutputTokens": 200}})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    docs = [json.loads(e) for e in _events(r.text)]
    assert all("error" not in d for d in docs)
    assert "".join(p.get("text", "") for d in docs
                   for p in d["candidates"][0]["content"]["parts"]) == WORD
    logged = gw.access_log(rid)["extproc"]
    assert "usage_unread" not in logged and logged["rewritten_to_sse"] is True
    used = logged["total_tokens"]
    assert used == docs[-1]["usageMetadata"]["totalTokenCount"] < 201
    gw.server.wait_idle()
    probe = request(gw, "gemini", route, {**who, "x-mock-reply": "ok"}, max_tokens=1)
    assert int(probe.headers["x-ratelimit-remaining-tokens"]) == TOKENS - used - 2


RESPONSES_STREAM = {
    "model": "gpt-4o-mini", "input": "hi", "stream": True, "max_output_tokens": 200,
    # the reply repeats the tools: a schema naming a property "usage" is no usage
    "tools": [{"type": "function", "name": "lookup", "parameters": {
        "type": "object", "properties": {"usage": {"type": "object", "properties": {
            "input_tokens": {"type": "integer"}, "output_tokens": {"type": "integer"}}}}}},
        {"type": "image_generation", "partial_images": 1}]}


def _responses_stream(gw: Gateway, route: str, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{gw.url}/{route}/v1/responses", timeout=30, json=RESPONSES_STREAM,
                      headers={**headers, **SLOW_CHUNKS})


def test_the_responses_apis_last_event_past_the_size_limit_is_read_for_its_usage(
        gw: Gateway) -> None:
    """The Responses API repeats the whole reply (the generated image's data, the tools) in
    its last event, response.completed, with the usage inside: past the route's 1 KiB, it
    goes by never held whole, read on the way for its usage at its place, and the budget
    is charged exactly. Before, the usage went unread and the request paid its
    reservation."""
    route = "rl-small-events-openai"
    who = client_id()
    rid = uuid.uuid4().hex
    before = scrape(gw)
    r = _responses_stream(gw, route, {**who, "x-request-id": rid})
    assert r.status_code == 200
    reserved = TOKENS - int(r.headers["x-ratelimit-remaining-tokens"])
    assert reserved > 200    # the 200 it may write, and the prompt with its tools
    docs = [json.loads(e) for e in _events(r.text)]
    assert docs[-1]["type"] == "response.completed" and len(_events(r.text)[-1]) > 4096
    assert "".join(d["delta"] for d in docs if d["type"] == "response.output_text.delta") \
        == WORD
    usage = docs[-1]["response"]["usage"]
    logged = gw.access_log(rid)["extproc"]
    assert "usage_unread" not in logged
    assert (logged["input_tokens"], logged["output_tokens"]) \
        == (usage["input_tokens"], usage["output_tokens"])
    gw.server.wait_idle()
    after = scrape(gw)
    assert value(after, "extproc_usage_unread_total", route=route,
                 reason="oversized_event") \
        == value(before, "extproc_usage_unread_total", route=route, reason="oversized_event")
    probe = request(gw, "openai", route, {**who, "x-mock-reply": "ok"}, max_tokens=1)
    assert int(probe.headers["x-ratelimit-remaining-tokens"]) \
        == TOKENS - usage["total_tokens"] - 2


def test_a_stream_whose_usage_cannot_be_read_pays_its_reservation(gw: Gateway) -> None:
    """The same stream ending short, inside response.completed (the upstream ends the body
    there): the usage it held is unknown. The budget is charged at least the reservation (a
    partial count would let a client spend past its budget by asking for such replies)."""
    route = "rl-small-events-openai"
    whole = _responses_stream(gw, route, client_id()).content
    who = client_id()
    rid = uuid.uuid4().hex
    before = scrape(gw)
    r = _responses_stream(gw, route, {**who, "x-request-id": rid,
                                      "x-mock-end-after": str(len(whole) - 200)})
    assert r.status_code == 200
    reserved = TOKENS - int(r.headers["x-ratelimit-remaining-tokens"])
    assert reserved > 200 and len(r.content) == len(whole) - 200
    logged = gw.access_log(rid)["extproc"]
    assert "max_event_bytes" in logged["usage_unread"]
    gw.server.wait_idle()
    # and operators can graph how often budgets charged their worst case, and why
    after = scrape(gw)
    for reason, more in (("oversized_event", 1), ("encoded", 0), ("not_json", 0)):
        assert value(after, "extproc_usage_unread_total", route=route, reason=reason) \
            == value(before, "extproc_usage_unread_total", route=route, reason=reason) + more
    probe = request(gw, "openai", route, {**who, "x-mock-reply": "ok"}, max_tokens=1)
    # charged at least what it reserved (the mock reports 1 + 1 tokens for the probe)
    assert int(probe.headers["x-ratelimit-remaining-tokens"]) <= TOKENS - reserved - 2


@pytest.mark.parametrize("model", ["o3-mini", "gpt-4o-mini"])
def test_a_client_gone_from_a_reasoning_stream_pays_its_reservation(gw: Gateway,
                                                                    model: str) -> None:
    """A reasoning model thinks in tokens no stream carries, before its first visible one,
    and they are billed as output: a client that leaves after some text (found by the spend
    audit) is charged the reservation, since what it got leaves the thinking out. A model
    that does not think pays what it got."""
    route = "rl-tokens-openai"
    who = client_id()
    before = _remaining_tokens(gw, route, who)
    _leave_after_ten_events(gw, route, who, {"model": model, "max_completion_tokens": 2000})
    charged = before - _remaining_tokens(gw, route, who) - 2
    if model == "o3-mini":
        assert charged == 2001
    else:
        assert 9 <= charged < 100, charged


def test_reservations_stop_concurrent_overspend_and_settle_frees_them(gw: Gateway) -> None:
    who = client_id()
    short = {**who, "x-mock-reply": "a short answer"}
    # 300 tokens per hour: a request reserving 1 + 250 fits once. While it streams, a second
    # one cannot fit; once the first settles on what it used (a few tokens), it does.
    with httpx.Client(timeout=30) as client, client.stream(
            "POST", f"{gw.url}/rl-two/v1/chat/completions",
            json={**CHAT, "stream": True, "max_tokens": 250},
            headers={**short, "x-mock-delay-ms": "200"}) as first:
        assert first.status_code == 200
        during = post(gw, "rl-two", short, max_tokens=250)
        assert during.status_code == 429, during.text
        body = b"".join(first.iter_raw())
    assert body.rstrip().endswith(b"data: [DONE]")
    gw.server.wait_idle()
    after = post(gw, "rl-two", short, max_tokens=250)
    assert after.status_code == 200, after.text


def test_a_request_larger_than_the_budget_is_refused_for_good(gw: Gateway) -> None:
    r = post(gw, "rl-two", client_id(), max_tokens=5000)
    assert r.status_code == 429
    assert "retry-after" not in r.headers
    assert "more than the whole 'tokens' budget of 300 tokens per 1h" in \
        r.json()["error"]["message"]
    assert r.headers["x-should-retry"] == "false"


def test_the_sdk_does_not_retry_a_request_that_can_never_fit(gw: Gateway) -> None:
    """The OpenAI SDK retries a 429 twice by default; a request larger than a whole budget
    says `x-should-retry: false`, so it is sent once. An ordinary 429 leaves the SDK free."""
    import openai
    sent: list[httpx.Request] = []
    http = httpx.Client(event_hooks={"request": [sent.append]}, timeout=30)
    client = openai.OpenAI(base_url=f"{gw.url}/rl-two/v1", api_key="k", http_client=http,
                           default_headers=client_id())
    with pytest.raises(openai.RateLimitError) as exc:
        client.chat.completions.create(model="gpt-4o-mini", max_tokens=5000,
                                       messages=[{"role": "user", "content": "hi"}])
    assert "more than the whole 'tokens' budget" in exc.value.message
    assert len(sent) == 1
    who = client_id()
    for _ in range(3):   # (the budget: 300 tokens an hour; 250 reserved each)
        r = post(gw, "rl-two", who, max_tokens=250)
    assert r.status_code == 429 and "x-should-retry" not in r.headers


def test_a_refusal_by_one_limit_gives_back_what_the_others_took(gw: Gateway) -> None:
    who = client_id()
    r = post(gw, "rl-two", who, max_tokens=5000)   # 'hourly' admits, 'tokens' refuses
    assert r.status_code == 429
    r = post(gw, "rl-two", who, max_tokens=1)
    assert r.headers["x-ratelimit-remaining-requests"] == "99"   # only this one counted


@pytest.mark.parametrize("provider", ["anthropic", "gemini"])
def test_429s_come_in_the_providers_format(gw: Gateway, provider: str) -> None:
    route = f"rl-tokens-{provider}"
    r = request(gw, provider, route, client_id(), max_tokens=50_000)
    assert r.status_code == 429
    body = r.json()
    if provider == "anthropic":
        assert body["type"] == "error" and body["error"]["type"] == "rate_limit_error"
    else:
        assert body["error"]["status"] == "RESOURCE_EXHAUSTED"


def test_no_state_is_left_behind(gw: Gateway) -> None:
    stats = gw.server.wait_idle()
    assert stats["streams_active"] == 0 and stats["exchanges_alive"] == 0
    assert stats["finishing"] == 0
