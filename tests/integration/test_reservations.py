"""Token reservations through the real Envoy: a request reserves the most the provider may
generate for it, as the provider reads the request. On the unified front, the max_tokens the
backend is sent (Anthropic's 4096 default and its thinking budget, Gemini's thinking budget
and candidate count); a legacy completions batch, every prompt's completions; Gemini counts
written as JSON strings, as Google's proto3 JSON parser reads them. The reservation is read
from the `x-ratelimit-remaining-tokens` header of the request's own reply (each test keys
its budget on its own client id, so the budget was whole before it)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.harness import Gateway, Mock, add_route
from tests.integration.test_front import KEY, front_config

pytestmark = pytest.mark.envoy

BUDGET = 100_000
DEFAULT_MAX = 500
CLIENT = ["header:x-test-client"]
GEMINI = "/v1beta/models/gemini-2.5-flash:generateContent"


def _limits(limit: int = BUDGET) -> list[dict[str, Any]]:
    # a 30-day window refills a token every 26 s: the header reads the reservation exactly
    return [{"name": "tokens", "key": CLIENT, "tokens": [{"limit": limit, "per": "30d"}]}]


def config(base: Any) -> dict[str, Any]:
    doc = front_config(base, rate_limits=_limits())
    doc["limits"] = {"backend": "memory", "default_max_tokens": DEFAULT_MAX}
    doc["routes"] += [
        {"name": "rs-openai", "provider": "openai", "rate_limits": _limits()},
        {"name": "rs-small", "provider": "openai", "rate_limits": _limits(1000)},
        {"name": "rs-gemini", "provider": "gemini", "rate_limits": _limits()},
        {"name": "rs-anthropic", "provider": "anthropic", "rate_limits": _limits()},
        {"name": "rs-vertex", "provider": "vertex", "rate_limits": _limits()},
        {"name": "rs-stored", "provider": "openai", "rate_limits": _limits(),
         "allow_stored_context": True},
    ]
    return doc


def adjust(doc: dict[str, Any]) -> None:
    for route, cluster in (("rs-openai", "openai"), ("rs-small", "openai"),
                           ("rs-stored", "openai"),
                           ("rs-gemini", "gemini"), ("rs-vertex", "vertex"),
                           ("rs-anthropic", "anthropic")):
        add_route(doc, f"/{route}/", cluster, route)


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    base = tmp_path_factory.mktemp("reservations")
    gateway = Gateway(base, config(base), mock=mock, adjust=adjust)
    yield gateway
    gateway.close()


def who() -> dict[str, str]:
    return {"x-test-client": uuid.uuid4().hex, "x-mock-reply": "ok"}


def reserved(r: httpx.Response, limit: int = BUDGET) -> int:
    assert r.status_code == 200, r.text[:300]
    return limit - int(r.headers["x-ratelimit-remaining-tokens"])


def front(gw: Gateway, model: str, **body: Any) -> httpx.Response:
    return httpx.post(f"{gw.url}/v1/chat/completions", timeout=30,
                      headers={"authorization": f"Bearer {KEY}", **who()},
                      json={"model": model, "messages": [{"role": "user", "content": "hi"}],
                            **body})


@pytest.mark.parametrize(("body", "sent"), [
    ({}, 4096), ({"reasoning_effort": "high"}, 4096 + 24576),
    ({"reasoning_effort": "max"}, 4096 + 49152), ({"max_tokens": 2000}, 2000)])
def test_the_front_reserves_the_max_tokens_anthropic_is_sent(
        gw: Gateway, body: dict[str, Any], sent: int) -> None:
    before = gw.mock.last()
    r = front(gw, "claude-sonnet-4-5", **body)
    upstream = gw.mock.last()
    assert upstream is not None and upstream != before
    assert json.loads(upstream["body"])["max_tokens"] == sent
    assert reserved(r) == 1 + sent          # the prompt "hi" and every token Anthropic may write


@pytest.mark.parametrize(("body", "output"), [
    ({}, DEFAULT_MAX), ({"reasoning_effort": "high"}, DEFAULT_MAX + 24576),
    ({"max_tokens": 300, "n": 3}, 900), ({"max_completion_tokens": 300}, 300)])
def test_the_front_reserves_what_gemini_may_generate(gw: Gateway, body: dict[str, Any],
                                                    output: int) -> None:
    assert reserved(front(gw, "gemini-2.5-flash", **body)) == 1 + output
    # ...and sends it: a request naming no max is sent the bound it reserved (found by the
    # spend audit: the model's own limit bounded a reply whose usage never came back)
    sent = json.loads(gw.mock.last()["body"])["generationConfig"]
    assert sent["maxOutputTokens"] * sent.get("candidateCount", 1) == output


def test_a_completions_batch_reserves_every_prompts_completions(gw: Gateway) -> None:
    body = {"model": "gpt-3.5-turbo-instruct", "max_tokens": 100, "prompt": ["hi"] * 20}
    r = httpx.post(f"{gw.url}/rs-openai/v1/completions", json=body, headers=who(), timeout=30)
    assert reserved(r) == 10 + 20 * 100     # 40 characters of prompt, 100 tokens per prompt
    ids = {**body, "prompt": [[1, 2, 3, 4]] * 20, "n": 2}
    r = httpx.post(f"{gw.url}/rs-openai/v1/completions", json=ids, headers=who(), timeout=30)
    assert reserved(r) == 80 + 20 * 2 * 100
    # a budget smaller than the batch refuses it, as it refuses the same completions as n
    r = httpx.post(f"{gw.url}/rs-small/v1/completions", json=body, headers=who(), timeout=30)
    assert r.status_code == 429, r.text
    assert "more than the whole 'tokens' budget" in r.json()["error"]["message"]


@pytest.mark.parametrize("provider", ["gemini", "vertex"])
def test_gemini_counts_written_as_strings_are_reserved(gw: Gateway, provider: str) -> None:
    path = GEMINI if provider == "gemini" else \
        "/v1/projects/p/locations/l/publishers/google/models/gemini-2.5-flash:generateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "generationConfig": {"maxOutputTokens": "8000", "candidateCount": "3"}}
    r = httpx.post(f"{gw.url}/rs-{provider}{path}", json=body, headers=who(), timeout=30)
    assert reserved(r) == 1 + 3 * 8000
    body["generationConfig"] = {"maxOutputTokens": "60000", "candidateCount": "8"}
    r = httpx.post(f"{gw.url}/rs-{provider}{path}", json=body, headers=who(), timeout=30)
    assert r.status_code == 429, r.text
    assert "480001 tokens" in r.json()["error"]["message"]


@pytest.mark.parametrize(("route", "path", "body", "field"), [
    ("rs-openai", "/v1/chat/completions",
     {"model": "o4-mini", "messages": [{"role": "user", "content": "hi"}]},
     ("max_completion_tokens",)),
    ("rs-openai", "/v1/chat/completions",       # a model known not to reason: the older field
     {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}],
      "max_tokens": None}, ("max_tokens",)),
    ("rs-openai", "/v1/responses", {"model": "gpt-5", "input": "hi"}, ("max_output_tokens",)),
    ("rs-gemini", GEMINI, {"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                           "generationConfig": {"temperature": 0.5, "maxOutputTokens": 0}},
     ("generationConfig", "maxOutputTokens")),
    ("rs-vertex", "/v1/projects/p/locations/l/publishers/google/models/"
                  "gemini-2.5-flash:generateContent",
     {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
     ("generationConfig", "maxOutputTokens")),
])
def test_a_request_naming_no_max_is_sent_the_max_it_reserved(
        gw: Gateway, route: str, path: str, body: dict[str, Any], field: tuple[str, ...]) -> None:
    """Found by the spend audit: a request naming no max reserved `default_max_tokens` but
    the provider could generate up to the model's own maximum, and a client that left before
    the usage came was charged the reservation only, again and again. What is reserved is
    now written into the request the provider reads (`limits.write_max_tokens`)."""
    before = gw.mock.last()
    r = httpx.post(f"{gw.url}/{route}{path}", json=body, headers=who(), timeout=30)
    upstream = gw.mock.last()
    assert upstream is not None and upstream != before
    sent = json.loads(upstream["body"])
    for key in field:
        sent = sent[key]
    assert sent == DEFAULT_MAX
    assert reserved(r) == 1 + DEFAULT_MAX
    if route == "rs-gemini":   # the rest of the config is as the client wrote it
        assert json.loads(upstream["body"])["generationConfig"]["temperature"] == 0.5


def test_a_legacy_completion_naming_no_max_is_sent_openais_default(gw: Gateway) -> None:
    """Found by review: a legacy completion naming no `max_tokens` reserved the default
    but was sent as it was; OpenAI then generates 16 tokens, an OpenAI-compatible server
    (llama.cpp, Ollama) the rest of the context, which a client leaving before the usage
    came was never charged. OpenAI's default is now written, and reserved."""
    body = {"model": "gpt-3.5-turbo-instruct", "prompt": "hi"}
    r = httpx.post(f"{gw.url}/rs-openai/v1/completions", json=body, headers=who(), timeout=30)
    assert json.loads(gw.mock.last()["body"])["max_tokens"] == 16
    assert reserved(r) == 1 + 16
    r = httpx.post(f"{gw.url}/rs-openai/v1/completions", json={**body, "n": 3}, headers=who(),
                   timeout=30)
    assert json.loads(gw.mock.last()["body"])["max_tokens"] == 16
    assert reserved(r) == 1 + 3 * 16


def test_a_request_naming_its_max_is_sent_as_it_is(gw: Gateway) -> None:
    body = {"model": "o4-mini", "messages": [{"role": "user", "content": "hi"}],
            "max_tokens": 300}
    r = httpx.post(f"{gw.url}/rs-openai/v1/chat/completions", json=body, headers=who(),
                   timeout=30)
    sent = json.loads(gw.mock.last()["body"])
    assert sent["max_tokens"] == 300 and "max_completion_tokens" not in sent
    assert reserved(r) == 1 + 300


@pytest.mark.parametrize(("route", "path", "body", "field"), [
    ("rs-openai", "/v1/responses", {"model": "gpt-4o", "input": "go on",
                                    "previous_response_id": "resp_1"}, "previous_response_id"),
    ("rs-openai", "/v1/responses", {"model": "gpt-4o", "input": "go on",
                                    "conversation": "conv_1"}, "conversation"),
    ("rs-openai", "/v1/responses", {"model": "gpt-4o", "prompt": {"id": "pmpt_1"}},
     "prompt.id"),
    ("rs-openai", "/v1/responses", {"model": "gpt-4o", "input": [
        {"type": "item_reference", "id": "msg_1"},
        {"role": "user", "content": "go on"}]}, "an item_reference in input"),
    # (found by review) OpenAI's ItemReference makes its `type` optional: a bare id, or a
    # null type, names a stored item too; and instructions take items
    ("rs-openai", "/v1/responses", {"model": "gpt-4o", "input": [
        {"id": "msg_1"}, {"role": "user", "content": "go on"}]}, "an item_reference in input"),
    ("rs-openai", "/v1/responses", {"model": "gpt-4o", "input": [
        {"id": "rs_1", "type": None}, {"role": "user", "content": "go on"}]},
     "an item_reference in input"),
    ("rs-openai", "/v1/responses", {"model": "gpt-4o", "input": "go on", "instructions": [
        {"type": "item_reference", "id": "msg_1"}]}, "an item_reference in instructions"),
    ("rs-gemini", GEMINI, {"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                           "cachedContent": "cachedContents/abc"}, "cachedContent"),
])
def test_input_the_provider_keeps_is_refused_where_budgets_cannot_reserve_it(
        gw: Gateway, route: str, path: str, body: dict[str, Any], field: str) -> None:
    """Found by the spend audit: such input is billed but never crosses the gateway, so
    every one of many such requests sent at once fitted the budget on its prompt estimate,
    and together they spent it many times over before the first settled."""
    refused_before_upstream(gw, f"/{route}{path}", body, f"request refused: {field} (")


def refused_before_upstream(gw: Gateway, path: str, body: dict[str, Any],
                            opening: str) -> None:
    """`body` is refused with a 400 whose message opens with `opening` and names the
    route setting that allows it, and the provider never gets it."""
    before = gw.mock.last()
    r = httpx.post(f"{gw.url}{path}", json=body, headers=who(), timeout=30)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["message"].startswith(opening)
    assert "allow_stored_context" in error["message"]
    assert gw.mock.last() == before


def test_a_route_may_allow_input_the_provider_keeps(gw: Gateway) -> None:
    body = {"model": "gpt-4o", "input": "go on", "previous_response_id": "resp_1"}
    r = httpx.post(f"{gw.url}/rs-stored/v1/responses", json=body, headers=who(), timeout=30)
    assert reserved(r) == 2 + DEFAULT_MAX         # the input it sees, and the default max
    assert json.loads(gw.mock.last()["body"])["previous_response_id"] == "resp_1"


FILE_PART = {"type": "file", "file": {"file_id": "file-abc"}}


@pytest.mark.parametrize(("route", "path", "body", "field"), [
    ("rs-openai", "/v1/chat/completions", {"model": "gpt-4o", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "sum up"}, FILE_PART]}]},
     "messages[0].content[1].file.file_id (a file stored at the provider)"),
    ("rs-openai", "/v1/responses", {"model": "gpt-4o", "input": [{"role": "user", "content": [
        {"type": "input_file", "file_url": "https://x.test/report.pdf"}]}]},
     "input[0].content[0].file_url (a file the provider fetches from a URL)"),
    ("rs-anthropic", "/v1/messages", {"model": "claude-sonnet-4-5", "max_tokens": 10,
                                      "messages": [{"role": "user", "content": [
        {"type": "document", "source": {"type": "url", "url": "https://x.test/a.pdf"}},
        {"type": "text", "text": "sum up"}]}]},
     "messages[0].content[0].source.url (a document the provider fetches from a URL)"),
    ("rs-vertex", "/v1/projects/p/locations/l/publishers/google/models/gemini-2.5-flash"
                  ":generateContent",
     {"contents": [{"role": "user", "parts": [
         {"text": "sum up"},
         {"fileData": {"mimeType": "video/mp4", "fileUri": "gs://bucket/talk.mp4"}}]}]},
     "contents[0].parts[1].fileData.fileUri (a file the provider fetches, video/mp4)"),
])
def test_a_file_by_id_or_url_is_refused_where_budgets_cannot_reserve_it(
        gw: Gateway, route: str, path: str, body: dict[str, Any], field: str) -> None:
    """Found by the spend audit: the provider bills a file it fetches (a PDF of hundreds of
    pages, a video) as input the prompt estimate never saw."""
    refused_before_upstream(gw, f"/{route}{path}", body, f"request refused: {field}; ")


def test_images_by_url_inline_files_and_allowed_routes_go_through(gw: Gateway) -> None:
    image = {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}}
    inline = {"type": "file", "file": {"filename": "a.pdf",
                                       "file_data": "data:application/pdf;base64,JVBERi0K"}}
    for route, part in (("rs-openai", image), ("rs-openai", inline),
                        ("rs-stored", FILE_PART)):
        body = {"model": "gpt-4o", "messages": [{"role": "user", "content": [part]}]}
        r = httpx.post(f"{gw.url}/{route}/v1/chat/completions", json=body, headers=who(),
                       timeout=30)
        assert reserved(r) > 0
        assert json.loads(gw.mock.last()["body"])["messages"][0]["content"][0] == part


@pytest.mark.parametrize("model", ["gpt-4o-mini", "azure/my-deployment"])
def test_the_front_sends_an_openai_backend_the_max_it_reserved(gw: Gateway, model: str) -> None:
    assert reserved(front(gw, model)) == 1 + DEFAULT_MAX
    assert json.loads(gw.mock.last()["body"])["max_completion_tokens"] == DEFAULT_MAX


@pytest.mark.parametrize(("given", "sent"), [
    ({"max_completion_tokens": 0, "max_tokens": 7}, 7), ({"max_completion_tokens": 0}, None),
    ({"max_completion_tokens": 9, "max_tokens": 7}, 9)])
def test_the_front_sends_a_gemini_backend_the_max_it_reserved(
        gw: Gateway, given: dict[str, int], sent: int | None) -> None:
    """Found by review: `max_completion_tokens: 0` beside a `max_tokens` was read by the
    route as a max (so the front wrote none), while the Gemini translation sent
    `maxOutputTokens: 0`, which Gemini reads as unset (the model's own limit). A 0 names no
    max: the first that is not 0 is sent and reserved, else the default."""
    r = front(gw, "gemini-2.5-flash", **given)
    config = json.loads(gw.mock.last()["body"]).get("generationConfig", {})
    expected = sent if sent is not None else DEFAULT_MAX
    assert config.get("maxOutputTokens") == expected, config
    assert reserved(r) - 1 == expected            # (1 the prompt's estimate)
