"""The identity options of the auth config (issue #8, item 5): `max_lifetime` and
`subject_namespace` on JWT providers and API keys, and what `extproc check` refuses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from extproc import config, loader
from extproc.auth.apikeys import hash_key
from extproc.auth.policy import Authenticate
from extproc.exchange import Exchange
from extproc.policy import Reject
from extproc.schema import ConfigError
from tests.unit.test_auth_identity import API_KEY, AUD, ISS, jwks_doc, run, token

# --- config ---------------------------------------------------------------------------------

@pytest.fixture
def conf_dir(tmp_path: Path) -> Path:
    (tmp_path / "jwks.json").write_text(json.dumps(jwks_doc()))
    return tmp_path


def doc(providers: dict[str, Any] | None = None, keys: list[dict[str, Any]] | None = None,
        route_auth: dict[str, Any] | None = None) -> dict[str, Any]:
    providers = providers if providers is not None else {"corp": {}}
    return {
        "auth": {"jwt_providers": {n: {"issuer": ISS, "audiences": [AUD],
                                       "jwks": {"file": "jwks.json"}, **extra}
                                   for n, extra in providers.items()},
                 "api_keys": keys if keys is not None else [
                     {"id": "k", "sha256": hash_key(API_KEY), "subject": "alice"}]},
        "routes": [{"name": "r", "provider": "gemini",
                    "auth": route_auth or {"jwt": list(providers), "api_keys": True}}],
    }


def parse(data: dict[str, Any], conf_dir: Path) -> config.Config:
    return loader.parse(data, source=str(conf_dir / "gateway.yaml"))


def errors(data: dict[str, Any], conf_dir: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse(data, conf_dir)
    return info.value.errors


def test_config_options_are_read(conf_dir: Path) -> None:
    cfg = parse(doc({"corp": {"max_lifetime": "1h", "subject_namespace": "corp"}},
                    [{"id": "k", "sha256": hash_key(API_KEY), "subject": "alice",
                      "subject_namespace": "corp"}]), conf_dir)
    p = cfg.routes["r"].policies[0]
    assert isinstance(p, Authenticate) and p.auth is not None
    (corp,) = p.auth.jwt
    assert corp.max_lifetime_s == 3600 and corp.namespace == "corp"
    assert p.auth.api_keys is not None
    assert p.auth.api_keys.lookup(API_KEY).subject_namespace == "corp"   # type: ignore[union-attr]
    cfg = parse(doc(), conf_dir)
    p = cfg.routes["r"].policies[0]
    assert isinstance(p, Authenticate) and p.auth is not None
    assert p.auth.jwt[0].max_lifetime_s is None and p.auth.jwt[0].namespace == "jwt:corp"


@pytest.mark.parametrize(("providers", "keys", "where", "what"), [
    ({"corp": {"max_lifetime": "soon"}}, None,
     "auth.jwt_providers.corp.max_lifetime", "expected a duration"),
    ({"corp": {"max_lifetime": 0}}, None,
     "auth.jwt_providers.corp.max_lifetime", "expected a duration"),
    ({"corp": {"subject_namespace": "bad ns"}}, None,
     "auth.jwt_providers.corp.subject_namespace", "expected a namespace"),
    ({"corp": {"subject_namespace": "corp:"}}, None,
     "auth.jwt_providers.corp.subject_namespace", "expected a namespace"),
    ({"corp": {"subject_namespace": 7}}, None,
     "auth.jwt_providers.corp.subject_namespace", "expected a namespace"),
    ({"corp": {"subject_namespace": ""}}, None,
     "auth.jwt_providers.corp.subject_namespace", "use it on every JWT provider"),
    ({"corp": {"subject_namespace": "key:x"}}, None,
     "auth.jwt_providers.corp.subject_namespace", "begins with 'key:'"),
    ({"a": {}, "a:b": {}}, None, "auth.jwt_providers.a:b.subject_namespace",
     "begins with 'jwt:a:'"),
    ({"corp": {}}, [{"id": "k", "sha256": hash_key(API_KEY), "subject": "x",
                     "claims": {"sub": "root"}}],
     "auth.api_keys[0].claims.sub", "set by `subject:`"),
])
def test_config_errors(conf_dir: Path, providers: dict[str, Any],
                       keys: list[dict[str, Any]] | None, where: str, what: str) -> None:
    found = errors(doc(providers, keys), conf_dir)
    assert any(e.startswith(where + ":") and what in e for e in found), found


def test_bare_subjects_everywhere_are_allowed(conf_dir: Path) -> None:
    parse(doc({"corp": {"subject_namespace": ""}},
              [{"id": "k", "sha256": hash_key(API_KEY), "subject": "alice",
                "subject_namespace": ""}]), conf_dir)


def test_route_claims_on_sub_must_be_namespaced(conf_dir: Path) -> None:
    found = errors(doc(route_auth={"jwt": ["corp"], "api_keys": True,
                                   "claims": {"sub": ["alice"]}}), conf_dir)
    assert any(e.startswith("routes[0].auth.claims.sub:") and "jwt:corp:alice" in e
               for e in found), found
    parse(doc(route_auth={"jwt": ["corp"], "api_keys": True,
                          "claims": {"sub": ["jwt:corp:alice", "key:alice"]}}), conf_dir)
    # a key namespace the route cannot see is no good either
    found = errors(doc(route_auth={"jwt": ["corp"], "claims": {"sub": ["key:alice"]}}),
                   conf_dir)
    assert any(e.startswith("routes[0].auth.claims.sub:") for e in found), found


async def test_route_claims_on_sub_match_the_namespaced_subject(conf_dir: Path) -> None:
    cfg = parse(doc(route_auth={"jwt": ["corp"], "api_keys": True,
                                "claims": {"sub": ["jwt:corp:alice"]}}), conf_dir)
    p = cfg.routes["r"].policies[0]
    assert isinstance(p, Authenticate)
    ex = await run(p, {":path": "/m", "authorization": f"Bearer {token()}"})
    assert ex.state["identity"].subject == "jwt:corp:alice"
    # the API key whose raw subject is also "alice" is not let in by that rule
    ex = Exchange(route=None)
    ex.request_headers = {":path": "/m", "authorization": f"Bearer {API_KEY}"}
    with pytest.raises(Reject) as info:
        await p.on_request_headers(ex)
    assert info.value.status == 403
