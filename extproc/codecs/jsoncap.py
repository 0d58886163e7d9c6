"""How much JSON source one body may hand the guards: tool-call arguments and JSON values are
read token by token in Python (`jsontext`), each object and array a few steps, so a body's
`JsonSource`s together hold at most `MAX_SOURCE_CONTAINERS` of them, as a request body
outside its strings does (`reading.MAX_CONTAINERS`). Past it a request is refused 413 and a
reply 502 (`policy.sources_too_large`). Sans-IO; brackets are counted in C, and the strings
are taken out only when the count says there may be too many."""

from __future__ import annotations

import re
from collections.abc import Iterable

from .jsontext import JsonSource

#: the most JSON objects and arrays a JSON source text is read with (as a request body is:
#: `reading.MAX_CONTAINERS`); each costs the token walk Python steps (found by review:
#: 6 MB of `{},` in one tool call's arguments held the event loop about 5 s)
MAX_SOURCE_CONTAINERS = 1 << 17
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


class SourceTooLarge(ValueError):
    """A JSON source text holds more than `MAX_SOURCE_CONTAINERS` objects and arrays."""


def checked_source(text: str) -> JsonSource:
    """`text` as a `JsonSource`; `SourceTooLarge` when it holds more than
    `MAX_SOURCE_CONTAINERS` objects and arrays outside its strings (brackets are counted
    in C; the strings are taken out only when the count says there may be too many)."""
    if _containers(text, MAX_SOURCE_CONTAINERS) > MAX_SOURCE_CONTAINERS:
        raise SourceTooLarge(f"more than {MAX_SOURCE_CONTAINERS} JSON objects and arrays")
    return JsonSource(text)


def check_sources(texts: Iterable[str]) -> None:
    """`SourceTooLarge` when the `JsonSource`s among `texts` (one body's tool-call arguments
    and JSON values) hold more than `MAX_SOURCE_CONTAINERS` objects and arrays together:
    the cap is the body's, not each text's (found by review: twenty calls each just under
    it held the event loop 7 s while the guards walked them)."""
    sources = [t for t in texts if isinstance(t, JsonSource)]
    if sum(t.count("{") + t.count("[") for t in sources) <= MAX_SOURCE_CONTAINERS:
        return
    total = 0
    for t in sources:
        total += _containers(t, -1)   # (exactly: brackets in strings do not count)
        if total > MAX_SOURCE_CONTAINERS:
            raise SourceTooLarge(f"more than {MAX_SOURCE_CONTAINERS} JSON objects and arrays")


def _containers(text: str, cap: int) -> int:
    """The objects and arrays of JSON source `text` (outside its strings); counted exactly
    only when the brackets alone pass `cap`."""
    n = text.count("{") + text.count("[")
    if n > cap:
        bare = _STRING.sub("", text)
        n = bare.count("{") + bare.count("[")
    return n
