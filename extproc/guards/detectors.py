"""Sans-IO detectors of sensitive content in a str: the `Detector` contract and the built-in
detectors (PII and secrets), their patterns with their validators (`validators`: Luhn, the
IBAN check, ...). Custom RE2 patterns and deny-lists are in `custom.py`.

A detector reports validated `Span`s left to right, none inside another (they do not overlap,
except a built-in's with a validator: see `PatternDetector`), and `tail_start`: where
the suffix begins that more text could still turn into (part of) a match, so that a streaming
masker knows what to hold back. For any text t, split k and ts = tail_start(t[:k]), the tests
hold every detector to:
  * a match of t that crosses k (start < k < end) starts at or after ts;
  * the matches of t[:k] that start before ts are exactly those of t that start before ts
    (so they are final; a match touching the end of t[:k] is held, as what follows may undo it);
  * len(t[:k]) - max_len <= ts <= len(t[:k]).
That needs matches no longer than `max_len`: the built-ins bound every quantifier; a custom
pattern's `max_len` is a cap its author promises (longer matches are still masked when whole).

Built-ins use Python `re` (ASCII classes; an e-mail's local part also takes Latin, Greek and
Cyrillic letters) with bounded quantifiers and no ambiguous nested
repetition, so a scan does bounded work per position; custom patterns use RE2 (linear time).
Their `tail_start` takes the run of characters that a match is made of at the end of the text,
from its first character that a match can begin with.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from . import validators


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
#: verdicts of candidates, by detector, candidate length and text (`PatternDetector._accept`)
Memo = dict[tuple[str, int, str], int]


class PatternDetector:
    """A built-in: a Python `re` pattern with bounded quantifiers, an optional validator, the
    characters a match is made of (`chars`) and those it can begin with (`starts`).

    With a validator, every position where the pattern matches is a candidate start (a
    rejected candidate hides nothing after its start), and a candidate the validator rejects
    is retried shorter: at each earlier group boundary (a letter or digit followed by another
    character) where the pattern matches too, its closing check `after` included, longest
    first. An accepted candidate inside an earlier one is dropped; one that overlaps an
    earlier one and reaches past it is reported whole (the scanner resolves the overlap)."""

    def __init__(self, name: str, pattern: re.Pattern[str], placeholder: str, max_len: int,
                 chars: str, starts: str, validate: Validator | None = None,
                 after: re.Pattern[str] | None = None, shortest: int = 1) -> None:
        self.name, self.placeholder, self.max_len = name, placeholder, max_len
        self._shortest = max(1, shortest)   # the fewest characters a match has
        self._re, self._chars, self._validate = pattern, chars, validate
        self._after = after
        self.match_chars = frozenset(chars)   # what a match is made of
        self.start_chars = frozenset(starts)  # what a match can begin with
        self._starts = re.compile("[" + re.escape(starts) + "]")

    def find(self, text: str, memo: Memo | None = None) -> list[Span]:
        """The matches in `text`. `memo`: verdicts of candidates kept from earlier texts of
        one stream (`_accept`), which a streaming masker passes as it scans the text it
        holds again with each piece."""
        if self._validate is None:
            return [Span(*m.span(), self.name) for m in self._re.finditer(text)]
        spans: list[Span] = []
        search, name = self._re.search, self.name
        pos = covered = 0
        while (m := search(text, pos)) is not None:
            start = m.start()
            end = start + (self._judge(text, start, m.end()) if memo is None
                           else self._accept(text, start, m.end(), memo))
            if end > start and end > covered:
                spans.append(Span(start, end, name))
                covered = end
            pos = start + 1
        return spans

    def _accept(self, text: str, start: int, end: int, memo: Memo) -> int:
        """`_judge`, its verdict kept in `memo`.

        Called only where the pattern matched at `start` (its lookbehinds passed), the answer
        is a function of text[start:end + 1] alone: the validator reads a prefix of the
        candidate, the retries' full matches read it from `start` (the lookbehinds there as
        in that match) and their closing checks read at most the character after a boundary
        inside it. So it is kept by that text, the candidate's length and the detector: a
        stream's masker scans the digits it holds again with every piece (card-shaped groups
        cost a Luhn check and retries each time). The memo is the stream's, not shared: no
        value outlives its stream or is timed by another's."""
        if end - start > MEMO_LONGEST:
            return self._judge(text, start, end)
        key = (self.name, end - start, text[start:end + 1])
        accepted = memo.get(key)
        if accepted is None:
            accepted = self._judge(text, start, end)
            if len(memo) >= MEMO_SIZE:
                memo.clear()
            memo[key] = accepted
        return accepted

    def _judge(self, text: str, start: int, end: int) -> int:
        """The validated length of the candidate text[start:end], else of its longest shorter
        candidate that ends at a group boundary; 0 when none passes."""
        assert self._validate is not None
        accepted = self._validate(text[start:end])
        if accepted or self._after is None:
            return accepted
        fullmatch, after = self._re.fullmatch, self._after.match
        # the group boundaries inside the candidate, found in C, longest candidate first;
        # none that would leave fewer characters than a match has
        for e in reversed([m.start() for m in
                           _BOUNDARY.finditer(text, start + self._shortest, end)]):
            if fullmatch(text, start, e) and after(text, e):
                accepted = self._validate(text[start:e])
                if accepted:
                    return accepted
        return 0

    def can_end(self, last: str) -> bool:
        """Whether a text ending with `last` can have a tail to hold (what `Scanner` asks once
        per last character, to skip the detectors that cannot)."""
        return last in self.match_chars

    def tail_start(self, text: str) -> int:
        n = len(text)
        if not n or text[-1] not in self.match_chars:
            return n   # no run of match characters at the end: nothing to hold
        lo = max(0, n - self.max_len)
        run = lo + len(text[lo:].rstrip(self._chars))
        m = self._starts.search(text, run)
        return m.start() if m else n


# an e-mail local part: ASCII letters and digits, `._%+-`, the apostrophe inside it
# (o'brien) and the letters of the Latin, Greek and Cyrillic alphabets (müller, jörg): a name
# written so is masked whole. Not every script's: CJK text puts no space before an address,
# and its words would be taken for the local part. A match starts after an opening quote
# ('john@...'), not after an apostrophe inside a name; it may start inside a run of those
# letters (not of ASCII ones): the leftmost start wins, so a name is masked whole, and one
# glued to more than 64 letters is masked from its last 64 rather than not at all
_START = ("A-Za-z0-9._%+\\-\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f"
          "\u0370-\u03ff\u0400-\u04ff\u1e00-\u1eff")
_LOCAL = _START + "'"
#: a character an e-mail match is made of (`_LOCAL`, `@`); the run of them that ends a text,
#: read backwards (held whole, in one pass)
_EMAIL_CHAR = re.compile(f"[{_LOCAL}@]")
_EMAIL_RUN_BACK = re.compile(f"[{_LOCAL}@]*")


class EmailDetector(PatternDetector):
    """E-mail addresses, whose local part may hold letters beyond ASCII (`_LOCAL`): its tail
    is the run of such characters that ends the text (a `PatternDetector`'s is of a set it
    lists), from its first character that can start one (any but `@` and `'`)."""

    def find(self, text: str, memo: Memo | None = None) -> list[Span]:
        """`PatternDetector.find`, with the pattern run only where a match can be: a match
        holds one `@`, the domain after it is `_DOMAIN` and its local part is at most 64
        characters after the `@` before it. So each `@` whose domain fails is passed over
        (one check), and for the others the pattern is searched from the first start that
        can reach it, up to the character after its domain, until one is accepted (every
        later start reaches the same `@` and ends where it does): a start inside a long run
        of letters no longer re-reads a long domain once per letter (crafted text cost
        1.2-1.7 s of CPU per MiB, against 0.06 for prose; found by review). `find_plain` is
        the plain scan; a property test proves the two equal."""
        spans: list[Span] = []
        search, domain, name = self._re.search, _DOMAIN.match, self.name
        covered = 0
        before = -1            # the `@` before this one: a match holds no other
        at = text.find("@")
        while at >= 0:
            d = domain(text, at + 1)
            if d is not None:
                # a match using this `@` starts after the one before it, at most 64 before
                # it, and (its domain as matched alone, the character after it checked by
                # the lookahead) ends where `d` does: the search needs the text to one past
                pos, stop = max(at - 64, before + 1), d.end() + 1
                while pos < at and (m := search(text, pos, stop)) is not None \
                        and m.start() < at:
                    start = m.start()
                    end = start + (self._judge(text, start, m.end()) if memo is None
                                   else self._accept(text, start, m.end(), memo))
                    if end > start:
                        if end > covered:
                            spans.append(Span(start, end, name))
                            covered = end
                        break   # a later start reaches this `@` too, and ends here
                    pos = start + 1
            before = at
            at = text.find("@", at + 1)
        return spans

    def find_plain(self, text: str) -> list[Span]:
        """The plain scan `find` stands in for (`PatternDetector.find`)."""
        return PatternDetector.find(self, text)

    def can_end(self, last: str) -> bool:
        return _EMAIL_CHAR.match(last) is not None

    def tail_start(self, text: str) -> int:
        n = len(text)
        if not n or _EMAIL_CHAR.match(text, n - 1) is None:
            return n   # no run at the end: nothing to hold
        lo = max(0, n - self.max_len)
        run = n - _EMAIL_RUN_BACK.match(text[lo:][::-1]).end()   # type: ignore[union-attr]
        while run < n and text[run] in "@'":   # (no match starts with either)
            run += 1
        return run


_BEGIN = "-----BEGIN"
_PK_HEADER = re.compile(r"-----BEGIN[ A-Z0-9]{0,40}PRIVATE KEY-----")
_PK_HEADER_CHARS = frozenset(string.ascii_uppercase + string.digits + " -")
#: a key block's body as `_PRIVATE_KEY` reads it, and what may follow it while the block
#: can still end: a start of its END line (a character of neither means it never will)
_PK_BODY = re.compile(r"(?:[A-Za-z0-9+/=\s:,.]|-(?!-)){0,9000}+")
_PK_END_PREFIX = re.compile(r"-{1,4}|-----(?:E|EN|END[ A-Z0-9]{0,56}"
                            r"|END[ A-Z0-9]{0,40}PRIVATE KEY-{1,4})?")


class PrivateKeyDetector(PatternDetector):
    """PEM private key blocks. The body cannot hold '--', so a block that more text could
    complete starts at the last '-----BEGIN' (or a partial one at the very end)."""

    def can_end(self, last: str) -> bool:
        return True   # a held block may end with any character

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
        header = _PK_HEADER.match(text, q)
        if header:   # header seen: open while what follows can still become a body and end
            if self._re.match(text, q) is not None:
                return False   # complete
            body = _PK_BODY.match(text, header.end())
            assert body is not None   # (it matches the empty string)
            return body.end() == len(text) or _PK_END_PREFIX.fullmatch(text, body.end()) \
                is not None
        rest = text[q + len(_BEGIN):]  # header not complete: could it still become one?
        return len(rest) <= 56 and "-----" not in rest and set(rest) <= _PK_HEADER_CHARS


# ---- built-in patterns: each starts with a literal or one character class (so `re` can skip
# ahead), with "not preceded by" checks as lookbehinds right after that first character ----

def _p(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.ASCII)


_HEX = string.hexdigits
_ALNUM = string.ascii_letters + string.digits
_UPPER_DIGITS = string.ascii_uppercase + string.digits

#: an e-mail address's domain, and what may not follow it (`EmailDetector.find` checks it
#: alone after each `@` before the whole pattern runs)
_DOMAIN_RE = (r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.){1,8}[A-Za-z]{2,24}"
              r"(?![A-Za-z0-9-])")
_DOMAIN = _p(_DOMAIN_RE)
_EMAIL = _p(rf"[{_START}](?<![A-Za-z0-9._%+-][\s\S])(?<![{_START}]'[\s\S])[{_LOCAL}]{{0,63}}"
            rf"@{_DOMAIN_RE}")
_PHONE = _p(r"[+(\d](?<![\w+.-][\s\S])(?:"
            r"(?<=\+)(?:\d{7,15}|\d{1,3}(?:[ .-]?\(\d{1,4}\)[ .-]?\d{1,10}|[ .-]\d{1,10})"
            r"(?:[ .-]\d{1,10}){0,5})"                                  # +CC groups, (area)
            r"|(?<=\()\d{3}\)[ .-]?\d{3}[ .-]\d{4}"                      # (555) 123-4567
            r"|(?<=1)[ .-](?:\(\d{3}\)[ .-]?|\d{3}[ .-])\d{3}[ .-]\d{4}"  # 1-555-123-4567
            r"|(?<=\d)\d{2}[ .-]\d{3}[ .-]\d{4}"                         # 555-123-4567
            r")(?![\w@]|[.-]\d)")
_CARD = _p(r"\d(?<![\w+][\s\S])(?<!\d[.-]\d)"   # not in a word, a number, a +phone
           r"(?:\d{12,18}"
           r"|\d{3}([ -])\d{4}\1\d{4}\1\d{4}\1\d{3}"    # 4-4-4-4-3
           r"|\d{3}([ -])\d{4}\2\d{4}\2\d{1,7}"         # 4-4-4-n
           r"|\d{3}([ -])\d{6}\3\d{4,5})"               # 4-6-5, 4-6-4
           r"(?!\w)")                       # an expiry, a CVC, any number may follow
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
    "email": (_EMAIL, "<EMAIL>", 640, _ALNUM + "._%+-@", _ALNUM + "._%+-", validators.email),
    "phone": (_PHONE, "<PHONE>", 80, string.digits + " .-()+", string.digits + "+(",
              validators.phone),
    "card": (_CARD, "<CARD>", 32, string.digits + " -", string.digits, validators.luhn),
    "us_ssn": (_SSN, "<SSN>", 16, string.digits + "-", string.digits, validators.ssn),
    "iban": (_IBAN, "<IBAN>", 48, _UPPER_DIGITS + " ", string.ascii_uppercase,
             validators.iban),
    "ipv4": (_IPV4, "<IP>", 20, string.digits + ".", string.digits, validators.ipv4),
    "ipv6": (_IPV6, "<IP>", 56, _HEX + ":.", _HEX + ":", validators.ipv6),
    "aws_access_key": (_AWS, "<SECRET>", 24, _UPPER_DIGITS, "A", None),
    "github_token": (_GITHUB, "<SECRET>", 272, _ALNUM + "_", "g", None),
    "openai_key": (_OPENAI, "<SECRET>", 256, _ALNUM + "_-", "s", validators.openai_key),
    "anthropic_key": (_ANTHROPIC, "<SECRET>", 264, _ALNUM + "_-", "s", None),
    "private_key": (_PRIVATE_KEY, "<SECRET>", 9216, "", "-", None),
    "jwt": (_JWT, "<SECRET>", 8192, _ALNUM + "_-.", "e", None),
}
# the closing check of the patterns whose candidates a validator may reject for a shorter one
# to pass (too many digits for a phone, a failed Luhn check); the other validators judge a
# fixed shape, or pick their accepted prefix themselves. The e-mail pattern states its label
# rule (no '-' at either end) itself, so its validator never rejects and nothing is retried:
# retrying at every boundary of crafted "a-a-a-...-.cc" candidates cost 0.6 s of CPU per MiB.
_AFTER: dict[str, re.Pattern[str]] = {name: _p(close) for name, close in {
    "phone": r"(?![\w@]|[.-]\d)", "card": r"(?!\w)",
}.items()}
assert all(_BUILTINS[n][0].pattern.endswith(a.pattern) for n, a in _AFTER.items())
#: the fewest characters a match of these has: 13 digits for a card, 7 for a phone (so a
#: shorter candidate is never tried)
_SHORTEST: dict[str, int] = {"card": 13, "phone": 7}
#: verdicts a stream's memo keeps (`PatternDetector._accept`): its masker's window holds a
#: few dozen candidates at a time; cleared when full. Only candidates up to `MEMO_LONGEST`
#: characters are kept (a card, a phone, an IBAN, an IP; not a long e-mail or key): at most
#: about 200 KB a stream, 70 KB for ASCII text
MEMO_SIZE = 512
MEMO_LONGEST = 96
#: a group boundary: a character that is not an ASCII letter or digit, after one that is
_BOUNDARY = re.compile(r"(?<=[A-Za-z0-9])[^A-Za-z0-9]")
BUILTIN_PLACEHOLDERS: dict[str, str] = {name: spec[1] for name, spec in _BUILTINS.items()}


def builtin_detector(name: str, placeholder: str | None = None) -> PatternDetector:
    """A new instance of the built-in detector `name` (patterns are compiled once, at import)."""
    if name not in _BUILTINS:
        raise KeyError(name)
    pattern, default, max_len, chars, starts, validate = _BUILTINS[name]
    cls = PrivateKeyDetector if name == "private_key" else \
        EmailDetector if name == "email" else PatternDetector
    return cls(name, pattern, placeholder or default, max_len, chars, starts, validate,
               _AFTER.get(name), _SHORTEST.get(name, 1))

