"""Prometheus metrics: what the gateway did, in series people can graph (served on the admin
port at `/metrics`; 9464 in the local stack).

Names follow the OpenTelemetry GenAI conventions where one exists, as Prometheus spells them
(`gen_ai.client.token.usage` is `gen_ai_client_token_usage`, a histogram in tokens); the
gateway's own series start with `extproc_`. Labels never carry request data: no prompt, no
subject, no path. The model is the one label a client chooses, so it is bounded: past
`MAX_MODELS` distinct names in a process, new ones are counted as `other`. The spend
counters' `team` (the value of the configured `spend.team_claim`, `-` without one) is
bounded the same way (`MAX_TEAMS`).

With `--workers N` every worker keeps its own series; the supervisor's admin port serves them
all in one scrape, labelled `worker` (`workers.py`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from . import promlite
from .context import succeeded

if TYPE_CHECKING:
    from .context import Context

disable_created_metrics()   # no `_created` series: half the series, nothing lost
#: every series the server exports, for whoever reads a registry
REGISTRY = CollectorRegistry(auto_describe=True)
#: the per-request series: lock-free (see promlite), exported at scrape time
HOT = promlite.Families(REGISTRY)
#: the few series kept by prometheus_client itself (gauges, reloads): `/metrics` writes
#: them after HOT's, with its `generate_latest`
OTHERS = CollectorRegistry(auto_describe=True)


class _Others(Collector):
    def collect(self) -> Iterator[Metric]:
        return OTHERS.collect()


REGISTRY.register(_Others())
CONTENT_TYPE = CONTENT_TYPE_LATEST
MAX_MODELS = 200
MAX_TEAMS = 200

#: OTel's advice for gen_ai.client.token.usage
TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304)
#: OTel's advice for gen_ai.server.time_to_first_token / request durations
#: (extended: reasoning models can think for a minute before their first token)
TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5,
                5.0, 7.5, 10.0, 20.0, 40.0, 80.0)
DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                    40.96, 81.92, 163.84, 327.68, 655.36)
TPOT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5)
MESSAGE_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                   0.1, 0.25, 0.5, 1.0)

GENAI = ("gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "route")

REQUESTS = HOT.counter(
    "extproc_requests", "HTTP requests the gateway handled, by how they ended (outcome: ok, "
    "upstream_error, auth_denied, rate_limited, guard_rejected, guard_unavailable, "
    "gateway_rejected, error, interrupted, aborted)",
    ["route", "provider", "model", "outcome"])
TOKENS = HOT.histogram(
    "gen_ai_client_token_usage", "Tokens per request as the provider reported them "
    "(gen_ai_token_type: input or output)", [*GENAI, "gen_ai_token_type"],
    buckets=TOKEN_BUCKETS)
REQUEST_DURATION = HOT.histogram(
    "gen_ai_server_request_duration_seconds", "From the request's headers reaching the "
    "gateway to the response's end", [*GENAI, "outcome"], buckets=DURATION_BUCKETS)
TTFT = HOT.histogram(
    "gen_ai_server_time_to_first_token_seconds", "From the request's headers to the first "
    "response text arriving from the provider (streams)", GENAI, buckets=TTFT_BUCKETS)
TTFT_DELIVERED = HOT.histogram(
    "extproc_time_to_first_delivered_token_seconds", "From the request's headers to the "
    "first response text the gateway released to the client (streams; later than the "
    "provider's first token when guards hold text back)", GENAI, buckets=TTFT_BUCKETS)
TPOT = HOT.histogram(
    "gen_ai_server_time_per_output_token_seconds", "Time per output token after the first "
    "(streams): (end - first token) / (output tokens - 1)", GENAI, buckets=TPOT_BUCKETS)
GUARD_DECISIONS = HOT.counter(
    "extproc_guard_decisions", "Guard decisions that changed or stopped something "
    "(decision: masked, rejected, error_open, error_closed)",
    ["route", "guard", "direction", "decision"])
RATELIMIT_DECISIONS = HOT.counter(
    "extproc_ratelimit_decisions", "Rate-limit admissions (decision: allowed, limited, unpriced, "
    "backend_error_open, backend_error_closed) and settlements the store did not record "
    "(settle_error: the reservation stays charged)", ["route", "limit", "decision"])
SPEND = HOT.counter(
    "extproc_spend", "What requests cost at the route's prices (from the provider's usage; "
    "in `currency`, the config's prices.currency)",
    ["route", "provider", "model", "team", "currency"])
UNPRICED = HOT.counter(
    "extproc_unpriced_requests", "Requests with usage but no price for their model (no "
    "prices entry and no route default_price): their cost is unknown, not zero",
    ["route", "provider", "model"])
STREAM_CUTS = HOT.counter(
    "extproc_stream_cuts", "Streams the gateway ended before the provider did (rate limits "
    "with cut_streams), in the provider's format, the upstream closed (reason: budget, at "
    "the budget's output allowance; unreadable, at an event it could not count)",
    ["route", "provider", "model", "reason"])
USAGE_UNREAD = HOT.counter(
    "extproc_usage_unread", "Replies whose usage the gateway could not read, so token limits "
    "and spend budgets charged their worst case (reason: oversized_event, broken_stream, "
    "too_large, not_json, encoded, no_usage, untranslated, deferred)",
    ["route", "provider", "model", "reason"])
UNSHOWN = HOT.counter(
    "extproc_unshown", "Requests and replies Envoy did not show the gateway although a "
    "policy needed them, by what was missing (request_body, response_body: body mode NONE; "
    "request_body_override_ignored; request_headers, response_headers: header mode SKIP): "
    "refused; observability_mode: counted, as nothing can be refused there",
    ["route", "what"])
FRONT_REQUESTS = HOT.counter(
    "extproc_front_requests", "Requests of the unified OpenAI-compatible front, by the model "
    "the client named (front_model) and the backend provider and model that served it",
    ["route", "front_model", "provider", "model", "outcome"])
MESSAGE_DURATION = HOT.histogram(
    "extproc_message_duration_seconds", "Time the gateway spent handling one ext_proc "
    "message, by message kind", ["message"], buckets=MESSAGE_BUCKETS)
ACTIVE_STREAMS = Gauge(
    "extproc_active_streams", "ext_proc streams open now (one per HTTP request in flight)",
    registry=OTHERS)
HELD_BYTES = Gauge(
    "extproc_held_bytes", "Response bytes held back right now by stream transforms "
    "(guards waiting to see whether text grows into a match, partial events)",
    registry=OTHERS)
RELOADS = Counter(
    "extproc_config_reloads", "Config reloads (result: ok, refused)", ["result"],
    registry=OTHERS)
for _result in ("ok", "refused"):   # both at 0 from the start: `increase(...) > 0` then
    RELOADS.labels(_result)         # sees the first refusal (found by review)
CONFIG_LOADED = Gauge(
    "extproc_config_loaded_timestamp_seconds", "When the running config was loaded",
    registry=OTHERS)

_models: set[str] = set()


def model_label(model: Any, admit: bool = True) -> str:
    """A model name as a label value, bounded: `unknown` when none, `other` past the cap. A
    name not seen before takes one of the cap's places only with `admit` (a request the
    provider served): names a provider refused (a 404 for each made-up model) cannot fill
    the cap and push the real ones into `other`."""
    if not isinstance(model, str) or not model:
        return "unknown"
    if model in _models:
        return model
    if not admit or len(_models) >= MAX_MODELS or len(model) > 128 or not model.isprintable():
        return "other"
    _models.add(model)
    return model


_teams: set[str] = set()


def team_label(team: Any) -> str:
    """A team claim's value as a label value, bounded: `-` when none, `other` past the cap."""
    if not isinstance(team, str) or not team:
        return "-"
    if team in _teams:
        return team
    if len(_teams) >= MAX_TEAMS or len(team) > 128 or not team.isprintable():
        return "other"
    _teams.add(team)
    return team


def operation(provider: str) -> str:
    return "generate_content" if provider in ("gemini", "vertex") else "chat"


#: a refusal's `details` (or status) to the outcome label
_REFUSALS = {"extproc_guard_rejected": "guard_rejected",
             "extproc_guard_unavailable": "guard_unavailable",
             "extproc_ratelimit_unavailable": "error", "extproc_internal_error": "error",
             "extproc_unknown_route": "error"}


def outcome(ex: Context) -> str:
    """How an exchange ended, as one word (the `outcome` label and log field)."""
    if ex.failed:
        return "error"
    if ex.rejection is not None:
        status, details = ex.rejection
        if details in _REFUSALS:
            return _REFUSALS[details]
        if status in (401, 403):
            return "auth_denied"
        if status == 429:
            return "rate_limited"
        return "error" if status >= 500 else "gateway_rejected"
    if ex.state.get("guard_stopped"):
        return "guard_rejected"
    if ex.state.get("local_reply") and ex.status >= 400:   # Envoy's refusal, before upstream
        return "error" if ex.status >= 500 else "gateway_rejected"
    if ex.state.get("interrupted"):   # the stream ended while a policy handled a message
        return "interrupted"
    if ex.status >= 400 or ex.state.get("upstream_error"):
        return "upstream_error"
    if ex.status == 0 or ex.ended_at is None:
        return "aborted"
    return "ok"


class _Series:
    """The label children one kind of exchange records into, looked up once: `labels()`
    takes a lock and checks its arguments on every call."""

    __slots__ = (
        "delivered",
        "duration",
        "requests",
        "tokens_in",
        "tokens_out",
        "tpot",
        "ttft",
    )

    def __init__(self, route: str, provider: str, model: str, result: str) -> None:
        genai = (operation(provider), provider, model, route)
        self.requests = REQUESTS.labels(route, provider, model, result)
        self.duration = REQUEST_DURATION.labels(*genai, result)
        self.tokens_in = TOKENS.labels(*genai, "input")
        self.tokens_out = TOKENS.labels(*genai, "output")
        self.ttft = TTFT.labels(*genai)
        self.delivered = TTFT_DELIVERED.labels(*genai)
        self.tpot = TPOT.labels(*genai)


_series: dict[tuple[str, str, str, str], _Series] = {}


def observe_exchange(ex: Context, result: str) -> None:
    """Record one finished HTTP exchange (called once, when its stream ends)."""
    state = ex.state
    served = succeeded(ex.status)   # (a model only a refusal named takes no place in the cap)
    # the unified front: labelled by the backend that served the front model
    key = (ex.route_name or "unknown", state.get("backend_provider") or ex.provider or
           "unknown", model_label(state.get("backend_model") or state.get("model"), served),
           result)
    series = _series.get(key)
    if series is None:
        series = _series[key] = _Series(*key)
    series.requests.inc()
    end = ex.ended_at or time.monotonic()
    series.duration.observe(end - ex.started_at)
    usage = state.get("usage")
    output = 0
    if usage is not None:
        inp = getattr(usage, "input_tokens", None)
        out = getattr(usage, "output_tokens", None)
        if isinstance(inp, int):
            series.tokens_in.observe(inp)
        if isinstance(out, int):
            series.tokens_out.observe(out)
            output = out
    first = ex.first_token_at
    if first is not None:
        series.ttft.observe(first - ex.started_at)
        if output > 1 and ex.ended_at is not None and ex.ended_at > first:
            series.tpot.observe((ex.ended_at - first) / (output - 1))
    if ex.first_delivered_at is not None:
        series.delivered.observe(ex.first_delivered_at - ex.started_at)
    cost = ex.state.get("cost")
    if cost is not None:
        SPEND.labels(key[0], key[1], key[2], team_label(ex.state.get("spend_team")),
                     ex.state.get("currency") or "USD").inc(float(cost))
    elif ex.state.get("cost_status") == "unpriced":
        UNPRICED.labels(key[0], key[1], key[2]).inc()
    cut = ex.state.get("cut")
    if cut is not None:
        STREAM_CUTS.labels(key[0], key[1], key[2], cut).inc()
    unread = ex.state.get("usage_unread_kind")   # (llm.policy.USAGE_UNREAD_KIND)
    if unread is not None:
        USAGE_UNREAD.labels(key[0], key[1], key[2], unread).inc()
    front = state.get("front_model")
    if front is not None:
        FRONT_REQUESTS.labels(key[0], model_label(front, served), key[1], key[2], result).inc()


def message_timers() -> dict[str, Callable[[float], None]]:
    """One bound `observe` per ext_proc message kind (no label lookup per message)."""
    kinds = ("request_headers", "request_body", "request_trailers", "response_headers",
             "response_body", "response_trailers")
    return {k: MESSAGE_DURATION.labels(k).observe for k in kinds}


def families() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Every family the server exports: name -> (type, label names)."""
    out = {f.name: (f.kind, f.labelnames) for f in HOT.families}
    for value in globals().values():
        if isinstance(value, MetricWrapperBase):
            out[value._name] = (value._type, tuple(value._labelnames))
    return out


def render() -> bytes:
    """The exposition `/metrics` serves (text format 0.0.4), in one go."""
    return ("".join(HOT.exposition()).encode() + generate_latest(OTHERS))


#: how many series `render_async` writes between two turns it gives the event loop
SLICE = 200


async def render_async() -> bytes:
    """`render()`, giving the event loop a turn every SLICE series: a scrape of tens of
    thousands of series must not stall every open stream for as long as it takes."""
    parts: list[str] = []
    for i, part in enumerate(HOT.exposition(), 1):
        parts.append(part)
        if i % SLICE == 0:
            await asyncio.sleep(0)
    return "".join(parts).encode() + generate_latest(OTHERS)
