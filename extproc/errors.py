"""Error bodies in each provider's own format, so SDK clients surface gateway errors natively.

OpenAI and Azure: ``{"error": {"message", "type", "param", "code"}}``;
Anthropic: ``{"type": "error", "error": {"type", "message"}}``;
Gemini and Vertex: ``{"error": {"code", "message", "status"}}`` (google.rpc.Status codes);
"gateway" (no route, so no provider): ``{"error": {"message", "type": "gateway_error", "code"}}``.
"""

from __future__ import annotations

import json

_OPENAI_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                 403: "permission_error", 404: "not_found_error", 413: "invalid_request_error",
                 429: "rate_limit_error"}
_ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error",
                    403: "permission_error", 404: "not_found_error",
                    413: "request_too_large", 429: "rate_limit_error", 529: "overloaded_error"}
_GOOGLE_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                  404: "NOT_FOUND", 409: "ABORTED", 413: "INVALID_ARGUMENT",
                  429: "RESOURCE_EXHAUSTED", 499: "CANCELLED", 501: "UNIMPLEMENTED",
                  503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


#: the kind an unlisted status gets, per provider format (see `error_kind`)
DEFAULT_KINDS = {"anthropic": "api_error", "google": "INTERNAL"}
KINDS = {"anthropic": _ANTHROPIC_TYPES, "google": _GOOGLE_STATUS}


def error_kind(provider: str, status: int) -> str:
    """The provider's error type (or Google status) for an HTTP status."""
    if provider == "anthropic":
        return _ANTHROPIC_TYPES.get(status, "api_error")
    if provider in ("gemini", "vertex"):
        return _GOOGLE_STATUS.get(status, "INTERNAL")
    return _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")


def error_body(provider: str, status: int, message: str, kind: str | None = None,
               code: str | None = None, param: str | None = None) -> bytes:
    """A complete JSON error body, as the provider itself would send it (`code` and `param`,
    the request field at fault, are OpenAI's: other formats have no place for them)."""
    kind = kind or error_kind(provider, status)
    if provider == "anthropic":
        doc: dict = {"type": "error", "error": {"type": kind, "message": message}}
    elif provider in ("gemini", "vertex"):
        doc = {"error": {"code": status, "message": message, "status": kind}}
    elif provider == "gateway":   # no provider known (no route): the gateway's own shape
        doc = {"error": {"message": message, "type": "gateway_error", "code": status}}
    else:
        doc = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return json.dumps(doc, separators=(",", ":")).encode()
