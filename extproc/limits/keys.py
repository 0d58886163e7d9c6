"""The key a limit counts a request under, built from its descriptors (sans-IO).

A key is the route, the limit's name and one value per descriptor (subject, API key, claim,
header, client IP, route, model), each escaped so no value can spell the separator of
another key; keys longer than 200 characters are hashed. `values` gives the descriptor
values by name, the readable label `extproc spend` shows for a spend limit's key.

The `model` descriptor is the model the provider acts on: on the unified front, the backend's
provider and model (`gemini/gemini-2.5-flash`), not the name the client sent, so an alias and
the model it names, or two patterns naming one backend model, count in one bucket.

The `subject` descriptor is the namespaced subject of `auth.policy` (`jwt:<provider>:<sub>`,
`key:<subject>`), so a JWT user and an API key with the same raw subject get separate buckets
unless the config gives them one namespace.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..context import Context

DESCRIPTORS = ("subject", "api_key", "client_ip", "route", "model")
PREFIXED = ("claim:", "header:")


def values(ex: Context, descriptors: Sequence[str], model: str | None, route: str
           ) -> list[str]:
    identity = ex.state.get("identity")
    return [descriptor(d, ex, identity, model, route) for d in descriptors]


def limit_key(route: str, name: str, parts: Sequence[str]) -> str:
    key = "\x1f".join(escape(p) for p in (route, name, *parts))
    return key if len(key) <= 200 else hashlib.sha256(key.encode()).hexdigest()


def escape(part: str) -> str:
    """A key part that cannot contain the separator (\\x1f), with what cannot be encoded
    (lone surrogates: undecodable header bytes, claims with invalid escapes) spelled out:
    distinct parts stay distinct."""
    if "\\" in part or "\x1f" in part:
        part = part.replace("\\", "\\\\").replace("\x1f", "\\x1f")
    if not part.isascii():
        part = part.encode("utf-8", "surrogatepass").decode("utf-8", "backslashreplace")
    return part


def descriptor(d: str, ex: Context, identity: Any, model: str | None, route: str) -> str:
    if d == "subject":
        return getattr(identity, "subject", "") or "-"
    if d == "api_key":
        return identity.source if identity is not None and identity.method == "api_key" \
            else "-"
    if d == "route":
        return route
    if d == "model":
        backend = ex.state.get("backend_provider")   # the unified front's (`front.policy`)
        if backend is not None:
            return f"{backend}/{ex.state.get('backend_model') or '-'}"
        return model or "-"
    if d == "client_ip":
        # the peer's address only where the gateway appends it (Envoy: use_remote_address;
        # docs/rate-limits.md, "Client addresses"); else whatever the client sent
        xff = ex.request_headers.get("x-forwarded-for", "")
        return xff.rsplit(",", 1)[-1].strip() or "-"
    if d.startswith("claim:"):
        value = identity.claims.get(d[6:]) if identity is not None else None
        return str(value) if value is not None else "-"
    return ex.request_headers.get(d[7:], "-")  # header:<name>
