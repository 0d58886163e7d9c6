"""Gemini / Vertex ``generateContent`` replies -> OpenAI Chat Completions replies (sans-IO).

`reply_translator(status, content_type, ctx)` picks one of two incremental translators:

* `StreamReply` (a 200 ``text/event-stream`` reply to a stream request, ``alt=sse``): each
  ``data:`` event is a GenerateContentResponse; its text, thought and functionCall parts
  are released as ``chat.completion.chunk`` events as soon as the event completes. The usage
  chunk (``include_usage``) and ``[DONE]`` come when the upstream stream ends and every
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
from extproc.translate.base import (
    DONE,
    ReplyContext,
    ReplyTranslator,
    chunk_event,
    openai_error,
)
from extproc.translate.google_messages import THOUGHT_SEP

__all__ = ["FINISH_REASONS", "MAX_BODY", "MAX_EVENT", "BufferedReply", "StreamReply",
           "completion", "reply_translator", "usage"]

MAX_BODY = 64 << 20    # a whole reply
MAX_EVENT = 16 << 20   # one SSE event

#: Gemini finishReason -> OpenAI finish_reason (STOP with function calls: tool_calls).
#: Any other reason (MALFORMED_FUNCTION_CALL, UNEXPECTED_TOOL_CALL, TOO_MANY_TOOL_CALLS,
#: MISSING_THOUGHT_SIGNATURE, MALFORMED_RESPONSE, OTHER, NO_IMAGE, IMAGE_OTHER,
#: PUP_LIMITED_DISABLED, FINISH_REASON_UNSPECIFIED, unknown ones) is an upstream failure:
#: an OpenAI error (502 / a final error event) whose code is the reason in lower case.
FINISH_REASONS = {
    "STOP": "stop", "MAX_TOKENS": "length", "CONTINUATION": "length",
    **dict.fromkeys(("SAFETY", "RECITATION", "LANGUAGE", "BLOCKLIST", "PROHIBITED_CONTENT",
                     "SPII", "IMAGE_SAFETY", "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION",
                     "MODEL_ARMOR", "ESCALATION"), "content_filter"),
}

_ERROR_TYPES = {"INVALID_ARGUMENT": "invalid_request_error",
                "FAILED_PRECONDITION": "invalid_request_error",
                "OUT_OF_RANGE": "invalid_request_error",
                "UNAUTHENTICATED": "authentication_error",
                "PERMISSION_DENIED": "permission_error",
                "NOT_FOUND": "not_found_error",
                "RESOURCE_EXHAUSTED": "rate_limit_error"}
_PART_KEYS = {"text", "thought", "thoughtSignature", "functionCall"}


class Failed(Exception):
    """The reply cannot be translated: carries the OpenAI error to send instead."""

    def __init__(self, error: dict[str, Any], status: int = 502) -> None:
        super().__init__(error["error"]["message"])
        self.error = error
        self.status = status


def _unreadable(what: str) -> Failed:
    return Failed(openai_error(502, f"unreadable Gemini reply: {what}", "server_error",
                               "bad_upstream_reply"))


def google_error(doc: Any, status: int) -> Failed | None:
    """Google's ``{"error": {code, message, status}}`` (maybe in a one-element array) as an
    OpenAI error, or None if `doc` is not one."""
    if isinstance(doc, list) and len(doc) == 1:
        doc = doc[0]
    error = doc.get("error") if isinstance(doc, dict) else None
    if not isinstance(error, dict) or not isinstance(error.get("message"), str):
        return None
    name = error.get("status") if isinstance(error.get("status"), str) else None
    code = error.get("code")
    if status == 200 and isinstance(code, int) and not isinstance(code, bool) \
            and 400 <= code <= 599:
        status = code
    elif status == 200:
        status = 502
    kind = _ERROR_TYPES.get(name or "") or (None if name is None and status < 500
                                            else "server_error")
    return Failed(openai_error(status, error["message"], kind, name), status)


def usage(meta: Any) -> dict[str, Any]:
    """OpenAI usage from usageMetadata (missing counts are 0)."""
    meta = meta if isinstance(meta, dict) else {}

    def count(key: str) -> int:
        value = meta.get(key)
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    prompt = count("promptTokenCount") + count("toolUsePromptTokenCount")
    thoughts = count("thoughtsTokenCount")
    completion_tokens = count("candidatesTokenCount") + thoughts
    total = count("totalTokenCount") or prompt + completion_tokens
    return {"prompt_tokens": prompt, "completion_tokens": completion_tokens,
            "total_tokens": total,
            "prompt_tokens_details": {"cached_tokens": count("cachedContentTokenCount")},
            "completion_tokens_details": {"reasoning_tokens": thoughts}}


def _finish(reason: Any, calls: bool) -> str:
    mapped = FINISH_REASONS.get(reason) if isinstance(reason, str) else None
    if mapped is None:
        raise Failed(openai_error(502, f"Gemini stopped the reply: {reason}", "server_error",
                                  str(reason).lower()))
    return "tool_calls" if mapped == "stop" and calls else mapped


def _parts(cand: dict[str, Any]) -> list[dict[str, Any]]:
    content = cand.get("content")
    if content is None:
        return []
    parts = content.get("parts") if isinstance(content, dict) else None
    if parts is None and isinstance(content, dict):
        return []
    if not isinstance(parts, list) or not all(isinstance(p, dict) for p in parts):
        raise _unreadable("candidate content is not a list of parts")
    return parts


def _call_id(call: dict[str, Any], part: dict[str, Any], rid: str, choice: int,
             k: int) -> str:
    """Gemini's id, else ``call_<responseId>_<choice>_<k>``; with the part's
    thoughtSignature after THOUGHT_SEP (so the next request can send it back)."""
    given = call.get("id")
    base = given if isinstance(given, str) and given else \
        f"call_{rid}_{choice}_{k}" if rid else f"call_{choice}_{k}"
    signature = part.get("thoughtSignature")
    return f"{base}{THOUGHT_SEP}{signature}" if isinstance(signature, str) and signature \
        else base


def _part(part: dict[str, Any]) -> tuple[str, Any] | None:
    """("text" | "reasoning", text), ("call", functionCall) or None (nothing to show)."""
    extra = set(part) - _PART_KEYS
    if extra:
        raise _unreadable(f"a {sorted(extra)[0]} part cannot be translated")
    if "functionCall" in part:
        call = part["functionCall"]
        if not isinstance(call, dict) or not isinstance(call.get("name"), str) \
                or not isinstance(call.get("args", {}), dict) \
                or set(call) - {"name", "args", "id"}:
            raise _unreadable("a functionCall part without a name and args")
        return "call", call
    text = part.get("text")
    if text is None:
        return None     # e.g. a thoughtSignature alone
    if not isinstance(text, str):
        raise _unreadable("a text part that is not a string")
    if not text:
        return None
    return ("reasoning" if part.get("thought") is True else "text"), text


def _tool_call(call: dict[str, Any], part: dict[str, Any], rid: str, choice: int,
               k: int) -> dict[str, Any]:
    args = json.dumps(call.get("args", {}), separators=(",", ":"), ensure_ascii=False)
    return {"id": _call_id(call, part, rid, choice, k), "type": "function",
            "function": {"name": call["name"], "arguments": args}}


def _candidates(doc: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    cands = doc.get("candidates")
    if cands is None:
        return []
    if not isinstance(cands, list) or not all(isinstance(c, dict) for c in cands):
        raise _unreadable("candidates is not a list of objects")
    out = []
    for pos, cand in enumerate(cands):
        index = cand.get("index", pos)
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < 64:
            raise _unreadable("a candidate index that is not a small integer")
        out.append((index, cand))
    return out


def _blocked(doc: dict[str, Any]) -> bool:
    feedback = doc.get("promptFeedback")
    return isinstance(feedback, dict) and feedback.get("blockReason") is not None


def _rid(doc: dict[str, Any]) -> str:
    rid = doc.get("responseId")
    return rid if isinstance(rid, str) else ""


def completion(doc: Any, ctx: ReplyContext) -> dict[str, Any]:
    """A whole GenerateContentResponse as a ``chat.completion``; raises Failed.

    A blocked prompt (promptFeedback.blockReason, no candidates) is one choice with no
    content and finish_reason ``content_filter`` (as LiteLLM answers it)."""
    if not isinstance(doc, dict):
        raise _unreadable("not a JSON object")
    failed = google_error(doc, 200)
    if failed:
        raise failed
    rid = _rid(doc)
    choices = []
    cands = _candidates(doc)
    if not cands:
        if not _blocked(doc):
            raise _unreadable("no candidates")
        choices.append({"index": 0, "message": {"role": "assistant", "content": None,
                                                 "refusal": None},
                        "logprobs": None, "finish_reason": "content_filter"})
    for index, cand in sorted(cands, key=lambda c: c[0]):
        texts: list[str] = []
        thoughts: list[str] = []
        calls: list[dict[str, Any]] = []
        for part in _parts(cand):
            got = _part(part)
            if got is None:
                continue
            if got[0] == "call":
                calls.append(_tool_call(got[1], part, rid, index, len(calls)))
            else:
                (texts if got[0] == "text" else thoughts).append(got[1])
        message: dict[str, Any] = {"role": "assistant",
                                   "content": "".join(texts) if texts else None,
                                   "refusal": None}
        if thoughts:
            message["reasoning_content"] = "".join(thoughts)
        if calls:
            message["tool_calls"] = calls
        if cand.get("finishReason") is None:
            raise _unreadable("a candidate without a finishReason")
        choices.append({"index": index, "message": message, "logprobs": None,
                        "finish_reason": _finish(cand["finishReason"], bool(calls))})
    return {"id": ctx.id or f"chatcmpl-{rid or 'gemini'}", "object": "chat.completion",
            "created": ctx.created, "model": ctx.model, "choices": choices,
            "usage": usage(doc.get("usageMetadata"))}


def _dumps(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


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
            raise _unreadable(f"the body exceeds {MAX_BODY} bytes")
        try:
            doc = json.loads(self._buf)
        except ValueError:
            doc = None
        if self._upstream != 200:
            failed = google_error(doc, self._upstream)
            raise failed or Failed(openai_error(
                self._upstream, f"Gemini error (HTTP {self._upstream}) with an unreadable "
                "body"), self._upstream)
        if not self._expected:
            raise google_error(doc, 200) or _unreadable(
                "a stream request got a reply that is not text/event-stream"
                if self._ctx.stream else "a whole request got a reply that is not JSON")
        if doc is None:
            raise _unreadable("not JSON")
        return completion(doc, self._ctx)

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
        self._decoder = SSEDecoder(MAX_EVENT)
        self._id = ctx.id
        self._usage: Any = None
        self._choices: dict[int, _Choice] = {}
        self._done = False

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
            raise _unreadable("content after the candidate's finishReason")
        return choice

    def _translate(self, doc: Any, out: list[bytes]) -> None:
        failed = google_error(doc, 200)
        if failed:
            raise failed
        if not isinstance(doc, dict):
            raise _unreadable("an event that is not a JSON object")
        rid = _rid(doc)
        if self._id is None:
            self._id = f"chatcmpl-{rid or 'gemini'}"
        if doc.get("usageMetadata") is not None:
            self._usage = doc["usageMetadata"]
        cands = _candidates(doc)
        if not cands and _blocked(doc):
            self._choice(0, out).finished = True
            out.append(self._chunk(0, {}, "content_filter"))
        for index, cand in cands:
            done = self._choices.get(index)
            if done is not None and done.finished \
                    and all(_part(part) is None for part in _parts(cand)):
                continue    # a finished candidate repeated without content (usage only)
            choice = self._choice(index, out)
            for part in _parts(cand):
                got = _part(part)
                if got is None:
                    continue
                if got[0] == "call":
                    call = _tool_call(got[1], part, rid, index, choice.calls)
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
                out.append(self._chunk(index, {}, _finish(reason, choice.calls > 0)))
                choice.finished = True

    def _events(self, events: list[Event], out: list[bytes]) -> None:
        for event in events:
            if not event.has_data:
                continue
            if not event.terminated:
                raise _unreadable("the stream ends inside an event")
            try:
                doc = json.loads(event.data)
            except ValueError:
                raise _unreadable("an event that is not JSON") from None
            self._translate(doc, out)

    def _run(self, step: Any) -> bytes:
        if self._done:
            return b""
        out: list[bytes] = []
        try:
            step(out)
        except SSEError:
            out.append(chunk_event(_unreadable(f"an event exceeds {MAX_EVENT} bytes").error))
            self._done = True
        except Failed as failed:
            out.append(chunk_event(failed.error))
            self._done = True
        return b"".join(out)

    def feed(self, chunk: bytes) -> bytes:
        return self._run(lambda out: self._events(self._decoder.feed(chunk), out))

    def _end(self, out: list[bytes]) -> None:
        self._events(self._decoder.finish(), out)
        if not self._choices or not all(c.finished for c in self._choices.values()):
            raise _unreadable("the stream ended before a finishReason (truncated upstream)")
        if self._ctx.include_usage:
            out.append(chunk_event({"id": self._id, "object": "chat.completion.chunk",
                                    "created": self._ctx.created, "model": self._ctx.model,
                                    "choices": [], "usage": usage(self._usage)}))
        out.append(DONE)
        self._done = True

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
