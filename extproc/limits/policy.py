"""`RateLimit`: the built-in route policy that admits requests against request, token and
spend budgets, reserving tokens and money up front and settling them against real usage at
the end.

Per request, for each configured limit: build its key from descriptors (`keys`), then one
atomic admission over all its windows (requests cost 1, token windows the token estimate,
spend windows the worst-case cost in micro-units: `spending`). The estimate is the prompt's
plus the most the request may generate: its max output tokens as the provider reads them
(or `default_max_tokens`, by model with `default_max_tokens_by_model`: `default_max`,
plus a thinking budget named beside no max:
`Adapter.thinking_budget`; on the unified front what the backend is sent, `MAX_OUTPUT`)
times its choices (`Adapter.output_choices`); a count beyond `MAX_TOKENS` counts as that,
which no budget holds (a 429 that says it can never fit, not a 500). All limits admit or the
request is refused with a 429 in the provider's format and `Retry-After` (limits that had
admitted are refunded). A route with spend budgets refuses (403) a request whose model it
cannot price: the budget could not be enforced. Every response carries OpenAI's
`x-ratelimit-*` headers for the tightest window of each kind (`headers`). When the exchange
ends, however it ends, the reservation is settled on what the request really cost
(`settle`: the provider's final usage, or at least what was delivered).

A request whose reply is made later and fetched elsewhere (`background: true`) is refused
where budgets settle, or charged its whole reservation (`deferred`).

With `cut_streams: true` on a limit, admission also fixes `output_allowance` in the exchange
state: the output tokens this request may deliver before its tightest cut window runs dry
(`spending`); the stream transform that cuts reads it.

The decision is kept as `ratelimit` in the exchange state, a JSON-ready summary for the
access log (`headers.summary`); `tokens_charged` and `spend_charged` (a Decimal) are what
settlement charged.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .. import metrics
from ..context import succeeded
from ..policy import BodyTransform, Policy, Reject
from ..providers import adapter_for, read_request
from ..providers.endpoints import adapter_of, is_passthrough
from ..spend.cost import priced_as
from . import bound, budgets, keys, spending
from .cut import MAX_EVENT_BYTES
from .default_max import DefaultMax
from .deferred import admit_deferred, answered
from .estimate import prompt_tokens
from .gcra import WindowState
from .headers import KINDS, duration, headers, summary, tightness
from .keys import DESCRIPTORS, PREFIXED
from .media import DEFAULTS as MEDIA_DEFAULTS
from .media import media_tokens
from .reasoning import hidden_reasoning
from .refusal import limited, refused_states
from .settle import Held, charges, delivered_counter
from .spec import LimitSpec
from .store import Store, StoreUnavailable
from .stored import refuse_stored_context, stored_context

if TYPE_CHECKING:
    from ..context import Context
    from ..spend.prices import Price, Pricing

__all__ = ["DESCRIPTORS", "PREFIXED", "LimitSpec", "RateLimit", "duration"]

log = logging.getLogger("extproc.limits")
#: the most tokens a reservation counts for its input or its output (2**53, exact as a float):
#: more than any budget holds, so a request asking for more is refused as one that can
#: never fit
MAX_TOKENS = 2 ** 53
#: state: the unified front's `max_output(default_max_tokens)`, the most one choice of the
#: backend's request may generate (`front.policy.MAX_OUTPUT`)
MAX_OUTPUT = "max_output"
_STATE = "ratelimit"           # the decision's summary (read by the access log)
_HELD = "ratelimit_held"       # what the request reserved, for settlement


class RateLimit(Policy):
    reads_json = True

    def __init__(self, provider: str, route: str, limits: Sequence[LimitSpec], store: Store,
                 *, fail_open: bool = True, default_max_tokens: int = 1024,
                 chars_per_token: float = 4.0, pricing: Pricing | None = None,
                 max_event_bytes: int = MAX_EVENT_BYTES,
                 allow_background: bool = False, write_max_tokens: bool = True,
                 allow_stored_context: bool = False,
                 max_tokens_by_model: Sequence[tuple[str, int]] = (),
                 media_tokens: Mapping[str, int] | None = None) -> None:
        super().__init__({})
        #: what an input media item counts where no report says (`limits.media`)
        self.media_tokens = dict(MEDIA_DEFAULTS if media_tokens is None else media_tokens)
        self.allow_stored_context = allow_stored_context   # (`stored`)
        #: write `default_max_tokens` into a request that names no max output (`bound`)
        self.write_max_tokens = write_max_tokens
        self.allow_background = allow_background   # (`deferred`)
        #: the route's streams.max_event_bytes: the largest event a stream cut holds to
        #: count; one larger ends the stream there (`cut: "unreadable"`)
        self.max_event_bytes = max_event_bytes
        self.provider = provider
        self.route = route
        self.limits = tuple(limits)
        self.store = store
        self.fail_open = fail_open
        #: what a request naming no max output reserves (and is sent), by model
        self.default_max = DefaultMax(default_max_tokens, max_tokens_by_model)
        self.chars_per_token = chars_per_token
        self.pricing = pricing
        self.currency = pricing.currency if pricing is not None else "USD"
        self.adapter = adapter_for(provider)
        self.uses_tokens = any(spec.tokens for spec in self.limits)
        self.uses_spend = any(spec.spend for spec in self.limits)
        #: token or spend budgets: a reservation to estimate up front and settle at the end
        self.settles = self.uses_tokens or self.uses_spend
        #: the first limit with token or spend windows: the one a refusal of what budgets
        #: cannot charge (`deferred`, `stored`) is decided under
        self._budget_name = next((s.name for s in self.limits if s.tokens or s.spend), "")
        self.uses_model = any("model" in spec.key for spec in self.limits)
        # the estimate and the model come from the body; output is counted on the way back
        self.needs_request_body = self.settles or self.uses_model
        self.needs_response_body = self.settles
        self.needs_finish = self.settles
        self.finish_waits = bool(getattr(store, "waits", True))
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
        if read is not None:   # earlier reasoning sent back sealed: billed as input
            sealed = adapter.opaque_context_chars(read[0])
            if sealed:
                extra += math.ceil(sealed / self.chars_per_token)
        choices = adapter.output_choices(read[0]) if read is not None else 1
        thinking = adapter.thinking_budget(read[0]) if read is not None else 0
        if read is not None and self.settles:
            backend = ex.state.get("backend_provider")   # the unified front's backend
            ex.state[_HIDDEN] = hidden_reasoning(
                backend or self.provider,
                None if backend or ex.endpoint is None else ex.endpoint.name,
                ex.state.get("backend_model") if backend else getattr(prompt, "model", None),
                read[0])
        if self.settles and read is not None:
            budget = self._budget_name
            admit_deferred(ex, adapter.deferred_reply(read[0]), self.allow_background,
                           lambda: _decided(ex, budget, "deferred"))
            stored = None if self.allow_stored_context or ex.endpoint is None else \
                stored_context(ex.endpoint.name, read[0])
            if stored is not None:
                refuse_stored_context(stored, lambda: _decided(ex, budget, "stored"))
        model = getattr(prompt, "model", None) or ex.state.get("model")
        default = self._default_max(ex, model)
        media = media_tokens(adapter, body, read[0], self.media_tokens, ex.state) \
            if read is not None and self.settles else 0
        await self._admit(ex, prompt, body, extra, choices, thinking, default, media)
        if self.write_max_tokens and self.settles and read is not None and prompt is not None \
                and not prompt.max_output_tokens:
            # what was reserved is what the provider may generate (the unified front writes
            # it into what it sends the backend)
            front = ex.state.get(MAX_OUTPUT)
            if front is not None:
                ex.state[bound.WRITE_MAX] = front(default)
                return None
            return bound.write(ex, adapter, body, read[0], default + thinking, model)
        return None

    def _default_max(self, ex: Context, model: str | None) -> int:
        """What a request naming no max output reserves and is sent: by the model the
        provider serves (on the unified front the backend's); a legacy completion, OpenAI's
        own default (`bound.LEGACY_COMPLETIONS_MAX`)."""
        if ex.endpoint is not None and ex.endpoint.name == "completions":
            return bound.LEGACY_COMPLETIONS_MAX
        return self.default_max(priced_as(ex.state, self.provider, model)[1])

    def _estimate(self, ex: Context, held: Held, prompt: Any, body: bytes | None,
                  extra_input: int, choices: int, thinking: int, default: int) -> None:
        if prompt is not None:
            held.input_estimate = prompt_tokens((t for _, t in prompt.texts),
                                                self.chars_per_token)
        else:
            held.input_estimate = math.ceil(len(body or b"") / self.chars_per_token)
        held.input_estimate = min(held.input_estimate + extra_input, MAX_TOKENS)
        endpoint = ex.endpoint
        bound = ex.state.get(MAX_OUTPUT)   # the unified front: what the backend is sent
        if endpoint is not None and not endpoint.spec.generates:
            held.output = 0   # embeddings, token counts, pass-through: nothing to generate
        elif bound is not None:
            held.output = bound(default) * choices
        elif prompt is not None:
            # n / candidateCount replies (per prompt of a batch) may each run to the max
            held.output = (prompt.max_output_tokens
                           or default + thinking) * choices
        else:
            held.output = default
        # a count beyond any budget (a max_tokens of 400 digits) can never fit: held at a
        # bound floats and decimals carry exactly, so it is refused as such, not a 500
        held.output = min(held.output, MAX_TOKENS)
        held.estimate = held.input_estimate + held.output

    async def _admit(self, ex: Context, prompt: Any, body: bytes | None,
                     extra_input: int = 0, choices: int = 1, thinking: int = 0,
                     default: int | None = None, media: int = 0) -> None:
        held = Held(hidden=ex.state.pop(_HIDDEN, False), media=min(media, MAX_TOKENS),
                    admitted_at=time.monotonic())
        model = getattr(prompt, "model", None) or ex.state.get("model")
        if self.settles:
            self._estimate(ex, held, prompt, body, extra_input, choices, thinking,
                           self._default_max(ex, model) if default is None else default)
        if self.uses_spend and not is_passthrough(ex):
            # (a pass-through generates nothing the gateway reads: it reserves no money)
            held.price = self._price(ex, model)
            held.cost = held.price.worst_case(held.input_estimate, held.output)
        cost = spending.micro(held.cost)
        states: dict[str, list[WindowState]] = {kind: [] for kind in KINDS}
        named: list[tuple[WindowState, str]] = []   # every window, with its limit's name
        admitted: list[tuple[str, LimitSpec, Any, str | None, list[float]]] = []
        cut: list[dict[str, list[WindowState]]] = []   # the states of cut_streams limits
        shown: list[tuple[LimitSpec, tuple[WindowState, ...], list[float]]] = []
        held.keys, ex.state[_HELD] = admitted, held   # (before a wait: see `on_finish`)
        for spec in self.limits:
            parts = keys.values(ex, spec.key, model, self.route)
            key = keys.limit_key(self.route, spec.name, parts)
            label = budgets.label(self.route, spec.name, spec.key, parts, self.currency,
                                  spec.spend) if spec.spend else None
            costs = spec.amounts(1.0, float(held.estimate), cost)
            ticket = self.store.ticket()
            try:
                outcome = await self.store.admit(key, spec.windows, costs, label, ticket)
            except StoreUnavailable as exc:
                await self._unwind(ex, admitted, held)
                self._backend_error(exc)
                _decided(ex, spec.name, "backend_error_open" if self.fail_open
                         else "backend_error_closed")
                if self.fail_open:
                    return
                raise Reject(503, "rate limits are unavailable; try again shortly",
                             headers={"retry-after": "1"},
                             details="extproc_ratelimit_unavailable") from None
            own = spec.split(outcome.windows)
            for kind in KINDS:
                states[kind].extend(own[kind])
            named.extend((st, spec.name) for st in outcome.windows)
            if not outcome.allowed:
                await self._unwind(ex, admitted, held)
                self.stats["limited"] += 1
                # the refusing limit's own windows (those before it are given back)
                _decided(ex, spec.name, "limited", own)
                raise limited(spec, outcome, costs, held.cost, self.currency,
                              refused_states(own, shown))
            admitted.append((key, spec, label, ticket, costs))
            shown.append((spec, outcome.windows, costs))
            if spec.cut_streams:
                cut.append(own)
        self.stats["allowed"] += 1
        for _, spec, *_ in admitted:
            _decided(ex, spec.name, "allowed")
        closest = min(named, key=lambda p: tightness(p[0]))[1] if named else None
        reserved: dict[str, Any] = {}
        if self.uses_tokens:
            reserved["tokens"] = held.estimate
        if self.uses_spend:
            reserved["spend"] = spending.money(held.cost, round_up=True)
        ex.state[_STATE] = summary("allowed", closest, states, reserved)
        allowance = self._allowance(held, cut)
        if allowance is not None:
            ex.state["output_allowance"] = allowance
        for name, value in headers(states).items():
            ex.set_response_header(name, value)

    def _price(self, ex: Context, model: str | None) -> Price:
        """The price spend budgets reserve and charge at; default deny: a model the route
        cannot price is refused, since its budget could not be enforced."""
        provider, model = priced_as(ex.state, self.provider, model)
        price = self.pricing.price(provider, model) if self.pricing is not None else None
        if price is not None:
            return price
        what = f"model {model!r}" if model else "a request that names no model"
        _decided(ex, next(s.name for s in self.limits if s.spend), "unpriced")
        raise Reject(403, f"spend budgets on this route cannot price {what} on "
                     f"{provider}: add it to prices.models or give the route a "
                     "default_price", details="extproc_spend_unpriced")

    def _allowance(self, held: Held, cut: list[dict[str, list[WindowState]]]
                   ) -> int | None:
        """The output tokens this request may deliver before its tightest `cut_streams`
        window runs dry, fixed at admission (see `spending`)."""
        found = [spending.token_allowance(st.remaining, held.output)
                 for own in cut for st in own["tokens"]]
        if held.price is not None:
            for own in cut:
                for st in own["spend"]:
                    each = spending.spend_allowance(st.remaining, held.output, held.price)
                    if each is not None:
                        found.append(each)
        return min(found) if found else None

    async def _unwind(self, ex: Context,
                      admitted: list[tuple[str, LimitSpec, Any, str | None, list[float]]],
                      held: Held) -> None:
        """Give back what the limits before a refusal took, each key off the list before its
        give-back is sent (the finish gives back the keys not reached), then nothing is
        held. Over Redis a give-back is its admission's void, tried until Redis answers it:
        never lost to a timeout, never given twice."""
        while admitted:
            key, spec, label, ticket, costs = admitted.pop(0)
            try:
                await self.store.give_back(key, spec.windows, costs, label, ticket)
            except StoreUnavailable as exc:   # (a store without tickets: a settlement)
                self._settle_error(ex, spec.name, exc)
        ex.state.pop(_HELD, None)

    def _key(self, ex: Context, spec: LimitSpec, model: str | None) -> str:
        return keys.limit_key(self.route, spec.name,
                              keys.values(ex, spec.key, model, self.route))

    def _settle_error(self, ex: Context, limit: str, exc: StoreUnavailable) -> None:
        """A settlement or give-back the store did not record: the reservation stays."""
        self.stats["backend_errors"] += 1
        metrics.RATELIMIT_DECISIONS.labels(ex.route_name or "unknown", limit,
                                           "settle_error").inc()
        now = time.monotonic()
        if now - self._last_error_log > 5:
            self._last_error_log = now
            log.warning("rate limit settlement not recorded (%s): the reservation stays "
                        "charged", exc)

    def _backend_error(self, exc: StoreUnavailable) -> None:
        self.stats["backend_errors"] += 1
        now = time.monotonic()
        if now - self._last_error_log > 5:
            self._last_error_log = now
            log.warning("rate limit backend unavailable (%s): failing %s", exc,
                        "open" if self.fail_open else "closed")

    # --- settlement --------------------------------------------------------------------
    async def on_response_headers(self, ex: Context) -> None:
        answered(ex)   # a deferred reply: its usage is never read (`deferred`)

    def response_transform(self, ex: Context) -> BodyTransform | None:
        held: Held | None = ex.state.get(_HELD)
        if held is None or not self.settles or not succeeded(ex.status):
            return None
        return delivered_counter(ex, held, adapter_of(ex, self.adapter), self.provider,
                                 self.chars_per_token, self.max_event_bytes)

    async def on_finish(self, ex: Context) -> None:
        # (what is held is recorded before admission waits, each key as it is admitted: a
        # stream cancelled between two admissions settles what the first took)
        held: Held | None = ex.state.get(_HELD)
        if held is None or held.settled or not self.settles or not held.keys:
            return
        held.settled = True
        tokens, spend = charges(ex, held, self.uses_tokens)
        if not tokens and not spend:
            return
        # a request that never went upstream gives its reservation back by ticket (over
        # Redis: tried until answered, while the admission's mark lives; found by review)
        back = not ex.released and tokens <= 0 and spend <= 0 \
            and time.monotonic() - held.admitted_at < self.store.give_back_s
        for key, spec, label, ticket, _ in held.keys:
            if spec.tokens or spec.spend:
                try:
                    if back:
                        await self.store.give_back(key, spec.windows,
                                                   spec.amounts(0.0, -tokens, -spend), label,
                                                   ticket)
                    else:
                        await self.store.settle(key, spec.windows,
                                                spec.amounts(0.0, tokens, spend), label)
                except StoreUnavailable as exc:
                    self._settle_error(ex, spec.name, exc)


#: where on_request_body leaves `reasoning.hidden_reasoning` for `_admit`
_HIDDEN = "_hidden_reasoning"


def _decided(ex: Context, limit: str, decision: str,
             states: dict[str, list[WindowState]] | None = None) -> None:
    """The metric, and for refusals and backend errors the `ratelimit` metadata
    (`limited:NAME`) and state (its summary)."""
    metrics.RATELIMIT_DECISIONS.labels(ex.route_name or "unknown", limit, decision).inc()
    if decision != "allowed":
        ex.metadata["ratelimit"] = f"{decision}:{limit}"
        ex.state[_STATE] = summary(decision, limit, states or {})
