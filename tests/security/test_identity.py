"""Identity bypasses (issue #8, item 5) replayed through the real Envoy, extproc and the mock.

- a JWT with `sub: ""` was accepted and shared one rate-limit bucket with every other empty
  subject;
- a JWT subject and an API key's subject that were equal shared a bucket and the forwarded
  identity (x-gateway-subject, the `subject` metadata);
- Gemini's `?key=` query credential was forwarded upstream;
- tokens of any lifetime were accepted.

Tokens are minted with the development key (`extproc token`'s `devtoken.mint`), trusted here
through config/dev-jwks.json.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from extproc.auth import devtoken
from extproc.auth.apikeys import hash_key
from tests.harness import ROOT, Gateway, Mock, add_route

pytestmark = pytest.mark.envoy

API_KEY = "gw-security-identity-alice"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
GEMINI = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}
GEMINI_PATH = "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
ROUTES = ("id-openai", "id-gemini", "id-gemini-open", "id-short", "id-header")


def _config(tmp: Path) -> dict[str, Any]:
    (tmp / "secrets").mkdir(exist_ok=True)
    for p in ("openai", "gemini"):
        (tmp / "secrets" / f"{p}.key").write_text(f"provider-key-{p}\n")
    jwks = {"file": str(ROOT / "config" / "dev-jwks.json")}
    dev = {"issuer": devtoken.DEV_ISSUER, "audiences": [devtoken.DEV_AUDIENCE], "jwks": jwks}
    client = {"jwt": ["idp"], "api_keys": True,
              "forward_claims": {"sub": "x-gateway-subject"}}
    per_user = [{"name": "per-user", "key": ["subject"],
                 "requests": [{"limit": 1, "per": "1h"}]}]
    return {
        "server": {"max_request_body_bytes": 1048576},
        "auth": {
            "jwt_providers": {"idp": dev, "short": {**dev, "max_lifetime": "1h"}},
            "api_keys": [{"id": "alice-key", "sha256": hash_key(API_KEY), "subject": "alice"}],
        },
        "routes": [
            {"name": "id-openai", "provider": "openai", "auth": client,
             "upstream_credential": {"file": "secrets/openai.key"}, "rate_limits": per_user},
            {"name": "id-gemini", "provider": "gemini", "auth": client,
             "upstream_credential": {"file": "secrets/gemini.key"}},
            {"name": "id-gemini-open", "provider": "gemini", "auth": "none",
             "upstream_credential": {"file": "secrets/gemini.key"}},
            {"name": "id-short", "provider": "openai", "auth": {"jwt": ["short"]},
             "upstream_credential": {"file": "secrets/openai.key"}},
            {"name": "id-header", "provider": "openai", "auth": client,
             "upstream_credential": {"file": "secrets/openai.key"},
             "rate_limits": [{"name": "per-forwarded", "key": ["header:x-gateway-subject"],
                              "requests": [{"limit": 2, "per": "1h"}]}]},
        ],
    }


def _adjust(doc: dict[str, Any]) -> None:
    for name in ROUTES:
        cluster = "gemini" if "gemini" in name else "openai"
        add_route(doc, f"/{name}/", cluster, name)     # prefix_rewrite: / like the reference


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("identity")
    gateway = Gateway(tmp, _config(tmp), mock=mock, adjust=_adjust)
    yield gateway
    gateway.close()


def mint(sub: Any = "alice", *, ttl_s: int = 600, now: float | None = None,
         **claims: Any) -> str:
    """A development token like `extproc token --sub SUB` mints; claims set to None are
    left out (devtoken.mint always writes iat and a string sub)."""
    now = time.time() if now is None else now
    payload = {"iss": devtoken.DEV_ISSUER, "aud": devtoken.DEV_AUDIENCE, "sub": sub,
               "iat": int(now), "exp": int(now) + ttl_s, "jti": uuid.uuid4().hex, **claims}
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(payload, devtoken.DEV_KEY.read_bytes(), algorithm="RS256",
                      headers={"kid": devtoken.DEV_KID})


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}", **extra}


def chat(gw: Gateway, headers: dict[str, str], route: str = "id-openai") -> httpx.Response:
    return httpx.post(f"{gw.url}/{route}/v1/chat/completions", json=CHAT, headers=headers,
                      timeout=30)


def gemini(gw: Gateway, query: str, headers: dict[str, str] | None = None,
           route: str = "id-gemini") -> httpx.Response:
    return httpx.post(f"{gw.url}/{route}{GEMINI_PATH}?{query}", json=GEMINI,
                      headers=headers or {}, timeout=30)


def assert_openai_401(r: httpx.Response, reason: str, token: str) -> None:
    assert r.status_code == 401, r.text
    error = r.json()["error"]
    assert error["type"] == "authentication_error"
    assert reason in error["message"], error["message"]
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    for part in token.split("."):                         # the token is never echoed
        assert part not in r.text and part not in r.headers["www-authenticate"]


# --- an empty subject -----------------------------------------------------------------------

@pytest.mark.parametrize("sub", ["", "   ", 42, ["alice"]])
def test_an_empty_or_non_string_sub_is_refused(gw: Gateway, sub: Any) -> None:
    before = gw.mock.last()
    token = mint(sub)
    assert_openai_401(chat(gw, bearer(token)), "token subject ('sub') must be a non-empty "
                      "string", token)
    assert gw.mock.last() == before                       # nothing reached the provider


def test_an_empty_sub_is_refused_in_googles_format(gw: Gateway) -> None:
    r = gemini(gw, "alt=sse", bearer(mint("")))
    assert r.status_code == 401, r.text
    error = r.json()["error"]
    assert error["status"] == "UNAUTHENTICATED"
    assert "non-empty string" in error["message"]


# --- JWT and API-key subjects stay apart ----------------------------------------------------

def test_a_jwt_user_and_an_api_key_with_the_same_subject_are_different_people(
        gw: Gateway) -> None:
    # one request an hour per subject: the API key's request must not use alice's
    first = chat(gw, bearer(mint("alice"), **{"x-request-id": "id-jwt-1",
                                              "x-gateway-subject": "key:alice"}))
    assert first.status_code == 200, first.text
    seen = gw.mock.last()["headers"]
    assert seen["x-gateway-subject"] == "jwt:idp:alice"   # the client's spoof replaced
    by_key = chat(gw, bearer(API_KEY, **{"x-request-id": "id-key-1"}))
    assert by_key.status_code == 200, by_key.text       # its own bucket
    seen = gw.mock.last()["headers"]
    assert seen["x-gateway-subject"] == "key:alice"
    assert API_KEY not in json.dumps(gw.mock.last())
    again = chat(gw, bearer(mint("alice")))
    assert again.status_code == 429, again.text         # alice's bucket is spent
    assert "per-user" in again.json()["error"]["message"]
    jwt_meta = gw.access_log("id-jwt-1")["extproc"]
    key_meta = gw.access_log("id-key-1")["extproc"]
    assert (jwt_meta["subject"], jwt_meta["auth"]) == ("jwt:idp:alice", "jwt:idp")
    assert (key_meta["subject"], key_meta["auth"]) == ("key:alice", "api_key:alice-key")
    assert jwt_meta["claims"] == {"sub": "jwt:idp:alice"}
    assert key_meta["claims"] == {"sub": "key:alice"}


def test_a_jwt_sub_that_spells_a_key_subject_is_still_a_jwt_user(gw: Gateway) -> None:
    r = chat(gw, bearer(mint("key:bob")), route="id-openai")
    assert r.status_code == 200, r.text
    assert gw.mock.last()["headers"]["x-gateway-subject"] == "jwt:idp:key:bob"


# --- credentials in the query ---------------------------------------------------------------

def test_the_key_query_parameter_never_reaches_the_provider(gw: Gateway) -> None:
    query = f"alt=sse&key={API_KEY}&foo=a%2Fb&empty=&x=1+2"
    r = gemini(gw, query, {"x-goog-api-key": API_KEY})
    assert r.status_code == 200, r.text
    last = gw.mock.last()
    # the route's prefix_rewrite and extproc's :path mutation both applied, the rest of
    # the query as the client sent it
    assert last["raw_path"] == f"{GEMINI_PATH}?alt=sse&foo=a%2Fb&empty=&x=1+2"
    assert last["headers"]["x-goog-api-key"] == "provider-key-gemini"
    # Envoy's record of the path before prefix_rewrite is the mutated one too
    assert last["headers"]["x-envoy-original-path"] == \
        f"/id-gemini{GEMINI_PATH}?alt=sse&foo=a%2Fb&empty=&x=1+2"
    assert API_KEY not in json.dumps(last)


def test_the_key_query_parameter_is_a_gateway_api_key_on_gemini(gw: Gateway) -> None:
    r = gemini(gw, f"key={API_KEY}&alt=sse", {"x-request-id": "id-query-key"})
    assert r.status_code == 200, r.text
    assert r.text.startswith("data: {")                   # alt=sse kept: an SSE stream
    last = gw.mock.last()
    assert last["raw_path"] == f"{GEMINI_PATH}?alt=sse"
    assert last["headers"]["x-goog-api-key"] == "provider-key-gemini"
    assert API_KEY not in json.dumps(last)
    entry = gw.access_log("id-query-key")
    assert entry["extproc"]["subject"] == "key:alice"
    assert entry["path"] == f"/id-gemini{GEMINI_PATH}"      # logged without the query
    assert API_KEY not in json.dumps(entry)
    before = gw.mock.last()
    r = gemini(gw, "alt=sse&key=gw-not-a-key", {"x-request-id": "id-bad-query-key"})
    assert r.status_code == 401 and r.json()["error"]["status"] == "UNAUTHENTICATED"
    assert "API key is not valid" in r.json()["error"]["message"]
    assert gw.mock.last() == before
    # a refused request is not rewritten, so Envoy's log must not print its query either
    assert "gw-not-a-key" not in json.dumps(gw.access_log("id-bad-query-key"))


@pytest.mark.parametrize("name", ["key", "KEY", "%6Bey", "%24key", "access_token",
                                  "oauth_token", "api_key", "api-key", "apikey"])
def test_every_credential_parameter_is_removed(gw: Gateway, name: str) -> None:
    secret = f"client-secret-{uuid.uuid4().hex}"
    r = gemini(gw, f"alt=sse&{name}={secret}", {"x-goog-api-key": API_KEY})
    assert r.status_code == 200, r.text
    last = gw.mock.last()
    assert last["raw_path"] == f"{GEMINI_PATH}?alt=sse"
    assert secret not in json.dumps(last)


def test_a_semicolon_separated_key_never_reaches_the_provider(gw: Gateway) -> None:
    """`;` separates parameters for some servers and not others, so a query holding one
    reads two ways: it is refused wherever it is (the gateway once stripped a key after a
    `;` and sent the rest on, which let a refused parameter through behind the key piece;
    tests/security/test_query.py), and the key never reaches the provider."""
    for query in ("alt=sse;key=client-secret-semicolon",
                  "foo=1;key=client-secret-semicolon&alt=sse"):
        before = gw.mock.last()
        r = gemini(gw, query, {"x-goog-api-key": API_KEY})
        assert r.status_code == 400, r.text
        assert "client-secret-semicolon" not in r.text
        assert gw.mock.last() == before


def test_a_clients_own_provider_key_is_removed_on_a_credential_only_route(gw: Gateway) -> None:
    r = gemini(gw, "key=AIza-client-own-key&alt=sse", route="id-gemini-open")
    assert r.status_code == 200, r.text
    last = gw.mock.last()
    assert last["raw_path"] == f"{GEMINI_PATH}?alt=sse"
    assert last["headers"]["x-goog-api-key"] == "provider-key-gemini"
    assert "AIza-client-own-key" not in json.dumps(last)


# --- token lifetime -------------------------------------------------------------------------

def test_an_expired_token_is_refused(gw: Gateway) -> None:
    token = mint("carol", now=time.time() - 7200, ttl_s=600)
    assert_openai_401(chat(gw, bearer(token), route="id-short"), "token has expired", token)


def test_a_token_over_the_maximum_lifetime_is_refused(gw: Gateway) -> None:
    long = mint("carol", ttl_s=7 * 86400)
    assert_openai_401(chat(gw, bearer(long), route="id-short"),
                      "token lifetime (exp - iat) of 7d is longer than the 1h issuer 'short' "
                      "allows", long)
    no_iat = mint("carol", iat=None)
    assert_openai_401(chat(gw, bearer(no_iat), route="id-short"),
                      "token lacks the required claim 'iat'", no_iat)
    ok = chat(gw, bearer(mint("carol", ttl_s=3600)), route="id-short")
    assert ok.status_code == 200, ok.text
    # a provider without max_lifetime still takes a week-long token
    r = chat(gw, bearer(mint("carol-long", ttl_s=7 * 86400)), route="id-openai")
    assert r.status_code == 200, r.text


def test_no_state_is_left_behind(gw: Gateway) -> None:
    assert gw.server is not None
    stats = gw.server.wait_idle()
    assert stats["streams_active"] == 0 and stats["exchanges_alive"] == 0


def test_a_limit_keyed_on_a_forwarded_claim_reads_the_forwarded_value(gw: Gateway) -> None:
    """A limit keyed on `header:x-gateway-subject`, the header the gateway forwards the
    subject in, read the client's own header of that name (found by the auth audit): a
    fresh value each time was a fresh bucket, and `key:bob` charged bob. It reads the
    forwarded subject now, and the client's spellings of it (`x_gateway_subject` too) never
    reach the upstream."""
    spellings = {"x_gateway_subject": "key:admin", "x-gateway_subject": "key:admin",
                 "x_gateway-subject": "key:admin"}
    statuses = [chat(gw, {**bearer(API_KEY), "x-gateway-subject": f"spoof-{i}", **spellings},
                     route="id-header").status_code for i in range(3)]
    assert statuses == [200, 200, 429], statuses
    seen = gw.mock.last()["headers"]
    assert not set(spellings) & set(seen) and seen["x-gateway-subject"] == "key:alice"


def test_a_limit_cannot_key_on_a_credential_as_the_client_spells_it() -> None:
    from extproc import loader
    from extproc.schema import ConfigError
    for header in ("header:authorization", "header:X-Api-Key", "header:openai-project"):
        with pytest.raises(ConfigError) as exc:
            loader.parse({"routes": [{"name": "r", "provider": "openai", "rate_limits": [
                {"name": "l", "key": [header], "requests": [{"limit": 1, "per": "1h"}]}]}]})
        assert "keys on a credential" in "\n".join(exc.value.errors)
    # nor on the route's own credential header, removed before any limit reads it
    with pytest.raises(ConfigError) as exc:
        loader.parse({"auth": {"api_keys": [{"id": "k", "sha256": "0" * 64, "subject": "a"}]},
                      "routes": [{"name": "r", "provider": "openai",
                                  "auth": {"api_keys": True, "header": "x-gw-key"},
                                  "rate_limits": [{"name": "l", "key": ["header:X-GW-Key"],
                                                   "requests": [{"limit": 1, "per": "1h"}]}]}]})
    assert "the route's credential header" in "\n".join(exc.value.errors)
