"""The mock LLM provider HTTP server (``extproc mock-llm``), built on aiohttp.web.

Routes the native OpenAI / Azure OpenAI, Anthropic, Gemini and Vertex AI paths to the pure
format builders, applies the ``x-mock-*`` control headers while writing, records the last
request for ``GET /_mock/last`` and logs one line per request to the ``extproc.mock`` logger.

Endpoints: OpenAI chat completions, Responses, legacy completions and embeddings (also under
``/openai/v1/...`` and Azure's ``/openai/deployments/{deployment}/...``), Anthropic messages
and ``messages/count_tokens``, Gemini / Vertex ``:generateContent``,
``:streamGenerateContent``, ``:countTokens``, ``:embedContent`` and ``:batchEmbedContents``.
Every one honours ``x-mock-status``, ``x-mock-chunk-bytes``, ``x-mock-delay-ms``,
``x-mock-fail-after`` and ``x-mock-end-after``; those that generate text honour
``x-mock-reply`` (and ``echo``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from extproc.mock import anthropic, google, google_extra, openai
from extproc.mock.common import Reply, decode_header_text, make_id
from extproc.mock.control import Control, ControlError, Plan, error_plan, parse_control
from extproc.mock.endpoints import (
    anthropic_count_tokens,
    google_other,
    openai_completions_create,
    openai_embeddings_create,
    openai_responses_create,
)
from extproc.mock.flow import GOOGLE_JSON, JSON, SSE, generate, request_id
from extproc.mock.writer import MockResponse, send_plan

log = logging.getLogger("extproc.mock")

MAX_REQUEST_BYTES = 128 * 1024 * 1024


@dataclass
class MockState:
    """Per-app mutable state: the last request seen."""

    last: dict[str, Any] | None = None


STATE = web.AppKey("mock_state", MockState)


async def openai_chat(request: web.Request) -> web.StreamResponse:
    """POST /v1/chat/completions and Azure's /openai/deployments/{deployment}/chat/completions."""
    rid = await request_id(request)
    headers = {"x-request-id": f"req_{rid}", "openai-processing-ms": "1"}

    def build(data: dict[str, Any], text: str, shape: str | None) -> Plan:
        model = data.get("model") or request.match_info.get("deployment") or "mock-model"
        reply = Reply.make(
            text, str(model), make_id(f"{rid}:{text}"), time.time(), openai.prompt_tokens(data)
        )
        if openai.wants_stream(data):
            frames = openai.build_stream(data, reply, shape)
            # the usage chunk (when asked for) and [DONE] follow the last chunk at once
            return Plan(200, {**headers, "Content-Type": SSE}, frames, streamed=True,
                        settled=1 + openai.wants_usage(data))
        body_bytes = openai.build_response(data, reply, shape)
        return Plan(200, {**headers, "Content-Type": JSON}, [body_bytes])

    def error(status: int, message: str | None, param: str | None) -> bytes:
        return openai.error_body(status, message, param)

    def event(message: str | None) -> bytes:
        overloaded = json.loads(openai.error_body(500, message or "The server had an error"))
        return b"data: " + json.dumps(overloaded, separators=(",", ":")).encode() + b"\n\n"

    return await generate(request, openai, error, headers, build, event)


async def anthropic_messages(request: web.Request) -> web.StreamResponse:
    """POST /v1/messages."""
    rid = await request_id(request)
    headers = {"request-id": f"req_{rid}"}

    def build(data: dict[str, Any], text: str, shape: str | None) -> Plan:
        model = str(data.get("model") or "mock-model")
        reply = Reply.make(
            text, model, make_id(f"{rid}:{text}"), time.time(), anthropic.prompt_tokens(data)
        )
        if anthropic.wants_stream(data):
            frames = anthropic.build_stream(data, reply, shape)
            # message_delta (stop reason, usage) and message_stop end it at once
            return Plan(200, {**headers, "Content-Type": SSE}, frames, streamed=True,
                        settled=2)
        body_bytes = anthropic.build_response(data, reply, shape)
        return Plan(200, {**headers, "Content-Type": JSON}, [body_bytes])

    def error(status: int, message: str | None, param: str | None) -> bytes:
        return anthropic.error_body(status, message, f"req_{rid}")

    def event(message: str | None) -> bytes:
        overloaded = {"type": "error", "error": {"type": "overloaded_error",
                                                 "message": message or "Overloaded"}}
        return b"event: error\ndata: " \
            + json.dumps(overloaded, separators=(",", ":")).encode() + b"\n\n"

    return await generate(request, anthropic, error, headers, build, event)


async def google_generate(request: web.Request, route: google.GoogleRoute) -> web.StreamResponse:
    """Gemini and Vertex AI ``...models/{model}:generateContent|streamGenerateContent``."""
    sse = google.wants_sse(dict(request.query))
    rid = await request_id(request)

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

    def event(message: str | None) -> bytes:
        overloaded = json.loads(google.error_body(503, message or "The model is overloaded."))
        return b"data: " + json.dumps(overloaded, separators=(",", ": ")).encode() \
            + b"\r\n\r\n"

    return await generate(request, google, error, {"Content-Type": GOOGLE_JSON}, build,
                          event if sse else None)


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
    other = google_extra.parse_path(request.path)
    if other is not None and request.method == "POST":
        return await google_other(request, other)
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
            "raw_path": request.raw_path,         # as sent: path and query, undecoded
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
    app.router.add_post("/v1/responses", openai_responses_create)
    app.router.add_post("/openai/v1/responses", openai_responses_create)
    app.router.add_post("/v1/completions", openai_completions_create)
    app.router.add_post("/openai/v1/completions", openai_completions_create)
    app.router.add_post("/openai/deployments/{deployment}/completions",
                        openai_completions_create)
    app.router.add_post("/v1/embeddings", openai_embeddings_create)
    app.router.add_post("/openai/v1/embeddings", openai_embeddings_create)
    app.router.add_post("/openai/deployments/{deployment}/embeddings",
                        openai_embeddings_create)
    app.router.add_post("/v1/messages", anthropic_messages)
    app.router.add_post("/v1/messages/count_tokens", anthropic_count_tokens)
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
