"""The query the gateway checks is the query the provider gets, through the real Envoy (found
by the deny audit). The canonical reading split the query on `&` only, while the credential
strip (run on every route with `auth:` or an `upstream_credential`) split it on `&` and `;`
and dropped the key piece: `?key=x;$ct=...` was one harmless parameter `key` to the checks
and reached Google as `?$ct=...`, so every query refusal of docs/security.md (Google's `$ct`,
`$httpMethod`, an `alt` other than sse/json, a repeated `alt`, Azure's repeated
`api-version`) could be sidestepped. Servers disagree on `;` (a separator to some, part of a
value to others), so a raw `;` in the query is refused with a clear 400; `%3B` is a `;` in
a value to every server and passes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from extproc.auth.apikeys import hash_key
from tests.harness import Gateway, Mock

pytestmark = pytest.mark.envoy

KEY = "gw-query-key"
GEMINI = "/gemini/v1beta/models/gemini-2.5-flash:generateContent"
AZURE = "/azure/openai/deployments/d/chat/completions"
GEMINI_BODY = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
AZURE_BODY = {"messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    config = {"auth": {"api_keys": [{"id": "k", "sha256": hash_key(KEY), "subject": "a"}]},
              "guards": {"pii": {"detectors": ["email"], "action": "mask"}},
              "routes": [{"name": p, "provider": p, "auth": {"api_keys": True},
                          "guards": ["pii"]} for p in ("gemini", "azure")]}
    gateway = Gateway(tmp_path_factory.mktemp("query"), config, mock=mock)
    yield gateway
    gateway.close()


def send(gw: Gateway, path: str, query: str) -> tuple[httpx.Response, str | None]:
    """The reply, and the raw path the provider got (None if nothing reached it)."""
    httpx.get(gw.mock.url + "/reset")    # recorded as the mock's last request
    gemini = path == GEMINI
    r = httpx.post(gw.url + path + query, json=GEMINI_BODY if gemini else AZURE_BODY,
                   timeout=30, headers={"x-goog-api-key" if gemini else "api-key": KEY})
    last: dict[str, Any] | None = gw.mock.last()
    return r, (last["raw_path"] if last is not None and last["path"] != "/reset" else None)


def refused(r: httpx.Response, upstream: str | None) -> None:
    assert r.status_code == 400, r.text
    assert upstream is None
    assert KEY not in r.text


@pytest.mark.parametrize(("plain", "smuggled"), [
    ("?$ct=application/x-protobuf", "?key=x;$ct=application/x-protobuf"),
    ("?$httpMethod=GET", "?key=x;$httpMethod=GET"),
    ("?alt=media", "?key=x;alt=media"),
    ("?alt=sse&alt=json", "?key=x;alt=sse&alt=json"),
    ("?alt=sse&alt=json", "?alt=sse&key=x;alt=json"),
])
def test_a_refused_query_is_refused_behind_a_key_piece(gw: Gateway, plain: str,
                                                       smuggled: str) -> None:
    refused(*send(gw, GEMINI, plain))                 # refused, as documented
    r, upstream = send(gw, GEMINI, smuggled)
    refused(r, upstream)
    error = r.json()["error"]                          # Google's format, saying why
    assert error["code"] == 400 and "';'" in error["message"], error


def test_a_repeated_api_version_is_refused_behind_a_key_piece(gw: Gateway) -> None:
    refused(*send(gw, AZURE, "?api-version=2024-10-21&api-version=2025-01-01"))
    r, upstream = send(gw, AZURE, "?api_key=x;api-version=2024-10-21&api-version=2025-01-01")
    refused(r, upstream)
    assert "';'" in r.json()["error"]["message"]


def test_a_semicolon_anywhere_in_the_query_is_refused(gw: Gateway) -> None:
    for query in ("?alt=sse;foo=1", "?foo=1;bar", "?key=" + KEY + ";x"):
        refused(*send(gw, GEMINI, query))


def test_an_encoded_semicolon_passes_as_part_of_a_value(gw: Gateway) -> None:
    r, upstream = send(gw, GEMINI, "?alt=json&note=a%3Bb&key=x")
    assert r.status_code == 200, r.text
    assert upstream == GEMINI.removeprefix("/gemini") + "?alt=json&note=a%3Bb"


@pytest.mark.parametrize("query", ["?fields=candidates", "?%24fields=candidates",
                                   "?$fields=candidates", "?callback=f", "?$callback=f"])
def test_a_field_mask_or_jsonp_is_refused(gw: Gateway, query: str) -> None:
    """Google's field mask keeps only the fields it names: `fields=candidates` drops
    `usageMetadata`, and the budgets would settle a reply of thousands of tokens on the
    prompt estimate alone (found by the body audit). JSONP wraps the reply in code no
    reader reads."""
    r, upstream = send(gw, GEMINI, query)
    refused(r, upstream)
    assert r.json()["error"]["code"] == 400


@pytest.mark.parametrize("query", ["?userProject=victim", "?%24userProject=victim",
                                   "?quotaUser=someone", "?$quotaUser=someone",
                                   "?userIp=10.0.0.1", "?UserProject=victim"])
def test_the_account_a_key_bills_is_not_the_clients_to_choose(gw: Gateway, query: str) -> None:
    """Google's `userProject` picks the project the operator's credential bills, and
    `quotaUser` (and the older `userIp`) whose quota it charges (found by the auth audit):
    the operator's choice, as the `x-goog-user-project` header the gateway strips is."""
    r, upstream = send(gw, GEMINI, query)
    refused(r, upstream)
    assert r.json()["error"]["code"] == 400


def test_a_field_mask_header_is_refused(gw: Gateway) -> None:
    httpx.get(gw.mock.url + "/reset")
    r = httpx.post(gw.url + GEMINI, json=GEMINI_BODY, timeout=30,
                   headers={"x-goog-api-key": KEY, "X-Goog-FieldMask": "candidates"})
    last = gw.mock.last()
    refused(r, last["raw_path"] if last is not None and last["path"] != "/reset" else None)
    assert "fieldmask" in r.json()["error"]["message"]


@pytest.mark.parametrize("query", ["?ALT=media", "?$Ct=application/x-protobuf",
                                   "?$HttpMethod=GET", "?Fields=candidates",
                                   "?alt=sse&ALT=json", "?fields%20=candidates",
                                   "?f%C4%B1elds=candidates", "?alt=sse&alt%20=json"])
def test_a_system_parameter_in_another_case_is_refused(gw: Gateway, query: str) -> None:
    """Whether Google reads parameter names case-insensitively (or trims them) is not
    documented: a system parameter in another case or with spaces (found by the path audit
    and its review; `\u0131`, a dotless i, upper-cases to I) is refused, not guessed at."""
    refused(*send(gw, GEMINI, query))


def test_a_parameter_repeated_in_another_case_is_refused(gw: Gateway) -> None:
    refused(*send(gw, AZURE, "?api-version=2024-10-21&Api-Version=2025-01-01"))


def test_the_provider_reads_the_body_as_json_whatever_it_was_labelled(gw: Gateway) -> None:
    """The gateway reads a body as JSON; a provider picks its parser by the content type
    (found by the Envoy audit: form data, `application/x-protobuf` went up as labelled). The
    provider gets `application/json`, the reading the policies made."""
    for ctype in ("application/x-protobuf", "application/x-www-form-urlencoded",
                  "text/plain", None):
        httpx.get(gw.mock.url + "/reset")
        headers = {"x-goog-api-key": KEY, "content-type": ctype or ""}
        if ctype is None:
            del headers["content-type"]
        r = httpx.post(gw.url + GEMINI, content=b'{"contents": [{"role": "user", "parts": '
                       b'[{"text": "hi"}]}]}', headers=headers, timeout=30)
        assert r.status_code == 200, (ctype, r.text)
        assert gw.mock.last()["headers"]["content-type"] == "application/json", ctype


def test_a_request_without_a_body_is_refused(gw: Gateway) -> None:
    """A body-less request on an endpoint that takes a JSON body went up unread (found by
    the Envoy audit: `Content-Length: 0`): no guard or budget saw it. Refused (400)."""
    r, upstream = send_empty(gw)
    assert r.status_code == 400 and "has no body" in r.json()["error"]["message"], r.text
    assert upstream is None


def send_empty(gw: Gateway) -> tuple[httpx.Response, str | None]:
    httpx.get(gw.mock.url + "/reset")
    r = httpx.post(gw.url + GEMINI, content=b"", timeout=30,
                   headers={"x-goog-api-key": KEY, "content-type": "application/json"})
    last: dict[str, Any] | None = gw.mock.last()
    return r, (last["raw_path"] if last is not None and last["path"] != "/reset" else None)


@pytest.mark.parametrize("query", ["?$access_token=tok-1", "?%24oauth_token=tok-1",
                                   "?$api_key=tok-1&alt=sse", "?subscription-key=tok-1",
                                   "?$apikey=tok-1"])
def test_every_dollar_spelling_of_a_query_credential_is_removed(gw: Gateway,
                                                                 query: str) -> None:
    """Google reads `$access_token`, `$oauth_token` and `$api_key` as it reads the bare
    names, and Azure API Management reads `subscription-key`: none reaches the provider
    (found by the red-team review: only `$key` was removed)."""
    r, upstream = send(gw, GEMINI, query)
    assert r.status_code == 200, r.text
    assert upstream is not None and "tok-1" not in upstream, upstream


def test_an_api_management_subscription_key_header_is_removed(gw: Gateway) -> None:
    httpx.get(gw.mock.url + "/reset")
    r = httpx.post(gw.url + AZURE, json=AZURE_BODY, timeout=30,
                   headers={"api-key": KEY, "ocp-apim-subscription-key": "tok-2",
                            "ocp_apim_subscription_key": "tok-3"})
    assert r.status_code == 200, r.text
    seen = gw.mock.last()["headers"]
    assert "tok-2" not in str(seen) and "tok-3" not in str(seen), seen
