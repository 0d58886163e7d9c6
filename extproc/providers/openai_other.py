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
the SDK, never joined: its strings, and an entry without an integer ``index`` (the SDK
refuses such a delta), are read whole, each on its own, keys and numbers too. So are numbers
anywhere (as their JSON text). Tool-call arguments sent as an object instead of JSON source
(not what OpenAI sends) are read the same way, at their path in the call.
"""

from __future__ import annotations

import json
from typing import Any

from extproc.providers.slots import EventTexts, TextSlot

#: a piece key of an unknown field's string: this, then the JSON of its path
OTHER = "other:"
Path = list[str | int]


def other_slots(out: EventTexts, index: int, holder: dict[str, Any], key: str,
                skip: frozenset[str], base: Path | None = None) -> None:
    """Add the strings of ``holder[key]`` (a field this code does not model, at `base`
    within the delta: the delta itself when None) to `out`, each a piece of its own path;
    keys in `skip` (ids, types, signatures) hold no text. A number is read whole, as its
    JSON text (the SDK adds two numbers at one path: no client joins their digits)."""
    stack: list[tuple[Any, Any, Path]] = [(holder, key, [*(base or ()), key])]
    found: list[TextSlot] = []
    while stack:
        parent, slot, path = stack.pop()
        value = parent[slot]
        if isinstance(value, str):
            if value:
                found.append(TextSlot((index, OTHER + json.dumps(path), 0), parent, slot))
        elif isinstance(value, int | float) and not isinstance(value, bool):
            found.append(TextSlot((index, OTHER + json.dumps(path), 0), parent, slot,
                                  whole=True))
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
                elif isinstance(entry, str | dict | list):   # joined by no client: each
                    found.append(TextSlot((index, OTHER + json.dumps(path), 0), value, i,
                                          whole=True))   # text whole, on its own
    out.slots += found


def rest_delta(key: str, text: str) -> dict[str, Any]:
    """The delta that carries `text` at the path of the piece key `key` (`OTHER` + path)."""
    path: Path = json.loads(key[len(OTHER):])
    value: Any = text
    for step in reversed(path):
        value = [{"index": step, **value}] if isinstance(step, int) else {step: value}
    assert isinstance(value, dict)
    return value
