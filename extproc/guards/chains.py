"""A piece's chain of streaming maskers, as the stream guards' reframers keep one per piece
of a reply (a choice's content, a tool call's arguments, a content block): the route's
maskers applied in order, reject guards first, then mask guards; for JSON source text
(tool-call arguments) the chain inside a `JsonTextMasker`, which reads it token by token.
Sans-IO."""

from __future__ import annotations

from collections.abc import Callable

from ..codecs.jsontext import JsonTextMasker
from .stream import StreamMasker

#: makes the maskers of one new chain (one per guard of the route)
MaskerFactory = Callable[[], list[StreamMasker]]


class MaskerChain:
    """Maskers applied in order (reject guards first, then mask guards).

    Two texts a client reads joined (adjacent content blocks) go through one chain, with a
    boundary between them (`mark`): each masker finds where the boundary falls in what it
    releases (`StreamMasker.mark`) and marks the next masker's text there, so `cuts` tells
    where it falls in the chain's output, a match begun before it falling before it whole."""

    def __init__(self, maskers: list[StreamMasker]) -> None:
        self.maskers = maskers
        #: boundaries marked and not yet released past by the last masker
        self.pending = 0
        #: where the boundaries released by the last `feed` or `finish` fell in its output
        self.cuts: list[int] = []

    def feed(self, text: str) -> str:
        if self.pending:
            return self._through(text, False)
        for m in self.maskers:
            text = m.feed(text) if text else ""
        return text

    def finish(self) -> str:
        if self.pending:
            return self._through("", True)
        out = ""
        for m in self.maskers:
            out = (m.feed(out) if out else "") + m.finish()
        return out

    def mark(self) -> bool:
        """A boundary at the end of the text so far; True when nothing is held (it lies
        after everything released), else a later `feed` or `finish` puts it in `cuts`."""
        for m in self.maskers:   # a masker holding nothing passes it on to the next
            if not m.mark():
                self.pending += 1
                return False
        return True

    def _through(self, text: str, finish: bool) -> str:
        """`feed` (or `finish`) with boundaries pending: each masker is fed its text cut at
        the boundaries the masker before it released, marked there."""
        cuts: list[int] = []
        for m in self.maskers:
            parts: list[str] = []
            found: list[int] = []
            n = prev = 0
            for p in [*cuts, -1]:
                piece = text[prev:] if p < 0 else text[prev:p]
                if piece:
                    out = m.feed(piece)
                    found += [n + x for x in m.take_cuts()]
                    parts.append(out)
                    n += len(out)
                if p >= 0:
                    if m.mark():
                        found.append(n)
                    prev = p
            if finish:
                out = m.finish()
                found += [n + x for x in m.take_cuts()]
                parts.append(out)
            text, cuts = "".join(parts), found
        self.pending -= len(cuts)
        self.cuts = cuts
        return text

    def end(self) -> str:
        """End one text and start afresh on the next (a token of JSON source text)."""
        out = ""
        for m in self.maskers:
            out = (m.feed(out) if out else "") + m.end()
        return out

    @property
    def held(self) -> int:
        return sum(m.held for m in self.maskers)

    def take_cuts(self) -> list[int]:
        """`cuts`, forgotten."""
        cuts, self.cuts = self.cuts, []
        return cuts


class JoinedChain:
    """The chain of a content block that a client reads joined with the next of its kind
    (`block_join`): the block's own maskers, as any piece has, then maskers that read on
    across the blocks, with a boundary marked at each block's end. A value is caught as in
    a whole reply: in each block on its own (a key glued to the next block's first word is
    no key joined), and in the blocks joined (a value split between them)."""

    def __init__(self, make: MaskerFactory) -> None:
        self.make = make
        self.block = MaskerChain(make())
        self.joined = MaskerChain(make())

    def feed(self, text: str) -> str:
        out = self.block.feed(text)
        return self.joined.feed(out) if out else ""

    def end_block(self) -> str:
        """The block ended: what its own maskers still held, through the joined ones (the
        boundaries it passes in `take_cuts`); the next block gets maskers of its own."""
        out = self.block.finish()
        self.block = MaskerChain(self.make())
        return self.joined.feed(out) if out else ""

    def mark(self) -> bool:
        return self.joined.mark()

    def finish(self) -> str:
        out = self.end_block()
        cuts = self.joined.take_cuts()
        rest = self.joined.finish()
        self.joined.cuts = cuts + [len(out) + x for x in self.joined.take_cuts()]
        return out + rest

    def take_cuts(self) -> list[int]:
        return self.joined.take_cuts()

    @property
    def held(self) -> int:
        return self.block.held + self.joined.held


Chain = MaskerChain | JsonTextMasker | JoinedChain


def json_chain(maskers: list[StreamMasker]) -> JsonTextMasker:
    """The chain of a piece of JSON source text (tool-call arguments)."""
    return JsonTextMasker(MaskerChain(maskers))
