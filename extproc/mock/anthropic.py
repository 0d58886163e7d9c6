"""Anthropic Messages wire format: pure builders, no IO.

Builds the ``message`` body, the named-event SSE frames of a streamed message, the
``/v1/models`` list and Anthropic-style error bodies from a parsed request and a Reply.

Shapes (``x-mock-shape``): ``thinking`` puts the reply in a thinking block (streamed as
``thinking_delta`` events and a ``signature_delta``) before a text block saying
``THINKING_ANSWER``; ``tool`` makes the reply a ``tool_use`` block whose input is
``{"text": reply}`` (streamed as ``input_json_delta`` pieces; stop reason ``tool_use``);
``tool-escaped`` streams that input with every character of the value written as a ``\\uXXXX``
escape (``common.dump_escaped``; a whole reply's input is an object, as with ``tool``);
``start`` sends the whole text in the text block's ``content_block_start`` (no text deltas);
``mcp`` answers as the MCP connector does: an ``mcp_tool_use`` block (server ``mock``, tool
``lookup``, its input streamed as ``input_json_delta``), then an ``mcp_tool_result`` block
whose content is one text block, the reply (whole, in its ``content_block_start``), then a
text block saying ``THINKING_ANSWER``; ``blocks`` cuts the reply into text blocks at each
``|`` (the ``|`` left out), as Anthropic cuts a message's text around citations, each block
streamed in one-word deltas (and citing the document, as below, when the request gives one).

A plain-text document with citations enabled is cited, as Anthropic cites it: the reply's
text block carries a ``char_location`` citation of its first 200 characters (streamed as a
``citations_delta`` before the text).

A request that forces a tool (``tool_choice: {"type": "tool", "name": N}``) is answered with a
``tool_use`` of N whatever the shape, as Anthropic answers it; its input is the reply text
when that is a JSON object, else ``{"text": reply}``.
"""

from __future__ import annotations

import json
import time
from typing import Any

from extproc.mock.common import (
    Reply,
    RequestError,
    count_prompt_tokens,
    dump_compact,
    dump_escaped,
    split_pieces,
    texts_of_parts,
)

MODELS = ("claude-sonnet-4-5", "claude-opus-4-1", "claude-3-5-haiku-latest")
SHAPES = ("thinking", "tool", "tool-escaped", "start", "mcp", "blocks")
THINKING_ANSWER = "Done."
TOOL_NAME = "mock_tool"

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


def _signature(reply: Reply) -> str:
    return f"EqQBmock{reply.response_id}"


def _forced_tool(request: dict[str, Any]) -> str | None:
    """The tool the request forces the model to call, if any."""
    choice = request.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "tool" \
            and isinstance(choice.get("name"), str):
        return choice["name"]
    return None


def _tool_use(reply: Reply, request: dict[str, Any]) -> dict[str, Any]:
    name = _forced_tool(request)
    tool_input: Any = {"text": reply.text}
    if name is not None:
        try:
            parsed = json.loads(reply.text)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            tool_input = parsed
    return {"type": "tool_use", "id": f"toolu_{reply.response_id[:24]}",
            "name": name or TOOL_NAME, "input": tool_input}


def _mcp(reply: Reply) -> list[dict[str, Any]]:
    """What the MCP connector puts in a reply: the call to a server's tool, its result."""
    call = f"mcptoolu_{reply.response_id[:24]}"
    return [{"type": "mcp_tool_use", "id": call, "name": "lookup", "server_name": "mock",
             "input": {"q": "mock"}},
            {"type": "mcp_tool_result", "tool_use_id": call, "is_error": False,
             "content": [{"type": "text", "text": reply.text}]}]


def _citation(request: dict[str, Any]) -> dict[str, Any] | None:
    """What the reply cites when the request gives a plain-text document with citations
    enabled, as Anthropic cites it: the document's first sentence (up to 200 characters)."""
    index = 0
    for message in request.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        for block in content if isinstance(content, list) else []:
            if not isinstance(block, dict) or block.get("type") != "document":
                continue
            source = block.get("source")
            enabled = isinstance(block.get("citations"), dict) \
                and block["citations"].get("enabled") is True
            if enabled and isinstance(source, dict) and source.get("type") == "text" \
                    and isinstance(source.get("data"), str):
                text = source["data"][:200]
                return {"type": "char_location", "cited_text": text, "document_index": index,
                        "document_title": block.get("title"), "start_char_index": 0,
                        "end_char_index": len(text)}
            index += 1
    return None


def build_response(request: dict[str, Any], reply: Reply, shape: str | None = None) -> bytes:
    """The non-streamed ``message`` body."""
    content: list[dict[str, Any]] = [{"type": "text", "text": reply.text}]
    citation = _citation(request)
    if citation is not None:
        content[0]["citations"] = [citation]
    stop = "end_turn"
    if shape == "thinking":
        content = [{"type": "thinking", "thinking": reply.text, "signature": _signature(reply)},
                   {"type": "text", "text": THINKING_ANSWER}]
    elif shape in ("tool", "tool-escaped") or _forced_tool(request):
        content, stop = [_tool_use(reply, request)], "tool_use"
    elif shape == "mcp":
        content = [*_mcp(reply), {"type": "text", "text": THINKING_ANSWER}]
    elif shape == "blocks":
        content = [{"type": "text", "text": text, **({"citations": [citation]} if citation
                                                     else {})}
                   for text in reply.text.split("|")]
    body = _message(reply, content, stop, reply.completion_tokens)
    return dump_compact(body).encode("utf-8")


def _event(obj: dict[str, Any]) -> bytes:
    return f"event: {obj['type']}\ndata: {dump_compact(obj)}\n\n".encode()


def _block(index: int, start: dict[str, Any], deltas: list[dict[str, Any]]) -> list[bytes]:
    """One content block: its start, its deltas, its stop."""
    return [_event({"type": "content_block_start", "index": index, "content_block": start}),
            *(_event({"type": "content_block_delta", "index": index, "delta": delta})
              for delta in deltas),
            _event({"type": "content_block_stop", "index": index})]


def split_json(text: str) -> list[str]:
    """Streamed tool input in pieces of up to 8 characters after an empty first one."""
    return ["", *(text[i:i + 8] for i in range(0, len(text), 8))]


def build_stream(request: dict[str, Any], reply: Reply,
                 shape: str | None = None) -> list[bytes]:
    """The SSE frames of a streamed message, message_start through message_stop."""
    frames = [_event({"type": "message_start", "message": _message(reply, [], None, 1)})]
    stop = "end_turn"
    text = [{"type": "text_delta", "text": piece} for piece in reply.pieces]
    if shape == "thinking":
        frames += _block(0, {"type": "thinking", "thinking": "", "signature": ""}, [
            *({"type": "thinking_delta", "thinking": piece} for piece in reply.pieces),
            {"type": "signature_delta", "signature": _signature(reply)}])
        frames += _block(1, {"type": "text", "text": ""},
                         [{"type": "text_delta", "text": THINKING_ANSWER}])
    elif shape in ("tool", "tool-escaped") or _forced_tool(request):
        block = _tool_use(reply, request)
        dump = dump_escaped if shape == "tool-escaped" else dump_compact
        frames += _block(0, {**block, "input": {}}, [
            {"type": "input_json_delta", "partial_json": piece}
            for piece in split_json(dump(block["input"]))])
        stop = "tool_use"
    elif shape == "start":
        frames += _block(0, {"type": "text", "text": reply.text}, [])
    elif shape == "mcp":
        use, result = _mcp(reply)
        frames += _block(0, {**use, "input": {}}, [
            {"type": "input_json_delta", "partial_json": piece}
            for piece in split_json(dump_compact(use["input"]))])
        frames += _block(1, result, [])
        frames += _block(2, {"type": "text", "text": ""},
                         [{"type": "text_delta", "text": THINKING_ANSWER}])
    elif shape == "blocks":   # (each cites the document, when the request gives one)
        citation = _citation(request)
        cites = [{"type": "citations_delta", "citation": citation}] if citation else []
        for i, block in enumerate(reply.text.split("|")):
            frames += _block(i, {"type": "text", "text": ""},
                             [*cites, *({"type": "text_delta", "text": piece}
                                        for piece in split_pieces(block))])
    else:
        citation = _citation(request)
        cites = [{"type": "citations_delta", "citation": citation}] if citation else []
        frames += _block(0, {"type": "text", "text": ""}, [*cites, *text])
    frames.insert(2, _event({"type": "ping"}))   # after the first block's start
    frames.append(
        _event(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
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
