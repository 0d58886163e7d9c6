"""Request bodies in FULL_DUPLEX_STREAMED (agentgateway's only streaming mode, and a choice
on any Envoy route) through the real Envoy: the request headers' reply waits for the body's
verdict, so the provider gets nothing, the injected credential included, for a request a
body policy refuses; and what a body policy sets on the request (the unified front's path,
backend and credential) reaches the upstream, where it used to be dropped."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import Gateway, Mock
from tests.integration.test_front import (
    BACKEND_KEYS,
    CASES,
    KEY,
    KEY_HEADER,
    MSG,
    TEXT,
    client,
    front_config,
)

DUPLEX = {"request_header_mode": "SEND", "response_header_mode": "SEND",
          "request_body_mode": "FULL_DUPLEX_STREAMED",
          "response_body_mode": "FULL_DUPLEX_STREAMED",
          "request_trailer_mode": "SEND", "response_trailer_mode": "SEND"}


def _all_duplex(node: Any) -> None:
    """Every ext_proc processing mode in the Envoy config (the filter's and each route's
    override) made FULL_DUPLEX_STREAMED."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "processing_mode" and isinstance(value, dict):
                value.clear()
                value.update(DUPLEX)
            else:
                _all_duplex(value)
    elif isinstance(node, list):
        for item in node:
            _all_duplex(item)


OPENAI_KEY = "sk-openai-duplex-upstream"


def config(base: Path) -> dict[str, Any]:
    """The unified front, and an OpenAI route that injects its key with the request's
    headers and refuses a prompt with an e-mail address."""
    doc = front_config(base)
    (base / "keys" / "openai-route.key").write_text(OPENAI_KEY + "\n")
    doc["guards"]["no-email"] = {"detectors": ["email"], "action": "reject"}
    doc["routes"].append({"name": "openai", "provider": "openai",
                          "auth": {"api_keys": True}, "guards": ["no-email"],
                          "upstream_credential": {"file": "keys/openai-route.key"}})
    return doc


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    base = tmp_path_factory.mktemp("duplex-front")
    g = Gateway(base, config(base), mock=mock, adjust=_all_duplex)
    yield g
    g.close()


def upstream_requests(gw: Gateway) -> int:
    """Requests Envoy has started to the providers (every cluster but the processor's)."""
    text = httpx.get(f"http://127.0.0.1:{gw.envoy.admin_port}/stats",
                     params={"filter": r"upstream_rq_total$"}, timeout=5).text
    return sum(int(m[2]) for m in re.finditer(r"^cluster\.([^:]+)\.upstream_rq_total: (\d+)$",
                                               text, re.M) if "extproc" not in m[1])


def test_the_filter_is_full_duplex(gw: Gateway) -> None:
    config = gw.envoy.config_path.read_text()
    assert "FULL_DUPLEX_STREAMED" in config and "BUFFERED" not in config


@pytest.mark.parametrize("model", ["claude-sonnet-4-5", "gemini-2.5-flash", "gpt-4o-mini"])
def test_the_front_routes_and_keys_a_full_duplex_request(gw: Gateway, model: str) -> None:
    """The backend, its path and its key are set while the body is read: they go in the
    held headers reply (a FULL_DUPLEX_STREAMED body reply carries no header)."""
    backend, path, stream_path = CASES[model]
    r = f"duplex-{uuid.uuid4().hex[:12]}"
    reply = client(gw, r).chat.completions.create(model=model, messages=MSG,
                                                  max_completion_tokens=50)
    assert reply.choices[0].message.content == TEXT
    last = gw.mock.last()
    assert last is not None and last["path"] == path
    name, fmt = KEY_HEADER[backend]
    assert last["headers"][name] == fmt.format(BACKEND_KEYS[backend])
    assert KEY not in json.dumps(last["headers"])
    assert gw.access_log(r)["route"] == f"unified-{backend}"
    chunks = list(client(gw, r + "s").chat.completions.create(
        model=model, messages=MSG, stream=True, stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == TEXT
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert gw.mock.last()["path"] == stream_path


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"model": "no-such-model", "messages": MSG}, 404, "model_not_found"),
    (b'{"model": "claude-sonnet-4-5", "messages": [', 400, None),
    ({"messages": MSG}, 400, "missing_model"),
])
def test_a_refused_body_never_reaches_the_provider(gw: Gateway, body: Any, status: int,
                                                   code: str | None) -> None:
    """Refused on its body: the client gets the error in OpenAI's format, and Envoy never
    opened a request upstream (before, the headers, with the key the gateway injects, went
    upstream at once and the request was reset there)."""
    before = upstream_requests(gw)
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    # streamed in pieces, as a client uploading a large prompt sends it
    pieces = [content[i:i + 7] for i in range(0, len(content), 7)]
    r = httpx.post(f"{gw.url}/v1/chat/completions", content=iter(pieces), timeout=30,
                   headers={"authorization": f"Bearer {KEY}",
                            "content-type": "application/json"})
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["message"]
    if code is not None:
        assert err["code"] == code, err
    assert upstream_requests(gw) == before
    # an accepted request in the same minute is counted: the counter is live
    client(gw, f"duplex-{uuid.uuid4().hex[:12]}").chat.completions.create(
        model="claude-sonnet-4-5", messages=MSG, max_completion_tokens=20)
    assert upstream_requests(gw) == before + 1


def slow_body(doc: dict[str, Any]) -> Iterator[bytes]:
    """The body in two parts 0.3 s apart: time for Envoy to have sent the request upstream,
    were its headers answered before the body's verdict."""
    data = json.dumps(doc).encode()
    yield data[:20]
    time.sleep(0.3)
    yield data[20:]


def test_the_key_goes_upstream_only_with_a_body_the_guards_passed(gw: Gateway) -> None:
    """The route injects the provider key with the headers; its guard refuses the prompt.
    Refused: no request went upstream (before, the headers with the key went at once, and
    the provider saw an authenticated request reset mid-body). Passed: the key is there."""
    headers = {"authorization": f"Bearer {KEY}", "content-type": "application/json",
               "x-mock-reply": TEXT}
    url = f"{gw.url}/openai/v1/chat/completions"
    before = upstream_requests(gw)
    bad = {"model": "gpt-4o-mini", "messages": [
        {"role": "user", "content": "mail me at jane.roe@example.org"}]}
    r = httpx.post(url, content=slow_body(bad), headers=headers, timeout=30)
    assert r.status_code == 400, r.text
    assert "email" in r.json()["error"]["message"].lower()
    assert upstream_requests(gw) == before
    good = {"model": "gpt-4o-mini", "messages": MSG}
    r = httpx.post(url, content=slow_body(good), headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == TEXT
    assert upstream_requests(gw) == before + 1
    last = gw.mock.last()
    assert last is not None and last["headers"]["authorization"] == f"Bearer {OPENAI_KEY}"
    assert json.loads(last["body"])["messages"] == MSG
