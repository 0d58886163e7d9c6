"""Settling a rate-limited request: what it reserved (`Held`), the counter of the output a
stream delivers (`delivered_counter`), and what the request really cost once it ended
(`actual_tokens`, `charges`), which `RateLimit.on_finish` then settles in the store.

The provider's usage is trusted when it is its final report. A stream cut short (or ended by
an error after a partial report) is charged at least the prompt estimate plus the output
delivered so far, and at least its whole reservation when it delivered generated media (no
count of bytes sizes it) or when its model may think in tokens no stream shows and no
report counted them (`reasoning`: what it delivered leaves the thinking out). Usage the
gateway could not read leaves a partial count: at least the whole reservation (default
deny, for budgets), and so does an admitted request whose exchange ended before any reply
came (`no_reply`: the client left, or the stream broke, while the provider may have been
generating; a reasoning model can take minutes before its headers), or whose whole reply
ended before its usage was read (`unreported`). In each of these charges made without a
final report the input counted is the prompt estimate and the input media's bound, or the
input a report counted (`input_floor`). An upstream error status charges nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from ..llm.policy import USAGE_PARTIAL, USAGE_UNREAD
from ..policy import BodyTransform
from ..providers.base import Adapter
from . import spending
from .cut import StreamCut, cut_transform
from .estimate import TEXT_MARKERS, DeliveredText

if TYPE_CHECKING:
    from ..context import Context
    from ..spend.prices import Price


@dataclass
class Held:
    """What one request reserved, to settle when it ends."""

    estimate: int = 0                                  # tokens reserved per token window
    input_estimate: int = 0
    output: int = 0                                    # the output part of `estimate`
    price: Price | None = None
    cost: Decimal = Decimal(0)                         # reserved per spend window
    #: (key, LimitSpec, label, the store's ticket, the costs admitted)
    keys: list[tuple[str, Any, Any, str | None, list[float]]] = field(default_factory=list)
    delivered: DeliveredText | StreamCut | None = None   # what counts the output
    settled: bool = False
    #: the model may think in tokens no reply shows (`reasoning`): a stream that ends
    #: without its usage report pays its reservation, not what it delivered
    hidden: bool = False
    #: what the request's input media counts where no report says what it cost (`media`)
    media: int = 0
    #: when the limits admitted it (monotonic): a give-back by ticket works for a while only
    admitted_at: float = 0.0


def delivered_counter(ex: Context, held: Held, adapter: Adapter, provider: str,
                      chars_per_token: float, max_event_bytes: int) -> BodyTransform | None:
    """The transform that counts what a stream delivers (`held.delivered`), None for a whole
    reply (it carries its usage, and one that never arrived delivered nothing). With a
    `cut_streams` limit's output allowance it is the stream cut, which ends the stream there
    and whose count of every event it let through is what a usage-less stream settles on."""
    ctype = ex.response_headers.get("content-type", "")
    if not ctype.startswith("text/event-stream") and not _json_array_stream(ex):
        return None
    marker = getattr(adapter, "text_marker", None) or TEXT_MARKERS[provider]
    cut = cut_transform(ex, adapter, chars_per_token, max_event_bytes)
    held.delivered = cut if cut is not None else DeliveredText(
        marker, chars_per_token, adapter.output_markers, adapter.dense_markers)
    return held.delivered


def charges(ex: Context, held: Held, uses_tokens: bool) -> tuple[float, float]:
    """What settling must add to the token and spend windows (micro-units) beyond what was
    reserved (negative: given back). Records `tokens_charged` and `spend_charged` in the
    exchange state, and lets go of the output counter."""
    tokens = 0.0
    if uses_tokens:
        actual = actual_tokens(ex, held)
        ex.state["tokens_charged"] = actual
        tokens = float(actual - held.estimate)
    spend = 0.0
    if held.price is not None:
        delivered = held.delivered.tokens if held.delivered is not None else 0
        gone = no_reply(ex)
        usage = ex.state.get("usage")
        floor = input_floor(held, usage)
        charged = spending.charge(held.price, usage, floor,
                                  delivered, 200 if gone else ex.status,
                                  unread=gone or unreported(ex, held)
                                  or ex.state.get(USAGE_UNREAD) is not None,
                                  # the reservation with that input, as for tokens
                                  reserved=held.cost if floor == held.input_estimate
                                  else held.price.worst_case(floor, held.output),
                                  partial=ex.state.get(USAGE_PARTIAL) is True,
                                  media=_media(held), hidden=held.hidden)
        ex.state["spend_charged"] = charged
        spend = spending.micro(charged - held.cost)
    # counted: let go of the counter (a stream cut refers to the exchange, and one cut short
    # by the client never finished, so it still does: no cycle past settlement)
    held.delivered = None
    return tokens, spend


def actual_tokens(ex: Context, held: Held) -> int:
    """What the request really cost in tokens (see the module's docstring):
    `USAGE_PARTIAL` marks a report an error event ended, `USAGE_UNREAD` usage the gateway
    could not read; `no_reply`, a request that got no reply at all."""
    if no_reply(ex):
        return held.estimate + held.media
    if not 200 <= ex.status < 300:
        return 0
    usage = ex.state.get("usage")
    reported = None
    if usage is not None and not usage.is_empty():
        reported = usage.total_tokens if usage.total_tokens is not None else (
            (usage.input_tokens or 0) + (usage.output_tokens or 0))
    delivered = held.delivered.tokens if held.delivered is not None else 0
    floor = input_floor(held, usage)
    counted = floor + delivered
    if ex.state.get(USAGE_UNREAD) is not None or unreported(ex, held):
        return max(floor + held.output, counted, reported or 0)
    if reported is not None and ex.state.get(USAGE_PARTIAL) is not True:
        return reported
    # a model that thinks unseen: what was delivered leaves its thinking out, unless a report
    # (Gemini's running count, which has the thoughts) says how much it was; a stream's
    # opening report (Anthropic's message_start: 1 output token) does not
    unseen = held.hidden and (usage is None or reported is None or usage.opening)
    return max(counted, reported or 0, floor + held.output if _media(held) or unseen else 0)


def input_floor(held: Held, usage: Any) -> int:
    """The input a charge without a final report counts: the prompt estimate and the input
    media's bound (`media`), or, once a report read counted the input (even a partial one:
    Anthropic's message_start, Gemini's running count, a report an error event ended), that
    count, media included, when it is more than the estimate. Found by review: an error
    event after message_start charged eight small images 20,000 tokens where the report
    said 810; and where the charge is the whole reservation, the reported input must stand
    beside its output part, not compete with it."""
    if usage is not None and not usage.is_empty() and usage.input_tokens:
        return max(held.input_estimate, usage.input_tokens)
    return held.input_estimate + held.media


def no_reply(ex: Context) -> bool:
    """The exchange of an admitted request ended before any reply came: the client went
    away (or Envoy's stream to us broke) after the request went upstream, or the upstream
    did not answer in time (a 504: Envoy's own on its route or idle timeout, as a client
    asking for a whole reply that takes longer gets, or the provider's deadline; either way
    it may have generated). Envoy's other answers (a 503 when the upstream cannot be
    reached) cost nothing, and so does a request the gateway itself refused after admitting
    it (a later policy's refusal, a failure: it never went upstream), or one that ended
    while a policy still held it (`released` false: a plugin after the limits outlasting
    Envoy's message timeout, which answers the client 504 itself, or the client leaving
    then; found by review: such a request was charged its whole reservation)."""
    return ex.status in (0, 504) and ex.rejection is None and not ex.failed \
        and ex.released


def unreported(ex: Context, held: Held) -> bool:
    """A 2xx whole reply whose usage never reached the meter: the exchange refused or
    ended it before it was read (a reply guard's refusal, the unified front's reply it
    could not translate, a client gone mid-body). The provider billed it all the same.
    (A stream's output is counted as it goes: `held.delivered`.)"""
    return 200 <= ex.status < 300 and held.delivered is None and "usage" not in ex.state


def _media(held: Held) -> bool:
    """The stream delivered generated media (an image, audio)."""
    return held.delivered is not None and held.delivered.media


def _json_array_stream(ex: Context) -> bool:
    """A Gemini/Vertex stream without alt=sse (a JSON array sent piece by piece)."""
    return ex.endpoint is not None and ex.endpoint.json_array
