"""Webhook guards on streamed responses: the text is checked in segments.

A remote guard cannot be asked about every token (one HTTP call each), nor about the whole
stream (nothing would be delivered until the end). So the transform holds the stream's
events while their text grows, and asks the webhook about the held text as one segment once
it reaches `segment_chars` at a word end (after whitespace, or before a token that starts
with it: the events after the last word end wait for the next segment; past twice that, at
any end there is), when a piece ends (a finish reason, a content block's stop) and at the
end of the stream. The verdict applies to
the held events: pass releases them byte for byte; mask rewrites the text in them (a
placeholder goes where its span starts, keeping the events' boundaries); reject ends the
stream with the provider's finish and error events, and nothing of the segment is sent.

The texts are every text the model writes, where the adapter's `stream_texts` finds them
(visible text, refusals, thinking, tool-call arguments, of every choice, content block or
candidate; the same texts the local guards' reframer reads). Each piece of text (an OpenAI
choice's content, its refusal, one tool call's arguments, an Anthropic content block, a
Gemini candidate's text or thought text) is one entry of the call's `texts`, with up to 256
characters of what was already delivered before it as `context` (for an Anthropic content
block, from the last block of its kind on: the SDK joins them); a value that arrives whole
(a Gemini function call's args: each key, number and string of it) is an entry of its own. A
multi-word value split across two segments can be detected, but not masked any more
(segments end at word ends, so a word, an address or a URL, is not cut in two unless it is
longer than twice `segment_chars`).

Tool-call arguments stream as JSON source (OpenAI ``arguments``, Anthropic
``input_json_delta``), where an escape (``\\u0040``) would hide a value from the webhook. So a
call's arguments are held whole until the call ends (its choice's finish, its block's stop),
with the events around them, and sent as the tool reads them: each token decoded, one entry
each (`webhook.source_texts`); a mask comes back as valid JSON in the call's first event, the
others left empty (clients join the pieces). Arguments longer than `JSON_HOLD_SEGMENTS`
segments go on as their source, segment by segment: nothing is held without end. Once such
arguments have shown an escape, each of their segments is also sent as the tool reads it
(decoded token by token across segments: `webhook_args`), as an entry the webhook may
refuse for but not mask: a mask there cannot be written back into source already streaming
on, so it ends the stream refused, never lets the value through.

An event carrying media no guard reads (a generated image, audio: the adapter's
``EventTexts.unread``) of a kind the guard does not let pass (`allow_unread`) ends the stream
refused, after what is held before it has been checked.

An error (down, slow, malformed) fails open (the segment goes out unchecked) or closed (the
stream ends refused).

The transform is sans IO: it is handed the function that performs a call (`check`).
"""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from ..codecs.sse import Event, SSEDecoder, SSEError, encode
from ..policy import BodyTransform
from ..providers import Adapter, adapter_for
from ..providers.slots import UnreadableEvent
from ..providers.unread import NAMES
from .event_stream import (
    AFTER_END,
    ANY_CHOICES,
    MAX_OPEN_PIECES,
    OVERSIZED,
    UNASKED,
    UNREADABLE,
    EndedPieces,
    plain,
    refusal_message,
    unasked,
)
from .stops import GOOGLE, _dump, stop_events, stream_head
from .stream import GuardTriggered
from .webhook import (
    CONTEXT_CHARS,
    ClientSized,
    Text,
    Verdict,
    WebhookError,
    ask_by,
    masks_by_text,
    message_deadline,
    source_texts,
)
from .webhook_args import ArgumentReadings
from .webhook_held import Held, WordEnds, ends_piece, is_json, read_event, write_masks

#: how long tool-call arguments are held whole, in segments, before they go on raw
JSON_HOLD_SEGMENTS = 16
#: how many events a segment holds at most, however little text they carry
MAX_HELD_EVENTS = 512
#: how many times `max_event_bytes` a segment holds at most, however little text its events
#: carry (found by review: 512 events of 1 MiB without text held 3 GB parsed)
MAX_HELD_EVENT_SIZES = 4


#: the function that asks the webhook about some texts; raises WebhookError on failure
Checker = Callable[[list[Text]], Awaitable[Verdict]]
#: told of each decision: "pass", "masked", "rejected", "error-open", "error-closed"
Reporter = Callable[[str, str], None]


class WebhookStreamGuard(BodyTransform):
    is_async = True

    def __init__(self, provider: str, guard: str, check: Checker, segment_chars: int,
                 fail_open: bool, max_event_bytes: int, report: Reporter,
                 adapter: Adapter | None = None,
                 allow_unread: frozenset[str] = frozenset()) -> None:
        self.provider = provider
        self.allow_unread = allow_unread
        self.adapter = adapter or adapter_for(provider)   # the endpoint's: it finds the texts
        self.google = provider in GOOGLE
        self.guard = guard
        self.check = check
        self.segment = segment_chars
        self.fail_open = fail_open
        self.report = report
        self.decoder = SSEDecoder(max_event_bytes)
        self.terminator = b"\r\n\r\n" if self.google else b"\n\n"
        self.held: list[Held] = []
        self.held_raw = 0                               # their bytes
        self.words = WordEnds()                         # where a word open in them starts
        self.max_held = MAX_HELD_EVENT_SIZES * max_event_bytes
        self.closed = EndedPieces()   # text for one of these ends the stream refused
        #: the choices or candidates the request asked for (`event_stream.unasked`)
        self.choices = ANY_CHOICES
        self.pending: dict[Hashable, list[str]] = {}    # held text per piece, in pieces
        self.pending_chars = 0
        self.context: dict[Hashable, str] = {}          # delivered text per piece (its tail)
        self.joined: dict[str, str] = {}   # the same of the last block of a joined kind
        self._whole = itertools.count()                 # keys of values that arrive whole
        # tool-call arguments (JSON source): the pieces held whole since their first text,
        # which are sent decoded once they end; those still open; and every one seen
        self.json_whole: set[Hashable] = set()
        self.json_open: set[Hashable] = set()
        self.json_seen: set[Hashable] = set()
        # arguments past the hold: their decoded reading, the tail already sent of it, and
        # those that have shown an escape (their reading is sent beside their source)
        self.readings = ArgumentReadings()
        self.ending = False                             # the stream's last release
        self.stopped = False
        self.head: dict[str, Any] = {}                  # `stream_head` of its first chunk
        # (with an id: OpenAI's refusal chunk repeats it; the other formats have none)
        self.wants_head = provider != "anthropic" and not self.google

    @property
    def held_bytes(self) -> int:
        return self.held_raw

    async def feed_async(self, chunk: bytes) -> bytes:
        if self.stopped:
            return b""
        try:
            events = self.decoder.feed(chunk)
        except SSEError as exc:                 # an event past the size limit: never sent
            out = await self._events(exc.events, end=False)   # (the events before it are)
            if self.stopped:
                return out
            return out + await self._refuse(refusal_message(OVERSIZED))
        return await self._events(events, end=False)

    async def finish_async(self) -> bytes:
        if self.stopped:
            return b""
        try:
            events = self.decoder.finish()
        except SSEError:
            return await self._refuse(refusal_message(OVERSIZED))
        return await self._events(events, end=True)

    async def _refuse(self, message: str, report: bool = True) -> bytes:
        """An event the guard cannot read (too large, not JSON, media it does not allow):
        what is held before it is checked and goes on, then the stream ends refused with
        `message`; the event is never sent."""
        out = await self._release()
        if self.stopped:
            return out
        if report:
            self.report(self.guard, "rejected")
        return out + self._stop(message)

    async def _events(self, events: list[Event], end: bool) -> bytes:
        out: list[bytes] = []
        for ev in events:
            if self.stopped:
                return b"".join(out)
            try:
                ev = plain(ev)   # (only what a client reads of it goes out)
            except GuardTriggered:   # an event name no provider gives: fail closed
                out.append(await self._refuse(refusal_message(UNREADABLE), report=False))
                return b"".join(out)
            held, ends, final = read_event(self.adapter, ev, self._whole, self.allow_unread)
            if self.wants_head and not self.head.get("id"):   # (Azure's first chunk, its
                self.head = stream_head(held.doc)   # prompt filter results, has an empty id)
            if held.unreadable:                 # fail closed: what no guard can check
                out.append(await self._refuse(refusal_message(UNREADABLE), report=False))
                return b"".join(out)
            if held.media is not None:          # nor what it cannot read and does not allow
                out.append(await self._refuse(
                    f"response blocked by guard '{self.guard}': the reply carries "
                    f"{NAMES.get(held.media, held.media)}, which it cannot read and does not "
                    "let pass unread"))
                return b"".join(out)
            if not held.slots and not final and (not self.held or not ev.has_data):
                # nothing to check: it goes on now if nothing waits, and a comment (a
                # keep-alive) always does, or a client's idle timeout could cut a stream
                # whose text is held (a comment carries nothing a client reads)
                out.append(ev.raw)
                continue
            if final:                           # [DONE]: what is held is checked first
                self.closed.end_all()
                out.append(await self._release())
                if not self.stopped:
                    out.append(ev.raw)
                continue
            if self.closed.some:   # text for a piece that has ended: refused
                try:
                    for key, _, _ in held.slots:
                        if isinstance(key, tuple):   # (a value read whole has a number)
                            self.closed.check(key)
                except GuardTriggered:
                    out.append(await self._refuse(refusal_message(AFTER_END), report=False))
                    return b"".join(out)
            if any(unasked(key, self.choices) for key, _, _ in held.slots):
                out.append(await self._refuse(refusal_message(UNASKED), report=False))
                return b"".join(out)
            self.closed.note(held.ends, held.ends_all)
            if not held.slots:
                held.doc = None   # (only an event whose texts change is written again)
            self.held.append(held)
            self.held_raw += len(ev.raw)
            self.words.add(held)
            for key, holder, slot in held.slots:
                text = holder[slot]
                self.pending.setdefault(key, []).append(text)
                if key in self.readings:        # arguments past the hold: read as they come
                    decoded = self.readings.feed(key, text)
                    self.pending_chars += len(decoded if key in self.readings.escaped
                                              else text)
                else:
                    self.pending_chars += len(text)
                if is_json(key) and key not in self.json_seen:
                    self.json_seen.add(key)
                    self.json_whole.add(key)
                    self.json_open.add(key)
            if ends:
                self.json_open = {k for k in self.json_open if not ends_piece(held, k)}
            if ends and not self._json_held():
                out.append(await self._release())
                continue
            keep = self._segment_end(held)
            if keep is not None:
                out.append(await self._release(keep))
        if end and not self.stopped:
            self.ending = True
            out.append(await self._release())
        return b"".join(out)

    def _json_held(self) -> bool:
        """True while tool-call arguments are held whole and still open (up to a bound)."""
        return bool(self.json_open & self.json_whole) \
            and self.pending_chars < JSON_HOLD_SEGMENTS * self.segment

    def _segment_end(self, last: Held) -> int | None:
        """Whether to check the held text now: None to hold on, else how many of the last
        held events to keep for the next segment (0: all go). A segment ends at a word end
        once it reaches `segment_chars`: after a text ending in whitespace, or before one
        starting with it (token streams put the space first), so a word (an address, a
        number, a URL) is not cut in two; the events after the last such end wait for the
        next segment. Past twice `segment_chars` it ends at the last word end there is, or
        anywhere."""
        # events without text (empty deltas) do not grow the segment: past a count of them
        # what is held is checked and goes on, so no upstream makes it hold without end
        crowded = len(self.held) >= MAX_HELD_EVENTS or self.held_raw >= self.max_held
        if self._json_held() and not crowded:
            return None
        full = self.pending_chars >= 2 * self.segment or crowded
        if self.pending_chars < self.segment or not last.slots:
            return 0 if full else None
        key, holder, slot = last.slots[-1]
        tail = holder[slot]
        if key in self.readings.escaped:        # escaped arguments: where their reading is
            tail = self.readings.tail(key)
        if tail and tail[-1].isspace():
            return 0
        keep = self.words.start(0 if full else self.segment)
        if keep is not None:
            return keep
        return 0 if full else None

    # --- the verdict on what is held ----------------------------------------------------
    async def _release(self, keep: int = 0) -> bytes:
        """Check what is held and send it on (or stop the stream); the last `keep` held
        events (one plain piece's text: `WordEnds`) wait for the next segment."""
        if keep:
            kept = self.held[-keep:]
            self.held = self.held[:-keep]
            for h in reversed(kept):            # their texts are the last of their piece
                for key, _, _ in reversed(h.slots):
                    self.pending[key].pop()
            out = await self._release()
            if not self.stopped:
                self.held, self.words = kept, WordEnds(kept)
                self.held_raw = sum(len(h.event.raw) for h in kept)
                for h in kept:
                    for key, holder, slot in h.slots:
                        self.pending.setdefault(key, []).append(holder[slot])
                        self.pending_chars += len(holder[slot])
            return out
        held, self.held, self.held_raw, self.words = self.held, [], 0, WordEnds()
        pending, self.pending, self.pending_chars = self.pending, {}, 0
        # arguments past the hold that ended (or the stream did) with no more text: what
        # their decoder still holds is read too
        for k in [k for k in self.readings.decoders if k not in pending
                  and (k not in self.json_open or self.ending)]:
            pending[k] = []
        if not pending:
            return b"".join(h.event.raw for h in held)
        keys = list(pending)
        texts: list[Text] = []
        sent: dict[Hashable, list[int]] = {}    # the texts each piece was sent as
        decoded: set[Hashable] = set()          # pieces sent as their JSON tokens
        read_only: set[int] = set()             # texts a mask cannot be written back to
        for k in keys:
            joined = "".join(pending[k])
            if k in self.json_whole and k not in self.json_open:
                decoded.add(k)                  # arguments held whole: read as the tool does
                pieces = source_texts(joined)
                sent[k] = list(range(len(texts), len(texts) + len(pieces)))
                texts.extend(Text("assistant", piece) for piece in pieces)
            else:
                sent[k] = [len(texts)] if joined else []
                if joined:
                    texts.append(Text("assistant", joined, self._context(k)))
                before = self.readings.context.get(k, "")
                view = self._reading(k, joined) if is_json(k) else None
                if view is not None:            # arguments past the hold, escapes decoded
                    read_only.add(len(texts))
                    texts.append(Text("assistant", view, before))
        self.json_whole -= set(keys)            # what goes on of an open one goes raw
        if not texts:                           # a decoder's rest, and nothing in it
            return b"".join(h.event.raw for h in held)
        try:
            verdict = await ask_by(self.check, texts, message_deadline())   # (the message's)
        except WebhookError as exc:
            if self.fail_open and not isinstance(exc, ClientSized):   # (the client's
                self.report(self.guard, "error-open")                 # doing: refused)
                verdict = Verdict("pass")
            else:
                self.report(self.guard, "error-closed")
                why = "cannot judge this much text at once" if isinstance(
                    exc, ClientSized) else "is unavailable"
                return self._stop(f"response refused: guard '{self.guard}' {why}")
        if verdict.action == "reject":
            self.report(self.guard, "rejected")
            reason = f": {verdict.reason}" if verdict.reason else ""
            return self._stop(f"response blocked by guard '{self.guard}'{reason}")
        delivered = {k: "".join(pending[k]) for k in keys}
        changed: set[int] = set()
        if verdict.action == "mask" and any(i in read_only for i in masks_by_text(verdict)):
            self.report(self.guard, "rejected")
            return self._stop(f"response blocked by guard '{self.guard}': it masks text of "
                              "tool-call arguments too long to hold, which streamed on")
        if verdict.action == "mask":
            self.report(self.guard, "masked")
            try:
                changed = write_masks(held, keys, sent, decoded, pending, delivered,
                                      masks_by_text(verdict))
            except UnreadableEvent:   # a key clients merge by (`FixedKey`): unmaskable
                self.report(self.guard, "rejected")
                return self._stop(refusal_message(UNREADABLE))
        else:
            self.report(self.guard, "pass")
        context = self.context
        for key, text in delivered.items():
            if isinstance(key, tuple):              # not a whole value: it may continue
                tail = (self._context(key) + text)[-CONTEXT_CHARS:]
                context.pop(key, None)
                context[key] = tail
                if key[1] in self.adapter.stream_joins:
                    self.joined[key[1]] = tail
                if len(context) > MAX_OPEN_PIECES:   # the least recently delivered goes
                    # (found by review: a path per piece of a field the code does not
                    # model made one per event, 24 MB for a 1.5 MB stream)
                    del context[next(iter(context))]
        return b"".join(
            encode(_dump(h.doc, self.google), event=h.event.event, terminator=self.terminator)
            if id(h) in changed else h.event.raw for h in held)

    def _context(self, key: Hashable) -> str:
        """What was delivered before the piece `key`: its own tail, or for a content block
        that a client reads joined with the one before of its kind (`stream_joins`: the
        SDK joins a message's text blocks), that one's tail."""
        tail = self.context.get(key)
        if tail is None and isinstance(key, tuple) and key[1] in self.adapter.stream_joins:
            tail = self.joined.get(key[1])
        return tail or ""

    def _reading(self, key: Hashable, raw: str) -> str | None:
        """The decoded reading of the source of arguments past the hold released now
        (`webhook_args`; all of it, `raw`, the first time: what was held)."""
        if key not in self.readings:
            self.readings.feed(key, raw)
        return self.readings.segment(key, key not in self.json_open or self.ending)

    def _stop(self, message: str) -> bytes:
        self.stopped = True
        self.held, self.pending, self.pending_chars, self.held_raw = [], {}, 0, 0
        self.words = WordEnds()
        return stop_events(self.provider, message, self.head)
