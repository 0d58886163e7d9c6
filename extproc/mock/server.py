"""The mock LLM provider HTTP server (``extproc mock-llm``), built on aiohttp.web.

Routes the native OpenAI / Azure OpenAI, Anthropic, Gemini and Vertex AI paths to the pure
format builders, applies the ``x-mock-*`` control headers while writing, records the last
request for ``GET /_mock/last`` and logs one line per request to the ``extproc.mock`` logger.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from aiohttp import web

from extproc.mock import anthropic, google, openai
from extproc.mock.common import (
    DEFAULT_REPLY,
    Reply,
    RequestError,
    decode_header_text,
    make_id,
    parse_json_object,
)
from extproc.mock.control import Control, ControlError, Plan, error_plan, parse_control
from extproc.mock.writer import MockResponse, send_plan

log = logging.getLogger("extproc.mock")

JSON = "application/json"
SSE = "text/event-stream; charset=utf-8"
GOOGLE_JSON = "application/json; charset=UTF-8"
MAX_REQUEST_BYTES = 128 * 1024 * 1024


@dataclass
class MockState:
    """Per-app mutable state: the last request seen."""

    last: dict[str, Any] | None = None


STATE = web.AppKey("mock_state", MockState)


async def _request_id(request: web.Request) -> str:
    """A deterministic id for the request: identical requests get identical ids."""
    body = await request.read()
    return make_id(f"{request.method} {request.path_qs}\n".encode() + body)


def _reply_text(control: Control, echo: str) -> str:
    if control.reply is None:
        return DEFAULT_REPLY
    return echo if control.echo else control.reply


async def _generate(
    request: web.Request,
    fmt: ModuleType,
    error: Callable[[int, str | None, str | None], bytes],
    headers: dict[str, str],
    build: Callable[[dict[str, Any], str, str | None], Plan],
) -> web.StreamResponse:
    """Shared flow: control headers, status override, validation, then build and send."""
    body = await request.read()
    try:
        control = parse_control(request.headers)
    except ControlError as exc:
        return await send_plan(
            request, error_plan(400, error(400, str(exc), None), headers), Control()
        )
    if control.status is not None:
        plan = error_plan(control.status, error(control.status, None, None), headers)
        return await send_plan(request, plan, control)
    if control.shape is not None and control.shape not in fmt.SHAPES:
        message = f"x-mock-shape {control.shape!r} is not a shape of this provider " \
                  f"(one of: {', '.join(fmt.SHAPES)})"
        return await send_plan(request, error_plan(400, error(400, message, None), headers),
                               Control())
    try:
        data = parse_json_object(body)
        fmt.validate(data)
    except RequestError as exc:
        plan = error_plan(400, error(400, exc.message, exc.param), headers)
        return await send_plan(request, plan, control)
    text = _reply_text(control, fmt.extract_echo(data) if control.echo else "")
    return await send_plan(request, build(data, text, control.shape), control)


async def openai_chat(request: web.Request) -> web.StreamResponse:
    """POST /v1/chat/completions and Azure's /openai/deployments/{deployment}/chat/completions."""
    rid = await _request_id(request)
    headers = {"x-request-id": f"req_{rid}", "openai-processing-ms": "1"}

    def build(data: dict[str, Any], text: str, shape: str | None) -> Plan:
        model = data.get("model") or request.match_info.get("deployment") or "mock-model"
        reply = Reply.make(
            text, str(model), make_id(f"{rid}:{text}"), time.time(), openai.prompt_tokens(data)
        )
        if openai.wants_stream(data):
            frames = openai.build_stream(data, reply, shape)
            return Plan(200, {**headers, "Content-Type": SSE}, frames, streamed=True)
        body_bytes = openai.build_response(data, reply, shape)
        return Plan(200, {**headers, "Content-Type": JSON}, [body_bytes])

    def error(status: int, message: str | None, param: str | None) -> bytes:
        return openai.error_body(status, message, param)

    return await _generate(request, openai, error, headers, build)


async def anthropic_messages(request: web.Request) -> web.StreamResponse:
    """POST /v1/messages."""
    rid = await _request_id(request)
    headers = {"request-id": f"req_{rid}"}

    def build(data: dict[str, Any], text: str, shape: str | None) -> Plan:
        model = str(data.get("model") or "mock-model")
        reply = Reply.make(
            text, model, make_id(f"{rid}:{text}"), time.time(), anthropic.prompt_tokens(data)
        )
        if anthropic.wants_stream(data):
            frames = anthropic.build_stream(data, reply, shape)
            return Plan(200, {**headers, "Content-Type": SSE}, frames, streamed=True)
        body_bytes = anthropic.build_response(data, reply, shape)
        return Plan(200, {**headers, "Content-Type": JSON}, [body_bytes])

    def error(status: int, message: str | None, param: str | None) -> bytes:
        return anthropic.error_body(status, message, f"req_{rid}")

    return await _generate(request, anthropic, error, headers, build)


async def google_generate(request: web.Request, route: google.GoogleRoute) -> web.StreamResponse:
    """Gemini and Vertex AI ``...models/{model}:generateContent|streamGenerateContent``."""
    sse = google.wants_sse(dict(request.query))
    rid = await _request_id(request)

    def build(data: dict[str, Any], text: str, shape: str | None) -> Plan:
        reply = Reply.make(
            text, route.model, make_id(f"{rid}:{text}"), time.time(), google.prompt_tokens(data)
        )
        if not route.stream:
            body_bytes = google.build_response(data, reply, vertex=route.vertex, shape=shape)
            return Plan(200, {"Content-Type": GOOGLE_JSON}, [body_bytes])
        frames = google.build_stream(data, reply, sse=sse, vertex=route.vertex, shape=shape)
        ctype = "text/event-stream" if sse else GOOGLE_JSON
        return Plan(200, {"Content-Type": ctype}, frames, streamed=True)

    def error(status: int, message: str | None, param: str | None) -> bytes:
        return google.error_body(status, message)

    return await _generate(request, google, error, {"Content-Type": GOOGLE_JSON}, build)


async def list_models(request: web.Request) -> web.StreamResponse:
    """GET /v1/models: Anthropic's list when anthropic headers are present, else OpenAI's."""
    try:
        control = parse_control(request.headers)
    except ControlError:
        control = Control()
    is_anthropic = "anthropic-version" in request.headers
    fmt: Any = anthropic if is_anthropic else openai
    if control.status is not None:
        body = fmt.error_body(control.status)
        return await send_plan(request, error_plan(control.status, body, {}), control)
    return await send_plan(
        request, Plan(200, {"Content-Type": JSON}, [fmt.build_models(time.time())]), control
    )


async def catch_all(request: web.Request) -> web.StreamResponse:
    """Google paths (the ``:`` inside the last segment defeats normal routing), else 404."""
    route = google.parse_path(request.path)
    if route is not None and request.method == "POST":
        return await google_generate(request, route)
    error = {
        "error": {
            "message": f"mock-llm has no route for {request.method} {request.path}",
            "type": "not_found",
            "code": 404,
        }
    }
    return web.json_response(error, status=404)


async def last_request(request: web.Request) -> web.Response:
    """GET /_mock/last: the most recent non-debug request as JSON."""
    last = request.app[STATE].last
    if last is None:
        return web.json_response({"error": {"message": "no request yet", "code": 404}}, status=404)
    return web.json_response(last)


async def health(request: web.Request) -> web.Response:
    """GET /_mock/health: readiness probe."""
    return web.json_response({"status": "ok"})


@web.middleware
async def record_and_log(request: web.Request, handler: Any) -> web.StreamResponse:
    """Read and record the request, run the handler, log one line."""
    body = await request.read()
    if not request.path.startswith("/_mock/"):
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            key, text = name.lower(), decode_header_text(value)
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        request.app[STATE].last = {
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "headers": headers,
            "body": body.decode("utf-8", "replace"),
        }
    resp = await handler(request)
    if isinstance(resp, MockResponse):
        sent, suffix = resp.sent_bytes, " aborted" if resp.aborted else ""
    else:
        sent, suffix = len(resp.body or b"") if isinstance(resp, web.Response) else 0, ""
    log.info("%s %s %d %d%s", request.method, request.path_qs, resp.status, sent, suffix)
    return resp


async def _add_request_bytes(request: web.Request, response: web.StreamResponse) -> None:
    response.headers["x-mock-request-bytes"] = str(len(await request.read()))


def build_app() -> web.Application:
    """The mock provider application."""
    app = web.Application(client_max_size=MAX_REQUEST_BYTES, middlewares=[record_and_log])
    app[STATE] = MockState()
    app.on_response_prepare.append(_add_request_bytes)
    app.router.add_post("/v1/chat/completions", openai_chat)
    app.router.add_post("/openai/v1/chat/completions", openai_chat)
    app.router.add_post("/openai/deployments/{deployment}/chat/completions", openai_chat)
    app.router.add_post("/v1/messages", anthropic_messages)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/_mock/last", last_request)
    app.router.add_get("/_mock/health", health)
    app.router.add_route("*", "/{tail:.*}", catch_all)
    return app


async def serve(host: str, port: int) -> None:
    """Serve the mock on host:port until SIGINT or SIGTERM."""
    runner = web.AppRunner(build_app(), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    for address in runner.addresses:
        log.info("mock-llm listening on http://%s:%s", address[0], address[1])
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
    try:
        await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        await runner.cleanup()
        log.info("mock-llm stopped")


def main(argv: list[str] | None = None) -> int:
    """Command line entry point: ``extproc mock-llm [--host H] [--port P]``."""
    parser = argparse.ArgumentParser(
        prog="extproc mock-llm",
        description="Deterministic mock OpenAI / Anthropic / Gemini / Vertex AI upstream.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8081, help="port to bind (8081)")
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(
            stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
        )
    log.setLevel(logging.INFO)
    try:
        asyncio.run(serve(args.host, args.port))
    except KeyboardInterrupt:
        pass
    except OSError as exc:
        log.error("mock-llm cannot serve on %s:%s: %s", args.host, args.port, exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
