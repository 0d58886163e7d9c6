"""The RateLimit policy (extproc.limits.policy) with a real Exchange and the memory store:
descriptors, reservation estimates, headers, refusals and settlement paths."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from extproc import accesslog, loader
from extproc.auth.policy import Identity
from extproc.exchange import Exchange
from extproc.limits.estimate import DeliveredText, prompt_tokens
from extproc.limits.gcra import Window
from extproc.limits.policy import LimitSpec, RateLimit, duration
from extproc.limits.settings import parse_duration
from extproc.limits.store import MemoryStore, StoreUnavailable
from extproc.policy import Reject
from extproc.providers.base import Usage
from extproc.providers.endpoints import classify
from extproc.reading import canonical_target
from extproc.schema import ConfigError


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def policy(*specs: LimitSpec, provider: str = "openai", fail_open: bool = True,
           store: Any = None) -> tuple[RateLimit, MemoryStore, Clock]:
    clock = Clock()
    mem = MemoryStore(clock)
    return RateLimit(provider, "r", specs, store or mem, fail_open=fail_open,
                     default_max_tokens=100), mem, clock


def exchange(headers: dict[str, str] | None = None, identity: Identity | None = None
             ) -> Exchange:
    ex = Exchange(route=None)
    ex.request_headers = {":path": "/v1/chat/completions", **(headers or {})}
    if identity is not None:
        ex.state["identity"] = identity
    return ex


# a model known not to reason: a stream cut short is charged what it delivered
BODY = (b'{"model":"gpt-4o-mini","max_tokens":50,'
        b'"messages":[{"role":"user","content":"12345678"}]}')


@pytest.mark.parametrize(("seconds", "text"), [
    (0.017, "17ms"), (0, "0ms"), (1, "1s"), (1.5, "1.5s"), (360, "6m0s"), (3723, "1h2m3s")])
def test_reset_durations_are_written_as_openai_does(seconds: float, text: str) -> None:
    assert duration(seconds) == text


@pytest.mark.parametrize(("value", "seconds"), [
    ("1m", 60), ("30s", 30), ("2h", 7200), ("1d", 86400), ("250ms", 0.25), (90, 90),
    ("0s", None), ("soon", None), (True, None), (-1, None)])
def test_durations_in_config(value: Any, seconds: float | None) -> None:
    assert parse_duration(value) == seconds


async def test_request_limits_decide_at_the_headers_and_set_headers() -> None:
    rl, _, _ = policy(LimitSpec("l", ("header:x-c",), requests=(Window(2, 60),)))
    assert not rl.needs_request_body
    for left in ("1", "0"):
        ex = exchange({"x-c": "a"})
        await rl.on_request_headers(ex)
        assert ex._resp_set["x-ratelimit-remaining-requests"] == left
        assert ex._resp_set["x-ratelimit-limit-requests"] == "2"
    with pytest.raises(Reject) as r:
        await rl.on_request_headers(exchange({"x-c": "a"}))
    assert r.value.status == 429 and r.value.headers["retry-after"] == "30"
    await rl.on_request_headers(exchange({"x-c": "b"}))      # another key, another budget


async def test_token_reservation_is_prompt_estimate_plus_max_tokens() -> None:
    rl, _, _ = policy(LimitSpec("t", (), tokens=(Window(1000, 60),)))
    assert rl.needs_request_body and rl.needs_response_body and rl.needs_finish
    ex = exchange()
    await rl.on_request_headers(ex)                          # deferred to the body
    assert "x-ratelimit-remaining-tokens" not in ex._resp_set
    await rl.on_request_body(ex, BODY)
    # "12345678" = 2 tokens at 4 chars per token, + max_tokens 50
    assert ex._resp_set["x-ratelimit-remaining-tokens"] == str(1000 - 52)


async def test_no_max_tokens_reserves_the_default() -> None:
    rl, _, _ = policy(LimitSpec("t", (), tokens=(Window(1000, 60),)))
    ex = exchange()
    await rl.on_request_body(ex, b'{"model":"m","messages":[{"role":"user","content":"hi"}]}')
    assert ex._resp_set["x-ratelimit-remaining-tokens"] == str(1000 - 1 - 100)


@pytest.mark.parametrize(("status", "usage", "delivered", "charged"), [
    (200, Usage(input_tokens=2, output_tokens=7, total_tokens=9), None, 9),
    (200, Usage(input_tokens=2, output_tokens=7), None, 9),
    (200, None, 'data: {"content":"abcdefgh"}\n\ndata: {"content":"x"}\n\n', 2 + 3),
    (500, Usage(input_tokens=2, output_tokens=7, total_tokens=9), None, 0),
    # no reply at all (the client left while the upstream generated), a 504 (it outlasted
    # Envoy's timeout), a whole 2xx reply whose usage was never read: the reservation
    (0, None, None, 52),
    (504, None, None, 52),
    (200, None, None, 52),
])
async def test_settlement(status: int, usage: Usage | None, delivered: str | None,
                          charged: int) -> None:
    rl, _, _ = policy(LimitSpec("t", (), tokens=(Window(1000, 60),)))
    ex = exchange()
    await rl.on_request_body(ex, BODY)                       # reserves 52
    ex.released = True                                       # the request went upstream
    ex.status = status
    ex.response_headers = {"content-type": "text/event-stream"}
    if delivered is not None:
        t = rl.response_transform(ex)
        assert isinstance(t, DeliveredText)
        assert t.feed(delivered.encode()) == delivered.encode()
    if usage is not None:
        ex.state["usage"] = usage
    await rl.on_finish(ex)
    await rl.on_finish(ex)                                   # settles once only
    assert ex.state["tokens_charged"] == charged
    probe = exchange()
    await rl.on_request_body(probe, BODY)
    assert probe._resp_set["x-ratelimit-remaining-tokens"] == str(1000 - charged - 52)


@pytest.mark.parametrize("status", [0, 504])
async def test_a_request_a_policy_still_held_costs_nothing(status: int) -> None:
    """Found by review: a plugin after the limits outlasting Envoy's message timeout (Envoy
    answers the client 504 itself), or the client leaving while it waited, ended the
    exchange with no reply before the request went upstream, and it was charged its whole
    reservation as if the provider had generated."""
    rl, _, _ = policy(LimitSpec("t", (), tokens=(Window(1000, 60),)))
    ex = exchange()
    await rl.on_request_body(ex, BODY)                       # reserves 52
    assert not ex.released                                   # (a later policy waits)
    ex.status = status
    await rl.on_finish(ex)
    assert ex.state["tokens_charged"] == 0
    probe = exchange()
    await rl.on_request_body(probe, BODY)
    assert probe._resp_set["x-ratelimit-remaining-tokens"] == str(1000 - 52)


@pytest.mark.parametrize(("usage", "delivered", "charged"), [
    (None, None, 52),                                          # nothing read: the reservation
    (Usage(input_tokens=2, output_tokens=7, total_tokens=9), None, 52),   # a partial report
    (Usage(input_tokens=2, output_tokens=90, total_tokens=92), None, 92),  # more than reserved
    (None, 'data: {"content":"abc"}\n\n' * 60, 2 + 60),        # more delivered than reserved
])
async def test_a_reply_whose_usage_was_not_read_is_charged_at_least_its_reservation(
        usage: Usage | None, delivered: str | None, charged: int) -> None:
    """Default deny for budgets: an event past max_event_bytes or an encoded reply leaves
    the usage unread, and what was counted is then partial. Charging it would let a client
    spend past its budget by asking for such replies."""
    rl, _, _ = policy(LimitSpec("t", (), tokens=(Window(1000, 60),)))
    ex = exchange()
    await rl.on_request_body(ex, BODY)                       # reserves 52
    ex.status = 200
    ex.response_headers = {"content-type": "text/event-stream"}
    t = rl.response_transform(ex)
    if delivered is not None:
        assert isinstance(t, DeliveredText)
        t.feed(delivered.encode())
    if usage is not None:
        ex.state["usage"] = usage
    ex.state["usage_unread"] = "SSE event exceeds max_event_bytes=2048"
    await rl.on_finish(ex)
    assert ex.state["tokens_charged"] == charged
    probe = exchange()
    await rl.on_request_body(probe, BODY)
    assert probe._resp_set["x-ratelimit-remaining-tokens"] == str(1000 - charged - 52)


async def test_only_streams_are_observed_for_delivered_text() -> None:
    rl, _, _ = policy(LimitSpec("t", (), tokens=(Window(1000, 60),)))
    ex = exchange()
    await rl.on_request_body(ex, BODY)
    ex.status = 200
    ex.response_headers = {"content-type": "application/json"}
    assert rl.response_transform(ex) is None          # a JSON reply carries its usage
    ex.endpoint = classify("gemini", "POST",
                           canonical_target("/v1beta/models/g:streamGenerateContent"))
    assert isinstance(rl.response_transform(ex), DeliveredText)   # a JSON-array stream


async def test_a_refusal_refunds_the_limits_that_admitted() -> None:
    first = LimitSpec("a", (), requests=(Window(10, 60),))
    second = LimitSpec("b", (), tokens=(Window(60, 60),))
    rl, _, _ = policy(first, second)
    await rl.on_request_body(exchange(), BODY)               # 52 of 60 tokens
    with pytest.raises(Reject) as r:
        await rl.on_request_body(exchange(), BODY)
    assert "rate limit 'b' exceeded: 60 tokens per 1m" in r.value.message
    ex = exchange()
    with pytest.raises(Reject):
        await rl.on_request_body(ex, BODY)
    rl2_ex = exchange()
    rl.limits = (first,)                                     # look at 'a' alone
    await rl.on_request_body(rl2_ex, BODY)
    assert rl2_ex._resp_set["x-ratelimit-remaining-requests"] == "8"   # 2 taken, 2 refunded


async def test_a_request_larger_than_the_window_never_fits() -> None:
    rl, _, _ = policy(LimitSpec("t", (), tokens=(Window(40, 60),)))
    with pytest.raises(Reject) as r:
        await rl.on_request_body(exchange(), BODY)
    assert "retry-after" not in r.value.headers
    assert "more than the whole 't' budget of 40 tokens per 1m" in r.value.message


class Down:
    give_back_s = float("inf")

    def ticket(self) -> None:
        return None

    async def admit(self, *a: Any) -> Any:
        raise StoreUnavailable("connection refused")

    async def give_back(self, *a: Any) -> None:
        raise StoreUnavailable("connection refused")

    async def settle(self, *a: Any) -> None:
        raise StoreUnavailable("connection refused")


async def test_backend_down_fails_open_or_closed() -> None:
    spec = LimitSpec("l", (), requests=(Window(1, 60),))
    rl, _, _ = policy(spec, store=Down())
    ex = exchange()
    await rl.on_request_headers(ex)                          # open: allowed, no headers
    assert "x-ratelimit-limit-requests" not in ex._resp_set
    assert rl.stats["backend_errors"] == 1
    rl, _, _ = policy(spec, store=Down(), fail_open=False)
    with pytest.raises(Reject) as r:
        await rl.on_request_headers(exchange())
    assert r.value.status == 503 and r.value.headers["retry-after"] == "1"


async def test_the_decision_is_kept_as_plain_json_for_the_access_log() -> None:
    per_user = LimitSpec("per-user", (), requests=(Window(10, 60),), tokens=(Window(1000, 60),))
    tight = LimitSpec("tight", (), requests=(Window(2, 60),))
    rl, _, _ = policy(per_user, tight)
    ex = exchange()
    await rl.on_request_body(ex, BODY)
    summary = ex.state["ratelimit"]
    # 'tight' has 1 of 2 requests left: the limit closest to refusing
    assert summary == {"decision": "allowed", "limit": "tight", "remaining_requests": 1,
                       "remaining_tokens": 1000 - 52, "reserved_tokens": 52}
    assert json.loads(json.dumps(summary)) == summary
    assert json.loads(accesslog.line(ex, "ok"))["ratelimit"] == summary
    await rl.on_request_body(exchange(), BODY)
    refused = exchange()
    with pytest.raises(Reject):
        await rl.on_request_body(refused, BODY)
    assert refused.state["ratelimit"] == {"decision": "limited", "limit": "tight",
                                          "remaining_requests": 0}
    assert refused.metadata["ratelimit"] == "limited:tight"
    down = exchange()
    rl, _, _ = policy(tight, store=Down())
    await rl.on_request_headers(down)
    assert down.state["ratelimit"] == {"decision": "backend_error_open", "limit": "tight"}
    assert json.loads(accesslog.line(down, "ok"))["ratelimit"] == down.state["ratelimit"]


async def test_descriptors() -> None:
    spec = LimitSpec("l", ("subject", "api_key", "claim:team", "header:x-c", "client_ip",
                           "route", "model"), requests=(Window(1, 60),))
    rl, _, _ = policy(spec)
    who = Identity("alice", "api_key", "k1", {"team": "ml"})
    ex = exchange({"x-c": "v", "x-forwarded-for": "10.0.0.1, 192.0.2.7"}, who)
    assert rl._key(ex, spec, "gpt") == "\x1f".join(
        ["r", "l", "alice", "k1", "ml", "v", "192.0.2.7", "r", "gpt"])
    anon = exchange()
    # an absent claim is tagged (`\-`), not the string "-" a claim may hold
    assert rl._key(anon, spec, None) == "\x1f".join(["r", "l", "-", "-", "\\-", "-", "-",
                                                     "r", "-"])
    long = exchange({"x-c": "v" * 500})
    assert len(rl._key(long, spec, None)) == 64              # long keys are hashed


@pytest.mark.parametrize("claims", [{"tier": 1}, {"tier": "1"}, {"tier": True},
                                    {"tier": "True"}, {"tier": "true"}, {"tier": None},
                                    {"tier": "-"}, {}, {"tier": "\\-"}, {"tier": "\\j1"},
                                    {"tier": [1]}, {"tier": ["1"]}, {"tier": {"a": 1}},
                                    {"tier": "\\jnull"}, {"tier": 2}])
def test_distinct_claim_values_count_in_distinct_buckets(claims: dict[str, Any]) -> None:
    """`claim:` keys used str(value): 1, "1", true and "True" shared a bucket, and an absent
    claim, null and "-" another (found by the red-team review). Each JSON value, and
    absence, has its own key; a string's key is its text, as before (Redis keys stay)."""
    spec = LimitSpec("l", ("claim:tier",), requests=(Window(1, 60),))
    rl, _, _ = policy(spec)
    others = [{"tier": 1}, {"tier": "1"}, {"tier": True}, {"tier": "True"}, {"tier": "true"},
              {"tier": None}, {"tier": "-"}, {}, {"tier": "\\-"}, {"tier": "\\j1"},
              {"tier": [1]}, {"tier": ["1"]}, {"tier": {"a": 1}}, {"tier": "\\jnull"},
              {"tier": 2}]

    def key(c: dict[str, Any]) -> str:
        return rl._key(exchange({}, Identity("alice", "jwt", "corp", c)), spec, None)

    mine = key(claims)
    assert [o for o in others if key(o) == mine] == [claims]
    if isinstance(claims.get("tier"), str):
        assert mine == "\x1f".join(["r", "l", claims["tier"].replace("\\", "\\\\")])
    assert key({"tier": 1.0}) == key({"tier": 1})        # one JSON number


def test_delivered_text_estimates_from_a_sample() -> None:
    event = b'data: {"choices":[{"delta":{"content":"Hello"}}]}\n\n'
    t = DeliveredText()
    for _ in range(100):                                     # 5.3 KB, sampled on 1 KB
        assert t.feed(event) == event
    assert t.fragments == 100
    # "Hello" = 5 characters: 500 in all, 125 tokens; the sample (the KiB after the first
    # output marker) holds 20 of them, a little more than the average KiB, so 127
    assert t.tokens == 127
    long = b'data: {"type":"content_block_delta","delta":{"type":"text_delta","text":"' + \
        b"x" * 400 + b'"}}\n\n'
    t = DeliveredText(b'"text_delta"')
    t.feed(long)
    assert t.fragments == 1
    assert t.tokens == 100                                   # 400 characters at 4 per token
    assert DeliveredText().tokens == 0
    assert prompt_tokens(["12345", "678"]) == 2 and prompt_tokens([]) == 0


@pytest.mark.parametrize(("text", "tokens"), [
    ("abcdefgh", 2), ("привет", 3), ("你好世界", 4), ("😀😀", 6), ("éa", 1),
    ("".join(chr(0xE0020 + i % 90) for i in range(2000)), 6000),   # tag characters
    ("".join(chr(0x20000 + i) for i in range(2000)), 6000),        # CJK extension B
    ("a\ud800b", 2)])                      # a lone surrogate (from an escape) is 3 bytes
def test_the_prompt_estimate_counts_characters_by_their_utf8_length(text: str,
                                                                    tokens: int) -> None:
    """Found by review: every character counted a quarter of a token, so a prompt of rare
    characters (which byte-level tokenizers split into their bytes: 2,000 tag characters
    are 6,000 tokens to Claude's) reserved, and was charged when abandoned before its usage
    report, a twelfth of what the provider bills. ASCII counts at chars_per_token, every
    other character by its UTF-8 length: half a token for 2 bytes, one for 3, three for 4."""
    assert prompt_tokens([text]) == tokens
    assert prompt_tokens([text, "abcd"]) == tokens + 1


def _route(rate: list[dict[str, Any]], **top: Any) -> dict[str, Any]:
    return {**top, "routes": [{"name": "r", "provider": "openai", "rate_limits": rate}]}


def test_config_errors_name_their_path() -> None:
    with pytest.raises(ConfigError) as e:
        loader.parse(_route([{"name": "x", "key": ["subjekt", "header:"],
                              "requests": [{"limit": 0, "per": "1 minute"}]},
                             {"name": "x", "key": []}],
                            limits={"backend": "memcached", "redis_url": "http://x"}))
    text = "\n".join(e.value.errors)
    for expected in ("limits.backend: unknown backend 'memcached'",
                     "limits.redis_url: expected redis://",
                     "routes[0].rate_limits[0].key[0]: unknown descriptor 'subjekt'",
                     "routes[0].rate_limits[0].key[1]: unknown descriptor 'header:'",
                     "routes[0].rate_limits[0].requests[0].limit: must be >= 1",
                     "routes[0].rate_limits[0].requests[0].per: expected a duration",
                     "routes[0].rate_limits[1].name: duplicate limit name 'x'",
                     "routes[0].rate_limits[1]: needs requests, tokens and/or spend budgets"):
        assert expected in text, text


def test_token_budgets_need_usage() -> None:
    doc = _route([{"name": "t", "key": [], "tokens": [{"limit": 10, "per": "1m"}]}])
    doc["routes"][0]["streams"] = {"usage": False}
    with pytest.raises(ConfigError) as e:
        loader.parse(doc)
    assert "routes[0].rate_limits: token budgets settle on the provider's usage" in \
        "\n".join(e.value.errors)


def test_rate_limits_run_after_the_llm_policy() -> None:
    cfg = loader.parse(_route([{"name": "t", "key": ["model"],
                                "tokens": [{"limit": 10, "per": "1m"}]}]))
    names = [p.name for p in cfg.routes["r"].policies]
    assert names == ["LLMTraffic", "RateLimit"]
    assert cfg.routes["r"].finishers == (cfg.routes["r"].policies[1],)


def test_an_encoded_reply_leaves_the_usage_unread() -> None:
    """The usage observer cannot read a gzip reply: it says so, and settlement then charges
    the reservation (above) instead of the prompt estimate alone."""
    from extproc.llm.policy import LLMTraffic, StreamsConfig
    llm = LLMTraffic("openai", StreamsConfig())
    for encoding, unread in (("gzip", True), ("identity", False)):
        ex = exchange()
        ex.status = 200
        ex.response_headers = {"content-type": "text/event-stream",
                               "content-encoding": encoding}
        llm.response_transform(ex)
        assert ("usage_unread" in ex.state) is unread
        assert ("gzip" in str(ex.metadata.get("usage_unread"))) is unread
        assert ex.state.get("usage_unread_kind") == ("encoded" if unread else None)


def test_the_model_key_is_the_backend_model_on_the_unified_front() -> None:
    """The model a limit counts is the one the provider is asked for: on the unified front
    the backend's (an alias and the name it stands for are one bucket); elsewhere the
    request's."""
    from extproc.limits import keys
    plain = exchange()
    assert keys.values(plain, ["model"], "gpt-4o-mini", "r") == ["gpt-4o-mini"]
    assert keys.values(plain, ["model"], None, "r") == ["-"]
    by_alias, by_name = exchange(), exchange()
    for ex in (by_alias, by_name):
        ex.state.update(backend_provider="gemini", backend_model="gemini-2.5-flash")
    assert keys.values(by_alias, ["model"], "fast", "u") == \
        keys.values(by_name, ["model"], "gemini-2.5-flash", "u") == ["gemini/gemini-2.5-flash"]
    other = exchange()
    other.state.update(backend_provider="vertex", backend_model="gemini-2.5-flash")
    assert keys.values(other, ["model"], "vertex/gemini-2.5-flash", "u") != \
        keys.values(by_name, ["model"], "gemini-2.5-flash", "u")
    dated = exchange()
    dated.state.update(backend_provider="gemini", backend_model="gemini-2.5-flash-001")
    assert keys.values(dated, ["model"], "g", "u") == ["gemini/gemini-2.5-flash"]


async def test_a_refusal_by_a_later_limit_shows_the_earlier_ones_given_back() -> None:
    """A 429 from the second limit gives the first one back: its x-ratelimit-* headers say
    what the client has left after that, as the store holds it (found by review: they
    counted the refused request)."""
    rl, mem, _ = policy(
        LimitSpec("per-user", ("subject",), requests=(Window(10, 60),),
                  tokens=(Window(1000, 60),)),
        LimitSpec("global", (), requests=(Window(1, 60),)))
    body = b'{"model":"gpt-4o-mini","max_tokens":880,"messages":[{"role":"user","content":"hi"}]}'
    bob = Identity("jwt:p:bob", "jwt", "p", {"sub": "bob"})
    alice = Identity("jwt:p:alice", "jwt", "p", {"sub": "alice"})
    await rl.on_request_body(exchange(identity=bob), body)   # takes the global request
    with pytest.raises(Reject) as err:
        await rl.on_request_body(exchange(identity=alice), body)
    assert err.value.status == 429 and "'global'" in err.value.message
    held = mem.admit_now(rl._key(exchange(identity=alice), rl.limits[0], None),
                         rl.limits[0].windows, [0, 0])
    assert [st.remaining for st in held.windows] == [10, 1000]   # nothing of alice's held
    assert err.value.headers["x-ratelimit-remaining-tokens"] == "1000"
    assert err.value.headers["x-ratelimit-remaining-requests"] == "0"   # the global's
    assert err.value.headers["x-ratelimit-reset-tokens"] == "0ms"


@pytest.mark.parametrize(("name", "family"), [
    ("gpt-4o-2024-08-06", "gpt-4o"), ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
    ("gpt-4-0613", "gpt-4"), ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
    ("o3-mini-2025-01-31", "o3-mini"), ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
    ("claude-3-5-sonnet-v2@20241022", "claude-3-5-sonnet-v2"),
    ("claude-3-5-sonnet-latest", "claude-3-5-sonnet"), ("gemini-2.0-flash-001", "gemini-2.0-flash"),
    ("gemini-2.5-flash-preview-05-20", "gemini-2.5-flash-preview"),
    ("gemini-2.0-flash-thinking-exp-01-21", "gemini-2.0-flash-thinking-exp"),
    ("gemini-2.0-flash-thinking-exp-1219", "gemini-2.0-flash-thinking-exp"),
    ("textembedding-gecko@003", "textembedding-gecko"),
    ("claude-sonnet-4-5-20250929-latest", "claude-sonnet-4-5"),
    ("team-100-200", "team-100"), ("a-001-002", "a-001"),   # one version number at most
    # no snapshot at the end: the name itself
    ("gpt-4o", "gpt-4o"), ("gpt-4-1106-preview", "gpt-4-1106-preview"),
    ("text-embedding-3-large", "text-embedding-3-large"), ("llama-2048", "llama-2048"),
    ("gpt-4-1399", "gpt-4-1399"), ("-latest", "-latest"),
])
def test_a_dated_snapshot_counts_as_the_model_it_is_of(name: str, family: str) -> None:
    from extproc.limits import keys
    assert keys.values(exchange(), ["model"], name, "r") == [family]


async def test_switching_to_a_dated_snapshot_opens_no_second_budget() -> None:
    """A per-model budget spent on `claude-sonnet-4-5` refuses its dated snapshot too (found
    by review: the snapshot's name, priced and served alike, had a budget of its own)."""
    rl, _, _ = policy(LimitSpec("per-user-model", ("subject", "model"),
                                tokens=(Window(1000, 60),)), provider="anthropic")
    who = Identity("jwt:p:alice", "jwt", "p", {"sub": "alice"})

    def body(model: str) -> bytes:
        return json.dumps({"model": model, "max_tokens": 900,
                           "messages": [{"role": "user", "content": "hi"}]}).encode()

    first = exchange({":path": "/v1/messages"}, who)
    await rl.on_request_body(first, body("claude-sonnet-4-5"))
    for model in ("claude-sonnet-4-5", "claude-sonnet-4-5-20250929"):
        with pytest.raises(Reject) as err:
            await rl.on_request_body(exchange({":path": "/v1/messages"}, who), body(model))
        assert err.value.status == 429
    other = exchange({":path": "/v1/messages"}, who)   # another model: a budget of its own
    await rl.on_request_body(other, body("claude-haiku-4-5-20251001"))


async def test_a_requests_and_a_tokens_window_of_the_same_numbers_keep_apart() -> None:
    """A limit with `requests` and `tokens` windows of the same limit and period once
    stored both in one state: an upstream error's token refund gave the request back, so
    the request limit never held for failing requests."""
    cfg = loader.parse({"routes": [{"name": "r", "provider": "openai", "rate_limits": [
        {"name": "both", "key": ["header:x-c"], "requests": [{"limit": 5, "per": "1h"}],
         "tokens": [{"limit": 5, "per": "1h"}]}]}]})
    rl = cfg.routes["r"].policies[1]
    assert isinstance(rl, RateLimit)
    (spec,) = rl.limits
    assert spec.requests[0].suffix != spec.tokens[0].suffix
    refused = 0
    for _ in range(8):
        ex = exchange({"x-c": "a"})
        try:
            await rl.on_request_headers(ex)
            await rl.on_request_body(ex, b'{"model":"m","messages":[],"max_tokens":1}')
        except Reject as exc:
            assert exc.status == 429, exc
            refused += 1
            continue
        ex.status = 400                     # the upstream refused it: no tokens charged
        await rl.on_finish(ex)
    assert refused == 3                     # 5 requests an hour, whatever the tokens did


async def test_a_request_refused_after_admission_costs_nothing() -> None:
    """A later policy's refusal (the unified front's, a plugin's) or a failure after the
    limits admitted a request: it never went upstream, so, unlike an exchange that got no
    reply, it costs nothing (found by the review of the no-reply rule)."""
    for refused in ("rejection", "failed"):
        rl, _, _ = policy(LimitSpec("t", (), tokens=(Window(1000, 60, "tokens"),)))
        ex = exchange()
        await rl.on_request_body(ex, BODY)
        if refused == "rejection":
            ex.rejection = (400, "extproc_front_unsupported")
        else:
            ex.failed = True
        await rl.on_finish(ex)
        assert ex.state["tokens_charged"] == 0, refused


def test_the_memory_store_outlives_a_reload_that_changes_only_redis_settings() -> None:
    """Found by the config audit: the memory store was kept by (backend, redis_url,
    timeout_ms), so a reload adding `timeout_ms` gave every client a fresh budget."""
    from extproc.limits.settings import parse_limits
    from extproc.schema import Checker
    first = parse_limits(Checker(), {"backend": "memory"}).store()
    again = parse_limits(Checker(), {"backend": "memory", "timeout_ms": 60,
                                      "redis_url": "redis://other:6379/1"}).store()
    assert again is first


@pytest.mark.parametrize(("value", "said"), [
    ("", "EXTPROC_LIMITS_REDIS_URL: is set but empty"),
    ("redis.internal:6379", "EXTPROC_LIMITS_REDIS_URL: expected redis://"),
    ("http://:hunter2@redis:6379", "EXTPROC_LIMITS_REDIS_URL: expected redis://"),
])
def test_a_redis_url_from_the_environment_is_checked_like_the_files(
        monkeypatch: pytest.MonkeyPatch, value: str, said: str) -> None:
    """An empty value (a Secret key with none) silently meant the per-process memory
    backend; a URL with no scheme ended `check` and `serve` in a traceback."""
    monkeypatch.setenv("EXTPROC_LIMITS_REDIS_URL", value)
    with pytest.raises(ConfigError) as info:
        loader.parse({"routes": [{"name": "r", "provider": "openai"}]})
    assert any(e.startswith(said) for e in info.value.errors), info.value.errors
    assert not any("hunter2" in e for e in info.value.errors)


def test_limits_fail_closed_unless_told_otherwise() -> None:
    """A Redis that is down or slow answers 503 by default: limits that turn off when their
    store does would be sidestepped by anyone who can slow it."""
    from extproc.limits.settings import parse_limits
    from extproc.schema import Checker
    assert parse_limits(Checker(), {"backend": "redis"}).fail_open is False
    assert parse_limits(Checker(), None).fail_open is False
    assert parse_limits(Checker(), {"on_backend_error": "allow"}).fail_open is True


class SlowStore(MemoryStore):
    """The memory store answering as Redis does, after a round trip: an admission waits."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.admitted: list[str] = []
        self.settled: list[tuple[str, list[float]]] = []
        self.one = asyncio.Event()   # set once a key is admitted

    async def admit(self, key: str, windows: Any, costs: Any, label: Any = None,
                    ticket: Any = None) -> Any:
        await asyncio.sleep(0.01)
        self.admitted.append(key)
        self.one.set()
        return self.admit_now(key, windows, costs, label)

    async def settle(self, key: str, windows: Any, deltas: Any, label: Any = None) -> None:
        self.settled.append((key, list(deltas)))
        await super().settle(key, windows, deltas, label)


async def test_a_stream_cancelled_between_two_admissions_gives_back_the_first() -> None:
    """Found by review: the limits recorded what they held only once every limit had
    admitted, so a stream Envoy cancelled while the second waited on Redis (the client
    gone, a message timeout) kept the first limit's tokens reserved for a request that never
    went upstream. The finish now settles what was admitted, once."""
    first = LimitSpec("a", (), tokens=(Window(1000, 60, "tokens"),))
    second = LimitSpec("b", (), tokens=(Window(1000, 60, "tokens"),))
    clock = Clock()
    store = SlowStore(clock)
    rl, _, _ = policy(first, second)
    rl.store = store   # (an empty memory store is falsy: `policy` would take its own)
    ex = exchange()
    task = asyncio.create_task(rl.on_request_body(ex, BODY))
    await store.one.wait()
    await asyncio.sleep(0)
    task.cancel()                    # while 'b' waits on its round trip
    with pytest.raises(asyncio.CancelledError):
        await task
    await rl.on_finish(ex)
    assert [key.split("\x1f")[1] for key, _ in store.settled] == ["a"]
    assert store.settled[0][1][0] < 0    # its reservation given back
    await rl.on_finish(ex)               # once
    assert len(store.settled) == 1


async def test_a_refusal_gives_back_once_and_leaves_nothing_to_settle() -> None:
    first = LimitSpec("a", (), tokens=(Window(1000, 60, "tokens"),))
    second = LimitSpec("b", (), tokens=(Window(10, 60, "tokens"),))   # refuses
    clock = Clock()
    store = SlowStore(clock)
    rl, _, _ = policy(first, second)
    rl.store = store
    ex = exchange()
    with pytest.raises(Reject):
        await rl.on_request_body(ex, BODY)
    assert [key.split("\x1f")[1] for key, _ in store.settled] == ["a"]
    await rl.on_finish(ex)
    assert len(store.settled) == 1 and "tokens_charged" not in ex.state


class AppliedFirst(SlowStore):
    """A store that applies each call before its reply comes back, as Redis does (the
    script runs, the client waits on the socket)."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.net: dict[str, float] = {}
        self.giving = asyncio.Event()   # set once a give-back is applied

    async def admit(self, key: str, windows: Any, costs: Any, label: Any = None,
                    ticket: Any = None) -> Any:
        out = self.admit_now(key, windows, costs, label)
        if out.allowed:
            name = key.split("\x1f")[1]
            self.net[name] = self.net.get(name, 0.0) + costs[0]
        await asyncio.sleep(0.01)
        return out

    async def settle(self, key: str, windows: Any, deltas: Any, label: Any = None) -> None:
        await MemoryStore.settle(self, key, windows, deltas, label)
        name = key.split("\x1f")[1]
        self.net[name] = self.net.get(name, 0.0) + deltas[0]
        if deltas[0] < 0:
            self.giving.set()
        await asyncio.sleep(0.01)


async def test_a_give_back_cancelled_in_flight_is_never_given_twice() -> None:
    """Found by the review of the fix above: a refusal's give-back took a key off the list
    only once Redis had answered, so a stream cancelled between the two gave it back again
    at the finish, a credit of a whole reservation. Each key is off the list before its
    give-back goes out; the keys it did not reach are settled at the finish."""
    a = LimitSpec("a", (), tokens=(Window(1000, 60, "tokens"),))
    b = LimitSpec("b", (), tokens=(Window(1000, 60, "tokens"),))
    c = LimitSpec("c", (), tokens=(Window(10, 60, "tokens"),))   # refuses
    store = AppliedFirst(Clock())
    rl, _, _ = policy(a, b, c)
    rl.store = store
    ex = exchange()
    task = asyncio.create_task(rl.on_request_body(ex, BODY))
    await store.giving.wait()         # 'a' given back, its answer on the way
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await rl.on_finish(ex)
    assert store.net == {"a": 0.0, "b": 0.0}   # nothing held, nothing credited


async def test_a_settlement_the_store_did_not_record_is_counted_and_said(
        caplog: pytest.LogCaptureFixture) -> None:
    """Found by review: a settlement Redis refused was one rate-limited warning that said
    'failing closed' (it neither fails open nor closed: the reservation stays charged) and
    no metric counted it."""
    from extproc.metrics import RATELIMIT_DECISIONS

    class SettleDown(MemoryStore):
        async def settle(self, *a: Any) -> None:
            raise StoreUnavailable("connection refused")

    rl, _, _ = policy(LimitSpec("t", (), tokens=(Window(1000, 60, "tokens"),)))
    rl.store = SettleDown(Clock())
    ex = exchange()
    ex.route_name = "r-settle"
    await rl.on_request_body(ex, BODY)
    before = RATELIMIT_DECISIONS.labels("r-settle", "t", "settle_error").value
    await rl.on_finish(ex)
    assert RATELIMIT_DECISIONS.labels("r-settle", "t", "settle_error").value == before + 1
    assert "settlement not recorded" in caplog.text and "failing" not in caplog.text
