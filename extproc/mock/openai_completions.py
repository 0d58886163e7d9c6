"""OpenAI legacy Completions wire format (``POST /v1/completions``): pure builders, no IO.

The ``text_completion`` body and its SSE stream: one ``text_completion`` chunk per piece with
``choices[].text``, a last chunk with the finish reason; with ``stream_options.include_usage``
``"usage": null`` in each chunk and a final ``"choices": []`` chunk with the usage; then
``data: [DONE]``, as for chat.
"""

from __future__ import annotations

from typing import Any

from extproc.mock.common import (
    Reply,
    RequestError,
    count_prompt_tokens,
    dump_compact,
    dump_pretty,
)
from extproc.mock.openai import SYSTEM_FINGERPRINT, wants_usage


def validate(request: dict[str, Any]) -> None:
    """Raise RequestError unless the body looks like a Completions request."""
    if "prompt" not in request:
        raise RequestError("Missing required parameter: 'prompt'.", "prompt")
    if not isinstance(request["prompt"], str | list):
        raise RequestError("Invalid type for 'prompt'.", "prompt")


def extract_echo(request: dict[str, Any]) -> str:
    """The prompt when it is a string, else its last string."""
    prompt = request.get("prompt")
    if isinstance(prompt, str):
        return prompt
    strings = [p for p in prompt if isinstance(p, str)] if isinstance(prompt, list) else []
    return strings[-1] if strings else ""


def prompt_tokens(request: dict[str, Any]) -> int:
    """Strings at 4 characters a token, token ids one each."""
    return input_tokens(request.get("prompt"))


def build_response(request: dict[str, Any], reply: Reply) -> bytes:
    """The non-streamed ``text_completion`` body."""
    body = {
        "id": f"cmpl-{reply.response_id}",
        "object": "text_completion",
        "created": int(reply.created),
        "model": reply.model,
        "choices": [{"text": reply.text, "index": 0, "logprobs": None,
                     "finish_reason": "stop"}],
        "usage": _usage(reply),
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }
    return (dump_pretty(body) + "\n").encode("utf-8")


def build_stream(request: dict[str, Any], reply: Reply) -> list[bytes]:
    """The SSE frames of a streamed completion, ending with ``data: [DONE]``."""
    include_usage = wants_usage(request)

    def chunk(text: str, finish_reason: str | None) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "id": f"cmpl-{reply.response_id}",
            "object": "text_completion",
            "created": int(reply.created),
            "choices": [{"text": text, "index": 0, "logprobs": None,
                         "finish_reason": finish_reason}],
            "model": reply.model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }
        if include_usage:
            obj["usage"] = None
        return obj

    frames = [_sse(chunk(piece, None)) for piece in reply.pieces]
    frames.append(_sse(chunk("", "stop")))
    if include_usage:
        final = chunk("", None)
        final["choices"] = []
        final["usage"] = _usage(reply)
        frames.append(_sse(final))
    frames.append(b"data: [DONE]\n\n")
    return frames


def _sse(obj: Any) -> bytes:
    return f"data: {dump_compact(obj)}\n\n".encode()


def _usage(reply: Reply) -> dict[str, Any]:
    return {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens,
            "total_tokens": reply.total_tokens}


def input_tokens(value: Any) -> int:
    """A prompt's or input's tokens: strings at 4 characters a token, token ids one each."""
    if isinstance(value, str):
        return count_prompt_tokens([value])
    items = value if isinstance(value, list) else []
    strings = [v for v in items if isinstance(v, str)]
    ids = sum(1 for v in items if isinstance(v, int)) + sum(
        len(v) for v in items if isinstance(v, list))
    return (count_prompt_tokens(strings) if strings else 0) + ids or 1
