"""What a token or spend budget reserves for a request: the most the provider may generate
for it, read as the provider reads the request (Gemini's proto3 JSON counts given as strings,
every prompt of a legacy completions batch, the max_tokens the unified front sends a
backend, thinking included), and counts too large for any budget refused cleanly (a 429
that says it can never fit), never a 500."""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import pytest
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb

from extproc import loader
from extproc.exchange import Exchange
from extproc.providers import adapter_for
from extproc.providers.openai_legacy import OpenAICompletionsAdapter
from extproc.translate import Backend, anthropic, google
from extproc.translate import openai as openai_front
from tests.unit.test_exchange import request_body, request_headers

GEMINI = "/v1beta/models/gemini-2.5-flash:generateContent"


def _config(route: dict[str, Any], name: str) -> Any:
    return loader.parse({"limits": {"default_max_tokens": 1024},
                         "routes": [{"name": name, **route}]})


def _tokens(limit: int = 100_000) -> list[dict[str, Any]]:
    return [{"name": "t", "key": [], "tokens": [{"limit": limit, "per": "1d"}]}]


async def admit(route: dict[str, Any], path: str, body: dict[str, Any] | bytes
                ) -> tuple[Exchange, pb.ImmediateResponse | None]:
    """One request through the route's policies (a route of its own, so budgets the memory
    store keeps across configs start full): the exchange and its refusal, if any."""
    name = f"r{uuid.uuid4().hex[:10]}"
    cfg = _config(route, name)
    ex = Exchange(cfg.routes[name], name, cfg.server.max_request_body_bytes)
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    refused = None
    for msg in (request_headers(path=path, req_mode=1), request_body(raw, True)):
        for reply in await ex.handle(msg):
            if isinstance(reply, bytes):
                reply = pb.ProcessingResponse.FromString(reply)
            if reply.WhichOneof("response") == "immediate_response":
                refused = reply.immediate_response
    return ex, refused


def reserved(ex: Exchange) -> int:
    return int(ex.state["ratelimit"]["reserved_tokens"])


# --- Gemini / Vertex: proto3 JSON counts -----------------------------------------------------

@pytest.mark.parametrize(("value", "count"), [
    (8, 8), (8.0, 8), ("8", 8), (" +8 ", 8), ("60000", 60000), ("8.0", 8), ("8e0", 8),
    ("0", 0), (-1, None), ("-1", None), ("8.5", None), ("eight", None), ("", None),
    (True, None), (None, None), ([8], None), ("1e30", 10 ** 19), ("9" * 300, 10 ** 19),
    ("1e999999999", 10 ** 19), ("1_000", None)])
def test_a_proto3_count_is_read_as_google_reads_it(value: Any, count: int | None) -> None:
    from extproc.providers.values import as_proto_int

    assert as_proto_int(value) == count


def test_gemini_counts_given_as_strings_are_counted() -> None:
    gemini = adapter_for("gemini")
    body = {"generationConfig": {"maxOutputTokens": "60000", "candidateCount": "8"}}
    assert gemini.parse_request(GEMINI, body).max_output_tokens == 60000
    assert gemini.output_choices(body) == 8
    # under both spellings Google keeps one of them: the larger is reserved
    both = {"generationConfig": {"maxOutputTokens": 10, "max_output_tokens": "5000",
                                 "candidateCount": 1},
            "generation_config": {"candidate_count": "4"}}
    assert gemini.parse_request(GEMINI, both).max_output_tokens == 5000
    assert gemini.output_choices(both) == 4


@pytest.mark.parametrize("provider", ["gemini", "vertex"])
async def test_gemini_string_counts_reserve_what_they_ask(provider: str) -> None:
    path = GEMINI if provider == "gemini" else \
        "/v1/projects/p/locations/l/publishers/google/models/gemini-2.5-flash:generateContent"
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "generationConfig": {"maxOutputTokens": "8000", "candidateCount": "8"}}
    ex, refused = await admit({"provider": provider, "rate_limits": _tokens()}, path, body)
    assert refused is None and reserved(ex) == 1 + 8000 * 8
    body["generationConfig"] = {"maxOutputTokens": "60000", "candidateCount": "8"}
    _, refused = await admit({"provider": provider, "rate_limits": _tokens()}, path, body)
    assert refused is not None and refused.status.code == 429
    assert b"can never" in refused.body or b"more than the whole" in refused.body


@pytest.mark.parametrize(("config", "output"), [
    ({"thinkingConfig": {"thinkingBudget": 24576}}, 1024 + 24576),
    ({"thinking_config": {"thinking_budget": "8192"}}, 1024 + 8192),
    ({"thinkingConfig": {"thinkingBudget": -1}}, 1024),
    ({"thinkingConfig": {"thinkingBudget": 24576}, "maxOutputTokens": 3000}, 3000),
    ({"thinkingConfig": {"thinkingBudget": 0}}, 1024)])
async def test_a_gemini_thinking_budget_beside_no_max_is_reserved(config: dict[str, Any],
                                                                  output: int) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
            "generationConfig": config}
    ex, refused = await admit({"provider": "gemini", "rate_limits": _tokens()}, GEMINI, body)
    assert refused is None and reserved(ex) == 1 + output


# --- legacy completions: every prompt of a batch -------------------------------------------

@pytest.mark.parametrize(("prompt", "prompts"), [
    ("one", 1), (["a"] * 20, 20), ([1, 2, 3], 1), ([[1, 2], [3], [4]], 3), ([], 1),
    (["a", [1, 2]], 2), (["a", 7], 2), (None, 1)])
def test_each_prompt_of_a_completions_batch_is_completed_n_times(prompt: Any,
                                                                  prompts: int) -> None:
    adapter = OpenAICompletionsAdapter("openai")
    assert adapter.output_choices({"prompt": prompt}) == prompts
    assert adapter.output_choices({"prompt": prompt, "n": 3}) == 3 * prompts
    assert adapter.output_choices({"prompt": prompt, "n": 2, "best_of": 5}) == 5 * prompts


@pytest.mark.parametrize("prompt", [["say hi"] * 20, [[1, 2, 3, 4]] * 20])
async def test_a_completions_batch_reserves_every_prompts_output(prompt: Any) -> None:
    body = {"model": "gpt-3.5-turbo-instruct", "max_tokens": 1000, "prompt": prompt}
    ex, refused = await admit({"provider": "openai", "rate_limits": _tokens(100_000)},
                              "/v1/completions", body)
    assert refused is None and reserved(ex) >= 20 * 1000
    _, refused = await admit({"provider": "openai", "rate_limits": _tokens(10_000)},
                             "/v1/completions", body)
    assert refused is not None and refused.status.code == 429


# --- OpenAI: both max fields ----------------------------------------------------------------

def test_openai_reserves_the_larger_of_its_two_max_fields() -> None:
    chat = adapter_for("openai")
    for body in ({"max_completion_tokens": 10, "max_tokens": 5000},
                 {"max_completion_tokens": 5000, "max_tokens": 10}):
        assert chat.parse_request("/v1/chat/completions", body).max_output_tokens == 5000
    assert chat.parse_request("/v1/chat/completions", {"max_tokens": 7}).max_output_tokens == 7


# --- the unified front: what the backend is sent ----------------------------------------------

CLAUDE = Backend("anthropic", "claude-sonnet-4-5")
EFFORTS = [None, "none", "minimal", "low", "medium", "high", "xhigh", "max"]
LIMITS: list[dict[str, Any]] = [{}, {"max_tokens": 2000}, {"max_completion_tokens": 30000},
                                {"max_tokens": 100, "max_completion_tokens": 50000}]


@pytest.mark.parametrize("effort", EFFORTS)
@pytest.mark.parametrize("limit", LIMITS)
def test_the_anthropic_reservation_is_the_max_tokens_it_is_sent(
        effort: str | None, limit: dict[str, Any]) -> None:
    doc = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}],
           **limit, **({"reasoning_effort": effort} if effort else {})}
    sent = json.loads(anthropic.translate_request(doc, CLAUDE).body)
    assert anthropic.max_output_tokens(doc, 1024) == sent["max_tokens"]
    thinking = sent.get("thinking")
    assert thinking is None or thinking["budget_tokens"] < sent["max_tokens"]


@pytest.mark.parametrize("effort", EFFORTS)
@pytest.mark.parametrize("limit", [*LIMITS, {"max_tokens": 0}])
def test_the_gemini_reservation_bounds_what_it_is_sent(effort: str | None,
                                                       limit: dict[str, Any]) -> None:
    doc = {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}],
           **limit, **({"reasoning_effort": effort} if effort else {})}
    # (xhigh and max exceed what Gemini takes: refused, unless dropped to high)
    gen = json.loads(google.translate_request(doc, Backend("gemini", "g"),
                                              drop_unsupported=True).body).get(
        "generationConfig", {})
    bound = google.max_output_tokens(doc, 1024)
    if gen.get("maxOutputTokens"):             # thoughts count in maxOutputTokens
        assert bound == gen["maxOutputTokens"]
    else:                                      # only the model bounds it: default + thinking
        assert bound == 1024 + gen.get("thinkingConfig", {}).get("thinkingBudget", 0)


def test_the_openai_backend_reservation_is_the_requests_own() -> None:
    assert openai_front.max_output_tokens({"max_tokens": 10, "max_completion_tokens": 99},
                                          1024) == 99
    assert openai_front.max_output_tokens({}, 1024) == 1024


@pytest.mark.parametrize("provider", ["openai", "azure", "anthropic", "gemini", "vertex"])
def test_every_backend_says_what_its_request_may_generate(provider: str) -> None:
    from extproc.translate import module_for

    assert module_for(provider).max_output_tokens({"max_tokens": 77}, 1024) == 77


def _front(limit: int = 100_000) -> dict[str, Any]:
    os.environ.setdefault("EXTPROC_TEST_FRONT_KEY", "k")
    credential = {"upstream_credential": {"env": "EXTPROC_TEST_FRONT_KEY"}}
    return {"provider": "openai-compatible", "auth": "none",
            "backends": {"anthropic": credential, "gemini": credential},
            "models": [{"model": "claude-*", "backend": "anthropic"},
                       {"model": "gemini-*", "backend": "gemini"}],
            "rate_limits": _tokens(limit)}


@pytest.mark.parametrize(("extra", "output"), [
    ({}, 4096), ({"reasoning_effort": "high"}, 4096 + 24576),
    ({"reasoning_effort": "max"}, 4096 + 49152), ({"max_tokens": 3000}, 3000),
    ({"max_completion_tokens": 2000, "reasoning_effort": "low"}, 2000)])
async def test_the_front_reserves_what_anthropic_may_generate(extra: dict[str, Any],
                                                              output: int) -> None:
    body = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}],
            **extra}
    ex, refused = await admit(_front(), "/v1/chat/completions", body)
    assert refused is None
    assert reserved(ex) == 1 + output


@pytest.mark.parametrize(("extra", "output"), [
    ({}, 1024), ({"reasoning_effort": "high"}, 1024 + 24576), ({"max_tokens": 3000}, 3000),
    ({"max_tokens": 3000, "n": 4}, 12000), ({"n": 2, "reasoning_effort": "low"}, 2 * 2048)])
async def test_the_front_reserves_what_gemini_may_generate(extra: dict[str, Any],
                                                           output: int) -> None:
    body = {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}],
            **extra}
    ex, refused = await admit(_front(), "/v1/chat/completions", body)
    assert refused is None
    assert reserved(ex) == 1 + output


async def test_a_front_request_anthropic_would_overrun_is_refused() -> None:
    body = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}],
            "reasoning_effort": "max"}
    _, refused = await admit(_front(30_000), "/v1/chat/completions", body)
    assert refused is not None and refused.status.code == 429
    assert b"53249 tokens" in refused.body


# --- counts beyond any budget -------------------------------------------------------------

HUGE = "1" + "0" * 400


@pytest.mark.parametrize(("provider", "path", "body"), [
    ("openai", "/v1/chat/completions",
     '{"model":"m","max_tokens":HUGE,"messages":[{"role":"user","content":"hi"}]}'),
    ("openai", "/v1/chat/completions",
     '{"model":"m","max_tokens":10,"n":HUGE,"messages":[{"role":"user","content":"hi"}]}'),
    ("anthropic", "/v1/messages",
     '{"model":"m","max_tokens":HUGE,"messages":[{"role":"user","content":"hi"}]}'),
    ("gemini", GEMINI, '{"contents":[{"parts":[{"text":"hi"}]}],'
     '"generationConfig":{"maxOutputTokens":"HUGE","candidateCount":HUGE}}')])
async def test_a_count_beyond_any_budget_can_never_fit(provider: str, path: str,
                                                       body: str) -> None:
    ex, refused = await admit({"provider": provider, "rate_limits": _tokens()}, path,
                              body.replace("HUGE", HUGE).encode())
    assert not ex.failed
    assert refused is not None and refused.status.code == 429, refused
    assert b"more than the whole 't' budget" in refused.body
    assert not any(h.header.key == "retry-after" for h in refused.headers.set_headers)


@pytest.mark.parametrize("digits", [9, 27, 30, 40, 400])
async def test_a_spend_route_refuses_a_huge_max_tokens_cleanly(digits: int) -> None:
    route = {"provider": "openai", "default_price": {"input": 1, "output": 4},
             "rate_limits": [{"name": "s", "key": [], "spend": [{"limit": 10, "per": "1d"}]}]}
    body = ('{"model":"m","max_tokens":1' + "0" * digits
            + ',"messages":[{"role":"user","content":"hi"}]}').encode()
    ex, refused = await admit(route, "/v1/chat/completions", body)
    assert not ex.failed
    assert refused is not None and refused.status.code == 429
    assert b"request may cost up to" in refused.body


# --- earlier reasoning sent back sealed (found by review) ----------------------------------

SEALED = "E" * 40_000   # the provider decrypts it into the model's context: billed as input


async def test_a_responses_reasoning_item_sent_back_sealed_is_reserved() -> None:
    """A Responses `reasoning` item's `encrypted_content` (`store: false` tool loops) was
    estimated as nothing: many such requests at once each fit a budget they overshoot."""
    items = [{"role": "user", "content": "hi"},
             {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": SEALED},
             {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
             {"type": "function_call_output", "call_id": "c1", "output": "ok"}]
    body = {"model": "o3", "store": False, "max_output_tokens": 100, "input": items}
    ex, refused = await admit({"provider": "openai", "rate_limits": _tokens()},
                              "/v1/responses", body)
    assert refused is None and reserved(ex) >= len(SEALED) // 4 + 100


async def test_an_anthropic_redacted_thinking_block_is_reserved() -> None:
    def body(block: dict[str, Any]) -> dict[str, Any]:
        return {"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": [
                block, {"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]}]}
    route = {"provider": "anthropic", "rate_limits": _tokens()}
    ex, refused = await admit(route, "/v1/messages",
                              body({"type": "redacted_thinking", "data": SEALED}))
    assert refused is None and reserved(ex) >= len(SEALED) // 4 + 100
    clear, _ = await admit(route, "/v1/messages",
                           body({"type": "thinking", "thinking": SEALED, "signature": "s"}))
    assert reserved(ex) >= reserved(clear) - 10   # as the same reasoning in clear
