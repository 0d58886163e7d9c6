"""Identity hygiene (issue #8, item 5): subjects must name someone, JWT and API-key subjects
stay apart unless the config says they are the same people, token lifetimes can be capped,
and credentials in the URL query never go upstream."""

from __future__ import annotations

import functools
import time
from typing import Any
from urllib.parse import quote

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import strategies as st
from jwt.algorithms import RSAAlgorithm

from extproc.auth.apikeys import ApiKey, ApiKeyStore, hash_key
from extproc.auth.credentials import Secret, UpstreamCredential
from extproc.auth.jwks import StaticKeys
from extproc.auth.keys import KeySet
from extproc.auth.policy import Authenticate, Identity, RouteAuth
from extproc.auth.querycreds import (
    QUERY_CREDENTIAL_PARAMS,
    is_credential_param,
    param_name,
    strip_query_credentials,
)
from extproc.auth.verify import AuthError, JWTProvider, read_header
from extproc.exchange import Exchange
from extproc.limits.gcra import Window
from extproc.limits.policy import LimitSpec, RateLimit
from extproc.limits.store import MemoryStore
from extproc.policy import Reject
from extproc.reading import Unreadable, canonical_target

ISS = "https://idp.example.com/"
AUD = "llm-gateway"
API_KEY = "gw-identity-test-key"
OTHER_KEY = "gw-identity-test-key-2"


@functools.cache
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@functools.cache
def pem() -> bytes:
    return private_key().private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption())


def jwks_doc() -> dict[str, Any]:
    d = RSAAlgorithm.to_jwk(private_key().public_key(), as_dict=True)
    return {"keys": [{**d, "kid": "k1"}]}


def provider(name: str = "corp", **kw: Any) -> JWTProvider:
    return JWTProvider(name=name, issuer=ISS, audiences=(AUD,),
                       keys=StaticKeys(KeySet.parse(jwks_doc())), **kw)


def token(**over: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {"iss": ISS, "aud": AUD, "sub": "alice", "iat": now,
                              "exp": now + 600, **over}
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, pem(), algorithm="RS256", headers={"kid": "k1"})


async def refused(p: JWTProvider, t: str) -> str:
    with pytest.raises(AuthError) as info:
        await p.verify(t, read_header(t))
    assert info.value.status == 401
    for part in t.split("."):                 # never echo the token
        assert part not in info.value.message
    return info.value.message


def store(*keys: ApiKey) -> ApiKeyStore:
    return ApiKeyStore(list(keys) or [
        ApiKey(id="alice-key", sha256=hash_key(API_KEY), subject="alice",
               claims={"sub": "alice"})])


def authenticate(provider_name: str = "openai", *, jwt_: tuple[JWTProvider, ...] | None = None,
                 secret: Secret | None = None, **auth: Any) -> Authenticate:
    route_auth = RouteAuth(jwt=(provider(),) if jwt_ is None else jwt_, **auth)
    cred = UpstreamCredential(provider_name, secret) if secret is not None else None
    return Authenticate(provider_name, route_auth, cred)


async def run(p: Authenticate, headers: dict[str, str]) -> Exchange:
    ex = Exchange(route=None)
    ex.request_headers = dict(headers)
    await p.on_request_headers(ex)
    return ex


async def rejected(p: Authenticate, headers: dict[str, str]) -> Reject:
    ex = Exchange(route=None)
    ex.request_headers = dict(headers)
    with pytest.raises(Reject) as info:
        await p.on_request_headers(ex)
    assert info.value.status == 401
    assert ex._req_set == {} and ex._req_remove == [] and "identity" not in ex.state
    for value in headers.values():
        if len(value) > 12:
            assert value not in info.value.message
            assert value.split()[-1] not in info.value.message
            assert value.split()[-1] not in info.value.headers["www-authenticate"]
    return info.value


# --- 1. a subject must name someone ---------------------------------------------------------

@pytest.mark.parametrize("sub", ["", " ", "\t", 0, 42, [], ["alice"], {"id": "alice"}, True])
async def test_an_empty_or_non_string_sub_is_refused(sub: Any) -> None:
    msg = await refused(provider(), token(sub=sub))
    assert msg == "token subject ('sub') must be a non-empty string"


async def test_a_missing_sub_is_refused_even_when_required_claims_leave_it_out() -> None:
    lax = provider(required_claims=("email",))
    assert await refused(lax, token(sub=None, email="a@x")) == \
        "token lacks the required claim 'sub'"


async def test_the_policy_refuses_an_empty_sub_in_the_clients_format() -> None:
    t = token(sub="")
    r = await rejected(authenticate(), {"authorization": f"Bearer {t}"})
    assert r.message == "authentication failed: token subject ('sub') must be a non-empty string"
    assert r.details == "extproc_auth_invalid"
    assert "non-empty string" in r.headers["www-authenticate"]


# --- 2. namespaced subjects -----------------------------------------------------------------

async def test_jwt_and_api_key_subjects_are_kept_apart() -> None:
    p = authenticate(api_keys=store(), forward_claims={"sub": "x-gateway-subject"})
    by_jwt = await run(p, {"authorization": f"Bearer {token()}"})
    by_key = await run(p, {"authorization": f"Bearer {API_KEY}"})
    a, b = by_jwt.state["identity"], by_key.state["identity"]
    assert (a.subject, b.subject) == ("jwt:corp:alice", "key:alice")
    assert (a.claims["sub"], b.claims["sub"]) == (a.subject, b.subject)
    assert by_jwt._req_set["x-gateway-subject"] == "jwt:corp:alice"
    assert by_key._req_set["x-gateway-subject"] == "key:alice"
    assert by_jwt.metadata == {"subject": "jwt:corp:alice", "auth": "jwt:corp",
                               "claims": {"sub": "jwt:corp:alice"}}
    assert by_key.metadata == {"subject": "key:alice", "auth": "api_key:alice-key",
                               "claims": {"sub": "key:alice"}}


async def test_two_issuers_with_the_same_sub_are_kept_apart() -> None:
    other = JWTProvider(name="partner", issuer="https://partner.example/", audiences=(AUD,),
                        keys=StaticKeys(KeySet.parse(jwks_doc())))
    p = authenticate(jwt_=(provider(), other))
    a = (await run(p, {"authorization": f"Bearer {token()}"})).state["identity"]
    b = (await run(p, {"authorization": "Bearer " + token(
        iss="https://partner.example/")})).state["identity"]
    assert (a.subject, b.subject) == ("jwt:corp:alice", "jwt:partner:alice")


async def test_a_shared_namespace_makes_them_the_same_person() -> None:
    keys = store(ApiKey(id="alice-laptop", sha256=hash_key(API_KEY), subject="alice",
                        subject_namespace="corp"))
    p = authenticate(jwt_=(provider(subject_namespace="corp"),), api_keys=keys,
                     forward_claims={"sub": "x-sub"})
    a = await run(p, {"authorization": f"Bearer {token()}"})
    b = await run(p, {"authorization": f"Bearer {API_KEY}"})
    assert a.state["identity"].subject == b.state["identity"].subject == "corp:alice"
    assert a._req_set["x-sub"] == b._req_set["x-sub"] == "corp:alice"
    bare = authenticate(jwt_=(provider(subject_namespace=""),))
    ex = await run(bare, {"authorization": f"Bearer {token()}"})
    assert ex.state["identity"].subject == "alice"


def _limit(key: tuple[str, ...] = ("subject",)) -> tuple[RateLimit, LimitSpec]:
    spec = LimitSpec("per-user", key, requests=(Window(1, 60),))
    return RateLimit("openai", "r", (spec,), MemoryStore()), spec


async def test_rate_limit_buckets_follow_the_namespaced_subject() -> None:
    p = authenticate(api_keys=store())
    rl, _ = _limit()
    for headers in ({"authorization": f"Bearer {token()}"},
                    {"authorization": f"Bearer {API_KEY}"}):
        ex = await run(p, {":path": "/v1/chat/completions", **headers})
        ex.request_ended = True
        await rl.on_request_headers(ex)        # one request each: separate buckets
    ex = await run(p, {":path": "/v1/chat/completions",
                       "authorization": f"Bearer {token()}"})
    with pytest.raises(Reject) as info:       # the JWT user's own second request
        await rl.on_request_headers(ex)
    assert info.value.status == 429


def test_claim_sub_descriptor_and_subject_descriptor_agree() -> None:
    rl, spec = _limit(("subject", "claim:sub"))
    ex = Exchange(route=None)
    ex.request_headers = {":path": "/"}
    ex.state["identity"] = Identity("jwt:corp:alice", "jwt", "corp", {"sub": "jwt:corp:alice"})
    assert rl._key(ex, spec, None) == "r\x1fper-user\x1fjwt:corp:alice\x1fjwt:corp:alice"


def test_limit_key_parts_cannot_spell_the_separator() -> None:
    rl, spec = _limit(("subject", "header:x-team"))

    def key(subject: str, team: str) -> str:
        ex = Exchange(route=None)
        ex.request_headers = {":path": "/", "x-team": team}
        ex.state["identity"] = Identity(subject, "jwt", "corp", {"sub": subject})
        return rl._key(ex, spec, None)

    assert key("jwt:c:a\x1fb", "c") != key("jwt:c:a", "b\x1fc")
    assert key("jwt:c:a\\", "x1fb") != key("jwt:c:a\\x1fb", "")
    # an undecodable header byte (surrogate-escaped) is spelled out, and the key encodes
    odd = key("jwt:c:a", "\udcff")
    assert odd.encode() and odd != key("jwt:c:a", "\\xff")


# --- 3. maximum token lifetime --------------------------------------------------------------

async def test_max_lifetime() -> None:
    p = provider(max_lifetime_s=3600)
    now = int(time.time())
    await p.verify(t := token(iat=now, exp=now + 3600), read_header(t))      # exactly 1h
    assert await refused(p, token(iat=now, exp=now + 3601)) == (
        "token lifetime (exp - iat) of 1h1s is longer than the 1h issuer 'corp' allows")
    assert (await refused(p, token(iat=now - 86400 * 365, exp=now + 60))).startswith(
        "token lifetime (exp - iat) of 365d1m ")
    assert await refused(p, token(iat=None)) == "token lacks the required claim 'iat'"
    assert await refused(p, token(iat=str(now))) == (
        "token 'iat' is not a number (issuer 'corp' limits token lifetime)")
    assert await refused(p, token(iat=True)) == (
        "token 'iat' is not a number (issuer 'corp' limits token lifetime)")
    # found by review: a span past any float was a 500 (OverflowError), a 400-digit one
    # spelled out in the message
    assert await refused(p, token(iat=-1e308, exp=1e308)) == (
        "token lifetime (exp - iat) is beyond any the issuer 'corp' allows")
    assert await refused(p, token(iat=now, exp=10**400)) == (
        "token 'exp' is not a number (issuer 'corp' limits token lifetime)")
    assert (await refused(p, token(iat=now - 10**15, exp=now))).startswith(
        "token lifetime (exp - iat) of 1e+15s is longer")
    # without max_lifetime, a long-lived token (and one without iat) is accepted as before
    await provider().verify(t := token(iat=None, exp=now + 86400 * 365), read_header(t))


# --- 4. credentials in the query ------------------------------------------------------------

@pytest.mark.parametrize(("path", "expected", "removed"), [
    ("/v1beta/models/m:generateContent", "/v1beta/models/m:generateContent", []),
    ("/m:streamGenerateContent?alt=sse&key=K1", "/m:streamGenerateContent?alt=sse",
     [("key", "K1")]),
    ("/p?key=K1&alt=sse", "/p?alt=sse", [("key", "K1")]),
    ("/p?key=K1", "/p", [("key", "K1")]),
    ("/p?a=%2F1&KEY=K&b=x+y&c", "/p?a=%2F1&b=x+y&c", [("key", "K")]),
    ("/p?%6Bey=K&b=1", "/p?b=1", [("key", "K")]),
    ("/p?%24key=K&$key=L&b=1", "/p?b=1", [("$key", "K"), ("$key", "L")]),
    # `;` is no separator: read as the canonical reading reads it (which refuses such a
    # query before any policy runs: test_reading's test_a_semicolon_query_is_refused_...)
    ("/p?alt=sse;key=K;b=2", "/p?alt=sse;key=K;b=2", []),
    ("/p?a=1;x&key=K", "/p?a=1;x", [("key", "K")]),
    ("/p?access_token=T&api_key=A&api-key=B&apikey=C&oauth_token=O&x=1", "/p?x=1",
     [("access_token", "T"), ("api_key", "A"), ("api-key", "B"), ("apikey", "C"),
      ("oauth_token", "O")]),
    ("/p?keys=1&monkey=2&key_id=3&&x=", "/p?keys=1&monkey=2&key_id=3&&x=", []),
    # Google's `$` system-parameter spelling of every credential name, and Azure API
    # Management's subscription key (found by the red-team review: only `$key` was removed)
    ("/p?$access_token=T&%24oauth_token=O&$API_KEY=A&$apikey=C&$api-key=B&x=1", "/p?x=1",
     [("$access_token", "T"), ("$oauth_token", "O"), ("$api_key", "A"), ("$apikey", "C"),
      ("$api-key", "B")]),
    ("/p?subscription-key=S&$subscription-key=Z&x=1", "/p?x=1",
     [("subscription-key", "S"), ("$subscription-key", "Z")]),
    ("/p?$$key=1&$alt=sse&%24keys=2", "/p?$$key=1&$alt=sse&%24keys=2", []),
    ("/p?key", "/p", [("key", "")]),
    ("/p?", "/p?", []),
])
def test_strip_query_credentials(path: str, expected: str,
                                 removed: list[tuple[str, str]]) -> None:
    assert strip_query_credentials(path) == (expected, removed)


_piece = st.one_of(
    st.sampled_from([*sorted(QUERY_CREDENTIAL_PARAMS), "KEY", "%6bey", "Api_Key", "alt",
                     "keys", "", "x", "$access_token", "%24api_key", "$$key", "$alt"]),
    st.text(alphabet="abcdefk_-%$+=2F", max_size=8),
).flatmap(lambda name: st.tuples(st.just(name), st.text(alphabet="ab=%+/:K1", max_size=6)))


@given(st.lists(_piece, max_size=8), st.lists(st.sampled_from("&;"), min_size=8, max_size=8))
def test_strip_query_credentials_properties(params: list[tuple[str, str]],
                                            seps: list[str]) -> None:
    pieces = [f"{name}={value}" if value else name for name, value in params]
    query = "".join(p + sep for p, sep in zip(pieces, seps, strict=False))[:-1] \
        if pieces else ""
    path = "/v1/x:generateContent?" + query
    if ";" in query:
        # some servers split on ';', others do not: the canonical reading refuses the
        # query before the strip (or any policy) could read it one way and the provider
        # another
        with pytest.raises(Unreadable) as err:
            canonical_target(path)
        assert err.value.status == 400 and err.value.details == "extproc_ambiguous_query"
        return
    out, removed = strip_query_credentials(path)
    kept = [p for p in pieces if not is_credential_param(param_name(p))]
    assert len(removed) == len(pieces) - len(kept)
    if not removed:
        assert out == path                                 # untouched, byte for byte
        return
    base, mark, rest = out.partition("?")
    assert base == "/v1/x:generateContent"
    left = rest.split("&") if mark else [""]
    assert left == (kept or [""])                         # the others, in order, as sent
    assert mark == "?" or "".join(kept) == ""


async def test_query_credentials_are_removed_from_the_upstream_path() -> None:
    p = authenticate("gemini", api_keys=store())
    path = "/v1beta/models/m:streamGenerateContent?alt=sse&key=gw-client&access_token=t"
    ex = await run(p, {":path": path, "x-goog-api-key": API_KEY})
    upstream = "/v1beta/models/m:streamGenerateContent?alt=sse"
    assert ex._req_set[":path"] == upstream
    assert ex.request_headers[":path"] == upstream           # what later policies read
    assert ex.state["identity"].subject == "key:alice"     # the header credential was used


async def test_query_credentials_are_removed_on_a_credential_only_route() -> None:
    secret = Secret(env="TEST_IDENTITY_UPSTREAM")
    secret._value = "sk-upstream"
    p = Authenticate("gemini", None, UpstreamCredential("gemini", secret))
    ex = await run(p, {":path": "/v1beta/models/m:generateContent?key=client-own-key"})
    assert ex._req_set == {"x-goog-api-key": "sk-upstream",
                           ":path": "/v1beta/models/m:generateContent"}


async def test_a_path_without_credentials_is_not_rewritten() -> None:
    p = authenticate("gemini", api_keys=store())
    path = "/v1beta/models/m:streamGenerateContent?alt=sse&monkey=1"
    ex = await run(p, {":path": path, "x-goog-api-key": API_KEY})
    assert ":path" not in ex._req_set and ex.request_headers[":path"] == path


async def test_gemini_key_query_parameter_is_an_api_key_credential() -> None:
    p = authenticate("gemini", api_keys=store())
    path = f"/v1beta/models/m:generateContent?key={quote(API_KEY)}"
    ex = await run(p, {":path": path})
    assert ex.state["identity"].subject == "key:alice"
    assert ex._req_set[":path"] == "/v1beta/models/m:generateContent"
    r = await rejected(p, {":path": "/v1beta/models/m:generateContent?key=gw-wrong-key-xyz"})
    assert r.message == "authentication failed: API key is not valid"
    r = await rejected(p, {":path": f"/m?key={API_KEY}&key={OTHER_KEY}"})
    assert "more than one key query parameter" in r.message


async def test_a_jwt_in_the_key_query_parameter_is_not_verified() -> None:
    p = authenticate("gemini", api_keys=store())
    r = await rejected(p, {":path": f"/m:generateContent?key={token()}"})
    assert r.message == "authentication failed: API key is not valid"


@pytest.mark.parametrize(("provider_name", "auth"), [
    ("openai", {"api_keys": store()}),            # not a Gemini route
    ("gemini", {}),                               # no API keys on the route
    ("gemini", {"api_keys": store(), "header": "x-gw-token"}),   # one configured header
])
async def test_the_key_query_parameter_is_not_a_credential_elsewhere(
        provider_name: str, auth: dict[str, Any]) -> None:
    p = authenticate(provider_name, **auth)
    r = await rejected(p, {":path": f"/m?key={API_KEY}"})
    assert "missing credential" in r.message
    assert "key query parameter" not in r.message


async def test_the_missing_credential_message_names_the_key_parameter_on_gemini() -> None:
    r = await rejected(authenticate("gemini", api_keys=store()), {":path": "/m"})
    assert r.message == ("authentication failed: missing credential (send it as "
                         "Authorization: Bearer or x-goog-api-key or the key query parameter)")
