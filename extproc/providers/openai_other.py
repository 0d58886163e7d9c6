"""The texts of a chat stream delta's fields this code does not model (OpenRouter's
``reasoning_details``, a field newer than this code), read as the openai SDK joins them.

The SDK's stream helper (``ChatCompletionStreamState``, behind ``client.chat.completions
.stream`` and ``get_final_completion``) merges each delta into what it holds: a string is
appended to the string at the same path, an object merged key by key, and a list of objects
merged entry by entry by each entry's ``index`` (found by review: an address in
``reasoning_details[].text`` split over two events went out unmasked while each event's
strings were read whole, each on its own). `other_slots` makes each string of such a field a
piece of its own path, ``(choice, OTHER + path, 0)``, which the stream guards read as they
read ``content``: continued across events, held while a match may go on, ended with the
choice. A path is the field's key, then each object key and, for an entry of a list of
objects, the entry's ``index`` (an integer in the path). The SDK reads an index as a
position (``-1`` the last entry, ``true`` the second), so an index that is no non-negative
integer makes the event unreadable (`BadIndex`, as a choice's). `rest_delta` builds the
delta that carries a piece's held rest at its path.

Read whole, each on its own (the SDK never joins them): each object key (renamed if
masked), each number (its JSON text), the value of an ``index`` or ``type`` key (the SDK
replaces those), the strings of a list of strings (the SDK extends it) and an entry of a
list without an ``index`` (the SDK refuses such a delta), and an object of
more than `MAX_KEYS` keys with everything in it (so renaming masked keys stays one pass),
and a value under a key that is no field name as providers spell them (letters, digits and
`_`): a rest event would repeat that key as it came.
Tool-call arguments sent as an object instead of JSON source (not what OpenAI sends) are
read the same way, at their path in the call.
"""

from __future__ import annotations

import json
import re
from typing import Any

from extproc.providers.slots import EventTexts, TextSlot, index_value
from extproc.providers.value_refs import EntryRef, KeyRef, ObjectKeys

#: a piece key of an unknown field's string: this, then the JSON of its path
OTHER = "other:"
#: an object of more keys than this is read whole (its keys renamed in one pass)
MAX_KEYS = 64
Path = list[str | int]
#: keys whose value the SDK replaces instead of joining
_REPLACED = ("index", "type")
#: a key as providers spell their fields: a path of such keys only is a piece (the rest
#: event repeats its keys); under any other key a value is read whole
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def other_slots(out: EventTexts, index: int, holder: dict[str, Any], key: str,
                skip: frozenset[str], base: Path | None = None) -> None:
    """Add the texts of ``holder[key]`` (a field this code does not model, at `base` within
    the delta: the delta itself when None) to `out`; keys in `skip` (ids, types,
    signatures) hold no text. Strings are pieces of their path; the rest is read whole."""
    found: list[TextSlot] = []
    at = list(holder).index(key)
    top = EntryRef(holder, at)
    if _NAME.fullmatch(key) is None:   # no field's name: it and its value whole, alone
        piece = (index, OTHER + json.dumps([*(base or ()), key]), 0)
        out.slots += [TextSlot(piece, top, None, whole=True),
                      TextSlot(piece, KeyRef(holder, at), None, whole=True)]
        return
    stack: list[tuple[Any, Path]] = [(top, [*(base or ()), key])]
    while stack:
        ref, path = stack.pop()
        value = ref[None]
        piece = (index, OTHER + json.dumps(path), 0)
        if isinstance(value, str):
            if value:
                found.append(TextSlot(piece, ref, None))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            found.append(TextSlot(piece, ref, None, whole=True))
        elif isinstance(value, dict):
            if len(value) > MAX_KEYS:
                found.append(TextSlot(piece, ref, None, whole=True))
                continue
            keys = ObjectKeys(value)
            children: list[tuple[Any, Path]] = []
            for at, name in enumerate(list(keys.names)):
                found.append(TextSlot(piece, KeyRef(keys, at), None, whole=True))
                if name in skip:
                    continue
                child = EntryRef(keys, at)
                if name in _REPLACED or _NAME.fullmatch(name) is None:
                    # replaced by the SDK, not joined; or under a key no provider spells
                    # (a rest event would repeat the key as it came, masked or not): whole,
                    # alone
                    if not (name == "index" and isinstance(child[None], int)):
                        found.append(TextSlot(piece, child, None, whole=True))
                    continue
                children.append((child, [*path, name]))
            stack.extend(reversed(children))
        elif isinstance(value, list):
            entries: list[tuple[Any, Path]] = []
            for i, item in enumerate(value):
                at = item.get("index") if isinstance(item, dict) else None
                if at is not None:   # merged by the SDK into the entry at that position
                    entries.append((_Entry(value, i), [*path, index_value(at)]))
                elif (isinstance(item, str | dict | list) and item) or (
                        isinstance(item, int | float) and not isinstance(item, bool)):
                    # extended by the SDK, never joined (or a list it cannot merge)
                    found.append(TextSlot(piece, value, i, whole=True))
            stack.extend(reversed(entries))
    out.slots += found


class _Entry:
    """An entry of a list as a slot: ``ref[None]`` reads and writes ``items[i]``."""

    __slots__ = ("i", "items")

    def __init__(self, items: list[Any], i: int) -> None:
        self.items = items
        self.i = i

    def __getitem__(self, _key: None) -> Any:
        return self.items[self.i]

    def __setitem__(self, _key: None, value: Any) -> None:
        self.items[self.i] = value


def rest_delta(key: str, text: str) -> dict[str, Any]:
    """The delta that carries `text` at the path of the piece key `key` (`OTHER` + path)."""
    path: Path = json.loads(key[len(OTHER):])
    value: Any = text
    for step in reversed(path):
        value = [{"index": step, **value}] if isinstance(step, int) else {step: value}
    assert isinstance(value, dict)
    return value
