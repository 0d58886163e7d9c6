"""Masking streamed OpenAI Responses API replies: every text the client can read is masked,
in the deltas and in the events that repeat it whole, consistently.

A Responses stream sends each generated text twice or more: as deltas
(``response.output_text.delta``, ``response.refusal.delta``,
``response.function_call_arguments.delta``, ``response.custom_tool_call_input.delta``,
``response.mcp_call_arguments.delta``, ``response.code_interpreter_call_code.delta``,
``response.reasoning_summary_text.delta``, ``response.reasoning_text.delta``), then whole in
the matching ``.done`` event, in ``response.content_part.done`` /
``response.reasoning_summary_part.done``, in ``response.output_item.done`` and in the final
``response.completed`` (or ``.incomplete`` / ``.failed``) event's ``response.output``.

Each piece of text (a content part, an item's arguments, a reasoning summary part; keyed by
output index, kind and content or summary index) has its own streaming maskers; function
and MCP call arguments are JSON source text, masked token by token with their escapes
decoded and written back as valid JSON text (``codecs.jsontext``), while custom tool input
and interpreter code are plain text. A delta's
text is replaced by what they release now; what they still hold when the piece ends (its
``.done``, part or item event, a terminal event, an ``error`` event, the stream's end) goes
out in a copy of the piece's last delta event just before (same ``sequence_number``). The
whole-text events then carry exactly what the deltas delivered: the piece's masked text when
their text is the one the deltas spelled (if it extends it, the extension is masked and
delivered first); a text no delta spelled (an item sent only whole, a ``.done`` that
disagrees with its deltas) is masked whole, on its own. Events without text, and text
events whose text goes out unchanged, pass through byte for byte.

``logprobs`` lists (in delta and done events, parts and items) are emptied: their tokens
would spell the unmasked text. An event type not modelled here (audio transcripts, citation
annotations, a newer type) is read anyway: see `_unknown`.

A generated image (a partial image event, an ``image_generation_call`` item with its
``result``), an image output of the code interpreter or speech (``response.audio.delta``,
base64; its transcript is read) is never read; unless every reply
guard lets images pass (``allow_unread``) it ends the stream as a reject guard does.

With a reject guard the first match ends the stream: a ``response.incomplete`` event whose
response has ``incomplete_details.reason: "content_filter"`` (and the items completed so
far, masked), then an ``error`` event carrying the message both flat (``code``,
``message``, as the SDK types the event) and nested under ``error`` (which makes the
official SDKs raise it). Nothing of the matched value is ever sent.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from ..codecs.sse import Event, encode
from ..providers.responses_items import is_arguments
from ..providers.responses_output import output_media, output_slots
from ..providers.slots import UnreadableEvent, index_value, string_slots, text_field
from ..providers.value_refs import EntryRef, value_slots
from ..providers.values import as_list
from .chains import Chain, MaskerChain, MaskerFactory, json_chain
from .event_stream import (
    AFTER_END,
    MAX_OPEN_PIECES,
    TOO_MANY_PIECES,
    UNREADABLE,
    EventMasker,
    media,
    plain,
    refusal_message,
)
from .names import mask_name
from .side_texts import side_slots
from .stops import _dump, refusal_events
from .stream import GuardTriggered

Key = tuple[str, int, int]   # (piece kind, output index, content or summary index)

#: delta event type -> piece kind ("c" content part, "a" arguments/input/code,
#: "s" reasoning summary part, "r" reasoning content part)
DELTAS = {
    "response.output_text.delta": "c",
    "response.refusal.delta": "c",
    "response.function_call_arguments.delta": "a",
    "response.custom_tool_call_input.delta": "a",
    "response.mcp_call_arguments.delta": "a",
    "response.code_interpreter_call_code.delta": "a",
    "response.reasoning_summary_text.delta": "s",
    "response.reasoning_text.delta": "r",
}
#: done event type -> (piece kind, field holding the whole text)
DONES = {
    "response.output_text.done": ("c", "text"),
    "response.refusal.done": ("c", "refusal"),
    "response.function_call_arguments.done": ("a", "arguments"),
    "response.custom_tool_call_input.done": ("a", "input"),
    "response.mcp_call_arguments.done": ("a", "arguments"),
    "response.code_interpreter_call_code.done": ("a", "code"),
    "response.reasoning_summary_text.done": ("s", "text"),
    "response.reasoning_text.done": ("r", "text"),
}
#: the delta and done events whose text is JSON source (function and MCP call arguments):
#: masked token by token, escapes decoded (``codecs.jsontext``)
JSON_TEXTS = frozenset({"response.function_call_arguments.delta",
                        "response.mcp_call_arguments.delta",
                        "response.function_call_arguments.done",
                        "response.mcp_call_arguments.done"})
PARTS = {"response.content_part.added": False, "response.content_part.done": True,
         "response.reasoning_summary_part.added": False,
         "response.reasoning_summary_part.done": True}
ITEMS = {"response.output_item.added": False, "response.output_item.done": True}
TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed"})
#: events that carry media no guard reads, and its kind (`providers.unread`)
MEDIA_EVENTS = {"response.image_generation_call.partial_image": "image",
                "response.audio.delta": "audio"}
#: events that carry only a whole response object (read by `_response`) and no text of their own
_WHOLE_RESPONSE = frozenset({"response.created", "response.in_progress", "response.queued"})
#: keys whose strings are ids or enumerations, not text anyone wrote
_NOT_TEXT = frozenset({"type", "id", "item_id", "call_id", "object", "status", "role",
                       "model", "event_id", "response_id", "logprobs"})


def _int(value: Any) -> int:
    """An index or sequence number; 0 when missing or not an integer (never a crash)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _sub(kind: str, doc: dict[str, Any]) -> int:
    if kind == "s":
        return index_value(doc.get("summary_index"))
    if kind == "a":
        return 0
    return index_value(doc.get("content_index"))


def _blank_logprobs(obj: Any) -> bool:
    """Empty a non-empty ``logprobs`` list of `obj`; True if it did."""
    if isinstance(obj, dict) and isinstance(obj.get("logprobs"), list) and obj["logprobs"]:
        obj["logprobs"] = []
        return True
    return False


class ResponsesMaskingReframer(EventMasker):
    """The Responses API counterpart of `SSEMaskingReframer` (same constructor, same
    callbacks): `provider` is kept for symmetry ("openai" or "azure")."""

    def __init__(self, provider: str, maskers: MaskerFactory, max_event_bytes: int,
                 on_reject: Callable[[str], None] | None = None,
                 on_done: Callable[[], None] | None = None,
                 allow_unread: frozenset[str] = frozenset()) -> None:
        self.provider = provider
        self.make = maskers
        super().__init__(max_event_bytes, on_reject, on_done, allow_unread)
        self.chains: dict[Key, Chain] = {}
        self.raw: dict[Key, list[str]] = {}      # the text the deltas spelled, per open piece
        self.sent: dict[Key, list[str]] = {}     # what went out for it, masked
        self.last: dict[Key, tuple[dict[str, Any], str | None]] = {}  # its last delta event
        self.final: dict[Key, tuple[str, str]] = {}   # ended pieces: (raw text, masked text)
        self.items: dict[int, Any] = {}          # completed output items, as sent
        self.response: dict[str, Any] | None = None   # the last whole response seen
        self.seq = 0
        self.closed = False   # after a terminal or error event, or [DONE]: no delta more

    # --- one event ------------------------------------------------------------------------
    def _event(self, ev: Event) -> bytes:
        ev = plain(ev)   # (only what a client reads of it goes out)
        if not ev.has_data:
            return ev.raw
        if ev.event is not None:
            self._check_name(ev.event)
        data = ev.data
        if data.strip() == "[DONE]":
            self.closed = True
            return self._end() + ev.raw
        doc = self._parse(data)
        if doc is None:
            return self._rejected(UNREADABLE)
        kind = doc.get("type")
        if not isinstance(kind, str):
            kind = ev.event if isinstance(ev.event, str) else ""
        self.seq = max(self.seq, _int(doc.get("sequence_number")))
        try:
            before, changed = self._kind(doc, kind, ev.event)
        except UnreadableEvent:   # -1, true: a client would join pieces the guards keep
            # apart; a text field holding a list or object
            return self._rejected(UNREADABLE)
        # an error's message (the `error` event's, a failed response's): a client shows it
        changed |= self._mask_each(side_slots(doc))
        if isinstance(doc.get("response"), dict):
            changed |= self._mask_each(side_slots(doc["response"]))
            changed |= self._response(doc["response"], kind in TERMINAL)
        if not changed:
            return before + ev.raw
        return before + encode(_dump(doc, False), event=ev.event)

    def _kind(self, doc: dict[str, Any], kind: str, event: str | None) -> tuple[bytes, bool]:
        """One event by its type: (what goes before it, whether its texts changed)."""
        before, changed = b"", False
        if kind in DELTAS:
            changed = self._delta(doc, kind, event)
        elif kind in DONES:
            before, changed = self._done(doc, kind)
        elif kind in PARTS:
            before, changed = self._part(doc, kind)
        elif kind in ITEMS:
            before, changed = self._item(doc, kind)
        elif kind in TERMINAL or kind == "error":
            before = self._end()
            self.closed = True
        elif kind in MEDIA_EVENTS:    # a partial image: refused unless let pass, never read
            media([MEDIA_EVENTS[kind]], self.allow_unread)
        elif kind not in _WHOLE_RESPONSE:
            changed = self._unknown(doc, kind, event)
        return before, changed

    def _unknown(self, doc: dict[str, Any], kind: str, event: str | None) -> bool:
        """An event type this masker does not model (audio transcripts, annotations, a
        type newer than this code): fail closed by reading it anyway. A `*.delta` event's
        text is streamed through its own maskers, as a text part's; any other event has
        every text (each string, key and number) masked on its own, ids and enumerations
        aside."""
        if kind.endswith(".delta") and isinstance(doc.get("delta"), str):   # (else: whole)
            return self._delta(doc, kind, event, kind)
        # every text of the event's fields (its `response` is read by `_response`): keys and
        # numbers too, as in any JSON value the model writes
        return self._mask_each([
            (holder, key) for name in list(doc) if name != "response" and name not in _NOT_TEXT
            for holder, key in value_slots(doc, name)
            if not (isinstance(holder, EntryRef) and holder.name() in _NOT_TEXT)])

    def _mask_each(self, slots: list[tuple[Any, Any]]) -> bool:
        """Mask the text at each slot on its own; True if any changed."""
        changed = False
        for holder, key in slots:
            text = holder[key]
            masked = self._mask_whole(text)
            if masked != text:
                holder[key] = masked
                changed = True
        return changed

    def _delta(self, doc: dict[str, Any], kind: str, event: str | None,
               piece: str | None = None) -> bool:
        piece = piece or DELTAS[kind]
        key = (piece, index_value(doc.get("output_index")), _sub(piece, doc))
        changed = _blank_logprobs(doc)
        text = text_field(doc, "delta")   # (a list or an object: NotText, unreadable)
        if text is None:
            return changed
        json_text = kind in JSON_TEXTS
        if key in self.final or self.closed:   # a delta after its piece or the response
            raise GuardTriggered(AFTER_END)     # ended: refused (`EndedPieces`)
        chain = self.chains.get(key)
        if chain is None:
            if len(self.chains) >= MAX_OPEN_PIECES:   # (found by review, as `reframe`'s)
                raise GuardTriggered(TOO_MANY_PIECES)
            maskers = self.make()
            chain = self.chains[key] = json_chain(maskers) if json_text \
                else MaskerChain(maskers)
            self.raw[key], self.sent[key] = [], []
        self.raw[key].append(text)
        masked = chain.feed(text)
        self.sent[key].append(masked)
        self.last[key] = (doc, event)
        if masked == text:
            return changed
        doc["delta"] = masked
        return True

    def _done(self, doc: dict[str, Any], kind: str) -> tuple[bytes, bool]:
        piece, field = DONES[kind]
        key = (piece, index_value(doc.get("output_index")), _sub(piece, doc))
        changed = _blank_logprobs(doc)
        text = doc.get(field)
        if not isinstance(text, str):
            return b"", changed
        before, masked = self._whole(key, text, True, kind in JSON_TEXTS)
        if masked != text:
            doc[field] = masked
            changed = True
        name = doc.get("name")   # a call's name, as some done events repeat it
        if isinstance(name, str) and name:
            masked = mask_name(name, self._mask_whole)
            if masked != name:
                doc["name"] = masked
                changed = True
        return before, changed

    def _part(self, doc: dict[str, Any], kind: str) -> tuple[bytes, bool]:
        part = doc.get("part")
        if not isinstance(part, dict):
            return b"", False
        changed = _blank_logprobs(part)
        oi = index_value(doc.get("output_index"))
        if kind.startswith("response.reasoning_summary_part"):
            key, field = ("s", oi, index_value(doc.get("summary_index"))), "text"
        elif part.get("type") == "reasoning_text":
            key, field = ("r", oi, index_value(doc.get("content_index"))), "text"
        else:
            field = "refusal" if part.get("type") == "refusal" else "text"
            key = ("c", oi, index_value(doc.get("content_index")))
        if part.get("annotations"):   # citations: each string on its own
            changed |= self._mask_each(string_slots(part, "annotations", _NOT_TEXT))
        text = part.get(field)
        if not isinstance(text, str):
            return b"", changed
        before, masked = self._whole(key, text, PARTS[kind])
        if masked != text:
            part[field] = masked
            changed = True
        return before, changed

    def _item(self, doc: dict[str, Any], kind: str) -> tuple[bytes, bool]:
        item = doc.get("item")
        oi = index_value(doc.get("output_index"))
        before, changed = self._item_texts(item, oi, ITEMS[kind])
        if ITEMS[kind]:
            self.items[oi] = item
        return before, changed

    def _item_texts(self, item: Any, oi: int, ends: bool) -> tuple[bytes, bool]:
        """Mask every text of an output item at output index `oi`; `ends`: the item is
        complete, so its open pieces end here."""
        before, changed = b"", False
        if isinstance(item, dict):
            media(output_media(item), self.allow_unread)   # a generated image
            for part in as_list(item.get("content")):
                changed |= _blank_logprobs(part)
        for holder, field, (piece, sub) in output_slots(item):
            text = holder[field]
            out, masked = self._whole((piece, oi, sub), text, ends, is_arguments(holder, field),
                                      piece == "n")
            before += out
            if masked != text:
                holder[field] = masked
                changed = True
        return before, changed

    def _response(self, response: dict[str, Any], terminal: bool) -> bool:
        """Mask the output items of a whole response (all pieces are closed by then when
        it is a terminal one)."""
        self.response = response
        changed = False
        for index, item in enumerate(as_list(response.get("output"))):
            _, more = self._item_texts(item, index, terminal)
            changed |= more
        return changed

    # --- whole texts ------------------------------------------------------------------------
    def _whole(self, key: Key, text: str, ends: bool, json_text: bool = False,
               name: bool = False) -> tuple[bytes, str]:
        """(events to send first, the masked text) for the whole text of a piece. `ends`:
        the event ends the piece (a done event), else it only shows it (an added event);
        `json_text`: the text is JSON source (arguments); `name`: a call's name (masked as
        `names.mask_name` says)."""
        before = b""
        if ends and key in self.chains:
            before = self._close(key, text)
        final = self.final.get(key)
        if final is not None and final[0] == text:
            return before, final[1]
        masked = mask_name(text, self._mask_whole) if name else self._mask_whole(text, json_text)
        if ends and final is None:
            self.final[key] = (text, masked)
        return before, masked

    def _mask_whole(self, text: str, json_text: bool = False) -> str:
        if not text:
            return text
        maskers = self.make()
        chain = json_chain(maskers) if json_text else MaskerChain(maskers)
        return chain.feed(text) + chain.finish()

    def _close(self, key: Key, full: str | None) -> bytes:
        """End an open piece: what its maskers hold (and, when `full` extends what the
        deltas spelled, the extension) goes out in a copy of its last delta event."""
        chain = self.chains.pop(key)
        raw = "".join(self.raw.pop(key, ()))
        sent = self.sent.pop(key, [])
        last = self.last.pop(key, None)
        rest = ""
        if full is not None and len(full) > len(raw) and full.startswith(raw):
            rest = chain.feed(full[len(raw):])
            raw = full
        rest += chain.finish()
        sent.append(rest)
        self.final[key] = (raw, "".join(sent))
        if not rest or last is None:
            return b""
        doc, event = copy.copy(last[0]), last[1]
        doc["delta"] = rest
        doc.pop("obfuscation", None)
        if "logprobs" in doc:
            doc["logprobs"] = []
        return encode(_dump(doc, False), event=event)

    def _end(self) -> bytes:
        return b"".join(self._close(key, None) for key in list(self.chains))

    # --- reject -----------------------------------------------------------------------------
    def _rejected(self, detector: str) -> bytes:
        self.stopped = True
        if self.on_reject is not None:
            self.on_reject(detector)
        message = refusal_message(detector)
        items = [self.items[i] for i in sorted(self.items)]
        return refusal_events(self.response, items, self.seq, message)
