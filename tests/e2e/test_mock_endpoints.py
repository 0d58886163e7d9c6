"""The official SDKs parse the mock's replies on the endpoints beyond chat / messages /
generateContent (no Envoy: straight at the mock), and the x-mock-* controls work there as
on the chat endpoints: reply text and echo, chunking, status errors in each provider's
format, a connection reset mid-body."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import google.oauth2.credentials
import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from extproc.mock.testing import MockServer

TEXT = "Gateways should be boring: fast, correct, and invisible."
HEADERS = {"x-mock-reply": TEXT}


@pytest.fixture(scope="module")
def mock() -> Iterator[MockServer]:
    with MockServer() as server:
        yield server


def oai(mock: MockServer, base: str = "/v1", **headers: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{mock.url}{base}", api_key="sk-test", max_retries=0,
                         default_headers={**HEADERS, **headers})


def gemini(mock: MockServer, **headers: str) -> genai.Client:
    return genai.Client(api_key="k", http_options=types.HttpOptions(
        base_url=mock.url, headers={**HEADERS, **headers}))


def vertex(mock: MockServer, **headers: str) -> genai.Client:
    return genai.Client(vertexai=True, project="proj", location="us-central1",
                        credentials=google.oauth2.credentials.Credentials(token="t"),
                        http_options=types.HttpOptions(base_url=mock.url,
                                                       headers={**HEADERS, **headers}))


def last(mock: MockServer) -> dict:
    return httpx.get(f"{mock.url}/_mock/last", timeout=10).json()


# --------------------------------------------------------------------------- OpenAI


def test_responses_create(mock: MockServer) -> None:
    r = oai(mock).responses.create(model="gpt-5", input="hi", instructions="Be brief.",
                                   max_output_tokens=100)
    assert r.output_text == TEXT and r.status == "completed"
    assert r.usage is not None and r.usage.output_tokens == 8 and r.usage.total_tokens > 7
    assert r.instructions == "Be brief." and r.max_output_tokens == 100
    assert last(mock)["path"] == "/v1/responses"


@pytest.mark.parametrize("chunk", [None, "7"])
def test_responses_create_streamed(mock: MockServer, chunk: str | None) -> None:
    extra = {"x-mock-chunk-bytes": chunk} if chunk else {}
    events = list(oai(mock, **extra).responses.create(
        model="gpt-5", input=[{"role": "user", "content": "hi"}], stream=True))
    assert events[0].type == "response.created" and events[-1].type == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == TEXT == events[-1].response.output_text
    assert [e.sequence_number for e in events] == list(range(len(events)))
    usage = events[-1].response.usage
    assert usage is not None and usage.output_tokens == 8


def test_responses_stream_helper_and_echo(mock: MockServer) -> None:
    with oai(mock, **{"x-mock-reply": "echo"}).responses.stream(
            model="gpt-5", input=[{"role": "user", "content": [
                {"type": "input_text", "text": "say this back"}]}]) as stream:
        text = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert text == final.output_text == "say this back"


def test_responses_under_azure_v1(mock: MockServer) -> None:
    client = openai.OpenAI(base_url=f"{mock.url}/openai/v1", api_key="k", max_retries=0,
                           default_headers=HEADERS)
    assert client.responses.create(model="my-deployment", input="hi").output_text == TEXT
    assert last(mock)["path"] == "/openai/v1/responses"


def test_completions(mock: MockServer) -> None:
    c = oai(mock).completions.create(model="gpt-3.5-turbo-instruct", prompt="hi",
                                     max_tokens=50)
    assert c.choices[0].text == TEXT and c.choices[0].finish_reason == "stop"
    assert c.object == "text_completion" and c.usage is not None
    chunks = list(oai(mock, **{"x-mock-chunk-bytes": "5"}).completions.create(
        model="gpt-3.5-turbo-instruct", prompt=["a", "hi"], stream=True,
        stream_options={"include_usage": True}))
    assert "".join(x.choices[0].text for x in chunks if x.choices) == TEXT
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 8


def test_azure_completions_and_embeddings(mock: MockServer) -> None:
    client = openai.AzureOpenAI(azure_endpoint=mock.url, api_key="k", max_retries=0,
                                api_version="2024-10-21", default_headers=HEADERS)
    c = client.completions.create(model="instruct-dep", prompt="hi")
    assert c.choices[0].text == TEXT and c.model == "instruct-dep"
    assert last(mock)["path"] == "/openai/deployments/instruct-dep/completions"
    e = client.embeddings.create(model="embed-dep", input="hi")
    assert len(e.data) == 1 and e.model == "embed-dep"
    assert last(mock)["path"] == "/openai/deployments/embed-dep/embeddings"


@pytest.mark.parametrize("encoding", ["base64", "float"])
def test_embeddings(mock: MockServer, encoding: str) -> None:
    # the SDK asks for base64 unless told otherwise, and decodes it itself
    kwargs = {} if encoding == "base64" else {"encoding_format": "float"}
    e = oai(mock).embeddings.create(model="text-embedding-3-small",
                                    input=["first text", "second"], dimensions=16,
                                    **kwargs)  # type: ignore[arg-type]
    assert [d.index for d in e.data] == [0, 1]
    assert all(len(d.embedding) == 16 for d in e.data)
    assert e.data[0].embedding != e.data[1].embedding
    assert e.usage.prompt_tokens == e.usage.total_tokens > 0
    again = oai(mock).embeddings.create(model="text-embedding-3-small",
                                        input=["first text"], dimensions=16,
                                        **kwargs)  # type: ignore[arg-type]
    assert again.data[0].embedding == e.data[0].embedding   # deterministic


@pytest.mark.parametrize(("status", "error"), [
    (401, openai.AuthenticationError), (429, openai.RateLimitError),
    (500, openai.InternalServerError)])
def test_openai_status_errors(mock: MockServer, status: int,
                              error: type[openai.APIStatusError]) -> None:
    client = oai(mock, **{"x-mock-status": str(status)})
    with pytest.raises(error):
        client.responses.create(model="gpt-5", input="hi")
    with pytest.raises(error):
        client.completions.create(model="m", prompt="hi")
    with pytest.raises(error):
        client.embeddings.create(model="m", input="hi")


def test_openai_bad_requests(mock: MockServer) -> None:
    with pytest.raises(openai.BadRequestError, match="prompt"):
        oai(mock).completions.create(model="m", prompt=7)  # type: ignore[arg-type]
    with pytest.raises(openai.BadRequestError, match="input"):
        oai(mock).embeddings.create(model="m", input="")


def test_fail_after_cuts_a_responses_stream(mock: MockServer) -> None:
    client = oai(mock, **{"x-mock-fail-after": "900"})
    with pytest.raises(openai.APIConnectionError):
        list(client.responses.create(model="gpt-5", input="hi", stream=True))


# --------------------------------------------------------------------------- Anthropic


def test_anthropic_count_tokens(mock: MockServer) -> None:
    client = anthropic.Anthropic(base_url=mock.url, api_key="k", max_retries=0,
                                 default_headers=HEADERS)
    count = client.messages.count_tokens(
        model="claude-sonnet-4-5", system="Be brief.",
        messages=[{"role": "user", "content": "Hello there, how are you?"}])
    assert count.input_tokens == 9   # (9 + 25) characters / 4, rounded up
    assert last(mock)["path"] == "/v1/messages/count_tokens"
    with pytest.raises(anthropic.RateLimitError):
        anthropic.Anthropic(base_url=mock.url, api_key="k", max_retries=0,
                            default_headers={"x-mock-status": "429"}).messages.count_tokens(
            model="c", messages=[{"role": "user", "content": "x"}])


# --------------------------------------------------------------------------- Google


@pytest.mark.parametrize("client", [gemini, vertex])
def test_count_tokens(mock: MockServer, client: type) -> None:
    sdk = client(mock)   # held: a client collected mid-call closes its connection pool
    count = sdk.models.count_tokens(model="gemini-2.5-flash",
                                    contents="Count these words for me.")
    assert count.total_tokens == 7
    assert last(mock)["path"].endswith("/models/gemini-2.5-flash:countTokens")


def test_gemini_embed_content(mock: MockServer) -> None:
    sdk = gemini(mock)
    r = sdk.models.embed_content(model="gemini-embedding-001",
                                 contents=["one", "two", "three"],
                                 config=types.EmbedContentConfig(output_dimensionality=12))
    assert r.embeddings is not None and len(r.embeddings) == 3
    assert all(e.values is not None and len(e.values) == 12 for e in r.embeddings)
    assert last(mock)["path"].endswith("/models/gemini-embedding-001:batchEmbedContents")


def test_vertex_embed_content(mock: MockServer) -> None:
    sdk = vertex(mock)
    one = sdk.models.embed_content(model="gemini-embedding-001", contents="one")
    assert one.embeddings is not None and len(one.embeddings) == 1
    assert one.embeddings[0].statistics is not None
    assert one.embeddings[0].statistics.token_count == 1
    assert last(mock)["path"].endswith("/models/gemini-embedding-001:embedContent")
    many = sdk.models.embed_content(model="gemini-embedding-001", contents=["one", "two"])
    assert many.embeddings is not None and len(many.embeddings) == 2
    assert last(mock)["path"].endswith("/models/gemini-embedding-001:batchEmbedContents")


@pytest.mark.parametrize(("status", "name"), [(403, "PERMISSION_DENIED"),
                                              (503, "UNAVAILABLE")])
def test_google_status_errors(mock: MockServer, status: int, name: str) -> None:
    client = gemini(mock, **{"x-mock-status": str(status)})
    error = genai_errors.ClientError if status < 500 else genai_errors.ServerError
    with pytest.raises(error) as caught:
        client.models.count_tokens(model="gemini-2.5-flash", contents="x")
    assert caught.value.status == name
    with pytest.raises(error):
        client.models.embed_content(model="gemini-embedding-001", contents="x")
