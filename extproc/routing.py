"""Which route a request is on: the route lookup, from whatever the Envoy in front can give.

Once per ext_proc stream (on its request headers). First, when the config names
`routing.route_owners`, the Envoy route must belong to one of them: the request attribute
`xds.route_metadata` must name its owner, and every object it names must be admitted, or the
request is refused whatever else names a route. Istio puts the VirtualService (or other
object) a route came from in `filter_metadata.istio.config`
(`/apis/networking.istio.io/<version>/namespaces/<ns>/virtual-service/<name>`); Envoy Gateway
lists the HTTPRoute's kind, name and namespace in `filter_metadata.envoy-gateway.resources[]`.
On a shared gateway this is what stops another namespace's route, named like ours or
annotated like ours, from borrowing our route and its provider key.

Then the route is tried in this order; the first source that speaks decides:

1. `x-extproc-route` gRPC initial metadata (Envoy's per-route `grpc_initial_metadata`, an
   Istio EnvoyFilter route patch, agentgateway's `metadataContext`). A name no route has is
   refused: a misconfigured Envoy never falls through to another route.
2. The request attribute `xds.route_name` (Envoy Gateway names its routes
   `httproute/<ns>/<name>/rule/<i>/match/<j>/<host>`), matched against each route's
   `envoy_route_names` globs in config order. No match: the next source.
3. The request attribute `xds.route_metadata` (Envoy sends the text format of
   `envoy.config.core.v3.Metadata`): `filter_metadata.extproc.route`, else the HTTPRoute
   annotation `gateway.envoyproxy.io/extproc-route`, which Envoy Gateway copies into
   `filter_metadata.envoy-gateway.resources[].annotations` without its prefix (as
   `extproc-route`; the prefixed key is read too), read only from a resource that
   `routing.route_owners` admits (none when it is not given: an annotation is anyone's
   to write). A name no route has is refused.
4. The request itself: the first route, in config order, whose `match` holds.
5. `default_route`, when the config names one (an explicit opt-in).

Anything else is refused with `unmatched_status` (404 or 403) in the gateway's neutral
error format. So is a request that arrives carrying one of the gateway's own routing headers
(`ROUTING_HEADERS`): only the gateway sets them, after this lookup, and the shipped Envoy
configs remove a client's before routing; seeing one means the proxy in front routed by a
header the client chose (agentgateway routes before its ext_proc runs and never again).
A route with `provider: auto` is then narrowed to the provider its path is served by
(`extproc.providers.endpoints` tables), or refused (404) if none serves it.

Every answer that depends on one value only (a name, a route name, a metadata text) is
cached per distinct value, so the lookup costs a dict hit per stream. Sans-IO: it reads an
already-parsed `ProcessingRequest` and header dict.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

from envoy.config.core.v3.base_pb2 import Metadata
from google.protobuf import text_format

from . import protocol as P
from .config import Config, RequestMatch, RouteConfig, RouteOwner
from .providers.endpoints import table
from .reading import Unreadable, canonical_target

ATTRIBUTES_KEY = "envoy.filters.http.ext_proc"
#: the headers the gateway itself sets for Envoy to route by (the unified front's backend,
#: an auto route's provider: `front.policy.BACKEND_HEADER`, `autoroute.PROVIDER_HEADER`)
ROUTING_HEADERS = ("x-extproc-backend", "x-extproc-provider")
ROUTE_NAME = "xds.route_name"
ROUTE_METADATA = "xds.route_metadata"
#: our own namespace in route metadata (`filter_metadata: {extproc: {route: <name>}}`)
METADATA_NAMESPACE = P.METADATA_NAMESPACE
#: Envoy Gateway copies the HTTPRoute annotations prefixed `gateway.envoyproxy.io/` into
#: route metadata, with the prefix removed (`filterEGPrefix` in its internal/gatewayapi)
EG_NAMESPACE = "envoy-gateway"
EG_ANNOTATION = "gateway.envoyproxy.io/extproc-route"
EG_KEYS = ("extproc-route", EG_ANNOTATION)
#: Istio names the object a route came from (util.BuildConfigInfoMetadata):
#: filter_metadata.istio.config = /apis/<group>/<version>/namespaces/<ns>/<kind>/<name>
ISTIO_NAMESPACE = "istio"
_ISTIO_CONFIG = re.compile(r"/apis/[^/]+/[^/]+/namespaces/([^/]+)/([^/]+)/([^/]+)")
_CACHE_SIZE = 4096


class Resolution(NamedTuple):
    """The lookup's answer: the route (None when refused), its name, which source decided
    (`metadata`, `route_name`, `route_metadata`, `match`, `default`, `none`, `unowned`:
    refused because no configured owner has its Envoy route), and the
    refusal's (status, message) when there is no route."""

    route: RouteConfig | None
    name: str | None
    source: str
    refusal: tuple[int, str] | None = None


def glob(pattern: str) -> re.Pattern[str]:
    """An `envoy_route_names` pattern: `**` any characters, `*` any but '/'."""
    parts = re.split(r"(\*\*|\*)", pattern)
    rx = "".join(".*" if p == "**" else "[^/]*" if p == "*" else re.escape(p) for p in parts)
    return re.compile(rx)


#: an object a route came from: (kind, namespace, name)
Owner = tuple[str, str, str]


class RouteMetadata(NamedTuple):
    """What a `xds.route_metadata` attribute says: our own `filter_metadata.extproc.route`,
    the objects the route came from (Istio's and Envoy Gateway's), and each Envoy Gateway
    resource's `extproc-route` annotation (with the resource it is on)."""

    own_route: str | None
    owners: tuple[Owner, ...]
    annotations: tuple[tuple[Owner, str], ...]


def read_route_metadata(text: str) -> RouteMetadata | None:
    """A `xds.route_metadata` attribute read (None when it is not Metadata text)."""
    meta = Metadata()
    try:
        text_format.Parse(text, meta)
    except text_format.ParseError:
        return None
    fm = meta.filter_metadata
    own = None
    if METADATA_NAMESPACE in fm:
        value = fm[METADATA_NAMESPACE].fields.get("route")
        if value is not None and value.string_value:
            own = value.string_value
    owners: list[Owner] = []
    annotations: list[tuple[Owner, str]] = []
    if ISTIO_NAMESPACE in fm:
        config = fm[ISTIO_NAMESPACE].fields.get("config")
        found = _ISTIO_CONFIG.fullmatch(config.string_value) if config is not None else None
        if found is not None:
            namespace, kind, name = found.groups()
            owners.append((kind, namespace, name))
    if EG_NAMESPACE in fm:
        resources = fm[EG_NAMESPACE].fields.get("resources")
        for item in resources.list_value.values if resources is not None else ():
            f = item.struct_value.fields
            kind, namespace, name = (f[k].string_value if k in f else ""
                                     for k in ("kind", "namespace", "name"))
            owner = (kind, namespace, name)
            owners.append(owner)
            notes = f.get("annotations")
            for key in EG_KEYS if notes is not None else ():
                value = notes.struct_value.fields.get(key)
                if value is not None and value.string_value:
                    annotations.append((owner, value.string_value))
                    break
    return RouteMetadata(own, tuple(owners), tuple(annotations))


def admitted(owner: Owner, owners: tuple[RouteOwner, ...]) -> bool:
    """True when one of the configured `owners` is this object."""
    return all(owner) and any(o.admits(*owner) for o in owners)


def route_metadata_name(text: str, owners: tuple[RouteOwner, ...] = ()) -> str | None:
    """The route name a `xds.route_metadata` attribute carries, if any (see module doc):
    our own namespace's, else the annotation of an Envoy Gateway resource `owners` admits."""
    meta = read_route_metadata(text)
    if meta is None:
        return None
    if meta.own_route:
        return meta.own_route
    return next((name for owner, name in meta.annotations if admitted(owner, owners)), None)


def owned(text: str | None, owners: tuple[RouteOwner, ...]) -> bool:
    """True when route metadata names the object its route came from, and `owners` admits
    every object it names."""
    meta = read_route_metadata(text) if text else None
    return meta is not None and bool(meta.owners) and all(
        admitted(o, owners) for o in meta.owners)


def _host(authority: str) -> str:
    host = authority.lower()
    if host.startswith("["):   # [v6]:port
        return host.partition("]")[0] + "]"
    return host.rpartition(":")[0] if ":" in host else host


def holds(match: RequestMatch, headers: Mapping[str, str]) -> bool:
    """True when every part the match gives holds for these request headers."""
    if match.path_prefix is not None:
        try:
            path = canonical_target(headers.get(":path", "")).path
        except Unreadable:
            return False
        if not path.startswith(match.path_prefix):
            return False
    if match.host is not None:
        host = _host(headers.get(":authority", "") or headers.get("host", ""))
        if match.host.startswith("*."):
            if not host.endswith(match.host[1:]):
                return False
        elif host != match.host:
            return False
    return all(headers.get(name) == value for name, value in match.headers)


class Router:
    """The route lookup for one config (built again when the config is reloaded)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self._routes = list(config.routes.values())
        self._patterns = [(glob(p), r) for r in self._routes for p in r.envoy_route_names]
        self._matchers = [r for r in self._routes if r.match is not None]
        self._named: dict[str, Resolution] = {}
        self._by_route_name: dict[str, Resolution | None] = {}
        self._by_metadata: dict[str, Resolution | None] = {}
        self._owners = config.route_owners
        self._owned: dict[str, bool] = {}

    def resolve(self, initial: str | None, attributes: Mapping[str, Any] | None,
                headers: Mapping[str, str] | Any) -> Resolution:
        """The route of one request: `initial` is the `x-extproc-route` metadata value,
        `attributes` the `ProcessingRequest.attributes` map, `headers` the request's (a dict,
        or the `HttpHeaders` message, read only if a `match` or `provider: auto` needs it)."""
        found = self._find(initial, attributes, headers)
        route = found.route
        if route is not None and route.variants:
            return self._provider(route, _dict(headers), found.source)
        return found

    def _find(self, initial: str | None, attributes: Mapping[str, Any] | None,
              headers: Mapping[str, str] | Any) -> Resolution:
        fields = attributes[ATTRIBUTES_KEY].fields \
            if attributes and ATTRIBUTES_KEY in attributes else None
        if self._owners and not self._is_owned(
                fields[ROUTE_METADATA].string_value
                if fields is not None and ROUTE_METADATA in fields else ""):
            return Resolution(None, None, "unowned", (self.config.unmatched_status, UNOWNED))
        if initial:
            return self._name(initial, "metadata")
        if fields is not None:
            if ROUTE_NAME in fields and self._patterns:
                found = self._envoy_route(fields[ROUTE_NAME].string_value)
                if found is not None:
                    return found
            if ROUTE_METADATA in fields:
                found = self._metadata(fields[ROUTE_METADATA].string_value)
                if found is not None:
                    return found
        if self._matchers:
            headers = _dict(headers)
            for route in self._matchers:
                assert route.match is not None
                if holds(route.match, headers):
                    return Resolution(route, route.name, "match")
        default = self.config.default_route
        if default:
            return Resolution(self.config.routes.get(default), default, "default")
        return Resolution(None, None, "none",
                          (self.config.unmatched_status, unrouted(None)[1]))

    def _name(self, name: str, source: str) -> Resolution:
        found = self._named.get(name)
        if found is None:
            route = self.config.routes.get(name)
            found = Resolution(route, name, source,
                               None if route is not None else unrouted(name))
            _remember(self._named, name, found)
        return found if found.source == source else found._replace(source=source)

    def _envoy_route(self, value: str) -> Resolution | None:
        if value in self._by_route_name:
            return self._by_route_name[value]
        found = next((Resolution(r, r.name, "route_name") for rx, r in self._patterns
                      if rx.fullmatch(value)), None)
        _remember(self._by_route_name, value, found)
        return found

    def _is_owned(self, text: str) -> bool:
        found = self._owned.get(text)
        if found is None:
            found = owned(text, self._owners)
            _remember(self._owned, text, found)
        return found

    def _metadata(self, text: str) -> Resolution | None:
        if text in self._by_metadata:
            return self._by_metadata[text]
        name = route_metadata_name(text, self._owners)
        found = self._name(name, "route_metadata") if name else None
        _remember(self._by_metadata, text, found)
        return found

    @staticmethod
    def _provider(route: RouteConfig, headers: Mapping[str, str], source: str) -> Resolution:
        """A `provider: auto` route narrowed to the provider that serves the path."""
        try:
            path = canonical_target(headers.get(":path", "")).path
        except Unreadable as exc:
            return Resolution(None, route.name, source, (exc.status, exc.message))
        for provider, variant in route.variants.items():
            if table(provider).serves_path(path):
                return Resolution(variant, route.name, source)
        return Resolution(None, route.name, source, (
            404, f"no provider served by route {route.name!r} has this endpoint (served: "
                 f"{', '.join(route.variants)})"))


#: the refusal of a request whose Envoy route no `routing.route_owners` entry owns
UNOWNED = ("no gateway route serves this request (its Envoy route belongs to no "
           "routing.route_owners object)")


def unrouted(name: str | None) -> tuple[int, str]:
    """The refusal of a request on no route (`name`: the route it named, if any)."""
    return 404, "no gateway route serves this request" + (
        f" (route {name!r} is not configured)" if name else "")


def _dict(headers: Mapping[str, str] | Any) -> Mapping[str, str]:
    return headers if isinstance(headers, Mapping) else P.read_headers(headers)


def _remember(cache: dict[str, Any], key: str, value: Any) -> None:
    if len(cache) >= _CACHE_SIZE:   # values come from Envoy's config, not clients; bounded
        cache.clear()
    cache[key] = value
