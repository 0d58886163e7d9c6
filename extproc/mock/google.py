"""Gemini / Vertex AI generateContent wire format: pure builders, no IO.

Parses the ``models/{model}:{method}`` request paths, builds ``GenerateContentResponse``
bodies, the two streaming encodings (SSE with CRLF separators for ``alt=sse``, otherwise one
JSON array sent element by element) and Google-style error bodies.

``generationConfig.candidateCount`` gives that many candidates, each with the reply, in
every streamed element. Shapes (``x-mock-shape``): ``thinking`` streams the reply as thought
parts (``"thought": true``, counted in ``thoughtsTokenCount``) before a text part saying
``THINKING_ANSWER``; ``tool`` answers one ``functionCall`` part whose args are the reply
when it is a JSON object, else ``{"text": reply}`` (it arrives whole, in one element);
``partial-args`` streams that call's arguments as Vertex does when the request sets
``toolConfig.functionCallingConfig.streamFunctionCallArguments``: an element naming the
call (``willContinue: true``), then one per piece of the reply, each a ``partialArgs``
piece of the string at ``$.text`` (``willContinue: true`` but the last), then the finished
element with an empty ``functionCall`` (a whole reply answers as ``tool`` does);
``image`` and ``audio`` answer with generated media as if the request asked for it (below),
as image models such as gemini-2.5-flash-image answer by default.

A request whose ``generationConfig.responseModalities`` (either spelling, values in any case)
has ``IMAGE`` is answered with the reply's text part followed by an ``{"inlineData":
{"mimeType": "image/png", "data": IMAGE_B64}}`` part; one that has ``AUDIO`` with only an
``{"inlineData": {"mimeType": "audio/L16;codec=pcm;rate=24000", "data": AUDIO_B64}}`` part,
as a TTS model answers (``common.IMAGE_B64`` / ``AUDIO_B64``; AUDIO wins when both are asked;
the ``thinking`` and ``tool`` shapes ignore the modalities). The media part counts
``IMAGE_TOKENS`` / ``AUDIO_TOKENS`` more ``candidatesTokenCount``, broken down by modality in
``candidatesTokensDetails``. Streamed, the media part comes whole in the finishing element,
after the text pieces' elements (audio: that one element only).

A request with the Google Search tool (``tools: [{"google_search": {}}]``, either spelling)
is answered grounded, as Gemini answers it: the finished element's candidates carry
``groundingMetadata`` (the search query, one web source, the reply's text as the segment it
supports, a search entry point).
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any

from extproc.mock.common import (
    AUDIO_B64,
    AUDIO_TOKENS,
    IMAGE_B64,
    IMAGE_MIME,
    IMAGE_TOKENS,
    Reply,
    RequestError,
    count_prompt_tokens,
    dump_pretty,
    texts_of_parts,
)

METHODS = ("generateContent", "streamGenerateContent")
SHAPES = ("thinking", "tool", "image", "audio", "partial-args")
MEDIA = ("image", "audio")
AUDIO_MIME = "audio/L16;codec=pcm;rate=24000"
THINKING_ANSWER = "Done."
TOOL_NAME = "mock_tool"
MAX_CANDIDATES = 8

_GEMINI_PATH = re.compile(r"^/(?P<ver>v1|v1beta|v1alpha)/models/(?P<model>[^/:]+):(?P<method>\w+)$")
_VERTEX_PATH = re.compile(
    r"^/(?P<ver>v1|v1beta1)/(?:projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)/)?"
    r"publishers/(?P<publisher>[^/]+)/models/(?P<model>[^/:]+):(?P<method>\w+)$"
)

# status -> (status name, default message), as googleapis.com answers.
_ERRORS: dict[int, tuple[str, str]] = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: (
        "UNAUTHENTICATED",
        "Request had invalid authentication credentials. Expected OAuth 2 access token, "
        "login cookie or other valid authentication credential.",
    ),
    403: ("PERMISSION_DENIED", "The caller does not have permission"),
    404: ("NOT_FOUND", "Requested entity was not found."),
    409: ("ABORTED", "The operation was aborted."),
    429: ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    499: ("CANCELLED", "The operation was cancelled."),
    500: ("INTERNAL", "An internal error has occurred. Please retry or report it."),
    501: ("UNIMPLEMENTED", "Method not implemented."),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
}


@dataclass(frozen=True)
class GoogleRoute:
    """A parsed Gemini or Vertex generateContent path."""

    model: str
    method: str
    vertex: bool
    version: str

    @property
    def stream(self) -> bool:
        """True for ``:streamGenerateContent``."""
        return self.method == "streamGenerateContent"


def parse_path(path: str) -> GoogleRoute | None:
    """Parse a Gemini (``/v1beta/models/m:method``) or Vertex path; None if neither."""
    for pattern, vertex in ((_GEMINI_PATH, False), (_VERTEX_PATH, True)):
        match = pattern.match(path)
        if match and match["method"] in METHODS:
            return GoogleRoute(match["model"], match["method"], vertex, match["ver"])
    return None


def validate(request: dict[str, Any]) -> None:
    """Raise RequestError unless the body looks like a GenerateContentRequest."""
    contents = request.get("contents")
    if contents is None:
        raise RequestError(
            "* GenerateContentRequest.contents: contents is not specified\n", "contents"
        )
    if not isinstance(contents, list) or not contents:
        raise RequestError("* GenerateContentRequest.contents: contents must not be empty\n")


def _parts_texts(content: Any) -> list[str]:
    if not isinstance(content, dict):
        return []
    return texts_of_parts(content.get("parts"))


def extract_echo(request: dict[str, Any]) -> str:
    """Text parts of the last user content (a content without a role counts as user)."""
    for content in reversed(request.get("contents") or []):
        if isinstance(content, dict) and content.get("role", "user") == "user":
            return "".join(_parts_texts(content))
    return ""


def prompt_tokens(request: dict[str, Any]) -> int:
    """Deterministic prompt token count over systemInstruction and all contents."""
    system = request.get("systemInstruction") or request.get("system_instruction")
    texts = _parts_texts(system)
    for content in request.get("contents") or []:
        texts.extend(_parts_texts(content))
    return count_prompt_tokens(texts)


def wants_sse(query: dict[str, str]) -> bool:
    """True when the query string asks for ``alt=sse``."""
    return (query.get("alt") or query.get("$alt")) == "sse"   # `$alt` is Google's alias


def _create_time(created: float) -> str:
    micros = round((created % 1) * 1_000_000) % 1_000_000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{micros:06d}Z"


def candidate_count(request: dict[str, Any]) -> int:
    """How many candidates to answer: ``generationConfig.candidateCount`` (1 to
    MAX_CANDIDATES, either spelling), else 1."""
    config = request.get("generationConfig") or request.get("generation_config")
    if isinstance(config, dict):
        n = config.get("candidateCount", config.get("candidate_count"))
        if isinstance(n, int) and not isinstance(n, bool) and n >= 1:
            return min(n, MAX_CANDIDATES)
    return 1


def media_kind(request: dict[str, Any], shape: str | None = None) -> str | None:
    """The generated media to answer with: ``"audio"`` or ``"image"`` (the ``image`` /
    ``audio`` shape, else the request's ``responseModalities``), else None."""
    if shape is not None:
        return shape if shape in MEDIA else None
    config = request.get("generationConfig") or request.get("generation_config")
    if not isinstance(config, dict):
        return None
    modalities = config.get("responseModalities", config.get("response_modalities"))
    names = {m.strip().upper() for m in modalities if isinstance(m, str)} \
        if isinstance(modalities, list) else set()
    return "audio" if "AUDIO" in names else "image" if "IMAGE" in names else None


def _media_part(kind: str) -> dict[str, Any]:
    if kind == "audio":
        return {"inlineData": {"mimeType": AUDIO_MIME, "data": AUDIO_B64}}
    return {"inlineData": {"mimeType": IMAGE_MIME, "data": IMAGE_B64}}


def _media_details(reply: Reply, kind: str) -> list[dict[str, Any]]:
    """One candidate's ``candidatesTokensDetails`` for a media reply."""
    if kind == "audio":
        return [{"modality": "AUDIO", "tokenCount": AUDIO_TOKENS}]
    return [{"modality": "TEXT", "tokenCount": reply.completion_tokens},
            {"modality": "IMAGE", "tokenCount": IMAGE_TOKENS}]


def _media_tokens(reply: Reply, kind: str) -> int:
    return AUDIO_TOKENS if kind == "audio" else reply.completion_tokens + IMAGE_TOKENS


def _usage(reply: Reply, candidates: int, vertex: bool, thoughts: int = 0,
           details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "promptTokenCount": reply.prompt_tokens,
        "candidatesTokenCount": candidates,
        "totalTokenCount": reply.prompt_tokens + candidates + thoughts,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": reply.prompt_tokens}],
    }
    if details:
        usage["candidatesTokensDetails"] = details
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    if vertex:
        usage["trafficType"] = "ON_DEMAND"
    return usage


def grounding(request: dict[str, Any], reply: Reply) -> dict[str, Any] | None:
    """The ``groundingMetadata`` of a request that gives the model Google Search, else None."""
    tools = request.get("tools")
    if not isinstance(tools, list) or not any(
            isinstance(t, dict) and ("google_search" in t or "googleSearch" in t)
            for t in tools):
        return None
    query = extract_echo(request)[-80:] or "query"
    segment: dict[str, Any] = {"endIndex": len(reply.text.encode()), "text": reply.text}
    return {
        "searchEntryPoint": {"renderedContent": f'<div class="chip">{query}</div>'},
        "groundingChunks": [{"web": {
            "uri": "https://vertexaisearch.cloud.google.com/grounding-api-redirect/mock",
            "title": "example.org"}}],
        "groundingSupports": [{"segment": segment, "groundingChunkIndices": [0],
                               "confidenceScores": [0.9]}],
        "webSearchQueries": [query],
    }


def _response(
    reply: Reply, parts: list[dict[str, Any]], candidates: int, finished: bool, vertex: bool,
    n: int = 1, thoughts: int = 0, grounded: dict[str, Any] | None = None,
    details: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    answers = []
    for index in range(n):
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
        if finished:
            candidate["finishReason"] = "STOP"
            if grounded is not None:
                candidate["groundingMetadata"] = grounded
        candidate["index"] = index
        answers.append(candidate)
    body: dict[str, Any] = {
        "candidates": answers,
        "usageMetadata": _usage(reply, candidates * n, vertex, thoughts * n,
                                [{**d, "tokenCount": d["tokenCount"] * n}
                                 for d in details or ()]),
        "modelVersion": reply.model,
    }
    if vertex:
        body["createTime"] = _create_time(reply.created)
    body["responseId"] = reply.response_id
    return body


def _call(reply: Reply) -> dict[str, Any]:
    """The ``functionCall`` part: its args are the reply text when that is a JSON object,
    else ``{"text": reply}``."""
    try:
        args = json.loads(reply.text)
    except ValueError:
        args = None
    if not isinstance(args, dict):
        args = {"text": reply.text}
    return {"functionCall": {"name": TOOL_NAME, "args": args}}


def build_response(request: dict[str, Any], reply: Reply, *, vertex: bool = False,
                   shape: str | None = None) -> bytes:
    """The non-streamed ``GenerateContentResponse`` body (pretty-printed, like Google)."""
    n = candidate_count(request)
    tokens = reply.completion_tokens
    kind = media_kind(request, shape)
    if kind == "audio":
        body = _response(reply, [_media_part(kind)], AUDIO_TOKENS, True, vertex, n,
                         details=_media_details(reply, kind))
    elif kind == "image":
        body = _response(reply, [{"text": reply.text}, _media_part(kind)],
                         _media_tokens(reply, kind), True, vertex, n,
                         grounded=grounding(request, reply), details=_media_details(reply, kind))
    elif shape == "thinking":
        parts: list[dict[str, Any]] = [{"text": reply.text, "thought": True},
                                       {"text": THINKING_ANSWER}]
        body = _response(reply, parts, 1, True, vertex, n, tokens)
    elif shape in ("tool", "partial-args"):
        body = _response(reply, [_call(reply)], tokens, True, vertex, n)
    else:
        body = _response(reply, [{"text": reply.text}], tokens, True, vertex, n,
                         grounded=grounding(request, reply))
    return (dump_pretty(body) + "\n").encode("utf-8")


def stream_events(reply: Reply, *, vertex: bool = False, n: int = 1,
                  shape: str | None = None, grounded: dict[str, Any] | None = None,
                  media: str | None = None) -> list[dict[str, Any]]:
    """The streamed responses: one per piece, cumulative usage, the last one finished; with
    ``media`` (``"image"``: the text pieces, then the image part in the finishing element;
    ``"audio"``: the audio part, in one finished element; the ``image`` / ``audio`` shape
    gives its media too)."""
    media = media or (shape if shape in MEDIA else None)
    if media in MEDIA:
        last_media = _response(reply, [_media_part(media)], _media_tokens(reply, media), True,
                               vertex, n, grounded=grounded if media == "image" else None,
                               details=_media_details(reply, media))
        if media == "audio":
            return [last_media]
        return [*(_response(reply, [{"text": piece}], min(i + 1, reply.completion_tokens),
                            False, vertex, n) for i, piece in enumerate(reply.pieces or [""])),
                last_media]
    if shape == "tool":
        return [_response(reply, [_call(reply)], reply.completion_tokens, True, vertex, n)]
    pieces = reply.pieces or [""]
    if shape == "partial-args":
        return _partial_args(reply, pieces, vertex, n)
    if shape == "thinking":   # thoughts first (no answer tokens yet), then the answer
        thoughts = reply.completion_tokens
        return [*(_response(reply, [{"text": piece, "thought": True}], 0, False, vertex, n,
                            min(i + 1, thoughts)) for i, piece in enumerate(pieces)),
                _response(reply, [{"text": THINKING_ANSWER}], 1, True, vertex, n, thoughts)]
    last = len(pieces) - 1
    return [
        _response(reply, [{"text": piece}], min(i + 1, reply.completion_tokens), i == last,
                  vertex, n, grounded=grounded)
        for i, piece in enumerate(pieces)
    ]


def _partial_args(reply: Reply, pieces: list[str], vertex: bool, n: int
                  ) -> list[dict[str, Any]]:
    """A function call whose arguments stream (`stream_events`, ``partial-args``)."""
    last = len(pieces) - 1
    args = [{"jsonPath": "$.text", "stringValue": piece, **({"willContinue": True}
                                                            if i < last else {})}
            for i, piece in enumerate(pieces)]
    calls = [{"name": TOOL_NAME, "willContinue": True},
             *({"partialArgs": [arg], "willContinue": True} for arg in args), {}]
    return [_response(reply, [{"functionCall": call}], min(i, reply.completion_tokens),
                      i == len(calls) - 1, vertex, n) for i, call in enumerate(calls)]


def dump_sse_json(obj: Any) -> str:
    """JSON as Google writes it in `alt=sse` events: one line, `": "` after keys and a bare
    `,` between members (`{"candidates": [{"content": {"parts": [{"text": "Hi"}],"role":
    "model"}}],...}`, as seen in recorded Gemini streams): the array mode's pretty-printed
    objects with their line breaks and indentation removed."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ": "))


def build_stream(
    request: dict[str, Any], reply: Reply, *, sse: bool, vertex: bool = False,
    shape: str | None = None,
) -> list[bytes]:
    """Stream frames: ``data: {json}\\r\\n\\r\\n`` events, or the pieces of one JSON array."""
    events = stream_events(reply, vertex=vertex, n=candidate_count(request), shape=shape,
                           grounded=grounding(request, reply), media=media_kind(request, shape))
    if sse:
        return [f"data: {dump_sse_json(event)}\r\n\r\n".encode() for event in events]
    frames = []
    for i, event in enumerate(events):
        prefix = "[" if i == 0 else "\n,\r\n"
        frames.append((prefix + dump_pretty(event)).encode("utf-8"))
    frames.append(b"\n]")
    return frames


def error_body(status: int, message: str | None = None) -> bytes:
    """Google's error body for an HTTP status."""
    if status >= 500:
        default = ("INTERNAL", "Internal error.")
    else:
        default = ("FAILED_PRECONDITION", f"Error {status}.")
    name, default_message = _ERRORS.get(status, default)
    error = {"code": status, "message": message or default_message, "status": name}
    return (dump_pretty({"error": error}) + "\n").encode("utf-8")
