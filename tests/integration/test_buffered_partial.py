"""BUFFERED_PARTIAL (a mesh's `BufferedPartial`) through a real Envoy whose buffer is small.

Envoy sends the processor the part of a body that fits its buffer (end_of_stream false) and
the rest on unseen. A policy that reads a body must never take that part for the whole: a
request body past the buffer is refused (413) before anything goes upstream, a reply past it
is refused (502) before its headers go out; bodies that fit are read whole, guarded and
delivered. Found by a review: the servicer's per-chunk path (`Exchange.response_chunk`) read
a streamed reply's buffered part as the whole stream, and the rest reached the client unread.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.harness import Gateway, Mock, add_route
from tests.integration.test_duplex_request import upstream_requests
from tests.integration.test_unshown import KEY, PROMPT, mode, server_config

BUFFER = 16384
EMAIL = "bob.smith@example.com"
#: a prompt that fits Envoy's buffer, echoed back in a reply past it (streamed: one event a
#: word; whole: four choices), the address at its end
LONG = "word " * 2500 + f"write to {EMAIL} today"


def _adjust(doc: dict[str, Any]) -> None:
    listener = doc["static_resources"]["listeners"][0]
    listener["per_connection_buffer_limit_bytes"] = BUFFER   # a mesh's buffer, made small
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    hcm["route_config"]["virtual_hosts"][0]["request_body_buffer_limit"] = BUFFER
    add_route(doc, "/ref/", "openai", "ref", mode("BUFFERED_PARTIAL", "BUFFERED_PARTIAL"))


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    cfg = server_config()
    cfg["guards"]["pii"]["apply_to"] = ["response"]  # the reply guard alone masks the echo
    g = Gateway(tmp_path_factory.mktemp("partial"), cfg, mock=mock, adjust=_adjust)
    yield g
    g.close()


def _post(gw: Gateway, content: str, stream: bool, n: int = 1,
          **mock: str) -> httpx.Response:
    body = {"model": "gpt-4o-mini", "stream": stream, "n": n,
            "messages": [{"role": "user", "content": content}]}
    return httpx.post(f"{gw.url}/ref/v1/chat/completions", json=body, timeout=30,
                      headers={"x-mock-reply": "echo", **mock, **KEY})


def test_the_route_is_partly_buffered(gw: Gateway) -> None:
    assert "BUFFERED_PARTIAL" in gw.envoy.config_path.read_text()


@pytest.mark.parametrize("stream", [True, False])
def test_a_reply_past_the_buffer_is_refused_not_delivered_unread(gw: Gateway,
                                                                 stream: bool) -> None:
    # the request fits, its reply not; written in pieces, so Envoy's buffer fills before the
    # reply ends (a reply that arrives whole in one read is sent whole, and read whole)
    r = _post(gw, LONG, stream, 1 if stream else 4, **{"x-mock-chunk-bytes": "4096",
                                                       "x-mock-delay-ms": "2"})
    assert r.status_code == 502, r.text[:300]
    assert "buffers" in r.json()["error"]["message"]
    assert EMAIL not in r.text


@pytest.mark.parametrize("stream", [True, False])
def test_a_reply_that_fits_is_read_whole_and_masked(gw: Gateway, stream: bool) -> None:
    r = _post(gw, f"write to {EMAIL} today", stream)
    assert r.status_code == 200, r.text[:300]
    if stream:
        assert r.text.rstrip().endswith("data: [DONE]")
        events = [json.loads(line[6:]) for line in r.text.splitlines()
                  if line.startswith("data: {")]
        text = "".join(c["delta"].get("content") or "" for e in events
                       for c in e["choices"])
    else:
        text = r.json()["choices"][0]["message"]["content"]
    assert text.startswith("write to ") and text.endswith(" today") and EMAIL not in text


def test_a_request_past_the_buffer_is_refused_before_it_goes_upstream(gw: Gateway) -> None:
    before = upstream_requests(gw)
    r = _post(gw, "word " * 40000 + PROMPT, False)
    assert r.status_code == 413, r.text[:300]
    assert "buffers" in r.json()["error"]["message"]
    assert upstream_requests(gw) == before
