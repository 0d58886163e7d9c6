"""Reading a few fields of a JSON text too large to hold: fed in pieces, it keeps only the
values at chosen paths and checks the rest is well-formed JSON on the way, never holding it.

A stream event or array element can be megabytes (a generated image, speech) while what the
gateway needs from it is small and at a known place: the usage report, the finish reason, an
error. `JsonPruner` gives the document those paths make of it (the *pruned* document: every
other member left out, arrays kept to their length with `None` for elements no path goes
into), which reads as the whole document would for those paths. It follows `json.loads`:
the last of two equal keys wins, escapes in keys are undone, a text that `json.loads` would
refuse gives None. The path is followed structurally, so a key that only appears inside a
string, or deeper than its path (a tool's schema naming a property "usage"), is never taken
for the one at the path.

Strings are skipped with a search for the next quote, backslash or control character, so a
base64 image costs a few searches, not a Python step per byte. The rest costs a step per
token, so a document of more than `max_tokens` tokens (brackets, commas, colons, strings,
numbers: a huge structured value, say) is not read: the result is None, as for a document
that is not JSON, and reading stays within a few tens of milliseconds.

A path is a tuple of object keys and `EACH` (every element of an array), e.g.
`("response", "usage")` or `("candidates", EACH, "finishReason")`. A value at a path larger
than `max_value_bytes` makes the result None, as an unreadable document does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any

EACH = None
"""In a path: every element of an array."""

Path = tuple[str | None, ...]

# a raw control character, which `json.loads` refuses inside a string
_CONTROL = re.compile(rb"[\x00-\x1f]")
_CONTROLS = bytes(range(32))
# what can end a stretch outside strings
_TOKEN = re.compile(rb'["{}\[\]:,]')
_SPACE = b" \t\r\n"
# (NaN and Infinity too: `json.loads`, as the adapters call it, takes them)
_SCALAR = re.compile(rb'[ \t\r\n]*(-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?'
                     rb'|true|false|null|NaN|-?Infinity)[ \t\r\n]*')
_HEX = frozenset(b"0123456789abcdefABCDEF")
_ESCAPES = frozenset(b'"\\/bfnrtu')
#: how long a key, or the text between two tokens, may be (longer: not JSON we can use)
_MAX_KEY = 4096
_MAX_GAP = 4096
#: how deep the document may nest (`json.loads` gives up near this depth too)
MAX_DEPTH = 512
#: how many tokens a document may have to be read (see the module's docstring)
MAX_TOKENS = 20_000

# what comes next
_VALUE, _VALUE_OR_END, _KEY, _KEY_OR_END, _COLON, _NEXT, _DONE = range(7)


class _Trie:
    """The paths below one point of the document."""

    __slots__ = ("children", "leaf")

    def __init__(self) -> None:
        self.children: dict[str | None, _Trie] = {}
        self.leaf = False


def _trie(paths: Iterable[Path]) -> _Trie:
    root = _Trie()
    for path in paths:
        node = root
        for step in path:
            node = node.children.setdefault(step, _Trie())
        node.leaf = True
    return root


class _Frame:
    """An open object or array: where it is kept in the pruned document (None: nothing
    below it is), the paths below it, and the key or index of its current member."""

    __slots__ = ("index", "is_object", "kept", "key", "trie")

    def __init__(self, is_object: bool, kept: dict[str, Any] | list[Any] | None,
                 trie: _Trie | None) -> None:
        self.is_object = is_object
        self.kept = kept
        self.trie = trie
        self.key: str | None = None
        self.index = -1


class JsonError(ValueError):
    """The text is not JSON (or not JSON this reader can use)."""


class JsonLimit(JsonError):
    """The text may be JSON, but past what this reader reads on the way (a value at a path,
    a number, the tokens, the depth)."""


class JsonPruner:
    """Feed a JSON text in pieces; `finish` gives the pruned document (see the module)."""

    def __init__(self, paths: Iterable[Path], max_value_bytes: int = 64 * 1024,
                 max_tokens: int = MAX_TOKENS, strict: bool = False) -> None:
        """`strict`: NaN and Infinity are not JSON (by default they are read, as
        `json.loads` reads them)."""
        self.trie = _trie(paths)
        self.max_value = max_value_bytes
        self.tokens_left = max_tokens
        self.expect = _VALUE
        self.stack: list[_Frame] = []
        self.root: Any = None
        self.error: str | None = None
        #: the error is the text's (not JSON), not a limit of the reader (`JsonLimit`)
        self.invalid = False
        self.strict = strict
        self.in_string = False
        self.escape = 0              # 1: after a backslash; 2-5: hex digits of \\u still due
        self.gap = b""               # text outside strings since the last token
        self._backslash = -1         # where the next backslash is in the piece being read
        self.key: bytearray | None = None     # the key being read (None: not needed)
        #: the value at a path being read: its bytes, the depth it started at, and where it
        #: goes (the frame that holds it, or None at the top)
        self.capture: bytearray | None = None
        self.capture_depth = 0
        self.capture_into: tuple[_Frame | None, str | int | None] = (None, None)

    # --- feeding ----------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        if self.error is None:
            try:
                self._feed(data)
            except JsonError as exc:
                self.error = str(exc)
                self.invalid = not isinstance(exc, JsonLimit)

    def finish(self) -> Any | None:
        """The pruned document, or None when the text was not whole, valid JSON (or a value
        at a path was too large)."""
        if self.error is None:
            try:
                if self.in_string:
                    raise JsonError("the text ends inside a string")
                self._gap()
                if self.expect != _DONE:
                    raise JsonError("the text ends before its value does")
            except JsonError as exc:
                self.error = str(exc)
                self.invalid = not isinstance(exc, JsonLimit)
        return None if self.error is not None else self.root

    def _feed(self, data: bytes) -> None:
        pos, n = 0, len(data)
        self._backslash = data.find(b"\\")   # the next one in `data` (-1: none)
        while pos < n:
            if self.in_string:
                pos = self._string(data, pos)
                continue
            m = _TOKEN.search(data, pos)
            end = n if m is None else m.start()
            if end > pos:
                if len(self.gap) + end - pos > _MAX_GAP:
                    raise JsonLimit("a number or a run of spaces too long")
                self.gap += data[pos:end]
                if self.capture is not None:
                    self._captured(data[pos:end])
            if m is None:
                return
            self._gap()
            self._token(data[end])
            pos = end + 1

    def _captured(self, piece: bytes) -> None:
        capture = self.capture
        assert capture is not None
        if len(capture) + len(piece) > self.max_value:
            raise JsonLimit(f"a value at a path is larger than {self.max_value} bytes")
        capture += piece

    # --- strings ----------------------------------------------------------------------------
    def _string(self, data: bytes, pos: int) -> int:
        """Read on in a string from `pos`; returns where reading stopped."""
        n = len(data)
        while pos < n:
            if self.escape:
                pos = self._escape(data, pos)
                continue
            stop = self._string_stop(data, pos)
            self._string_bytes(data[pos:stop])
            if stop == n:
                return n
            c = data[stop]
            if c == 0x22:   # the closing quote
                self._string_bytes(b'"')
                self.in_string = False
                self._string_end()
                return stop + 1
            if c != 0x5C:
                raise JsonError("a control character inside a string")
            self._string_bytes(b"\\")
            self.escape = 1
            pos = stop + 1
        return pos

    def _string_stop(self, data: bytes, pos: int) -> int:
        """Where a string's plain run from `pos` ends: its closing quote, a backslash or a
        raw control character (`len(data)`: none in `data`). Found with C-speed searches,
        the next backslash remembered per piece: a megabyte of base64 is a few passes."""
        n = len(data)
        quote = data.find(b'"', pos)
        stop = n if quote < 0 else quote
        backslash = self._backslash
        if 0 <= backslash < pos:
            backslash = self._backslash = data.find(b"\\", pos)
        if 0 <= backslash < stop:
            stop = backslash
        run = data[pos:stop]
        if len(run.translate(None, _CONTROLS)) != len(run):
            m = _CONTROL.search(data, pos, stop)
            assert m is not None
            stop = m.start()
        return stop

    def _escape(self, data: bytes, pos: int) -> int:
        c = data[pos]
        if self.escape == 1:
            if c not in _ESCAPES:
                raise JsonError("an invalid escape in a string")
            self.escape = 5 if c == 0x75 else 0   # \\u: four hex digits follow
        else:
            if c not in _HEX:
                raise JsonError("an invalid \\u escape in a string")
            self.escape = self.escape - 1 if self.escape > 2 else 0
        self._string_bytes(data[pos:pos + 1])
        return pos + 1

    def _string_bytes(self, piece: bytes) -> None:
        if self.key is not None:
            if len(self.key) + len(piece) > _MAX_KEY:
                self.key = None   # longer than any path's key: it is none of them
            else:
                self.key += piece
        elif self.capture is not None:
            self._captured(piece)

    def _string_end(self) -> None:
        if self.expect == _COLON:   # it was a key
            frame = self.stack[-1]
            raw, self.key = self.key, None
            frame.key = _key(raw) if raw is not None else None
            return
        self._value_end()

    # --- tokens -----------------------------------------------------------------------------
    def _gap(self) -> None:
        """The text outside strings before the next token (or the end of the text):
        spaces, or one scalar where a value may stand."""
        gap, self.gap = self.gap, b""
        if not gap.strip(_SPACE):
            return
        if self.expect not in (_VALUE, _VALUE_OR_END):
            raise JsonError("unexpected text between tokens")
        m = _SCALAR.fullmatch(gap)
        if m is None or (self.strict and m.group(1)[-1:] in (b"N", b"y")):   # NaN, Infinity
            raise JsonError("an invalid number or literal")
        if self.capture is None:   # (a captured scalar's bytes were kept as they came)
            self._value_start()
            if self._capturing():   # (it may have begun: re-read, not narrowed)
                self._captured(gap)
        self._value_end()

    def _capturing(self) -> bool:
        return self.capture is not None

    def _token(self, c: int) -> None:
        self.tokens_left -= 1
        if self.tokens_left < 0:
            raise JsonLimit("too many tokens to read on the way")
        expect = self.expect
        if c == 0x22:   # "
            if expect in (_KEY, _KEY_OR_END):
                self.expect = _COLON
                frame = self.stack[-1]
                # the key's text is needed only where a path may go on
                self.key = bytearray(b'"') if frame.trie is not None and frame.trie.children \
                    else None
                if self.capture is not None:
                    self._captured(b'"')
            elif expect in (_VALUE, _VALUE_OR_END):
                self._value_start()
                self._string_bytes(b'"')
            else:
                raise JsonError("a string where none may stand")
            self.in_string = True
        elif c in (0x7B, 0x5B):   # { [
            if expect not in (_VALUE, _VALUE_OR_END):
                raise JsonError("a value where none may stand")
            self._open(c == 0x7B)
        elif c in (0x7D, 0x5D):   # } ]
            is_object = c == 0x7D
            if not self.stack or self.stack[-1].is_object != is_object or expect not in (
                    _NEXT, _KEY_OR_END if is_object else _VALUE_OR_END):
                raise JsonError("a closing bracket where none may stand")
            if self.capture is not None:
                self._captured(b"}" if is_object else b"]")
            self.stack.pop()
            self._value_end()
        elif c == 0x3A:   # :
            if expect != _COLON:
                raise JsonError("a colon where none may stand")
            if self.capture is not None:
                self._captured(b":")
            self.expect = _VALUE
        else:   # ,
            if expect != _NEXT:
                raise JsonError("a comma where none may stand")
            if self.capture is not None:
                self._captured(b",")
            self.expect = _KEY if self.stack[-1].is_object else _VALUE

    def _slot(self) -> tuple[_Frame | None, str | int | None, _Trie | None]:
        """Where a value starting now sits: its frame, its key or index, the paths below."""
        if not self.stack:
            return None, None, self.trie
        frame = self.stack[-1]
        if frame.is_object:
            key = frame.key
            if frame.trie is None or key is None:
                return frame, key, None
            if isinstance(frame.kept, dict):
                # a key given again: its value replaces the first one's, kept or not
                frame.kept.pop(key, None)
            return frame, key, frame.trie.children.get(key)
        frame.index += 1
        if frame.trie is None:
            return frame, frame.index, None
        if isinstance(frame.kept, list):
            frame.kept.append(None)
        return frame, frame.index, frame.trie.children.get(EACH)

    def _value_start(self) -> _Trie | None:
        """A value starts: begin keeping it if it is at a path. Returns the paths below it
        when it is not kept whole (None if there are none)."""
        if self.capture is not None:
            return None
        frame, slot, trie = self._slot()
        if trie is not None and trie.leaf:
            self.capture = bytearray()
            self.capture_depth = len(self.stack)
            self.capture_into = (frame, slot)
            return None
        return trie

    def _open(self, is_object: bool) -> None:
        if len(self.stack) >= MAX_DEPTH:
            raise JsonLimit("the document nests too deeply")
        trie = self._value_start()
        if self.capture is not None:
            self._captured(b"{" if is_object else b"[")
            self.stack.append(_Frame(is_object, None, None))
        else:
            kept: dict[str, Any] | list[Any] | None = None
            if trie is not None and trie.children:
                kept = {} if is_object else []
                self._put(*self._slot_of_new(), kept)
            self.stack.append(_Frame(is_object, kept, trie if kept is not None else None))
        self.expect = _KEY_OR_END if is_object else _VALUE_OR_END

    def _slot_of_new(self) -> tuple[_Frame | None, str | int | None]:
        """The slot `_value_start` just took (for the container opening there)."""
        if not self.stack:
            return None, None
        frame = self.stack[-1]
        return frame, frame.key if frame.is_object else frame.index

    def _put(self, frame: _Frame | None, slot: str | int | None, value: Any) -> None:
        if frame is None:
            self.root = value
        elif isinstance(frame.kept, dict) and isinstance(slot, str):
            frame.kept[slot] = value   # (a key given twice: the last one wins)
        elif isinstance(frame.kept, list) and isinstance(slot, int):
            frame.kept[slot] = value

    def _value_end(self) -> None:
        """A value (string, scalar or container) has ended."""
        if self.capture is not None and len(self.stack) == self.capture_depth:
            raw, self.capture = bytes(self.capture), None
            try:
                value = json.loads(raw.decode("utf-8", "replace"))
            except ValueError as exc:   # (checked on the way: only a very odd case)
                raise JsonError(str(exc)) from None
            self._put(*self.capture_into, value)
        self.expect = _NEXT if self.stack else _DONE


def _key(raw: bytearray) -> str | None:
    """A key's text (`raw`: its bytes with both quotes), escapes undone."""
    try:
        if b"\\" in raw:
            return str(json.loads(raw.decode("utf-8", "replace")))
        return raw[1:-1].decode("utf-8", "replace")
    except ValueError:
        return None
