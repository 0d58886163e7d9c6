"""Anthropic Messages wire format: pure builders, no IO.

Builds the ``message`` body, the named-event SSE frames of a streamed message, the
``/v1/models`` list and Anthropic-style error bodies from a parsed request and a Reply.
"""

from __future__ import annotations

import time
from typing import Any

from extproc.mock.common import (
    Reply,
    RequestError,
    count_prompt_tokens,
    dump_compact,
    texts_of_parts,
)

MODELS = ("claude-sonnet-4-5", "claude-opus-4-1", "claude-3-5-haiku-latest")

# status -> (error.type, default message), as api.anthropic.com answers.
_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low to access the Anthropic API."),
    403: ("permission_error", "Your API key does not have permission to use this resource."),
    404: ("not_found_error", "Not found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of requests has exceeded your rate limit."),
    500: ("api_error", "Internal server error"),
    504: ("timeout_error", "Request timed out."),
    529: ("overloaded_error", "Overloaded"),
}


def validate(request: dict[str, Any]) -> None:
    """Raise RequestError unless the body looks like a Messages request."""
    messages = request.get("messages")
    if messages is None:
        raise RequestError("messages: Field required", "messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages: at least one message is required", "messages")


def _content_texts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    return texts_of_parts(content)


def extract_echo(request: dict[str, Any]) -> str:
    """Text of the last ``role: user`` message (string content or text blocks)."""
    for message in reversed(request.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return "".join(_content_texts(message.get("content")))
    return ""


def prompt_tokens(request: dict[str, Any]) -> int:
    """Deterministic prompt token count over the system prompt and all message texts."""
    texts = _content_texts(request.get("system"))
    for message in request.get("messages") or []:
        if isinstance(message, dict):
            texts.extend(_content_texts(message.get("content")))
    return count_prompt_tokens(texts)


def wants_stream(request: dict[str, Any]) -> bool:
    """True when the request asks for ``"stream": true``."""
    return request.get("stream") is True


def _usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def _message(reply: Reply, content: list[Any], stop_reason: str | None, out: int) -> dict:
    return {
        "id": f"msg_{reply.response_id}",
        "type": "message",
        "role": "assistant",
        "model": reply.model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": _usage(reply.prompt_tokens, out),
    }


def build_response(request: dict[str, Any], reply: Reply) -> bytes:
    """The non-streamed ``message`` body."""
    content = [{"type": "text", "text": reply.text}]
    body = _message(reply, content, "end_turn", reply.completion_tokens)
    return dump_compact(body).encode("utf-8")


def _event(obj: dict[str, Any]) -> bytes:
    return f"event: {obj['type']}\ndata: {dump_compact(obj)}\n\n".encode()


def build_stream(request: dict[str, Any], reply: Reply) -> list[bytes]:
    """The SSE frames of a streamed message, message_start through message_stop."""
    frames = [
        _event({"type": "message_start", "message": _message(reply, [], None, 1)}),
        _event(
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            }
        ),
        _event({"type": "ping"}),
    ]
    frames.extend(
        _event(
            {
                "type": "content_block_delta",
                "index": 0,
                "delta": {"type": "text_delta", "text": piece},
            }
        )
        for piece in reply.pieces
    )
    frames.append(_event({"type": "content_block_stop", "index": 0}))
    frames.append(
        _event(
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": reply.completion_tokens},
            }
        )
    )
    frames.append(_event({"type": "message_stop"}))
    return frames


def build_models(created: float) -> bytes:
    """The Anthropic ``GET /v1/models`` list body."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created))
    data = [
        {"type": "model", "id": name, "display_name": name, "created_at": stamp} for name in MODELS
    ]
    body = {"data": data, "has_more": False, "first_id": MODELS[0], "last_id": MODELS[-1]}
    return dump_compact(body).encode("utf-8")


def error_body(status: int, message: str | None = None, request_id: str | None = None) -> bytes:
    """Anthropic's error body for an HTTP status."""
    if status >= 500:
        default = ("api_error", "Internal server error")
    else:
        default = ("invalid_request_error", f"Error {status}.")
    err_type, default_message = _ERRORS.get(status, default)
    body: dict[str, Any] = {
        "type": "error",
        "error": {"type": err_type, "message": message or default_message},
    }
    if request_id:
        body["request_id"] = request_id
    return dump_compact(body).encode("utf-8")
