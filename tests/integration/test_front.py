"""The unified OpenAI-compatible front through the real Envoy, with the official OpenAI SDK
as the client and the mock speaking each backend's own wire format: the model picks the
backend (Envoy's access log names the backend route the processor sent the request to), the
request arrives translated with the backend's credential, the reply reads as OpenAI's,
whole and streamed, with tools, usage, masking across translated chunks, errors in OpenAI's
format, and spend and metrics labelled by the backend that served the front model."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from extproc.auth.apikeys import hash_key
from extproc.providers import Usage
from extproc.spend.prices import Pricing
from extproc.spend.settings import default_table
from tests.harness import Gateway, Mock
from tests.integration.test_spend_cost import scrape, value
from tests.integration.test_stream_cut import mock_lines, upstream_closed

TEXT = "Gateways should be boring: fast, correct, and invisible."
KEY = "sk-front-test-key"
BACKEND_KEYS = {"openai": "sk-openai-upstream", "azure": "azure-upstream",
                "anthropic": "sk-ant-upstream", "gemini": "gemini-upstream",
                "vertex": "ya29.vertex-upstream"}
#: where each backend's key goes, as the provider reads it
KEY_HEADER = {"openai": ("authorization", "Bearer {}"), "azure": ("api-key", "{}"),
              "anthropic": ("x-api-key", "{}"), "gemini": ("x-goog-api-key", "{}"),
              "vertex": ("authorization", "Bearer {}")}
MODELS = [{"model": "gpt-*", "backend": "openai"},
          {"model": "claude-*", "backend": "anthropic"},
          {"model": "gemini-*", "backend": "gemini"},
          {"model": "vertex/*", "backend": "vertex", "target": "*"},
          {"model": "azure/*", "backend": "azure", "target": "*"},
          {"model": "fast", "backend": "gemini", "target": "gemini-2.5-flash"}]
#: front model -> (backend, the path the backend gets: whole, streamed)
CASES = {
    "claude-sonnet-4-5": ("anthropic", "/v1/messages", "/v1/messages"),
    "gemini-2.5-flash": ("gemini", "/v1beta/models/gemini-2.5-flash:generateContent",
                         "/v1beta/models/gemini-2.5-flash:streamGenerateContent"),
    "vertex/gemini-2.5-pro": (
        "vertex",
        "/v1/projects/front-test/locations/us-central1/publishers/google/models/"
        "gemini-2.5-pro:generateContent",
        "/v1/projects/front-test/locations/us-central1/publishers/google/models/"
        "gemini-2.5-pro:streamGenerateContent"),
    "gpt-4o-mini": ("openai", "/v1/chat/completions", "/v1/chat/completions"),
    "azure/my-deployment": ("azure", "/openai/v1/chat/completions",
                            "/openai/v1/chat/completions"),
}
TRANSLATED = ("claude-sonnet-4-5", "gemini-2.5-flash", "vertex/gemini-2.5-pro")
MSG = [{"role": "user", "content": "hi"}]
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}]


def front_route(base: Path, **extra: Any) -> dict[str, Any]:
    keys = base / "keys"
    keys.mkdir(exist_ok=True)
    backends: dict[str, Any] = {}
    for provider, secret in BACKEND_KEYS.items():
        (keys / f"{provider}.key").write_text(secret + "\n")
        backends[provider] = {"upstream_credential": {"file": f"keys/{provider}.key"}}
    backends["vertex"].update(project="front-test", location="us-central1")
    return {"name": "unified", "provider": "openai-compatible", "auth": {"api_keys": True},
            "guards": ["pii"], "backends": backends, "models": MODELS, **extra}


def front_config(base: Path, **extra: Any) -> dict[str, Any]:
    return {"auth": {"api_keys": [{"id": "t", "sha256": hash_key(KEY), "subject": "tester"}]},
            "guards": {"pii": {"detectors": ["email"], "action": "mask",
                               "allow_unread": ["image"]}},
            "routes": [front_route(base, **extra)]}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    base = tmp_path_factory.mktemp("front")
    g = Gateway(base, front_config(base), mock=mock)
    yield g
    g.close()


def client(gw: Gateway, rid: str | None = None, **headers: str) -> openai.OpenAI:
    extra = {"x-mock-reply": TEXT, **headers}
    if rid:
        extra["x-request-id"] = rid
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=KEY, max_retries=0,
                         default_headers=extra)


def rid() -> str:
    return f"front-{uuid.uuid4().hex[:12]}"


@pytest.mark.parametrize("model", list(CASES))
def test_every_backend_streams_text_and_usage(gw: Gateway, model: str) -> None:
    backend, _, stream_path = CASES[model]
    r = rid()
    chunks = list(client(gw, r, **{"x-mock-chunk-bytes": "5"}).chat.completions.create(
        model=model, messages=MSG, stream=True, stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == TEXT
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    usage = chunks[-1].usage
    assert usage is not None and usage.completion_tokens > 0 and usage.prompt_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    last = gw.mock.last()
    assert last is not None and last["path"] == stream_path
    # the backend's own credential, never the client's
    name, fmt = KEY_HEADER[backend]
    assert last["headers"][name] == fmt.format(BACKEND_KEYS[backend])
    assert KEY not in json.dumps(last["headers"])
    assert "x-extproc-backend" not in last["headers"]
    # Envoy sent it on the backend's route; the server logged who served the front model
    assert gw.access_log(r)["route"] == f"unified-{backend}"
    line = gw.server_access_line(r)
    assert (line["model"], line["backend"], line["provider"]) == (model, backend, backend)
    # Envoy's log has the usage too, even though the SDK may close the connection at [DONE]
    envoy = gw.access_log(r)
    assert envoy["extproc"].get("provider") == backend, envoy
    assert envoy["extproc"]["output_tokens"] == usage.completion_tokens
    assert line["output_tokens"] == usage.completion_tokens


@pytest.mark.parametrize("model", list(CASES))
def test_every_backend_answers_whole(gw: Gateway, model: str) -> None:
    _, path, _ = CASES[model]
    reply = client(gw).chat.completions.create(model=model, messages=MSG,
                                               max_completion_tokens=100)
    assert reply.object == "chat.completion" and reply.id
    assert reply.choices[0].message.role == "assistant"
    assert reply.choices[0].message.content == TEXT
    assert reply.choices[0].finish_reason == "stop"
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    assert gw.mock.last()["path"] == path


@pytest.mark.parametrize("model", TRANSLATED)
def test_tool_calls_streamed_and_whole(gw: Gateway, model: str) -> None:
    c = client(gw, **{"x-mock-shape": "tool", "x-mock-chunk-bytes": "7"})
    calls: dict[int, dict[str, str]] = {}
    finish = None
    for chunk in c.chat.completions.create(model=model, messages=MSG, tools=TOOLS,
                                           stream=True):
        if not chunk.choices:
            continue
        finish = chunk.choices[0].finish_reason or finish
        for tc in chunk.choices[0].delta.tool_calls or []:
            call = calls.setdefault(tc.index, {"id": "", "name": "", "arguments": ""})
            call["id"] += tc.id or ""
            call["name"] += (tc.function.name or "") if tc.function else ""
            call["arguments"] += (tc.function.arguments or "") if tc.function else ""
    assert finish == "tool_calls"
    (call,) = calls.values()
    assert call["id"] and call["name"] == "mock_tool"
    assert isinstance(json.loads(call["arguments"]), dict)
    whole = c.chat.completions.create(model=model, messages=MSG, tools=TOOLS)
    assert whole.choices[0].finish_reason == "tool_calls"
    (tool_call,) = whole.choices[0].message.tool_calls or []
    assert tool_call.function.name == "mock_tool"
    assert json.loads(tool_call.function.arguments) == json.loads(call["arguments"])


HISTORY = [
    {"role": "system", "content": "Answer in JSON."},
    {"role": "user", "content": "Weather in Paris?"},
    {"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp_c\": 21}"},
]
SCHEMA = {"type": "json_schema", "json_schema": {"name": "weather", "schema": {
    "type": "object", "properties": {"summary": {"type": "string"}},
    "required": ["summary"]}}}


def test_tools_history_and_json_schema_reach_anthropic_translated(gw: Gateway) -> None:
    client(gw).chat.completions.create(
        model="claude-sonnet-4-5", messages=HISTORY, tools=TOOLS, tool_choice="auto",
        response_format=SCHEMA, max_completion_tokens=300, temperature=0.2, stop=["END"])
    sent = json.loads(gw.mock.last()["body"])
    assert sent["model"] == "claude-sonnet-4-5" and sent["max_tokens"] == 300
    assert sent["system"][0]["text"] == "Answer in JSON." or sent["system"] == \
        "Answer in JSON."
    assert sent["stop_sequences"] == ["END"] and sent["temperature"] == 0.2
    assert sent["tools"][0]["name"] == "get_weather"
    assert sent["tools"][0]["input_schema"]["required"] == ["city"]
    turns = [(m["role"], [b["type"] for b in m["content"]]) for m in sent["messages"]]
    assert turns == [("user", ["text"]), ("assistant", ["tool_use"]),
                     ("user", ["tool_result"])]
    assert sent["messages"][1]["content"][0]["input"] == {"city": "Paris"}
    assert sent["messages"][2]["content"][0]["tool_use_id"] == "call_1"
    assert sent["output_config"]["format"]["schema"]["required"] == ["summary"]


@pytest.mark.parametrize("model", ["gemini-2.5-flash", "vertex/gemini-2.5-pro"])
def test_tools_history_and_json_schema_reach_google_translated(gw: Gateway,
                                                               model: str) -> None:
    client(gw).chat.completions.create(
        model=model, messages=HISTORY, tools=TOOLS, tool_choice="required",
        response_format=SCHEMA, max_tokens=300, temperature=0.2, stop="END")
    sent = json.loads(gw.mock.last()["body"])
    assert sent["systemInstruction"]["parts"] == [{"text": "Answer in JSON."}]
    roles = [c["role"] for c in sent["contents"]]
    assert roles == ["user", "model", "user"]
    assert sent["contents"][1]["parts"][0]["functionCall"]["args"] == {"city": "Paris"}
    response = sent["contents"][2]["parts"][0]["functionResponse"]
    assert response["name"] == "get_weather"
    config = sent["generationConfig"]
    assert config["maxOutputTokens"] == 300 and config["stopSequences"] == ["END"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseJsonSchema"]["required"] == ["summary"]
    assert sent["toolConfig"]["functionCallingConfig"]["mode"] == "ANY"
    declaration = sent["tools"][0]["functionDeclarations"][0]
    assert declaration["name"] == "get_weather"


@pytest.mark.parametrize("model", TRANSLATED)
def test_the_usage_chunk_comes_only_when_asked(gw: Gateway, model: str) -> None:
    r = rid()
    chunks = list(client(gw, r).chat.completions.create(model=model, messages=MSG,
                                                         stream=True))
    assert all(c.usage is None for c in chunks) and all(c.choices for c in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == TEXT
    assert gw.server_access_line(r)["output_tokens"] > 0     # metered all the same


@pytest.mark.parametrize("model", TRANSLATED)
@pytest.mark.parametrize("stream", [True, False])
def test_pii_is_masked_both_ways_across_translated_chunks(gw: Gateway, model: str,
                                                          stream: bool) -> None:
    reply = "Write to alice.smith@example.com today."
    c = client(gw, **{"x-mock-reply": reply, "x-mock-chunk-bytes": "3"})
    prompt = [{"role": "user", "content": "I am bob.jones@example.org, hi"}]
    if stream:
        text = "".join(ch.choices[0].delta.content or "" for ch in c.chat.completions.create(
            model=model, messages=prompt, stream=True) if ch.choices)
    else:
        text = c.chat.completions.create(model=model, messages=prompt).choices[0] \
            .message.content or ""
    assert "example.com" not in text and text.startswith("Write to ") and "today." in text
    sent = gw.mock.last()["body"]
    assert "bob.jones@example.org" not in sent and "I am " in sent


def test_models_are_listed_and_an_unknown_one_is_a_404_naming_them(gw: Gateway) -> None:
    ids = [m.id for m in client(gw).models.list()]
    assert ids == ["fast", "gpt-*", "claude-*", "gemini-*", "vertex/*", "azure/*"]
    before = len(mock_lines(gw, "POST"))
    with pytest.raises(openai.NotFoundError) as exc:
        client(gw).chat.completions.create(model="llama-3", messages=MSG)
    assert exc.value.code == "model_not_found"
    assert "llama-3" in exc.value.message and "claude-*" in exc.value.message
    assert len(mock_lines(gw, "POST")) == before          # nothing went upstream


def test_a_field_the_backend_cannot_honour_is_a_400_naming_it(gw: Gateway) -> None:
    before = len(mock_lines(gw, "POST"))
    with pytest.raises(openai.BadRequestError) as exc:
        client(gw).chat.completions.create(model="claude-sonnet-4-5", messages=MSG,
                                           logit_bias={"50256": -100})
    assert "logit_bias" in exc.value.message and exc.value.code == "unsupported_parameter"
    assert exc.value.param == "logit_bias"      # as OpenAI names the field at fault
    with pytest.raises(openai.BadRequestError) as exc:
        client(gw).chat.completions.create(model="gemini-2.5-flash", messages=MSG,
                                           extra_body={"no_such_field": 1})
    assert "no_such_field" in exc.value.message
    assert len(mock_lines(gw, "POST")) == before


def test_other_endpoints_and_methods_are_refused(gw: Gateway) -> None:
    with pytest.raises(openai.NotFoundError):
        client(gw).embeddings.create(model="gpt-4o-mini", input="x")
    with pytest.raises(openai.NotFoundError):
        client(gw).responses.create(model="gpt-4o-mini", input="x")


def test_the_client_needs_the_gateway_credential(gw: Gateway) -> None:
    c = openai.OpenAI(base_url=f"{gw.url}/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        c.chat.completions.create(model="claude-sonnet-4-5", messages=MSG)
    with pytest.raises(openai.AuthenticationError):
        c.models.list()


@pytest.mark.parametrize(("model", "status", "error"), [
    ("claude-sonnet-4-5", 429, openai.RateLimitError),
    ("gemini-2.5-flash", 400, openai.BadRequestError),
    ("vertex/gemini-2.5-pro", 503, openai.InternalServerError)])
@pytest.mark.parametrize("stream", [True, False])
def test_backend_errors_reach_the_client_in_openai_format(
        gw: Gateway, model: str, status: int, error: type[openai.APIStatusError],
        stream: bool) -> None:
    with pytest.raises(error) as exc:
        client(gw, **{"x-mock-status": str(status)}).chat.completions.create(
            model=model, messages=MSG, stream=stream)
    assert exc.value.status_code == status
    body = exc.value.body
    assert isinstance(body, dict) and set(body) >= {"message", "type"}
    assert body["message"]


@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "gemini-2.5-flash"])
@pytest.mark.parametrize("stream", [True, False])
def test_a_backend_reply_with_another_2xx_is_translated(gw: Gateway, model: str,
                                                        stream: bool) -> None:
    """A backend's 201 is its reply (the reply audit): translated as a 200's is, not
    turned into an error."""
    made = client(gw, **{"x-mock-status": "201"}).chat.completions.create(
        model=model, messages=MSG, stream=stream)
    if stream:
        text = "".join(c.choices[0].delta.content or "" for c in made if c.choices)
    else:
        text = made.choices[0].message.content or ""
    assert text == TEXT


def test_a_client_cannot_pick_the_backend_route_itself(gw: Gateway) -> None:
    r = rid()
    client(gw, r, **{"x-extproc-backend": "openai"}).chat.completions.create(
        model="claude-sonnet-4-5", messages=MSG)
    assert gw.mock.last()["path"] == "/v1/messages"
    assert gw.access_log(r)["route"] == "unified-anthropic"
    # Envoy drops the client's header before it picks a route: this request is matched
    # by its path alone (the /anthropic/ route, which this config does not serve)
    r = rid()
    reply = httpx.post(f"{gw.url}/anthropic/v1/messages", json={"model": "x"}, timeout=10,
                       headers={"x-extproc-backend": "openai", "x-request-id": r})
    assert reply.status_code == 404
    assert gw.access_log(r)["route"] == "anthropic"


def test_spend_and_metrics_are_labelled_by_the_backend(gw: Gateway) -> None:
    r = rid()
    reply = client(gw, r).chat.completions.create(model="claude-sonnet-4-5", messages=MSG)
    assert reply.usage is not None
    line = gw.server_access_line(r)
    price = Pricing(default_table()).price("anthropic", "claude-sonnet-4-5")
    assert price is not None
    usage = Usage(input_tokens=reply.usage.prompt_tokens,
                  output_tokens=reply.usage.completion_tokens,
                  cached_input_tokens=0, cache_write_input_tokens=0)
    assert Decimal(str(line["cost"])) == price.cost(usage)
    assert line["backend_model"] == "claude-sonnet-4-5"
    client(gw).chat.completions.create(model="fast", messages=MSG)
    assert gw.server is not None
    gw.server.wait_idle()          # the series are counted when the ext_proc stream ends
    samples = scrape(gw)
    assert value(samples, "extproc_front_requests_total", front_model="fast",
                 provider="gemini", model="gemini-2.5-flash", outcome="ok") >= 1
    assert value(samples, "extproc_spend_total", route="unified", provider="anthropic",
                 model="claude-sonnet-4-5") > 0
    assert value(samples, "extproc_requests_total", route="unified", provider="gemini",
                 model="gemini-2.5-flash") >= 1


def test_unsupported_fields_can_be_dropped_instead(tmp_path: Path, mock: Mock) -> None:
    g = Gateway(tmp_path, front_config(tmp_path, drop_unsupported=True), mock=mock)
    try:
        r = rid()
        reply = client(g, r).chat.completions.create(
            model="claude-sonnet-4-5", messages=MSG, logit_bias={"50256": -100}, seed=7)
        assert reply.choices[0].message.content == TEXT
        sent = json.loads(g.mock.last()["body"])
        assert "logit_bias" not in sent and "seed" not in sent
        dropped = g.access_log(r)["extproc"]["dropped_fields"].split(",")
        assert sorted(dropped) == ["logit_bias", "seed"]
    finally:
        g.close()


def test_a_token_budget_cuts_a_translated_stream(tmp_path: Path, mock: Mock) -> None:
    words = " ".join(f"word{i}" for i in range(80))
    limit = {"name": "tokens-40", "key": ["subject"], "tokens": [{"limit": 40, "per": "1h"}],
             "cut_streams": True}
    config = front_config(tmp_path, rate_limits=[limit])
    config["limits"] = {"default_max_tokens": 10}
    g = Gateway(tmp_path, config, mock=mock)
    try:
        before = len(mock_lines(g, "/v1/messages"))
        c = client(g, **{"x-mock-reply": words, "x-mock-delay-ms": "30"})
        # max_tokens 10: the request reserves what Anthropic is sent (without it, 4096)
        chunks = list(c.chat.completions.create(
            model="claude-sonnet-4-5", messages=MSG, stream=True, max_tokens=10,
            stream_options={"include_usage": True}))
        text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
        finishes = [ch.choices[0].finish_reason for ch in chunks if ch.choices]
        assert finishes[-1] == "length" and words.startswith(text)
        assert 5 < len(text.split()) < 30
        assert chunks[-1].usage is not None
        assert upstream_closed(g, "/v1/messages", before)
        with pytest.raises(openai.RateLimitError) as exc:
            c.chat.completions.create(model="claude-sonnet-4-5", messages=MSG, max_tokens=10)
        assert "tokens-40" in exc.value.message and "retry after" in exc.value.message
    finally:
        g.close()


def test_a_backend_gets_no_account_or_feature_header_of_the_clients(gw: Gateway) -> None:
    """The front speaks OpenAI's API: the account a backend key bills and a backend's own
    feature switches are not the client's to send."""
    sent = {"openai-organization": "org-other", "openai-project": "proj_other",
            "x-goog-user-project": "other-project", "anthropic-beta": "context-1m-2025-08-07"}
    for model in ("claude-sonnet-4-5", "gemini-2.5-flash", "gpt-4o-mini"):
        client(gw, **sent).chat.completions.create(model=model, messages=MSG)
        assert not set(sent) & set(gw.mock.last()["headers"]), model


def test_a_backend_gets_no_underscore_spelling_of_a_clients_credential_or_account(
        gw: Gateway) -> None:
    """A backend that reads `_` as `-` (WSGI, CGI, LiteLLM) must not find the client's key or
    account beside the injected key in `x_api_key` or `openai_organization` (found by the
    red-team review: only the dash spellings were removed)."""
    sent = {"x_api_key": "sk-client-1", "api_key": "sk-client-2",
            "x_goog_api_key": "sk-client-3", "openai_organization": "org-other",
            "openai_project": "proj_other", "x_goog_user_project": "other-project",
            "anthropic_beta": "context-1m-2025-08-07"}
    for model in ("claude-sonnet-4-5", "gemini-2.5-flash", "gpt-4o-mini"):
        client(gw, **sent, x_client_trace="kept").chat.completions.create(
            model=model, messages=MSG)
        seen = gw.mock.last()["headers"]
        assert seen["x_client_trace"] == "kept", model     # Envoy passes `_` names on
        assert not set(sent) & set(seen), (model, seen)


def test_gemini_gets_a_tool_result_as_the_guards_read_it(gw: Gateway) -> None:
    """A tool result whose object would read otherwise than its text (escapes decoded) goes
    to Gemini as the text the guards read; one that reads the same goes as its object,
    masked."""
    call = {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}
    for content, sent in (
            ('{"owner":"jane.roe\\u0040example.com"}', '{"owner":"jane.roe\\u0040example.com"}'),
            ('{"owner":"jane.roe@example.com"}', {"owner": "<EMAIL>"})):
        client(gw).chat.completions.create(model="gemini-2.5-flash", messages=[
            {"role": "user", "content": "who owns it?"},
            {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": content}])
        body = json.loads(gw.mock.last()["body"])
        part = body["contents"][-1]["parts"][0]
        assert part["functionResponse"]["response"]["content"] == sent


def test_a_backend_event_past_the_routes_bound_ends_the_stream_cleanly(tmp_path: Path,
                                                                       mock: Mock) -> None:
    """The route's streams.max_event_bytes bounds what the front holds to translate: a backend
    event past it cannot reach the client untranslated, so the stream ends there with an
    error event the SDK raises, and a reply within it streams as usual."""
    config = front_config(tmp_path, streams={"max_event_bytes": 2048})
    g = Gateway(tmp_path, config, mock=mock)
    try:
        for model in ("claude-sonnet-4-5", "gemini-2.5-flash"):
            long = client(g, **{"x-mock-reply": "x" * 5000})
            with pytest.raises(openai.APIError) as exc:
                list(long.chat.completions.create(model=model, messages=MSG, stream=True))
            assert "exceeds max_event_bytes=2048" in exc.value.message, model
            chunks = list(client(g).chat.completions.create(model=model, messages=MSG,
                                                            stream=True))
            assert "".join(ch.choices[0].delta.content or "" for ch in chunks
                           if ch.choices) == TEXT
    finally:
        g.close()


def test_a_model_limit_counts_the_backend_model_whatever_the_alias(tmp_path: Path,
                                                                   mock: Mock) -> None:
    """`fast` is an alias of gemini-2.5-flash: a limit keyed on the model gives them one
    bucket (two spellings of one backend model are not two budgets), while another backend
    model keeps a bucket of its own."""
    limit = {"name": "per-model", "key": ["model"], "requests": [{"limit": 2, "per": "1h"}]}
    g = Gateway(tmp_path, front_config(tmp_path, rate_limits=[limit]), mock=mock)
    try:
        c = client(g)
        for model in ("fast", "gemini-2.5-flash"):
            assert c.chat.completions.create(model=model, messages=MSG).choices
        for model in ("fast", "gemini-2.5-flash"):
            with pytest.raises(openai.RateLimitError) as exc:
                c.chat.completions.create(model=model, messages=MSG)
            assert "per-model" in exc.value.message
        assert c.chat.completions.create(model="claude-sonnet-4-5", messages=MSG).choices
    finally:
        g.close()


@pytest.mark.parametrize("model", TRANSLATED)
@pytest.mark.parametrize("stream", [True, False])
def test_json_mode_answers_json_content(gw: Gateway, model: str, stream: bool) -> None:
    """`response_format: json_object`: Anthropic is made to call a forced tool whose input is
    the answer (the mock, as Anthropic, calls the tool it is forced to), Gemini is asked for
    application/json; either way the client reads the JSON as the message's content."""
    answer = {"summary": "sunny", "temp_c": 21}
    c = client(gw, **{"x-mock-reply": json.dumps(answer), "x-mock-chunk-bytes": "9"})
    fmt: Any = {"type": "json_object"}
    if stream:
        chunks = [ch for ch in c.chat.completions.create(
            model=model, messages=MSG, response_format=fmt, stream=True) if ch.choices]
        content = "".join(ch.choices[0].delta.content or "" for ch in chunks)
        finish = chunks[-1].choices[0].finish_reason
    else:
        reply = c.chat.completions.create(model=model, messages=MSG, response_format=fmt)
        content, finish = reply.choices[0].message.content or "", reply.choices[0].finish_reason
    assert json.loads(content) == answer and finish == "stop"
    sent = json.loads(gw.mock.last()["body"])
    if model.startswith("claude"):
        assert sent["tool_choice"]["type"] == "tool"
    else:
        assert sent["generationConfig"]["responseMimeType"] == "application/json"



PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAwS2OUAAAAAB"
       "JRU5ErkJggg==")
PARTS = [{"type": "text", "text": "What is in these?"},
         {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
         {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}}]


@pytest.mark.parametrize("model", TRANSLATED)
def test_images_by_data_and_by_url_reach_the_backend_translated(gw: Gateway,
                                                                model: str) -> None:
    reply = client(gw).chat.completions.create(
        model=model, messages=[{"role": "user", "content": PARTS}])
    assert reply.choices[0].message.content == TEXT
    sent = json.loads(gw.mock.last()["body"])
    if model.startswith("claude"):
        blocks = sent["messages"][0]["content"]
        assert [b["type"] for b in blocks] == ["text", "image", "image"]
        assert blocks[1]["source"] == {"type": "base64", "media_type": "image/png",
                                       "data": PNG}
        assert blocks[2]["source"] == {"type": "url", "url": "https://example.com/cat.jpg"}
    else:
        parts = sent["contents"][0]["parts"]
        assert parts[0] == {"text": "What is in these?"}
        assert parts[1]["inlineData"] == {"mimeType": "image/png", "data": PNG}
        assert parts[2]["fileData"] == {"mimeType": "image/jpeg",
                                        "fileUri": "https://example.com/cat.jpg"}


@pytest.mark.parametrize("model", TRANSLATED)
def test_a_pdf_no_guard_reads_is_refused_in_the_backends_reading(gw: Gateway,
                                                                  model: str) -> None:
    """The guards read the request the backend will act on: a PDF translated into an
    Anthropic document or Gemini inline data is an input they cannot read, which this
    route's guard lets pass only for images."""
    pdf = {"type": "file", "file": {"filename": "a.pdf",
                                    "file_data": "data:application/pdf;base64,JVBERi0xLjQK"}}
    with pytest.raises(openai.BadRequestError) as exc:
        client(gw).chat.completions.create(model=model, messages=[
            {"role": "user", "content": [{"type": "text", "text": "read"}, pdf]}])
    assert "carries a binary document" in str(exc.value) and "guard 'pii'" in str(exc.value)


def test_nothing_is_left_behind(gw: Gateway) -> None:
    """After every request of this module (streams cut, refused, translated, failed), the
    server holds no exchange: no translator, state or stream outlives its request."""
    assert gw.server is not None
    stats = gw.server.wait_idle()
    assert stats["streams_active"] == 0 and stats["exchanges_alive"] == 0
    assert stats["stream_errors"] == 0


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "gemini-2.5-flash"])
def test_a_reply_the_front_cannot_translate_pays_its_reservation(
        tmp_path: Path, mock: Mock, model: str, stream: bool) -> None:
    """The backend answered 200 and generated, but its reply broke off where the front could
    not translate it (here cut mid-event; a Gemini finish reason Chat Completions has no word
    for, a JSON-mode answer cut at max_tokens): the translator stops before the usage, so
    the budget is charged the whole reservation, not the prompt estimate alone."""
    limit = {"name": "tokens", "key": ["header:x-test-client"],
             "tokens": [{"limit": 100_000, "per": "30d"}]}
    g = Gateway(tmp_path, front_config(tmp_path, rate_limits=[limit]), mock=mock)
    headers = {"authorization": f"Bearer {KEY}", "x-test-client": uuid.uuid4().hex,
               "x-mock-reply": TEXT}

    def post(max_tokens: int, stream: bool = False, **extra: str) -> httpx.Response:
        r = httpx.post(f"{g.url}/v1/chat/completions", headers={**headers, **extra},
                       timeout=30, json={"model": model, "messages": MSG,
                                         "max_tokens": max_tokens, "stream": stream})
        g.server.wait_idle()   # (settled when the exchange ends)
        return r

    try:
        whole = post(300)     # the same request, answered in full: what it reserves, costs
        reserved = 100_000 - int(whole.headers["x-ratelimit-remaining-tokens"])
        cost = whole.json()["usage"]["total_tokens"]
        cut = post(300, stream, **{"x-mock-end-after": "120"})
        assert cut.status_code == (200 if stream else 502), cut.text
        assert "could not be translated" in cut.text or "unreadable" in cut.text, cut.text
        probe = post(1)       # reserves the prompt estimate and one token
        left = int(probe.headers["x-ratelimit-remaining-tokens"])
        assert 100_000 - cost - (reserved - 299) - left == reserved
    finally:
        g.close()


@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "gemini-2.5-flash"])
def test_tool_call_json_whose_numbers_would_be_rewritten_is_a_400(gw: Gateway,
                                                                   model: str) -> None:
    """Arguments the translation would send with a number rewritten (the guards read
    4.111111111111111e15, the backend would get 4111111111111111.0) never go upstream: a 400
    in OpenAI's format naming them; so too arguments nested deeper than Python parses (a
    500 with a traceback before)."""
    before = len(mock_lines(gw, "POST"))
    for arguments in ('{"card": 4.111111111111111e15}', "[" * 5000 + "]" * 5000):
        with pytest.raises(openai.BadRequestError) as exc:
            client(gw).chat.completions.create(model=model, messages=[
                {"role": "user", "content": "pay"},
                {"role": "assistant", "content": None, "tool_calls": [
                    {"id": "c1", "type": "function",
                     "function": {"name": "pay", "arguments": arguments}}]},
                {"role": "tool", "tool_call_id": "c1", "content": "ok"}])
        assert exc.value.param == "messages[1].tool_calls[0].function.arguments"
    assert len(mock_lines(gw, "POST")) == before


@pytest.mark.parametrize("model", ["gemini-2.5-flash", "vertex/gemini-2.5-pro"])
def test_a_reply_without_usage_pays_its_reservation(tmp_path: Path, mock: Mock,
                                                    model: str) -> None:
    """A backend reply with no usage report gets no made-up usage: the front's translation
    said 0 tokens and the budget charged 0; it is now charged its whole reservation."""
    limit = {"name": "tokens", "key": ["header:x-test-client"],
             "tokens": [{"limit": 100_000, "per": "30d"}]}
    g = Gateway(tmp_path, front_config(tmp_path, rate_limits=[limit]), mock=mock)
    headers = {"authorization": f"Bearer {KEY}", "x-test-client": uuid.uuid4().hex,
               "x-mock-reply": TEXT}

    def post(max_tokens: int, **extra: str) -> httpx.Response:
        r = httpx.post(f"{g.url}/v1/chat/completions", headers={**headers, **extra},
                       timeout=30, json={"model": model, "messages": MSG,
                                         "max_tokens": max_tokens})
        g.server.wait_idle()   # (settled when the exchange ends)
        return r

    try:
        whole = post(300)
        reserved = 100_000 - int(whole.headers["x-ratelimit-remaining-tokens"])
        cost = whole.json()["usage"]["total_tokens"]
        bare = post(300, **{"x-mock-usage": "omit"})
        probe = post(1)       # reserves the prompt estimate and one token
        left = int(probe.headers["x-ratelimit-remaining-tokens"])
        assert 100_000 - cost - (reserved - 299) - left == reserved   # (was 0)
        assert bare.status_code == 200 and "usage" not in bare.json(), bare.text
    finally:
        g.close()


@pytest.mark.parametrize("model", list(CASES))
def test_a_backends_401_to_the_key_the_front_injects_is_withheld(gw: Gateway,
                                                                 model: str) -> None:
    """The backend's 401 is about the key the front injects, and its message names it: the
    client gets a 502 saying so (found by the red-team review)."""
    r = httpx.post(f"{gw.url}/v1/chat/completions", timeout=30,
                   json={"model": model, "messages": MSG},
                   headers={"authorization": f"Bearer {KEY}", "x-mock-status": "401"})
    assert r.status_code == 502, r.text
    assert "refused the gateway's credential" in r.json()["error"]["message"]
    for said in ("Incorrect API key", "invalid x-api-key", "API key not valid"):
        assert said not in r.text
