"""Finds where a loaded config trusts the development credentials that ship with extproc.

Its one job: `dev_credentials(config)` names each JWT provider whose file or inline JWKS
holds the public half of the development signing key (extproc/dev/, which `extproc token`
signs with: anyone can), and each API key whose hash is that of the development key the
README publishes. `extproc serve` refuses such a config unless the operator says this is a
development setup (`allowed`): copied into production, it is a gateway anyone can use with
the provider keys it injects. Detection is by content (the key's RSA modulus and exponent,
the key's SHA-256), not by file name, so a renamed or inlined copy is found too. A JWKS
fetched from a URL is not known at start: the development key is dropped from it when it is
fetched instead (`devkey.without_dev_key`), unless this process allows it.

Sans-IO: the development public key is written in `devkey` (a unit test keeps it equal to
the shipped private key's public half).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .apikeys import hash_key
from .devkey import ALLOW_ENV, ALLOW_FLAG, is_dev_key
from .devtoken import DEV_API_KEY
from .jwks import StaticKeys
from .policy import Authenticate

if TYPE_CHECKING:
    from ..config import Config, RouteConfig

DEV_API_KEY_SHA256 = hash_key(DEV_API_KEY)


@dataclass(frozen=True)
class DevCredential:
    """One thing in a config that lets in whoever holds a published credential."""

    what: str     # "JWT provider 'local-dev'", "API key 'local-dev-key'"
    why: str      # what makes it the development one

    def __str__(self) -> str:
        return f"{self.what}: {self.why}"


def dev_credentials(config: Config) -> list[DevCredential]:
    """What in `config` trusts the published development credentials (in config order, each
    provider and key once); [] when nothing does. Only what a route accepts counts: a
    provider no route names, or a revoked key, lets no one in."""
    found: dict[DevCredential, None] = {}
    for route in _routes(config.routes.values()):
        for policy in route.policies:
            if not isinstance(policy, Authenticate) or policy.auth is None:
                continue
            for provider in policy.auth.jwt:
                if isinstance(provider.keys, StaticKeys) and _holds_dev_key(provider.keys):
                    found[DevCredential(f"JWT provider {provider.name!r}",
                                        "its JWKS holds the development signing key, whose "
                                        "private half ships with extproc (`extproc token` "
                                        "signs with it)")] = None
            store = policy.auth.api_keys
            for key in store.keys() if store is not None else ():
                if key.sha256 == DEV_API_KEY_SHA256 and not key.revoked:
                    found[DevCredential(f"API key {key.id!r}", "its hash is that of "
                                        f"{DEV_API_KEY}, published in the README")] = None
    return list(found)


def refusal(source: str, found: list[DevCredential]) -> str:
    """Why a server on `source` does not start, and the two ways on (for stderr)."""
    lines = [f"{source} trusts the development credentials published with extproc, so "
             "anyone could use this gateway and the provider keys it injects:"]
    lines += [f"  - {item}" for item in found]
    lines.append("Production: trust your identity provider's JWKS (jwks: {url: ...}) and "
                 "your own API key hashes (`extproc api-key` makes one). A local development "
                 f"stack only: say so with {ALLOW_FLAG} or {ALLOW_ENV}=1.")
    return "\n".join(lines)


def warning(found: list[DevCredential]) -> str:
    """The one line logged when the development credentials are allowed."""
    return ("the gateway trusts published development credentials ("
            + ", ".join(item.what for item in found) + "): anyone can use it; allowed by "
            f"{ALLOW_FLAG} or {ALLOW_ENV}, for local development only")


def _routes(routes: Iterable[RouteConfig]) -> Iterable[RouteConfig]:
    for route in routes:
        yield route
        yield from _routes(route.variants.values())


def _holds_dev_key(source: StaticKeys) -> bool:
    return any(is_dev_key(key) for key in source.keyset.keys)
