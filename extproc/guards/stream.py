"""Sans-IO streaming masker: releases streamed LLM text as early as possible, with sensitive
values masked exactly as the guard scanner masks the whole text, for any chunking of the stream.

For any split of a text into pieces, ``"".join(m.feed(p) for p in pieces) + m.finish()`` equals
``scanner.mask(text)``. The masker keeps the unreleased text (the buffer) and up to ``context``
characters of already released raw text before it (left context: never emitted again, it lets
lookbehinds and word boundaries see what they see in the whole text). On each piece it scans
context + buffer and picks the hold point, where the held-back text starts (when the scanner's
``may_match`` rules out any match starting in the buffer, as it does for most prose, the scan
is skipped and only ``tail_start`` is computed):

- ``scanner.tail_start``: from there on the text could still grow into a match;
- a match reaching into the held text, or ending less than ``LOOKAHEAD`` characters before the
  end of what has arrived, is not final (more text could extend it, or fail a boundary check
  right after it): the hold moves back to its start;
- everything before the hold is released at once, masked with the matches in it.

Held text is bounded: after each look at what is held, at most ``scanner.max_len + LOOKAHEAD``
characters (``bound``). Where the rules would hold more, the hold is cut to that bound, never
inside a match: a match the cut falls in is released whole, masked. The built-ins also read
the text with its invisible characters taken out (`invisible`), where a match is longer as
written by the invisible characters inside it: the bound and the left context count visible
characters (the invisible ones among them held too, at most ``HIDDEN_MOST``: past it a stream
is refused when the hold would be cut; the left context keeps each run of them as one, which
no built-in's reading tells from the run, or, with a custom pattern in the scanner, which may
count them, reaches back over at most ``CONTEXT_HIDDEN_MOST`` of them: past that a stream can mask
more than the whole text, never less), and a match followed by nothing but invisible
characters is not final.

Long held text is looked at again only once it has grown by an eighth: when the masker held
at least ``batch`` characters after its last look (a run that could still be a key, a token
or an address: an open ``-----BEGIN`` block, a base64 string after ``eyJ``, base64 data that
could still end in ``@``), a piece that leaves the held text less than an eighth longer than
that is added to it unread and nothing is released. Each look reads all that is held, so
looking on every piece cost each piece the whole held text (a 30 KB base64 string in
4-character tokens took seconds of the event loop); this way a stream costs time linear in
its length, held text stays under ``bound + bound // 8``, and text goes out at most an eighth
of the held text later than it could. Holding longer never changes what goes out, only when.

The scanner keeps the rest of a match that overlaps an earlier one, from the earlier one's end
on. When the released text ends with a match whose overlapping match's rest the scanner gave
(a span starting where the released text ends), the left context keeps all of it, so that rest
is found and masked as in the whole text; and then a match that runs from the left context
into the unreleased text is masked from there (it can only be such a rest, of a match cut
short by the context). With no such rest there is none to find later: a match starting before
the hold ends in the window that released it, or `tail_start` would have held it.
Exactness rests on this detector contract:

- a match is at most ``max_len`` characters long (a longer one can be missed or cut);
- whether a match holds depends on at most ``context`` characters before it and ``LOOKAHEAD``
  character after it; anything after that which could still change it must keep its start in
  ``tail_start`` (for instance an e-mail ``a@b.co`` followed by ``.``);
- ``tail_start`` is conservative: no match can start before it and end after the text's end.

With ``action="reject"`` the first match to become final raises `GuardTriggered` instead, and
nothing containing any part of it has been released.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from extproc.guards.fold import fold
from extproc.guards.invisible import (
    CONTEXT_HIDDEN_MOST,
    HIDDEN_MOST,
    TOO_MANY_HIDDEN,
    count,
    count_not_tags,
    has,
    squeeze,
    squeeze_not_tags,
    trailing,
)

if TYPE_CHECKING:
    from extproc.guards.detectors import Span

#: characters after a match that may decide whether it holds (a regex boundary or lookahead)
LOOKAHEAD = 1
#: held text from which the masker looks again only after it grew by an eighth (module doc)
BATCH = 256
ACTIONS = ("mask", "reject")


class ScannerLike(Protocol):
    """What the masker needs of a scanner (`extproc.guards.scanner.Scanner` is one): the
    detector contract above. A protocol, not the class: compiled, a parameter typed with a
    class only takes that class."""

    max_len: int

    def find(self, text: str) -> list[Span]: ...

    def tail_start(self, text: str, folded: str | None = None,
                   hidden: bool = True) -> int: ...

    def mask(self, text: str, spans: list[Span] | None = None) -> str: ...


class GuardTriggered(Exception):
    """A reject-mode guard found a sensitive value; nothing of it was released."""

    def __init__(self, detector: str) -> None:
        super().__init__(f"guard triggered: {detector}")
        self.detector = detector


class StreamMasker:
    """Feed text pieces (str) as they stream; get back text safe to release now."""

    def __init__(self, scanner: ScannerLike, *, action: str = "mask", context: int = 64,
                 batch: int = BATCH) -> None:
        if action not in ACTIONS:
            raise ValueError(f"action must be one of {ACTIONS}, not {action!r}")
        if context < 0:
            raise ValueError("context must not be negative")
        self.scanner = scanner
        self.action = action
        # never shorter than what decides whether a match holds (`Scanner.lookbehind`)
        self.context = max(context, getattr(scanner, "lookbehind", 0))
        #: the most characters held back after a look at them (between looks, an eighth more)
        self.bound = scanner.max_len + LOOKAHEAD
        #: held text from which pieces are added without a look until it grew by an eighth
        self.batch = max(1, batch)
        self._looked = 0         # characters held after the last look at the held text
        #: detector names of the matches released (or rejected) so far, in stream order
        self.found: list[str] = []
        self._left = ""          # released raw text kept as left context
        self._buf = ""           # raw text not released yet
        # a scanner whose built-ins also read the text folded (`Scanner.folds`): the fold of
        # each piece is made once, as it arrives, and kept beside the raw text (the same
        # length, cut at the same places; the same objects while nothing in them folds)
        self._folding: bool = bool(getattr(scanner, "folds", False))
        self._fleft = ""
        self._fbuf = ""
        self._stopped: str | None = None   # why no more feeding: "finished" or a detector
        # an invisible character came (`invisible`): the bound and the left context count
        # visible characters from then on, and the scanner reads the text without them
        # (before, there are none: a window with a curly quote would cost a search a look)
        self._hidden = False
        # the left context may keep each run of them as one (`_left_as`): no custom pattern
        # reads it (one may count them: `K[^Z]{0,80}Z`, found by review)
        self._squeezes = bool(getattr(scanner, "builtins_only", False))
        self._at_span = False    # the released text ends with a span
        # scanner.may_match(text, start): False when no match can start at or after `start`
        self._may_match = getattr(scanner, "may_match", None)
        # scanner.find_from(text, start, crossing): the matches from `start` on, those that
        # start in the left context dropped before overlaps are resolved (`_spans`)
        self._find_from = getattr(scanner, "find_from", None)
        # the built-ins' verdicts of the candidates in the held text, which each look reads
        # again (`PatternDetector._accept`): this stream's own, let go with it
        self._memo: dict[tuple[str, int, str], int] | None = \
            {} if getattr(scanner, "takes_memo", False) else None
        # boundaries between two texts read joined (`mark`) not yet released past: their
        # offsets in the held text; and where those released fell in the last output
        self._marks: list[int] = []
        self._cuts: list[int] = []

    @property
    def held(self) -> int:
        """Characters currently held back."""
        return len(self._buf)

    def mark(self) -> bool:
        """A boundary at the end of the text so far: the end of one text a client reads
        joined with the next (two content blocks), fed on as one text. True when nothing is
        held (the boundary lies after everything released); else the call that releases
        past it tells where it fell in its output (`take_cuts`): a match that starts before
        it falls before it whole, placeholder and all."""
        if not self._buf:
            return True
        self._marks.append(len(self._buf))
        return False

    def take_cuts(self) -> list[int]:
        """Where the boundaries released by the last `feed` or `finish` fell in its output
        (in order), and forget them."""
        cuts, self._cuts = self._cuts, []
        return cuts

    def feed(self, text: str) -> str:
        """Take the next piece; return the masked text that is safe to release now."""
        if self._stopped is not None:
            self._check()
        if not text:
            return ""
        if not self._hidden and self._folding and not text.isascii() and has(text):
            self._hidden = True
        left, buf = self._left, self._buf
        looked = self._looked
        if looked >= self.batch and len(buf) + len(text) - looked < looked >> 3:
            self._add(text)   # a long held text: looked at again once it grew by an eighth
            return ""
        # a look at all that is held (`_looked` records how much it held after)
        window, c = left + buf + text, len(left)
        fwindow = window          # its fold (`_folding`): the same object while none differs
        if self._folding:
            fleft, fbuf = self._fleft, self._fbuf
            if not text.isascii() or fleft is not left or fbuf is not buf:
                ftext = fold(text)
                if ftext is not text or fleft is not left or fbuf is not buf:
                    fwindow = fleft + fbuf + ftext
        may_match = self._may_match
        if may_match is None or self._at_span or (
                may_match(window, c, fwindow, self._hidden) if self._folding
                else may_match(window, c)):
            self._hold_from(window, fwindow, c)   # held, should a reject stop here
            spans = self._spans(window, c, fwindow)
            out = self._release(window, c, self._hold(window, c, spans, fwindow), spans,
                                fwindow)
            self._looked = len(self._buf)
            return out
        # the common case: no match can start in the unreleased text, so only the tail that
        # could still grow into one is held (what `_hold` and `_release` do without spans)
        n = len(window)
        hold = self._tail_start(window, fwindow)
        if hold < c:
            hold = c
        if hold < n - self.bound:
            hold = self._cut(window, hold, n)
        if self._hidden:
            self._left_as(window, fwindow, self._back(window, hold), hold,
                          self._back(window, hold, count_not_tags))
            self._hold_from(window, fwindow, hold)
        elif fwindow is window:   # (every chunk of most streams: nothing folds)
            lo = hold - self.context if hold > self.context else 0
            self._left = self._fleft = window[lo:hold]
            self._buf = self._fbuf = window[hold:]
        else:
            self._left_as(window, fwindow, hold - self.context if hold > self.context else 0,
                          hold, 0)
            self._hold_from(window, fwindow, hold)
        self._looked = n - hold
        if self._marks:
            self._passed(window[c:hold], [])
        return window[c:hold]

    def _add(self, text: str) -> None:
        """Hold `text` after what is held, unread (and its fold beside it)."""
        buf = self._buf + text
        if self._folding:
            fbuf = self._fbuf
            ftext = fold(text)
            self._fbuf = buf if fbuf is self._buf and ftext is text else fbuf + ftext
        else:
            self._fbuf = buf
        self._buf = buf

    def finish(self) -> str:
        """End of stream: release everything still held, masked."""
        self._check()
        window, c = self._left + self._buf, len(self._left)
        fwindow = window
        if self._fleft is not self._left or self._fbuf is not self._buf:
            fwindow = self._fleft + self._fbuf
        out = self._release(window, c, len(window), self._spans(window, c, fwindow), fwindow)
        self._stopped = "finished"
        return out

    def end(self) -> str:
        """End of one text (a token of JSON source): release everything still held, masked,
        and start afresh on the next text as a new masker would (no left context); `found`
        is kept."""
        out = self.finish()
        self._left = self._buf = self._fleft = self._fbuf = ""
        self._marks = []
        self._at_span = False
        self._looked = 0
        self._stopped = None
        return out

    def _check(self) -> None:
        if self._stopped == "finished":
            raise RuntimeError("StreamMasker used after finish()")
        if self._stopped is not None:
            raise GuardTriggered(self._stopped)

    # --- the text kept, and its fold -------------------------------------------------------
    def _left_as(self, window: str, fwindow: str, lo: int, hold: int, as_written: int) -> None:
        """Keep `window[lo:hold]` as the left context (and the same of its fold: the same
        object when they are equal, so that the scanner reads one text). Once invisible
        characters came (`_hidden`), and when every detector is a built-in, each run of them
        before `as_written` is kept as its first: no built-in's match holds one, one reads as
        a boundary as a run does, the readings without them drop them, and the reading of the
        tag characters reads `context` characters back from `as_written` on (tag and visible
        ones: `_back` with `count_not_tags`; or all from a span the scanner must see again):
        there only the runs of other invisible characters are cut, which it takes out
        (found by hypothesis: a tag character before a run cut off). So
        the context stays short however many came (found by review: a context of thousands
        of them, read again with every piece). A custom pattern may count them
        (`K[^Z]{0,80}Z`), so with one the context is kept as it came, reaching back over at
        most `CONTEXT_HIDDEN_MOST` of them (`_back`)."""
        if self._hidden and self._squeezes:
            at = as_written if as_written > lo else lo
            left = self._left = squeeze(window[lo:at]) + squeeze_not_tags(window[at:hold])
            self._fleft = left if fwindow is window else _same(
                left, squeeze(fwindow[lo:at]) + squeeze_not_tags(fwindow[at:hold]))
            return
        left = self._left = window[lo:hold]
        self._fleft = left if fwindow is window else _same(left, fwindow[lo:hold])

    def _hold_from(self, window: str, fwindow: str, hold: int) -> None:
        """Hold `window[hold:]` (and the same of its fold, as `_left_as`)."""
        buf = self._buf = window[hold:]
        self._fbuf = buf if fwindow is window else _same(buf, fwindow[hold:])

    def _tail_start(self, window: str, fwindow: str) -> int:
        if self._folding:
            return self.scanner.tail_start(window, fwindow, self._hidden)
        return self.scanner.tail_start(window)

    # --- matches and the hold --------------------------------------------------------------
    def _spans(self, window: str, c: int, fwindow: str) -> list[Span]:
        """The scanner's matches in the unreleased part of the window, left to right.

        A match starting in the left context belongs to released text: either it was released
        (masked) already, or it is an artefact of cutting the context short. But when the
        released text ends with a span, a match running from before it into the unreleased
        text is the rest of one that overlapped that span: the scanner of the whole text keeps
        it from there, and so does this.

        A scanner with ``find_from`` drops the matches that start in the context before it
        resolves overlaps: one that the cut context made up (a lookbehind no longer sees
        what preceded the cut, so a match starts there that the whole text does not have)
        would otherwise take the place of a real one it overlaps, then be dropped here, and
        the real one would go out in clear. (`fwindow`: the window's fold, for a scanner that
        folds.)"""
        find_from = self._find_from
        if find_from is not None:
            memo = self._memo
            if memo is not None:
                found: list[Span] = find_from(window, c, self._at_span, fwindow, memo,
                                              self._hidden)
            else:
                found = find_from(window, c, self._at_span, fwindow, None, self._hidden) \
                    if self._folding else find_from(window, c, self._at_span)
            return found
        spans = self.scanner.find(window)
        if self._at_span:
            spans = [dataclasses.replace(s, start=c) if s.start < c < s.end else s
                     for s in spans]
        return sorted((s for s in spans if s.start >= c), key=lambda s: s.start)

    def _hold(self, window: str, c: int, spans: list[Span], fwindow: str) -> int:
        """Where the held-back text starts: nothing before it can still change."""
        n = len(window)
        hold = max(self._tail_start(window, fwindow), c)
        # a match is final once a visible character follows it (invisible ones are not
        # read between a value's characters: `invisible`)
        seen = n - trailing(window) if self._hidden else n
        for s in reversed(spans):      # non-overlapping: one step back at most
            if s.end > hold or s.end + LOOKAHEAD > seen:
                hold = min(hold, s.start)
        if hold < n - self.bound:      # over the bound: release, but never half a match
            hold = self._cut(window, hold, n)
            for s in spans:
                if s.start < hold < s.end:
                    hold = s.end
        return hold

    def _back(self, window: str, point: int, counter: Callable[[str], int] = count) -> int:
        """Where the left context before `point` starts: `context` characters back, and as
        many more as there are invisible ones among them (the reading without them sees
        `context` characters; `_left_as` keeps each run of them short), or, with a custom
        pattern (`_squeezes` False), at most `CONTEXT_HIDDEN_MOST` more: past that the readings
        without them see less context before a value than the whole text gives, which can
        make them find more, never less. `counter`: which characters the reading that needs
        the context does not see (`count_not_tags` for the tag characters' reading)."""
        lo = point - self.context
        if lo <= 0:
            return 0
        if self._hidden:
            hidden = counter(window[lo:point])
            most = 0 if self._squeezes else point - self.context - CONTEXT_HIDDEN_MOST
            while hidden and lo > most and lo > 0:
                start = max(lo - hidden, most, 0)
                hidden = counter(window[start:lo])
                lo = start
        return lo

    def _cut(self, window: str, hold: int, n: int) -> int:
        """Where the held text is cut when the rules would hold `window[hold:]`, more than
        `bound` characters: `bound` visible ones are held, and the invisible ones among them
        (a value read with them taken out is longer by them, `invisible`), at most
        `HIDDEN_MOST`; past it the stream is refused, not a value's start released."""
        cut = n - self.bound
        if self._hidden:
            hidden = count(window[hold:])
            if hidden:
                if hidden > HIDDEN_MOST:
                    self._stopped = TOO_MANY_HIDDEN
                    raise GuardTriggered(TOO_MANY_HIDDEN)
                cut = hold if cut - hidden < hold else cut - hidden
        return cut

    def _release(self, window: str, c: int, hold: int, spans: list[Span],
                 fwindow: str) -> str:
        final = [s for s in spans if s.end <= hold]
        if final and self.action == "reject":
            self.found.append(final[0].detector)
            self._stopped = final[0].detector
            raise GuardTriggered(final[0].detector)
        self.found.extend(s.detector for s in final)
        raw = out = window[c:hold]
        moved: list[Span] = []
        if final:
            moved = [dataclasses.replace(s, start=s.start - c, end=s.end - c) for s in final]
            out = self.scanner.mask(out, moved)
        if self._marks:
            self._passed(raw, moved)
        if hold > c:                   # else the left context stays as it is
            keep = self._back(window, hold)
            # the released text ends with a span that a match overlaps: the scanner gave
            # that match's rest, from the span's end (a match starting before the hold
            # ends in this window, or `tail_start` would have held it); with no such rest,
            # a match found later from the cut context on is made up by the cut (found by
            # hypothesis: an address's run too long to be one, around a card number, cut
            # to a valid address and masked)
            self._at_span = bool(final) and final[-1].end == hold \
                and any(s.start == hold for s in spans)
            as_written = self._back(window, hold, count_not_tags) if self._hidden \
                else hold - self.context
            if self._at_span:          # keep all of that span: the scanner sees it again
                keep = min(keep, self._back(window, final[-1].start))
                as_written = min(as_written, final[-1].start)
            self._left_as(window, fwindow, keep, hold, as_written)
        self._hold_from(window, fwindow, hold)
        return out

    def _passed(self, raw: str, spans: list[Span]) -> None:
        """`raw` (masked with `spans`, in its own offsets) is released: note where the
        boundaries it passes fall in the output (`take_cuts`)."""
        k = len(raw)
        keep: list[int] = []
        for p in self._marks:
            if p > k:
                keep.append(p - k)
                continue
            before = [s for s in spans if s.start < p]   # (sorted, apart)
            if not before:
                self._cuts.append(p)
            else:   # a match begun before the boundary falls before it whole
                end = max(p, before[-1].end)
                self._cuts.append(len(self.scanner.mask(raw[:end], before)))
        self._marks = keep


def _same(raw: str, folded: str) -> str:
    """`folded`, or `raw` itself when they are equal (nothing in it folds any more)."""
    return raw if folded == raw else folded
