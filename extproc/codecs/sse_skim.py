"""Skimming an SSE stream: find only the events that hold one of a few byte strings.

Most events of an LLM stream are text deltas that a usage meter never needs to read.
`SSESkimmer` is fed body chunks like `SSEDecoder`, but it looks for the caller's needles with
C-speed `bytes.find` and cuts out just the events around them; every other byte is left
alone, undecoded. It can also drop whole events (the caller decides which), re-emitting
everything else byte for byte.

The chunks of a paced stream are alike: one event each, the same bytes around a short text.
A needle-free chunk of whole events leaves its prefix and suffix in common with the one
before it (`_frame`); a next chunk that shares them is searched only around the bytes in
between, where a needle could be (a needle wholly inside the known needle-free prefix or
suffix is impossible).

A partial event carried over to the next chunk is known to hold no blank line. While the
chunks that follow do not end it, each is only looked at with the few bytes before it
(`_grow`): kept aside, not joined to the carry nor searched again with it, so an event
arriving in many small chunks costs its length once, not once per chunk. It is joined and
skimmed as usual when a chunk ends it.

An event that would have to be held larger than `max_event_bytes` to be whole is handed
over (`SSESkimmer.oversized`) once the whole events before it are done with; `PastLimit`
then lets it go by without holding it, reading only the few fields its caller needs on the
way, and skims on after it. (An event that arrives whole within what was fed is read
whatever its size.)

Event boundaries are found as the common blank-line forms (LF LF, CRLF CRLF, CR CR). A rarer
form (LF then CRLF) can be missed: then two events are taken as one, which only means they
are decoded together by the full `SSEDecoder`; a needle is never cut off from its event.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .jsonprune import Path
from .sse import Event, SSEDecoder
from .sse_large import LargeEventReader

_BLANK_LINES = (b"\n\n", b"\r\n\r\n", b"\r\r")
_BOM = b"\xef\xbb\xbf"
#: the largest chunk a frame is learnt from (a paced stream's chunk is one event, a few
#: hundred bytes; finding the common prefix of two large chunks copies them repeatedly)
_FRAME_MAX = 4096
_LF_ONLY = (b"\n\n",)
#: the bytes of a growing carry looked at again with the next chunk: a blank line (4 bytes
#: at most) or a `may_drop` marker (17 at most) may begin in them
_EDGE = 16


def _separators(buf: bytes) -> tuple[bytes, ...]:
    """The blank-line forms worth looking for in `buf`: a chunk without a CR (one memchr to
    know) can only hold LF LF, and every search for an absent form is a full pass."""
    return _BLANK_LINES if b"\r" in buf else _LF_ONLY


def _common_prefix(a: bytes, b: bytes) -> int:
    """The length of the longest common prefix of `a` and `b` (a binary search of C
    compares: no Python loop over bytes)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) >> 1
        if a.startswith(b[:mid]):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _common_suffix(a: bytes, b: bytes, most: int) -> int:
    """The length of the longest common suffix of `a` and `b`, at most `most`."""
    lo, hi = 0, min(len(a), len(b), most)
    while lo < hi:
        mid = (lo + hi + 1) >> 1
        if a.endswith(b[len(b) - mid:]):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _boundary_before(buf: bytes, lo: int, hi: int,
                     seps: tuple[bytes, ...] = _BLANK_LINES) -> int:
    """Just past the last blank line within buf[lo:hi] (lo when there is none)."""
    best = lo
    for sep in seps:
        i = buf.rfind(sep, lo, hi)
        if i >= 0 and i + len(sep) > best:
            best = i + len(sep)
    return best


def _boundary_after(buf: bytes, at: int, seps: tuple[bytes, ...] = _BLANK_LINES) -> int:
    """Just past the first blank line at or after `at` (-1 when none has arrived yet)."""
    best = -1
    for sep in seps:
        i = buf.find(sep, at)
        if i >= 0 and (best < 0 or i + len(sep) < best):
            best = i + len(sep)
    return best


class SSESkimmer:
    """Feed chunks; `on_event` sees each event holding a needle and returns True to cut it
    out of the stream. `feed` returns the bytes to forward now.

    An observer (`hold_partial=False`) forwards every chunk at once. When events may be
    dropped, a partial event at the end of a chunk is held back while `may_drop(partial)`
    says it could still become one to drop, and forwarded as soon as it cannot. `may_drop`
    must decide by a marker of at most 17 bytes that a partial which can no longer be
    dropped shows (and keeps showing as it grows): while a partial grows, it is asked of the
    new bytes with the 16 before them.
    """

    def __init__(self, needles: tuple[bytes, ...], on_event: Callable[[Event], bool],
                 max_event_bytes: int = 1 << 20, hold_partial: bool = False,
                 may_drop: Callable[[bytes], bool] | None = None) -> None:
        self.needles = needles
        self._indexed = tuple(enumerate(needles))
        self.on_event = on_event  # returns True to drop the event
        self.max = max_event_bytes
        self.hold_partial = hold_partial
        self.may_drop = may_drop or (lambda partial: True)
        self._carry = b""  # the partial event at the end of what was seen...
        self._more: list[bytes] = []   # ...and the chunks it grew by since (`_grow`)
        self._size = 0     # the length of both together
        self._edge = b""   # their last `_EDGE` bytes
        self.released = 0  # how much of `carry` has been forwarded already
        #: set by `feed` when the partial event it ends with is too large to hold: that
        #: event's bytes so far (forwarded, not held); the caller takes it (`PastLimit`)
        self.oversized: bytes | None = None
        #: the longest needle, less one: how far a needle can reach into a known prefix
        self._reach = max((len(n) for n in needles), default=1) - 1
        # the last needle-free chunk of whole events, and the prefix and suffix it shares
        # with the one before it (both needle-free): see `_quiet`
        self._last = b""
        self._pre = self._post = b""
        self._fed = 0   # the bytes fed so far: where in the stream a stretch decoded starts

    @property
    def carry(self) -> bytes:
        """The partial event at the end of what was seen (joined when it grew since)."""
        if self._more:
            self._carry = b"".join([self._carry, *self._more])
            self._more = []
        return self._carry

    def _keep(self, carry: bytes) -> None:
        self._carry = carry
        self._more = []
        self._size = len(carry)
        self._edge = carry[-_EDGE:]

    def _grow(self, chunk: bytes) -> bytes | None:
        """A chunk after a partial event (which holds no blank line), when it does not end
        that event nor take it past `max_event_bytes`: what to forward, the chunk kept aside
        (no copy or search of the partial). None when it does: the usual skim then."""
        joined = self._edge + chunk
        if _boundary_after(joined, 0, _separators(joined)) >= 0:
            return None
        size = self._size + len(chunk)
        if size > self.max:
            return None
        before = self._size
        self._more.append(chunk)
        self._size = size
        self._edge = joined[-_EDGE:]
        if not self.hold_partial:
            return chunk
        if self.released == before:   # forwarded already: it cannot be dropped any more
            self.released = size
            return chunk
        if self.may_drop(joined):     # (still held whole: nothing of it was forwarded)
            return b""
        self.released = size
        return self.carry

    def _events(self, raw: bytes, final: bool = False, at: int = 1) -> list[Event]:
        # an event that arrived whole is read whatever its size; a BOM is the stream's only
        # at its start (`at`, where `raw` starts in it: found by review)
        decoder = SSEDecoder(max(self.max, len(raw)), start=at == 0)
        events = decoder.feed(raw)
        return events + decoder.finish() if final else events

    def _visit(self, buf: bytes, start: int, end: int, out: list[bytes], last: int,
               dropped: bool, base: int) -> tuple[int, bool]:
        """Decode buf[start:end] (whole events; `buf` starts at `base` in the stream) once;
        cut out the events to drop."""
        at = start
        for ev in self._events(buf[start:end], final=True, at=base + start):
            ev_start, at = at, at + len(ev.raw)
            if self.on_event(ev) and ev_start >= last:
                out.append(buf[last:ev_start])
                last = at
                dropped = True
        return last, dropped

    def _quiet(self, chunk: bytes) -> bool:
        """Whether `chunk`, with nothing carried over, is whole events without a needle: the
        common chunk, with nothing to look at or drop, that goes out as it came. When it
        shares the known frame, only the bytes between prefix and suffix (and a needle's
        reach into them) are searched."""
        if not chunk.endswith(_BLANK_LINES):
            return False
        pre, post = self._pre, self._post
        n = len(chunk)
        if pre and chunk.startswith(pre) and chunk.endswith(post):
            lo = len(pre) - self._reach
            if lo < 0:   # a negative start would count from the end
                lo = 0
            hi = n - len(post) + self._reach
            find = chunk.find
            for needle in self.needles:
                if find(needle, lo, hi) >= 0:
                    return False
            return True
        find = chunk.find
        for needle in self.needles:
            if find(needle) >= 0:
                return False
        if n > _FRAME_MAX:   # not a paced chunk: a frame would cost more than it saves
            return True
        last = self._last
        if last:   # a frame shared with the needle-free chunk before this one
            p = _common_prefix(chunk, last)
            self._pre = chunk[:p]
            self._post = chunk[n - _common_suffix(chunk, last, n - p):]
        self._last = chunk
        return True

    def feed(self, chunk: bytes) -> bytes:
        fed = self._fed
        self._fed = fed + len(chunk)
        if self._size:
            grown = self._grow(chunk)
            if grown is not None:
                return grown
            carry = self.carry
        elif self._quiet(chunk):
            return chunk
        else:
            carry = b""
        buf = carry + chunk if carry else chunk
        base = fed - len(carry)
        find = buf.find
        # where each needle next occurs: searched again only once scanning has passed it,
        # never again once absent (each absent needle costs one pass over the chunk, not one
        # per event found)
        nexts = [find(needle) for needle in self.needles]
        held = len(carry) - self.released  # bytes of carry not forwarded yet
        n = len(buf)
        out: list[bytes] = []
        last = self.released  # start of what has not been forwarded yet
        pos = 0  # scanning resumes here (always an event boundary)
        tail = -1
        dropped = False
        span_start = span_end = -1  # adjacent needle events, decoded together
        seps = _separators(buf)
        needles = self._indexed
        while pos < n:
            hit = -1
            for k, needle in needles:
                i = nexts[k]
                if 0 <= i < pos:
                    i = nexts[k] = find(needle, pos)
                if i >= 0 and (hit < 0 or i < hit):
                    hit = i
            if hit < 0:
                break
            start = _boundary_before(buf, pos, hit, seps)
            end = _boundary_after(buf, hit, seps)
            if end < 0:  # the event holding the needle is not complete yet
                tail = start
                break
            if start != span_end:
                if span_start >= 0:
                    last, dropped = self._visit(buf, span_start, span_end, out, last, dropped,
                                             base)
                span_start = start
            span_end = pos = end
        if span_start >= 0:
            last, dropped = self._visit(buf, span_start, span_end, out, last, dropped,
                                             base)
        if tail < 0:
            tail = _boundary_before(buf, pos, n, seps)
        if n - tail > self.max:
            # the partial event at the end is too large to hold: it goes out as it comes
            # (`PastLimit` takes it from here), after the whole events before it as they
            # were decided (one to drop stays dropped)
            self._keep(b"")
            self.released = 0
            self.oversized = buf[tail:]
            if base + tail == 0 and self.oversized.startswith(_BOM):   # the stream's BOM
                self.oversized = self.oversized[len(_BOM):]
            if not self.hold_partial:
                return chunk
            out.append(buf[last:])
            return b"".join(out)
        carry = buf[tail:]
        self._keep(carry)
        if not self.hold_partial:  # observing: forward everything, keep the tail to look at
            return chunk
        hold = tail < n and self.may_drop(carry)
        stop = tail if hold else n
        self.released = 0 if hold else n - tail
        if not dropped and not held and stop == n:
            return chunk  # nothing held before or now, nothing dropped: the chunk itself
        out.append(buf[last:stop])
        return b"".join(out)

    def finish(self) -> bytes:
        """End of stream: look at (and, when holding, release) what is left."""
        carry, released = self.carry, self.released
        self._keep(b"")
        self.released = 0
        if not carry:
            return b""
        kept = []
        for ev in self._events(carry, final=True, at=self._fed - len(carry)):
            interesting = any(needle in ev.raw for needle in self.needles)
            if not (interesting and self.on_event(ev) and not released):
                kept.append(ev.raw)
        return b"".join(kept)[released:] if self.hold_partial else b""


class SkippedEvent:
    """The rest of an event too large to hold: its bytes go by up to the blank line that ends
    it, read by `reader` (when there is one) on the way, never held. Blank lines are found
    as `SSESkimmer` finds them."""

    def __init__(self, seen: bytes, reader: LargeEventReader | None) -> None:
        self.reader = reader
        self.tail = seen[-3:]   # a blank line may end across two chunks
        if reader is not None:
            reader.feed(seen)

    def feed(self, data: bytes) -> int:
        """Where in `data` the next event starts, or -1 while this one goes on."""
        head = self.tail
        buf = head + data
        end = _boundary_after(buf, 0, _separators(buf))
        used = len(data) if end < 0 else max(end - len(head), 0)
        if self.reader is not None:
            self.reader.feed(data[:used])
        self.tail = data[used - 3:used] if used >= 3 else (head + data[:used])[-3:]
        return -1 if end < 0 else used


#: called once an event too large to hold has gone by: what its reader made of it (its
#: data's fields at the paths, or None; its event name) and why it went by unread
OnSkipped = Callable[[Any, "str | None", str], None]


class PastLimit:
    """Feeds a skimmer, and takes it past an event larger than its `max_event_bytes`, which
    the skimmer raises on rather than hold: the event goes by, never held whole, read on the
    way for the fields at `paths` of its data (`sse_large`), which `on_skipped` gets once it
    ends; the events after it are skimmed as usual. Such an event's chunks go out as they
    came, with what the skimmer held back before it."""

    def __init__(self, skimmer: SSESkimmer, on_skipped: OnSkipped,
                 paths: tuple[Path, ...] = (), max_value_bytes: int = 64 * 1024) -> None:
        self.skimmer = skimmer
        self.on_skipped = on_skipped
        self.paths = paths
        self.max_value_bytes = max_value_bytes
        self.event: SkippedEvent | None = None   # the event going by, if one is
        self.reason = ""

    def feed(self, chunk: bytes) -> bytes:
        """One chunk: what to forward (the skimmer's output). Every chunk of a stream comes
        here: the common one costs the skimmer's feed and one attribute test."""
        if self.event is None:
            out = self.skimmer.feed(chunk)
            if self.skimmer.oversized is not None:
                self._begin()
            return out
        return self._past(chunk)

    def _skim(self, chunk: bytes) -> bytes:
        out = self.skimmer.feed(chunk)
        if self.skimmer.oversized is not None:
            self._begin()
        return out

    def _begin(self) -> None:
        """The skimmer's output ended with the start of an event too large to hold: read it
        on the way from here."""
        skimmer = self.skimmer
        partial, skimmer.oversized = skimmer.oversized, None
        assert partial is not None
        reader = LargeEventReader(self.paths, self.max_value_bytes) if self.paths else None
        self.event = SkippedEvent(partial, reader)
        self.reason = f"SSE event exceeds max_event_bytes={skimmer.max}"

    def _past(self, chunk: bytes) -> bytes:
        """A chunk while an event goes by: what to forward (with what the skimmer makes of
        the events after it)."""
        event = self.event
        assert event is not None
        at = event.feed(chunk)
        if at < 0:
            return chunk
        self.event = None
        self._skipped(event)
        if at == len(chunk):
            return chunk
        return chunk[:at] + self._skim(chunk[at:])

    def _skipped(self, event: SkippedEvent) -> None:
        doc, name = event.reader.result() if event.reader is not None else (None, None)
        self.on_skipped(doc, name, self.reason)

    def finish(self) -> None:
        """The stream ended inside an event going by: it never ended, nothing of it read."""
        if self.event is not None:
            self.event = None
            self.on_skipped(None, None, self.reason)
