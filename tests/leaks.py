"""Shared pieces of the no-leak property tests (tests/unit/test_no_leaks*.py): the secrets and
the text around them, a config that masks one and refuses the other on every provider, the
body encodings, and the checks that a secret never crosses the gateway in clear.

Two secrets: an e-mail address (a mask guard turns it into `<EMAIL>`) and an AWS access key
id (a reject guard refuses the prompt, or ends the reply). The text around them never holds
upper-case letters, digits or `@`, so a run of six characters of a secret found on the other
side is a piece of that secret, not a coincidence of the filler.
"""

from __future__ import annotations

import gzip
import json
import re
import zlib
from collections.abc import Iterator
from typing import Any

import brotli
import pytest
import zstandard
from hypothesis import strategies as st

from extproc import loader
from extproc.guards.invisible import INVISIBLE

EMAILS = ("jane.roe@example.org", "zq.hidden-77@corp-mail.test", "x_y+z@sub.d0main.io")
KEYS = ("AKIAIOSFODNN7EXAMPLE", "AKIAQWERTZUIOPLKJHGF", "ASIAZXCVBNMLKJHGFDSA")
EMAIL, KEY = EMAILS[0], KEYS[0]
PROVIDERS = ("openai", "azure", "anthropic", "gemini", "vertex")
_GUARDS = ["keys", "pii"]

#: every provider's route masks e-mail addresses (and card numbers, which
#: tests/unit/test_no_leaks_json_values.py writes as JSON numbers) and refuses AWS keys, both
#: ways; the `-array` routes leave Gemini/Vertex JSON-array streams as they come (not
#: rewritten to SSE). The catalogue puts texts beside images and files, as real requests
#: do: these guards let such inputs pass unread (tests/unit/test_unread_inputs.py refuses
#: them)
_UNREAD = ["image", "audio", "video", "document", "file", "fetched"]
CONFIG = loader.parse({
    "guards": {"keys": {"detectors": ["aws_access_key"], "action": "reject",
                        "allow_unread": _UNREAD},
               "pii": {"detectors": ["email", "card"], "action": "mask",
                       "allow_unread": _UNREAD}},
    "routes": [{"name": p, "provider": p, "guards": _GUARDS} for p in PROVIDERS] + [
        {"name": f"{p}-array", "provider": p, "guards": _GUARDS,
         "streams": {"json_array_to_sse": False}} for p in ("gemini", "vertex")],
})

# --- text around a secret --------------------------------------------------------------

_ALPHABET = "abcdefghijklmnopqrstuvwxyz     .,;:!?()'\"-_/\\\n\té日本🙂"
filler = st.text(_ALPHABET, max_size=24)
_BEFORE = (" ", " (", ": ")
_AFTER = (" ", ") ", ". ", ", ")
#: next to a secret, characters JSON writes as an escape (`\n`, `\"`)
ESCAPED_BEFORE = ("\n", "\t", "\"", "\\")
ESCAPED_AFTER = ("\n", "\"", "\\")


#: invisible characters a secret may carry inside (`extproc.guards.invisible`): a client, a
#: model or a tool reads the secret through them
HIDDEN = ("\u200b", "\u200d", "\u00ad", "\u2060", "\ufeff", "\ufe0f", "\U000e0041")
#: ASCII to the tag characters that spell it, and back: invisible, and read by a model
SPELLED = {cp: cp + 0xE0000 for cp in range(0x20, 0x7F)}
_UNSPELLED = {cp + 0xE0000: cp for cp in range(0x20, 0x7F)}


@st.composite
def placed(draw: st.DrawFn, secret: str, escaped: bool = True, hidden: bool = True) -> str:
    """`secret` alone, or at the start, in the middle or at the end of some text; with
    `escaped`, the characters next to it may be ones JSON escapes. With `hidden`, one time
    in eight the secret is spelled in tag characters, and one in four of the others has
    invisible characters inside."""
    if hidden and draw(st.integers(0, 7)) == 0:   # spelled in tag characters
        secret = secret.translate(SPELLED)
    elif hidden and draw(st.integers(0, 2)) == 0:
        cuts = sorted(set(draw(st.lists(st.integers(1, len(secret) - 1), min_size=1,
                                        max_size=4))))
        secret = "".join(secret[a:b] + (draw(st.sampled_from(HIDDEN)) * draw(st.integers(1, 2))
                                        if b < len(secret) else "")
                         for a, b in zip([0, *cuts], [*cuts, len(secret)], strict=True))
    where = draw(st.sampled_from(["alone", "start", "middle", "end"]))
    before, after = (_BEFORE + ESCAPED_BEFORE, _AFTER + ESCAPED_AFTER) if escaped \
        else (_BEFORE, _AFTER)
    head = draw(filler) + draw(st.sampled_from(before)) if where in ("middle", "end") else ""
    tail = draw(st.sampled_from(after)) + draw(filler) if where in ("start", "middle") else ""
    return head + secret + tail


def around(secret: str) -> str:
    """The secret in a plain sentence (the deterministic cases)."""
    return f"please write to {secret} today, thanks"


# --- encodings -------------------------------------------------------------------------

CODINGS = ("gzip", "deflate", "br", "zstd")


def encode(body: bytes, codings: list[str]) -> bytes:
    """`body` with `codings` applied in the order given (the content-encoding order)."""
    for coding in codings:
        if coding == "gzip":
            body = gzip.compress(body)
        elif coding == "deflate":
            body = zlib.compress(body)
        elif coding == "br":
            body = brotli.compress(body)
        else:
            body = zstandard.ZstdCompressor().compress(body)
    return body


def decode(body: bytes, codings: list[str]) -> bytes:
    for coding in reversed(codings):
        if coding == "gzip":
            body = gzip.decompress(body)
        elif coding == "deflate":
            body = zlib.decompress(body)
        elif coding == "br":
            body = brotli.decompress(body)
        else:
            body = zstandard.ZstdDecompressor().decompress(body, max_output_size=1 << 24)
    return body


def dumps(doc: Any, escape: Any = None, ascii_only: bool = False) -> str:
    """JSON text of `doc`; `escape(ch)` true writes that character of a string (or key) as
    a `\\uXXXX` escape, as any client may: the provider reads the character itself."""
    if isinstance(doc, str):
        out = []
        for ch in doc:
            if escape is not None and escape(ch) and ord(ch) < 0x10000:
                out.append(f"\\u{ord(ch):04x}")
            else:
                out.append(json.dumps(ch, ensure_ascii=ascii_only)[1:-1])
        return '"' + "".join(out) + '"'
    if isinstance(doc, dict):
        return "{" + ", ".join(f"{dumps(k, escape, ascii_only)}: {dumps(v, escape, ascii_only)}"
                               for k, v in doc.items()) + "}"
    if isinstance(doc, list):
        return "[" + ", ".join(dumps(v, escape, ascii_only) for v in doc) + "]"
    return json.dumps(doc)


# --- the checks ------------------------------------------------------------------------

_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})|\\(.)")
_SIMPLE = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}


def unescape(text: str) -> str:
    """JSON string escapes undone, once (for a JSON document inside a string value)."""
    def one(m: re.Match[str]) -> str:
        if m.group(1):
            return chr(int(m.group(1), 16))
        return _SIMPLE.get(m.group(2), m.group(2))
    # a surrogate pair of escapes is one character; a lone surrogate reads as U+FFFD
    return _ESCAPE.sub(one, text).encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def strings(doc: Any) -> Iterator[str]:
    """Every string of a JSON value, keys included; a string that is itself JSON (tool
    arguments) adds its own strings."""
    stack = [doc]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            yield value
            if value[:1] in ("{", "["):
                try:
                    stack.append(json.loads(value))
                except ValueError:
                    pass
        elif isinstance(value, dict):
            for k, v in value.items():
                yield k
                stack.append(v)
        elif isinstance(value, list):
            stack.extend(value)


def fragments(secret: str, size: int = 6) -> list[str]:
    """Every run of `size` characters of a secret (random filler holds one of an e-mail's
    with a chance below 1e-8, and never one of a key's)."""
    return sorted({secret[i:i + size] for i in range(len(secret) - size + 1)})


def readings(raw: bytes, docs: list[Any]) -> list[str]:
    """The ways a client (or a provider) can read what crossed: the bytes as text, the same
    with JSON escapes undone, and every string of the JSON documents, escapes undone too;
    and each of them with its invisible characters taken out."""
    text = raw.decode("utf-8", "replace")
    out = [text, unescape(text)]
    for doc in docs:
        for s in strings(doc):
            out += [s, unescape(s)]
    return out + [INVISIBLE.sub("", reading) for reading in out] \
        + [reading.translate(_UNSPELLED) for reading in out]   # read through them, or spelled


def find_secret(raw: bytes, docs: list[Any], secret: str, whole: bool = True) -> str | None:
    """Where `secret` (or, with `whole=False`, any piece of it) can be read in what crossed;
    None when it cannot."""
    needles = [secret] if whole else [secret, *fragments(secret)]
    for reading in readings(raw, docs):
        for needle in needles:
            if needle in reading:
                at = reading.index(needle)
                return f"{needle!r} in ...{reading[max(0, at - 60):at + 60]!r}..."
    return None


# --- the known limit: escapes inside JSON argument strings -----------------------------

#: (variant, secret kind, text around it, character written as a \uXXXX escape in the
#: argument string): ways a JSON argument string could hide a secret behind its escapes
ARGUMENT_ESCAPES = [
    ("quote-after-key", "key", "{}\"", ""),
    ("backslash-before-email", "email", "\\{}", ""),
    ("newline-after-email", "email", "{}\n", ""),
    ("newline-before-key", "key", "\n{}", ""),
    ("unicode-escaped-at", "email", "{}", "@"),
    ("unicode-escaped-key-letter", "key", "{}", "A"),
]
#: the variants guards miss today (none: argument strings are read decoded, codecs.jsontext;
#: these were `\n` glued to a key and a character of a value written `\uXXXX`)
KNOWN_LIMIT: tuple[str, ...] = ()


def escape_in_arguments(doc: Any, ch: str, secret: str) -> Any:
    """`doc` with `ch` written as a `\\uXXXX` escape inside every string that holds the
    secret (tool arguments, a grammar: a string literal inside a string), as their encoder
    may write it."""
    if not ch:
        return doc
    if isinstance(doc, str):
        return doc.replace(ch, f"\\u{ord(ch):04x}") if secret in doc else doc
    if isinstance(doc, dict):
        return {k: escape_in_arguments(v, ch, secret) for k, v in doc.items()}
    if isinstance(doc, list):
        return [escape_in_arguments(v, ch, secret) for v in doc]
    return doc


KNOWN = pytest.mark.xfail(strict=False, reason="known limit (issue #8): a secret next to or "
                          "inside a JSON escape of a tool-call argument string is read as "
                          "written; being fixed separately")
