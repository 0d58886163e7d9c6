"""SSEMaskingReframer: for any chunking of a provider's stream, the text the client reads
equals the guard's masking of the whole text, the events stay valid, and a reject guard
ends the stream before any part of the value goes out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st

from extproc.guards.reframe import SSEMaskingReframer
from extproc.guards.scanner import Scanner, builtin
from extproc.guards.stream import StreamMasker
from tests.jsonfuzz import json_values, spoil

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
SCANNER = Scanner(builtin(["email", "phone", "card"]))
SECRET = "mail jane.roe@example.org now"


def with_value(provider: str) -> tuple[bytes, str]:
    """A golden stream whose first three text events carry a sentence with an e-mail
    address split across them."""
    name = {"openai": "openai_text_stream.sse", "anthropic": "anthropic_text_stream.sse",
            "gemini": "gemini_text_stream.sse"}[provider]
    raw = (GOLDEN / name).read_bytes()
    sep = b"\r\n\r\n" if provider == "gemini" else b"\n\n"
    blocks = raw.split(sep)
    out, texts, pieces = [], [], iter([SECRET[:9], SECRET[9:17], SECRET[17:]])
    for block in blocks:
        lines = block.split(b"\n") if provider != "gemini" else block.split(b"\r\n")
        data = [ln for ln in lines if ln.startswith(b"data: ")]
        if data and data[0][6:].strip() not in (b"[DONE]",):
            doc = json.loads(data[0][6:])
            piece = next(pieces, "") if _text(provider, doc) else ""
            if piece and _add_text(provider, doc, piece):
                lines = [ln for ln in lines if not ln.startswith(b"data: ")]
                lines.append(b"data: " + json.dumps(doc, separators=(",", ":")).encode())
            texts.append(_text(provider, doc))
        out.append((b"\r\n" if provider == "gemini" else b"\n").join(lines))
    return sep.join(out), "".join(texts)


def _add_text(provider: str, doc: dict[str, Any], piece: str) -> bool:
    if provider == "openai":
        for c in doc.get("choices") or ():
            if isinstance(c.get("delta", {}).get("content"), str) and c["delta"]["content"]:
                c["delta"]["content"] = piece
                return True
    elif provider == "anthropic":
        if doc.get("type") == "content_block_delta" and doc["delta"].get("type") == "text_delta":
            doc["delta"]["text"] = piece
            return True
    else:
        for c in doc.get("candidates") or ():
            for p in c.get("content", {}).get("parts", []):
                if isinstance(p.get("text"), str):
                    p["text"] = piece
                    return True
    return False


def _text(provider: str, doc: dict[str, Any]) -> str:
    if provider == "openai":
        return "".join(c.get("delta", {}).get("content") or "" for c in doc.get("choices") or ())
    if provider == "anthropic":
        d = doc.get("delta") or {}
        return d.get("text", "") if doc.get("type") == "content_block_delta" else ""
    return "".join(p.get("text", "") for c in doc.get("candidates") or ()
                   for p in c.get("content", {}).get("parts", []) if not p.get("thought"))


def client_text(provider: str, raw: bytes) -> str:
    text = []
    norm = raw.replace(b"\r\n", b"\n")
    for block in norm.split(b"\n\n"):
        for line in block.split(b"\n"):
            if line.startswith(b"data: ") and line[6:].strip() != b"[DONE]":
                text.append(_text(provider, json.loads(line[6:])))
    return "".join(text)


def run(provider: str, raw: bytes, cuts: list[int], action: str = "mask") -> list[bytes]:
    t = SSEMaskingReframer(provider, lambda: [StreamMasker(SCANNER, action=action)], 1 << 20)
    points = sorted({c % (len(raw) + 1) for c in cuts})
    out, last = [], 0
    for p in [*points, len(raw)]:
        out.append(t.feed(raw[last:p]))
        last = p
    out.append(t.finish())
    return out


@settings(max_examples=60, deadline=None)
@given(provider=st.sampled_from(["openai", "anthropic", "gemini"]),
       cuts=st.lists(st.integers(0, 1 << 16), max_size=40), bytewise=st.booleans())
def test_any_chunking_masks_like_the_whole_text(provider: str, cuts: list[int],
                                                bytewise: bool) -> None:
    raw, whole = with_value(provider)
    assert "jane.roe@example.org" in whole
    chunks = run(provider, raw, list(range(len(raw))) if bytewise else cuts)
    out = b"".join(chunks)
    assert client_text(provider, out) == SCANNER.mask(whole)
    for chunk in chunks:
        for part in (b"jane", b"roe@", b"@exam", b"example.org"):
            assert part not in chunk


@settings(max_examples=30, deadline=None)
@given(provider=st.sampled_from(["openai", "anthropic", "gemini"]),
       cuts=st.lists(st.integers(0, 1 << 16), max_size=40))
def test_reject_ends_the_stream_before_the_value(provider: str, cuts: list[int]) -> None:
    raw, _ = with_value(provider)
    out = b"".join(run(provider, raw, cuts, action="reject"))
    assert b"jane" not in out and b"example.org" not in out
    assert b"response blocked by a guard: it contains email" in out
    finish = {"openai": b'"finish_reason":"content_filter"', "anthropic": b'"refusal"',
              "gemini": b'"SAFETY"'}[provider]
    assert finish in out
    if provider == "openai":
        assert_stop_chunk_repeats_the_head(out)


def assert_stop_chunk_repeats_the_head(out: bytes, kind: str = "chat.completion.chunk") -> None:
    """The chunk that ends a refused OpenAI stream has the stream's id, created and model
    (the SDKs' chunk schema requires them: `chunk.id` of the last chunk must not fail)."""
    docs = [json.loads(line[6:]) for line in out.decode().split("\n")
            if line.startswith("data: {")]
    stop = next(d for d in docs if d.get("choices") and any(
        c.get("finish_reason") == "content_filter" for c in d["choices"]))
    head = {k: docs[0][k] for k in ("id", "created", "model")}
    assert {k: stop.get(k) for k in head} == head, (docs[0], stop)
    assert stop["object"] == kind
    if kind == "chat.completion.chunk":   # (as OpenAI orders a chat chunk's fields)
        assert list(stop)[:4] == ["id", "object", "created", "model"]


# ---- the fast path for OpenAI text events gives what parsing every event gives ---------------

PIECES = ["jane.roe@example.org", "jane", ".roe@", "example.org", "4111 1111 1111 1111", "4111",
          " call +1 415 555 0100", "hello ", "world", "naïve ", "日本語", "😀", "\"quoted\"",
          "back\\slash", "a/b", "\n", "\t", "\x00", "\x1f", "\x7f", "\u2028", "</script>", ""]
CONTENT = st.one_of(st.sampled_from(PIECES), st.text(max_size=6),
                    st.lists(st.sampled_from(PIECES), max_size=4).map("".join))
CREATED = st.sampled_from([1751897012] * 6 + [0, -1, None, True, 10 ** 30, 1.5, -0.0, "é"])


def sometimes(one_in: int) -> st.SearchStrategy[bool]:
    return st.sampled_from([False] * (one_in - 1) + [True])


@st.composite
def openai_stream(draw: st.DrawFn) -> bytes:
    """OpenAI events: in half the streams like the API's (compact, one choice, text deltas),
    in the others in every form, with the parts the fast path must leave to the full parse."""
    odd = draw(st.booleans())

    def rarely(one_in: int) -> bool:
        return odd and draw(sometimes(one_in))

    head = {"id": "chatcmpl-1", "object": "chat.completion.chunk",
            "created": draw(CREATED) if odd else 1751897012,
            "model": draw(st.sampled_from(["gpt-4o", "", "é/x"])) if odd else "gpt-4o"}
    ascii_, compact = rarely(2), not rarely(4)
    tail = draw(st.sampled_from([{}, {"usage": None}, {"usage": {"tokens": 3}}])) if odd else {}
    events = []
    for _ in range(draw(st.integers(0, 8))):
        choices = []
        for _ in range(draw(st.sampled_from([1, 1, 1, 0, 2])) if odd else 1):
            delta: dict[str, Any] = {"role": "assistant"} if rarely(3) else {}
            if not rarely(6):
                delta["content"] = draw(st.one_of(CONTENT, st.none()) if odd else CONTENT)
            # the other texts the model writes: the fast path must leave these events to
            # the full parse, which masks them too
            if rarely(4):
                delta["refusal"] = draw(st.one_of(st.none(), CONTENT))
            if rarely(6):
                delta[draw(st.sampled_from(["reasoning_content", "reasoning"]))] = draw(
                    st.one_of(st.none(), CONTENT))
            if rarely(8):
                delta["tool_calls"] = [{"index": 0, "function": {"arguments": draw(CONTENT)}}]
            if rarely(5):   # a field the gateway does not know: its strings are read too
                delta[draw(st.sampled_from(["note", "thinking", "x"]))] = draw(
                    st.one_of(CONTENT, st.integers(), st.none(), st.booleans()))
            choice: dict[str, Any] = {"index": 1 if rarely(4) else 0, "delta": delta,
                                      "logprobs": None, "finish_reason": None}
            if draw(sometimes(8)):
                choice["finish_reason"] = draw(st.sampled_from(["stop", ""]))
            if rarely(6):
                choice = dict(reversed(list(choice.items())))
            choices.append(choice)
        doc = {**head, "choices": choices, **tail}
        if draw(sometimes(4)):
            doc["obfuscation"] = draw(st.text("abcXYZ09", max_size=6))
        data = json.dumps(doc, ensure_ascii=ascii_,
                          separators=(",", ":") if compact else (", ", ": "))
        form = draw(st.sampled_from(["slash", "dup", "dup", "space", "lines"])) if rarely(3) \
            else "plain"
        if form == "slash":
            data = data.replace("/", "\\/")
        elif form == "dup":
            data = data.replace("{", '{"id":"x",', 1) if draw(st.booleans()) \
                else data.replace('"delta":{', '"delta":{"content":"x",', 1)
        elif form == "space":
            data = " " + data
        elif form == "lines":
            data = data.replace(",", ",\ndata: ", 1)
        event = "event: delta\n" if rarely(4) else ""
        events.append(f"{event}data: {data}\n\n".encode())
    return b"".join(events) + draw(st.sampled_from([b"", b"data: [DONE]\n\n"]))


def run_events(raw: bytes, cuts: list[int], skim: bool, action: str) -> list[bytes | str]:
    t = SSEMaskingReframer("openai", lambda: [StreamMasker(SCANNER, action=action)], 1 << 20)
    t.skim = skim
    points = sorted({c % (len(raw) + 1) for c in cuts})
    out: list[bytes | str] = []
    for a, b in zip([0, *points], [*points, len(raw)], strict=True):
        out.append(t.feed(raw[a:b]))
    out.append(t.finish())      # never raises: a lone surrogate stays escaped, and a reject
    return out                  # made final by the stream's end refuses it politely


@settings(max_examples=300, deadline=None)
@given(raw=openai_stream(), cuts=st.lists(st.integers(0, 4000), max_size=6),
       action=st.sampled_from(["mask", "mask", "reject"]))
def test_the_openai_fast_path_gives_what_parsing_gives(raw: bytes, cuts: list[int],
                                                       action: str) -> None:
    assert run_events(raw, cuts, True, action) == run_events(raw, cuts, False, action)


_EMPTY_THEN_BROKEN = (  # an empty text, then an unreadable event: the refusal repeats the
    # stream's head on both paths (the fast path once skipped noting an empty text's event)
    b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1751897012,'
    b'"model":"gpt-4o","choices":[{"index":0,"delta":{"content":""},"logprobs":null,'
    b'"finish_reason":null}]}\n\ndata: {"id":"chatcmpl-1","object":"chat.completion.chunk",'
    b'"created":1751897012,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":"x",},'
    b'"logprobs":null,"finish_reason":null}]}\n\n')


@settings(max_examples=300, deadline=None)
@given(raw=openai_stream(), keep=st.lists(st.booleans(), max_size=12),
       action=st.sampled_from(["mask", "mask", "reject"]))
@example(raw=_EMPTY_THEN_BROKEN, keep=[], action="mask")
def test_one_event_chunks_take_the_fast_path_and_give_what_parsing_gives(
        raw: bytes, keep: list[bool], action: str) -> None:
    """Cut at event boundaries (mostly one event per chunk, as a paced stream comes): the
    chunk-level fast path gives what parsing every event gives."""
    ends = [i + 2 for i in range(len(raw)) if raw.startswith(b"\n\n", i)]
    cuts = [e for i, e in enumerate(ends) if i >= len(keep) or keep[i]]
    assert run_events(raw, cuts, True, action) == run_events(raw, cuts, False, action)


_UNKNOWN_DELTA_FIELD = (  # compact, as the fast path takes it: the unknown field's string
    # must be read as the full parse reads it (the fast path once passed it unread)
    b'data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":'
    b'[{"index":0,"delta":{"note":"write to jane.roe@example.org","content":"hi"},'
    b'"finish_reason":null}]}\n\n')


def test_an_unknown_delta_field_is_read_on_the_fast_path_too() -> None:
    for skim in (True, False):
        out = b"".join(o for o in run_events(_UNKNOWN_DELTA_FIELD, [], skim, "mask")
                       if isinstance(o, bytes))
        assert b"jane.roe" not in out and b"<EMAIL>" in out, out


def test_the_fast_path_passes_unchanged_events_through_and_splices_masked_text() -> None:
    head = '{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":'
    events = [head + '[{"index":0,"delta":{"content":"' + text + '"},"finish_reason":null}]}'
              for text in ("Hi. ", "mail jane.roe@exa", "mple.org now ", "\\u00e9t\\u00e9 ",
                           "\\u00e9t\\u00e9 word")]
    t = SSEMaskingReframer("openai", lambda: [StreamMasker(SCANNER)], 1 << 20)
    raw = [f"data: {e}\n\n".encode() for e in events]
    out = [t.feed(e) for e in raw]
    assert out[0] == raw[0] and out[3] == raw[3]   # unchanged: byte for byte, escapes kept
    assert out[1] == raw[1].replace(b"jane.roe@exa", b"")
    assert out[2] == raw[2].replace(b"mple.org", b"<EMAIL>")
    assert out[4] == raw[4].replace(b"\\u00e9t\\u00e9 word", "été ".encode())


def test_a_reject_made_final_by_the_end_of_the_stream_refuses_it() -> None:
    raw = b'data: {"choices":[{"index":0,"delta":{"content":"mail jane.roe@example.org"}}]}\n\n'
    out = b"".join(run_events(raw, [], False, "reject"))     # type: ignore[arg-type]
    assert b"jane" not in out and b"content_filter" in out
    assert b"response blocked by a guard: it contains email" in out


def test_a_lone_surrogate_in_masked_text_stays_escaped() -> None:
    raw = (b'data: {"choices":[{"index":0,"delta":{"content":"\\ud800 a@b.co"}}]}\n\n'
           b'data: [DONE]\n\n')
    for skim in (True, False):
        out = b"".join(run_events(raw, [], skim, "mask"))   # type: ignore[arg-type]
        out.decode()                                          # valid UTF-8
        assert b"\\ud800" in out and b"<EMAIL>" in out and b"a@b.co" not in out


# --- malformed events: passed on, never a crash -------------------------------------------

_JSON = json_values(["index", "text", "content", "parts", "refusal", "arguments",
                     "tool_calls", "thinking", "partial_json", "thought", "functionCall",
                     "args", "content_block"])


def _skeletons(rest: str) -> dict[str, list[dict[str, Any]]]:
    """Each provider's text events (every field the model writes) and piece ends, with
    `rest` somewhere in the text."""
    return {
        "openai": [{"choices": [{"index": 0, "delta": {"content": rest}}]},
                   {"choices": [{"index": 1, "delta": {"refusal": rest,
                                                       "reasoning_content": rest}}]},
                   {"choices": [{"index": 0, "delta": {"tool_calls": [
                       {"index": 0, "function": {"arguments": rest}}]}}]},
                   {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}],
        "anthropic": [{"type": "content_block_start", "index": 0,
                       "content_block": {"type": "text", "text": rest}},
                      {"type": "content_block_delta", "index": 0,
                       "delta": {"type": "text_delta", "text": rest}},
                      {"type": "content_block_delta", "index": 1,
                       "delta": {"type": "thinking_delta", "thinking": rest}},
                      {"type": "content_block_delta", "index": 2,
                       "delta": {"type": "input_json_delta", "partial_json": rest}},
                      {"type": "content_block_stop", "index": 0}],
        "gemini": [{"candidates": [{"index": 0, "content": {"parts": [{"text": rest}]}}]},
                   {"candidates": [{"index": 1, "content": {"parts": [
                       {"text": rest, "thought": True},
                       {"functionCall": {"name": "f", "args": {"a": rest}}}]}}]},
                   {"candidates": [{"index": 0, "content": {"parts": []},
                                    "finishReason": "STOP"}]}],
    }


@settings(max_examples=300, deadline=None)
@given(provider=st.sampled_from(["openai", "anthropic", "gemini"]), data=st.data())
def test_malformed_events_never_crash_the_reframer(provider: str, data: st.DataObject) -> None:
    """Any value in any place of a provider's events (an index that is a list, content that
    is a string, parts that are not a list...): the stream goes on, no exception escapes."""
    events = _skeletons("call jane.ro")[provider] + _skeletons("e@example.org")[provider]
    raw = b""
    for doc in events:
        spoil(doc, data, _JSON, data.draw(st.integers(0, 2)))
        sep = b"\r\n\r\n" if provider == "gemini" else b"\n\n"
        raw += b"data: " + json.dumps(doc).encode() + sep
    out = b"".join(run(provider, raw, data.draw(st.lists(st.integers(0, 1 << 12), max_size=5))))
    assert isinstance(out, bytes)
