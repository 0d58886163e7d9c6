"""Masking streamed responses: decode each SSE event, run its text through the streaming
masker, and re-frame what the masker releases as valid events of the provider's format.

One masker per choice (OpenAI), content block (Anthropic) or candidate (Gemini/Vertex, in
SSE or in the JSON-array stream rewritten to SSE). An event's text is replaced by what its
masker releases now (possibly nothing: the held suffix follows in a later event), and what
is still held when the piece ends (a finish reason, a content block's stop, the stream's
end) goes out in the event that ends it, or in a copy of the last text event just before.
Events without text, and text events whose text goes out unchanged at once (most of them:
nothing held, nothing masked), pass through byte for byte, without re-encoding. OpenAI's usual
text event (compact, one choice) is not even parsed: its text literal is cut out, and the
masked text, when it differs, spliced back in (the same bytes as re-encoding the event).

With a reject guard the first match ends the stream: a finish event the SDKs understand
(OpenAI `finish_reason: content_filter`, Anthropic `stop_reason: refusal`, Gemini
`finishReason: SAFETY`) followed by an error event in the provider's format, and nothing of
the matched value is ever sent.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from json.encoder import encode_basestring  # how json.dumps(ensure_ascii=False) writes a str
from typing import Any

from ..codecs.sse import Event, SSEDecoder, encode
from ..policy import BodyTransform
from ..providers.base import as_list
from .stream import GuardTriggered, StreamMasker

MaskerFactory = Callable[[], list[StreamMasker]]
GOOGLE = ("gemini", "vertex")

# The common OpenAI event, a text delta of one choice, when it is written the way `_dump`
# writes it: compact, strings without escapes, integers only (outside the text), one choice
# with no finish_reason, every value but the choices and the delta a scalar. Then the masked
# text spliced into the data is exactly what parsing, masking and re-encoding would give.
_STR = r'"[^"\\\x00-\x1f]*"'
_MEMBER = rf'{_STR}:(?:{_STR}|0|-?[1-9][0-9]{{0,17}}|true|false|null)'
_TEXT = r'"[^"\\\x00-\x1f]*(?:\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4})[^"\\\x00-\x1f]*)*"'
_OPENAI_TEXT = re.compile(
    rf'\{{(?:{_MEMBER},)*"choices":\[\{{"index":(0|[1-9][0-9]{{0,8}}),"delta":\{{'
    rf'(?:{_MEMBER},)*"content":({_TEXT})(?:,{_MEMBER})*\}}'
    rf'(?:,"finish_reason":null|,(?!"finish_reason"){_MEMBER})*\}}\](?:,{_MEMBER})*\}}')
_TEXT_LITERAL = re.compile(_TEXT)
_STRINGS = re.compile(r'"([^"]*)"(:?)')  # in text without escapes: each string, ':' if a key


def piece_key(obj: dict[str, Any]) -> int:
    """The piece (choice, content block, candidate) an object belongs to: its `index`, 0
    when that is missing or not an integer (a malformed event is passed on, never a crash)."""
    index = obj.get("index", 0)
    return index if isinstance(index, int) else 0


def _dump(doc: Any, google: bool) -> str:
    separators = (",", ": ") if google else (",", ":")
    text = json.dumps(doc, ensure_ascii=False, separators=separators)
    try:
        text.encode()
    except UnicodeEncodeError:   # a lone surrogate (from a \ud800 escape): keep it escaped
        text = json.dumps(doc, ensure_ascii=True, separators=separators)
    return text


def _encode(data: str, event: str | None, terminator: bytes) -> bytes:
    """`encode(data, event=event, terminator=terminator)`, faster for one line of data."""
    if event is None and "\n" not in data and "\r" not in data:
        return b"data: " + data.encode() + terminator
    return encode(data, event=event, terminator=terminator)


class _Chain:
    """Maskers applied in order (reject guards first, then mask guards)."""

    def __init__(self, maskers: list[StreamMasker]) -> None:
        self.maskers = maskers

    def feed(self, text: str) -> str:
        for m in self.maskers:
            text = m.feed(text) if text else ""
        return text

    def finish(self) -> str:
        out = ""
        for m in self.maskers:
            out = (m.feed(out) if out else "") + m.finish()
        return out

    @property
    def held(self) -> int:
        return sum(m.held for m in self.maskers)


class SSEMaskingReframer(BodyTransform):
    def __init__(self, provider: str, maskers: MaskerFactory, max_event_bytes: int,
                 on_reject: Callable[[str], None] | None = None,
                 on_done: Callable[[], None] | None = None) -> None:
        self.provider = provider
        self.google = provider in GOOGLE
        self.make = maskers
        self.decoder = SSEDecoder(max_event_bytes)
        self.chains: dict[int, _Chain] = {}
        self.last: dict[int, tuple[str, str | None]] = {}   # data and name of the last text event
        self._current: tuple[str, str | None] = ("", None)
        self.on_reject = on_reject
        self.on_done = on_done
        self.stopped = False
        self.terminator = b"\r\n\r\n" if self.google else b"\n\n"
        #: take the fast path for OpenAI's common text events (False: parse every event)
        self.skim = not self.google and provider != "anthropic"
        # the data around the text of the last event of the fast path, and its choice
        self._frame: tuple[str, str, int] | None = None

    def _chain(self, key: int) -> _Chain:
        chain = self.chains.get(key)
        if chain is None:
            chain = self.chains[key] = _Chain(self.make())
        return chain

    @property
    def held(self) -> int:
        return sum(c.held for c in self.chains.values())

    @property
    def held_bytes(self) -> int:
        """Held text (in characters) plus the partial event the decoder keeps."""
        return self.held + self.decoder.pending

    def feed(self, chunk: bytes) -> bytes:
        if self.stopped:
            return b""
        return self._events(self.decoder.feed(chunk))

    def finish(self) -> bytes:
        if self.stopped:
            return b""
        out = self._events(self.decoder.finish())
        if not self.stopped:
            try:
                out += self._flush_all()
            except GuardTriggered as hit:   # a match made final only by the stream's end
                return out + self._rejected(hit.detector)
            if self.on_done is not None:
                self.on_done()
        return out

    def _events(self, events: list[Event]) -> bytes:
        out: list[bytes] = []
        for ev in events:
            if self.stopped:
                break
            try:
                out.append(self._event(ev))
            except GuardTriggered as hit:
                out.append(self._rejected(hit.detector))
        return b"".join(out)

    # --- one event ------------------------------------------------------------------------
    def _event(self, ev: Event) -> bytes:
        if not ev.has_data:
            return ev.raw
        data = ev.data
        if self.skim:
            out = self._openai_text(ev, data)
            if out is not None:
                return out
        if data.strip() == "[DONE]":
            return self._flush_all() + ev.raw
        try:
            doc = json.loads(data)
        except ValueError:
            return ev.raw
        if not isinstance(doc, dict):
            return ev.raw
        self._current = (data, ev.event)
        if self.google:
            changed, before = self._google(doc, ev.event)
        elif self.provider == "anthropic":
            changed, before = self._anthropic(doc, ev.event)
        else:
            changed, before = self._openai(doc, ev.event)
        body = _encode(_dump(doc, self.google), ev.event, self.terminator) if changed \
            else ev.raw
        return before + body

    def _openai_text(self, ev: Event, data: str) -> bytes | None:
        """`_event` for the common OpenAI event (see `_OPENAI_TEXT`) without parsing it all:
        the raw event when its text goes out unchanged, else the masked text spliced into
        the data. None when the event is not of that kind."""
        frame = self._frame
        if frame is not None and data.startswith(frame[0]) and data.endswith(frame[1]):
            pre, post, key = frame   # the data around the text as in the last such event
            text = data[len(pre):len(data) - len(post)]
            if _TEXT_LITERAL.fullmatch(text) is None:
                return None
        else:
            m = _OPENAI_TEXT.fullmatch(data)
            if m is None:
                return None
            pre, text, post = data[:m.start(2)], m.group(2), data[m.end(2):]
            keys = [k for k, colon in _STRINGS.findall(pre + post) if colon]
            if len(set(keys)) < len(keys):
                return None   # a key twice: json.loads keeps one
            key = int(m.group(1))
            self._frame = (pre, post, key)
        if text == '""':
            return ev.raw
        text = json.loads(text) if "\\" in text else text[1:-1]
        self._current = (data, ev.event)
        masked = self._text(key, text)
        if masked == text:
            return ev.raw
        data = pre + encode_basestring(masked) + post   # one line: no line end outside strings
        try:
            line = data.encode()
        except UnicodeEncodeError:   # a lone surrogate (from a \ud800 escape): keep it escaped
            data = pre + json.dumps(masked) + post
            line = data.encode()
        if ev.event is None:
            return b"data: " + line + self.terminator
        return encode(data, event=ev.event, terminator=self.terminator)

    def _text(self, key: int, text: str) -> str:
        self.last[key] = self._current
        return self._chain(key).feed(text)

    def _rest(self, key: int) -> str:
        chain = self.chains.pop(key, None)
        return chain.finish() if chain is not None else ""

    def _openai(self, doc: dict[str, Any], event: str | None) -> tuple[bool, bytes]:
        changed = False
        for choice in as_list(doc.get("choices")):
            if not isinstance(choice, dict):
                continue
            key = piece_key(choice)
            delta = choice.get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("content"), str) \
                    and delta["content"]:
                text = delta["content"]
                delta["content"] = self._text(key, text)
                changed = changed or delta["content"] != text
            if choice.get("finish_reason") and key in self.chains:
                rest = self._rest(key)
                if rest:
                    delta = choice.get("delta")
                    if not isinstance(delta, dict):
                        delta = choice["delta"] = {}
                    content = delta.get("content")
                    delta["content"] = (content if isinstance(content, str) else "") + rest
                    changed = True
        return changed, b""

    def _anthropic(self, doc: dict[str, Any], event: str | None) -> tuple[bool, bytes]:
        kind = doc.get("type")
        key = piece_key(doc)
        if kind == "content_block_delta":
            delta = doc.get("delta")
            if isinstance(delta, dict) and delta.get("type") == "text_delta" \
                    and isinstance(delta.get("text"), str):
                text = delta["text"]
                delta["text"] = self._text(key, text)
                return delta["text"] != text, b""
        elif kind == "content_block_stop" and key in self.chains:
            return False, self._synthetic(key)
        return False, b""

    def _google(self, doc: dict[str, Any], event: str | None) -> tuple[bool, bytes]:
        changed = False
        for cand in as_list(doc.get("candidates")):
            if not isinstance(cand, dict):
                continue
            key = piece_key(cand)
            content = cand.get("content")
            parts = as_list(content.get("parts")) if isinstance(content, dict) else []
            text_parts = [p for p in parts if isinstance(p, dict)
                          and isinstance(p.get("text"), str) and not p.get("thought")]
            for part in text_parts:
                text = part["text"]
                part["text"] = self._text(key, text)
                changed = changed or part["text"] != text
            if cand.get("finishReason") and key in self.chains:
                rest = self._rest(key)
                if rest:
                    if text_parts:
                        text_parts[-1]["text"] += rest
                    else:
                        if not isinstance(content, dict):
                            content = cand["content"] = {"role": "model"}
                        if not isinstance(content.get("parts"), list):
                            content["parts"] = []
                        content["parts"].append({"text": rest})
                    changed = True
        return changed, b""

    # --- what is still held when a piece ends ---------------------------------------------
    def _synthetic(self, key: int) -> bytes:
        """A copy of the last text event carrying the rest of a piece's text."""
        rest = self._rest(key)
        last = self.last.pop(key, None)
        if not rest or last is None:
            return b""
        data, event = last
        doc = json.loads(data)
        if self.provider == "anthropic":
            doc["delta"]["text"] = rest
        elif self.google:
            for cand in as_list(doc.get("candidates")):
                if isinstance(cand, dict) and piece_key(cand) == key:
                    content = cand.get("content")
                    if not isinstance(content, dict):
                        content = cand["content"] = {"role": "model"}
                    content["parts"] = [{"text": rest}]
                    cand.pop("finishReason", None)
            doc.pop("usageMetadata", None)
        else:
            doc["choices"] = [c for c in as_list(doc.get("choices"))
                              if isinstance(c, dict) and piece_key(c) == key]
            for c in doc["choices"]:
                c["delta"] = {"content": rest}
                c["finish_reason"] = None
            doc.pop("usage", None)
        return encode(_dump(doc, self.google), event=event, terminator=self.terminator)

    def _flush_all(self) -> bytes:
        return b"".join(self._synthetic(key) for key in list(self.chains))

    # --- reject ---------------------------------------------------------------------------
    def _rejected(self, detector: str) -> bytes:
        self.stopped = True
        if self.on_reject is not None:
            self.on_reject(detector)
        return stop_events(self.provider, "response blocked by a guard: it contains "
                           f"{detector.replace('_', ' ')}")


def stop_events(provider: str, message: str) -> bytes:
    """The events that end a refused stream: a finish the SDKs understand (OpenAI
    `content_filter`, Anthropic `refusal`, Gemini `SAFETY`), then an error event."""
    google = provider in GOOGLE
    if provider == "anthropic":
        stop = {"type": "message_delta", "delta": {"stop_reason": "refusal",
                                                  "stop_sequence": None},
                "usage": {"output_tokens": 0}}
        error = {"type": "error", "error": {"type": "invalid_request_error",
                                            "message": message}}
        return (encode(_dump(stop, False), event="message_delta")
                + encode(_dump(error, False), event="error"))
    if google:
        stop = {"candidates": [{"content": {"parts": [{"text": ""}], "role": "model"},
                                "finishReason": "SAFETY", "index": 0}]}
        error = {"error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"}}
        return (encode(_dump(stop, True), terminator=b"\r\n\r\n")
                + encode(_dump(error, True), terminator=b"\r\n\r\n"))
    stop = {"object": "chat.completion.chunk", "choices": [
        {"index": 0, "delta": {}, "finish_reason": "content_filter"}]}
    error = {"error": {"message": message, "type": "invalid_request_error",
                       "param": None, "code": "content_filter"}}
    return encode(_dump(stop, False)) + encode(_dump(error, False))
