"""CompletionsMaskingReframer: a legacy Completions stream (``choices[].text``) is masked for
any chunking, a reject guard ends it before the value, the SDK reads what comes out. The
chat reframer would pass these chunks unmasked: that is what this one is for."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import openai
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.guards.reframe import SSEMaskingReframer
from extproc.guards.reframe_completions import CompletionsMaskingReframer
from extproc.guards.scanner import Scanner, builtin
from extproc.guards.stream import StreamMasker
from extproc.providers.openai_legacy import OpenAICompletionsAdapter

from .test_guard_reframe import assert_stop_chunk_repeats_the_head

SCANNER = Scanner(builtin(["email", "phone", "card"]))
EMAIL = "jane.roe@example.org"


def stream(pieces: list[str], usage: bool = True, logprobs: bool = False) -> bytes:
    head = {"id": "cmpl-1", "object": "text_completion", "created": 1741569981}
    out = []
    for piece in pieces:
        lp = {"tokens": [piece], "token_logprobs": [-0.1], "top_logprobs": None,
              "text_offset": [0]} if logprobs else None
        out.append({**head, "choices": [{"text": piece, "index": 0, "logprobs": lp,
                                         "finish_reason": None}], "model": "m",
                    **({"usage": None} if usage else {})})
    out.append({**head, "choices": [{"text": "", "index": 0, "logprobs": None,
                                     "finish_reason": "stop"}], "model": "m",
                **({"usage": None} if usage else {})})
    if usage:
        out.append({**head, "choices": [], "model": "m",
                    "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}})
    return b"".join(f"data: {json.dumps(o)}\n\n".encode() for o in out) + b"data: [DONE]\n\n"


def text_of(raw: bytes) -> str:
    text = ""
    for block in raw.split(b"\n\n"):
        if block.startswith(b"data: {"):
            doc = json.loads(block[6:])
            text += "".join(c.get("text") or "" for c in doc.get("choices") or [])
    return text


def run(raw: bytes, cuts: list[int], action: str = "mask",
        cls: type[SSEMaskingReframer] = CompletionsMaskingReframer) -> list[bytes]:
    t = cls("openai", lambda: [StreamMasker(SCANNER, action=action)], 1 << 20)
    points = sorted({c % (len(raw) + 1) for c in cuts})
    out = []
    for a, b in zip([0, *points], [*points, len(raw)], strict=True):
        out.append(t.feed(raw[a:b]))
    out.append(t.finish())
    return out


PIECES = ["mail ", "jane", ".roe@", "example.org", EMAIL, " now", "4111 1111 1111 1111", "\n",
          "日本", ""]


@settings(max_examples=80, deadline=None)
@given(pieces=st.lists(st.sampled_from(PIECES) | st.text(max_size=4), max_size=8),
       cuts=st.lists(st.integers(0, 1 << 12), max_size=20), usage=st.booleans())
def test_any_chunking_masks_the_whole_text(pieces: list[str], cuts: list[int],
                                           usage: bool) -> None:
    raw = stream(pieces, usage)
    whole = b"".join(run(raw, []))
    assert b"".join(run(raw, cuts)) == whole
    assert text_of(whole) == SCANNER.mask("".join(pieces))
    assert whole.endswith(b"data: [DONE]\n\n")


def test_the_chat_reframer_would_leak_it() -> None:
    raw = stream(["mail jane.r", "oe@example.org now"])
    assert EMAIL.encode() not in b"".join(run(raw, [], cls=CompletionsMaskingReframer))
    leaked = b"".join(run(raw, [], cls=SSEMaskingReframer))
    assert text_of(leaked) == "mail jane.roe@example.org now"


def test_logprobs_are_refused_before_the_request_is_sent() -> None:
    """Log probabilities list the reply's tokens one by one: the stream masker cannot mask
    them, so a request for them never reaches the provider on a guarded route (the adapter
    names them; tests/security/test_endpoints.py checks the 400 through Envoy)."""
    adapter = OpenAICompletionsAdapter("openai")
    assert adapter.unreadable_reply({"prompt": "hi", "logprobs": 2})
    assert adapter.unreadable_reply({"prompt": "hi", "logprobs": True})
    assert not adapter.unreadable_reply({"prompt": "hi", "logprobs": None})
    assert not adapter.unreadable_reply({"prompt": "hi"})
    # 0 asks too: the API always returns the sampled token's log probability, so the
    # tokens listed spell the reply the masker masked (the guard audit's third finding)
    assert adapter.unreadable_reply({"prompt": "hi", "logprobs": 0})
    assert adapter.unreadable_reply({"prompt": "hi", "logprobs": 0, "echo": True,
                                     "stream": True})
    assert adapter.unreadable_reply({"prompt": "hi", "logprobs": False})


@given(value=st.one_of(st.integers(-5, 20), st.booleans(), st.floats(allow_nan=False),
                       st.text(max_size=3), st.lists(st.integers(), max_size=2)),
       stream=st.booleans())
def test_any_logprobs_but_null_is_refused(value: object, stream: bool) -> None:
    """Whatever `logprobs` says but null, streamed or not, the request is refused on a
    route whose guards read replies: the gateway never guesses that a value asks for no
    token list."""
    adapter = OpenAICompletionsAdapter("openai")
    assert adapter.unreadable_reply({"prompt": "hi", "stream": stream, "logprobs": value})


@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(0, 1 << 12), max_size=20))
def test_reject_ends_the_stream_before_the_value(cuts: list[int]) -> None:
    chunks = run(stream(["mail jane.r", "oe@exam", "ple.org now"]), cuts, "reject")
    for chunk in chunks:
        for fragment in (b"jane", b"roe@", b"example.org"):
            assert fragment not in chunk
    out = b"".join(chunks)
    assert b'"finish_reason":"content_filter"' in out
    assert b"response blocked by a guard: it contains email" in out
    assert_stop_chunk_repeats_the_head(out, "text_completion")


def sdk_text(raw: bytes) -> str:
    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, content=raw, headers={"content-type": "text/event-stream"})

    client = openai.OpenAI(api_key="k", base_url="http://test/v1", max_retries=0,
                           http_client=httpx2.Client(transport=httpx2.MockTransport(answer)))
    chunks: list[Any] = list(client.completions.create(model="m", prompt="p", stream=True))
    return "".join(c.choices[0].text for c in chunks if c.choices)


def test_the_sdk_reads_it() -> None:
    assert sdk_text(b"".join(run(stream(["mail jane.r", "oe@example.org now"]), [9]))) == \
        "mail <EMAIL> now"
    with pytest.raises(openai.APIError, match="blocked by a guard"):
        sdk_text(b"".join(run(stream(["mail jane.r", "oe@example.org now"]), [], "reject")))
