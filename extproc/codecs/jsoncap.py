"""How much JSON source one body may hand the guards: tool-call arguments and JSON values are
read token by token in Python (`jsontext`), one step for every quote, backslash and, outside
strings, bracket, each run between two of them handed to the maskers; and a JSON value's
items (a tool input's numbers, nulls) are walked one by one, one per comma. So the steps of
a body's `JsonSource`s together are bounded: at most `MAX_SOURCE_STEPS` of those characters
and commas (counted in C, inside strings too, so never fewer than the reader takes). Past it a
request is refused 413 and a reply 502 (`policy.sources_too_large`). The unified front,
which parses such texts with a Python step per number (`translate.exact_json`), counts the
runs of digits too. Sans-IO."""

from __future__ import annotations

import re
from collections.abc import Iterable

from .jsontext import JsonSource

#: the most steps one body's JSON source texts are read in, with one guard on the bench
#: machine: about 1 s for strings or brackets (262,144 strings 0.9 s, as many `a]` 0.5 s),
#: 2.5 s for the costliest, half a million numbers in a tool input, each masked as a text
#: of its own: the order of what 8 MiB of prose costs the detectors (docs/security.md). A
#: tool result of 30,000 rows of two string fields (1.1 MB, 360,000 steps) fits. Found by
#: review, each a way past the cap before it: 6 MB of `{},` in one tool call's arguments held
#: the event loop 5 s; twenty calls each under a per-text cap 7 s; 1.35 M strings in one
#: array 5 s; 2 MB of `a]` 3.3 s; 4 M numbers in a tool input 18 s
MAX_SOURCE_STEPS = 1 << 19
_STEP_CHARS = ('"', "\\", "{", "}", "[", "]", ",")
_STEP_BYTES = tuple(c.encode() for c in _STEP_CHARS)
_DIGITS = re.compile(r"[0-9]+")


class SourceTooLarge(ValueError):
    """JSON source texts would take the guards more than `MAX_SOURCE_STEPS` steps."""


def checked_source(text: str) -> JsonSource:
    """`text` as a `JsonSource`; `SourceTooLarge` when it alone takes more than
    `MAX_SOURCE_STEPS` steps to read."""
    source = JsonSource(text)
    check_sources((source,))
    return source


def check_sources(texts: Iterable[str], numbers: bool = False) -> None:
    """`SourceTooLarge` when the `JsonSource`s among `texts` (one body's tool-call arguments
    and JSON values) take more than `MAX_SOURCE_STEPS` steps to read together (with
    `numbers`, a step per number too): the cap is the body's, not each text's."""
    total = 0
    for t in texts:
        if isinstance(t, JsonSource):
            total += steps(t, numbers)
            if total > MAX_SOURCE_STEPS:
                raise SourceTooLarge(f"more than {MAX_SOURCE_STEPS} JSON quotes, brackets and "
                                     "escapes")


def steps(text: str, numbers: bool = False) -> int:
    """At least the steps the guards take over JSON source `text`: its quotes, backslashes,
    brackets and commas (with `numbers`, and its runs of digits)."""
    n = sum(text.count(c) for c in _STEP_CHARS)
    if numbers:
        n += _DIGITS.subn("", text)[1]
    return n


def raw_steps(body: bytes) -> int:
    """`steps` of every JSON source in a JSON `body`, at most: an escape that spells one
    of those characters in a string (`\\u007b`, `\\"`) starts with a backslash."""
    return sum(body.count(c) for c in _STEP_BYTES)
