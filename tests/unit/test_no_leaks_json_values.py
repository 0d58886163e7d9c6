"""No secret a model reads or writes in a JSON value crosses the gateway in clear when it is a
key of an object or a number, not a string: a tool input or function call keyed by an
address (`{"jane@example.org": "yes"}`), a card number written as a JSON number
(`{"card": 4111111111111111}`). The model reads and writes keys and numbers as much as
strings, so reject guards refuse them and mask guards mask them (a masked key keeps its
field, a masked number becomes a string), in prompts, whole replies and streamed replies, on
every endpoint format whose JSON values hold them, however the reply is cut.

The exchanges, the replies and the config (`tests.leaks.CONFIG`: e-mail addresses and card
numbers masked, AWS keys refused) are those of the other no-leak tests.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extproc import protocol as P
from tests.leak_prompts import ENDPOINTS, GEMINI, contents, turn
from tests.leak_replies import _USE, ARGUMENTS, FORMATS, Build, anthropic, builder
from tests.leaks import EMAILS, KEYS, find_secret
from tests.unit.test_no_leaks import run
from tests.unit.test_no_leaks_streams import Released, play, split
from tests.unit.test_no_leaks_whole import ARGUMENTS_KINDS
from tests.unit.test_no_leaks_whole import FORMATS as WHOLE

CARDS = (4111111111111111, 5500005555555559, 378282246310005)
Doc = dict[str, Any]


def secret_of(kind: str) -> tuple[str, Any, str | None]:
    """(the secret as text, the JSON value that holds it, its placeholder or None when a
    reject guard refuses it): an address or an AWS key as a key, a card as a number."""
    if kind == "email-key":
        return EMAILS[0], {EMAILS[0]: "yes", "n": 1}, "<EMAIL>"
    if kind == "aws-key-as-key":
        return KEYS[0], {KEYS[0]: 1}, None
    return str(CARDS[0]), {"card": CARDS[0], "n": 1}, "<CARD>"


KINDS = ("email-key", "aws-key-as-key", "card-number")


def check(out: Released, secret: str, placeholder: str | None) -> None:
    """Nothing of the secret in what reached the client; its placeholder there, or the
    reply refused (a whole reply) or ended with the guard's error (a stream)."""
    leak = find_secret(out.body, [], secret, whole=False)
    assert leak is None, f"released in clear: {leak}"
    if placeholder is None:
        refusal = out.refused if out.refused is not None else out.body
        assert b"aws access key" in refusal, out
        assert find_secret(refusal, [], secret, whole=False) is None
    else:
        assert out.refused is None, out.refused
        assert placeholder.encode() in out.body, out.body


# --- prompts ---------------------------------------------------------------------------

#: the JSON values of a prompt (an earlier tool call's input, a function's response)
PROMPT_VALUES: list[tuple[str, Callable[[Any], Doc]]] = [
    ("/v1/messages", lambda v: turn({"type": "tool_use", "id": "toolu_2", "name": "send",
                                     "input": v}, role="assistant")),
    (f"{GEMINI}:generateContent", lambda v: contents(
        {"functionCall": {"name": "send", "args": v}}, role="model")),
    (f"{GEMINI}:generateContent", lambda v: contents(
        {"functionResponse": {"name": "send", "response": v}})),
]
PROMPT_CASES = [pytest.param(e, build, kind, id=f"{e.provider}{path.split(':')[-1]}-{i}-{kind}")
                for i, (path, build) in enumerate(PROMPT_VALUES) for e in ENDPOINTS
                if e.path == path for kind in KINDS]


@pytest.mark.parametrize(("endpoint", "build", "kind"), PROMPT_CASES)
def test_a_key_or_a_number_of_a_prompts_json_value_is_guarded(endpoint: Any, build: Any,
                                                              kind: str) -> None:
    secret, value, placeholder = secret_of(kind)
    out = run(endpoint, json.dumps(endpoint.wrap(build(value))).encode())
    assert find_secret(out.upstream, [], secret, whole=False) is None, out.upstream
    if placeholder is None:
        assert out.refused is not None and out.refused[0] == 400, out
        assert b"aws access key" in out.refused[1]
    else:
        assert out.refused is None, out.refused
        assert placeholder.encode() in out.upstream


# --- whole replies ---------------------------------------------------------------------

WHOLE_CASES = [(fmt, field) for fmt, (_, fields) in WHOLE.items() for field in fields
               if field in ("tool-call-arguments", "function-call-arguments", "tool-use-input",
                            "server-tool-use-input", "function-call")
               or ("responses" in fmt and field in ARGUMENTS_KINDS)]


@pytest.mark.parametrize(("fmt", "field"), WHOLE_CASES, ids=[f"{f}-{x}" for f, x in WHOLE_CASES])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("mode", [P.STREAMED, P.FULL_DUPLEX], ids=["buffered", "duplex"])
def test_a_key_or_a_number_in_a_whole_replys_json_value_is_guarded(
        fmt: str, field: str, kind: str, mode: int) -> None:
    spec, fields = WHOLE[fmt]
    secret, value, placeholder = secret_of(kind)
    doc = fields[field](json.dumps(value), 3, 1)
    check(play(spec, [doc], [17, 80, 200], mode), secret, placeholder)


def test_keys_masked_alike_keep_every_field_of_a_whole_reply() -> None:
    spec, fields = WHOLE["gemini"]
    doc = fields["function-call"](json.dumps({EMAILS[0]: "yes", EMAILS[1]: "no"}), 1, 0)
    out = play(spec, [doc], [], P.STREAMED)
    args = json.loads(out.body)["candidates"][0]["content"]["parts"][0]["functionCall"]["args"]
    assert args == {"<EMAIL>": "yes", "<EMAIL>_2": "no"}


# --- streamed replies ------------------------------------------------------------------

def _input_in_start(pieces: list[str], n: int, target: int) -> list[Doc]:
    """An Anthropic tool_use block whose input arrives whole in its content_block_start."""
    return anthropic(dict(_USE, input=json.loads("".join(pieces))), "input_json_delta",
                     "partial_json")([], n, target)


def _stream_cases() -> dict[tuple[str, str], Build]:
    out: dict[tuple[str, str], Build] = {}
    for fmt in FORMATS:
        for field in ARGUMENTS:
            try:
                out[fmt, field] = builder(fmt, field)
            except KeyError:
                continue
    out["anthropic", "input-in-start"] = _input_in_start
    return out


STREAM_CASES = _stream_cases()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.sampled_from(sorted(STREAM_CASES)), kind=st.sampled_from(KINDS), data=st.data())
def test_a_key_or_a_number_in_a_streamed_json_value_is_guarded_however_cut(
        case: tuple[str, str], kind: str, data: st.DataObject) -> None:
    fmt, field = case
    secret, value, placeholder = secret_of(kind)
    text = json.dumps(value)
    n = data.draw(st.integers(1, 3))
    docs = STREAM_CASES[fmt, field](split(text, data.draw(st.lists(st.integers(0, 60),
                                                              max_size=6))),
                               n, data.draw(st.integers(0, n - 1)))
    raw_len = len(FORMATS[fmt].frame(docs))
    cuts = data.draw(st.lists(st.integers(0, raw_len), max_size=12))
    mode = data.draw(st.sampled_from([P.STREAMED, P.FULL_DUPLEX]))
    check(play(FORMATS[fmt], docs, cuts, mode), secret, placeholder)


def test_the_stream_cases_cover_every_json_value_of_a_reply() -> None:
    fields = {field for _, field in STREAM_CASES}
    assert {"function-call", "input-json", "input-in-start", "tool-call-arguments"} <= fields
    assert {fmt for fmt, field in STREAM_CASES if field == "function-call"} >= {
        "gemini-sse", "vertex-sse", "gemini-array-whole"}


def test_a_timestamp_or_an_id_stays_a_number() -> None:
    """Numbers are read as the card detector reads text: a Luhn-valid millisecond timestamp
    or 64-bit id is no card (no card starts with 1 unless it has 15 digits), so a tool's
    result keeps them as they are."""
    endpoint = next(e for e in ENDPOINTS if e.path == f"{GEMINI}:generateContent")
    value = {"created": 1733360000124, "id": 1234567890123456785, "card": CARDS[0]}
    out = run(endpoint, json.dumps(endpoint.wrap(PROMPT_VALUES[2][1](value))).encode())
    assert out.refused is None
    sent = json.loads(out.upstream)["contents"][0]["parts"][0]["functionResponse"]["response"]
    assert sent == {"created": 1733360000124, "id": 1234567890123456785, "card": "<CARD>"}
