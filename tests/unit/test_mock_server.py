"""The mock LLM server against the official SDKs and raw httpx (no Envoy involved)."""

from __future__ import annotations

import itertools
import json
import logging
import re
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import google.oauth2.credentials
import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from extproc.mock.common import DEFAULT_REPLY
from extproc.mock.testing import MockServer

UNICODE = "héllo wörld, 日本語 ✓ 🎉 done"
GEMINI_BODY = {"contents": [{"role": "user", "parts": [{"text": UNICODE}]}]}
OPENAI_BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": UNICODE}]}
ANTHROPIC_BODY = {"model": "claude-x", "max_tokens": 50, "messages": OPENAI_BODY["messages"]}


@pytest.fixture(scope="module")
def mock_server() -> Iterator[MockServer]:
    with MockServer() as server:
        yield server


@pytest.fixture
def http(mock_server: MockServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mock_server.url, timeout=10) as client:
        yield client


def last(http: httpx.Client) -> dict:
    return http.get("/_mock/last").json()


def gemini_client(mock_server: MockServer) -> genai.Client:
    return genai.Client(
        api_key="test-key", http_options=types.HttpOptions(base_url=mock_server.url)
    )


def vertex_client(mock_server: MockServer) -> genai.Client:
    return genai.Client(
        vertexai=True,
        project="proj",
        location="us-central1",
        credentials=google.oauth2.credentials.Credentials(token="test-token"),
        http_options=types.HttpOptions(base_url=mock_server.url),
    )


# --- OpenAI -----------------------------------------------------------------------------


def test_openai_sdk_non_streamed(mock_server: MockServer, http: httpx.Client) -> None:
    client = openai.OpenAI(base_url=f"{mock_server.url}/v1", api_key="sk-test")
    resp = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "say hi"}],
        extra_headers={"x-mock-reply": "echo"},
    )
    assert resp.choices[0].message.content == "say hi"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.model == "gpt-4o-mini" and resp.id.startswith("chatcmpl-")
    assert resp.usage is not None
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (2, 2)
    seen = last(http)
    assert seen["path"] == "/v1/chat/completions"
    assert seen["headers"]["authorization"] == "Bearer sk-test"


@pytest.mark.parametrize("include_usage", [True, False])
def test_openai_sdk_streamed(mock_server: MockServer, include_usage: bool) -> None:
    client = openai.OpenAI(base_url=f"{mock_server.url}/v1", api_key="sk-test")
    stream = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": "x"}],
        stream=True,
        stream_options={"include_usage": include_usage},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == DEFAULT_REPLY
    if include_usage:
        assert chunks[-1].choices == [] and chunks[-1].usage is not None
        assert chunks[-1].usage.completion_tokens == len(chunks) - 3
    else:
        assert all(c.usage is None for c in chunks)
        assert chunks[-1].choices[0].finish_reason == "stop"


async def test_openai_async_sdk_streamed(mock_server: MockServer) -> None:
    client = openai.AsyncOpenAI(base_url=f"{mock_server.url}/v1", api_key="sk-test")
    stream = await client.chat.completions.create(
        model="gpt-4o",
        messages=[{"role": "user", "content": UNICODE}],
        stream=True,
        extra_headers={"x-mock-reply": "echo"},
    )
    text = "".join([c.choices[0].delta.content or "" async for c in stream])
    assert text == UNICODE
    await client.close()


def test_azure_openai_sdk(mock_server: MockServer, http: httpx.Client) -> None:
    client = openai.AzureOpenAI(
        azure_endpoint=mock_server.url, api_version="2024-10-21", api_key="k"
    )
    resp = client.chat.completions.create(
        model="my-deployment", messages=[{"role": "user", "content": "hi"}]
    )
    assert resp.choices[0].message.content == DEFAULT_REPLY
    seen = last(http)
    assert seen["path"] == "/openai/deployments/my-deployment/chat/completions"
    assert seen["query"] == {"api-version": "2024-10-21"}
    assert seen["headers"]["api-key"] == "k"
    # Without a model in the body, the deployment names the model.
    raw = http.post(
        "/openai/deployments/dep-7/chat/completions?api-version=x",
        json={"messages": [{"role": "user", "content": "hi"}]},
    )
    assert raw.json()["model"] == "dep-7"


def test_openai_sdk_models(mock_server: MockServer) -> None:
    client = openai.OpenAI(base_url=f"{mock_server.url}/v1", api_key="sk-test")
    assert "gpt-4o-mini" in [m.id for m in client.models.list()]


# --- Anthropic --------------------------------------------------------------------------


def test_anthropic_sdk_non_streamed(mock_server: MockServer, http: httpx.Client) -> None:
    client = anthropic.Anthropic(base_url=mock_server.url, api_key="ak-test")
    msg = client.messages.create(
        model="claude-x",
        max_tokens=50,
        system="be brief",
        messages=[{"role": "user", "content": [{"type": "text", "text": UNICODE}]}],
        extra_headers={"x-mock-reply": "echo"},
    )
    assert msg.content[0].type == "text" and msg.content[0].text == UNICODE
    assert msg.stop_reason == "end_turn" and msg.model == "claude-x"
    assert msg.usage.output_tokens == len(UNICODE.split())
    headers = last(http)["headers"]
    # Older SDKs send x-api-key; newer ones send the key as a bearer token.
    assert "ak-test" in (headers.get("x-api-key"), headers.get("authorization", "")[7:])
    assert "anthropic-version" in headers


def test_anthropic_sdk_streamed(mock_server: MockServer) -> None:
    client = anthropic.Anthropic(base_url=mock_server.url, api_key="ak-test")
    with client.messages.stream(
        model="claude-x", max_tokens=50, messages=[{"role": "user", "content": "hi"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == DEFAULT_REPLY
    assert final.content[0].text == DEFAULT_REPLY and final.stop_reason == "end_turn"
    assert final.usage.output_tokens == len(DEFAULT_REPLY.split())


def test_anthropic_request_id_header(http: httpx.Client) -> None:
    resp = http.post("/v1/messages", json=ANTHROPIC_BODY)
    assert resp.headers["request-id"].startswith("req_")
    assert resp.headers["content-type"].startswith("application/json")


def test_anthropic_sdk_models(mock_server: MockServer) -> None:
    client = anthropic.Anthropic(base_url=mock_server.url, api_key="ak-test")
    assert any(m.id.startswith("claude") for m in client.models.list())


# --- Gemini and Vertex ------------------------------------------------------------------


def test_gemini_sdk_non_streamed(mock_server: MockServer, http: httpx.Client) -> None:
    client = gemini_client(mock_server)  # keep a reference: a collected Client closes its transport
    resp = client.models.generate_content(model="gemini-2.0-flash", contents="hi")
    assert resp.text == DEFAULT_REPLY
    assert resp.candidates[0].finish_reason == types.FinishReason.STOP
    assert resp.usage_metadata.candidates_token_count == len(DEFAULT_REPLY.split())
    seen = last(http)
    assert seen["path"].endswith("/models/gemini-2.0-flash:generateContent")
    assert seen["headers"]["x-goog-api-key"] == "test-key"


def test_gemini_sdk_streamed(mock_server: MockServer, http: httpx.Client) -> None:
    client = gemini_client(mock_server)
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-pro", contents="hi"))
    assert "".join(c.text for c in chunks) == DEFAULT_REPLY
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    seen = last(http)
    assert seen["path"].endswith("/models/gemini-2.5-pro:streamGenerateContent")
    assert seen["query"] == {"alt": "sse"}


@pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning")
async def test_gemini_async_sdk_streamed(mock_server: MockServer) -> None:
    client = gemini_client(mock_server)
    async with client.aio as aio:    # closes the SDK's own HTTP session
        stream = await aio.models.generate_content_stream(
            model="gemini-2.0-flash",
            contents=UNICODE,
            config=types.GenerateContentConfig(
                http_options=types.HttpOptions(headers={"x-mock-reply": "echo"})
            ),
        )
        assert "".join([c.text async for c in stream]) == UNICODE


def test_vertex_sdk_non_streamed(mock_server: MockServer, http: httpx.Client) -> None:
    client = vertex_client(mock_server)
    resp = client.models.generate_content(model="gemini-2.0-flash", contents="hi")
    assert resp.text == DEFAULT_REPLY
    assert resp.create_time is not None
    seen = last(http)
    assert seen["path"] == (
        "/v1beta1/projects/proj/locations/us-central1/publishers/google/models/"
        "gemini-2.0-flash:generateContent"
    )
    assert seen["headers"]["authorization"] == "Bearer test-token"


def test_vertex_sdk_streamed(mock_server: MockServer, http: httpx.Client) -> None:
    client = vertex_client(mock_server)
    chunks = list(client.models.generate_content_stream(model="gemini-2.0-flash", contents="x"))
    assert "".join(c.text for c in chunks) == DEFAULT_REPLY
    seen = last(http)
    assert seen["path"].endswith("publishers/google/models/gemini-2.0-flash:streamGenerateContent")
    assert seen["query"] == {"alt": "sse"}


def test_gemini_array_stream_without_alt_sse(http: httpx.Client) -> None:
    with http.stream(
        "POST", "/v1beta/models/gemini-2.0-flash:streamGenerateContent", json=GEMINI_BODY
    ) as resp:
        assert resp.headers["content-type"] == "application/json; charset=UTF-8"
        body = b"".join(resp.iter_raw())
    assert body.startswith(b'[{\n  "candidates": ') and body.endswith(b"}\n]")
    assert b"\n,\r\n{" in body
    events = json.loads(body)
    assert "".join(e["candidates"][0]["content"]["parts"][0]["text"] for e in events) == (
        DEFAULT_REPLY
    )


def test_gemini_sse_uses_crlf(http: httpx.Client) -> None:
    resp = http.post("/v1beta/models/g:streamGenerateContent?alt=sse", json=GEMINI_BODY)
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = resp.content.split(b"\r\n\r\n")
    assert events[-1] == b"" and all(e.startswith(b"data: {") for e in events[:-1])


# --- control headers --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1beta/models/gemini-2.0-flash:streamGenerateContent", GEMINI_BODY),
        ("/v1/messages", {**ANTHROPIC_BODY, "stream": True}),
        ("/v1/messages", ANTHROPIC_BODY),
    ],
)
def test_chunk_bytes_splits_anywhere(http: httpx.Client, path: str, body: dict) -> None:
    headers = {"x-mock-reply": "echo"}
    whole = http.post(path, json=body, headers=headers).content
    with http.stream("POST", path, json=body, headers={**headers, "x-mock-chunk-bytes": "3"}) as r:
        assert r.headers["transfer-encoding"] == "chunked"
        raw = list(r.iter_raw())
    assert b"".join(raw) == whole
    assert all(len(piece) <= 3 for piece in raw)
    assert len(raw) >= len(whole) // 3
    # UTF-8 goes out raw, and some 3-byte chunks cut a multi-byte character in two.
    assert "日本語".encode() in whole

    def splits_character(piece: bytes) -> bool:
        try:
            piece.decode("utf-8")
        except UnicodeDecodeError:
            return True
        return False

    assert any(splits_character(piece) for piece in raw)


def test_chunk_bytes_openai_reassembles(http: httpx.Client) -> None:
    body = {**OPENAI_BODY, "stream": True}
    headers = {"x-mock-reply": "echo", "x-mock-chunk-bytes": "3"}
    with http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as r:
        data = b"".join(r.iter_raw())
    events = [e.removeprefix(b"data: ") for e in data.split(b"\n\n") if e]
    assert events[-1] == b"[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == UNICODE


def test_unicode_reply_header(http: httpx.Client) -> None:
    headers = {"x-mock-reply": "héllo 日本".encode()}
    resp = http.post("/v1/chat/completions", json=OPENAI_BODY, headers=headers)
    assert resp.json()["choices"][0]["message"]["content"] == "héllo 日本"
    headers = {"x-mock-reply": "héllo".encode("latin-1")}
    resp = http.post("/v1/messages", json=ANTHROPIC_BODY, headers=headers)
    assert resp.json()["content"][0]["text"] == "héllo"


def test_delay_between_chunks(http: httpx.Client) -> None:
    headers = {"x-mock-reply": "a b c", "x-mock-delay-ms": "50"}
    started = time.monotonic()
    resp = http.post("/v1/chat/completions", json={**OPENAI_BODY, "stream": True}, headers=headers)
    assert resp.status_code == 200
    assert time.monotonic() - started >= 0.2  # 6 frames: 4 gaps of 50 ms, then [DONE]


@pytest.mark.parametrize(("path", "body", "settled"), [
    ("/v1/chat/completions", {**OPENAI_BODY, "stream": True}, [b"[DONE]"]),
    ("/v1/chat/completions", {**OPENAI_BODY, "stream": True,
                              "stream_options": {"include_usage": True}},
     [b'"choices":[]', b"[DONE]"]),
    ("/v1/messages", {**ANTHROPIC_BODY, "stream": True}, [b"message_delta", b"message_stop"]),
    ("/v1/responses", {"model": "m", "input": "hi", "stream": True},
     [b"response.output_text.done", b"response.content_part.done",
      b"response.output_item.done", b"response.completed"]),
])
def test_the_frames_sent_once_generation_ended_are_not_paced(
        http: httpx.Client, path: str, body: dict[str, Any], settled: list[bytes]) -> None:
    """x-mock-delay-ms paces what a model generates. The usage chunk, [DONE] and Anthropic's
    message_delta and message_stop leave the moment generation ends, as a provider sends
    them: pacing them made every stream that asks for usage a pause longer."""
    arrived: list[tuple[float, bytes]] = []
    with http.stream("POST", path, json=body,
                     headers={"x-mock-reply": "a b c", "x-mock-delay-ms": "100"}) as resp:
        for chunk in resp.iter_raw():
            arrived.append((time.monotonic(), chunk))
    data = b"".join(c for _, c in arrived)
    frames = [f for f in data.split(b"\n\n") if f]
    assert all(marker in frame for marker, frame in zip(settled, frames[-len(settled):],
                                                        strict=True))
    # the time each frame was complete: the last frame before the settled ones is paced,
    # the settled ones come with it
    ends = []
    seen = b""
    for at, chunk in arrived:
        seen += chunk
        ends += [at] * (seen.count(b"\n\n") - len(ends))
    gaps = [b - a for a, b in itertools.pairwise(ends)]
    assert min(gaps[:-len(settled)]) >= 0.08
    assert max(gaps[-len(settled):]) < 0.05


@pytest.mark.parametrize("status", [400, 401, 403, 404, 429, 500, 503])
def test_status_openai(mock_server: MockServer, status: int) -> None:
    client = openai.OpenAI(base_url=f"{mock_server.url}/v1", api_key="k", max_retries=0)
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"x-mock-status": str(status)},
        )
    assert info.value.status_code == status
    assert set(info.value.body) == {"message", "type", "param", "code"}
    if status == 429:
        assert isinstance(info.value, openai.RateLimitError)
        assert info.value.response.headers["retry-after"] == "1"
        assert info.value.code == "rate_limit_exceeded"


@pytest.mark.parametrize(
    ("status", "err_type"),
    [(401, "authentication_error"), (429, "rate_limit_error"), (529, "overloaded_error")],
)
def test_status_anthropic(mock_server: MockServer, status: int, err_type: str) -> None:
    client = anthropic.Anthropic(base_url=mock_server.url, api_key="k", max_retries=0)
    with pytest.raises(anthropic.APIStatusError) as info:
        client.messages.create(
            model="m",
            max_tokens=5,
            messages=[{"role": "user", "content": "x"}],
            extra_headers={"x-mock-status": str(status)},
        )
    assert info.value.status_code == status
    assert info.value.body["error"]["type"] == err_type
    assert info.value.request_id and info.value.request_id.startswith("req_")


@pytest.mark.parametrize(
    ("status", "name", "exc"),
    [
        (400, "INVALID_ARGUMENT", genai_errors.ClientError),
        (429, "RESOURCE_EXHAUSTED", genai_errors.ClientError),
        (503, "UNAVAILABLE", genai_errors.ServerError),
    ],
)
def test_status_google(mock_server: MockServer, status: int, name: str, exc: type) -> None:
    config = types.GenerateContentConfig(
        http_options=types.HttpOptions(headers={"x-mock-status": str(status)})
    )
    for client in (gemini_client(mock_server), vertex_client(mock_server)):
        with pytest.raises(exc) as info:
            client.models.generate_content(model="gemini-2.0-flash", contents="x", config=config)
        assert (info.value.code, info.value.status) == (status, name)


@pytest.mark.parametrize("stream", [True, False])
def test_fail_after_resets_connection(http: httpx.Client, stream: bool) -> None:
    received = b""
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        with http.stream(
            "POST",
            "/v1/chat/completions",
            json={**OPENAI_BODY, "stream": stream},
            headers={"x-mock-fail-after": "100"},
        ) as resp:
            assert resp.status_code == 200
            for piece in resp.iter_raw():
                received += piece
    assert len(received) <= 100


@pytest.mark.parametrize("stream", [True, False])
def test_end_after_ends_the_body_short_and_cleanly(http: httpx.Client, stream: bool) -> None:
    body = {**OPENAI_BODY, "stream": stream}
    whole = http.post("/v1/chat/completions", json=body).content
    resp = http.post("/v1/chat/completions", json=body, headers={"x-mock-end-after": "100"})
    assert resp.status_code == 200
    # (the two replies may be a second apart: their `created` is not compared; found by CI)
    def same(b: bytes) -> bytes:
        return re.sub(rb'"created":\s*\d+', b'"created":0', b)
    assert same(resp.content) == same(whole[:100]) and len(whole) > 100


def test_fail_after_zero_sends_headers_only(http: httpx.Client) -> None:
    with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
        with http.stream(
            "POST", "/v1/messages", json=ANTHROPIC_BODY, headers={"x-mock-fail-after": "0"}
        ) as resp:
            assert resp.status_code == 200
            resp.read()


# --- errors, bookkeeping, logging -------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "content", "check"),
    [
        ("/v1/chat/completions", b"nope", lambda b: b["error"]["type"] == "invalid_request_error"),
        ("/v1/chat/completions", b"[1]", lambda b: b["error"]["message"]),
        ("/v1/chat/completions", b'{"model":"m"}', lambda b: b["error"]["param"] == "messages"),
        ("/v1/messages", b"{", lambda b: b["error"]["type"] == "invalid_request_error"),
        ("/v1/messages", b'{"model":"m"}', lambda b: b["type"] == "error"),
        ("/v1beta/models/g:generateContent", b"x", lambda b: b["error"]["code"] == 400),
        (
            "/v1beta/models/g:generateContent",
            b'{"contents":[]}',
            lambda b: b["error"]["status"] == "INVALID_ARGUMENT",
        ),
    ],
)
def test_bad_requests_get_provider_400(
    http: httpx.Client, path: str, content: bytes, check
) -> None:
    resp = http.post(path, content=content, headers={"content-type": "application/json"})
    assert resp.status_code == 400
    assert check(resp.json())


def test_invalid_control_header_is_400(http: httpx.Client) -> None:
    resp = http.post("/v1/messages", json=ANTHROPIC_BODY, headers={"x-mock-chunk-bytes": "0"})
    assert resp.status_code == 400
    assert "x-mock-chunk-bytes" in resp.json()["error"]["message"]


def test_unknown_path_is_generic_404(http: httpx.Client) -> None:
    for method, path in [("POST", "/v2/whatever"), ("GET", "/v1/chat/completions")]:
        resp = http.request(method, path)
        assert resp.status_code == 404
        assert resp.json()["error"]["code"] == 404


def test_last_request_and_request_bytes(http: httpx.Client) -> None:
    content = json.dumps(OPENAI_BODY, ensure_ascii=False).encode()
    resp = http.post(
        "/v1/chat/completions?a=1",
        content=content,
        headers={"Content-Type": "application/json", "X-Injected": "yes"},
    )
    assert resp.headers["x-mock-request-bytes"] == str(len(content))
    seen = last(http)
    assert seen["method"] == "POST" and seen["path"] == "/v1/chat/completions"
    assert seen["query"] == {"a": "1"}
    assert seen["headers"]["x-injected"] == "yes"
    assert "authorization" not in seen["headers"]
    assert json.loads(seen["body"]) == OPENAI_BODY
    assert last(http) == seen  # debug requests are not recorded


def test_identical_requests_get_identical_bodies(http: httpx.Client) -> None:
    first = http.post("/v1/messages", json=ANTHROPIC_BODY).content
    assert http.post("/v1/messages", json=ANTHROPIC_BODY).content == first


def test_one_log_line_per_request(http: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="extproc.mock"):
        resp = http.post("/v1/messages", json=ANTHROPIC_BODY)
        # The server thread logs after finishing the response: give it a moment.
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            lines = [r.getMessage() for r in caplog.records if r.name == "extproc.mock"]
            if lines:
                break
            time.sleep(0.01)
    assert lines == [f"POST /v1/messages 200 {len(resp.content)}"]
