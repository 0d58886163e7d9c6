"""Reads and validates the config file into a `Config` (`load`, `parse`).

The shape of the file is told in `extproc.config`. Every problem is collected, with its path
in the file, and raised at once as a `ConfigError`: `extproc check` prints them all. Each
route's policies are built by `extproc.assembly`.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml

from .assembly import route_config
from .auth.settings import parse_auth
from .config import (
    DEFAULT_MAX_BODY,
    DEFAULT_MAX_HEADERS_COUNT,
    DEFAULT_MAX_HEADERS_KB,
    Config,
    RouteConfig,
    RouteOwner,
    ServerConfig,
)
from .guards.settings import parse_guards
from .limits.settings import parse_limits
from .schema import Checker, ConfigError, join
from .spend.settings import parse_prices, parse_spend

UNMATCHED_STATUSES = (404, 403)

log = logging.getLogger("extproc.config")


def _yaml_error(exc: yaml.YAMLError, path: Path) -> str:
    """PyYAML's error in one line, where it is as FILE:LINE:COLUMN (PyYAML's own spans
    several lines, and names the text it parsed "<unicode string>")."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None)
    if mark is None or not problem:
        return " ".join(str(exc).replace('"<unicode string>"', f'"{path}"').split())
    context = getattr(exc, "context", None)
    context_mark = getattr(exc, "context_mark", None)
    also = f" ({context} at line {context_mark.line + 1})" \
        if context and context_mark is not None else ""
    return f"{path}:{mark.line + 1}:{mark.column + 1}: {problem}{also}"


def load(path: str | Path) -> Config:
    """Read and validate a config file; raise ConfigError listing every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"<file>: cannot read {path}: {exc.strerror}"]) from exc
    except UnicodeDecodeError as exc:   # (a traceback, and a worker restarted for ever:
        raise ConfigError([f"<file>: {path} is not UTF-8 (byte {exc.start})"]) from None
    try:                                # found by review)
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as exc:
        raise ConfigError([f"<file>: not valid YAML: {_yaml_error(exc, path)}"]) from exc
    except RecursionError:
        raise ConfigError([f"<file>: {path} nests its YAML too deeply"]) from None
    return parse(data, source=str(path))


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the
    last copy without a word, so a second `guards:` in a route would silently replace the
    first). Keys brought in by a merge (`<<: *anchor`) may still be overridden."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> Any:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):
                continue   # PyYAML's own check refuses it, below
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"found the key {key!r} twice (first on line "
                    f"{seen[key].line + 1}); one of them would be silently ignored",
                    key_node.start_mark)
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def _nulls(value: Any, path: str, out: list[str]) -> list[str]:
    """The paths of keys written with no value (`audiences:`, `guards:`). A template variable
    that rendered empty or an anchor that went away reads as null, which would switch a
    check off as if the key were an empty list or absent: refused (`parse`), unless a
    check of that key already says what is wrong."""
    if isinstance(value, dict):
        for key, item in value.items():
            if item is None:
                out.append(join(path, str(key)))
            else:
                _nulls(item, join(path, str(key)), out)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _nulls(item, join(path, i), out)
    return out


def parse(data: Any, source: str = "<memory>") -> Config:
    """Validate already-parsed YAML data and compile it into a Config."""
    c = Checker()
    if isinstance(data, dict):  # top-level x-* keys hold YAML anchors (as in docker compose)
        data = {k: v for k, v in data.items() if not str(k).startswith("x-")}
    nulls = _nulls(data, "", [])
    top = c.mapping(data, "", ("server", "auth", "limits", "guards", "routes",
                               "default_route", "routing", "prices", "spend"))
    server = _server(c, top.get("server"))
    unmatched, owners = _routing(c, top.get("routing"))
    base = Path(source).parent if source != "<memory>" else Path.cwd()
    auth = parse_auth(c, top.get("auth"), base)
    limits = parse_limits(c, top.get("limits"))
    guards = parse_guards(c, top.get("guards"))
    prices = parse_prices(c, top.get("prices"))
    spend = parse_spend(c, top.get("spend"))
    routes: dict[str, RouteConfig] = {}
    declared: set[str] = set()
    raw_routes = c.sequence(top.get("routes"), "routes")
    if "routes" not in top or not raw_routes:
        c.error("routes", "at least one route is required")
    for i, raw in enumerate(raw_routes):
        if isinstance(raw, dict) and isinstance(raw.get("name"), str):
            declared.add(raw["name"])
        route = route_config(c, raw, join("routes", i), auth, limits, guards, base, prices,
                             spend)
        if route is None:
            continue
        if route.name in routes:
            c.error(join(join("routes", i), "name"), f"duplicate route name {route.name!r}")
        routes[route.name] = route
    default = c.string(top, "default_route", "")
    if default is not None and default not in declared:
        c.error("default_route", f"names no route: {default!r}")
    for path in nulls:
        if not any(e.startswith(path + ":") for e in c.errors):
            c.error(path, "has no value: give one ([] for an empty list), or remove the key")
    c.raise_if_any()
    listed = {g for raw in raw_routes if isinstance(raw, dict)
              for g in (raw.get("guards") if isinstance(raw.get("guards"), list) else ())
              if isinstance(g, str)}
    for name in sorted(set(guards or {}) - listed):   # (found by review: silently nothing)
        log.warning("guard %r is listed on no route: it guards nothing", name)
    return Config(server=server, routes=routes, default_route=default,
                  unmatched_status=unmatched, route_owners=owners, source=source)


def _server(c: Checker, raw: Any) -> ServerConfig:
    d = c.mapping(raw, "server", ("max_request_body_bytes", "max_request_headers_kb",
                                  "max_request_headers_count", "grace_period_s", "access_log",
                                  "trust_mode_override"))
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
                        access_log=c.boolean(d, "access_log", "server", True),
                        trust_mode_override=c.boolean(d, "trust_mode_override", "server",
                                                      False))


def _routing(c: Checker, raw: Any) -> tuple[int, tuple[RouteOwner, ...]]:
    """`routing`: the status of what no route claims, and the trusted route owners."""
    d = c.mapping(raw, "routing", ("unmatched_status", "route_owners"))
    owners = []
    raw_owners = c.sequence(d.get("route_owners"), "routing.route_owners")
    if "route_owners" in d and d["route_owners"] == []:
        c.error("routing.route_owners", "name at least one owner (or remove the key)")
    for i, item in enumerate(raw_owners):
        path = join("routing.route_owners", i)
        o = c.mapping(item, path, ("kind", "namespace", "name"))
        if not isinstance(item, dict):
            continue
        kind = c.string(o, "kind", path, required=True)
        namespace = c.string(o, "namespace", path, required=True)
        name = c.string(o, "name", path)
        if kind and namespace:
            owners.append(RouteOwner(kind, namespace, name))
    status = d.get("unmatched_status", 404)
    if status not in UNMATCHED_STATUSES or isinstance(status, bool):
        c.error("routing.unmatched_status", f"must be 404 or 403, got {status!r}")
        return 404, tuple(owners)
    return int(status), tuple(owners)
