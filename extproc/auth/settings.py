"""The auth parts of the config, validated with every error named by its key path.

Top level (shared by routes, so one JWKS is fetched and cached once)::

    auth:
      jwt_providers:
        corp:                                   # a name routes refer to
          issuer: https://idp.example.com/      # required: the exact `iss`
          audiences: [llm-gateway]              # required; [] turns the audience check off
          jwks: {url: https://idp.example.com/.well-known/jwks.json,
                 timeout_s: 2, refresh_s: 300, min_refetch_s: 15}
                # or {file: jwks.json} or {inline: {keys: [...]}} (`auth.jwks_settings`); a
                # url is https (http only to a loopback host), fetched without redirects
          algorithms: [RS256]                   # RS*, PS*, ES*, EdDSA; HS* needs shared_secret
          shared_secret: {env: CORP_HS_SECRET}  # or {file: ...}; only for HS256/384/512, at
                                                # least 32/48/64 bytes (the hash's length)
          leeway_s: 60                          # clock skew allowed on exp, nbf and iat
          required_claims: [email]              # besides exp, iss and sub, always required
          max_lifetime: 1h                      # optional: refuse tokens without iat, or
                                                # whose exp - iat is longer
          subject_namespace: jwt:corp           # the default: subjects are jwt:corp:<sub>
      api_keys:
        - {id: ci-bot, sha256: <hex>, subject: ci-bot, claims: {scope: chat}, revoked: false,
           subject_namespace: key}              # the default: the subject is key:ci-bot

Subjects are namespaced (see `auth.policy`): a JWT's is `jwt:<provider>:<sub>`, an API key's
`key:<subject>`, so equal raw subjects from different sources are different people. Giving
sources the same `subject_namespace` says they are the same people (one IdP under two
provider names, or API keys issued to the IdP's users: `subject_namespace: corp` on both makes
`corp:alice`); `""` keeps bare subjects and is accepted only if every source uses it. Two
distinct namespaces where one followed by ':' begins the other (`jwt` and `jwt:corp`) could
spell the same subject, and are refused. A token's `sub` must be a non-empty string.

Per route::

    auth:
      jwt: [corp]                 # providers accepted on this route
      api_keys: true              # also accept the keys above
      header: authorization       # default: Authorization: Bearer, then the provider's own
                                  # key header (x-api-key, api-key, x-goog-api-key)
      scopes: [chat]              # all required (403 otherwise)
      claims: {team: [ml, infra]} # claim must have one of these values, of the same JSON
                                  # type (true is not 1; 403 otherwise);
                                  # `sub` values are namespaced: {sub: [jwt:corp:alice]}
      forward_claims: {sub: x-gateway-subject}
      max_token_bytes: 16384
      cache_size: 10000           # verified tokens kept (0 turns the cache off)
    upstream_credential: {env: OPENAI_API_KEY}   # or {file: /run/secrets/openai}

Relative file paths are relative to the config file's directory.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..limits.settings import parse_duration
from ..schema import Checker, join
from .apikeys import ApiKey, ApiKeyStore
from .credentials import CLIENT_CREDENTIAL_HEADERS, Secret, SecretError, UpstreamCredential
from .jwks_settings import parse_jwks
from .keys import ALGORITHMS, MIN_SECRET_BYTES, SYMMETRIC
from .policy import RouteAuth
from .verify import JWTProvider

_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9a-z-]+$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_NAMESPACE = re.compile(r"^[A-Za-z0-9._@/-]+(:[A-Za-z0-9._@/-]+)*$")
_RESERVED_HEADERS = {"host", "content-length", "content-type", "transfer-encoding",
                     "connection", "te", "upgrade"}


@dataclass
class AuthSettings:
    providers: dict[str, JWTProvider] = field(default_factory=dict)
    api_keys: ApiKeyStore | None = None


def parse_auth(c: Checker, raw: Any, base: Path) -> AuthSettings:
    d = c.mapping(raw, "auth", ("jwt_providers", "api_keys"))
    out = AuthSettings()
    providers = c.mapping(d.get("jwt_providers"), "auth.jwt_providers", d.get(
        "jwt_providers") or {})
    for name, spec in providers.items():
        p = _provider(c, str(name), spec, join("auth.jwt_providers", str(name)), base)
        if p is not None:
            out.providers[str(name)] = p
    namespaces: dict[str, str] = {f"auth.jwt_providers.{n}": p.namespace
                                  for n, p in out.providers.items()}
    if "api_keys" in d:
        keys = []
        for i, item in enumerate(c.sequence(d.get("api_keys"), "auth.api_keys")):
            if (k := _api_key(c, item, join("auth.api_keys", i))) is not None:
                keys.append(k)
                namespaces[join("auth.api_keys", i)] = k.subject_namespace
        seen: set[str] = set()
        hashes: dict[str, str] = {}
        for k in keys:
            if k.id in seen:
                c.error("auth.api_keys", f"duplicate id {k.id!r}")
            seen.add(k.id)
            # one key, two entries: the store keeps one, so a revocation (or a subject) in
            # the other would silently do nothing
            if k.sha256 in hashes:
                c.error("auth.api_keys", f"keys {hashes[k.sha256]!r} and {k.id!r} have the "
                        "same sha256: one key is one entry (revoke it there)")
            hashes.setdefault(k.sha256, k.id)
        out.api_keys = ApiKeyStore(keys)
    _check_namespaces(c, namespaces)
    return out


def _check_namespaces(c: Checker, namespaces: Mapping[str, str]) -> None:
    """Distinct subject namespaces must never spell the same subject."""
    distinct = sorted(set(namespaces.values()))
    if "" in distinct and len(distinct) > 1:
        where = next(p for p, ns in namespaces.items() if ns == "")
        c.error(join(where, "subject_namespace"),
                "'' (bare subjects) can spell any other source's namespaced subject: use it "
                "on every JWT provider and API key, or on none")
        return
    for a in distinct:
        for b in distinct:
            if a != b and b.startswith(a + ":"):
                where = next(p for p, ns in namespaces.items() if ns == b)
                c.error(join(where, "subject_namespace"),
                        f"{b!r} begins with {a + ':'!r} (another source's namespace): their "
                        "subjects could collide; give one another name")


def _subject_namespace(c: Checker, d: Mapping[str, Any], path: str) -> str | None:
    """An optional `subject_namespace`: None when absent, '' allowed (bare subjects)."""
    if "subject_namespace" not in d:
        return None
    value = d["subject_namespace"]
    if not isinstance(value, str) or (value and not _NAMESPACE.match(value)):
        c.error(join(path, "subject_namespace"), f"expected a namespace like 'corp' or "
                f"'jwt:corp' (letters, digits, . _ - : @ /, not ending in ':'), got {value!r}")
        return None
    return value


def _strings(c: Checker, d: Mapping[str, Any], key: str, path: str,
             default: tuple[str, ...] = ()) -> tuple[str, ...]:
    if key not in d:
        return default
    items = c.sequence(d.get(key), join(path, key))
    for i, item in enumerate(items):
        if not isinstance(item, str) or not item:
            c.error(join(join(path, key), i), f"expected a non-empty string, got {item!r}")
    return tuple(i for i in items if isinstance(i, str) and i)


def _provider(c: Checker, name: str, raw: Any, path: str, base: Path) -> JWTProvider | None:
    before = len(c.errors)
    d = c.mapping(raw, path, ("issuer", "audiences", "jwks", "algorithms", "shared_secret",
                              "leeway_s", "required_claims", "max_lifetime",
                              "subject_namespace"))
    issuer = c.string(d, "issuer", path, required=True)
    if "audiences" not in d:
        c.error(join(path, "audiences"), "is required (use [] to accept any audience)")
    audiences = _strings(c, d, "audiences", path)
    algorithms = _strings(c, d, "algorithms", path, ("RS256",))
    if "algorithms" in d and not algorithms and isinstance(d.get("algorithms"), list):
        c.error(join(path, "algorithms"), "is empty: no token could ever be accepted")
    for i, alg in enumerate(algorithms):
        if alg.lower() == "none":
            c.error(join(join(path, "algorithms"), i), "'none' is never accepted")
        elif alg not in ALGORITHMS:
            c.error(join(join(path, "algorithms"), i),
                    f"unknown algorithm {alg!r} (one of: {', '.join(ALGORITHMS)})")
    secret = None
    if "shared_secret" in d:
        ref = _secret(c, d.get("shared_secret"), join(path, "shared_secret"), base)
        if ref is not None:
            secret = ref.value().encode()
            need = max((MIN_SECRET_BYTES[a] for a in algorithms if a in MIN_SECRET_BYTES),
                       default=MIN_SECRET_BYTES["HS256"])
            if len(secret) < need:
                strongest = max((a for a in algorithms if a in MIN_SECRET_BYTES),
                                key=MIN_SECRET_BYTES.__getitem__, default="HS256")
                c.error(join(path, "shared_secret"),
                        f"must be at least {need} bytes ({need * 8} bits) for {strongest}, "
                        f"the length of its hash (got {len(secret)})")
    symmetric = [a for a in algorithms if a in SYMMETRIC]
    if symmetric and "shared_secret" not in d:
        c.error(join(path, "algorithms"),
                f"{', '.join(symmetric)} need shared_secret (keys from a JWKS never serve as "
                "HMAC secrets)")
    keys = None
    if any(a not in SYMMETRIC for a in algorithms):
        if "jwks" not in d:
            c.error(join(path, "jwks"), "is required for asymmetric algorithms")
        else:
            keys = parse_jwks(c, d.get("jwks"), join(path, "jwks"), base)
    leeway = c.number(d, "leeway_s", path, 60.0)
    required = _strings(c, d, "required_claims", path, ("sub",))
    lifetime = None
    if "max_lifetime" in d:
        lifetime = parse_duration(d["max_lifetime"])
        if lifetime is None:
            c.error(join(path, "max_lifetime"), "expected a duration like 15m, 1h or 1d (or a "
                    f"number of seconds > 0), got {d['max_lifetime']!r}")
    namespace = _subject_namespace(c, d, path)
    if len(c.errors) > before or issuer is None:
        return None
    return JWTProvider(name=name, issuer=issuer, audiences=audiences, keys=keys,
                       algorithms=algorithms, shared_secret=secret, leeway_s=float(leeway),
                       required_claims=required, max_lifetime_s=lifetime,
                       subject_namespace=namespace)


def _secret(c: Checker, raw: Any, path: str, base: Path) -> Secret | None:
    d = c.mapping(raw, path, ("env", "file"))
    if raw is None or len([k for k in ("env", "file") if k in d]) != 1:
        c.error(path, "needs exactly one of: env (a variable name), file (a path); "
                "secrets are never written in the config itself")
        return None
    env, f = c.string(d, "env", path), c.string(d, "file", path)
    secret = Secret(env=env) if env else Secret(file=str(base / f)) if f else None
    if secret is None:
        return None
    try:
        secret.load()
    except SecretError as exc:
        c.error(path, str(exc))
        return None
    return secret


def _api_key(c: Checker, raw: Any, path: str) -> ApiKey | None:
    before = len(c.errors)
    d = c.mapping(raw, path, ("id", "sha256", "subject", "claims", "revoked",
                              "subject_namespace"))
    key_id = c.string(d, "id", path, required=True)
    digest = c.string(d, "sha256", path, required=True)
    if digest is not None and not _HEX64.match(digest.lower()):
        c.error(join(path, "sha256"), "expected 64 hex digits (the SHA-256 of the key; "
                "`extproc api-key` prints one)")
        digest = None
    subject = c.string(d, "subject", path, key_id)
    claims = c.mapping(d.get("claims"), join(path, "claims"), d.get("claims") or {})
    if "sub" in claims:
        c.error(join(join(path, "claims"), "sub"), "a key's subject is set by `subject:` "
                "(and namespaced), not by a claim")
    revoked = c.boolean(d, "revoked", path, False)
    namespace = _subject_namespace(c, d, path)
    if len(c.errors) > before or key_id is None or digest is None or subject is None:
        return None
    return ApiKey(id=key_id, sha256=digest.lower(), subject=subject,
                  claims={**claims, "sub": subject}, revoked=revoked,
                  subject_namespace="key" if namespace is None else namespace)


def parse_route_auth(c: Checker, raw: Any, path: str, shared: AuthSettings) -> RouteAuth | None:
    before = len(c.errors)
    d = c.mapping(raw, path, ("jwt", "api_keys", "header", "scopes", "claims",
                              "forward_claims", "max_token_bytes", "cache_size"))
    names = _strings(c, d, "jwt", path)
    providers = []
    for i, n in enumerate(names):
        if n not in shared.providers:
            known = ", ".join(shared.providers) or "none defined under auth.jwt_providers"
            c.error(join(join(path, "jwt"), i), f"unknown JWT provider {n!r} (known: {known})")
        elif any(p.issuer == shared.providers[n].issuer for p in providers):
            # a token is checked by the first provider of its issuer alone: the second's
            # audience, claims and lifetime would never apply (found by review)
            first = next(p.name for p in providers if p.issuer == shared.providers[n].issuer)
            c.error(join(join(path, "jwt"), i),
                    f"JWT providers {first!r} and {n!r} have the same issuer "
                    f"{shared.providers[n].issuer!r}: a token would be checked by {first!r} "
                    "alone; give each issuer one provider on a route")
        else:
            providers.append(shared.providers[n])
    use_keys = c.boolean(d, "api_keys", path, False)
    if use_keys and shared.api_keys is None:
        c.error(join(path, "api_keys"), "no keys are defined under auth.api_keys")
    if not names and not use_keys:
        c.error(path, "accepts no credential: name JWT providers (jwt: [...]) and/or set "
                "api_keys: true")
    header = c.string(d, "header", path)
    if header is not None:
        header = header.lower()
        if not _TOKEN.match(header):
            c.error(join(path, "header"), f"not a valid header name: {header!r}")
    scopes = _strings(c, d, "scopes", path)
    claims: dict[str, tuple[Any, ...]] = {}
    for k, v in c.mapping(d.get("claims"), join(path, "claims"), d.get("claims") or {}).items():
        claims[str(k)] = tuple(v) if isinstance(v, list) else (v,)
    if "sub" in claims:
        spaces = {p.namespace for p in providers} | (
            {k.subject_namespace for k in shared.api_keys.keys()}
            if use_keys and shared.api_keys is not None else set())
        for value in claims["sub"]:
            if not isinstance(value, str) or not any(
                    not ns or (value.startswith(ns + ":") and len(value) > len(ns) + 1)
                    for ns in spaces):
                example = next(iter(sorted(spaces)), "jwt:<provider>") or "jwt:<provider>"
                c.error(join(join(path, "claims"), "sub"),
                        f"subjects are namespaced: {value!r} is no subject this route can "
                        f"see (write e.g. '{example}:{value}'; namespaces here: "
                        f"{', '.join(sorted(spaces)) or 'none'})")
    forward: dict[str, str] = {}
    raw_fwd = d.get("forward_claims") or {}
    for k, v in c.mapping(raw_fwd, join(path, "forward_claims"), raw_fwd).items():
        where = join(join(path, "forward_claims"), str(k))
        if not isinstance(v, str) or not _TOKEN.match(v.lower()):
            c.error(where, f"expected a header name, got {v!r}")
        elif v.lower() in _RESERVED_HEADERS or v.lower() in CLIENT_CREDENTIAL_HEADERS \
                or v.startswith(":") or v.lower().startswith("x-envoy-"):
            c.error(where, f"{v!r} cannot carry a claim")
        else:
            forward[str(k)] = v.lower()
    max_bytes = c.number(d, "max_token_bytes", path, 16384, minimum=256, integer=True)
    cache = c.number(d, "cache_size", path, 10000, integer=True)
    if len(c.errors) > before:
        return None
    return RouteAuth(jwt=tuple(providers), api_keys=shared.api_keys if use_keys else None,
                     header=header, scopes=scopes, claims=claims, forward_claims=forward,
                     max_token_bytes=int(max_bytes), cache_size=int(cache))


def parse_credential(c: Checker, raw: Any, path: str, provider: str,
                     base: Path) -> UpstreamCredential | None:
    secret = _secret(c, raw, path, base)
    return UpstreamCredential(provider, secret) if secret is not None else None
