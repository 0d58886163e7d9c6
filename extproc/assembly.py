"""Builds one `routes:` item of the config into a `RouteConfig`: its policies, in order, and
how the route is recognised (`envoy_route_names`, `match`, `provider: auto`).

The pipeline of a route is: authentication, request guards, the LLM traffic policy (usage,
stream rewrites), reply guards, rate limits, then the custom `plugins:` in config order.
A `provider: auto` route is built once per provider it serves (`RouteConfig.variants`), each
with that provider's adapters, error format and credential; `extproc.routing` picks one by the
request's path. Errors are collected on the `Checker` with their path in the file.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from .auth.credentials import UpstreamCredential
from .auth.policy import Authenticate
from .auth.scope import VertexScope
from .auth.settings import AuthSettings, parse_credential, parse_route_auth
from .autoroute import AutoProvider
from .config import AUTO_ORDER, PROVIDERS, RequestMatch, RouteConfig
from .front.policy import FrontModels, FrontRequest
from .front.settings import FRONT_KEYS, FrontConfig, parse_front
from .guards.policy import Guards
from .guards.settings import Guard, route_guards
from .limits.settings import LimitsSettings, parse_route_limits
from .llm.policy import LLMTraffic, streams_config
from .policy import Policy
from .providers.endpoints import Passthrough
from .schema import Checker, join
from .spend.prices import PriceTable, Pricing
from .spend.settings import SpendSettings, parse_price

_KEYS = ("name", "provider", "providers", "streams", "auth", "upstream_credential",
         "rate_limits", "guards", "plugins", "passthrough", "envoy_route_names", "match",
         "default_price", "allow_background", "allow_stored_context", "project",
         "project_number", "location", *FRONT_KEYS)
FRONT = "openai-compatible"
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
#: methods that read what the provider has, and generate nothing
_READS = {"GET", "HEAD", "OPTIONS"}
#: a pass-through a guarded route lets through without `unguarded`: a model listing, or one
#: model's entry (names and limits, no prompt, no generated text)
_LISTING = re.compile(r"/(?:[^*]*/)?models(?:/\*)?")


def route_config(c: Checker, raw: Any, path: str, auth: AuthSettings, limits: LimitsSettings,
                 guards: dict[str, Guard], base: Path, prices: PriceTable,
                 spend: SpendSettings | None = None) -> RouteConfig | None:
    """One route, or None when it has errors (they are on `c`)."""
    before = len(c.errors)
    d = c.mapping(raw, path, _KEYS)
    name = c.string(d, "name", path, required=True)
    provider = c.choice(d, "provider", path, (*PROVIDERS, "auto", FRONT), what="provider")
    front = None
    if provider == FRONT:
        front = parse_front(c, d, path, base)
        provider = "openai"     # what the route reads and answers as
    elif any(key in d for key in FRONT_KEYS):
        c.error(path, f"{', '.join(k for k in FRONT_KEYS if k in d)}: only on a provider: "
                f"{FRONT} route")
    served = _served(c, d, path, provider)
    envoy_names = _envoy_route_names(c, d.get("envoy_route_names"),
                                     join(path, "envoy_route_names"))
    match = _match(c, d["match"], join(path, "match")) if "match" in d else None
    anonymous = d.get("auth") == "none"   # anonymous clients, said on purpose
    route_auth = parse_route_auth(c, d["auth"], join(path, "auth"), auth) \
        if "auth" in d and not anonymous else None
    credentials = _credentials(c, d, path, provider, served, base)
    if (credentials or (front is not None and front.credentials)) and "auth" not in d:
        c.error(path, "injects the operator's provider credential (upstream_credential) but "
                "authenticates no client: anyone who reaches the gateway would use it; add "
                "auth: (JWT providers and/or API keys), or auth: none to serve anonymous "
                "clients on purpose")
    route_guard = route_guards(c, d["guards"], join(path, "guards"), guards) \
        if "guards" in d else ()
    plugins = [p for i, item in enumerate(c.sequence(d.get("plugins"), join(path, "plugins")))
               if (p := _plugin(c, item, join(join(path, "plugins"), i))) is not None]
    passthrough = _passthrough(c, d.get("passthrough"), join(path, "passthrough"))
    default_price = parse_price(c, d["default_price"], join(path, "default_price"),
                                Pricing(prices).currency) if "default_price" in d else None
    pricing = Pricing(prices, default_price)
    if passthrough and provider == "auto":
        c.error(join(path, "passthrough"), "a provider: auto route cannot tell whose "
                "pass-through a path is: give that provider a route of its own")
    scope = _vertex_scope(c, d, path, served, credentials)
    if len(c.errors) > before or name is None or provider is None:
        return None
    variants = {}
    for i, each in enumerate(served):
        # the same settings read for each provider: their errors are reported once
        checker = c if i == 0 else Checker()
        variant = _variant(checker, d, path, name, each, route_auth, credentials.get(each),
                           route_guard, tuple(plugins), passthrough, limits, pricing,
                           spend or SpendSettings(), scope)
        # an error only this provider's reading finds is reported too, never dropped
        c.errors.extend(e for e in checker.errors if checker is not c and e not in c.errors)
        if variant is None:
            return None
        variants[each] = variant
    if front is not None:
        return _front(variants[provider], front, envoy_names, match)
    if provider != "auto":
        return replace(variants[provider], envoy_route_names=envoy_names, match=match)
    # each variant tells Envoy the provider it serves, for Envoy to route by (`autoroute`)
    variants = {each: replace(v, policies=(*v.policies, AutoProvider(each)))
                for each, v in variants.items()}
    return RouteConfig(name=name, provider="auto", plugins=tuple(plugins),
                       passthrough=passthrough, envoy_route_names=envoy_names, match=match,
                       variants=variants, pricing=pricing)


def _front(route: RouteConfig, front: FrontConfig, envoy_names: tuple[str, ...],
           match: RequestMatch | None) -> RouteConfig:
    """An OpenAI route made the unified front: its model resolution right after
    authentication (and first on the reply, to translate it), its request translation last;
    the model list is its only pass-through."""
    policies = list(route.policies)
    at = 1 if policies and isinstance(policies[0], Authenticate) else 0
    guarded = any(getattr(p, "reads_replies", None) is not None for p in policies)
    policies.insert(at, FrontModels(front, route.name, guarded))
    policies.append(FrontRequest(front, route.name, route.streams.max_event_bytes))
    return replace(route, policies=tuple(policies), front=front, envoy_route_names=envoy_names,
                   match=match, passthrough=(Passthrough("/v1/models", ("GET",)),))


def _variant(c: Checker, d: Any, path: str, name: str, provider: str, route_auth: Any,
             credential: UpstreamCredential | None, route_guard: tuple[Guard, ...],
             plugins: tuple[Policy, ...], passthrough: tuple[Passthrough, ...],
             limits: LimitsSettings, pricing: Pricing,
             spend: SpendSettings, scope: VertexScope | None = None) -> RouteConfig | None:
    before = len(c.errors)
    streams = streams_config(c, provider, d.get("streams"), join(path, "streams"))
    # a reply made later and fetched elsewhere (the Responses API's background mode):
    # refused where budgets settle or guards read replies, unless the route allows it
    background = c.boolean(d, "allow_background", path, False)
    # input the provider adds from its storage or fetches (a file by id or URL:
    # `limits.stored`): refused where budgets settle, unless the route allows it
    stored = c.boolean(d, "allow_stored_context", path, False)
    rate = parse_route_limits(c, d["rate_limits"], join(path, "rate_limits"), provider,
                              name, limits, pricing, streams.max_event_bytes, background,
                              stored) \
        if "rate_limits" in d else None
    header = getattr(route_auth, "header", None)
    for spec in rate.limits if rate is not None and header else ():
        if f"header:{header.lower()}" in spec.key:
            # the route's own credential header: removed before any limit reads it
            c.error(join(path, "rate_limits"), f"limit {spec.name!r} keys on "
                    f"'header:{header}', the route's credential header; key on 'subject' "
                    "or 'api_key', which name the authenticated client")
    for i, allowed in enumerate(passthrough if route_guard else ()):
        if not allowed.unguarded and not (set(allowed.methods) <= _READS
                                          and _LISTING.fullmatch(allowed.path)):
            # (found by review: a POST through it carries a prompt, a GET fetches stored
            # output, a background reply or a batch's file, past every guard)
            c.error(join(join(path, "passthrough"), i), f"{'/'.join(allowed.methods)} "
                    f"{allowed.path} on a route with guards is read by none of them (no "
                    "policy reads a pass-through's body): a prompt sent through it, or "
                    "stored output fetched, would pass them. Say unguarded: true if it "
                    "carries neither, or serve it on a route without guards (model "
                    "listings, GET .../models and .../models/*, need neither)")
    for i, allowed in enumerate(passthrough if rate is not None and rate.settles else ()):
        if set(allowed.methods) - _READS and not allowed.unmetered:
            # (a generation through it, images or a batch, would spend past every budget)
            c.error(join(join(path, "passthrough"), i), f"{'/'.join(allowed.methods)} "
                    f"{allowed.path} on a route with token or spend budgets is neither "
                    "reserved nor charged (no policy reads a pass-through's body); say "
                    "unmetered: true if nothing it serves costs, or serve it on a route "
                    "without budgets")
    if rate is not None and rate.settles and not streams.usage:
        what = "token budgets" if rate.uses_tokens else "spend budgets"
        c.error(join(path, "rate_limits"), f"{what} settle on the provider's usage: "
                "they need streams.usage: true")
    if len(c.errors) > before:
        return None
    builtin: list[Policy] = []
    if route_auth is not None or credential is not None:
        builtin.append(Authenticate(provider, route_auth, credential))
    if provider == "vertex" and scope is not None:
        # the project its credential bills and the region it runs in: the route's, never
        # the client's to name in the path (auth.scope)
        builtin.append(scope)
    if route_guard:
        # before usage metering and limits: a refused prompt costs no budget (on a route
        # whose guards read replies only, it refuses a request for what they cannot read)
        builtin.append(Guards(provider, route_guard, "request", route=name,
                              allow_background=background))
    if streams.usage or streams.json_array_to_sse or rate is not None or route_guard:
        builtin.append(LLMTraffic(provider, streams, pricing, spend.team_claim))
    if any("response" in g.apply_to for g in route_guard):
        builtin.append(Guards(provider, route_guard, "response", route=name,
                              max_event_bytes=streams.max_event_bytes))
    if rate is not None:
        builtin.append(rate)
    return RouteConfig(name=name, provider=provider, policies=(*builtin, *plugins),
                       streams=streams, plugins=plugins, passthrough=passthrough,
                       pricing=pricing)


def _vertex_scope(c: Checker, d: Any, path: str, served: tuple[str, ...],
                  credentials: dict[str, UpstreamCredential]) -> VertexScope | None:
    """The Google Cloud project and location a route that serves Vertex pins (`project`,
    `location`; `"*"`: any, said on purpose), read once for every provider the route serves.
    With the operator's credential injected, `project` is required: else the client's path
    names whichever project that credential reaches."""
    if "vertex" not in served:
        for key in ("project", "project_number", "location"):
            if key in d:
                c.error(join(path, key), "only for a provider: vertex route (or an auto "
                        f"route that serves vertex), not {', '.join(served) or 'this one'}")
        return None
    project = c.string(d, "project", path)
    location = c.string(d, "location", path)
    if credentials.get("vertex") is not None and project is None:
        c.error(join(path, "project"), "a route that serves vertex with the operator's "
                "credential must name the Google Cloud project it bills, or a client names "
                "any project the credential reaches in the path: set project: <id> (and "
                "location: <region>), or project: '*' to let clients pick on purpose")
    project = None if project == "*" else project
    location = None if location == "*" else location
    # the project's number, as Vertex's own resource names (a cached content, a corpus)
    # spell it: the same project
    number = d.get("project_number")
    if number is not None and (isinstance(number, bool) or not str(number).isdigit()
                               or project is None):
        c.error(join(path, "project_number"), "expected the number of the route's project "
                f"(digits, beside project: <id>), got {number!r}")
        number = None
    return VertexScope(project, location, None if number is None else str(number)) \
        if project is not None or location is not None else None


def _served(c: Checker, d: Any, path: str, provider: str | None) -> tuple[str, ...]:
    """The providers a route serves: its own, or with `provider: auto` those listed in
    `providers` (default all), in the order they are recognised in."""
    if "providers" in d and provider != "auto":
        c.error(join(path, "providers"), "only a route with provider: auto lists providers")
    if provider is None:
        return ()
    if provider != "auto":
        return (provider,)
    listed = c.sequence(d.get("providers", list(PROVIDERS)), join(path, "providers"))
    bad = [p for p in listed if p not in PROVIDERS]
    if bad:
        c.error(join(path, "providers"), f"unknown provider(s) {bad} (one of: "
                f"{', '.join(PROVIDERS)})")
    if not listed:
        c.error(join(path, "providers"), "lists no provider")
    return tuple(p for p in AUTO_ORDER if p in listed)


def _credentials(c: Checker, d: Any, path: str, provider: str | None,
                 served: tuple[str, ...], base: Path) -> dict[str, UpstreamCredential]:
    """The upstream credential of each provider served: one spec, or with `provider: auto`
    a mapping from provider to spec that names every provider served."""
    if "upstream_credential" not in d or provider is None:
        return {}
    where = join(path, "upstream_credential")
    raw = d["upstream_credential"]
    if provider != "auto":
        credential = parse_credential(c, raw, where, provider, base)
        return {provider: credential} if credential is not None else {}
    specs = c.mapping(raw, where, PROVIDERS)
    missing = [p for p in served if p not in specs]
    if missing:
        c.error(where, f"with provider: auto, name a credential for each provider served "
                f"(missing: {', '.join(missing)})")
    out = {}
    for each in served:
        if each in specs and (credential := parse_credential(
                c, specs[each], join(where, each), each, base)) is not None:
            out[each] = credential
    return out


def _envoy_route_names(c: Checker, raw: Any, path: str) -> tuple[str, ...]:
    out = []
    for i, item in enumerate(c.sequence(raw, path)):
        if not isinstance(item, str) or not item:
            c.error(join(path, i), f"expected a non-empty pattern, got {item!r}")
        else:
            out.append(item)
    return tuple(out)


def _match(c: Checker, raw: Any, path: str) -> RequestMatch | None:
    d = c.mapping(raw, path, ("path_prefix", "host", "headers"))
    if not d:
        c.error(path, "give at least one of path_prefix, host, headers")
        return None
    prefix = c.string(d, "path_prefix", path)
    if prefix is not None and not prefix.startswith("/"):
        c.error(join(path, "path_prefix"), f"must start with '/': {prefix!r}")
    host = c.string(d, "host", path)
    if host is not None and ("*" in host.removeprefix("*.") or ":" in host):
        c.error(join(path, "host"), f"a host name, or '*.' and a domain (no port): {host!r}")
    headers = c.mapping(d.get("headers"), join(path, "headers"), d.get("headers") or {})
    if "headers" in d and not headers:   # (no header would match every request)
        c.error(join(path, "headers"), "name at least one header, or leave headers out")
    if not (prefix or host or headers):
        c.error(path, "give at least one of path_prefix, host, headers")
        return None
    pairs = []
    for key, value in headers.items():
        if not isinstance(key, str) or not key or key.startswith(":"):
            c.error(join(path, "headers"), f"not a header name: {key!r} (use path_prefix "
                    "and host for the path and authority)")
        elif not isinstance(value, str):
            c.error(join(join(path, "headers"), key), f"expected a string, got {value!r}")
        else:
            pairs.append((key.lower(), value))
    return RequestMatch(path_prefix=prefix, host=host.lower() if host else None,
                        headers=tuple(pairs))


def _passthrough(c: Checker, raw: Any, path: str) -> tuple[Passthrough, ...]:
    out = []
    for i, item in enumerate(c.sequence(raw, path)):
        where = join(path, i)
        d = c.mapping(item, where, ("path", "methods", "unmetered", "unguarded"))
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
            out.append(Passthrough(pattern, tuple(methods) or ("GET",),
                                   c.boolean(d, "unmetered", where, False),
                                   c.boolean(d, "unguarded", where, False)))
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
