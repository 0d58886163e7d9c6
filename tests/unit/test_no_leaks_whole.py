"""No secret a model writes reaches the client in clear in a whole (non-streamed) JSON reply
(issue #8, item 7): every generating endpoint, every text the client can read, in any of
several choices, candidates, blocks or output items; the reply cut at random points
(FULL_DUPLEX_STREAMED) or buffered (STREAMED routes are switched to BUFFERED so the headers
can wait for the verdict). An e-mail is masked; an AWS key refuses the reply (400) without
repeating it. The exchange playing them and the checks are in `tests.leak_replies`.

To look deeper: ``NO_LEAKS_SCALE=20 pytest tests/unit/test_no_leaks_whole.py``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extproc import protocol as P
from tests.leak_replies import KINDS, Format, _message, _out_text, _response
from tests.leak_results import RESULTS
from tests.leaks import ARGUMENT_ESCAPES, EMAILS, KEYS, KNOWN, KNOWN_LIMIT, around, placed
from tests.unit.test_no_leaks_streams import check, play

SCALE = int(os.environ.get("NO_LEAKS_SCALE", "1"))
Doc = dict[str, Any]
#: (text, choices, the one that writes it) -> the reply
Build = Callable[[str, int, int], Doc]
ARGUMENTS = ("tool-call-arguments", "function-call-arguments", "function-call",
             "tool-use-input", "server-tool-use-input", "mcp-call-arguments")


def chat(field: Callable[[str], Doc]) -> Build:
    def build(text: str, n: int, target: int) -> Doc:
        choices = [{"index": i, "message": {"role": "assistant", "content": f"fine {i}.",
                                            "refusal": None},
                    "logprobs": None, "finish_reason": "stop"} for i in range(n)]
        choices[target]["message"] = {"role": "assistant", "content": None, "refusal": None,
                                      **field(text)}
        return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1,
                "model": "gpt-4o-mini", "choices": choices,
                "usage": {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14}}
    return build


CHAT = {
    "content": chat(lambda t: {"content": t}),
    "refusal": chat(lambda t: {"refusal": t}),
    "reasoning-content": chat(lambda t: {"content": "ok", "reasoning_content": t}),
    "tool-call-arguments": chat(lambda t: {"tool_calls": [
        {"id": "call_0", "type": "function", "function": {"name": "f", "arguments": "{}"}},
        {"id": "call_1", "type": "function", "function": {"name": "send", "arguments": t}}]}),
    "function-call-arguments": chat(lambda t: {"function_call": {"name": "send",
                                                                 "arguments": t}}),
    "audio-transcript": chat(lambda t: {"audio": {"id": "audio_1", "data": "UklGRg==",
                                                  "expires_at": 1, "transcript": t}}),
    # as OpenAI-compatible servers write them: lists of parts, an object
    "content-parts": chat(lambda t: {"content": [{"type": "text", "text": t}]}),
    "refusal-parts": chat(lambda t: {"refusal": [{"type": "refusal", "refusal": t}]}),
    "reasoning-parts": chat(lambda t: {"content": "ok", "reasoning_content": [
        {"type": "text", "text": t}]}),
    "reasoning-object": chat(lambda t: {"content": "ok", "reasoning": {"text": t}}),
    "content-object": chat(lambda t: {"content": {"type": "text", "text": t}}),
}


def completions(text: str, n: int, target: int) -> Doc:
    return {"id": "cmpl-1", "object": "text_completion", "created": 1,
            "model": "gpt-3.5-turbo-instruct", "choices": [
                {"text": text if i == target else f"fine {i}.", "index": i,
                 "logprobs": None, "finish_reason": "stop"} for i in range(n)]}


def responses(item: Callable[[str], Doc]) -> Build:
    def build(text: str, n: int, target: int) -> Doc:
        items = [_message(_out_text(f"fine {i}.")) for i in range(n)]
        items[target] = item(text)
        return _response("completed", items)
    return build


def anthropic(block: Callable[[str], Doc]) -> Build:
    def build(text: str, n: int, target: int) -> Doc:
        content = [{"type": "text", "text": f"fine {i}."} for i in range(n)]
        content[target] = block(text)
        return {"id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
                "content": content, "stop_reason": "end_turn", "stop_sequence": None,
                "usage": {"input_tokens": 5, "output_tokens": 9}}
    return build


ANTHROPIC = {
    "text": anthropic(lambda t: {"type": "text", "text": t}),
    "thinking": anthropic(lambda t: {"type": "thinking", "thinking": t, "signature": "c2ln"}),
    "tool-use-input": anthropic(lambda t: {"type": "tool_use", "id": "toolu_1",
                                           "name": "send", "input": json.loads(t)}),
    "server-tool-use-input": anthropic(lambda t: {
        "type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search",
        "input": json.loads(t)}),
    **{name: anthropic(block) for name, block in RESULTS.items()},
}


def google(part: Callable[[str], Doc]) -> Build:
    def build(text: str, n: int, target: int) -> Doc:
        return {"candidates": [{"index": i, "finishReason": "STOP", "content": {
            "role": "model", "parts": [part(text) if i == target else {"text": f"fine {i}."}]}}
            for i in range(n)], "modelVersion": "gemini-2.5-flash",
            "usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 9,
                              "totalTokenCount": 14}}
    return build


GOOGLE = {
    "text": google(lambda t: {"text": t}),
    # Vertex streams these; a whole reply that holds them anyway is read too
    "partial-args": google(lambda t: {"functionCall": {"partialArgs": [
        {"jsonPath": "$.to", "stringValue": t}]}}),
    "thought": google(lambda t: {"text": t, "thought": True}),
    "function-call": google(lambda t: {"functionCall": {"name": "send",
                                                        "args": json.loads(t)}}),
    "executable-code": google(lambda t: {"executableCode": {"language": "PYTHON", "code": t}}),
    "code-execution-result": google(lambda t: {"codeExecutionResult": {
        "outcome": "OUTCOME_OK", "output": t}}),
}


def _one(doc: Any) -> bytes:
    return json.dumps(doc[0] if isinstance(doc, list) else doc, indent=2).encode()


_J = "application/json"
_CHAT = {"model": "gpt-4o-mini", "n": 3, "messages": [{"role": "user", "content": "hi"}]}
_GOOGLE = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
           "generationConfig": {"candidateCount": 3}}
_VP = "/v1/projects/p/locations/l/publishers/google/models/gemini-2.5-flash:generateContent"
FORMATS = {
    "openai-chat": (Format("openai", "/v1/chat/completions", _CHAT, _one, _J), CHAT),
    "azure-chat": (Format("azure", "/openai/deployments/d/chat/completions?api-version=1",
                          _CHAT, _one, _J), CHAT),
    "openai-completions": (Format("openai", "/v1/completions", {
        "model": "gpt-3.5-turbo-instruct", "prompt": "hi", "n": 3}, _one, _J),
        {"text": completions}),
    "openai-responses": (Format("openai", "/v1/responses", {
        "model": "gpt-4o-mini", "input": "hi"}, _one, _J),
        {k: responses(v.item) for k, v in KINDS.items()}),
    "azure-responses": (Format("azure", "/openai/v1/responses", {
        "model": "gpt-4o-mini", "input": "hi"}, _one, _J),
        {k: responses(v.item) for k, v in KINDS.items()}),
    "anthropic": (Format("anthropic", "/v1/messages", {
        "model": "claude-x", "max_tokens": 99, "messages": [
            {"role": "user", "content": "hi"}]}, _one, _J), ANTHROPIC),
    "gemini": (Format("gemini", "/v1beta/models/gemini-2.5-flash:generateContent", _GOOGLE,
                      _one, _J), GOOGLE),
    "vertex": (Format("vertex", _VP, _GOOGLE, _one, _J), GOOGLE),
}
CASES = [(fmt, field) for fmt, (_, fields) in FORMATS.items() for field in fields]
ARGUMENTS_KINDS = ("function-call", "mcp-call-arguments")


def text_of(fmt: str, field: str, text: str) -> str:
    if field in ARGUMENTS or ("responses" in fmt and field in ARGUMENTS_KINDS):
        return json.dumps({"to": text, "n": 1})
    return text


@pytest.mark.parametrize(("fmt", "field"), CASES, ids=[f"{f}-{x}" for f, x in CASES])
@pytest.mark.parametrize("mode", [P.STREAMED, P.FULL_DUPLEX], ids=["buffered", "duplex"])
def test_every_whole_reply_field_is_masked_and_refused(fmt: str, field: str,
                                                       mode: int) -> None:
    spec, fields = FORMATS[fmt]
    for secret, key in ((EMAILS[0], False), (KEYS[0], True)):
        doc = fields[field](text_of(fmt, field, around(secret)), 3, 1)
        check(play(spec, [doc], [17, 80, 200], mode), secret, key)


@settings(max_examples=150 * SCALE, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(case=st.sampled_from(CASES), data=st.data())
def test_no_secret_in_a_whole_reply_reaches_the_client(case: tuple[str, str],
                                                       data: st.DataObject) -> None:
    fmt, field = case
    spec, fields = FORMATS[fmt]
    key = data.draw(st.booleans())
    secret = data.draw(st.sampled_from(KEYS if key else EMAILS))
    args = field in ARGUMENTS or ("responses" in fmt and field in ARGUMENTS_KINDS)
    text = text_of(fmt, field, data.draw(placed(secret, escaped=not args)))
    n = data.draw(st.integers(1, 3))
    doc = fields[field](text, n, data.draw(st.integers(0, n - 1)))
    mode = data.draw(st.sampled_from([P.STREAMED, P.FULL_DUPLEX]))
    cuts = data.draw(st.lists(st.integers(0, 4000), max_size=8))
    check(play(spec, [doc], cuts, mode), secret, key)


# --- the known limit: escapes inside JSON argument strings ------------------------------

ARG_CASES = [pytest.param(fmt, field, v, id=f"{fmt}-{field}-{v[0]}", marks=[KNOWN] * (
    v[0] in KNOWN_LIMIT)) for fmt, field in CASES
    if fmt in ("openai-chat", "openai-responses") and (
        field in ARGUMENTS or field in ARGUMENTS_KINDS) for v in ARGUMENT_ESCAPES]


@pytest.mark.parametrize(("fmt", "field", "variant"), ARG_CASES)
def test_escapes_inside_whole_reply_arguments_hide_no_secret(
        fmt: str, field: str, variant: tuple[str, str, str, str]) -> None:
    _, kind, shape, escaped = variant
    secret = EMAILS[0] if kind == "email" else KEYS[0]
    args = text_of(fmt, field, shape.format(secret))
    if escaped:
        args = args.replace(escaped, f"\\u{ord(escaped):04x}")
    spec, fields = FORMATS[fmt]
    check(play(spec, [fields[field](args, 2, 1)], [], P.STREAMED), secret, kind == "key")
