"""Anthropic Messages adapter: requests, replies and the named-event SSE stream.

Path ``/v1/messages`` (any prefix). Stream events are ``event: <type>`` + ``data: <json>``;
the JSON's own ``type`` is trusted over the SSE event name. Visible text is ``text_delta``
(and non-empty text in a ``content_block_start``); ``thinking_delta``, ``signature_delta``
and ``input_json_delta`` are not. ``message_delta.delta.stop_reason`` is the finish reason.
An ``error`` event (e.g. ``overloaded_error`` after a 200) becomes ``Delta.error`` = its
message. ``ping``, ``content_block_stop`` and ``message_stop`` say nothing.

Usage: ``message_start`` reports input and cache tokens (and a first output count);
``message_delta`` reports the CUMULATIVE ``output_tokens`` and may repeat input/cache counts.
Input counts are normalised to include cache writes and reads (see ``base``); merging keeps
the largest input/cached count seen (so a repeat that omits the cache fields cannot shrink
it) and the latest output count.

Rewriting visits the same texts: ``system`` (string or text/document blocks), message content
(string, text blocks, text documents, ``content`` documents recursively), tool_result content
(role "tool"), and tool_use / server_tool_use ``input``, an object rewritten string value by
string value (role "tool"). In a reply, the ``text`` of every text block.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from extproc.providers.base import (
    Adapter,
    Delta,
    Prompt,
    Usage,
    as_dict,
    as_int,
    as_list,
    as_str,
    dump_compact,
    load_json,
    rewrite_json_strings,
    rewrite_slot,
    sum_known,
    text_only,
    usage_or_none,
    with_total,
)


def _block_texts(content: Any) -> list[str]:
    """Text of string content or of text/document blocks (images etc. skipped)."""
    if isinstance(content, str):
        return [content]
    out: list[str] = []
    for block in as_list(content):
        block = as_dict(block)
        kind = block.get("type")
        if kind == "text":
            text = as_str(block.get("text"))
            if text is not None:
                out.append(text)
        elif kind == "document":
            source = as_dict(block.get("source"))
            if source.get("type") == "text":
                text = as_str(source.get("data"))
                if text is not None:
                    out.append(text)
            elif source.get("type") == "content":
                out.extend(_block_texts(source.get("content")))
    return out


def _prompt_texts(body: dict[str, Any]) -> list[tuple[str, str]]:
    texts = [("system", text) for text in _block_texts(body.get("system"))]
    for message in as_list(body.get("messages")):
        texts.extend(_message_texts(message))
    return texts


def _message_texts(message: Any) -> list[tuple[str, str]]:
    message = as_dict(message)
    role = as_str(message.get("role")) or "user"
    content = message.get("content")
    if isinstance(content, str):
        return [(role, content)]
    out: list[tuple[str, str]] = []
    for block in as_list(content):
        block = as_dict(block)
        kind = block.get("type")
        if kind in ("tool_use", "server_tool_use"):
            if "input" in block:
                out.append(("tool", dump_compact(block["input"])))
        elif kind == "tool_result":
            out.extend(("tool", text) for text in _block_texts(block.get("content")))
        else:
            out.extend((role, text) for text in _block_texts([block]))
    return out


def _rewrite_block(block: Any, role: str, fn: Callable[[str, str], str]) -> bool:
    """Rewrite what ``_block_texts([block])`` reads."""
    if not isinstance(block, dict):
        return False
    kind = block.get("type")
    if kind == "text":
        return isinstance(block.get("text"), str) and rewrite_slot(block, "text", role, fn)
    if kind == "document":
        source = block.get("source")
        if not isinstance(source, dict):
            return False
        if source.get("type") == "text":
            return isinstance(source.get("data"), str) and rewrite_slot(source, "data", role, fn)
        if source.get("type") == "content":
            return _rewrite_blocks(source, "content", role, fn)
    return False


def _rewrite_blocks(holder: dict[str, Any], key: str, role: str,
                    fn: Callable[[str, str], str]) -> bool:
    """Rewrite what ``_block_texts(holder.get(key))`` reads."""
    content = holder.get(key)
    if isinstance(content, str):
        return rewrite_slot(holder, key, role, fn)
    changed = False
    for block in as_list(content):
        changed |= _rewrite_block(block, role, fn)
    return changed


def _rewrite_message(message: Any, fn: Callable[[str, str], str]) -> bool:
    """Rewrite what ``_message_texts(message)`` reads, in the same order."""
    if not isinstance(message, dict):
        return False
    role = as_str(message.get("role")) or "user"
    if isinstance(message.get("content"), str):
        return rewrite_slot(message, "content", role, fn)
    changed = False
    for block in as_list(message.get("content")):
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind in ("tool_use", "server_tool_use"):
            if "input" in block:
                changed |= rewrite_json_strings(block, "input", "tool", fn)
        elif kind == "tool_result":
            changed |= _rewrite_blocks(block, "content", "tool", fn)
        else:
            changed |= _rewrite_block(block, role, fn)
    return changed


def _usage(raw: Any) -> Usage:
    raw = as_dict(raw)
    cache_read = as_int(raw.get("cache_read_input_tokens"))
    return with_total(
        Usage(
            input_tokens=sum_known(
                as_int(raw.get("input_tokens")),
                as_int(raw.get("cache_creation_input_tokens")),
                cache_read,
            ),
            output_tokens=as_int(raw.get("output_tokens")),
            cached_input_tokens=cache_read,
        )
    )


def _max(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    return a if b is None else max(a, b)


class AnthropicAdapter(Adapter):
    needles = (b'"usage"', b'"stop_reason"', b'"error"')
    """Anthropic Messages API."""

    def parse_request(self, path: str, body: dict[str, Any]) -> Prompt:
        body = as_dict(body)
        return Prompt(
            as_str(body.get("model")),
            body.get("stream") is True,
            as_int(body.get("max_tokens")),
            lambda: _prompt_texts(body),
        )

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
        changed = _rewrite_blocks(body, "system", "system", fn)
        for message in as_list(body.get("messages")):
            changed |= _rewrite_message(message, fn)
        return changed

    def rewrite_response_texts(self, body: dict[str, Any], fn: Callable[[str], str]) -> bool:
        by_role = text_only(fn)
        changed = False
        for block in as_list(as_dict(body).get("content")):
            if isinstance(block, dict) and block.get("type") == "text":
                if isinstance(block.get("text"), str):
                    changed |= rewrite_slot(block, "text", "assistant", by_role)
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
            return Delta(usage=usage_or_none(_usage(message.get("usage"))))
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

    def may_carry_usage(self, data: str, event: str | None) -> bool:
        # Only message_start / message_delta carry usage, always under a "usage" key.
        return '"usage"' in data

    def merge_usage(self, acc: Usage, new: Usage) -> Usage:
        merged = Usage(
            input_tokens=_max(acc.input_tokens, new.input_tokens),
            output_tokens=new.output_tokens if new.output_tokens is not None else acc.output_tokens,
            total_tokens=new.total_tokens if new.total_tokens is not None else acc.total_tokens,
            cached_input_tokens=_max(acc.cached_input_tokens, new.cached_input_tokens),
            reasoning_tokens=(
                new.reasoning_tokens if new.reasoning_tokens is not None else acc.reasoning_tokens
            ),
        )
        if merged.input_tokens is not None and merged.output_tokens is not None:
            merged.total_tokens = merged.input_tokens + merged.output_tokens
        return merged
