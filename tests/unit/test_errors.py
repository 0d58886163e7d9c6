"""Error bodies in each provider's own JSON shape (extproc.errors)."""

from __future__ import annotations

import json

import pytest

from extproc.errors import error_body, error_kind


def doc(provider: str, status: int, message: str = "nope", **kw: str) -> dict:
    body = error_body(provider, status, message, **kw)
    assert isinstance(body, bytes)
    return json.loads(body)


@pytest.mark.parametrize("provider", ["openai", "azure"])
def test_openai_shape(provider: str) -> None:
    assert doc(provider, 429, "slow down") == {"error": {
        "message": "slow down", "type": "rate_limit_error", "param": None, "code": None}}


def test_openai_code_and_kind_are_passed_through() -> None:
    d = doc("openai", 400, "bad", kind="custom_type", code="bad_model")
    assert d["error"]["type"] == "custom_type"
    assert d["error"]["code"] == "bad_model"


def test_anthropic_shape() -> None:
    assert doc("anthropic", 401, "who are you") == {
        "type": "error", "error": {"type": "authentication_error", "message": "who are you"}}


@pytest.mark.parametrize("provider", ["gemini", "vertex"])
def test_google_shape(provider: str) -> None:
    assert doc(provider, 429, "quota") == {
        "error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}}


@pytest.mark.parametrize(("provider", "status", "kind"), [
    ("openai", 400, "invalid_request_error"),
    ("openai", 401, "authentication_error"),
    ("openai", 403, "permission_error"),
    ("openai", 404, "not_found_error"),
    ("openai", 413, "invalid_request_error"),
    ("openai", 418, "invalid_request_error"),
    ("openai", 500, "server_error"),
    ("openai", 503, "server_error"),
    ("anthropic", 413, "request_too_large"),
    ("anthropic", 429, "rate_limit_error"),
    ("anthropic", 529, "overloaded_error"),
    ("anthropic", 500, "api_error"),
    ("gemini", 400, "INVALID_ARGUMENT"),
    ("gemini", 403, "PERMISSION_DENIED"),
    ("gemini", 413, "INVALID_ARGUMENT"),
    ("gemini", 500, "INTERNAL"),
    ("vertex", 503, "UNAVAILABLE"),
    ("vertex", 504, "DEADLINE_EXCEEDED"),
])
def test_error_kind(provider: str, status: int, kind: str) -> None:
    assert error_kind(provider, status) == kind


def test_explicit_kind_wins_for_every_shape() -> None:
    assert doc("anthropic", 400, kind="my_type")["error"]["type"] == "my_type"
    assert doc("gemini", 400, kind="FAILED_PRECONDITION")["error"]["status"] == (
        "FAILED_PRECONDITION")


def test_message_is_json_escaped_and_body_is_compact() -> None:
    message = 'quote " backslash \\ newline \n ünïcode'
    body = error_body("openai", 400, message)
    assert json.loads(body)["error"]["message"] == message
    assert b"\n" not in body
    assert b": " not in body and b", " not in body


def test_unknown_provider_falls_back_to_openai_shape() -> None:
    assert set(doc("somebody", 400)["error"]) == {"message", "type", "param", "code"}
