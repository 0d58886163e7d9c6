"""Bypasses found by the `probe` helper (issue #8), through the real Envoy.

1. Google's JSON reading accepts a single object where a repeated field is expected: Google's
   own cookbook (quickstarts/rest/System_instructions_REST.ipynb) sends
   `{"system_instruction": {"parts": {"text": ...}}, "contents": {"parts": {"text": ...}}}`
   and gets a reply. The gateway's Gemini adapter reads only lists there, so PII in such a
   body reaches the provider in clear, and its tokens are not counted in the token budget.
   Whatever the gateway does (read the object as a one-element list, or refuse with 400),
   the PII must not reach the provider and a 30,000-token prompt must not be admitted.
2. On a route whose pass-through list lets the model listings through (`GET .../models/*`,
   as the reference config does), `GET .../models/gemini-2.5-flash:generateContent` with a
   JSON body is a pass-through request: its body goes upstream unread, and the refusal of
   Google's `$httpMethod` (docs/security.md) is not applied, so
   `GET ...:generateContent?$httpMethod=POST` with PII in the body reaches Google, which reads
   it as the POST it names (no guard, no token budget). Likewise `x-http-method: POST`.
3. The output reservation ignores how many completions are asked for: OpenAI `n` and Gemini
   `candidateCount` multiply the output, but a request reserves `max_tokens` once, so
   `n: 50, max_tokens: 1000` (50,000 output tokens) is admitted by a 20,000-token budget.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.harness import Gateway, Mock, add_route

pytestmark = pytest.mark.envoy

EMAIL = "john.doe@example.com"
CARD = "4111 1111 1111 1111"
TEXT = f"mail {EMAIL} card {CARD}"
GEN = "/p-gemini/v1beta/models/gemini-2.5-flash:generateContent"
SSE = "/p-gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
BIG = "word " * 120_000                       # ~30,000 tokens at 4 characters a token


def config() -> dict[str, Any]:
    guards = {"pii": {"detectors": ["email", "phone", "card", "us_ssn", "iban"],
                      "action": "mask"}}
    budget = [{"name": "tokens", "key": ["route"], "tokens": [{"limit": 20000, "per": "1m"}]}]
    routes = [
        {"name": "p-gemini", "provider": "gemini", "guards": ["pii"],
         "passthrough": [{"path": "/p-gemini/v1beta/models"},
                         {"path": "/p-gemini/v1beta/models/*"}]},   # as the reference config
        {"name": "p-gbudget", "provider": "gemini", "rate_limits": budget},
        {"name": "p-obudget", "provider": "openai", "rate_limits": budget},
    ]
    return {"server": {"max_request_body_bytes": 4194304}, "guards": guards, "routes": routes}


def adjust(doc: dict[str, Any]) -> None:
    add_route(doc, "/p-gemini/", "gemini", "p-gemini")
    add_route(doc, "/p-gbudget/", "gemini", "p-gbudget")
    add_route(doc, "/p-obudget/", "openai", "p-obudget")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    gateway = Gateway(tmp_path_factory.mktemp("probe"), config(), mock=mock, adjust=adjust)
    yield gateway
    gateway.close()


def upstream_body(gw: Gateway, before: dict[str, Any] | None) -> str:
    """The body the provider received for this request ('' if it received nothing)."""
    last = gw.mock.last()
    if last is None or last == before:
        return ""
    return last["body"]


SINGLE_OBJECT_BODIES = {
    # Google's cookbook shape: both repeated fields given as one object
    "contents-and-parts-objects": {"contents": {"parts": {"text": TEXT}}},
    "parts-object": {"contents": [{"role": "user", "parts": {"text": TEXT}}]},
    "contents-object": {"contents": {"role": "user", "parts": [{"text": TEXT}]}},
    "system-instruction-parts-object": {
        "system_instruction": {"parts": {"text": TEXT}},
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
    "systemInstruction-parts-object": {
        "systemInstruction": {"parts": {"text": TEXT}},
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
}


@pytest.mark.parametrize("path", [GEN, SSE], ids=["generate", "stream"])
@pytest.mark.parametrize("body", SINGLE_OBJECT_BODIES.values(), ids=SINGLE_OBJECT_BODIES.keys())
def test_gemini_single_object_for_a_list_does_not_carry_pii_upstream(
        gw: Gateway, path: str, body: dict[str, Any]) -> None:
    before = gw.mock.last()
    r = httpx.post(gw.url + path, json=body, headers={"x-mock-reply": "echo"}, timeout=30)
    sent = upstream_body(gw, before)
    assert EMAIL not in sent and CARD not in sent, (r.status_code, sent)
    if r.status_code >= 400:
        assert r.status_code == 400, r.text       # refused clearly, in Google's format
        assert "error" in r.json()


@pytest.mark.parametrize("body", [
    {"contents": [{"role": "user", "parts": {"text": BIG}}]},
    {"systemInstruction": {"parts": {"text": BIG}},
     "contents": [{"role": "user", "parts": [{"text": "hi"}]}]},
], ids=["parts-object", "systemInstruction-parts-object"])
def test_gemini_single_object_prompt_is_budgeted(gw: Gateway, body: dict[str, Any]) -> None:
    before = gw.mock.last()
    r = httpx.post(gw.url + GEN.replace("/p-gemini/", "/p-gbudget/"), json=body, timeout=30)
    assert r.status_code in (400, 429), r.text[:300]
    assert upstream_body(gw, before) == "", "the provider received the request"


@pytest.mark.parametrize(("query", "headers"), [
    ("?$httpMethod=POST", {}), ("?%24httpMethod=POST", {}), ("", {"x-http-method": "POST"}),
    ("", {}),
], ids=["$httpMethod", "%24httpMethod", "x-http-method", "plain-get-with-body"])
def test_a_get_with_a_body_on_a_passthrough_path_does_not_carry_pii_upstream(
        gw: Gateway, query: str, headers: dict[str, str]) -> None:
    before = gw.mock.last()
    body = {"contents": [{"role": "user", "parts": [{"text": TEXT}]}]}
    r = httpx.request("GET", gw.url + GEN + query, json=body, timeout=30,
                      headers={"x-mock-reply": "echo", **headers})
    sent = upstream_body(gw, before)
    assert EMAIL not in sent and CARD not in sent, (r.status_code, sent)


def test_openai_n_multiplies_the_output_reservation(gw: Gateway) -> None:
    r = httpx.post(f"{gw.url}/p-obudget/v1/chat/completions", timeout=30, json={
        "model": "gpt-4o-mini", "n": 50, "max_tokens": 1000,
        "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 429, r.text[:300]


def test_gemini_candidate_count_multiplies_the_output_reservation(gw: Gateway) -> None:
    r = httpx.post(gw.url + GEN.replace("/p-gemini/", "/p-gbudget/"), timeout=30, json={
        "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
        "generationConfig": {"maxOutputTokens": 5000, "candidateCount": 8}})
    assert r.status_code == 429, json.dumps(r.json())[:300]
