"""The mock's shared request flow: control headers, status override, validation, then the
format's plan, written with the control headers' misbehaviours."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any, Protocol

from aiohttp import web

from extproc.mock.common import DEFAULT_REPLY, RequestError, make_id, parse_json_object
from extproc.mock.control import Control, ControlError, Plan, error_plan, parse_control
from extproc.mock.writer import send_plan

JSON = "application/json"
SSE = "text/event-stream; charset=utf-8"
GOOGLE_JSON = "application/json; charset=UTF-8"


async def request_id(request: web.Request) -> str:
    """A deterministic id for the request: identical requests get identical ids."""
    body = await request.read()
    return make_id(f"{request.method} {request.path_qs}\n".encode() + body)


def reply_text(control: Control, echo: str) -> str:
    if control.reply is None:
        return DEFAULT_REPLY
    return echo if control.echo else control.reply


class Format(Protocol):
    """What the shared flow needs of a format (a module or a route object)."""

    def validate(self, request: dict[str, Any]) -> None: ...

    def extract_echo(self, request: dict[str, Any]) -> str: ...


async def generate(
    request: web.Request,
    fmt: Format,
    error: Callable[[int, str | None, str | None], bytes],
    headers: dict[str, str],
    build: Callable[..., Plan],
    stream_error: Callable[[str | None], bytes] | None = None,
) -> web.StreamResponse:
    """Shared flow: control headers, status override, validation, then build and send.
    A format with `SHAPES` (the chat formats) gets `build(data, text, shape)`, and an
    `x-mock-shape` it does not have is a 400; the others get `build(data, text)`. With
    `x-mock-error-after: N` a streamed plan ends after N frames with `stream_error` (the
    format's mid-stream error event, its message `x-mock-error-message`'s text when given; a
    format without one ignores the header)."""
    body = await request.read()
    try:
        control = parse_control(request.headers)
    except ControlError as exc:
        return await send_plan(
            request, error_plan(400, error(400, str(exc), None), headers), Control()
        )
    if control.status is not None:   # (its message is x-mock-reply's text, if given)
        plan = error_plan(control.status, error(control.status, control.reply, None), headers)
        return await send_plan(request, plan, control)
    shapes = getattr(fmt, "SHAPES", None)
    if control.shape is not None and control.shape not in (shapes or ()):
        message = f"x-mock-shape {control.shape!r} is not a shape of this provider " \
                  f"(one of: {', '.join(shapes or ())})"
        return await send_plan(request, error_plan(400, error(400, message, None), headers),
                               Control())
    try:
        data = parse_json_object(body)
        fmt.validate(data)
    except RequestError as exc:
        plan = error_plan(400, error(400, exc.message, exc.param), headers)
        return await send_plan(request, plan, control)
    text = reply_text(control, fmt.extract_echo(data) if control.echo else "")
    plan = build(data, text, control.shape) if shapes is not None else build(data, text)
    if control.error_after is not None and plan.streamed and stream_error is not None:
        plan = dataclasses.replace(plan, frames=[*plan.frames[:control.error_after],
                                                 stream_error(control.error_message)],
                                   settled=0)
    if control.success_status is not None:
        plan = dataclasses.replace(plan, status=control.success_status)
    if control.omit_usage and not plan.streamed:
        plan = dataclasses.replace(plan, frames=[_without_usage(b"".join(plan.frames))])
    return await send_plan(request, plan, control)


def _without_usage(body: bytes) -> bytes:
    """A whole JSON reply without its usage report (``x-mock-usage: omit``)."""
    doc = json.loads(body)
    if isinstance(doc, dict):
        doc.pop("usage", None)
        doc.pop("usageMetadata", None)
    return json.dumps(doc, indent=2).encode()
