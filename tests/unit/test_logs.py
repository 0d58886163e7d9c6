"""The log setup: one JSON object (or text line) per record on stderr, whichever stderr is
current when the record is written (tests/conftest.py restores the root logger after each
test)."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest

from extproc import logs


def test_json_lines_carry_the_record_and_its_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    logs.setup_logging("INFO", prefix="worker-1", fmt="json")
    logging.getLogger("extproc.test").info("hello %s", "there", extra={"fields": {"route": "r"}})
    logging.getLogger("extproc.test").debug("below the level")
    lines = out.getvalue().splitlines()
    assert len(lines) == 1
    doc = json.loads(lines[0])
    assert doc["msg"] == "hello there" and doc["level"] == "info"
    assert doc["logger"] == "extproc.test" and doc["process"] == "worker-1"
    assert doc["route"] == "r" and doc["ts"].endswith("Z")
    assert logs.current_format == "json"


def test_text_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stderr", out)
    logs.setup_logging("INFO", prefix="w", fmt="text")
    logging.getLogger("extproc.test").warning("careful", extra={"fields": {"n": 2}})
    line = out.getvalue().strip()
    assert "WARNING [w] extproc.test: careful n=2" in line
    assert logs.current_format == "text"


def test_records_follow_stderr_when_it_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    """A handler made while one stderr was current (a test's capture) must not write to it
    once it is replaced and closed: records go to the stderr of the moment."""
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    logs.setup_logging("INFO", fmt="json")
    logging.getLogger("extproc.test").info("one")
    first.close()
    monkeypatch.setattr(sys, "stderr", second)
    errors: list[BaseException] = []
    monkeypatch.setattr(logging, "raiseExceptions", True)
    monkeypatch.setattr(logging.Handler, "handleError",
                        lambda self, record: errors.append(sys.exc_info()[1]))  # type: ignore[misc,arg-type]
    logging.getLogger("extproc.test").info("two")
    assert errors == []
    assert [json.loads(x)["msg"] for x in second.getvalue().splitlines()] == ["two"]
