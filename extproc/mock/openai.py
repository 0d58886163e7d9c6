"""OpenAI Chat Completions wire format (also Azure OpenAI): pure builders, no IO.

Builds the ``chat.completion`` body, the ``chat.completion.chunk`` SSE frames, the
``/v1/models`` list and OpenAI-style error bodies from a parsed request and a Reply.

The request's ``n`` gives that many choices, each with the reply (stream chunks carry one
choice each, interleaved, as the API sends them). Shapes (``x-mock-shape``): ``refusal`` puts
the reply in ``refusal`` (content null, as a refusing model answers); ``tool`` makes the
reply a tool call whose arguments are ``{"text": reply}`` (content null, finish reason
``tool_calls``; streamed as argument pieces after a first chunk with the call's id and name);
``tool-escaped`` is ``tool`` with every character of the value written as a ``\\uXXXX`` escape
(``common.dump_escaped``), so that the pieces split escapes apart. The call is to the function
the request forces (``tool_choice: {"type": "function", "function": {"name": N}}``), else to
``mock_tool``. ``parts`` writes the content as a list of text parts, as OpenAI-compatible
models served behind Azure's /openai/v1 write it (Mistral's: ``"content": [{"type": "text",
"text": ...}]``), in a whole reply (one part) and in each streamed delta (one part a piece).

A request whose ``modalities`` has ``"audio"`` (its ``audio: {voice, format}`` is accepted, not
required) is answered with speech, as gpt-4o-audio-preview answers: the message's content is
null and its ``audio`` is ``{"id": "audio_<hex>", "data": AUDIO_B64, "expires_at": <created +
1 h>, "transcript": reply}`` (``common.AUDIO_B64``; ``AUDIO_TOKENS`` more completion tokens,
as ``completion_tokens_details.audio_tokens``). Streamed, after the first chunk (role, content
null) come ``delta.audio.transcript`` pieces (the first audio delta also carries the ``id``),
then ``delta.audio.data`` pieces of ``AUDIO_PIECE`` base64 characters (each decodes alone,
joined they are AUDIO_B64), then a ``delta.audio.expires_at``, then the finish chunk. The
``refusal`` and ``tool`` shapes answer as without audio.
"""

from __future__ import annotations

from typing import Any

from extproc.mock.common import (
    AUDIO_B64,
    AUDIO_TOKENS,
    Reply,
    RequestError,
    count_prompt_tokens,
    dump_compact,
    dump_escaped,
    dump_pretty,
    make_id,
    split_b64,
    texts_of_parts,
)

SYSTEM_FINGERPRINT = "fp_mock0001"
SHAPES = ("refusal", "tool", "tool-escaped", "parts")
MAX_CHOICES = 8
TOOL_NAME = "mock_tool"
MODELS = ("gpt-4o-mini", "gpt-4o", "gpt-4.1", "o3-mini")
AUDIO_PIECE = 256          # base64 characters per streamed audio data delta
AUDIO_EXPIRES_AFTER = 3600  # seconds from creation to a reply audio's expires_at

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


def choices(request: dict[str, Any]) -> int:
    """How many choices to answer: the request's ``n`` (1 to MAX_CHOICES), else 1."""
    n = request.get("n")
    if isinstance(n, int) and not isinstance(n, bool) and n >= 1:
        return min(n, MAX_CHOICES)
    return 1


def tool_arguments(reply: Reply, shape: str | None = "tool") -> str:
    """The arguments of the ``tool`` shape's call: ``{"text": reply}`` as compact JSON (its
    value all escapes for ``tool-escaped``)."""
    if shape == "tool-escaped":
        return dump_escaped({"text": reply.text})
    return dump_compact({"text": reply.text})


def _tool_call_id(reply: Reply, index: int) -> str:
    return f"call_{reply.response_id[:20]}{index}"


def wants_usage(request: dict[str, Any]) -> bool:
    """True when ``stream_options.include_usage`` is true."""
    options = request.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def wants_audio(request: dict[str, Any]) -> bool:
    """True when the request's ``modalities`` has ``"audio"``."""
    modalities = request.get("modalities")
    return isinstance(modalities, list) and any(
        isinstance(m, str) and m.strip().lower() == "audio" for m in modalities)


def _audio_id(reply: Reply, index: int) -> str:
    return f"audio_{make_id(f'{reply.response_id}:audio:{index}', 32)}"


def _audio_expires_at(reply: Reply) -> int:
    return int(reply.created) + AUDIO_EXPIRES_AFTER


def usage(reply: Reply, n: int = 1, audio: bool = False) -> dict[str, Any]:
    """The OpenAI usage object for a reply (``n`` choices of it; with ``audio``, each choice
    also counts ``AUDIO_TOKENS`` audio completion tokens)."""
    audio_tokens = AUDIO_TOKENS * n if audio else 0
    completion = reply.completion_tokens * n + audio_tokens
    return {
        "prompt_tokens": reply.prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": reply.prompt_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": audio_tokens,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def tool_name(request: dict[str, Any]) -> str:
    """The function the request forces the model to call, else ``TOOL_NAME``."""
    choice = request.get("tool_choice")
    function = choice.get("function") if isinstance(choice, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    return name if isinstance(name, str) else TOOL_NAME


def _message(reply: Reply, index: int, shape: str | None, name: str = TOOL_NAME,
             audio: bool = False) -> tuple[dict[str, Any], str]:
    """One choice's message and finish reason."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None,
                               "annotations": []}
    if audio and shape is None:
        message = {"role": "assistant", "content": None, "refusal": None,
                   "audio": {"id": _audio_id(reply, index), "data": AUDIO_B64,
                             "expires_at": _audio_expires_at(reply),
                             "transcript": reply.text},
                   "annotations": []}
    elif shape == "refusal":
        message.update(content=None, refusal=reply.text)
    elif shape == "parts":
        message["content"] = [{"type": "text", "text": reply.text}]
    elif shape in ("tool", "tool-escaped"):
        message["content"] = None
        message["tool_calls"] = [{"id": _tool_call_id(reply, index), "type": "function",
                                  "function": {"name": name,
                                               "arguments": tool_arguments(reply, shape)}}]
        return message, "tool_calls"
    return message, "stop"


def build_response(request: dict[str, Any], reply: Reply, shape: str | None = None) -> bytes:
    """The non-streamed ``chat.completion`` body."""
    n = choices(request)
    audio = wants_audio(request) and shape is None
    answers = [_message(reply, i, shape, tool_name(request), audio) for i in range(n)]
    body = {
        "id": f"chatcmpl-{reply.response_id}",
        "object": "chat.completion",
        "created": int(reply.created),
        "model": reply.model,
        "choices": [
            {"index": i, "message": message, "logprobs": None, "finish_reason": finish}
            for i, (message, finish) in enumerate(answers)
        ],
        "usage": usage(reply, n, audio),
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }
    return (dump_pretty(body) + "\n").encode("utf-8")


def _sse(obj: Any) -> bytes:
    return f"data: {dump_compact(obj)}\n\n".encode()


def build_stream(request: dict[str, Any], reply: Reply,
                 shape: str | None = None) -> list[bytes]:
    """The SSE frames of a streamed reply, ending with ``data: [DONE]``."""
    include_usage = wants_usage(request)
    n = choices(request)

    def chunk(delta: dict[str, Any], finish_reason: str | None,
              index: int = 0) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "id": f"chatcmpl-{reply.response_id}",
            "object": "chat.completion.chunk",
            "created": int(reply.created),
            "model": reply.model,
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": [
                {"index": index, "delta": delta, "logprobs": None,
                 "finish_reason": finish_reason}
            ],
        }
        if include_usage:
            obj["usage"] = None
        return obj

    audio = wants_audio(request) and shape is None
    deltas: list[list[dict[str, Any]]]   # each choice's deltas after its first chunk
    if shape in ("tool", "tool-escaped"):
        first = [{"role": "assistant", "content": None, "tool_calls": [
            {"index": 0, "id": _tool_call_id(reply, i), "type": "function",
             "function": {"name": tool_name(request), "arguments": ""}}], "refusal": None}
            for i in range(n)]
        deltas = [[{"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}
                   for piece in split_arguments(tool_arguments(reply, shape))]] * n
        finish = "tool_calls"
    elif shape == "refusal":
        first = [{"role": "assistant", "content": None, "refusal": ""}] * n
        deltas = [[{"refusal": piece} for piece in reply.pieces]] * n
        finish = "stop"
    elif shape == "parts":
        first = [{"role": "assistant", "content": "", "refusal": None}] * n
        deltas = [[{"content": [{"type": "text", "text": piece}]}
                   for piece in reply.pieces]] * n
        finish = "stop"
    elif audio:
        first = [{"role": "assistant", "content": None, "refusal": None}] * n
        deltas = [audio_deltas(reply, i) for i in range(n)]
        finish = "stop"
    else:
        first = [{"role": "assistant", "content": "", "refusal": None}] * n
        deltas = [[{"content": piece} for piece in reply.pieces]] * n
        finish = "stop"
    frames = [_sse(chunk(first[i], None, i)) for i in range(n)]
    frames.extend(_sse(chunk(deltas[i][j], None, i))
                  for j in range(len(deltas[0])) for i in range(n))
    frames.extend(_sse(chunk({}, finish, i)) for i in range(n))
    if include_usage:
        final = chunk({}, None)
        final["choices"] = []
        final["usage"] = usage(reply, n, audio)
        frames.append(_sse(final))
    frames.append(b"data: [DONE]\n\n")
    return frames


def audio_deltas(reply: Reply, index: int = 0) -> list[dict[str, Any]]:
    """One choice's streamed audio deltas: the transcript pieces (the first one with the
    audio's ``id``), the ``data`` pieces of AUDIO_B64, then ``expires_at``."""
    deltas: list[dict[str, Any]] = [{"audio": {"transcript": piece}}
                                    for piece in reply.pieces or [""]]
    deltas[0]["audio"] = {"id": _audio_id(reply, index), **deltas[0]["audio"]}
    deltas += [{"audio": {"data": piece}} for piece in split_b64(AUDIO_B64, AUDIO_PIECE)]
    deltas.append({"audio": {"expires_at": _audio_expires_at(reply)}})
    return deltas


def split_arguments(arguments: str) -> list[str]:
    """Tool-call arguments in pieces of up to 8 characters, as the API streams them."""
    return [arguments[i:i + 8] for i in range(0, len(arguments), 8)]


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
