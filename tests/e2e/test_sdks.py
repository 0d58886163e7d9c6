"""The official SDKs as clients of the gateway (real Envoy, real server, mock provider):
each provider's prefix streams in its own format, and gateway rejections surface as each
SDK's own error type."""

from __future__ import annotations

import anthropic
import google.oauth2.credentials
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from tests.harness import Gateway

TEXT = "Gateways should be boring: fast, correct, and invisible."
HEADERS = {"x-mock-reply": TEXT}


def openai_client(gw: Gateway, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/openai/v1", api_key="sk-test", max_retries=0,
                         default_headers={**HEADERS, **headers})


def gemini_client(gw: Gateway, **headers: str) -> genai.Client:
    return genai.Client(api_key="test-key", http_options=types.HttpOptions(
        base_url=f"{gw.url}/gemini", headers={**HEADERS, **headers}))


def vertex_client(gw: Gateway) -> genai.Client:
    return genai.Client(vertexai=True, project="proj", location="us-central1",
                        credentials=google.oauth2.credentials.Credentials(token="test-token"),
                        http_options=types.HttpOptions(base_url=f"{gw.url}/vertex",
                                                       headers=HEADERS))


def test_openai_streams(gateway: Gateway) -> None:
    stream = openai_client(gateway).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == TEXT
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert gateway.mock.last()["path"] == "/v1/chat/completions"   # prefix stripped


def test_openai_non_streamed(gateway: Gateway) -> None:
    r = openai_client(gateway).chat.completions.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == TEXT
    assert r.usage is not None and r.usage.total_tokens > 0


def test_azure_openai_streams(gateway: Gateway) -> None:
    client = openai.AzureOpenAI(azure_endpoint=f"{gateway.url}/azure", api_key="k",
                                api_version="2024-10-21", max_retries=0,
                                default_headers=HEADERS)
    stream = client.chat.completions.create(
        model="my-deployment", messages=[{"role": "user", "content": "hi"}], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == TEXT
    assert gateway.mock.last()["path"] == "/openai/deployments/my-deployment/chat/completions"


def test_anthropic_streams(gateway: Gateway) -> None:
    client = anthropic.Anthropic(base_url=f"{gateway.url}/anthropic", api_key="k",
                                 max_retries=0, default_headers=HEADERS)
    with client.messages.stream(model="claude-sonnet-5-5", max_tokens=100,
                                messages=[{"role": "user", "content": "hi"}]) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == TEXT
    assert final.stop_reason == "end_turn"
    assert final.usage.output_tokens > 0


def test_gemini_streams(gateway: Gateway) -> None:
    client = gemini_client(gateway)
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash",
                                                        contents="hi"))
    assert "".join(c.text or "" for c in chunks) == TEXT
    assert chunks[-1].usage_metadata.candidates_token_count > 0


def test_vertex_streams(gateway: Gateway) -> None:
    client = vertex_client(gateway)
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash",
                                                        contents="hi"))
    assert "".join(c.text or "" for c in chunks) == TEXT
    assert gateway.mock.last()["path"].startswith("/v1beta1/projects/proj/locations/")


def test_gateway_rejections_are_native_sdk_errors(gateway: Gateway) -> None:
    with pytest.raises(openai.PermissionDeniedError) as oe:
        openai_client(gateway, **{"x-test-reject": "403"}).chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert "rejected by the test gatekeeper" in str(oe.value)

    client = anthropic.Anthropic(base_url=f"{gateway.url}/anthropic", api_key="k",
                                 max_retries=0, default_headers={"x-test-reject": "429"})
    with pytest.raises(anthropic.RateLimitError) as ae:
        client.messages.create(model="claude-sonnet-5-5", max_tokens=10,
                               messages=[{"role": "user", "content": "hi"}])
    assert ae.value.body["error"]["type"] == "rate_limit_error"

    gemini = gemini_client(gateway, **{"x-test-reject": "403"})  # keep it: GC closes it
    with pytest.raises(genai_errors.ClientError) as ge:
        gemini.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert ge.value.code == 403 and ge.value.status == "PERMISSION_DENIED"
