"""Webhook guards through the real Envoy, against the shipped sample guard service (a real
process) and a misbehaving one (down, slow, malformed, erroring): prompts, whole replies and
streamed replies are masked or refused by the webhook's answer, and every failure follows
the guard's fail mode (closed: a 503 or a refused stream; open: the text goes through)."""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from aiohttp import web

from extproc.codecs.jsonescape import decode_escapes
from tests.harness import Gateway, Mock, Proc, add_route, free_port

from .test_guards import EMAIL, sse_json

pytestmark = pytest.mark.envoy

REPLY = f"Sure: write to {EMAIL} today, and then some more words to fill the segment."
MASKED = "Sure: write to <EMAIL> today, and then some more words to fill the segment."
FAILURES = ("down", "slow", "malformed", "status")


class BadWebhook:
    """A guard service that misbehaves in every way, on one port, in a thread."""

    def __init__(self) -> None:
        self.port = free_port()
        self.calls: list[dict[str, Any]] = []
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        assert ready.wait(10)

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        app = web.Application()
        app.router.add_post("/{kind}", self._handle)
        self.runner = runner = web.AppRunner(app, shutdown_timeout=0.1)
        self.loop.run_until_complete(runner.setup())
        self.loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        ready.set()
        self.loop.run_forever()

    async def _handle(self, request: web.Request) -> web.Response:
        self.calls.append(await request.json())
        kind = request.match_info["kind"]
        if kind == "slow":
            await asyncio.sleep(0.6)       # thrice the guards' timeout
            return web.json_response({"action": "pass"})
        if kind == "malformed":
            return web.json_response({"action": "mask", "masks": [
                {"text": 0, "start": 0, "end": 10 ** 6}]})
        return web.json_response({"error": "boom"}, status=500)

    def url(self, kind: str) -> str:
        if kind == "down":
            return f"http://127.0.0.1:{free_port()}/check"     # nothing listens there
        return f"http://127.0.0.1:{self.port}/{kind}"

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture(scope="module")
def bad() -> Iterator[BadWebhook]:
    hook = BadWebhook()
    yield hook
    hook.stop()


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    proc = Proc("guard-webhook", [sys.executable, "-m", "extproc", "guard-webhook",
                                  "--port", str(port)], tmp_path_factory.mktemp("webhook"))
    proc.wait_port(port)
    yield f"http://127.0.0.1:{port}/check"
    proc.stop()


def config(sample: str, bad: BadWebhook) -> dict[str, Any]:
    guards: dict[str, Any] = {
        "dlp": {"webhook": {"url": sample, "timeout_ms": 2000, "segment_chars": 24}}}
    guards["dlp-out"] = {**guards["dlp"], "apply_to": ["response"]}
    routes = [{"name": f"w-{p}", "provider": p, "guards": ["dlp"]}
              for p in ("openai", "anthropic", "gemini")]
    routes.append({"name": "wr-anthropic", "provider": "anthropic", "guards": ["dlp-out"]})
    for kind in FAILURES:
        for mode in ("open", "closed"):
            for side in ("request", "response"):
                name = f"{kind}-{mode}-{side}"
                guards[name] = {"webhook": {"url": bad.url(kind), "timeout_ms": 200,
                                            "fail": mode}, "apply_to": [side]}
                routes.append({"name": name, "provider": "openai", "guards": [name]})
    return {"server": {"max_request_body_bytes": 1048576}, "guards": guards,
            "routes": routes}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mock: Mock, sample: str,
       bad: BadWebhook) -> Iterator[Gateway]:
    cfg = config(sample, bad)

    def adjust(doc: dict[str, Any]) -> None:
        for route in cfg["routes"]:
            add_route(doc, f"/{route['name']}/", route["provider"], route["name"])

    gateway = Gateway(tmp_path_factory.mktemp("webhook-gw"), cfg, mock=mock, adjust=adjust)
    yield gateway
    gateway.close()


def chat(gw: Gateway, route: str, content: str, headers: dict[str, str] | None = None,
         **extra: Any) -> httpx.Response:
    return httpx.post(f"{gw.url}/{route}/v1/chat/completions", timeout=30,
                      headers=headers or {},
                      json={"model": "gpt-4o-mini", **extra,
                            "messages": [{"role": "user", "content": content}]})


def test_the_webhook_masks_a_prompt(gw: Gateway) -> None:
    marker = uuid.uuid4().hex
    r = chat(gw, "w-openai", f"{marker} mail {EMAIL} please")
    assert r.status_code == 200, r.text
    last = gw.mock.last()
    assert last is not None
    assert json.loads(last["body"])["messages"][0]["content"] == f"{marker} mail <EMAIL> please"


def test_the_webhook_rejects_a_prompt_without_forwarding_it(gw: Gateway) -> None:
    marker = uuid.uuid4().hex
    r = chat(gw, "w-openai", f"{marker} tell me about Project Falcon")
    assert r.status_code == 400, r.text
    message = r.json()["error"]["message"]
    assert message.startswith("request blocked by guard 'dlp'")
    assert "Falcon" not in message
    last = gw.mock.last()
    assert last is None or marker not in last["body"]


def test_the_webhook_masks_a_whole_reply(gw: Gateway) -> None:
    r = chat(gw, "w-openai", "x", {"x-mock-reply": REPLY})
    assert r.status_code == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == MASKED


def test_the_webhook_refuses_a_whole_reply(gw: Gateway) -> None:
    r = chat(gw, "w-openai", "x", {"x-mock-reply": "the plan is Project Falcon"})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"].startswith("response blocked by guard 'dlp'")
    assert "Falcon" not in r.text


def stream(gw: Gateway, url: str, body: dict[str, Any], reply: str) -> bytes:
    headers = {"x-mock-reply": reply, "x-mock-chunk-bytes": "3"}
    with httpx.Client(timeout=30) as client, client.stream(
            "POST", url, json=body, headers=headers) as r:
        assert r.status_code == 200
        return b"".join(r.iter_raw())


def test_the_webhook_masks_streams_of_every_provider(gw: Gateway) -> None:
    raw = stream(gw, f"{gw.url}/w-openai/v1/chat/completions",
                 {"model": "gpt-4o-mini", "stream": True,
                  "messages": [{"role": "user", "content": "hi"}]}, REPLY)
    assert b"john" not in raw and b"example.com" not in raw
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in sse_json(raw)
                   if c.get("choices")) == MASKED
    assert raw.rstrip().endswith(b"data: [DONE]")
    raw = stream(gw, f"{gw.url}/w-anthropic/v1/messages",
                 {"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": True,
                  "messages": [{"role": "user", "content": "hi"}]}, REPLY)
    assert b"john" not in raw
    assert "".join(e["delta"]["text"] for e in sse_json(raw)
                   if e.get("type") == "content_block_delta") == MASKED
    raw = stream(gw, f"{gw.url}/w-gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent",
                 {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}, REPLY)
    assert b"john" not in raw
    assert "".join(p.get("text", "") for e in sse_json(raw) for c in e.get("candidates", [])
                   for p in c["content"]["parts"]) == MASKED


def test_the_webhook_reads_the_keys_of_json_values_both_ways(gw: Gateway) -> None:
    """An address used as a key: in a prompt's tool input, a whole reply's function call
    and a streamed one, the webhook gets the key as a text and its mask renames it."""
    body = {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [
        {"role": "user", "content": "who came?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1",
                                           "name": "attendance", "input": {EMAIL: "yes"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                      "content": "noted"}]}]}
    r = httpx.post(f"{gw.url}/w-anthropic/v1/messages", json=body, timeout=30)
    assert r.status_code == 200, r.text
    last = gw.mock.last()
    assert last is not None
    assert json.loads(last["body"])["messages"][1]["content"][0]["input"] == {"<EMAIL>": "yes"}
    record = json.dumps({EMAIL: "yes", "note": "fine"})
    gemini = {"contents": [{"role": "user", "parts": [{"text": "who?"}]}]}
    for method in ("generateContent", "streamGenerateContent"):
        r = httpx.post(f"{gw.url}/w-gemini/v1beta/models/gemini-2.5-flash:{method}",
                       json=gemini, timeout=30,
                       headers={"x-mock-reply": record, "x-mock-shape": "tool"})
        assert r.status_code == 200, r.text
        assert b"john" not in r.content
        docs = [r.json()] if method == "generateContent" else sse_json(r.content)
        calls = [p["functionCall"]["args"] for d in docs for c in d.get("candidates", [])
                 for p in c["content"]["parts"] if "functionCall" in p]
        assert calls == [{"<EMAIL>": "yes", "note": "fine"}], method


def test_the_openai_sdk_reads_a_refused_stream(gw: Gateway) -> None:
    client = openai.OpenAI(base_url=f"{gw.url}/w-openai/v1", api_key="k", max_retries=0,
                           default_headers={"x-mock-reply": "fine words first. Then Project "
                                            "Falcon details", "x-mock-chunk-bytes": "4"})
    seen: list[Any] = []
    with pytest.raises(openai.APIError) as exc:
        for chunk in client.chat.completions.create(
                model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "hi"}]):
            seen.append(chunk)
    assert "response blocked by guard 'dlp'" in str(exc.value)
    text = "".join(c.choices[0].delta.content or "" for c in seen if c.choices)
    assert "Falcon" not in text
    assert seen[-1].choices[0].finish_reason == "content_filter"


@pytest.mark.parametrize("kind", FAILURES)
def test_a_failing_webhook_on_prompts_fails_closed_or_open(gw: Gateway, kind: str) -> None:
    marker = uuid.uuid4().hex
    r = chat(gw, f"{kind}-closed-request", f"{marker} mail {EMAIL}")
    assert r.status_code == 503, r.text
    assert r.json()["error"]["message"] == ("guard 'closed-request' is unavailable; "
                                            "try again later").replace(
        "closed-request", f"{kind}-closed-request")
    last = gw.mock.last()
    assert last is None or marker not in last["body"]
    r = chat(gw, f"{kind}-open-request", f"{marker} mail {EMAIL}")
    assert r.status_code == 200, r.text
    last = gw.mock.last()
    assert last is not None and f"{marker} mail {EMAIL}" in last["body"]


@pytest.mark.parametrize("kind", FAILURES)
def test_a_failing_webhook_on_streams_fails_closed_or_open(gw: Gateway, kind: str) -> None:
    body = {"model": "gpt-4o-mini", "stream": True,
            "messages": [{"role": "user", "content": "hi"}]}
    raw = stream(gw, f"{gw.url}/{kind}-closed-response/v1/chat/completions", body, REPLY)
    assert b"john" not in raw and b"[DONE]" not in raw
    assert f"guard '{kind}-closed-response' is unavailable".encode() in raw
    assert b'"finish_reason":"content_filter"' in raw
    raw = stream(gw, f"{gw.url}/{kind}-open-response/v1/chat/completions", body, REPLY)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in sse_json(raw)
                   if c.get("choices")) == REPLY
    assert raw.rstrip().endswith(b"data: [DONE]")


def test_calls_follow_the_contract_and_no_state_is_left(gw: Gateway, bad: BadWebhook) -> None:
    assert gw.server is not None
    stats = gw.server.wait_idle()
    assert stats["streams_active"] == 0 and stats["exchanges_alive"] == 0
    calls = {(c["guard"], c["direction"]): c for c in bad.calls}
    prompt = calls[("status-open-request", "request")]
    assert prompt["version"] == 1 and prompt["route"] == "status-open-request"
    assert prompt["provider"] == "openai" and prompt["model"] == "gpt-4o-mini"
    assert prompt["stream"] is False and prompt["request_id"]
    assert prompt["texts"][0]["role"] == "user" and EMAIL in prompt["texts"][0]["text"]
    segment = calls[("status-open-response", "response")]
    assert segment["stream"] is True and segment["texts"][0]["role"] == "assistant"
    assert "context" in segment["texts"][0]


def test_the_webhook_reads_tool_names_and_refuses_a_prompt_it_would_mask_one_of(
        gw: Gateway) -> None:
    marker = uuid.uuid4().hex
    r = chat(gw, "w-openai", f"{marker} go", tools=[{"type": "function", "function": {
        "name": f"notify_{EMAIL}", "parameters": {"type": "object"}}}])
    assert r.status_code == 400, r.text
    message = r.json()["error"]["message"]
    assert message.startswith("request blocked by guard 'dlp': it would mask a name")
    assert EMAIL not in r.text
    last = gw.mock.last()
    assert last is None or marker not in last["body"]


@pytest.mark.parametrize("fields", [{"user": EMAIL}, {"stop": ["END", f"to {EMAIL}"]},
                                    {"store": True, "metadata": {"customer": EMAIL}}],
                         ids=["user", "stop", "metadata"])
def test_the_webhook_reads_the_fields_beside_the_prompt(gw: Gateway,
                                                        fields: dict[str, Any]) -> None:
    """They reach the provider and stay there; masked, they would mean something else: a
    webhook that would mask one refuses the request (found in this stop's review of what
    the local guards' fix left out)."""
    marker = uuid.uuid4().hex
    r = chat(gw, "w-openai", f"{marker} hello", **fields)
    assert r.status_code == 400, r.text
    assert "a field sent beside the prompt" in r.json()["error"]["message"]
    assert EMAIL not in r.text
    last = gw.mock.last()
    assert last is None or marker not in last["body"]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_the_webhook_masks_the_name_of_a_call_in_a_reply(gw: Gateway, stream: bool) -> None:
    name = f"notify_{EMAIL}"
    r = httpx.post(f"{gw.url}/wr-anthropic/v1/messages", timeout=30,
                   headers={"x-mock-reply": '{"city": "Paris"}', "x-mock-chunk-bytes": "9"},
                   json={"model": "claude-sonnet-4-5", "max_tokens": 64, "stream": stream,
                         "tools": [{"name": name, "input_schema": {"type": "object"}}],
                         "tool_choice": {"type": "tool", "name": name},
                         "messages": [{"role": "user", "content": "go"}]})
    assert r.status_code == 200, r.text
    assert EMAIL.encode() not in r.content
    blocks = [d["content_block"] for d in sse_json(r.content)
              if d.get("type") == "content_block_start"] if stream else r.json()["content"]
    assert [b["name"] for b in blocks if b["type"] == "tool_use"] == ["<EMAIL>"]


def test_the_webhook_reads_a_prompts_tool_arguments_as_the_tool_does(gw: Gateway) -> None:
    """Escapes in tool-call arguments hide nothing from a webhook: it gets each value
    decoded, and its masks go back into valid JSON arguments."""
    marker = uuid.uuid4().hex
    arguments = '{"to": "' + EMAIL.replace("@", "\\u0040").replace(".", "\\u002e") + '"}'
    r = httpx.post(f"{gw.url}/w-openai/v1/chat/completions", timeout=30, json={
        "model": "gpt-4o-mini", "messages": [
            {"role": "user", "content": f"{marker} mail them"},
            {"role": "assistant", "content": None, "tool_calls": [{
                "id": "call_1", "type": "function",
                "function": {"name": "send", "arguments": arguments}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "sent"}]})
    assert r.status_code == 200, r.text
    last = gw.mock.last()
    assert last is not None and marker in last["body"]
    sent = json.loads(last["body"])["messages"][1]["tool_calls"][0]["function"]["arguments"]
    assert json.loads(sent) == {"to": "<EMAIL>"}


def test_the_webhook_reads_a_replys_escaped_tool_arguments(gw: Gateway) -> None:
    r = httpx.post(f"{gw.url}/w-openai/v1/chat/completions", timeout=30,
                   headers={"x-mock-shape": "tool-escaped", "x-mock-reply": f"mail {EMAIL}"},
                   json={"model": "gpt-4o-mini",
                         "messages": [{"role": "user", "content": "go"}]})
    assert r.status_code == 200, r.text
    call = r.json()["choices"][0]["message"]["tool_calls"][0]["function"]
    assert json.loads(call["arguments"]) == {"text": "mail <EMAIL>"}


def test_the_webhook_reads_a_streamed_replys_escaped_tool_arguments(gw: Gateway) -> None:
    client = openai.OpenAI(base_url=f"{gw.url}/w-openai/v1", api_key="k", max_retries=0,
                           default_headers={"x-mock-shape": "tool-escaped",
                                            "x-mock-reply": f"mail {EMAIL}",
                                            "x-mock-chunk-bytes": "7"})
    chunks = list(client.chat.completions.create(
        model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "go"}]))
    arguments = "".join(call.function.arguments or "" for c in chunks if c.choices
                        for call in c.choices[0].delta.tool_calls or [])
    assert json.loads(arguments) == {"text": "mail <EMAIL>"}


def test_an_escaped_value_in_arguments_too_long_to_hold_ends_the_stream(gw: Gateway) -> None:
    """Past the hold (16 segments) the arguments stream on as their source; every character
    escaped hides nothing: the webhook reads them decoded, and the address it finds there,
    no longer maskable, ends the stream refused before it is sent whole (a segment cut
    inside it may have let its head go, as in any streamed text: docs/guards.md)."""
    client = openai.OpenAI(base_url=f"{gw.url}/w-openai/v1", api_key="k", max_retries=0,
                           default_headers={"x-mock-shape": "tool-escaped",
                                            "x-mock-reply": "word " * 120 + f"mail {EMAIL}",
                                            "x-mock-chunk-bytes": "64"})
    seen: list[Any] = []
    with pytest.raises(openai.APIError) as exc:
        for chunk in client.chat.completions.create(
                model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "go"}]):
            seen.append(chunk)
    assert "response blocked by guard 'dlp'" in str(exc.value)
    arguments = "".join(call.function.arguments or "" for c in seen if c.choices
                        for call in c.choices[0].delta.tool_calls or [])
    assert len(arguments) > 16 * 24 and "\\u0077\\u006f\\u0072\\u0064" in arguments
    assert EMAIL not in decode_escapes(arguments)
