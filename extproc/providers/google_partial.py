"""Vertex AI's streamed function call arguments, as the guards read them.

A request that sets ``toolConfig.functionCallingConfig.streamFunctionCallArguments`` gets
its function calls streamed: an element whose ``functionCall`` holds the name (and
``willContinue: true``), then elements whose ``functionCall.partialArgs`` hold pieces of
the arguments, each a ``PartialArg``: the argument's ``jsonPath`` (RFC 9535, ``$.to``) and
one value, ``stringValue`` (a piece of a string: the next piece of the same path follows
while the arg says ``willContinue: true``), ``numberValue``, ``boolValue`` or
``nullValue``. A client joins each path's string pieces, so the guards read them as one
streamed text per candidate and path: the piece ``(candidate, PARTIAL + path, 0)``, ended
by the arg that does not say ``willContinue: true`` (or the candidate's finish). A number
is read whole. Both spellings of every field (camelCase, snake_case) are read.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from extproc.providers.slots import Piece, TextSlot
from extproc.providers.values import as_list

#: the field of a piece that is a streamed argument: this prefix, then its JSON path
PARTIAL = "partial:"
_ARGS = ("partialArgs", "partial_args")
_STRINGS = ("stringValue", "string_value")
_NUMBERS = ("numberValue", "number_value")
_PATHS = ("jsonPath", "json_path")
_MORE = ("willContinue", "will_continue")


def _args(call: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for name in _ARGS:
        if name in call:
            for arg in as_list(call[name]):
                if isinstance(arg, dict):
                    yield arg


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def partial_slots(index: int, call: dict[str, Any], slots: list[TextSlot],
                  ends: list[Piece]) -> None:
    """Add the text slots of a streamed function call's partial arguments to `slots`, and
    to `ends` the pieces its args end (module docstring)."""
    for arg in _args(call):
        path = next((arg[k] for k in _PATHS if isinstance(arg.get(k), str)), "")
        piece = (index, PARTIAL + path, 0)
        for key in _STRINGS:
            value = arg.get(key)
            if value and isinstance(value, str):
                slots.append(TextSlot(piece, arg, key))
        for key in _NUMBERS:
            if _number(arg.get(key)):
                slots.append(TextSlot((index, "partial-number", 0), arg, key, whole=True))
        if not any(arg.get(k) is True for k in _MORE):
            ends.append(piece)


def partial_reply_slots(call: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str]]:
    """(holder, key) of every string and number of a function call's partial arguments, in a
    whole reply (a JSON-array stream read whole)."""
    for arg in _args(call):
        for key in (*_STRINGS, *_NUMBERS):
            value = arg.get(key)
            if isinstance(value, str) or _number(value):
                yield arg, key


def is_partial(field: str) -> bool:
    return field.startswith(PARTIAL)


def rest_part(field: str, text: str) -> dict[str, Any]:
    """The part that carries what is still held of a streamed argument's piece."""
    return {"functionCall": {"partialArgs": [{"jsonPath": field[len(PARTIAL):],
                                              "stringValue": text, "willContinue": True}],
                             "willContinue": True}}
