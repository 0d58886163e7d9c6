"""Several detectors as one: their matches with overlaps resolved, their common `tail_start`,
masking with placeholders, and the catalogue of built-in detectors by name. The built-ins
read each text as written, folded to its ASCII look-alike (`fold`) and folded with its
invisible characters taken out (`invisible`), custom detectors as written.

Sans-IO like the detectors: a streaming masker can keep a buffer, emit the part before
`tail_start` (spans of `find` that start before it are final) and hold the rest.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from extproc.guards.detectors import (
    BUILTIN_PLACEHOLDERS,
    Detector,
    Memo,
    PatternDetector,
    Span,
    builtin_detector,
)
from extproc.guards.fold import fold, prepare
from extproc.guards.invisible import Compacted, compacted, tagged

BUILTIN_NAMES: tuple[str, ...] = (
    "email", "phone", "card", "us_ssn", "iban", "ipv4", "ipv6",
    "aws_access_key", "github_token", "openai_key", "anthropic_key", "private_key", "jwt",
)
# names that stand for several built-ins, in `builtin()` and in its placeholders
BUILTIN_GROUPS: dict[str, tuple[str, ...]] = {
    "ip": ("ipv4", "ipv6"),
    "secrets": ("aws_access_key", "github_token", "openai_key", "anthropic_key", "private_key",
                "jwt"),
}
assert set(BUILTIN_NAMES) == set(BUILTIN_PLACEHOLDERS)

#: what every match of a built-in contains (read off its pattern): one of some characters,
#: and a string a pattern finds. A text without it needs no full scan: prose mostly has
#: neither '@' nor a run of digits ("grew 12%" or "in 2024" fail the digit checks).
_NEEDS: dict[str, tuple[str, re.Pattern[str]]] = {name: (chars, re.compile(need, re.ASCII))
                                                 for name, (chars, need) in {
    "email": ("@", "@"),
    "phone": (string.digits, r"\+\d|\d{3}[ .-]\d{4}"),  # +CC..., or ends like 555-0100
    "card": (string.digits, r"\d{4}[\d -]\d"),          # 13+ digits, the first 4 together
    "us_ssn": (string.digits, r"\d-\d\d-\d"),
    "iban": (string.digits, r"[A-Z][A-Z]\d\d"),
    "ipv4": (string.digits, r"\d\.\d"),
    "ipv6": (":", ":"),
    "aws_access_key": ("A", "A[KS]IA"), "github_token": ("g", "gh[pousr]_|github_pat_"),
    "openai_key": ("s", "sk-"), "anthropic_key": ("s", "sk-ant-"),
    "private_key": ("-", "-----BEGIN"), "jwt": ("e", "eyJ"),
}.items()}
assert set(_NEEDS) == set(BUILTIN_NAMES)


def _expand(name: str) -> tuple[str, ...]:
    if name in BUILTIN_GROUPS:
        return BUILTIN_GROUPS[name]
    if name in BUILTIN_PLACEHOLDERS:
        return (name,)
    known = ", ".join((*BUILTIN_NAMES, *BUILTIN_GROUPS))
    raise ValueError(f"unknown built-in detector {name!r} (known: {known})")


def builtin(names: Iterable[str] | None = None,
            placeholders: Mapping[str, str] | None = None) -> list[Detector]:
    """Built-in detectors by name (or group name: 'ip', 'secrets'), in the order given (the
    order breaks ties between equal overlapping matches); None means all. `placeholders` maps
    a name or a group name to its placeholder; a name wins over its group."""
    wanted: list[str] = []
    for name in BUILTIN_NAMES if names is None else names:
        wanted.extend(n for n in _expand(name) if n not in wanted)
    chosen: dict[str, str] = {}
    for key, value in (placeholders or {}).items():
        for n in _expand(key):
            if key in BUILTIN_GROUPS:
                chosen.setdefault(n, value)
            else:
                chosen[n] = value
    return [builtin_detector(n, chosen.get(n)) for n in wanted]


class _Tailing(NamedTuple):
    """The detectors to ask for a tail; for the plain built-ins among them (exactly
    `PatternDetector`s) the union of their match characters, their longest reach and a
    pattern of the characters they can start with (None without such built-ins); and the
    `others`, always asked."""

    detectors: tuple[Detector, ...]
    reach: int
    chars: str
    starts: re.Pattern[str] | None
    others: tuple[Detector, ...]

    @classmethod
    def of(cls, detectors: tuple[Detector, ...]) -> _Tailing:
        plain = [d for d in detectors if type(d) is PatternDetector]
        others = tuple(d for d in detectors if type(d) is not PatternDetector)
        if not plain:
            return cls(detectors, 0, "", None, others)
        chars = "".join(sorted({ch for d in plain for ch in d.match_chars}))
        starts = "".join(sorted({ch for d in plain for ch in d.start_chars}))
        return cls(detectors, max(d.max_len for d in plain), chars,
                   re.compile(f"[{re.escape(starts)}]"), others)


#: the longest lookbehind of the built-in patterns, in characters before the match (`_CARD`'s
#: `(?<!\d[.-]\d)`: two), with room to spare
LOOKBEHIND = 4


class Scanner:
    """Detectors combined; the placeholders are looked up by detector name.

    Overlapping matches are resolved leftmost first, then longest, then by detector order,
    and no character any detector matched is left out: a match inside a kept one is dropped,
    one that reaches past it is kept from where the kept one ends (a phone number that ran
    into a card number's first group: '<PHONE><CARD>'). So a span never starts before its
    detector's match, and which spans start before `tail_start` stays final."""

    def __init__(self, detectors: Sequence[Detector]) -> None:
        self.detectors: tuple[Detector, ...] = tuple(detectors)
        self._placeholders: dict[str, str] = {}
        for d in self.detectors:
            if d.name in self._placeholders:
                raise ValueError(f"two detectors are named {d.name!r}")
            self._placeholders[d.name] = d.placeholder
        self.max_len: int = max((d.max_len for d in self.detectors), default=0)
        #: how many characters before a match decide whether it holds (a built-in's
        #: lookbehind: a card's first digit must not follow `7.`): a streaming masker's left
        #: context is never shorter (`StreamMasker`)
        self.lookbehind: int = LOOKBEHIND if any(isinstance(d, PatternDetector)
                                                 for d in self.detectors) else 0
        needs = [_NEEDS.get(d.name) if isinstance(d, PatternDetector) else None
                 for d in self.detectors]
        self._needs = tuple(n[1] if n is not None else None for n in needs)
        #: which detectors also read the text folded (`fold`: the built-ins), and whether any
        #: does
        self._folds = tuple(isinstance(d, PatternDetector) for d in self.detectors)
        self.folds: bool = any(self._folds)
        #: every detector a built-in (none reads an invisible character as part of a match)
        self.builtins_only: bool = all(self._folds)
        #: `find_from` takes a stream's memo of the built-ins' verdicts (`StreamMasker`)
        self.takes_memo: bool = self.folds
        if self.folds:
            prepare()
        # what any match of any detector contains (None: some detector has no such need)
        self._any_char: re.Pattern[str] | None = None
        self._any_need: tuple[re.Pattern[str], ...] = ()
        if None not in needs:
            chars = "".join(sorted({ch for n in needs if n is not None for ch in n[0]}))
            self._any_char = re.compile(f"[{re.escape(chars)}]" if chars else "(?!)")
            self._any_need = tuple(dict.fromkeys(n[1] for n in needs if n is not None))
        # by a text's last character: the detectors whose tail can be short of the end, and
        # the shared look of the built-ins among them (`_Tailing`)
        self._tailing: dict[str, _Tailing] = {}

    def may_match(self, text: str, start: int = 0, folded: str | None = None,
                  hidden: bool = True) -> bool:
        """False when no detector's match can start at or after `start`: a cheap check for
        what every match of a built-in contains (always True with other detectors). A span of
        `find(text)` may still start there when it continues a match begun before `start`.
        `folded`: `fold(text)`, when the caller has it (a streaming masker folds each piece
        once). `hidden` False: the caller knows the text holds no invisible character (a
        streaming masker before the first), so its readings without them are skipped."""
        any_char = self._any_char
        if any_char is None:
            return True
        if any_char.search(text, start) is not None \
                and any(need.search(text, start) is not None for need in self._any_need):
            return True
        if folded is None:
            folded = self.folded(text)
        if folded is not text and self._may(folded, start):
            return True
        if not hidden or folded.isascii() or not self.folds:
            return False
        # (a need is found without lookbehind: in the rest compacted, if it starts there)
        rest = compacted(folded[start:])
        if rest is None:
            return False
        tags = tagged(text)
        return self._may(rest, 0) \
            or (tags is not None and self._may(tags.text, tags.visible(start)))

    def _may(self, text: str, start: int) -> bool:
        if self._any_char is None or self._any_char.search(text, start) is None:
            return False
        return any(need.search(text, start) is not None for need in self._any_need)

    def folded(self, text: str) -> str:
        """What the built-ins read besides `text`: `fold(text)` (`text` itself when nothing
        in it folds, or no built-in reads it)."""
        return fold(text) if self.folds else text

    def find(self, text: str) -> list[Span]:
        """All detectors' matches, non-overlapping (see the class), left to right."""
        return self.find_from(text, 0)

    def find_from(self, text: str, start: int, crossing: bool = False,
                  folded: str | None = None, memo: Memo | None = None,
                  hidden: bool = True) -> list[Span]:
        """`find` as a streaming masker needs it, `text[:start]` being left context (text
        already released): the detectors' matches that start before `start` are dropped
        before overlaps are resolved, so one that the cut context made up (a lookbehind
        that no longer sees what came before the cut lets a match start there, longer than
        any in the whole text) cannot shadow a real match after `start`; with `crossing`,
        one that runs past `start` is kept from there on (the rest of a match that
        overlapped a released span), ranked by where it really starts.

        The built-ins read the text as written and folded (`folded`, else `fold(text)`):
        a value in look-alike characters is found in the fold, and one that a look-alike
        beside it would glue to a word there (a Japanese full stop before a number) as
        written; and both compacted (`invisible.Compacted`, when they hold invisible
        characters): a value with a zero-width space inside is found there, its span mapped
        back to the text from its first visible character to its last; and what the text
        spells in tag characters (`invisible.tagged`). Custom detectors read
        it as written. The fold has the text's length, so every span is a place in `text`.
        `memo`: the stream's verdicts of the built-ins' candidates (`PatternDetector.find`),
        kept from one call to the next. `hidden`: as in `may_match`."""
        if folded is None:
            folded = self.folded(text)
        both = folded is not text
        compact = None if not hidden or folded.isascii() or not self.folds \
            else Compacted.of(folded)
        # (tag characters are invisible ones)
        tags = tagged(text) if compact is not None else None
        any_char = self._any_char
        if any_char is not None and any_char.search(text) is None \
                and (not both or any_char.search(folded) is None) \
                and (tags is None or any_char.search(tags.text) is None):
            return []   # not one character any match holds (most prose): one search
        found: list[tuple[int, int, int, Span]] = []
        readings: tuple[str, ...] = (text, folded) if both else (text,)
        for rank, (detector, need) in enumerate(zip(self.detectors, self._needs, strict=True)):
            for reading in readings if self._folds[rank] else (text,):
                if need is not None and need.search(reading) is None:
                    continue   # cannot match here: skip the detector's full scan
                for s in detector.find(reading) if memo is None or not self._folds[rank] \
                        else detector.find(reading, memo):  # type: ignore[call-arg]
                    if s.start >= start:
                        found.append((s.start, s.start - s.end, rank, s))
                    elif crossing and s.end > start:
                        found.append((s.start, s.start - s.end, rank,
                                      Span(start, s.end, s.detector)))
            if compact is not None and self._folds[rank]:
                self._find_hidden(compact, detector, need, rank, start, crossing, memo, found)
                if both:   # as written too: a look-alike beside the value stays apart
                    self._find_hidden(compact.again(text), detector, need, rank, start,
                                      crossing, memo, found)
                if tags is not None:
                    self._find_hidden(tags, detector, need, rank, start, crossing, memo,
                                      found)
        if not found:
            return []
        found.sort(key=lambda f: f[:3])
        spans: list[Span] = []
        end = 0
        for start, _, _, span in found:
            if span.end > end:
                spans.append(span if start >= end else Span(end, span.end, span.detector))
                end = span.end
        return spans

    @staticmethod
    def _find_hidden(hidden: Compacted, detector: Detector, need: re.Pattern[str] | None,
                     rank: int, start: int, crossing: bool, memo: Memo | None,
                     found: list[tuple[int, int, int, Span]]) -> None:
        """A built-in's matches in the fold with its invisible characters taken out, as places
        in the text as written (`find_from`)."""
        reading = hidden.text
        if need is not None and need.search(reading) is None:
            return
        for s in detector.find(reading) if memo is None \
                else detector.find(reading, memo):  # type: ignore[call-arg]
            a, b = hidden.span(s.start, s.end)
            if a >= start:
                found.append((a, a - b, rank, Span(a, b, s.detector)))
            elif crossing and b > start:
                found.append((a, a - b, rank, Span(start, b, s.detector)))

    def tail_start(self, text: str, folded: str | None = None, hidden: bool = True) -> int:
        """The earliest `tail_start` of the detectors: the text from there on must be held.
        The built-ins read the text as written, folded and compacted, as in `find_from`
        (`hidden`: as in `may_match`)."""
        if not text:
            return 0
        if folded is None:
            folded = self.folded(text)
        n = self._tail(text, text, False)
        if folded is not text:
            n = min(n, self._tail(folded, text, True))
        compact = None if not hidden or folded.isascii() or not self.folds \
            else Compacted.of(folded)
        if compact is not None:
            for compacted in (compact, compact.again(text)) if folded is not text \
                    else (compact,):
                if compacted.text:
                    ts = self._tail(compacted.text, compacted.text, True)
                    if ts < len(compacted.text):
                        n = min(n, compacted.place(ts))
            tags = tagged(text)
            if tags is not None and tags.text:
                ts = self._tail(tags.text, tags.text, True)
                if ts < len(tags.text):
                    n = min(n, tags.place(ts))
        return n

    def _tail(self, reading: str, text: str, builtins_only: bool) -> int:
        """`tail_start` with the built-ins reading `reading` (the text or its fold) and the
        other detectors `text` (or, `builtins_only`, not asked)."""
        n = len(reading)
        last = reading[-1]
        tailing = self._tailing.get(last)
        if tailing is None:
            tailing = self._detectors_ending_with(last)
        detectors, reach, chars, starts, others = tailing
        if starts is not None:
            # the fast path: one look at the run of characters that any of these built-ins'
            # matches are made of; without a character one of them can start with in it,
            # none holds anything (each one's own run is a suffix of it), only the others do
            lo = n - reach if n > reach else 0
            if starts.search(reading, lo + len(reading[lo:].rstrip(chars))) is None:
                detectors = others
        for d in detectors:
            if isinstance(d, PatternDetector):
                ts = d.tail_start(reading)
            elif builtins_only:
                continue
            else:
                ts = d.tail_start(text)
            if ts < n:
                n = ts
        return n

    def _detectors_ending_with(self, last: str) -> _Tailing:
        """The detectors whose `tail_start` can be short of the end of a text ending with
        `last` (a built-in's is not, unless its `can_end(last)`: for most, `last` is one of
        the characters of its matches)."""
        found = tuple(d for d in self.detectors if not isinstance(d, PatternDetector)
                      or d.can_end(last))
        tailing = _Tailing.of(found)
        if len(self._tailing) < 4096:
            self._tailing[last] = tailing
        return tailing

    def mask(self, text: str, spans: list[Span] | None = None) -> str:
        """`text` with each span (by default: `find(text)`) replaced by its detector's
        placeholder. Spans must not overlap."""
        parts: list[str] = []
        pos = 0
        for span in sorted(self.find(text) if spans is None else spans,
                           key=lambda s: (s.start, s.end)):
            if span.start < pos or span.end > len(text):
                raise ValueError(f"span {span} overlaps another or is out of the text")
            if span.detector not in self._placeholders:
                raise ValueError(f"span {span} is from no detector of this scanner")
            parts += (text[pos:span.start], self._placeholders[span.detector])
            pos = span.end
        parts.append(text[pos:])
        return "".join(parts)
