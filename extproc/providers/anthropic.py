"""Anthropic Messages adapter: requests, replies and the named-event SSE stream.

Path ``/v1/messages`` (any prefix). Stream events are ``event: <type>`` + ``data: <json>``;
the JSON's own ``type`` is trusted over the SSE event name. Visible text is ``text_delta``
(and non-empty text in a ``content_block_start``); ``thinking_delta``, ``signature_delta``
and ``input_json_delta`` are not. ``message_delta.delta.stop_reason`` is the finish reason.
An ``error`` event (e.g. ``overloaded_error`` after a 200) becomes ``Delta.error`` = its
message. ``ping``, ``content_block_stop`` and ``message_stop`` say nothing.

Usage: ``message_start`` reports input and cache tokens (and a first output count);
``message_delta`` reports the CUMULATIVE ``output_tokens`` and may repeat input/cache counts.
Input counts are normalised to include cache writes and reads (see ``base``; the writes,
``cache_creation_input_tokens``, are also kept apart as ``cache_write_input_tokens`` so they
can be priced); merging keeps the largest input/cached/cache-write count seen (so a repeat
that omits the cache fields cannot shrink it) and the latest output count.

What the model reads: ``anthropic_prompts``.

What the model writes (guards): in a whole reply, every text block ("text") and the strings
of its ``citations`` ("result": what a source says, its title and URL), thinking block
("thinking"), tool_use ``name`` and MCP ``server_name`` ("name") and ``input`` ("tool"),
and every text of a block of any other kind ("result", `anthropic_prompts.result_slots`: a
tool's result an MCP connector or a server tool put in the reply, ``mcp_tool_result`` and
``tool_result`` with their string or block content, web search and fetch results and the
documents in them, kinds to come); in a stream, one piece per content block: the ``text`` /
``thinking`` of its ``content_block_start`` and its ``text_delta``, ``thinking_delta`` and
``input_json_delta`` (the string values of a non-empty start ``input``, a tool's name, a
``citations_delta``'s strings and the texts of a result block, which starts whole, are
checked whole), ended by its ``content_block_stop`` (and every piece by
``message_delta``, ``message_stop`` or ``error``). Thinking masked in a reply no longer
matches its signature: the provider refuses it when it is sent back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from extproc.providers.anthropic_prompts import (
    OPAQUE,
    REPLY_FIELDS,
    TOOL_USE,
    Slot,
    block_media,
    request_slots,
    result_slots,
)
from extproc.providers.base import Adapter, Delta, Prompt, Usage
from extproc.providers.inline import unreadable
from extproc.providers.slots import (
    NAME_PIECE,
    EventTexts,
    Name,
    NamedApart,
    Piece,
    TextSlot,
    name_slot,
    piece_index,
    string_slots,
    text_field,
)
from extproc.providers.unread import unread_inputs
from extproc.providers.values import (
    as_dict,
    as_int,
    as_list,
    as_str,
    load_json,
    read_value,
    rewrite_json_strings,
    rewrite_name,
    rewrite_slots,
    sum_known,
    text_only,
    usage_or_none,
    with_total,
)

#: the fields of a streamed content block that carry text, and their delta types
_DELTA_TYPES = {"text": "text_delta", "thinking": "thinking_delta",
                "partial_json": "input_json_delta"}


def _citation_slots(block: dict[str, Any]) -> list[tuple[Any, Any]]:
    """(holder, key) of every string of a text block's citations: what the sources say
    (``cited_text``) and their titles and URLs, ids and encrypted indexes aside."""
    if not isinstance(block.get("citations"), list):
        return []
    return string_slots(block, "citations", OPAQUE)


def _reply_slots(body: Any) -> Iterator[Slot]:
    """(kind, holder, key) of every text the model wrote, block by block, and every text of
    a block of another kind (tool results an MCP connector or a server tool put in the
    reply, server tool results, kinds to come: `result_slots`), ids and payloads aside."""
    for block in as_list(as_dict(body).get("content")):
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind in ("text", "thinking") and isinstance(block.get(kind), dict | list):
            # not what Anthropic writes, but what a client shows whole (found by review):
            # read whole, its keys and numbers too
            yield "result", block, kind
        if kind == "text" and isinstance(block.get("text"), str):
            yield "text", block, "text"
            for holder, key in _citation_slots(block):
                yield "result", holder, key
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            yield "thinking", block, "thinking"
        elif kind in TOOL_USE:
            for key in ("name", "server_name"):     # the call's name, an MCP server's
                if isinstance(block.get(key), str):
                    yield "name", block, key
            if "input" in block:
                yield "tool", block, "input"
        elif kind not in REPLY_FIELDS:   # a tool's result: what a tool or server returned
            for holder, key in result_slots(block):
                yield "result", holder, key


def _usage(raw: Any) -> Usage:
    raw = as_dict(raw)
    cache_read = as_int(raw.get("cache_read_input_tokens"))
    cache_write = as_int(raw.get("cache_creation_input_tokens"))
    return with_total(
        Usage(
            input_tokens=sum_known(as_int(raw.get("input_tokens")), cache_write, cache_read),
            output_tokens=as_int(raw.get("output_tokens")),
            cached_input_tokens=cache_read,
            cache_write_input_tokens=cache_write,
        )
    )


def _max(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    return a if b is None else max(a, b)


class AnthropicAdapter(Adapter):
    needles = (b'"usage"', b'"stop_reason"', b'"error"')
    event_paths = (("type",), ("error",), ("usage",), ("message", "usage"),
                   ("delta", "stop_reason"))
    """Anthropic Messages API."""
    #: every delta (text, thinking, signature, tool input, citations) and every block's
    #: start (which may carry text, or redacted thinking, whole)
    output_markers = (b'"content_block_delta"', b'"content_block_start"')
    dense_markers = (b'"content_block_start"',)
    #: adjacent text blocks (and thinking blocks) are one text to a client: the SDK's
    #: `get_final_text()` and a chat UI join them
    stream_joins = frozenset({"text", "thinking"})

    def opaque_context_chars(self, body: dict[str, Any]) -> int:
        """Each ``redacted_thinking`` block's ``data`` (sent back in a tool-use loop)."""
        return sum(len(block["data"])
                   for message in as_list(as_dict(body).get("messages"))
                   if isinstance(message, dict)
                   for block in as_list(message.get("content"))
                   if isinstance(block, dict) and block.get("type") == "redacted_thinking"
                   and isinstance(block.get("data"), str))

    def parse_request(self, path: str, body: dict[str, Any]) -> Prompt:
        body = as_dict(body)
        return Prompt(
            as_str(body.get("model")),
            body.get("stream") is True,
            as_int(body.get("max_tokens")),
            lambda: [(role, read_value(holder[key]))
                     for role, holder, key in request_slots(body)],
        )

    inline_needles = (b"base64", b"\\u")   # what a body with a base64 document holds

    def undecodable_inputs(self, body: dict[str, Any]) -> list[str]:
        """A base64 document source of a text media type whose data is not base64."""
        if unreadable(holder for _, holder, _ in request_slots(as_dict(body))):
            return ["a text document in base64 that the gateway cannot read as text (not base64, "
                    "UTF-16 or UTF-32, or a binary file labelled text)"]
        return []

    #: what a body with an unread input holds (a block of an unknown kind with a payload)
    unread_needles = (b"image", b"document", b"container_upload", b"data", b"file_id",
                      b"source", b"skill", b"web_fetch", b"mcp_servers", b"\\u")

    def unread_inputs(self, body: dict[str, Any]) -> list[tuple[str, str]]:
        """(role, kind) of each input no guard can read (`providers.unread`)."""
        return unread_inputs((role, holder)
                             for role, holder, _ in request_slots(as_dict(body), True))

    def reply_media(self, body: Any) -> list[str]:
        """What a server tool's result block carries that no guard reads (a fetched PDF or
        image), and any image block."""
        return [kind for block in as_list(as_dict(body).get("content"))
                for kind in block_media(block)]

    def parse_response(self, body: dict[str, Any]) -> tuple[str, str | None, Usage]:
        body = as_dict(body)
        text = "".join(
            as_str(block.get("text")) or ""
            for block in map(as_dict, as_list(body.get("content")))
            if block.get("type") == "text"
        )
        return text, as_str(body.get("stop_reason")), _usage(body.get("usage"))

    def rewrite_request_texts(self, path: str, body: dict[str, Any],
                              fn: Callable[[str, str], str]) -> bool:
        if not isinstance(body, dict):
            return False
        return rewrite_slots(request_slots(body), fn)

    def response_texts(self, body: Any) -> list[tuple[str, str]]:
        return [(kind, Name(holder[key]) if kind == "name" else read_value(holder[key]))
                for kind, holder, key in _reply_slots(body)]

    def joined_reply_texts(self, body: Any) -> list[list[tuple[dict[str, Any], str]]]:
        """The text blocks, and the thinking blocks (the SDK's `get_final_text()` joins
        the text blocks)."""
        blocks = [b for b in as_list(as_dict(body).get("content")) if isinstance(b, dict)]
        return [[(b, kind) for b in blocks if b.get("type") == kind
                 and isinstance(b.get(kind), str)] for kind in ("text", "thinking")]

    def rewrite_response_texts(self, body: dict[str, Any], fn: Callable[[str], str]) -> bool:
        changed = False
        for kind, holder, key in _reply_slots(body):
            rewrite = rewrite_name if kind == "name" else rewrite_json_strings
            changed |= rewrite(holder, key, "assistant", text_only(fn))
        return changed

    def stream_delta(self, data: str, event: str | None) -> Delta:
        obj = load_json(data)
        if not isinstance(obj, dict):
            return Delta()
        kind = obj.get("type", event)
        if kind == "content_block_delta":
            delta = as_dict(obj.get("delta"))
            if delta.get("type") == "text_delta":
                return Delta(text=as_str(delta.get("text")) or "")
            return Delta()
        if kind == "content_block_start":
            block = as_dict(obj.get("content_block"))
            if block.get("type") == "text":
                return Delta(text=as_str(block.get("text")) or "")
            return Delta()
        if kind == "message_start":
            message = as_dict(obj.get("message"))
            usage = usage_or_none(_usage(message.get("usage")))
            if usage is not None:
                usage.opening = True   # before any output: it counts no thinking
            return Delta(usage=usage)
        if kind == "message_delta":
            delta = as_dict(obj.get("delta"))
            return Delta(
                finish_reason=as_str(delta.get("stop_reason")),
                usage=usage_or_none(_usage(obj.get("usage"))),
            )
        if kind == "error":
            error = obj.get("error")
            if isinstance(error, dict):
                message = as_str(error.get("message")) or as_str(error.get("type"))
            else:
                message = as_str(error)
            return Delta(error=message or "error")
        return Delta()

    def stream_texts(self, doc: dict[str, Any], event: str | None = None) -> EventTexts:
        """One piece per content block, keyed by the field its text is in (a block has one
        kind): (index, "text" | "thinking" | "partial_json", 0)."""
        kind = doc.get("type", event)
        if event is not None and kind != event:
            # Anthropic names each event by its data's type; a client may go by either
            # (found by review: `content_block_delta` data typed `ping` went unread)
            raise NamedApart(f"event {event!r} holds data of type {kind!r}")
        out = EventTexts()
        if kind == "content_block_delta":
            delta = doc.get("delta")
            if isinstance(delta, dict):
                index = piece_index(doc)
                for key in delta:                # a delta has its type and one field
                    if key in _DELTA_TYPES:
                        if text_field(delta, key):   # (a list or object: NotText)
                            out.slots.append(TextSlot((index, key, 0), delta, key))
                    elif key not in OPAQUE:   # a citations_delta's citation, a delta
                        # newer than this code: every string whole, ids aside
                        out.slots.extend(TextSlot((index, "other", 0), holder, k, whole=True)
                                         for holder, k in string_slots(delta, key, OPAQUE))
        elif kind == "content_block_start":
            block = doc.get("content_block")
            if isinstance(block, dict):
                index = piece_index(doc)
                for key in ("text", "thinking"):
                    if text_field(block, key):
                        out.slots.append(TextSlot((index, key, 0), block, key))
                if block.get("citations"):
                    out.slots.extend(TextSlot((index, "citation", 0), holder, k, whole=True)
                                     for holder, k in _citation_slots(block))
                if block.get("type") in TOOL_USE:
                    name_slot(out.slots, (index, NAME_PIECE, 0), block)
                    name_slot(out.slots, (index, NAME_PIECE, 1), block, "server_name")
                if "input" in block:
                    if block["input"] and isinstance(block["input"], str | dict | list):
                        # whole: the tool's input with its keys and numbers (usually {}:
                        # the input then streams as input_json_delta)
                        out.slots.append(TextSlot((index, "input", 0), block, "input",
                                                  whole=True))
                elif block.get("type") not in REPLY_FIELDS:
                    # a tool's result (an MCP connector's mcp_tool_result, a server tool's:
                    # web search, fetch, code execution...): what a tool or the provider
                    # fetched reaches the client here, whole; every text is read whole
                    out.slots.extend(TextSlot((index, "result", 0), holder, key, whole=True)
                                     for holder, key in result_slots(block))
                out.unread += tuple(block_media(block))   # a PDF or image it fetched
        elif kind == "content_block_stop":
            out.ends = (piece_index(doc),)
        elif kind in ("message_delta", "message_stop", "error"):
            out.ends_all = True
        return out

    def rest_event(self, doc: dict[str, Any], piece: Piece, text: str) -> dict[str, Any]:
        index, key, _ = piece
        return {"type": "content_block_delta", "index": index,
                "delta": {"type": _DELTA_TYPES.get(key, "text_delta"), key: text}}

    def may_carry_usage(self, data: str, event: str | None) -> bool:
        # Only message_start / message_delta carry usage, always under a "usage" key.
        return '"usage"' in data

    def merge_usage(self, acc: Usage, new: Usage) -> Usage:
        merged = Usage(
            input_tokens=_max(acc.input_tokens, new.input_tokens),
            output_tokens=new.output_tokens if new.output_tokens is not None else acc.output_tokens,
            total_tokens=new.total_tokens if new.total_tokens is not None else acc.total_tokens,
            cached_input_tokens=_max(acc.cached_input_tokens, new.cached_input_tokens),
            cache_write_input_tokens=_max(acc.cache_write_input_tokens,
                                          new.cache_write_input_tokens),
            reasoning_tokens=(
                new.reasoning_tokens if new.reasoning_tokens is not None else acc.reasoning_tokens
            ),
            # still the opening count until a later report counts the output
            opening=acc.opening if new.output_tokens is None else new.opening,
        )
        if merged.input_tokens is not None and merged.output_tokens is not None:
            merged.total_tokens = merged.input_tokens + merged.output_tokens
        return merged
