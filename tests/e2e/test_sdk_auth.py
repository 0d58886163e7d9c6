"""The official SDKs against the reference config (config/gateway.yaml) as a new user runs
it: each SDK's own api-key parameter carries the gateway credential (a token from
`extproc token`, or the development API key), the provider's key goes upstream in its place,
and a bad credential surfaces as the SDK's own authentication error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import google.oauth2.credentials
import openai
import pytest
import yaml
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from extproc.auth.devtoken import mint
from tests.harness import ROOT, Gateway, Mock

TEXT = "Only the gateway holds the provider's key."
HEADERS = {"x-mock-reply": TEXT}
DEV_API_KEY = "gw-local-dev-key-DEV-ONLY"   # published in the README for the local stack
MSG = [{"role": "user", "content": "hi"}]


def reference_config() -> dict[str, Any]:
    """config/gateway.yaml with its relative files made absolute (the harness writes the
    config elsewhere)."""
    doc = yaml.safe_load((ROOT / "config" / "gateway.yaml").read_text())

    def fix(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "file" and isinstance(v, str) and not Path(v).is_absolute():
                    node[k] = str(ROOT / "config" / v)
                else:
                    fix(v)
        elif isinstance(node, list):
            for v in node:
                fix(v)
    fix(doc)
    return doc


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    gateway = Gateway(tmp_path_factory.mktemp("sdk-auth"), reference_config(), mock=mock)
    yield gateway
    gateway.close()


@pytest.fixture(scope="module")
def token() -> str:
    return mint("alice")


def upstream_headers(gw: Gateway) -> dict[str, str]:
    last = gw.mock.last()
    assert last is not None
    return last["headers"]


def test_openai_sdk_with_a_gateway_token(gw: Gateway, token: str) -> None:
    client = openai.OpenAI(base_url=f"{gw.url}/openai/v1", api_key=token, max_retries=0,
                           default_headers=HEADERS)
    stream = client.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == TEXT
    seen = upstream_headers(gw)
    assert seen["authorization"] == "Bearer mock-openai-key-DEV-ONLY"
    assert seen["x-gateway-subject"] == "jwt:local-dev:alice"


def test_openai_sdk_with_a_bad_key_gets_its_authentication_error(gw: Gateway) -> None:
    client = openai.OpenAI(base_url=f"{gw.url}/openai/v1", api_key="sk-not-a-gateway-key",
                           max_retries=0)
    with pytest.raises(openai.AuthenticationError) as exc:
        client.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert "API key is not valid" in str(exc.value)


def test_azure_sdk_with_a_gateway_token(gw: Gateway, token: str) -> None:
    client = openai.AzureOpenAI(azure_endpoint=f"{gw.url}/azure", api_key=token,
                                api_version="2024-10-21", max_retries=0,
                                default_headers=HEADERS)
    r = client.chat.completions.create(model="my-deployment", messages=MSG)
    assert r.choices[0].message.content == TEXT
    seen = upstream_headers(gw)
    assert seen["api-key"] == "mock-azure-key-DEV-ONLY"
    assert token not in str(seen)


def test_anthropic_sdk_with_the_dev_api_key(gw: Gateway) -> None:
    client = anthropic.Anthropic(base_url=f"{gw.url}/anthropic", api_key=DEV_API_KEY,
                                 max_retries=0, default_headers=HEADERS)
    with client.messages.stream(model="claude-sonnet-5-5", max_tokens=100,
                                messages=MSG) as stream:
        assert "".join(stream.text_stream) == TEXT
    seen = upstream_headers(gw)
    assert seen["x-api-key"] == "mock-anthropic-key-DEV-ONLY"
    assert seen["x-gateway-subject"] == "key:local-dev"


def test_anthropic_sdk_with_a_token_and_a_bad_one(gw: Gateway, token: str) -> None:
    client = anthropic.Anthropic(base_url=f"{gw.url}/anthropic", auth_token=token,
                                 max_retries=0, default_headers=HEADERS)
    r = client.messages.create(model="claude-sonnet-5-5", max_tokens=100, messages=MSG)
    assert r.content[0].text == TEXT
    assert "authorization" not in upstream_headers(gw)
    bad = anthropic.Anthropic(base_url=f"{gw.url}/anthropic", api_key="sk-ant-wrong",
                              max_retries=0)
    with pytest.raises(anthropic.AuthenticationError) as exc:
        bad.messages.create(model="claude-sonnet-5-5", max_tokens=10, messages=MSG)
    assert exc.value.body["error"]["type"] == "authentication_error"


CITED: list[Any] = [{"role": "user", "content": [
    {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                    "data": "The team meets on Mondays."},
     "title": "notes", "citations": {"enabled": True}},
    {"type": "text", "text": "who do I write to?"}]}]


@pytest.mark.parametrize(("chunk", "messages"), [("4096", MSG), ("3", MSG), ("7", CITED)],
                         ids=["whole-chunks", "3-byte-chunks", "cited-blocks"])
def test_anthropic_sdk_reads_a_value_split_between_text_blocks_masked(
        gw: Gateway, chunk: str, messages: list[Any]) -> None:
    """The SDK joins a message's text blocks (`get_final_text()`, `text_stream`): an address
    cut at a block's end is masked, streamed under any chunking and whole, and each block
    keeps its own text, the placeholder in the block where the address starts; blocks
    that cite a document too (found by review: a citation ended the joining)."""
    client = anthropic.Anthropic(base_url=f"{gw.url}/anthropic", api_key=DEV_API_KEY,
                                 max_retries=0, default_headers={
                                     "x-mock-reply": "write to john.doe@exa|mple.com now",
                                     "x-mock-shape": "blocks", "x-mock-chunk-bytes": chunk})
    with client.messages.stream(model="claude-sonnet-4-5", max_tokens=100,
                                messages=messages) as stream:
        streamed = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert streamed == stream.get_final_text() == "write to <EMAIL> now"
    assert [b.text for b in final.content if b.type == "text"] == ["write to <EMAIL>", " now"]
    whole = client.messages.create(model="claude-sonnet-4-5", max_tokens=100,
                                   messages=messages)
    assert [b.text for b in whole.content if b.type == "text"] == ["write to <EMAIL>", " now"]


def test_gemini_sdk_with_a_gateway_token(gw: Gateway, token: str) -> None:
    client = genai.Client(api_key=token, http_options=types.HttpOptions(
        base_url=f"{gw.url}/gemini", headers=HEADERS))
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash",
                                                        contents="hi"))
    assert "".join(c.text or "" for c in chunks) == TEXT
    assert upstream_headers(gw)["x-goog-api-key"] == "mock-gemini-key-DEV-ONLY"
    bad = genai.Client(api_key="AIza-wrong", http_options=types.HttpOptions(
        base_url=f"{gw.url}/gemini"))
    with pytest.raises(genai_errors.ClientError) as exc:
        bad.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert exc.value.code == 401 and exc.value.status == "UNAUTHENTICATED"


def test_vertex_sdk_with_a_gateway_token(gw: Gateway, token: str) -> None:
    client = genai.Client(vertexai=True, project="proj", location="us-central1",
                          credentials=google.oauth2.credentials.Credentials(token=token),
                          http_options=types.HttpOptions(base_url=f"{gw.url}/vertex",
                                                         headers=HEADERS))
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash",
                                                        contents="hi"))
    assert "".join(c.text or "" for c in chunks) == TEXT
    assert upstream_headers(gw)["authorization"] == "Bearer mock-vertex-key-DEV-ONLY"
