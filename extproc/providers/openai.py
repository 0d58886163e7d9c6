"""OpenAI Chat Completions (and Azure OpenAI) adapter: requests, replies and SSE chunks.

Paths: ``/v1/chat/completions``, ``/openai/v1/chat/completions`` (model in the body) and
Azure's ``/openai/deployments/{deployment}/chat/completions`` (the deployment in the path
names the model Azure serves, so it wins over a ``model`` in the body).

Stream chunks are ``data: {"object": "chat.completion.chunk", "choices": [...]}`` events
ended by ``data: [DONE]``; only choice index 0 is read. ``delta.refusal`` (and a reply's
``message.refusal``) IS counted as visible text: it is what the user reads instead of
content. Tool call arguments are not visible text. With ``stream_options.include_usage``
a final chunk with ``"choices": []`` carries the usage; ``Delta.drop`` marks it. A mid-stream
``{"error": {...}}`` chunk becomes ``Delta.error``. Azure's ``prompt_filter_results``-only
chunk says nothing.

Rewriting visits the same texts: message content (string, string parts, text and refusal
parts), a non-empty ``refusal``, and tool call / legacy ``function_call`` arguments (a JSON
string, passed whole; a non-string value is rewritten string value by string value). In a
reply, every choice's ``message.content`` and ``refusal`` (tool call arguments are not
visible text, so they are left alone).
"""

from __future__ import annotations

import re
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
    path_only,
    pick_indexed,
    rewrite_json_strings,
    rewrite_slot,
    text_only,
    usage_or_none,
    with_total,
)

_EMPTY_CHOICES = re.compile(r'"choices"\s*:\s*\[\s*\]')

_AZURE_DEPLOYMENT = re.compile(r"/deployments/([^/]+)/")
_ROLES = {"developer": "system", "function": "tool"}
_TEXT_PARTS = ("text", "input_text", "output_text", "refusal")
_INCLUDE_USAGE = b'"stream_options":{"include_usage":true},'


def _part_texts(content: Any) -> list[str]:
    """Text of string content or of text/refusal content parts (images, audio, files skipped)."""
    if isinstance(content, str):
        return [content]
    out: list[str] = []
    for part in as_list(content):
        if isinstance(part, str):
            out.append(part)
            continue
        part = as_dict(part)
        kind = part.get("type", "text")
        if kind in _TEXT_PARTS:
            text = as_str(part.get(kind if kind == "refusal" else "text"))
            if text is not None:
                out.append(text)
    return out


def _prompt_texts(body: dict[str, Any]) -> list[tuple[str, str]]:
    texts: list[tuple[str, str]] = []
    for message in as_list(body.get("messages")):
        texts.extend(_message_texts(message))
    return texts


def _message_texts(message: Any) -> list[tuple[str, str]]:
    message = as_dict(message)
    role = as_str(message.get("role")) or "user"
    role = _ROLES.get(role, role)
    out = [(role, text) for text in _part_texts(message.get("content"))]
    refusal = as_str(message.get("refusal"))
    if refusal:
        out.append((role, refusal))
    for call in as_list(message.get("tool_calls")):
        function = as_dict(as_dict(call).get("function"))
        if "arguments" in function:
            out.append(("tool", dump_compact(function["arguments"])))
    legacy = as_dict(message.get("function_call"))
    if "arguments" in legacy:
        out.append(("tool", dump_compact(legacy["arguments"])))
    return out


def _rewrite_parts(holder: dict[str, Any], role: str, fn: Callable[[str, str], str]) -> bool:
    """Rewrite what ``_part_texts(holder.get("content"))`` reads."""
    content = holder.get("content")
    if isinstance(content, str):
        return rewrite_slot(holder, "content", role, fn)
    changed = False
    for index, part in enumerate(as_list(content)):
        if isinstance(part, str):
            changed |= rewrite_slot(content, index, role, fn)
        elif isinstance(part, dict):
            kind = part.get("type", "text")
            if kind in _TEXT_PARTS:
                key = kind if kind == "refusal" else "text"
                if isinstance(part.get(key), str):
                    changed |= rewrite_slot(part, key, role, fn)
    return changed


def _rewrite_message(message: Any, fn: Callable[[str, str], str]) -> bool:
    """Rewrite what ``_message_texts(message)`` reads, in the same order."""
    if not isinstance(message, dict):
        return False
    role = as_str(message.get("role")) or "user"
    role = _ROLES.get(role, role)
    changed = _rewrite_parts(message, role, fn)
    if as_str(message.get("refusal")):
        changed |= rewrite_slot(message, "refusal", role, fn)
    for call in as_list(message.get("tool_calls")):
        function = as_dict(as_dict(call).get("function"))
        if "arguments" in function:
            changed |= rewrite_json_strings(function, "arguments", "tool", fn)
    legacy = as_dict(message.get("function_call"))
    if "arguments" in legacy:
        changed |= rewrite_json_strings(legacy, "arguments", "tool", fn)
    return changed


def _usage(raw: Any) -> Usage:
    raw = as_dict(raw)
    return with_total(
        Usage(
            input_tokens=as_int(raw.get("prompt_tokens")),
            output_tokens=as_int(raw.get("completion_tokens")),
            total_tokens=as_int(raw.get("total_tokens")),
            cached_input_tokens=as_int(
                as_dict(raw.get("prompt_tokens_details")).get("cached_tokens")
            ),
            reasoning_tokens=as_int(
                as_dict(raw.get("completion_tokens_details")).get("reasoning_tokens")
            ),
        )
    )


def _error_message(raw: Any) -> str:
    if isinstance(raw, dict):
        return as_str(raw.get("message")) or as_str(raw.get("type")) or "error"
    return as_str(raw) or "error"


class OpenAIAdapter(Adapter):
    needles = (b'_tokens"', b'"finish_reason":"', b'"finish_reason": "', b'"error"')
    """OpenAI and Azure OpenAI Chat Completions."""

    def parse_request(self, path: str, body: dict[str, Any]) -> Prompt:
        body = as_dict(body)
        model = as_str(body.get("model"))
        deployment = _AZURE_DEPLOYMENT.search(path_only(path))
        if deployment:
            model = deployment.group(1)
        max_tokens = as_int(body.get("max_completion_tokens"))
        if max_tokens is None:
            max_tokens = as_int(body.get("max_tokens"))
        return Prompt(model, body.get("stream") is True, max_tokens, lambda: _prompt_texts(body))

    def parse_response(self, body: dict[str, Any]) -> tuple[str, str | None, Usage]:
        body = as_dict(body)
        choice = as_dict(pick_indexed(as_list(body.get("choices"))))
        message = as_dict(choice.get("message"))
        text = "".join(_part_texts(message.get("content")))
        text += as_str(message.get("refusal")) or ""
        return text, as_str(choice.get("finish_reason")), _usage(body.get("usage"))

    def rewrite_request_texts(self, path: str, body: dict[str, Any],
                              fn: Callable[[str, str], str]) -> bool:
        changed = False
        for message in as_list(as_dict(body).get("messages")):
            changed |= _rewrite_message(message, fn)
        return changed

    def rewrite_response_texts(self, body: dict[str, Any], fn: Callable[[str], str]) -> bool:
        by_role = text_only(fn)
        changed = False
        for choice in as_list(as_dict(body).get("choices")):
            message = as_dict(as_dict(choice).get("message"))
            changed |= _rewrite_parts(message, "assistant", by_role)
            if as_str(message.get("refusal")):
                changed |= rewrite_slot(message, "refusal", "assistant", by_role)
        return changed

    def stream_delta(self, data: str, event: str | None) -> Delta:
        if data == "[DONE]":
            return Delta()
        obj = load_json(data)
        if not isinstance(obj, dict):
            return Delta()
        if "error" in obj and obj["error"] is not None:
            return Delta(error=_error_message(obj["error"]))
        choices = obj.get("choices")
        choice = as_dict(pick_indexed(as_list(choices)))
        delta = as_dict(choice.get("delta"))
        text = (as_str(delta.get("content")) or "") + (as_str(delta.get("refusal")) or "")
        raw_usage = obj.get("usage")
        usage = usage_or_none(_usage(raw_usage)) if isinstance(raw_usage, dict) else None
        return Delta(
            text=text,
            finish_reason=as_str(choice.get("finish_reason")),
            usage=usage,
            drop=choices == [] and isinstance(raw_usage, dict),
        )

    def may_carry_usage(self, data: str, event: str | None) -> bool:
        # Every usage field read ends in `_tokens"` (prompt_tokens, cached_tokens, ...).
        return '"usage"' in data and '_tokens"' in data

    def add_stream_usage_option(self, body: bytes, parsed: dict[str, Any]) -> bytes | None:
        if not isinstance(parsed, dict) or parsed.get("stream") is not True:
            return None
        if "stream_options" not in parsed:
            start = len(body) - len(body.lstrip())
            if body[start : start + 1] == b"{":
                return body[: start + 1] + _INCLUDE_USAGE + body[start + 1 :]
            options: dict[str, Any] = {}
        else:
            current = parsed["stream_options"]
            if current is None:
                options = {}
            elif isinstance(current, dict):
                if current.get("include_usage") is True:
                    return None
                options = dict(current)
            else:
                return None  # malformed; let the provider reject it
        options["include_usage"] = True
        rebuilt = dict(parsed)
        rebuilt["stream_options"] = options
        text = dump_compact(rebuilt)
        return text.encode("utf-8") if text else None

    def is_usage_only_chunk(self, data: str) -> bool:
        # every chunk carries "usage" once include_usage is on (null in all but the last):
        # only an empty choices list is worth parsing
        if '"usage"' not in data or not _EMPTY_CHOICES.search(data):
            return False
        obj = load_json(data)
        return (
            isinstance(obj, dict)
            and obj.get("choices") == []
            and isinstance(obj.get("usage"), dict)
        )
