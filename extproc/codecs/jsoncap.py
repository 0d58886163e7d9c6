"""How much JSON source one body may hand the guards: tool-call arguments and JSON values are
read token by token in Python (`jsontext`): each string, object and array a few steps, the
runs between them one each. So a body's `JsonSource`s together hold at most
`MAX_SOURCE_TOKENS` strings, objects and arrays (counted as the reader reads them: a
backslash outside a string escapes what follows, so `\\"` there starts no string). Past it
a request is refused 413 and a reply 502 (`policy.sources_too_large`). The unified front,
which parses such texts with a Python step per number (`translate.exact_json`), counts
numbers too. Sans-IO; the quotes and brackets are counted in C first, and the texts are
read exactly only when that count says there may be too many."""

from __future__ import annotations

import re
from collections.abc import Iterable

from .jsontext import JsonSource

#: the most JSON strings, objects and arrays one body's JSON source texts are read with (as
#: many as the containers of a request body outside its strings: `reading.MAX_CONTAINERS`);
#: each costs the token walk Python steps (found by review: 6 MB of `{},` in one tool call's
#: arguments held the event loop about 5 s; then twenty calls each under a per-text cap 7 s,
#: and 1.35 M strings in one array, no container among them, 5 s)
MAX_SOURCE_TOKENS = 1 << 17
#: a string (its closing quote captured), or an escape outside strings: replaced by `\1`, a
#: string leaves one quote and an escape nothing
_STRING_OR_ESCAPE = re.compile(r'"(?:[^"\\]|\\.)*(")|\\.', re.DOTALL)
_DIGITS = re.compile(r"[0-9]+")


class SourceTooLarge(ValueError):
    """JSON source texts hold more than `MAX_SOURCE_TOKENS` strings, objects and arrays."""


def checked_source(text: str) -> JsonSource:
    """`text` as a `JsonSource`; `SourceTooLarge` when it alone holds more than
    `MAX_SOURCE_TOKENS` strings, objects and arrays."""
    check_sources((JsonSource(text),))
    return JsonSource(text)


def check_sources(texts: Iterable[str], numbers: bool = False) -> None:
    """`SourceTooLarge` when the `JsonSource`s among `texts` (one body's tool-call arguments
    and JSON values) hold more than `MAX_SOURCE_TOKENS` strings, objects and arrays
    together (with `numbers`, numbers too): the cap is the body's, not each text's."""
    sources = [t for t in texts if isinstance(t, JsonSource)]
    if sum(_at_most(t, numbers) for t in sources) <= MAX_SOURCE_TOKENS:
        return
    total = 0
    for t in sources:
        total += tokens(t, numbers)
        if total > MAX_SOURCE_TOKENS:
            raise SourceTooLarge(f"more than {MAX_SOURCE_TOKENS} JSON strings, objects and "
                                 "arrays")


def tokens(text: str, numbers: bool = False) -> int:
    """The strings, objects and arrays of JSON source `text` as the token reader finds them
    (with `numbers`, its numbers too: each run of digits outside strings)."""
    bare = _STRING_OR_ESCAPE.sub(r"\1", text)
    n = bare.count('"') + bare.count("{") + bare.count("[")
    if numbers:
        n += _DIGITS.subn("", bare)[1]
    return n


def _at_most(text: str, numbers: bool) -> int:
    """At least `tokens(text, numbers)`, counted in C: every quote, bracket (and digit)."""
    n = text.count('"') + text.count("{") + text.count("[")
    if numbers:
        n += sum(text.count(d) for d in "0123456789")
    return n
