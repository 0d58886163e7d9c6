"""Reading an SSE event too large to hold: its `event` name and the fields at chosen paths of
its data's JSON (`jsonprune`), from its bytes fed in pieces, never holding it.

Lines are read as `SSEDecoder` reads them (ended by CRLF, LF or CR; `data:` lines joined with
LF; one space after the colon dropped; comments and other fields ignored), but the data goes
straight on to a `JsonPruner` instead of being kept.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .jsonprune import JsonPruner, Path

#: the longest field name worth reading (`event`, `data`); and the longest event name kept
_MAX_NAME = 8
_MAX_EVENT_NAME = 256

# where in a line reading is
_NAME, _SPACE, _DATA, _EVENT, _IGNORE = range(5)


class LargeEventReader:
    """Feed the bytes of one SSE event (from its first byte, to its end or any part of
    it); `result` gives (the pruned data document or None, the event name or None)."""

    def __init__(self, paths: Iterable[Path], max_value_bytes: int) -> None:
        self.pruner = JsonPruner(paths, max_value_bytes)
        self.state = _NAME
        self.name = bytearray()     # the field name read so far
        self.value = bytearray()    # the event name read so far
        self.event: str | None = None
        self.data_lines = 0
        self.after_cr = False       # the last byte was a CR: an LF now ends nothing more

    def feed(self, raw: bytes) -> None:
        pos, n = 0, len(raw)
        if self.after_cr and n:
            self.after_cr = False
            if raw[0] == 0x0A:
                pos = 1
        # the next CR and LF (memchr; each found again only once passed: a data line of
        # megabytes is two passes)
        cr, lf = raw.find(b"\r", pos), raw.find(b"\n", pos)
        while pos < n:
            if 0 <= cr < pos:
                cr = raw.find(b"\r", pos)
            if 0 <= lf < pos:
                lf = raw.find(b"\n", pos)
            end = min(cr if cr >= 0 else n, lf if lf >= 0 else n)
            self._text(raw, pos, end)
            if end == n:
                return
            self._line_end()
            if raw[end] == 0x0D:
                if end + 1 == n:
                    self.after_cr = True
                    return
                if raw[end + 1] == 0x0A:
                    end += 1
            pos = end + 1

    def _text(self, raw: bytes, pos: int, end: int) -> None:
        """Bytes within one line."""
        while pos < end:
            state = self.state
            if state == _DATA:
                self.pruner.feed(raw[pos:end])
                return
            if state == _IGNORE:
                return
            if state == _EVENT:
                if len(self.value) + end - pos > _MAX_EVENT_NAME:
                    self.state = _IGNORE
                else:
                    self.value += raw[pos:end]
                return
            if state == _SPACE:
                self.state = self._value_state()
                if raw[pos] == 0x20:
                    pos += 1
                continue
            colon = raw.find(b":", pos, end)   # _NAME
            stop = end if colon < 0 else colon
            if len(self.name) + stop - pos > _MAX_NAME:
                self.state = _IGNORE
                return
            self.name += raw[pos:stop]
            if colon < 0:
                return
            self.state = _SPACE
            pos = colon + 1

    def _value_state(self) -> int:
        name = bytes(self.name)
        if name == b"data":
            if self.data_lines:
                self.pruner.feed(b"\n")
            self.data_lines += 1
            return _DATA
        if name == b"event":
            self.value = bytearray()
            return _EVENT
        return _IGNORE

    def _line_end(self) -> None:
        state = self.state
        if state == _SPACE:            # `data:` with nothing after the colon
            state = self._value_state()
        elif state == _NAME and self.name:   # a field with no colon: its value is empty
            self.state = _SPACE
            state = self._value_state()
        if state == _EVENT:
            self.event = self.value.decode("utf-8", "replace")
        self.state = _NAME
        self.name = bytearray()

    def result(self) -> tuple[Any | None, str | None]:
        """The pruned data (None: no data, or not whole, valid JSON) and the event name."""
        if not self.data_lines:
            return None, self.event
        return self.pruner.finish(), self.event
