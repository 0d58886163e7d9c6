"""Sans-IO detectors of sensitive content in a str: the `Detector` contract, the built-in
detectors (PII and secrets), custom RE2 patterns (`RegexDetector`) and literal deny-lists
(`LiteralDetector`).

A detector reports validated, non-overlapping `Span`s left to right, and `tail_start`: where
the suffix begins that more text could still turn into (part of) a match, so that a streaming
masker knows what to hold back. For any text t, split k and ts = tail_start(t[:k]), the tests
hold every detector to:
  * a match of t that crosses k (start < k < end) starts at or after ts;
  * the matches of t[:k] that start before ts are exactly those of t that start before ts
    (so they are final; a match touching the end of t[:k] is held, as what follows may undo it);
  * len(t[:k]) - max_len <= ts <= len(t[:k]).
That needs matches no longer than `max_len`: the built-ins bound every quantifier; a custom
pattern's `max_len` is a cap its author promises (longer matches are still masked when whole).

Built-ins use Python `re` (ASCII classes) with bounded quantifiers and no ambiguous nested
repetition, so a scan does bounded work per position; custom patterns use RE2 (linear time).
Their `tail_start` takes the run of characters that a match is made of at the end of the text,
from its first character that a match can begin with.
"""

from __future__ import annotations

import ipaddress
import re
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import re2


@dataclass(frozen=True, slots=True)
class Span:
    """A match: text[start:end], found by the detector named `detector`."""

    start: int
    end: int
    detector: str


@runtime_checkable
class Detector(Protocol):
    """What a guard asks of a detector (see the module docstring for `tail_start`)."""

    name: str
    placeholder: str
    max_len: int

    def find(self, text: str) -> list[Span]: ...

    def tail_start(self, text: str) -> int: ...


class PatternError(ValueError):
    """A detector definition that cannot be used (a pattern RE2 rejects, no words...)."""


Validator = Callable[[str], int]  # the accepted length of a candidate (a prefix), 0 rejects


class PatternDetector:
    """A built-in: a Python `re` pattern with bounded quantifiers, an optional validator, the
    characters a match is made of (`chars`) and those it can begin with (`starts`)."""

    def __init__(self, name: str, pattern: re.Pattern[str], placeholder: str, max_len: int,
                 chars: str, starts: str, validate: Validator | None = None) -> None:
        self.name, self.placeholder, self.max_len = name, placeholder, max_len
        self._re, self._chars, self._validate = pattern, chars, validate
        self._starts = re.compile("[" + re.escape(starts) + "]")

    def find(self, text: str) -> list[Span]:
        spans = []
        for m in self._re.finditer(text):
            start, end = m.span()
            if self._validate is not None:
                end = start + self._validate(m.group())
            if end > start:
                spans.append(Span(start, end, self.name))
        return spans

    def tail_start(self, text: str) -> int:
        n = len(text)
        lo = max(0, n - self.max_len)
        run = lo + len(text[lo:].rstrip(self._chars))
        m = self._starts.search(text, run)
        return m.start() if m else n


_BEGIN = "-----BEGIN"
_PK_HEADER = re.compile(r"-----BEGIN[ A-Z0-9]{0,40}PRIVATE KEY-----")
_PK_HEADER_CHARS = frozenset(string.ascii_uppercase + string.digits + " -")


class PrivateKeyDetector(PatternDetector):
    """PEM private key blocks. The body cannot hold '--', so a block that more text could
    complete starts at the last '-----BEGIN' (or a partial one at the very end)."""

    def tail_start(self, text: str) -> int:
        n = len(text)
        lo = max(0, n - self.max_len)
        best = n
        for k in range(min(len(_BEGIN), n - lo), 0, -1):
            if _BEGIN.startswith(text[n - k:]):
                best = n - k
                break
        q = text.rfind(_BEGIN, lo)
        if 0 <= q < best and self._open(text, q):
            best = q
        return best

    def _open(self, text: str, q: int) -> bool:
        if _PK_HEADER.match(text, q):
            return self._re.match(text, q) is None  # header seen, block not complete yet
        rest = text[q + len(_BEGIN):]  # header not complete: could it still become one?
        return len(rest) <= 56 and "-----" not in rest and set(rest) <= _PK_HEADER_CHARS


# ---- built-in validators ----

def _whole(ok: bool, c: str) -> int:
    return len(c) if ok else 0


def _email(c: str) -> int:
    labels = c.rpartition("@")[2].split(".")
    return _whole(all(not (x.startswith("-") or x.endswith("-")) for x in labels), c)


def _phone(c: str) -> int:
    return _whole(7 <= sum(ch.isdigit() for ch in c) <= 15, c)


def _luhn(c: str) -> int:
    digits = [int(ch) for ch in c if ch.isdigit()]
    if not 13 <= len(digits) <= 19 or len(set(digits)) == 1:
        return 0
    total = 0
    for i, d in enumerate(reversed(digits)):
        total += (d * 2 - 9 if d > 4 else d * 2) if i % 2 else d
    return _whole(total % 10 == 0, c)


def _ssn(c: str) -> int:
    area, group, serial = c.split("-")
    bad = area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000"
    return _whole(not bad, c)


IBAN_LENGTHS: dict[str, int] = {x[:2]: int(x[2:]) for x in (  # the IBAN registry
    "AD24 AE23 AL28 AT20 AZ28 BA20 BE16 BG22 BH22 BI27 BR29 BY28 CH21 CR22 CY28 CZ24 DE22 DJ27 "
    "DK18 DO28 EE20 EG29 ES24 FI18 FK18 FO18 FR27 GB22 GE22 GI23 GL18 GR27 GT28 HN28 HR21 HU28 "
    "IE22 IL23 IQ23 IS26 IT27 JO30 KW30 KZ20 LB28 LC32 LI21 LT20 LU20 LV21 LY25 MC27 MD24 ME22 "
    "MK19 MN20 MR27 MT31 MU30 NI28 NL18 NO15 OM23 PK24 PL28 PS29 PT25 QA29 RO24 RS22 RU33 SA24 "
    "SC31 SD18 SE24 SI19 SK24 SM27 SO23 ST25 SV28 TL23 TN24 TR26 UA29 VA22 VG24 XK20 YE30 "
).split()}


def _iban(c: str) -> int:
    """The country's IBAN length (a grouped candidate may be cut at a group boundary, when an
    upper-case word follows it) and the mod-97 check."""
    want = IBAN_LENGTHS.get(c[:2])
    compact = c.replace(" ", "")
    if want is None or len(compact) < want:
        return 0
    if len(compact) > want:
        cut = [i for i, ch in enumerate(c) if ch != " "][want - 1] + 1
        if c[cut] != " ":
            return 0
        c, compact = c[:cut], compact[:want]
    number = int("".join(str(int(ch, 36)) for ch in compact[4:] + compact[:4]))
    return _whole(number % 97 == 1, c)


def _ipv4(c: str) -> int:
    return _whole(all(int(octet) <= 255 for octet in c.split(".")), c)


def _ipv6(c: str) -> int:
    candidates = [c, c[:-1]] if c.endswith(":") and not c.endswith("::") else [c]
    for x in candidates:
        groups = [g for g in x.split(":") if g]
        if not (any(ch.isdigit() for ch in x) or len(groups) >= 4):
            continue  # '::', 'a::b', 'dead:beef': too likely to be prose or code
        try:
            ipaddress.IPv6Address(x)
        except ValueError:
            continue
        return len(x)
    return 0


def _openai(c: str) -> int:
    body = c[3:]
    return _whole(any(ch.isdigit() for ch in body) and any(ch.isalpha() for ch in body), c)


# ---- built-in patterns: each starts with a literal or one character class (so `re` can skip
# ahead), with "not preceded by" checks as lookbehinds right after that first character ----

def _p(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.ASCII)


_HEX = string.hexdigits
_ALNUM = string.ascii_letters + string.digits
_UPPER_DIGITS = string.ascii_uppercase + string.digits

_EMAIL = _p(r"[A-Za-z0-9._%+-](?<![A-Za-z0-9._%+-][\s\S])[A-Za-z0-9._%+-]{0,63}"
            r"@(?:[A-Za-z0-9-]{1,63}\.){1,8}[A-Za-z]{2,24}(?![A-Za-z0-9-])")
_PHONE = _p(r"[+(\d](?<![\w+.-][\s\S])(?:"
            r"(?<=\+)(?:\d{7,15}|\d{1,3}(?:[ .-]?\(\d{1,4}\)[ .-]?\d{1,10}|[ .-]\d{1,10})"
            r"(?:[ .-]\d{1,10}){0,5})"                                  # +CC groups, (area)
            r"|(?<=\()\d{3}\)[ .-]?\d{3}[ .-]\d{4}"                      # (555) 123-4567
            r"|(?<=1)[ .-](?:\(\d{3}\)[ .-]?|\d{3}[ .-])\d{3}[ .-]\d{4}"  # 1-555-123-4567
            r"|(?<=\d)\d{2}[ .-]\d{3}[ .-]\d{4}"                         # 555-123-4567
            r")(?![\w@]|[.-]\d)")
_CARD = _p(r"\d(?<![\w.+-][\s\S])(?:\d{12,18}"
           r"|\d{3}([ -])\d{4}\1\d{4}\1\d{4}\1\d{3}"    # 4-4-4-4-3
           r"|\d{3}([ -])\d{4}\2\d{4}\2\d{1,7}"         # 4-4-4-n
           r"|\d{3}([ -])\d{6}\3\d{4,5})"               # 4-6-5, 4-6-4
           r"(?!\w|[ -]\d)")
_SSN = _p(r"\d(?<![\w-][\s\S])\d\d-\d\d-\d{4}(?!\w|-\d)")
_IBAN = _p(r"[A-Z](?<![A-Za-z0-9][\s\S])[A-Z]\d\d"
           r"(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,3})?)(?![A-Za-z0-9])")
_IPV4 = _p(r"\d(?<![\w.][\s\S])\d{0,2}\.\d{1,3}\.\d{1,3}\.\d{1,3}(?!\w|\.\d)")
_IPV6 = _p(r"[0-9A-Fa-f:](?<![\w:.][\s\S])(?:(?<=:)|[0-9A-Fa-f]{0,3}:)"
           r"(?:[0-9A-Fa-f]{0,4}:){1,6}(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{1,4})?"
           r"(?![\w:]|\.\d)")
_AWS = _p(r"A(?<![A-Za-z0-9]A)(?:KIA|SIA)[A-Z0-9]{16}(?![A-Za-z0-9])")
_GITHUB = _p(r"g(?<![A-Za-z0-9_]g)(?:h[pousr]_[A-Za-z0-9]{36,255}|ithub_pat_[A-Za-z0-9_]{22,255})"
             r"(?![A-Za-z0-9_])")
_OPENAI = _p(r"sk-(?<![A-Za-z0-9_-]sk-)(?!ant-)[A-Za-z0-9_-]{20,250}(?![A-Za-z0-9_-])")
_ANTHROPIC = _p(r"sk-ant-(?<![A-Za-z0-9_-]sk-ant-)[A-Za-z0-9_-]{20,250}(?![A-Za-z0-9_-])")
_JWT = _p(r"eyJ(?<![A-Za-z0-9_-]eyJ)[A-Za-z0-9_-]{5,1000}\.eyJ[A-Za-z0-9_-]{5,6000}"
          r"\.[A-Za-z0-9_-]{0,1000}(?![A-Za-z0-9_-])")
_PRIVATE_KEY = _p(r"-----BEGIN[ A-Z0-9]{0,40}PRIVATE KEY-----"
                  r"(?:[A-Za-z0-9+/=\s:,.]|-(?!-)){1,9000}+"  # possessive: no backtracking
                  r"-----END[ A-Z0-9]{0,40}PRIVATE KEY-----")

# name: (pattern, default placeholder, max_len (longest reach: match plus lookahead, rounded
# up), chars, starts, validator)
_BUILTINS: dict[str, tuple[re.Pattern[str], str, int, str, str, Validator | None]] = {
    "email": (_EMAIL, "<EMAIL>", 640, _ALNUM + "._%+-@", _ALNUM + "._%+-", _email),
    "phone": (_PHONE, "<PHONE>", 80, string.digits + " .-()+", string.digits + "+(", _phone),
    "card": (_CARD, "<CARD>", 32, string.digits + " -", string.digits, _luhn),
    "us_ssn": (_SSN, "<SSN>", 16, string.digits + "-", string.digits, _ssn),
    "iban": (_IBAN, "<IBAN>", 48, _UPPER_DIGITS + " ", string.ascii_uppercase, _iban),
    "ipv4": (_IPV4, "<IP>", 20, string.digits + ".", string.digits, _ipv4),
    "ipv6": (_IPV6, "<IP>", 56, _HEX + ":.", _HEX + ":", _ipv6),
    "aws_access_key": (_AWS, "<SECRET>", 24, _UPPER_DIGITS, "A", None),
    "github_token": (_GITHUB, "<SECRET>", 272, _ALNUM + "_", "g", None),
    "openai_key": (_OPENAI, "<SECRET>", 256, _ALNUM + "_-", "s", _openai),
    "anthropic_key": (_ANTHROPIC, "<SECRET>", 264, _ALNUM + "_-", "s", None),
    "private_key": (_PRIVATE_KEY, "<SECRET>", 9216, "", "-", None),
    "jwt": (_JWT, "<SECRET>", 8192, _ALNUM + "_-.", "e", None),
}
BUILTIN_PLACEHOLDERS: dict[str, str] = {name: spec[1] for name, spec in _BUILTINS.items()}


def builtin_detector(name: str, placeholder: str | None = None) -> PatternDetector:
    """A new instance of the built-in detector `name` (patterns are compiled once, at import)."""
    if name not in _BUILTINS:
        raise KeyError(name)
    pattern, default, max_len, chars, starts, validate = _BUILTINS[name]
    cls = PrivateKeyDetector if name == "private_key" else PatternDetector
    return cls(name, pattern, placeholder or default, max_len, chars, starts, validate)


# ---- custom RE2 patterns ----

_SURROGATE = re.compile("[\ud800-\udfff]")
_RANGE_BYTES = 16


def _sanitize(text: str) -> str:
    """Lone surrogates (which UTF-8 cannot encode, so RE2 cannot see) become U+FFFD: one
    character each, so offsets stay the same."""
    return _SURROGATE.sub("\ufffd", text)


def _strip_word_boundaries(pattern: str) -> str:
    r"""`pattern` without its \b and \B assertions: a superset of its matches. RE2 computes
    match ranges as if at the beginning of the text, where \B (and \b before a non-word
    character) would wrongly rule out matches in the middle of a text."""
    out, i, n, in_class, literal_close = [], 0, len(pattern), False, -1
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            if nxt == "Q":
                j = pattern.find("\\E", i + 2)
                j = n if j < 0 else j + 2
            elif nxt in "bB" and not in_class:
                i += 2
                continue
            else:
                j = i + 2
            out.append(pattern[i:j])
            i = j
            continue
        if in_class and pattern.startswith("[:", i):
            j = pattern.find(":]", i + 2)
            j = n if j < 0 else j + 2
            out.append(pattern[i:j])
            i = j
            continue
        if in_class and c == "]" and i != literal_close:
            in_class = False
        elif not in_class and c == "[":
            in_class = True
            literal_close = i + 1 + pattern.startswith("^", i + 1)  # ']' there is a literal
        out.append(c)
        i += 1
    return "".join(out)


class RegexDetector:
    """A custom pattern in RE2 syntax (no backreferences, no lookaround; linear-time matching).

    `tail_start` holds back at most `max_len` characters (a complete match at the very end is
    held too: `$` or `\\b` may not hold once more text arrives), but only from positions where
    a match could begin: RE2's PossibleMatchRange bounds every match lexicographically between
    two byte strings, and a position whose suffix falls outside both bounds (compared on their
    common length) cannot start one. Patterns whose range RE2 cannot compute hold back the
    simple bound, max(0, len - max_len)."""

    def __init__(self, name: str, pattern: str, placeholder: str, max_len: int = 256) -> None:
        if max_len < 1:
            raise PatternError(f"detector {name!r}: max_len must be at least 1")
        self.name, self.placeholder, self.max_len = name, placeholder, max_len
        self.pattern = pattern
        options = re2.Options()
        options.log_errors = False
        try:
            self._re = re2.compile(pattern, options)
        except re2.error as e:
            reason = e.args[0].decode(errors="replace") if e.args and isinstance(
                e.args[0], bytes) else str(e)
            raise PatternError(f"detector {name!r}: RE2 rejects the pattern {pattern!r}: "
                               f"{reason} (RE2 has no backreferences or lookaround)") from None
        self._range: tuple[bytes, bytes] | None
        try:
            bounded = re2.compile(_strip_word_boundaries(pattern), options)
            self._range = bounded.possiblematchrange(_RANGE_BYTES)
        except re2.error:
            self._range = None

    def find(self, text: str) -> list[Span]:
        try:
            matches = [m.span() for m in self._re.finditer(text)]
        except UnicodeEncodeError:
            matches = [m.span() for m in self._re.finditer(_sanitize(text))]
        return [Span(s, e, self.name) for s, e in matches if e > s]

    def tail_start(self, text: str) -> int:
        n = len(text)
        lo = max(0, n - self.max_len)
        if self._range is None:
            return lo
        return next((i for i in range(lo, n) if self._could_start(text, i)), n)

    def _could_start(self, text: str, i: int) -> bool:
        """Whether u = text[i:] could be the beginning of a match m: min <= m <= max and u a
        prefix of m imply min[:len(u)] <= u <= max[:len(u)]; only the first bytes matter."""
        low, high = self._range or (b"", b"")
        size = _RANGE_BYTES
        chunk = text[i:i + size]
        try:
            u = chunk.encode()
        except UnicodeEncodeError:
            u = _sanitize(chunk).encode()
        longer = len(u) > size or i + size < len(text)  # is text[i:] longer than `size` bytes?
        u = u[:size]
        if low[:len(u)] > u:
            return False
        if longer:  # u is longer than `high` (at most `size` bytes): u <= high iff this
            return u[:len(high)] < high
        return u <= high[:len(u)]


# ---- literal deny-lists ----

_WORD = re.compile(r"\w")
_SPACES = {ord(c): " " for c in "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2028\u2029"
           "\u202f\u205f\u3000" + "".join(map(chr, range(0x2000, 0x200B)))}
_SPACES[ord("\u03c2")] = "\u03c3"  # final sigma: str.lower() picks it by context; we must not


def _norm(s: str) -> str:
    """Lower case and whitespace as ' ', one character for one (offsets are kept), the same
    for a character wherever it stands."""
    low = s.lower()
    if len(low) != len(s):
        low = "".join(c.lower() if len(c.lower()) == 1 else c for c in s)
    return low.translate(_SPACES)


def _is_word(c: str) -> bool:
    return _WORD.match(c) is not None


class LiteralDetector:
    """Deny-listed words and phrases: case-insensitive, whitespace-insensitive (any one
    whitespace character for a space), on word boundaries (a word that begins or ends with a
    word character needs a non-word character or the edge of the text there). Compiled as a
    trie, so each position costs at most the length of the longest word."""

    def __init__(self, name: str, words: Iterable[str], placeholder: str) -> None:
        normed = sorted({_norm(w.strip()) for w in words if w.strip()})
        if not normed:
            raise PatternError(f"detector {name!r}: no words")
        self.name, self.placeholder = name, placeholder
        self.max_len = max(map(len, normed))
        trie: dict[str, dict] = {}
        for w in normed:
            node = trie
            for c in w:
                node = node.setdefault(c, {})
            node[""] = {}
        self._re = re.compile(_render(trie, "", top=True))
        self._prefixes = {w[:k] for w in normed for k in range(1, len(w))}
        self._prefixes.update(w for w in normed if _is_word(w[-1]))  # what follows may undo it

    def find(self, text: str) -> list[Span]:
        return [Span(*m.span(), self.name) for m in self._re.finditer(_norm(text))]

    def tail_start(self, text: str) -> int:
        n = len(text)
        lo = max(0, n - self.max_len)
        before = _norm(text[lo - 1:]) if lo else " " + _norm(text)  # one character of context
        for i in range(lo, n):
            u = before[i - lo + 1:]
            if u in self._prefixes and not (_is_word(u[0]) and _is_word(before[i - lo])):
                return i
        return n


def _render(node: dict, last: str, top: bool = False) -> str:
    """The regex of a trie node: longer words first, then the end of a word (with its right
    boundary). Single-child chains are written as one literal, so nesting stays shallow."""
    parts = []
    for c in sorted(k for k in node if k):
        child, seq = node[c], c
        while len(child) == 1 and "" not in child:
            ((c2, child),) = child.items()
            seq += c2
        head = re.escape(seq[0])
        if top and _is_word(seq[0]):
            head += r"(?<!\w" + re.escape(seq[0]) + ")"  # left boundary, after the literal
        parts.append(head + re.escape(seq[1:]) + _render(child, seq[-1]))
    if "" in node:
        parts.append(r"(?!\w)" if _is_word(last) else "")
    if len(parts) == 1:
        return parts[0]
    return "(?:" + "|".join(parts) + ")"
