"""Every mainstream endpoint is read, guarded, metered and budgeted like chat completions,
through the real Envoy with the official SDKs (issue #8, item 3): before, any path under a
provider prefix was forwarded unread, so PII in a Responses API `input` reached the provider
and a 30,000-token input was admitted with a 1,024-token reservation."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import types

from tests.harness import Gateway, Mock, add_route

pytestmark = pytest.mark.envoy

EMAIL = "john.doe@example.com"
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
REPLY = f"Sure, write to {EMAIL} today."


def config() -> dict[str, Any]:
    guards = {"secrets": {"detectors": ["secrets"], "action": "reject"},
              "pii": {"detectors": ["email", "phone", "card"], "action": "mask"}}
    routes = [{"name": p, "provider": p, "guards": ["secrets", "pii"]}
              for p in ("openai", "azure", "anthropic", "gemini", "vertex")]
    # a token budget small enough that a 30,000-token input is refused before it is sent
    routes.append({"name": "budget", "provider": "openai", "rate_limits": [
        {"name": "tokens", "key": ["route"], "tokens": [{"limit": 20000, "per": "1m"}]}]})
    return {"server": {"max_request_body_bytes": 1048576}, "guards": guards,
            "routes": routes}


def adjust(doc: dict[str, Any]) -> None:
    add_route(doc, "/budget/", "openai", "budget")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    gateway = Gateway(tmp_path_factory.mktemp("endpoints"), config(), mock=mock,
                      adjust=adjust)
    yield gateway
    gateway.close()


def sent(gw: Gateway) -> dict[str, Any]:
    last = gw.mock.last()
    assert last is not None
    assert EMAIL not in last["body"]
    return json.loads(last["body"])


def oai(gw: Gateway, prefix: str = "/openai/v1", **headers: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.url + prefix, api_key="k", max_retries=0,
                         default_headers={"x-mock-reply": REPLY, **headers})


def metered(gw: Gateway, rid: str) -> dict[str, Any]:
    entry = gw.access_log(rid)["extproc"]
    assert entry["input_tokens"] > 0, entry
    return entry


# === OpenAI Responses API ===================================================================


def test_responses_prompt_fields_are_masked_upstream(gw: Gateway) -> None:
    rid = uuid.uuid4().hex
    r = oai(gw, **{"x-request-id": rid}).responses.create(
        model="gpt-5", instructions=f"Escalate to {EMAIL}.", max_output_tokens=200,
        input=[{"role": "user", "content": [{"type": "input_text", "text": f"I am {EMAIL}"}]},
               {"role": "assistant", "content": f"noted {EMAIL}"}],
        tools=[{"type": "function", "name": "mail", "description": f"mails {EMAIL}",
                "parameters": {"type": "object", "properties": {}}}])
    body = sent(gw)
    assert body["instructions"] == "Escalate to <EMAIL>."
    assert "stream_options" not in body          # the Responses API has no such field
    assert EMAIL not in r.output_text and "<EMAIL>" in r.output_text
    entry = metered(gw, rid)
    assert entry["output_tokens"] > 0


def test_responses_stream_is_masked_for_the_sdk(gw: Gateway) -> None:
    rid = uuid.uuid4().hex
    client = oai(gw, **{"x-request-id": rid, "x-mock-chunk-bytes": "5"})
    events = list(client.responses.create(model="gpt-5", input=f"hi {EMAIL}", stream=True))
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    final = next(e for e in events if e.type == "response.completed").response
    assert EMAIL not in text and "<EMAIL>" in text
    assert final.output_text == text
    for e in events:
        assert EMAIL not in e.model_dump_json()
    assert "stream_options" not in sent(gw)
    metered(gw, rid)


def test_a_secret_in_a_responses_reply_ends_the_stream(gw: Gateway) -> None:
    client = oai(gw, **{"x-mock-reply": f"the key is {AWS_KEY} ok", "x-mock-chunk-bytes": "4"})
    seen: list[str] = []
    with pytest.raises(openai.APIError):
        for event in client.responses.create(model="gpt-5", input="key?", stream=True):
            seen.append(event.model_dump_json())
    assert AWS_KEY not in "".join(seen)


def test_a_large_responses_input_is_budgeted_like_chat(gw: Gateway) -> None:
    big = "word " * 120_000                       # ~30,000 tokens at 4 characters a token
    for path, body in (("/budget/v1/responses", {"model": "gpt-5", "input": big}),
                       ("/budget/v1/chat/completions", {"model": "gpt-4o", "messages": [
                           {"role": "user", "content": big}]})):
        r = httpx.post(gw.url + path, json=body, timeout=30)
        assert r.status_code == 429, (path, r.text)
        assert "tokens" in r.json()["error"]["message"]


# === legacy Completions and Embeddings ======================================================


def test_completions_are_masked_both_ways(gw: Gateway) -> None:
    client = oai(gw)
    whole = client.completions.create(model="gpt-3.5-turbo-instruct",
                                      prompt=f"Dear {EMAIL},", max_tokens=20)
    assert sent(gw)["prompt"] == "Dear <EMAIL>,"
    assert EMAIL not in whole.choices[0].text and "<EMAIL>" in whole.choices[0].text
    stream = oai(gw, **{"x-mock-chunk-bytes": "3"}).completions.create(
        model="gpt-3.5-turbo-instruct", prompt=["a", f"b {EMAIL}"], max_tokens=20,
        stream=True)
    text = "".join(c.choices[0].text for c in stream if c.choices)
    assert EMAIL not in text and "<EMAIL>" in text
    assert sent(gw)["prompt"] == ["a", "b <EMAIL>"]


def test_token_id_prompts_are_refused_where_guards_apply(gw: Gateway) -> None:
    r = httpx.post(f"{gw.url}/openai/v1/completions", timeout=30, json={
        "model": "gpt-3.5-turbo-instruct", "prompt": [[1734, 374, 3501]]})
    assert r.status_code == 400 and "token ids" in r.json()["error"]["message"]


def test_embeddings_input_is_masked_and_metered(gw: Gateway) -> None:
    rid = uuid.uuid4().hex
    result = oai(gw, **{"x-request-id": rid}).embeddings.create(
        model="text-embedding-3-small", input=[f"mail {EMAIL}", "plain"])
    assert len(result.data) == 2
    assert sent(gw)["input"] == ["mail <EMAIL>", "plain"]
    metered(gw, rid)
    r = httpx.post(f"{gw.url}/openai/v1/embeddings", timeout=30,
                   json={"model": "text-embedding-3-small", "input": f"key {AWS_KEY}"})
    assert r.status_code == 400 and AWS_KEY not in r.text


def test_azure_deployment_endpoints_are_read(gw: Gateway) -> None:
    r = httpx.post(f"{gw.url}/azure/openai/deployments/emb/embeddings?api-version=2024-10-21",
                   json={"input": f"to {EMAIL}"}, timeout=30)
    assert r.status_code == 200, r.text
    assert sent(gw)["input"] == "to <EMAIL>"


# === Anthropic count_tokens, Gemini countTokens and embedContent ============================


def test_anthropic_count_tokens_is_masked(gw: Gateway) -> None:
    client = anthropic.Anthropic(base_url=f"{gw.url}/anthropic", api_key="k", max_retries=0)
    count = client.messages.count_tokens(
        model="claude-sonnet-4-5", system=f"ops: {EMAIL}",
        messages=[{"role": "user", "content": f"I am {EMAIL}"}])
    assert count.input_tokens > 0
    body = sent(gw)
    assert body["system"] == "ops: <EMAIL>"


def test_gemini_count_and_embed_are_masked(gw: Gateway) -> None:
    client = genai.Client(api_key="k", http_options=types.HttpOptions(
        base_url=f"{gw.url}/gemini"))
    count = client.models.count_tokens(model="gemini-2.5-flash", contents=f"mail {EMAIL}")
    assert count.total_tokens and count.total_tokens > 0
    sent(gw)
    result = client.models.embed_content(model="gemini-embedding-001",
                                         contents=[f"mail {EMAIL}", "other"])
    assert result.embeddings and len(result.embeddings) == 2
    assert "<EMAIL>" in json.dumps(sent(gw))


@pytest.mark.parametrize(("path", "extra"), [
    ("/openai/v1/chat/completions", {"logprobs": True}),
    ("/openai/v1/chat/completions", {"logprobs": True, "top_logprobs": 3}),
    ("/openai/v1/completions", {"logprobs": 2}),
    # 0 asks too: the API returns the sampled token's log probability, its token spelled out
    ("/openai/v1/completions", {"logprobs": 0}),
    ("/openai/v1/completions", {"logprobs": 0, "echo": True, "stream": True}),
])
def test_logprobs_that_would_spell_a_masked_reply_are_refused(
        gw: Gateway, path: str, extra: dict[str, Any]) -> None:
    body: dict[str, Any] = {"model": "m", **extra}
    if "chat" in path:
        body["messages"] = [{"role": "user", "content": "hi"}]
    else:
        body["prompt"] = "hi"
    r = httpx.post(gw.url + path, json=body, headers={"x-mock-reply": REPLY}, timeout=30)
    assert r.status_code == 400, r.text
    assert "logprobs" in r.json()["error"]["message"]
    ok = httpx.post(gw.url + path, json={**body, "logprobs": False, "top_logprobs": None}
                    if "chat" in path else {**body, "logprobs": None},
                    headers={"x-mock-reply": REPLY}, timeout=30)
    assert ok.status_code == 200, ok.text
    assert EMAIL not in ok.text
