"""The auth parts of the config (extproc.auth.settings via extproc.config), secrets
(extproc.auth.credentials.Secret) and `devtoken.parse_ttl`."""

from __future__ import annotations

import copy
import functools
import json
import os
import textwrap
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from extproc import config, loader
from extproc.auth import credentials, devtoken
from extproc.auth.apikeys import hash_key
from extproc.auth.credentials import Secret, SecretError
from extproc.auth.jwks import RemoteJWKS, StaticKeys
from extproc.auth.policy import Authenticate
from extproc.exchange import Exchange
from extproc.llm.policy import LLMTraffic
from extproc.policy import Reject
from extproc.schema import ConfigError

REPO = Path(__file__).resolve().parents[2]
ISS = "https://idp.example.com/"
AUD = "llm-gateway"
API_KEY = "gw-config-test-key"
UPSTREAM_ENV = "TEST_AUTH_CONFIG_OPENAI_KEY"
HS_ENV = "TEST_AUTH_CONFIG_HS_SECRET"


@functools.cache
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem() -> bytes:
    return private_key().private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption())


def jwks_doc(kid: str = "k1") -> dict[str, Any]:
    d = RSAAlgorithm.to_jwk(private_key().public_key(), as_dict=True)
    d["kid"] = kid
    return {"keys": [d]}


@pytest.fixture
def conf_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config directory with a JWKS file and a secret file; cwd is elsewhere."""
    d = tmp_path / "conf"
    (d / "secrets").mkdir(parents=True)
    (d / "jwks.json").write_text(json.dumps(jwks_doc()))
    (d / "secrets" / "openai.key").write_text("sk-from-file\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv(UPSTREAM_ENV, "sk-from-env")
    monkeypatch.setenv(HS_ENV, "h" * 40)
    return d


def source(conf_dir: Path) -> str:
    return str(conf_dir / "gateway.yaml")


def valid() -> dict[str, Any]:
    return {
        "x-client-auth": {"jwt": ["corp"]},
        "auth": {
            "jwt_providers": {
                "corp": {"issuer": ISS, "audiences": [AUD], "jwks": {"file": "jwks.json"},
                         "algorithms": ["RS256", "ES256"], "leeway_s": 30,
                         "required_claims": ["sub", "email"]},
            },
            "api_keys": [{"id": "ci", "sha256": hash_key(API_KEY), "subject": "ci-bot",
                          "claims": {"scope": "chat"}},
                         {"id": "gone", "sha256": "AB" * 32, "revoked": True}],
        },
        "routes": [{
            "name": "openai", "provider": "openai",
            "auth": {"jwt": ["corp"], "api_keys": True, "scopes": ["chat"],
                     "claims": {"team": ["ml", "infra"], "tier": "gold"},
                     "forward_claims": {"sub": "X-Gateway-Subject"},
                     "max_token_bytes": 4096, "cache_size": 50},
            "upstream_credential": {"env": UPSTREAM_ENV},
        }],
    }


def parse(data: Any, conf_dir: Path) -> config.Config:
    return loader.parse(data, source=source(conf_dir))


def errors_of(data: Any, conf_dir: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(data, conf_dir)
    return info.value.errors


def auth_policy(cfg: config.Config, route: str = "openai") -> Authenticate:
    first = cfg.routes[route].policies[0]
    assert isinstance(first, Authenticate)
    return first


async def run(p: Authenticate, headers: dict[str, str]) -> Exchange:
    ex = Exchange(route=None)
    ex.request_headers = headers
    await p.on_request_headers(ex)
    return ex


# --- a valid config -----------------------------------------------------------------------

def test_full_auth_config_builds_authenticate_first(conf_dir: Path) -> None:
    cfg = parse(valid(), conf_dir)
    route = cfg.routes["openai"]
    assert [type(p) for p in route.policies] == [Authenticate, LLMTraffic]
    p = auth_policy(cfg)
    assert p.provider == "openai"
    assert p.credential is not None and p.credential.headers() == {
        "authorization": "Bearer sk-from-env"}
    auth = p.auth
    assert auth is not None
    (corp,) = auth.jwt
    assert (corp.name, corp.issuer, corp.audiences) == ("corp", ISS, (AUD,))
    assert corp.algorithms == ("RS256", "ES256")
    assert corp.leeway_s == 30.0 and corp.required_claims == ("sub", "email")
    assert corp.shared_secret is None
    assert isinstance(corp.keys, StaticKeys) and len(corp.keys.keyset) == 1
    assert auth.api_keys is not None and len(auth.api_keys) == 2
    assert auth.scopes == ("chat",)
    assert dict(auth.claims) == {"team": ("ml", "infra"), "tier": ("gold",)}
    assert dict(auth.forward_claims) == {"sub": "x-gateway-subject"}
    assert (auth.max_token_bytes, auth.cache_size) == (4096, 50)
    assert auth.header is None
    # api key claims get the subject as `sub`
    key = auth.api_keys.lookup(API_KEY)
    assert key is not None and dict(key.claims) == {"sub": "ci-bot", "scope": "chat"}
    gone = auth.api_keys.lookup("whatever")
    assert gone is None


async def test_configured_policy_accepts_what_it_should(conf_dir: Path) -> None:
    cfg = parse(valid(), conf_dir)
    p = auth_policy(cfg)
    t = devtoken.mint("alice", key_pem=pem(), kid="k1", issuer=ISS, audience=AUD,
                      scopes=["chat"], claims={"email": "a@example.com", "team": "ml",
                                               "tier": "gold"})
    ex = await run(p, {"authorization": f"Bearer {t}", "x-gateway-subject": "spoof"})
    assert ex.state["identity"].subject == "jwt:corp:alice"
    assert ex._req_set == {"authorization": "Bearer sk-from-env",
                           "x-gateway-subject": "jwt:corp:alice"}
    # the API key has scope chat but no team claim: forbidden by the claims rule
    with pytest.raises(Reject) as info:
        await run(p, {"authorization": f"Bearer {API_KEY}"})
    assert info.value.status == 403
    # the required `email` claim is enforced
    t2 = devtoken.mint("bob", key_pem=pem(), kid="k1", issuer=ISS, audience=AUD,
                       scopes=["chat"], claims={"team": "ml", "tier": "gold"})
    with pytest.raises(Reject, match="email"):
        await run(p, {"authorization": f"Bearer {t2}"})


def test_route_with_only_upstream_credential(conf_dir: Path) -> None:
    """Anonymous clients on a route that injects the provider key: only when said (auth:
    none); left out, auth: would make the route an open proxy to the operator's account."""
    route = {"name": "a", "provider": "azure",
             "upstream_credential": {"file": "secrets/openai.key"}}
    p = auth_policy(parse({"routes": [{**route, "auth": "none"}]}, conf_dir), "a")
    assert p.auth is None
    assert p.credential is not None and p.credential.headers() == {"api-key": "sk-from-file"}
    with pytest.raises(ConfigError) as info:
        parse({"routes": [route]}, conf_dir)
    assert info.value.errors == [
        "routes[0]: injects the operator's provider credential (upstream_credential) but "
        "authenticates no client: anyone who reaches the gateway would use it; add auth: "
        "(JWT providers and/or API keys), or auth: none to serve anonymous clients on "
        "purpose"]
    front = {"name": "f", "provider": "openai-compatible",
             "backends": {"openai": {"upstream_credential": {"file": "secrets/openai.key"}}},
             "models": [{"model": "gpt-*", "backend": "openai"}]}
    with pytest.raises(ConfigError) as info:
        parse({"routes": [front]}, conf_dir)
    assert "authenticates no client" in info.value.errors[0]
    assert parse({"routes": [{**front, "auth": "none"}]}, conf_dir).routes["f"]


def test_route_without_auth_has_no_authenticate_policy(conf_dir: Path) -> None:
    cfg = parse({"routes": [{"name": "r", "provider": "openai"}]}, conf_dir)
    assert not any(isinstance(p, Authenticate) for p in cfg.routes["r"].policies)


def test_inline_jwks_and_hs256_provider(conf_dir: Path) -> None:
    data = valid()
    data["auth"]["jwt_providers"] = {
        "inline": {"issuer": ISS, "audiences": [], "jwks": {"inline": jwks_doc("i1")}},
        "hs": {"issuer": "svc", "audiences": ["x"], "algorithms": ["HS256"],
               "shared_secret": {"env": HS_ENV}},
    }
    data["routes"][0]["auth"] = {"jwt": ["inline", "hs"]}
    inline, hs = auth_policy(parse(data, conf_dir)).auth.jwt   # type: ignore[union-attr]
    assert isinstance(inline.keys, StaticKeys) and inline.keys.keyset.has_kid("i1")
    assert inline.audiences == () and inline.algorithms == ("RS256",)
    assert hs.keys is None and hs.shared_secret == b"h" * 40


def test_remote_jwks_is_shared_across_reloads(conf_dir: Path) -> None:
    url = "https://idp.example.com/test-auth-config/jwks.json"
    data = valid()
    data["auth"]["jwt_providers"]["corp"]["jwks"] = {"url": url, "timeout_s": 3,
                                                     "refresh_s": 600, "min_refetch_s": 30}
    first = auth_policy(parse(data, conf_dir)).auth.jwt[0].keys    # type: ignore[union-attr]
    again = auth_policy(parse(copy.deepcopy(data), conf_dir)).auth.jwt[0].keys  # type: ignore[union-attr]
    assert isinstance(first, RemoteJWKS) and first is again
    assert (first.url, first.timeout_s, first.refresh_s, first.min_refetch_s) == \
        (url, 3.0, 600.0, 30.0)
    assert first.fetches == 0                  # nothing is fetched at load


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/jwks.json",
                                 "http://127.3.4.5/jwks.json", "http://[::1]:9/jwks.json",
                                 "http://localhost:9000/jwks.json",
                                 "https://idp.example.com/jwks.json"])
def test_a_jwks_url_is_https_or_http_to_a_loopback_host(url: str, conf_dir: Path) -> None:
    data = valid()
    data["auth"]["jwt_providers"]["corp"]["jwks"] = {"url": url}
    keys = auth_policy(parse(data, conf_dir)).auth.jwt[0].keys    # type: ignore[union-attr]
    assert isinstance(keys, RemoteJWKS) and keys.url == url


def test_top_level_x_keys_are_ignored(conf_dir: Path) -> None:
    data = valid()
    data["x-anything"] = {"whatever": [1, 2, 3]}
    parse(data, conf_dir)
    data["y-anything"] = 1
    assert errors_of(data, conf_dir) == [
        "y-anything: unknown key (known keys: auth, default_route, guards, limits, prices, "
        "routes, routing, server, spend)"]


def test_relative_paths_resolve_against_the_config_directory(conf_dir: Path) -> None:
    assert Path.cwd() != conf_dir
    data = valid()
    data["routes"][0]["upstream_credential"] = {"file": "secrets/openai.key"}
    p = auth_policy(parse(data, conf_dir))
    assert p.credential is not None
    assert p.credential.secret.file == str(conf_dir / "secrets" / "openai.key")
    assert p.credential.headers() == {"authorization": "Bearer sk-from-file"}
    # relative to the cwd, the same file is not found
    (Path.cwd() / "gateway.yaml").touch()
    errs = errors_of(data, Path.cwd())
    assert any(e.startswith("auth.jwt_providers.corp.jwks.file:") for e in errs)
    assert any(e.startswith("routes[0].upstream_credential:") for e in errs)


def test_load_from_yaml_file(conf_dir: Path) -> None:
    path = conf_dir / "gateway.yaml"
    path.write_text(textwrap.dedent(f"""\
        x-auth: &auth
          jwt: [corp]
          api_keys: true
        auth:
          jwt_providers:
            corp: {{issuer: "{ISS}", audiences: [{AUD}], jwks: {{file: jwks.json}}}}
          api_keys:
            - {{id: ci, sha256: {hash_key(API_KEY)}, subject: ci-bot}}
        routes:
          - {{name: a, provider: anthropic, auth: *auth,
              upstream_credential: {{file: secrets/openai.key}}}}
          - {{name: g, provider: gemini, auth: *auth}}
        """))
    cfg = loader.load(path)
    a = auth_policy(cfg, "a")
    assert a.credential is not None and a.credential.headers() == {"x-api-key": "sk-from-file"}
    g = auth_policy(cfg, "g")
    assert g.credential is None and g.auth is not None and g.auth.jwt[0].name == "corp"
    assert a.auth is not None and a.auth.jwt[0] is g.auth.jwt[0]    # providers are shared


async def test_reference_config_loads_and_works() -> None:
    cfg = loader.load(REPO / "config" / "gateway.yaml")
    assert set(cfg.routes) == {"openai", "azure", "anthropic", "gemini", "vertex", "unified"}
    # the unified front: client auth on the route, each backend's credential on the front
    front = cfg.routes["unified"].front
    assert front is not None and auth_policy(cfg, "unified").auth is not None
    assert auth_policy(cfg, "unified").credential is None
    for name in ("openai", "azure", "anthropic", "gemini", "vertex"):
        expected = (REPO / "config" / "dev-secrets" / f"{name}.key").read_text().strip()
        assert expected in next(iter(front.credentials[name].headers().values()))
    for name, route in cfg.routes.items():
        if name == "unified":
            continue
        p = auth_policy(cfg, name)
        assert p.credential is not None and p.auth is not None
        assert route.provider == name
        expected = (REPO / "config" / "dev-secrets" / f"{name}.key").read_text().strip()
        assert expected in next(iter(p.credential.headers().values()))
    p = auth_policy(cfg, "openai")
    ex = await run(p, {"authorization": f"Bearer {devtoken.mint('alice')}"})
    assert ex.state["identity"].subject == "jwt:local-dev:alice"
    assert ex._req_set["x-gateway-subject"] == "jwt:local-dev:alice"
    ex = await run(p, {"authorization": "Bearer gw-local-dev-key-DEV-ONLY"})
    assert ex.state["identity"].subject == "key:local-dev"



async def test_up_prints_a_credential_the_route_accepts(conf_dir: Path) -> None:
    """`extproc up` prints a curl line to try: its credential must get through the route."""
    cfg = loader.load(REPO / "config" / "gateway.yaml")
    for name in cfg.routes:
        value = devtoken.dev_authorization(cfg.routes[name])
        assert value == f"Bearer {devtoken.DEV_API_KEY}"
        ex = await run(auth_policy(cfg, name), {"authorization": value})
        assert ex.state["identity"].subject == "key:local-dev"
    # no development API key: a development JWT, when the route trusts the dev issuer
    (conf_dir / "jwks.json").write_text((REPO / "config" / "dev-jwks.json").read_text())
    doc = {"auth": {"jwt_providers": {"dev": {
               "issuer": devtoken.DEV_ISSUER, "audiences": [devtoken.DEV_AUDIENCE],
               "jwks": {"file": "jwks.json"}}}},
           "routes": [{"name": "openai", "provider": "openai",
                       "auth": {"jwt": ["dev"], "scopes": ["chat"]}},
                      {"name": "open", "provider": "openai"}]}
    cfg = parse(doc, conf_dir)
    value = devtoken.dev_authorization(cfg.routes["openai"])
    assert value is not None and value.startswith("Bearer ey")
    ex = await run(auth_policy(cfg), {"authorization": value})
    assert ex.state["identity"].subject == "jwt:dev:local-dev"
    assert devtoken.dev_authorization(cfg.routes["open"]) == ""   # nothing to send
    # a production issuer: nothing the development key can sign
    assert devtoken.dev_authorization(parse(valid(), conf_dir).routes["openai"]) is None

# --- errors, by key path ------------------------------------------------------------------

def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation setting `value` at a dotted path (ints index lists)."""
    def apply(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        node[int(last) if last.isdigit() else last] = value
    return apply


def _del(path: str) -> Callable[[dict[str, Any]], None]:
    def apply(data: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        del node[last]
    return apply


def _both(*changes: Callable[[dict[str, Any]], None]) -> Callable[[dict[str, Any]], None]:
    def apply(data: dict[str, Any]) -> None:
        for change in changes:
            change(data)
    return apply


CORP = "auth.jwt_providers.corp"
ROUTE_AUTH = "routes.0.auth"

ERROR_CASES: list[tuple[str, Callable[[dict[str, Any]], None], str, str]] = [
    ("unknown provider in route", _set(f"{ROUTE_AUTH}.jwt", ["corp", "nope"]),
     "routes[0].auth.jwt[1]", "unknown JWT provider 'nope' (known: corp)"),
    ("none algorithm", _set(f"{CORP}.algorithms", ["RS256", "none"]),
     "auth.jwt_providers.corp.algorithms[1]", "'none' is never accepted"),
    ("None algorithm", _set(f"{CORP}.algorithms", ["None"]),
     "auth.jwt_providers.corp.algorithms[0]", "'none' is never accepted"),
    ("unknown algorithm", _set(f"{CORP}.algorithms", ["RS257"]),
     "auth.jwt_providers.corp.algorithms[0]", "unknown algorithm 'RS257'"),
    ("HS256 without shared_secret", _set(f"{CORP}.algorithms", ["RS256", "HS256"]),
     "auth.jwt_providers.corp.algorithms", "HS256 need shared_secret"),
    ("shared_secret too short", _set(f"{CORP}.shared_secret", {"env": "TEST_AUTH_SHORT"}),
     "auth.jwt_providers.corp.shared_secret", "at least 32 bytes"),
    ("shared_secret written inline", _set(f"{CORP}.shared_secret", "s" * 40),
     "auth.jwt_providers.corp.shared_secret", "expected a mapping"),
    ("jwks with two sources", _set(f"{CORP}.jwks", {"file": "jwks.json",
                                                     "url": "https://x.example/jwks"}),
     "auth.jwt_providers.corp.jwks", "needs exactly one of: file, inline, url"),
    ("jwks with no source", _set(f"{CORP}.jwks", {"timeout_s": 1}),
     "auth.jwt_providers.corp.jwks", "needs exactly one of"),
    ("jwks missing", _del(f"{CORP}.jwks"),
     "auth.jwt_providers.corp.jwks", "is required for asymmetric algorithms"),
    ("jwks file missing", _set(f"{CORP}.jwks", {"file": "nope.json"}),
     "auth.jwt_providers.corp.jwks.file", "unusable JWKS: cannot read"),
    ("jwks file not JSON", _set(f"{CORP}.jwks", {"file": "secrets/openai.key"}),
     "auth.jwt_providers.corp.jwks.file", "unusable JWKS: not JSON"),
    ("jwks inline with only an oct key",
     _set(f"{CORP}.jwks", {"inline": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}),
     "auth.jwt_providers.corp.jwks.inline", "no usable public signing keys"),
    ("jwks url not http", _set(f"{CORP}.jwks", {"url": "file:///etc/jwks.json"}),
     "auth.jwt_providers.corp.jwks.url", "expected an https URL"),
    # keys fetched over plain http can be swapped on the way: only a loopback host may
    # serve them so (found by the red-team review)
    ("jwks url http to a remote host",
     _set(f"{CORP}.jwks", {"url": "http://idp.example.com/jwks.json"}),
     "auth.jwt_providers.corp.jwks.url", "must be https"),
    ("jwks url http to a private address",
     _set(f"{CORP}.jwks", {"url": "http://10.0.0.7:8080/jwks.json"}),
     "auth.jwt_providers.corp.jwks.url", "must be https"),
    ("jwks url http to a name that starts like localhost",
     _set(f"{CORP}.jwks", {"url": "http://localhost.evil.example/jwks.json"}),
     "auth.jwt_providers.corp.jwks.url", "must be https"),
    ("jwks url without a host", _set(f"{CORP}.jwks", {"url": "https:///jwks.json"}),
     "auth.jwt_providers.corp.jwks.url", "with a host"),
    ("jwks url error hides its userinfo",
     _set(f"{CORP}.jwks", {"url": "http://u:hunter2@idp.example.com/jwks.json"}),
     "auth.jwt_providers.corp.jwks.url", "'http://***@idp.example.com/jwks.json'"),
    # an HMAC secret shorter than its hash (RFC 7518 3.2)
    ("HS384 with a 40-byte secret", _both(_set(f"{CORP}.algorithms", ["RS256", "HS384"]),
                                          _set(f"{CORP}.shared_secret", {"env": HS_ENV})),
     "auth.jwt_providers.corp.shared_secret", "at least 48 bytes (384 bits) for HS384"),
    ("HS512 with a 40-byte secret", _both(_set(f"{CORP}.algorithms", ["HS256", "HS512"]),
                                          _set(f"{CORP}.shared_secret", {"env": HS_ENV})),
     "auth.jwt_providers.corp.shared_secret", "at least 64 bytes (512 bits) for HS512"),
    ("issuer missing", _del(f"{CORP}.issuer"),
     "auth.jwt_providers.corp.issuer", "is required"),
    ("audiences missing", _del(f"{CORP}.audiences"),
     "auth.jwt_providers.corp.audiences", "is required"),
    ("unknown provider key", _set(f"{CORP}.audience", "x"),
     "auth.jwt_providers.corp.audience", "unknown key"),
    ("sha256 not hex", _set("auth.api_keys.0.sha256", "z" * 64),
     "auth.api_keys[0].sha256", "expected 64 hex digits"),
    ("sha256 too short", _set("auth.api_keys.0.sha256", "ab" * 31),
     "auth.api_keys[0].sha256", "expected 64 hex digits"),
    ("duplicate api key id", _set("auth.api_keys.1.id", "ci"),
     "auth.api_keys", "duplicate id 'ci'"),
    # found by review: the store kept the last entry of a hash, so an entry marking the key
    # revoked did nothing when the key was listed again (in either case of its hex digits)
    ("one key in two entries", _set("auth.api_keys.1.sha256", hash_key(API_KEY).upper()),
     "auth.api_keys", "have the same sha256"),
    ("api_keys route flag without keys", _del("auth.api_keys"),
     "routes[0].auth.api_keys", "no keys are defined"),
    ("upstream env var not set",
     _set("routes.0.upstream_credential", {"env": "TEST_AUTH_CONFIG_UNSET"}),
     "routes[0].upstream_credential", "environment variable TEST_AUTH_CONFIG_UNSET is not set"),
    ("upstream file missing", _set("routes.0.upstream_credential", {"file": "nope.key"}),
     "routes[0].upstream_credential", "cannot read"),
    ("upstream env and file", _set("routes.0.upstream_credential",
                                   {"env": UPSTREAM_ENV, "file": "secrets/openai.key"}),
     "routes[0].upstream_credential", "needs exactly one of"),
    ("upstream written inline", _set("routes.0.upstream_credential", {"value": "sk-x"}),
     "routes[0].upstream_credential.value", "unknown key"),
    ("route auth accepts nothing", _set(ROUTE_AUTH, {"scopes": ["chat"]}),
     "routes[0].auth", "accepts no credential"),
    ("route auth api_keys false only", _set(ROUTE_AUTH, {"api_keys": False}),
     "routes[0].auth", "accepts no credential"),
    ("forward claim to authorization",
     _set(f"{ROUTE_AUTH}.forward_claims", {"sub": "Authorization"}),
     "routes[0].auth.forward_claims.sub", "cannot carry a claim"),
    ("forward claim to x-api-key", _set(f"{ROUTE_AUTH}.forward_claims", {"sub": "x-api-key"}),
     "routes[0].auth.forward_claims.sub", "cannot carry a claim"),
    ("forward claim to host", _set(f"{ROUTE_AUTH}.forward_claims", {"sub": "host"}),
     "routes[0].auth.forward_claims.sub", "cannot carry a claim"),
    ("forward claim to x-envoy-*",
     _set(f"{ROUTE_AUTH}.forward_claims", {"sub": "x-envoy-original-path"}),
     "routes[0].auth.forward_claims.sub", "cannot carry a claim"),
    ("forward claim to :path", _set(f"{ROUTE_AUTH}.forward_claims", {"sub": ":path"}),
     "routes[0].auth.forward_claims.sub", "expected a header name"),
    ("forward claim to a bad name", _set(f"{ROUTE_AUTH}.forward_claims", {"sub": "a b"}),
     "routes[0].auth.forward_claims.sub", "expected a header name"),
    ("bad route header", _set(f"{ROUTE_AUTH}.header", "x token"),
     "routes[0].auth.header", "not a valid header name"),
    ("max_token_bytes too small", _set(f"{ROUTE_AUTH}.max_token_bytes", 10),
     "routes[0].auth.max_token_bytes", "must be >= 256"),
    ("cache_size negative", _set(f"{ROUTE_AUTH}.cache_size", -1),
     "routes[0].auth.cache_size", "must be >= 0"),
    ("unknown route auth key", _set(f"{ROUTE_AUTH}.scope", ["chat"]),
     "routes[0].auth.scope", "unknown key"),
    # found by review: a timeout of 0 is no timeout (a hung JWKS endpoint held every
    # request), no refetch floor let each forged kid fetch the keys; .inf and .nan passed
    ("jwks timeout 0", _set(f"{CORP}.jwks", {"url": "https://idp.example/jwks",
                                             "timeout_s": 0}),
     "auth.jwt_providers.corp.jwks.timeout_s", "must be >= 0.01"),
    ("jwks timeout infinite", _set(f"{CORP}.jwks", {"url": "https://idp.example/jwks",
                                                    "timeout_s": float("inf")}),
     "auth.jwt_providers.corp.jwks.timeout_s", "must be a finite number"),
    ("jwks refetch 0", _set(f"{CORP}.jwks", {"url": "https://idp.example/jwks",
                                             "min_refetch_s": 0}),
     "auth.jwt_providers.corp.jwks.min_refetch_s", "must be >= 0.1"),
    ("jwks refresh 0", _set(f"{CORP}.jwks", {"url": "https://idp.example/jwks",
                                             "refresh_s": 0}),
     "auth.jwt_providers.corp.jwks.refresh_s", "must be >= 1"),
    ("leeway infinite", _set(f"{CORP}.leeway_s", float("inf")),
     "auth.jwt_providers.corp.leeway_s", "must be a finite number"),
    ("leeway nan", _set(f"{CORP}.leeway_s", float("nan")),
     "auth.jwt_providers.corp.leeway_s", "must be a finite number"),
    # found by review: a token was checked by the first provider of its issuer alone
    ("two providers of one issuer on a route",
     _both(_set("auth.jwt_providers.partner", {"issuer": ISS, "audiences": ["other"],
                                               "jwks": {"file": "jwks.json"}}),
           _set(f"{ROUTE_AUTH}.jwt", ["corp", "partner"])),
     "routes[0].auth.jwt[1]", "'corp' and 'partner' have the same issuer"),
]


@pytest.mark.parametrize(("mutate", "path", "text"), [c[1:] for c in ERROR_CASES],
                         ids=[c[0] for c in ERROR_CASES])
def test_config_error_by_key_path(mutate: Callable[[dict[str, Any]], None], path: str,
                                  text: str, conf_dir: Path,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_AUTH_SHORT", "short-secret")
    monkeypatch.delenv("TEST_AUTH_CONFIG_UNSET", raising=False)
    data = valid()
    mutate(data)
    errors = errors_of(data, conf_dir)
    mine = [e for e in errors if e.startswith(path + ": ")]
    assert mine, errors
    assert any(text in e for e in mine), errors


def test_upstream_env_var_unset_with_monkeypatch(conf_dir: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(UPSTREAM_ENV)
    assert errors_of(valid(), conf_dir) == [
        f"routes[0].upstream_credential: environment variable {UPSTREAM_ENV} is not set, "
        "or blank"]


def test_upstream_file_empty(conf_dir: Path) -> None:
    (conf_dir / "secrets" / "openai.key").write_text("  \n")
    data = valid()
    data["routes"][0]["upstream_credential"] = {"file": "secrets/openai.key"}
    (err,) = errors_of(data, conf_dir)
    assert err.startswith("routes[0].upstream_credential: ") and "is empty" in err


def test_a_broken_provider_does_not_hide_other_errors(conf_dir: Path) -> None:
    data = valid()
    data["auth"]["jwt_providers"]["corp"]["algorithms"] = ["none"]
    data["auth"]["api_keys"][0]["sha256"] = "nothex"
    errors = errors_of(data, conf_dir)
    assert any(e.startswith("auth.jwt_providers.corp.algorithms[0]:") for e in errors)
    assert any(e.startswith("auth.api_keys[0].sha256:") for e in errors)


def test_route_auth_without_top_level_auth(conf_dir: Path) -> None:
    data = {"routes": [{"name": "r", "provider": "openai", "auth": {"jwt": ["corp"]}}]}
    (err,) = errors_of(data, conf_dir)
    assert err.startswith("routes[0].auth.jwt[0]: unknown JWT provider 'corp'")
    assert "none defined under auth.jwt_providers" in err


def test_sha256_is_case_insensitive(conf_dir: Path) -> None:
    data = valid()
    data["auth"]["api_keys"][0]["sha256"] = hash_key(API_KEY).upper()
    auth = auth_policy(parse(data, conf_dir)).auth
    assert auth is not None and auth.api_keys is not None
    assert auth.api_keys.lookup(API_KEY) is not None


# --- Secret -------------------------------------------------------------------------------

@pytest.fixture
def mono(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """A fake monotonic clock for credentials.Secret (and nothing else)."""
    now = [10_000.0]
    monkeypatch.setattr(credentials, "time", SimpleNamespace(monotonic=lambda: now[0]))
    return now


def _bump(path: Path, seconds: float) -> None:
    st = path.stat()
    os.utime(path, (st.st_atime + seconds, st.st_mtime + seconds))


def test_secret_rereads_a_changed_file(tmp_path: Path, mono: list[float]) -> None:
    f = tmp_path / "key"
    f.write_text("v1\n")
    s = Secret(file=str(f))
    assert s.load() == "v1"
    assert s.value() == "v1"
    f.write_text("v2\n")
    _bump(f, 10)
    assert s.value() == "v1"              # checked at most once a second
    mono[0] += 1.0
    assert s.value() == "v2"
    mono[0] += 5
    assert s.value() == "v2"


def test_secret_keeps_the_last_value_when_the_file_disappears(tmp_path: Path,
                                                              mono: list[float]) -> None:
    f = tmp_path / "key"
    f.write_text("v1")
    s = Secret(file=str(f))
    s.load()
    f.unlink()
    mono[0] += 2
    assert s.value() == "v1"
    f.write_text("   ")                   # back, but empty: still the last good value
    _bump(f, 20)
    mono[0] += 2
    assert s.value() == "v1"
    f.write_text("v3")
    _bump(f, 40)
    mono[0] += 2
    assert s.value() == "v3"


def test_secret_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_AUTH_SECRET_ENV", "  sk-env \n")
    s = Secret(env="TEST_AUTH_SECRET_ENV")
    assert s.load() == "sk-env" and s.value() == "sk-env"
    assert s.describe() == "env TEST_AUTH_SECRET_ENV"
    assert "sk-env" not in repr(s)
    monkeypatch.setenv("TEST_AUTH_SECRET_ENV", "")
    with pytest.raises(SecretError, match="not set"):
        s.load()


def test_secret_file_errors(tmp_path: Path) -> None:
    with pytest.raises(SecretError, match="cannot read"):
        Secret(file=str(tmp_path / "missing")).load()
    (tmp_path / "empty").write_text("\n")
    with pytest.raises(SecretError, match="is empty"):
        Secret(file=str(tmp_path / "empty")).load()
    assert Secret(file="/x").describe() == "file /x"


# --- devtoken -----------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "seconds"), [
    ("90", 90), ("90s", 90), ("15m", 900), ("1h", 3600), ("7d", 604800), (" 2h ", 7200),
    ("0", 0),
])
def test_parse_ttl(text: str, seconds: int) -> None:
    assert devtoken.parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "1w", "-5", "1.5h", "10 m", "1H", "5mm", "m5"])
def test_parse_ttl_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        devtoken.parse_ttl(text)


def test_mint_defaults_to_the_dev_issuer() -> None:
    import jwt

    t = devtoken.mint("alice", scopes=["chat", "embed"], ttl_s=120, now=1_000_000)
    header = jwt.get_unverified_header(t)
    claims = jwt.decode(t, options={"verify_signature": False})
    assert header["kid"] == devtoken.DEV_KID and header["alg"] == "RS256"
    assert claims["iss"] == devtoken.DEV_ISSUER and claims["aud"] == devtoken.DEV_AUDIENCE
    assert claims["exp"] - claims["iat"] == 120 and claims["iat"] == 1_000_000
    assert claims["scope"] == "chat embed"
