"""The gateway's config as plain data: frozen objects compiled once from one YAML file.

`extproc.loader` reads and validates the file (`load`, `parse`), `extproc.assembly` builds each
route's policies, and `extproc.routing` finds the route a request is on. This module only
holds what they produce, so it imports no policy.

Shape (every key is optional unless marked; unknown keys are errors)::

    server:
      max_request_body_bytes: 8388608   # Envoy buffers request bodies up to this (413 past it);
                                        # the gRPC message limits of both sides follow it
      max_request_headers_kb: 96        # Envoy's request header limits (431 past them); the
      max_request_headers_count: 100    # server answers 431 when its own headers would not fit
      grace_period_s: 10                # SIGTERM: in-flight streams get this long to finish
      access_log: true                  # one JSON line per request on stderr (extproc.access)
      trust_mode_override: false        # the filter allows mode_override: a body mode it
                                        # configures NONE is upgraded where a policy needs
                                        # the body (else such a request is refused: unshown)
    routing:                            # how a request finds its route (extproc.routing)
      unmatched_status: 404             # 404 or 403: the answer when no route claims it
      route_owners:                     # the Kubernetes objects whose Envoy routes may use
        - {kind: VirtualService, namespace: llm-gateway, name: llm}   # these routes (Istio,
        - {kind: HTTPRoute, namespace: llm-gateway}   # Envoy Gateway; name optional): when
                                        # given, a request whose Envoy route metadata
                                        # (xds.route_metadata) names no such owner is refused,
                                        # and only such owners' annotations name a route
    default_route: openai               # explicit opt-in: the route of a request nothing
                                        # else names (after every source below)
    routes:                             # required: one entry per Envoy route
      - name: openai                    # required: the value Envoy sends as x-extproc-route
        provider: openai                # required: openai | azure | anthropic | gemini |
                                        # vertex | auto (recognised from the path) |
                                        # openai-compatible (the unified front: its
                                        # backends and models keys are in extproc.front)
        providers: [openai, anthropic]  # with provider: auto, the ones served (default all)
        envoy_route_names: ["httproute/llm/openai/**"]   # xds.route_name patterns
        match: {path_prefix: /openai/, host: llm.example.com, headers: {x-llm: openai}}
        streams:                        # the built-in LLM traffic policy (extproc.llm)
          usage: true                   # token usage from every reply, as dynamic metadata
          json_array_to_sse: false      # Gemini/Vertex JSON-array streams as SSE (default on
                                        # for gemini and vertex)
          max_event_bytes: 1048576      # largest SSE event / array element accepted (and
                                        # read by reply guards: a larger one is refused)
        auth: {jwt: [corp], api_keys: true, scopes: [chat]}   # client credentials
        upstream_credential: {env: OPENAI_API_KEY}          # the provider's key, injected
                                        # (provider: auto: {openai: {env: ...}, ...})
        guards: [pii]                   # prompt guards by name
        rate_limits:                    # request, token, spend budgets (extproc.limits.settings)
          - {name: per-user, key: [subject], requests: [{limit: 60, per: 1m}],
             tokens: [{limit: 100000, per: 1m}]}
        default_price: {input: 1.00, output: 4.00}   # per million tokens, for models no
                                        # price table entry names (else: unpriced)
        passthrough:                    # other endpoints let through, with auth and request
          - {path: /openai/v1/models, methods: [GET]}   # limits only (no body is read);
          - {path: /openai/v1/files/**}  # `*`: one segment's characters, `/**`: the rest
        plugins:                        # custom Python policies (see extproc.policy)
          - class: mypkg.guards:MyGuard
            options: {...}

    limits: {backend: memory}           # or redis (extproc.limits.settings)
    prices:                             # per million tokens (extproc.spend.settings; the
      currency: USD                     # shipped table is extproc/spend/prices.yaml)
      models:                           # looked up before the shipped table
        - {provider: openai, model: gpt-4o, input: 2.50, cached_input: 1.25, output: 10}
        - {provider: anthropic, model: "claude-sonnet-4-5*", input: 3, cached_input: 0.30,
           cache_write: 3.75, output: 15, since: 2025-09-29}
    spend: {team_claim: team}           # the claim labelling the spend metrics (`team`)
    guards: {pii: {detectors: [email, phone], action: mask}}   # (extproc.guards.settings)
    auth:                               # JWT providers and API keys the routes refer to
      jwt_providers: {...}              # (the full schema is in extproc.auth.settings)
      api_keys: [...]

Top-level keys starting with `x-` are ignored: they hold YAML anchors shared by routes.
Later policies (rate limits, guards) add keys beside `plugins` on each route. Relative file
paths (JWKS files, secrets) are relative to the config file's directory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from .llm.policy import StreamsConfig

if TYPE_CHECKING:
    from .front.settings import FrontConfig
    from .policy import Policy
    from .providers.endpoints import Passthrough
    from .spend.prices import Pricing

PROVIDERS = ("openai", "azure", "anthropic", "gemini", "vertex")
#: `provider: auto` recognises these from the path, the most specific paths first (Azure's
#: `/openai/...` before OpenAI's, Vertex's `.../publishers/google/models/...` before Gemini's)
AUTO_ORDER = ("azure", "vertex", "gemini", "anthropic", "openai")
ROUTE_METADATA_KEY = "x-extproc-route"
DEFAULT_MAX_BODY = 8 * 1024 * 1024
#: Envoy's request header limits (HCM max_request_headers_kb, max_headers_count)
DEFAULT_MAX_HEADERS_KB = 96
DEFAULT_MAX_HEADERS_COUNT = 100
#: room for the ext_proc envelope (headers, field tags) on top of the largest body
GRPC_MESSAGE_OVERHEAD = 256 * 1024
#: Envoy enforces its body buffer limit loosely (a body several times over it, read at once,
#: still reaches the processor, and STREAMED chunks queued behind a slow reply are sent as
#: one), so gRPC messages may be this many times the limit, and never less than the floor;
#: the processor itself then answers 413 for anything over the limit.
GRPC_MESSAGE_FACTOR = 8
GRPC_MESSAGE_FLOOR = 64 * 1024 * 1024


@dataclass(frozen=True)
class RequestMatch:
    """What a request must hold for a route to claim it when Envoy names no route: every
    given part (a path prefix of the canonical path; a host, exact or `*.suffix`, compared
    without port or case; exact header values)."""

    path_prefix: str | None = None
    host: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class RouteOwner:
    """A Kubernetes object whose Envoy routes may use the gateway's routes
    (`routing.route_owners`): its kind (compared without case or hyphens, so `VirtualService`
    is Istio's `virtual-service`), its namespace, and its name (None: any in the namespace)."""

    kind: str
    namespace: str
    name: str | None = None

    def admits(self, kind: str, namespace: str, name: str) -> bool:
        """True when the object (kind, namespace, name) is this owner."""
        return (owner_kind(kind) == owner_kind(self.kind) and namespace == self.namespace
                and (self.name is None or name == self.name))


def owner_kind(kind: str) -> str:
    """A kind as owners compare it: `VirtualService`, `virtual-service` -> `virtualservice`."""
    return kind.replace("-", "").lower()


@dataclass(frozen=True)
class RouteConfig:
    name: str
    provider: str
    #: the whole pipeline, built-in policies first, then the plugins
    policies: tuple[Policy, ...] = ()
    streams: StreamsConfig = field(default_factory=StreamsConfig)
    #: the custom policies from `plugins:`, in config order
    plugins: tuple[Policy, ...] = ()
    #: requests to other endpoints than the provider's that the route lets through
    passthrough: tuple[Passthrough, ...] = ()
    #: how the route is recognised besides its name (extproc.routing): Envoy route name
    #: patterns (`xds.route_name`) and what the request itself must hold
    envoy_route_names: tuple[str, ...] = ()
    match: RequestMatch | None = None
    #: `provider: auto`: the route as each provider it serves (empty otherwise)
    variants: Mapping[str, RouteConfig] = field(default_factory=dict)
    #: the price table and the route's `default_price` (extproc.spend)
    pricing: Pricing | None = None
    #: `provider: openai-compatible`: the unified front's model map and backends
    #: (extproc.front); the route itself reads and answers as OpenAI
    front: FrontConfig | None = None

    @cached_property
    def needs_request_body(self) -> bool:
        return any(p.needs_request_body for p in self.policies)

    @cached_property
    def reads_request_body(self) -> bool:
        """A policy reads the request body as the provider's JSON (then it must be readable
        one way only; see `Policy.reads_json`)."""
        return any(p.needs_request_body and p.reads_json for p in self.policies)

    @cached_property
    def needs_response_body(self) -> bool:
        return any(p.needs_response_body for p in self.policies)

    @cached_property
    def every_policy(self) -> tuple[Policy, ...]:
        """Its policies and, for `provider: auto`, those of each variant (one per provider,
        where an auto route's own policies are): what a check over a config must read."""
        return (*self.policies, *(p for v in self.variants.values() for p in v.policies))

    @cached_property
    def finishers(self) -> tuple[Policy, ...]:
        """The policies whose `on_finish` runs when an exchange ends."""
        return tuple(p for p in self.policies if p.needs_finish)


@dataclass(frozen=True)
class ServerConfig:
    max_request_body_bytes: int = DEFAULT_MAX_BODY
    max_request_headers_kb: int = DEFAULT_MAX_HEADERS_KB
    max_request_headers_count: int = DEFAULT_MAX_HEADERS_COUNT
    grace_period_s: float = 10.0
    access_log: bool = True
    #: Envoy's filter sets allow_mode_override: a body mode it configures NONE may be
    #: upgraded by mode_override (`extproc.unshown`); else such a request is refused
    trust_mode_override: bool = False

    @property
    def grpc_max_message_bytes(self) -> int:
        return grpc_max_message_bytes(self.max_request_body_bytes)


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    #: by name, in config order (the order `match` and `envoy_route_names` are tried in)
    routes: Mapping[str, RouteConfig] = field(default_factory=dict)
    default_route: str | None = None
    #: the status of a request no route claims (404 or 403)
    unmatched_status: int = 404
    #: when given, only Envoy routes these objects own are served (extproc.routing)
    route_owners: tuple[RouteOwner, ...] = ()
    source: str = "<memory>"

    def route(self, name: str | None) -> RouteConfig | None:
        """A route by name (the default route for None); for `provider: auto`, the route
        holding its `variants`."""
        if name:
            return self.routes.get(name)
        return self.routes.get(self.default_route) if self.default_route else None


def grpc_max_message_bytes(max_request_body_bytes: int) -> int:
    """The gRPC message limit, on both sides, for a given request body limit."""
    return max(max_request_body_bytes * GRPC_MESSAGE_FACTOR + GRPC_MESSAGE_OVERHEAD,
               GRPC_MESSAGE_FLOOR)



