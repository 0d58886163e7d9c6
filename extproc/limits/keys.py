r"""The key a limit counts a request under, built from its descriptors (sans-IO).

A key is the route, the limit's name and one value per descriptor (subject, API key, claim,
header, client IP, route, model), each escaped so no value can spell the separator of
another key; keys longer than 200 characters are hashed. `values` gives the descriptor
values by name, the readable label `extproc spend` shows for a spend limit's key.

The `model` descriptor is the model the provider acts on: on the unified front, the backend's
provider and model (`gemini/gemini-2.5-flash`), not the name the client sent, so an alias and
the model it names, or two patterns naming one backend model, count in one bucket. A dated
snapshot counts as the model it is a snapshot of (`model_family`): `claude-sonnet-4-5` and
`claude-sonnet-4-5-20250929` are one bucket, so switching spellings opens no second budget.

The `subject` descriptor is the namespaced subject of `auth.policy` (`jwt:<provider>:<sub>`,
`key:<subject>`), so a JWT user and an API key with the same raw subject get separate buckets
unless the config gives them one namespace.

A `claim:` descriptor keeps its JSON type: a string claim is its text (as it always was, so
existing keys stay), any other value is `\j` and its JSON (`\j1`, `\jtrue`, `\jnull`,
`\j["a","b"]`; numbers by value, so `1` and `1.0` are one), and an absent claim is `\-`.
No escaped string starts with `\j` or `\-` (`escape` doubles every backslash), so `1`,
`"1"`, `true` and `"True"` count in four buckets, and a missing claim is neither `null` nor
the string `"-"`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..context import Context

DESCRIPTORS = ("subject", "api_key", "client_ip", "route", "model")
PREFIXED = ("claim:", "header:")
#: the end of a model name that names one snapshot of the model the rest names: OpenAI's
#: dates (`-2024-08-06`, the older `-0613`), Anthropic's (`-20250929`, `@20250929` on
#: Vertex), Google's stable versions (`-001`, `@003` on Vertex) and dated previews
#: (`-preview-05-20`: the preview's), and `-latest`
_SNAPSHOT = re.compile(r"(?:-20\d\d-[01]\d-[0-3]\d|[-@]20\d{6}|-(?:0[1-9]|1[0-2])[0-3]\d"
                       r"|(?:(?<=-preview)|(?<=-exp))-[01]\d-[0-3]\d|-latest)$")
_VERSION = re.compile(r"[-@]\d{3}$")


def model_family(model: str) -> str:
    """The model a name stands for, without the snapshots it may end in (every date and
    `-latest`: `...-20250929-latest`; one version number at most, so a free-form name such
    as an Azure deployment's `team-100-200` keeps the rest): a per-model limit counts
    `gpt-4o` and `gpt-4o-2024-08-06` in one bucket (found by review: each dated name of a
    model the provider serves opened another budget)."""
    model = _dated(model)
    shorter = _VERSION.sub("", model)
    return _dated(shorter) if shorter else model


def _dated(model: str) -> str:
    while True:
        shorter = _SNAPSHOT.sub("", model)
        if not shorter or shorter == model:
            return model
        model = shorter


def values(ex: Context, descriptors: Sequence[str], model: str | None, route: str
           ) -> list[str]:
    identity = ex.state.get("identity")
    return [descriptor(d, ex, identity, model, route) for d in descriptors]


def limit_key(route: str, name: str, parts: Sequence[str]) -> str:
    key = "\x1f".join(escape(p) for p in (route, name, *parts))
    return key if len(key) <= 200 else hashlib.sha256(key.encode()).hexdigest()


class Tagged(str):
    """A key part already escaped and marked with its type (a `claim:` value that is not a
    string: see the module's docstring); `escape` keeps it as it is."""

    __slots__ = ()


#: the part of a `claim:` descriptor whose claim is absent (no claim, or no identity)
ABSENT = Tagged("\\-")


def claim_part(value: Any = ABSENT) -> str:
    """A claim as a key part: a string as it is, anything else tagged with its JSON type."""
    if isinstance(value, str):
        return value
    text = json.dumps(_canonical(value), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)
    return Tagged("\\j" + escape(text))


def _canonical(value: Any) -> Any:
    """A JSON value with each integral float as the int it equals (1.0 is the number 1)."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    return value


def escape(part: str) -> str:
    """A key part that cannot contain the separator (\\x1f), with what cannot be encoded
    (lone surrogates: undecodable header bytes, claims with invalid escapes) spelled out:
    distinct parts stay distinct. A `Tagged` part is escaped already."""
    if isinstance(part, Tagged):
        return part
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
            return f"{backend}/{model_family(ex.state.get('backend_model') or '-')}"
        return model_family(model) if model else "-"
    if d == "client_ip":
        # the peer's address only where the gateway appends it (Envoy: use_remote_address;
        # docs/rate-limits.md, "Client addresses"); else whatever the client sent
        xff = ex.request_headers.get("x-forwarded-for", "")
        return xff.rsplit(",", 1)[-1].strip() or "-"
    if d.startswith("claim:"):
        if identity is None or d[6:] not in identity.claims:
            return ABSENT
        return claim_part(identity.claims[d[6:]])
    return ex.request_headers.get(d[7:], "-")  # header:<name>
