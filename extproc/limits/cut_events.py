"""The events that end a stream at its budget, in each provider's own format (sans-IO).

A `Format` watches the events delivered to the client (`see`), knows whether the stream has
already ended by itself (`finished`), and writes the terminal events of a length stop
(`terminal`), the ones the provider would have sent had the request's own max output tokens
been reached there:

* OpenAI Chat Completions: a `chat.completion.chunk` with `finish_reason: "length"` (empty
  delta) for every choice that has not finished, the usage chunk (`choices: []`) when the
  client asked for `stream_options.include_usage`, then `data: [DONE]`;
* legacy Completions: the same with `text_completion` chunks (`text: ""`);
* the Responses API: `response.incomplete` with `incomplete_details.reason:
  "max_output_tokens"`, the items completed so far and the usage (no `[DONE]` there);
* Anthropic Messages: `content_block_stop` for the open block(s), `message_delta` with
  `stop_reason: "max_tokens"` and `usage.output_tokens`, `message_stop`;
* Gemini / Vertex: a chunk whose unfinished candidates have `finishReason: "MAX_TOKENS"`,
  with the last `usageMetadata` (its output counts set to what was delivered), framed as
  the stream frames its events (an SSE event ending `\\r\\n\\r\\n`, or one more element of the
  JSON array, which the caller closes with `]`).

An endpoint none of these knows ends with a final SSE error event in the provider's error
format (`ErrorOnly`): never a stream run past its budget.
"""

from __future__ import annotations

import json
from typing import Any

from ..codecs.sse import encode
from ..errors import error_body
from ..providers.anthropic import AnthropicAdapter
from ..providers.base import Adapter
from ..providers.google import GoogleAdapter, finish_reason
from ..providers.openai import OpenAIAdapter
from ..providers.openai_legacy import OpenAICompletionsAdapter
from ..providers.openai_responses import OpenAIResponsesAdapter

#: what a stream cut at its budget says when its format has no length stop
CUT_MESSAGE = "the stream was ended by the gateway: its token or spend budget ran out"


def _dump(doc: Any, google: bool = False) -> str:
    separators = (",", ": ") if google else (",", ":")
    return json.dumps(doc, ensure_ascii=False, separators=separators)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


class Format:
    """A stream format's bookkeeping; subclasses override `see`, `finished`, `terminal`."""

    #: the events are JSON-array elements, not SSE (Gemini/Vertex without alt=sse)
    array = False

    def see(self, doc: dict[str, Any], event: str | None) -> None:
        """A delivered event's data (a JSON object) and its SSE event name."""

    def finished(self) -> bool:
        """The stream already ended by itself: nothing is left to cut."""
        return False

    def reported(self, doc: dict[str, Any]) -> int | None:
        """The output tokens the provider reports so far in this event, where it reports
        running usage (Gemini/Vertex); None otherwise."""
        return None

    def terminal(self, output_tokens: int, prompt_tokens: int | None) -> bytes:
        raise NotImplementedError


class ChatCompletions(Format):
    """OpenAI (and Azure) `chat.completion.chunk` streams."""

    object = "chat.completion.chunk"

    def __init__(self, include_usage: bool) -> None:
        self.include_usage = include_usage
        self.head: dict[str, Any] = {}
        self.open: dict[int, bool] = {}      # choice index -> finished

    def see(self, doc: dict[str, Any], event: str | None) -> None:
        if not self.head:
            self.head = {k: doc[k] for k in ("id", "created", "model", "system_fingerprint",
                                              "service_tier") if k in doc}
        choices = doc.get("choices")
        for c in choices if isinstance(choices, list) else ():
            if isinstance(c, dict):
                i = _int(c.get("index"))
                self.open[i] = self.open.get(i, False) or c.get("finish_reason") is not None

    def finished(self) -> bool:
        return bool(self.open) and all(self.open.values())

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        doc = {"id": self.head.get("id", "cut"), "object": self.object,
               "created": self.head.get("created", 0), "model": self.head.get("model", ""),
               **{k: self.head[k] for k in ("service_tier", "system_fingerprint")
                  if k in self.head}, "choices": choices, **extra}
        return encode(_dump(doc))

    def _stop(self, index: int) -> dict[str, Any]:
        return {"index": index, "delta": {}, "logprobs": None, "finish_reason": "length"}

    def terminal(self, output_tokens: int, prompt_tokens: int | None) -> bytes:
        unfinished = sorted(i for i, done in self.open.items() if not done) or [0]
        null_usage = {"usage": None} if self.include_usage else {}
        out = [self._chunk([self._stop(i)], **null_usage) for i in unfinished]
        if self.include_usage:
            p = prompt_tokens or 0
            out.append(self._chunk([], usage={"prompt_tokens": p,
                                              "completion_tokens": output_tokens,
                                              "total_tokens": p + output_tokens}))
        out.append(b"data: [DONE]\n\n")
        return b"".join(out)


class Completions(ChatCompletions):
    """Legacy `text_completion` streams."""

    object = "text_completion"

    def _stop(self, index: int) -> dict[str, Any]:
        return {"text": "", "index": index, "logprobs": None, "finish_reason": "length"}


class Responses(Format):
    """OpenAI Responses API streams (typed SSE events, `sequence_number`, no `[DONE]`)."""

    def __init__(self) -> None:
        self.response: dict[str, Any] | None = None
        self.items: dict[int, Any] = {}
        self.seq = 0
        self.ended = False

    def see(self, doc: dict[str, Any], event: str | None) -> None:
        kind = doc.get("type")
        self.seq = max(self.seq, _int(doc.get("sequence_number")))
        if kind in ("response.created", "response.in_progress") \
                and isinstance(doc.get("response"), dict):
            self.response = doc["response"]
        elif kind == "response.output_item.done":
            self.items[_int(doc.get("output_index"))] = doc.get("item")
        elif kind in ("response.completed", "response.incomplete", "response.failed",
                      "error"):
            self.ended = True

    def finished(self) -> bool:
        return self.ended

    def terminal(self, output_tokens: int, prompt_tokens: int | None) -> bytes:
        base = dict(self.response) if self.response else {
            "id": "resp_cut", "object": "response", "created_at": 0, "model": "",
            "parallel_tool_calls": True, "tool_choice": "auto", "tools": []}
        p = prompt_tokens or 0
        base.update(status="incomplete", incomplete_details={"reason": "max_output_tokens"},
                    error=None, output=[self.items[i] for i in sorted(self.items)],
                    usage={"input_tokens": p, "input_tokens_details": {"cached_tokens": 0},
                           "output_tokens": output_tokens,
                           "output_tokens_details": {"reasoning_tokens": 0},
                           "total_tokens": p + output_tokens})
        doc = {"type": "response.incomplete", "sequence_number": self.seq + 1,
               "response": base}
        return encode(_dump(doc), event="response.incomplete")


class Messages(Format):
    """Anthropic Messages streams."""

    def __init__(self) -> None:
        self.open: set[int] = set()
        self.stopped = False

    def see(self, doc: dict[str, Any], event: str | None) -> None:
        kind = doc.get("type")
        if kind == "content_block_start":
            self.open.add(_int(doc.get("index")))
        elif kind == "content_block_stop":
            self.open.discard(_int(doc.get("index")))
        elif kind == "message_delta":
            delta = doc.get("delta")
            if isinstance(delta, dict) and delta.get("stop_reason") is not None:
                self.stopped = True
        elif kind in ("message_stop", "error"):
            self.stopped = True

    def finished(self) -> bool:
        return self.stopped

    def terminal(self, output_tokens: int, prompt_tokens: int | None) -> bytes:
        out = [encode(_dump({"type": "content_block_stop", "index": i}),
                      event="content_block_stop") for i in sorted(self.open)]
        delta = {"type": "message_delta",
                 "delta": {"stop_reason": "max_tokens", "stop_sequence": None},
                 "usage": {"output_tokens": output_tokens}}
        out.append(encode(_dump(delta), event="message_delta"))
        out.append(encode(_dump({"type": "message_stop"}), event="message_stop"))
        return b"".join(out)


def google_output(usage: Any) -> int | None:
    """Gemini/Vertex output tokens so far: candidatesTokenCount + thoughtsTokenCount (JSON or
    proto field names); None when the event reports neither."""
    if not isinstance(usage, dict):
        return None
    found = None
    for names in (("candidatesTokenCount", "candidates_token_count"),
                  ("thoughtsTokenCount", "thoughts_token_count")):
        for name in names:
            if name in usage:
                found = (found or 0) + _int(usage[name])
                break
    return found


class Gemini(Format):
    """Gemini / Vertex `GenerateContentResponse` chunks (SSE with alt=sse, else an array)."""

    def __init__(self, array: bool) -> None:
        self.array = array
        self.open: dict[int, bool] = {}      # candidate index -> finished
        self.usage: dict[str, Any] | None = None
        self.head: dict[str, Any] = {}

    def see(self, doc: dict[str, Any], event: str | None) -> None:
        candidates = doc.get("candidates")
        for c in candidates if isinstance(candidates, list) else ():
            if isinstance(c, dict):
                i = _int(c.get("index"))
                # (FINISH_REASON_UNSPECIFIED ends nothing: the stream can still be cut)
                self.open[i] = self.open.get(i, False) or finish_reason(c) is not None
        if isinstance(doc.get("usageMetadata"), dict):
            self.usage = doc["usageMetadata"]
        for k in ("modelVersion", "responseId", "createTime"):
            if k in doc:
                self.head[k] = doc[k]

    def finished(self) -> bool:
        return bool(self.open) and all(self.open.values())

    def reported(self, doc: dict[str, Any]) -> int | None:
        return google_output(doc.get("usageMetadata"))

    def terminal(self, output_tokens: int, prompt_tokens: int | None) -> bytes:
        unfinished = sorted(i for i, done in self.open.items() if not done) or [0]
        usage = dict(self.usage or {})
        thoughts = _int(usage.get("thoughtsTokenCount"))
        if google_output(usage) != output_tokens:   # an estimate: say what was delivered
            usage["candidatesTokenCount"] = max(0, output_tokens - thoughts)
        if prompt_tokens is not None and "promptTokenCount" not in usage:
            usage["promptTokenCount"] = prompt_tokens
        usage["totalTokenCount"] = _int(usage.get("promptTokenCount")) + output_tokens \
            + _int(usage.get("toolUsePromptTokenCount"))
        doc = {"candidates": [{"content": {"role": "model", "parts": []},
                               "finishReason": "MAX_TOKENS", "index": i}
                              for i in unfinished],
               "usageMetadata": usage, **self.head}
        if self.array:
            return _dump(doc, True).encode()
        return encode(_dump(doc, True), terminator=b"\r\n\r\n")


class ErrorOnly(Format):
    """A format with no length stop: a final error event in the provider's error format."""

    def __init__(self, provider: str) -> None:
        self.provider = provider

    def terminal(self, output_tokens: int, prompt_tokens: int | None) -> bytes:
        body = error_body(self.provider, 429, CUT_MESSAGE).decode()
        if self.provider == "anthropic":
            return encode(body, event="error")
        if self.provider in ("gemini", "vertex"):
            return encode(body, terminator=b"\r\n\r\n")
        return encode(body)


def format_for(adapter: Adapter, provider: str, *, include_usage: bool = False,
               array: bool = False) -> Format:
    """The terminal-event writer for an endpoint's adapter (`ErrorOnly` for any other)."""
    if isinstance(adapter, OpenAICompletionsAdapter):
        return Completions(include_usage)
    if isinstance(adapter, OpenAIResponsesAdapter):
        return Responses()
    if isinstance(adapter, OpenAIAdapter):
        return ChatCompletions(include_usage)
    if isinstance(adapter, AnthropicAdapter):
        return Messages()
    if isinstance(adapter, GoogleAdapter):
        return Gemini(array)
    return ErrorOnly(provider)
