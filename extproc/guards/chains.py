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

    def end(self) -> str:
        """End one text and start afresh on the next (a token of JSON source text)."""
        out = ""
        for m in self.maskers:
            out = (m.feed(out) if out else "") + m.end()
        return out

    @property
    def held(self) -> int:
        return sum(m.held for m in self.maskers)


Chain = MaskerChain | JsonTextMasker


def json_chain(maskers: list[StreamMasker]) -> JsonTextMasker:
    """The chain of a piece of JSON source text (tool-call arguments)."""
    return JsonTextMasker(MaskerChain(maskers))
