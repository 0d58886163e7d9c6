r"""JSON text inside a JSON string (tool-call arguments), read and rewritten the way the tool
that parses it reads it: whole, or streamed in any pieces.

A model writes a tool call's arguments as JSON source text that travels in a JSON string
(OpenAI ``tool_calls[].function.arguments`` and ``function_call.arguments``, Responses
``function_call`` / ``mcp_call`` ``arguments``, Anthropic ``input_json_delta.partial_json``).
Escapes in that text (``\u0040``, ``\n``, ``\/``) stand for characters the raw text does
not show, and the tool reads the decoded values: a guard scanning the raw text misses
``john.doe\u0040example.com``. So the text is read and masked token by token:

* each string literal, key or value, decoded as ``json.loads`` decodes it (an escaped
  surrogate pair is one character, a lone surrogate stays one; a backslash that starts no
  valid escape is read as written), masked on its own;
* each run of text outside string literals, between quotes and brackets (a number with the
  ``:`` and ``,`` around it, ``true``, whitespace; in text that is not JSON, anything), its
  backslash escapes decoded too (a lenient parser may read a value left unquoted), masked as
  one text; a run of nothing but whitespace, ``,`` and ``:`` is not read;
* quotes and brackets pass through.

What masking leaves unchanged goes out exactly as it came, escapes and all. A string whose
masked text differs is written as its raw text up to the first character masking changed,
then as JSON string content (``json.dumps`` escaping, UTF-8 kept, a lone surrogate as
``\uXXXX``): the placeholder is always inside the quotes. A run whose masked text differs
has its changed part, widened to whole words (up to whitespace, ``,`` or ``:``), written as one
string literal: ``"card":4111111111111111`` becomes ``"card":"<CARD>"``, so JSON stays valid
JSON. A run longer than ``RUN_LIMIT`` characters (only in text that is not JSON) streams
through the masker as it comes and is written masked as it is, unquoted.

``JsonTextMasker`` does this incrementally over a ``TokenMasker`` (the guards' chain of stream
maskers, or a function of whole texts). Fed a text in any pieces (an escape or a surrogate
pair split anywhere), it writes exactly what it writes fed the text whole, provided the
token masker releases the same text for any chunking (the guards' stream maskers do). Plain
text (no backslash, no escape pending) is handed on without decoding work.

``read_texts`` and ``rewrite`` are the whole-text forms the guards use on requests and whole
replies. A text that does not parse as JSON (cut short by a length limit, or not JSON at
all) is also read a second way: with every JSON escape in it decoded wherever it stands, as
one text. If masking still changes that reading once the tokens are masked, the whole text is
replaced by that masked reading (conservative: the structure that kept a value apart from the
tokens is dropped, never the masking). ``JsonSource`` marks such a text where the provider
adapters hand texts to the guards.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from typing import Protocol

from .jsonescape import HEX as _HEX
from .jsonescape import SHORT as _SHORT
from .jsonescape import decode_escapes, encode_content, parses

#: the longest run outside string literals held back whole to be quoted when masked
RUN_LIMIT = 1024

_IN_STRING = re.compile(r'["\\]')
_OUTSIDE = re.compile(r'["\\{}\[\]]')
_BLANK = " \t\n\r,:"                      # what a run may hold without carrying text

#: a piece of a token: (decoded text, raw text), raw None when it is the decoded text itself
#: (plain text, or a backslash that starts no escape); otherwise decoded is one character
Seg = tuple[str, str | None]


class JsonSource(str):
    """A text that is JSON source (tool-call arguments): guards read it with `read_texts`
    and mask it with `rewrite`, as the tool that parses it reads it."""

    __slots__ = ()


class TokenMasker(Protocol):
    """Masks one token at a time: ``feed`` returns what is safe to release, ``end`` ends the
    token (releases the rest) and starts afresh on the next, independent one."""

    def feed(self, text: str) -> str: ...

    def end(self) -> str: ...

    @property
    def held(self) -> int: ...


def _common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _raw_head(segs: list[Seg], count: int) -> str:
    """The raw text of the first `count` decoded characters of `segs`."""
    out: list[str] = []
    for decoded, raw in segs:
        if count <= 0:
            break
        if raw is None:
            out.append(decoded[:count])
        else:
            out.append(raw)
        count -= len(decoded)
    return "".join(out)


def _raw_tail(segs: list[Seg], count: int) -> str:
    """The raw text of the last `count` decoded characters of `segs`."""
    out: list[str] = []
    for decoded, raw in reversed(segs):
        if count <= 0:
            break
        if raw is None:
            out.append(decoded[max(0, len(decoded) - count):])
        else:
            out.append(raw)
        count -= len(decoded)
    return "".join(reversed(out))


class JsonTextMasker:
    """Masks JSON source text fed in pieces, token by token (see the module docstring):
    ``feed`` returns what may go out now, ``finish`` the rest at the end of the text."""

    def __init__(self, tokens: TokenMasker, run_limit: int = RUN_LIMIT) -> None:
        self.tokens = tokens
        self.run_limit = run_limit
        self._in_string = False
        self._esc = ""                    # a pending escape's raw text: "\\", "\\u", "\\u0"..
        self._high: tuple[str, str] | None = None   # an escaped high surrogate: (char, raw)
        # the open token (a string's content, or a run streamed past the limit):
        self._fed = False                 # anything handed to the token masker yet
        self._segs: deque[Seg] = deque()  # handed on but not written yet (while aligned)
        self._aligned = True              # what was written of it is its raw text
        self._long_run = False            # the open token is a run streamed past the limit
        # a run held whole (outside strings, until a quote or bracket ends it):
        self._run: list[Seg] = []
        self._run_len = 0

    @property
    def held(self) -> int:
        """Characters held back: by the token masker, in a run, in a pending escape."""
        return self.tokens.held + self._run_len + len(self._esc) + (self._high is not None)

    def feed(self, raw: str) -> str:
        out: list[str] = []
        i, n = 0, len(raw)
        while i < n:
            if self._esc or self._high is not None:
                i = self._escape(raw, i, out)
                continue
            m = (_IN_STRING if self._in_string else _OUTSIDE).search(raw, i)
            j = n if m is None else m.start()
            if j > i:
                self._take(raw[i:j], None, out)
            if j == n:
                break
            c = raw[j]
            if c == "\\":
                self._esc = "\\"
            else:                          # a quote, or a bracket outside strings
                self._end_token(out)
                out.append(c)
                if c == '"':
                    self._in_string = not self._in_string
            i = j + 1
        return "".join(out)

    def finish(self) -> str:
        """End of the text: what is pending goes out (an unfinished escape as written, an
        unclosed string without the quote it never had)."""
        out: list[str] = []
        esc, self._esc = self._esc, ""
        self._lone_high(out)
        if esc:
            self._take(esc, None, out)
        self._end_token(out)
        self._in_string = False
        return "".join(out)

    # --- escapes --------------------------------------------------------------------------
    def _escape(self, raw: str, i: int, out: list[str]) -> int:
        """Go on with a pending escape (or a high surrogate waiting for its low half) with
        raw[i:]; return where reading goes on."""
        esc = self._esc
        if not esc:                        # only another escape can continue a surrogate
            if raw[i] == "\\":
                self._esc = "\\"
                return i + 1
            self._lone_high(out)
            return i
        if esc == "\\":
            c = raw[i]
            if c == "u":
                self._esc = "\\u"
                return i + 1
            self._esc = ""
            self._lone_high(out)
            if c in _SHORT:
                self._take(_SHORT[c], "\\" + c, out)
            else:                          # no escape: read as written
                self._take("\\" + c, None, out)
            return i + 1
        k, stop = i, min(len(raw), i + 6 - len(esc))
        while k < stop and raw[k] in _HEX:
            k += 1
        esc += raw[i:k]
        if len(esc) < 6:
            if k == len(raw):              # the piece ended: wait for more
                self._esc = esc
                return k
            self._esc = ""                 # not hex: no escape, read as written
            self._lone_high(out)
            self._take(esc, None, out)
            return k
        self._esc = ""
        code = int(esc[2:], 16)
        high, self._high = self._high, None
        if high is not None:
            if 0xDC00 <= code <= 0xDFFF:
                char = chr(0x10000 + ((ord(high[0]) - 0xD800) << 10) + code - 0xDC00)
                self._take(char, high[1] + esc, out)
                return k
            self._take(high[0], high[1], out)
        if 0xD800 <= code <= 0xDBFF:
            self._high = (chr(code), esc)
        else:
            self._take(chr(code), esc, out)
        return k

    def _lone_high(self, out: list[str]) -> None:
        high, self._high = self._high, None
        if high is not None:
            self._take(high[0], high[1], out)

    # --- tokens ---------------------------------------------------------------------------
    def _take(self, decoded: str, raw: str | None, out: list[str]) -> None:
        """One piece of the open token, decoded (raw: its wire text, None if the same)."""
        if self._in_string or self._long_run:
            if self._aligned:
                self._segs.append((decoded, raw))
            self._fed = True
            released = self.tokens.feed(decoded)
            if released:
                self._write(released, out)
            return
        self._run.append((decoded, raw))
        self._run_len += len(decoded)
        if self._run_len > self.run_limit:   # too long to hold: stream it, unquoted
            run, self._run, self._run_len = self._run, [], 0
            self._long_run, self._fed = True, True
            self._segs.extend(run)
            released = self.tokens.feed("".join(d for d, _ in run))
            if released:
                self._write(released, out)

    def _end_token(self, out: list[str]) -> None:
        if self._in_string or self._long_run:
            if self._fed:
                released = self.tokens.end()
                if released:
                    self._write(released, out)
            self._segs.clear()
            self._fed, self._aligned, self._long_run = False, True, False
        elif self._run:
            self._end_run(out)

    def _write(self, text: str, out: list[str]) -> None:
        """Write what the token masker released: the raw text of what it left as it was,
        from the first character it changed on the masked text (encoded in a string)."""
        i, n = 0, len(text)
        segs = self._segs
        if self._aligned:
            while i < n and segs:
                decoded, raw = segs[0]
                if raw is None:
                    if text.startswith(decoded, i):
                        out.append(decoded)
                        i += len(decoded)
                        segs.popleft()
                        continue
                    k = _common_prefix(text[i:i + len(decoded)], decoded)
                    out.append(decoded[:k])
                    segs[0] = (decoded[k:], None)
                    i += k
                    break
                if text[i] != decoded:
                    break
                out.append(raw)
                i += 1
                segs.popleft()
            if i == n:
                return
            self._aligned = False
            segs.clear()
        rest = text[i:]
        out.append(encode_content(rest) if self._in_string else rest)

    def _end_run(self, out: list[str]) -> None:
        """A run held whole has ended: its raw text if masking leaves it as it is, else its
        changed part, widened to whole words, as one string literal."""
        run, self._run, self._run_len = self._run, [], 0
        decoded = "".join(d for d, _ in run)
        if not decoded.strip(_BLANK):
            out.append(_raw_head(run, len(decoded)))
            return
        masked = self.tokens.feed(decoded) + self.tokens.end()
        if masked == decoded:
            out.append(_raw_head(run, len(decoded)))
            return
        p = _common_prefix(masked, decoded)
        most = min(len(masked), len(decoded)) - p
        s = 0
        while s < most and masked[-1 - s] == decoded[-1 - s]:
            s += 1
        while p > 0 and decoded[p - 1] not in _BLANK:
            p -= 1
        while s > 0 and decoded[len(decoded) - s] not in _BLANK:
            s -= 1
        out.append(_raw_head(run, p) + '"' + encode_content(masked[p:len(masked) - s])
                   + '"' + _raw_tail(run, s))


class _Whole:
    """A `TokenMasker` over a function of whole texts: holds a token, applies fn at its end."""

    def __init__(self, fn: Callable[[str], str]) -> None:
        self.fn = fn
        self._parts: list[str] = []
        self.held = 0

    def feed(self, text: str) -> str:
        self._parts.append(text)
        self.held += len(text)
        return ""

    def end(self) -> str:
        text = "".join(self._parts)
        self._parts, self.held = [], 0
        return self.fn(text) if text else ""


def _tokens(text: str, fn: Callable[[str], str]) -> str:
    masker = JsonTextMasker(_Whole(fn))
    return masker.feed(text) + masker.finish()


def read_texts(text: str) -> list[str]:
    """What guards read of JSON source `text`: its tokens, decoded (see the module
    docstring), and, when it does not parse as JSON, the text with every escape decoded."""
    texts: list[str] = []
    _tokens(text, lambda t: texts.append(t) or t)
    if not parses(text):
        texts.append(decode_escapes(text))
    return texts


def rewrite(text: str, fn: Callable[[str], str]) -> str:
    """JSON source `text` with fn applied to each token it reads (`read_texts`, in order):
    only what fn changes is rewritten. A text that does not parse as JSON is then read
    with every escape decoded; if fn changes that reading, it is the result."""
    out = _tokens(text, fn)
    if not parses(text):
        decoded = decode_escapes(out)
        masked = fn(decoded)
        if masked != decoded:
            return masked
    return text if out == text else out
