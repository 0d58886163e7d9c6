"""An Anthropic Messages stream as OpenAI ``chat.completion.chunk`` events, incremental and
sans-IO: each Anthropic event is translated as soon as it is complete (the mapping is told in
`anthropic_reply`, which holds what whole replies and streams share).
"""

from __future__ import annotations

import json
from typing import Any

from extproc.codecs.sse import SSEDecoder, SSEError
from extproc.translate.anthropic_reply import (
    MAX_BODY,
    _dump,
    _finish,
    _mapped_error,
    _Unreadable,
    _unreadable,
    openai_usage,
)
from extproc.translate.base import DONE, ReplyContext, ReplyTranslator, chunk_event

__all__ = ["StreamReply"]


class StreamReply(ReplyTranslator):
    """Anthropic's event stream -> OpenAI chunks, event by event."""

    content_type = "text/event-stream"

    def __init__(self, ctx: ReplyContext, json_tool: str | None) -> None:
        self._ctx = ctx
        self._json_tool = json_tool
        self._decoder = SSEDecoder(ctx.max_event_bytes)
        self._id: str | None = None
        self._blocks: dict[int, tuple[str, int]] = {}   # Anthropic index -> (kind, tool index)
        self._tools = 0
        self._argued: set[int] = set()   # the tool calls whose argument text went out
        self._stopped: set[int] = set()  # the content blocks stopped (no delta may follow)
        self._json: list[str] = []   # the JSON-mode tool input held until its block stops
        self._json_size = 0
        self._usage: dict[str, Any] = {}
        self._closing = False    # message_delta carried the final output count
        self._finished = False   # the finish chunk went out
        self._ended = False      # [DONE] or an error event went out
        self.failed = False

    @property
    def held_bytes(self) -> int:
        return self._decoder.pending + self._json_size

    def feed(self, chunk: bytes) -> bytes:
        if self._ended:
            return b""
        try:
            events = self._decoder.feed(chunk)
        except SSEError as exc:   # the events before the one too large still go out
            out = self._run(exc.events)
            return out if self._ended else out + self._fail(str(exc))
        return self._run(events)

    def finish(self) -> bytes:
        if self._ended:
            return b""
        events = [ev for ev in self._decoder.finish() if ev.terminated]
        out = self._run(events)
        if not self._ended:
            out += self._fail("the stream ended before message_stop (truncated upstream)")
        return out

    def _run(self, events: list[Any]) -> bytes:
        out = bytearray()
        for ev in events:
            if self._ended:
                break
            if not ev.has_data:
                continue
            try:
                out += self._event(ev.data)
            except _Unreadable as exc:
                out += self._fail(str(exc))
        return bytes(out)

    def _fail(self, reason: str) -> bytes:
        self._ended = self.failed = True
        return chunk_event(_unreadable(reason))

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return chunk_event({"id": self._id, "object": "chat.completion.chunk",
                            "created": self._ctx.created, "model": self._ctx.model,
                            "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                         "finish_reason": finish}], "usage": None})

    def _event(self, data: str) -> bytes:
        try:
            ev = json.loads(data)
        except (ValueError, RecursionError):   # (deeper than Python parses)
            raise _Unreadable("an event is not JSON") from None
        kind = ev.get("type") if isinstance(ev, dict) else None
        if kind == "error":
            self._ended = True
            error = _mapped_error(ev.get("error"), 500)
            if error is None:
                raise _Unreadable("an error event without an error")
            return self._partial_usage() + chunk_event(error)
        if kind == "message_start":
            msg = ev.get("message")
            if self._id is not None or not isinstance(msg, dict):
                raise _Unreadable("a misplaced message_start")
            usage = msg.get("usage")
            self._usage = dict(usage) if isinstance(usage, dict) else {}
            self._id = self._ctx.id or f"chatcmpl-{msg.get('id')}"
            return self._chunk({"role": "assistant", "content": ""})
        if kind not in ("content_block_start", "content_block_delta", "content_block_stop",
                        "message_delta", "message_stop"):
            return b""   # ping, and event types Anthropic may add
        if self._id is None or (self._finished and kind != "message_stop"):
            raise _Unreadable(f"a misplaced {kind}")
        if kind == "content_block_start":
            return self._start(ev.get("index"), ev.get("content_block"))
        if kind == "content_block_delta":
            return self._delta(ev.get("index"), ev.get("delta"))
        if kind == "message_delta":
            delta, usage = ev.get("delta"), ev.get("usage")
            if isinstance(usage, dict):
                # a null count keeps message_start's (as Anthropic's SDK does: its delta
                # usage types them optional); an input count takes the larger, as the
                # native adapter's `merge_usage` (a null erased the prompt's tokens: found
                # by review)
                for key, value in usage.items():
                    if value is None:
                        continue
                    if key.endswith("input_tokens") and isinstance(value, int) \
                            and isinstance(self._usage.get(key), int):
                        value = max(value, self._usage[key])
                    self._usage[key] = value
            # the final output count comes here; without it (or with a null one: found by
            # review), message_start's says one token
            self._closing = isinstance(usage, dict) \
                and isinstance(usage.get("output_tokens"), int)
            stop = delta.get("stop_reason") if isinstance(delta, dict) else None
            if any(k == "json" for k, _ in self._blocks.values()):
                # the JSON-mode answer is held whole until its block stops: one never
                # stopped would be lost behind a normal end (found by review)
                raise _Unreadable("the JSON-mode answer's block did not end")
            self._finished = True
            # (a call whose block was never stopped ends here)
            out = self._no_arguments(sorted(t for k, t in self._blocks.values() if k == "tool"))
            return out + self._chunk({}, _finish(stop, self._json_only()))
        if kind == "message_stop":
            if not self._finished:
                raise _Unreadable("message_stop before message_delta")
            out = b""
            counts = openai_usage(self._usage)
            if counts is None or not self._closing:   # no count, or no final output count:
                self.usage_unread = True              # none made up (worst case charged)
            elif self._ctx.include_usage:
                out = chunk_event({"id": self._id, "object": "chat.completion.chunk",
                                   "created": self._ctx.created, "model": self._ctx.model,
                                   "choices": [], "usage": counts})
            self._ended = True
            return out + DONE
        index = ev.get("index")   # content_block_stop
        if isinstance(index, int):
            self._stopped.add(index)
        blk, tool = self._blocks.get(index, ("", 0)) if isinstance(index, int) else ("", 0)
        if blk == "tool":
            return self._no_arguments([tool])
        if blk == "json":
            text, self._json, self._json_size = "".join(self._json), [], 0
            self._blocks[index] = ("stopped", 0)
            try:
                answer = json.loads(text or "{}")
            except (ValueError, RecursionError):   # (deeper than Python parses)
                raise _Unreadable("the JSON-mode answer is not JSON") from None
            if not isinstance(answer, dict):
                raise _Unreadable("the JSON-mode answer is not an object")
            return self._chunk({"content": _dump(answer).decode()})
        return b""

    def _no_arguments(self, tools: list[int]) -> bytes:
        """The end of tool calls: one whose arguments streamed empty (``input: {}`` and no
        argument text, as Anthropic streams a call without arguments) gets "{}", as the whole
        reply and OpenAI give it ("" is not JSON)."""
        out = b""
        for tool in tools:
            if tool not in self._argued:
                self._argued.add(tool)
                out += self._chunk({"tool_calls": [{"index": tool,
                                                    "function": {"arguments": "{}"}}]})
        return out

    def _partial_usage(self) -> bytes:
        """What an error event leaves of the counts Anthropic reported (found by review: they
        were thrown away, and the budgets charged the gateway's estimate of the prompt where
        the native route charges at least them): with include_usage (which the gateway adds
        for its meter), a usage chunk of them goes out before the error event, so the stream
        is charged at least them and the output delivered, as on the native route. With
        thinking on and no final output count, they leave the thinking out (message_start's
        count precedes it): the usage is marked unread, so budgets charge the reservation,
        as the native route does for a thinking stream without its final count."""
        counts = openai_usage(self._usage) if self._id is not None else None
        if counts is None:
            return b""
        if self._ctx.thinking and not self._closing:
            self.usage_unread = True
        if not self._ctx.include_usage:
            return b""
        return chunk_event({"id": self._id, "object": "chat.completion.chunk",
                            "created": self._ctx.created, "model": self._ctx.model,
                            "choices": [], "usage": counts})

    def _json_only(self) -> bool:
        kinds = [k for k, _ in self._blocks.values()]
        return "stopped" in kinds and "tool" not in kinds

    def _start(self, index: Any, block: Any) -> bytes:
        if not isinstance(index, int) or index in self._blocks or not isinstance(block, dict):
            raise _Unreadable("a misplaced content_block_start")
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            self._blocks[index] = ("text", 0)
            return self._chunk({"content": block["text"]}) if block["text"] else b""
        if kind == "thinking" and isinstance(block.get("thinking"), str):
            self._blocks[index] = ("thinking", 0)
            text = block["thinking"]
            return self._chunk({"reasoning_content": text}) if text else b""
        if kind == "redacted_thinking":
            self._blocks[index] = ("redacted", 0)
            return b""
        if kind == "tool_use" and isinstance(block.get("id"), str) \
                and isinstance(block.get("name"), str) and isinstance(block.get("input"), dict):
            given = _dump(block["input"]).decode() if block["input"] else ""
            if self._json_tool is not None and block["name"] == self._json_tool:
                self._blocks[index] = ("json", 0)
                self._json = [given]
                self._json_size = len(given)
                return b""
            self._blocks[index] = ("tool", self._tools)
            if given:
                self._argued.add(self._tools)
            self._tools += 1
            call = {"index": self._tools - 1, "id": block["id"], "type": "function",
                    "function": {"name": block["name"], "arguments": given}}
            return self._chunk({"tool_calls": [call]})
        raise _Unreadable(f"unsupported content block {kind!r}")

    def _delta(self, index: Any, delta: Any) -> bytes:
        block = self._blocks.get(index) if isinstance(index, int) else None
        kind = delta.get("type") if isinstance(delta, dict) else None
        if block is None or kind is None:
            raise _Unreadable("a misplaced content_block_delta")
        if index in self._stopped:   # (a call's "{}" may have gone out: found by review)
            raise _Unreadable("a content_block_delta after its block stopped")
        blk, tool = block
        if blk == "text" and kind == "text_delta" and isinstance(delta.get("text"), str):
            return self._chunk({"content": delta["text"]}) if delta["text"] else b""
        if blk == "text" and kind == "citations_delta":
            return b""
        if blk == "thinking" and kind == "thinking_delta" \
                and isinstance(delta.get("thinking"), str):
            text = delta["thinking"]
            return self._chunk({"reasoning_content": text}) if text else b""
        if blk == "thinking" and kind == "signature_delta":
            return b""
        if blk in ("tool", "json") and kind == "input_json_delta" \
                and isinstance(delta.get("partial_json"), str):
            piece = delta["partial_json"]
            if not piece:
                return b""
            if blk == "json":
                self._json.append(piece)
                self._json_size += len(piece)
                if self._json_size > MAX_BODY:
                    raise _Unreadable(f"the JSON-mode answer exceeds {MAX_BODY} bytes")
                return b""
            self._argued.add(tool)
            return self._chunk({"tool_calls": [{"index": tool, "function": {"arguments": piece}}]})
        raise _Unreadable(f"unsupported {kind!r} delta in a {blk} block")
