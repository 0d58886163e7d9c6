"""One JWT provider's checks: algorithm allow-list, signature, issuer, audience, time, claims.

Sans-IO apart from the key lookup, which is an awaitable the caller supplies (a `KeySource`).
Every failure is an `AuthError` whose message is safe to show the client: it names what was
wrong, never the token or a key.

Whatever `required_claims` says, a token must carry `exp`, `iss` and a `sub` that is a
non-empty string: the subject is who rate limits and logs count, so a token without one (or
with `""`, which every such token would share) names nobody and is refused. Its `exp`, `nbf`
and `iat` (when present) must be JSON numbers (PyJWT alone reads `"1700000000"` and `true`
as numbers). With `max_lifetime_s`, a token must also carry a numeric `iat`, and
`exp - iat` may not exceed it (no leeway: both are the issuer's own clock), so a long-lived
token minted by mistake or by a compromised client of the issuer is refused.
"""

from __future__ import annotations

import binascii
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import jwt
from jwt.utils import base64url_decode, base64url_encode

from .keys import ASYMMETRIC, MIN_SECRET_BYTES, SYMMETRIC, Key


class AuthError(Exception):
    """A credential was refused. `status` is 401 (who are you?) or 403 (not allowed)."""

    def __init__(self, message: str, status: int = 401, scope: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.scope = scope


class KeySource(Protocol):
    """Where a provider's keys come from (see `jwks`)."""

    async def candidates(self, kid: str | None, alg: str) -> list[Key]: ...


@dataclass(frozen=True)
class Verified:
    claims: Mapping[str, Any]
    exp: float | None
    #: the key set the signing key was found in (None: a shared secret): a cached token is
    #: good only while its issuer's keys are still that set (`auth.policy`)
    keyset: Any = None


@dataclass(frozen=True)
class JWTProvider:
    """Config of one token issuer."""

    name: str
    issuer: str
    audiences: tuple[str, ...]
    keys: KeySource | None
    algorithms: tuple[str, ...] = ("RS256",)
    shared_secret: bytes | None = None        # enables HS* (never from a JWKS)
    leeway_s: float = 60.0
    required_claims: tuple[str, ...] = ("sub",)
    max_lifetime_s: float | None = None       # refuse tokens whose exp - iat is longer
    subject_namespace: str | None = None      # None: "jwt:<name>" (see auth.policy)

    @property
    def namespace(self) -> str:
        """The prefix of this issuer's subjects: `jwt:<name>` unless configured."""
        return f"jwt:{self.name}" if self.subject_namespace is None else self.subject_namespace

    async def verify(self, token: str, header: Mapping[str, Any]) -> Verified:
        """Verify a token whose (unverified) header has been parsed already."""
        alg = header.get("alg")
        if not isinstance(alg, str) or alg.lower() == "none":
            raise AuthError("unsigned tokens (alg 'none') are not accepted")
        if alg not in self.algorithms:
            raise AuthError(f"token algorithm {_short(alg)} is not accepted by issuer "
                            f"{self.name!r} (accepted: {', '.join(self.algorithms)})")
        if alg in SYMMETRIC:
            if self.shared_secret is None:
                raise AuthError(f"token algorithm {_short(alg)} needs a shared secret")
            if len(self.shared_secret) < MIN_SECRET_BYTES[alg]:   # the config refuses these
                raise AuthError(f"token algorithm {_short(alg)} is not accepted by issuer "
                                f"{self.name!r} (its shared secret is too short for it)")
            return self._decode(token, self.shared_secret, alg)
        if alg not in ASYMMETRIC or self.keys is None:
            raise AuthError(f"token algorithm {_short(alg)} is not supported")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise AuthError("token header 'kid' must be a string")
        keys = await self.keys.candidates(kid, alg)
        if not keys:
            which = f"kid {_short(kid)}" if kid is not None else "no kid"
            raise AuthError(f"no signing key of issuer {self.name!r} matches the token "
                            f"({which}, alg {alg})")
        last: AuthError | None = None
        keyset = getattr(self.keys, "keyset", None)
        for key in keys:
            try:
                return replace(self._decode(token, key.key, alg), keyset=keyset)
            except AuthError as exc:
                if exc.message != _BAD_SIGNATURE:
                    raise
                last = exc
        assert last is not None
        raise last

    def _decode(self, token: str, key: Any, alg: str) -> Verified:
        required = ["exp", "iss", "sub", *self.required_claims]
        if self.max_lifetime_s is not None:
            required.append("iat")
        try:
            claims = jwt.decode(
                token, key, algorithms=[alg], audience=list(self.audiences) or None,
                issuer=self.issuer, leeway=self.leeway_s,
                options={"require": list(dict.fromkeys(required)),
                         "verify_aud": bool(self.audiences), "verify_iat": True,
                         "verify_sub": True})
        except jwt.PyJWTError as exc:
            raise AuthError(_reason(exc)) from None
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub.strip():
            raise AuthError(_BAD_SUBJECT)
        if self.max_lifetime_s is not None:
            self._check_lifetime(claims)
        for name in _TIME_CLAIMS:    # PyJWT reads "1700000000" and true as numbers
            if name in claims and not _is_number(claims[name]):
                raise AuthError(f"token {name!r} is not a number")
        exp = claims.get("exp")
        return Verified(claims=claims, exp=float(exp) if exp is not None else None)

    def _check_lifetime(self, claims: Mapping[str, Any]) -> None:
        assert self.max_lifetime_s is not None
        exp, iat = claims.get("exp"), claims.get("iat")
        for name, value in (("exp", exp), ("iat", iat)):
            if not _is_number(value):   # (an infinite or 400-digit one too: found by review,
                # a 500 spelling out the span)
                raise AuthError(f"token {name!r} is not a number (issuer {self.name!r} "
                                "limits token lifetime)")
        lifetime = exp - iat
        if not _is_number(lifetime):   # 1e308 - (-1e308): two finite numbers, no span
            raise AuthError(f"token lifetime (exp - iat) is beyond any the issuer "
                            f"{self.name!r} allows")
        if lifetime > self.max_lifetime_s:
            raise AuthError(f"token lifetime (exp - iat) of {_span(lifetime)} is longer than "
                            f"the {_span(self.max_lifetime_s)} issuer {self.name!r} allows")


#: the NumericDate claims (RFC 7519 2): JSON numbers, never strings or booleans
_TIME_CLAIMS = ("exp", "nbf", "iat")


def _is_number(value: Any) -> bool:
    """A finite JSON number (not a bool, which Python counts as an int) that a float holds
    (an integer of 400 digits is no date: `math.isfinite` would raise on it, a 500; found by
    review)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


_BAD_SIGNATURE = "token signature is invalid"
_BAD_SUBJECT = "token subject ('sub') must be a non-empty string"


def _span(seconds: float) -> str:
    """A duration for an error message: 3600 -> '1h', 90 -> '1m30s'."""
    if not _is_number(seconds) or abs(seconds) >= 1e12:
        return f"{seconds:g}s"
    total = int(seconds)
    if total != seconds or total <= 0:
        return f"{seconds:g}s"
    out = ""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if total >= size:
            out += f"{total // size}{unit}"
            total %= size
    return out


def _short(value: str, limit: int = 64) -> str:
    """A client-supplied value, quoted and cut short, for an error message."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "...'"


#: client-safe descriptions of PyJWT failures, most specific first
_REASONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "token has expired"),
    (jwt.ImmatureSignatureError, "token is not yet valid (nbf or iat in the future)"),
    (jwt.exceptions.InvalidSubjectError, _BAD_SUBJECT),
    (jwt.InvalidIssuedAtError, "token 'iat' is not a number"),
    (jwt.InvalidIssuerError, "token issuer is not accepted"),
    (jwt.InvalidAudienceError, "token audience is not accepted"),
    (jwt.InvalidSignatureError, _BAD_SIGNATURE),
    (jwt.InvalidAlgorithmError, "token algorithm is not accepted"),
    (jwt.InvalidKeyError, "token does not fit the issuer's keys"),
    (jwt.DecodeError, "token is malformed"),
)


def _reason(exc: jwt.PyJWTError) -> str:
    """A client-safe description of a PyJWT failure."""
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"token lacks the required claim {exc.claim!r}"
    for kind, text in _REASONS:
        if isinstance(exc, kind):
            return text
    return f"token is invalid ({type(exc).__name__})"


def read_header(token: str) -> dict[str, Any]:
    """The unverified JOSE header; AuthError if the token is not a compact JWS."""
    if token.count(".") != 2:
        raise AuthError("token is malformed (expected a JWT: three dot-separated parts)")
    try:
        header = jwt.get_unverified_header(token)
    except (jwt.PyJWTError, ValueError):  # ValueError: bytes that are not UTF-8 (surrogates)
        raise AuthError(f"token is malformed ({_bad_part(token)})") from None
    return header


def _bad_part(token: str) -> str:
    """Which part of a token PyJWT could not read (it decodes all three for the header)."""
    for name, part in zip(("header", "payload", "signature"), token.split("."), strict=True):
        try:
            raw = base64url_decode(part.encode("ascii"))
            if base64url_encode(raw) != part.rstrip("=").encode("ascii"):   # not canonical
                raise ValueError(name)
            if name != "signature" and not isinstance(json.loads(raw), dict):
                raise ValueError(name)
        except (ValueError, TypeError, binascii.Error, RecursionError):
            return f"{name} is not base64url" + ("" if name == "signature" else " JSON")
    return "it cannot be read"


def peek_issuer(token: str) -> str | None:
    """The unverified `iss` claim, only to choose which provider verifies the token."""
    try:
        claims = jwt.decode(token, options={"verify_signature": False})
    except (jwt.PyJWTError, ValueError):
        return None
    iss = claims.get("iss")
    return iss if isinstance(iss, str) else None


def scopes_of(claims: Mapping[str, Any]) -> set[str]:
    """Scopes from `scope` (separated by ASCII spaces: RFC 8693 4.2, RFC 6749 3.3) or `scp`
    (list or string). Only the space separates: `chat\u00a0admin` or `chat\tadmin` is one
    scope that names neither, not two."""
    out: set[str] = set()
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            out.update(s for s in value.split(" ") if s)
        elif isinstance(value, Sequence):
            out.update(v for v in value if isinstance(v, str))
    return out
