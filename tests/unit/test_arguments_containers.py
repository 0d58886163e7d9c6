"""Tool-call arguments holding very many JSON strings, objects and arrays (found by review): the
request body's own cap (`reading.MAX_CONTAINERS`) counts the containers outside strings,
while the guards read a call's `arguments` string as JSON source, token by token: 6 MB of
`{},` there held the event loop about 5 s (pure build). Past `MAX_SOURCE_STEPS` such
arguments are refused: a 413 for a request, a 502 for a reply; brackets inside the
arguments' own strings (code a tool writes) do not count."""

from __future__ import annotations

import json
from typing import Any

import pytest

from extproc.codecs.jsoncap import MAX_SOURCE_STEPS, SourceTooLarge, checked_source
from extproc.policy import Reject
from tests.unit.test_guard_fields import whole
from tests.unit.test_unread_inputs import CHAT, config, run


def _call(arguments: str) -> dict[str, Any]:
    return {"model": "m", "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f",
                                                         "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": "c", "content": "ok"}]}


def test_arguments_of_more_containers_than_a_body_may_hold_are_refused() -> None:
    args = "[" + "{}," * MAX_SOURCE_STEPS + "{}]"
    _, refused = run(config(), "openai", CHAT, _call(args))
    assert refused is not None and refused[0] == 413, refused


def test_arguments_within_the_bound_are_read_and_masked() -> None:
    args = json.dumps({"to": "john@example.com", "rows": [{}] * 1000})
    sent, refused = run(config(), "openai", CHAT, _call(args))
    assert refused is None and b"john@example.com" not in sent


def test_a_large_source_file_in_the_arguments_is_read() -> None:
    """The count is of every quote, backslash and bracket, inside the arguments' strings
    too (never fewer than the reader's steps; a review found each exact count the reader
    could outrun): a tool call writing a 400 KB source file still fits."""
    code = "def f(x):\n    return {'a': [x, \"b\"]}\n" * 10_000
    text = json.dumps({"file": "a.py", "content": code})
    assert len(text) > 400_000
    assert checked_source(text) == text
    with pytest.raises(SourceTooLarge):
        checked_source("[" + "[]," * MAX_SOURCE_STEPS + "[]]")


def test_a_reply_with_such_arguments_is_refused() -> None:
    args = "[" + "{}," * MAX_SOURCE_STEPS + "{}]"
    body = {"id": "c", "object": "chat.completion", "model": "m", "choices": [
        {"index": 0, "finish_reason": "tool_calls", "message": {
            "role": "assistant", "content": None, "tool_calls": [
                {"id": "t", "type": "function", "function": {"name": "f",
                                                             "arguments": args}}]}}]}
    with pytest.raises(Reject) as refused:
        whole("openai", "mask", body)
    assert refused.value.status == 502


# ---- the cap is the body's, not each text's (found by the review of the cap) -------------

def _calls(k: int, per: int) -> dict[str, Any]:
    args = "[" + "{}," * (per - 1) + "{}]"
    msgs: list[dict[str, Any]] = [{"role": "user", "content": "hi"}]
    msgs.append({"role": "assistant", "content": None, "tool_calls": [
        {"id": f"c{i}", "type": "function", "function": {"name": "f", "arguments": args}}
        for i in range(k)]})
    msgs += [{"role": "tool", "tool_call_id": f"c{i}", "content": "ok"} for i in range(k)]
    return {"model": "m", "messages": msgs}


def test_many_calls_each_under_the_cap_are_refused_together() -> None:
    """Calls each well under the cap, over it together (the review's case: twenty calls
    each just under a per-text cap, 7.9 MB, a few KiB gzipped, 7 s of the event loop)."""
    _, refused = run(config(), "openai", CHAT, _calls(30, MAX_SOURCE_STEPS // 50))
    assert refused is not None and refused[0] == 413, refused


def test_calls_under_the_cap_together_are_read() -> None:
    _, refused = run(config(), "openai", CHAT, _calls(4, MAX_SOURCE_STEPS // 16))
    assert refused is None, refused


def test_object_valued_arguments_of_a_whole_reply_count_too() -> None:
    """An Anthropic reply's tool_use input is an object, read as its compact dump: 2 M
    objects there were walked whole (5-7 s), past the cap that strings get."""
    body = {"id": "msg_1", "type": "message", "role": "assistant",
            "model": "claude-sonnet-4-5",
            "content": [{"type": "tool_use", "id": "toolu_1", "name": "f",
                         "input": {"rows": [{}] * 2_000_000}}],
            "stop_reason": "tool_use", "usage": {"input_tokens": 1, "output_tokens": 1}}
    with pytest.raises(Reject) as refused:
        whole("anthropic", "mask", body)
    assert refused.value.status == 502


async def test_a_route_with_token_limits_and_no_guards_answers_413() -> None:
    """The prompt estimate reads the texts too, outside the guards: it answered 500."""
    import uuid

    from envoy.service.ext_proc.v3 import external_processor_pb2 as pb

    from extproc import loader
    from extproc.exchange import Exchange
    from tests.unit.test_exchange import request_body, request_headers

    name = f"r{uuid.uuid4().hex[:10]}"
    cfg = loader.parse({"routes": [{"name": name, "provider": "openai", "auth": "none",
                                    "rate_limits": [{"name": "t", "key": [], "tokens": [
                                        {"limit": 10**9, "per": "1d"}]}]}]})
    ex = Exchange(cfg.routes[name], name, cfg.server.max_request_body_bytes)
    raw = json.dumps(_calls(1, MAX_SOURCE_STEPS + 1)).encode()
    statuses = []
    for msg in (request_headers(path=CHAT, req_mode=1), request_body(raw, True)):
        for reply in await ex.handle(msg):
            if isinstance(reply, bytes):
                reply = pb.ProcessingResponse.FromString(reply)
            if reply.WhichOneof("response") == "immediate_response":
                statuses.append(reply.immediate_response.status.code)
    assert statuses == [413], statuses
    assert not ex.failed


async def test_an_unguarded_fronts_translation_is_held_to_the_cap(monkeypatch) -> None:
    """The unified front's translation parses a call's arguments (and a tool's result for
    Gemini) as JSON: on a route without guards, one call of 2.6 M objects was translated
    and sent (212 MiB of Python objects while it was)."""
    from envoy.service.ext_proc.v3 import external_processor_pb2 as pb

    from extproc import loader
    from extproc import protocol as P
    from extproc.exchange import Exchange
    from tests.unit.test_exchange import request_body, request_headers, send

    monkeypatch.setenv("FAKE_KEY", "k")
    cfg = loader.parse({"routes": [{
        "name": "front", "provider": "openai-compatible", "auth": "none",
        "backends": {"anthropic": {"upstream_credential": {"env": "FAKE_KEY"}},
                     "gemini": {"upstream_credential": {"env": "FAKE_KEY"}}},
        "models": [{"model": "claude-*", "backend": "anthropic"},
                   {"model": "gemini-*", "backend": "gemini"}]}]})
    big = '{"a":[' + "{}," * (MAX_SOURCE_STEPS + 1) + "{}]}"
    for model, doc in (("claude-x", _call(big)),
                       ("gemini-x", {**_call("{}"), "messages": [
                           *_call("{}")["messages"][:2],
                           {"role": "tool", "tool_call_id": "c", "content": big}]})):
        ex = Exchange(cfg.route("front"), "front")
        await send(ex, request_headers(req_mode=P.BUFFERED, path="/v1/chat/completions"))
        replies = await send(ex, request_body(json.dumps({**doc, "model": model}).encode(),
                                              True))
        got = [pb.ProcessingResponse.FromString(x) if isinstance(x, bytes) else x
               for x in replies]
        assert [r.immediate_response.status.code for r in got
                if r.WhichOneof("response") == "immediate_response"] == [413], model


# ---- the cap counts what the token reader reads (found by the review of the per-body cap) --

def test_an_escaped_quote_outside_strings_hides_no_bracket() -> None:
    """The reader takes `\\"` outside a string for an escape, not a string's start: every
    bracket after it is walked, and counted."""
    from extproc.codecs.jsoncap import check_sources
    from extproc.codecs.jsontext import JsonSource

    hidden = '\\"' + "{" * (2 * MAX_SOURCE_STEPS) + '"'
    with pytest.raises(SourceTooLarge):
        checked_source(hidden)
    with pytest.raises(SourceTooLarge):
        check_sources([JsonSource(hidden)])
    _, refused = run(config(), "openai", CHAT, _call(hidden))
    assert refused is not None and refused[0] == 413, refused


def test_strings_count_as_brackets_do() -> None:
    """1.35 M strings in one array: no container to count, 5 s of walking."""
    _, refused = run(config(), "openai", CHAT, _call("[" + '"a",' * MAX_SOURCE_STEPS + '"a"]'))
    assert refused is not None and refused[0] == 413, refused


def test_an_object_valued_tool_input_of_many_strings_counts_too() -> None:
    doc = {"model": "m", "max_tokens": 10, "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f",
                                           "input": {"a": ["a"] * (MAX_SOURCE_STEPS + 1)}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                                      "content": "ok"}]}]}
    _, refused = run(config(), "anthropic", "/v1/messages", doc)
    assert refused is not None and refused[0] == 413, refused


def test_escaped_brackets_in_a_whole_reply_count_as_the_brackets_they_are() -> None:
    """A reply writing `{` as `\\u007b` in the arguments strings keeps its raw count low;
    the decoded arguments are what the guards walk."""
    from extproc.guards.replies import WholeJsonGuard
    from tests.unit.test_guard_fields import PATHS, exchange, guards

    args = ("[" + "{}," * (MAX_SOURCE_STEPS // 2 + 1000) + "{}]").replace("{", "\\u007b") \
        .replace("[", "\\u005b")
    calls = ",".join(f'{{"id":"t{i}","type":"function","function":{{"name":"f",'
                     f'"arguments":"{args}"}}}}' for i in range(4))
    body = ('{"id":"c","object":"chat.completion","model":"m","choices":[{"index":0,'
            '"finish_reason":"tool_calls","message":{"role":"assistant","content":null,'
            f'"tool_calls":[{calls}]}}}}]}}').encode()
    assert body.count(b"{") + body.count(b"[") < MAX_SOURCE_STEPS
    assert sum(c["function"]["arguments"].count("{") for c in json.loads(body)[
        "choices"][0]["message"]["tool_calls"]) > MAX_SOURCE_STEPS
    transform = WholeJsonGuard(guards("mask", "openai", side=1), exchange(PATHS["openai"]))
    transform.feed(body)
    with pytest.raises(Reject) as refused:
        transform.finish()
    assert refused.value.status == 502


def _front(monkeypatch: pytest.MonkeyPatch) -> Any:
    from extproc import loader

    monkeypatch.setenv("FAKE_KEY", "k")
    return loader.parse({"routes": [{
        "name": "front", "provider": "openai-compatible", "auth": "none",
        "backends": {"anthropic": {"upstream_credential": {"env": "FAKE_KEY"}}},
        "models": [{"model": "claude-*", "backend": "anthropic"}]}]}).route("front")


async def _front_statuses(route: Any, doc: dict[str, Any]) -> list[int]:
    from envoy.service.ext_proc.v3 import external_processor_pb2 as pb

    from extproc import protocol as P
    from extproc.exchange import Exchange
    from tests.unit.test_exchange import request_body, request_headers, send

    ex = Exchange(route, "front")
    await send(ex, request_headers(req_mode=P.BUFFERED, path="/v1/chat/completions"))
    replies = await send(ex, request_body(json.dumps(doc).encode(), True))
    got = [pb.ProcessingResponse.FromString(x) if isinstance(x, bytes) else x
           for x in replies]
    return [r.immediate_response.status.code for r in got
            if r.WhichOneof("response") == "immediate_response"]


async def test_the_fronts_translation_counts_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its JSON reader takes a Python step per number: 4 M numbers held the loop 6 s."""
    args = '{"a":[' + "1," * MAX_SOURCE_STEPS + "1]}"
    doc = {**_call(args), "model": "claude-x"}
    assert await _front_statuses(_front(monkeypatch), doc) == [413]


async def test_a_tool_result_the_backend_gets_as_text_is_not_counted(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Only Gemini's translation parses a tool's result; Anthropic gets it as text."""
    rows = json.dumps([{"id": i} for i in range(150_000)], separators=(",", ":"))
    doc = {**_call("{}"), "model": "claude-x"}
    doc["messages"][2]["content"] = rows
    assert await _front_statuses(_front(monkeypatch), doc) == []


# ---- the count is of the reader's steps (found by the review of the token count) ---------

@pytest.mark.parametrize("args", [
    "]" * (MAX_SOURCE_STEPS + 1),                 # closing brackets: a step each
    "}" * (MAX_SOURCE_STEPS + 1),
    "a]" * (MAX_SOURCE_STEPS + 1),                # and a run masked between each two
    "\\a" * (MAX_SOURCE_STEPS + 1),               # escapes outside strings
    '"' + "\\n" * (MAX_SOURCE_STEPS + 1) + '"',   # and inside one
], ids=["close-brackets", "close-braces", "runs", "escapes-outside", "escapes-inside"])
def test_every_step_the_reader_takes_is_counted(args: str) -> None:
    with pytest.raises(SourceTooLarge):
        checked_source(args)


def test_arguments_of_runs_between_closing_brackets_are_refused() -> None:
    """2 MB of `a]` took the guards 3.3 s, counted as nothing."""
    _, refused = run(config(), "openai", CHAT, _call("a]" * (MAX_SOURCE_STEPS + 1)))
    assert refused is not None and refused[0] == 413, refused
    assert "JSON tool inputs and results" in refused[1]["error"]["message"], refused


def test_a_tool_result_of_thirty_thousand_rows_is_read() -> None:
    """A Gemini functionResponse of 30,000 rows of two fields (1.1 MB, a database query's
    answer): refused when strings were counted as 131,072 tokens, read again now."""
    from tests.unit.test_unread_inputs import GEMINI

    rows = [{"id": f"r{i}", "name": f"item {i}"} for i in range(30_000)]
    doc = {"contents": [
        {"role": "user", "parts": [{"text": "list the items"}]},
        {"role": "model", "parts": [{"functionCall": {"name": "query", "args": {}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "query",
                                                         "response": {"rows": rows}}}]}]}
    _, refused = run(config(), "gemini", GEMINI, doc)
    assert refused is None, refused


# ---- a JSON value's items, and several reject guards (found by the review of the steps) --

def test_the_numbers_of_an_object_valued_tool_input_count() -> None:
    """Each number of a JSON value is masked as a text of its own: 4 M of them (7.6 MiB, a
    few KiB gzipped) held the event loop 18 s, counted as one run and two brackets."""
    doc = {"model": "m", "max_tokens": 10, "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f",
                                           "input": {"a": [1] * (MAX_SOURCE_STEPS + 1)}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t",
                                      "content": "ok"}]}]}
    _, refused = run(config(), "anthropic", "/v1/messages", doc)
    assert refused is not None and refused[0] == 413, refused


def _readings(monkeypatch: pytest.MonkeyPatch, reject_guards: int) -> int:
    """How often the guards read a tool call's JSON source with `reject_guards` reject
    guards that find nothing (and no mask guard)."""
    from extproc import loader
    from extproc.guards import replies

    calls = []
    real = replies.read_texts
    monkeypatch.setattr(replies, "read_texts", lambda t: calls.append(1) or real(t))
    guards = {f"g{i}": {"detectors": ["email"], "action": "reject"}
              for i in range(reject_guards)}
    cfg = loader.parse({"guards": guards, "routes": [
        {"name": "openai", "provider": "openai", "guards": list(guards)}]})
    _, refused = run(cfg, "openai", CHAT, _call(json.dumps({"rows": [{"a": 1}] * 10})))
    assert refused is None, refused
    return len(calls)


def test_several_reject_guards_read_the_json_source_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Each reject guard read it again, twice: three took seven readings (10.7 s at the cap)."""
    assert _readings(monkeypatch, 3) == _readings(monkeypatch, 1) <= 2
