"""What Envoy does not show the processor, and the refusals that keep a policy from failing
open because of it. Sans-IO.

A policy can only act on what Envoy's ext_proc filter sends. The filter's configuration
decides that, not ours, and some of it leaves a policy blind while the traffic flows on:

* a body mode of `NONE` where a policy reads that body (prompt guards, token budgets read the
  request; reply guards, usage and budgets the reply). The processor can ask for the body
  with `mode_override`, but Envoy honours it only when the filter sets `allow_mode_override`,
  which it does not say, and never in `FULL_DUPLEX_STREAMED`. So a request whose configured
  mode (`protocol_config`, on the stream's first message) is `NONE` where a policy needs the
  body is refused before it goes upstream, unless `server.trust_mode_override` says the filter
  allows the override; and a request body asked for that way that never came (the reply
  arrives instead) gets its reply refused; so does a reply asked for `BUFFERED` that comes in
  more than one message with bytes (Envoy ignored the override; its first part was read as
  the whole). One whose second message only ends it, with no bytes, was read whole: it goes
  out, and the log says the override was ignored;
* skipped headers (`request_header_mode` or `response_header_mode: SKIP`): a body with no
  headers before it belongs to a request no policy classified, or a reply no policy set up
  for, and is refused (a reply's refusal is a reset: its headers are already out);
* `observability_mode`: Envoy ignores every answer, so nothing can be refused. The stream is
  logged as an error and counted, so it shows.

Each is counted in `extproc_unshown_total{route, what}`.
"""

from __future__ import annotations

import logging
import time

from . import protocol as P
from .policy import Reject

log = logging.getLogger("extproc.unshown")

#: the `what` label: a body Envoy is configured not to send, one asked for that never came,
#: headers it skipped, observability mode
WHAT = ("request_body", "response_body", "request_body_override_ignored",
        "response_body_override_ignored", "request_headers", "response_headers",
        "observability_mode")
FIX = ("set the ext_proc filter's processing_mode to request_body_mode: BUFFERED and "
       "response_body_mode: STREAMED (the reference config's modes)")
_LOG_EVERY_S = 60.0
_logged: dict[tuple[str, str], float] = {}


def needs_unshown(configured: tuple[int, int], declared: bool, trusted: bool,
                  need_request: bool, need_response: bool) -> list[str]:
    """The bodies a route's policies need that Envoy is configured not to send, and no
    override can be relied on to bring: `configured` is (request, response) body mode from
    `protocol_config`, `declared` whether the stream's first message carried one (an Envoy
    too old to send it, or a test, leaves the override to do its work)."""
    if not declared:
        return []
    duplex = P.FULL_DUPLEX in configured
    if trusted and not duplex:
        return []
    out = []
    if need_request and configured[0] == P.NONE:
        out.append("request_body")
    if need_response and configured[1] == P.NONE:
        out.append("response_body")
    return out


def refuse_unshown(route: str, missing: list[str]) -> Reject:
    """The refusal of a request whose policies would not see the bodies in `missing`."""
    for what in missing:
        count(route, what)
    which = " and ".join(m.replace("_", " ") for m in missing)
    return Reject(500, f"the gateway is misconfigured: Envoy sends it no {which} "
                  f"(body mode NONE), which route '{route}' needs to enforce its policies; "
                  f"{FIX}, or set server.trust_mode_override if the filter allows "
                  "mode_override", details="extproc_body_not_shown")


def refuse_ignored_override(route: str) -> Reject:
    """The refusal of a reply whose request body was asked for by `mode_override` and never
    came: Envoy ignored the override and the request went upstream unread."""
    count(route, "request_body_override_ignored")
    return Reject(500, "the gateway is misconfigured: Envoy ignored its request for the "
                  f"request body (mode_override) on route '{route}', so the request went "
                  f"upstream unchecked; {FIX}, or set allow_mode_override: true",
                  details="extproc_body_not_shown")


def refuse_ignored_response_override(route: str) -> Reject:
    """The refusal of a reply that came in parts after the processor asked Envoy to buffer
    it (`mode_override`, for a policy that reads the reply whole): Envoy ignored the
    override, so its response headers are already out, and a part is no whole reply to read
    (an unreadable first part, or any second one). The stream is reset; the log says why."""
    count(route, "response_body_override_ignored")
    return Reject(502, "the gateway is misconfigured: Envoy sent the reply in parts though "
                  f"the gateway asked it to buffer it (mode_override) on route '{route}', so "
                  "the reply was cut; set allow_mode_override: true on the ext_proc filter",
                  details="extproc_body_not_shown")


def whole_in_first_part(route: str) -> None:
    """A reply asked for `BUFFERED` that Envoy streamed, all its bytes in the first part and
    its end in a message of none: nothing went unread, so it is delivered, not refused or
    counted; but Envoy ignored the override, and the next reply to come in two parts will be
    refused. Logged once a minute per route."""
    if _due(route, "whole_in_first_part"):
        log.warning("route %s: Envoy streamed a reply the gateway asked it to buffer "
                    "(mode_override ignored); this one came whole in its first part, but a "
                    "reply sent in parts will be reset: set allow_mode_override: true on the "
                    "ext_proc filter (docs/running.md, 'Envoy's processing modes')", route)


def refuse_skipped_headers(route: str, which: str) -> Reject:
    """The refusal of a body whose headers Envoy never sent (`which`: request or response)."""
    count(route, f"{which}_headers")
    return Reject(500, f"the gateway is misconfigured: Envoy sent it a {which} body without "
                  f"the {which} headers ({which}_header_mode SKIP); set it to SEND",
                  details="extproc_headers_not_shown")


def observed(route: str) -> None:
    """A stream in observability mode: nothing can be enforced; logged and counted."""
    count(route, "observability_mode")


def count(route: str, what: str) -> None:
    from .metrics import UNSHOWN  # (metrics imports the exchange's modules)
    UNSHOWN.labels(route, what).inc()
    if _due(route, what):
        log.error("route %s: Envoy does not show the gateway what its policies need (%s); "
                  "requests are refused, except in observability mode, where nothing can "
                  "be: see docs/running.md, 'Envoy's processing modes'", route, what)


def _due(route: str, what: str) -> bool:
    """Whether `what` on `route` is to be logged now: at most once a minute each."""
    now = time.monotonic()
    if now - _logged.get((route, what), -_LOG_EVERY_S) < _LOG_EVERY_S:
        return False
    _logged[(route, what)] = now
    return True
