"""A long, slow stream against a small output allowance, through the real Envoy: it ends at
the allowance in the provider's own format, the official SDK reads it as a normal length
stop (no exception), and the upstream connection is closed before the provider finished."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator

import anthropic
import google.oauth2.credentials
import httpx
import openai
import pytest
from google import genai
from google.genai import types

from tests.harness import Gateway, Mock

TEXT = " ".join(f"word{i}" for i in range(60))
SLOW = {"x-mock-reply": TEXT, "x-mock-delay-ms": "50", "x-test-allowance": "5"}
CUT = {"class": "tests.plugins:CutAtAllowance"}
MSG = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    routes = [{"name": n, "provider": n, "plugins": [CUT]}
              for n in ("openai", "anthropic", "gemini", "vertex")]
    g = Gateway(tmp_path_factory.mktemp("cut"), {"routes": routes}, mock=mock)
    yield g
    g.close()


def mock_lines(gw: Gateway, path: str) -> list[str]:
    return [json.loads(ln)["msg"] for ln in gw.mock.proc.log().splitlines()
            if "POST " in ln and path in ln]


def upstream_closed(gw: Gateway, path: str, before: int, seconds: float = 10) -> bool:
    """Whether the mock saw the client side go away while it wrote its reply to `path`
    (its log line ends with "aborted"), once a line after the `before` first is written."""
    deadline = time.monotonic() + seconds
    while True:
        lines = mock_lines(gw, path)
        if len(lines) > before:
            return lines[before].endswith(" aborted")
        if time.monotonic() > deadline:
            raise AssertionError(f"no mock log line for {path}")
        time.sleep(0.05)


def test_openai_sdk_reads_a_length_stop(gw: Gateway) -> None:
    before = len(mock_lines(gw, "/v1/chat/completions"))
    client = openai.OpenAI(base_url=f"{gw.url}/openai/v1", api_key="k", max_retries=0,
                           default_headers=SLOW)
    started = time.monotonic()
    chunks = list(client.chat.completions.create(
        model="gpt-4o-mini", messages=MSG, stream=True,
        stream_options={"include_usage": True}))
    elapsed = time.monotonic() - started
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert 0 < len(text.split()) < 10 and TEXT.startswith(text)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "length" and finishes.count("length") == 1
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5
    assert elapsed < 2     # 60 words at 50 ms each would take 3 s
    assert upstream_closed(gw, "/v1/chat/completions", before)


def test_anthropic_sdk_reads_max_tokens(gw: Gateway) -> None:
    before = len(mock_lines(gw, "/v1/messages"))
    client = anthropic.Anthropic(base_url=f"{gw.url}/anthropic", api_key="k", max_retries=0,
                                 default_headers=SLOW)
    with client.messages.stream(model="claude-sonnet-5-5", max_tokens=500,
                                messages=MSG) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert final.stop_reason == "max_tokens"
    assert final.usage.output_tokens == 5
    assert 0 < len(text.split()) <= 5 and TEXT.startswith(text)
    assert upstream_closed(gw, "/v1/messages", before)


@pytest.mark.parametrize("vertex", [False, True])
def test_google_sdk_reads_max_tokens(gw: Gateway, vertex: bool) -> None:
    before = len(mock_lines(gw, ":streamGenerateContent"))
    if vertex:
        client = genai.Client(
            vertexai=True, project="p", location="us-central1",
            credentials=google.oauth2.credentials.Credentials(token="t"),
            http_options=types.HttpOptions(base_url=f"{gw.url}/vertex", headers=SLOW))
    else:
        client = genai.Client(api_key="k", http_options=types.HttpOptions(
            base_url=f"{gw.url}/gemini", headers=SLOW))
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash",
                                                        contents="hi"))
    text = "".join(c.text or "" for c in chunks)
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert chunks[-1].usage_metadata.candidates_token_count == 5
    assert 0 < len(text.split()) <= 5 and TEXT.startswith(text)
    assert upstream_closed(gw, ":streamGenerateContent", before)


def test_http11_response_ends_cleanly_with_metadata(gw: Gateway) -> None:
    """HTTP/1.1: the chunked terminator (httpx reads the body to its end, no protocol
    error); the access log has the cut and the settled usage."""
    before = len(mock_lines(gw, "/v1/chat/completions"))
    rid = "cut-http11-1"
    r = httpx.post(f"{gw.url}/openai/v1/chat/completions", timeout=10,
                   headers={**SLOW, "x-request-id": rid},
                   json={"model": "m", "messages": MSG, "stream": True})
    assert r.status_code == 200 and r.content.endswith(b"data: [DONE]\n\n")
    assert r.content.count(b'"finish_reason":"length"') == 1
    md = gw.access_log(rid)["extproc"]
    assert md["cut"] == "budget" and md["output_allowance"] == 5
    assert upstream_closed(gw, "/v1/chat/completions", before)


def test_http2_response_ends_with_end_stream(gw: Gateway) -> None:
    """HTTP/2 (prior knowledge): curl sees the stream end normally (exit 0)."""
    before = len(mock_lines(gw, "/v1/chat/completions"))
    args = ["curl", "-sS", "--http2-prior-knowledge", "--max-time", "10",
            "-H", "content-type: application/json"]
    for k, v in SLOW.items():
        args += ["-H", f"{k}: {v}"]
    done = subprocess.run([*args, f"{gw.url}/openai/v1/chat/completions", "-d",
                           json.dumps({"model": "m", "messages": MSG, "stream": True})],
                          capture_output=True, timeout=20)
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith(b"data: [DONE]\n\n")
    assert upstream_closed(gw, "/v1/chat/completions", before)


def test_gemini_json_array_stays_valid(gw: Gateway) -> None:
    r = httpx.post(f"{gw.url}/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent",
                   headers=SLOW, json={"contents": [{"parts": [{"text": "hi"}]}]},
                   timeout=10)
    assert r.status_code == 200
    events = re.findall(rb"data: (.*)\r\n\r\n", r.content)   # rewritten to SSE by default
    assert b'"MAX_TOKENS"' in events[-1]


def test_without_an_allowance_nothing_is_cut(gw: Gateway) -> None:
    before = len(mock_lines(gw, "/v1/chat/completions"))
    headers = {k: v for k, v in SLOW.items() if k != "x-test-allowance"}
    client = openai.OpenAI(base_url=f"{gw.url}/openai/v1", api_key="k", max_retries=0,
                           default_headers=headers)
    chunks = list(client.chat.completions.create(model="m", messages=MSG, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == TEXT
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert not upstream_closed(gw, "/v1/chat/completions", before)
