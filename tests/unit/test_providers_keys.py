"""Mask guards reach the keys and numbers of the JSON values the model reads or writes (a
schema's property names, a tool input's fields, a card number written as a JSON number), in
prompts and in whole replies: `MaskingFn` in `providers.values`, `rename_keys` in
`providers.value_refs`. Any other rewriting fn still sees string values only."""

from __future__ import annotations

import copy
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.providers import adapter_for
from extproc.providers.value_refs import rename_keys, value_slots
from extproc.providers.values import MaskingFn, rewrite_json_strings

EMAIL = re.compile(r"[\w.]+@[\w.]+\.\w+")


CARD = re.compile(r"\b\d{13,19}\b")


def mask(_role: str, text: str) -> str:
    return EMAIL.sub("<EMAIL>", text)


def mask_cards(_role: str, text: str) -> str:
    return CARD.sub("<CARD>", text)


def test_rename_keys_keeps_order_and_every_value() -> None:
    obj = {"a@x.io": 1, "keep": 2, "b@y.io": 3, "<EMAIL>_2": 4}
    names = {k: mask("user", k) for k in obj}
    assert rename_keys(obj, names) is True
    # two addresses masked alike stay two keys; a suffix never takes an existing name
    assert obj == {"<EMAIL>": 1, "keep": 2, "<EMAIL>_3": 3, "<EMAIL>_2": 4}
    assert list(obj.values()) == [1, 2, 3, 4]


def test_rename_keys_that_change_nothing_leave_the_object_alone() -> None:
    obj = {"a": 1, "b": 2}
    same = obj
    assert rename_keys(obj, {"a": "a", "b": "b"}) is False
    assert obj is same and obj == {"a": 1, "b": 2}


def test_only_a_key_rewriter_renames_keys() -> None:
    holder = {"input": {"a@x.io": "to a@x.io", "list": [{"b@y.io": 1}]}}
    plain = copy.deepcopy(holder)
    assert rewrite_json_strings(plain, "input", "tool", mask) is True
    assert plain == {"input": {"a@x.io": "to <EMAIL>", "list": [{"b@y.io": 1}]}}
    assert rewrite_json_strings(holder, "input", "tool", MaskingFn(mask)) is True
    assert holder == {"input": {"<EMAIL>": "to <EMAIL>", "list": [{"<EMAIL>": 1}]}}
    assert rewrite_json_strings(holder, "input", "tool", MaskingFn(mask)) is False


def test_keys_are_masked_in_every_adapter_slot_that_holds_an_object() -> None:
    anthropic = {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "f",
                                           "input": {"ann@x.io": True, "bob@y.io": 1}}]}]}
    assert adapter_for("anthropic").rewrite_request_texts(
        "/v1/messages", anthropic, MaskingFn(mask)) is True
    assert anthropic["messages"][0]["content"][0]["input"] == {"<EMAIL>": True,
                                                               "<EMAIL>_2": 1}
    # the request's own fields are not texts: never renamed
    assert set(anthropic) == {"model", "max_tokens", "messages"}
    gemini = {"contents": [{"role": "model", "parts": [
        {"functionCall": {"name": "f", "args": {"ann@x.io": "ann@x.io"}}}]}]}
    assert adapter_for("gemini").rewrite_request_texts(
        "/v1beta/models/gemini-2.5-flash:generateContent", gemini, MaskingFn(mask)) is True
    assert gemini["contents"][0]["parts"][0]["functionCall"]["args"] == {
        "<EMAIL>": "<EMAIL>"}


def test_a_masking_fn_masks_a_number_as_its_json_text() -> None:
    value = {"card": 4111111111111111, "big": 4.111111111111111e15, "n": 7, "ok": True,
             "none": None, "list": [378282246310005, False], "s": "5500005555555559"}
    plain = {"v": copy.deepcopy(value)}
    assert rewrite_json_strings(plain, "v", "tool", mask_cards) is True
    assert plain["v"] == {**value, "s": "<CARD>"}    # numbers are no text to a plain fn
    holder = {"v": copy.deepcopy(value)}
    assert rewrite_json_strings(holder, "v", "tool", MaskingFn(mask_cards)) is True
    # a masked number becomes a string (as in tool-call arguments); a float is read as the
    # gateway writes it on (4111111111111111.0); booleans and nulls hold no text
    assert holder["v"] == {"card": "<CARD>", "big": "<CARD>.0", "n": 7, "ok": True,
                           "none": None, "list": ["<CARD>", False], "s": "<CARD>"}
    assert rewrite_json_strings({"v": 4111111111111111}, "v", "tool",
                                MaskingFn(mask_cards)) is True


def test_whole_replies_mask_keys_and_numbers_only_for_a_masking_fn() -> None:
    def reply_mask(text: str) -> str:
        return mask_cards("assistant", mask("assistant", text))

    anthropic = {"type": "message", "role": "assistant", "content": [
        {"type": "tool_use", "id": "t1", "name": "f",
         "input": {"ann@x.io": 4111111111111111, "note": "ann@x.io"}}]}
    gemini = {"candidates": [{"index": 0, "content": {"role": "model", "parts": [
        {"functionCall": {"name": "f", "args": {"ann@x.io": [4111111111111111]}}}]}}]}
    for provider, doc, at, masked in (
            ("anthropic", anthropic, lambda d: d["content"][0]["input"],
             {"<EMAIL>": "<CARD>", "note": "<EMAIL>"}),
            ("gemini", gemini,
             lambda d: d["candidates"][0]["content"]["parts"][0]["functionCall"]["args"],
             {"<EMAIL>": ["<CARD>"]})):
        plain = copy.deepcopy(doc)
        adapter_for(provider).rewrite_response_texts(plain, reply_mask)
        assert EMAIL.search(next(iter(at(plain))))      # a plain fn: string values only
        assert adapter_for(provider).rewrite_response_texts(doc, MaskingFn(reply_mask))
        assert at(doc) == masked


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(["a", "b", "c@d.io", "e@f.io", "<EMAIL>",
                                       "<EMAIL>_2"]), inner, max_size=5),
    max_leaves=20)


def leaf_values(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [x for item in value.values() for x in leaf_values(item)]
    if isinstance(value, list):
        return [x for item in value for x in leaf_values(item)]
    return [value]


def shape(value: Any) -> Any:
    """The value with every key and string forgotten: sizes, nesting and non-strings."""
    if isinstance(value, dict):
        return ("{", [shape(v) for v in value.values()])
    if isinstance(value, list):
        return ("[", [shape(v) for v in value])
    return "s" if isinstance(value, str) else value


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["c@d.io", "x", "e@f.io", "<EMAIL>"]), json_values,
                       max_size=4))
def test_masking_keys_loses_no_value_and_leaves_no_address(doc: dict[str, Any]) -> None:
    holder = {"v": copy.deepcopy(doc)}
    rewrite_json_strings(holder, "v", "tool", MaskingFn(mask))
    out = holder["v"]
    assert shape(out) == shape(doc)   # every value kept, in its place and order
    assert [v for v in leaf_values(out) if not isinstance(v, str)] == \
        [v for v in leaf_values(doc) if not isinstance(v, str)]

    def keys(value: Any) -> list[str]:
        if isinstance(value, dict):
            return [*value, *(k for item in value.values() for k in keys(item))]
        if isinstance(value, list):
            return [k for item in value for k in keys(item)]
        return []

    assert not any(EMAIL.search(k) for k in keys(out))
    assert not any(EMAIL.search(v) for v in leaf_values(out) if isinstance(v, str))


number_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.sampled_from([4111111111111111, 2.5])
    | st.text(max_size=5) | st.sampled_from(["a@b.io", "4111111111111111"]),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(["a", "c@d.io", "e@f.io", "<EMAIL>", "<EMAIL>_2",
                                       "4111111111111111"]), inner, max_size=5),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(number_values)
def test_value_slots_read_and_write_what_a_masking_fn_does(value: Any) -> None:
    """`value_slots` (the webhook stream guard's reading of a JSON value) visits the texts
    `rewrite_json_strings` hands a `MaskingFn`, in the same order, and storing each masked
    text back gives the same value."""
    def both(role: str, text: str) -> str:
        return mask_cards(role, mask(role, text))

    seen: list[str] = []
    rewrite_json_strings({"v": copy.deepcopy(value)}, "v", "tool",
                         MaskingFn(lambda _r, t: seen.append(t) or t))
    holder = {"v": copy.deepcopy(value)}
    slots = value_slots(holder, "v")
    assert [h[k] for h, k in slots] == seen
    for h, k in slots:
        h[k] = both("tool", h[k])
    expected = {"v": copy.deepcopy(value)}
    rewrite_json_strings(expected, "v", "tool", MaskingFn(both))
    assert holder == expected
