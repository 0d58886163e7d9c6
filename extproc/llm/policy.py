"""`LLMTraffic`: the built-in policy every LLM route runs before its other policies.

It learns from the request what is being asked (model, stream flag; for Gemini and Vertex
both come from the path, so their request bodies are never needed), makes OpenAI streams
report usage (adding `stream_options.include_usage` upstream when the client did not, and
dropping the extra chunk again before the client sees it), picks the response transform by
what actually comes back, and publishes model, provider, stream flag and token counts as
dynamic metadata in the `extproc` namespace when the response ends, with what the usage
costs at the route's prices (`cost` and `currency`, or `cost_status: "unpriced"`; see
`extproc.spend.cost`). `ex.state` gets `usage`, `cost` (the exact Decimal), `currency` or
`cost_status`, and `spend_team` (the team claim's value) for the metrics and later policies.

Gemini/Vertex `:streamGenerateContent` without `alt=sse` answers one JSON array sent piece by
piece; with `json_array_to_sse` (on by default for those providers) a 200 `application/json`
reply to it is rewritten into `text/event-stream`, element by element.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..context import succeeded
from ..policy import BodyTransform, Policy, Reject
from ..providers import adapter_for, read_request
from ..providers.endpoints import adapter_of, is_passthrough
from ..reading import MAX_MODEL_CHARS
from ..schema import Checker, join
from ..spend.cost import CostReport, priced_as
from . import json_array
from . import transforms as T

if TYPE_CHECKING:
    from ..context import Context
    from ..spend.prices import Pricing

log = logging.getLogger("extproc.llm")
GOOGLE = ("gemini", "vertex")
_KEY = "llm"
#: where the publisher leaves its `CostReport`, to price a corrected usage again (the cut)
REPRICE = "reprice_usage"


@dataclass(frozen=True)
class StreamsConfig:
    """Route config `streams:`."""

    usage: bool = True                  # read token usage from every response
    json_array_to_sse: bool = False     # rewrite Gemini JSON-array streams to SSE
    max_event_bytes: int = 1024 * 1024  # one SSE event / array element may not exceed this


@dataclass
class _Request:
    model: str | None = None
    stream: bool = False
    json_array: bool = False     # a Gemini stream request without alt=sse
    drop_usage_chunk: bool = False


class LLMTraffic(Policy):
    reads_json = True

    def __init__(self, provider: str, streams: StreamsConfig, pricing: Pricing | None = None,
                 team_claim: str | None = None) -> None:
        super().__init__({})
        self.provider = provider
        self.pricing = pricing
        self.team_claim = team_claim
        self.adapter = adapter_for(provider)
        self.streams = streams
        self.google = provider in GOOGLE
        # Gemini/Vertex: model and stream flag are in the path; OpenAI-style and Anthropic
        # requests must be read (and OpenAI's may be rewritten to ask for usage)
        self.needs_request_body = not self.google
        self.needs_response_body = streams.usage or streams.json_array_to_sse

    async def on_request_headers(self, ex: Context) -> None:
        req = _Request()
        ex.state[_KEY] = req
        endpoint = ex.endpoint
        if endpoint is not None and endpoint.path_stream is not None:   # Gemini/Vertex
            model = endpoint.model
            if isinstance(model, str) and (len(model) > MAX_MODEL_CHARS
                                           or not model.isprintable()):
                # as a body's model is (`reading`), on a route that reads no body too
                # (found by review: a NEL or line separator reached metadata and the log)
                raise Reject(400, f"the model name is not one a provider serves (more than "
                             f"{MAX_MODEL_CHARS} characters, or a control character)",
                             details="extproc_bad_model")
            req.stream = endpoint.path_stream
            req.json_array = endpoint.json_array
            req.model = endpoint.model
            ex.state["model"] = req.model
            ex.state["stream"] = req.stream

    async def on_request_body(self, ex: Context, body: bytes) -> bytes | None:
        req: _Request = ex.state[_KEY]
        adapter = adapter_of(ex, self.adapter)
        read = read_request(adapter, ex.request_headers.get(":path", ""), body, ex.state)
        if read is None:
            return None
        parsed, prompt = read
        req.model, req.stream = prompt.model, prompt.stream
        ex.state["prompt"] = prompt  # for later policies (rate limits, guards)
        ex.state["stream"] = prompt.stream
        if req.model:
            ex.state["model"] = req.model
        if req.stream and self.streams.usage:
            rewritten = adapter.add_stream_usage_option(body, parsed)
            if rewritten is not None:
                req.drop_usage_chunk = True
                return rewritten
        return None

    async def on_response_headers(self, ex: Context) -> None:
        if not succeeded(ex.status):  # no usage to wait for: say what was asked now
            req: _Request = ex.state.get(_KEY) or _Request()
            ex.metadata.update({"provider": ex.state.get("backend_provider") or self.provider,
                                "stream": req.stream,
                                **({"model": req.model} if req.model else {})})

    def response_transform(self, ex: Context) -> BodyTransform | None:
        req: _Request = ex.state.get(_KEY) or _Request()
        headers = ex.response_headers
        if not succeeded(ex.status):
            return None
        adapter = adapter_of(ex, self.adapter)
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            log.warning("%s reply is %s-encoded: usage not read (request_id=%s)",
                        self.provider, encoding, ex.request_id)
            unread(ex, f"a {encoding}-encoded reply", T.ENCODED)
            return None
        ctype = headers.get("content-type", "").split(";", 1)[0].strip().lower()
        meter = self._meter(ex, req)
        limit = self.streams.max_event_bytes
        if ctype == "text/event-stream":
            if req.drop_usage_chunk:
                return T.SSEReframer(adapter, meter, limit)
            if self.streams.usage:
                return T.SSEObserver(adapter, meter, self.google, limit)
            return None
        if ctype != "application/json":
            if self.streams.usage and not is_passthrough(ex):   # (JSONP, a field mask's
                # text, an HTML page): no usage to read, so budgets charge their worst case
                unread(ex, f"a reply of type {ctype or 'none'}", T.NOT_JSON)
            return None
        if req.json_array and self.streams.json_array_to_sse:
            ex.set_response_header("content-type", "text/event-stream")
            ex.remove_response_header("content-length")
            ex.metadata["rewritten_to_sse"] = True
            return json_array.JsonArrayToSSE(adapter, meter, limit)
        if not self.streams.usage:
            return None
        if req.json_array:
            return json_array.JsonArrayObserver(adapter, meter, limit)
        return T.JsonBodyObserver(adapter, meter, ex.state)

    def _meter(self, ex: Context, req: _Request) -> T.Meter:
        provider, pricing, team_claim = self.provider, self.pricing, self.team_claim

        def publish(seen: T.StreamReport) -> None:
            # the unified front: the backend that served it (extproc.front)
            md: dict[str, Any] = {"provider": ex.state.get("backend_provider") or provider,
                                  "stream": req.stream}
            if req.model:
                md["model"] = req.model
            if seen.finish_reason:
                md["finish_reason"] = ex.state["finish_reason"] = seen.finish_reason
            if seen.error:
                md["upstream_error"] = ex.state["upstream_error"] = loggable_error(seen.error)
            md.update(seen.usage.as_dict())
            ex.metadata.update(md)
            if not seen.final:     # budgets charge at least the output delivered
                ex.state[USAGE_PARTIAL] = True
            if seen.unread is not None and USAGE_UNREAD not in ex.state:
                # (a reason decided on the request, a reply made later, stands)
                log.warning("%s usage not read: %s (request_id=%s)", provider, seen.unread,
                            ex.request_id)
                unread(ex, seen.unread, seen.unread_kind or T.BROKEN_STREAM)
            if pricing is not None:
                report = CostReport(pricing, *priced_as(ex.state, provider, req.model),
                                    team_claim)
                report.publish(ex.state, ex.metadata, seen.usage)
                ex.state[REPRICE] = report
            ex.state["usage"] = seen.usage

        return publish


#: where the exchange's state says why the reply's usage could not be read (an event past
#: `streams.max_event_bytes`, an encoded or unparseable reply): token limits and spend budgets
#: then settle on their worst case, not on a partial count (`limits.policy`)
USAGE_UNREAD = "usage_unread"
#: which of `transforms.UNREAD_KINDS` it was, for `extproc_usage_unread_total{reason}`, or
#: `DEFERRED`
USAGE_UNREAD_KIND = "usage_unread_kind"
#: True where a stream's usage is not its final report (it ended in an error event, or
#: without a finish reason): token limits and spend budgets then charge at least the prompt
#: estimate plus the output delivered (`limits.policy`)
USAGE_PARTIAL = "usage_partial"
#: the reason a reply generated later and fetched elsewhere (`Adapter.deferred_reply`, let
#: through by a route's `allow_background`) has its usage unread: decided on the request
DEFERRED = "deferred"


#: an error kind as providers name them (`overloaded_error`, `Overloaded`, `INTERNAL`): one
#: word, no digits run, nothing a prompt could be quoted in
_ERROR_KIND = re.compile(r"[A-Za-z][A-Za-z_.]{0,63}")
WITHHELD_ERROR = "the provider's error event (its message is not logged)"


def loggable_error(message: str) -> str:
    """What the access logs and Envoy's metadata say of a stream's error event: its kind when
    the provider named one word, else a fixed phrase. A provider's message often quotes the
    prompt (an address, a key) and the logs hold no prompt or reply text; the client gets the
    message itself, read by the reply guards (`guards.side_texts`)."""
    return message if _ERROR_KIND.fullmatch(message) else WITHHELD_ERROR


def unread(ex: Context, reason: str, kind: str) -> None:
    """Record that this reply's usage could not be read, and why (also in the metadata that
    the access log and Envoy's dynamic metadata carry; `kind`, one of
    `transforms.UNREAD_KINDS` or `DEFERRED`, labels the metric)."""
    ex.state[USAGE_UNREAD] = ex.metadata[USAGE_UNREAD] = reason[:200]
    ex.state[USAGE_UNREAD_KIND] = kind


def streams_config(c: Checker, provider: str, raw: Any, path: str) -> StreamsConfig:
    """Validate a route's `streams:`; the JSON-array rewrite defaults on for Gemini/Vertex."""
    d = c.mapping(raw, path, ("usage", "json_array_to_sse", "max_event_bytes"))
    rewrite = c.boolean(d, "json_array_to_sse", path, provider in GOOGLE)
    if rewrite and provider not in GOOGLE:
        c.error(join(path, "json_array_to_sse"), f"only for gemini and vertex, not {provider}")
    size = c.number(d, "max_event_bytes", path, StreamsConfig.max_event_bytes, minimum=1024,
                    integer=True)
    return StreamsConfig(usage=c.boolean(d, "usage", path, True), json_array_to_sse=rewrite,
                         max_event_bytes=int(size))
