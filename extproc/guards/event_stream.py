"""What every streamed-reply masker shares: it decodes SSE events, hands each to `_event`,
ends the stream with `_end` (what the maskers still hold goes out), and turns a reject
guard's hit into the provider's refusal events (`_rejected`), after which nothing more is
sent. An event whose data is not a JSON object ends the stream the same way (UNREADABLE):
what the guards cannot read is never passed on; so does an event larger than the route's
`streams.max_event_bytes` (OVERSIZED), and an event carrying media no guard
reads (a generated image, audio: `providers.unread`) of a kind not every reply guard lets
pass (`allow_unread`; `media`). The reframers (`reframe.py` for chat,
messages and Gemini; `reframe_responses.py` for the Responses API) implement those three."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..codecs import jsonunique
from ..codecs.sse import Event, SSEDecoder, SSEError, encode
from ..policy import BodyTransform
from ..providers.slots import EventTexts, UnreadableEvent
from ..providers.unread import NAMES
from .chains import MaskerChain, MaskerFactory
from .invisible import HIDDEN_MOST, TOO_MANY_HIDDEN
from .stream import GuardTriggered

#: what a refusal names when an event is not the JSON object the guards read: the stream
#: ends there (fail closed) instead of passing on what no guard could check
UNREADABLE = "an_unreadable_event"
#: what a refusal for media no guard reads names: this prefix and the kind ("unread_image")
UNREAD = "unread_"
#: what a refusal names when an event is larger than the route's `streams.max_event_bytes`:
#: the stream ends there, as for an unreadable event
OVERSIZED = "an_oversized_event"
#: text for a choice, block or candidate after the event that ended it (`EndedPieces`)
AFTER_END = "text_after_its_end"
#: more bytes of events than a stream guard holds while it places the boundary between two
#: content blocks read joined (`block_join`)
HELD_TOO_MUCH = "too_much_held"
#: text for a choice or candidate of an index the request did not ask for (`unasked`)
UNASKED = "a_choice_not_asked_for"
#: more choices, blocks or candidates open at once than a stream guard keeps
#: (`MAX_OPEN_PIECES`)
TOO_MANY_PIECES = "too_many_open_pieces"
#: the most pieces (a choice's or block's text, a call's arguments) one stream guard keeps
#: open at once, each with its maskers and its last event (found by review: an upstream
#: naming a new index in every event grew them without bound); OpenAI's `n` is at most 128
MAX_OPEN_PIECES = 1024
#: no bound on the choices of a stream (the request's count is not known)
ANY_CHOICES = 1 << 62
#: where the guards leave the choices a request asked for (`Adapter.output_choices`), for
#: its stream's guards
ASKED_CHOICES = "guards_asked_choices"


def unasked(piece: Any, choices: int) -> bool:
    """Is `piece` (a text's piece) of a choice or candidate beyond the `choices` the
    request asked for? The SDKs' common stream loops read the first choice of each event
    whatever its index (`chunk.choices[0].delta.content`, google-genai's `chunk.text`), so
    text sent as choice 1 of a request for one is joined to choice 0's by the client, while
    the guards read the two apart: a value split between them would go out in clear."""
    return isinstance(piece, tuple) and type(piece[0]) is int and piece[0] >= choices


def refusal_message(detector: str) -> str:
    """What the error event of a refused stream says: what a reject guard found (never the
    value), or the media it carries that the route's guards cannot read."""
    if detector == AFTER_END:
        return ("response blocked by a guard: the upstream sent text for a choice, block or "
                "candidate after its end (a finish reason, a stop), which the guards cannot "
                "read with the text it continues")
    if detector == TOO_MANY_PIECES:
        return (f"response blocked by a guard: the upstream opened more than "
                f"{MAX_OPEN_PIECES} choices, blocks or candidates at once")
    if detector == UNASKED:
        return ("response blocked by a guard: the upstream sent text for a choice or "
                "candidate the request did not ask for, which a client reads as the text of "
                "the one it asked for")
    if detector == HELD_TOO_MUCH:
        return ("response blocked by a guard: the upstream sent more events than the "
                "guards hold (four times the route's streams.max_event_bytes, at least 4 "
                "MiB) between a content block's end and the next block's text, which the "
                "guards read with it")
    if detector == TOO_MANY_HIDDEN:
        return (f"response blocked by a guard: the upstream sent more than {HIDDEN_MOST} "
                "invisible characters (zero-width spaces, joiners, format characters) inside "
                "what could still be a sensitive value, more than the guards hold")
    if detector == OVERSIZED:
        return ("response blocked by a guard: a stream event is larger than the route's "
                "streams.max_event_bytes, so the guards could not read it")
    if detector.startswith(UNREAD):
        kind = detector[len(UNREAD):]
        return (f"response blocked by a guard: the reply carries {NAMES.get(kind, kind)}, "
                "which the route's guards cannot read and do not let pass unread")
    return f"response blocked by a guard: it contains {detector.replace('_', ' ')}"


#: an event of `data` and `event` lines alone (after a BOM, at the stream's start), ended
_PLAIN = re.compile(rb"(?:\xef\xbb\xbf)?(?:(?:data|event):[^\r\n]*(?:\r\n|\r(?!\n)|\n))+"
                    rb"(?:\r\n|\r|\n)")


def plain(ev: Event) -> Event:
    """`ev` as what a client reads of it, so that nothing goes out that the guards did not
    read: an event of `data` lines and one `event` line as it came; one with a comment, an
    `id`, a `retry`, a second `event` or any other line, made again of its data and name
    (what SSE clients dispatch); one with no data (no client dispatches it) an empty
    comment, which keeps a keep-alive alive; an unterminated last one with data, ended. A
    reader that is no SSE parser (an SDK that reads a reply mislabelled `text/event-stream`
    as JSON) then sees only what the guards read. An event name that is no provider's kind
    of name (`_NAME`) raises `GuardTriggered` (unreadable): a name cannot be masked."""
    raw = ev.raw
    if ev.event is not None and _NAME.fullmatch(ev.event) is None:
        raise GuardTriggered(UNREADABLE)   # a name is no text to mask: refused, not sent
    if ev.terminated and ev.has_data and _PLAIN.fullmatch(raw) is not None \
            and (ev.event is None or raw.count(b"event:") == 1):
        return ev   # (two event lines: the client keeps the last, the first goes unread)
    end = raw[len(raw.rstrip(b"\r\n")):] if ev.terminated else b""
    if _BLANKS.fullmatch(end) is None:
        # an unterminated last event with data is ended: the guards read it as if it were
        # (SDKs dispatch it too), and the events the guards add after it (what a masker
        # still held) must not join its line (found by review: the held text was lost)
        end = b"\n\n" if ev.terminated or ev.has_data else b""
    if not ev.has_data:
        out = b":" + end if end else b""
    else:
        out = encode(ev.data, event=ev.event)
        out = out[:-2] + end   # (encode's own blank line, LF LF, replaced)
    return Event(out, ev.data, ev.event, None, None, ev.has_data, bool(end))


_BLANKS = re.compile(rb"(?:\r\n|\r|\n){2}")
#: an event name as providers name theirs (`content_block_delta`, `response.output_text.delta`):
#: a letter first, so no number (a card's, an SSN) passes as a name (found by review)
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.:-]{0,127}")


def media(kinds: Sequence[str], allowed: frozenset[str]) -> None:
    """Raise `GuardTriggered` (``unread_<kind>``) for the first of an event's media kinds
    (`EventTexts.unread`) not in `allowed`."""
    for kind in kinds:
        if kind not in allowed:
            raise GuardTriggered(UNREAD + kind)


class EndedPieces:
    """The choices, blocks and candidates of a stream that an event has ended: a choice's
    finish reason, a content block's stop, a candidate's finish reason, a stream-level stop
    or error, `[DONE]`. A provider writes no more text for them. Text for one afterwards
    would be read apart from the text it continues, while a client joins the two (a value
    split around the end would go out in clear, and a relay that puts a finish reason on
    every chunk would turn masking into per-chunk masking), so it ends the stream refused
    (`check`, `AFTER_END`). Pieces ended one by one (a Vertex streamed argument's last
    piece) are not counted: the next call's argument of the same path is a new value."""

    __slots__ = ("every", "groups", "some")

    def __init__(self) -> None:
        self.groups: set[Any] = set()    # choices, blocks, candidates (a piece's first member)
        self.every = False
        self.some = False

    def note(self, ends: Iterable[Any], ends_all: bool) -> None:
        """Count what an event ends as ended (`EventTexts.ends`, `.ends_all`), after its own
        texts were read."""
        if ends_all:
            self.every = True
        self.groups.update(ends)
        self.some = self.every or bool(self.groups)

    def end_all(self) -> None:
        self.every = self.some = True

    def check(self, piece: Any) -> None:
        """Raise `GuardTriggered` (`AFTER_END`) when `piece`'s choice, block or candidate
        has ended."""
        if self.some and (self.every
                          or (isinstance(piece, tuple) and piece[0] in self.groups)):
            raise GuardTriggered(AFTER_END)


def ended(chains: dict[Any, Any], texts: EventTexts) -> list[Any]:
    """The pieces with a chain that an event ends: those of the choices, blocks or
    candidates it ends (or all of them), then those it ends one by one."""
    out = [p for p in chains if texts.ends_all or p[0] in texts.ends] \
        if texts.ends or texts.ends_all else []
    out.extend(p for p in texts.ends_pieces if p in chains and p not in out)
    return out


class EventMasker(BodyTransform):
    """The SSE loop of a masking reframer; subclasses give `_event`, `_end`, `_rejected`."""

    chains: dict[Any, Any]
    make: MaskerFactory

    def __init__(self, max_event_bytes: int, on_reject: Callable[[str], None] | None,
                 on_done: Callable[[], None] | None,
                 allow_unread: frozenset[str] = frozenset()) -> None:
        self.decoder = SSEDecoder(max_event_bytes)
        self.max_event_bytes = max_event_bytes
        self.on_reject = on_reject
        self.on_done = on_done
        #: the media kinds every reply guard lets pass unread; any other ends the stream
        self.allow_unread = allow_unread
        self.stopped = False
        #: the event names read and found clean (a stream has a handful: each read once)
        self.names: set[str] = set()

    def _check_name(self, name: str) -> None:
        """Refuse (`GuardTriggered`, unreadable) an event name in which a guard finds
        something: a name cannot be masked (found by review: `x.4111111111111111` and an
        API key as names went out as they came). A reject guard's match is refused as
        such."""
        if name in self.names:
            return
        if self._mask_name(name) != name:
            raise GuardTriggered(UNREADABLE)
        if len(self.names) < 64:
            self.names.add(name)

    def _mask_name(self, name: str) -> str:
        """`name` through the guards' maskers, whole."""
        chain = MaskerChain(self.make())
        return chain.feed(name) + chain.finish()

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
        try:
            events = self.decoder.feed(chunk)
        except SSEError as exc:   # an event past the size limit: never read, not sent
            out = self._events(exc.events)   # (the events before it are)
            return out if self.stopped else out + self._rejected(OVERSIZED)
        return self._events(events)

    def finish(self) -> bytes:
        if self.stopped:
            return b""
        try:
            events = self.decoder.finish()
        except SSEError:
            return self._rejected(OVERSIZED)
        out = self._events(events)
        if not self.stopped:
            try:
                out += self._end()
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
            except UnreadableEvent:   # a text that cannot change where a guard changes it
                out.append(self._rejected(UNREADABLE))
        return b"".join(out)

    @staticmethod
    def _parse(data: str) -> dict[str, Any] | None:
        """An event's data as the JSON object the guards read; None when it is not one, or
        repeats a key (`codecs.jsonunique`: the client's parser may keep the copy the
        guards did not read; the caller then ends the stream with `_rejected(UNREADABLE)`)."""
        try:
            doc = jsonunique.loads(data)
        except (ValueError, RecursionError):
            return None
        return doc if isinstance(doc, dict) else None

    def _event(self, ev: Event) -> bytes:
        raise NotImplementedError

    def _end(self) -> bytes:
        """What is still held when the stream ends, as events."""
        raise NotImplementedError

    def _rejected(self, detector: str) -> bytes:
        raise NotImplementedError
