"""Gemini / Vertex ``generateContent`` replies -> OpenAI Chat Completions replies (sans-IO):
the incremental translators, built on `google_parts`.

`reply_translator(status, content_type, ctx)` picks one of two incremental translators:

* `StreamReply` (a 200 ``text/event-stream`` reply to a stream request, ``alt=sse``): each
  ``data:`` event is a GenerateContentResponse; its text, thought and functionCall parts
  are released as ``chat.completion.chunk`` events as soon as the event completes. The usage
  chunk (``include_usage``; none, and ``usage_unread`` set, when no event had a usage
  count) and ``[DONE]`` come when the upstream stream ends and every
  candidate has finished; a stream that ends earlier, an ``error`` event, an unreadable
  event or a part the translator cannot map ends with an OpenAI error event (no ``[DONE]``).
* `BufferedReply` (everything else): the body is buffered (capped at `MAX_BODY`) and
  translated whole: a 200 JSON reply to a non-stream request becomes a ``chat.completion``;
  any other status becomes an OpenAI error object; a 200 that is not what was asked (JSON
  for a stream request, e.g. the JSON-array stream; SSE for a whole one) is an error, never
  data: an SSE error event for a stream request (the client reads a stream), else an error
  object with `status` 502.

Each translator's ``status`` is the HTTP status the client should get (the lead sets it on
the response headers; it differs from the upstream status only for a 200 turned into an
error object).
"""

from __future__ import annotations

import json
from typing import Any

from extproc.codecs.sse import Event, SSEDecoder, SSEError
from extproc.providers.values import json_bytes
from extproc.translate.base import (
    DONE,
    ReplyContext,
    ReplyTranslator,
    chunk_event,
    openai_error,
)
from extproc.translate.google_parts import (
    FINISH_REASONS,
    Failed,
    blocked,
    call_chunk,
    candidates,
    completion,
    finish,
    google_error,
    read_part,
    read_parts,
    response_id,
    unreadable,
    usage,
)

__all__ = ["FINISH_REASONS", "MAX_BODY", "BufferedReply", "StreamReply",
           "completion", "reply_translator", "usage"]

MAX_BODY = 64 << 20    # a whole reply


def _dumps(doc: dict[str, Any]) -> bytes:
    return json_bytes(doc)   # (a lone surrogate from a \ud83d escape stays escaped)


class BufferedReply(ReplyTranslator):
    """A reply translated whole at `finish` (see the module doc)."""

    def __init__(self, status: int, ctx: ReplyContext, expected: bool) -> None:
        self._upstream = status
        self._ctx = ctx
        self._expected = expected        # a 200 of the kind the request asked for
        self._buf = bytearray()
        self._over = False
        self.status = status if status != 200 else 200 if ctx.stream or expected else 502
        self.content_type = "text/event-stream" if status == 200 and ctx.stream \
            else "application/json"

    def feed(self, chunk: bytes) -> bytes:
        if not self._over:
            if len(self._buf) + len(chunk) > MAX_BODY:
                self._over = True
                self._buf = bytearray()
            else:
                self._buf += chunk
        return b""

    @property
    def held_bytes(self) -> int:
        return len(self._buf)

    def _result(self) -> dict[str, Any]:
        if self._over:
            raise unreadable(f"the body exceeds {MAX_BODY} bytes")
        try:
            doc = json.loads(self._buf)
        except (ValueError, RecursionError):   # (deeper than Python parses)
            doc = None
        if self._upstream != 200:
            failed = google_error(doc, self._upstream)
            raise failed or Failed(openai_error(
                self._upstream, f"Gemini error (HTTP {self._upstream}) with an unreadable "
                "body"), self._upstream)
        if not self._expected:
            raise google_error(doc, 200) or unreadable(
                "a stream request got a reply that is not text/event-stream"
                if self._ctx.stream else "a whole request got a reply that is not JSON")
        if doc is None:
            raise unreadable("not JSON")
        out = completion(doc, self._ctx)
        self.usage_unread = "usage" not in out
        return out

    def finish(self) -> bytes:
        try:
            out = _dumps(self._result())
        except Failed as failed:
            out = chunk_event(failed.error) if self.content_type == "text/event-stream" \
                else _dumps(failed.error)
            if self.status == 200 and self.content_type == "application/json":
                self.status = failed.status
        self._buf = bytearray()
        return out


class _Choice:
    __slots__ = ("calls", "finished")

    def __init__(self) -> None:
        self.calls = 0
        self.finished = False


class StreamReply(ReplyTranslator):
    """An ``alt=sse`` stream translated event by event (see the module doc)."""

    content_type = "text/event-stream"
    status = 200

    def __init__(self, ctx: ReplyContext) -> None:
        self._ctx = ctx
        self._decoder = SSEDecoder(ctx.max_event_bytes)
        self._id = ctx.id
        self._usage: Any = None
        self._choices: dict[int, _Choice] = {}
        self._done = False
        self._backend_error = False   # the stream ended in Gemini's own error object
        self._finished = False        # it ended as it should, with [DONE]

    @property
    def held_bytes(self) -> int:
        return self._decoder.pending

    def _chunk(self, index: int, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return chunk_event({"id": self._id, "object": "chat.completion.chunk",
                            "created": self._ctx.created, "model": self._ctx.model,
                            "choices": [{"index": index, "delta": delta, "logprobs": None,
                                         "finish_reason": finish}],
                            "usage": None})

    def _choice(self, index: int, out: list[bytes]) -> _Choice:
        choice = self._choices.get(index)
        if choice is None:
            choice = self._choices[index] = _Choice()
            out.append(self._chunk(index, {"role": "assistant", "content": ""}))
        elif choice.finished:
            raise unreadable("content after the candidate's finishReason")
        return choice

    def _translate(self, doc: Any, out: list[bytes]) -> None:
        failed = google_error(doc, 200)
        if failed:
            self._backend_error = True
            raise failed
        if not isinstance(doc, dict):
            raise unreadable("an event that is not a JSON object")
        rid = response_id(doc)
        if self._id is None:
            self._id = f"chatcmpl-{rid or 'gemini'}"
        if doc.get("usageMetadata") is not None:
            self._usage = doc["usageMetadata"]
        cands = candidates(doc)
        if not cands and blocked(doc):
            self._choice(0, out).finished = True
            out.append(self._chunk(0, {}, "content_filter"))
        for index, cand in cands:
            done = self._choices.get(index)
            if done is not None and done.finished \
                    and all(read_part(part) is None for part in read_parts(cand)):
                continue    # a finished candidate repeated without content (usage only)
            choice = self._choice(index, out)
            for part in read_parts(cand):
                got = read_part(part)
                if got is None:
                    continue
                if got[0] == "call":
                    call = call_chunk(got[1], part, rid, index, choice.calls)
                    arguments = call["function"]["arguments"]
                    call["function"]["arguments"] = ""
                    out.append(self._chunk(index, {"tool_calls": [
                        {"index": choice.calls, **call}]}))
                    out.append(self._chunk(index, {"tool_calls": [
                        {"index": choice.calls, "function": {"arguments": arguments}}]}))
                    choice.calls += 1
                else:
                    key = "content" if got[0] == "text" else "reasoning_content"
                    out.append(self._chunk(index, {key: got[1]}))
            reason = cand.get("finishReason")
            if reason is not None:
                out.append(self._chunk(index, {}, finish(reason, choice.calls > 0)))
                choice.finished = True

    def _events(self, events: list[Event], out: list[bytes]) -> None:
        for event in events:
            if not event.has_data:
                continue
            if not event.terminated:
                raise unreadable("the stream ends inside an event")
            try:
                doc = json.loads(event.data)
            except (ValueError, RecursionError):   # (deeper than Python parses)
                raise unreadable("an event that is not JSON") from None
            self._translate(doc, out)

    def _run(self, step: Any) -> bytes:
        if self._done:
            return b""
        out: list[bytes] = []
        try:
            step(out)
        except SSEError as exc:   # the whole events before the one too large still go out
            try:
                self._events(exc.events, out)
                error = unreadable(str(exc)).error
            except Failed as failed:
                error = failed.error
            out.append(chunk_event(error))
            self._done = True
        except Failed as failed:
            out.append(chunk_event(failed.error))
            self._done = True
        # a stream this could not translate (a finish reason Chat Completions has no word
        # for, a broken event), not one the backend ended with its own error: `failed`
        self.failed = self._done and not self._backend_error and not self._finished
        return b"".join(out)

    def feed(self, chunk: bytes) -> bytes:
        return self._run(lambda out: self._events(self._decoder.feed(chunk), out))

    def _end(self, out: list[bytes]) -> None:
        self._events(self._decoder.finish(), out)
        if not self._choices or not all(c.finished for c in self._choices.values()):
            raise unreadable("the stream ended before a finishReason (truncated upstream)")
        counts = usage(self._usage)
        if counts is None:      # no usageMetadata in any event: no zeros made up
            self.usage_unread = True
        elif self._ctx.include_usage:
            out.append(chunk_event({"id": self._id, "object": "chat.completion.chunk",
                                    "created": self._ctx.created, "model": self._ctx.model,
                                    "choices": [], "usage": counts}))
        out.append(DONE)
        self._done = self._finished = True

    def finish(self) -> bytes:
        out = self._run(self._end)
        self._done = True
        return out


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def reply_translator(status: int, content_type: str, ctx: ReplyContext) -> ReplyTranslator:
    """The translator for one Gemini / Vertex reply (see the module doc)."""
    media = _media_type(content_type or "")
    if status == 200 and ctx.stream and media == "text/event-stream":
        return StreamReply(ctx)
    expected = status == 200 and not ctx.stream and media == "application/json"
    return BufferedReply(status, ctx, expected)
