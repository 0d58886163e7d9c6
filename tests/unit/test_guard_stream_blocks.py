"""Adjacent Anthropic content blocks of one kind are one text to a client (the SDK's
`get_final_text()` joins a message's text blocks), so a stream guard reads them as one
(`guards.block_join`): a value split exactly at a block's end was let go in clear before
(found by review: `jane.roe@` at one text block's end and `example.org` at the next's start
passed a stream, while the same message whole was masked). For any blocks and any chunking
of the stream, each block's text is what the whole-reply rule gives it, the events stay a
valid Messages stream (every block started, its deltas, stopped, in order), and no chunk
carries any part of a value the guard masks."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from extproc.guards.joined import Cut
from extproc.guards.reframe import SSEMaskingReframer
from extproc.guards.scanner import Scanner, builtin
from extproc.guards.stream import StreamMasker
from extproc.guards.webhook import DEFAULT_PLACEHOLDER, split_masked

SCANNER = Scanner(builtin(["email", "aws_access_key"]))
DELTA = {"text": "text_delta", "thinking": "thinking_delta"}


def guard(action: str = "mask") -> SSEMaskingReframer:
    return SSEMaskingReframer("anthropic", lambda: [StreamMasker(SCANNER, action=action)],
                              1 << 20)


def sse(doc: dict[str, Any]) -> bytes:
    return f"event: {doc['type']}\ndata: {json.dumps(doc)}\n\n".encode()


CITATION = {"type": "char_location", "cited_text": "the doc says hi", "document_index": 0,
            "document_title": "doc", "start_char_index": 0, "end_char_index": 15}


def stream(blocks: list[tuple[str, list[str]]], pings: bool = False,
           cited: bool = False) -> bytes:
    """A Messages stream of `blocks`: (kind, the block's deltas), kind text, thinking or
    tool_use; `cited`: each text block's deltas follow a citation, as Anthropic streams a
    cited block."""
    out = [sse({"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
        "content": [], "stop_reason": None, "usage": {"input_tokens": 5, "output_tokens": 1}}})]
    for i, (kind, deltas) in enumerate(blocks):
        if kind == "tool_use":
            out.append(sse({"type": "content_block_start", "index": i, "content_block": {
                "type": "tool_use", "id": f"toolu_{i}", "name": "f", "input": {}}}))
            out.append(sse({"type": "content_block_delta", "index": i, "delta": {
                "type": "input_json_delta", "partial_json": "{}"}}))
        else:
            out.append(sse({"type": "content_block_start", "index": i,
                            "content_block": {"type": kind, kind: ""}}))
            if cited and kind == "text":
                out.append(sse({"type": "content_block_delta", "index": i, "delta": {
                    "type": "citations_delta", "citation": CITATION}}))
            out += [sse({"type": "content_block_delta", "index": i,
                         "delta": {"type": DELTA[kind], kind: d}}) for d in deltas]
        out.append(sse({"type": "content_block_stop", "index": i}))
        if pings:
            out.append(sse({"type": "ping"}))
    out.append(sse({"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                    "usage": {"output_tokens": 9}}))
    out.append(sse({"type": "message_stop"}))
    return b"".join(out)


def run(data: bytes, cuts: list[int], action: str = "mask") -> list[bytes]:
    g = guard(action)
    points = sorted({min(c, len(data)) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    return [g.feed(c) for c in chunks] + [g.finish()]


def blocks_read(out: bytes) -> list[tuple[str, str]]:
    """The blocks a client builds from the stream (kind, text), checking that each is
    started, given deltas and stopped, in order."""
    got: dict[int, list[Any]] = {}
    order: list[int] = []
    for raw in out.split(b"\n\n"):
        if not raw.strip():
            continue
        lines = dict(line.split(": ", 1) for line in raw.decode().split("\n"))
        doc = json.loads(lines["data"])
        assert lines["event"] == doc["type"]
        if doc["type"] == "content_block_start":
            assert doc["index"] not in got
            block = doc["content_block"]
            got[doc["index"]] = [block["type"], block.get(block["type"], ""), False]
            order.append(doc["index"])
        elif doc["type"] == "content_block_delta":
            state = got[doc["index"]]
            assert not state[2], "a delta after its block's stop"
            delta = doc["delta"]
            if delta["type"] not in ("input_json_delta", "citations_delta"):
                state[1] += delta[state[0]]
        elif doc["type"] == "content_block_stop":
            got[doc["index"]][2] = True
    assert order == sorted(order) and all(state[2] for state in got.values())
    return [(got[i][0], got[i][1]) for i in order]


def expected(blocks: list[tuple[str, list[str]]]) -> list[tuple[str, str]]:
    """The whole-reply rule over each run of adjacent blocks of one kind: each block masked
    on its own, then the run joined."""
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(blocks):
        kind = blocks[i][0]
        j = i
        while j < len(blocks) and blocks[j][0] == kind:
            j += 1
        raw = ["".join(d) for _, d in blocks[i:j]]
        texts = [SCANNER.mask(t) for t in raw]
        if kind != "tool_use":
            joined = "".join(texts)
            spans = SCANNER.find(joined)
            masked = split_masked(texts, [Cut(s.start, s.end, SCANNER.mask(
                joined[s.start:s.end], [s.__class__(0, s.end - s.start, s.detector)]))
                for s in sorted(spans, key=lambda s: s.start)])
            texts = [m or (DEFAULT_PLACEHOLDER if t else "") for t, m in zip(raw, masked,
                                                                          strict=True)]
        out += [(kind, "" if kind == "tool_use" else t) for t in texts]
        i = j
    return out


TEXT = st.text(st.sampled_from("ab.@x- AKIA0123456789"), max_size=12)
BLOCK = st.tuples(st.sampled_from(["text", "text", "thinking", "tool_use"]),
                  st.lists(TEXT, max_size=3))


@given(blocks=st.lists(BLOCK, min_size=1, max_size=5), pings=st.booleans(),
       cited=st.booleans(), cuts=st.lists(st.integers(0, 3000), max_size=8))
@example(blocks=[("text", ["write to jane.roe@"]), ("text", ["example.org now"])],
         pings=False, cited=False, cuts=[])
@example(blocks=[("text", ["write to jane.roe@"]), ("text", ["example.org now"])],
         pings=False, cited=True, cuts=[])   # (found by review: a citation ended the join)
@example(blocks=[("text", ["x jane@"]), ("text", ["exa"]), ("text", ["mple.org y"])],
         pings=True, cited=False, cuts=[400, 700])
@example(blocks=[("thinking", ["key AKIAIOSF"]), ("thinking", ["ODNN7EXAMPLE"]),
                 ("text", ["ok"])], pings=False, cited=False, cuts=[])
@example(blocks=[("text", ["AKIAIOSFODNN7EXAMPLE"]), ("text", ["fine 1. "])],
         pings=False, cited=False, cuts=[])   # (found by hypothesis: joined, no key)
def test_adjacent_blocks_of_a_kind_are_masked_as_one_text(
        blocks: list[tuple[str, list[str]]], pings: bool, cited: bool,
        cuts: list[int]) -> None:
    data = stream(blocks, pings, cited)
    out = b"".join(run(data, cuts))
    assert blocks_read(out) == expected(blocks)


def test_a_value_split_at_a_block_boundary_never_goes_out() -> None:
    data = stream([("text", ["write to jane.roe@"]), ("text", ["example.org now"])])
    for cut in range(len(data)):
        out = b"".join(run(data, [cut]))
        assert b"jane" not in out and b"example.org" not in out
        assert blocks_read(out) == [("text", "write to <EMAIL>"), ("text", " now")]


def test_a_reject_guard_refuses_a_value_split_at_a_block_boundary() -> None:
    data = stream([("text", ["the key AKIAIOSF"]), ("text", ["ODNN7EXAMPLE, done"])])
    out = b"".join(run(data, [], action="reject"))
    assert b"AKIA" not in out and b"ODNN" not in out
    assert b'"stop_reason": "refusal"' in out or b'"stop_reason":"refusal"' in out


def test_a_reject_guard_refuses_a_value_split_before_a_cited_block() -> None:
    data = stream([("text", ["the key AKIAIOSF"]), ("text", ["ODNN7EXAMPLE, done"])],
                  cited=True)
    out = b"".join(run(data, [], action="reject"))
    assert b"AKIA" not in out and b"ODNN" not in out and b"refusal" in out


def _delta(index: int, text: str, **extra: str) -> bytes:
    return sse({"type": "content_block_delta", "index": index,
                "delta": {"type": "text_delta", "text": text}, **extra})


def _opened(g: SSEMaskingReframer, head: str) -> bytes:
    """A message whose first text block ends with `head`, and the next text block started."""
    out = g.feed(stream([("text", [head])])[:-1].rsplit(b"event: message_delta", 1)[0])
    return out + g.feed(sse({"type": "content_block_start", "index": 1,
                             "content_block": {"type": "text", "text": ""}}))


def test_what_is_held_between_two_blocks_is_bounded() -> None:
    """Found by review: an upstream padding each event of the next block with a field no
    guard reads was held whole until the boundary was placed (gigabytes for a private-key
    guard). Past four times `max_event_bytes` (at least 4 MiB) the stream ends refused,
    nothing of the value sent."""
    g = SSEMaskingReframer("anthropic", lambda: [StreamMasker(SCANNER)], 1 << 18)
    out = _opened(g, "write to jane.roe@")
    fed = 0
    for _ in range(40):
        fed += 1
        out += g.feed(_delta(1, "e", pad="p" * 200_000))
        if g.stopped:
            break
    assert fed == 21   # 4 MiB held, and one event more
    assert g.stopped and b"more events than the guards hold" in out
    assert b"jane" not in out and g.held_blocks is None   # (what it held, dropped)


def test_a_ping_goes_out_at_once_while_a_block_end_is_held() -> None:
    g = guard()
    _opened(g, "write to jane.roe@")
    ping = sse({"type": "ping"})
    assert g.held_blocks is not None and g.held_blocks.holding
    assert g.feed(ping) == ping


def test_a_block_wholly_inside_a_value_is_never_left_empty() -> None:
    # found by review: a citation after the second block's text finished the chain there,
    # and the block, all of whose text was the address's rest, went out empty
    g = guard()
    out = _opened(g, "write to jane.roe@")
    out += g.feed(_delta(1, "example.org"))
    out += g.feed(sse({"type": "content_block_delta", "index": 1, "delta": {
        "type": "citations_delta", "citation": CITATION}}))
    out += g.feed(sse({"type": "content_block_stop", "index": 1}))
    out += g.feed(b"event: message_stop" + stream([]).split(b"event: message_stop", 1)[1])
    out += g.finish()
    assert [text for _, text in blocks_read(out)] == ["write to <EMAIL>", "<REDACTED>"]


def test_blocks_of_another_kind_between_are_read_apart() -> None:
    # a tool's use between two text blocks: the first one's held text goes out at its stop
    data = stream([("text", ["mail jane@"]), ("tool_use", []), ("text", ["example.org"])])
    out = run(data, [])
    assert blocks_read(b"".join(out)) == expected(
        [("text", ["mail jane@"]), ("tool_use", []), ("text", ["example.org"])])


def test_a_webhook_guard_gets_the_block_before_as_context() -> None:
    """A webhook guard reads a stream in segments, each with what was delivered before it as
    context; a block's first segment gets the last block of its kind's (the SDK joins
    them), so a value split between two blocks is seen whole."""
    from extproc.guards.webhook import Text, Verdict
    from extproc.guards.webhook_stream import WebhookStreamGuard
    calls: list[list[Text]] = []

    async def hook(texts: list[Text]) -> Verdict:
        calls.append(texts)
        return Verdict("pass")

    async def go() -> None:
        g = WebhookStreamGuard("anthropic", "dlp", hook, 200, False, 1 << 20,
                               lambda guard, outcome: None)
        await g.feed_async(stream([("text", ["write to jane.roe@"]), ("tool_use", []),
                                   ("text", ["example.org now"])]))
        await g.finish_async()

    asyncio.run(go())
    texts = [t for call in calls for t in call if t.text]
    assert [(t.text, t.context) for t in texts if "example.org" in t.text] == [
        ("example.org now", "write to jane.roe@")]


def test_a_block_stopping_texts_of_two_kinds_is_refused() -> None:
    # no provider writes it; joined, the first kind's held text would be lost
    g = guard()
    out = g.feed(stream([("text", ["x"])]).split(b"event: content_block_delta", 1)[0])
    out += g.feed(sse({"type": "content_block_delta", "index": 0, "delta": {
        "type": "text_delta", "text": "write to jane@", "thinking": "key AKIA"}}))
    out += g.feed(sse({"type": "content_block_stop", "index": 0}))
    out += g.finish()
    assert g.stopped and b"jane" not in out and b"AKIA" not in out


@pytest.mark.parametrize("stray", [
    sse({"type": "content_block_start", "index": 5, "content_block": {
        "type": "tool_use", "id": "toolu_5", "name": "f", "input": {}}}),
    sse({"type": "content_block_delta", "index": 1, "delta": {
        "type": "input_json_delta", "partial_json": "{}"}}),
    sse({"type": "content_block_delta", "index": 1, "delta": {
        "type": "thinking_delta", "thinking": "hm"}}),
], ids=["another-block", "json-in-the-block", "thinking-in-the-block"])
@pytest.mark.parametrize("action", ["mask", "reject"])
def test_anything_else_inside_the_next_block_while_a_boundary_waits_is_refused(
        stray: bytes, action: str) -> None:
    """Found by review: a stray event inside the next text block, while the boundary before
    it waited, finished the joining there, and a key split around both went out in clear.
    No provider sends one; the stream ends refused."""
    g = guard(action)
    out = _opened(g, "see my key AKIA")
    out += g.feed(_delta(1, "IOSF"))
    out += g.feed(stray)
    out += g.feed(_delta(1, "ODNN7EXAMPLE ok"))
    out += g.finish()
    assert g.stopped and b"AKIA" not in out and b"ODNN" not in out


def test_an_event_named_apart_from_its_type_is_refused() -> None:
    # found by review: `content_block_delta` holding data typed `ping` went out unread
    g = guard("reject")
    out = g.feed(stream([("text", ["x"])]).split(b"event: content_block_delta", 1)[0])
    out += g.feed(b'event: content_block_delta\ndata: {"type": "ping", "index": 0, "delta": '
                  b'{"type": "text_delta", "text": "AKIAIOSFODNN7EXAMPLE"}}\n\n')
    assert g.stopped and b"AKIA" not in out


def test_what_is_held_between_two_blocks_counts_in_the_held_bytes() -> None:
    # `extproc_held_bytes` sums `held_bytes`: the events held for a boundary count too
    g = guard()
    _opened(g, "write to jane.roe@")
    before = g.held_bytes
    g.feed(_delta(1, "e", pad="p" * 5000))
    assert g.held_blocks is not None and g.held_blocks.holding
    assert g.held_bytes >= before + 5000


@pytest.mark.xfail(strict=True, reason="known limit (docs/guards.md): the joined reading "
                   "reads what each block's own mask guards left")
def test_a_key_whose_half_is_an_address_in_its_block_is_refused() -> None:
    """Found by review: the key's second half ends an address in its block, masked there,
    so the joined reading sees no key; a whole reply, read joined first, refuses it."""
    def chain() -> list[StreamMasker]:
        return [StreamMasker(Scanner(builtin(["aws_access_key"])), action="reject"),
                StreamMasker(Scanner(builtin(["email"])))]
    g = SSEMaskingReframer("anthropic", chain, 1 << 20)
    data = stream([("text", ["the key: AKIAIOSF"]), ("text", ["ODNN7EXAMPLE@corp.com, ok"])])
    out = b"".join([g.feed(data), g.finish()])
    assert g.stopped and b"AKIA" not in out
