"""Found by review (fail-open paths): a policy that raises `asyncio.CancelledError` (it
awaited a call out that a deadline of its own cancelled) is taken by the servicer for Envoy
closing the stream: `Process` returns normally, gRPC ends the stream with status OK, and
Envoy, for which an OK close means "processing complete", sends the request on (and the
reply back) unprocessed, whatever `failure_mode_allow` says. Any other exception from a
policy is a 500 (`x-test-boom` in tests/integration/test_body_modes.py)."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.harness import Gateway, Mock, add_route

pytestmark = pytest.mark.envoy

EMAIL = "jane.doe@example.org"
KEY_HASH = "0d66f29d0ea708b5cec2c4ae833decdd2b59f7614d7c03ba6296e5e87d9709ca"
GATEWAY_KEY = "gw-local-dev-key-DEV-ONLY"


def config() -> dict[str, Any]:
    def route(name: str, plugin: str) -> dict[str, Any]:
        return {"name": name, "provider": "openai", "guards": ["pii"],
                "auth": {"api_keys": True},
                "upstream_credential": {"env": "FAILOPEN_TEST_PROVIDER_KEY"},
                "plugins": [{"class": f"tests.failopen_plugins:{plugin}"}]}
    return {"server": {"max_request_body_bytes": 1048576, "grace_period_s": 1},
            "auth": {"api_keys": [{"id": "k", "subject": "k", "sha256": KEY_HASH}]},
            "guards": {"pii": {"detectors": ["email"], "action": "mask"}},
            "routes": [route("c-headers", "SlowLookupOnHeaders"),
                       route("c-body", "SlowLookupOnBody"),
                       route("c-reply", "SlowLookupOnReply"),
                       route("c-body-duplex", "SlowLookupOnBody")]}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    os.environ["FAILOPEN_TEST_PROVIDER_KEY"] = "sk-operator-secret-key"

    def adjust(doc: dict[str, Any]) -> None:
        for name in ("c-headers", "c-body", "c-reply"):
            add_route(doc, f"/{name}/", "openai", name)
        # agentgateway's modes (deploy/kubernetes/overlays/agentgateway/policies.yaml)
        add_route(doc, "/c-body-duplex/", "openai", "c-body-duplex", {
            "request_header_mode": "SEND", "response_header_mode": "SEND",
            "request_body_mode": "FULL_DUPLEX_STREAMED",
            "response_body_mode": "FULL_DUPLEX_STREAMED",
            "request_trailer_mode": "SEND", "response_trailer_mode": "SEND"})
    g = Gateway(tmp_path_factory.mktemp("cancelled"), config(), mock=mock, adjust=adjust)
    yield g
    g.close()


def chat(gw: Gateway, prefix: str, extra: dict[str, str]) -> tuple[httpx.Response, str]:
    rid = f"cancel-{uuid.uuid4().hex[:12]}"
    r = httpx.post(f"{gw.url}/{prefix}/v1/chat/completions", timeout=30, json={
        "model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"mail {EMAIL}"}]},
        headers={"authorization": f"Bearer {GATEWAY_KEY}", "x-request-id": rid,
                 "x-mock-reply": "ok", **extra})
    return r, rid


def upstream(gw: Gateway, rid: str) -> dict[str, Any] | None:
    last = gw.mock.last()
    if last is None or last["headers"].get("x-request-id") != rid:
        return None
    return last


def test_control_the_policies_run(gw: Gateway) -> None:
    r, rid = chat(gw, "c-body", {})
    assert r.status_code == 200
    seen = upstream(gw, rid)
    assert seen is not None and EMAIL not in seen["body"]


@pytest.mark.parametrize("prefix", ["c-headers", "c-body", "c-body-duplex"])
def test_a_policy_raising_cancelled_error_refuses_the_request(gw: Gateway,
                                                              prefix: str) -> None:
    r, rid = chat(gw, prefix, {"x-test-slow-lookup": "1"})
    seen = upstream(gw, rid)
    # what goes upstream when it fails open: the prompt unmasked; on the headers path also
    # the client's gateway key, and no injected provider key
    leaked = seen is not None and (EMAIL in seen["body"] or GATEWAY_KEY in json.dumps(
        seen["headers"]))
    assert not leaked, f"went upstream unprocessed: {seen and seen['headers']}"
    assert r.status_code == 500, (r.status_code, r.text[:300])


@pytest.mark.parametrize("stream", [False, True])
def test_a_reply_policy_raising_cancelled_error_does_not_pass_the_reply(gw: Gateway,
                                                                        stream: bool) -> None:
    """The route's PII guard masks replies; the plugin's reply check calls out per chunk.
    The bytes are read as they arrive and looked at whatever ends the stream (a reset
    included: found by a review of the tests, an earlier version returned on any error and
    never looked at what came before it)."""
    got = b""
    with httpx.Client(timeout=30) as client:
        try:
            with client.stream("POST", f"{gw.url}/c-reply/v1/chat/completions", json={
                    "model": "gpt-4o-mini", "stream": stream,
                    "messages": [{"role": "user", "content": "hi"}]},
                    headers={"authorization": f"Bearer {GATEWAY_KEY}",
                             "x-mock-reply": f"write to {EMAIL} today",
                             "x-test-slow-reply": "1"}) as r:
                for part in r.iter_raw():
                    got += part
        except httpx.HTTPError:
            pass                                   # a reset: what came before it counts
    assert EMAIL.encode() not in got and EMAIL.upper().encode() not in got, got[:400]
