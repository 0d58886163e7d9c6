"""The mock's `x-mock-error-after: N`: a streamed reply ends after N frames with the
provider's own mid-stream error event, which each official SDK raises as it raises a real
one (OpenAI's error chunk, Anthropic's `event: error`, Gemini's error object)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest

from extproc.mock.control import ControlError, parse_control
from extproc.mock.testing import MockServer

MSG = [{"role": "user", "content": "hi"}]
WORDS = " ".join(f"w{i}" for i in range(20))
HEADERS = {"x-mock-reply": WORDS, "x-mock-error-after": "5"}


@pytest.fixture(scope="module")
def mock_server() -> Iterator[MockServer]:
    with MockServer() as server:
        yield server


def test_parse_error_after() -> None:
    assert parse_control({"x-mock-error-after": "3"}).error_after == 3
    with pytest.raises(ControlError):
        parse_control({"x-mock-error-after": "0"})


def test_openai(mock_server: MockServer) -> None:
    client = openai.OpenAI(base_url=f"{mock_server.url}/v1", api_key="k", max_retries=0,
                           default_headers=HEADERS)
    got = []
    with pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(model="m", messages=MSG, stream=True):
            got.append(chunk)
    assert len(got) == 5


def test_anthropic(mock_server: MockServer) -> None:
    client = anthropic.Anthropic(base_url=mock_server.url, api_key="k", max_retries=0,
                                 default_headers=HEADERS)
    with pytest.raises(anthropic.APIStatusError) as exc, client.messages.stream(
            model="m", max_tokens=100, messages=MSG) as stream:
        for _ in stream.text_stream:
            pass
    assert "Overloaded" in str(exc.value)


def test_gemini_sse_and_not_the_array(mock_server: MockServer) -> None:
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
    path = "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    sse = httpx.post(f"{mock_server.url}{path}?alt=sse", json=body, headers=HEADERS).text
    events = [json.loads(line[6:]) for line in sse.split("\r\n") if line.startswith("data: ")]
    assert len(events) == 6 and events[-1]["error"]["code"] == 503
    array = httpx.post(f"{mock_server.url}{path}", json=body, headers=HEADERS).json()
    assert "error" not in array[-1]          # (an array stream has no mid-stream event)
