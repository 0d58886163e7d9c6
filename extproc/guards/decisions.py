"""Recording a guard's decision: the metric, the dynamic metadata and the exchange's state
(read by the access log line and the request's outcome)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .. import metrics

if TYPE_CHECKING:
    from ..context import Context


def decide(ex: Context, guard: str, direction: str, decision: str, detail: str = "") -> None:
    """Record a guard decision that changed or stopped something: the metric, the dynamic
    metadata (`guard_request` / `guard_response`, `guard:decision[:detectors]`, comma
    separated when several guards acted) and the exchange's state (for the access log)."""
    metrics.GUARD_DECISIONS.labels(ex.route_name or "unknown", guard, direction,
                                   decision).inc()
    key = f"guard_{direction}"
    value = f"{guard}:{decision}" + (f":{detail}" if detail else "")
    before = ex.state.get(key)
    ex.state[key] = ex.metadata[key] = f"{before},{value}" if before else value
    if direction == "response" and decision in ("rejected", "error_closed"):
        ex.state["guard_stopped"] = True
