"""Incremental, sans-IO splitter for a JSON array streamed piece by piece, and its SSE rewrite.

Gemini and Vertex answer ``:streamGenerateContent`` without ``alt=sse`` as ONE JSON array sent
element by element (``[{\\n  "candidates": ...\\n}\\n,\\r\\n{...}\\n]``), with HTTP chunk
boundaries anywhere. :class:`JsonArraySplitter` hands back each element's raw bytes the moment
its last byte arrives; :func:`element_to_sse` turns one element into the single-line
``data: {json}\\r\\n\\r\\n`` event Google itself sends with ``alt=sse``.

The splitter works on bytes (never decodes) and scans in bulk with compiled regular
expressions: ordinary bytes and whole strings are skipped inside one regex match, Python code
runs once per bracket, and scanning resumes where the previous chunk left off (only a backslash
split from the byte it escapes is looked at again). It finds element boundaries exactly for any
valid JSON but is not a validator: ``json.loads`` of each element is the caller's business.

An element that would have to be held past ``max_element_bytes`` to be whole (an inline image
can be megabytes) is an error for ``feed``; ``feed_parts`` hands it on instead as the
`Part`s it arrives in, never held whole, and :class:`SSEPieces` frames those parts as
one SSE event, exactly what :func:`element_to_sse` makes of the whole element.
"""

from __future__ import annotations

import re

__all__ = ["JsonArrayError", "JsonArraySplitter", "Part", "SSEPieces", "element_to_sse"]

_WS = re.compile(rb"[ \t\r\n]*+")
# Byte classes spelled as positive ranges, which `re` scans about twice as fast as `[^...]`.
_PLAIN = rb"[\x00-!#-Z\\^-z|~-\xff]"  # not one of  " [ ] { }
_CHARS = rb"[\x00-!#-\[\]-\xff]"  # not  " or a backslash
# Inside an element: skip ordinary bytes and complete strings, stop at a bracket or at the end.
# A string still open at the end sets group 1 (to its dangling backslash if an escape is split).
_SKIP = re.compile(
    rb'P*+(?:"C*+(?:\\.C*+)*+(?:"P*+|(\\?)\Z))*+'.replace(b"P", _PLAIN).replace(b"C", _CHARS),
    re.DOTALL,
)
# The rest of a string whose opening quote was in an earlier chunk; group 1 as in _SKIP.
_STRING_REST = re.compile(rb'C*+(?:\\.C*+)*+(?:"|(\\?)\Z)'.replace(b"C", _CHARS), re.DOTALL)
# A number, true, false or null: everything up to whitespace, a comma or a bracket.
_SCALAR = re.compile(rb'[^ \t\r\n,\[\]{}"]*+')

_OPEN_BRACKET, _CLOSE_BRACKET, _COMMA, _QUOTE = b'[],"'

# States of the splitter.
_START = 0  # before the opening `[`
_FIRST = 1  # after `[`: the first element or `]`
_NEXT = 2  # after `,`: an element
_AFTER = 3  # after an element: `,` or `]`
_IN_ELEMENT = 4  # inside an object, array or string element
_IN_SCALAR = 5  # inside a number, true, false or null
_CLOSED = 6  # after the closing `]`: only whitespace


class JsonArrayError(ValueError):
    """The byte stream is not a JSON array, or an element is too large. `elements` are the
    elements the failing chunk completed before it (a caller that ends the stream cleanly
    at the error still has them to send)."""

    elements: list[bytes | Part] = []


class Part:
    """A piece of an element too large to hold (`feed_parts`): its bytes as they came, in
    order; `first` and `last` mark the element's first and last piece."""

    __slots__ = ("data", "first", "last")

    def __init__(self, data: bytes, first: bool, last: bool) -> None:
        self.data, self.first, self.last = data, first, last

    def __repr__(self) -> str:
        return f"Part({self.data!r}, first={self.first}, last={self.last})"


class JsonArraySplitter:
    """Splits a streamed JSON array into its elements' raw bytes, chunk by chunk.

    ``feed`` returns every element the chunk completes (exactly as received, without the
    surrounding whitespace and commas); ``finish`` checks the array was closed. An element
    longer than ``max_element_bytes`` raises :class:`JsonArrayError`, so the buffer is bounded.
    After any error the splitter stays failed and raises the same error again.

    ``feed_parts`` is ``feed`` for a caller that takes an element too large to hold in pieces:
    an element completed within what was fed comes whole whatever its size; one that would be
    held past ``max_element_bytes`` comes as `Part`s, each the bytes of it that a
    chunk brought, so at most about ``max_element_bytes`` plus a chunk is ever held.
    """

    def __init__(self, max_element_bytes: int = 8 << 20) -> None:
        self.max_element_bytes = max_element_bytes
        self._buf = bytearray()
        self._pos = 0  # next byte of _buf to scan
        self._start = 0  # first byte of the current element in _buf
        self._dropped = 0  # bytes already removed from the front of _buf (for error offsets)
        self._state = _START
        self._stack: list[int] = []  # closing byte expected for each open `{` / `[`
        self._in_string = False
        self._error: JsonArrayError | None = None
        self._parts = False      # feeding by feed_parts: an element too large comes in Parts
        self._passing = False    # inside such an element, its first Part already handed on
        self._failed_at = 0      # where in the buffer the error (`_fail`) was found

    @property
    def closed(self) -> bool:
        """True once the closing ``]`` has been seen."""
        return self._state == _CLOSED

    def feed(self, chunk: bytes) -> list[bytes]:
        """Scan one more chunk; return the elements it completed, in order."""
        return self._feed(chunk)  # type: ignore[return-value]  # (no Part without _parts)

    def feed_parts(self, chunk: bytes) -> list[bytes | Part]:
        """Scan one more chunk; return the elements it completed and the pieces of an
        element too large to hold, in order. Use one of `feed` and `feed_parts` throughout."""
        self._parts = True
        return self._feed(chunk)

    def _feed(self, chunk: bytes) -> list[bytes | Part]:
        if self._error is not None:
            self._error.elements = []   # (handed over when it was first raised)
            raise self._error
        if not chunk:
            return []
        self._buf += chunk
        out: list[bytes | Part] = []
        try:
            self._scan(out)
        except JsonArrayError as exc:
            self._error = exc
            exc.elements = out
            raise
        keep = self._start if self._state in (_IN_ELEMENT, _IN_SCALAR) else self._pos
        if keep:
            del self._buf[:keep]
            self._pos -= keep
            self._start -= keep
            self._dropped += keep
        return out

    def finish(self) -> None:
        """End of stream: raise :class:`JsonArrayError` unless the array was complete."""
        if self._error is not None:
            raise self._error
        if self._state != _CLOSED:
            self._error = JsonArrayError("stream ended before the JSON array was complete")
            raise self._error

    def _fail(self, message: str, pos: int) -> JsonArrayError:
        self._failed_at = pos
        return JsonArrayError(f"{message} (at byte {self._dropped + pos} of the stream)")

    def _scan(self, out: list[bytes | Part]) -> None:
        buf, pos, state, start = self._buf, self._pos, self._state, self._start
        n = len(buf)
        limit = self.max_element_bytes
        while pos < n:
            if state == _IN_ELEMENT:
                try:
                    pos, done = self._scan_element(pos, n)
                except JsonArrayError:
                    # an element too large to hold broke: what of it came before the break
                    # goes on, as much whatever the split (found by review)
                    at = self._failed_at
                    if self._parts and at > start and (self._passing or at - start > limit):
                        out.append(Part(bytes(buf[start:at]), first=not self._passing,
                                        last=False))
                    raise
                if not done:
                    break
                state = _AFTER
            elif state == _IN_SCALAR:
                pos = _SCALAR.match(buf, pos).end()
                if pos == n:
                    break
                state = _AFTER
            else:
                pos = _WS.match(buf, pos).end()
                if pos == n:
                    break
                byte = buf[pos]
                if state == _AFTER:
                    if byte == _COMMA:
                        state = _NEXT
                    elif byte == _CLOSE_BRACKET:
                        state = _CLOSED
                    else:
                        raise self._fail(
                            f"expected ',' or ']' after an element, found {bytes([byte])!r}", pos
                        )
                    pos += 1
                elif state == _START:
                    if byte != _OPEN_BRACKET:
                        raise self._fail(
                            f"a JSON array must start with '[', found {bytes([byte])!r}", pos
                        )
                    state = _FIRST
                    pos += 1
                elif state == _CLOSED:
                    raise self._fail("unexpected data after the closing ']' of the array", pos)
                elif byte == _CLOSE_BRACKET and state == _FIRST:
                    state = _CLOSED
                    pos += 1
                elif byte in b",]}":
                    raise self._fail(f"expected an element, found {bytes([byte])!r}", pos)
                else:
                    start = self._start = pos
                    if byte in b"{[":
                        self._stack = [byte + 2]
                        self._in_string = False
                        state, pos = _IN_ELEMENT, pos + 1
                    elif byte == _QUOTE:
                        self._stack = []
                        self._in_string = True
                        state, pos = _IN_ELEMENT, pos + 1
                    else:
                        state = _IN_SCALAR
                continue
            # An element ended just before `pos`.
            if self._passing:
                out.append(Part(bytes(buf[start:pos]), first=False, last=True))
                self._passing = False
            elif pos - start > limit and not self._parts:
                raise self._fail(f"array element larger than {limit} bytes", start)
            else:
                out.append(bytes(buf[start:pos]))
        if state in (_IN_ELEMENT, _IN_SCALAR) and (self._passing or n - start > limit):
            if not self._parts:
                raise self._fail(f"array element larger than {limit} bytes", start)
            # hand on what is scanned of it (a backslash split from what it escapes, which
            # `pos` stops before, goes with the next piece); `feed` drops it from the buffer
            if pos > start or not self._passing:
                out.append(Part(bytes(buf[start:pos]), first=not self._passing, last=False))
            self._passing = True
            self._start = pos
        self._pos, self._state = pos, state

    def _scan_element(self, pos: int, n: int) -> tuple[int, bool]:
        """Scan inside an object/array/string element: (next position, element complete)."""
        buf, stack = self._buf, self._stack
        if self._in_string:
            match = _STRING_REST.match(buf, pos)
            dangling = match[1]
            if dangling is not None:
                return match.end() - len(dangling), False
            self._in_string = False
            pos = match.end()
            if not stack:
                return pos, True
        skip, push, pop = _SKIP.match, stack.append, stack.pop
        while True:  # once per bracket: the regex skips everything else
            match = skip(buf, pos)
            end = match.end()
            if end == n:
                dangling = match[1]  # only set when an open string reaches the end
                if dangling is not None:
                    self._in_string = True
                    return end - len(dangling), False
                return end, False
            byte = buf[end]
            pos = end + 1
            if byte in b"{[":
                push(byte + 2)  # `}` is `{` + 2 and `]` is `[` + 2
            elif pop() != byte:
                raise self._fail(f"unbalanced {bytes([byte])!r} in an array element", end)
            elif not stack:
                return pos, True


class SSEPieces:
    """An element's `Part`s as one SSE event, piece by piece: ``data: `` before the
    first, the line breaks and the indentation after them taken out across pieces, the
    event's end after the last. Joined, the pieces are ``element_to_sse`` of the element."""

    def __init__(self) -> None:
        self._at_break = False   # the bytes so far end in a line break and its indentation

    def feed(self, part: Part) -> bytes:
        data = part.data
        if part.first:
            self._at_break = False
        if self._at_break:
            data = data.lstrip(b" \t")
        if b"\n" in data or b"\r" in data:
            lines = data.splitlines()
            ends = data[-1] in b"\r\n"
            data = _unbroken(lines)
            self._at_break = ends or (len(lines) > 1 and not lines[-1].strip(b" \t"))
        elif data:
            self._at_break = False
        if part.first:
            data = b"data: " + data
        return data + b"\r\n\r\n" if part.last else data


def element_to_sse(element: bytes) -> bytes:
    """One SSE event carrying ``element`` in Google's own ``alt=sse`` single-line form.

    Every CR/LF and the indentation after it are removed: JSON strings cannot hold a raw line
    break, so this is exact, and turns a pretty-printed (indent=2) element into precisely
    ``json.dumps(obj, ensure_ascii=False, separators=(",", ": "))``. An element without line
    breaks is passed as is.
    """
    if b"\n" in element or b"\r" in element:
        # (bytes split at CR, LF and CRLF only, dropping them)
        element = _unbroken(element.splitlines())
    return b"data: " + element + b"\r\n\r\n"


def _unbroken(lines: list[bytes]) -> bytes:
    """The lines of a split text joined again without their breaks, the indentation that
    began each line after the first taken out."""
    return lines[0] + b"".join([line.lstrip(b" \t") for line in lines[1:]])
