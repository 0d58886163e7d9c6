"""Which endpoints each provider family serves, and what a request to one of them is (sans-IO).

Every request on a provider route is classified by `classify(provider, method, target,
passthrough)` from its canonical target (`extproc.reading`): an `Endpoint` names the
endpoint, the adapter that reads its bodies and streams, whether it can generate output
tokens, and what the path itself says (Gemini/Vertex model, method and `alt`; Azure's
deployment). A request to anything else is refused (404 in the provider's format) unless the
route's `passthrough` list names it; a pass-through request is authenticated and counted by
request limits only: no body policy reads it.

Paths are matched on their tail, so any prefix Envoy's route adds (`/openai/`, `/g-openai/`)
is allowed in front; a path that ends differently (a trailing slash, a `;param`, a sub-path
such as `/v1/responses/{id}`) is another endpoint, and refused unless allowed.

The tables themselves are built in `extproc.providers` (`_tables`), one per family; the
security model (docs/security.md) lists them.

Google's `alt` (or `$alt`, its alias: both at once are refused) may be `sse` or `json`; with
`:streamGenerateContent`, `sse` streams SSE and `json` (or none) a JSON array. Google's
`$ct` and `$httpMethod` system parameters (they make Google read the body as another type,
or the request as another method) are refused, and so are `fields` and `callback` (a field
mask that can drop the reply's usage report, JSONP), and `userProject`, `quotaUser` and
`userIp` (the project billed and the quota charged are the operator's choice), in either
spelling.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..target import fold_name
from .base import Adapter

if TYPE_CHECKING:
    from ..target import Target


@dataclass(frozen=True, slots=True)
class EndpointSpec:
    """One endpoint a provider family serves."""

    name: str                     # e.g. "chat.completions", "responses", "generateContent"
    adapter: Adapter | None       # reads its bodies and streams (None: pass-through)
    generates: bool = True        # may produce output tokens (budgets reserve max output)
    streams: bool = True          # may answer with a stream


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One request's endpoint, with what its path says."""

    spec: EndpointSpec
    model: str | None = None      # from the path (Gemini/Vertex, Azure deployment)
    path_stream: bool | None = None   # Gemini/Vertex: the method says whether it streams
    json_array: bool = False      # Gemini/Vertex stream without alt=sse: a JSON array

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def adapter(self) -> Adapter | None:
        return self.spec.adapter

    @property
    def passthrough(self) -> bool:
        return self.spec.adapter is None


PASSTHROUGH = EndpointSpec("passthrough", None, generates=False, streams=False)


@dataclass(frozen=True, slots=True)
class Passthrough:
    """A route's explicit allowance: requests whose method is in `methods` and whose path
    (the canonical path as the client sent it, before Envoy's prefix rewrite) matches
    `path`, a glob where `*` stands for any characters but '/' and a trailing `/**` for any
    rest of the path."""

    path: str
    methods: tuple[str, ...] = ("GET",)
    #: the route's config says that requests through it may cost what no budget charges
    unmetered: bool = False
    #: the route's config says that requests through it carry no prompt and fetch no output,
    #: which its guards would read and cannot (no policy reads a pass-through's body)
    unguarded: bool = False

    def matches(self, method: str, path: str) -> bool:
        return method in self.methods and _glob(self.path).fullmatch(path) is not None


_GLOBS: dict[str, re.Pattern[str]] = {}


def _glob(pattern: str) -> re.Pattern[str]:
    compiled = _GLOBS.get(pattern)
    if compiled is None:
        rest = pattern.endswith("/**")
        core = pattern[:-3] if rest else pattern
        regex = "".join("[^/]*" if ch == "*" else re.escape(ch) for ch in core)
        compiled = _GLOBS[pattern] = re.compile(regex + ("(?:/.*)?" if rest else ""))
    return compiled


class Table:
    """The endpoints of one provider family: (method, path regex, spec) rows."""

    def __init__(self, rows: list[tuple[str, str, EndpointSpec]]) -> None:
        self.rows = [(m, re.compile(p), s) for m, p, s in rows]

    def find(self, method: str, path: str) -> tuple[EndpointSpec, re.Match[str]] | None:
        for m, regex, spec in self.rows:
            if m == method:
                match = regex.search(path)
                if match is not None:
                    return spec, match
        return None

    def serves_path(self, path: str) -> bool:
        """True when some endpoint has this path, whatever the method."""
        return any(regex.search(path) for _, regex, _ in self.rows)

    def names(self) -> list[str]:
        return list(dict.fromkeys(s.name for _, _, s in self.rows))


class Unknown(Exception):
    """No endpoint of the route's provider, nor its pass-through list, matches the request."""

    def __init__(self, provider: str, method: str, path: str, served: list[str]) -> None:
        super().__init__(f"{method} {path}")
        self.provider = provider
        self.method = method
        self.path = path
        self.served = served


class BadQuery(Exception):
    """The query says something the gateway cannot read the provider's way (a bad `alt`)."""


_TABLES: dict[str, Table] = {}


def register(provider: str, table: Table) -> None:
    """Set a provider family's endpoint table (the adapters package does it at import)."""
    _TABLES[provider] = table


def table(provider: str) -> Table:
    return _TABLES[provider]


_ALT = ("alt", "$alt")
#: Google system parameters that change how the provider reads the request itself (its
#: content type, its method): the gateway would read it another way, so they are refused
_REREAD = ("$ct", "$httpMethod")
#: ... and those that change what the reply holds: a field mask (`fields`) can drop the usage
#: report the budgets settle on, JSONP (`callback`) wraps the reply in code no reader reads
_RESHAPE = ("fields", "$fields", "callback", "$callback")
#: ... and those that choose whose account and quota the operator's credential uses (the
#: billed project, the quota user): the operator's choice, as the `x-goog-user-project`
#: header the gateway strips is, never the client's
_ACCOUNT = ("userProject", "$userProject", "quotaUser", "$quotaUser", "userIp", "$userIp")
#: every system parameter above by its folded name (`target.fold_name`): one spelled in
#: another case or with spaces (`ALT`, `$Ct`, `fields `) is refused, whether or not Google
#: reads names so
_SYSTEM = {fold_name(name): name for name in (*_ALT, *_REREAD, *_RESHAPE, *_ACCOUNT)}


def classify(provider: str, method: str, target: Target,
             passthrough: tuple[Passthrough, ...] = ()) -> Endpoint:
    """The endpoint a request goes to; `Unknown` when none serves it, `BadQuery` for an
    unreadable Google `alt`."""
    path = target.path
    google = provider in ("gemini", "vertex")
    if google:
        for name in (*_REREAD, *_RESHAPE, *_ACCOUNT):
            if name in target.params:
                raise BadQuery(f"the system parameter {name!r} is not accepted by the gateway")
        for name in target.params:
            known = _SYSTEM.get(fold_name(name))
            if known is not None and name != known:
                raise BadQuery(f"the system parameter {known!r} must be spelled so")
    found = _TABLES[provider].find(method, path)
    if found is None:
        if _TABLES[provider].serves_path(path):
            # a served endpoint asked with another method is never a pass-through, whatever
            # a glob says: the provider may still act on its body
            raise Unknown(provider, method, path, _TABLES[provider].names())
        for allowed in passthrough:
            if allowed.matches(method, path):
                return Endpoint(PASSTHROUGH)
        raise Unknown(provider, method, path, _TABLES[provider].names())
    spec, match = found
    groups = match.groupdict()
    model = groups.get("model")
    if not google:
        return Endpoint(spec, model=model)
    alts = [target.params[k] for k in _ALT if k in target.params]
    if len(alts) > 1:
        raise BadQuery("give 'alt' once ('alt' and '$alt' are the same parameter)")
    alt = alts[0] if alts else "json"
    if alt not in ("json", "sse"):
        # the value is not echoed: it may carry anything (a credential after a ';')
        raise BadQuery("this value of 'alt' is not supported by the gateway; use alt=sse or "
                       "alt=json")
    stream = spec.name == "streamGenerateContent"
    return Endpoint(spec, model=model, path_stream=stream, json_array=stream and alt != "sse")


def adapter_of(ex: object, default: Adapter) -> Adapter:
    """The adapter of an exchange's endpoint (`default`, the route provider's chat adapter,
    before classification or for a pass-through request)."""
    endpoint = getattr(ex, "endpoint", None)
    adapter = endpoint.adapter if endpoint is not None else None
    return adapter if adapter is not None else default


def is_passthrough(ex: object) -> bool:
    """True when the exchange's request is a route's pass-through (no body policy reads it)."""
    endpoint = getattr(ex, "endpoint", None)
    return endpoint is not None and endpoint.adapter is None
