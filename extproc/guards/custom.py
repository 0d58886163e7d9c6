"""Custom detectors from config: RE2 patterns (`RegexDetector`, linear time whatever the
pattern or input) and case-insensitive literal deny-lists (`LiteralDetector`). Both keep
the `Detector` contract of `detectors.py`, `tail_start` included.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

import re2

from .detectors import PatternError, Span

# ---- custom RE2 patterns ----

_SURROGATE = re.compile("[\ud800-\udfff]")
_RANGE_BYTES = 16


def _sanitize(text: str) -> str:
    """Lone surrogates (which UTF-8 cannot encode, so RE2 cannot see) become U+FFFD: one
    character each, so offsets stay the same."""
    return _SURROGATE.sub("\ufffd", text)


#: what `longest_match` says of a pattern it cannot measure
UNMEASURED = -1
_OCTAL = re.compile(r"0[0-7]{0,2}|[1-7][0-7]{1,2}")   # RE2's octal escapes (a lone \1 is none)
_EMPTY_UPTO = re.compile(r"\{,[0-9]*\}")             # `{,n}`: text to RE2, a repeat to Python


def _class_end(pattern: str, i: int) -> int:
    r"""Where the character class opening at `pattern[i]` (a `[`) ends, as RE2 reads it: a
    `]` first (after any `^`) is a member, a backslash escapes what follows (`\p{...}`,
    `\x{...}` whole), `[:name:]` is a POSIX class. -1 when it never ends."""
    n, j = len(pattern), i + 1
    if j < n and pattern[j] == "^":
        j += 1
    if j < n and pattern[j] == "]":
        j += 1
    while j < n:
        c = pattern[j]
        if c == "\\":
            if pattern.startswith(("p{", "P{", "x{"), j + 1):
                k = pattern.find("}", j)
                j = n if k < 0 else k + 1
            else:
                j += 2
        elif pattern.startswith("[:", j) and pattern.find(":]", j + 2) >= 0:
            j = pattern.find(":]", j + 2) + 2
        elif c == "]":
            return j + 1
        else:
            j += 1
    return -1


def _as_python(pattern: str) -> str:
    r"""RE2 `pattern` as a Python pattern whose matches are as long as RE2's: a character
    class is one character whatever is in it (escapes, POSIX classes, what looks like a
    flag), `\Q...\E` its text escaped, a Unicode class, `\x{...}`, `\C` or an octal
    escape one character, `\z` the end, `{,n}` text (found by review, each under-measured
    a pattern once: an escaped `[` before `[:digit:]`, `(?i)` inside a class, `\10`, `{,1}`),
    flags anywhere (RE2 takes `(?i)` mid-pattern and `(?U:`; no flag changes a match's
    length) and named groups dropped; any other escape kept, as Python reads it alike."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            if nxt == "Q":
                k = pattern.find("\\E", i + 2)
                out.append(re.escape(pattern[i + 2:n if k < 0 else k]))
                i = n if k < 0 else k + 2
                continue
            if nxt in "pPx" and i + 2 < n and pattern[i + 2] == "{":
                k = pattern.find("}", i)
                i = n if k < 0 else k + 1
                out.append(".")
                continue
            octal = _OCTAL.match(pattern, i + 1)
            if nxt in "pP" or nxt == "C" or octal is not None:
                out.append(".")
                i = octal.end() if octal is not None else i + 2 + (nxt in "pP")
                continue
            out.append("$" if nxt == "z" else pattern[i:i + 2])
            i += 2
        elif c == "[":
            end = _class_end(pattern, i)
            if end < 0:
                return pattern   # (not RE2: Python refuses it too, so it is unmeasured)
            out.append("a")
            i = end
        elif c == "{" and _EMPTY_UPTO.match(pattern, i):
            out.append("\\{")
            i += 1
        elif pattern.startswith("(?", i):
            flags = re.match(r"\(\?[imsU]*(?:-[imsU]*)?(\)|:)", pattern[i:])
            named = re.match(r"\(\?P?<[A-Za-z_][A-Za-z0-9_]*>", pattern[i:])
            if flags is not None:
                out.append("(?:" if flags.group(1) == ":" else "")
                i += flags.end()
            elif named is not None:
                out.append("(?:")
                i += named.end()
            else:
                out.append("(?")
                i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def longest_match(pattern: str) -> int | None:
    """The most characters a match of RE2 `pattern` can have; None when it is unbounded (a
    `+`, `*` or `{n,}`); `UNMEASURED` when it cannot be told (Python's parser measures it,
    with RE2's own syntax read as Python spells what it matches: `_as_python`)."""
    import re._parser as sre_parse  # (the standard library's, as `re` compiles with)

    try:
        most = sre_parse.parse(_as_python(pattern)).getwidth()[1]
    except (re.error, RecursionError, OverflowError, ValueError):
        return UNMEASURED
    return None if most >= sre_parse.MAXREPEAT else int(most)


def _strip_word_boundaries(pattern: str) -> str:
    r"""`pattern` without its \b and \B assertions: a superset of its matches. RE2 computes
    match ranges as if at the beginning of the text, where \B (and \b before a non-word
    character) would wrongly rule out matches in the middle of a text. A character class
    (`_class_end`) and a `\Q...\E` run are kept as they are."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            if nxt in "bB":
                i += 2
                continue
            if nxt == "Q":   # a quoted run, to its \E (or the end)
                k = pattern.find("\\E", i + 2)
                j = n if k < 0 else k + 2
            else:
                j = i + 2
        elif c == "[":
            j = _class_end(pattern, i)
            if j < 0:
                j = n
        else:
            j = i + 1
        out.append(pattern[i:j])
        i = j
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
