"""JSON Web Key sets, parsed once into verification keys (sans-IO).

Only public signing keys are kept: RSA, EC and OKP keys whose `use` is absent or `sig`.
Symmetric (`oct`) keys in a JWKS are ignored on purpose: HS* tokens verify only against a
shared secret the config names explicitly, so no published key can ever be used as an HMAC
secret (the RS256/HS256 algorithm-confusion attack). An RSA key under `MIN_RSA_BITS` (2048)
is skipped with the reason in `KeySet.skipped` (logged by its source): PyJWT only warns,
and a 512-bit or smaller modulus can be factored, letting anyone sign tokens.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jwt

#: which key type (and curve) each asymmetric algorithm needs
_FAMILY: dict[str, tuple[str, str | None]] = {
    **{f"RS{n}": ("RSA", None) for n in (256, 384, 512)},
    **{f"PS{n}": ("RSA", None) for n in (256, 384, 512)},
    "ES256": ("EC", "P-256"), "ES384": ("EC", "P-384"), "ES512": ("EC", "P-521"),
    "ES256K": ("EC", "secp256k1"),
    "EdDSA": ("OKP", None),
}
ASYMMETRIC = tuple(_FAMILY)
SYMMETRIC = ("HS256", "HS384", "HS512")
#: the smallest RSA modulus a key may have (NIST SP 800-131A); smaller keys are skipped
MIN_RSA_BITS = 2048
#: the shortest shared secret each HMAC algorithm accepts: its hash's length (RFC 7518 3.2)
MIN_SECRET_BYTES = {"HS256": 32, "HS384": 48, "HS512": 64}
ALGORITHMS = ASYMMETRIC + SYMMETRIC


class KeySetError(ValueError):
    """A JWKS document that cannot be used at all."""


@dataclass(frozen=True)
class Key:
    """One public verification key."""

    kid: str | None
    kty: str
    crv: str | None
    alg: str | None      # the JWK's own `alg`, when it pins one
    key: Any             # a `cryptography` public key object

    def fits(self, alg: str) -> bool:
        """May this key verify a token signed with `alg`?"""
        family = _FAMILY.get(alg)
        if family is None or family[0] != self.kty:
            return False
        if family[1] is not None and family[1] != self.crv:
            return False
        return self.alg is None or self.alg == alg


class KeySet:
    """Keys by `kid`; a token without `kid` may use any key that fits its algorithm."""

    def __init__(self, keys: list[Key], skipped: list[str] | None = None) -> None:
        self.keys = keys
        self.skipped = skipped or []   # why some entries were not used (for logs)
        self._by_kid: dict[str, list[Key]] = {}
        for k in keys:
            if k.kid is not None:
                self._by_kid.setdefault(k.kid, []).append(k)

    def __len__(self) -> int:
        return len(self.keys)

    def has_kid(self, kid: str) -> bool:
        return kid in self._by_kid

    def candidates(self, kid: str | None, alg: str) -> list[Key]:
        pool = self._by_kid.get(kid, []) if kid is not None else self.keys
        return [k for k in pool if k.fits(alg)]

    @classmethod
    def parse(cls, doc: Any) -> KeySet:
        """A KeySet from a JWKS document (dict, JSON text or bytes); raises KeySetError."""
        if isinstance(doc, bytes | str):
            try:
                doc = json.loads(doc)
            except ValueError as exc:
                raise KeySetError(f"not JSON: {exc}") from exc
        if not isinstance(doc, Mapping) or not isinstance(doc.get("keys"), list):
            raise KeySetError('expected a JSON object with a "keys" list')
        keys: list[Key] = []
        skipped: list[str] = []
        for i, jwk in enumerate(doc["keys"]):
            try:
                key = _parse_key(jwk)
            except (KeySetError, jwt.PyJWTError, ValueError, TypeError) as exc:
                skipped.append(f"keys[{i}]: {exc}")
                continue
            if key is None:
                skipped.append(f"keys[{i}]: not a public signing key (ignored)")
            else:
                keys.append(key)
        return cls(keys, skipped)


def _parse_key(jwk: Any) -> Key | None:
    if not isinstance(jwk, Mapping):
        raise KeySetError("a key must be a JSON object")
    kty = jwk.get("kty")
    if kty not in ("RSA", "EC", "OKP"):
        return None     # oct keys and unknown types are never used
    if jwk.get("use", "sig") != "sig":
        return None
    if "d" in jwk:
        raise KeySetError("private key material in a JWKS (refused)")
    alg = jwk.get("alg")
    if alg is not None and alg not in ASYMMETRIC:
        raise KeySetError(f"unsupported alg {alg!r}")
    kid = jwk.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise KeySetError("kid must be a string")
    parsed = jwt.PyJWK(dict(jwk), algorithm=alg or _default_alg(kty, jwk.get("crv")))
    if kty == "RSA":
        bits = getattr(parsed.key, "key_size", 0)
        if bits < MIN_RSA_BITS:
            raise KeySetError(f"RSA key of {bits} bits is under {MIN_RSA_BITS} (ignored)")
    crv = jwk.get("crv")
    return Key(kid=kid, kty=kty, crv=crv, alg=alg, key=parsed.key)


def _default_alg(kty: str, crv: Any) -> str:
    if kty == "RSA":
        return "RS256"
    if kty == "OKP":
        return "EdDSA"
    return {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512",
            "secp256k1": "ES256K"}.get(crv, "ES256")
