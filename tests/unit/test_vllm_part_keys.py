"""Found by the differential-parsing review: vLLM reads a chat content part by the media keys
it carries, not by its `type`, whenever the part has a `uuid` (or has no `type` at all):
`vllm/entrypoints/chat_utils.py::_parse_chat_message_content_mm_part` takes the
`type in MM_PARSER_MAP and uuid is None` branch only without a uuid, and otherwise returns
"image_url" / "image_embeds" / "audio_embeds" / "prompt_embeds" / "audio_url" /
"input_audio" / "video_url" for the first of those keys the part holds. vLLM's pydantic
request model keeps those keys on a `type: text` part (its uuid feature relies on it).

The gateway reads a `text` / `refusal` part by its type alone, so

* `{"type": "text", "text": "see", "uuid": "u", "image_url": "https://..."}` is an image
  (or a video, audio, prompt embeddings) that the model gets and no guard reads, passed on a
  guarded route whose guards do not allow it (default deny: it should be refused, as the
  same input written `{"type": "image_url", ...}` is);
* the same part with `video_url` / `audio_url`, and a part with no type at all
  (`{"video_url": "https://..."}`, vLLM's `CustomChatCompletionContentSimpleVideoParam`),
  passes the stored-context refusal of a budget route, which refuses the typed spelling
  (`{"type": "video_url", ...}`), and, in an assistant message, the guards' refusal too.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.unit.test_stored_files import TOKENS, _send
from tests.unit.test_unread_inputs import CHAT, chat, config, run

Body = dict[str, Any]

#: parts vLLM loads as media (the kind it loads) that the gateway reads as text
DISGUISED = [
    ({"type": "text", "text": "see", "uuid": "u1", "image_url": "https://x.test/a.png"},
     "image"),
    ({"type": "text", "text": "see", "uuid": "u1", "video_url": "https://x.test/a.mp4"},
     "video"),
    ({"type": "text", "text": "see", "uuid": "u1", "audio_url": "https://x.test/a.wav"},
     "audio"),
    ({"type": "refusal", "refusal": "no", "uuid": "u1",
      "video_url": {"url": "https://x.test/a.mp4"}}, "video"),
    # prompt embeddings (a server started with --enable-prompt-embeds): a prompt no guard reads
    ({"type": "text", "text": "see", "uuid": "u1", "prompt_embeds": None, "data": "AAAA"},
     "prompt embeddings"),
    ({"type": "text", "text": "see", "uuid": "u1", "prompt_embeds": "AAAA"},
     "prompt embeddings alone"),
]


@pytest.mark.parametrize(("part", "kind"), DISGUISED, ids=[k for _, k in DISGUISED])
def test_a_text_part_with_a_uuid_and_a_media_key_is_refused_on_a_guarded_route(
        part: Body, kind: str) -> None:
    sent, refused = run(config(), "openai", CHAT, chat(part))
    assert refused is not None, f"a {kind} vLLM loads went upstream unread: {sent[:200]!r}"
    assert refused[0] == 400


@pytest.mark.parametrize("role", ["user", "assistant"])
@pytest.mark.parametrize("part", [
    {"type": "text", "text": "see", "uuid": "u1", "video_url": "https://x.test/a.mp4"},
    {"video_url": "https://x.test/a.mp4"},
    {"audio_url": "https://x.test/a.wav"},
], ids=["text-with-uuid", "typeless-video", "typeless-audio"])
def test_a_video_or_audio_by_url_in_another_spelling_is_refused_on_a_budget_route(
        part: Body, role: str) -> None:
    """The typed spelling `{"type": "video_url", "video_url": {"url": ...}}` is refused here
    (`test_stored_files`); vLLM fetches these the same."""
    body = chat(part, role=role)
    reply, _ = asyncio.run(_send("openai", body, rate_limits=TOKENS))
    assert reply is not None, "a video/audio by URL went on unreserved"
    assert reply[3] == "extproc_stored_context"


@pytest.mark.parametrize("part", [{"video_url": "https://x.test/a.mp4"},
                                  {"audio_url": "https://x.test/a.wav"}])
def test_a_typeless_media_part_in_an_assistant_message_is_refused_on_a_guarded_route(
        part: Body) -> None:
    """`{"type": "video_url", ...}` in an assistant message is refused (a video); vLLM
    loads the typeless one in any role the same."""
    _, refused = run(config(), "openai", CHAT, chat(part, role="assistant"))
    assert refused is not None and refused[0] == 400


@pytest.mark.parametrize("part", [
    {"type": "input_text", "text": "see", "uuid": "u1", "image_url": "https://x.test/a.png"},
    {"type": "input_text", "text": "see", "uuid": "u1", "video_url": "https://x.test/a.mp4"},
], ids=["image", "video"])
def test_a_responses_text_part_with_a_uuid_and_a_media_key_is_refused_on_a_guarded_route(
        part: Body) -> None:
    """vLLM's Responses API turns input items into chat messages and parses their parts
    with the same `_parse_chat_message_content_mm_part` (`input_text` is in its map);
    pydantic keeps the extra keys of an `input_text` part (checked with openai's
    `ResponseInputItemParam`)."""
    body = {"model": "m", "input": [{"role": "user", "content": [part]}]}
    _, refused = run(config(), "openai", "/v1/responses", body)
    assert refused is not None and refused[0] == 400


# --- found by the review of that fix: a null media key is no media (vLLM reads a key only
# when it has a value); a client writing unset fields as null sends such text parts

@pytest.mark.parametrize(("path", "body"), [
    (CHAT, {"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "hi", "image_url": None, "input_audio": None}]}]}),
    ("/v1/responses", {"model": "m", "input": [{"role": "user", "content": [
        {"type": "input_text", "text": "hi", "image_url": None}]}]}),
], ids=["chat", "responses"])
def test_a_text_part_with_null_media_keys_is_read_as_text(path: str, body: Body) -> None:
    _, refused = run(config(), "openai", path, body)
    assert refused is None, refused


def test_a_null_video_url_is_no_stored_context() -> None:
    body = chat({"type": "text", "text": "hi", "video_url": None})
    reply, _ = asyncio.run(_send("openai", body, rate_limits=TOKENS))
    assert reply is None, reply
