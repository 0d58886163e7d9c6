"""The mock's handlers for the endpoints beyond chat / messages / generateContent: OpenAI
Responses, legacy Completions and Embeddings, Anthropic token counting, and Gemini / Vertex
countTokens and (batch) embedContent."""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from extproc.mock import (
    anthropic,
    anthropic_tokens,
    google,
    google_extra,
    openai,
    openai_completions,
    openai_embeddings,
    openai_responses,
)
from extproc.mock.common import Reply, make_id
from extproc.mock.control import Plan
from extproc.mock.flow import GOOGLE_JSON, JSON, SSE, generate, request_id


def _openai_headers(rid: str) -> dict[str, str]:
    return {"x-request-id": f"req_{rid}", "openai-processing-ms": "1"}


def _openai_error(status: int, message: str | None, param: str | None) -> bytes:
    return openai.error_body(status, message, param)


async def openai_responses_create(request: web.Request) -> web.StreamResponse:
    """POST /v1/responses (and Azure's /openai/v1/responses)."""
    rid = await request_id(request)
    headers = _openai_headers(rid)

    def build(data: dict[str, Any], text: str) -> Plan:
        reply = Reply.make(text, str(data.get("model") or "mock-model"),
                           make_id(f"{rid}:{text}"), time.time(),
                           openai_responses.prompt_tokens(data))
        if openai_responses.wants_stream(data):
            frames = openai_responses.build_stream(data, reply)
            return Plan(200, {**headers, "Content-Type": SSE}, frames, streamed=True,
                        settled=openai_responses.settled_frames(frames))
        body = openai_responses.build_response(data, reply)
        return Plan(200, {**headers, "Content-Type": JSON}, [body])

    return await generate(request, openai_responses, _openai_error, headers, build)


async def openai_completions_create(request: web.Request) -> web.StreamResponse:
    """POST /v1/completions and Azure's /openai/deployments/{deployment}/completions."""
    rid = await request_id(request)
    headers = _openai_headers(rid)

    def build(data: dict[str, Any], text: str) -> Plan:
        model = data.get("model") or request.match_info.get("deployment") or "mock-model"
        reply = Reply.make(text, str(model), make_id(f"{rid}:{text}"), time.time(),
                           openai_completions.prompt_tokens(data))
        if openai.wants_stream(data):
            frames = openai_completions.build_stream(data, reply)
            return Plan(200, {**headers, "Content-Type": SSE}, frames, streamed=True,
                        settled=1 + openai.wants_usage(data))
        body = openai_completions.build_response(data, reply)
        return Plan(200, {**headers, "Content-Type": JSON}, [body])

    return await generate(request, openai_completions, _openai_error, headers, build)


async def openai_embeddings_create(request: web.Request) -> web.StreamResponse:
    """POST /v1/embeddings and Azure's /openai/deployments/{deployment}/embeddings."""
    rid = await request_id(request)
    headers = _openai_headers(rid)

    def build(data: dict[str, Any], text: str) -> Plan:
        model = data.get("model") or request.match_info.get("deployment") or "mock-model"
        body = openai_embeddings.build_response(data, str(model))
        return Plan(200, {**headers, "Content-Type": JSON}, [body])

    return await generate(request, openai_embeddings, _openai_error, headers, build)


async def anthropic_count_tokens(request: web.Request) -> web.StreamResponse:
    """POST /v1/messages/count_tokens."""
    rid = await request_id(request)
    headers = {"request-id": f"req_{rid}"}

    def build(data: dict[str, Any], text: str) -> Plan:
        body = anthropic_tokens.build_response(data)
        return Plan(200, {**headers, "Content-Type": JSON}, [body])

    def error(status: int, message: str | None, param: str | None) -> bytes:
        return anthropic.error_body(status, message, f"req_{rid}")

    return await generate(request, anthropic_tokens, error, headers, build)


async def google_other(request: web.Request, route: google_extra.Route) -> web.StreamResponse:
    """Gemini and Vertex AI ``...models/{model}:countTokens|embedContent|batchEmbedContents``."""

    def build(data: dict[str, Any], text: str) -> Plan:
        return Plan(200, {"Content-Type": GOOGLE_JSON}, [route.build(data)])

    def error(status: int, message: str | None, param: str | None) -> bytes:
        return google.error_body(status, message)

    return await generate(request, route, error, {"Content-Type": GOOGLE_JSON}, build)
