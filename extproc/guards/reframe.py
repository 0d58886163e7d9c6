"""Masking streamed responses: decode each SSE event, run its texts through the streaming
maskers, and re-frame what the maskers release as valid events of the provider's format.

The texts are every text the model writes, where the adapter's ``stream_texts`` finds them:
visible text, refusals, thinking, tool-call arguments, of every choice, content block or
candidate. One masker chain per piece (a choice's content, its refusal, one tool call's
arguments, an Anthropic content block, a Gemini candidate's text or its thought text); a value
that arrives whole gets a chain of its own (a Gemini function call's args, an Anthropic tool's
input: each of their keys, numbers and strings, as `rewrite_json_strings` visits them; a call's
name, read as `names.mask_name` reads it). Tool-call
arguments (``JSON_PIECES``) are JSON source text: their chain reads it token by token, escapes
decoded, and writes it back as valid JSON text (``codecs.jsontext.JsonTextMasker``). A text
is replaced by what its chain releases now (possibly nothing: the held suffix follows in a
later event), and what is still held when the piece ends (a finish reason, a content block's
stop, a stream-level stop or error, ``[DONE]``, the stream's end) is appended to the piece's
text in the event that ends it, or else goes out just before that event in the adapter's
``rest_event`` (made from the piece's last text event); but a content block of a kind a
client reads joined with the next of its kind (``Adapter.stream_joins``) has its chain read
on into that one, the boundary marked (``block_join``). Text for a piece after its end ends
the stream refused (``EndedPieces``): read apart from what it continues, a value split
around the end would go out in clear. Events without text, and text events
whose texts go out unchanged at once (most of them: nothing held, nothing masked), pass
through byte for byte, without re-encoding. OpenAI's usual content event (compact, one
choice, no other text in its delta) is not even parsed: its text literal is cut out, and the
masked text, when it differs, spliced back in (the same bytes as re-encoding the event).

With a reject guard the first match ends the stream (so does an event carrying media no
guard reads, ``EventTexts.unread``, of a kind not in ``allow_unread``): a finish event the
SDKs understand (OpenAI `finish_reason: content_filter`, Anthropic `stop_reason: refusal`,
Gemini `finishReason: SAFETY`) followed by an error event in the provider's format, and
nothing of the matched value is ever sent.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json.encoder import encode_basestring  # how json.dumps(ensure_ascii=False) writes a str
from typing import Any

from ..codecs.sse import Event, encode
from ..providers import Adapter, adapter_for
from ..providers.openai import OpenAIAdapter
from ..providers.slots import (
    JSON_PIECES,
    NAME_PIECE,
    EventTexts,
    Piece,
    TextSlot,
    UnreadableEvent,
)
from ..providers.values import MaskingFn, rewrite_json_strings
from .block_join import HeldBlocks
from .chains import Chain, JoinedChain, MaskerChain, MaskerFactory, json_chain
from .event_stream import (
    ANY_CHOICES,
    MAX_OPEN_PIECES,
    TOO_MANY_PIECES,
    UNASKED,
    UNREADABLE,
    EndedPieces,
    EventMasker,
    ended,
    media,
    plain,
    refusal_message,
    unasked,
)
from .names import mask_name
from .openai_event import OPENAI_TEXT, STRINGS, TEXT_LITERAL, TEXT_LITERAL_BYTES
from .side_texts import event_texts
from .stops import GOOGLE, _dump, stop_events, stream_head
from .stream import GuardTriggered

#: the piece of a side text (`side_texts`), each read whole
SIDE_PIECE: Piece = (-1, "side", 0)

def _encode(data: str, event: str | None, terminator: bytes) -> bytes:
    """`encode(data, event=event, terminator=terminator)`, faster for one line of data."""
    if event is None and "\n" not in data and "\r" not in data:
        return b"data: " + data.encode() + terminator
    return encode(data, event=event, terminator=terminator)


class SSEMaskingReframer(EventMasker):
    def __init__(self, provider: str, maskers: MaskerFactory, max_event_bytes: int,
                 on_reject: Callable[[str], None] | None = None,
                 on_done: Callable[[], None] | None = None,
                 adapter: Adapter | None = None,
                 allow_unread: frozenset[str] = frozenset()) -> None:
        """`adapter` locates the texts of the stream's events (`stream_texts`): the
        endpoint's (default: the provider's chat adapter); `allow_unread`: the kinds of
        media no guard reads that the stream may carry (any other ends it refused)."""
        self.provider = provider
        self.adapter = adapter or adapter_for(provider)
        self.google = provider in GOOGLE
        self.make = maskers
        super().__init__(max_event_bytes, on_reject, on_done, allow_unread)
        self.chains: dict[Piece, Chain] = {}
        #: the pieces ended so far: text for one of them ends the stream refused
        self.closed = EndedPieces()
        #: the choices or candidates the request asked for: text for another ends the
        #: stream refused (`event_stream.unasked`; set by `reply_side` where it is known)
        self.choices = ANY_CHOICES
        # each piece's last text event: its data (or the chunk that was that one event, as
        # `_chunk_text` saw it, decoded only if needed) and its name
        self.last: dict[Piece, tuple[str | bytes, str | None]] = {}
        self._current: tuple[str | bytes, str | None] = ("", None)
        self.terminator = b"\r\n\r\n" if self.google else b"\n\n"
        #: take the fast path for OpenAI's common text events (False: parse every event)
        self.skim = type(self.adapter) is OpenAIAdapter
        # the data around the text of the last event of the fast path, and its piece
        self._frame: tuple[str, str, Piece] | None = None
        # the same as a chunk has it: `data: ` and the data before the text, the data after
        # it and LF LF; then the frame itself
        self._bframe: tuple[bytes, bytes, str, str, Piece] | None = None
        #: the piece fields whose adjacent blocks a client reads joined, and those blocks'
        #: chain from a block's stop on (`block_join`)
        self.joins = self.adapter.stream_joins
        self.held_blocks: HeldBlocks | None = None

    @property
    def held(self) -> int:
        """`EventMasker.held`, and what held blocks keep (`HeldBlocks.weight`)."""
        blocks = self.held_blocks
        return sum(c.held for c in self.chains.values()) + (blocks.weight if blocks else 0)

    def feed(self, chunk: bytes) -> bytes:
        """`EventMasker.feed`, faster for OpenAI's stream of one-line `data:` events (LF only)
        once nothing is held: a chunk of whole events is cut into them by
        `SSEDecoder.whole_lf` and each is read without making an `Event` (`_whole_events`);
        and a chunk that is the last text event's bytes around another text (a paced
        stream's every chunk, once it has seen one) is not even cut (`_chunk_text`)."""
        if self.skim and not self.stopped and not self.decoder.pending \
                and len(chunk) <= self.max_event_bytes:
            if self._bframe is not None:
                try:
                    out = self._chunk_text(chunk)
                except GuardTriggered as hit:
                    return self._rejected(hit.detector)
                if out is not None:
                    return out
            raws = self.decoder.whole_lf(chunk)
            if raws is not None:
                return self._whole_events(raws)
        return super().feed(chunk)

    def _whole_events(self, raws: list[bytes]) -> bytes:
        """`EventMasker._events` of whole events given as their bytes (`whole_lf`): a one-line
        `data:` event is read as `feed` reads a chunk that is one (no `Event` made), any other
        decoded as usual."""
        out: list[bytes] = []
        for raw in raws:
            try:
                got = self._chunk_text(raw)
                if got is None:
                    if raw.startswith(b"data: ") and raw.find(b"\n", 6) == len(raw) - 2:
                        data = raw[6:-2].decode("utf-8", "replace")
                        got = self._openai_text(raw, data, None)
                        if got is None:
                            got = self._parsed(raw, data, None)
                    else:
                        got = self._event(Event.lazy(raw, 0, len(raw) - 2))
                out.append(got)
            except GuardTriggered as hit:
                out.append(self._rejected(hit.detector))
            if self.stopped:
                break
        return b"".join(out)

    def _chunk_text(self, chunk: bytes) -> bytes | None:
        """`_openai_text` of a chunk that is the last such event's bytes around another text
        literal: `data: `, the data before the text, the literal, the data after it and a
        blank line. The frame holds no line end (`OPENAI_TEXT` admits none) and neither
        does a literal, so the chunk is one whole event; and as the literal is cut at ASCII
        quotes, decoding it alone gives what decoding the whole chunk would. None when the
        chunk is not such an event (nothing has changed then)."""
        if self._bframe is None:
            return None
        head, tail, pre, post, piece = self._bframe
        if not (chunk.startswith(head) and chunk.endswith(tail)):
            return None
        literal = chunk[len(head):len(chunk) - len(tail)]
        if TEXT_LITERAL_BYTES.fullmatch(literal) is None:
            return None
        if literal == b'""':
            self._current = (chunk, None)   # (a refusal next repeats its head)
            return chunk
        return self._literal(chunk, chunk, None, pre, literal.decode("utf-8", "replace"),
                             post, piece)

    def _chain(self, key: Piece) -> Chain:
        chain = self.chains.get(key)
        if chain is None:
            if unasked(key, self.choices):
                raise GuardTriggered(UNASKED)
            if len(self.chains) >= MAX_OPEN_PIECES:
                raise GuardTriggered(TOO_MANY_PIECES)
            chain = self.chains[key] = json_chain(self.make()) if key[1] in JSON_PIECES \
                else JoinedChain(self.make) if key[1] in self.joins \
                else MaskerChain(self.make())
        return chain

    # --- one event ------------------------------------------------------------------------
    def _event(self, ev: Event) -> bytes:
        ev = plain(ev)   # (only what a client reads of it goes out)
        if not ev.has_data:
            return ev.raw
        if ev.event is not None:
            self._check_name(ev.event)
        data = ev.data
        if self.skim:
            out = self._openai_text(ev.raw, data, ev.event)
            if out is not None:
                return out
        return self._parsed(ev.raw, data, ev.event)

    def _parsed(self, raw: bytes, data: str, event: str | None) -> bytes:
        """`_event` of an event with data (`raw`: its bytes) that the fast path left: its
        data parsed, its texts masked, re-encoded only if they changed."""
        if data.strip() == "[DONE]":
            out = self._end() + raw
            self.closed.end_all()
            return out
        doc = self._parse(data)
        if doc is None:
            return self._rejected(UNREADABLE)
        self._current = (data, event)
        read = event_texts(self.adapter, doc, event)
        if read is None:
            return self._rejected(UNREADABLE)
        texts, side = read
        texts.slots.extend(TextSlot(SIDE_PIECE, holder, key, whole=True)  # an error's
                           for holder, key in side)                       # message...
        if texts.unread:     # an image, audio: refused unless every guard lets it pass
            media(texts.unread, self.allow_unread)
        held, pre = self.held_blocks, b""
        if held is not None and not held.continues(doc, texts, self.chains):
            self.held_blocks = None   # (the blocks after are read apart)
            pre = held.release(self.chains, self.last, self._rest_event)
        out = self._masked(raw, doc, texts, event)
        held = self.held_blocks   # (its output held while a boundary after a block waits)
        if held is None:
            return pre + out
        out = held.send(out, self._rest_event)
        if held.live is not None and not held.holding:
            self.held_blocks = None   # its chain reads on as the live block's own
        return pre + out

    def _masked(self, raw: bytes, doc: dict[str, Any], texts: EventTexts,
                event: str | None) -> bytes:
        """`_parsed` of an event read (`doc`, its `texts`)."""
        if not texts.slots and not texts.ends and not texts.ends_all \
                and not texts.ends_pieces:
            return raw
        changed = False
        here: dict[Piece, TextSlot] = {}      # each piece's last slot in this event
        for slot in texts.slots:
            piece, holder, key, whole = slot
            text = holder[key]
            if whole:
                if not isinstance(text, str):
                    # a JSON value (a function call's args): its keys, numbers and strings
                    changed |= rewrite_json_strings(holder, key, "assistant",
                                                    MaskingFn(self._whole_text))
                    continue
                masked = self._whole_name(text) if piece[1] == NAME_PIECE \
                    else self._whole_text("", text)
            else:
                masked = self._text(piece, text)
                here[piece] = slot
            if masked != text:
                try:
                    holder[key] = masked
                except UnreadableEvent:   # a key clients merge by (`FixedKey`): refused
                    raise GuardTriggered(UNREADABLE) from None
                changed = True
        before: list[bytes] = []
        for piece in ended(self.chains, texts):
            last_slot = here.get(piece)   # (compiled, a variable keeps one type)
            if last_slot is None:
                if piece[1] in self.joins and not texts.ends_all:   # read on into the
                    self.held_blocks = HeldBlocks.after(          # next block of its kind
                        self.held_blocks, piece, self.chains, self.last,
                        self.max_event_bytes)
                else:
                    before.append(self._synthetic(piece))
                continue
            self.last.pop(piece, None)
            rest = self._rest(piece)
            if rest:
                last_slot.holder[last_slot.key] += rest
                changed = True
        if texts.ends or texts.ends_all:
            self.closed.note(texts.ends, texts.ends_all)
        body = _encode(_dump(doc, self.google), event, self.terminator) if changed else raw
        return b"".join(before) + body

    def _openai_text(self, raw: bytes, data: str, event: str | None) -> bytes | None:
        """`_event` for the common OpenAI event (see `OPENAI_TEXT`) without parsing it all:
        the raw event when its text goes out unchanged, else the masked text spliced into
        the data. None when the event is not of that kind (nothing has changed then)."""
        frame = self._frame
        if frame is not None and data.startswith(frame[0]) and data.endswith(frame[1]):
            pre, post, piece = frame   # the data around the text as in the last such event
            text = data[len(pre):len(data) - len(post)]
            if TEXT_LITERAL.fullmatch(text) is None:
                return None
        else:
            m = OPENAI_TEXT.fullmatch(data)
            if m is None:
                return None
            pre, text, post = data[:m.start(2)], m.group(2), data[m.end(2):]
            keys = [k for k, colon in STRINGS.findall(pre + post) if colon]
            if len(set(keys)) < len(keys):
                return None   # a key twice: json.loads keeps one
            piece = (int(m.group(1)), "content", 0)
            self._frame = (pre, post, piece)
            try:   # as the chunk of a next such event starts and ends (`_chunk_text`)
                self._bframe = (b"data: " + pre.encode(), post.encode() + b"\n\n", pre, post,
                                piece)
            except UnicodeEncodeError:
                self._bframe = None
        if text == '""':
            self._current = (data, event)   # (a refusal next repeats its head)
            return raw
        return self._literal(raw, data, event, pre, text, post, piece)

    def _literal(self, raw: bytes, data: str | bytes, event: str | None, pre: str,
                 literal: str, post: str, piece: Piece) -> bytes:
        """The event `raw` (data: `pre`, a JSON text literal, `post`) with the literal's text
        run through the piece's chain: `raw` itself when it comes out unchanged, else the
        masked text spliced in (`data` is what `last` keeps of the event)."""
        text = json.loads(literal) if "\\" in literal else literal[1:-1]
        self._current = (data, event)
        masked = self._text(piece, text)
        if masked == text:
            return raw
        out = pre + encode_basestring(masked) + post   # one line: no line end outside strings
        try:
            line = out.encode()
        except UnicodeEncodeError:   # a lone surrogate (from a \ud800 escape): keep it escaped
            out = pre + json.dumps(masked) + post
            line = out.encode()
        if event is None:
            return b"data: " + line + self.terminator
        return encode(out, event=event, terminator=self.terminator)

    def _whole_text(self, _role: str, text: str) -> str:
        """A text no later event continues, through a chain of its own."""
        return self._mask_name(text)

    def _whole_name(self, name: str) -> str:
        """A call's name (whole), as and through `names.mask_name`."""
        return mask_name(name, lambda reading: self._whole_text("", reading))

    def _text(self, key: Piece, text: str) -> str:
        if self.closed.some:   # (every chunk comes here: no call until something ended)
            self.closed.check(key)
        self.last[key] = self._current
        out = self._chain(key).feed(text)
        held = self.held_blocks
        return out if held is None or key != held.live else held.route(text, out)

    def _rest(self, key: Piece) -> str:
        chain = self.chains.pop(key, None)
        return chain.finish() if chain is not None else ""

    # --- what is still held when a piece ends ---------------------------------------------
    def _synthetic(self, key: Piece) -> bytes:
        """The adapter's rest event, made from the piece's last text event, carrying what is
        still held of the piece."""
        rest = self._rest(key)
        last = self.last.pop(key, None)
        if not rest or last is None:
            return b""
        return self._rest_event(key, rest, last)

    def _rest_event(self, key: Piece, rest: str, last: tuple[str | bytes, str | None]) -> bytes:
        """The adapter's rest event of `key` carrying `rest`, made from `last` (its last
        text event)."""
        data, event = last
        if isinstance(data, bytes):   # the chunk `_chunk_text` read: `data: ...` and LF LF
            data = data[6:-2].decode("utf-8", "replace")
        doc = self.adapter.rest_event(json.loads(data), key, rest)
        if event is not None and self.provider == "anthropic":
            event = doc["type"]                # named after its type, as Anthropic does
        return encode(_dump(doc, self.google), event=event, terminator=self.terminator)

    def _end(self) -> bytes:
        held, self.held_blocks = self.held_blocks, None
        out = held.release(self.chains, self.last, self._rest_event) if held else b""
        return out + b"".join(self._synthetic(key) for key in list(self.chains))

    # --- reject ---------------------------------------------------------------------------
    def _head(self) -> dict[str, Any]:
        """`stream_head` of the event being read (or the last one read with text)."""
        data = self._current[0]
        if isinstance(data, bytes):   # the chunk `_chunk_text` read: `data: ...` and LF LF
            data = data[6:-2].decode("utf-8", "replace")
        try:
            return stream_head(json.loads(data)) if data else {}
        except (ValueError, RecursionError):
            return {}

    def _rejected(self, detector: str) -> bytes:
        self.stopped = True
        self.held_blocks = None   # (what it held is never sent)
        if self.on_reject is not None:
            self.on_reject(detector)
        return stop_events(self.provider, refusal_message(detector), self._head())
