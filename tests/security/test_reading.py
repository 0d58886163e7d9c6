"""What the gateway cannot classify or read is refused, through the real Envoy (issue #8,
items 1 and 2): endpoints no adapter understands, targets spelled so the provider would read
them differently, bodies compressed, invalid, ambiguous or absurdly deep, and replies the
guards cannot read. Each refusal is in the client's own error format, and the provider never
sees the request; what is read is read the provider's way (the canonical target goes
upstream), so a spelling never switches a guard off."""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import brotli
import httpx
import pytest
import zstandard

from tests.harness import Gateway, Mock, add_route

pytestmark = pytest.mark.envoy

EMAIL = "john.doe@example.com"
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
MODEL_PATH = "/gemini/v1beta/models/gemini-2.5-flash"
CHAT = "/openai/v1/chat/completions"


def config() -> dict[str, Any]:
    guards = {"secrets": {"detectors": ["secrets"], "action": "reject"},
              "pii": {"detectors": ["email", "phone", "card"], "action": "mask"}}
    routes_ = [{"name": p, "provider": p, "guards": ["secrets", "pii"]}
               for p in ("openai", "azure", "anthropic", "gemini", "vertex")]
    routes_.append({"name": "gemini-array", "provider": "gemini",
                    "streams": {"json_array_to_sse": False}, "guards": ["secrets", "pii"]})
    routes_.append({"name": "models", "provider": "openai", "guards": ["pii"],
                    "passthrough": [{"path": "/models/v1/models"}]})
    return {"server": {"max_request_body_bytes": 1048576}, "guards": guards,
            "routes": routes_}


def adjust(doc: dict[str, Any]) -> None:
    add_route(doc, "/gemini-array/", "gemini", "gemini-array")
    add_route(doc, "/models/", "openai", "models")
    add_route(doc, "/ghost/", "openai", "no-such-route")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    gateway = Gateway(tmp_path_factory.mktemp("reading"), config(), mock=mock, adjust=adjust)
    yield gateway
    gateway.close()


def mark(gw: Gateway) -> None:
    """Make the mock's last request a known one, so a refused request is seen not to reach
    it (the mock keeps the last request it got)."""
    httpx.post(f"{gw.mock.url}/v1/chat/completions", json={
        "model": "m", "messages": [{"role": "user", "content": "marker"}]}, timeout=10)


def reached(gw: Gateway) -> bool:
    last = gw.mock.last()
    return last is not None and "marker" not in last["body"]


def chat(content: str) -> dict[str, Any]:
    return {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]}


def no_traceback(gw: Gateway) -> None:
    assert gw.server is not None
    assert "Traceback" not in gw.server.proc.log()


# === endpoints ==============================================================================


@pytest.mark.parametrize(("method", "path", "fmt"), [
    ("POST", "/openai/v1/files", "openai"),
    ("POST", "/openai/v1/chat/completions/", "openai"),
    ("GET", "/openai/v1/chat/completions", "openai"),
    ("POST", "/openai/v1/images/generations", "openai"),
    ("POST", "/anthropic/v1/messages/batches", "anthropic"),
    ("POST", "/anthropic/v1/complete", "anthropic"),
    ("POST", f"{MODEL_PATH}:predict", "google"),
    ("POST", "/gemini/v1beta/cachedContents", "google"),
    ("POST", "/azure/openai/deployments/d/images/generations", "openai"),
    ("POST", "/models/v1/models", "openai"),       # the pass-through is GET only
])
def test_unknown_endpoints_are_refused_unforwarded(gw: Gateway, method: str, path: str,
                                                   fmt: str) -> None:
    mark(gw)
    r = httpx.request(method, gw.url + path, json=chat(f"to {EMAIL}"), timeout=30)
    assert r.status_code == 404, r.text
    error = r.json()["error"]
    message = error["message"]
    assert "does not serve" in message
    if fmt == "google":
        assert error["status"] == "NOT_FOUND"
    elif fmt == "anthropic":
        assert r.json()["type"] == "error" and error["type"] == "not_found_error"
    else:
        assert error["type"] == "not_found_error"
    assert not reached(gw)


def test_a_passthrough_path_is_forwarded_with_no_body_policy(gw: Gateway) -> None:
    r = httpx.get(f"{gw.url}/models/v1/models", timeout=30)
    last = gw.mock.last()
    assert last is not None and last["path"] == "/v1/models"
    assert r.status_code in (200, 404)        # whatever the provider says about it


def test_a_request_on_no_configured_route_is_a_neutral_404(gw: Gateway) -> None:
    mark(gw)
    r = httpx.post(f"{gw.url}/ghost/v1/chat/completions", json=chat("hi"), timeout=30)
    assert r.status_code == 404
    assert r.json()["error"]["type"] == "gateway_error"
    assert "no-such-route" in r.json()["error"]["message"]
    assert not reached(gw)
    no_traceback(gw)


# === spellings ==============================================================================

STREAM_REPLY = {"x-mock-reply": f"write to {EMAIL} soon", "x-mock-chunk-bytes": "7"}


@pytest.mark.parametrize("path", [
    f"{MODEL_PATH}%3AstreamGenerateContent",
    f"{MODEL_PATH}%3astreamGenerateContent?alt=sse",
    f"{MODEL_PATH}:streamGenerateContent?%61lt=sse",
    f"{MODEL_PATH}:streamGenerateContent?$alt=sse",
    "/gemini/v1beta/models/gemini-2.5-fl%61sh:streamGenerateContent",
])
def test_a_spelled_path_is_read_and_guarded_the_providers_way(gw: Gateway, path: str) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": f"mail {EMAIL}"}]}]}
    r = httpx.post(gw.url + path, json=body, headers=STREAM_REPLY, timeout=30)
    assert r.status_code == 200, r.text
    assert EMAIL not in r.text and "<EMAIL>" in r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    last = gw.mock.last()
    assert last is not None
    assert EMAIL not in last["body"]
    # what went upstream is the canonical path: the provider reads what we read (the query
    # goes as sent: it is read the same by both, percent-decoded)
    upstream_path = last["raw_path"].partition("?")[0]
    assert "%3" not in upstream_path and "%61" not in upstream_path
    assert last["path"].endswith("gemini-2.5-flash:streamGenerateContent")


@pytest.mark.parametrize("query", ["alt=sse&alt=json", "alt=json&alt=sse", "alt=sse&$alt=json",
                                   "alt=proto", "alt=media"])
def test_an_ambiguous_alt_is_refused(gw: Gateway, query: str) -> None:
    mark(gw)
    r = httpx.post(f"{gw.url}{MODEL_PATH}:streamGenerateContent?{query}",
                   json={"contents": [{"parts": [{"text": "hi"}]}]}, timeout=30)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert not reached(gw)


@pytest.mark.parametrize("path", [
    "/openai/v1%2Fchat/completions", "/openai/v1/chat%2fcompletions",
    "/openai/v1/chat%5Ccompletions",
    "/openai/v1/chat/completions%3Fx", "/openai/v1/chat/completions%23x",
    "/openai/v1/chat/c%25ompletions",
])
def test_encoded_separators_never_reach_the_provider(gw: Gateway, path: str) -> None:
    mark(gw)
    r = httpx.post(gw.url + path, json=chat(f"to {EMAIL}"), timeout=30)
    assert r.status_code in (400, 404), r.text
    assert not reached(gw)


def test_a_json_array_reply_is_guarded_without_the_sse_rewrite(gw: Gateway) -> None:
    """A route that keeps Gemini's JSON-array streams as arrays still masks them (buffered)
    and refuses a secret in them."""
    path = "/gemini-array/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    r = httpx.post(gw.url + path, json=body, headers=STREAM_REPLY, timeout=30)
    assert r.status_code == 200, r.text
    assert EMAIL not in r.text and "<EMAIL>" in r.text
    assert isinstance(r.json(), list)
    r = httpx.post(gw.url + path, json=body, timeout=30, headers={
        "x-mock-reply": f"the key is {AWS_KEY}", "x-mock-chunk-bytes": "5"})
    assert AWS_KEY not in r.text
    assert r.status_code == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT"


# === bodies =================================================================================

ENCODERS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": gzip.compress, "deflate": zlib.compress, "br": brotli.compress,
    "zstd": lambda b: zstandard.ZstdCompressor().compress(b),
}


@pytest.mark.parametrize("coding", sorted(ENCODERS))
def test_a_compressed_prompt_is_decoded_and_masked(gw: Gateway, coding: str) -> None:
    raw = json.dumps(chat(f"write to {EMAIL} please")).encode()
    r = httpx.post(gw.url + CHAT, content=ENCODERS[coding](raw), timeout=30, headers={
        "content-type": "application/json", "content-encoding": coding})
    assert r.status_code == 200, r.text
    last = gw.mock.last()
    assert last is not None
    assert "content-encoding" not in last["headers"]
    sent = json.loads(last["body"])
    assert sent["messages"][0]["content"] == "write to <EMAIL> please"


def test_a_compressed_secret_is_refused(gw: Gateway) -> None:
    mark(gw)
    raw = json.dumps(chat(f"key {AWS_KEY}")).encode()
    r = httpx.post(gw.url + CHAT, content=gzip.compress(raw), timeout=30, headers={
        "content-type": "application/json", "content-encoding": "gzip"})
    assert r.status_code == 400 and AWS_KEY not in r.text
    assert not reached(gw)


@pytest.mark.parametrize(("body", "headers", "status"), [
    (b'{"model":"m","messages":[{"role":"user","content":"x"}', {}, 400),        # cut short
    (b'[{"role":"user","content":"hi"}]', {}, 400),                                # not an object
    (b'{"model":"m","messages":[{"role":"user","content":"a","content":"' + EMAIL.encode()
     + b'"}]}', {}, 400),                                                          # duplicate key
    (b'{"model":"m","temperature":NaN,"messages":[]}', {}, 400),
    # Infinity in disguise (deny audit): a number too large for a double
    (b'{"model":"m","temperature":1e999,"messages":[{"role":"user","content":"'
     + EMAIL.encode() + b'"}]}', {}, 400),
    (b'{"model":"m","top_p":-1.5E400,"messages":[]}', {}, 400),
    (b"[" * 200_000, {}, 400),                                                     # deep
    (gzip.compress(b"{}"), {"content-encoding": "compress"}, 415),                 # unknown
    (b"not gzip at all", {"content-encoding": "gzip"}, 400),
    (gzip.compress(b" " * 3_000_000), {"content-encoding": "gzip"}, 413),          # a bomb
])
def test_unreadable_bodies_are_refused_in_the_providers_format(
        gw: Gateway, body: bytes, headers: dict[str, str], status: int) -> None:
    mark(gw)
    r = httpx.post(gw.url + CHAT, content=body, timeout=30,
                   headers={"content-type": "application/json", **headers})
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["type"] in ("invalid_request_error", "request_too_large")
    assert EMAIL not in r.text
    assert not reached(gw)
    no_traceback(gw)


def test_a_huge_number_never_goes_upstream_as_infinity(gw: Gateway) -> None:
    """`1e999` read as a double is infinity: accepted, a masking guard's rewrite then sent
    the literal `Infinity` (not JSON) upstream. Refused as `Infinity` is; `1e308` still
    reads as the number it is."""
    literal = b'{"model":"gpt-4o-mini","temperature":Infinity,"messages":[]}'
    for body in (literal, literal.replace(b"Infinity", b"1e999")):
        mark(gw)
        r = httpx.post(gw.url + CHAT, content=body, timeout=30)
        assert r.status_code == 400 and "Infinity" in r.json()["error"]["message"], r.text
        assert not reached(gw)
    mark(gw)
    r = httpx.post(gw.url + CHAT, timeout=30, content=b'{"model":"gpt-4o-mini","temperature":'
                   b'1e308,"messages":[{"role":"user","content":"mail ' + EMAIL.encode()
                   + b'"}]}')
    assert r.status_code == 200, r.text
    sent = gw.mock.last()
    assert sent is not None and "Infinity" not in sent["body"] and EMAIL not in sent["body"]
    assert json.loads(sent["body"])["temperature"] == 1e308


def test_unreadable_bodies_speak_each_providers_format(gw: Gateway) -> None:
    r = httpx.post(f"{gw.url}/anthropic/v1/messages", content=b"[1]", timeout=30)
    assert r.status_code == 400 and r.json()["type"] == "error"
    r = httpx.post(f"{gw.url}{MODEL_PATH}:generateContent", content=b"{", timeout=30)
    assert r.status_code == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT"
