"""A reply the reply guards cannot read is refused, never delivered unchecked (issue #8,
item 1): a compressed reply, one of another content type, a whole reply that is not a JSON
object, and, once a stream has started, an event that is not a JSON object (the stream ends
with the provider's finish and error events). Driven through a real Exchange, sans-IO."""

from __future__ import annotations

import json
from typing import Any

import pytest

from extproc import loader
from extproc import protocol as P
from extproc.exchange import Exchange
from tests.unit.test_exchange import (
    request_body,
    request_headers,
    response_body,
    response_headers,
    send,
)

EMAIL = "john.doe@example.com"
CHAT = json.dumps({"model": "m", "stream": True,
                   "messages": [{"role": "user", "content": "hi"}]}).encode()


def route() -> Any:
    doc = {"guards": {"pii": {"detectors": ["email"], "action": "mask"}},
           "routes": [{"name": "r", "provider": "openai", "guards": ["pii"]}]}
    return loader.parse(doc).route("r")


async def start(resp_mode: int = P.STREAMED, **headers: str) -> tuple[Exchange, list[Any]]:
    ex = Exchange(route(), "r")
    await send(ex, request_headers(req_mode=P.BUFFERED, resp_mode=resp_mode))
    await send(ex, request_body(CHAT, True))
    return ex, await send(ex, response_headers(200, **headers))


def refused(replies: list[Any]) -> tuple[int, dict[str, Any]]:
    assert len(replies) == 1 and replies[0].WhichOneof("response") == "immediate_response"
    reply = replies[0].immediate_response
    return reply.status.code, json.loads(reply.body)


@pytest.mark.parametrize("encoding", ["gzip", "br", "deflate"])
async def test_a_compressed_reply_is_refused_before_its_headers_go_out(encoding: str) -> None:
    _, replies = await start(**{"content-type": "text/event-stream",
                                "content-encoding": encoding})
    status, body = refused(replies)
    assert status == 502
    assert f"{encoding}-encoded" in body["error"]["message"]


@pytest.mark.parametrize("ctype", ["text/plain", "application/x-ndjson", "text/html", ""])
async def test_a_reply_of_another_type_is_refused(ctype: str) -> None:
    _, replies = await start(**{"content-type": ctype})
    status, _ = refused(replies)
    assert status == 502


@pytest.mark.parametrize("whole", [b"[1, 2]", b'"text ' + EMAIL.encode() + b'"', b"{bad",
                                   b"[" * 100_000])
async def test_a_whole_reply_that_is_not_an_object_is_refused(whole: bytes) -> None:
    ex, replies = await start(resp_mode=P.STREAMED, **{"content-type": "application/json"})
    assert replies[0].HasField("mode_override")    # buffered: its headers wait
    out = await send(ex, response_body(whole, True))
    status, body = refused(out)
    assert status == 502
    assert EMAIL not in json.dumps(body)


@pytest.mark.parametrize("event", [b"data: not json " + EMAIL.encode() + b"\n\n",
                                   b"data: [1,2]\n\n", b'data: "' + EMAIL.encode() + b'"\n\n'])
async def test_an_unreadable_stream_event_ends_the_stream(event: bytes) -> None:
    ex, _ = await start(**{"content-type": "text/event-stream"})
    first = (b'data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,'
             b'"delta":{"content":"hello "},"finish_reason":null}]}\n\n')
    sent = b""
    for chunk in (first, event, first):
        for reply in await send(ex, response_body(chunk, False)):
            mutation = reply.response_body.response.body_mutation
            sent += mutation.body if mutation.HasField("body") else chunk
    assert EMAIL.encode() not in sent
    assert b'"finish_reason":"content_filter"' in sent
    assert b"unreadable event" in sent
    assert sent.count(b"hello") == 1                   # nothing after the refusal


async def test_an_anthropic_server_tool_result_is_masked_whole_and_streamed() -> None:
    """What the provider fetched itself (web search results, fetched pages, code output)
    reaches the client in server tool result blocks: their strings are masked, ids and
    encrypted payloads (sent back by the client unchanged) are not touched."""
    from extproc.providers import adapter_for

    block = {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": [
        {"type": "web_search_result", "title": f"Contact {EMAIL}", "url": "https://x",
         "encrypted_content": f"opaque {EMAIL}", "page_age": None}]}
    adapter = adapter_for("anthropic")
    whole = {"content": [{"type": "text", "text": "see"}, json.loads(json.dumps(block))]}
    assert adapter.rewrite_response_texts(whole, lambda t: t.replace(EMAIL, "<EMAIL>"))
    result = whole["content"][1]["content"][0]
    assert result["title"] == "Contact <EMAIL>"
    assert result["encrypted_content"] == f"opaque {EMAIL}"      # a payload, not text
    doc = {"type": "content_block_start", "index": 1, "content_block": block}
    slots = adapter.stream_texts(doc, "content_block_start").slots
    assert [s.holder[s.key] for s in slots] == [f"Contact {EMAIL}", "https://x"]
    assert all(s.whole for s in slots)


def test_what_tools_report_in_a_responses_reply_is_masked() -> None:
    """An MCP call's output, code-interpreter logs, a web search's query: the provider or a
    tool wrote them and the client reads them, so they are masked (each on its own), ids and
    tool names left alone."""
    from extproc.providers.openai_responses import OpenAIResponsesAdapter

    body = {"output": [
        {"type": "mcp_call", "id": "mcp_1", "name": "lookup", "server_label": "crm",
         "arguments": '{"q":"x"}', "output": f"owner: {EMAIL}"},
        {"type": "code_interpreter_call", "id": "ci_1", "code": "print(1)",
         "outputs": [{"type": "logs", "logs": f"mail {EMAIL}"}]},
        {"type": "web_search_call", "id": "ws_1", "status": "completed",
         "action": {"type": "search", "query": EMAIL}}]}
    adapter = OpenAIResponsesAdapter("openai")
    assert adapter.rewrite_response_texts(body, lambda t: t.replace(EMAIL, "<EMAIL>"))
    assert EMAIL not in json.dumps(body)
    assert body["output"][0]["name"] == "lookup" and body["output"][0]["id"] == "mcp_1"


async def test_a_reply_to_a_request_whose_body_was_never_shown_is_refused() -> None:
    """An HTTP/2 request whose body is trailers alone: Envoy shows the processor no body and
    sends the request on (found by the Envoy audit). A 2xx reply to it answers a request no
    policy read: refused (502). Envoy's own answers (a 413) pass as they are."""
    from extproc import loader
    from extproc.exchange import Exchange
    from extproc.protocol import BUFFERED, STREAMED
    from tests.unit.test_exchange import request_headers, response_headers, send

    cfg = loader.parse({"guards": {"pii": {"detectors": ["email"], "action": "mask"}},
                        "routes": [{"name": "r", "provider": "openai", "guards": ["pii"]}]})
    for status, refused in ((200, True), (413, False)):
        ex = Exchange(cfg.routes["r"], "r")
        await send(ex, request_headers(req_mode=BUFFERED, resp_mode=STREAMED))
        (reply,) = await send(ex, response_headers(status))
        if refused:
            assert reply.immediate_response.status.code == 502
            assert reply.immediate_response.details == "extproc_unseen_body"
        else:
            assert reply.WhichOneof("response") == "response_headers"


async def test_a_partly_buffered_body_is_refused_not_read_as_whole() -> None:
    """Found by the mesh audit: a mesh's BufferedPartial sends the part of a body Envoy
    buffered (end_of_stream false) and the rest goes upstream unseen; reading the part as
    the whole let the rest past the guards. Refused (413); the whole body still reads."""
    from extproc import loader
    from extproc.exchange import Exchange
    from extproc.protocol import BUFFERED_PARTIAL, STREAMED
    from tests.unit.test_exchange import request_body, request_headers, send

    cfg = loader.parse({"guards": {"pii": {"detectors": ["email"], "action": "mask"}},
                        "routes": [{"name": "r", "provider": "openai", "guards": ["pii"]}]})
    body = b'{"model":"m","messages":[{"role":"user","content":"mail a@example.com"}]}'
    for eos, status in ((False, 413), (True, None)):
        ex = Exchange(cfg.routes["r"], "r")
        await send(ex, request_headers(req_mode=BUFFERED_PARTIAL, resp_mode=STREAMED))
        (reply,) = await send(ex, request_body(body, eos))
        if status is None:
            assert reply.WhichOneof("response") == "request_body"
        else:
            assert reply.immediate_response.status.code == status


@pytest.mark.parametrize("streamed", [True, False])
async def test_a_partly_buffered_reply_is_refused_not_read_as_whole(streamed: bool) -> None:
    """Found by the protocol audit: with a mesh's BufferedPartial for replies, Envoy sends the
    part of a reply it buffered (end_of_stream false) and the rest to the client unseen;
    reading the part as the whole let an address late in the reply out in clear. Refused
    (502) before the headers go out; a reply that fits, whole, is read and masked."""
    ctype = "text/event-stream" if streamed else "application/json"
    if streamed:
        head = b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m",' \
               b'"choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":null}]}\n\n'
    else:
        head = json.dumps({"id": "c", "object": "chat.completion", "created": 1,
                           "model": "m", "choices": [{"index": 0, "finish_reason": "stop",
                           "message": {"role": "assistant", "content": f"mail {EMAIL}"}}],
                           "usage": {"prompt_tokens": 1, "completion_tokens": 2,
                                     "total_tokens": 3}}).encode()
    ex, _ = await start(P.BUFFERED_PARTIAL, **{"content-type": ctype})
    status, doc = refused(await send(ex, response_body(head, False)))
    assert status == 502 and "buffers" in doc["error"]["message"]
    if not streamed:
        ex, _ = await start(P.BUFFERED_PARTIAL, **{"content-type": ctype})
        (reply,) = await send(ex, response_body(head, True))
        assert reply.WhichOneof("response") == "response_body"
        assert EMAIL.encode() not in reply.response_body.response.body_mutation.body


@pytest.mark.parametrize(("rest", "delivered"), [(b"", True), (b" ", False), (b"}", False)])
async def test_a_buffered_reply_envoy_streamed_passes_only_when_its_end_adds_no_byte(
        rest: bytes, delivered: bool) -> None:
    """Found by CI: asked to buffer a JSON reply, an Envoy that ignores `mode_override`
    streams it; a first part holding all of it, then a message of no bytes that only ends
    it, was refused (a reset) though nothing went unread. It now passes, masked; a second
    part with any byte is still refused."""
    whole = json.dumps({"id": "c", "object": "chat.completion", "created": 1, "model": "m",
                        "choices": [{"index": 0, "finish_reason": "stop", "message": {
                            "role": "assistant", "content": f"mail {EMAIL}"}}],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 2,
                                  "total_tokens": 3}}).encode()
    ex = Exchange(route(), "r")
    await send(ex, request_headers(req_mode=P.BUFFERED, resp_mode=P.STREAMED))
    await send(ex, request_body(CHAT.replace(b'"stream": true', b'"stream": false'), True))
    (head,) = await send(ex, response_headers(200, **{"content-type": "application/json"}))
    assert head.mode_override.response_body_mode == P.BUFFERED
    (first,) = await send(ex, response_body(whole, False))
    masked = first.response_body.response.body_mutation.body
    assert EMAIL.encode() not in masked and json.loads(masked)["choices"]
    (last,) = await send(ex, response_body(rest, True))
    if delivered:
        assert last.WhichOneof("response") == "response_body"
        assert not last.response_body.response.HasField("body_mutation")
    else:
        assert last.WhichOneof("response") == "immediate_response"
        assert last.immediate_response.status.code == 502


@pytest.mark.parametrize("status", [429, 302])
@pytest.mark.parametrize(("first", "read"), [
    (json.dumps({"error": {"message": f"mail {EMAIL}", "type": "rate_limit"}}).encode(), True),
    (json.dumps(f"mail {EMAIL}").encode(), True),          # a JSON string, read as JSON
    (f"mail {EMAIL}".encode(), False),          # text: a part may cut a value in two
    (b"mail john.doe@exa", False),
    (b'{"error": {"message": "mail john.doe@exa', False)])   # no whole JSON value
async def test_an_error_reply_envoy_streamed_is_read_whole_only_as_a_json_value(
        first: bytes, read: bool, status: int) -> None:
    """Found by review: an error reply's first part was refused whatever it held, so a 429
    whose end came apart reset the stream. A part that is a whole JSON object, array or
    string holds all its texts: read as the whole reply, masked, its empty end passes;
    anything else is still refused at its first part. A redirect is read as an error reply
    is (found by the next review: a 302's first part passed as the whole, a value cut at
    its end in clear)."""
    ex = Exchange(route(), "r")
    await send(ex, request_headers(req_mode=P.BUFFERED, resp_mode=P.STREAMED))
    await send(ex, request_body(CHAT.replace(b'"stream": true', b'"stream": false'), True))
    (head,) = await send(ex, response_headers(status, **{"content-type": "application/json"}))
    assert head.mode_override.response_body_mode == P.BUFFERED
    (reply,) = await send(ex, response_body(first, False))
    if not read:
        assert reply.WhichOneof("response") == "immediate_response"
        return
    masked = reply.response_body.response.body_mutation.body
    assert EMAIL.encode() not in masked and b"<EMAIL>" in masked
    (last,) = await send(ex, response_body(b"", True))
    assert last.WhichOneof("response") == "response_body"
