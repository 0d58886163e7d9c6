"""Found by the review of a fix (now fixed): `media_keys` still counts a null media key
beside a `uuid` (vLLM's
branch that reads a part by its keys, and takes `{"video_url": null, "uuid": u}` as the
video it cached under `u`: media the server stored earlier, that never crosses the
gateway), but `limits.stored._openai_part` now skips every null value, uuid or not. Before
30139df such a part was stored context on a budget route (refused, 400); now it is admitted
with nothing reserved for the video vLLM reads from its cache."""

from __future__ import annotations

import asyncio

import pytest

from extproc.providers.unread import media_keys
from tests.unit.test_stored_files import TOKENS, _send
from tests.unit.test_unread_inputs import chat


@pytest.mark.parametrize("part", [
    {"type": "video_url", "video_url": None, "uuid": "cached-video-1"},
    {"type": "text", "text": "describe it", "video_url": None, "uuid": "cached-video-1"},
    {"type": "audio_url", "audio_url": None, "uuid": "cached-audio-1"},
], ids=["video-type", "text-type", "audio"])
def test_a_cached_media_reference_by_uuid_is_stored_context(part: dict) -> None:
    assert media_keys(part), "the guards' reading takes it for media"
    reply, _ = asyncio.run(_send("openai", chat(part), rate_limits=TOKENS))
    assert reply is not None, "admitted on a budget route with nothing reserved for it"
