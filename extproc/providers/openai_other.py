"""The strings of a chat stream delta's fields this code does not model (OpenRouter's
``reasoning_details``, a field newer than this code), read as the openai SDK joins them.

The SDK's stream helper (``ChatCompletionStreamState``, behind ``client.chat.completions
.stream`` and ``get_final_completion``) merges each delta into what it holds: a string is
appended to the string at the same path, and a list of objects is merged entry by entry by
each entry's ``index``, as tool calls are. So a value split over two events reaches the user
joined (found by review: an address in ``reasoning_details[].text`` split in two went out
unmasked while each event's strings were read whole, each on its own). `other_slots` makes
each string of such a field a piece of its own path, ``(choice, OTHER + path, 0)``, which
the stream guards read as they read ``content``: continued across events, held while a
match may go on, ended with the choice. `rest_delta` builds the delta that carries a piece's
held rest, at its path, for the SDK to append it there.

A path is the field's key, then each object key and, for an entry of a list of objects, the
entry's ``index`` (an integer in the path). A list of strings is extended entry by entry by
the SDK, never joined: its strings, and those of an entry without an integer ``index`` (the
SDK refuses such a delta), are read whole, each on its own.
"""

from __future__ import annotations

import json
from typing import Any

from extproc.providers.slots import EventTexts, TextSlot, string_slots

#: a piece key of an unknown field's string: this, then the JSON of its path
OTHER = "other:"
Path = list[str | int]


def other_slots(out: EventTexts, index: int, delta: dict[str, Any], key: str,
                skip: frozenset[str]) -> None:
    """Add the strings of ``delta[key]`` (a field this code does not model) to `out`, each
    a piece of its own path; keys in `skip` (ids, types, signatures) hold no text."""
    stack: list[tuple[Any, Any, Path]] = [(delta, key, [key])]
    found: list[TextSlot] = []
    while stack:
        holder, slot, path = stack.pop()
        value = holder[slot]
        if isinstance(value, str):
            if value:
                found.append(TextSlot((index, OTHER + json.dumps(path), 0), holder, slot))
        elif isinstance(value, dict):
            stack.extend((value, k, [*path, k]) for k in reversed(list(value))
                         if k not in skip and k != "index")
        elif isinstance(value, list):
            for i in reversed(range(len(value))):
                entry = value[i]
                at = entry.get("index") if isinstance(entry, dict) else None
                if isinstance(at, int) and not isinstance(at, bool) and at >= 0:
                    stack.extend((entry, k, [*path, at, k]) for k in reversed(list(entry))
                                 if k not in skip and k != "index")
                else:   # joined by no client: each string whole, on its own
                    found.extend(TextSlot((index, OTHER + json.dumps(path), 0), h, k,
                                          whole=True)
                                 for h, k in reversed(string_slots(value, i, skip)))
    out.slots += found


def rest_delta(key: str, text: str) -> dict[str, Any]:
    """The delta that carries `text` at the path of the piece key `key` (`OTHER` + path)."""
    path: Path = json.loads(key[len(OTHER):])
    value: Any = text
    for step in reversed(path):
        value = [{"index": step, **value}] if isinstance(step, int) else {step: value}
    assert isinstance(value, dict)
    return value
