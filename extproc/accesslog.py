"""One log line per HTTP request, at info level on the `extproc.access` logger: who asked
what of which route, how it ended, how long it took and what it cost (`cost` and
`currency`, the usage at the route's prices rounded to 10 decimal places, or
`cost_status: "unpriced"` when nothing prices the model). With the JSON log
format (the default) it is one JSON object per line, keyed by Envoy's `x-request-id`.

It is on the hot path, so JSON lines skip the logging machinery: they are written to stderr
in batches (at most 50 ms or 64 KiB late, flushed at exit), with the same fields the JSON
formatter writes. A batch goes out in writes of whole lines, each at most `PIPE_BUF` bytes
(one longer line alone): the workers of `--workers N` share one stderr, and a pipe (docker's,
the kubelet's) keeps such writes whole, so no line is ever cut by another process's, nor
read half-written. Prompt and response text are never logged.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import logging
import sys
import time
from json.encoder import encode_basestring  # type: ignore[attr-defined]
from typing import TYPE_CHECKING, Any

from . import logs
from .spend.cost import as_number

if TYPE_CHECKING:
    from .context import Context

log = logging.getLogger("extproc.access")


def _ms(start: float, end: float | None) -> float | None:
    return None if end is None else round((end - start) * 1000, 2)


def fields(ex: Context, outcome: str) -> dict[str, Any]:
    """The line's fields (None values dropped)."""
    identity = ex.state.get("identity")
    usage = ex.state.get("usage")
    cost = ex.state.get("cost")
    rejection = ex.rejection
    out: dict[str, Any] = {
        "request_id": ex.request_id or None,
        "route": ex.route_name,
        "provider": ex.state.get("backend_provider") or ex.provider,
        "model": ex.state.get("model"),
        "backend": ex.state.get("backend_provider"),      # the unified front: who served
        "backend_model": ex.state.get("backend_model"),   # the front model (`model`)
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
        "cost": as_number(cost) if cost is not None else None,
        "currency": ex.state.get("currency") if cost is not None else None,
        "cost_status": ex.state.get("cost_status"),
        "finish_reason": ex.state.get("finish_reason"),
        "upstream_error": ex.state.get("upstream_error"),
        "guard_request": ex.state.get("guard_request"),
        "guard_response": ex.state.get("guard_response"),
        "ratelimit": ex.state.get("ratelimit"),
        "interrupted": ex.state.get("interrupted"),          # the message a policy held
        "interrupted_after_ms": ex.state.get("interrupted_after_ms"),
        "request_bytes": ex.request_body_bytes or None,
        "response_bytes": ex.response_body_bytes or None,
    }
    return {k: v for k, v in out.items() if v is not None}


class _Batch:
    """JSON lines waiting to be written to stderr together."""

    MAX_BYTES = 64 * 1024
    DELAY_S = 0.05

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.scheduled = False

    def add(self, line: str) -> None:
        self.parts.append(line)
        self.size += len(line)
        if self.size >= self.MAX_BYTES:
            self.flush()
        elif not self.scheduled:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.flush()
                return
            self.scheduled = True
            loop.call_later(self.DELAY_S, self.flush)

    def flush(self) -> None:
        self.scheduled = False
        if not self.parts:
            return
        parts, self.parts, self.size = self.parts, [], 0
        try:
            for piece in pieces(parts):
                sys.stderr.write(piece)
                sys.stderr.flush()
        except (OSError, ValueError):
            pass


#: the most bytes one write to a pipe carries whole (POSIX guarantees at least 512; Linux 4096)
PIPE_BUF = 4096


def pieces(lines: list[str], limit: int = PIPE_BUF) -> list[str]:
    """`lines` (each ending in a newline) joined into as few strings as keep each at most
    `limit` bytes in UTF-8; a longer line is a piece of its own."""
    out: list[str] = []
    group: list[str] = []
    size = 0
    for line in lines:
        # (as stderr writes it: a lone surrogate, from an undecodable header byte or a
        # JSON `\ud800` escape, as its backslash escape)
        n = len(line) if line.isascii() else len(line.encode("utf-8", "backslashreplace"))
        if group and size + n > limit:
            out.append("".join(group))
            group, size = [], 0
        group.append(line)
        size += n
    if group:
        out.append("".join(group))
    return out


_batch = _Batch()
atexit.register(_batch.flush)
flush = _batch.flush


_second: list[Any] = [-1, ""]   # the last whole second seen and its formatted prefix


def _ts(now: float) -> str:
    second = int(now)
    if second != _second[0]:
        _second[0], _second[1] = second, time.strftime("%Y-%m-%dT%H:%M:%S",
                                                       time.gmtime(second))
    return f"{_second[1]}.{int(now * 1000) % 1000:03d}Z"


def _json(value: Any) -> str:
    if isinstance(value, str):
        return encode_basestring(value)
    if value is True or value is False or value is None:
        return "true" if value else ("false" if value is False else "null")
    if isinstance(value, int | float):
        return repr(value)
    return _ENCODE(value)


#: json.dumps(value, ensure_ascii=False, default=str), without making an encoder per call
_ENCODE = json.JSONEncoder(ensure_ascii=False, default=str).encode


def line(ex: Context, outcome: str, now: float | None = None) -> str:
    """The JSON line (what the JSON formatter would write for this record, built faster:
    the keys are known, only values need encoding)."""
    parts = [f'{{"ts":"{_ts(time.time() if now is None else now)}","level":"info",'
             f'"logger":"{log.name}","msg":"request"']
    add = parts.append
    if logs.current_process:   # a --workers worker, as the formatter says it (review)
        add(f',"process":{encode_basestring(logs.current_process)}')
    for k, v in fields(ex, outcome).items():
        cls = v.__class__   # the common value types inline: `_json` without a call
        if cls is str:
            add(f',"{k}":{encode_basestring(v)}')
        elif cls is int or cls is float:
            add(f',"{k}":{v!r}')
        else:
            add(f',"{k}":{_json(v)}')
    add("}\n")
    return "".join(parts)


def write(ex: Context, outcome: str) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    if logs.current_format == "text":
        log.info("request", extra={"fields": fields(ex, outcome)})
        return
    _batch.add(line(ex, outcome))
