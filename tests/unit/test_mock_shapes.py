"""The mock's reply shapes (`x-mock-shape`, OpenAI `n`, Gemini `candidateCount`) read back by
the official SDKs, streamed and not: the SDKs' own accumulators accept them as the
providers' wire format."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import types

from extproc.mock import anthropic as mock_anthropic
from extproc.mock import google as mock_google
from extproc.mock.testing import MockServer

REPLY = "write to jane.roe@example.org now"
TOOL_INPUT = {"text": REPLY}
MESSAGES: Any = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def mock_server() -> Iterator[MockServer]:
    with MockServer() as server:
        yield server


def headers(shape: str | None = None) -> dict[str, str]:
    out = {"x-mock-reply": REPLY}
    if shape:
        out["x-mock-shape"] = shape
    return out


# --- OpenAI ---------------------------------------------------------------------------

def oa(mock_server: MockServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{mock_server.url}/v1", api_key="k", max_retries=0)


def oa_stream(mock_server: MockServer, shape: str | None, **extra: Any) -> Any:
    """The SDK's accumulated completion of a streamed reply."""
    with oa(mock_server).chat.completions.stream(
            model="gpt-4o", messages=MESSAGES, extra_headers=headers(shape), **extra) as s:
        return s.get_final_completion()


def test_openai_n_choices(mock_server: MockServer) -> None:
    for final in (oa_stream(mock_server, None, n=2),
                  oa(mock_server).chat.completions.create(
                      model="gpt-4o", messages=MESSAGES, n=2, extra_headers=headers())):
        assert [c.index for c in final.choices] == [0, 1]
        assert all(c.message.content == REPLY and c.finish_reason == "stop"
                   for c in final.choices)


def test_openai_refusal(mock_server: MockServer) -> None:
    for final in (oa_stream(mock_server, "refusal"),
                  oa(mock_server).chat.completions.create(
                      model="gpt-4o", messages=MESSAGES, extra_headers=headers("refusal"))):
        message = final.choices[0].message
        assert message.refusal == REPLY and message.content is None


def test_openai_tool_call(mock_server: MockServer) -> None:
    for final in (oa_stream(mock_server, "tool"),
                  oa(mock_server).chat.completions.create(
                      model="gpt-4o", messages=MESSAGES, extra_headers=headers("tool"))):
        choice = final.choices[0]
        assert choice.finish_reason == "tool_calls" and choice.message.content is None
        call = choice.message.tool_calls[0]
        assert call.id.startswith("call_") and call.function.name == "mock_tool"
        assert json.loads(call.function.arguments) == TOOL_INPUT


def test_openai_tool_arguments_stream_in_pieces(mock_server: MockServer) -> None:
    body = {"model": "gpt-4o", "messages": MESSAGES, "stream": True}
    r = httpx.post(f"{mock_server.url}/v1/chat/completions", json=body,
                   headers=headers("tool"), timeout=10)
    chunks = [json.loads(line[6:]) for line in r.text.split("\n")
              if line.startswith("data: {")]
    pieces = [c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
              for c in chunks[1:-1]]
    assert len(pieces) > 3 and json.loads("".join(pieces)) == TOOL_INPUT


def test_openai_escaped_tool_arguments(mock_server: MockServer) -> None:
    """`tool-escaped`: the same call, its value spelled in \\uXXXX escapes only, streamed in
    pieces that split them."""
    for final in (oa_stream(mock_server, "tool-escaped"),
                  oa(mock_server).chat.completions.create(
                      model="gpt-4o", messages=MESSAGES, extra_headers=headers("tool-escaped"))):
        arguments = final.choices[0].message.tool_calls[0].function.arguments
        assert json.loads(arguments) == TOOL_INPUT
        assert "jane" not in arguments and "\\u0040" in arguments
    body = {"model": "gpt-4o", "messages": MESSAGES, "stream": True}
    r = httpx.post(f"{mock_server.url}/v1/chat/completions", json=body,
                   headers=headers("tool-escaped"), timeout=10)
    chunks = [json.loads(line[6:]) for line in r.text.split("\n")
              if line.startswith("data: {")]
    pieces = [c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
              for c in chunks[1:-1]]
    # deltas that end inside an escape: "\\", "\\u0", ...
    assert sum(bool(re.search(r"\\(u[0-9a-f]{0,3})?$", p)) for p in pieces) > 3
    assert json.loads("".join(pieces)) == TOOL_INPUT


def test_openai_content_parts(mock_server: MockServer) -> None:
    """Content as a list of text parts, as OpenAI-compatible models behind Azure's
    /openai/v1 write it: one part a piece in a stream, one part in a whole reply."""
    body = {"model": "mistral-large-2411", "messages": MESSAGES}
    url = f"{mock_server.url}/v1/chat/completions"
    whole = httpx.post(url, json=body, headers=headers("parts"), timeout=10).json()
    assert whole["choices"][0]["message"]["content"] == [{"type": "text", "text": REPLY}]
    r = httpx.post(url, json={**body, "stream": True}, headers=headers("parts"), timeout=10)
    deltas = [json.loads(line[6:])["choices"][0]["delta"] for line in r.text.split("\n")
              if line.startswith("data: {")]
    parts = [d["content"] for d in deltas[1:] if d.get("content")]
    assert len(parts) > 1 and all(len(p) == 1 and p[0]["type"] == "text" for p in parts)
    assert "".join(p[0]["text"] for p in parts) == REPLY


# --- Anthropic ------------------------------------------------------------------------

def an(mock_server: MockServer) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=mock_server.url, api_key="k", max_retries=0)


def an_both(mock_server: MockServer, shape: str) -> list[Any]:
    """The SDK's final message, streamed and not."""
    client = an(mock_server)
    with client.messages.stream(model="claude-x", max_tokens=50, messages=MESSAGES,
                                extra_headers=headers(shape)) as stream:
        streamed = stream.get_final_message()
    whole = client.messages.create(model="claude-x", max_tokens=50, messages=MESSAGES,
                                   extra_headers=headers(shape))
    return [streamed, whole]


def test_anthropic_thinking(mock_server: MockServer) -> None:
    for message in an_both(mock_server, "thinking"):
        thinking, text = message.content
        assert thinking.type == "thinking" and thinking.thinking == REPLY
        assert thinking.signature.startswith("EqQB")
        assert text.type == "text" and text.text == mock_anthropic.THINKING_ANSWER


def test_anthropic_tool_use(mock_server: MockServer) -> None:
    for message in an_both(mock_server, "tool"):
        (block,) = message.content
        assert block.type == "tool_use" and block.name == "mock_tool"
        assert block.input == TOOL_INPUT and message.stop_reason == "tool_use"


def test_anthropic_escaped_tool_input(mock_server: MockServer) -> None:
    for message in an_both(mock_server, "tool-escaped"):
        assert message.content[0].input == TOOL_INPUT
    body = {"model": "claude-x", "max_tokens": 50, "messages": MESSAGES, "stream": True}
    r = httpx.post(f"{mock_server.url}/v1/messages", json=body,
                   headers=headers("tool-escaped"), timeout=10)
    assert "jane" not in r.text and "\\\\u00" in r.text
    assert json.loads("".join(json.loads(line[6:])["delta"]["partial_json"]
                              for line in r.text.split("\n")
                              if line.startswith("data: ") and "partial_json" in line)) \
        == TOOL_INPUT


def test_anthropic_text_in_block_start(mock_server: MockServer) -> None:
    with an(mock_server).messages.stream(model="claude-x", max_tokens=50, messages=MESSAGES,
                                         extra_headers=headers("start")) as stream:
        events = [e.type for e in stream]
        final = stream.get_final_message()
    assert final.content[0].text == REPLY
    assert "text" not in events      # no text delta: the text came whole in the start


def test_anthropic_mcp_tool_result(mock_server: MockServer) -> None:
    """The MCP connector's blocks, as the beta SDK reads them, streamed and whole."""
    client = an(mock_server).beta
    ask = {"model": "claude-x", "max_tokens": 50, "messages": MESSAGES,
           "mcp_servers": [{"type": "url", "url": "https://mcp.test/sse", "name": "mock"}],
           "betas": ["mcp-client-2025-04-04"], "extra_headers": headers("mcp")}
    with client.messages.stream(**ask) as stream:
        streamed = stream.get_final_message()
    for message in (streamed, client.messages.create(**ask)):
        use, result, text = message.content
        assert use.type == "mcp_tool_use" and use.server_name == "mock"
        assert use.input == {"q": "mock"}
        assert result.type == "mcp_tool_result" and result.tool_use_id == use.id
        assert [c.text for c in result.content] == [REPLY]
        assert text.text == mock_anthropic.THINKING_ANSWER


# --- Gemini ---------------------------------------------------------------------------

def gm(mock_server: MockServer) -> genai.Client:
    return genai.Client(api_key="k", http_options=types.HttpOptions(
        base_url=mock_server.url, headers=headers()))


def gm_config(shape: str | None = None, **extra: Any) -> types.GenerateContentConfig:
    return types.GenerateContentConfig(
        http_options=types.HttpOptions(headers=headers(shape)), **extra)


def test_gemini_candidate_count(mock_server: MockServer) -> None:
    client = gm(mock_server)
    config = gm_config(candidate_count=2)
    whole = client.models.generate_content(model="gemini-2.5-flash", contents="hi",
                                           config=config)
    assert [c.content.parts[0].text for c in whole.candidates] == [REPLY, REPLY]
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash",
                                                        contents="hi", config=config))
    for index in (0, 1):
        assert "".join(c.candidates[index].content.parts[0].text for c in chunks) == REPLY
        assert chunks[-1].candidates[index].finish_reason == types.FinishReason.STOP


def test_gemini_thought_parts(mock_server: MockServer) -> None:
    client = gm(mock_server)
    whole = client.models.generate_content(model="gemini-2.5-flash", contents="hi",
                                           config=gm_config("thinking"))
    chunks = list(client.models.generate_content_stream(
        model="gemini-2.5-flash", contents="hi", config=gm_config("thinking")))
    for parts in ([p for c in chunks for p in c.candidates[0].content.parts],
                  whole.candidates[0].content.parts):
        assert "".join(p.text for p in parts if p.thought) == REPLY
        assert "".join(p.text for p in parts if not p.thought) == mock_google.THINKING_ANSWER
    assert whole.usage_metadata.thoughts_token_count == len(REPLY.split())


def test_gemini_function_call(mock_server: MockServer) -> None:
    client = gm(mock_server)
    for response in (client.models.generate_content(
            model="gemini-2.5-flash", contents="hi", config=gm_config("tool")),
            *client.models.generate_content_stream(
                model="gemini-2.5-flash", contents="hi", config=gm_config("tool"))):
        (call,) = response.function_calls
        assert call.name == "mock_tool" and call.args == TOOL_INPUT


def test_vertex_partial_args(mock_server: MockServer) -> None:
    """Streamed call arguments, as Vertex streams them: the name, then each piece of the
    string at $.text, the last not continuing, then the finish."""
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], "toolConfig": {
        "functionCallingConfig": {"mode": "AUTO", "streamFunctionCallArguments": True}}}
    r = httpx.post(f"{mock_server.url}/v1/projects/p/locations/l/publishers/google/models/"
                   "gemini-3-pro-preview:streamGenerateContent?alt=sse", json=body,
                   headers=headers("partial-args"), timeout=10)
    calls = [json.loads(line[6:])["candidates"][0]["content"]["parts"][0]["functionCall"]
             for line in r.text.split("\r\n") if line.startswith("data: ")]
    assert calls[0] == {"name": "mock_tool", "willContinue": True} and calls[-1] == {}
    args = [a for call in calls[1:-1] for a in call["partialArgs"]]
    assert "".join(a["stringValue"] for a in args) == REPLY and len(args) > 1
    assert [a.get("willContinue", False) for a in args] == [True] * (len(args) - 1) + [False]
    assert all(a["jsonPath"] == "$.text" for a in args)


# --- control --------------------------------------------------------------------------

@pytest.mark.parametrize(("path", "shape", "status"), [
    ("/v1/chat/completions", "thinking", 400), ("/v1/messages", "refusal", 400),
    ("/v1beta/models/g:generateContent", "start", 400), ("/v1/messages", "bogus", 400)])
def test_a_shape_a_provider_has_not_is_a_400(mock_server: MockServer, path: str, shape: str,
                                             status: int) -> None:
    body = {"model": "m", "max_tokens": 5, "messages": MESSAGES,
            "contents": [{"parts": [{"text": "hi"}]}]}
    r = httpx.post(mock_server.url + path, json=body, headers={"x-mock-shape": shape},
                   timeout=10)
    assert r.status_code == status and "x-mock-shape" in r.text
