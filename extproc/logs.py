"""Logging setup shared by every subcommand: one line per record on stderr, as JSON objects
(the default: `ts`, `level`, `logger`, `msg`, plus a record's structured `fields`, such as the
access line's) or as text (`EXTPROC_LOG_FORMAT=text` or `--log-format text`)."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from typing import Any

FORMATS = ("json", "text")
#: the format setup_logging chose (read by the access log's fast path)
current_format = "json"
#: the `process` field of every JSON line (a `--workers` worker's name), or None
current_process: str | None = None


class JsonFormatter(logging.Formatter):
    def __init__(self, prefix: str | None = None) -> None:
        super().__init__()
        self.prefix = prefix

    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        doc: dict[str, Any] = {"ts": f"{ts}.{int(record.msecs):03d}Z",
                               "level": record.levelname.lower(), "logger": record.name,
                               "msg": record.getMessage()}
        if self.prefix:
            doc["process"] = self.prefix
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            doc.update(fields)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False, default=str)


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes each record to `sys.stderr` as it is when the record is written, not as it was
    when the handler was made: a stderr replaced since (a test runner's capture, closed when
    its test ends; a redirect) is never written to after it is gone."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass   # StreamHandler.__init__ and setStream: the stream is always sys.stderr


#: what could end or fake a line of the text format: control characters, and the line
#: and paragraph separators some readers break lines at
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escaped(text: str) -> str:
    """`text` on one line: each unsafe character as its escape (`\\n`, `\\u2028`)."""
    return _UNSAFE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class TextFormatter(logging.Formatter):
    """One line per record (a traceback after it aside): what a client sent (a model name
    with a line break) cannot write a line of its own."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = _escaped(record.message)
        return super().formatMessage(record)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line += " " + " ".join(f"{k}={_value(v)}" for k, v in fields.items())
        return line


#: a field value written bare (logfmt): anything else is quoted, so a client's value with a
#: space (`r1 route=admin`) cannot pass for fields of its own
_BARE = re.compile(r"[^\s\"=\\]*")


def _value(value: object) -> str:
    text = _escaped(str(value))
    if _BARE.fullmatch(text) and text:
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def setup_logging(level: str | None = None, prefix: str | None = None,
                  fmt: str | None = None) -> None:
    global current_format, current_process
    current_process = prefix
    level = (level or os.environ.get("EXTPROC_LOG_LEVEL", "INFO")).upper()
    fmt = (fmt or os.environ.get("EXTPROC_LOG_FORMAT", "json")).lower()
    current_format = "text" if fmt == "text" else "json"
    handler = StderrHandler()
    if fmt == "text":
        tag = f"[{prefix}] " if prefix else ""
        handler.setFormatter(TextFormatter(f"%(asctime)s %(levelname)s {tag}%(name)s: "
                                           "%(message)s"))
    else:
        handler.setFormatter(JsonFormatter(prefix))
    logging.basicConfig(level=level, force=True, handlers=[handler])
