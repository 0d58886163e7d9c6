"""A query holding a raw byte that is not UTF-8 (found by review; now a 400): Envoy's HTTP/1.1
codec refuses such a request line, and `normalize_path` percent-encodes raw bytes in the
path, but over HTTP/2 a raw byte in the query reaches the processor as it came.
`reading._decode` then calls `unquote_to_bytes` on a str holding the surrogate
`read_headers` kept the byte as, which raises UnicodeEncodeError: every such request, on
every route and before any authentication, is a 500 "internal error in the gateway" with an
error-level traceback in the server's log, where the promise is a clear 400 in the client's
format (as `?a=%ff`, the same byte percent-encoded, gets)."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from extproc.auth.apikeys import hash_key
from tests.harness import Gateway, Mock

pytestmark = pytest.mark.envoy

KEY = "gw-raw-query-key"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
GENERATE = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
CURL = shutil.which("curl")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    config = {"auth": {"api_keys": [{"id": "k", "sha256": hash_key(KEY), "subject": "a"}]},
              "routes": [{"name": p, "provider": p, "auth": {"api_keys": True}}
                         for p in ("openai", "gemini")]}
    gateway = Gateway(tmp_path_factory.mktemp("raw-query"), config, mock=mock)
    yield gateway
    gateway.close()


def h2_post(gw: Gateway, target: bytes, body: dict, auth: bool = True) -> tuple[int, str]:
    """POST over HTTP/2 (prior knowledge) with the target's bytes as they are."""
    headers = ["-H", "content-type: application/json"]
    if auth:
        headers += ["-H", f"authorization: Bearer {KEY}"]
    r = subprocess.run([CURL, "-sS", "--http2-prior-knowledge", *headers,
                        "-d", json.dumps(body), "-w", "\n%{http_code}",
                        gw.url.encode() + target], capture_output=True, timeout=60)
    out, _, code = r.stdout.rpartition(b"\n")
    return int(code), out.decode("utf-8", "replace")


@pytest.mark.skipif(CURL is None, reason="needs curl for HTTP/2")
@pytest.mark.parametrize(("target", "body", "auth"), [
    (b"/openai/v1/chat/completions?a=\xff", CHAT, True),
    (b"/openai/v1/chat/completions?\xff=1", CHAT, False),     # before authentication too
    (b"/gemini/v1beta/models/gemini-2.5-flash:generateContent?alt=s\xffe", GENERATE, True),
])
def test_a_raw_non_utf8_byte_in_the_query_is_a_clear_400(
        gw: Gateway, target: bytes, body: dict, auth: bool) -> None:
    httpx_reset = subprocess.run([CURL, "-sS", gw.mock.url + "/reset"], capture_output=True)
    assert httpx_reset.returncode == 0
    status, text = h2_post(gw, target, body, auth)
    assert status == 400, text
    assert "internal error" not in text
    last = gw.mock.last()
    assert last is None or last["path"] == "/reset"     # nothing went upstream
    assert gw.server is not None
    assert "UnicodeEncodeError" not in gw.server.proc.log()


@pytest.mark.skipif(CURL is None, reason="needs curl for HTTP/2")
def test_the_same_byte_percent_encoded_is_a_clear_400(gw: Gateway) -> None:
    status, text = h2_post(gw, b"/openai/v1/chat/completions?a=%ff", CHAT)
    assert status == 400, text
    assert "not valid UTF-8" in json.loads(text)["error"]["message"]
