"""OpenAI Responses API wire format (``POST /v1/responses``): pure builders, no IO.

Builds the ``response`` object and the named-event SSE stream of a streamed response, as the
API sends them: ``response.created``, ``response.in_progress``, ``response.output_item.added``,
``response.content_part.added``, one ``response.output_text.delta`` per piece (with
``logprobs: []`` and an ``obfuscation`` pad unless ``stream_options.include_obfuscation`` is
false), ``response.output_text.done``, ``response.content_part.done``,
``response.output_item.done`` and ``response.completed`` with the usage; every event carries
its ``sequence_number``, and there is no ``[DONE]``. Errors use OpenAI's error bodies.

A request whose ``tools`` has an ``{"type": "image_generation"}`` tool is answered with an
image, as the API answers it: before the message comes an ``image_generation_call`` output
item ``{"id": "ig_<hex>", "type": "image_generation_call", "status": "completed", "background":
"opaque", "output_format": "png", "quality": "high", "size": "1024x1024", "revised_prompt":
reply, "result": IMAGE_B64}`` (``common.IMAGE_B64``; the message is then output 1). Streamed,
that item comes first: ``response.output_item.added`` (status ``in_progress``, no result),
``response.image_generation_call.in_progress``, ``...generating``, the tool's
``partial_images`` (0 to 3, more is a 400) ``...partial_image`` events (``partial_image_index``,
``partial_image_b64``: IMAGE_B64), ``...completed`` and ``response.output_item.done`` with the
whole item; ``response.completed`` has it in its ``output``.

A whole (non-streamed) request with ``background: true`` is answered as OpenAI answers it at
once: ``status: "queued"``, ``background: true``, no output, ``usage: null``.
"""

from __future__ import annotations

from typing import Any

from extproc.mock.common import (
    IMAGE_B64,
    Reply,
    RequestError,
    count_prompt_tokens,
    dump_compact,
    dump_pretty,
    make_id,
    texts_of_parts,
)

_OBFUSCATION_TO = 16   # pad each delta's text + obfuscation to about this many characters
IMAGE_TOOL = "image_generation"
MAX_PARTIAL_IMAGES = 3


def validate(request: dict[str, Any]) -> None:
    """Raise RequestError unless the body looks like a Responses request."""
    if "model" not in request:
        raise RequestError("Missing required parameter: 'model'.", "model")
    value = request.get("input")
    if value is not None and not isinstance(value, str | list):
        raise RequestError("Invalid type for 'input': expected a string or an array.", "input")
    tools = request.get("tools")
    for i, tool in enumerate(tools if isinstance(tools, list) else []):
        if not isinstance(tool, dict) or tool.get("type") != IMAGE_TOOL:
            continue
        partial = tool.get("partial_images", 0)
        param = f"tools[{i}].partial_images"
        if not isinstance(partial, int) or isinstance(partial, bool):
            raise RequestError(f"Invalid type for '{param}': expected an integer.", param)
        if not 0 <= partial <= MAX_PARTIAL_IMAGES:
            raise RequestError(f"Invalid '{param}': expected a value from 0 to "
                               f"{MAX_PARTIAL_IMAGES}, but got {partial} instead.", param)


def image_tool(request: dict[str, Any]) -> dict[str, Any] | None:
    """The request's ``image_generation`` tool, else None."""
    tools = request.get("tools")
    for tool in tools if isinstance(tools, list) else []:
        if isinstance(tool, dict) and tool.get("type") == IMAGE_TOOL:
            return tool
    return None


def _item_texts(item: Any) -> list[str]:
    if not isinstance(item, dict):
        return []
    content = item.get("content")
    if isinstance(content, str):
        return [content]
    earlier = [p["text"] for p in content if isinstance(p, dict)
               and p.get("type") == "output_text" and isinstance(p.get("text"), str)] \
        if isinstance(content, list) else []
    return texts_of_parts(content) + earlier


def extract_echo(request: dict[str, Any]) -> str:
    """The input when it is a string, else the text of the last user message item."""
    value = request.get("input")
    if isinstance(value, str):
        return value
    for item in reversed(value if isinstance(value, list) else []):
        if isinstance(item, dict) and item.get("role") == "user":
            return "".join(_item_texts(item))
    return ""


def prompt_tokens(request: dict[str, Any]) -> int:
    """Deterministic prompt token count over the instructions and the input messages."""
    texts: list[str] = []
    if isinstance(request.get("instructions"), str):
        texts.append(request["instructions"])
    value = request.get("input")
    if isinstance(value, str):
        texts.append(value)
    elif isinstance(value, list):
        for item in value:
            texts.extend(_item_texts(item))
    return count_prompt_tokens(texts)


def wants_stream(request: dict[str, Any]) -> bool:
    """True when the request asks for ``"stream": true``."""
    return request.get("stream") is True


def _obfuscate(request: dict[str, Any]) -> bool:
    options = request.get("stream_options")
    return not (isinstance(options, dict) and options.get("include_obfuscation") is False)


def usage(reply: Reply) -> dict[str, Any]:
    """The Responses API usage object for a reply."""
    return {
        "input_tokens": reply.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": reply.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": reply.total_tokens,
    }


def _part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}


def _message(reply: Reply, status: str, content: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": f"msg_{reply.response_id}", "type": "message", "status": status,
            "content": content, "role": "assistant"}


def _image_call(reply: Reply, done: bool) -> dict[str, Any]:
    """The ``image_generation_call`` output item: in progress (no result), or done."""
    item: dict[str, Any] = {"id": f"ig_{reply.response_id}", "type": "image_generation_call",
                            "status": "completed" if done else "in_progress"}
    if done:
        item.update(background="opaque", output_format="png", quality="high",
                    size="1024x1024", revised_prompt=reply.text, result=IMAGE_B64)
    return item


def _image_events(tool: dict[str, Any], reply: Reply) -> list[dict[str, Any]]:
    """The streamed events of the image item (output 0), without sequence numbers."""
    where = {"output_index": 0, "item_id": f"ig_{reply.response_id}"}
    partial = tool.get("partial_images")
    return [
        {"type": "response.output_item.added", "output_index": 0,
         "item": _image_call(reply, False)},
        {"type": "response.image_generation_call.in_progress", **where},
        {"type": "response.image_generation_call.generating", **where},
        *({"type": "response.image_generation_call.partial_image", **where,
           "partial_image_index": i, "partial_image_b64": IMAGE_B64}
          for i in range(partial if isinstance(partial, int) else 0)),
        {"type": "response.image_generation_call.completed", **where},
        {"type": "response.output_item.done", "output_index": 0,
         "item": _image_call(reply, True)},
    ]


def _response(request: dict[str, Any], reply: Reply, status: str, output: list[Any],
              with_usage: bool) -> dict[str, Any]:
    tools = request.get("tools")
    return {
        "id": f"resp_{reply.response_id}",
        "object": "response",
        "created_at": int(reply.created),
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": request.get("instructions"),
        "max_output_tokens": request.get("max_output_tokens"),
        "max_tool_calls": None,
        "model": reply.model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": request.get("previous_response_id"),
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": request.get("store", True) is not False,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": tools if isinstance(tools, list) else [],
        "top_logprobs": 0,
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage(reply) if with_usage else None,
        "user": None,
        "metadata": {},
    }


def build_response(request: dict[str, Any], reply: Reply) -> bytes:
    """The non-streamed ``response`` body; with ``background: true``, what OpenAI answers at
    once (https://platform.openai.com/docs/guides/background): ``queued``, no output and
    ``usage: null`` (the output would be generated later, fetched elsewhere)."""
    if request.get("background") is True:
        queued = {**_response(request, reply, "queued", [], False), "background": True}
        return (dump_pretty(queued) + "\n").encode("utf-8")
    output = [_message(reply, "completed", [_part(reply.text)])]
    if image_tool(request) is not None:
        output.insert(0, _image_call(reply, True))
    body = _response(request, reply, "completed", output, True)
    return (dump_pretty(body) + "\n").encode("utf-8")


def stream_events(request: dict[str, Any], reply: Reply) -> list[dict[str, Any]]:
    """The event objects of a streamed response, in order, without their sequence numbers."""
    item_id = f"msg_{reply.response_id}"
    tool = image_tool(request)
    before = [] if tool is None else [_image_call(reply, True)]   # output items before the text
    index = len(before)
    where = {"item_id": item_id, "output_index": index, "content_index": 0}
    obfuscate = _obfuscate(request)
    events: list[dict[str, Any]] = [
        {"type": "response.created",
         "response": _response(request, reply, "in_progress", [], False)},
        {"type": "response.in_progress",
         "response": _response(request, reply, "in_progress", [], False)},
        *([] if tool is None else _image_events(tool, reply)),
        {"type": "response.output_item.added", "output_index": index,
         "item": _message(reply, "in_progress", [])},
        {"type": "response.content_part.added", **where, "part": _part("")},
    ]
    for i, piece in enumerate(reply.pieces):
        delta: dict[str, Any] = {"type": "response.output_text.delta", **where,
                                 "delta": piece, "logprobs": []}
        if obfuscate:
            pad = max(1, _OBFUSCATION_TO - len(piece))
            delta["obfuscation"] = make_id(f"{reply.response_id}:{i}", pad)
        events.append(delta)
    done_message = _message(reply, "completed", [_part(reply.text)])
    events += [
        {"type": "response.output_text.done", **where, "text": reply.text, "logprobs": []},
        {"type": "response.content_part.done", **where, "part": _part(reply.text)},
        {"type": "response.output_item.done", "output_index": index, "item": done_message},
        {"type": "response.completed",
         "response": _response(request, reply, "completed", [*before, done_message], True)},
    ]
    return events


def build_stream(request: dict[str, Any], reply: Reply) -> list[bytes]:
    """The SSE frames of a streamed response: ``event: <type>`` + ``data: <json>``."""
    frames = []
    for number, event in enumerate(stream_events(request, reply)):
        event = {"type": event["type"], "sequence_number": number,
                 **{k: v for k, v in event.items() if k != "type"}}
        frames.append(f"event: {event['type']}\ndata: {dump_compact(event)}\n\n".encode())
    return frames


def settled_frames(frames: list[bytes]) -> int:
    """How many of the last frames close what generation made (the trailing `*.done`
    events and `response.completed`): the API sends them the moment generation ends."""
    n = 0
    for frame in reversed(frames):
        kind = frame.split(b"\n", 1)[0].removeprefix(b"event: ")
        if not (kind.endswith(b".done") or kind == b"response.completed"):
            break
        n += 1
    return n
