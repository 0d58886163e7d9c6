"""The events a webhook stream guard holds (`webhook_stream`), and what each carries: its text
slots, found by the endpoint's adapter (every text the model writes; a value that arrives
whole, a Gemini function call's args, as each of its keys, numbers and strings), the pieces
it ends, and whether it is unreadable (not the JSON object the guard reads) or carries media
no guard reads; and a webhook's answer about them: where a word still open ends them
(`WordEnds`, kept up to date as they are held), a mask written back into them (`write_masks`)."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..codecs import jsonunique
from ..codecs.sse import Event
from ..providers import Adapter
from ..providers.slots import JSON_PIECES
from ..providers.value_refs import value_slots
from .side_texts import event_texts
from .webhook import Mask, rewrite_source, split_masked


@dataclass
class Held:
    """An event a webhook stream guard holds, with the texts it carries."""

    event: Event
    doc: dict[str, Any] | None = None
    #: (piece key, holder, key) for every text in this event: the text is holder[key], in
    #: `doc`
    slots: list[tuple[Hashable, Any, Any]] = field(default_factory=list)
    #: its data is not the JSON object the guard reads: the stream ends (fail closed)
    unreadable: bool = False
    #: the kind of media no guard reads it carries that the guard does not let pass (an
    #: image, audio: `providers.unread`): the stream ends refused
    media: str | None = None
    #: the pieces it ends (by their first member) and whether it ends them all
    ends: tuple[int, ...] = ()
    ends_all: bool = False
    #: the pieces it ends one by one (a Vertex streamed argument's last piece)
    ends_pieces: tuple[Hashable, ...] = ()


def is_json(key: Hashable) -> bool:
    """A piece whose text is JSON source (tool-call arguments)."""
    return isinstance(key, tuple) and len(key) == 3 and key[1] in JSON_PIECES


def ends_piece(held: Held, key: Hashable) -> bool:
    """True if the event ends the piece `key` (a (choice or block, field, sub) tuple)."""
    return held.ends_all or (isinstance(key, tuple) and key[0] in held.ends) \
        or key in held.ends_pieces


def read_event(adapter: Adapter, ev: Event, whole: Iterator[int],
               allow_unread: frozenset[str]) -> tuple[Held, bool, bool]:
    """The event with its text slots (found by the endpoint's `adapter`; the keys, numbers
    and strings of a value that arrives whole each keyed by the next of `whole`), whether it
    ends a piece, and whether it is [DONE]."""
    held = Held(ev)
    if not ev.has_data:
        return held, False, False
    data = ev.data
    if data.strip() == "[DONE]":
        return held, False, True
    try:   # (a repeated key is unreadable: `codecs.jsonunique`)
        doc = jsonunique.loads(data)
    except (ValueError, RecursionError):
        doc = None
    if not isinstance(doc, dict):
        held.unreadable = True
        return held, False, False
    held.doc = doc
    read = event_texts(adapter, doc, ev.event)
    if read is None:   # tokens listed unasked, an index a client reads as another's
        held.unreadable = True
        return held, False, False
    texts, side = read
    held.media = next((k for k in texts.unread if k not in allow_unread), None)
    for slot in texts.slots:
        if slot.whole:   # a JSON value's keys, numbers and strings, each on its own
            held.slots.extend((next(whole), holder, key)
                              for holder, key in value_slots(slot.holder, slot.key)
                              if holder[key])
        else:
            held.slots.append((slot.piece, slot.holder, slot.key))
    # an error's message, a feedback: a client shows them too (`side_texts`)
    held.slots.extend((next(whole), holder, key) for holder, key in side)
    held.ends, held.ends_all, held.ends_pieces = texts.ends, texts.ends_all, texts.ends_pieces
    return held, bool(texts.ends or texts.ends_pieces) or texts.ends_all, False


class WordEnds:
    """Where a word still open ends the held events, kept up to date as they are held (`add`,
    in order; a new instance for other held events), so a segment's end is found in constant
    time per event, not by reading all that is held again (found by review: text without
    spaces in one-character events made each event cost as much as all those held)."""

    def __init__(self, held: Iterable[Held] = ()) -> None:
        self.count = 0                  # the events held
        self.key: Hashable | None = None   # the one piece their texts are of, while plain
        self.plain = True               # one piece, not JSON, not a whole value (or none)
        self.before = ""                # the last text held
        self.chars = 0                  # the characters held
        #: the index of the last event after a word end, and the characters before it
        self.cut: int | None = None
        self.cut_chars = 0
        for h in held:
            self.add(h)

    def add(self, held: Held) -> None:
        """Note the event `held`, the next one held."""
        self.count += 1
        if not self.plain:              # (nor will it be again: a piece is never unheld)
            return
        for key, _, _ in held.slots:
            if self.key is None:
                self.key = key
                self.plain = isinstance(key, tuple) and not is_json(key)
            elif key != self.key:
                self.plain = False
            if not self.plain:
                return
        texts = [holder[slot] for _, holder, slot in held.slots if holder[slot]]
        if not texts:
            return
        if self.before and (self.before[-1].isspace() or texts[0][0].isspace()):
            self.cut, self.cut_chars = self.count - 1, self.chars
        self.before = texts[-1]
        self.chars += sum(len(t) for t in texts)

    def start(self, least: int) -> int | None:
        """How many of the last held events hold the word still open at the end of their
        text (the events from the last word end with at least `least` characters before it);
        None when there is no such word end, or the held text is not one plain piece
        (several choices' texts interleave, tool-call arguments and whole values have their
        own ends)."""
        if not self.plain or self.key is None or self.cut is None \
                or self.cut_chars < max(least, 1):
            return None
        return self.count - self.cut


def write_masks(held: list[Held], keys: list[Hashable], sent: dict[Hashable, list[int]],
                decoded: set[Hashable], pending: dict[Hashable, list[str]],
                delivered: dict[Hashable, str], by_text: dict[int, list[Mask]]) -> set[int]:
    """Write a mask verdict into the held events: each piece's masked text (`sent`: the
    indexes of the texts it was sent as; `by_text`: the masks per text) goes where its held
    texts were, split at the same places (`split_masked`), or for arguments read as the tool
    reads them (`decoded`), whole in the piece's first event, the others left empty.
    `delivered` is updated to each piece's new text. The ids of the events changed; raises
    `UnreadableEvent` for a text at a key clients merge by (`FixedKey`)."""
    changed: set[int] = set()
    slots = [(h, key, holder, slot) for h in held for key, holder, slot in h.slots]
    for key in keys:
        masks = [by_text.get(i) for i in sent[key]]
        if not any(masks):
            continue
        mine = [(h, holder, slot) for h, k, holder, slot in slots if k == key]
        if key in decoded:     # the masked arguments in the piece's first event
            new = [rewrite_source(delivered[key], masks)] + [""] * (len(mine) - 1)
        else:
            new = split_masked(pending[key], masks[0] or [])
        for (h, holder, slot), text in zip(mine, new, strict=True):
            holder[slot] = text
            changed.add(id(h))
        delivered[key] = "".join(new)
    return changed
