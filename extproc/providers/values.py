"""Tolerant readers and writers of provider JSON values, shared by the adapters: typed reads
that never raise (`as_int`, `as_dict`, ...), compact dumps, the in-place rewriting of text
slots, of JSON-source tool arguments and of call names (see ``providers.base`` for the
conventions), every text of a JSON value as a slot (``value_slots``: keys and numbers too),
and usage arithmetic.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import unquote

from extproc.codecs.jsoncap import checked_source
from extproc.codecs.jsontext import JsonSource
from extproc.providers.base import Usage
from extproc.providers.slots import Name, string_slots


def load_json(data: str | bytes) -> Any:
    """Parse JSON, or None when it is not JSON (including absurdly deep nesting)."""
    try:
        return json.loads(data)
    except (ValueError, TypeError, RecursionError):
        return None


def json_bytes(obj: Any) -> bytes:
    """Compact JSON as UTF-8 bytes; a lone surrogate (a client's `\\ud800` escape) stays
    escaped instead of failing the encoding."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    try:
        return text.encode()
    except UnicodeEncodeError:
        return json.dumps(obj, separators=(",", ":")).encode()


def dump_compact(obj: Any) -> str:
    """Compact JSON text (UTF-8 kept); "" for what cannot be serialised."""
    if isinstance(obj, str):
        return obj
    try:
        return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    except (ValueError, TypeError, RecursionError):
        return ""


def rewrite_slot(holder: Any, key: Any, role: str, fn: Callable[[str, str], str]) -> bool:
    """Store fn(role, holder[key]) (a string) back into ``holder[key]`` if it differs."""
    old = holder[key]
    new = fn(role, old)
    if new == old:
        return False
    holder[key] = new
    return True


class MaskingFn:
    """A rewriting fn (role, text -> text, or text -> text on the reply side) that masks: a
    mask guard's. It applies to every part of a JSON value the model reads, not its string
    values alone: the keys of its objects (a schema's property names, a tool input's fields)
    and its numbers (a card or phone number written as a JSON number), so what a mask guard
    masks in a string it masks there too. Any other fn (a webhook's collector, a reader)
    sees string values only, as the texts contract of `rewrite_request_texts` says."""

    __slots__ = ("fn",)

    def __init__(self, fn: Callable[..., str]) -> None:
        self.fn = fn

    def __call__(self, *args: str) -> str:
        return self.fn(*args)


def rewrite_json_strings(holder: Any, key: Any, role: str,
                         fn: Callable[[str, str], str]) -> bool:
    """Rewrite ``holder[key]`` with fn(role, ...): a string as a whole, a JSON object or array
    string value by string value in serialisation order (``dump_compact``'s order,
    `string_slots`), keys and non-strings left alone. A `MaskingFn` gets every text of the
    value (`value_slots`): each object's keys too, before its values (a masked key is renamed
    as `rename_keys` does), and each number as its JSON text (a masked number becomes a
    string, as in tool-call arguments; booleans and nulls hold no text). Iterative and
    cycle-safe. True if anything changed."""
    if isinstance(holder[key], str):    # most slots: one string
        return rewrite_slot(holder, key, role, fn)
    if not isinstance(fn, MaskingFn):
        changed = False
        for parent, slot in string_slots(holder, key):
            changed |= rewrite_slot(parent, slot, role, fn)
        return changed
    slots = value_slots(holder, key, defer=True)
    changed = False
    for parent, slot in slots:
        changed |= rewrite_slot(parent, slot, role, fn)
    renamed = {id(p.keys): p.keys for p, _ in slots if isinstance(p, KeyRef) and p.keys.pending}
    for keys in renamed.values():   # each object's renamed keys, in one pass over it
        keys.flush()
    return changed


def rewrite_slots(slots: Iterable[tuple[str, Any, Any]], fn: Callable[[str, str], str],
                  arguments: bool = False) -> bool:
    """`rewrite_json_strings` over every (role, holder, key) of `slots` (with `arguments`,
    `rewrite_arguments` for a slot keyed "arguments", as OpenAI's tool-call arguments are
    JSON source): the usual slot, a string, rewritten right here (a long prompt is hundreds
    of them). True if anything changed."""
    call = fn.fn if isinstance(fn, MaskingFn) else fn   # the same function, one call less
    changed = False
    for role, holder, key in slots:
        if arguments and key == "arguments":
            changed |= rewrite_arguments(holder, key, role, fn)
            continue
        old = holder[key]
        if not isinstance(old, str):
            changed |= rewrite_json_strings(holder, key, role, fn)
            continue
        new = call(role, old)
        if new != old:
            holder[key] = new
            changed = True
    return changed


def rename_keys(obj: dict[str, Any], names: dict[str, str]) -> bool:
    """Rename the keys of `obj` in place as `names` says (old -> new), their order kept.
    A key not renamed keeps its name; a renamed key that would take a name already taken
    (two addresses masked to one placeholder) gets `_2`, `_3`, ... so no value is lost.
    True if any key changed."""
    renamed = {old: new for old, new in names.items() if new != old}
    if not renamed:
        return False
    kept = {k for k in obj if k not in renamed}
    items = list(obj.items())
    obj.clear()
    tried: dict[str, int] = {}   # a name's suffixes taken so far: each tried once per pass
    for old, value in items:
        new = renamed.get(old, old)
        if old in renamed and (new in obj or new in kept):
            n = tried.get(new, 2)
            while f"{new}_{n}" in obj or f"{new}_{n}" in kept:
                n += 1
            tried[new] = n + 1
            new = f"{new}_{n}"
        obj[new] = value
    return True


class _Keys:
    """The keys of one object in order, as its `KeyRef`s and `EntryRef`s read them by
    position: listed once (found by review: each read counted through the object up to its
    position, so masking an object of n keys took O(n^2), 20,000 keys 18 s), and listed
    again whenever the object no longer has them (a rename). With `defer`, renames wait in
    `pending` for `flush`, which applies them all in one pass (a rename is a pass over the
    object: 10,000 masked keys renamed one by one took 20 s); until then the object keeps
    its old keys, which its refs read."""

    __slots__ = ("defer", "names", "obj", "pending")

    def __init__(self, obj: dict[str, Any], defer: bool = False) -> None:
        self.obj = obj
        self.names = list(obj)
        self.defer = defer
        self.pending: dict[str, str] = {}

    def flush(self) -> None:
        """Apply the renames waiting (`defer`), all at once."""
        pending, self.pending = self.pending, {}
        if rename_keys(self.obj, pending):
            self.names = list(self.obj)

    def name(self, position: int) -> str:
        names, obj = self.names, self.obj
        if len(names) != len(obj) or names[position] not in obj:
            names = self.names = list(obj)
        if position >= len(names):
            raise KeyError(position)
        return names[position]


class _Entry:
    """One member of a JSON object, found by its position (so that renaming its key, or a
    sibling's, never loses it)."""

    __slots__ = ("keys", "position")

    def __init__(self, obj: dict[str, Any] | _Keys, position: int) -> None:
        self.keys = obj if isinstance(obj, _Keys) else _Keys(obj)
        self.position = position

    @property
    def obj(self) -> dict[str, Any]:
        return self.keys.obj

    def name(self) -> str:
        return self.keys.name(self.position)


class KeyRef(_Entry):
    """A member's key as a slot: ``ref[None]`` is the key's text, and storing a new text
    there renames the key in place, its position and value kept (a name already taken gets
    `_2`, `_3`, ... as `values.rename_keys` does)."""

    __slots__ = ()

    def __getitem__(self, _key: None) -> str:
        return self.name()

    def __setitem__(self, _key: None, text: str) -> None:
        keys = self.keys
        if keys.defer:
            keys.pending[self.name()] = text
        elif rename_keys(self.obj, {self.name(): text}):
            keys.names = list(self.obj)   # (a rename costs a pass over the object)


class EntryRef(_Entry):
    """A member's value as a slot: ``ref[None]`` reads and writes it."""

    __slots__ = ()

    def __getitem__(self, _key: None) -> Any:
        return self.obj[self.name()]

    def __setitem__(self, _key: None, value: Any) -> None:
        self.obj[self.name()] = value


class NumberRef:
    """A number of a JSON value as a slot: ``ref[None]`` is its JSON text; storing a text
    that differs puts that string in its place (a masked number becomes a string)."""

    __slots__ = ("holder", "key")

    def __init__(self, holder: Any, key: Any) -> None:
        self.holder = holder
        self.key = key

    def __getitem__(self, _key: None) -> str:
        value = self.holder[self.key]
        return value if isinstance(value, str) else json.dumps(value)

    def __setitem__(self, _key: None, text: str) -> None:
        if text != self[None]:
            self.holder[self.key] = text


def value_slots(holder: Any, key: Any, defer: bool = False) -> list[tuple[Any, Any]]:
    """(holder, key) of every text the model reads in the JSON value at ``holder[key]``, in
    the order `rewrite_json_strings` hands them to a `MaskingFn` (an object's keys, then its
    values, in order): each string, and, unlike `string_slots`, each key of an object (a
    `KeyRef`) and each number (a `NumberRef`; booleans and nulls hold no text).
    ``holder[key]`` reads each text and storing there rewrites it in place, but with `defer`
    a key's new text waits for its object's `_Keys.flush` (`rewrite_json_strings` calls it).
    Iterative and cycle-safe."""
    out: list[tuple[Any, Any]] = []
    stack: list[tuple[Any, Any]] = [(holder, key)]
    seen: set[int] = set()
    while stack:
        parent, slot = stack.pop()
        if isinstance(parent, KeyRef):
            out.append((parent, None))
            continue
        item = parent[slot]
        if isinstance(item, str):
            out.append((parent, slot))
        elif isinstance(item, int | float) and not isinstance(item, bool):
            out.append((NumberRef(parent, slot), None))
        elif isinstance(item, dict) and id(item) not in seen:
            seen.add(id(item))
            positions = range(len(item))
            keys = _Keys(item, defer)   # (one list of its keys for all its refs)
            stack.extend((EntryRef(keys, position), None) for position in reversed(positions))
            stack.extend((KeyRef(keys, position), None) for position in reversed(positions))
        elif isinstance(item, list) and id(item) not in seen:
            seen.add(id(item))
            stack.extend((item, i) for i in reversed(range(len(item))))
    return out


def read_value(value: Any) -> str:
    """A text slot as the guards read it: a string as it is; a JSON value (a tool's input or
    schema) as its compact dump, a ``JsonSource``: read token by token with its escapes
    decoded, so that a dumped line end (``\\n``) does not hide a PEM block from a guard."""
    return value if isinstance(value, str) else JsonSource(dump_compact(value))


def read_arguments(value: Any) -> str:
    """Tool-call arguments as the guards read them: a string is JSON source (a
    ``JsonSource``), any other value its compact dump (``read_value``)."""
    return checked_source(value) if isinstance(value, str) else read_value(value)


def rewrite_arguments(holder: Any, key: Any, role: str, fn: Callable[[str, str], str]) -> bool:
    """Rewrite tool-call arguments at ``holder[key]`` with fn(role, ...): a string whole, as
    a ``JsonSource`` (a plain str is stored back, only if it differs); any other value as
    ``rewrite_json_strings`` does. True if anything changed."""
    if isinstance(holder[key], str):
        return rewrite_slot(holder, key, role, lambda r, t: str(fn(r, checked_source(t))))
    return rewrite_json_strings(holder, key, role, fn)


def rewrite_name(holder: Any, key: Any, role: str, fn: Callable[[str, str], str]) -> bool:
    """Rewrite the name of a call the model wrote at ``holder[key]`` (a string) with
    fn(role, ...), given as a ``Name`` (a plain str is stored back, only if it differs).
    True if it changed."""
    return rewrite_slot(holder, key, role, lambda r, t: str(fn(r, Name(t))))


def lower_role(value: Any, default: str = "user") -> str:
    """A message's role, lower-cased (``default`` when it is not a string)."""
    return value.lower() if isinstance(value, str) else default


def text_only(fn: Callable[[str], str]) -> Callable[[str, str], str]:
    """A response rewriter (text -> text) as a request one (role, text -> text); a mask
    guard's (`MaskingFn`) stays one."""
    if isinstance(fn, MaskingFn):
        return MaskingFn(lambda _role, text: fn(text))
    return lambda _role, text: fn(text)


def as_int(value: Any) -> int | None:
    """A token count: a non-negative int (bools and integral floats handled), else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    return None


#: a proto3 JSON integer written as a string: Google's parsers take decimal strings for
#: int32/int64 fields ("8", " +8 "), some (Java's JsonFormat) also "8.0" or "8e0"
_PROTO_INT = re.compile(r"\s*[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\s*")
#: digits beyond which a count is read as this bound (no int64 field holds more)
_HUGE = 10 ** 19


def as_proto_int(value: Any) -> int | None:
    """A token count in a proto3 JSON field (Gemini, Vertex): a number, or a decimal string
    as Google's JSON parsers also accept for int32/int64 fields (`"candidateCount": "8"`),
    read generously (an exponent or a zero fraction too: a value Google refuses costs
    nothing). Non-negative, else None; anything beyond int64 reads as `_HUGE`."""
    if isinstance(value, str):
        if len(value) > 400 or not _PROTO_INT.fullmatch(value):
            return None
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            return None
        if number < 0 or number != number.to_integral_value():
            return None
        return _HUGE if number.adjusted() >= 19 else int(number)
    return as_int(value)


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty dict."""
    return value if isinstance(value, dict) else {}


def as_list(value: Any) -> list[Any]:
    """``value`` if it is a JSON array, else an empty list."""
    return value if isinstance(value, list) else []


def as_str(value: Any) -> str | None:
    """``value`` if it is a string, else None."""
    return value if isinstance(value, str) else None


def path_only(path: str) -> str:
    """The path without query string or fragment, percent-decoded."""
    for sep in ("?", "#"):
        cut = path.find(sep)
        if cut >= 0:
            path = path[:cut]
    return unquote(path)


def pick_indexed(items: list[Any], index: int = 0) -> dict[str, Any] | None:
    """The object whose ``index`` is ``index`` (one without ``index`` counts as its position)."""
    for position, item in enumerate(items):
        if isinstance(item, dict):
            own = item.get("index", position)
            if own == index and not isinstance(own, bool):
                return item
    return None


def sum_known(*values: int | None) -> int | None:
    """The sum of the reported values, or None when none was reported."""
    known = [v for v in values if v is not None]
    return sum(known) if known else None


def with_total(usage: Usage) -> Usage:
    """Fill ``total_tokens`` from input + output when the provider gave no total."""
    if usage.total_tokens is None and usage.input_tokens is not None:
        if usage.output_tokens is not None:
            usage.total_tokens = usage.input_tokens + usage.output_tokens
    return usage


def usage_or_none(usage: Usage) -> Usage | None:
    """``usage`` unless it reports nothing."""
    return None if usage.is_empty() else usage
