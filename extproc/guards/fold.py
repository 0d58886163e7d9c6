"""What the built-in detectors read: a text folded to its ASCII look-alike, one character for
one, so that a value spelled with look-alike characters is found as its plain spelling.

A card number in fullwidth, Arabic-Indic or mathematical bold digits, grouped by no-break
spaces or Unicode hyphens, an address with a fullwidth or small at sign: each reads to a
client, a model or a human as the plain value, so the built-ins read it as that. Folded:
- every decimal digit of any script (Unicode `Nd`) to its ASCII digit;
- a character whose compatibility form (NFKC) is one ASCII character, for the fullwidth,
  small, font (mathematical letters and digits), no-break and spacing variants (not
  superscripts, subscripts, circled or squared forms: a footnote mark after a number is no
  digit of it);
- Unicode hyphens, the en dash and the minus sign to `-`, the Braille blank to a space;
only where the result is a character the built-ins' matches are made of (`_TARGETS`).
Letters of other alphabets drawn like Latin ones (a Cyrillic a) are not folded: Russian or
Greek prose would pay for it in every word, and a domain so spelled is another domain.

The built-ins read both the text as written and its fold (`scanner.Scanner`): a look-alike
beside a value may fold to what glues it to a word (a Japanese full stop before a number, an
en dash after an address), and as written it still stands apart. One character for one (a
code point for a code point), so a match's place in the folded text is its place in the
text: spans mask the text as written. Folding a character never depends
on its neighbours, so a text folded piece by piece is the whole text folded, and a streaming
masker stays exact. Custom patterns and word lists read the text as written (their authors
wrote them for it); webhook guards get it as written too. Zero-width and other invisible
characters are not folded (taking them out is not one for one): the built-ins read the fold
with them taken out as one more reading (`invisible`).

Cost: an ASCII text is returned as it is (one check); any other is searched once for a
character that may fold (`_FOLDABLE`, one character class: CJK, Cyrillic or accented prose
has none, or a few), and only the runs of such characters are translated, in C. A
streaming masker folds each piece once, as it arrives, and keeps the fold of what it holds
(`stream.StreamMasker`). A text that folds is read twice: prose with a look-alike in each
sentence (a no-break space, an en dash) costs 3-8 times its ASCII twin, about 60 ms per
million characters, far below the costliest text (digit groups, docs/security.md).
"""

from __future__ import annotations

import array
import re
import string
import unicodedata
from collections.abc import Iterable

# the compatibility decompositions folded (see the module docstring); "" is a canonical one
_TAGS = frozenset(("", "<wide>", "<narrow>", "<small>", "<font>", "<noBreak>", "<compat>"))

_EXPLICIT: dict[int, str] = {
    **{cp: "-" for cp in (0x2010, 0x2011, 0x2012, 0x2013, 0x2043, 0x2212, 0xFE58, 0xFE63,
                          0xFF0D)},
    # the Braille blank: no decomposition, but it renders as a space (found by review: a
    # card grouped by it read as the spaced card)
    0x2800: " ",
}
#: what a character may fold to: what the built-ins' matches are made of. Folding a CJK
#: comma, colon or bracket, an ideographic full stop or an em dash (in nearly every
#: sentence of some prose) would change no match, and cost every text that has one
_TARGETS = frozenset(string.ascii_letters + string.digits + " .-+@_%'")
#: where the characters that fold other than digits are (read off every code point: a unit
#: test holds the two equal), searched once, on first use, instead of all 1.1 million
_BLOCKS = ((0xA0, 0x2FF), (0x370, 0x3FF), (0x1F00, 0x218F), (0x2212, 0x2212),
           (0x2800, 0x2800), (0x3000, 0x303F), (0xFB00, 0xFB4F), (0xFE30, 0xFE6F), (0xFF00, 0xFFEF),
           (0x1D400, 0x1D7FF))


def fold_char(ch: str) -> str:
    """One character's ASCII look-alike (itself when it has none)."""
    if ch.isascii():
        return ch
    cp = ord(ch)
    if cp in _EXPLICIT:
        return _EXPLICIT[cp]
    if ch.isdecimal():
        return str(unicodedata.decimal(ch))
    decomposition = unicodedata.decomposition(ch)
    tag = decomposition.split(" ", 1)[0] if decomposition.startswith("<") else ""
    if decomposition and tag in _TAGS:
        folded = unicodedata.normalize("NFKC", ch)
        if folded in _TARGETS:
            return folded
    return ch


def foldable() -> dict[str, str]:
    """Every character that folds, and what to."""
    every = array.array("I", range(0x80, 0xD800))   # every code point but ASCII and the
    every.extend(range(0xE000, 0x110000))             # surrogates, as one str, made in C
    digits = re.findall(r"\d", every.tobytes().decode("utf-32-le"))
    found = {ch: fold_char(ch) for ch in digits}
    for lo, hi in _BLOCKS:
        for cp in range(lo, hi + 1):
            ch = chr(cp)
            to = fold_char(ch)
            if to != ch:
                found[ch] = to
    return found


#: `str.translate`'s table: each code point that folds to its look-alike's
_TABLE: dict[int, int] = {}
_FOLDABLE: re.Pattern[str] | None = None


def prepare() -> re.Pattern[str]:
    """Build the table (about 0.1 s, once per process): `Scanner` does when it is made, so
    that no request waits for it."""
    global _FOLDABLE
    if _FOLDABLE is None:
        found = foldable()
        _TABLE.update({ord(ch): ord(to) for ch, to in found.items()})
        bmp = _ranges(ch for ch in sorted(found) if ord(ch) < 0x10000)
        # runs of the BMP's characters that fold and of any character of the other planes:
        # one class, which `re` reads from a bitmap and one range (the exact class, with
        # the other planes' few dozen ranges, it reads range by range: 15 times slower)
        _FOLDABLE = re.compile(f"[{bmp}\U00010000-\U0010ffff]+")
    return _FOLDABLE


def _ranges(chars: Iterable[str]) -> str:
    """A character class's body for `chars` (in order): each run of consecutive ones as a
    range."""
    out: list[str] = []
    start = prev = -2
    for cp in map(ord, chars):
        if cp != prev + 1:
            if start >= 0:
                out.append(_span(start, prev))
            start = cp
        prev = cp
    if start >= 0:
        out.append(_span(start, prev))
    return "".join(out)


def _span(lo: int, hi: int) -> str:
    return re.escape(chr(lo)) if lo == hi else f"{re.escape(chr(lo))}-{re.escape(chr(hi))}"


def fold(text: str) -> str:
    """`text` with each character folded to its ASCII look-alike (same length); `text`
    itself when nothing in it folds."""
    if text.isascii():
        return text
    pattern = _FOLDABLE or prepare()
    if pattern.search(text) is None:
        return text
    # each run of characters that may fold, translated (in C): one call per run, so prose
    # with a dash per sentence and a run of fullwidth digits both cost little
    out = pattern.sub(_run, text)
    return text if out == text else out   # (an emoji: of another plane, folds to itself)


def _run(m: re.Match[str]) -> str:
    return m.group().translate(_TABLE)
