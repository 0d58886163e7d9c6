"""Replies the reply guards read otherwise than the client's SDK renders them (found by a
review of the reply guards against a hostile or unusual upstream; each test failed on the
code before its fix). Each test drives one exchange through the real `Processor`, sans-IO,
and checks what the client gets; the SDK behaviour each one relies on is named in its
docstring (openai 3.63, anthropic 2.17, google-genai 3.6.1, httpx 0.29, as in the venv).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import grpc
import pytest
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb

from extproc import loader
from extproc import protocol as P
from extproc.servicer import Processor
from tests.unit.test_exchange import header_map, request_body, request_headers, response_body

EMAIL = "john.doe@example.com"
CONFIG = {"guards": {"keys": {"detectors": ["secrets"], "action": "reject"},
                     "pii": {"detectors": ["email"], "action": "mask"}},
          "routes": [{"name": p, "provider": p, "guards": ["keys", "pii"]}
                     for p in ("openai", "anthropic", "gemini")]}
CHAT = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
MESSAGES = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": True,
                       "messages": [{"role": "user", "content": "hi"}]})
GEMINI = json.dumps({"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
GENERATE = "/v1beta/models/gemini-2.5-flash:generateContent"


class Call:
    def __init__(self, route: str, messages: list[pb.ProcessingRequest]) -> None:
        self.route = route
        self.messages = messages
        self.replies: list[pb.ProcessingResponse] = []

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("x-extproc-route", self.route),)

    async def read(self) -> Any:
        return self.messages.pop(0) if self.messages else grpc.aio.EOF

    async def write(self, reply: Any) -> None:
        self.replies.append(reply if isinstance(reply, pb.ProcessingResponse)
                            else pb.ProcessingResponse.FromString(reply))


def exchange(route: str, path: str, request: str, status: int, ctype: str,
             chunks: list[bytes], stream: bool = False) -> tuple[int | None, bytes]:
    """The status (None: the upstream's own) and the body the client gets."""
    return exchange_typed(route, path, request, status, ctype, chunks, stream)[:2]


def exchange_typed(route: str, path: str, request: str, status: int, ctype: str,
                   chunks: list[bytes], stream: bool = False
                   ) -> tuple[int | None, bytes, str]:
    """`exchange`, and the content type the client gets."""
    headers = [(":status", str(status)), ("content-type", ctype)]
    msgs = [request_headers({":path": path}, req_mode=P.BUFFERED,
                            resp_mode=P.STREAMED if stream else P.BUFFERED),
            request_body(request.encode(), True),
            pb.ProcessingRequest(response_headers=pb.HttpHeaders(headers=header_map(headers)))]
    msgs += [response_body(c, i == len(chunks) - 1) for i, c in enumerate(chunks)]
    call = Call(route, msgs)
    asyncio.run(Processor(loader.parse(CONFIG)).Process(None, call))  # type: ignore[arg-type]
    out = b""
    bodies = iter(chunks)
    for reply in call.replies[2:]:
        kind = reply.WhichOneof("response")
        if kind == "immediate_response":
            return reply.immediate_response.status.code, reply.immediate_response.body, ""
        if kind == "response_headers":
            for h in reply.response_headers.response.header_mutation.set_headers:
                if h.header.key == "content-type":
                    ctype = (h.header.raw_value or h.header.value.encode()).decode()
            continue
        if kind == "response_body":
            # one reply per chunk (STREAMED, or one chunk BUFFERED): a CONTINUE passes the
            # upstream's chunk as it came, a mutation replaces it
            chunk = next(bodies)
            response = reply.response_body.response
            if not response.HasField("body_mutation"):
                out += chunk
                continue
            mutation = response.body_mutation
            out += mutation.body if mutation.WhichOneof("mutation") == "body" \
                else mutation.streamed_response.body
    return None, out, ctype


# --- 1. the reply's charset --------------------------------------------------------------

def test_a_whole_gemini_reply_in_a_charset_the_guards_do_not_read_is_refused() -> None:
    """google-genai reads a whole reply with httpx's `response.text` (requests' for Vertex
    with ADC), which decodes the body in the Content-Type's charset: `+AEA-` is `@` in
    UTF-7. The guards read the bytes as UTF-8 JSON, so `john.doe+AEA-example.com` passes
    them and the SDK's `response.text` is `john.doe@example.com`."""
    text = EMAIL.replace("@", "+AEA-")
    body = json.dumps({"candidates": [{"content": {"role": "model", "parts": [
        {"text": f"mail {text}"}]}, "finishReason": "STOP"}]}).encode()
    assert EMAIL in body.decode("utf-7")
    status, got, ctype = exchange_typed("gemini", GENERATE, GEMINI, 200,
                                        "application/json; charset=utf-7", [body])
    assert status is None and got == body     # read as UTF-8, nothing found...
    assert ctype == "application/json; charset=utf-8"   # ...and so labelled for the client


def test_an_error_reply_in_a_charset_the_guards_do_not_read_is_withheld() -> None:
    """Every SDK shows an error reply's message from `response.text` (openai and anthropic:
    `_make_status_error_from_response`; google-genai: `response.json()`, then `.text`),
    decoded in the Content-Type's charset. A reject guard's key spelt in UTF-7 (`+AEE-` is
    `A`) goes out unread."""
    body = json.dumps({"error": {"message": "saw +AEE-KIAIOSFODNN7EXAMPLE", "type": "x"}}
                      ).encode()
    assert "AKIAIOSFODNN7EXAMPLE" in body.decode("utf-7")
    status, got, ctype = exchange_typed("openai", "/v1/chat/completions", CHAT, 400,
                                        "application/json; charset=utf-7", [body])
    assert status is None and got == body
    assert ctype == "application/json; charset=utf-8"
    # the same body as the client is then told to read it, and what a mask guard does to a
    # value the guards read
    masked = json.dumps({"error": {"message": f"saw {EMAIL}"}}).encode()
    status, got, ctype = exchange_typed("openai", "/v1/chat/completions", CHAT, 400,
                                        'application/json;Charset="UTF-7"', [masked])
    assert EMAIL.encode() not in got and ctype == "application/json; charset=utf-8"


@pytest.mark.parametrize(("given", "sent"), [
    ("application/json", None), ("application/json; charset=utf-8", None),
    ("text/event-stream;charset=UTF-8", None), ('application/json; charset="utf-8"', None),
    ("application/json; charset=utf-7", "application/json; charset=utf-8"),
    ("text/event-stream; charset=iso-8859-1", "text/event-stream; charset=utf-8"),
    ("application/json; charset=utf-8; charset=utf-7", "application/json; charset=utf-8"),
    ("text/html; charset=utf-16", "text/html; charset=utf-8"),
    ("application/json; boundary=x", None),
    # RFC 2231 spellings, which httpx's reading (email.message) takes (found by review)
    ("application/json; charset*=''utf-7", "application/json; charset=utf-8"),
    ("application/json; charset*0=utf-7", "application/json; charset=utf-8"),
    ("application/json; charset=utf-8; charset*=''utf-7", "application/json; charset=utf-8")])
def test_a_reply_naming_another_charset_is_relabelled(given: str, sent: str | None) -> None:
    from extproc.guards.reply_side import utf8_label
    assert utf8_label(given) == sent


# --- 2. a 2xx that is not 200, to google-genai ---------------------------------------------

def test_a_gemini_reply_of_another_2xx_is_read_as_google_genai_shows_it() -> None:
    """google-genai's `APIError.raise_for_response` takes every status but 200 for an error:
    it raises `APIError` whose message is the whole JSON body (`f'{code} {status}.
    {details}'`) and whose `.message` is its top-level `message`. The guards read a 201 as a
    reply, by its modelled fields only, so a top-level `message` (or `modelVersion`, or any
    unknown field) reaches the client in clear."""
    body = json.dumps({"candidates": [{"content": {"role": "model", "parts": [
        {"text": "ok"}]}, "finishReason": "STOP"}], "message": f"write to {EMAIL}",
        "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1,
                          "totalTokenCount": 2}}).encode()
    status, got = exchange("gemini", GENERATE, GEMINI, 201, "application/json", [body])
    shown = got
    assert status is not None or EMAIL.encode() not in shown, shown


# --- 3. Anthropic's `event: error` ---------------------------------------------------------

START = (b'event: message_start\ndata: {"type":"message_start","message":{"id":"m","type":'
         b'"message","role":"assistant","model":"c","content":[],"stop_reason":null,'
         b'"usage":{"input_tokens":1,"output_tokens":1}}}\n\n')


@pytest.mark.parametrize("data", [
    {"type": "overloaded", "message": f"retry {EMAIL} AKIAIOSFODNN7EXAMPLE"},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
     "usage": {"output_tokens": 2}, "note": f"{EMAIL} AKIAIOSFODNN7EXAMPLE"},
    {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"},
     "request_id": f"{EMAIL} AKIAIOSFODNN7EXAMPLE"}])
def test_every_field_of_an_anthropic_error_event_is_read(data: dict[str, Any]) -> None:
    """The anthropic SDK raises on an event named `error` with the event's whole data as
    the message (`err_msg = f"{body}"`), whatever its fields; the guards read it by its
    data's `type`, and of an error only its `error` member. Each event below reaches the
    client's exception message with the address and the key in clear."""
    event = b"event: error\ndata: " + json.dumps(data).encode() + b"\n\n"
    _, got = exchange("anthropic", "/v1/messages", MESSAGES, 200, "text/event-stream",
                      [START, event], stream=True)
    assert EMAIL.encode() not in got and b"AKIAIOSFODNN7EXAMPLE" not in got, got


# --- 4. a choice or candidate the request did not ask for ----------------------------------

def _texts(body: bytes, pick: Any) -> str:
    return "".join(pick(json.loads(line[6:])) or "" for line in body.split(b"\n")
                   if line.startswith(b"data: {"))


def test_a_second_choice_in_a_stream_asking_for_one_is_refused() -> None:
    """OpenAI's README streams with `chunk.choices[0].delta.content` and google-genai's
    `chunk.text` reads `candidates[0]`: the first in each chunk, whatever its `index`. The
    request asked one choice (no `n`); the upstream ends choice 0 on `john.doe@` and sends
    `example.com` as choice 1. The guards mask each choice apart, and the client prints
    `john.doe@example.com`."""
    def chunk(i: int, text: str) -> bytes:
        return b"data: " + json.dumps({"id": "c", "object": "chat.completion.chunk",
                                       "created": 1, "model": "m", "choices": [
                                           {"index": i, "delta": {"content": text},
                                            "finish_reason": "stop"}]}).encode() + b"\n\n"
    chunks = [chunk(0, "mail john.doe@"), chunk(1, "example.com"), b"data: [DONE]\n\n"]
    request = json.dumps({"model": "gpt-4o-mini", "stream": True,
                          "messages": [{"role": "user", "content": "hi"}]})
    _, got = exchange("openai", "/v1/chat/completions", request, 200, "text/event-stream",
                      chunks, stream=True)
    printed = _texts(got, lambda d: d["choices"][0]["delta"].get("content")
                     if d.get("choices") else None)
    assert EMAIL not in printed, printed


def test_a_second_candidate_in_a_stream_asking_for_one_is_refused() -> None:
    """As above, for google-genai's `chunk.text` (the first candidate of each chunk)."""
    def candidate(i: int, text: str) -> bytes:
        return b"data: " + json.dumps({"candidates": [{
            "index": i, "content": {"role": "model", "parts": [{"text": text}]},
            "finishReason": "STOP"}]}).encode() + b"\r\n\r\n"
    _, got = exchange("gemini", GENERATE.replace("generateContent",
                                                 "streamGenerateContent?alt=sse"),
                      GEMINI, 200, "text/event-stream",
                      [candidate(0, "mail john.doe@"), candidate(1, "example.com")],
                      stream=True)
    printed = _texts(got.replace(b"\r\n", b"\n"), lambda d: "".join(
        p.get("text", "") for p in d["candidates"][0]["content"]["parts"])
        if d.get("candidates") else None)
    assert EMAIL not in printed, printed
    assert b"did not ask for" in got                   # the stream ended refused


def test_the_choices_a_stream_asked_for_are_read_as_before() -> None:
    """n: 2 asks for choices 0 and 1: each is read (and masked) on its own, as before."""
    def chunk(i: int, text: str) -> bytes:
        return b"data: " + json.dumps({"id": "c", "object": "chat.completion.chunk",
                                       "created": 1, "model": "m", "choices": [
                                           {"index": i, "delta": {"content": text},
                                            "finish_reason": None}]}).encode() + b"\n\n"
    chunks = [chunk(0, "one "), chunk(1, f"two {EMAIL} "), chunk(1, "end"),
              b"data: [DONE]\n\n"]
    request = json.dumps({"model": "gpt-4o-mini", "stream": True, "n": 2,
                          "messages": [{"role": "user", "content": "hi"}]})
    status, got = exchange("openai", "/v1/chat/completions", request, 200,
                           "text/event-stream", chunks, stream=True)
    assert status is None and b"did not ask for" not in got and got.endswith(b"[DONE]\n\n")
    texts = _texts(got, lambda d: "".join(c["delta"].get("content") or ""
                                          for c in d["choices"] if c["index"] == 1))
    assert texts == "two <EMAIL> end"


def _shown(client: str, ctype: str, content: bytes) -> str:
    """A reply's text as the client's HTTP library decodes it by its content type."""
    if client == "httpx":
        import httpx
        return httpx.Response(200, headers={"content-type": ctype}, content=content).text
    import requests
    r = requests.models.Response()
    r.status_code, r._content = 200, content
    r.headers["content-type"] = ctype
    r.encoding = requests.utils.get_encoding_from_headers(r.headers)
    return r.text


@pytest.mark.parametrize(("ctype", "client"), [
    ("application/json; charset*=''utf-7", "httpx"),   # RFC 2231, as httpx reads it
    ("application/json; charset*0=utf-7", "httpx"),
    ('application/json; "charset"=utf-7', "requests"),  # a quoted name, which requests
    ("application/json; 'charset'=utf-7", "requests")])  # strips
def test_another_spelling_of_the_charset_is_relabelled(ctype: str, client: str) -> None:
    """As the client shows it (found by the reviews of the relabel): httpx takes RFC 2231's
    spellings, requests a quoted parameter name."""
    text = EMAIL.replace("@", "+AEA-")
    body = json.dumps({"candidates": [{"content": {"role": "model", "parts": [
        {"text": f"mail {text}"}]}, "finishReason": "STOP"}]}).encode()
    assert EMAIL in _shown(client, ctype, body)   # what the client shows without the gateway
    _, got, sent = exchange_typed("gemini", GENERATE, GEMINI, 200, ctype, [body])
    assert EMAIL not in _shown(client, sent, got), (sent, _shown(client, sent, got))


def test_an_unterminated_last_event_does_not_swallow_the_text_held_before_it() -> None:
    """Found by review: the upstream closed right after its last event's data line while
    the masker still held text; that event went out without a line end and the event
    carrying the held text was appended to its line, so the SDK read invalid JSON and the
    held text was lost. It is ended now, as the guards and the SDKs read it."""
    from openai._streaming import SSEDecoder

    def chunk(delta: dict[str, Any], end: str = "\n\n") -> bytes:
        return ("data: " + json.dumps({"id": "c1", "object": "chat.completion.chunk",
                                       "created": 1, "model": "m", "choices": [
                                           {"index": 0, "delta": delta,
                                            "finish_reason": None}]}) + end).encode()

    request = json.dumps({**json.loads(CHAT), "stream": True})
    chunks = [chunk({"role": "assistant", "content": "write to bob"}),   # "bob" is held
              chunk({}, end="")]                                         # unterminated
    status, got = exchange("openai", "/v1/chat/completions", request, 200,
                           "text/event-stream", chunks, stream=True)
    assert status is None
    events = list(SSEDecoder().iter_bytes(iter([got])))
    texts = [json.loads(e.data)["choices"][0]["delta"].get("content", "") for e in events]
    assert "".join(texts) == "write to bob"
