"""Card numbers as people paste them, through the real Envoy (issue #8): a card number followed
by its expiry and CVC (or a phone number, or preceded by one) went out in clear both ways. With
the reference guard (pii: mask email, phone, card, us_ssn, iban) on OpenAI, Anthropic and
Gemini routes, the card number never reaches the provider in a prompt, nor the client in a
reply, whole or streamed in chunks of any size. The expiry and CVC are left as they are."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.harness import Gateway, Mock, add_route

pytestmark = pytest.mark.envoy

PROVIDERS = ("openai", "anthropic", "gemini")

# (pasted text, what must go out instead, pieces of the card number that must not go out)
VISA = ("4539 1488", "1488 0343", "0343 6467", "45391488", "03436467")
PASTED = [
    ("card 4539 1488 0343 6467 12/27 cvc 123", "card <CARD> 12/27 cvc 123", VISA),
    ("card 4539-1488-0343-6467 exp 12/2027 cvc 123", "card <CARD> exp 12/2027 cvc 123",
     ("4539-1488", "0343-6467", *VISA)),
    ("card 4539148803436467 12/27 123", "card <CARD> 12/27 123", VISA),
    ("amex 3714 496353 98431 04/28 1234", "amex <CARD> 04/28 1234",
     ("3714 4963", "496353", "98431")),
    ("card 4539 1488 0343 6467 555-123-4567 ok", "card <CARD> <PHONE> ok",
     (*VISA, "555-123")),
    ("call +44 20 7946 0958 6011 0009 9013 9424 12/27", "call <PHONE> <CARD> 12/27",
     ("7946", "6011 0009", "0009 9013", "9013 9424")),
    # the phone number runs into the card's first group: both are masked whole
    ("tel +33 1 23 45 67 89 4539 1488 0343 6467 12/27", "tel <PHONE><CARD> 12/27",
     ("45 67 89", *VISA)),
]
IDS = ["spaces", "dashes", "contiguous", "amex", "then-phone", "after-phone", "phone-into-card"]


def config() -> dict[str, Any]:
    guards = {"pii": {"detectors": ["email", "phone", "card", "us_ssn", "iban"],
                      "action": "mask"}}
    routes = [{"name": f"c-{p}", "provider": p, "guards": ["pii"]} for p in PROVIDERS]
    return {"server": {"max_request_body_bytes": 1048576}, "guards": guards, "routes": routes}


def adjust(doc: dict[str, Any]) -> None:
    for p in PROVIDERS:
        add_route(doc, f"/c-{p}/", p, f"c-{p}")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    gateway = Gateway(tmp_path_factory.mktemp("cards"), config(), mock=mock, adjust=adjust)
    yield gateway
    gateway.close()


def request(gw: Gateway, provider: str, text: str, *, stream: bool) -> tuple[str, dict[str, Any]]:
    """The URL and body of a chat request in the provider's format with `text` from the user."""
    if provider == "openai":
        return f"{gw.url}/c-openai/v1/chat/completions", {
            "model": "gpt-4o-mini", "stream": stream,
            "messages": [{"role": "user", "content": text}]}
    if provider == "anthropic":
        return f"{gw.url}/c-anthropic/v1/messages", {
            "model": "claude-sonnet-5-5", "max_tokens": 100, "stream": stream,
            "messages": [{"role": "user", "content": text}]}
    method = "streamGenerateContent?alt=sse" if stream else "generateContent"
    return f"{gw.url}/c-gemini/v1beta/models/gemini-2.5-flash:{method}", {
        "contents": [{"role": "user", "parts": [{"text": text}]}]}


def sent_user_text(provider: str, body: dict[str, Any]) -> str:
    if provider == "gemini":
        return body["contents"][0]["parts"][0]["text"]
    return body["messages"][0]["content"]


def events(raw: bytes) -> list[dict[str, Any]]:
    out = []
    for line in raw.replace(b"\r\n", b"\n").split(b"\n"):
        if line.startswith(b"data: ") and line[6:].strip() not in (b"[DONE]", b""):
            out.append(json.loads(line[6:]))
    return out


def reply_text(provider: str, raw: bytes, *, stream: bool) -> str:
    """The reply's text as the client reads it."""
    docs = events(raw) if stream else [json.loads(raw)]
    if provider == "openai":
        key = "delta" if stream else "message"
        return "".join(c[key].get("content") or "" for d in docs for c in d.get("choices", []))
    if provider == "anthropic":
        if stream:
            return "".join(d["delta"].get("text", "") for d in docs
                           if d.get("type") == "content_block_delta")
        return "".join(b.get("text", "") for d in docs for b in d["content"])
    return "".join(p.get("text", "") for d in docs for c in d.get("candidates", [])
                   for p in c["content"]["parts"])


def assert_no_piece(raw: bytes, pieces: tuple[str, ...]) -> None:
    for piece in pieces:
        assert piece.encode() not in raw, piece


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(("pasted", "masked", "pieces"), PASTED, ids=IDS)
def test_a_pasted_card_number_does_not_reach_the_provider(
        gw: Gateway, provider: str, pasted: str, masked: str, pieces: tuple[str, ...]) -> None:
    url, body = request(gw, provider, pasted, stream=False)
    r = httpx.post(url, json=body, timeout=30)
    assert r.status_code == 200, r.text
    last = gw.mock.last()
    assert last is not None
    assert sent_user_text(provider, json.loads(last["body"])) == masked
    assert_no_piece(last["body"].encode(), pieces)


def reply(gw: Gateway, provider: str, text: str, *, stream: bool,
          chunk_bytes: int | None) -> bytes:
    url, body = request(gw, provider, "hi", stream=stream)
    headers = {"x-mock-reply": text}
    if chunk_bytes is not None:
        headers["x-mock-chunk-bytes"] = str(chunk_bytes)
    with httpx.Client(timeout=60) as client, client.stream(
            "POST", url, json=body, headers=headers) as r:
        raw = b"".join(r.iter_raw())
        assert r.status_code == 200, raw
    return raw


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize(("pasted", "masked", "pieces"), PASTED, ids=IDS)
@pytest.mark.parametrize(("stream", "chunk_bytes"), [(True, 3), (True, None), (False, None),
                                                     (False, 2)],
                         ids=["stream-3-bytes", "stream", "whole", "whole-2-bytes"])
def test_a_card_number_in_a_reply_does_not_reach_the_client(
        gw: Gateway, provider: str, pasted: str, masked: str, pieces: tuple[str, ...],
        stream: bool, chunk_bytes: int | None) -> None:
    raw = reply(gw, provider, pasted, stream=stream, chunk_bytes=chunk_bytes)
    assert_no_piece(raw, pieces)
    assert reply_text(provider, raw, stream=stream) == masked


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_card_number_streamed_one_byte_at_a_time_does_not_reach_the_client(
        gw: Gateway, provider: str) -> None:
    pasted, masked, pieces = PASTED[0]
    raw = reply(gw, provider, f"Your card: {pasted}. Anything else?", stream=True,
                chunk_bytes=1)
    assert_no_piece(raw, pieces)
    assert reply_text(provider, raw, stream=True) == f"Your card: {masked}. Anything else?"


def test_no_state_left(gw: Gateway) -> None:
    stats = gw.server.wait_idle()
    assert stats["streams_active"] == 0 and stats["exchanges_alive"] == 0
