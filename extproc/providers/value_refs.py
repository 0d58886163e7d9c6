"""Every text of a JSON value as a slot the guards can read and rewrite in place (sans-IO):
`value_slots` lists each string, each key of an object (a `KeyRef`: storing a new text
renames the key, its position and value kept) and each number (a `NumberRef`: a masked
number becomes a string), and `rename_keys` renames an object's keys in one pass, a clash
with a name already taken resolved by a `_2`, `_3`, ... suffix so no value is lost.
`providers.values.rewrite_json_strings` drives them for a `MaskingFn`.
"""

from __future__ import annotations

import json
from typing import Any


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


class ObjectKeys:
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

    def __init__(self, obj: dict[str, Any] | ObjectKeys, position: int) -> None:
        self.keys = obj if isinstance(obj, ObjectKeys) else ObjectKeys(obj)
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
    a key's new text waits for its object's `ObjectKeys.flush` (`rewrite_json_strings` calls it).
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
            keys = ObjectKeys(item, defer)   # (one list of its keys for all its refs)
            stack.extend((EntryRef(keys, position), None) for position in reversed(positions))
            stack.extend((KeyRef(keys, position), None) for position in reversed(positions))
        elif isinstance(item, list) and id(item) not in seen:
            seen.add(id(item))
            stack.extend((item, i) for i in reversed(range(len(item))))
    return out
