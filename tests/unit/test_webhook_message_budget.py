"""The webhook calls one ext_proc message makes share one budget (`webhook.MESSAGE_BUDGET_MS`):
found by review, one streamed reply chunk holding several segments made a call each, one
after another, each within its own `timeout_ms`, 9 s in all past Envoy's 5 s message
timeout, so the client got Envoy's reset instead of what the guard's fail mode promised.
Time is a fake clock here: the test counts calls, it measures nothing."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from extproc.guards import webhook
from extproc.guards.webhook import MESSAGE_BUDGET_MS, WebhookError
from extproc.guards.webhook_stream import WebhookStreamGuard
from extproc.policy import MESSAGE_STARTED, run_transforms_async


def event(text: str) -> bytes:
    return b"data: " + json.dumps({"id": "c", "object": "chat.completion.chunk", "created": 1,
                                   "model": "m", "choices": [{"index": 0, "delta": {
                                       "content": text}, "finish_reason": None}]}
                                  ).encode() + b"\n\n"


@pytest.mark.parametrize("fail_open", [True, False])
def test_a_messages_calls_stop_when_its_budget_is_spent(monkeypatch: pytest.MonkeyPatch,
                                                       fail_open: bool) -> None:
    clock = [1000.0]
    monkeypatch.setattr(webhook, "_clock", lambda: clock[0])
    calls: list[int] = []

    async def slow(_texts: Any) -> Any:   # waits out a 3 s timeout, then fails
        calls.append(1)
        clock[0] += 3.0
        raise WebhookError("no answer within 3000 ms")

    async def run() -> bytes:
        MESSAGE_STARTED.set(clock[0])   # (as the exchange sets it for each message)
        guard = WebhookStreamGuard("openai", "dlp", slow, 50, fail_open, 1 << 20,
                                   lambda _g, _o: None)
        return await guard.feed_async(b"".join(event("word " * 10) for _ in range(12)))

    out = asyncio.run(run())
    assert MESSAGE_BUDGET_MS == 4000
    if fail_open:
        # 4 s for the message: the first call (3 s), the second cut at what is left (1 s),
        # the later segments failed open at once (with no budget left, no call)
        assert len(calls) == 2, calls
        assert out.count(b"data: ") == 12            # every event let through, unchanged
    else:
        assert len(calls) == 1 and b"unavailable" in out and b"word" not in out


def test_the_guards_and_the_end_of_one_message_share_its_time(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by the review of the first budget: each guard, and a last message's feed and
    finish, started a budget of their own (two fail-open guards of 2 s each waited 8 s on
    one chunk). The message's arrival (`policy.MESSAGE_STARTED`, set by the exchange) is
    the one start every call of it counts from."""
    clock = [1000.0]
    monkeypatch.setattr(webhook, "_clock", lambda: clock[0])
    calls: list[str] = []

    def slow(name: str) -> Any:
        async def check(_texts: Any) -> Any:   # waits out a 2 s timeout, then fails
            calls.append(name)
            clock[0] += 2.0
            raise WebhookError("no answer within 2000 ms")
        return check

    async def run() -> bytes:
        MESSAGE_STARTED.set(clock[0])
        guards = [WebhookStreamGuard("openai", name, slow(name), 50, True, 1 << 20,
                                     lambda _g, _o: None) for name in ("a", "b")]
        chunk = b"".join(event("word " * 10) for _ in range(12))
        return await run_transforms_async(guards, chunk, True)

    out = asyncio.run(run())
    assert calls == ["a", "a"], calls          # 4 s: two calls of the first guard, no more
    assert out.count(b"data: ") == 12          # failed open: every event through, unchanged
