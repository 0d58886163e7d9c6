"""A rate limit with `cut_streams: true`, through the real Envoy: a long stream against a small
token or spend budget ends where the budget runs dry, in the provider's own format (the
official SDK reads a normal length stop), the upstream is closed, the cut stream is charged
what it delivered, and the next request finds the budget spent."""

from __future__ import annotations

import time
from collections.abc import Iterator

import anthropic
import google.oauth2.credentials
import openai
import pytest
from google import genai
from google.genai import types

from tests.harness import Gateway, Mock, add_route
from tests.integration.test_spend_cost import scrape, value
from tests.integration.test_stream_cut import mock_lines, upstream_closed

TEXT = " ".join(f"word{i}" for i in range(80))   # about 160 tokens by the estimate
SLOW = {"x-mock-reply": TEXT, "x-mock-delay-ms": "30"}
MSG = [{"role": "user", "content": "hi"}]
# every token costs 1 USD, so a 40 USD budget is a 40-token budget
PRICE = {"input": 1_000_000, "output": 1_000_000}


def _limit(name: str, kind: str, who: str) -> dict[str, object]:
    window = [{"limit": 40, "per": "1h"}]
    return {"name": name, "key": ["header:x-who"], kind: window, "cut_streams": True}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    routes = [
        {"name": "openai", "provider": "openai",
         "rate_limits": [_limit("tokens-40", "tokens", "t")]},
        {"name": "anthropic", "provider": "anthropic", "default_price": PRICE,
         "rate_limits": [_limit("spend-40", "spend", "s")]},
        {"name": "vertex", "provider": "vertex", "default_price": PRICE,
         "rate_limits": [_limit("spend-40", "spend", "v")]},
        # a budget far from its end, on a route that reads events of 1 KiB at most
        {"name": "openai-small-events", "provider": "openai",
         "streams": {"max_event_bytes": 1024},
         "rate_limits": [{"name": "tokens-big", "key": ["header:x-who"],
                          "tokens": [{"limit": 100_000, "per": "1h"}], "cut_streams": True}]},
    ]
    config = {"routes": routes, "limits": {"default_max_tokens": 10}}

    def adjust(doc: dict[str, object]) -> None:
        add_route(doc, "/openai-small-events/", "openai", "openai-small-events")

    g = Gateway(tmp_path_factory.mktemp("budget-cut"), config, mock=mock, adjust=adjust)
    yield g
    g.close()


def test_a_token_budget_cuts_an_openai_stream(gw: Gateway) -> None:
    before = len(mock_lines(gw, "/v1/chat/completions"))
    client = openai.OpenAI(base_url=f"{gw.url}/openai/v1", api_key="k", max_retries=0,
                           default_headers={**SLOW, "x-who": "alice"})
    started = time.monotonic()
    chunks = list(client.chat.completions.create(
        model="gpt-4o-mini", messages=MSG, stream=True,
        stream_options={"include_usage": True}))
    elapsed = time.monotonic() - started
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "length" and finishes.count("length") == 1
    assert TEXT.startswith(text) and 5 < len(text.split()) < 30
    usage = chunks[-1].usage
    assert usage is not None
    # the budget is 40 tokens; the prompt's estimate is a few; the event that reaches the
    # allowance is delivered whole (one word here: at most 2 tokens over)
    assert 30 <= usage.prompt_tokens + usage.completion_tokens <= 42
    assert elapsed < 2      # 80 words at 30 ms each would take 2.4 s
    assert upstream_closed(gw, "/v1/chat/completions", before)
    # the budget is spent: the next request of the same key is refused
    with pytest.raises(openai.RateLimitError) as exc:
        client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True)
    assert "tokens-40" in str(exc.value)
    # another key has its own budget
    other = openai.OpenAI(base_url=f"{gw.url}/openai/v1", api_key="k", max_retries=0,
                          default_headers={**SLOW, "x-who": "bob", "x-mock-reply": "short"})
    reply = other.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert reply.choices[0].finish_reason == "stop"


def test_a_spend_budget_cuts_an_anthropic_stream(gw: Gateway) -> None:
    before = len(mock_lines(gw, "/v1/messages"))
    cuts = value(scrape(gw), "extproc_stream_cuts_total", route="anthropic")
    client = anthropic.Anthropic(base_url=f"{gw.url}/anthropic", api_key="k", max_retries=0,
                                 default_headers={**SLOW, "x-who": "carol",
                                                  "x-request-id": "budget-cut-anthropic"})
    with client.messages.stream(model="claude-unlisted", max_tokens=10,
                                messages=MSG) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert final.stop_reason == "max_tokens"
    assert TEXT.startswith(text) and 5 < len(text.split()) < 30
    # 40 USD at 1 USD a token, less the prompt's estimate
    assert 30 <= final.usage.input_tokens + final.usage.output_tokens <= 42
    assert upstream_closed(gw, "/v1/messages", before)
    # the cost is that of the usage as delivered (message_start said 1 output token)
    md = gw.access_log("budget-cut-anthropic")["extproc"]
    assert md["cut"] == "budget" and md["output_tokens"] == final.usage.output_tokens
    assert md["cost"] == final.usage.input_tokens + final.usage.output_tokens
    assert value(scrape(gw), "extproc_stream_cuts_total", route="anthropic") == cuts + 1
    with pytest.raises(anthropic.RateLimitError) as exc:
        client.messages.create(model="claude-unlisted", max_tokens=10, messages=MSG)
    assert "spend-40" in str(exc.value)


def test_a_spend_budget_cuts_a_vertex_stream(gw: Gateway) -> None:
    """Vertex through google-genai (alt=sse): the cut counts the running usage Vertex
    reports and ends with MAX_TOKENS; the model is priced by the route's default_price."""
    before = len(mock_lines(gw, ":streamGenerateContent"))
    client = genai.Client(
        vertexai=True, project="p", location="us-central1",
        credentials=google.oauth2.credentials.Credentials(token="t"),
        http_options=types.HttpOptions(base_url=f"{gw.url}/vertex",
                                       headers={**SLOW, "x-who": "dave"}))
    chunks = list(client.models.generate_content_stream(
        model="gemini-unlisted", contents="hi",
        config=types.GenerateContentConfig(max_output_tokens=10)))
    text = "".join(c.text or "" for c in chunks)
    last = chunks[-1]
    assert last.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert TEXT.startswith(text) and 5 < len(text.split()) < 40
    usage = last.usage_metadata
    assert 30 <= usage.prompt_token_count + usage.candidates_token_count <= 42
    assert upstream_closed(gw, ":streamGenerateContent", before)
    with pytest.raises(genai.errors.ClientError) as exc:
        client.models.generate_content(model="gemini-unlisted", contents="hi",
                                       config=types.GenerateContentConfig(max_output_tokens=10))
    assert exc.value.code == 429 and "spend-40" in str(exc.value)


def test_a_stream_the_client_leaves_leaves_no_state(gw: Gateway) -> None:
    """A client that goes away before its stream is cut or done: the exchange and its cut
    counter are freed once settled (no reference cycle waiting for the cyclic GC)."""
    import httpx

    with httpx.stream("POST", f"{gw.url}/openai/v1/chat/completions", timeout=10,
                      headers={**SLOW, "x-who": "erin"},
                      json={"model": "gpt-4o-mini", "messages": MSG, "stream": True}) as r:
        assert r.status_code == 200
        for _ in r.iter_lines():
            break
    assert gw.server is not None
    stats = gw.server.wait_idle()
    assert stats["streams_active"] == 0 and stats["exchanges_alive"] == 0


def test_a_stream_with_an_event_the_cut_cannot_count_ends_before_it(gw: Gateway) -> None:
    """An event past the route's max_event_bytes (one 3,000-character word, in 256-byte
    chunks) cannot be counted against the budget, so the stream ends before it, as at the
    budget (default deny): the SDK reads a length stop after the words before it, nothing of
    the big event is sent, the upstream is closed, and operators see the cut by reason."""
    before = len(mock_lines(gw, "/v1/chat/completions"))
    cuts = value(scrape(gw), "extproc_stream_cuts_total", route="openai-small-events",
                 reason="unreadable")
    big = "x" * 3000
    client = openai.OpenAI(
        base_url=f"{gw.url}/openai-small-events/v1", api_key="k", max_retries=0,
        default_headers={"x-who": "dave", "x-mock-reply": f"first words {big} after",
                         "x-mock-chunk-bytes": "256", "x-mock-delay-ms": "2",
                         "x-request-id": "budget-cut-unreadable"})
    chunks = list(client.chat.completions.create(model="gpt-4o-mini", messages=MSG,
                                                 stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "first words " and big[:64] not in text
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert upstream_closed(gw, "/v1/chat/completions", before)
    md = gw.access_log("budget-cut-unreadable")["extproc"]
    assert md["cut"] == "unreadable"
    assert value(scrape(gw), "extproc_stream_cuts_total", route="openai-small-events",
                 reason="unreadable") == cuts + 1
