"""The mock's generated media: OpenAI chat audio (`modalities: ["audio"]`), the Responses
`image_generation` tool's `image_generation_call` item, and Gemini / Vertex `inlineData`
images and audio (`responseModalities`, or the `image` / `audio` shapes), whole and streamed,
from the pure builders and through the server, read back by the official SDKs. The base64
payloads (`common.IMAGE_B64`, `AUDIO_B64`) must arrive byte for byte, and everything that does
not ask for media must answer as before."""

from __future__ import annotations

import base64
import binascii
import io
import json
import struct
import wave
import zlib
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pydantic
import pytest
from google import genai
from google.genai import types as genai_types
from hypothesis import given
from hypothesis import strategies as st
from openai.types.responses import Response, ResponseStreamEvent

from extproc.mock import control, google, openai_responses
from extproc.mock import openai as mock_openai
from extproc.mock.common import (
    AUDIO_B64,
    AUDIO_TOKENS,
    IMAGE_B64,
    IMAGE_TOKENS,
    Reply,
    RequestError,
    split_b64,
)
from extproc.mock.control import parse_control
from extproc.mock.testing import MockServer

TEXT = "Hello there, wörld 日本!"
PIECES = ["Hello ", "there, ", "wörld ", "日本!"]
REPLY = "a picture of jane.roe@example.org"
AUDIO_REQUEST: dict[str, Any] = {"modalities": ["text", "audio"],
                                 "audio": {"voice": "alloy", "format": "wav"}}
IMAGE_TOOL: dict[str, Any] = {"type": "image_generation"}
STREAM_EVENT = pydantic.TypeAdapter(ResponseStreamEvent)
IMAGE_PART = {"inlineData": {"mimeType": "image/png", "data": IMAGE_B64}}
AUDIO_PART = {"inlineData": {"mimeType": "audio/L16;codec=pcm;rate=24000", "data": AUDIO_B64}}


def make_reply(text: str = TEXT) -> Reply:
    return Reply.make(text, "m-1", "abc123", 1_700_000_000.25, 5)


def sse_data(frames: list[bytes] | bytes, sep: str = "\n\n") -> list[str]:
    """The `data:` payloads of an SSE body (frames joined)."""
    body = b"".join(frames) if isinstance(frames, list) else frames
    return [line[len("data: "):] for event in body.decode().split(sep) if event
            for line in event.split(sep[: len(sep) // 2]) if line.startswith("data: ")]


def chat_chunks(frames: list[bytes] | bytes) -> list[dict[str, Any]]:
    payloads = sse_data(frames)
    assert payloads[-1] == "[DONE]"
    return [json.loads(p) for p in payloads[:-1]]


def named_events(frames: list[bytes] | bytes) -> list[dict[str, Any]]:
    """The data of `event: <type>` SSE events, checking the name matches the JSON's type."""
    body = b"".join(frames) if isinstance(frames, list) else frames
    out = []
    for event in body.decode().split("\n\n"):
        if event:
            name, data = event.split("\n")
            doc = json.loads(data.removeprefix("data: "))
            assert name == f"event: {doc['type']}"
            out.append(doc)
    return out


def decodes(data: str) -> bytes:
    """Strict standard-alphabet base64 decode (padding required)."""
    return base64.b64decode(data, validate=True)


# --- the payloads -------------------------------------------------------------------------


def test_image_is_a_valid_1x1_png() -> None:
    png = decodes(IMAGE_B64)
    assert base64.b64encode(png).decode() == IMAGE_B64        # canonical, padded
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos:pos + 4])
        kind, data = png[pos + 4:pos + 8], png[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", png[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(kind + data) == crc
        chunks.append((kind, data))
        pos += 12 + length
    assert [k for k, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    assert struct.unpack(">II", chunks[0][1][:8]) == (1, 1)
    assert len(zlib.decompress(chunks[1][1])) == 1 + 4       # filter byte + one RGBA pixel


def test_audio_is_a_valid_wav() -> None:
    data = decodes(AUDIO_B64)
    assert base64.b64encode(data).decode() == AUDIO_B64
    with wave.open(io.BytesIO(data)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 24000)
        assert w.getnframes() == 240
    assert "+" in AUDIO_B64 and "/" in AUDIO_B64 and "/" in IMAGE_B64   # standard alphabet


@given(st.integers(1, 800))
def test_split_b64_pieces_decode_alone_and_join_back(size: int) -> None:
    pieces = split_b64(AUDIO_B64, size)
    assert "".join(pieces) == AUDIO_B64
    assert b"".join(decodes(p) for p in pieces) == decodes(AUDIO_B64)


# --- OpenAI chat: audio ------------------------------------------------------------------


def test_openai_audio_message() -> None:
    body = json.loads(mock_openai.build_response(AUDIO_REQUEST, make_reply()))
    (choice,) = body["choices"]
    message = choice["message"]
    audio = message.pop("audio")
    assert message == {"role": "assistant", "content": None, "refusal": None, "annotations": []}
    assert audio["id"].startswith("audio_") and int(audio["id"][6:], 16) >= 0
    assert audio == {"id": audio["id"], "data": AUDIO_B64, "expires_at": 1_700_003_600,
                     "transcript": TEXT}
    assert choice["finish_reason"] == "stop"
    usage = body["usage"]
    assert usage["completion_tokens"] == 4 + AUDIO_TOKENS
    assert usage["total_tokens"] == 5 + 4 + AUDIO_TOKENS
    assert usage["completion_tokens_details"]["audio_tokens"] == AUDIO_TOKENS
    # modalities alone is enough (the `audio` param is accepted, not required)
    alone = json.loads(mock_openai.build_response({"modalities": ["audio"]}, make_reply()))
    assert alone["choices"][0]["message"]["audio"]["data"] == AUDIO_B64


def test_openai_audio_stream() -> None:
    request = {**AUDIO_REQUEST, "stream": True, "stream_options": {"include_usage": True}}
    chunks = chat_chunks(mock_openai.build_stream(request, make_reply()))
    deltas = [c["choices"][0]["delta"] for c in chunks[:-1]]
    assert deltas[0] == {"role": "assistant", "content": None, "refusal": None}
    audio = [d["audio"] for d in deltas[1:-1]]
    assert all(set(d) == {"audio"} for d in deltas[1:-1])            # no content
    assert [a["transcript"] for a in audio if "transcript" in a] == PIECES
    assert audio[0]["id"].startswith("audio_") and all("id" not in a for a in audio[1:])
    data = [a["data"] for a in audio if "data" in a]
    assert len(data) > 1 and "".join(data) == AUDIO_B64
    assert all(decodes(piece) for piece in data)                       # each decodes alone
    assert audio[-1] == {"expires_at": 1_700_003_600}
    kinds = ["transcript" if "transcript" in a else "data" if "data" in a else "expires"
             for a in audio]
    assert kinds == sorted(kinds, key=["transcript", "data", "expires"].index)
    assert deltas[-1] == {} and chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens_details"]["audio_tokens"] == AUDIO_TOKENS
    whole = json.loads(mock_openai.build_response(AUDIO_REQUEST, make_reply()))
    assert audio[0]["id"] == whole["choices"][0]["message"]["audio"]["id"]


def test_openai_audio_stream_of_n_choices_and_empty_text() -> None:
    chunks = chat_chunks(mock_openai.build_stream({**AUDIO_REQUEST, "n": 2}, make_reply("")))
    ids = {c["choices"][0]["index"]: c["choices"][0]["delta"]["audio"]["id"]
           for c in chunks if "id" in c["choices"][0]["delta"].get("audio", {})}
    assert len(ids) == 2 and ids[0] != ids[1]
    for index in (0, 1):
        audio = [c["choices"][0]["delta"].get("audio", {}) for c in chunks
                 if c["choices"][0]["index"] == index]
        assert "".join(a.get("data", "") for a in audio) == AUDIO_B64
        assert [a["transcript"] for a in audio if "transcript" in a] == [""]


@pytest.mark.parametrize("shape", [None, "refusal", "tool", "tool-escaped"])
def test_openai_without_audio_or_with_a_shape_is_unchanged(shape: str | None) -> None:
    reply = make_reply()
    for request in ({"modalities": ["text"]}, AUDIO_REQUEST if shape else {"audio": {}}):
        assert mock_openai.build_response(request, reply, shape) == \
            mock_openai.build_response({}, reply, shape)
        assert mock_openai.build_stream({**request, "stream": True}, reply, shape) == \
            mock_openai.build_stream({"stream": True}, reply, shape)


# --- OpenAI Responses: image_generation_call ------------------------------------------------


def image_item(text: str = TEXT) -> dict[str, Any]:
    return {"id": "ig_abc123", "type": "image_generation_call", "status": "completed",
            "background": "opaque", "output_format": "png", "quality": "high",
            "size": "1024x1024", "revised_prompt": text, "result": IMAGE_B64}


def test_responses_image_output() -> None:
    request = {"model": "gpt-5", "input": "draw", "tools": [{"type": "web_search"}, IMAGE_TOOL]}
    raw = openai_responses.build_response(request, make_reply())
    body = json.loads(raw)
    assert body["output"][0] == image_item()
    assert body["output"][1]["type"] == "message"
    assert body["output"][1]["content"][0]["text"] == TEXT
    parsed = Response.model_validate_json(raw)
    assert parsed.output_text == TEXT
    assert parsed.output[0].type == "image_generation_call"
    assert parsed.output[0].result == IMAGE_B64


@pytest.mark.parametrize("partial", [None, 0, 1, 3])
def test_responses_image_stream(partial: int | None) -> None:
    tool = dict(IMAGE_TOOL) if partial is None else {**IMAGE_TOOL, "partial_images": partial}
    request = {"model": "gpt-5", "input": "draw", "stream": True, "tools": [tool]}
    events = named_events(openai_responses.build_stream(request, make_reply()))
    for event in events:
        STREAM_EVENT.validate_python(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    k = partial or 0
    assert [e["type"] for e in events] == [
        "response.created", "response.in_progress", "response.output_item.added",
        "response.image_generation_call.in_progress",
        "response.image_generation_call.generating",
        *["response.image_generation_call.partial_image"] * k,
        "response.image_generation_call.completed", "response.output_item.done",
        "response.output_item.added", "response.content_part.added",
        *["response.output_text.delta"] * 4, "response.output_text.done",
        "response.content_part.done", "response.output_item.done", "response.completed"]
    assert events[2]["output_index"] == 0
    assert events[2]["item"] == {"id": "ig_abc123", "type": "image_generation_call",
                                 "status": "in_progress"}
    for event in events[3:6 + k]:
        assert {key: event[key] for key in ("output_index", "item_id")} == {
            "output_index": 0, "item_id": "ig_abc123"}
    partials = events[5:5 + k]
    assert [p["partial_image_index"] for p in partials] == list(range(k))
    assert all(p["partial_image_b64"] == IMAGE_B64 for p in partials)
    assert events[6 + k] == {"type": "response.output_item.done", "sequence_number": 6 + k,
                             "output_index": 0, "item": image_item()}
    text_events = events[7 + k:-1]
    assert all(e["output_index"] == 1 for e in text_events)
    assert "".join(e["delta"] for e in text_events
                   if e["type"] == "response.output_text.delta") == TEXT
    final = events[-1]["response"]
    assert final["output"][0] == image_item() and final["output"][1]["id"] == "msg_abc123"
    assert Response.model_validate(final).output_text == TEXT


def test_responses_without_the_image_tool_is_unchanged() -> None:
    reply = make_reply()
    for request in ({"model": "m", "input": "x"},
                    {"model": "m", "input": "x", "tools": [{"type": "web_search"}]}):
        events = named_events(openai_responses.build_stream({**request, "stream": True}, reply))
        assert not any("image" in e["type"] for e in events)
        assert all(e.get("output_index", 0) == 0 for e in events)
        assert [o["type"] for o in json.loads(
            openai_responses.build_response(request, reply))["output"]] == ["message"]


@pytest.mark.parametrize("value", [4, -1, "2", True, 1.5])
def test_responses_partial_images_out_of_range_is_a_request_error(value: Any) -> None:
    request = {"model": "m", "input": "x", "tools": [{**IMAGE_TOOL, "partial_images": value}]}
    with pytest.raises(RequestError) as info:
        openai_responses.validate(request)
    assert info.value.param == "tools[0].partial_images"


# --- Gemini / Vertex: inlineData ------------------------------------------------------------


def config(**fields: Any) -> dict[str, Any]:
    return {"generationConfig": fields}


@pytest.mark.parametrize("request_body", [
    config(responseModalities=["TEXT", "IMAGE"]), config(responseModalities=["image"]),
    {"generation_config": {"response_modalities": ["Text", "Image"]}},
    config(response_modalities=["IMAGE"])])
def test_gemini_image_parts(request_body: dict[str, Any]) -> None:
    body = json.loads(google.build_response(request_body, make_reply()))
    (candidate,) = body["candidates"]
    assert candidate["content"]["parts"] == [{"text": TEXT}, IMAGE_PART]
    assert candidate["finishReason"] == "STOP"
    usage = body["usageMetadata"]
    assert usage["candidatesTokenCount"] == 4 + IMAGE_TOKENS
    assert usage["totalTokenCount"] == 5 + 4 + IMAGE_TOKENS
    assert usage["candidatesTokensDetails"] == [{"modality": "TEXT", "tokenCount": 4},
                                                {"modality": "IMAGE", "tokenCount": IMAGE_TOKENS}]


@pytest.mark.parametrize("request_body", [
    config(responseModalities=["AUDIO"]), config(responseModalities=["audio", "IMAGE"]),
    {"generation_config": {"response_modalities": ["Audio"]}}])
def test_gemini_audio_part(request_body: dict[str, Any]) -> None:
    body = json.loads(google.build_response(request_body, make_reply(), vertex=True))
    (candidate,) = body["candidates"]
    assert candidate["content"]["parts"] == [AUDIO_PART]
    usage = body["usageMetadata"]
    assert (usage["candidatesTokenCount"], usage["totalTokenCount"]) == (
        AUDIO_TOKENS, 5 + AUDIO_TOKENS)
    assert usage["candidatesTokensDetails"] == [{"modality": "AUDIO", "tokenCount": AUDIO_TOKENS}]


def test_gemini_media_shapes_answer_without_the_request_asking() -> None:
    reply = make_reply()
    for shape, request_body in (("image", config(responseModalities=["IMAGE"])),
                                ("audio", config(responseModalities=["AUDIO"]))):
        assert google.build_response({}, reply, shape=shape) == \
            google.build_response(request_body, reply)
        for sse in (True, False):
            assert google.build_stream({}, reply, sse=sse, shape=shape) == \
                google.build_stream(request_body, reply, sse=sse)
    assert {"image", "audio"} <= set(google.SHAPES) & set(control.SHAPES)
    assert parse_control({"x-mock-shape": "IMAGE"}).shape == "image"
    assert parse_control({"x-mock-shape": "audio"}).shape == "audio"


def stream_both(request_body: dict[str, Any], reply: Reply, **kw: Any) -> list[dict[str, Any]]:
    """The streamed elements, checking the SSE and JSON-array encodings agree."""
    array = json.loads(b"".join(google.build_stream(request_body, reply, sse=False, **kw)))
    sse = [json.loads(p) for p in
           sse_data(google.build_stream(request_body, reply, sse=True, **kw), "\r\n\r\n")]
    assert array == sse
    return sse


@pytest.mark.parametrize("n", [1, 2])
def test_gemini_image_stream(n: int) -> None:
    request_body = config(responseModalities=["TEXT", "IMAGE"], candidateCount=n)
    events = stream_both(request_body, make_reply())
    for index in range(n):
        parts = [p for e in events for p in e["candidates"][index]["content"]["parts"]]
        assert "".join(p.get("text", "") for p in parts) == TEXT
        assert [p for p in parts if "inlineData" in p] == [IMAGE_PART]     # once, whole
        assert events[-1]["candidates"][index]["content"]["parts"] == [IMAGE_PART]
        assert [e["candidates"][index].get("finishReason") for e in events] == \
            [None] * 4 + ["STOP"]
    counts = [e["usageMetadata"]["candidatesTokenCount"] for e in events]
    assert counts == [n, 2 * n, 3 * n, 4 * n, (4 + IMAGE_TOKENS) * n]
    assert [e["usageMetadata"]["totalTokenCount"] for e in events] == [5 + c for c in counts]


def test_gemini_audio_stream_is_one_element() -> None:
    (event,) = stream_both(config(responseModalities=["AUDIO"]), make_reply())
    assert event["candidates"][0]["content"]["parts"] == [AUDIO_PART]
    assert event["candidates"][0]["finishReason"] == "STOP"
    assert event["usageMetadata"]["candidatesTokenCount"] == AUDIO_TOKENS


def test_gemini_image_stream_of_empty_text_still_finishes_with_the_image() -> None:
    events = stream_both({}, make_reply(""), shape="image")
    assert [e["candidates"][0]["content"]["parts"] for e in events] == [[{"text": ""}],
                                                                        [IMAGE_PART]]


@pytest.mark.parametrize("shape", [None, "thinking", "tool"])
def test_gemini_without_media_or_with_a_text_shape_is_unchanged(shape: str | None) -> None:
    reply = make_reply()
    for request_body in (config(responseModalities=["TEXT"]),
                         *([config(responseModalities=["IMAGE", "AUDIO"])] if shape else [])):
        assert google.build_response(request_body, reply, shape=shape) == \
            google.build_response({}, reply, shape=shape)
        for sse in (True, False):
            assert google.build_stream(request_body, reply, sse=sse, shape=shape) == \
                google.build_stream({}, reply, sse=sse, shape=shape)
    assert b"inlineData" not in google.build_response({}, reply, shape=shape)
    assert b"candidatesTokensDetails" not in google.build_response({}, reply, shape=shape)


# --- through the server, read back by the SDKs ------------------------------------------------


@pytest.fixture(scope="module")
def mock_server() -> Iterator[MockServer]:
    with MockServer() as server:
        yield server


def headers(shape: str | None = None, **extra: str) -> dict[str, str]:
    out = {"x-mock-reply": REPLY, **extra}
    if shape:
        out["x-mock-shape"] = shape
    return out


def oa(mock_server: MockServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{mock_server.url}/v1", api_key="k", max_retries=0)


MESSAGES: Any = [{"role": "user", "content": "say it"}]


def test_openai_sdk_reads_the_audio(mock_server: MockServer) -> None:
    client = oa(mock_server)
    whole = client.chat.completions.create(
        model="gpt-4o-audio-preview", messages=MESSAGES, modalities=["text", "audio"],
        audio={"voice": "alloy", "format": "wav"}, extra_headers=headers())
    with client.chat.completions.stream(
            model="gpt-4o-audio-preview", messages=MESSAGES, modalities=["text", "audio"],
            audio={"voice": "alloy", "format": "pcm16"}, extra_headers=headers()) as stream:
        streamed = stream.get_final_completion()
    for final in (whole, streamed):
        message = final.choices[0].message
        assert message.content is None and final.choices[0].finish_reason == "stop"
        assert message.audio is not None
        assert message.audio.data == AUDIO_B64 and message.audio.transcript == REPLY
        assert message.audio.id.startswith("audio_") and message.audio.expires_at > 0


@pytest.mark.parametrize("chunk", [None, "7"])
def test_openai_audio_stream_through_the_server(mock_server: MockServer,
                                                chunk: str | None) -> None:
    body = {"model": "gpt-4o-audio-preview", "messages": MESSAGES, "stream": True,
            **AUDIO_REQUEST}
    extra = {"x-mock-chunk-bytes": chunk} if chunk else {}
    r = httpx.post(f"{mock_server.url}/v1/chat/completions", json=body,
                   headers=headers(**extra), timeout=10)
    audio = [c["choices"][0]["delta"].get("audio", {}) for c in chat_chunks(r.content)]
    assert "".join(a.get("data", "") for a in audio) == AUDIO_B64
    assert "".join(a.get("transcript", "") for a in audio) == REPLY


def test_openai_sdk_reads_the_image_generation_call(mock_server: MockServer) -> None:
    client = oa(mock_server)
    tools: Any = [{"type": "image_generation", "partial_images": 2}]
    whole = client.responses.create(model="gpt-5", input="draw", tools=tools,
                                    extra_headers=headers())
    partials = []
    with client.responses.stream(model="gpt-5", input="draw", tools=tools,
                                 extra_headers=headers()) as stream:
        for event in stream:
            if event.type == "response.image_generation_call.partial_image":
                partials.append(event.partial_image_b64)
        streamed = stream.get_final_response()
    assert partials == [IMAGE_B64, IMAGE_B64]
    for final in (whole, streamed):
        item = final.output[0]
        assert item.type == "image_generation_call" and item.result == IMAGE_B64
        assert final.output_text == REPLY


def test_responses_bad_partial_images_is_a_400(mock_server: MockServer) -> None:
    body = {"model": "gpt-5", "input": "x", "tools": [{**IMAGE_TOOL, "partial_images": 9}]}
    r = httpx.post(f"{mock_server.url}/v1/responses", json=body, timeout=10)
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "tools[0].partial_images"


def gm(mock_server: MockServer) -> genai.Client:
    return genai.Client(api_key="k", http_options=genai_types.HttpOptions(
        base_url=mock_server.url, headers=headers()))


def gm_config(shape: str | None = None, **extra: Any) -> genai_types.GenerateContentConfig:
    return genai_types.GenerateContentConfig(
        http_options=genai_types.HttpOptions(headers=headers(shape)), **extra)


@pytest.mark.parametrize(("shape", "modalities"), [
    (None, ["TEXT", "IMAGE"]), ("image", None)])
def test_gemini_sdk_reads_the_image(mock_server: MockServer, shape: str | None,
                                    modalities: list[str] | None) -> None:
    client = gm(mock_server)
    cfg = gm_config(shape, response_modalities=modalities)
    whole = client.models.generate_content(model="gemini-2.5-flash-image", contents="draw",
                                           config=cfg)
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash-image",
                                                        contents="draw", config=cfg))
    for parts in (whole.candidates[0].content.parts,
                  [p for c in chunks for p in c.candidates[0].content.parts]):
        assert "".join(p.text or "" for p in parts) == REPLY
        (blob,) = [p.inline_data for p in parts if p.inline_data]
        assert blob.mime_type == "image/png" and blob.data == base64.b64decode(IMAGE_B64)
    assert whole.usage_metadata.candidates_token_count == len(REPLY.split()) + IMAGE_TOKENS


def test_gemini_sdk_reads_the_audio(mock_server: MockServer) -> None:
    client = gm(mock_server)
    cfg = gm_config(response_modalities=["AUDIO"])
    whole = client.models.generate_content(model="gemini-2.5-flash-preview-tts",
                                           contents="say it", config=cfg)
    (streamed,) = client.models.generate_content_stream(
        model="gemini-2.5-flash-preview-tts", contents="say it", config=cfg)
    for response in (whole, streamed):
        (part,) = response.candidates[0].content.parts
        assert part.inline_data.mime_type == "audio/L16;codec=pcm;rate=24000"
        assert part.inline_data.data == base64.b64decode(AUDIO_B64)


@pytest.mark.parametrize("path", [
    "/v1beta/models/gemini-2.5-flash-image:streamGenerateContent",
    "/v1beta/models/gemini-2.5-flash-image:streamGenerateContent?alt=sse",
    "/v1/projects/p/locations/l/publishers/google/models/g:streamGenerateContent?alt=sse"])
@pytest.mark.parametrize("chunk", [None, "5"])
def test_gemini_media_stream_through_the_server(mock_server: MockServer, path: str,
                                                chunk: str | None) -> None:
    body = {"contents": [{"parts": [{"text": "draw"}]}],
            "generationConfig": {"responseModalities": ["TEXT", "IMAGE"]}}
    extra = {"x-mock-chunk-bytes": chunk} if chunk else {}
    r = httpx.post(mock_server.url + path, json=body, headers=headers(**extra), timeout=10)
    events = ([json.loads(p) for p in sse_data(r.content, "\r\n\r\n")] if "alt=sse" in path
              else json.loads(r.content))
    parts = [p for e in events for p in e["candidates"][0]["content"]["parts"]]
    assert "".join(p.get("text", "") for p in parts) == REPLY
    assert [p for p in parts if "inlineData" in p] == [IMAGE_PART]


@pytest.mark.parametrize(("path", "shape"), [
    ("/v1/chat/completions", "image"), ("/v1/chat/completions", "audio"),
    ("/v1/messages", "image"), ("/v1/messages", "audio")])
def test_media_shapes_are_gemini_only(mock_server: MockServer, path: str, shape: str) -> None:
    body = {"model": "m", "max_tokens": 5, "messages": MESSAGES}
    r = httpx.post(mock_server.url + path, json=body, headers={"x-mock-shape": shape},
                   timeout=10)
    assert r.status_code == 400 and "x-mock-shape" in r.text


def test_binascii_rejects_a_broken_payload() -> None:
    """The strict decode the tests use does catch a payload cut off mid-quantum."""
    with pytest.raises(binascii.Error):
        decodes(IMAGE_B64[:-1])
