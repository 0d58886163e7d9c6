"""Adjacent content blocks of one kind masked as one text in a stream (sans-IO).

Anthropic streams a message's text as content blocks (a new one where a citation starts or
ends, around a server tool's use), and a client reads adjacent text blocks as one text: the
SDK's `get_final_text()` joins them, a chat UI prints them one after the other. Masked each
on its own, a value split exactly at a block's end went out in clear (its first half let go
at the block's stop, before its second half arrived). So a block is read on its own, then by
maskers that read on into the next block of the same kind (`Adapter.stream_joins`: text,
thinking) with a boundary marked between the two (`chains.JoinedChain`, `MaskerChain.mark`),
as a whole reply's texts are read, each on its own and then joined (`joined`; a key glued to
the next block's first word is no key joined): each block keeps its own characters, a
value's placeholder goes in the block where the value starts, the rest of the value is taken
out of the blocks after, and a block that lay wholly inside a value holds the default
placeholder rather than nothing (a provider refuses an empty text block sent back as
history).

What the chain still held at a block's stop belongs to that block until the chain releases
past the boundary, which needs the next block's first characters. So while a boundary is
pending, the block's stop and every event after it are held (`HeldBlocks.items`), the text
the chain releases for the block goes into a rest event put before its stop (`Rest`), and
all of it goes out, in order, once the boundary is placed. A boundary is placed at the
latest when the chain's held text is released: within a match's length of the next block's
text, or at once when an event that is not that block's start, text or citation arrives
(another kind of block, the message's end, an error; the chain is finished there, the
blocks after read apart). A ping goes out at once meanwhile (a keep-alive held is none), and
events held past `HELD_EVENT_SIZES` times the route's `streams.max_event_bytes` end the
stream refused (`HELD_TOO_MUCH`; found by review: an upstream that padded every event of the
next block held gigabytes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..providers.slots import EventTexts, Piece, TextSlot
from .chains import Chain, JoinedChain
from .event_stream import HELD_TOO_MUCH, UNREADABLE
from .stream import GuardTriggered
from .webhook import DEFAULT_PLACEHOLDER

#: the most bytes of events held while a boundary is pending: `HELD_EVENT_SIZES` times
#: `streams.max_event_bytes`, and never less than `HELD_FLOOR` (the next block's text to
#: place a private key's boundary, one character per delta, is about 1 MB of events: found
#: by review, a route with a small `max_event_bytes` refused such a stream)
HELD_EVENT_SIZES = 4
HELD_FLOOR = 4 << 20


class Rest:
    """A block whose stop is held: its piece, its last text event (what its rest event is
    made from), the text the chain released for it after its stop, and whether nothing of
    its text has gone out (`empty`: it then holds the default placeholder)."""

    __slots__ = ("empty", "last", "piece", "text")

    def __init__(self, piece: Piece, last: Any, empty: bool) -> None:
        self.piece = piece
        self.last = last
        self.text = ""
        self.empty = empty


class HeldBlocks:
    """The chain of the blocks of one kind read as one text, from a block's stop until the
    boundaries after it are placed (`pending`), with the events held meanwhile."""

    def __init__(self, field: str, chain: JoinedChain, max_event_bytes: int) -> None:
        self.field = field
        self.chain = chain
        self.max_bytes = max(HELD_EVENT_SIZES * max_event_bytes, HELD_FLOOR)
        self.size = 0           # bytes of the events held
        self.ping = False       # the event read is a ping: it goes out at once
        #: the block the chain reads now (the next block of the kind, once started)
        self.live: Piece | None = None
        self.items: list[bytes | Rest] = []
        #: the held blocks whose boundary the chain has not released past, in order
        self.pending: list[Rest] = []
        self._raw = False       # the live block has text
        self._out = False       # something of it has gone out

    @staticmethod
    def after(held: HeldBlocks | None, piece: Piece, chains: dict[Piece, Chain],
              last: dict[Piece, Any], max_event_bytes: int) -> HeldBlocks:
        """The held blocks once the block `piece` stopped (its chain and last text event
        taken out of `chains` and `last`): `held` when it is that block's, else new."""
        chain = chains.pop(piece)
        assert isinstance(chain, JoinedChain)   # (`stream_joins` pieces get one)
        if held is not None and held.chain is not chain:
            # one block's stop ending texts of two kinds (a delta with both `text` and
            # `thinking`): no provider writes it, and the first one's held events would
            # be lost; refused, as an event the guards cannot read
            raise GuardTriggered(UNREADABLE)
        if held is None:
            held = HeldBlocks(piece[1], chain, max_event_bytes)
        held.stop(piece, last.pop(piece, None))
        return held

    @property
    def weight(self) -> int:
        """What is held here (for `extproc_held_bytes`): the events' bytes, the text
        waiting for its rest events, and the chain's held text while no block reads it."""
        return self.size + sum(len(r.text) for r in self.pending) \
            + (self.chain.held if self.live is None else 0)

    @property
    def holding(self) -> bool:
        return bool(self.pending)

    def stop(self, piece: Piece, last: Any) -> None:
        """The block `piece` (whose chain is `chain`) stopped: what its own maskers still
        held goes through the joined ones, and a boundary after its text."""
        chain = self.chain
        tail = self.route("", chain.end_block())
        empty = self.live is not None and self._raw and not self._out
        self.live = None
        self._raw = self._out = False
        resolved = chain.mark()
        if tail or not resolved:
            rest = Rest(piece, last, empty)
            rest.text = tail
            if not resolved:
                self.pending.append(rest)
            self.items.append(rest)

    def continues(self, doc: dict[str, Any], texts: EventTexts,
                  chains: dict[Piece, Chain]) -> bool:
        """Does the event go on with the held blocks: the next block of the kind starting
        (it becomes `live`, and its chain in `chains` is theirs), text of the live block
        (its citations too, read whole: found by review, a cited block ended the joining),
        its stop, or an event without text or end (a ping)?"""
        kind = doc.get("type")
        self.ping = kind == "ping" and not texts.slots and not texts.ends
        goes_on = self._goes_on(kind, doc, texts, chains)
        if not goes_on and self.live is not None and self.pending and not texts.ends_all:
            # something inside the next block that no provider sends there (another block,
            # text of another kind): read apart, a value split at the boundary would go out
            # in clear (found by review); refused as an event the guards cannot read
            raise GuardTriggered(UNREADABLE)
        return goes_on

    def _goes_on(self, kind: Any, doc: dict[str, Any], texts: EventTexts,
                 chains: dict[Piece, Chain]) -> bool:
        if texts.ends_all or texts.unread or texts.ends_pieces:
            return False
        if kind == "content_block_start":
            block = doc.get("content_block")
            if self.live is not None or not isinstance(block, dict) \
                    or block.get("type") != self.field:
                return False
            index = doc.get("index")
            if type(index) is not int:
                return False
            live = self.live = (index, self.field, 0)
            chains[live] = self.chain
            return all(_of(slot, live) for slot in texts.slots)
        if not texts.slots and not texts.ends:
            return True
        live = self.live
        return live is not None and all(_of(slot, live) for slot in texts.slots) \
            and all(end == live[0] for end in texts.ends)

    def route(self, text: str, released: str) -> str:
        """What the live block's `text` released (`released`, from `chain.feed`): the part
        before each boundary placed by it goes to that held block, the rest out with the
        live block's event (nothing while a boundary is still pending)."""
        if text:
            self._raw = True
        prev = 0
        for cut in self.chain.take_cuts():
            self.pending.pop(0).text += released[prev:cut]
            prev = cut
        if self.pending:
            self.pending[0].text += released[prev:]
            return ""
        out = released[prev:]
        if out:
            self._out = True
        return out

    def send(self, out: bytes, rest_event: RestEvent) -> bytes:
        """An event's output `out`: held (nothing sent) while a boundary is pending, else
        sent after the events held so far."""
        if self.pending and not self.ping:
            self.items.append(out)
            self.size += len(out)
            if self.size > self.max_bytes:
                raise GuardTriggered(HELD_TOO_MUCH)
            return b""
        if self.pending:
            return out
        items, self.items, self.size = self.items, [], 0
        return render(items, rest_event) + out

    def release(self, chains: dict[Piece, Chain], last: dict[Piece, Any],
                rest_event: RestEvent) -> bytes:
        """Finish the chain (the blocks after are read apart): every pending boundary is
        placed, the held events go out with their rest events, and what the chain released
        after the last boundary goes in a rest event of the live block (whose chain and
        last event are taken out of `chains` and `last`)."""
        released = self.chain.finish()
        tail = self.route("", released) if self.pending or released else ""
        out = render(self.items, rest_event)
        self.items = []
        if not tail and self._raw and not self._out:   # (found by review: left empty)
            tail = DEFAULT_PLACEHOLDER
        if self.live is not None:
            chains.pop(self.live, None)
            its_last = last.pop(self.live, None)
            if tail and its_last is not None:
                out += rest_event(self.live, tail, its_last)
        return out


def _of(slot: TextSlot, live: Piece) -> bool:
    """Is `slot` of the live block: its text, or a string of it read whole (a citation)?"""
    return slot.piece == live or (slot.whole and slot.piece[0] == live[0])


#: makes a piece's rest event (`SSEMaskingReframer._rest_event`): piece, text, last event
RestEvent = Callable[[Piece, str, Any], bytes]


def render(items: list[bytes | Rest], rest_event: RestEvent) -> bytes:
    """The held events in order, each held block's rest event (`rest_event(piece, text,
    last)`) before its stop."""
    out: list[bytes] = []
    for item in items:
        if isinstance(item, Rest):
            text = item.text or (DEFAULT_PLACEHOLDER if item.empty else "")
            if text and item.last is not None:
                out.append(rest_event(item.piece, text, item.last))
        else:
            out.append(item)
    return b"".join(out)
