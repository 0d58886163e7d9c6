"""Reply shapes the reply guards once skipped, through the real Envoy (the guard audit):

1. Anthropic `mcp_tool_result` blocks (what an MCP server's tool returned, put in the reply by
   the MCP connector) were never read, streamed or whole: the reply readers read a block's
   strings only when its kind was not one the prompt reader knows, and tool results are.
2. Vertex streamed function call arguments (`functionCall.partialArgs[].stringValue`, sent
   when the request sets `toolConfig.functionCallingConfig.streamFunctionCallArguments`)
   were never read.
3. Legacy completions with `logprobs: 0`: OpenAI returns the sampled token's log
   probability then, so `choices[].logprobs.tokens` spell the reply unmasked.
4. Streamed chat `content` given as a list of parts (OpenAI-compatible models behind
   Azure's /openai/v1 write it so) was skipped.

Each reply comes from the mock provider in the provider's own wire format (`x-mock-shape`);
nothing of the value may reach the client in clear, and a reject guard's match ends the
reply refused.
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
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
REPLY = f"write to {EMAIL}, card {CARD}."
MASKED = "write to <EMAIL>, card <CARD>."
PROVIDERS = ("openai", "azure", "anthropic", "vertex")


def config() -> dict[str, Any]:
    # MCP servers the request names are refused by default (`fetched`, tests/unit/
    # test_unread_inputs.py): these guards let them in, to read what their tools return
    guards = {"keys": {"detectors": ["secrets"], "action": "reject",
                       "allow_unread": ["fetched"]},
              "pii": {"detectors": ["email", "card"], "action": "mask",
                      "allow_unread": ["fetched"]}}
    routes = [{"name": f"s-{p}", "provider": p, "guards": ["keys", "pii"]} for p in PROVIDERS]
    return {"server": {"max_request_body_bytes": 1048576}, "guards": guards,
            "routes": routes}


def adjust(doc: dict[str, Any]) -> None:
    for p in PROVIDERS:
        add_route(doc, f"/s-{p}/", p, f"s-{p}")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    gateway = Gateway(tmp_path_factory.mktemp("shapes"), config(), mock=mock, adjust=adjust)
    yield gateway
    gateway.close()


def post(gw: Gateway, path: str, body: dict[str, Any], shape: str, reply: str = REPLY,
         ) -> tuple[int, bytes]:
    headers = {"x-mock-reply": reply, "x-mock-shape": shape, "x-mock-chunk-bytes": "5"}
    with httpx.Client(timeout=30) as client, client.stream(
            "POST", f"{gw.url}{path}", json=body, headers=headers) as r:
        return r.status_code, b"".join(r.iter_raw())


def no_part_of(raw: bytes, value: str) -> None:
    """Not a run of six characters of the value, in the bytes or a JSON string's text."""
    texts = raw.decode("utf-8", "replace")
    for line in texts.replace("\r\n", "\n").split("\n"):
        if line.startswith("data:") and line[5:].strip().startswith("{"):
            texts += json.dumps(json.loads(line[5:]), ensure_ascii=False)
    for i in range(len(value) - 5):
        assert value[i:i + 6] not in texts, (value[i:i + 6], raw[:600])


def sse(raw: bytes) -> list[dict[str, Any]]:
    return [json.loads(line[5:]) for line in raw.decode().replace("\r\n", "\n").split("\n")
            if line.startswith("data:") and line[5:].strip().startswith("{")]


# --- 1. Anthropic mcp_tool_result ----------------------------------------------------------

MESSAGES = {"model": "claude-sonnet-4-5", "max_tokens": 100,
            "messages": [{"role": "user", "content": "look jane up"}],
            "mcp_servers": [{"type": "url", "url": "https://mcp.test/sse", "name": "mock"}]}


def test_an_mcp_tool_result_is_masked_in_a_stream(gw: Gateway) -> None:
    status, raw = post(gw, "/s-anthropic/v1/messages", {**MESSAGES, "stream": True}, "mcp")
    assert status == 200
    no_part_of(raw, EMAIL)
    no_part_of(raw, CARD)
    [result] = [e["content_block"] for e in sse(raw) if e.get("type") == "content_block_start"
                and e["content_block"]["type"] == "mcp_tool_result"]
    assert result["content"] == [{"type": "text", "text": MASKED}]
    assert b"event: message_stop" in raw


def test_an_mcp_tool_result_is_masked_in_a_whole_reply(gw: Gateway) -> None:
    status, raw = post(gw, "/s-anthropic/v1/messages", MESSAGES, "mcp")
    assert status == 200
    no_part_of(raw, EMAIL)
    use, result, text = json.loads(raw)["content"]
    assert use["type"] == "mcp_tool_use" and use["input"] == {"q": "mock"}
    assert result["content"] == [{"type": "text", "text": MASKED}]
    assert text == {"type": "text", "text": "Done."}


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
def test_a_key_in_an_mcp_tool_result_refuses_the_reply(gw: Gateway, stream: bool) -> None:
    status, raw = post(gw, "/s-anthropic/v1/messages", {**MESSAGES, "stream": stream},
                       "mcp", reply=f"the key is {AWS_KEY}")
    no_part_of(raw, AWS_KEY)
    assert b"aws access key" in raw
    if stream:
        assert status == 200 and b"event: error" in raw and b'"refusal"' in raw
    else:
        assert status == 400


# --- 2. Vertex streamed function call arguments -------------------------------------------

VERTEX = ("/s-vertex/v1/projects/p/locations/us-central1/publishers/google/models/"
          "gemini-3-pro-preview:streamGenerateContent")
STREAMED_ARGS = {"contents": [{"role": "user", "parts": [{"text": "send it"}]}],
                 "tools": [{"functionDeclarations": [{"name": "mock_tool", "description": "x",
                            "parameters": {"type": "object",
                                           "properties": {"text": {"type": "string"}}}}]}],
                 "toolConfig": {"functionCallingConfig": {
                     "mode": "AUTO", "streamFunctionCallArguments": True}}}


def streamed_args(raw: bytes) -> list[dict[str, Any]]:
    return [a for e in sse(raw) for c in e.get("candidates", [])
            for p in c["content"]["parts"] for a in p.get("functionCall", {}).get(
                "partialArgs", [])]


@pytest.mark.parametrize("query", ["?alt=sse", ""], ids=["sse", "json-array"])
def test_streamed_function_call_arguments_are_masked(gw: Gateway, query: str) -> None:
    status, raw = post(gw, VERTEX + query, STREAMED_ARGS, "partial-args")
    assert status == 200
    no_part_of(raw, EMAIL)
    no_part_of(raw, CARD)
    args = streamed_args(raw)
    assert "".join(a["stringValue"] for a in args) == MASKED
    assert not args[-1].get("willContinue")   # what was held went out in the last piece


@pytest.mark.parametrize("query", ["?alt=sse", ""], ids=["sse", "json-array"])
def test_a_key_in_streamed_function_call_arguments_ends_the_stream(gw: Gateway,
                                                                  query: str) -> None:
    status, raw = post(gw, VERTEX + query, STREAMED_ARGS, "partial-args",
                       reply=f"the key is {AWS_KEY} ok")
    assert status == 200
    no_part_of(raw, AWS_KEY)
    assert b'"SAFETY"' in raw and b"aws access key" in raw


# --- 4. chat content as a list of parts ---------------------------------------------------

CHAT = {"model": "mistral-large-2411", "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("path", ["/s-azure/openai/v1/chat/completions",
                                  "/s-openai/v1/chat/completions"], ids=["azure-v1", "openai"])
def test_content_streamed_as_parts_is_masked(gw: Gateway, path: str) -> None:
    status, raw = post(gw, path, {**CHAT, "stream": True}, "parts")
    assert status == 200
    no_part_of(raw, EMAIL)
    no_part_of(raw, CARD)
    text = "".join(p["text"] for e in sse(raw) for c in e.get("choices", [])
                   for p in (c["delta"].get("content") or []) if isinstance(p, dict))
    assert text == MASKED
    assert raw.rstrip().endswith(b"data: [DONE]")


def test_content_as_parts_is_masked_in_a_whole_reply(gw: Gateway) -> None:
    status, raw = post(gw, "/s-azure/openai/v1/chat/completions", CHAT, "parts")
    assert status == 200
    no_part_of(raw, EMAIL)
    assert json.loads(raw)["choices"][0]["message"]["content"] == [
        {"type": "text", "text": MASKED}]


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
def test_a_key_in_content_parts_refuses_the_reply(gw: Gateway, stream: bool) -> None:
    status, raw = post(gw, "/s-azure/openai/v1/chat/completions", {**CHAT, "stream": stream},
                       "parts", reply=f"the key is {AWS_KEY} ok")
    no_part_of(raw, AWS_KEY)
    assert b"aws access key" in raw
    assert (status, b"content_filter" in raw) == ((200, True) if stream else (400, False))


def test_a_prompts_refusal_or_reasoning_in_parts_is_refused(gw: Gateway) -> None:
    """The prompt side of the same shapes: the chat adapter reads a message's refusal and
    reasoning as strings, so parts or objects there are refused (400) and never sent."""
    for field in ({"refusal": [{"type": "text", "text": EMAIL}]},
                  {"reasoning_content": {"text": EMAIL}}):
        body = {**CHAT, "messages": [{"role": "assistant", "content": "ok", **field},
                                     {"role": "user", "content": "go on"}]}
        before = gw.mock.last()
        status, raw = post(gw, "/s-azure/openai/v1/chat/completions", body, "parts")
        assert status == 400 and b"must be a string" in raw, raw
        assert gw.mock.last() == before
