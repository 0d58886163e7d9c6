"""A text file sent inline in base64 (a Gemini/Vertex ``inlineData`` part of a text media type,
an Anthropic document with a base64 source of one, an OpenAI chat ``file`` part or Responses
``input_file`` whose ``file_data`` is a data URL of one) is read as the model reads it:
decoded, guarded, and masked in place (encoded back); data that does not decode is refused
on a guarded route; binary media, which these guards let pass unread (`allow_unread`),
pass untouched (`extproc.providers.inline`)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.providers.inline import InlineText, decode, is_text_blob, is_text_type
from tests.leak_prompts import ENDPOINTS, GEMINI, contents, turn
from tests.leaks import EMAILS, KEYS
from tests.unit.test_no_leaks import run

GEMINI_EP = next(e for e in ENDPOINTS if e.path == f"{GEMINI}:generateContent")
CHAT_EP = next(e for e in ENDPOINTS if e.path == "/v1/chat/completions")
RESPONSES_EP = next(e for e in ENDPOINTS if e.path == "/v1/responses")
ANTHROPIC_EP = next(e for e in ENDPOINTS if e.path == "/v1/messages")


def gemini(mime: str, data: str, spelling: str = "inlineData") -> dict[str, Any]:
    mime_key = "mimeType" if spelling == "inlineData" else "mime_type"
    return contents({spelling: {mime_key: mime, "data": data}})


def anthropic(mime: str, data: str) -> dict[str, Any]:
    return turn({"type": "document", "title": "notes",
                 "source": {"type": "base64", "media_type": mime, "data": data}})


def b64(text: str, urlsafe: bool = False) -> str:
    raw = text.encode()
    return (base64.urlsafe_b64encode(raw).decode().rstrip("=") if urlsafe
            else base64.b64encode(raw).decode())


def sent_data(out: Any, gemini_part: bool, spelling: str = "inlineData") -> str:
    body = json.loads(out.upstream)
    if gemini_part:
        return body["contents"][0]["parts"][0][spelling]["data"]
    return body["messages"][-1]["content"][0]["source"]["data"]


CASES = [("gemini", "text/plain", "inlineData"), ("gemini", "application/json", "inline_data"),
         ("gemini", "text/csv; charset=utf-8", "inlineData"),
         ("anthropic", "text/plain", None)]


@pytest.mark.parametrize(("provider", "mime", "spelling"), CASES)
@pytest.mark.parametrize("urlsafe", [False, True])
def test_an_address_in_an_inline_text_file_is_masked_in_place(
        provider: str, mime: str, spelling: str | None, urlsafe: bool) -> None:
    text = f"name,mail\njane,{EMAILS[0]}\n"
    if provider == "gemini":
        endpoint, body = GEMINI_EP, gemini(mime, b64(text, urlsafe), spelling or "inlineData")
    else:
        endpoint, body = ANTHROPIC_EP, anthropic(mime, b64(text, urlsafe))
    out = run(endpoint, json.dumps(endpoint.wrap(body)).encode())
    assert out.refused is None, out.refused
    data = sent_data(out, provider == "gemini", spelling or "inlineData")
    assert base64.b64decode(data).decode() == "name,mail\njane,<EMAIL>\n"


@pytest.mark.parametrize(("provider", "mime", "spelling"), CASES)
def test_a_key_in_an_inline_text_file_refuses_the_prompt(provider: str, mime: str,
                                                         spelling: str | None) -> None:
    data = b64(f"aws_access_key_id = {KEYS[0]}\n")
    endpoint, body = (GEMINI_EP, gemini(mime, data, spelling or "inlineData")) \
        if provider == "gemini" else (ANTHROPIC_EP, anthropic(mime, data))
    out = run(endpoint, json.dumps(endpoint.wrap(body)).encode())
    assert out.refused is not None and out.refused[0] == 400
    assert b"aws access key" in out.refused[1] and KEYS[0].encode() not in out.refused[1]


@pytest.mark.parametrize("provider", ["gemini", "anthropic"])
def test_inline_text_that_does_not_decode_is_refused(provider: str) -> None:
    endpoint, body = (GEMINI_EP, gemini("text/plain", "%% not base64 %%")) \
        if provider == "gemini" else (ANTHROPIC_EP, anthropic("text/plain", "%%"))
    out = run(endpoint, json.dumps(endpoint.wrap(body)).encode())
    assert out.refused is not None and out.refused[0] == 400
    assert b"cannot read" in out.refused[1]


@pytest.mark.parametrize("provider", ["gemini", "anthropic"])
def test_an_address_in_utf16_text_refuses_the_prompt(provider: str) -> None:
    data = base64.b64encode("mail jane.roe@example.org".encode("utf-16")).decode()
    endpoint, body = (GEMINI_EP, gemini("text/plain", data)) if provider == "gemini" \
        else (ANTHROPIC_EP, anthropic("text/plain", data))
    out = run(endpoint, json.dumps(endpoint.wrap(body)).encode())
    assert out.refused is not None and out.refused[0] == 400
    assert b"cannot read" in out.refused[1] and b"UTF-16" in out.refused[1]


def test_binary_media_and_clean_text_pass_byte_for_byte() -> None:
    for body in (gemini("image/png", "iVBORw0KGgo="), gemini("text/plain", b64("hello\n")),
                 gemini("application/pdf", b64(EMAILS[0]))):    # a PDF: not read as text
        out = run(GEMINI_EP, json.dumps(GEMINI_EP.wrap(body)).encode())
        assert out.refused is None
        assert json.loads(out.upstream) == GEMINI_EP.wrap(body)


def test_text_media_types() -> None:
    assert all(is_text_type(m) for m in ("text/plain", "TEXT/HTML", "application/json",
                                         "application/vnd.api+json", "text/x-python; q=1"))
    assert not any(is_text_type(m) for m in ("image/png", "application/pdf", "audio/wav",
                                             None, 3, "application/octet-stream"))


@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=64), urlsafe=st.booleans(), strip=st.booleans(),
       wrap=st.integers(0, 8))
def test_any_base64_spelling_reads_the_same_and_an_unchanged_text_encodes_back(
        raw: bytes, urlsafe: bool, strip: bool, wrap: int) -> None:
    data = (base64.urlsafe_b64encode(raw) if urlsafe else base64.b64encode(raw)).decode()
    if strip:
        data = data.rstrip("=")
    if wrap:
        data = "\n".join(data[i:i + wrap * 4] for i in range(0, len(data), wrap * 4))
    text = decode(data)
    assert text is not None
    assert text.encode("utf-8", "surrogateescape") == raw
    blob = {"data": data}
    ref = InlineText(blob)
    ref[None] = ref[None]
    assert base64.b64decode(blob["data"]) == raw


def _chat(url: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "summarise"},
        {"type": "file", "file": {"filename": "notes.csv", "file_data": url}}]}]}


def _responses(url: str) -> dict[str, Any]:
    return {"input": [{"role": "user", "content": [
        {"type": "input_text", "text": "summarise"},
        {"type": "input_file", "filename": "notes.csv", "file_data": url}]}]}


def _file_data(out: Any, chat: bool) -> str:
    body = json.loads(out.upstream)
    if chat:
        return body["messages"][0]["content"][1]["file"]["file_data"]
    return body["input"][0]["content"][1]["file_data"]


@pytest.mark.parametrize("chat", [True, False], ids=["chat", "responses"])
def test_an_openai_text_file_as_a_data_url_is_guarded(chat: bool) -> None:
    endpoint, build = (CHAT_EP, _chat) if chat else (RESPONSES_EP, _responses)
    url = "data:text/csv;base64," + b64(f"name,mail\njane,{EMAILS[0]}\n")
    out = run(endpoint, json.dumps(endpoint.wrap(build(url))).encode())
    assert out.refused is None, out.refused
    prefix, data = _file_data(out, chat).split(",", 1)
    assert prefix == "data:text/csv;base64"
    assert base64.b64decode(data).decode() == "name,mail\njane,<EMAIL>\n"
    out = run(endpoint, json.dumps(endpoint.wrap(build(
        "data:text/plain;base64," + b64(KEYS[0])))).encode())
    assert out.refused is not None and b"aws access key" in out.refused[1]
    out = run(endpoint, json.dumps(endpoint.wrap(build("data:text/plain;base64,%%"))).encode())
    assert out.refused is not None and b"cannot read" in out.refused[1]
    pdf = "data:application/pdf;base64," + b64(EMAILS[0])   # binary: not read
    out = run(endpoint, json.dumps(endpoint.wrap(build(pdf))).encode())
    assert out.refused is None and _file_data(out, chat) == pdf


def test_a_text_file_in_a_function_response_is_guarded() -> None:
    """Gemini 3 lets a function response carry files (``functionResponse.parts``): a text
    one is read like any inline text."""
    body = contents({"functionResponse": {"name": "fetch", "response": {"ok": True}, "parts": [
        {"inlineData": {"mimeType": "text/plain", "data": b64(f"mail {EMAILS[0]}")}}]}})
    out = run(GEMINI_EP, json.dumps(GEMINI_EP.wrap(body)).encode())
    assert out.refused is None
    part = json.loads(out.upstream)["contents"][0]["parts"][0]["functionResponse"]["parts"][0]
    assert base64.b64decode(part["inlineData"]["data"]).decode() == "mail <EMAIL>"


@pytest.mark.parametrize("raw", [
    "mail jane.roe@example.org".encode("utf-16"),       # a BOM, then every other byte NUL
    "mail jane.roe@example.org".encode("utf-16-le"),    # no BOM: NULs
    "mail jane.roe@example.org".encode("utf-32"),
    b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n(mail jane.roe@example.org)",
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"])
def test_text_the_guards_cannot_read_as_the_provider_would_is_refused(raw: bytes) -> None:
    """Found by the request audit: a file labelled text was read as UTF-8 whatever it held,
    so the same address saved as UTF-16 or UTF-32 passed the mask and the reject guards,
    and a PDF labelled text/plain went upstream unread. Such data does not decode."""
    data = base64.b64encode(raw).decode()
    assert InlineText({"mimeType": "text/plain", "data": data}).undecodable()
    # read all the same where it is read (a reply: every byte a guard may mask)
    assert decode(data) == raw.decode("utf-8", "surrogateescape")


def test_two_spellings_of_a_blobs_media_type_that_differ_are_refused() -> None:
    data = base64.b64encode(b"plain text").decode()
    assert InlineText({"mimeType": "text/plain", "mime_type": "text/plain",
                       "data": data}).undecodable() is False
    for other in ("application/pdf", "image/png", "text/csv"):
        blob = {"mimeType": "text/plain", "mime_type": other, "data": data}
        assert is_text_blob(blob) and InlineText(blob).undecodable(), other


def test_inline_text_in_a_reply_that_a_prompt_could_not_carry_is_still_read() -> None:
    """The prompt side refuses text the guards cannot read as the provider would; a reply is
    read whatever it holds (every byte a guard may mask), never passed on unread."""
    from extproc.guards.reframe import SSEMaskingReframer
    from extproc.guards.scanner import Scanner, builtin
    from extproc.guards.stream import StreamMasker
    from extproc.providers import adapter_for

    payload = b"contact john.doe@example.com\x00\n"
    doc = {"candidates": [{"content": {"role": "model", "parts": [{"inlineData": {
        "mimeType": "text/plain", "data": base64.b64encode(payload).decode()}}]},
        "finishReason": "STOP", "index": 0}]}
    texts = adapter_for("gemini").response_texts(doc)
    assert any("john.doe@example.com" in t for _, t in texts), texts
    scanner = Scanner(builtin(["email"]))
    t = SSEMaskingReframer("gemini", lambda: [StreamMasker(scanner)], 1 << 20)
    out = t.feed(b"data: " + json.dumps(doc).encode() + b"\r\n\r\n") + t.finish()
    assert base64.b64encode(payload) not in out
    masked = json.loads(out.split(b"data: ", 1)[1])
    data = masked["candidates"][0]["content"]["parts"][0]["inlineData"]["data"]
    assert b"<EMAIL>" in base64.b64decode(data)
