"""No secret a model writes reaches the client in clear (issue #8, item 7): streamed replies of
every streaming endpoint format, whatever text the client can read holds it, however the
bytes are cut, in STREAMED and FULL_DUPLEX_STREAMED body modes.

The replies are built from the wire formats (`tests.leak_replies`): some text around a
secret, split in pieces across events, in one choice or candidate among several. A real
`Exchange` on the routes of `tests.leaks.CONFIG` is fed the bytes cut at random points;
what it releases, concatenated, is read as the client would (`check`): bytes, every JSON
string, each field's text joined across events, with JSON escapes undone. An e-mail never
shows there, not even a run of six of its characters (and `<EMAIL>` does); an AWS key ends
the reply (a final error event, or a refusal of a whole reply) with no run of six of its
characters ever released.

The defaults keep this file fast; to look deeper::

    NO_LEAKS_SCALE=20 pytest tests/unit/test_no_leaks_streams.py
    pytest tests/unit/test_no_leaks_streams.py --hypothesis-seed=7
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extproc import protocol as P
from extproc.exchange import Exchange
from tests.leak_replies import ARGUMENTS, CASES, FORMATS, Doc, Format, builder, text_of
from tests.leaks import (
    ARGUMENT_ESCAPES,
    CONFIG,
    EMAILS,
    KEYS,
    KNOWN,
    KNOWN_LIMIT,
    around,
    find_secret,
    placed,
    unescape,
)
from tests.unit.test_exchange import (
    request_body,
    request_headers,
    response_body,
    response_headers,
    send,
)

SCALE = int(os.environ.get("NO_LEAKS_SCALE", "1"))


# --- playing Envoy ---------------------------------------------------------------------

@dataclass
class Released:
    body: bytes                       # what reached the client
    refused: bytes | None = None      # an immediate response instead (a whole reply)


async def _exchange(fmt: Format, raw: bytes, cuts: list[int], mode: int) -> Released:
    ex = Exchange(CONFIG.route(fmt.route), fmt.route, CONFIG.server.max_request_body_bytes)
    await send(ex, request_headers({":path": fmt.path}, req_mode=P.BUFFERED, resp_mode=mode))
    [reply] = await send(ex, request_body(json.dumps(fmt.request).encode(), True))
    assert reply.WhichOneof("response") == "request_body", reply
    [reply] = await send(ex, response_headers(200, **{"content-type": fmt.ctype}))
    if reply.HasField("mode_override"):
        mode = reply.mode_override.response_body_mode
        assert mode != P.NONE, "a guarded reply passed unread"
    points = [] if mode == P.BUFFERED else sorted({c % (len(raw) + 1) for c in cuts})
    chunks = [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)], strict=True)]
    out: list[bytes] = []
    for i, chunk in enumerate(chunks):
        for r in await send(ex, response_body(chunk, i == len(chunks) - 1)):
            if r.WhichOneof("response") == "immediate_response":
                return Released(b"".join(out), r.immediate_response.body)
            mutation = r.response_body.response.body_mutation
            which = mutation.WhichOneof("mutation")
            if which == "streamed_response":
                out.append(mutation.streamed_response.body)
            elif which == "body":
                out.append(mutation.body)
            else:
                out.append(chunk)
    return Released(b"".join(out))


def play(fmt: Format, docs: list[Doc], cuts: list[int], mode: int) -> Released:
    return asyncio.run(_exchange(fmt, fmt.frame(docs), cuts, mode))


def events(raw: bytes) -> list[Any]:
    """The JSON documents of a released body: SSE data, or a whole JSON value."""
    text = raw.decode("utf-8", "replace")
    if text.lstrip().startswith(("[", "{")):
        try:
            doc = json.loads(text)
            return doc if isinstance(doc, list) else [doc]
        except ValueError:
            pass
    out = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if line.startswith("data:") and line[5:].strip() not in ("", "[DONE]"):
            try:
                out.append(json.loads(line[5:]))
            except ValueError:
                out.append(line[5:])
    return out


_INDEXES = ("index", "output_index", "content_index", "summary_index")


def fields(docs: list[Any]) -> list[str]:
    """Each text field as a client joins it across events: by the indexes above it (choice,
    candidate, block, output item, part) and its own key."""
    joined: dict[tuple[Any, ...], list[str]] = {}

    def walk(value: Any, at: tuple[Any, ...]) -> None:
        if isinstance(value, dict):
            here = at + tuple(value[k] for k in _INDEXES if isinstance(value.get(k), int))
            for k, v in value.items():
                if isinstance(v, str):
                    joined.setdefault((*here, k), []).append(v)
                else:
                    walk(v, here)
        elif isinstance(value, list):
            for v in value:
                walk(v, at)

    for doc in docs:
        walk(doc, ())
    texts = ["".join(parts) for parts in joined.values()]
    return texts + [unescape(t) for t in texts]


def check(out: Released, secret: str, key: bool) -> None:
    docs = events(out.body)
    readings = [json.dumps(fields(docs), ensure_ascii=False)]
    leak = find_secret(out.body + readings[0].encode(), docs, secret, whole=False)
    assert leak is None, f"released in clear: {leak}"
    if key:
        refusal = out.refused if out.refused is not None else out.body
        assert b"aws access key" in refusal, out
        if out.refused is not None:
            assert find_secret(out.refused, [], secret, whole=False) is None
    else:
        assert out.refused is None, out.refused
        assert "<EMAIL>" in readings[0], out.body


def split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} - {0, len(text)})
    return [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]

# --- every field of every format, plainly -----------------------------------------------

@pytest.mark.parametrize(("fmt", "field"), CASES, ids=[f"{f}-{x}" for f, x in CASES])
@pytest.mark.parametrize("mode", [P.STREAMED, P.FULL_DUPLEX], ids=["streamed", "duplex"])
def test_every_streamed_field_is_masked_and_refused(fmt: str, field: str, mode: int) -> None:
    build = builder(fmt, field)
    for secret, key in ((EMAILS[0], False), (KEYS[0], True)):
        text = text_of(field, around(secret))
        docs = build(split(text, [7, 15, 22, 30, 41]), 3, 1)
        check(play(FORMATS[fmt], docs, [11, 40, 97, 130, 300], mode), secret, key)


# --- any text, any split, any chunking --------------------------------------------------

@settings(max_examples=300 * SCALE, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(case=st.sampled_from(CASES), data=st.data())
def test_no_streamed_secret_reaches_the_client(case: tuple[str, str],
                                              data: st.DataObject) -> None:
    fmt, field = case
    build = builder(fmt, field)
    key = data.draw(st.booleans())
    secret = data.draw(st.sampled_from(KEYS if key else EMAILS))
    text = text_of(field, data.draw(placed(secret, escaped=field not in ARGUMENTS)))
    n = data.draw(st.integers(1, 3))
    target = data.draw(st.integers(0, n - 1))
    docs = build(split(text, data.draw(st.lists(st.integers(0, 200), max_size=12))), n,
                 target)
    raw_len = len(FORMATS[fmt].frame(docs))
    bytewise = data.draw(st.integers(0, 9)) == 0
    cuts = list(range(raw_len)) if bytewise else \
        data.draw(st.lists(st.integers(0, raw_len), max_size=16))
    mode = data.draw(st.sampled_from([P.STREAMED, P.FULL_DUPLEX]))
    check(play(FORMATS[fmt], docs, cuts, mode), secret, key)


# --- the known limit: escapes inside JSON argument strings ------------------------------

ARG_CASES = [pytest.param(fmt, field, v, id=f"{fmt}-{field}-{v[0]}", marks=[KNOWN] * (
    v[0] in KNOWN_LIMIT)) for fmt, field in CASES
    if field in ARGUMENTS and fmt in ("openai-chat", "openai-responses", "anthropic")
    for v in ARGUMENT_ESCAPES]


@pytest.mark.parametrize(("fmt", "field", "variant"), ARG_CASES)
def test_escapes_inside_streamed_arguments_hide_no_secret(
        fmt: str, field: str, variant: tuple[str, str, str, str]) -> None:
    _, kind, shape, escaped = variant
    secret = EMAILS[0] if kind == "email" else KEYS[0]
    args = text_of(field, shape.format(secret))
    if escaped:
        args = args.replace(escaped, f"\\u{ord(escaped):04x}")
    docs = builder(fmt, field)(split(args, [5, 13, 21, 29]), 2, 1)
    check(play(FORMATS[fmt], docs, [9, 60, 150], P.STREAMED), secret, kind == "key")
