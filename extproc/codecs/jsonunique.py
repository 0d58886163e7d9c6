"""JSON read the one way every parser agrees on as to keys: an object that repeats a key is
refused (`RepeatedKey`), since parsers differ on which copy they keep (Python's and
JavaScript's the last, several Go and C++ readers the first). A guard that read one copy
while the other went out in the raw bytes would let a value past it. Sans-IO.

`loads` is `json.loads` with that rule; `unique_pairs` is the hook for a decoder of one's own
(`reading`'s, which adds the request's other rules)."""

from __future__ import annotations

import json
from typing import Any


class RepeatedKey(ValueError):
    """An object repeats the key `name`."""

    def __init__(self, name: str) -> None:
        super().__init__(f"the key {name!r} is repeated")
        self.name = name


def unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`object_pairs_hook` that refuses a repeated key."""
    doc = dict(pairs)
    if len(doc) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise RepeatedKey(key)
            seen.add(key)
    return doc


_DECODER = json.JSONDecoder(object_pairs_hook=unique_pairs)


def loads(text: str | bytes) -> Any:
    """`text` as JSON (`ValueError`, `RepeatedKey` among them, when it is not, or repeats a
    key in an object)."""
    if isinstance(text, bytes):   # as json.loads decodes bytes (a UTF-8 BOM, UTF-16, 32)
        text = text.decode(json.detect_encoding(text), "surrogatepass")
    elif text.startswith("\ufeff"):
        raise ValueError("a byte order mark before JSON")   # as json.loads refuses it
    return _DECODER.decode(text)
