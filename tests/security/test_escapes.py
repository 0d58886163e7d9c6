r"""#8, guards must read every text the model reads or writes: tool-call arguments are JSON text
inside a JSON string, and JSON escapes in them (``john.doe\u0040example.com``,
``\u0041KIA...``, the ``\n`` line ends of a PEM block) used to hide a value from guards that
scanned the raw text, while the tool (or the provider) decodes them into the real value.
Through the real Envoy: escaped values in the arguments of an earlier assistant turn are
masked before the provider sees them (or the prompt is refused), and escaped values a model
writes into tool-call arguments (the mock's ``tool-escaped`` shape: every character an
escape, streamed in 8-character pieces and 3-byte chunks that split the escapes) reach the
client masked, as valid JSON, or end the stream."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from extproc.codecs.jsonescape import decode_escapes
from tests.harness import Gateway, Mock, add_route

pytestmark = pytest.mark.envoy

EMAIL = "john.doe@example.com"
KEY = "AKIAIOSFODNN7EXAMPLE"
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAx1\n-----END RSA PRIVATE KEY-----"
#: arguments as a model may write them: no value is spelled out on the wire
ARGS = ('{"to":"john.doe\\u0040example.com","key":"\\u0041KIAIOSFODNN7EXAMPLE",'
        '"pem":' + json.dumps(PEM) + ',"note":"caf\\u00e9"}')
ARGS_MASKED = '{"to":"<EMAIL>","key":"<SECRET>","pem":"<SECRET>","note":"caf\\u00e9"}'
REPLY = f"mail {EMAIL} with key {KEY} ok"
TOOL_MASKED = {"text": "mail <EMAIL> with key <SECRET> ok"}
FRAGMENTS = ("john", "doe@", "example.com", "AKIA", "FODNN7", "MIIEow")
PROVIDERS = ("openai", "anthropic")


def config() -> dict[str, Any]:
    detectors = ["email", "secrets"]
    routes = [{"name": f"{action}-{p}", "provider": p, "guards": [action]}
              for p in PROVIDERS for action in ("mask", "reject")]
    return {"server": {"max_request_body_bytes": 1048576},
            "guards": {"mask": {"detectors": detectors, "action": "mask"},
                       "reject": {"detectors": detectors, "action": "reject"}},
            "routes": routes}


def adjust(doc: dict[str, Any]) -> None:
    for p in PROVIDERS:
        for action in ("mask", "reject"):
            add_route(doc, f"/{action}-{p}/", p, f"{action}-{p}")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    gateway = Gateway(tmp_path_factory.mktemp("escapes"), config(), mock=mock, adjust=adjust)
    yield gateway
    gateway.close()


def no_value(raw: str | bytes) -> None:
    """Nothing of the values, with the escapes of the body and of the JSON in it decoded."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    decoded = decode_escapes(decode_escapes(text))
    for fragment in FRAGMENTS:
        assert fragment not in decoded, fragment


def test_the_arguments_spell_no_value_on_the_wire() -> None:
    assert json.loads(ARGS)["to"] == EMAIL and json.loads(ARGS)["pem"] == PEM
    for raw in (EMAIL, KEY, PEM):
        assert raw not in ARGS and raw not in json.dumps(ARGS)


# ------------------------------------------------------------------------------ prompts

HI = {"role": "user", "content": "hi"}
PROMPTS: list[tuple[str, str, dict[str, Any], Any]] = [
    ("chat-tool-call", "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": [
        HI, {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "send", "arguments": ARGS}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sent"}]},
     lambda b: b["messages"][1]["tool_calls"][0]["function"]["arguments"]),
    ("chat-function-call", "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": [
        HI, {"role": "assistant", "content": None,
             "function_call": {"name": "send", "arguments": ARGS}},
        {"role": "function", "name": "send", "content": "sent"}]},
     lambda b: b["messages"][1]["function_call"]["arguments"]),
    ("responses-function-call", "/v1/responses", {"model": "gpt-5", "input": [
        HI, {"type": "function_call", "call_id": "call_1", "name": "send", "arguments": ARGS},
        {"type": "function_call_output", "call_id": "call_1", "output": "sent"}]},
     lambda b: b["input"][1]["arguments"]),
]


@pytest.mark.parametrize(("path", "body", "args"), [(p, b, a) for _, p, b, a in PROMPTS],
                         ids=[i for i, _, _, _ in PROMPTS])
def test_escaped_arguments_are_masked_before_the_provider(gw: Gateway, path: str,
                                                          body: dict[str, Any],
                                                          args: Any) -> None:
    marker = uuid.uuid4().hex
    r = httpx.post(f"{gw.url}/mask-openai{path}", json={**body, "metadata": {"m": marker}},
                   timeout=30)
    assert r.status_code == 200, r.text
    last = gw.mock.last()
    assert last is not None and marker in last["body"]
    no_value(last["body"])
    sent = args(json.loads(last["body"]))
    assert sent == ARGS_MASKED                     # valid JSON; only the values rewritten
    assert json.loads(sent) == {"to": "<EMAIL>", "key": "<SECRET>", "pem": "<SECRET>",
                                "note": "café"}


@pytest.mark.parametrize(("path", "body"), [(p, b) for _, p, b, _ in PROMPTS],
                         ids=[i for i, _, _, _ in PROMPTS])
def test_escaped_arguments_are_refused_before_the_provider(gw: Gateway, path: str,
                                                           body: dict[str, Any]) -> None:
    marker = uuid.uuid4().hex
    r = httpx.post(f"{gw.url}/reject-openai{path}", json={**body, "metadata": {"m": marker}},
                   timeout=30)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"] == ("request blocked by guard 'reject': the prompt "
                                            "contains email, aws access key and private key")
    last = gw.mock.last()
    assert last is None or marker not in last["body"]


# ------------------------------------------------------------------------------ replies

def chat_body(provider: str, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "gpt-4o-mini", "messages": [HI], "stream": stream}
    if provider == "anthropic":
        body.update(model="claude-sonnet-4-5", max_tokens=50)
    return body


def path(provider: str) -> str:
    return "/v1/messages" if provider == "anthropic" else "/v1/chat/completions"


HEADERS = {"x-mock-reply": REPLY, "x-mock-shape": "tool-escaped"}


def events(raw: bytes) -> list[dict[str, Any]]:
    out = []
    for line in raw.replace(b"\r\n", b"\n").split(b"\n"):
        if line.startswith(b"data: ") and line[6:].strip() not in (b"[DONE]", b""):
            out.append(json.loads(line[6:]))
    return out


def arguments(provider: str, raw: bytes) -> str:
    """The tool-call arguments a client assembles from the stream's deltas."""
    out = ""
    for e in events(raw):
        if provider == "anthropic":
            if e.get("type") == "content_block_delta":
                out += e["delta"].get("partial_json", "")
            continue
        for c in e.get("choices") or ():
            for call in (c.get("delta") or {}).get("tool_calls") or ():
                out += call["function"].get("arguments") or ""
    return out


def stream(gw: Gateway, action: str, provider: str) -> bytes:
    with httpx.Client(timeout=30) as client, client.stream(
            "POST", f"{gw.url}/{action}-{provider}{path(provider)}",
            json=chat_body(provider, True),
            headers={**HEADERS, "x-mock-chunk-bytes": "3"}) as r:
        assert r.status_code == 200
        return b"".join(r.iter_raw())


@pytest.mark.parametrize("provider", PROVIDERS)
def test_escaped_arguments_in_a_stream_reach_the_client_masked(gw: Gateway,
                                                               provider: str) -> None:
    raw = stream(gw, "mask", provider)
    no_value(raw)
    assembled = arguments(provider, raw)
    assert json.loads(assembled) == TOOL_MASKED    # valid JSON the client can parse
    if provider == "openai":
        assert raw.rstrip().endswith(b"data: [DONE]")
    else:
        assert b"event: message_stop" in raw


@pytest.mark.parametrize("provider", PROVIDERS)
def test_escaped_arguments_in_a_stream_end_it_before_the_value(gw: Gateway,
                                                               provider: str) -> None:
    raw = stream(gw, "reject", provider)
    no_value(raw)
    assert (b'"refusal"' if provider == "anthropic"
            else b'"finish_reason":"content_filter"') in raw
    assert b"response blocked by a guard: it contains email" in raw


def test_escaped_arguments_in_a_whole_reply_are_masked_or_refused(gw: Gateway) -> None:
    r = httpx.post(f"{gw.url}/mask-openai/v1/chat/completions",
                   json=chat_body("openai", False), headers=HEADERS, timeout=30)
    assert r.status_code == 200, r.text
    no_value(r.content)
    call = r.json()["choices"][0]["message"]["tool_calls"][0]
    assert json.loads(call["function"]["arguments"]) == TOOL_MASKED
    r = httpx.post(f"{gw.url}/reject-openai/v1/chat/completions",
                   json=chat_body("openai", False), headers=HEADERS, timeout=30)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"].startswith("response blocked by guard 'reject'")
    no_value(r.content)
