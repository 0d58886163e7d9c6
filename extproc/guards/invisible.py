"""Invisible characters: the text the built-in detectors read with them taken out, and the way
back to the places in the text as written.

A zero-width space, joiner or non-joiner, a soft hyphen, a word joiner, a byte order mark, a
variation selector, a bidirectional control or a tag character shows nothing, so a value with
them inside (`john\\u200b.doe@example.com`, a key with one after every character) reads to a
client, a model or a human as the plain value, and a tool that parses it usually drops them.
They are Unicode's default ignorable code points (`DerivedCoreProperties.txt`,
`Default_Ignorable_Code_Point`): a renderer shows nothing for them when it cannot draw them.

The built-ins read a text as written, folded (`fold`), and both with these taken out
(`Compacted`, more readings in `scanner.Scanner`): a match found there is mapped back to
the text as written, from its first visible character to its last, so the placeholder
replaces the invisible characters inside a value with it and nothing else. The text passed
on is unchanged where no value is found: emoji sequences (joiners, variation selectors),
Persian and Indic text (non-joiners) and bidirectional marks stay as they are. Taking them
out can glue a value to a word (`card\\u200b4111…`): the readings with them in find it there.

Tag characters (`U+E0020`-`U+E007E`) spell ASCII that no one sees and a model reads ("ASCII
smuggling": a prompt or a reply can carry a key written in them): the built-ins read them a
further way, as the ASCII they stand for, the other invisible characters taken out and
every other character a space (`tagged`), so a value spelled in them is masked where it
stands.

Taking characters out is not one for one, so a match is longer in the text as written than
in this reading by the invisible characters inside it: a streaming masker holds those too
(`stream.StreamMasker`): where they carry what it holds past its longest match, up to
`HIDDEN_MOST` of them, past which the stream is refused (`TOO_MANY_HIDDEN`) rather than a
value's start released. The built-ins read both
the text as written and its fold with them taken out: a look-alike beside a value (an en
dash after an address) glues it to a word in the fold, and an invisible character inside it
breaks it as written.

Cost: an ASCII text has none (one check, in C); any other is searched once (one character
class), and only a text with some is copied and read again. A streaming masker whose
detectors are all built-ins keeps each run of them in the text it released as one character
(`squeeze`), so the context it reads again with every piece stays short however many came
(a custom pattern may count them: there the context reaches back over at most
`CONTEXT_HIDDEN_MOST`).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from itertools import accumulate
from typing import NamedTuple

#: Unicode's Default_Ignorable_Code_Point (16.0.0): a unit test checks them against the
#: general categories they are in (format, nonspacing marks, fillers, unassigned in the
#: ranges Unicode reserves as ignorable)
RANGES: tuple[tuple[int, int], ...] = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160),
    (0x17B4, 0x17B5), (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E),
    (0x2060, 0x206F), (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A),
    (0xE0000, 0xE0FFF),
)
_CLASS = "".join(f"\\U{lo:08x}-\\U{hi:08x}" if lo != hi else f"\\U{lo:08x}"
                 for lo, hi in RANGES)
#: one invisible character; a run of them
INVISIBLE: re.Pattern[str] = re.compile(f"[{_CLASS}]")
_RUN = re.compile(f"[{_CLASS}]+")
_SPLIT = re.compile(f"([{_CLASS}]+)")

# a run of them, its first kept (`squeeze`)
_SQUEEZE = re.compile(f"([{_CLASS}])[{_CLASS}]+")

#: the tag characters that stand for printable ASCII (`U+E0020`-`U+E007E`: a space to a tilde),
#: which a model reads as the ASCII they spell ("ASCII smuggling"); the rest of the text in
#: their reading (`tagged`)
_TAG = re.compile("[\U000e0020-\U000e007e]")
_NOT_TAG = re.compile("[^\U000e0020-\U000e007e]")
_TAG_ASCII = {cp: cp - 0xE0000 for cp in range(0xE0020, 0xE007F)}
# a run of the invisible characters other than those (taken out of the tag reading)
_NOT_TAG_CLASS = _CLASS.replace("\\U000e0000-\\U000e0fff",
                                "\\U000e0000-\\U000e001f\\U000e007f-\\U000e0fff")
assert _NOT_TAG_CLASS != _CLASS
_SPLIT_NOT_TAG = re.compile(f"([{_NOT_TAG_CLASS}]+)")
_SQUEEZE_NOT_TAG = re.compile(f"([{_NOT_TAG_CLASS}])[{_NOT_TAG_CLASS}]+")

#: invisible characters a streaming masker holds at most past its longest match
#: (`stream.StreamMasker`): past it the stream is refused with `TOO_MANY_HIDDEN` (a value's
#: start is never released for them)
HIDDEN_MOST = 4096
#: invisible characters a streaming masker whose scanner has a custom pattern reaches back
#: over in its left context at most (the others keep each run as one: `stream._left_as`)
CONTEXT_HIDDEN_MOST = 1024
#: why a stream is refused past `HIDDEN_MOST`
TOO_MANY_HIDDEN = "too_many_invisible"


def has(text: str) -> bool:
    """Whether `text` holds an invisible character."""
    return not text.isascii() and INVISIBLE.search(text) is not None


def count(text: str) -> int:
    """How many invisible characters `text` holds."""
    if text.isascii():
        return 0
    return sum(map(len, _RUN.findall(text)))


def squeeze_not_tags(text: str) -> str:
    """`text` with each run of invisible characters other than tag characters cut to its
    first (the tag characters' reading takes them out: `tagged`)."""
    if text.isascii():
        return text
    return _SQUEEZE_NOT_TAG.sub(r"\1", text)


def compacted(text: str) -> str | None:
    """`text` with its invisible characters taken out; None when it holds none."""
    if text.isascii():
        return None
    out = _RUN.sub("", text)
    return None if len(out) == len(text) else out


def squeeze(text: str) -> str:
    """`text` with each run of invisible characters cut to its first."""
    if text.isascii():
        return text
    return _SQUEEZE.sub(r"\1", text)


def count_not_tags(text: str) -> int:
    """How many invisible characters other than tag characters `text` holds."""
    if text.isascii():
        return 0
    return sum(map(len, _SPLIT_NOT_TAG.findall(text)))


def trailing(text: str) -> int:
    """How many invisible characters end `text`."""
    if not text or text[-1].isascii():
        return 0
    # matched from the end (found by review: a search for a run before the end of the text
    # tried every place in every run, quadratic in a run's length)
    m = _RUN.match(text[::-1])
    return 0 if m is None else m.end()


def tagged(text: str) -> Compacted | None:
    """What `text` spells in tag characters: each tag character as the ASCII it stands for,
    the other invisible characters taken out (one between two tag characters hides nothing
    from a model either: found by review) and every other character a space, so a value
    spelled in them reads apart from the visible text around it; with the way back to the
    text (`Compacted.place`). None when it has none."""
    if text.isascii() or _TAG.search(text) is None:
        return None
    pieces = _SPLIT_NOT_TAG.split(text)
    if len(pieces) == 1:
        return Compacted(_NOT_TAG.sub(" ", text).translate(_TAG_ASCII), [], [])
    seen = pieces[0::2]
    return Compacted(_NOT_TAG.sub(" ", "".join(seen)).translate(_TAG_ASCII),
                     list(accumulate(map(len, seen[:-1]))),
                     list(accumulate(map(len, pieces[1::2]))))


class Compacted(NamedTuple):
    """A text with its invisible characters taken out, and where they were: `at[k]` is the
    place in `text` before which the k-th run was, `before[k]` how many were taken out up to
    and including that run."""

    text: str
    at: list[int]
    before: list[int]

    @classmethod
    def of(cls, text: str) -> Compacted | None:
        """`text` compacted, or None when it holds no invisible character."""
        if text.isascii():
            return None
        pieces = _SPLIT.split(text)   # the visible runs and the invisible ones, alternating
        if len(pieces) == 1:
            return None
        seen = pieces[0::2]
        return cls("".join(seen), list(accumulate(map(len, seen[:-1]))),
                   list(accumulate(map(len, pieces[1::2]))))

    def again(self, text: str) -> Compacted:
        """`text`, which holds its invisible characters where this one's text as written did
        (its fold, or the text of which this is the fold), compacted the same way."""
        return self._replace(text=_RUN.sub("", text))

    def place(self, j: int) -> int:
        """Where the character at `j` of `text` stands in the text as written."""
        k = bisect_right(self.at, j)
        return j + (self.before[k - 1] if k else 0)

    def span(self, start: int, end: int) -> tuple[int, int]:
        """`text[start:end]` (not empty) in the text as written: from its first character to
        its last, the invisible ones between them included."""
        return self.place(start), self.place(end - 1) + 1

    def visible(self, i: int) -> int:
        """How many characters of `text` stand before `i` of the text as written."""
        # the runs end before i where at[k] + before[k] <= i (their last character before i)
        lo, hi = 0, len(self.at)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.at[mid] + self.before[mid] <= i:
                lo = mid + 1
            else:
                hi = mid
        if lo == 0:
            return min(i, self.at[0]) if self.at else i
        taken = self.before[lo - 1]
        if lo < len(self.at):   # inside the next run: its characters before i are no text
            run_start = self.at[lo] + self.before[lo - 1]
            if i > run_start:
                return self.at[lo]
        return i - taken
