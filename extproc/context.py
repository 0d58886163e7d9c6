"""The small interface policies see of one HTTP exchange (`Context`), so that they depend on
it rather than on the protocol core (`extproc.exchange.Exchange` implements it).

Everything here is read by the built-in policies, the metrics and the access log; custom
policies (`plugins:`) may rely on it too. Keeping it apart keeps the import graph a tree: the
exchange imports the policies' interface, never the other way round.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .providers.endpoints import Endpoint


class Context(Protocol):
    """One request/response pair as a policy sees it."""

    #: the request's headers, lower-case names (pseudo-headers included: `:path`, `:method`)
    request_headers: dict[str, str]
    #: the response's headers once they arrived (empty before)
    response_headers: dict[str, str]
    #: the response's status once it arrived (0 before)
    status: int
    request_id: str
    #: the route's name, and its provider (or "gateway" when no route serves the request)
    route_name: str | None
    provider: str
    #: what the request is (`extproc.providers.endpoints`), once its headers are read
    endpoint: Endpoint | None
    #: dynamic metadata sent with the next reply, then cleared
    metadata: dict[str, object]
    #: per-request scratch space for policies
    state: dict[str, Any]
    done: bool
    failed: bool
    request_ended: bool
    #: every request policy has passed the request and its last reply lets it go upstream
    #: (Envoy sends nothing a provider could act on before): False for a request that
    #: ended while a policy still held it (Envoy's message timeout, the client leaving)
    released: bool
    request_body_bytes: int
    response_body_bytes: int
    #: a policy's refusal (status, details), for metrics and the access log
    rejection: tuple[int, str | None] | None
    #: monotonic seconds: the stream's start, first output from upstream and to the client,
    #: and the response's end
    started_at: float
    first_token_at: float | None
    first_delivered_at: float | None
    ended_at: float | None
    #: Envoy picks the route again after the next request reply (a header it matches
    #: changed: the unified front's backend)
    clear_route_cache: bool

    def set_request_header(self, name: str, value: str) -> None: ...
    def remove_request_header(self, name: str) -> None: ...
    def set_response_header(self, name: str, value: str) -> None: ...
    def remove_response_header(self, name: str) -> None: ...
    def pending_response_header(self, name: str) -> str | None: ...


def succeeded(status: int) -> bool:
    """Did the provider answer with success (any 2xx, not only 200)? Such a reply's body is
    the model's output: read for usage, guarded and charged, whatever 2xx it came with (an
    upstream answering 201 or 203 must not carry a reply past the guards and the budget)."""
    return 200 <= status < 300
