"""SSEMaskingReframer: for any chunking of a provider's stream, the text the client reads
equals the guard's masking of the whole text, the events stay valid, and a reject guard
ends the stream before any part of the value goes out."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.guards.reframe import SSEMaskingReframer
from extproc.guards.scanner import Scanner, builtin
from extproc.guards.stream import StreamMasker

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
