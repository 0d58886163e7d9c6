"""OpenAI Chat Completions wire format (also Azure OpenAI): pure builders, no IO.

Builds the ``chat.completion`` body, the ``chat.completion.chunk`` SSE frames, the
``/v1/models`` list and OpenAI-style error bodies from a parsed request and a Reply.
"""

from __future__ import annotations

from typing import Any

from extproc.mock.common import (
    Reply,
    RequestError,
    count_prompt_tokens,
    dump_compact,
    dump_pretty,
    texts_of_parts,
)

SYSTEM_FINGERPRINT = "fp_mock0001"
MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-4.1", "o3-mini")

# status -> (type, code, message), following what api.openai.com answers.
_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: (
        "authentication_error",
        "invalid_api_key",
        "Incorrect API key provided. You can find your API key at "
        "https://platform.openai.com/account/api-keys.",
    ),
    403: (
        "permission_error",
        "unsupported_country_region_territory",
        "Country, region, or territory not supported",
    ),
    404: (
        "invalid_request_error",
        "model_not_found",
        "The model does not exist or you do not have access to it.",
    ),
    409: ("invalid_request_error", None, "Conflict."),
    413: ("invalid_request_error", None, "Request too large."),
    422: ("invalid_request_error", None, "Unprocessable entity."),
    429: (
        "rate_limit_error",
        "rate_limit_exceeded",
        "Rate limit reached for requests. Please try again in 1s.",
    ),
    500: (
        "server_error",
        None,
        "The server had an error while processing your request. Sorry about that!",
    ),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
    504: ("server_error", None, "Gateway timeout."),
}


def validate(request: dict[str, Any]) -> None:
    """Raise RequestError unless the body looks like a chat completions request."""
    messages = request.get("messages")
    if messages is None:
        raise RequestError("Missing required parameter: 'messages'.", "messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("Invalid 'messages': expected a non-empty array.", "messages")


def _message_texts(message: Any) -> list[str]:
    if not isinstance(message, dict):
        return []
    content = message.get("content")
    if isinstance(content, str):
        return [content]
    return texts_of_parts(content)


def extract_echo(request: dict[str, Any]) -> str:
    """Text of the last ``role: user`` message (string content or text content parts)."""
    for message in reversed(request.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return "".join(_message_texts(message))
    return ""


def prompt_tokens(request: dict[str, Any]) -> int:
    """Deterministic prompt token count over all message texts."""
    texts: list[str] = []
    for message in request.get("messages") or []:
        texts.extend(_message_texts(message))
    return count_prompt_tokens(texts)


def wants_stream(request: dict[str, Any]) -> bool:
    """True when the request asks for ``"stream": true``."""
    return request.get("stream") is True


def wants_usage(request: dict[str, Any]) -> bool:
    """True when ``stream_options.include_usage`` is true."""
    options = request.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def usage(reply: Reply) -> dict[str, Any]:
    """The OpenAI usage object for a reply."""
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": reply.completion_tokens,
        "total_tokens": reply.total_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def build_response(request: dict[str, Any], reply: Reply) -> bytes:
    """The non-streamed ``chat.completion`` body."""
    body = {
        "id": f"chatcmpl-{reply.response_id}",
        "object": "chat.completion",
        "created": int(reply.created),
        "model": reply.model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": reply.text,
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": usage(reply),
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }
    return (dump_pretty(body) + "\n").encode("utf-8")


def _sse(obj: Any) -> bytes:
    return f"data: {dump_compact(obj)}\n\n".encode()


def build_stream(request: dict[str, Any], reply: Reply) -> list[bytes]:
    """The SSE frames of a streamed reply, ending with ``data: [DONE]``."""
    include_usage = wants_usage(request)

    def chunk(delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "id": f"chatcmpl-{reply.response_id}",
            "object": "chat.completion.chunk",
            "created": int(reply.created),
            "model": reply.model,
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": [
                {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            ],
        }
        if include_usage:
            obj["usage"] = None
        return obj

    frames = [_sse(chunk({"role": "assistant", "content": "", "refusal": None}, None))]
    frames.extend(_sse(chunk({"content": piece}, None)) for piece in reply.pieces)
    frames.append(_sse(chunk({}, "stop")))
    if include_usage:
        final = chunk({}, None)
        final["choices"] = []
        final["usage"] = usage(reply)
        frames.append(_sse(final))
    frames.append(b"data: [DONE]\n\n")
    return frames


def build_models(created: float) -> bytes:
    """The ``GET /v1/models`` list body."""
    data = [
        {"id": name, "object": "model", "created": int(created), "owned_by": "system"}
        for name in MODELS
    ]
    return (dump_pretty({"object": "list", "data": data}) + "\n").encode("utf-8")


def error_body(status: int, message: str | None = None, param: str | None = None) -> bytes:
    """OpenAI's error body for an HTTP status."""
    default = ("invalid_request_error", None, f"Error {status}.")
    if status >= 500:
        default = ("server_error", None, "The server had an error processing your request.")
    err_type, code, default_message = _ERRORS.get(status, default)
    error = {"message": message or default_message, "type": err_type, "param": param, "code": code}
    return (dump_pretty({"error": error}) + "\n").encode("utf-8")
