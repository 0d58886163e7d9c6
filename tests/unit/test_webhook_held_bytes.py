"""Found by review (resource exhaustion): a webhook stream guard held events by count
(`MAX_HELD_EVENTS`, 512), never by size. Once a word of text is held (shorter than a
segment), every later event without text is held too, each up to `max_event_bytes`, with
its raw bytes, its decoded data and its parsed JSON: an upstream that sends such events
(numbers, an allowed image, any field the guard does not read) makes one stream hold
about 512 x max_event_bytes raw, and several times that parsed (measured: ~3 GB RSS for
one stream at the default 1 MiB)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from extproc.guards.webhook import PASS
from extproc.guards.webhook_stream import WebhookStreamGuard

MAX_EVENT = 64 * 1024


def _chunk(content: str, pad: int = 0) -> bytes:
    doc: dict[str, Any] = {"id": "c", "object": "chat.completion.chunk", "created": 1,
                           "model": "m", "choices": [{"index": 0, "delta": {"content": content},
                                                      "finish_reason": None}]}
    if pad:
        doc["x"] = [0] * (pad // 2)     # numbers: nothing a guard reads
    return b"data: " + json.dumps(doc, separators=(",", ":")).encode() + b"\n\n"


def test_held_bytes_are_bounded_not_only_the_held_event_count() -> None:
    async def hook(texts: list[Any]) -> Any:
        return PASS

    async def run() -> int:
        t = WebhookStreamGuard("openai", "dlp", hook, 200, False, MAX_EVENT,
                               lambda g, o: None)
        await t.feed_async(_chunk("Thinking"))        # a word shorter than a segment: held
        big = _chunk("", MAX_EVENT - 200)             # just under the event limit, no text
        most = 0
        for _ in range(400):
            await t.feed_async(big)
            most = max(most, t.held_bytes)
        return most

    most = asyncio.run(run())
    # a bound of a few events' worth; today it reaches ~400 events' worth (25 MiB here,
    # ~500 MiB raw and ~3 GB parsed at the default max_event_bytes of 1 MiB)
    assert most <= 8 * MAX_EVENT, f"one stream held {most / 2**20:.1f} MiB of events"
