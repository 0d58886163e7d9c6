"""Inputs a provider reads that a second spelling or a vLLM field hid from the policies
(found by a review, 2026-12-06), through the real Envoy:

- Gemini data giving its media type twice (`mimeType: image/png` beside `mime_type:
  application/pdf`): Google's parser keeps one, the gateway read the first, so a PDF passed a
  guard that lets images through unread, and the budgets' refusal of files by URI;
- `maxOutputTokens: 100` beside `max_output_tokens: 0`: the gateway read 100 and wrote no
  bound, Google may keep the 0 (unset: the model's own limit);
- vLLM's `prompt_embeds` (a completions prompt as a tensor) and `audio_embeds` /
  `video_embeds` chat parts: inputs no guard reads, forwarded on guarded routes.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.harness import Gateway, Mock, add_route

BUDGET = 100_000
DEFAULT_MAX = 500
CLIENT = ["header:x-test-client"]
EMBEDS = base64.b64encode(b"PK\x03\x04 torch.save of an embeddings tensor").decode()


def config() -> dict[str, Any]:
    limits = [{"name": "tokens", "key": CLIENT, "tokens": [{"limit": BUDGET, "per": "30d"}]}]
    return {"server": {"max_request_body_bytes": 1048576},
            "limits": {"backend": "memory", "default_max_tokens": DEFAULT_MAX},
            "guards": {"reject": {"detectors": ["email"], "action": "reject"},
                       "images": {"detectors": ["email"], "action": "reject",
                                  "allow_unread": ["image"]}},
            "routes": [{"name": "sp-guarded", "provider": "openai", "guards": ["reject"]},
                       {"name": "sp-gemini-guard", "provider": "gemini", "guards": ["images"]},
                       {"name": "sp-gemini-budget", "provider": "gemini",
                        "rate_limits": limits}]}


def adjust(doc: dict[str, Any]) -> None:
    add_route(doc, "/sp-guarded/", "openai", "sp-guarded")
    add_route(doc, "/sp-gemini-guard/", "gemini", "sp-gemini-guard")
    add_route(doc, "/sp-gemini-budget/", "gemini", "sp-gemini-budget")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    gateway = Gateway(tmp_path_factory.mktemp("spellings"), config(), mock=mock,
                      adjust=adjust)
    yield gateway
    gateway.close()


def _headers() -> dict[str, str]:
    return {"x-test-client": uuid.uuid4().hex, "x-mock-reply": "ok",
            "x-request-id": uuid.uuid4().hex}


def _post(gw: Gateway, path: str, body: dict[str, Any]) -> tuple[httpx.Response, bool]:
    """The reply, and whether the request reached the provider."""
    headers = _headers()
    r = httpx.post(f"{gw.url}{path}", json=body, headers=headers, timeout=30)
    last = gw.mock.last()
    return r, last is not None and last["headers"].get("x-request-id") == headers[
        "x-request-id"]


GEMINI = "/v1beta/models/gemini-2.5-flash:generateContent"
PDF_AS_IMAGE = [
    {"fileData": {"mimeType": "image/png", "mime_type": "application/pdf",
                  "fileUri": "https://example.com/contract.pdf"}},
    {"inlineData": {"mimeType": "image/png", "mime_type": "application/pdf",
                    "data": base64.b64encode(b"%PDF-1.7 ...").decode()}},
    {"file_data": {"mime_type": "image/png", "mimeType": "video/mp4",
                   "file_uri": "gs://bucket/clip.mp4"}},
]


@pytest.mark.parametrize("part", PDF_AS_IMAGE)
def test_data_of_two_media_types_is_read_as_each(gw: Gateway, part: dict[str, Any]) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "summarise"}, part]}]}
    r, forwarded = _post(gw, "/sp-gemini-guard" + GEMINI, body)
    assert r.status_code == 400 and not forwarded, r.text[:300]
    assert "unread" in r.text or "cannot read" in r.text
    image = {k: {**v, "mimeType": "image/png", "mime_type": "image/png"}
             for k, v in part.items()}
    body = {"contents": [{"role": "user", "parts": [{"text": "summarise"}, image]}]}
    r, forwarded = _post(gw, "/sp-gemini-guard" + GEMINI, body)
    assert r.status_code == 200 and forwarded, r.text[:300]   # an image in both: allowed


@pytest.mark.parametrize("part", [PDF_AS_IMAGE[0], PDF_AS_IMAGE[2]])
def test_a_file_of_two_media_types_is_not_an_image_to_the_budgets(
        gw: Gateway, part: dict[str, Any]) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "summarise"}, part]}]}
    r, forwarded = _post(gw, "/sp-gemini-budget" + GEMINI, body)
    assert r.status_code == 400 and not forwarded, r.text[:300]
    assert r.json()["error"]["message"].count("fetches") == 1


@pytest.mark.parametrize("generation", [
    {"generationConfig": {"maxOutputTokens": 100, "max_output_tokens": 0}},
    {"generationConfig": {"maxOutputTokens": 100}, "generation_config": {"maxOutputTokens": "0"}},
    {"generation_config": {"max_output_tokens": "0", "maxOutputTokens": 300}},
])
def test_a_zero_max_in_any_spelling_names_no_max(gw: Gateway,
                                                 generation: dict[str, Any]) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], **generation}
    r, forwarded = _post(gw, "/sp-gemini-budget" + GEMINI, body)
    assert r.status_code == 200 and forwarded, r.text[:300]
    sent = json.loads(gw.mock.last()["body"])
    counts = [c[k] for name in ("generationConfig", "generation_config")
              for c in [sent.get(name) or {}]
              for k in ("maxOutputTokens", "max_output_tokens") if k in c]
    assert counts and all(n == DEFAULT_MAX for n in counts), sent   # the bound, everywhere
    reserved = BUDGET - int(r.headers["x-ratelimit-remaining-tokens"])
    assert reserved == 1 + DEFAULT_MAX


def test_prompt_embeds_are_an_input_no_guard_reads(gw: Gateway) -> None:
    body = {"model": "meta-llama/Llama-3.1-8B-Instruct", "max_tokens": 16,
            "prompt_embeds": EMBEDS}
    r, forwarded = _post(gw, "/sp-guarded/v1/completions", body)
    assert r.status_code == 400 and not forwarded, r.text[:300]
    assert "file" in r.json()["error"]["message"]


def test_prompt_embeds_spelled_with_an_escape_are_read_too(gw: Gateway) -> None:
    """Found by the review of this fix: the walk ran only when the body's bytes held
    `prompt_embeds`, and `"prompt\\u005fembeds"` is the same key to a JSON parser."""
    headers = {**_headers(), "content-type": "application/json"}
    raw = ('{"model": "meta-llama/Llama-3.1-8B-Instruct", "max_tokens": 16, '
           f'"prompt\\u005fembeds": "{EMBEDS}"}}').encode()
    assert b"prompt_embeds" not in raw
    r = httpx.post(f"{gw.url}/sp-guarded/v1/completions", content=raw, headers=headers,
                   timeout=30)
    last = gw.mock.last()
    assert r.status_code == 400, r.text[:300]
    assert last is None or last["headers"].get("x-request-id") != headers["x-request-id"]


@pytest.mark.parametrize(("kind", "name"), [("audio_embeds", "audio"),
                                            ("video_embeds", "a video")])
def test_vllm_media_embeddings_are_inputs_no_guard_reads(gw: Gateway, kind: str,
                                                         name: str) -> None:
    body = {"model": "Qwen/Qwen2-Audio-7B-Instruct", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "transcribe"},
                                     {"type": kind, kind: EMBEDS}]}]}
    r, forwarded = _post(gw, "/sp-guarded/v1/chat/completions", body)
    assert r.status_code == 400 and not forwarded, r.text[:300]
    assert name in r.json()["error"]["message"]
