"""One log line per HTTP request, at info level on the `extproc.access` logger: who asked
what of which route, how it ended, how long it took and what it cost. With the JSON log
format (the default) it is one JSON object per line, keyed by Envoy's `x-request-id`.

Prompt and response text are never logged.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .exchange import Exchange

log = logging.getLogger("extproc.access")


def _ms(start: float, end: float | None) -> float | None:
    return None if end is None else round((end - start) * 1000, 2)


def fields(ex: Exchange, outcome: str) -> dict[str, Any]:
    """The line's fields (None values dropped)."""
    identity = ex.state.get("identity")
    usage = ex.state.get("usage")
    rejection = ex.rejection
    out: dict[str, Any] = {
        "request_id": ex.request_id or None,
        "route": ex.route_name,
        "provider": ex.provider,
        "model": ex.state.get("model"),
        "stream": ex.state.get("stream"),
        "method": ex.request_headers.get(":method"),
        "status": rejection[0] if rejection is not None else (ex.status or None),
        "outcome": outcome,
        "reason": rejection[1] if rejection is not None else None,
        "subject": getattr(identity, "subject", None),
        "duration_ms": _ms(ex.started_at, ex.ended_at or time.monotonic()),
        "ttft_ms": _ms(ex.started_at, ex.first_token_at),
        "ttft_delivered_ms": _ms(ex.started_at, ex.first_delivered_at),
        "input_tokens": getattr(usage, "input_tokens", None),
        "output_tokens": getattr(usage, "output_tokens", None),
        "finish_reason": ex.state.get("finish_reason"),
        "upstream_error": ex.state.get("upstream_error"),
        "guard_request": ex.state.get("guard_request"),
        "guard_response": ex.state.get("guard_response"),
        "ratelimit": ex.state.get("ratelimit"),
        "request_bytes": ex.request_body_bytes or None,
        "response_bytes": ex.response_body_bytes or None,
    }
    return {k: v for k, v in out.items() if v is not None}


def write(ex: Exchange, outcome: str) -> None:
    if log.isEnabledFor(logging.INFO):
        log.info("request", extra={"fields": fields(ex, outcome)})
