"""The rate-limit parts of the config, validated with every error named by its key path.

Top level (optional; the default is the in-memory backend, which cannot fail; a backend
error refuses by default)::

    limits:
      backend: memory                  # memory (per process) | redis (shared)
      redis_url: redis://127.0.0.1:6379/0
      timeout_ms: 50                   # per Redis call
      on_backend_error: deny           # deny (503 + Retry-After: 1, the default) | allow
      default_max_tokens: 1024         # output reserved when a request names no maximum...
      default_max_tokens_by_model:     # ...or, for the models of a glob, this (first match)
        "o*": 16384
      write_max_tokens: true           # ...and written into it on token/spend routes
      chars_per_token: 4               # ASCII prompt text per token in the estimate
      input_media_tokens: {image: 2500}  # an input media item where no usage report is
                                       # read (kinds: image audio video document file)

The environment variable `EXTPROC_LIMITS_REDIS_URL`, when set, selects the Redis backend at
that URL whatever the file says (docker compose uses it, so one config file serves both the
local stack and compose).

Per route::

    rate_limits:
      - name: per-user                 # unique on the route
        key: [subject]                 # subject | api_key | client_ip | route | model |
                                       # claim:<name> | header:<name>
        requests: [{limit: 60, per: 1m}, {limit: 1000, per: 1d}]
        tokens: [{limit: 100000, per: 1m}]
      - name: team-daily
        key: [claim:team]
        spend: [{limit: 25.00, per: 1d}]   # in the config's currency (prices.currency);
                                           # decimals allowed, down to 0.000001
        cut_streams: true              # end a stream when this limit's token or spend
                                       # budget runs out (default false; only on a limit
                                       # with tokens or spend)

Each limit needs at least one of requests, tokens, spend. Token and spend budgets settle on
the provider's usage: the route needs `streams.usage: true`. Spend budgets price a request at
its model's price (`prices`, else the route's `default_price`); a request whose model has no
price is refused (403), since its spend could not be counted.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from ..auth.credentials import CLIENT_CREDENTIAL_HEADERS, CREDENTIAL_SCOPE_HEADERS
from ..schema import Checker, join
from ..spend.prices import Pricing
from . import budgets
from .cut import MAX_EVENT_BYTES
from .gcra import Window
from .keys import DESCRIPTORS, PREFIXED
from .media import DEFAULTS as MEDIA_DEFAULTS
from .policy import LimitSpec, RateLimit
from .spending import to_micro
from .store import MemoryStore, Store

log = logging.getLogger(__name__)

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
#: stores by backend settings: one per process, kept across config reloads (the budgets
#: already spent survive a reload)
_STORES: dict[tuple[Any, ...], Store] = {}


@dataclass
class LimitsSettings:
    backend: str = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    timeout_ms: float = 50.0
    fail_open: bool = False
    default_max_tokens: int = 1024
    #: (model glob, bound) pairs, first match wins (`default_max`)
    max_tokens_by_model: tuple[tuple[str, int], ...] = ()
    write_max_tokens: bool = True
    chars_per_token: float = 4.0
    #: tokens per input media item where no usage report is read, by kind (`media`)
    media_tokens: dict[str, int] = field(default_factory=lambda: dict(MEDIA_DEFAULTS))
    _store: Store | None = field(default=None, repr=False)

    def store(self) -> Store:
        if self._store is None:
            # memory: one store whatever the Redis settings say, so a reload that changes
            # only them keeps every budget spent
            key = (self.backend, self.redis_url, self.timeout_ms) \
                if self.backend == "redis" else ("memory",)
            if key not in _STORES:
                if self.backend == "redis":
                    from .redis_store import RedisStore
                    _STORES[key] = RedisStore(self.redis_url, timeout_s=self.timeout_ms / 1000)
                else:
                    _STORES[key] = MemoryStore()
            self._store = _STORES[key]
        return self._store


async def close_stores() -> None:
    """Close every store made since start, at shutdown once the last settlement is done: a
    Redis store's connection pool left open was a ResourceWarning at exit, its connections
    dropped rather than closed. The next `LimitsSettings.store` makes a new one."""
    stores = list(_STORES.values())
    _STORES.clear()
    for store in stores:
        close = getattr(store, "close", None)
        if close is not None:
            try:
                await close()
            except Exception as exc:    # exiting: say it, close the others
                log.warning("closing a limits store: %s: %s", type(exc).__name__, exc)


async def spend_budgets(routes: Mapping[str, Any]) -> dict[str, Any]:
    """What `GET /spend` answers: every spend budget with state in the stores the running
    config's `routes` use (`budgets.rows`), and which kind of store holds them (`memory`:
    this process's own; `redis`: shared by every worker and replica). Not every store made
    since start: a config a reload refused, or one replaced since, made its own (found by
    review: one naming an unreachable Redis turned `/spend` into a 503 until a restart)."""
    stores: dict[int, Store] = {}
    for route in routes.values():
        for policy in route.every_policy:
            if isinstance(policy, RateLimit):
                stores.setdefault(id(policy.store), policy.store)
    rows: list[dict[str, Any]] = []
    redis = bool(stores)
    for store in stores.values():
        redis = redis and not isinstance(store, MemoryStore)
        rows += await store.spend_budgets()
    return {"store": "redis" if redis else "memory", "budgets": rows}


def configured(routes: Mapping[str, Any]) -> int:
    """How many spend limits the routes of a config set (a route's `RateLimit` policies'
    limits with `spend:` windows; each of a `provider: auto` route's variants counts once)."""
    seen: set[tuple[str, str]] = set()
    for name, route in routes.items():
        for policy in route.every_policy:
            if isinstance(policy, RateLimit):
                seen.update((name, spec.name) for spec in policy.limits if spec.spend)
    return len(seen)


def parse_duration(value: Any) -> float | None:
    """'1m', '30s', '1h', '1d', '250ms' or a number of seconds; None if unreadable."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value > 0 else None
    if isinstance(value, str) and (m := _DURATION.match(value.strip())):
        seconds = float(m.group(1)) * _UNITS[m.group(2)]
        return seconds if seconds > 0 else None
    return None


def parse_limits(c: Checker, raw: Any) -> LimitsSettings:
    d = c.mapping(raw, "limits", ("backend", "redis_url", "timeout_ms", "on_backend_error",
                                  "default_max_tokens", "default_max_tokens_by_model",
                                  "write_max_tokens",
                                  "chars_per_token", "input_media_tokens"))
    backend = c.choice(d, "backend", "limits", ("memory", "redis"), "memory", what="backend")
    url = c.string(d, "redis_url", "limits", "redis://127.0.0.1:6379/0")
    env = os.environ.get("EXTPROC_LIMITS_REDIS_URL")
    if env is not None:   # set: the Redis backend at that URL, whatever the file says
        if not env.strip():
            c.error("EXTPROC_LIMITS_REDIS_URL", "is set but empty (a Secret key with no "
                    "value?): unset it for the file's backend, or give a Redis URL")
        backend, url, where = "redis", env.strip(), "EXTPROC_LIMITS_REDIS_URL"
    else:
        where = "limits.redis_url"
    if url and not url.startswith(("redis://", "rediss://", "unix://")):
        c.error(where, f"expected redis://, rediss:// or unix://, got {_shown(url)!r}")
    timeout = c.number(d, "timeout_ms", "limits", 50.0, minimum=1)
    # deny unless said: a Redis that is down must not turn every budget off
    mode = c.choice(d, "on_backend_error", "limits", ("allow", "deny"), "deny")
    default_max = c.number(d, "default_max_tokens", "limits", 1024, minimum=1, integer=True)
    by_model = _by_model(c, d.get("default_max_tokens_by_model"))
    write = c.boolean(d, "write_max_tokens", "limits", True)
    cpt = c.number(d, "chars_per_token", "limits", 4.0, minimum=0.5)
    media = dict(MEDIA_DEFAULTS)
    given = c.mapping(d.get("input_media_tokens"), "limits.input_media_tokens",
                      MEDIA_DEFAULTS)
    for kind in MEDIA_DEFAULTS:
        if kind in given:
            media[kind] = int(c.number(given, kind, "limits.input_media_tokens",
                                       MEDIA_DEFAULTS[kind], integer=True))
    return LimitsSettings(backend=backend or "memory", redis_url=url or "",
                          timeout_ms=float(timeout), fail_open=mode != "deny",
                          default_max_tokens=int(default_max), write_max_tokens=bool(write),
                          chars_per_token=float(cpt), max_tokens_by_model=by_model,
                          media_tokens=media)


def _by_model(c: Checker, raw: Any) -> tuple[tuple[str, int], ...]:
    """`limits.default_max_tokens_by_model`: a mapping of model globs to whole numbers of
    tokens, at least 1 (in the order given: the first glob a model matches wins)."""
    where = "limits.default_max_tokens_by_model"
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        c.error(where, "expected a mapping of model globs to token counts, e.g. "
                "{\"o*\": 16384}")
        return ()
    out = []
    for glob, n in raw.items():
        if not isinstance(glob, str) or not glob:
            c.error(where, f"expected model globs as keys, got {glob!r}")
        elif isinstance(n, bool) or not isinstance(n, int) or n < 1:
            c.error(f"{where}.{glob}", f"expected a whole number of tokens, at least 1, "
                    f"got {n!r}")
        else:
            out.append((glob, n))
    return tuple(out)


def _shown(url: str) -> str:
    """A URL as an error may show it: no password (`redis://:secret@host`)."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest:
        return f"{scheme}://***@{rest.rpartition('@')[2]}"
    return url if "@" not in url else "***@" + url.rpartition("@")[2]


#: headers no limit may key on (`parse_route_limits`)
CREDENTIALS = frozenset((*CLIENT_CREDENTIAL_HEADERS, *CREDENTIAL_SCOPE_HEADERS))
#: the unit a window's stored state is named with (requests keep the bare name they had)
_WINDOW_UNITS = {"requests": "", "tokens": "tokens", "spend": budgets.UNIT}


def _windows(c: Checker, d: Mapping[str, Any], key: str, path: str) -> tuple[Window, ...]:
    out: list[Window] = []
    for i, item in enumerate(c.sequence(d.get(key), join(path, key))):
        where = join(join(path, key), i)
        w = c.mapping(item, where, ("limit", "per"))
        if "limit" not in w:
            c.error(join(where, "limit"), "is required")
            limit: int | None = None
        elif key == "spend":
            limit = _spend_limit(c, w.get("limit"), join(where, "limit"))
        else:
            limit = int(c.number(w, "limit", where, 1, minimum=1, integer=True) or 1)
        period = parse_duration(w.get("per"))
        if period is None:
            c.error(join(where, "per"), f"expected a duration like 1s, 1m, 1h, 1d, got "
                    f"{w.get('per')!r}")
        elif limit is not None:
            # each kind its own state: a tokens window of the same numbers as a requests
            # window once shared it, and a request's token refund gave the request back
            if any(o.period_s == period for o in out):
                c.error(join(where, "per"), "another window of this list has the same "
                        "period: only the smaller limit would count; keep one")
                continue
            out.append(Window(limit, period, _WINDOW_UNITS[key]))
    return tuple(out)


def _spend_limit(c: Checker, value: Any, path: str) -> int | None:
    """A spend limit in currency units as micro-units (25.00 -> 25_000_000)."""
    try:
        # through str: 0.3 is read as written, not as the binary float nearest to it
        amount = Decimal(str(value)) if isinstance(value, int | float | str) and \
            not isinstance(value, bool) else None
    except InvalidOperation:
        amount = None
    if amount is None or not amount.is_finite() or amount <= 0:
        c.error(path, f"expected an amount of currency > 0 (like 25.00), got {value!r}")
        return None
    micro = to_micro(amount)
    if micro < 1 or micro != amount * 1_000_000:
        c.error(path, f"{value!r}: amounts are counted to the millionth (0.000001)")
        return None
    return micro


def parse_route_limits(c: Checker, raw: Any, path: str, provider: str, route: str,
                       shared: LimitsSettings, pricing: Pricing | None = None,
                       max_event_bytes: int = MAX_EVENT_BYTES,
                       allow_background: bool = False,
                       allow_stored_context: bool = False) -> RateLimit | None:
    """A route's `rate_limits:` as its `RateLimit` policy (None on errors, which are on
    `c`); `allow_background`, `allow_stored_context`: the route's options of those names
    (`RateLimit`)."""
    before = len(c.errors)
    specs: list[LimitSpec] = []
    names: set[str] = set()
    for i, item in enumerate(c.sequence(raw, path)):
        where = join(path, i)
        d = c.mapping(item, where, ("name", "key", "requests", "tokens", "spend",
                                    "cut_streams"))
        name = c.string(d, "name", where, required=True)
        if name in names:
            c.error(join(where, "name"), f"duplicate limit name {name!r}")
        names.add(name or "")
        key = tuple(k for k in c.sequence(d.get("key"), join(where, "key")))
        for j, k in enumerate(key):
            if not isinstance(k, str) or not (k in DESCRIPTORS or (
                    k.startswith(PREFIXED) and len(k.split(":", 1)[1]) > 0)):
                c.error(join(join(where, "key"), j),
                        f"unknown descriptor {k!r} (one of: {', '.join(DESCRIPTORS)}, "
                        "claim:<name>, header:<name>)")
            elif k.lower().startswith("header:") and k[7:].strip().lower() in CREDENTIALS:
                # (and the headers that pick the account it bills: removed upstream)
                # a credential as the client spells it: `Bearer x`, `bearer x` and
                # `x-api-key: x` are one client in as many buckets, and the gateway
                # removes it where it swaps credentials
                c.error(join(join(where, "key"), j),
                        f"{k!r} keys on a credential as the client spells it; key on "
                        "'subject' or 'api_key', which name the authenticated client")
        requests = _windows(c, d, "requests", where)
        tokens = _windows(c, d, "tokens", where)
        spend = _windows(c, d, "spend", where)
        if not d.get("requests") and not d.get("tokens") and not d.get("spend"):
            c.error(where, "needs requests, tokens and/or spend budgets")
        cut = bool(c.boolean(d, "cut_streams", where, False))
        if cut and not d.get("tokens") and not d.get("spend"):
            c.error(join(where, "cut_streams"), "cuts a stream at a token or spend budget: "
                    "this limit has neither")
        if name:
            specs.append(LimitSpec(name=name, key=tuple(k.lower() if k.startswith("header:")
                                                        else k for k in key),
                                   requests=requests, tokens=tokens, spend=spend,
                                   cut_streams=cut))
    if len(c.errors) > before or not specs:
        return None
    return RateLimit(provider, route, specs, shared.store(), fail_open=shared.fail_open,
                     default_max_tokens=shared.default_max_tokens,
                     max_tokens_by_model=shared.max_tokens_by_model,
                     write_max_tokens=shared.write_max_tokens,
                     chars_per_token=shared.chars_per_token, pricing=pricing,
                     max_event_bytes=max_event_bytes, allow_background=allow_background,
                     allow_stored_context=allow_stored_context,
                     media_tokens=shared.media_tokens)
