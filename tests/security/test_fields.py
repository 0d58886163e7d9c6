"""#8 item 4, guards read every text the model reads or writes, through the real Envoy: for
each field that probing found unread, a prompt or a mock reply carrying an e-mail address and
an AWS-style key is masked on a masking route (the mock records what reached it; the client
reads placeholders) and refused on a rejecting route (a 400 in the provider's format before
the provider sees anything, or a stream ended the provider's way), never passed in clear."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.harness import Gateway, Mock, add_route

pytestmark = pytest.mark.envoy

EMAIL = "john.doe@example.com"
KEY = "AKIAIOSFODNN7EXAMPLE"
VALUE = f"mail {EMAIL} with key {KEY} ok"
MASKED = "mail <EMAIL> with key <SECRET> ok"
FRAGMENTS = (b"john", b"doe@", b"example.com", b"AKIA", b"FODNN7", b"7EXAMPLE")
PROVIDERS = ("openai", "anthropic", "gemini")


def config() -> dict[str, Any]:
    detectors = ["email", "secrets"]
    routes = [{"name": f"{action}-{p}", "provider": p, "guards": [action]}
              for p in PROVIDERS for action in ("mask", "reject")]
    return {"server": {"max_request_body_bytes": 1048576},
            # (an MCP server's description is read: these guards let its tools pass,
            # which tests/unit/test_unread_inputs.py refuses by default)
            "guards": {"mask": {"detectors": detectors, "action": "mask",
                                "allow_unread": ["fetched"]},
                       "reject": {"detectors": detectors, "action": "reject",
                                  "allow_unread": ["fetched"]}},
            "routes": routes}


def adjust(doc: dict[str, Any]) -> None:
    for p in PROVIDERS:
        for action in ("mask", "reject"):
            add_route(doc, f"/{action}-{p}/", p, f"{action}-{p}")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    gateway = Gateway(tmp_path_factory.mktemp("fields"), config(), mock=mock, adjust=adjust)
    yield gateway
    gateway.close()


def url(gw: Gateway, action: str, provider: str, stream: str = "") -> str:
    """stream: "" (a whole reply), "sse", or "array" (Gemini without alt=sse)."""
    base = f"{gw.url}/{action}-{provider}"
    if provider == "openai":
        return f"{base}/v1/chat/completions"
    if provider == "anthropic":
        return f"{base}/v1/messages"
    method = "streamGenerateContent" if stream else "generateContent"
    query = "?alt=sse" if stream == "sse" else ""
    return f"{base}/v1beta/models/gemini-2.5-flash:{method}{query}"


def no_fragment(raw: bytes) -> None:
    for fragment in FRAGMENTS:
        assert fragment not in raw, fragment


def masked_json(value: Any) -> Any:
    """`value` with the address and the key replaced by their placeholders."""
    text = json.dumps(value).replace(EMAIL, "<EMAIL>").replace(KEY, "<SECRET>")
    return json.loads(text)


def provider_error(provider: str, r: httpx.Response) -> str:
    """The message of an error in the provider's own format."""
    body = r.json()
    if provider == "anthropic":
        assert body["type"] == "error"
        return body["error"]["message"]
    if provider == "gemini":
        assert body["error"]["status"] == "INVALID_ARGUMENT"
        return body["error"]["message"]
    assert body["error"]["type"] == "invalid_request_error"
    return body["error"]["message"]


# ------------------------------------------------------------------------------ prompts

SCHEMA = {"type": "object", "properties": {"to": {"type": "string",
                                                  "description": f"for example {VALUE}"}}}
HI: Any = [{"role": "user", "content": "hi"}]
GEMINI_HI: Any = [{"role": "user", "parts": [{"text": "hi"}]}]

PROMPTS: list[tuple[str, str, dict[str, Any]]] = [
    ("openai-tool-description", "openai", {"messages": HI, "tools": [{
        "type": "function", "function": {"name": "send", "description": VALUE,
                                         "parameters": SCHEMA}}]}),
    ("openai-parameters-description", "openai", {"messages": HI, "tools": [{
        "type": "function", "function": {"name": "send", "parameters": SCHEMA}}]}),
    ("openai-message-name", "openai", {"messages": [
        {"role": "user", "name": KEY, "content": f"from {EMAIL}"}]}),
    ("openai-developer", "openai", {"messages": [
        {"role": "developer", "content": VALUE}, *HI]}),
    ("openai-refusal", "openai", {"messages": [
        *HI, {"role": "assistant", "content": None, "refusal": VALUE}, *HI]}),
    ("openai-roles-in-other-case", "openai", {"messages": [
        {"role": "SYSTEM", "content": VALUE}, {"role": "User", "content": VALUE}]}),
    ("anthropic-system-blocks", "anthropic", {"system": [
        {"type": "text", "text": "be brief."}, {"type": "text", "text": VALUE}],
        "messages": HI}),
    ("anthropic-earlier-thinking", "anthropic", {"messages": [
        *HI, {"role": "assistant", "content": [
            {"type": "thinking", "thinking": VALUE, "signature": "sig"},
            {"type": "text", "text": "ok"}]}, *HI]}),
    ("anthropic-text-document", "anthropic", {"messages": [{"role": "user", "content": [
        {"type": "document", "title": VALUE, "source": {
            "type": "text", "media_type": "text/plain", "data": VALUE}},
        {"type": "text", "text": "summarise"}]}]}),
    ("anthropic-content-document", "anthropic", {"messages": [{"role": "user", "content": [
        {"type": "document", "source": {"type": "content", "content": [
            {"type": "text", "text": VALUE}]}},
        {"type": "text", "text": "summarise"}]}]}),
    ("anthropic-search-result", "anthropic", {"messages": [{"role": "user", "content": [
        {"type": "search_result", "source": "https://example.net/r", "title": VALUE,
         "content": [{"type": "text", "text": VALUE}]},
        {"type": "text", "text": "summarise"}]}]}),
    ("anthropic-tool-result-shapes", "anthropic", {"messages": [
        *HI, {"role": "assistant", "content": [
            {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                      "content": [
            {"type": "text", "text": VALUE},
            {"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                            "data": VALUE}},
            {"type": "search_result", "source": "s", "title": "t",
             "content": [{"type": "text", "text": VALUE}]}]}]}]}),
    ("anthropic-tools", "anthropic", {"messages": HI, "tools": [
        {"name": "send", "description": VALUE, "input_schema": SCHEMA}]}),
    ("anthropic-role-in-other-case", "anthropic", {"messages": [
        {"role": "User", "content": VALUE}]}),
    ("gemini-both-system-spellings", "gemini", {
        "systemInstruction": {"parts": [{"text": VALUE}]},
        "system_instruction": {"parts": [{"text": VALUE}]}, "contents": GEMINI_HI}),
    ("gemini-thought-parts", "gemini", {"contents": [
        *GEMINI_HI, {"role": "model", "parts": [{"text": VALUE, "thought": True},
                                                {"text": "ok"}]}, *GEMINI_HI]}),
    ("gemini-function-declarations", "gemini", {"contents": GEMINI_HI, "tools": [
        {"functionDeclarations": [{"name": "send", "description": VALUE,
                                   "parameters": SCHEMA}]}]}),
    ("gemini-role-in-other-case", "gemini", {"contents": [
        {"role": "USER", "parts": [{"text": VALUE}]}]}),
]


def prompt_body(provider: str, fields: dict[str, Any], marker: str = "") -> dict[str, Any]:
    body = json.loads(json.dumps(fields))
    if marker:           # a unique text, to tell whether the provider saw this request
        body["metadata" if provider == "anthropic" else "labels"] = {"m": marker}
    if provider == "openai":
        return {"model": "gpt-4o-mini", **body}
    if provider == "anthropic":
        return {"model": "claude-sonnet-4-5", "max_tokens": 50, **body}
    return body


@pytest.mark.parametrize(("provider", "fields"), [(p, f) for _, p, f in PROMPTS],
                         ids=[i for i, _, _ in PROMPTS])
def test_a_prompt_field_is_masked_before_the_provider(gw: Gateway, provider: str,
                                                      fields: dict[str, Any]) -> None:
    body = prompt_body(provider, fields)
    r = httpx.post(url(gw, "mask", provider), json=body, timeout=30)
    assert r.status_code == 200, r.text
    last = gw.mock.last()
    assert last is not None
    no_fragment(last["body"].encode())
    assert json.loads(last["body"]) == masked_json(body)


@pytest.mark.parametrize(("provider", "fields"), [(p, f) for _, p, f in PROMPTS],
                         ids=[i for i, _, _ in PROMPTS])
def test_a_prompt_field_is_refused_before_the_provider(gw: Gateway, provider: str,
                                                       fields: dict[str, Any]) -> None:
    marker = uuid.uuid4().hex
    r = httpx.post(url(gw, "reject", provider), json=prompt_body(provider, fields, marker),
                   timeout=30)
    assert r.status_code == 400, r.text
    message = provider_error(provider, r)
    assert message.startswith("request blocked by guard 'reject': the prompt contains ")
    no_fragment(r.content)
    last = gw.mock.last()
    assert last is None or marker not in last["body"]


#: fields the provider receives and keeps beside the prompt, which no model reads (found by
#: the red team: a mask guard sent them in clear, a reject guard let them pass)
SIDE_FIELDS: list[tuple[str, str, dict[str, Any]]] = [
    ("openai-stop", "openai", {"messages": HI, "stop": ["END", VALUE]}),
    ("openai-stop-string", "openai", {"messages": HI, "stop": VALUE}),
    ("openai-user", "openai", {"messages": HI, "user": EMAIL}),
    ("openai-safety-identifier", "openai", {"messages": HI, "safety_identifier": EMAIL}),
    ("openai-metadata", "openai", {"messages": HI, "store": True,
                                   "metadata": {"customer": VALUE}}),
    ("anthropic-stop-sequences", "anthropic", {"messages": HI, "stop_sequences": [VALUE]}),
    ("anthropic-user-id", "anthropic", {"messages": HI, "metadata": {"user_id": EMAIL}}),
    ("gemini-stop-sequences", "gemini", {"contents": GEMINI_HI, "generationConfig": {
        "stopSequences": [VALUE]}}),
    ("gemini-labels", "gemini", {"contents": GEMINI_HI, "labels": {"owner": EMAIL}}),
    # the user's location a web search tool searches by: free text the provider acts on
    # (found by review, 2026-12-07)
    ("openai-search-location", "openai", {"messages": HI, "web_search_options": {
        "user_location": {"type": "approximate", "approximate": {"city": VALUE}}}}),
    ("anthropic-search-location", "anthropic", {"messages": HI, "tools": [
        {"type": "web_search_20250305", "name": "web_search", "user_location": {
            "type": "approximate", "city": VALUE, "region": EMAIL}}]}),
]


@pytest.mark.parametrize("action", ["mask", "reject"])
@pytest.mark.parametrize(("provider", "fields"), [(p, f) for _, p, f in SIDE_FIELDS],
                         ids=[i for i, _, _ in SIDE_FIELDS])
def test_a_field_beside_the_prompt_is_refused_before_the_provider(
        gw: Gateway, provider: str, fields: dict[str, Any], action: str) -> None:
    """Masking a stop sequence or a user id would change what it means: refused by both."""
    assert f"blocked by guard '{action}': a field sent to the provider beside the prompt" \
        in refused_before(gw, action, provider, fields)


def refused_before(gw: Gateway, action: str, provider: str, fields: dict[str, Any]) -> str:
    """POST a prompt with `fields` to the `action` route: it is a 400 that carries no part of
    the value and the provider never saw; its message."""
    before = gw.mock.last()
    r = httpx.post(url(gw, action, provider), json=prompt_body(provider, fields), timeout=30)
    assert r.status_code == 400, r.text
    no_fragment(r.content)
    assert gw.mock.last() == before
    return provider_error(provider, r)


#: a text where the provider's schema has one, in a shape the adapters pass over (found by
#: review, 2026-12-07: each went to the provider unread, by mask and reject guards alike)
SHAPES: list[tuple[str, str, dict[str, Any]]] = [
    ("gemini-parts-string", "gemini", {"contents": [{"role": "user", "parts": VALUE}]}),
    ("gemini-text-list", "gemini", {"contents": [{"role": "user", "parts": [
        {"text": [VALUE]}]}]}),
    ("gemini-system-parts-list", "gemini", {"contents": GEMINI_HI, "systemInstruction": {
        "parts": [VALUE]}}),
    ("openai-tool-description-list", "openai", {"messages": HI, "tools": [{
        "type": "function", "function": {"name": "send", "description": [VALUE]}}]}),
    ("anthropic-tool-result-object", "anthropic", {"messages": [{"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": {
            "type": "text", "text": VALUE}}]}]}),
]


@pytest.mark.parametrize("action", ["mask", "reject"])
@pytest.mark.parametrize(("provider", "fields"), [(p, f) for _, p, f in SHAPES],
                         ids=[i for i, _, _ in SHAPES])
def test_a_text_in_a_shape_no_adapter_reads_is_refused_before_the_provider(
        gw: Gateway, provider: str, fields: dict[str, Any], action: str) -> None:
    assert "the request body is not a valid" in refused_before(gw, action, provider, fields)


# ------------------------------------------------------------------------------ replies

Read = Callable[[Any], str]    # a reply's text in the field under test


def _oa_whole(key: str, index: int = 0) -> Read:
    def read(doc: Any) -> str:
        message = doc["choices"][index]["message"]
        if key == "tool":
            return message["tool_calls"][0]["function"]["arguments"]
        return message[key]
    return read


def _oa_stream(key: str, index: int = 0) -> Read:
    def read(events: Any) -> str:
        out = ""
        for e in events:
            for c in e.get("choices") or ():
                delta = c.get("delta") or {}
                if c.get("index") != index:
                    continue
                if key == "tool":
                    out += "".join(t["function"].get("arguments") or ""
                                   for t in delta.get("tool_calls") or ())
                else:
                    out += delta.get(key) or ""
        return out
    return read


def _an_whole(block: int, key: str) -> Read:
    def read(doc: Any) -> str:
        value = doc["content"][block][key]
        return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return read


def _an_stream(block: int, key: str) -> Read:
    def read(events: Any) -> str:
        out = ""
        for e in events:
            if e.get("index") != block:
                continue
            if e["type"] == "content_block_start":
                value = e["content_block"].get(key)
                out += value if isinstance(value, str) else ""
            elif e["type"] == "content_block_delta":
                out += e["delta"].get(key) or ""
        return out
    return read


def _gm(index: int, thought: bool | None) -> Read:
    """Candidate `index`'s text parts (thought or not), or its function call's args."""
    def read(doc: Any) -> str:
        out = ""
        for e in doc if isinstance(doc, list) else [doc]:
            for c in e.get("candidates") or ():
                if c.get("index", 0) != index:
                    continue
                for part in c["content"]["parts"]:
                    if thought is None and "functionCall" in part:
                        out += json.dumps(part["functionCall"]["args"], separators=(",", ":"))
                    elif thought is not None and bool(part.get("thought")) is thought:
                        out += part.get("text", "")
        return out
    return read


TOOL = json.dumps({"text": VALUE}, separators=(",", ":"))
TOOL_MASKED = json.dumps({"text": MASKED}, separators=(",", ":"))

# (id, provider, x-mock-shape, extra body fields, reader of a whole reply, of a stream,
#  what the field reads when masked)
REPLIES: list[tuple[str, str, str | None, dict[str, Any], Read | None, Read, str]] = [
    ("openai-second-choice", "openai", None, {"n": 2}, _oa_whole("content", 1),
     _oa_stream("content", 1), MASKED),
    ("openai-refusal", "openai", "refusal", {}, _oa_whole("refusal"), _oa_stream("refusal"),
     MASKED),
    ("openai-tool-arguments", "openai", "tool", {}, _oa_whole("tool"), _oa_stream("tool"),
     TOOL_MASKED),
    ("anthropic-thinking", "anthropic", "thinking", {}, _an_whole(0, "thinking"),
     _an_stream(0, "thinking"), MASKED),
    ("anthropic-text-in-block-start", "anthropic", "start", {}, None, _an_stream(0, "text"),
     MASKED),
    ("anthropic-tool-input", "anthropic", "tool", {}, _an_whole(0, "input"),
     _an_stream(0, "partial_json"), TOOL_MASKED),
    ("gemini-second-candidate", "gemini", None, {"generationConfig": {"candidateCount": 2}},
     _gm(1, False), _gm(1, False), MASKED),
    ("gemini-thought-parts", "gemini", "thinking", {}, _gm(0, True), _gm(0, True), MASKED),
    ("gemini-function-call", "gemini", "tool", {}, _gm(0, None), _gm(0, None), TOOL_MASKED),
]


def reply_body(provider: str, extra: dict[str, Any], stream: bool) -> dict[str, Any]:
    if provider == "gemini":
        return {"contents": GEMINI_HI, **extra}
    body = prompt_body(provider, {"messages": HI, **extra})
    return {**body, "stream": True} if stream else body


def reply_headers(shape: str | None, chunk: int | None = None) -> dict[str, str]:
    headers = {"x-mock-reply": VALUE}
    if shape:
        headers["x-mock-shape"] = shape
    if chunk:
        headers["x-mock-chunk-bytes"] = str(chunk)
    return headers


def sse_events(raw: bytes) -> list[dict[str, Any]]:
    out = []
    for block in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        for line in block.split(b"\n"):
            if line.startswith(b"data: ") and line[6:].strip() not in (b"[DONE]", b""):
                out.append(json.loads(line[6:]))
    return out


def stream(gw: Gateway, action: str, provider: str, mode: str, shape: str | None,
           extra: dict[str, Any]) -> bytes:
    with httpx.Client(timeout=30) as client, client.stream(
            "POST", url(gw, action, provider, mode), json=reply_body(provider, extra, True),
            headers=reply_headers(shape, chunk=3)) as r:
        assert r.status_code == 200
        return b"".join(r.iter_raw())


WHOLE = [(p, s, e, w, m) for _, p, s, e, w, _, m in REPLIES if w is not None]
WHOLE_IDS = [i for i, _, _, _, w, _, _ in REPLIES if w is not None]
STREAMS = [(p, mode, s, e, r, m) for _, p, s, e, _, r, m in REPLIES
           for mode in (("sse", "array") if p == "gemini" else ("sse",))]
STREAM_IDS = [f"{i}-{mode}" for i, p, _, _, _, _, _ in REPLIES
              for mode in (("sse", "array") if p == "gemini" else ("sse",))]


@pytest.mark.parametrize(("provider", "shape", "extra", "read", "masked"), WHOLE,
                         ids=WHOLE_IDS)
def test_a_whole_reply_field_is_masked(gw: Gateway, provider: str, shape: str | None,
                                       extra: dict[str, Any], read: Read, masked: str) -> None:
    r = httpx.post(url(gw, "mask", provider), json=reply_body(provider, extra, False),
                   headers=reply_headers(shape), timeout=30)
    assert r.status_code == 200, r.text
    no_fragment(r.content)
    assert read(r.json()) == masked


@pytest.mark.parametrize(("provider", "shape", "extra", "read", "masked"), WHOLE,
                         ids=WHOLE_IDS)
def test_a_whole_reply_field_is_refused(gw: Gateway, provider: str, shape: str | None,
                                        extra: dict[str, Any], read: Read, masked: str) -> None:
    r = httpx.post(url(gw, "reject", provider), json=reply_body(provider, extra, False),
                   headers=reply_headers(shape), timeout=30)
    assert r.status_code == 400, r.text
    assert provider_error(provider, r).startswith("response blocked by guard 'reject'")
    no_fragment(r.content)


@pytest.mark.parametrize(("provider", "mode", "shape", "extra", "read", "masked"), STREAMS,
                         ids=STREAM_IDS)
def test_a_streamed_reply_field_is_masked_across_3_byte_chunks(
        gw: Gateway, provider: str, mode: str, shape: str | None, extra: dict[str, Any],
        read: Read, masked: str) -> None:
    raw = stream(gw, "mask", provider, mode, shape, extra)
    no_fragment(raw)
    assert read(sse_events(raw)) == masked
    if provider == "openai":
        assert raw.rstrip().endswith(b"data: [DONE]")
    if provider == "anthropic":
        assert b"event: message_stop" in raw


FINISH = {"openai": b'"finish_reason":"content_filter"', "anthropic": b'"refusal"',
          "gemini": b'"SAFETY"'}


@pytest.mark.parametrize(("provider", "mode", "shape", "extra", "read", "masked"), STREAMS,
                         ids=STREAM_IDS)
def test_a_streamed_reply_field_ends_the_stream_before_the_value(
        gw: Gateway, provider: str, mode: str, shape: str | None, extra: dict[str, Any],
        read: Read, masked: str) -> None:
    raw = stream(gw, "reject", provider, mode, shape, extra)
    no_fragment(raw)
    assert FINISH[provider] in raw
    assert b"response blocked by a guard: it contains email" in raw


@pytest.mark.parametrize(("provider", "asks"), [
    ("openai", {"logprobs": True, "top_logprobs": 2}),
    ("gemini", {"generationConfig": {"responseLogprobs": True, "logprobs": 2}})])
def test_a_request_for_log_probabilities_is_refused(gw: Gateway, provider: str,
                                                    asks: dict[str, Any]) -> None:
    """Log probabilities repeat the reply's tokens one by one, where no guard can mask a
    value: asking for them on a route whose guards read replies is refused up front."""
    marker = uuid.uuid4().hex
    body = {**reply_body(provider, {}, False), **asks, "labels": {"m": marker}}
    r = httpx.post(url(gw, "mask", provider), json=body, headers=reply_headers(None),
                   timeout=30)
    assert r.status_code == 400, r.text
    assert "token log probabilities" in provider_error(provider, r)
    last = gw.mock.last()
    assert last is None or marker not in last["body"]


_PDF = base64.b64encode(f"%PDF-1.4 BT ({VALUE}) Tj ET".encode()).decode()
#: a value carried in an input no guard reads: a PDF inline, an image, a file by URL or id
UNREAD = [
    ("openai-pdf", "openai", {"messages": [{"role": "user", "content": [
        {"type": "text", "text": "read this"},
        {"type": "file", "file": {"filename": "a.pdf",
                                  "file_data": f"data:application/pdf;base64,{_PDF}"}}]}]}),
    ("openai-image-url", "openai", {"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": f"https://x.test/?q={EMAIL}"}}]}]}),
    ("openai-file-id", "openai", {"messages": [{"role": "user", "content": [
        {"type": "file", "file": {"file_id": "file-abc"}}]}]}),
    ("anthropic-pdf", "anthropic", {"messages": [{"role": "user", "content": [
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                        "data": _PDF}}]}]}),
    ("anthropic-pdf-url", "anthropic", {"messages": [{"role": "user", "content": [
        {"type": "document", "source": {"type": "url", "url": "https://x.test/a.pdf"}}]}]}),
    ("gemini-pdf", "gemini", {"contents": [{"role": "user", "parts": [
        {"text": "read this"}, {"inlineData": {"mimeType": "application/pdf", "data": _PDF}}]}]}),
    ("gemini-file-uri", "gemini", {"contents": [{"role": "user", "parts": [
        {"fileData": {"mimeType": "application/pdf", "fileUri": "gs://b/a.pdf"}}]}]}),
]


@pytest.mark.parametrize("action", ["mask", "reject"])
@pytest.mark.parametrize(("provider", "fields"), [(p, f) for _, p, f in UNREAD],
                         ids=[i for i, _, _ in UNREAD])
def test_a_value_in_an_input_no_guard_reads_never_reaches_the_provider(
        gw: Gateway, provider: str, fields: dict[str, Any], action: str) -> None:
    """A PDF, an image or a file by URL or id is read by the model and by no guard: on a
    guarded route it is refused up front, in the provider's format, unless a guard lets its
    kind pass unread (none here does)."""
    marker = uuid.uuid4().hex
    r = httpx.post(url(gw, action, provider), json=prompt_body(provider, fields, marker),
                   timeout=30)
    assert r.status_code == 400, r.text
    message = provider_error(provider, r)
    assert f"which guard '{action}' cannot read and does not let pass unread" in message
    assert not any(f in r.content for f in FRAGMENTS)
    last = gw.mock.last()
    assert last is None or marker not in last["body"]


@pytest.mark.parametrize("action", ["mask", "reject"])
@pytest.mark.parametrize("mode", ["", "sse", "array"], ids=["whole", "sse", "array"])
def test_an_image_the_model_sends_unasked_never_reaches_the_client(
        gw: Gateway, action: str, mode: str) -> None:
    """An image model answers with an image the request did not ask for (the mock's `image`
    shape): no guard reads it, so a whole reply is refused in Google's format and a stream,
    SSE or the JSON array rewritten to SSE, ends the Gemini way before the image."""
    from extproc.mock.common import IMAGE_B64

    # no value in the text beside it: the image is what the guards must stop
    headers = {"x-mock-reply": "here is a cat", "x-mock-shape": "image",
               "x-mock-chunk-bytes": "41"}
    r = httpx.post(url(gw, action, "gemini", mode), json=reply_body("gemini", {}, bool(mode)),
                   headers=headers, timeout=30)
    assert IMAGE_B64[:24].encode() not in r.content
    no_fragment(r.content)
    if not mode:
        assert r.status_code == 400, r.text
        assert "the reply carries an image, which guard" in provider_error("gemini", r)
        return
    assert r.status_code == 200
    assert FINISH["gemini"] in r.content and b"the reply carries an image" in r.content


@pytest.mark.parametrize("action", ["mask", "reject"])
def test_a_request_for_speech_is_refused_before_the_provider(gw: Gateway, action: str) -> None:
    marker = uuid.uuid4().hex
    body = {**reply_body("openai", {}, False), "modalities": ["text", "audio"],
            "audio": {"voice": "alloy", "format": "wav"}, "metadata": {"m": marker}}
    r = httpx.post(url(gw, action, "openai"), json=body, timeout=30)
    assert r.status_code == 400, r.text
    assert "the reply would carry audio" in provider_error("openai", r)
    last = gw.mock.last()
    assert last is None or marker not in last["body"]


def test_no_state_left(gw: Gateway) -> None:
    assert gw.server is not None
    stats = gw.server.wait_idle()
    assert stats["streams_active"] == 0 and stats["exchanges_alive"] == 0
