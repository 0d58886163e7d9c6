"""The unified front's Anthropic backend against the docs, the Gemini backend and the native
Anthropic route (found by review, each failed on the code before its fix):

* with `drop_unsupported: true` the Anthropic backend left conversation content (an
  `input_audio` part, a part of an unknown type, a `function`-role message) and the legacy
  `functions` out of the request, where docs/unified-front.md says they are refused all the
  same, and the Gemini backend refuses them: the client now gets a 400 in OpenAI's format
  naming the field, in either mode;
* a front stream Anthropic ended with an `error` event threw away the counts its
  `message_start` reported: the budgets charged the gateway's estimate of the prompt (402
  tokens) where the native route, reading the same bytes, charges the 3,000 Anthropic
  reported. The front now charges what the native route charges.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from tests.unit import test_front_usage_unread as fu
from tests.unit.test_front_client_json import front_reply

_KEY = {"upstream_credential": {"env": "FAKE_KEY"}}

# ---- drop_unsupported: conversation content and the legacy functions ----------------------

CONTENT = {
    "input_audio": ({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "What does the speaker say in this clip?"},
        {"type": "input_audio", "input_audio": {
            "data": base64.b64encode(b"RIFF....WAVEfmt ").decode(), "format": "wav"}}]}]},
        "messages[0].content[1]"),
    "functions": ({"messages": [{"role": "user", "content": "weather?"}],
                   "functions": [{"name": "get_weather", "parameters": {"type": "object"}}],
                   "function_call": "auto"}, "functions"),
    "function_role": ({"messages": [
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": None, "function_call": {
            "name": "get_weather", "arguments": "{}"}},
        {"role": "function", "name": "get_weather", "content": "sunny, 30C"}]},
        "messages[1].function_call"),
    "unknown_part": ({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "describe the video"},
        {"type": "video_url", "video_url": {"url": "https://x/v.mp4"}}]}]},
        "messages[0].content[1]"),
}


async def _refusal(backend: str, doc: dict[str, Any],
                   monkeypatch: pytest.MonkeyPatch) -> tuple[int, dict[str, Any], str]:
    return await front_reply(doc, backend, monkeypatch, drop_unsupported=True)


@pytest.mark.parametrize("case", sorted(CONTENT))
async def test_drop_mode_refuses_conversation_content_on_anthropic(
        case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    doc, field = CONTENT[case]
    status, body, details = await _refusal("anthropic", doc, monkeypatch)
    assert status == 400, body
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["code"] == "unsupported_parameter"
    assert body["error"]["param"] == field
    assert details == "extproc_front_unsupported"


@pytest.mark.parametrize("case", ["functions", "function_role", "unknown_part"])
async def test_control_drop_mode_refuses_them_on_gemini(
        case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Control (passes): the Gemini backend refuses them (it takes audio input)."""
    status, body, _ = await _refusal("gemini", CONTENT[case][0], monkeypatch)
    assert status == 400 and body["error"]["code"] == "unsupported_parameter", body


# ---- an error event mid-stream: what the budgets charge -------------------------------------

def _frames_with_error(input_tokens: int, thinking: bool = False) -> list[bytes]:
    """The mock's 400-word stream, message_start reporting `input_tokens`, ended by an
    overloaded_error event before its blocks and message end."""
    out = []
    for frame in fu._anthropic_frames(True):
        head, _, data = frame.partition(b"data: ")
        doc = json.loads(data)
        if doc.get("type") == "message_start":
            doc["message"]["usage"]["input_tokens"] = input_tokens
        if doc.get("type") in ("content_block_stop", "message_delta", "message_stop"):
            continue
        out.append(head + b"data: " + json.dumps(doc).encode() + b"\n\n")
        if thinking and doc.get("type") == "message_start":
            out.append(b'event: content_block_start\ndata: {"type":"content_block_start",'
                       b'"index":9,"content_block":{"type":"thinking","thinking":""}}\n\n')
    out.append(b"event: error\ndata: " + json.dumps({"type": "error", "error": {
        "type": "overloaded_error", "message": "Overloaded"}}).encode() + b"\n\n")
    return out


async def _front_and_native(frames: list[bytes], thinking: bool,
                            monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, Any],
                                                                      dict[str, Any]]:
    front = await fu.charged(
        {"provider": "openai-compatible", "auth": "none", "backends": {"anthropic": _KEY},
         "models": [{"model": "front-*", "backend": "anthropic"}]},
        "/v1/chat/completions",
        {"model": "front-x", "stream": True, "max_completion_tokens": fu.ASK,
         "messages": fu.MSG, **({"reasoning_effort": "low"} if thinking else {})},
        frames, monkeypatch)
    native = await fu.charged(
        {"provider": "anthropic", "auth": "none", **_KEY}, "/v1/messages",
        {"model": "claude-x", "stream": True, "max_tokens": fu.ASK, "messages": fu.MSG,
         **({"thinking": {"type": "enabled", "budget_tokens": 1999}} if thinking else {})},
        frames, monkeypatch)
    assert front["ratelimit"]["reserved_tokens"] == native["ratelimit"]["reserved_tokens"]
    return front, native


async def test_an_error_event_on_the_front_charges_what_the_native_route_does(
        monkeypatch: pytest.MonkeyPatch) -> None:
    front, native = await _front_and_native(_frames_with_error(3000), False, monkeypatch)
    assert native["tokens_charged"] > 3000
    assert front["tokens_charged"] == native["tokens_charged"]


@pytest.mark.parametrize("input_tokens", [5, 3000])
async def test_an_error_event_of_a_thinking_request_charges_what_the_native_route_does(
        input_tokens: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """With thinking on, message_start's counts leave out what the model thought: the
    native route charges at least the reservation, and so does the front."""
    front, native = await _front_and_native(_frames_with_error(input_tokens, True), True,
                                            monkeypatch)
    assert native["tokens_charged"] >= native["ratelimit"]["reserved_tokens"]
    assert front["tokens_charged"] == native["tokens_charged"]
