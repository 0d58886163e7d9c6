"""A request body of very many JSON objects or arrays (found by review): each costs the parse
about 100 bytes of memory, held until the reply's headers, and `{}` is 3 bytes, so 8 KiB of
gzip on the wire (8 MiB of `{},`) held about 200 MiB. More than `MAX_CONTAINERS` of them
(outside strings) is refused with a 413 before the parse; brackets inside strings do not
count, and a body at the bound is read."""

from __future__ import annotations

import gzip
import json
import tracemalloc

import pytest

from extproc.providers.endpoints import classify
from extproc.reading import MAX_CONTAINERS, Unreadable, canonical_target, read_body, strict_json

LIMIT = 8 * 2 ** 20
PATH = "/v1/chat/completions"


def _body(n: int, item: str = "{}") -> bytes:
    return (('{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"x":['
             + ",".join([item] * n)) + "]}").encode()


def test_a_small_compressed_body_cannot_hold_hundreds_of_mib() -> None:
    raw = _body((LIMIT - 200) // 3)
    wire = gzip.compress(raw, 9)
    assert len(wire) < 16 * 1024
    endpoint = classify("openai", "POST", canonical_target(PATH))
    tracemalloc.start()
    try:
        with pytest.raises(Unreadable) as refused:
            read_body(endpoint, wire, ["gzip"], LIMIT, PATH)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert refused.value.status == 413 and "JSON objects and arrays" in refused.value.message
    assert peak < 64 * 2 ** 20, f"{peak / 2 ** 20:.0f} MiB to refuse it"


@pytest.mark.parametrize("item", ["{}", "[]", "[{}]"])
def test_past_the_bound_is_refused_at_the_bound_read(item: str) -> None:
    per = item.count("{") + item.count("[")
    at = (MAX_CONTAINERS - 4) // per   # the body's own four: itself, messages, one, x
    assert len(strict_json(_body(at, item))["x"]) == at
    with pytest.raises(Unreadable) as refused:
        strict_json(_body(at + 1, item))
    assert refused.value.status == 413


def test_brackets_inside_strings_do_not_count() -> None:
    text = "{[" * (MAX_CONTAINERS + 10)
    doc = {"model": "m", "messages": [{"role": "user", "content": text}]}
    assert strict_json(json.dumps(doc).encode()) == doc


# ---- values, not only containers (found by review: a list of numbers holds no container,
# and the guards walk a JSON value item by item: 3.9 M zeros took 8-18 s) ------------------

def test_more_values_than_the_bound_are_refused() -> None:
    from extproc.reading import MAX_VALUES

    for doc in ({"model": "m", "messages": [{"role": "user", "content": "hi",
                                             "zz": [0] * (MAX_VALUES + 1)}]},
                {"contents": [], "instances": [None] * (MAX_VALUES + 1)}):
        body = json.dumps(doc, separators=(",", ":")).encode()
        with pytest.raises(Unreadable) as refused:
            strict_json(body)
        assert refused.value.status == 413 and "JSON values" in refused.value.message


def test_commas_inside_strings_do_not_count() -> None:
    from extproc.reading import MAX_VALUES

    prose = "one, two, three, " * (MAX_VALUES // 2)
    doc = strict_json(json.dumps({"model": "m", "messages": [
        {"role": "user", "content": prose}]}).encode())
    assert doc["messages"][0]["content"] == prose
    under = json.dumps({"input": [1] * (MAX_VALUES - 10)}, separators=(",", ":")).encode()
    assert len(strict_json(under)["input"]) == MAX_VALUES - 10


async def test_a_count_tokens_request_of_millions_of_numbers_is_refused() -> None:
    """countTokens `instances` were read as a plain dump the JSON-source cap never counted,
    then masked number by number (3.9 M numbers: 18 s)."""
    from tests.unit.test_unread_inputs import _run, config

    raw = json.dumps({"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                      "instances": [0] * 1_000_000}, separators=(",", ":")).encode()
    _, refused = await _run(config(), "gemini",
                            "/v1beta/models/gemini-2.5-flash:countTokens", raw)
    assert refused is not None and refused[0] == 413, refused
