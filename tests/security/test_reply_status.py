"""Replies with a status other than 200, through the real Envoy (found by the reply audit):

1. The reply guards, the usage reading and the delivered-output count read a reply only when
   its status was exactly 200, while settlement counted any 2xx as a success. An upstream
   answering 201 or 203 sent its stream and its whole replies past every reply guard (a
   reject guard's secret, a mask guard's address, in clear), and the budget was charged the
   prompt estimate alone.
2. An error reply's body was never read: its message can quote any text (a prompt echoed
   back, what a broken or hostile upstream put there).
3. Nor was an error inside a 200 stream (OpenAI's error chunk, Anthropic's `event: error`):
   its message went out as it came (`guards.side_texts`).

The mock sends its normal reply with a 2xx of `x-mock-status`, and an error whose message is
`x-mock-reply` with a 4xx or 5xx one.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.harness import Gateway, Mock, add_route

pytestmark = pytest.mark.envoy

EMAIL = "john.doe@example.com"
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
PATH = "/st-openai/v1/chat/completions"


def config() -> dict[str, Any]:
    guards = {"keys": {"detectors": ["secrets"], "action": "reject"},
              "pii": {"detectors": ["email"], "action": "mask"}}
    limits = [{"name": "tokens", "key": ["header:x-test-client"],
               "tokens": [{"limit": 1_000_000, "per": "30d"}]}]
    return {"guards": guards,
            "routes": [{"name": "st-openai", "provider": "openai", "guards": ["keys", "pii"],
                        "rate_limits": limits},
                       {"name": "st-anthropic", "provider": "anthropic",
                        "guards": ["keys", "pii"]}]}


def adjust(doc: dict[str, Any]) -> None:
    add_route(doc, "/st-openai/", "openai", "st-openai")
    add_route(doc, "/st-anthropic/", "anthropic", "st-anthropic")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    gateway = Gateway(tmp_path_factory.mktemp("status"), config(), mock=mock, adjust=adjust)
    yield gateway
    gateway.close()


def post(gw: Gateway, status: int, reply: str, stream: bool, client: str | None = None,
         path: str = PATH) -> httpx.Response:
    body: dict[str, Any] = {"model": "gpt-4o-mini", "stream": stream, "max_tokens": 500,
                            "messages": [{"role": "user", "content": "hi"}]}
    headers = {"x-mock-status": str(status), "x-mock-reply": reply,
               "x-mock-chunk-bytes": "7", "x-test-client": client or uuid.uuid4().hex}
    if path != PATH:
        body["model"] = "claude-sonnet-4-5"
        headers["anthropic-version"] = "2023-06-01"
    return httpx.post(gw.url + path, json=body, headers=headers, timeout=30)


@pytest.mark.parametrize("status", [201, 203])
def test_a_2xx_stream_is_masked(gw: Gateway, status: int) -> None:
    r = post(gw, status, f"write to {EMAIL} today", stream=True)
    assert r.status_code == status
    assert EMAIL not in r.text and "<EMAIL>" in r.text, r.text


@pytest.mark.parametrize("status", [201, 203])
def test_a_2xx_whole_reply_is_guarded(gw: Gateway, status: int) -> None:
    r = post(gw, status, f"write to {EMAIL} today", stream=False)
    assert r.status_code == status
    assert r.json()["choices"][0]["message"]["content"] == "write to <EMAIL> today"
    refused = post(gw, status, f"the key is {AWS_KEY}", stream=False)
    assert refused.status_code == 400 and AWS_KEY not in refused.text
    assert "guard 'keys'" in refused.json()["error"]["message"]


def remaining(gw: Gateway, client: str) -> int:
    assert gw.server is not None
    gw.server.wait_idle()
    r = post(gw, 200, "ok", stream=False, client=client)
    assert r.status_code == 200, r.text
    return int(r.headers["x-ratelimit-remaining-tokens"])


@pytest.mark.parametrize("stream", [False, True])
def test_a_2xx_reply_is_charged_as_a_200_is(gw: Gateway, stream: bool) -> None:
    reply = " ".join(["word"] * 200)
    charged = {}
    for status in (200, 201):
        client = uuid.uuid4().hex
        before = remaining(gw, client)
        assert post(gw, status, reply, stream=stream, client=client).status_code == status
        charged[status] = before - remaining(gw, client)
    assert charged[201] == charged[200] > 150, charged


@pytest.mark.parametrize("path", [PATH, "/st-anthropic/v1/messages"])
def test_an_error_reply_is_masked(gw: Gateway, path: str) -> None:
    r = post(gw, 500, f"upstream saw {EMAIL}", stream=True, path=path)
    assert r.status_code == 500
    assert EMAIL not in r.text
    assert "upstream saw <EMAIL>" in json.dumps(r.json()), r.text


def test_an_error_reply_a_reject_guard_refuses_is_withheld(gw: Gateway) -> None:
    r = post(gw, 429, f"the key is {AWS_KEY}", stream=False)
    assert r.status_code == 429                       # the upstream's status, kept
    assert AWS_KEY not in r.text
    error = r.json()["error"]
    assert "withheld" in error["message"] and "guard 'keys'" in error["message"], error


def test_an_error_reply_without_a_match_passes_as_it_came(gw: Gateway) -> None:
    r = post(gw, 503, "the model is overloaded", stream=True)
    assert r.status_code == 503
    assert r.json()["error"]["message"] == "the model is overloaded"


def _midstream(gw: Gateway, path: str, message: str) -> httpx.Response:
    anthropic = path.startswith("/st-anthropic")
    body: dict[str, Any] = {"model": "claude-sonnet-4-5" if anthropic else "gpt-4o-mini",
                            "stream": True, "max_tokens": 500,
                            "messages": [{"role": "user", "content": "hi"}]}
    headers = {"x-mock-reply": "one two three", "x-mock-error-after": "2",
               "x-mock-error-message": message, "x-mock-chunk-bytes": "5",
               "x-test-client": uuid.uuid4().hex}
    if anthropic:
        headers["anthropic-version"] = "2023-06-01"
    return httpx.post(gw.url + path, json=body, headers=headers, timeout=30)


@pytest.mark.parametrize("path", [PATH, "/st-anthropic/v1/messages"])
def test_a_midstream_error_event_is_read(gw: Gateway, path: str) -> None:
    """A stream's own error event (OpenAI's error chunk, Anthropic's `event: error`),
    after a 200, went out unread: its message is masked, and a reject guard's match in it
    ends the stream refused, as in any other text of the reply."""
    r = _midstream(gw, path, f"overloaded while writing to {EMAIL}")
    assert r.status_code == 200
    assert EMAIL not in r.text and "<EMAIL>" in r.text and "overloaded" in r.text, r.text
    r = _midstream(gw, path, f"overloaded, key {AWS_KEY}")
    assert r.status_code == 200
    assert AWS_KEY not in r.text and "aws access key" in r.text, r.text


def test_a_midstream_error_message_is_not_logged(gw: Gateway) -> None:
    """The error event's message often quotes the prompt: the client gets it masked, and
    the access logs (the server's and Envoy's metadata) name the error without its text
    (found by the operations audit: both logs held the address and the key)."""
    from extproc.llm.policy import WITHHELD_ERROR, loggable_error
    for message in (f"overloaded while writing to {EMAIL}", f"key {AWS_KEY}"):
        rid = uuid.uuid4().hex
        body: dict[str, Any] = {"model": "gpt-4o-mini", "stream": True, "max_tokens": 50,
                                "messages": [{"role": "user", "content": "hi"}]}
        r = httpx.post(gw.url + PATH, json=body, timeout=30, headers={
            "x-mock-reply": "one two", "x-mock-error-after": "2", "x-request-id": rid,
            "x-mock-error-message": message, "x-test-client": uuid.uuid4().hex})
        assert r.status_code == 200
        envoy = gw.access_log(rid)
        server = gw.server_access_line(rid)
        assert envoy["extproc"]["upstream_error"] == server["upstream_error"] == WITHHELD_ERROR
        for line in (json.dumps(envoy), json.dumps(server)):
            assert EMAIL not in line and AWS_KEY not in line
    assert loggable_error("overloaded_error") == "overloaded_error"
    assert loggable_error("INTERNAL") == "INTERNAL"
