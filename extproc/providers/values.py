"""Tolerant readers and writers of provider JSON values, shared by the adapters: typed reads
that never raise (`as_int`, `as_dict`, ...), compact dumps, the in-place rewriting of text
slots, of JSON-source tool arguments and of call names (see ``providers.base`` for the
conventions; every text of a JSON value as a slot, keys and numbers too, is
``value_refs.value_slots``), and usage arithmetic.
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
from extproc.providers.value_refs import KeyRef, value_slots


def load_json(data: str | bytes) -> Any:
    """Parse JSON, or None when it is not JSON (including absurdly deep nesting). An integer
    longer than Python reads (4,300 digits) is JSON too: read as a float (found by review: a
    long number in a tool's arguments made the usage report beside it unreadable)."""
    try:
        return json.loads(data)
    except ValueError as exc:
        if "integer string conversion" not in str(exc):
            return None
    except (TypeError, RecursionError):
        return None
    try:
        return json.loads(data, parse_int=_long_int)
    except (ValueError, TypeError, RecursionError):
        return None


def _long_int(text: str) -> int | float:
    return int(text) if len(text) <= 4000 else float(text)


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
