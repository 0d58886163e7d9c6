"""No secret in a prompt reaches the provider in clear (issue #8, item 7), on every endpoint of
every provider, whatever field of the request holds it, however the body is encoded and cut.

A real `Exchange` (the route's policies: the LLM traffic policy and the guards of
`tests.leaks.CONFIG`, e-mail addresses masked, AWS keys refused) is fed Envoy's messages.
The request bodies come from our own catalogue of the text fields each provider's API
defines (`tests.leak_prompts`: written from the API references and the official SDKs'
request types, not from the adapters, so a field the adapters miss shows here), on every
endpoint, written any way the provider reads (Gemini's two key spellings, JSON escapes for
any character, content-encodings stacked), cut in any chunks in BUFFERED, STREAMED and
FULL_DUPLEX_STREAMED modes. Whatever goes upstream (a replacement body, or the client's
chunks when they pass) is decoded and read as bytes, as JSON and with JSON escapes undone:
an e-mail is never there in clear (and `<EMAIL>` is, so the field did reach the provider),
and a body with an AWS key is refused with a 400 that does not repeat it.

The defaults keep this file fast (a few seconds). To look deeper::

    NO_LEAKS_SCALE=20 pytest tests/unit/test_no_leaks.py      # 20x the examples
    pytest tests/unit/test_no_leaks.py --hypothesis-seed=7   # another sample
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extproc import protocol as P
from extproc.exchange import Exchange
from tests.leak_prompts import (
    CASES,
    ENDPOINTS,
    GEMINI,
    NAME_CASES,
    Endpoint,
    Field,
    contents,
    respell,
    turn,
)
from tests.leak_prompts_openai import chat
from tests.leaks import (
    ARGUMENT_ESCAPES,
    CODINGS,
    CONFIG,
    EMAILS,
    KEYS,
    KNOWN,
    KNOWN_LIMIT,
    around,
    decode,
    dumps,
    encode,
    escape_in_arguments,
    find_secret,
    placed,
    strings,
)
from tests.unit.test_exchange import request_body, request_headers, send

SCALE = int(os.environ.get("NO_LEAKS_SCALE", "1"))
Body = dict[str, Any]


# --- playing Envoy ---------------------------------------------------------------------

@dataclass
class Outcome:
    upstream: bytes            # what the provider gets, decoded
    refused: tuple[int, bytes] | None


async def _exchange(endpoint: Endpoint, chunks: list[bytes], codings: list[str],
                    mode: int) -> Outcome:
    route = endpoint.provider
    ex = Exchange(CONFIG.route(route), route, CONFIG.server.max_request_body_bytes)
    extra = {"content-encoding": ", ".join(codings)} if codings else {}
    head = request_headers({":path": endpoint.path, **extra}, req_mode=mode,
                           resp_mode=P.NONE if mode != P.FULL_DUPLEX else P.FULL_DUPLEX)
    # the headers reply: at once, or in FULL_DUPLEX_STREAMED with the body's verdict
    replies = await send(ex, head)
    assert len(replies) == (0 if mode == P.FULL_DUPLEX else 1), replies
    headers_reply = replies[0] if replies else None
    sent: list[bytes] = []
    for i, chunk in enumerate(chunks):
        for r in await send(ex, request_body(chunk, i == len(chunks) - 1)):
            if r.WhichOneof("response") == "immediate_response":
                ir = r.immediate_response
                assert not sent or headers_reply is not None   # nothing went upstream
                return Outcome(b"".join(sent), (ir.status.code, ir.body))
            if r.WhichOneof("response") == "request_headers":
                assert headers_reply is None and not sent, r   # once, before any body
                headers_reply = r
                continue
            mutation = r.request_body.response.body_mutation
            which = mutation.WhichOneof("mutation")
            if which == "streamed_response":
                sent.append(mutation.streamed_response.body)
            elif which == "body":
                sent.append(mutation.body)
            else:
                sent.append(chunk)    # CONTINUE: the client's own bytes go on
    assert headers_reply is not None and \
        headers_reply.WhichOneof("response") == "request_headers", headers_reply
    removed = "content-encoding" in \
        headers_reply.request_headers.response.header_mutation.remove_headers
    assert removed == bool(codings)   # the provider gets the body the guards read
    raw = b"".join(sent)
    return Outcome(raw if removed else decode(raw, codings), None)


def run(endpoint: Endpoint, body: bytes, codings: list[str] = (), mode: int = P.BUFFERED,
        cuts: list[int] = ()) -> Outcome:
    data = encode(body, list(codings))
    points = sorted({c % (len(data) + 1) for c in cuts}) if mode != P.BUFFERED else []
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    return asyncio.run(_exchange(endpoint, chunks, list(codings), mode))


def check(out: Outcome, endpoint: Endpoint, email: str | None, key: str | None) -> None:
    """The property: no e-mail in clear upstream (masked instead), and a key refused."""
    where = f"{endpoint.provider} {endpoint.path}"
    if key is not None:
        assert out.refused is not None, f"{where}: a prompt with an AWS key went upstream"
        status, body = out.refused
        assert status == 400, (where, status, body)
        assert b"aws access key" in body, body
        assert find_secret(body, [json.loads(body)], key, whole=False) is None, body
        assert find_secret(out.upstream, [], key, whole=False) is None, out.upstream
        return
    assert out.refused is None, (where, out.refused)
    doc = json.loads(out.upstream)
    assert email is not None
    leak = find_secret(out.upstream, [doc], email)
    assert leak is None, f"{where}: the e-mail went upstream in clear: {leak}"
    assert any("<EMAIL>" in s for s in strings(doc)), f"{where}: the field was dropped"


# --- every field on every endpoint, plainly ---------------------------------------------

@pytest.mark.parametrize(("endpoint", "field"), CASES,
                         ids=[f"{e.provider}{e.path.split('?')[0]}-{f.id}" for e, f in CASES])
def test_every_field_of_every_endpoint_is_masked_and_refused(endpoint: Endpoint,
                                                             field: Field) -> None:
    body = endpoint.wrap(field.build(around(EMAILS[0])))
    check(run(endpoint, json.dumps(body).encode()), endpoint, EMAILS[0], None)
    texts = [around(KEYS[0])]
    if not field.args:   # next to characters JSON text escapes
        texts.append(f"line one\n{KEYS[0]}\tand more")
    for text in texts:
        body = endpoint.wrap(field.build(text))
        check(run(endpoint, json.dumps(body).encode()), endpoint, None, KEYS[0])


# --- any placement, encoding, spelling and chunking -------------------------------------

MODES = (P.BUFFERED, P.STREAMED, P.FULL_DUPLEX)


@settings(max_examples=300 * SCALE, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(case=st.sampled_from(CASES), data=st.data())
def test_no_prompt_secret_reaches_the_provider(case: tuple[Endpoint, Field],
                                               data: st.DataObject) -> None:
    endpoint, field = case
    kind = data.draw(st.sampled_from(["email", "key", "both"]))
    email = data.draw(st.sampled_from(EMAILS))
    key = data.draw(st.sampled_from(KEYS))
    secret = {"email": email, "key": key, "both": f"{email} {key}"}[kind]
    # (a grammar's source writes an invisible character as its own escape, which is read as
    # written: the known limit of GRAMMAR below)
    text = data.draw(placed(secret, escaped=not field.args,
                            hidden=field.id != "custom-tool-grammar"))
    body = endpoint.wrap(field.build(text))
    if endpoint.provider in ("gemini", "vertex"):
        rnd = data.draw(st.randoms(use_true_random=False))
        body = respell(body, lambda: rnd.random() < 0.5)
    escaped = data.draw(st.sampled_from(["", "@", "@.", "secret"]))
    chars = set(email if escaped == "secret" else escaped)
    raw = dumps(body, (lambda ch: ch in chars) if chars else None,
                ascii_only=data.draw(st.booleans())).encode()
    codings = data.draw(st.lists(st.sampled_from(CODINGS), max_size=2))
    mode = data.draw(st.sampled_from(MODES))
    cuts = data.draw(st.lists(st.integers(0, 1 << 16), max_size=8))
    out = run(endpoint, raw, codings, mode, cuts)
    check(out, endpoint, email if kind == "email" else None, None if kind == "email" else key)


# --- the known limit: escapes inside JSON argument strings ------------------------------

#: a custom tool's grammar (Lark or regex source) writes escapes in its own syntax, which the
#: guards read as written, not decoded (a known limit, said in docs/security.md)
GRAMMAR = pytest.mark.xfail(strict=True, reason="grammar source is read as written: its own "
                            "escape syntax is not decoded")
ARG_CASES = [pytest.param(e, f, v, id=f"{e.path}-{f.id}-{v[0]}", marks=[KNOWN] * (
    v[0] in KNOWN_LIMIT) + [GRAMMAR] * (f.id == "custom-tool-grammar" and v[0] in (
        "newline-before-key", "unicode-escaped-at", "unicode-escaped-key-letter")))
    for e, f in CASES
    if f.args and e.path in ("/v1/chat/completions", "/v1/responses") for v in ARGUMENT_ESCAPES]


@pytest.mark.parametrize(("endpoint", "field", "variant"), ARG_CASES)
def test_escapes_inside_tool_arguments_hide_no_prompt_secret(
        endpoint: Endpoint, field: Field, variant: tuple[str, str, str, str]) -> None:
    _, kind, shape, escaped = variant
    secret = EMAILS[0] if kind == "email" else KEYS[0]
    body = escape_in_arguments(endpoint.wrap(field.build(shape.format(secret))), escaped,
                               secret)
    out = run(endpoint, json.dumps(body).encode())
    check(out, endpoint, secret if kind == "email" else None, secret if kind == "key" else None)


# --- a secret as a key of a JSON object the model reads ---------------------------------

#: the model reads the keys of tool arguments, results and schemas: reject guards read them
#: (a schema or tool input is read as its JSON text) and mask guards rename them
OBJECT_KEYS = [
    ("/v1/chat/completions", lambda t: chat(tools=[{"type": "function", "function": {
        "name": "send", "parameters": {"type": "object", "properties": {t: {}}}}}])),
    ("/v1/responses", lambda t: {"input": "hi", "tools": [{
        "type": "function", "name": "send", "parameters": {"properties": {t: {}}}}]}),
    ("/v1/messages", lambda t: turn({"type": "tool_use", "id": "toolu_2", "name": "send",
                                    "input": {t: 1}}, role="assistant")),
    (f"{GEMINI}:generateContent", lambda t: contents(
        {"functionCall": {"name": "send", "args": {t: 1}}}, role="model")),
]
KEY_CASES = [pytest.param(e, build, secret, id=f"{path}-{kind}")
             for path, build in OBJECT_KEYS for e in ENDPOINTS if e.path == path
             for kind, secret in (("email", EMAILS[0]), ("key", KEYS[0]))]


@pytest.mark.parametrize(("endpoint", "build", "secret"), KEY_CASES)
def test_a_secret_as_a_json_key_does_not_reach_the_provider(
        endpoint: Endpoint, build: Callable[[str], Body], secret: str) -> None:
    body = endpoint.wrap(build(secret))
    key = secret if secret in KEYS else None
    check(run(endpoint, json.dumps(body).encode()), endpoint, None if key else secret, key)


# --- a secret as a tool or function name -------------------------------------------------

#: names are identifiers the adapters do not read as texts (a mask could not rewrite them:
#: the client dispatches calls by name), but an identifier-shaped secret fits there and the
#: model reads it: reject guards refuse it, and so does a mask guard (`guards/names.py`)
@pytest.mark.parametrize(("endpoint", "field"), NAME_CASES,
                         ids=[f"{e.provider}{e.path.split('?')[0]}-{f.id}"
                              for e, f in NAME_CASES])
def test_a_key_as_a_tool_name_is_refused(endpoint: Endpoint, field: Field) -> None:
    body = endpoint.wrap(field.build(KEYS[0]))
    check(run(endpoint, json.dumps(body).encode()), endpoint, None, KEYS[0])


CARD = "4111111111111111"


@pytest.mark.parametrize(("endpoint", "field"), NAME_CASES,
                         ids=[f"{e.provider}{e.path.split('?')[0]}-{f.id}"
                              for e, f in NAME_CASES])
def test_what_a_mask_guard_finds_in_a_tool_name_is_refused(endpoint: Endpoint,
                                                           field: Field) -> None:
    out = run(endpoint, json.dumps(endpoint.wrap(field.build(f"lookup_{CARD}"))).encode())
    assert out.refused is not None, f"{endpoint.path}: a card number went upstream as a name"
    status, body = out.refused
    assert status == 400, body
    assert b"a name in the request (a tool's, a function's) contains card" in body, body
    assert CARD.encode() not in body and CARD.encode() not in out.upstream
