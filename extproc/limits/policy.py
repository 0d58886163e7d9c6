"""`RateLimit`: the built-in route policy that admits requests against request and token
budgets, reserving tokens up front and settling them against real usage at the end.

Per request, for each configured limit: build its key from descriptors (subject, API key,
claim, header, client IP, route, model), then one atomic admission over all its windows
(requests cost 1, token windows cost the estimate). All limits admit or the request is
refused with a 429 in the provider's format and `Retry-After` (limits that had admitted are
refunded). Every response carries OpenAI's `x-ratelimit-*` headers for the tightest window.
When the exchange ends, however it ends, the token reservation is settled: with the
provider's reported usage, or, for a stream cut short, the prompt estimate plus the output
delivered so far; an upstream error charges nothing.

The `subject` descriptor is the namespaced subject of `auth.policy` (`jwt:<provider>:<sub>`,
`key:<subject>`), so a JWT user and an API key with the same raw subject get separate buckets
unless the config gives them one namespace. Descriptor values are escaped before they are
joined, so no value (a subject, a header, a model name) can spell another key's separator.

The decision is kept as `ratelimit` in the exchange state, a JSON-ready summary for the
access log: `decision`, the `limit` that decided (the refusing one, else the one closest to
refusing), `remaining_requests` / `remaining_tokens` of the tightest windows (as in the
headers) and `reserved_tokens`.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import metrics
from ..policy import BodyTransform, Policy, Reject
from ..providers import adapter_for, read_request
from ..providers.endpoints import adapter_of, is_passthrough
from .estimate import TEXT_MARKERS, DeliveredText, prompt_tokens
from .gcra import Outcome, Window, WindowState
from .store import Store, StoreUnavailable

if TYPE_CHECKING:
    from ..context import Context

log = logging.getLogger("extproc.limits")
DESCRIPTORS = ("subject", "api_key", "client_ip", "route", "model")
PREFIXED = ("claim:", "header:")
_STATE = "ratelimit"           # the decision's summary (read by the access log)
_HELD = "ratelimit_held"       # what the request reserved, for settlement


@dataclass(frozen=True)
class LimitSpec:
    """One entry of a route's `rate_limits:`."""

    name: str
    key: tuple[str, ...]
    requests: tuple[Window, ...] = ()
    tokens: tuple[Window, ...] = ()

    @property
    def windows(self) -> tuple[Window, ...]:
        return self.requests + self.tokens


@dataclass
class _Held:
    """What one request reserved, to settle when it ends."""

    estimate: int = 0                                  # tokens reserved per token window
    input_estimate: int = 0
    keys: list[tuple[str, LimitSpec]] = field(default_factory=list)
    delivered: DeliveredText | None = None
    settled: bool = False


class RateLimit(Policy):
    reads_json = True

    def __init__(self, provider: str, route: str, limits: Sequence[LimitSpec], store: Store,
                 *, fail_open: bool = True, default_max_tokens: int = 1024,
                 chars_per_token: float = 4.0) -> None:
        super().__init__({})
        self.provider = provider
        self.route = route
        self.limits = tuple(limits)
        self.store = store
        self.fail_open = fail_open
        self.default_max_tokens = default_max_tokens
        self.chars_per_token = chars_per_token
        self.adapter = adapter_for(provider)
        self.uses_tokens = any(spec.tokens for spec in self.limits)
        self.uses_model = any("model" in spec.key for spec in self.limits)
        # the estimate and the model come from the body; output is counted on the way back
        self.needs_request_body = self.uses_tokens or self.uses_model
        self.needs_response_body = self.uses_tokens
        self.needs_finish = self.uses_tokens
        self.stats = {"allowed": 0, "limited": 0, "backend_errors": 0}
        self._last_error_log = 0.0

    # --- admission ---------------------------------------------------------------------
    async def on_request_headers(self, ex: Context) -> None:
        # a pass-through request is admitted here, by request limits only (the exchange
        # shows its body to no policy that reads the provider's JSON)
        if not self.needs_request_body or ex.request_ended or is_passthrough(ex):
            await self._admit(ex, None, None)

    async def on_request_body(self, ex: Context, body: bytes) -> bytes | None:
        adapter = adapter_of(ex, self.adapter)
        # the request as read before any policy changed it (masking, the usage option do
        # not touch what is counted here): no second parse of a rewritten body
        memo = ex.state.get("_read")
        read = memo[1] if memo is not None and memo[1] is not None else read_request(
            adapter, ex.request_headers.get(":path", ""), body, ex.state)
        prompt = ex.state.get("prompt") or (read[1] if read is not None else None)
        # token-id inputs (legacy completions, embeddings) carry no text: count them as given
        opaque = getattr(adapter, "opaque_tokens", None)
        extra = opaque(read[0]) if opaque is not None and read is not None else 0
        choices = adapter.output_choices(read[0]) if read is not None else 1
        await self._admit(ex, prompt, body, extra, choices)
        return None

    async def _admit(self, ex: Context, prompt: Any, body: bytes | None,
                     extra_input: int = 0, choices: int = 1) -> None:
        held = _Held()
        if self.uses_tokens:
            if prompt is not None:
                held.input_estimate = prompt_tokens((t for _, t in prompt.texts),
                                                    self.chars_per_token)
            else:
                held.input_estimate = math.ceil(len(body or b"") / self.chars_per_token)
            held.input_estimate += extra_input
            endpoint = ex.endpoint
            if endpoint is not None and not endpoint.spec.generates:
                output = 0   # embeddings, token counts, pass-through: nothing to generate
            elif prompt is not None:
                # n / candidateCount replies may each run to the max
                output = (prompt.max_output_tokens or self.default_max_tokens) * choices
            else:
                output = self.default_max_tokens
            held.estimate = held.input_estimate + output
        model = getattr(prompt, "model", None) or ex.state.get("model")
        req_states: list[WindowState] = []
        tok_states: list[WindowState] = []
        named: list[tuple[WindowState, str]] = []   # every window, with its limit's name
        admitted: list[tuple[str, LimitSpec]] = []
        for spec in self.limits:
            key = self._key(ex, spec, model)
            costs = [1.0] * len(spec.requests) + [float(held.estimate)] * len(spec.tokens)
            try:
                outcome = await self.store.admit(key, spec.windows, costs)
            except StoreUnavailable as exc:
                await self._unwind(admitted, held.estimate)
                self._backend_error(exc)
                _decided(ex, spec.name, "backend_error_open" if self.fail_open
                         else "backend_error_closed")
                if self.fail_open:
                    return
                raise Reject(503, "rate limits are unavailable; try again shortly",
                             headers={"retry-after": "1"},
                             details="extproc_ratelimit_unavailable") from None
            n = len(spec.requests)
            req_states.extend(outcome.windows[:n])
            tok_states.extend(outcome.windows[n:])
            named.extend((st, spec.name) for st in outcome.windows)
            if not outcome.allowed:
                await self._unwind(admitted, held.estimate)
                self.stats["limited"] += 1
                # the refusing limit's own windows (those before it are given back)
                _decided(ex, spec.name, "limited", list(outcome.windows[:n]),
                         list(outcome.windows[n:]))
                raise self._limited(spec, outcome, costs, req_states, tok_states)
            admitted.append((key, spec))
        self.stats["allowed"] += 1
        for _, spec in admitted:
            _decided(ex, spec.name, "allowed")
        held.keys = admitted
        ex.state[_HELD] = held
        closest = min(named, key=lambda p: _tightness(p[0]))[1] if named else None
        ex.state[_STATE] = _summary("allowed", closest, req_states, tok_states,
                                    held.estimate if self.uses_tokens else None)
        for name, value in _headers(req_states, tok_states).items():
            ex.set_response_header(name, value)

    async def _unwind(self, admitted: list[tuple[str, LimitSpec]], estimate: int) -> None:
        """Give back what the limits before a refusal took."""
        for key, spec in admitted:
            deltas = [-1.0] * len(spec.requests) + [-float(estimate)] * len(spec.tokens)
            try:
                await self.store.settle(key, spec.windows, deltas)
            except StoreUnavailable as exc:
                self._backend_error(exc)

    def _limited(self, spec: LimitSpec, outcome: Outcome, costs: list[float],
                 req_states: list[WindowState], tok_states: list[WindowState]) -> Reject:
        headers = _headers(req_states, tok_states)
        denied = [i for i, st in enumerate(outcome.windows) if costs[i] > st.remaining]
        i = denied[0] if denied else 0
        w = spec.windows[i]
        kind = "requests" if i < len(spec.requests) else "tokens"
        if math.isinf(outcome.retry_after_s):
            message = (f"request needs about {int(costs[i])} tokens, more than the whole "
                       f"'{spec.name}' budget of {w.limit} tokens per {_period(w.period_s)}")
        else:
            headers["retry-after"] = str(max(1, math.ceil(outcome.retry_after_s)))
            message = (f"rate limit '{spec.name}' exceeded: {w.limit} {kind} per "
                       f"{_period(w.period_s)}; retry after {headers['retry-after']}s")
        return Reject(429, message, headers=headers, details="extproc_ratelimited")

    def _key(self, ex: Context, spec: LimitSpec, model: str | None) -> str:
        identity = ex.state.get("identity")
        parts = [self.route, spec.name]
        for d in spec.key:
            parts.append(_descriptor(d, ex, identity, model, self.route))
        key = "\x1f".join(_escape(p) for p in parts)
        return key if len(key) <= 200 else hashlib.sha256(key.encode()).hexdigest()

    def _backend_error(self, exc: StoreUnavailable) -> None:
        self.stats["backend_errors"] += 1
        now = time.monotonic()
        if now - self._last_error_log > 5:
            self._last_error_log = now
            log.warning("rate limit backend unavailable (%s): failing %s", exc,
                        "open" if self.fail_open else "closed")

    # --- settlement --------------------------------------------------------------------
    def response_transform(self, ex: Context) -> BodyTransform | None:
        held: _Held | None = ex.state.get(_HELD)
        if held is None or not self.uses_tokens or ex.status != 200:
            return None
        # only a stream can be cut after some of it was delivered: a whole JSON reply
        # carries its usage, and one that never arrived delivered nothing
        ctype = ex.response_headers.get("content-type", "")
        if not ctype.startswith("text/event-stream") and not _json_array_stream(ex):
            return None
        marker = getattr(adapter_of(ex, self.adapter), "text_marker", None) \
            or TEXT_MARKERS[self.provider]
        held.delivered = DeliveredText(marker, self.chars_per_token)
        return held.delivered

    async def on_finish(self, ex: Context) -> None:
        held: _Held | None = ex.state.get(_HELD)
        if held is None or held.settled or not self.uses_tokens:
            return
        held.settled = True
        actual = self.actual_tokens(ex, held)
        delta = actual - held.estimate
        ex.state["tokens_charged"] = actual
        if not delta:
            return
        for key, spec in held.keys:
            if spec.tokens:
                deltas = [0.0] * len(spec.requests) + [float(delta)] * len(spec.tokens)
                try:
                    await self.store.settle(key, spec.windows, deltas)
                except StoreUnavailable as exc:
                    self._backend_error(exc)

    @staticmethod
    def actual_tokens(ex: Context, held: _Held) -> int:
        """What the request really cost: nothing when it never got a 2xx from upstream,
        the provider's usage when it reported it, else prompt estimate + delivered output."""
        if not 200 <= ex.status < 300:
            return 0
        usage = ex.state.get("usage")
        if usage is not None and not usage.is_empty():
            if usage.total_tokens is not None:
                return usage.total_tokens
            return (usage.input_tokens or 0) + (usage.output_tokens or 0)
        delivered = held.delivered.tokens if held.delivered is not None else 0
        return held.input_estimate + delivered


def _json_array_stream(ex: Context) -> bool:
    """A Gemini/Vertex stream without alt=sse (a JSON array sent piece by piece)."""
    return ex.endpoint is not None and ex.endpoint.json_array


def _escape(part: str) -> str:
    """A key part that cannot contain the separator (\\x1f), with what cannot be encoded
    (lone surrogates: undecodable header bytes, claims with invalid escapes) spelled out:
    distinct parts stay distinct."""
    if "\\" in part or "\x1f" in part:
        part = part.replace("\\", "\\\\").replace("\x1f", "\\x1f")
    if not part.isascii():
        part = part.encode("utf-8", "surrogatepass").decode("utf-8", "backslashreplace")
    return part


def _descriptor(d: str, ex: Context, identity: Any, model: str | None, route: str) -> str:
    if d == "subject":
        return getattr(identity, "subject", "") or "-"
    if d == "api_key":
        return identity.source if identity is not None and identity.method == "api_key" \
            else "-"
    if d == "route":
        return route
    if d == "model":
        return model or "-"
    if d == "client_ip":
        xff = ex.request_headers.get("x-forwarded-for", "")
        return xff.rsplit(",", 1)[-1].strip() or "-"
    if d.startswith("claim:"):
        value = identity.claims.get(d[6:]) if identity is not None else None
        return str(value) if value is not None else "-"
    return ex.request_headers.get(d[7:], "-")  # header:<name>


def _tightness(s: WindowState) -> tuple[float, float]:
    """Orders windows by how close they are to refusing: the smallest share left, then the
    longest wait."""
    return (s.remaining / s.window.limit, -s.reset_s)


def _tightest(states: list[WindowState]) -> WindowState:
    return min(states, key=_tightness)


def _headers(req: list[WindowState], tok: list[WindowState]) -> dict[str, str]:
    out: dict[str, str] = {}
    for kind, states in (("requests", req), ("tokens", tok)):
        if not states:
            continue
        tight = _tightest(states)
        out[f"x-ratelimit-limit-{kind}"] = str(tight.window.limit)
        out[f"x-ratelimit-remaining-{kind}"] = str(tight.remaining)
        out[f"x-ratelimit-reset-{kind}"] = duration(tight.reset_s)
    return out


def duration(seconds: float) -> str:
    """OpenAI's reset format: 17ms, 1s, 6m0s, 1h2m3s (Go's time.Duration style)."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    total = round(seconds, 3)
    h, rest = divmod(total, 3600)
    m, s = divmod(rest, 60)
    sec = f"{s:.3f}".rstrip("0").rstrip(".") + "s"
    if h:
        return f"{int(h)}h{int(m)}m{sec}"
    if m:
        return f"{int(m)}m{sec}"
    return sec


def _period(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def _decided(ex: Context, limit: str, decision: str,
             req: list[WindowState] | None = None, tok: list[WindowState] | None = None
             ) -> None:
    """The metric, and for refusals and backend errors the `ratelimit` metadata
    (`limited:NAME`) and state (its summary)."""
    metrics.RATELIMIT_DECISIONS.labels(ex.route_name or "unknown", limit, decision).inc()
    if decision != "allowed":
        ex.metadata["ratelimit"] = f"{decision}:{limit}"
        ex.state[_STATE] = _summary(decision, limit, req or [], tok or [], None)


def _summary(decision: str, limit: str | None, req: list[WindowState],
             tok: list[WindowState], reserved: int | None) -> dict[str, Any]:
    """The decision as plain JSON values: which limit decided and what is left of the
    tightest windows (what the x-ratelimit-remaining-* headers say)."""
    out: dict[str, Any] = {"decision": decision, "limit": limit}
    for kind, states in (("requests", req), ("tokens", tok)):
        if states:
            out[f"remaining_{kind}"] = _tightest(states).remaining
    if reserved is not None:
        out["reserved_tokens"] = reserved
    return out
