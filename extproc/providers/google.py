"""Gemini API and Vertex AI generateContent adapter: requests, replies and stream elements.

The model and the stream flag come from the path, not the body:
``.../models/{model}:generateContent`` or ``:streamGenerateContent`` (Gemini
``/v1beta/models/...``, Vertex ``/v1/projects/{p}/locations/{l}/publishers/google/models/...``;
any prefix, query string or ``%3A`` for the colon is accepted). A ``model`` in the body is
only a fallback. Both the camelCase and the snake_case JSON field names are read.

A stream event is one ``GenerateContentResponse``: an ``alt=sse`` event's data or one element
of the streamed JSON array, as text. Only candidate index 0 is read. Visible text is its
``parts[].text`` without ``thought: true``; ``functionCall`` parts are not text.

Finish reasons: the candidate's own ``finishReason`` ("STOP", "MAX_TOKENS", "SAFETY", ...).
A blocked prompt (``promptFeedback.blockReason`` and no candidates) reports
``"blocked:" + blockReason`` (e.g. ``"blocked:SAFETY"``, ``"blocked:PROHIBITED_CONTENT"``),
so policies can tell a refused prompt from a reply stopped by a safety filter ("SAFETY").
An element with an ``error`` object (``{"error": {"code", "message", "status"}}``) becomes
``Delta.error``.

Usage: ``usageMetadata`` is cumulative in every element, so merging takes the latest
reported value of each field; Vertex intermediate elements may carry only ``trafficType``,
which reports nothing.

Rewriting visits the same texts: ``systemInstruction`` and ``contents`` (a Content or a bare
string), non-thought ``text`` parts, and ``functionCall.args`` / ``functionResponse.response``
(role "tool"), objects rewritten string value by string value; the same camelCase-then-
snake_case field choice is made. In a reply (or a buffered JSON-array stream), every
candidate's non-thought ``parts[].text``.
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
    sum_known,
    text_only,
    usage_or_none,
    with_total,
)

BLOCKED_PREFIX = "blocked:"

_MODEL_PATH = re.compile(r"(?:^|/)(?:models|tunedModels)/([^/:]+):([A-Za-z]+)$")
_ROLES = {"model": "assistant", "function": "tool"}


def _get(obj: dict[str, Any], camel: str, snake: str) -> Any:
    """A field by its JSON (camelCase) name, else its proto (snake_case) name."""
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _route(path: str) -> tuple[str | None, str | None]:
    """(model, method) of a generateContent path, or (None, None)."""
    match = _MODEL_PATH.search(path_only(path))
    return (match.group(1), match.group(2)) if match else (None, None)


def _prompt_texts(body: dict[str, Any]) -> list[tuple[str, str]]:
    system = _get(body, "systemInstruction", "system_instruction")
    texts = _content_texts(system, "system") if system is not None else []
    for content in as_list(body.get("contents")):
        texts.extend(_content_texts(content))
    return texts


def _content_texts(content: Any, role: str | None = None) -> list[tuple[str, str]]:
    """(role, text) of a Content's parts: text, functionCall args, functionResponse."""
    if isinstance(content, str):  # tolerated for systemInstruction
        return [(role or "user", content)]
    content = as_dict(content)
    if role is None:
        own = as_str(content.get("role")) or "user"
        role = _ROLES.get(own, own)
    out: list[tuple[str, str]] = []
    for part in as_list(content.get("parts")):
        part = as_dict(part)
        text = as_str(part.get("text"))
        if text is not None:
            if part.get("thought") is not True:
                out.append((role, text))
            continue
        call = as_dict(_get(part, "functionCall", "function_call"))
        if call:
            out.append(("tool", dump_compact(call.get("args", {}))))
            continue
        result = as_dict(_get(part, "functionResponse", "function_response"))
        if result:
            out.append(("tool", dump_compact(result.get("response", {}))))
    return out


def _key(obj: dict[str, Any], camel: str, snake: str) -> str:
    """The key ``_get(obj, camel, snake)`` reads."""
    return snake if obj.get(camel) is None else camel


def _rewrite_content(holder: Any, key: Any, role: str | None,
                     fn: Callable[[str, str], str]) -> bool:
    """Rewrite what ``_content_texts(holder[key], role)`` reads, in the same order."""
    content = holder[key]
    if isinstance(content, str):
        return rewrite_slot(holder, key, role or "user", fn)
    if not isinstance(content, dict):
        return False
    if role is None:
        own = as_str(content.get("role")) or "user"
        role = _ROLES.get(own, own)
    changed = False
    for part in as_list(content.get("parts")):
        if not isinstance(part, dict):
            continue
        if isinstance(part.get("text"), str):
            if part.get("thought") is not True:
                changed |= rewrite_slot(part, "text", role, fn)
            continue
        call = as_dict(_get(part, "functionCall", "function_call"))
        if call:
            if "args" in call:
                changed |= rewrite_json_strings(call, "args", "tool", fn)
            continue
        result = as_dict(_get(part, "functionResponse", "function_response"))
        if "response" in result:
            changed |= rewrite_json_strings(result, "response", "tool", fn)
    return changed


def _rewrite_reply(obj: Any, fn: Callable[[str, str], str]) -> bool:
    """Rewrite the non-thought text parts of every candidate of one GenerateContentResponse."""
    changed = False
    for candidate in as_list(as_dict(obj).get("candidates")):
        content = as_dict(as_dict(candidate).get("content"))
        for part in as_list(content.get("parts")):
            if isinstance(part, dict) and part.get("thought") is not True:
                if isinstance(part.get("text"), str):
                    changed |= rewrite_slot(part, "text", "assistant", fn)
    return changed


def _usage(raw: Any) -> Usage:
    raw = as_dict(raw)
    candidates = as_int(_get(raw, "candidatesTokenCount", "candidates_token_count"))
    thoughts = as_int(_get(raw, "thoughtsTokenCount", "thoughts_token_count"))
    return with_total(
        Usage(
            input_tokens=sum_known(
                as_int(_get(raw, "promptTokenCount", "prompt_token_count")),
                as_int(_get(raw, "toolUsePromptTokenCount", "tool_use_prompt_token_count")),
            ),
            output_tokens=sum_known(candidates, thoughts),
            total_tokens=as_int(_get(raw, "totalTokenCount", "total_token_count")),
            cached_input_tokens=as_int(
                _get(raw, "cachedContentTokenCount", "cached_content_token_count")
            ),
            reasoning_tokens=thoughts,
        )
    )


def _read(obj: dict[str, Any]) -> tuple[str, str | None, Usage, str | None]:
    """(visible text, finish reason, usage, error) of one GenerateContentResponse."""
    usage = _usage(_get(obj, "usageMetadata", "usage_metadata"))
    error = obj.get("error")
    if error is not None:
        if isinstance(error, dict):
            message = as_str(error.get("message")) or as_str(error.get("status"))
        else:
            message = as_str(error)
        return "", None, usage, message or "error"
    candidates = as_list(obj.get("candidates"))
    candidate = as_dict(pick_indexed(candidates))
    if not candidates:
        feedback = as_dict(_get(obj, "promptFeedback", "prompt_feedback"))
        reason = as_str(_get(feedback, "blockReason", "block_reason"))
        finish = BLOCKED_PREFIX + reason if reason else None
        return "", finish, usage, None
    text = "".join(
        as_str(part.get("text")) or ""
        for part in map(as_dict, as_list(as_dict(candidate.get("content")).get("parts")))
        if part.get("thought") is not True
    )
    return text, as_str(_get(candidate, "finishReason", "finish_reason")), usage, None


class GoogleAdapter(Adapter):
    needles = (b'TokenCount"', b'token_count"', b'"finishReason"', b'"blockReason"', b'"error"')
    """Gemini API and Vertex AI (Gemini models) generateContent / streamGenerateContent."""

    def parse_request(self, path: str, body: dict[str, Any]) -> Prompt:
        body = as_dict(body)
        model, method = _route(path)
        if model is None:
            fallback = as_str(body.get("model"))
            model = fallback.rsplit("/", 1)[-1] if fallback else None
        config = as_dict(_get(body, "generationConfig", "generation_config"))
        max_tokens = as_int(_get(config, "maxOutputTokens", "max_output_tokens"))
        return Prompt(model, method == "streamGenerateContent", max_tokens,
                      lambda: _prompt_texts(body))

    def is_stream_request(self, path: str, body: dict[str, Any] | None) -> bool:
        return _route(path)[1] == "streamGenerateContent"

    def parse_response(self, body: dict[str, Any] | list[Any]) -> tuple[str, str | None, Usage]:
        """A generateContent reply; a whole buffered JSON-array stream is also accepted."""
        if isinstance(body, list):
            text, finish, usage = "", None, Usage()
            for element in body:
                part, reason, more, _ = _read(as_dict(element))
                text += part
                finish = reason or finish
                usage = self.merge_usage(usage, more)
            return text, finish, usage
        text, finish, usage, _ = _read(as_dict(body))
        return text, finish, usage

    def rewrite_request_texts(self, path: str, body: dict[str, Any],
                              fn: Callable[[str, str], str]) -> bool:
        if not isinstance(body, dict):
            return False
        changed = False
        key = _key(body, "systemInstruction", "system_instruction")
        if body.get(key) is not None:
            changed |= _rewrite_content(body, key, "system", fn)
        contents = body.get("contents")
        for index in range(len(as_list(contents))):
            changed |= _rewrite_content(contents, index, None, fn)
        return changed

    def rewrite_response_texts(self, body: dict[str, Any] | list[Any],
                               fn: Callable[[str], str]) -> bool:
        """Every candidate's visible text; a whole buffered JSON-array stream is also accepted."""
        by_role = text_only(fn)
        changed = False
        for element in body if isinstance(body, list) else [body]:
            changed |= _rewrite_reply(element, by_role)
        return changed

    def stream_delta(self, data: str, event: str | None) -> Delta:
        obj = load_json(data)
        if not isinstance(obj, dict):
            return Delta()
        text, finish, usage, error = _read(obj)
        return Delta(text=text, finish_reason=finish, usage=usage_or_none(usage), error=error)

    def may_carry_usage(self, data: str, event: str | None) -> bool:
        # Every count read ends in `TokenCount"` (camelCase) or `token_count"` (snake_case);
        # a Vertex `{"trafficType": ...}`-only usageMetadata has neither.
        return 'TokenCount"' in data or 'token_count"' in data
