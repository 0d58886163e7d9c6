"""Shared fixtures: the test extproc config and a gateway (mock + server + Envoy) per module."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from extproc import httpclient, logs
from tests.harness import Gateway, Mock, RedisServer, add_route

REFERENCE = ("openai", "azure", "anthropic", "gemini", "vertex")
GATE = {"class": "tests.plugins:Gatekeeper"}


def gateway_config() -> dict[str, Any]:
    """The reference routes (each with the headers-only Gatekeeper), a 'plain' route that
    needs no body at all, and a 'transform' route with body policies."""
    routes: list[dict[str, Any]] = [{"name": n, "provider": n, "plugins": [GATE]}
                                    for n in REFERENCE]
    # headers only: no usage reading, no body policy
    # both also let any GET through (the explicit pass-through every other path needs)
    routes.append({"name": "plain", "provider": "openai", "streams": {"usage": False},
                   "plugins": [GATE], "passthrough": [{"path": "/**"}]})
    # body plumbing with the test plugins only (the LLM policy is tested on the others)
    routes.append({"name": "transform", "provider": "openai", "streams": {"usage": False},
                   "passthrough": [{"path": "/**"}], "plugins": [
        GATE, {"class": "tests.plugins:TagRequest"}, {"class": "tests.plugins:UpperResponse"}]})
    # the test Envoy allows mode_override: its /mode-none/ routes are upgraded by it
    return {"server": {"max_request_body_bytes": 1048576, "grace_period_s": 5,
                       "trust_mode_override": True},
            "routes": routes}


MODES = {
    "none": {"request_body_mode": "NONE", "response_body_mode": "NONE"},
    "buffered": {"request_body_mode": "BUFFERED", "response_body_mode": "BUFFERED"},
    "streamed": {"request_body_mode": "STREAMED", "response_body_mode": "STREAMED"},
    "duplex": {"request_body_mode": "FULL_DUPLEX_STREAMED",
               "response_body_mode": "FULL_DUPLEX_STREAMED",
               "request_trailer_mode": "SEND", "response_trailer_mode": "SEND"},
}


def add_mode_routes(doc: dict[str, Any]) -> None:
    """/mode-<m>/plain/ (headers only), /mode-<m>/transform/ (body policies) and
    /mode-<m>/gemini/ (the built-in LLM policy) with each body mode; /plain/ with the
    reference modes."""
    add_route(doc, "/plain/", "openai", "plain")
    for mode, pm in MODES.items():
        full = {"request_header_mode": "SEND", "response_header_mode": "SEND", **pm}
        add_route(doc, f"/mode-{mode}/plain/", "openai", "plain", full)
        add_route(doc, f"/mode-{mode}/gemini/", "gemini", "gemini", full)
        add_route(doc, f"/mode-{mode}/transform/", "openai", "transform", full)


@pytest.fixture(scope="session", autouse=True)
async def _http_sessions_closed() -> AsyncIterator[None]:
    """The server closes its outbound HTTP session at shutdown; in-process tests (JWKS
    fetches, webhook guards) share the session loop's, closed here at the end."""
    yield
    await httpclient.close()


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """A test that runs a subcommand in process (`cli.main` sets up logging) leaves the
    root logger as it found it: its handlers must not log the next tests' records, nor
    those of the in-process mock's thread between tests."""
    root = logging.getLogger()
    handlers, level, fmt = root.handlers[:], root.level, logs.current_format
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logs.current_format = fmt


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real redis-server of the module's own (limits shared across replicas)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mock]:
    m = Mock(tmp_path_factory.mktemp("mock"))
    yield m
    m.stop()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    gw = Gateway(tmp_path_factory.mktemp("gateway"), gateway_config(), mock=mock,
                 adjust=add_mode_routes)
    yield gw
    gw.close()


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path
