"""The structure of a JSON text bounded before it is parsed (sans-IO): nesting depth, the
count of objects and arrays, the count of values, each read with no Python step per byte.

`check(body, count, count_values)` raises `TooDeep` for nesting deeper than `MAX_DEPTH`,
`TooMany` for more objects and arrays than `MAX_CONTAINERS` (with `count`) or more values
than `MAX_VALUES` (with `count_values`), all outside strings. A crafted body of millions of
brackets or commas must not cost seconds, nor allocate in proportion, before the parser
refuses or reads it; `reading.strict_json` calls this only when a raw count of the bytes
could pass a bound, and turns these errors into its 400 and 413 refusals.
"""

from __future__ import annotations

import itertools
import operator
import re

#: deepest JSON nesting accepted in a request body (real prompts, tool schemas included, stay
#: far below; Python's own parser fails at about a thousand)
MAX_DEPTH = 128
#: most JSON objects and arrays accepted in a request body: each costs the parse about 100
#: bytes of memory, held until the reply's headers, and `{}` is 3 bytes (8 MiB of them,
#: 8 KiB gzipped, held 200 MiB: found by review); real requests, long chats with tool
#: schemas and token-id batches included, hold a few thousand
MAX_CONTAINERS = 1 << 17
#: most JSON values (objects, arrays, and the members and items in them) accepted outside
#: strings in a request body: the guards walk a JSON value item by item (a Python step or
#: more each, twice or three times), and a list of numbers holds no container (found by
#: review: 3.9 M zeros, 7.8 MB, in a countTokens `instances` or an unknown message field
#: took 8-18 s); OpenAI caps an embeddings batch at 300,000 token ids
MAX_VALUES = 1 << 19


class TooDeep(ValueError):
    """The text nests deeper than `MAX_DEPTH`."""


class TooMany(ValueError):
    """The text holds more containers or values than its bound; the message says which."""


#: every byte but a quote, a bracket and a comma, deleted
_NOT_STRUCTURE = bytes(range(256)).translate(None, b'"[]{},')
_QUOTED = re.compile(rb'"[^"]*"')
_AS_STEPS = bytes.maketrans(b"[]{}", b"\x02\x00\x02\x00")
_AS_PARENS = bytes.maketrans(b"[]{}", b"()()")
_SLICE = 1 << 16
_PEEL = 8
_TOO_MANY_OPEN = b"(" * (MAX_DEPTH + 1)


def check(body: bytes, count: bool = False, count_values: bool = False) -> None:
    """Raise `TooDeep` for nesting deeper than MAX_DEPTH (brackets inside strings do not
    count); with `count`, `TooMany` for more than `MAX_CONTAINERS` objects and arrays outside
    strings; with `count_values`, for more than `MAX_VALUES` values (objects, arrays and
    commas, outside strings).

    With the escaped backslashes and then the escaped quotes taken out (in valid JSON a run of
    backslashes pairs up from its left), every quote left opens or closes a string; one
    `translate` keeps the quotes, brackets and commas only. The strings then go with one regex,
    a slice at a time (each slice ends outside a string), and what is left is the brackets
    outside strings. Each `replace` of "()" peels one level of nesting off (it removes every
    innermost pair, so it lowers the deepest point by one at most), which empties a usual body
    in a few passes; one still nested after _PEEL passes gets its exact depth from running
    sums in C. A body that is not valid JSON may be judged wrongly here; the parser refuses
    it after."""
    text = body.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_STRUCTURE)
    outside = []
    pos, n = 0, len(text)
    while pos < n:
        end = min(pos + _SLICE, n)
        if text.count(b'"', pos, end) % 2:   # `end` falls in a string: take all of it
            close = text.find(b'"', end)
            end = n if close < 0 else close + 1
        outside.append(_QUOTED.sub(b"", text[pos:end]))
        pos = end
    brackets = b"".join(outside).replace(b'"', b"")
    commas = brackets.count(b",")
    brackets = brackets.replace(b",", b"")
    rest = brackets.translate(_AS_PARENS)
    if _TOO_MANY_OPEN in rest:   # that many in a row: too deep, whatever comes after
        raise TooDeep()
    opening = brackets.count(b"[") + brackets.count(b"{")
    if count and opening > MAX_CONTAINERS:
        raise TooMany(f"more than {MAX_CONTAINERS} JSON objects and arrays")
    if count_values and opening + commas > MAX_VALUES:
        raise TooMany(f"more than {MAX_VALUES} JSON values")
    for _ in range(_PEEL):
        if not rest:
            return
        rest = rest.replace(b"()", b"")
    if not rest:
        return
    # an opening bracket adds 2 and a closing one 0, so the depth after the i-th bracket
    # (from 1) is the running sum minus i
    steps = brackets.translate(_AS_STEPS)
    if max(map(operator.sub, itertools.accumulate(steps), itertools.count(1))) > MAX_DEPTH:
        raise TooDeep()
