"""The guard webhook's contract (answers, spans) and WebhookStreamGuard, the segmenting
transform that asks a webhook about streamed text: any chunking of the stream reads the
same, masks land where their spans start, and every failure follows the fail mode."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.codecs.jsonescape import decode_escapes
from extproc.codecs.jsontext import JsonSource, read_texts, rewrite
from extproc.guards.scanner import Scanner, builtin
from extproc.guards.webhook import (
    AnswerTooLarge,
    Call,
    Collected,
    MalformedAnswer,
    Mask,
    Text,
    Verdict,
    WebhookError,
    apply,
    parse_answer,
    rewrite_source,
    source_texts,
    split_masked,
)
from extproc.guards.webhook_stream import WebhookStreamGuard

from .test_guard_reframe import assert_stop_chunk_repeats_the_head, client_text, with_value

EMAIL = Scanner(builtin(["email"]))


# --- the answer ---------------------------------------------------------------------------
def test_pass_reject_and_mask_answers_parse() -> None:
    texts = [Text("user", "héllo 😀 a@b.co"), Text("user", "x")]
    assert parse_answer(b'{"action":"pass"}', texts).action == "pass"
    v = parse_answer(b'{"action":"reject","reason":"  no\\n  way "}', texts)
    assert (v.action, v.reason) == ("reject", "no way")
    v = parse_answer(json.dumps({"action": "mask", "masks": [
        {"text": 0, "start": 8, "end": 14, "placeholder": "<EMAIL>"}]}).encode(), texts)
    assert v.masks == (Mask(0, 8, 14, "<EMAIL>"),)
    # offsets are code points: the emoji is one
    assert apply(texts[0].text, v.masks) == "héllo 😀 <EMAIL>"
    assert parse_answer(b'{"action":"mask","masks":[]}', texts).action == "pass"
    v = parse_answer(b'{"action":"mask","masks":[{"text":1,"start":0,"end":1}]}', texts)
    assert v.masks[0].placeholder == "<REDACTED>"


@pytest.mark.parametrize("body", [
    b"not json", b"[]", b'{"action":"allow"}', b'{"action":"mask"}',
    b'{"action":"mask","masks":[{"text":2,"start":0,"end":1}]}',
    b'{"action":"mask","masks":[{"text":0,"start":0,"end":99}]}',
    b'{"action":"mask","masks":[{"text":0,"start":3,"end":3}]}',
    b'{"action":"mask","masks":[{"text":0,"start":0,"end":4},{"text":0,"start":3,"end":5}]}',
    b'{"action":"mask","masks":[{"text":0,"start":true,"end":2}]}',
    b'{"action":"mask","masks":[{"text":0,"start":0,"end":2,"placeholder":5}]}',
    b'{"action":"reject","reason":["x"]}', b"\xff\xfe",
])
def test_malformed_answers_are_refused(body: bytes) -> None:
    with pytest.raises(MalformedAnswer):
        parse_answer(body, [Text("user", "hello")])


def test_the_call_body_follows_the_contract() -> None:
    call = Call("dlp", "response", "openai", "openai", "gpt", None, "rid", True,
                [Text("assistant", "hi", "before")])
    doc = json.loads(call.body())
    assert doc == {"version": 1, "guard": "dlp", "direction": "response", "stream": True,
                   "route": "openai", "provider": "openai", "model": "gpt", "subject": None,
                   "request_id": "rid",
                   "texts": [{"role": "assistant", "text": "hi", "context": "before"}]}


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=40), cuts=st.lists(st.integers(0, 40), max_size=6),
       spans=st.lists(st.tuples(st.integers(0, 40), st.integers(1, 8)), max_size=4))
def test_split_masked_keeps_boundaries_and_masks_like_the_whole(
        text: str, cuts: list[int], spans: list[tuple[int, int]]) -> None:
    points = sorted({min(c, len(text)) for c in cuts})
    pieces = [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]
    masks: list[Mask] = []
    for start, size in sorted(spans):
        end = min(start + size, len(text))
        if start < end and (not masks or start >= masks[-1].end):
            masks.append(Mask(0, start, end, "<M>"))
    out = split_masked(pieces, masks)
    assert len(out) == len(pieces)
    assert "".join(out) == apply(text, masks)


# --- streamed responses -------------------------------------------------------------------
class FakeWebhook:
    """Masks e-mail addresses, rejects 'falcon', or fails, like a webhook would."""

    def __init__(self, fail: bool = False, error: WebhookError | None = None) -> None:
        self.calls: list[list[Text]] = []
        self.fail = fail or error is not None
        self.error = error or WebhookError("HTTP 500")

    async def __call__(self, texts: list[Text]) -> Verdict:
        self.calls.append(texts)
        if self.fail:
            raise self.error
        if any("falcon" in t.text for t in texts):
            return Verdict("reject", reason="a codename")
        masks = tuple(Mask(i, s.start, s.end, "<EMAIL>")
                      for i, t in enumerate(texts) for s in EMAIL.find(t.text))
        return Verdict("mask", masks) if masks else Verdict("pass")


def run(provider: str, raw: bytes, cuts: list[int], hook: FakeWebhook, segment: int = 200,
        fail_open: bool = False) -> tuple[list[bytes], list[tuple[str, str]]]:
    reports: list[tuple[str, str]] = []
    t = WebhookStreamGuard(provider, "dlp", hook, segment, fail_open, 1 << 20,
                           lambda g, o: reports.append((g, o)))
    return feed_split(t, raw, cuts), reports


def feed_split(guard: WebhookStreamGuard, raw: bytes, cuts: list[int]) -> list[bytes]:
    """`raw` through `guard`, cut at `cuts` (modulo its length): what it sends for each
    piece, then at the end."""

    async def go() -> list[bytes]:
        points = sorted({c % (len(raw) + 1) for c in cuts})
        out, last = [], 0
        for p in [*points, len(raw)]:
            out.append(await guard.feed_async(raw[last:p]))
            last = p
        out.append(await guard.finish_async())
        return out

    return asyncio.run(go())


@settings(max_examples=40, deadline=None)
@given(provider=st.sampled_from(["openai", "anthropic", "gemini"]),
       cuts=st.lists(st.integers(0, 1 << 16), max_size=30), bytewise=st.booleans())
def test_any_chunking_reads_the_same_and_never_leaks(provider: str, cuts: list[int],
                                                     bytewise: bool) -> None:
    raw, whole = with_value(provider)
    hook = FakeWebhook()
    chunks, reports = run(provider, raw, list(range(len(raw))) if bytewise else cuts, hook)
    out = b"".join(chunks)
    assert client_text(provider, out) == EMAIL.mask(whole)
    assert b"jane" not in out and b"example.org" not in out
    assert ("dlp", "masked") in reports
    # what was checked is all the text, once
    assert "".join(t.text for call in hook.calls for t in call) == whole


def test_segments_end_at_word_ends_and_carry_context() -> None:
    raw, whole = with_value("openai")
    hook = FakeWebhook()
    chunks, _ = run("openai", raw, [], hook, segment=16)
    assert len(hook.calls) > 1
    for call, after in zip(hook.calls[:-1], hook.calls[1:], strict=True):
        text, next_text = call[0].text, after[0].text
        # at a word end: no word (the address) cut in two
        assert len(text) >= 16 and (text[-1].isspace() or next_text[0].isspace()
                                    or len(text) >= 32)
    # context is what the client got: masked, never the raw value again
    assert hook.calls[1][0].context == EMAIL.mask(hook.calls[0][0].text)[-256:]
    assert "".join(c[0].text for c in hook.calls) == whole
    # a segment ends at a word end: the address was checked whole, and masked
    assert client_text("openai", b"".join(chunks)) == EMAIL.mask(whole)


@pytest.mark.parametrize("provider,finish", [
    ("openai", b'"finish_reason":"content_filter"'), ("anthropic", b'"refusal"'),
    ("gemini", b'"SAFETY"')])
def test_reject_ends_the_stream_with_nothing_of_the_segment(provider: str,
                                                            finish: bytes) -> None:
    raw, _ = with_value(provider)
    raw = raw.replace(b"mple.org now", b"mple.org falcon")
    assert b"falcon" in raw
    chunks, reports = run(provider, raw, [], FakeWebhook())
    out = b"".join(chunks)
    assert b"falcon" not in out and b"jane" not in out and finish in out
    assert b"response blocked by guard 'dlp': a codename" in out
    assert reports[-1] == ("dlp", "rejected")
    if provider == "openai":
        assert_stop_chunk_repeats_the_head(out)


def test_the_refusal_chunk_takes_the_head_of_a_chunk_that_has_an_id() -> None:
    """Azure opens a stream with its prompt filter results, a chunk whose id and model are
    empty: the refusal repeats the first chunk that names them."""
    raw, _ = with_value("openai")
    raw = raw.replace(b"mple.org now", b"mple.org falcon")
    azure = (b'data: {"choices":[],"created":0,"id":"","model":"","object":"",'
             b'"prompt_filter_results":[{"prompt_index":0,"content_filter_results":{}}]}\n\n')
    out = b"".join(run("openai", azure + raw, [], FakeWebhook())[0])
    assert b"falcon" not in out
    assert_stop_chunk_repeats_the_head(out[len(azure):])
    stop = next(line for line in out.split(b"\n")
                if b'"finish_reason":"content_filter"' in line)
    assert b'"id":""' not in stop


def test_a_failing_webhook_fails_closed_or_open() -> None:
    raw, whole = with_value("openai")
    out = b"".join(run("openai", raw, [], FakeWebhook(fail=True))[0])
    assert b"jane" not in out and b"guard 'dlp' is unavailable" in out
    assert b"content_filter" in out and b"[DONE]" not in out
    chunks, reports = run("openai", raw, [], FakeWebhook(fail=True), fail_open=True)
    out = b"".join(chunks)
    assert client_text("openai", out) == whole and out.endswith(b"data: [DONE]\n\n")
    assert ("dlp", "error-open") in reports


def test_a_verdict_too_long_to_read_is_refused_even_by_a_fail_open_guard() -> None:
    """A verdict past the answer cap is the client's doing (found by review: a mask verdict
    grows with the values masked), not an outage: the stream ends refused."""
    raw, _ = with_value("openai")
    hook = FakeWebhook(error=AnswerTooLarge("answer larger than 1048576 bytes"))
    chunks, reports = run("openai", raw, [], hook, fail_open=True)
    out = b"".join(chunks)
    assert b"jane" not in out and b"cannot judge this much text" in out
    assert b"content_filter" in out and b"[DONE]" not in out
    assert ("dlp", "error-closed") in reports and ("dlp", "error-open") not in reports


def test_events_without_text_pass_at_once() -> None:
    raw = b'data: {"choices":[{"index":0,"delta":{"role":"assistant"}}]}\n\n'
    chunks, _ = run("openai", raw, [], FakeWebhook())
    assert chunks[0] == raw


def test_a_webhook_guard_reads_a_legacy_completions_stream() -> None:
    """The webhook stream guard finds texts with the endpoint's adapter: a text_completion
    stream's choices[].text reach the webhook and come back masked, split anywhere."""
    from extproc.guards.scanner import Scanner, builtin
    from extproc.guards.webhook import Mask
    from extproc.providers.openai_legacy import OpenAICompletionsAdapter

    email = "john.doe@example.com"
    email_scan = Scanner(builtin(["email"]))

    async def hook(texts: list[Text]) -> Verdict:
        masks = tuple(Mask(i, s.start, s.end, "<EMAIL>")
                      for i, t in enumerate(texts) for s in email_scan.find(t.text))
        return Verdict("mask", masks) if masks else Verdict("pass")

    def chunk(text: str, finish: str | None = None) -> bytes:
        doc = {"id": "cmpl-1", "object": "text_completion", "model": "m",
               "choices": [{"text": text, "index": 0, "logprobs": None,
                            "finish_reason": finish}]}
        return b"data: " + json.dumps(doc).encode() + b"\n\n"

    raw = chunk("mail john.d") + chunk("oe@example.com now", "stop") + b"data: [DONE]\n\n"
    for cut in range(1, len(raw), 7):
        t = WebhookStreamGuard("openai", "dlp", hook, 200, False, 1 << 20,
                               lambda g, o: None, OpenAICompletionsAdapter("openai"))

        async def go(t: WebhookStreamGuard = t, cut: int = cut) -> bytes:
            return b"".join([await t.feed_async(raw[:cut]), await t.feed_async(raw[cut:]),
                             await t.finish_async()])

        out = asyncio.run(go())
        assert email.encode() not in out
        texts = "".join(json.loads(line[6:])["choices"][0]["text"]
                        for line in out.split(b"\n") if line.startswith(b"data: {"))
        assert texts == "mail <EMAIL> now"


@settings(max_examples=30, deadline=None)
@given(cuts=st.lists(st.integers(0, 400), max_size=12))
def test_a_function_calls_keys_reach_the_webhook_and_come_back_masked(
        cuts: list[int]) -> None:
    """A Gemini function call arrives whole: each key, number and string of its args is a
    text of its own, and a mask renames a key in place, every field kept."""
    args = {"jane.roe@example.org": "yes", "x.y@example.org": 4111111111111111,
            "list": [{"z@example.org": True}]}
    event = {"candidates": [{"index": 0, "content": {"role": "model", "parts": [
        {"functionCall": {"name": "send", "args": args}}]}, "finishReason": "STOP"}]}
    raw = b"data: " + json.dumps(event).encode() + b"\r\n\r\n"
    hook = FakeWebhook()
    out = b"".join(run("gemini", raw, cuts, hook)[0])
    assert b"example.org" not in out
    doc = json.loads(out.removeprefix(b"data: "))
    sent = doc["candidates"][0]["content"]["parts"][0]["functionCall"]["args"]
    assert sent == {"<EMAIL>": "yes", "<EMAIL>_2": 4111111111111111,
                    "list": [{"<EMAIL>": True}]}
    checked = [t.text for call in hook.calls for t in call]
    # the call's name (as the event spells it), then the args' keys and values
    assert checked == ["send", "jane.roe@example.org", "x.y@example.org", "list", "yes",
                       "4111111111111111", "z@example.org"]


# --- tool-call arguments: what a webhook gets of JSON source, and how its masks come back -

_AT = re.compile(r"@\w*")
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text("ab@é\n\"\\日", max_size=8),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text("ab@\n", max_size=4), inner, max_size=3), max_leaves=10)


@settings(max_examples=300, deadline=None)
@given(value=json_values, ascii_only=st.booleans())
def test_a_webhooks_masks_on_arguments_come_back_as_a_local_guards_would(
        value: object, ascii_only: bool) -> None:
    """The webhook reads each token of the arguments decoded (`\\u0040` is `@`), and masking
    the spans it names gives what a local guard masking the same spans writes."""
    text = JsonSource(json.dumps(value, ensure_ascii=ascii_only))
    pieces = source_texts(text)
    assert pieces == read_texts(text)
    masks = [[Mask(i, m.start(), m.end(), "<E>") for m in _AT.finditer(piece)] or None
             for i, piece in enumerate(pieces)]
    out = rewrite_source(text, masks)
    assert out == rewrite(text, lambda t: _AT.sub("<E>", t))
    assert "@" not in json.dumps(json.loads(out), ensure_ascii=False)


def test_arguments_that_are_not_json_are_one_decoded_text() -> None:
    text = JsonSource('{"to": "jane\\u0040example.org", "cut')
    assert source_texts(text) == ['{"to": "jane@example.org", "cut']
    start = source_texts(text)[0].index("jane")
    masked = rewrite_source(text, [[Mask(0, start, start + 16, "<EMAIL>")]])
    assert masked == '{"to": "<EMAIL>", "cut'


def test_collected_texts_map_masks_back_slot_by_slot() -> None:
    collected = Collected()
    slots = [("user", "hi a@b"), (None, "skipped a@b"), ("tool", JsonSource('{"x@y": "a@b"}')),
             ("user", "c@d")]
    for role, text in slots:
        assert collected.add(role, text) is text
    assert [(t.role, t.text) for t in collected.texts] == [
        ("user", "hi a@b"), ("tool", "x@y"), ("tool", "a@b"), ("user", "c@d")]
    by_text = {0: [Mask(0, 3, 6, "<E>")], 2: [Mask(2, 0, 3, "<E>")]}
    rewrite_fn = collected.rewriter(by_text)
    assert [rewrite_fn(text) for _, text in slots] == [
        "hi <E>", "skipped a@b", '{"x@y": "<E>"}', "c@d"]


# --- streamed tool-call arguments: held whole, sent decoded ------------------------------

_ARGS = '{"to": "jane\\u0040example\\u002eorg", "n": 1}'


def _openai_tool_stream(pieces: list[str]) -> bytes:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        return "data: " + json.dumps({"id": "c", "object": "chat.completion.chunk", "choices": [
            {"index": 0, "delta": delta, "finish_reason": finish}]}) + "\n\n"
    first = chunk({"role": "assistant", "tool_calls": [{"index": 0, "id": "call_1",
                   "type": "function", "function": {"name": "send", "arguments": ""}}]})
    body = "".join(chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]})
                   for p in pieces)
    return (first + body + chunk({}, "tool_calls") + "data: [DONE]\n\n").encode()


def _anthropic_tool_stream(pieces: list[str]) -> bytes:
    def event(doc: dict[str, Any]) -> str:
        return f"event: {doc['type']}\ndata: {json.dumps(doc)}\n\n"
    return "".join(event(d) for d in [
        {"type": "message_start", "message": {"id": "m", "type": "message", "role": "assistant",
                                              "content": [], "usage": {"input_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {
            "type": "tool_use", "id": "toolu_1", "name": "send", "input": {}}},
        *({"type": "content_block_delta", "index": 0,
           "delta": {"type": "input_json_delta", "partial_json": p}} for p in pieces),
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"},
         "usage": {"output_tokens": 9}},
        {"type": "message_stop"}]).encode()


def _arguments(provider: str, out: bytes) -> str:
    text = out.decode()
    docs = [json.loads(line[6:]) for line in text.split("\n")
            if line.startswith("data: ") and line[6:] != "[DONE]"]
    if provider == "openai":
        return "".join(c["delta"]["tool_calls"][0]["function"].get("arguments", "")
                       for d in docs for c in d["choices"] if c["delta"].get("tool_calls"))
    return "".join(d["delta"]["partial_json"] for d in docs
                   if d.get("type") == "content_block_delta")


@settings(max_examples=150, deadline=None)
@given(provider=st.sampled_from(["openai", "anthropic"]),
       splits=st.lists(st.integers(0, len(_ARGS)), max_size=8),
       cuts=st.lists(st.integers(0, 1 << 12), max_size=12), segment=st.sampled_from([8, 200]))
def test_streamed_arguments_reach_the_webhook_decoded_and_come_back_valid_json(
        provider: str, splits: list[int], cuts: list[int], segment: int) -> None:
    """Escapes in streamed tool-call arguments hide nothing from a webhook: a call's
    arguments are held whole until the call ends (up to a bound), sent as the tool reads
    them, and the masked arguments the client joins are valid JSON."""
    points = sorted(set(splits))
    pieces = [_ARGS[a:b] for a, b in zip([0, *points], [*points, len(_ARGS)], strict=True)]
    build = _openai_tool_stream if provider == "openai" else _anthropic_tool_stream
    hook = FakeWebhook()
    chunks, reports = run(provider, build(pieces), cuts, hook, segment=segment)
    out = b"".join(chunks)
    assert b"jane" not in out and b"example" not in out
    assert json.loads(_arguments(provider, out)) == {"to": "<EMAIL>", "n": 1}
    checked = [t.text for call in hook.calls for t in call]
    assert "jane@example.org" in checked
    assert ("dlp", "masked") in reports


def test_arguments_too_long_to_hold_go_on_as_their_source() -> None:
    """Past the bound, a call's arguments are checked as JSON source, segment by segment,
    as before: nothing is held without end."""
    long_args = json.dumps({"note": "word " * 2000, "to": "jane@example.org"})
    pieces = [long_args[i:i + 50] for i in range(0, len(long_args), 50)]
    hook = FakeWebhook()
    chunks, _ = run("openai", _openai_tool_stream(pieces), [], hook, segment=64)
    out = b"".join(chunks)
    assert len(hook.calls) > 2 and b"jane@example.org" not in out
    assert json.loads(_arguments("openai", out))["to"] == "<EMAIL>"


_ESCAPED = "jane\\u0040example\\u002eorg"


class ContextWebhook(FakeWebhook):
    """`FakeWebhook` that also reads each text's context, as a DLP service does to catch a
    value split between two segments: a match reaching into the text is masked there."""

    async def __call__(self, texts: list[Text]) -> Verdict:
        self.calls.append(texts)
        if any("falcon" in (t.context or "") + t.text for t in texts):
            return Verdict("reject", reason="a codename")
        masks = []
        for i, t in enumerate(texts):
            lead = len(t.context or "")
            for span in EMAIL.find((t.context or "") + t.text):
                if span.end > lead:
                    masks.append(Mask(i, max(0, span.start - lead), span.end - lead,
                                      "<EMAIL>"))
        return Verdict("mask", tuple(masks)) if masks else Verdict("pass")


@settings(max_examples=60, deadline=None)
@given(provider=st.sampled_from(["openai", "anthropic"]),
       size=st.integers(7, 60), cuts=st.lists(st.integers(0, 1 << 16), max_size=8),
       verdict=st.sampled_from(["mask", "reject"]))
def test_an_escaped_value_in_arguments_too_long_to_hold_is_still_seen(
        provider: str, size: int, cuts: list[int], verdict: str) -> None:
    """Past the bound the arguments stream on as their source, where an escape would hide a
    value from the webhook: their decoded reading is sent beside it (however the escapes
    are cut, with what came before as context), and a value found there ends the stream
    refused, since a mask can no longer be written into source already on its way."""
    long_args = json.dumps({"note": "word " * 400})[:-1] + f', "to": "{_ESCAPED}"}}'
    if verdict == "reject":
        long_args = long_args.replace("jane", "falcon")
    pieces = [long_args[i:i + size] for i in range(0, len(long_args), size)]
    build = _openai_tool_stream if provider == "openai" else _anthropic_tool_stream
    hook = ContextWebhook()
    chunks, reports = run(provider, build(pieces), cuts, hook, segment=64)
    out = b"".join(chunks)
    assert ("dlp", "rejected") in reports
    seen = " ".join((t.context or "") + t.text for call in hook.calls for t in call)
    assert ("jane@example.org" if verdict == "mask" else "falcon") in seen
    assert b"response blocked by guard 'dlp'" in out
    # the value never reaches the client whole (a segment cut inside it may have let its
    # head go, as with any text: see the module docstring)
    kept = out.split(b"response blocked")[0].rsplit(b"data: ", 1)[0]
    assert "example.org" not in decode_escapes(_arguments(provider, kept))


def test_long_arguments_without_escapes_are_sent_as_before() -> None:
    long_args = json.dumps({"note": "word " * 2000, "to": "a plain note"})
    pieces = [long_args[i:i + 50] for i in range(0, len(long_args), 50)]
    hook = FakeWebhook()
    chunks, reports = run("openai", _openai_tool_stream(pieces), [], hook, segment=64)
    assert json.loads(_arguments("openai", b"".join(chunks))) == json.loads(long_args)
    sent = "".join(t.text for call in hook.calls for t in call)
    assert sent.count("word") == long_args.count("word")   # the source, once, no reading
    assert all(o == "pass" for _, o in reports)


def _openai_text_stream(pieces: list[str]) -> bytes:
    def chunk(delta: dict[str, Any], finish: str | None = None) -> str:
        return "data: " + json.dumps({"id": "c", "object": "chat.completion.chunk", "choices": [
            {"index": 0, "delta": delta, "finish_reason": finish}]}) + "\n\n"
    return ("".join(chunk({"content": p}) for p in pieces) + chunk({}, "stop")
            + "data: [DONE]\n\n").encode()


@settings(max_examples=60, deadline=None)
@given(lead=st.integers(0, 40), segment=st.sampled_from([11, 16, 24, 64]),
       cuts=st.lists(st.integers(0, 1 << 14), max_size=6))
def test_a_segment_never_ends_inside_a_word(lead: int, segment: int, cuts: list[int]) -> None:
    """Tokens put the space first (" john", ".", "doe"): a segment ends before a token that
    starts with whitespace or after one that ends with it, never after the "." inside an
    address, so the webhook sees the address whole and masks it all (a word longer than
    twice the segment, 22 characters here at the least, is cut anyway)."""
    pieces = [" word"] * lead + [" write", " to", " john", ".", "doe", "@example", ".org",
                                 " now", "."]
    hook = FakeWebhook()
    chunks, _ = run("openai", _openai_text_stream(pieces), cuts, hook, segment=segment)
    assert client_text("openai", b"".join(chunks)) == \
        "".join(pieces[:lead]) + " write to <EMAIL> now."
    for call in hook.calls:
        text = call[0].text
        assert "john." not in text or "john.doe@example.org" in text


def test_events_without_text_are_not_held_without_end_and_keep_alives_go_on() -> None:
    """Found by the operations audit: once some text was held (a word shorter than a
    segment), every event without text was held too, 100,000 empty deltas took 174 MiB and
    a keep-alive comment never reached the client, whose idle timeout could then cut a slow
    stream. A comment now goes on at once, and past `MAX_HELD_EVENTS` events what is held is
    checked and goes on."""
    from extproc.guards.webhook import PASS
    from extproc.guards.webhook_stream import MAX_HELD_EVENTS

    calls: list[Any] = []

    async def hook(texts: list[Any]) -> Any:
        calls.append([t.text for t in texts])
        return PASS

    def chunk(content: str) -> bytes:
        return b"data: " + json.dumps({"id": "c", "object": "chat.completion.chunk",
                                       "created": 1, "model": "m", "choices": [
                                           {"index": 0, "delta": {"content": content},
                                            "finish_reason": None}]}).encode() + b"\n\n"

    async def run() -> tuple[bytes, bytes, int]:
        t = WebhookStreamGuard("openai", "dlp", hook, 200, False, 1 << 20, lambda g, o: None)
        first = await t.feed_async(chunk("Thinking"))
        kept = await t.feed_async(b": keep-alive\n\n")
        rest = b""
        for _ in range(MAX_HELD_EVENTS * 3):
            rest += await t.feed_async(chunk(""))
        return first + kept, rest, len(t.held)

    before, rest, held = asyncio.run(run())
    assert b"Thinking" not in before and before.endswith(b":\n\n")   # the word waits
    assert b"Thinking" in rest and held < MAX_HELD_EVENTS
    assert calls and calls[0] == ["Thinking"]
