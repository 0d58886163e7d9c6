"""The gateway's config: one YAML file, validated at load, compiled once into frozen objects.

Shape (every key is optional unless marked; unknown keys are errors)::

    server:
      max_request_body_bytes: 8388608   # Envoy buffers request bodies up to this (413 past it);
                                        # the gRPC message limits of both sides follow it
      max_request_headers_kb: 96        # Envoy's request header limits (431 past them); the
      max_request_headers_count: 100    # server answers 431 when its own headers would not fit
      grace_period_s: 10                # SIGTERM: in-flight streams get this long to finish
      access_log: true                  # one JSON line per request on stderr (extproc.access)
    default_route: openai               # used when Envoy names no route (optional)
    routes:                             # required: one entry per Envoy route
      - name: openai                    # required: the value Envoy sends as x-extproc-route
        provider: openai                # required: openai | azure | anthropic | gemini | vertex
        streams:                        # the built-in LLM traffic policy (extproc.llm)
          usage: true                   # token usage from every reply, as dynamic metadata
          json_array_to_sse: false      # Gemini/Vertex JSON-array streams as SSE (default on
                                        # for gemini and vertex)
          max_event_bytes: 1048576      # largest SSE event / array element accepted
        auth: {jwt: [corp], api_keys: true, scopes: [chat]}   # client credentials
        upstream_credential: {env: OPENAI_API_KEY}          # the provider's key, injected
        guards: [pii]                   # prompt guards by name
        rate_limits:                    # request and token budgets (extproc.limits.settings)
          - {name: per-user, key: [subject], requests: [{limit: 60, per: 1m}],
             tokens: [{limit: 100000, per: 1m}]}
        passthrough:                    # other endpoints let through, with auth and request
          - {path: /openai/v1/models, methods: [GET]}   # limits only (no body is read);
          - {path: /openai/v1/files/**}  # `*`: one segment's characters, `/**`: the rest
        plugins:                        # custom Python policies (see extproc.policy)
          - class: mypkg.guards:MyGuard
            options: {...}

    limits: {backend: memory}           # or redis (extproc.limits.settings)
    guards: {pii: {detectors: [email, phone], action: mask}}   # (extproc.guards.settings)
    auth:                               # JWT providers and API keys the routes refer to
      jwt_providers: {...}              # (the full schema is in extproc.auth.settings)
      api_keys: [...]

Top-level keys starting with `x-` are ignored: they hold YAML anchors shared by routes.
Later policies (rate limits, guards) add keys beside `plugins` on each route. Relative file
paths (JWKS files, secrets) are relative to the config file's directory.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from .auth.policy import Authenticate
from .auth.settings import AuthSettings, parse_auth, parse_credential, parse_route_auth
from .guards.policy import Guards
from .guards.settings import Guard, parse_guards, route_guards
from .limits.settings import LimitsSettings, parse_limits, parse_route_limits
from .llm.policy import LLMTraffic, StreamsConfig, streams_config
from .policy import Policy
from .providers.endpoints import Passthrough
from .schema import Checker, ConfigError, join

PROVIDERS = ("openai", "azure", "anthropic", "gemini", "vertex")
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

    @property
    def grpc_max_message_bytes(self) -> int:
        return grpc_max_message_bytes(self.max_request_body_bytes)


@dataclass(frozen=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    routes: Mapping[str, RouteConfig] = field(default_factory=dict)
    default_route: str | None = None
    source: str = "<memory>"

    def route(self, name: str | None) -> RouteConfig | None:
        if name:
            return self.routes.get(name)
        return self.routes.get(self.default_route) if self.default_route else None


def grpc_max_message_bytes(max_request_body_bytes: int) -> int:
    """The gRPC message limit, on both sides, for a given request body limit."""
    return max(max_request_body_bytes * GRPC_MESSAGE_FACTOR + GRPC_MESSAGE_OVERHEAD,
               GRPC_MESSAGE_FLOOR)


def load(path: str | Path) -> Config:
    """Read and validate a config file; raise ConfigError listing every problem."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError([f"<file>: cannot read {path}: {exc.strerror}"]) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"<file>: not valid YAML: {exc}"]) from exc
    return parse(data, source=str(path))


def parse(data: Any, source: str = "<memory>") -> Config:
    """Validate already-parsed YAML data and compile it into a Config."""
    c = Checker()
    if isinstance(data, dict):  # top-level x-* keys hold YAML anchors (as in docker compose)
        data = {k: v for k, v in data.items() if not str(k).startswith("x-")}
    top = c.mapping(data, "", ("server", "auth", "limits", "guards", "routes",
                               "default_route"))
    server = _server(c, top.get("server"))
    base = Path(source).parent if source != "<memory>" else Path.cwd()
    auth = parse_auth(c, top.get("auth"), base)
    limits = parse_limits(c, top.get("limits"))
    guards = parse_guards(c, top.get("guards"))
    routes: dict[str, RouteConfig] = {}
    declared: set[str] = set()
    raw_routes = c.sequence(top.get("routes"), "routes")
    if "routes" not in top or not raw_routes:
        c.error("routes", "at least one route is required")
    for i, raw in enumerate(raw_routes):
        if isinstance(raw, dict) and isinstance(raw.get("name"), str):
            declared.add(raw["name"])
        route = _route(c, raw, join("routes", i), auth, limits, guards, base)
        if route is None:
            continue
        if route.name in routes:
            c.error(join(join("routes", i), "name"), f"duplicate route name {route.name!r}")
        routes[route.name] = route
    default = c.string(top, "default_route", "")
    if default is not None and default not in declared:
        c.error("default_route", f"names no route: {default!r}")
    c.raise_if_any()
    return Config(server=server, routes=routes, default_route=default, source=source)


def _server(c: Checker, raw: Any) -> ServerConfig:
    d = c.mapping(raw, "server", ("max_request_body_bytes", "max_request_headers_kb",
                                  "max_request_headers_count", "grace_period_s", "access_log"))
    size = c.number(d, "max_request_body_bytes", "server", DEFAULT_MAX_BODY, minimum=1024,
                    integer=True)
    if size > 256 * 1024 * 1024:
        c.error("server.max_request_body_bytes", "must be at most 268435456 (256 MiB)")
    # Envoy's own bounds: 1..8192 KiB; a few headers are Envoy's and ours
    kb = c.number(d, "max_request_headers_kb", "server", DEFAULT_MAX_HEADERS_KB, minimum=8,
                  integer=True)
    if kb > 8192:
        c.error("server.max_request_headers_kb", "must be at most 8192 (Envoy's limit)")
    count = c.number(d, "max_request_headers_count", "server", DEFAULT_MAX_HEADERS_COUNT,
                     minimum=32, integer=True)
    grace = c.number(d, "grace_period_s", "server", 10.0)
    return ServerConfig(max_request_body_bytes=int(size), max_request_headers_kb=int(kb),
                        max_request_headers_count=int(count), grace_period_s=float(grace),
                        access_log=c.boolean(d, "access_log", "server", True))


def _route(c: Checker, raw: Any, path: str, auth: AuthSettings, limits: LimitsSettings,
           guards: dict[str, Guard], base: Path) -> RouteConfig | None:
    before = len(c.errors)
    d = c.mapping(raw, path, ("name", "provider", "streams", "auth", "upstream_credential",
                              "rate_limits", "guards", "plugins", "passthrough"))
    name = c.string(d, "name", path, required=True)
    provider = c.choice(d, "provider", path, PROVIDERS, what="provider")
    streams = streams_config(c, provider, d.get("streams"), join(path, "streams")) \
        if provider else None
    route_auth = parse_route_auth(c, d["auth"], join(path, "auth"), auth) \
        if "auth" in d else None
    credential = parse_credential(c, d["upstream_credential"], join(
        path, "upstream_credential"), provider, base) \
        if "upstream_credential" in d and provider else None
    rate = parse_route_limits(c, d["rate_limits"], join(path, "rate_limits"), provider,
                              name, limits) if "rate_limits" in d and provider and name else None
    route_guard = route_guards(c, d["guards"], join(path, "guards"), guards) \
        if "guards" in d else ()
    policies = [p for i, item in enumerate(c.sequence(d.get("plugins"), join(path, "plugins")))
                if (p := _plugin(c, item, join(join(path, "plugins"), i))) is not None]
    if rate is not None and rate.uses_tokens and streams is not None and not streams.usage:
        c.error(join(path, "rate_limits"), "token budgets settle on the provider's usage: "
                "they need streams.usage: true")
    passthrough = _passthrough(c, d.get("passthrough"), join(path, "passthrough"))
    if len(c.errors) > before or name is None or provider is None or streams is None:
        return None
    builtin: list[Policy] = []
    if route_auth is not None or credential is not None:
        builtin.append(Authenticate(provider, route_auth, credential))
    if route_guard:
        # before usage metering and limits: a refused prompt costs no budget (on a route
        # whose guards read replies only, it refuses a request for what they cannot read)
        builtin.append(Guards(provider, route_guard, "request", route=name))
    if streams.usage or streams.json_array_to_sse or rate is not None or route_guard:
        builtin.append(LLMTraffic(provider, streams))
    if any("response" in g.apply_to for g in route_guard):
        builtin.append(Guards(provider, route_guard, "response", route=name))
    if rate is not None:
        builtin.append(rate)
    return RouteConfig(name=name, provider=provider, policies=(*builtin, *policies),
                       streams=streams, plugins=tuple(policies), passthrough=passthrough)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _passthrough(c: Checker, raw: Any, path: str) -> tuple[Passthrough, ...]:
    out = []
    for i, item in enumerate(c.sequence(raw, path)):
        where = join(path, i)
        d = c.mapping(item, where, ("path", "methods"))
        pattern = c.string(d, "path", where, required=True)
        methods = c.sequence(d.get("methods", ["GET"]), join(where, "methods"))
        bad = [m for m in methods if m not in _METHODS]
        if bad:
            c.error(join(where, "methods"), f"unknown method(s) {bad}; expected {_METHODS}")
        if pattern is not None and not pattern.startswith("/"):
            c.error(join(where, "path"), f"must start with '/': {pattern!r}")
        elif pattern is not None and "**" in pattern.removesuffix("/**"):
            c.error(join(where, "path"), "'**' may only end the pattern, as '/**'")
        elif pattern is not None and not bad:
            out.append(Passthrough(pattern, tuple(methods) or ("GET",)))
    return tuple(out)


def _plugin(c: Checker, raw: Any, path: str) -> Policy | None:
    d = c.mapping(raw, path, ("class", "options"))
    spec = c.string(d, "class", path, required=True)
    options = c.mapping(d.get("options"), join(path, "options"), d.get("options") or {})
    if spec is None:
        return None
    module_name, _, attr = spec.partition(":")
    if not attr:
        c.error(join(path, "class"), f"expected 'package.module:Class', got {spec!r}")
        return None
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except Exception as exc:  # ImportError, but also a plugin module that fails at import
        c.error(join(path, "class"), f"cannot import {spec!r}: {type(exc).__name__}: {exc}")
        return None
    if not (isinstance(cls, type) and issubclass(cls, Policy)):
        c.error(join(path, "class"), f"{spec!r} is not a subclass of extproc.policy.Policy")
        return None
    try:
        return cls(dict(options))
    except Exception as exc:  # a plugin's own validation
        c.error(join(path, "options"), f"{spec} rejected its options: {exc}")
        return None
