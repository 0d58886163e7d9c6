r"""#8: the guards read tool-call arguments as the tool reads them. JSON escapes in the
arguments text (``\u0040``, ``\u0041KIA...``, ``\n`` inside a PEM block) no longer hide a value
from a guard: in a request (OpenAI tool calls and legacy function calls of earlier assistant
turns, Responses ``function_call`` / ``mcp_call`` items), in a whole reply, and in a stream
cut anywhere (OpenAI tool-call deltas, Anthropic ``input_json_delta``, Responses
``function_call_arguments`` deltas), masked as valid JSON or refused."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.codecs.jsonescape import decode_escapes
from extproc.exchange import Exchange
from extproc.guards.reframe_responses import ResponsesMaskingReframer
from extproc.guards.replies import WholeJsonGuard
from extproc.guards.stream import StreamMasker
from extproc.policy import Reject
from extproc.providers.endpoints import classify
from extproc.reading import canonical_target
from tests.unit.test_guard_fields import (
    PATHS,
    SCANNER,
    _tool_args,
    anthropic_case,
    field_text,
    guards,
    openai_case,
    reframe,
    wire,
)
from tests.unit.test_guard_reframe_responses import build, readable

EMAIL = "jane.roe@example.org"
KEY = "AKIAIOSFODNN7EXAMPLE"
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx1\n-----END RSA PRIVATE KEY-----"
#: the arguments a model may write: every value hidden by an escape (the PEM block's line
#: ends are `\n` escapes, as JSON writes them)
ARGS = ('{"to": "jane.roe\\u0040example.org", "key": "\\u0041KIAIOSFODNN7EXAMPLE", '
        '"pem": ' + json.dumps(PEM) + ', "url": "https:\\/\\/x.test\\/caf\\u00e9"}')
VALUE = {"to": EMAIL, "key": KEY, "pem": PEM, "url": "https://x.test/café"}
MASKED = {"to": "<EMAIL>", "key": "<SECRET>", "pem": "<SECRET>", "url": "https://x.test/café"}
#: what the masked text is on the wire: the masked strings re-encoded, the rest as it came
ARGS_MASKED = ('{"to": "<EMAIL>", "key": "<SECRET>", "pem": "<SECRET>", '
               '"url": "https:\\/\\/x.test\\/caf\\u00e9"}')
RESPONSES_PATH = "/v1/responses"


def test_the_arguments_hide_the_values_from_a_raw_reading() -> None:
    assert json.loads(ARGS) == VALUE and json.loads(ARGS_MASKED) == MASKED
    for raw in (EMAIL, KEY, PEM):
        assert raw not in ARGS


def no_value(text: str) -> None:
    """Nothing of the values in `text`, escapes decoded."""
    decoded = decode_escapes(decode_escapes(text))   # also what JSON in JSON would spell
    for fragment in ("jane", "roe@", "example.org", "AKIA", "FODNN7", "MIIEow"):
        assert fragment not in decoded, fragment


def exchange(path: str) -> Exchange:
    ex = Exchange(route=None)
    ex.request_headers = {":path": path}
    if path == RESPONSES_PATH:
        ex.endpoint = classify("openai", "POST", canonical_target(path))
    return ex


# ---------------------------------------------------------------------------- requests

HI = {"role": "user", "content": "hi"}
REQUESTS: list[tuple[str, str, dict[str, Any], Any]] = [
    ("openai-tool-call", PATHS["openai"], {"model": "m", "messages": [HI, {
        "role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "send", "arguments": ARGS}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sent"}]},
     lambda b: b["messages"][1]["tool_calls"][0]["function"]["arguments"]),
    ("openai-function-call", PATHS["openai"], {"model": "m", "messages": [HI, {
        "role": "assistant", "content": None,
        "function_call": {"name": "send", "arguments": ARGS}},
        {"role": "function", "name": "send", "content": "sent"}]},
     lambda b: b["messages"][1]["function_call"]["arguments"]),
    ("responses-function-call", RESPONSES_PATH, {"model": "m", "input": [
        {"role": "user", "content": "hi"},
        {"type": "function_call", "call_id": "c1", "name": "send", "arguments": ARGS},
        {"type": "function_call_output", "call_id": "c1", "output": "sent"}]},
     lambda b: b["input"][1]["arguments"]),
    ("responses-mcp-call", RESPONSES_PATH, {"model": "m", "input": [
        {"role": "user", "content": "hi"},
        {"type": "mcp_call", "id": "mcp_1", "server_label": "s", "name": "send",
         "arguments": ARGS, "output": "sent"}]},
     lambda b: b["input"][1]["arguments"]),
]


@pytest.mark.parametrize(("path", "body", "args"), [(p, b, a) for _, p, b, a in REQUESTS],
                         ids=[i for i, _, _, _ in REQUESTS])
async def test_escaped_arguments_in_a_request_are_masked_and_refused(
        path: str, body: dict[str, Any], args: Any) -> None:
    provider = "openai"
    raw = json.dumps(body).encode()
    out = await guards("mask", provider).on_request_body(exchange(path), raw)
    assert out is not None
    sent = json.loads(out)
    assert args(sent) == ARGS_MASKED            # valid JSON, only the masked values rewritten
    no_value(out.decode())
    # nothing else changed: with the arguments put back, it is the body as sent
    encoded = json.dumps(ARGS_MASKED, ensure_ascii=False)
    assert out.decode().count(encoded) == 1
    assert json.loads(out.decode().replace(encoded, json.dumps(ARGS))) == body
    with pytest.raises(Reject) as refused:
        await guards("reject", provider).on_request_body(exchange(path), raw)
    assert refused.value.status == 400
    assert refused.value.message.endswith("contains email, aws access key and private key")


async def test_escaped_arguments_with_nothing_to_mask_pass_untouched() -> None:
    body = {"model": "m", "messages": [HI, {"role": "assistant", "content": None,
            "tool_calls": [{"id": "c", "type": "function", "function": {
                "name": "f", "arguments": '{"q": "caf\\u00e9 \\/ \\ud83d\\ude00"}'}}]}]}
    raw = json.dumps(body).encode()
    assert await guards("mask", "openai").on_request_body(exchange(PATHS["openai"]), raw) \
        is None
    assert await guards("reject", "openai").on_request_body(exchange(PATHS["openai"]), raw) \
        is None


async def test_arguments_that_are_not_json_are_read_decoded_too() -> None:
    """Arguments cut short (a reply that hit its length limit, sent back as history)."""
    cut = '{"to": "jane.roe\\u0040example.org", "note": "and \\u0041KIAIOSFODNN7EXAMPLE'
    body = {"model": "m", "messages": [HI, {"role": "assistant", "content": None,
            "tool_calls": [{"id": "c", "type": "function", "function": {
                "name": "f", "arguments": cut}}]}]}
    raw = json.dumps(body).encode()
    out = await guards("mask", "openai").on_request_body(exchange(PATHS["openai"]), raw)
    assert out is not None
    assert json.loads(out)["messages"][1]["tool_calls"][0]["function"]["arguments"] == \
        '{"to": "<EMAIL>", "note": "and <SECRET>'
    with pytest.raises(Reject):
        await guards("reject", "openai").on_request_body(exchange(PATHS["openai"]), raw)


# ------------------------------------------------------------------------ whole replies

def whole(path: str, action: str, body: dict[str, Any]) -> bytes:
    ex = exchange(path)
    transform = WholeJsonGuard(guards(action, "openai", side=1), ex)
    transform.feed(json.dumps(body).encode())
    return transform.finish()


REPLIES: list[tuple[str, str, dict[str, Any], Any]] = [
    ("openai-tool-call", PATHS["openai"], {"choices": [{"index": 0, "message": {
        "role": "assistant", "content": None, "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": ARGS}}]},
        "finish_reason": "tool_calls"}]},
     lambda d: d["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]),
    ("responses-function-call", RESPONSES_PATH, {"id": "resp_1", "object": "response",
     "status": "completed", "output": [{"type": "function_call", "id": "fc_1", "call_id": "c",
                                        "name": "f", "arguments": ARGS}]},
     lambda d: d["output"][0]["arguments"]),
]


@pytest.mark.parametrize(("path", "body", "args"), [(p, b, a) for _, p, b, a in REPLIES],
                         ids=[i for i, _, _, _ in REPLIES])
def test_escaped_arguments_in_a_whole_reply_are_masked_and_refused(
        path: str, body: dict[str, Any], args: Any) -> None:
    out = whole(path, "mask", body)
    no_value(out.decode())
    assert args(json.loads(out)) == ARGS_MASKED
    with pytest.raises(Reject) as refused:
        whole(path, "reject", body)
    assert refused.value.status == 400 and "response blocked" in refused.value.message


# ----------------------------------------------------------------------------- streams

CASES = {
    "openai-tool-call": openai_case(
        "tool_calls", lambda p: {"tool_calls": [{"index": 0, "function": {"arguments": p}}]},
        _tool_args, ARGS, ARGS_MASKED),
    "openai-function-call": openai_case(
        "function_call", lambda p: {"function_call": {"arguments": p}},
        lambda d: (d.get("function_call") or {}).get("arguments", ""), ARGS, ARGS_MASKED),
    "anthropic-tool-input": anthropic_case(
        {"type": "tool_use", "id": "t", "name": "f", "input": {}}, "input_json_delta",
        "partial_json", ARGS, ARGS_MASKED),
}


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(sorted(CASES)), cuts=st.lists(st.integers(0, 1 << 14), max_size=30))
def test_escaped_arguments_in_a_stream_are_masked_for_any_chunking(
        name: str, cuts: list[int]) -> None:
    case = CASES[name]
    assert field_text(case, wire(case)) == ARGS
    out = b"".join(reframe(case, cuts, "mask"))
    no_value(out.decode())
    assert field_text(case, out) == ARGS_MASKED     # the client's assembled arguments


@settings(max_examples=100, deadline=None)
@given(name=st.sampled_from(sorted(CASES)), cuts=st.lists(st.integers(0, 1 << 14), max_size=30))
def test_escaped_arguments_in_a_stream_are_refused_before_the_value(
        name: str, cuts: list[int]) -> None:
    out = b"".join(reframe(CASES[name], cuts, "reject"))
    no_value(out.decode())
    assert b"response blocked by a guard: it contains" in out


def run_responses(raw: bytes, cuts: list[int]) -> list[bytes]:
    t = ResponsesMaskingReframer("openai", lambda: [StreamMasker(SCANNER)], 1 << 20)
    points = sorted({c % (len(raw) + 1) for c in cuts})
    out = [t.feed(raw[a:b]) for a, b in zip([0, *points], [*points, len(raw)], strict=True)]
    return [*out, t.finish()]


def escaped_pieces(text: str, size: int = 5) -> list[str]:
    """Deltas that cut escapes and surrogate pairs apart."""
    return [text[i:i + size] for i in range(0, len(text), size)]


@settings(max_examples=60, deadline=None)
@given(cuts=st.lists(st.integers(0, 1 << 14), max_size=30), size=st.integers(1, 9))
def test_responses_argument_deltas_done_item_and_response_agree(cuts: list[int],
                                                                size: int) -> None:
    raw = build(["ok"], ["fine"], escaped_pieces(ARGS, size), [])
    out = b"".join(run_responses(raw, cuts))
    no_value(out.decode())
    seen = readable(out)["args"]
    for where in ("deltas", "done", "item", "completed"):
        assert seen[where] == ARGS_MASKED, where


def test_custom_tool_input_is_plain_text_not_json() -> None:
    """Custom tool input and interpreter code are not JSON: read as written, not decoded."""
    raw = build([], [], [], [])
    text = f"mail {EMAIL} \\u0041"
    raw = raw.replace(b'"type":"function_call"', b'"type":"custom_tool_call"') \
        .replace(b"function_call_arguments", b"custom_tool_call_input") \
        .replace(b'"arguments":""', b'"input":' + json.dumps(text).encode()) \
        .replace(b'"arguments":', b'"input":')
    out = b"".join(run_responses(raw, []))
    assert EMAIL.encode() not in out
    assert json.dumps("mail <EMAIL> \\u0041").encode() in out      # no quoting, no decoding


# ----------------------------------------------------------- JSON values read as dumps

OBJECTS: list[tuple[str, str, dict[str, Any]]] = [
    ("anthropic-tool-input", "anthropic", {"model": "m", "max_tokens": 9, "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [
            {"type": "tool_use", "id": "t", "name": "f", "input": {"pem": PEM}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t", "content": "ok"}]}]}),
    ("gemini-function-args", "gemini", {"contents": [
        {"role": "user", "parts": [{"text": "hi"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {"pem": PEM}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "f",
                                                         "response": {"ok": True}}}]}]}),
    ("openai-object-arguments", "openai", {"model": "m", "messages": [
        HI, {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f",
                                                         "arguments": {"pem": PEM}}}]}]}),
]


@pytest.mark.parametrize(("provider", "body"), [(p, b) for _, p, b in OBJECTS],
                         ids=[i for i, _, _ in OBJECTS])
async def test_a_pem_block_in_a_json_value_is_refused_and_masked(provider: str,
                                                                  body: dict[str, Any]) -> None:
    """An object value is read as its compact dump, where the block's line ends are `\\n`
    escapes: read decoded, the block is found by a reject guard as by a mask guard."""
    raw = json.dumps(body).encode()
    with pytest.raises(Reject) as refused:
        await guards("reject", provider).on_request_body(exchange(PATHS[provider]), raw)
    assert refused.value.message.endswith("contains private key")
    out = await guards("mask", provider).on_request_body(exchange(PATHS[provider]), raw)
    assert out is not None and b"MIIEow" not in out and b'"pem":"<SECRET>"' in out
