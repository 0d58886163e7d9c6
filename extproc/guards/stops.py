"""How a refused stream ends, in the provider's own format: a finish event the SDKs
understand (OpenAI `finish_reason: content_filter`, Anthropic `stop_reason: refusal`, Gemini
`finishReason: SAFETY`, a Responses stream's `response.incomplete`), then an error event;
and how a re-encoded event is written (`_dump`, as the providers write theirs). Shared by
the masking reframers and the webhook stream guard."""

from __future__ import annotations

import json
from typing import Any

from ..codecs.sse import encode

GOOGLE = ("gemini", "vertex")


def _dump(doc: Any, google: bool) -> str:
    """`doc` as one line of JSON, spaced as the provider writes its events."""
    separators = (",", ": ") if google else (",", ":")
    text = json.dumps(doc, ensure_ascii=False, separators=separators)
    try:
        text.encode()
    except UnicodeEncodeError:   # a lone surrogate (from a \ud800 escape): keep it escaped
        text = json.dumps(doc, ensure_ascii=True, separators=separators)
    return text


#: what an OpenAI chunk that ends a refused stream repeats of the stream's own chunks: the
#: fields the SDKs' chunk schema requires (a client reading `chunk.id` or `chunk.model`)
HEAD_FIELDS = ("id", "created", "model")


def stream_head(doc: Any) -> dict[str, Any]:
    """The `HEAD_FIELDS` of one of an OpenAI stream's chunks (those it has)."""
    if not isinstance(doc, dict):
        return {}
    return {k: doc[k] for k in HEAD_FIELDS if k in doc}


def headed(head: dict[str, Any] | None, kind: str, choices: list[Any]) -> dict[str, Any]:
    """An OpenAI chunk of object `kind` carrying `choices` and the stream's `head`, its
    fields in OpenAI's order (id, object, created, model)."""
    head = head or {}
    return {**{k: head[k] for k in HEAD_FIELDS[:1] if k in head}, "object": kind,
            **{k: head[k] for k in HEAD_FIELDS[1:] if k in head}, "choices": choices}


def stop_events(provider: str, message: str, head: dict[str, Any] | None = None) -> bytes:
    """The events that end a refused stream: a finish the SDKs understand (OpenAI
    `content_filter`, Anthropic `refusal`, Gemini `SAFETY`), then an error event. `head`:
    the stream's `stream_head`, repeated in OpenAI's finish chunk."""
    google = provider in GOOGLE
    stop: dict[str, Any]
    error: dict[str, Any]
    if provider == "anthropic":
        stop = {"type": "message_delta", "delta": {"stop_reason": "refusal",
                                                  "stop_sequence": None},
                "usage": {"output_tokens": 0}}
        error = {"type": "error", "error": {"type": "invalid_request_error",
                                            "message": message}}
        return (encode(_dump(stop, False), event="message_delta")
                + encode(_dump(error, False), event="error"))
    if google:
        stop = {"candidates": [{"content": {"parts": [{"text": ""}], "role": "model"},
                                "finishReason": "SAFETY", "index": 0}]}
        error = {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}}
        return (encode(_dump(stop, True), terminator=b"\r\n\r\n")
                + encode(_dump(error, True), terminator=b"\r\n\r\n"))
    stop = headed(head, "chat.completion.chunk",
                  [{"index": 0, "delta": {}, "finish_reason": "content_filter"}])
    error = {"error": {"message": message, "type": "invalid_request_error",
                       "param": None, "code": "content_filter"}}
    return encode(_dump(stop, False)) + encode(_dump(error, False))


def refusal_events(response: dict[str, Any] | None, items: list[Any], seq: int,
                   message: str) -> bytes:
    """The events that end a refused Responses stream: ``response.incomplete`` (reason
    ``content_filter``), then an ``error`` event."""
    base = dict(response) if isinstance(response, dict) else {
        "id": "resp_blocked", "object": "response", "created_at": 0, "model": "",
        "parallel_tool_calls": True, "tool_choice": "auto", "tools": []}
    base.update(status="incomplete", incomplete_details={"reason": "content_filter"},
                error=None, output=items, usage=None)
    incomplete = {"type": "response.incomplete", "sequence_number": seq + 1,
                  "response": base}
    detail = {"type": "invalid_request_error", "code": "content_filter", "message": message,
              "param": None}
    error = {"type": "error", "sequence_number": seq + 2, "code": "content_filter",
             "message": message, "param": None, "error": detail}
    return (encode(_dump(incomplete, False), event="response.incomplete")
            + encode(_dump(error, False), event="error"))
