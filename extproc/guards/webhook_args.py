"""The decoded reading of streamed tool-call arguments that go on to a webhook guard as their
JSON source (`webhook_stream`: arguments longer than its hold), so an escape
(``john.doe\\u0040example.com``) hides nothing from the webhook.

One decoder per piece (`codecs.jsontext.JsonTextMasker` over a token masker that masks
nothing and keeps what it is fed), fed the source as it comes: an escape or a surrogate pair
split between two pieces of source is read whole, each token (a string's content, a run
outside strings) ended by a space. The reading of a piece that has shown an escape goes to
the webhook beside its source, as a text it may refuse for but not mask (the source it stands
for is already streaming on); a piece with no escape reads the same as its source, so nothing
more is sent for it."""

from __future__ import annotations

from collections.abc import Hashable

from ..codecs.jsontext import JsonTextMasker
from .webhook import CONTEXT_CHARS


class _Kept:
    """The token masker of a `JsonTextMasker` that masks nothing and keeps what it is fed:
    the decoded tokens of JSON source, each ended by a space."""

    held = 0

    def __init__(self) -> None:
        self.parts: list[str] = []

    def feed(self, text: str) -> str:
        self.parts.append(text)
        return text

    def end(self) -> str:
        self.parts.append(" ")
        return ""

    def take(self) -> str:
        out = "".join(self.parts)
        self.parts.clear()
        return out


class ArgumentReadings:
    """The decoded readings of the argument pieces streaming on as source, by piece key."""

    def __init__(self) -> None:
        self.decoders: dict[Hashable, tuple[JsonTextMasker, _Kept]] = {}
        self.read: dict[Hashable, list[str]] = {}       # read since the last segment
        self.context: dict[Hashable, str] = {}          # the tail of what was read before
        self.escaped: set[Hashable] = set()             # pieces that have shown an escape

    def __contains__(self, key: Hashable) -> bool:
        return key in self.decoders

    def feed(self, key: Hashable, raw: str) -> str:
        """More source of the piece: the reading it gives now."""
        if "\\" in raw:
            self.escaped.add(key)
        pair = self.decoders.get(key)
        if pair is None:
            pair = self.decoders[key] = (JsonTextMasker(kept := _Kept()), kept)
        pair[0].feed(raw)
        got = pair[1].take()
        self.read.setdefault(key, []).append(got)
        return got

    def tail(self, key: Hashable) -> str:
        """What was read of the piece since the last segment (where a word ends)."""
        return "".join(self.read.get(key, ()))

    def segment(self, key: Hashable, ended: bool) -> str | None:
        """The piece's reading for the segment checked now (with what the decoder still
        holds when the piece or the stream `ended`), None if the piece has shown no escape
        or it reads as nothing. `context` keeps the tail of every reading."""
        if ended and key in self.decoders:
            masker, kept = self.decoders.pop(key)
            masker.finish()
            self.read.setdefault(key, []).append(kept.take())
        text = "".join(self.read.pop(key, ()))
        self.context[key] = (self.context.get(key, "") + text)[-CONTEXT_CHARS:]
        return text if key in self.escaped and text.strip() else None
