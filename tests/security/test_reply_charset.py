"""A reply's declared charset, through a real Envoy (found by review): the reply guards read
a reply's bytes as UTF-8, while httpx's `response.text` (google-genai's whole replies, every
SDK's error messages) decodes them by the charset the Content-Type names. On a route whose
guards read replies, a reply naming another charset reaches the client relabelled
`charset=utf-8`, so it reads what the guards read; one naming UTF-8, or none, is left as
it is."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.harness import Gateway, Mock

pytestmark = pytest.mark.envoy

EMAIL = "john.doe@example.com"
HIDDEN = "write to john.doe+AEA-example.com"   # '@' in UTF-7


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    config = {"guards": {"pii": {"detectors": ["email"], "action": "mask"}},
              "routes": [{"name": p, "provider": p, "guards": ["pii"]}
                         for p in ("openai", "gemini")]}
    gateway = Gateway(tmp_path_factory.mktemp("reply-charset"), config, mock=mock)
    yield gateway
    gateway.close()


def _post(gw: Gateway, route: str, stream: bool, **mock: str) -> httpx.Response:
    if route == "openai":
        body = {"model": "gpt-4o-mini", "stream": stream,
                "messages": [{"role": "user", "content": "hi"}]}
        path = "/openai/v1/chat/completions"
    else:
        body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
        path = "/gemini/v1beta/models/gemini-2.5-flash:" + (
            "streamGenerateContent?alt=sse" if stream else "generateContent")
    return httpx.post(f"{gw.url}{path}", json=body, timeout=30,
                      headers={"x-mock-reply": HIDDEN, **mock})


@pytest.mark.parametrize("route", ["openai", "gemini"])
@pytest.mark.parametrize("stream", [False, True])
def test_a_reply_in_another_charset_is_read_as_the_guards_read_it(
        gw: Gateway, route: str, stream: bool) -> None:
    r = _post(gw, route, stream, **{"x-mock-charset": "utf-7"})
    assert r.status_code == 200, r.text[:300]
    assert r.headers["content-type"].endswith("; charset=utf-8"), r.headers
    assert EMAIL not in r.text          # httpx decodes by the label: as the guards read it
    assert "john.doe+AEA-example.com" in r.text


@pytest.mark.parametrize("charset", [None, "utf-8"])
def test_a_utf8_reply_keeps_its_label(gw: Gateway, charset: str | None) -> None:
    r = _post(gw, "openai", False, **({"x-mock-charset": charset} if charset else {}))
    assert r.status_code == 200, r.text[:300]
    want = "application/json" + (f"; charset={charset}" if charset else "")
    assert r.headers["content-type"] == want


def test_an_error_reply_in_another_charset_is_relabelled(gw: Gateway) -> None:
    r = _post(gw, "openai", False, **{"x-mock-status": "400", "x-mock-charset": "utf-7"})
    assert r.status_code == 400, r.text[:300]
    assert r.headers["content-type"] == "application/json; charset=utf-8"


def test_a_gemini_reply_of_another_2xx_is_refused(gw: Gateway) -> None:
    r = _post(gw, "gemini", False, **{"x-mock-status": "201"})
    assert r.status_code == 502, r.text[:300]
    assert "reads as an error" in r.json()["error"]["message"]
