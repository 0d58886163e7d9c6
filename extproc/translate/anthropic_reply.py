"""An Anthropic Messages reply as the OpenAI Chat Completions reply, incremental and sans-IO.

`reply_translator` (in `extproc.translate.anthropic`) picks, from the status and content
type:

* 200 ``text/event-stream`` (`anthropic_stream`): Anthropic's named events become
  ``chat.completion.chunk`` events as each event completes (see `extproc.translate.base`
  for the chunk conventions):
  ``message_start`` -> the role chunk; text and thinking deltas (and a block start that already
  holds text) -> ``content`` / ``reasoning_content``; a ``tool_use`` block -> a tool call
  (OpenAI indexes 0, 1, ... in block order, Anthropic's ``toolu_`` id) then its
  ``input_json_delta`` pieces as argument deltas; ``message_delta`` -> the finish chunk;
  ``message_stop`` -> the usage chunk (``include_usage`` only) and ``[DONE]``. Dropped, as
  they carry nothing the client reads: ``ping``, ``signature_delta``, ``citations_delta``,
  ``redacted_thinking`` blocks (encrypted), ``content_block_stop`` (but see JSON mode) and
  event types Anthropic may add (its versioning policy). Refused with a final error event:
  any other content block (server tools' blocks: the request never asks for server tools)
  or delta, an ``error`` event (mapped, see `error_body`), bytes that are not Anthropic's
  events, and a stream that ends without ``message_stop`` (truncated upstream). After an
  error event nothing follows, no ``[DONE]``; an ``error`` event after ``message_start`` is
  preceded by a usage chunk of the counts reported so far (``include_usage`` only; see
  `StreamReply._partial_usage`). A tool call whose arguments streamed empty gets ``"{}"``
  when its block stops.
* 200 ``application/json``: the whole ``message`` -> one ``chat.completion`` (text blocks
  joined as ``content``, null when there are only tool calls; thinking joined as
  ``reasoning_content``), held until ``finish`` and capped at `MAX_BODY`.
* any other status: Anthropic's error JSON -> OpenAI's error object; any other body -> a
  generic OpenAI error with the status (never the backend's bytes).

Finish reasons: end_turn, stop_sequence, pause_turn -> stop; max_tokens,
model_context_window_exceeded -> length; tool_use -> tool_calls; refusal -> content_filter;
an unknown reason -> stop. Usage: ``prompt_tokens`` = input + cache writes + cache reads,
``prompt_tokens_details`` ``{cached_tokens: cache reads, cache_write_tokens: cache writes}``
(always both), ``completion_tokens`` = output tokens, ``completion_tokens_details.
reasoning_tokens`` only when Anthropic reports ``output_tokens_details.thinking_tokens``.
A reply whose usage has no count at all gets no usage (no ``usage`` member, no usage chunk)
and sets ``usage_unread``: zeros would read as a real report.

JSON mode (``json_tool``, the request's `JSON_TOOL` for ``response_format: json_object``): the
forced tool's call is the answer: its input becomes ``content``, as compact JSON with UTF-8
kept (``json.dumps(..., ensure_ascii=False)``), and its ``tool_use`` stop reason becomes
``stop``. Streamed, the input is held until its block stops and then released as one content
delta, re-serialized the same way: the model's raw JSON text may hide characters behind
``\\uXXXX`` escapes, and the reply guards read ``content`` as plain text.

A translator that had to turn a 200 reply into an error sets ``failed`` (the caller may want a
502 status for a whole reply).
"""

from __future__ import annotations

import json
from typing import Any

from extproc.providers.values import json_bytes
from extproc.translate.base import (
    ReplyContext,
    ReplyTranslator,
    openai_error,
)

__all__ = ["MAX_BODY", "ErrorReply", "WholeReply", "error_body", "media_type", "openai_usage"]

MAX_BODY = 64 << 20          # a whole reply held for translation
MAX_ERROR_BODY = 1 << 20     # an error body

_FINISH = {"end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop",
           "max_tokens": "length", "model_context_window_exceeded": "length",
           "tool_use": "tool_calls", "refusal": "content_filter"}
# Anthropic error.type -> (OpenAI error type, code)
_ERRORS = {"invalid_request_error": ("invalid_request_error", None),
           "authentication_error": ("authentication_error", None),
           "permission_error": ("permission_error", None),
           "not_found_error": ("not_found_error", None),
           "rate_limit_error": ("rate_limit_error", "rate_limit_exceeded"),
           "request_too_large": ("invalid_request_error", "request_too_large"),
           "billing_error": ("insufficient_quota", "insufficient_quota"),
           "api_error": ("server_error", None),
           "overloaded_error": ("server_error", "overloaded"),
           "timeout_error": ("server_error", "timeout")}


class _Unreadable(ValueError):
    """The backend's reply is not what Anthropic sends."""


def _dump(doc: Any) -> bytes:
    return json_bytes(doc)   # (a lone surrogate from a \ud83d escape stays escaped)


def _int(value: Any) -> int:
    if value is None:
        return 0
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise _Unreadable(f"bad token count {value!r}")
    return value


_COUNTS = ("input_tokens", "output_tokens", "cache_creation_input_tokens",
           "cache_read_input_tokens")


def openai_usage(usage: dict[str, Any]) -> dict[str, Any] | None:
    """OpenAI's reading of Anthropic's usage (see the module docstring); None when it has
    no count at all (nothing to make zeros of)."""
    if all(usage.get(key) is None for key in _COUNTS):
        return None
    fresh, write = _int(usage.get("input_tokens")), _int(usage.get("cache_creation_input_tokens"))
    read, out = _int(usage.get("cache_read_input_tokens")), _int(usage.get("output_tokens"))
    prompt = fresh + write + read
    doc: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": out,
                           "total_tokens": prompt + out,
                           "prompt_tokens_details": {"cached_tokens": read,
                                                     "cache_write_tokens": write}}
    details = usage.get("output_tokens_details")
    if isinstance(details, dict) and details.get("thinking_tokens") is not None:
        doc["completion_tokens_details"] = {
            "reasoning_tokens": _int(details["thinking_tokens"])}
    return doc


def _mapped_error(error: Any, status: int) -> dict[str, Any] | None:
    """OpenAI's error object for Anthropic's ``error`` member, None when it is not one."""
    if not isinstance(error, dict) or not isinstance(error.get("type"), str):
        return None
    message = error.get("message")
    if not isinstance(message, str) or not message:
        message = f"Anthropic returned {error['type']}"
    kind, code = _ERRORS.get(error["type"], (None, error["type"]))
    return openai_error(status, message, kind, code)


def error_body(status: int, body: bytes) -> dict[str, Any]:
    """OpenAI's error object for an Anthropic error reply (any body)."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):   # (deeper than Python parses)
        doc = None
    mapped = _mapped_error(doc.get("error"), status) if isinstance(doc, dict) \
        and doc.get("type") == "error" else None
    if mapped is not None:
        return mapped
    return openai_error(status, f"the Anthropic backend answered HTTP {status} without "
                        "an error Anthropic's API would send", code="upstream_error")


def _unreadable(reason: str) -> dict[str, Any]:
    return openai_error(502, f"the Anthropic backend's reply could not be translated: {reason}",
                        "server_error", "bad_upstream_reply")


def _finish(stop: Any, json_mode: bool) -> str:
    if not isinstance(stop, str):
        raise _Unreadable("no stop_reason")
    if json_mode and stop == "tool_use":
        return "stop"
    return _FINISH.get(stop, "stop")


class _Held(ReplyTranslator):
    """A whole body held until `finish`, capped."""

    content_type = "application/json"

    def __init__(self, cap: int) -> None:
        self._buf = bytearray()
        self._cap = cap
        self._over = False
        self.failed = False

    def feed(self, chunk: bytes) -> bytes:
        if not self._over:
            self._buf += chunk
            if len(self._buf) > self._cap:
                self._over = True
                self._buf = bytearray()
        return b""

    @property
    def held_bytes(self) -> int:
        return len(self._buf)


class ErrorReply(_Held):
    def __init__(self, status: int) -> None:
        super().__init__(MAX_ERROR_BODY)
        self._status = status

    def finish(self) -> bytes:
        body, self._buf = bytes(self._buf), bytearray()
        return _dump(error_body(self._status, b"" if self._over else body))


class WholeReply(_Held):
    def __init__(self, ctx: ReplyContext, json_tool: str | None) -> None:
        super().__init__(MAX_BODY)
        self._ctx = ctx
        self._json_tool = json_tool

    def finish(self) -> bytes:
        body, self._buf = bytes(self._buf), bytearray()
        try:
            if self._over:
                raise _Unreadable(f"the body exceeds {MAX_BODY} bytes")
            return _dump(self._completion(body))
        except _Unreadable as exc:
            self.failed = True
            return _dump(_unreadable(str(exc)))

    def _completion(self, body: bytes) -> dict[str, Any]:
        try:
            msg = json.loads(body)
        except (ValueError, RecursionError):   # (deeper than Python parses)
            raise _Unreadable("not JSON") from None
        if not isinstance(msg, dict) or msg.get("type") != "message" \
                or not isinstance(msg.get("content"), list) \
                or not isinstance(msg.get("usage"), dict):
            raise _Unreadable("not an Anthropic message")
        texts, thoughts, calls = [], [], []
        json_used = False
        for block in msg["content"]:
            kind = block.get("type") if isinstance(block, dict) else None
            if kind == "text" and isinstance(block.get("text"), str):
                texts.append(block["text"])
            elif kind == "thinking" and isinstance(block.get("thinking"), str):
                thoughts.append(block["thinking"])
            elif kind == "redacted_thinking":
                continue
            elif kind == "tool_use" and isinstance(block.get("id"), str) \
                    and isinstance(block.get("name"), str) and isinstance(block.get("input"), dict):
                if self._json_tool is not None and block["name"] == self._json_tool:
                    texts.append(_dump(block["input"]).decode())
                    json_used = True
                else:
                    calls.append({"id": block["id"], "type": "function", "function": {
                        "name": block["name"], "arguments": _dump(block["input"]).decode()}})
            else:
                raise _Unreadable(f"unsupported content block {kind!r}")
        message: dict[str, Any] = {"role": "assistant",
                                   "content": "".join(texts) if texts or not calls else None,
                                   "refusal": None, "annotations": []}
        if calls:
            message["tool_calls"] = calls
        if thoughts:
            message["reasoning_content"] = "".join(thoughts)
        msg_id = msg.get("id")
        choice = {"index": 0, "message": message, "logprobs": None,
                  "finish_reason": _finish(msg.get("stop_reason"), json_used and not calls)}
        out: dict[str, Any] = {"id": self._ctx.id or f"chatcmpl-{msg_id}",
                               "object": "chat.completion", "created": self._ctx.created,
                               "model": self._ctx.model, "choices": [choice]}
        counts = openai_usage(msg["usage"])
        if counts is None:    # no zeros made up: the gateway reads its usage as unread
            self.usage_unread = True
        else:
            out["usage"] = counts
        return out


def media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()
