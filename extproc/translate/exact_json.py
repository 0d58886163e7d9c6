"""JSON a client wrote inside a string (tool-call arguments, a tool's result) that a translator
parses and sends on re-serialised (sans-IO).

The guards read that string as the client wrote it; the backend gets what Python writes back.
The two are the same text but for the numbers: ``4.111111111111111e15``,
``4111111111111111e0`` or ``4111111111111110.9999999`` come back as ``4111111111111111.0``, a
card number no guard read. `loads_exact` therefore reads a text only when every number in it
would be written back exactly as it is written (``12``, ``0.5``, ``-3``, ``1e+21``), or
written back with no run of 7 or more digits (``12.50`` as ``12.5``, ``1e5`` as
``100000.0``: no run that short is part of what a guard looks for), and raises `Inexact` (a
`ValueError`) for the first one that would not; the caller refuses the field or keeps the
text as it is. Text nested deeper than Python parses raises `ValueError`
too (not `RecursionError`), so no caller fails with a 500.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

__all__ = ["Inexact", "loads_exact"]


class Inexact(ValueError):
    """A number that would not be written back as the client wrote it."""

    def __init__(self, number: str, written: str) -> None:
        # (the message names neither: it may be a card number, and messages are logged)
        super().__init__("a number in it would not reach the backend as written (a parser "
                         "rewrites an exponent, a trailing zero, digits past a double's "
                         "precision): write numbers as JSON writes them back, or as strings")
        self.number = number
        self.written = written


#: a run of digits long enough to be part of what a guard looks for (a card, a phone number,
#: an account number); shorter runs cannot form one
_LONG_RUN = re.compile(r"\d{7,}")


def _check(text: str, written: str) -> None:
    """A number written back otherwise than the client wrote it passes only when what is
    written holds no run of 7 or more digits: `12.50` as `12.5`, `1e5` as `100000.0` are
    harmless, `4.111111111111111e15` as `4111111111111111.0` makes a card number appear."""
    if written != text and _LONG_RUN.search(written):
        raise Inexact(text, written)


def _int(text: str) -> int:
    value = int(text)    # (ValueError past Python's digit limit)
    _check(text, json.dumps(value))   # (-0)
    return value


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):   # 1e999: Infinity, which is not JSON
        raise ValueError("a number too large for a double")
    _check(text, json.dumps(value))
    return value


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_int=_int, parse_float=_float, parse_constant=_constant)


def loads_exact(text: str) -> Any:
    """`text` as JSON, if every number in it reads back as written; else `ValueError`
    (`Inexact` for a number, a plain one for what is not JSON or is nested too deep)."""
    try:
        return _DECODER.decode(text)
    except RecursionError:
        raise ValueError("JSON nested deeper than the gateway reads") from None
