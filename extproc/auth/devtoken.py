"""`extproc token`: mint a JWT for the local stack, signed by the development key.

The development key ships in the package (extproc/dev/) for the local stack only; its public
half is config/dev-jwks.json, trusted by config/gateway.yaml under the issuer below. A
production config never trusts it. `--key` signs with another PEM key instead.
"""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jwt

if TYPE_CHECKING:
    from ..config import RouteConfig

DEV_KEY = Path(__file__).resolve().parent.parent / "dev" / "DEV-ONLY-jwt-signing-key.pem"
DEV_KID = "extproc-dev-1"
DEV_ISSUER = "extproc-local-dev"
DEV_AUDIENCE = "llm-gateway"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(text: str) -> int:
    """'90', '90s', '15m', '1h', '7d' -> seconds."""
    m = re.fullmatch(r"(\d+)([smhd]?)", text.strip())
    if not m:
        raise ValueError(f"expected a duration like 90s, 15m, 1h or 7d, got {text!r}")
    return int(m.group(1)) * _UNITS[m.group(2) or "s"]


def mint(sub: str, *, scopes: list[str] | None = None, ttl_s: int = 3600,
         issuer: str = DEV_ISSUER, audience: str = DEV_AUDIENCE,
         claims: dict[str, Any] | None = None, key_pem: bytes | None = None,
         kid: str | None = DEV_KID, algorithm: str = "RS256", now: float | None = None) -> str:
    """A signed token for `sub`."""
    now = time.time() if now is None else now
    payload: dict[str, Any] = {"iss": issuer, "sub": sub, "aud": audience, "iat": int(now),
                               "nbf": int(now), "exp": int(now) + ttl_s,
                               "jti": uuid.uuid4().hex}
    if scopes:
        payload["scope"] = " ".join(scopes)
    payload.update(claims or {})
    key = key_pem if key_pem is not None else DEV_KEY.read_bytes()
    headers = {"kid": kid} if kid else None
    return jwt.encode(payload, key, algorithm=algorithm, headers=headers)


_CURVES = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}


def algorithm_for(key_pem: bytes) -> str:
    """The JWS algorithm to sign with a PEM private key: RS256 for RSA, ES256/384/512 for
    the P-256/384/521 curves, EdDSA for Ed25519 and Ed448; ValueError saying what is wrong
    with any other key (or with what is not a PEM private key)."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    try:
        key = load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        reason = "it is encrypted" if "encrypted" in str(exc).lower() or "password" in \
            str(exc).lower() else "it is not an unencrypted PEM private key"
        raise ValueError(f"cannot sign with it: {reason}") from None
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name in _CURVES:
        return _CURVES[key.curve.name]
    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return "EdDSA"
    what = f"an EC key on {key.curve.name}" if isinstance(key, ec.EllipticCurvePrivateKey) \
        else "this kind of key"
    raise ValueError(f"cannot sign with {what}: use RSA, an EC key on P-256, P-384 or "
                     "P-521, Ed25519 or Ed448")


#: the local stack's development API key (config/gateway.yaml holds only its sha256)
DEV_API_KEY = "gw-local-dev-key-DEV-ONLY"


def dev_authorization(route: RouteConfig | None) -> str | None:
    """The Authorization value that gets a request onto `route` with the development
    credentials, for the line `extproc up` prints: "" when the route asks for none, None when
    it asks for one they cannot make (a production issuer, a provider header, claims)."""
    from .policy import Authenticate
    auth = next((p.auth for p in (route.policies if route else ())
                 if isinstance(p, Authenticate)), None)
    if auth is None:
        return ""
    if auth.header is not None or auth.claims:
        return None
    if auth.api_keys is not None and auth.api_keys.lookup(DEV_API_KEY) is not None \
            and not auth.scopes:
        return f"Bearer {DEV_API_KEY}"
    if any(p.issuer == DEV_ISSUER and DEV_AUDIENCE in p.audiences for p in auth.jwt):
        return f"Bearer {mint('local-dev', scopes=list(auth.scopes), ttl_s=12 * 3600)}"
    return None
