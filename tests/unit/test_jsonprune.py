"""`codecs.jsonprune`: the fields at chosen paths of a JSON text fed in pieces, as `json.loads`
of the whole text reads them, under any split; and nothing from a text `json.loads`
refuses."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.codecs.jsonprune import EACH, MAX_DEPTH, JsonPruner, Path
from extproc.providers.values import load_json

PATHS: list[Path] = [("type",), ("response", "usage"), ("response", "status"),
                     ("candidates", EACH, "finishReason"), ("candidates", EACH, "index"),
                     ("usageMetadata",), ("error",)]
KEYS = ["type", "response", "usage", "status", "candidates", "finishReason", "index",
        "usageMetadata", "error", "tools", "output", "x", "us\u00e9"]


def _prune(value: Any, node: dict[Any, Any]) -> Any:
    """The reference: what `JsonPruner` keeps of a parsed value, for the paths below
    `node` (a nested dict of path steps; the key True marks the end of a path)."""
    if True in node:
        return value
    if isinstance(value, dict):
        return {k: _prune(v, node[k]) for k, v in value.items()
                if k in node and (True in node[k] or isinstance(v, dict | list))}
    if isinstance(value, list):
        child = node.get(EACH)
        return [_prune(e, child) if child is not None and (
            True in child or isinstance(e, dict | list)) else None for e in value]
    return None


def _tree(paths: list[Path]) -> dict[Any, Any]:
    root: dict[Any, Any] = {}
    for path in paths:
        node = root
        for step in path:
            node = node.setdefault(step, {})
        node[True] = {}
    return root


def reference(text: str, paths: list[Path]) -> Any:
    doc = load_json(text)
    if doc is None and text.strip() != "null":
        return None
    tree = _tree(paths)
    if True in tree:
        return doc
    return _prune(doc, tree) if isinstance(doc, dict | list) else None


def pruned(data: bytes, cuts: list[int], paths: list[Path] = PATHS,
           max_value_bytes: int = 1 << 20) -> Any:
    p = JsonPruner(paths, max_value_bytes)
    at = 0
    for cut in sorted(c % (len(data) + 1) for c in cuts):
        p.feed(data[at:cut])
        at = cut
    p.feed(data[at:])
    return p.finish()


scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20),
                    st.floats(allow_nan=False, allow_infinity=False),
                    st.text(max_size=12),
                    st.sampled_from(['"usage": {"input_tokens": 1}', "\\", '"', "\u2028",
                                     "\ud800x", "A" * 300]))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.sampled_from(KEYS), inner, max_size=5)),
    max_leaves=25)


@st.composite
def json_texts(draw: st.DrawFn) -> str:
    """A JSON text as a server might write it: compact, spaced or indented, escaped or not,
    sometimes with a key given twice."""
    doc = draw(st.dictionaries(st.sampled_from(KEYS), values, max_size=6))
    indent = draw(st.sampled_from([None, None, 2, "\t"]))
    seps = draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,", " : ")]))
    ascii_ = draw(st.booleans())
    text = json.dumps(doc, indent=indent, separators=seps if indent is None else None,
                      ensure_ascii=ascii_)
    if draw(st.booleans()) and doc:   # the same key again at the end: the last one wins
        key = draw(st.sampled_from(sorted(doc)))
        again = json.dumps(draw(values), ensure_ascii=ascii_)
        text = text.rstrip()[:-1].rstrip() + f', {json.dumps(key)}: {again}}}'
    return text


@settings(max_examples=400, deadline=None)
@given(json_texts(), st.lists(st.integers(0, 1 << 16), max_size=8))
def test_any_split_reads_the_paths_as_json_loads_of_the_whole_does(
        text: str, cuts: list[int]) -> None:
    data = text.encode("utf-8", "surrogatepass")
    assert pruned(data, cuts) == reference(data.decode("utf-8", "replace"), PATHS)


@settings(max_examples=400, deadline=None)
@given(json_texts(), st.integers(0, 1 << 16),
       st.one_of(st.binary(min_size=1, max_size=3),
                 st.sampled_from([b",", b"}", b"]", b":", b'"', b"\\", b"{", b"[", b"\x00"])),
       st.lists(st.integers(0, 1 << 16), max_size=4))
def test_a_damaged_text_is_read_only_if_json_loads_reads_it(
        text: str, at: int, junk: bytes, cuts: list[int]) -> None:
    """Bytes cut out or put in anywhere: whatever `json.loads` refuses gives None, and what
    it still reads is read the same."""
    data = text.encode("utf-8", "surrogatepass")
    at %= len(data) + 1
    for damaged in (data[:at] + junk + data[at:], data[:at] + data[at + len(junk):],
                    data[:at]):
        assert pruned(damaged, cuts) == reference(damaged.decode("utf-8", "replace"), PATHS)


def test_the_key_at_its_path_is_read_not_one_in_a_string_or_deeper() -> None:
    """A tool's schema naming a property "usage", a text quoting a usage object: neither is
    the response's usage."""
    image = "iVBORw0KGgo" * 50_000
    doc = {"type": "response.completed", "response": {
        "tools": [{"type": "function", "parameters": {"properties": {
            "usage": {"input_tokens": 0, "output_tokens": 0}}}}],
        "output": [{"type": "image_generation_call", "result": image},
                   {"type": "message", "content": [{"text": '"usage": {"output_tokens": 1}'}]}],
        "usage": {"input_tokens": 12, "output_tokens": 4160}}}
    data = json.dumps(doc).encode()
    assert pruned(data, list(range(0, len(data), 8191))) == {
        "type": "response.completed",
        "response": {"usage": {"input_tokens": 12, "output_tokens": 4160}}}
    del doc["response"]["usage"]   # none at the path: none read, whatever is deeper
    assert pruned(json.dumps(doc).encode(), []) == {"type": "response.completed",
                                                      "response": {}}


def test_escaped_keys_are_read_as_json_loads_reads_them() -> None:
    data = b'{"\\u0075sage\\u004detadata": {"totalTokenCount": 9}, "t\\u0079pe": "x"}'
    assert pruned(data, [3, 9]) == {"usageMetadata": {"totalTokenCount": 9}, "type": "x"}


def test_a_value_at_a_path_too_large_makes_it_unread() -> None:
    data = json.dumps({"error": {"message": "m" * 5000}, "type": "x"}).encode()
    assert pruned(data, [], max_value_bytes=4096) is None
    assert pruned(data, [], max_value_bytes=8192) == json.loads(data)


def test_deep_nesting_is_refused_not_a_recursion() -> None:
    data = b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1)
    assert pruned(data, []) is None
    data = b"[" * 100 + b"]" * 100
    assert pruned(b'{"x": ' + data + b', "type": 1}', []) == {"type": 1}


@pytest.mark.parametrize("text", ['{"type": NaN}', '{"type": -Infinity}', '{"type": 1e5}',
                                  '{"type": -0.5E-3}', "  {}  ", "[]"])
def test_scalars_as_json_loads_takes_them(text: str) -> None:
    assert pruned(text.encode(), []) == reference(text, PATHS)


@pytest.mark.parametrize("text", ['{"type": 01}', '{"type": .5}', '{"type": +1}',
                                  '{"type": "\\x"}', '{"type": "\\u12"}', '{"type": tru}',
                                  '{"type": 1', '{"a": [}', "", "   ", '{"a" 1}',
                                  '{"a": 1}}', '{"a": "\t"}', '\ufeff{"a": 1}',
                                  '{"a": 1,}', '[1,]', '{,}', '[,1]', '{"a":1 "b":2}'])
def test_what_json_loads_refuses_gives_none(text: str) -> None:
    assert load_json(text) is None
    assert pruned(text.encode(), [2]) is None


def test_a_document_of_too_many_tokens_is_not_read() -> None:
    """A huge structured value (a function call's arguments of megabytes) costs a step per
    token: past the bound it is not read, as a text that is not JSON is not."""
    doc = {"usageMetadata": {"totalTokenCount": 3},
           "rows": [{"id": i, "tags": ["a", "b"]} for i in range(3000)]}
    data = json.dumps(doc).encode()
    p = JsonPruner(PATHS, max_tokens=10_000)
    p.feed(data)
    assert p.finish() is None
    p = JsonPruner(PATHS, max_tokens=40_000)
    p.feed(data)
    assert p.finish() == {"usageMetadata": {"totalTokenCount": 3}}
