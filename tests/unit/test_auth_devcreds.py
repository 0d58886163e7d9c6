"""`extproc.auth.devcreds`: a config that trusts the development credentials published with
extproc (the signing key `extproc token` uses, the README's API key) is found by content,
whatever the file is called or however the JWKS is written, and the opt-in is read from the
flag or the environment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from jwt.algorithms import RSAAlgorithm

from extproc import loader
from extproc.auth import devcreds, devkey, devtoken
from extproc.auth.apikeys import hash_key
from extproc.auth.jwks import RemoteJWKS
from extproc.auth.verify import AuthError
from extproc.schema import ConfigError

REPO = Path(__file__).resolve().parents[2]
DEV_JWKS = json.loads((REPO / "config" / "dev-jwks.json").read_text())


def other_jwks() -> dict[str, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    return {"keys": [{**RSAAlgorithm.to_jwk(key, as_dict=True), "kid": "extproc-dev-1"}]}


def config(tmp_path: Path, jwks: dict[str, Any] | None = None,
           api_key_sha256: str | None = None, revoked: bool = False) -> Any:
    """A config whose one route trusts `jwks` (a JWKS spec: file, inline) and/or a key."""
    auth: dict[str, Any] = {}
    route_auth: dict[str, Any] = {}
    if jwks is not None:
        auth["jwt_providers"] = {"corp": {"issuer": "https://idp.example.com/",
                                          "audiences": ["gw"], "jwks": jwks}}
        route_auth["jwt"] = ["corp"]
    if api_key_sha256 is not None:
        auth["api_keys"] = [{"id": "ci", "sha256": api_key_sha256, "revoked": revoked}]
        route_auth["api_keys"] = True
    doc: dict[str, Any] = {"routes": [{"name": "chat", "provider": "openai",
                                       **({"auth": route_auth} if route_auth else {})}]}
    if auth:
        doc["auth"] = auth
    return loader.parse(doc, source=str(tmp_path / "gateway.yaml"))


def test_the_written_key_is_the_public_half_of_the_shipped_signing_key() -> None:
    """The constants are the key `extproc token` signs with, and config/dev-jwks.json's."""
    key = load_pem_private_key(devtoken.DEV_KEY.read_bytes(), password=None)
    numbers = key.public_key().public_numbers()
    assert (numbers.n, numbers.e) == (devkey.DEV_RSA_N, devkey.DEV_RSA_E)
    assert devcreds.DEV_API_KEY_SHA256 == hash_key("gw-local-dev-key-DEV-ONLY")


def test_the_reference_config_is_found_trusting_both(tmp_path: Path) -> None:
    found = devcreds.dev_credentials(loader.load(REPO / "config" / "gateway.yaml"))
    assert [f.what for f in found] == ["JWT provider 'local-dev'", "API key 'local-dev-key'"]


def test_the_dev_jwks_is_found_in_a_file_of_any_name(tmp_path: Path) -> None:
    (tmp_path / "corp-keys.json").write_text(json.dumps(DEV_JWKS))
    found = devcreds.dev_credentials(config(tmp_path, {"file": "corp-keys.json"}))
    assert [f.what for f in found] == ["JWT provider 'corp'"]
    assert "development signing key" in found[0].why


def test_the_dev_key_is_found_inline_among_others_and_without_its_kid(tmp_path: Path) -> None:
    dev = {k: v for k, v in DEV_JWKS["keys"][0].items() if k not in ("kid", "alg")}
    inline = {"keys": [*other_jwks()["keys"], {**dev, "kid": "renamed"}]}
    found = devcreds.dev_credentials(config(tmp_path, {"inline": inline}))
    assert [f.what for f in found] == ["JWT provider 'corp'"]


def test_another_key_is_not_found_even_under_the_dev_kid(tmp_path: Path) -> None:
    (tmp_path / "dev-jwks.json").write_text(json.dumps(other_jwks()))
    assert devcreds.dev_credentials(config(tmp_path, {"file": "dev-jwks.json"})) == []
    assert devcreds.dev_credentials(config(tmp_path, {"inline": other_jwks()})) == []


def test_a_url_jwks_is_not_known_at_start(tmp_path: Path) -> None:
    cfg = config(tmp_path, {"url": "https://idp.example.com/.well-known/jwks.json"})
    assert devcreds.dev_credentials(cfg) == []


def _remote(body: bytes) -> RemoteJWKS:
    async def fetch(url: str, timeout_s: float) -> bytes:
        return body
    return RemoteJWKS("https://idp.example.com/jwks.json", fetch)


async def test_a_url_that_serves_the_dev_key_loses_it_when_fetched(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """(found by this stop's review) a URL serving the shipped JWKS (a raw GitHub link to
    config/dev-jwks.json) must not open the gateway where a file holding it may not: the
    key is dropped when fetched, and a token it signed finds no key."""
    monkeypatch.delenv(devkey.ALLOW_ENV, raising=False)
    others = [{**k, "kid": "corp-1"} for k in other_jwks()["keys"]]
    src = _remote(json.dumps({"keys": [DEV_JWKS["keys"][0], *others]}).encode())
    assert await src.candidates(devtoken.DEV_KID, "RS256") == []
    assert len(await src.candidates("corp-1", "RS256")) == 1     # the other key stays
    only_dev = _remote(json.dumps(DEV_JWKS).encode())
    with pytest.raises(AuthError):
        await only_dev.candidates(devtoken.DEV_KID, "RS256")     # no usable key at all
    assert only_dev.last_error is not None and "no usable signing keys" in only_dev.last_error


async def test_a_url_serving_the_dev_key_is_trusted_when_allowed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(devkey.ALLOW_ENV, "1")
    src = _remote(json.dumps(DEV_JWKS).encode())
    keys = await src.candidates(devtoken.DEV_KID, "RS256")
    assert len(keys) == 1 and devkey.is_dev_key(keys[0])


async def test_serve_checks_the_config_it_loads_itself(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """(found by this stop's review) `extproc serve` checks before it starts, but a worker
    the supervisor restarts loads the file again: every load about to serve is checked,
    and a refused worker exits 2, which the supervisor does not restart."""
    from extproc import server, workers
    monkeypatch.delenv(devkey.ALLOW_ENV, raising=False)
    path = REPO / "config" / "gateway.yaml"
    opts = server.ServeOptions(str(path), addresses=("127.0.0.1:0",), admin_port=None)
    with pytest.raises(ConfigError, match="trusts the development credentials"):
        await server.serve(opts)
    assert workers.run_workers(server.ServeOptions(
        str(path), addresses=("127.0.0.1:0",), admin_port=None, workers=2)) == 2


def test_the_dev_api_key_is_found_by_its_hash(tmp_path: Path) -> None:
    found = devcreds.dev_credentials(config(tmp_path, api_key_sha256=hash_key(
        devtoken.DEV_API_KEY).upper()))    # the config may spell the hex in capitals
    assert [f.what for f in found] == ["API key 'ci'"]
    assert devtoken.DEV_API_KEY in found[0].why


def test_another_api_key_or_a_revoked_dev_key_is_not_found(tmp_path: Path) -> None:
    assert devcreds.dev_credentials(config(tmp_path, api_key_sha256=hash_key("gw-mine"))) == []
    assert devcreds.dev_credentials(config(tmp_path, api_key_sha256=devcreds.DEV_API_KEY_SHA256,
                                           revoked=True)) == []


def test_only_what_a_route_accepts_counts(tmp_path: Path) -> None:
    """Defined but trusted by no route: no one gets in with it."""
    (tmp_path / "dev.json").write_text(json.dumps(DEV_JWKS))
    doc = {"auth": {"jwt_providers": {"dev": {"issuer": "i", "audiences": [],
                                              "jwks": {"file": "dev.json"}}},
                    "api_keys": [{"id": "dev", "sha256": devcreds.DEV_API_KEY_SHA256}]},
           "routes": [{"name": "chat", "provider": "openai"}]}
    cfg = loader.parse(doc, source=str(tmp_path / "gateway.yaml"))
    assert devcreds.dev_credentials(cfg) == []


@pytest.mark.parametrize(("flag", "env", "allowed"), [
    (True, {}, True),
    (False, {"EXTPROC_ALLOW_DEV_CREDENTIALS": "1"}, True),
    (False, {"EXTPROC_ALLOW_DEV_CREDENTIALS": "true"}, True),
    (False, {"EXTPROC_ALLOW_DEV_CREDENTIALS": " Yes "}, True),
    (False, {}, False),
    (False, {"EXTPROC_ALLOW_DEV_CREDENTIALS": "0"}, False),
    (False, {"EXTPROC_ALLOW_DEV_CREDENTIALS": ""}, False),
    (False, {"EXTPROC_ALLOW_DEV_CREDENTIALS": "false"}, False),
])
def test_the_opt_in_is_the_flag_or_the_environment(flag: bool, env: dict[str, str],
                                                    allowed: bool) -> None:
    assert devkey.allowed(flag, env) is allowed


def test_the_refusal_names_what_is_trusted_and_both_ways_on() -> None:
    found = devcreds.dev_credentials(loader.load(REPO / "config" / "gateway.yaml"))
    text = devcreds.refusal("config/gateway.yaml", found)
    assert text.startswith("config/gateway.yaml trusts the development credentials")
    assert "JWT provider 'local-dev'" in text and "API key 'local-dev-key'" in text
    assert "--allow-dev-credentials" in text and "EXTPROC_ALLOW_DEV_CREDENTIALS=1" in text
    line = devcreds.warning(found)
    assert "\n" not in line and "trusts published development credentials" in line


def test_the_local_stacks_opt_in_and_the_image_and_manifests_do_not() -> None:
    """docker compose is the local stack and says so; the image's default command (run
    elsewhere with real provider keys) and the Kubernetes manifests never do."""
    import yaml
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert compose["services"]["extproc"]["environment"][devcreds.ALLOW_ENV] == "1"
    dockerfile = (REPO / "Dockerfile").read_text()
    cmd = next(line for line in dockerfile.splitlines() if line.startswith("CMD"))
    assert "/app/config/gateway.yaml" in cmd and devcreds.ALLOW_FLAG not in dockerfile
    assert not any(line.startswith(("ENV", "ARG")) and devcreds.ALLOW_ENV in line
                   for line in dockerfile.splitlines())
    for path in (REPO / "deploy").rglob("*.yaml"):
        text = path.read_text()
        assert devcreds.ALLOW_ENV not in text and devcreds.ALLOW_FLAG not in text, path
