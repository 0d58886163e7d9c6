"""Hypothesis helpers that spoil valid JSON documents: any value, put in any place."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st


def json_values(keys: list[str]) -> st.SearchStrategy[Any]:
    """Small JSON values, objects keyed by names the parsers look for."""
    return st.recursive(
        st.none() | st.booleans() | st.integers(-2, 3) | st.floats(allow_nan=False)
        | st.text(max_size=6) | st.just("jane.roe@example.org"),
        lambda inner: st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(keys), inner, max_size=3),
        max_leaves=6)


def paths(doc: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in `doc` (keys and indexes from the top), parents before children."""
    out = [at] if at else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += paths(v, (*at, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += paths(v, (*at, i))
    return out


def spoil(doc: Any, data: st.DataObject, values: st.SearchStrategy[Any], times: int) -> Any:
    """`doc` with `times` places (drawn from `data`) replaced by values drawn from `values`."""
    for _ in range(times):
        places = paths(doc)
        if not places:
            break
        place = data.draw(st.sampled_from(places))
        target = doc
        for step in place[:-1]:
            target = target[step]
        target[place[-1]] = data.draw(values)
    return doc
