"""Replies in media no guard reads (speech, a generated image), through the real Envoy with
the official SDKs as clients and the mock answering as the providers do.

On a route whose guards read replies, a request for such a reply is refused with a 400 in
the SDK's own format before the provider is asked; a reply carrying one unasked (an image
model's default) is refused whole, or ends its stream the SDK's way. A route whose guards
let the kind pass (`allow_unread`) delivers the media byte for byte and still masks the
reply's texts."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from extproc.mock.common import AUDIO_B64, IMAGE_B64
from tests.harness import Gateway, Mock, add_route

pytestmark = pytest.mark.envoy

EMAIL = "john.doe@example.com"
MAIL = {"x-mock-reply": f"Write to {EMAIL} today."}


def config() -> dict[str, Any]:
    pii = {"detectors": ["email"], "action": "mask"}
    guards = {"pii": pii, "pii-media": {**pii, "allow_unread": ["image", "audio"]}}
    routes = [{"name": f"{prefix}-{p}", "provider": p, "guards": [guard]}
              for prefix, guard in (("g", "pii"), ("m", "pii-media"))
              for p in ("openai", "gemini")]
    return {"guards": guards, "routes": routes}


def adjust(doc: dict[str, Any]) -> None:
    for prefix in ("g", "m"):
        for p in ("openai", "gemini"):
            add_route(doc, f"/{prefix}-{p}/", p, f"{prefix}-{p}")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    gateway = Gateway(tmp_path_factory.mktemp("guard-media"), config(), mock=mock,
                      adjust=adjust)
    yield gateway
    gateway.close()


def chat(gw: Gateway, prefix: str, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/{prefix}-openai/v1", api_key="k", max_retries=0,
                         default_headers={**MAIL, **headers})


def gemini(gw: Gateway, prefix: str, **headers: str) -> Any:
    from google import genai
    from google.genai import types

    return genai.Client(api_key="k", http_options=types.HttpOptions(
        base_url=f"{gw.url}/{prefix}-gemini", headers={**MAIL, **headers}))


def not_sent(gw: Gateway, marker: str) -> None:
    last = gw.mock.last()
    assert last is None or marker not in last["body"]


def test_a_request_for_speech_or_images_is_refused_unless_allowed(gw: Gateway) -> None:
    from google.genai import errors, types

    marker = uuid.uuid4().hex
    audio = {"modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "wav"}}
    with pytest.raises(openai.BadRequestError) as exc:
        chat(gw, "g").chat.completions.create(
            model="gpt-4o-audio-preview", messages=[{"role": "user", "content": marker}],
            **audio)  # type: ignore[call-overload]
    assert "the reply would carry audio, which guard 'pii' cannot read" in str(exc.value)
    not_sent(gw, marker)
    with pytest.raises(openai.BadRequestError) as exc:
        chat(gw, "g").responses.create(model="gpt-4.1", input=marker,
                                       tools=[{"type": "image_generation"}])
    assert "the reply would carry an image" in str(exc.value)
    not_sent(gw, marker)
    client = gemini(gw, "g")   # kept: a client is closed once collected
    with pytest.raises(errors.ClientError) as gexc:
        client.models.generate_content(
            model="gemini-2.5-flash-image", contents=marker,
            config=types.GenerateContentConfig(response_modalities=["TEXT", "IMAGE"]))
    assert gexc.value.code == 400 and "the reply would carry an image" in str(gexc.value)
    not_sent(gw, marker)

    # allowed: the audio arrives byte for byte, its transcript masked
    reply = chat(gw, "m").chat.completions.create(
        model="gpt-4o-audio-preview", messages=[{"role": "user", "content": "hi"}],
        **audio)  # type: ignore[call-overload]
    said = reply.choices[0].message.audio
    assert said is not None and said.data == AUDIO_B64
    assert said.transcript == "Write to <EMAIL> today."
    stream = chat(gw, "m", **{"x-mock-chunk-bytes": "97"}).chat.completions.create(
        model="gpt-4o-audio-preview", messages=[{"role": "user", "content": "hi"}],
        stream=True, **audio)  # type: ignore[call-overload]
    data, transcript = "", ""
    for chunk in stream:
        for choice in chunk.choices:
            piece = getattr(choice.delta, "audio", None)   # the SDK keeps it untyped
            data += getattr(piece, "data", None) or ""
            transcript += getattr(piece, "transcript", None) or ""
    assert data == AUDIO_B64 and transcript == "Write to <EMAIL> today."


def test_a_generated_image_passes_an_allowing_route_byte_for_byte(gw: Gateway) -> None:
    from google.genai import types

    made = chat(gw, "m").responses.create(model="gpt-4.1", input="draw",
                                          tools=[{"type": "image_generation"}])
    [image] = [item for item in made.output if item.type == "image_generation_call"]
    assert image.result == IMAGE_B64
    assert made.output_text == "Write to <EMAIL> today."
    partial = [event.partial_image_b64 for event in chat(gw, "m").responses.create(
        model="gpt-4.1", input="draw", stream=True,
        tools=[{"type": "image_generation", "partial_images": 1}])
        if event.type == "response.image_generation_call.partial_image"]
    assert partial == [IMAGE_B64]
    client = gemini(gw, "m")
    reply = client.models.generate_content(
        model="gemini-2.5-flash-image", contents="draw",
        config=types.GenerateContentConfig(response_modalities=["TEXT", "IMAGE"]))
    parts = reply.candidates[0].content.parts
    assert parts[0].text == "Write to <EMAIL> today."
    assert parts[1].inline_data.data == base64.b64decode(IMAGE_B64)


def test_an_image_sent_unasked_is_refused_whole_or_ends_the_stream(gw: Gateway) -> None:
    """An image model answers with an image though the request did not ask: the reply
    itself is checked."""
    from google.genai import errors

    client = gemini(gw, "g", **{"x-mock-shape": "image"})
    with pytest.raises(errors.ClientError) as gexc:
        client.models.generate_content(model="gemini-2.5-flash-image", contents="draw")
    assert gexc.value.code == 400
    assert "the reply carries an image, which guard 'pii' cannot read" in str(gexc.value)
    assert IMAGE_B64 not in str(gexc.value)
    seen: list[Any] = []
    client = gemini(gw, "g", **{"x-mock-shape": "image", "x-mock-chunk-bytes": "64"})
    with pytest.raises(errors.APIError) as sexc:
        for chunk in client.models.generate_content_stream(model="gemini-2.5-flash-image",
                                                           contents="draw"):
            seen.append(chunk)
    assert "the reply carries an image" in str(sexc.value)
    assert seen and seen[-1].candidates[0].finish_reason.name == "SAFETY"
    assert not any(p.inline_data for c in seen for p in c.candidates[0].content.parts or [])
    text = "".join(c.text or "" for c in seen)
    assert EMAIL not in text
    # the same image on the allowing route, streamed
    client = gemini(gw, "m", **{"x-mock-shape": "image"})
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-flash-image",
                                                        contents="draw"))
    images = [p.inline_data.data for c in chunks for p in c.candidates[0].content.parts or []
              if p.inline_data]
    assert images == [base64.b64decode(IMAGE_B64)]
