"""Masking a JSON value's keys takes one pass over each object, however many keys it has or
how many are masked (found by review: each key and value was found by counting through its
object to its position, 20,000 keys took 18 s; every masked key was renamed by a pass of its
own, and each clash with a placeholder already given was resolved by trying every suffix
from `_2`, so 10,000 masked keys took 20 s more). Counted, not timed: how often the object
is walked and looked into."""

from __future__ import annotations

from typing import Any

import pytest

from extproc.providers import value_refs
from extproc.providers.value_refs import rename_keys
from extproc.providers.values import MaskingFn, rewrite_json_strings


class Counting(dict):  # type: ignore[type-arg]
    """A JSON object that counts the passes over it and the lookups into it."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.passes = 0
        self.lookups = 0

    def __iter__(self) -> Any:
        self.passes += 1
        return super().__iter__()

    def __contains__(self, key: object) -> bool:
        self.lookups += 1
        return super().__contains__(key)


def _mask(text: str) -> str:
    return "<EMAIL>" if "@" in text else text


def test_reading_every_key_and_value_walks_the_object_a_few_times() -> None:
    obj = Counting({f"k{i}": f"v{i}" for i in range(500)})
    holder = {"input": obj}
    assert not rewrite_json_strings(holder, "input", "tool", MaskingFn(lambda _r, t: t))
    assert obj.passes <= 3, obj.passes   # (each of 1,000 reads walked it before)


def test_masked_keys_are_renamed_in_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    real = value_refs.rename_keys
    monkeypatch.setattr(value_refs, "rename_keys",
                        lambda obj, names: calls.append(len(names)) or real(obj, names))
    obj = {f"u{i}@example.com": i for i in range(300)} | {"plain": 1}
    holder = {"input": obj}
    assert rewrite_json_strings(holder, "input", "tool", MaskingFn(lambda _r, t: _mask(t)))
    assert calls == [300]
    assert list(holder["input"]) == ["<EMAIL>", *(f"<EMAIL>_{n}" for n in range(2, 301)),
                                     "plain"]
    assert list(holder["input"].values()) == [*range(300), 1]   # every value kept, in order


def test_a_clash_with_a_placeholder_looks_up_each_suffix_once() -> None:
    obj = Counting({f"u{i}@example.com": i for i in range(2_000)})
    rename_keys(obj, {k: "<EMAIL>" for k in obj})
    assert len(obj) == 2_000 and "<EMAIL>_2000" in obj
    assert obj.lookups < 10 * 2_000, obj.lookups   # (about 2,000,000 before)


def test_a_key_already_spelled_like_a_placeholder_keeps_its_name() -> None:
    obj = {"a@x.io": 1, "<EMAIL>": 2, "<EMAIL>_2": 3, "b@x.io": 4}
    rename_keys(obj, {"a@x.io": "<EMAIL>", "b@x.io": "<EMAIL>"})
    assert obj == {"<EMAIL>_3": 1, "<EMAIL>": 2, "<EMAIL>_2": 3, "<EMAIL>_4": 4}
    assert list(obj) == ["<EMAIL>_3", "<EMAIL>", "<EMAIL>_2", "<EMAIL>_4"]
