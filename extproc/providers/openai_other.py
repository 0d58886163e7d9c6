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

Each object key is read whole and may not change: a client merges by key, so a key a guard
would mask makes the event unreadable (`FixedKey`; masked, it would split what the client
joins, and the rest event would repeat it as it came: found by review). Read whole, each on
its own (the SDK never joins them): each number (its JSON text; the SDK adds two numbers at
one path, which no guard reads: a known limit), the value of an ``index`` or ``type`` key
(the SDK replaces those), the strings of a list of strings (the SDK extends it) and an entry
of a list without an ``index`` (the SDK refuses such a delta).
Tool-call arguments sent as an object instead of JSON source (not what OpenAI sends) are
read the same way, at their path in the call.
"""

from __future__ import annotations

import json
from typing import Any

from extproc.providers.slots import EventTexts, FixedKey, TextSlot, index_value

#: a piece key of an unknown field's string: this, then the JSON of its path
OTHER = "other:"
Path = list[str | int]
#: keys whose value the SDK replaces instead of joining
_REPLACED = ("index", "type")


def other_slots(out: EventTexts, index: int, holder: dict[str, Any], key: str,
                skip: frozenset[str], base: Path | None = None) -> None:
    """Add the texts of ``holder[key]`` (a field this code does not model, at `base` within
    the delta: the delta itself when None) to `out`; keys in `skip` (ids, types,
    signatures) hold no text. Strings are pieces of their path; the rest is read whole."""
    found: list[TextSlot] = []
    path0: Path = [*(base or ()), key]
    if base is None:   # the field's own name, as a client merges it
        found.append(TextSlot((index, OTHER + json.dumps(path0), 0), FixedKey(key), None,
                              whole=True))
    stack: list[tuple[Any, Any, Path]] = [(holder, key, path0)]
    while stack:
        parent, slot, path = stack.pop()
        value = parent[slot]
        piece = (index, OTHER + json.dumps(path), 0)
        if isinstance(value, str):
            if value:
                found.append(TextSlot(piece, parent, slot))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            found.append(TextSlot(piece, parent, slot, whole=True))
        elif isinstance(value, dict):
            children: list[tuple[Any, Any, Path]] = []
            for name in value:
                found.append(TextSlot(piece, FixedKey(name), None, whole=True))
                if name in skip:
                    continue
                if name in _REPLACED:   # replaced by the SDK, not joined: whole, alone
                    if not (name == "index" and isinstance(value[name], int)) \
                            and _holds_text(value[name]):
                        found.append(TextSlot(piece, value, name, whole=True))
                    continue
                children.append((value, name, [*path, name]))
            stack.extend(reversed(children))
        elif isinstance(value, list):
            entries: list[tuple[Any, Any, Path]] = []
            for i, item in enumerate(value):
                at = item.get("index") if isinstance(item, dict) else None
                if at is not None:   # merged by the SDK into the entry at that position
                    entries.append((value, i, [*path, index_value(at)]))
                elif _holds_text(item):
                    # extended by the SDK, never joined (or a list it cannot merge)
                    found.append(TextSlot(piece, value, i, whole=True))
            stack.extend(reversed(entries))
    out.slots += found


def _holds_text(value: Any) -> bool:
    """Whether a value read whole has text a guard could find: a string, a number (its JSON
    text), a container with anything in it; not a null, a boolean or an empty one (a null
    `type` in an object of arguments was a slot of no text, found by a property test)."""
    return (isinstance(value, str | dict | list) and bool(value)) or (
        isinstance(value, int | float) and not isinstance(value, bool))


def rest_delta(key: str, text: str) -> dict[str, Any]:
    """The delta that carries `text` at the path of the piece key `key` (`OTHER` + path)."""
    path: Path = json.loads(key[len(OTHER):])
    value: Any = text
    for step in reversed(path):
        value = [{"index": step, **value}] if isinstance(step, int) else {step: value}
    assert isinstance(value, dict)
    return value
