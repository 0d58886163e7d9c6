"""JSON string escapes, the pieces `jsontext` reads and writes tool-call arguments with:
string content written as ``json.dumps`` writes it (UTF-8 kept), every escape decoded
wherever it stands, and whether a text is JSON at all."""

from __future__ import annotations

import json
import re
from json.encoder import encode_basestring  # how json.dumps(ensure_ascii=False) writes a str

#: the one-character escapes, by the character after the backslash
SHORT = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r",
         "t": "\t"}
#: the digits of a ``\uXXXX`` escape
HEX = frozenset("0123456789abcdefABCDEF")
_LONE = re.compile("[\ud800-\udfff]")
_ANY_ESCAPE = re.compile(r'\\(?:u([dD][89abAB][0-9a-fA-F]{2})\\u([dD][c-fC-F][0-9a-fA-F]{2})'
                         r'|u([0-9a-fA-F]{4})|(["\\/bfnrt]))')


def encode_content(text: str) -> str:
    """`text` as JSON string content (without the quotes): ``json.dumps`` escaping with UTF-8
    kept, and a lone surrogate as a ``\\uXXXX`` escape (it has no UTF-8 form)."""
    out = encode_basestring(text)[1:-1]
    if _LONE.search(out) is not None:
        out = _LONE.sub(lambda m: f"\\u{ord(m.group()):04x}", out)
    return out


def decode_escapes(text: str) -> str:
    """`text` with every JSON escape decoded wherever it stands (an escaped surrogate pair as
    one character); anything else, a backslash starting no escape included, as written."""
    if "\\" not in text:
        return text

    def one(m: re.Match[str]) -> str:
        high, low, code, short = m.groups()
        if high is not None:
            return chr(0x10000 + ((int(high, 16) - 0xD800) << 10) + int(low, 16) - 0xDC00)
        if code is not None:
            return chr(int(code, 16))
        return SHORT[short]
    return _ANY_ESCAPE.sub(one, text)


def parses(text: str) -> bool:
    """True if `text` is JSON."""
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True
