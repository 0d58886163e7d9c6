"""The `Authenticate` route policy (extproc.auth.policy), driven with a real Exchange."""

from __future__ import annotations

import functools
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import given
from hypothesis import strategies as st
from jwt.algorithms import RSAAlgorithm

from extproc import protocol as P
from extproc.auth import devtoken
from extproc.auth.apikeys import ApiKey, ApiKeyStore, hash_key, new_key
from extproc.auth.credentials import (
    ANTHROPIC_VERSION,
    PROVIDER_HEADER,
    Secret,
    UpstreamCredential,
)
from extproc.auth.jwks import StaticKeys
from extproc.auth.keys import Key, KeySet
from extproc.auth.policy import (
    MAX_FORWARDED_VALUE,
    Authenticate,
    Identity,
    RouteAuth,
    header_value,
)
from extproc.auth.verify import JWTProvider
from extproc.exchange import Exchange
from extproc.policy import Reject

ISS = "https://idp.example.com/"
ISS2 = "https://partner.example.org"
AUD = "llm-gateway"
UPSTREAM = "sk-upstream-secret"
PROVIDERS = ("openai", "azure", "anthropic", "gemini", "vertex")


@functools.cache
def private_key(n: int = 0) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@functools.cache
def pem(n: int = 0) -> bytes:
    return private_key(n).private_bytes(serialization.Encoding.PEM,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())


def keyset(n: int = 0, kid: str = "k1") -> KeySet:
    d = RSAAlgorithm.to_jwk(private_key(n).public_key(), as_dict=True)
    d["kid"] = kid
    return KeySet.parse({"keys": [d]})


class CountingKeys(StaticKeys):
    """A static key source that counts lookups (one per verification)."""

    def __init__(self, ks: KeySet) -> None:
        super().__init__(ks)
        self.lookups = 0

    async def candidates(self, kid: str | None, alg: str) -> list[Key]:
        self.lookups += 1
        return await super().candidates(kid, alg)


def jwt_provider(name: str = "corp", issuer: str = ISS, n: int = 0,
                 kid: str = "k1") -> JWTProvider:
    return JWTProvider(name=name, issuer=issuer, audiences=(AUD,),
                       keys=CountingKeys(keyset(n, kid)))


def token(sub: str = "alice", *, n: int = 0, kid: str = "k1", issuer: str = ISS,
          **kw: Any) -> str:
    return devtoken.mint(sub, key_pem=pem(n), kid=kid, issuer=issuer, audience=AUD, **kw)


API_KEY = "gw-test-key-1"
REVOKED_KEY = "gw-test-key-revoked"
STORE = ApiKeyStore([
    ApiKey(id="ci", sha256=hash_key(API_KEY), subject="ci-bot",
           claims={"sub": "ci-bot", "scope": "chat", "team": "infra"}),
    ApiKey(id="old", sha256=hash_key(REVOKED_KEY), subject="old-bot", revoked=True),
])


@pytest.fixture
def upstream(monkeypatch: pytest.MonkeyPatch) -> Secret:
    monkeypatch.setenv("TEST_AUTH_UPSTREAM_KEY", UPSTREAM + "\n")
    s = Secret(env="TEST_AUTH_UPSTREAM_KEY")
    s.load()
    return s


def policy(provider: str = "openai", secret: Secret | None = None, *,
           jwt_: tuple[JWTProvider, ...] | None = None, clock: Any = time.time,
           no_auth: bool = False, **auth: Any) -> Authenticate:
    if jwt_ is None:
        jwt_ = (jwt_provider(),)
    route_auth = None if no_auth else RouteAuth(jwt=jwt_, **auth)
    cred = UpstreamCredential(provider, secret) if secret is not None else None
    return Authenticate(provider, route_auth, cred, clock=clock)


async def run(p: Authenticate, headers: dict[str, str]) -> Exchange:
    ex = Exchange(route=None)
    ex.request_headers = dict(headers)
    await p.on_request_headers(ex)
    return ex


async def rejected(p: Authenticate, headers: dict[str, str], status: int = 401) -> Reject:
    ex = Exchange(route=None)
    ex.request_headers = dict(headers)
    with pytest.raises(Reject) as info:
        await p.on_request_headers(ex)
    r = info.value
    assert r.status == status
    assert "identity" not in ex.state
    assert ex.metadata == {}
    assert ex._req_set == {} and ex._req_remove == []
    challenge = r.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="llm-gateway", error=')
    assert "\r" not in challenge and "\n" not in challenge
    for value in headers.values():   # never echo the credential
        if len(value) > 12:
            assert value not in r.message and value not in challenge
            assert value.split()[-1] not in r.message
    return r


def bearer(t: str) -> dict[str, str]:
    return {"authorization": f"Bearer {t}"}


# --- JWT accepted -------------------------------------------------------------------------

async def test_bearer_jwt_accepted(upstream: Secret) -> None:
    p = policy("openai", upstream, forward_claims={"sub": "x-gateway-subject"})
    t = token("alice", scopes=["chat"])
    ex = await run(p, {**bearer(t), ":path": "/v1/chat/completions"})
    ident = ex.state["identity"]
    assert isinstance(ident, Identity)
    assert (ident.subject, ident.method, ident.source) == ("jwt:corp:alice", "jwt", "corp")
    assert ident.label == "jwt:corp"
    assert ident.claims["scope"] == "chat"
    assert ident.claims["sub"] == "jwt:corp:alice"
    assert ex.metadata == {"subject": "jwt:corp:alice", "auth": "jwt:corp",
                           "claims": {"sub": "jwt:corp:alice"}}
    assert ex._req_set == {"authorization": f"Bearer {UPSTREAM}",
                           "x-gateway-subject": "jwt:corp:alice"}
    assert ex._req_remove == []
    assert p.stats == {"accepted": 1, "rejected": 0, "cache_hits": 0}


async def test_client_authorization_removed_without_upstream_credential() -> None:
    p = policy("openai")
    ex = await run(p, {**bearer(token()), "x-api-key": "leftover", "api-key": "x",
                       "x-goog-api-key": "y", "content-type": "application/json"})
    assert ex.state["identity"].subject == "jwt:corp:alice"
    assert sorted(ex._req_remove) == ["api-key", "authorization", "x-api-key",
                                      "x-goog-api-key"]
    assert ex._req_set == {}


@pytest.mark.parametrize(("provider", "name", "value"), [
    ("openai", "authorization", f"Bearer {UPSTREAM}"),
    ("azure", "api-key", UPSTREAM),
    ("anthropic", "x-api-key", UPSTREAM),
    ("gemini", "x-goog-api-key", UPSTREAM),
    ("vertex", "authorization", f"Bearer {UPSTREAM}"),
])
async def test_provider_credential_injected(provider: str, name: str, value: str,
                                            upstream: Secret) -> None:
    assert PROVIDER_HEADER[provider][0] == name
    p = policy(provider, upstream)
    client = {**bearer(token()), "x-api-key": "client-key", "api-key": "client-key",
              "x-goog-api-key": "client-key"}
    ex = await run(p, client)
    expected = {name: value}
    if provider == "anthropic":
        expected["anthropic-version"] = ANTHROPIC_VERSION
    assert ex._req_set == expected
    removed = {"authorization", "x-api-key", "api-key", "x-goog-api-key"} - {name}
    assert sorted(ex._req_remove) == sorted(removed)
    assert ex.state["identity"].subject == "jwt:corp:alice"


async def test_anthropic_version_kept_when_the_client_sent_one(upstream: Secret) -> None:
    p = policy("anthropic", upstream)
    ex = await run(p, {**bearer(token()), "anthropic-version": "2024-10-22"})
    assert ex._req_set == {"x-api-key": UPSTREAM}
    assert "anthropic-version" not in ex._req_remove


async def test_anthropic_version_not_added_without_upstream_credential() -> None:
    ex = await run(policy("anthropic"), bearer(token()))
    assert "anthropic-version" not in ex._req_set


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_credential_only_no_client_auth(provider: str, upstream: Secret) -> None:
    p = policy(provider, upstream, no_auth=True)
    ex = await run(p, {"authorization": "Bearer whatever-the-client-had"})
    name = PROVIDER_HEADER[provider][0]
    assert ex._req_set[name].endswith(UPSTREAM)
    assert "identity" not in ex.state and ex.metadata == {}
    if name != "authorization":
        assert ex._req_remove == ["authorization"]


# --- refused ------------------------------------------------------------------------------

async def test_missing_credential(upstream: Secret) -> None:
    p = policy("openai", upstream)
    r = await rejected(p, {"content-type": "application/json"})
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    assert "missing credential" in r.message
    assert r.details == "extproc_auth_invalid"
    assert p.stats == {"accepted": 0, "rejected": 1, "cache_hits": 0}


@pytest.mark.parametrize("value", ["Basic xyz", "Basic dXNlcjpwYXNz", "Bearer", "Bearer   ",
                                   "bearer", "Token abc.def.ghi", ""])
async def test_authorization_that_is_not_bearer(value: str) -> None:
    r = await rejected(policy(), {"authorization": value})
    assert 'error="invalid_token"' in r.headers["www-authenticate"]


async def test_bearer_scheme_is_case_insensitive() -> None:
    ex = await run(policy(), {"authorization": f"bearer   {token()}  "})
    assert ex.state["identity"].subject == "jwt:corp:alice"


async def test_garbage_bearer_token() -> None:
    r = await rejected(policy(), bearer("eyJnot-a-real.token.at-all"))
    assert "malformed" in r.message


async def test_non_jwt_bearer_without_api_keys() -> None:
    r = await rejected(policy(), bearer("sk-some-openai-key"))
    assert "malformed" in r.message


async def test_invalid_jwt_reports_why() -> None:
    now = int(time.time())
    expired = token(now=now - 7200, ttl_s=60)
    r = await rejected(policy(), bearer(expired))
    assert r.message == "authentication failed: token has expired"
    assert 'error_description="token has expired"' in r.headers["www-authenticate"]


async def test_forged_signature_refused() -> None:
    r = await rejected(policy(), bearer(token(n=1)))     # right kid, another key
    assert "signature" in r.message


async def test_error_description_is_quoted_safely() -> None:
    """alg and kid come from the attacker; they must not break the challenge header."""
    t = jwt.encode({"sub": "x"}, pem(), algorithm="RS256",
                   headers={"kid": 'a"b\\c\r\nX-Evil: 1'})
    r = await rejected(policy(), bearer(t))
    challenge = r.headers["www-authenticate"]
    desc = challenge.split('error_description="', 1)[1]
    assert desc.endswith('"') and '"' not in desc[:-1] and "\\" not in desc


async def test_token_with_undecodable_byte_is_a_401() -> None:
    bad = token()[:-4] + b"\xff".decode("utf-8", "surrogateescape") + "abc"
    await rejected(policy(), bearer(bad))


# --- native header and API keys -----------------------------------------------------------

async def test_native_header_accepted_for_anthropic(upstream: Secret) -> None:
    p = policy("anthropic", upstream)
    ex = await run(p, {"x-api-key": token("carol")})
    assert ex.state["identity"].subject == "jwt:corp:carol"
    assert ex._req_set["x-api-key"] == UPSTREAM


@pytest.mark.parametrize(("provider", "header"), [("azure", "api-key"),
                                                  ("gemini", "x-goog-api-key")])
async def test_native_header_of_other_providers(provider: str, header: str) -> None:
    ex = await run(policy(provider, api_keys=STORE), {header: API_KEY})
    assert ex.state["identity"].subject == "key:ci-bot"
    assert ex._req_remove == [header]


async def test_native_header_of_another_provider_is_not_read() -> None:
    r = await rejected(policy("openai", api_keys=STORE), {"x-api-key": API_KEY})
    assert "missing credential" in r.message


async def test_authorization_wins_over_native_header() -> None:
    ex = await run(policy("anthropic"), {**bearer(token("dave")), "x-api-key": token("eve")})
    assert ex.state["identity"].subject == "jwt:corp:dave"


async def test_configured_header_only() -> None:
    p = policy("openai", header="x-gateway-token")
    ex = await run(p, {"x-gateway-token": f"Bearer {token('frank')}"})
    assert ex.state["identity"].subject == "jwt:corp:frank"
    assert ex._req_remove == ["x-gateway-token"]
    ex = await run(p, {"x-gateway-token": token("gina")})
    assert ex.state["identity"].subject == "jwt:corp:gina"
    r = await rejected(p, bearer(token()))            # Authorization is not read
    assert "x-gateway-token" in r.message


async def test_api_key_valid(upstream: Secret) -> None:
    p = policy("openai", upstream, api_keys=STORE)
    ex = await run(p, bearer(API_KEY))
    ident = ex.state["identity"]
    assert (ident.subject, ident.method, ident.source) == ("key:ci-bot", "api_key", "ci")
    assert ex.metadata["auth"] == "api_key:ci"
    assert ex.metadata["subject"] == "key:ci-bot"
    assert ex._req_set == {"authorization": f"Bearer {UPSTREAM}"}


async def test_api_key_only_route() -> None:
    p = policy("openai", jwt_=(), api_keys=STORE)
    assert (await run(p, bearer(API_KEY))).state["identity"].subject == "key:ci-bot"
    r = await rejected(p, bearer(token()))            # no JWT providers on this route
    assert r.message == "authentication failed: API key is not valid"


async def test_api_key_unknown() -> None:
    r = await rejected(policy(api_keys=STORE), bearer("gw-guessed-key"))
    assert r.message == "authentication failed: API key is not valid"


async def test_api_key_revoked() -> None:
    r = await rejected(policy(api_keys=STORE), bearer(REVOKED_KEY))
    assert r.message == "authentication failed: API key has been revoked"


def test_new_key_and_hash() -> None:
    key, digest = new_key()
    assert key.startswith("gw-") and len(key) > 40
    assert digest == hash_key(key) and len(digest) == 64
    assert new_key()[0] != key
    store = ApiKeyStore([ApiKey(id="n", sha256=digest, subject="n")])
    assert store.lookup(key) is not None and store.lookup(key + "x") is None
    assert len(store) == 1


# --- size limit ---------------------------------------------------------------------------

async def test_token_over_max_token_bytes_is_not_verified() -> None:
    prov = jwt_provider()
    p = policy(jwt_=(prov,), max_token_bytes=1024)
    big = token(claims={"pad": "x" * 2000})
    r = await rejected(p, bearer(big))
    assert "larger than 1024 bytes" in r.message
    assert isinstance(prov.keys, CountingKeys) and prov.keys.lookups == 0
    small = token()
    assert len(small) <= 1024
    await run(p, bearer(small))
    assert prov.keys.lookups == 1


# --- authorisation: scopes and claims -----------------------------------------------------

async def test_missing_scopes_are_a_403() -> None:
    p = policy(scopes=("chat", "admin"))
    r = await rejected(p, bearer(token(scopes=["chat"])), status=403)
    challenge = r.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert 'scope="chat admin"' in challenge
    assert "admin" in r.message and r.message.startswith("forbidden:")
    assert r.details == "extproc_auth_forbidden"
    await run(p, bearer(token(scopes=["admin", "chat", "extra"])))
    await run(p, bearer(token(claims={"scp": ["chat", "admin"]})))


async def test_api_key_scopes() -> None:
    p = policy(jwt_=(), api_keys=STORE, scopes=("chat",))
    await run(p, bearer(API_KEY))
    p = policy(jwt_=(), api_keys=STORE, scopes=("admin",))
    await rejected(p, bearer(API_KEY), status=403)


async def test_claims_restriction() -> None:
    p = policy(claims={"team": ("ml", "infra")})
    r = await rejected(p, bearer(token(claims={"team": "sales"})), status=403)
    assert "'team'" in r.message
    assert 'error="insufficient_scope"' in r.headers["www-authenticate"]
    await rejected(p, bearer(token()), status=403)                     # claim absent
    await rejected(p, bearer(token(claims={"team": None})), status=403)
    await rejected(p, bearer(token(claims={"team": []})), status=403)
    await run(p, bearer(token(claims={"team": "ml"})))
    await run(p, bearer(token(claims={"team": ["sales", "infra"]})))
    assert p.stats["accepted"] == 2 and p.stats["rejected"] == 4


# --- forwarded claims ---------------------------------------------------------------------

async def test_claim_with_crlf_and_nul_is_sanitised() -> None:
    p = policy(forward_claims={"name": "x-user-name", "sub": "x-gateway-subject"})
    t = token("mallory\r\nX-Admin: yes", claims={"name": "Bob\r\nX-Evil: 1\x00end"})
    ex = await run(p, bearer(t))
    for value in ex._req_set.values():
        assert not any(c in value for c in "\r\n\x00")
    assert ex._req_set["x-user-name"] == "Bob  X-Evil: 1 end"
    assert ex._req_set["x-gateway-subject"] == "jwt:corp:mallory  X-Admin: yes"
    assert ex.metadata["claims"] == {"name": "Bob  X-Evil: 1 end",
                                     "sub": "jwt:corp:mallory  X-Admin: yes"}


async def test_claim_with_lone_surrogate_can_be_sent_upstream() -> None:
    p = policy(forward_claims={"name": "x-user-name"})
    ex = await run(p, bearer(token(claims={"name": "x\ud800y"})))
    assert ex.state["identity"].claims["name"] == "x\ud800y"    # valid JSON, signed token
    P.header_mutation(ex._req_set, ex._req_remove)              # what the reply is built with


async def test_spoofed_forwarded_header_removed_when_claim_absent() -> None:
    p = policy(forward_claims={"team": "x-team"})
    ex = await run(p, {**bearer(token()), "x-team": "admins"})
    assert "x-team" in ex._req_remove
    assert "x-team" not in ex._req_set
    assert "claims" not in ex.metadata


async def test_spoofed_forwarded_header_overwritten_when_claim_present() -> None:
    p = policy(forward_claims={"team": "x-team"})
    ex = await run(p, {**bearer(token(claims={"team": ["ml", "infra"]})), "x-team": "admins"})
    assert ex._req_set["x-team"] == "ml,infra"
    assert "x-team" not in ex._req_remove


async def test_forwarded_claims_of_api_keys() -> None:
    p = policy(jwt_=(), api_keys=STORE, forward_claims={"sub": "x-sub", "team": "x-team"})
    ex = await run(p, bearer(API_KEY))
    assert ex._req_set == {"x-sub": "key:ci-bot", "x-team": "infra"}


@pytest.mark.parametrize(("value", "expected"), [
    ("plain", "plain"),
    (["a", "b", "c"], "a,b,c"),
    (["a", 1], '["a",1]'),
    (42, "42"),
    (True, "true"),
    ({"k": "v", "n": [1, 2]}, '{"k":"v","n":[1,2]}'),
    ("tab\tkept", "tab\tkept"),
    ("a\r\nb\x00c\x7fd\x1be", "a  b c d e"),
    ("ünïcödé", "ünïcödé"),
])
def test_header_value(value: Any, expected: str) -> None:
    assert header_value(value) == expected


def test_header_value_is_capped() -> None:
    assert len(header_value("x" * 100_000)) == MAX_FORWARDED_VALUE
    assert len(header_value(["y" * 3000, "z" * 3000])) == MAX_FORWARDED_VALUE


@given(st.one_of(st.text(), st.lists(st.text(max_size=20), max_size=5),
                 st.integers(), st.dictionaries(st.text(max_size=5), st.text(max_size=5))))
def test_header_value_never_carries_control_characters(value: Any) -> None:
    out = header_value(value)
    assert len(out) <= MAX_FORWARDED_VALUE
    assert not any((ord(c) < 0x20 and c != "\t") or c == "\x7f" for c in out)


# --- the token cache ----------------------------------------------------------------------

async def test_second_verification_is_a_cache_hit() -> None:
    prov = jwt_provider()
    p = policy(jwt_=(prov,))
    t = token()
    first = (await run(p, bearer(t))).state["identity"]
    second = (await run(p, bearer(t))).state["identity"]
    assert first == second
    assert isinstance(prov.keys, CountingKeys) and prov.keys.lookups == 1
    assert p.stats == {"accepted": 2, "rejected": 0, "cache_hits": 1}


async def test_cached_identity_is_still_authorised_per_request() -> None:
    p = policy(scopes=("chat",))
    t = token(scopes=["embed"])
    for _ in range(2):
        await rejected(p, bearer(t), status=403)
    assert p.stats["rejected"] == 2


async def test_cache_entry_not_used_past_exp() -> None:
    now = time.time()
    clock = [now]
    prov = jwt_provider()
    p = policy(jwt_=(prov,), clock=lambda: clock[0])
    t = token(ttl_s=600, now=now)
    exp = jwt.decode(t, options={"verify_signature": False})["exp"]
    await run(p, bearer(t))
    clock[0] = exp - 1
    await run(p, bearer(t))
    assert p.stats["cache_hits"] == 1
    assert isinstance(prov.keys, CountingKeys) and prov.keys.lookups == 1
    clock[0] = exp                     # the policy's clock says expired: verify again
    await run(p, bearer(t))
    assert p.stats["cache_hits"] == 1
    assert prov.keys.lookups == 2


async def test_cache_is_bounded_lru() -> None:
    prov = jwt_provider()
    p = policy(jwt_=(prov,), cache_size=2)
    a, b, c = token("a"), token("b"), token("c")
    for t in (a, b, c):
        await run(p, bearer(t))
    assert len(p._cache) == 2
    assert isinstance(prov.keys, CountingKeys) and prov.keys.lookups == 3
    await run(p, bearer(c))            # hit
    await run(p, bearer(b))            # hit, now most recent
    assert prov.keys.lookups == 3 and p.stats["cache_hits"] == 2
    await run(p, bearer(a))            # evicted earlier: verified again, evicts c
    assert prov.keys.lookups == 4
    await run(p, bearer(b))
    assert prov.keys.lookups == 4
    await run(p, bearer(c))
    assert prov.keys.lookups == 5
    assert len(p._cache) == 2


async def test_cache_size_zero_turns_the_cache_off() -> None:
    prov = jwt_provider()
    p = policy(jwt_=(prov,), cache_size=0)
    t = token()
    for _ in range(3):
        await run(p, bearer(t))
    assert isinstance(prov.keys, CountingKeys) and prov.keys.lookups == 3
    assert p.stats["cache_hits"] == 0 and len(p._cache) == 0


async def test_rejected_tokens_are_not_cached() -> None:
    prov = jwt_provider()
    p = policy(jwt_=(prov,))
    t = token(n=1)
    for _ in range(2):
        await rejected(p, bearer(t))
    assert isinstance(prov.keys, CountingKeys) and prov.keys.lookups == 2
    assert len(p._cache) == 0


# --- several providers --------------------------------------------------------------------

async def test_two_providers_chosen_by_issuer() -> None:
    corp = jwt_provider("corp", ISS, n=0, kid="c1")
    partner = jwt_provider("partner", ISS2, n=1, kid="p1")
    p = policy(jwt_=(corp, partner))
    ex = await run(p, bearer(token("alice", n=0, kid="c1", issuer=ISS)))
    assert ex.state["identity"].source == "corp"
    ex = await run(p, bearer(token("pat", n=1, kid="p1", issuer=ISS2)))
    assert ex.state["identity"].source == "partner"
    assert ex.metadata["auth"] == "jwt:partner"
    r = await rejected(p, bearer(token(n=0, kid="c1", issuer="https://other.example/")))
    assert "issuer is not accepted" in r.message
    # partner's issuer, signed by corp's key: partner's keys do not verify it
    await rejected(p, bearer(token(n=0, kid="c1", issuer=ISS2)))
    await rejected(p, bearer(token(n=0, kid="p1", issuer=ISS2)))


UNDERSCORED = {"x_api_key": "sk-client-1", "api_key": "sk-client-2",
               "x_goog_api_key": "sk-client-3", "x-api_key": "sk-client-4",
               "openai_organization": "org-other", "openai_project": "proj_other",
               "x_goog_user_project": "other-project", "x_goog_quota_user": "someone",
               "x-goog_quota-user": "someone-else"}


async def test_underscore_spellings_of_credential_and_account_headers_are_removed(
        upstream: Secret) -> None:
    """Envoy passes header names with `_` on, and a CGI-style upstream (WSGI, LiteLLM) reads
    `x_api_key` as `x-api-key`: every spelling of a credential or account header goes (found
    by the red-team review: only the dash spellings were removed)."""
    p = policy("openai", upstream, jwt_=(), api_keys=STORE)
    ex = await run(p, {**bearer(API_KEY), **UNDERSCORED, "x_request_id": "kept"})
    assert sorted(ex._req_remove) == sorted(UNDERSCORED)
    assert set(UNDERSCORED).isdisjoint(ex.request_headers)
    assert ex.request_headers["x_request_id"] == "kept"
    assert ex._req_set == {"authorization": f"Bearer {UPSTREAM}"}


async def test_underscore_spellings_of_credentials_go_without_an_upstream_credential() -> None:
    p = policy("openai", jwt_=(), api_keys=STORE)
    ex = await run(p, {**bearer(API_KEY), **UNDERSCORED})
    # the account headers are the client's own where the gateway injects no credential
    assert sorted(ex._req_remove) == ["api_key", "authorization", "x-api_key", "x_api_key",
                                      "x_goog_api_key"]


async def test_an_api_management_subscription_key_is_removed(upstream: Secret) -> None:
    p = policy("azure", upstream, jwt_=(), api_keys=STORE)
    ex = await run(p, {"api-key": API_KEY, "ocp-apim-subscription-key": "sk-client",
                       ":path": "/openai/x?subscription-key=s1&$access_token=t1&v=1"})
    assert "ocp-apim-subscription-key" in ex._req_remove
    assert ex._req_set[":path"] == "/openai/x?v=1"


ACCOUNT_REPLY = {"openai-organization": "org-operator", "openai-project": "proj_operator",
                 "anthropic-organization-id": "8c1f-operator"}


async def reply_headers(p: Any, ex: Exchange | None = None) -> Exchange:
    ex = ex or Exchange(route=None)
    ex.status = 200
    ex.response_headers = {":status": "200", "content-type": "application/json",
                           "x-ratelimit-remaining-requests": "9", **ACCOUNT_REPLY}
    await p.on_response_headers(ex)
    return ex


async def test_a_reply_does_not_name_the_account_of_the_injected_key(upstream: Secret) -> None:
    """The reply's `openai-organization` or `anthropic-organization-id` named the operator's
    provider account to every client (found by the red-team review)."""
    for provider in ("openai", "anthropic"):
        ex = await reply_headers(policy(provider, upstream))
        assert sorted(ex._resp_remove) == sorted(ACCOUNT_REPLY)
        assert set(ACCOUNT_REPLY).isdisjoint(ex.response_headers)
        # the provider's own rate-limit headers are the client's to read
        assert ex.response_headers["x-ratelimit-remaining-requests"] == "9"


async def test_a_reply_keeps_its_account_headers_without_an_injected_key() -> None:
    ex = await reply_headers(policy("openai"))          # the client's own key upstream
    assert ex._resp_remove == []


async def test_the_unified_front_strips_its_backends_account_headers(upstream: Secret) -> None:
    from extproc.front.policy import FrontModels, FrontState
    from extproc.front.settings import FrontConfig
    from extproc.translate import Backend, module_for

    front = FrontConfig(models=None, credentials={   # type: ignore[arg-type]
        "anthropic": UpstreamCredential("anthropic", upstream)})
    p = FrontModels(front, "unified")
    for provider, stripped in (("anthropic", sorted(ACCOUNT_REPLY)), ("openai", [])):
        ex = Exchange(route=None)
        ex.state["front"] = FrontState("m", Backend(provider, "m"), module_for(provider))
        assert sorted((await reply_headers(p, ex))._resp_remove) == stripped
