"""Prompt guards on requests, through the real Envoy: reject guards answer a 400 in the
provider's format that names the guard and never the matched text (and the provider never
sees the request); mask guards replace each match with its placeholder in the body that goes
upstream, for every provider's request format."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from tests.harness import Gateway, Mock, add_route

pytestmark = pytest.mark.envoy

EMAIL = "john.doe@example.com"
CARD = "4111 1111 1111 1111"          # passes Luhn
NOT_A_CARD = "4111 1111 1111 1112"    # fails Luhn
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"


def config() -> dict[str, Any]:
    guards = {
        "secrets": {"detectors": ["secrets"], "action": "reject"},
        "pii": {"detectors": ["email", "phone", "card"], "action": "mask",
                "patterns": {"employee_id": {"regex": "EMP-[0-9]{6}", "max_len": 10}},
                "deny": {"words": ["project falcon"], "placeholder": "<CODENAME>"}},
    }
    # the same guards on replies only (`r-` routes): a prompt may name any tool
    guards.update({f"{name}-out": {**guard, "apply_to": ["response"]}
                   for name, guard in list(guards.items())})
    routes = [{"name": f"g-{p}", "provider": p, "guards": ["secrets", "pii"]}
              for p in ("openai", "anthropic", "gemini")]
    routes += [{"name": f"r-{p}", "provider": p, "guards": ["secrets-out", "pii-out"]}
               for p in ("openai", "anthropic")]
    # `m-` routes: the same prompt guards, both letting images pass unread
    guards.update({f"{name}-media": {**guards[name], "allow_unread": ["image"]}
                   for name in ("secrets", "pii")})
    routes += [{"name": f"m-{p}", "provider": p, "guards": ["secrets-media", "pii-media"]}
               for p in ("openai", "anthropic", "gemini")]
    return {"server": {"max_request_body_bytes": 1048576}, "guards": guards,
            "routes": routes}


def adjust(doc: dict[str, Any]) -> None:
    for p in ("openai", "anthropic", "gemini"):
        add_route(doc, f"/g-{p}/", p, f"g-{p}")
    for p in ("openai", "anthropic"):
        add_route(doc, f"/r-{p}/", p, f"r-{p}")
    for p in ("openai", "anthropic", "gemini"):
        add_route(doc, f"/m-{p}/", p, f"m-{p}")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    gateway = Gateway(tmp_path_factory.mktemp("guards"), config(), mock=mock, adjust=adjust)
    yield gateway
    gateway.close()


def openai_chat(gw: Gateway, content: str, **extra: Any) -> httpx.Response:
    body = {"model": "gpt-4o-mini", "messages": [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": content}], **extra}
    return httpx.post(f"{gw.url}/g-openai/v1/chat/completions", json=body, timeout=30)


def upstream_body(gw: Gateway) -> dict[str, Any]:
    last = gw.mock.last()
    assert last is not None
    return json.loads(last["body"])


def test_masking_replaces_values_in_what_goes_upstream(gw: Gateway) -> None:
    r = openai_chat(gw, f"mail {EMAIL} or call +1 415 555 0100; card {CARD}, "
                        f"ref {NOT_A_CARD}, id EMP-123456 for Project Falcon")
    assert r.status_code == 200, r.text
    sent = upstream_body(gw)["messages"][1]["content"]
    assert sent == ("mail <EMAIL> or call <PHONE>; card <CARD>, "
                    f"ref {NOT_A_CARD}, id <EMPLOYEE_ID> for <CODENAME>")
    assert upstream_body(gw)["messages"][0]["content"] == "You are helpful."


def test_a_reject_guard_answers_400_without_echoing_or_forwarding(gw: Gateway) -> None:
    marker = uuid.uuid4().hex
    r = openai_chat(gw, f"{marker} my key is {AWS_KEY}")
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["message"] == ("request blocked by guard 'secrets': the prompt contains "
                                "aws access key")
    assert AWS_KEY not in r.text
    last = gw.mock.last()
    assert last is None or marker not in last["body"]


def test_a_reject_guard_reads_the_property_names_of_a_responses_tool_schema(
        gw: Gateway) -> None:
    """The model reads a function tool's schema, keys included: a key spelled as a property
    name is refused as it is in any other text (the Responses API reads schemas whole)."""
    marker = uuid.uuid4().hex
    for schema_holder in ({"tools": [{"type": "function", "name": "send", "parameters": {
            "type": "object", "properties": {AWS_KEY: {"type": "string"}}}}]},
            {"text": {"format": {"type": "json_schema", "name": "out", "schema": {
                "type": "object", "properties": {AWS_KEY: {"type": "string"}}}}}}):
        body = {"model": "gpt-4o-mini", "input": f"{marker} hi", **schema_holder}
        r = httpx.post(f"{gw.url}/g-openai/v1/responses", json=body, timeout=30)
        assert r.status_code == 400, r.text
        assert r.json()["error"]["message"] == ("request blocked by guard 'secrets': the "
                                                "prompt contains aws access key")
        assert AWS_KEY not in r.text
        last = gw.mock.last()
        assert last is None or marker not in last["body"]
    # the same schema without the key goes through, its keys and values as they were
    body = {"model": "gpt-4o-mini", "input": "hi", "tools": [{
        "type": "function", "name": "send", "parameters": {
            "type": "object", "properties": {"to": {"type": "string",
                                                    "description": f"mail {EMAIL}"}}}}]}
    r = httpx.post(f"{gw.url}/g-openai/v1/responses", json=body, timeout=30)
    assert r.status_code == 200, r.text
    sent = upstream_body(gw)["tools"][0]["parameters"]
    assert sent == {"type": "object", "properties": {"to": {"type": "string",
                                                            "description": "mail <EMAIL>"}}}


def test_a_mask_guard_renames_an_address_used_as_a_key(gw: Gateway) -> None:
    """A tool input keyed by addresses: the keys are masked like values, none is lost."""
    other = "jane.roe@example.org"
    body = {"model": "claude-sonnet-4-5", "max_tokens": 64, "messages": [
        {"role": "user", "content": "who came?"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1",
                                           "name": "attendance",
                                           "input": {EMAIL: "yes", other: "no"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1",
                                      "content": "noted"}]}]}
    r = httpx.post(f"{gw.url}/g-anthropic/v1/messages", json=body,
                   headers={"anthropic-version": "2023-06-01"}, timeout=30)
    assert r.status_code == 200, r.text
    sent = upstream_body(gw)["messages"][1]["content"][0]["input"]
    assert sent == {"<EMAIL>": "yes", "<EMAIL>_2": "no"}


@pytest.mark.parametrize(("name", "found"), [
    (f"fetch_{AWS_KEY}", "aws access key"), ("lookup_4111111111111111", "card")])
def test_a_secret_or_a_card_as_a_tool_name_is_refused(gw: Gateway, name: str,
                                                      found: str) -> None:
    """A name cannot be masked (the client dispatches calls by it): what a reject or a mask
    guard finds there refuses the prompt, and the provider never sees it."""
    marker = uuid.uuid4().hex
    r = openai_chat(gw, f"{marker} go", tools=[{"type": "function", "function": {
        "name": name, "parameters": {"type": "object"}}}])
    assert r.status_code == 400, r.text
    assert found in r.json()["error"]["message"]
    assert name not in r.text
    last = gw.mock.last()
    assert last is None or marker not in last["body"]


def test_tool_call_arguments_are_masked(gw: Gateway) -> None:
    body = {"model": "gpt-4o-mini", "messages": [
        {"role": "user", "content": "send it"},
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": "c1", "type": "function",
            "function": {"name": "send", "arguments": json.dumps({"to": EMAIL})}}]},
        {"role": "tool", "tool_call_id": "c1", "content": f"sent to {EMAIL}"}]}
    r = httpx.post(f"{gw.url}/g-openai/v1/chat/completions", json=body, timeout=30)
    assert r.status_code == 200, r.text
    sent = upstream_body(gw)["messages"]
    assert EMAIL not in json.dumps(sent)
    assert sent[2]["content"] == "sent to <EMAIL>"
    assert sent[1]["tool_calls"][0]["id"] == "c1"


def test_anthropic_system_and_blocks(gw: Gateway) -> None:
    body = {"model": "claude-sonnet-5-5", "max_tokens": 50,
            "system": [{"type": "text", "text": f"Escalate to {EMAIL}."}],
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": f"My card is {CARD}"}]}]}
    r = httpx.post(f"{gw.url}/g-anthropic/v1/messages", json=body, timeout=30)
    assert r.status_code == 200, r.text
    sent = upstream_body(gw)
    assert sent["system"][0]["text"] == "Escalate to <EMAIL>."
    assert sent["messages"][0]["content"][0]["text"] == "My card is <CARD>"
    r = httpx.post(f"{gw.url}/g-anthropic/v1/messages", json={
        **body, "messages": [{"role": "user", "content": f"use {AWS_KEY}"}]}, timeout=30)
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "invalid_request_error"


def test_gemini_contents_and_system_instruction(gw: Gateway) -> None:
    body = {"systemInstruction": {"parts": [{"text": f"Contact {EMAIL}"}]},
            "contents": [{"role": "user", "parts": [{"text": f"card {CARD} please"}]}]}
    r = httpx.post(f"{gw.url}/g-gemini/v1beta/models/gemini-2.5-flash:generateContent",
                   json=body, timeout=30)
    assert r.status_code == 200, r.text
    sent = upstream_body(gw)
    assert sent["systemInstruction"]["parts"][0]["text"] == "Contact <EMAIL>"
    assert sent["contents"][0]["parts"][0]["text"] == "card <CARD> please"
    r = httpx.post(f"{gw.url}/g-gemini/v1beta/models/gemini-2.5-flash:generateContent",
                   json={"contents": [{"parts": [{"text": AWS_KEY}]}]}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["status"] == "INVALID_ARGUMENT"


def test_the_openai_sdk_sees_its_prompt_masked(gw: Gateway) -> None:
    client = openai.OpenAI(base_url=f"{gw.url}/g-openai/v1", api_key="k", max_retries=0,
                           default_headers={"x-mock-reply": "echo"})
    stream = client.chat.completions.create(
        model="gpt-4o-mini", stream=True,
        messages=[{"role": "user", "content": f"write to {EMAIL} today"}])
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == "write to <EMAIL> today"      # the mock echoes what reached it
    with pytest.raises(openai.BadRequestError) as exc:
        client.chat.completions.create(model="gpt-4o-mini", messages=[
            {"role": "user", "content": f"key {AWS_KEY}"}])
    assert "blocked by guard 'secrets'" in str(exc.value)


def test_no_state_left(gw: Gateway) -> None:
    stats = gw.server.wait_idle()
    assert stats["streams_active"] == 0 and stats["exchanges_alive"] == 0


REPLY = f"Sure: write to {EMAIL} or call +1 415 555 0100 today."
MASKED = "Sure: write to <EMAIL> or call <PHONE> today."
TINY = {"x-mock-reply": REPLY, "x-mock-chunk-bytes": "3"}


def stream_raw(gw: Gateway, url: str, body: dict[str, Any]) -> bytes:
    with httpx.Client(timeout=30) as client, client.stream(
            "POST", url, json=body, headers=TINY) as r:
        assert r.status_code == 200
        return b"".join(r.iter_raw())


def no_part_of_the_value(raw: bytes) -> None:
    for piece in (b"john", b"doe@", b"@exa", b"mple.com", b"415 555"):
        assert piece not in raw


def sse_json(raw: bytes) -> list[dict[str, Any]]:
    out = []
    for block in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        for line in block.split(b"\n"):
            if line.startswith(b"data: ") and line[6:].strip() not in (b"[DONE]", b""):
                out.append(json.loads(line[6:]))
    return out


def test_openai_stream_is_masked_across_3_byte_chunks(gw: Gateway) -> None:
    raw = stream_raw(gw, f"{gw.url}/g-openai/v1/chat/completions",
                     {"model": "gpt-4o-mini", "stream": True,
                      "messages": [{"role": "user", "content": "hi"}]})
    no_part_of_the_value(raw)
    events = sse_json(raw)
    text = "".join(c["choices"][0]["delta"].get("content") or ""
                   for c in events if c.get("choices"))
    assert text == MASKED
    assert raw.rstrip().endswith(b"data: [DONE]")


def test_anthropic_stream_is_masked(gw: Gateway) -> None:
    raw = stream_raw(gw, f"{gw.url}/g-anthropic/v1/messages",
                     {"model": "claude-sonnet-5-5", "max_tokens": 100, "stream": True,
                      "messages": [{"role": "user", "content": "hi"}]})
    no_part_of_the_value(raw)
    text = "".join(e["delta"]["text"] for e in sse_json(raw)
                   if e.get("type") == "content_block_delta")
    assert text == MASKED
    assert b"event: message_stop" in raw


@pytest.mark.parametrize("query", ["?alt=sse", ""], ids=["sse", "json-array"])
def test_gemini_stream_is_masked(gw: Gateway, query: str) -> None:
    raw = stream_raw(gw, f"{gw.url}/g-gemini/v1beta/models/gemini-2.5-flash:"
                         f"streamGenerateContent{query}",
                     {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]})
    no_part_of_the_value(raw)
    text = "".join(p.get("text", "") for e in sse_json(raw)
                   for c in e.get("candidates", []) for p in c["content"]["parts"])
    assert text == MASKED


def test_a_whole_json_reply_is_masked(gw: Gateway) -> None:
    r = httpx.post(f"{gw.url}/g-openai/v1/chat/completions", timeout=30,
                   headers={"x-mock-reply": REPLY},
                   json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"] == MASKED


#: a function call's args keyed by an address, with a card number as a JSON number
RECORD = json.dumps({EMAIL: 4111111111111111, "note": "call back"})
MASKED_RECORD = {"<EMAIL>": "<CARD>", "note": "call back"}


@pytest.mark.parametrize("method", ["generateContent", "streamGenerateContent?alt=sse",
                                    "streamGenerateContent"],
                         ids=["whole", "sse", "json-array"])
def test_a_function_calls_keys_and_numbers_are_masked_in_replies(gw: Gateway,
                                                                 method: str) -> None:
    r = httpx.post(f"{gw.url}/g-gemini/v1beta/models/gemini-2.5-flash:{method}", timeout=30,
                   headers={"x-mock-reply": RECORD, "x-mock-shape": "tool",
                            "x-mock-chunk-bytes": "7"},
                   json={"contents": [{"role": "user", "parts": [{"text": "who?"}]}]})
    assert r.status_code == 200, r.text
    assert EMAIL.encode() not in r.content and b"411111" not in r.content
    docs = [r.json()] if method == "generateContent" else sse_json(r.content)
    calls = [p["functionCall"]["args"] for d in docs for c in d.get("candidates", [])
             for p in c["content"]["parts"] if "functionCall" in p]
    assert calls == [MASKED_RECORD]


def test_a_tool_inputs_keys_and_numbers_are_guarded_in_a_whole_anthropic_reply(
        gw: Gateway) -> None:
    body = {"model": "claude-sonnet-4-5", "max_tokens": 64,
            "tools": [{"name": "lookup", "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "tool", "name": "lookup"},
            "messages": [{"role": "user", "content": "who?"}]}
    url = f"{gw.url}/g-anthropic/v1/messages"
    r = httpx.post(url, json=body, headers={"x-mock-reply": RECORD}, timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["content"][0]["input"] == MASKED_RECORD
    # an AWS key as a key: the reply is refused, the key never shown
    r = httpx.post(url, json=body, headers={"x-mock-reply": json.dumps({AWS_KEY: 1})},
                   timeout=30)
    assert r.status_code == 400, r.text
    assert AWS_KEY not in r.text and "aws access key" in r.text


def test_the_sdks_read_masked_streams(gw: Gateway) -> None:
    client = openai.OpenAI(base_url=f"{gw.url}/g-openai/v1", api_key="k", max_retries=0,
                           default_headers=TINY)
    stream = client.chat.completions.create(model="gpt-4o-mini", stream=True,
                                            messages=[{"role": "user", "content": "hi"}])
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == MASKED


def test_anthropic_and_google_sdks_read_masked_streams(gw: Gateway) -> None:
    import anthropic
    from google import genai
    from google.genai import types

    claude = anthropic.Anthropic(base_url=f"{gw.url}/g-anthropic", api_key="k", max_retries=0,
                                 default_headers=TINY)
    with claude.messages.stream(model="claude-sonnet-5-5", max_tokens=100,
                                messages=[{"role": "user", "content": "hi"}]) as stream:
        assert "".join(stream.text_stream) == MASKED
        assert stream.get_final_message().stop_reason == "end_turn"
    gemini = genai.Client(api_key="k", http_options=types.HttpOptions(
        base_url=f"{gw.url}/g-gemini", headers=TINY))
    chunks = list(gemini.models.generate_content_stream(model="gemini-2.5-flash",
                                                        contents="hi"))
    assert "".join(c.text or "" for c in chunks) == MASKED


def test_a_reject_guard_on_a_stream_ends_it_the_sdk_way(gw: Gateway) -> None:
    client = openai.OpenAI(base_url=f"{gw.url}/g-openai/v1", api_key="k", max_retries=0,
                           default_headers={"x-mock-reply": f"the key is {AWS_KEY} ok",
                                            "x-mock-chunk-bytes": "5"})
    seen: list[Any] = []
    with pytest.raises(openai.APIError) as exc:
        for chunk in client.chat.completions.create(
                model="gpt-4o-mini", stream=True,
                messages=[{"role": "user", "content": "hi"}]):
            seen.append(chunk)
    assert "response blocked by a guard: it contains aws access key" in str(exc.value)
    text = "".join(c.choices[0].delta.content or "" for c in seen if c.choices)
    assert AWS_KEY[:4] not in text and text.startswith("the key is")
    assert seen[-1].choices[0].finish_reason == "content_filter"
    # the SDK's chunk model has what every chunk has, the refusal's too
    assert (seen[-1].id, seen[-1].model, seen[-1].created) == (
        seen[0].id, seen[0].model, seen[0].created)


def test_a_reject_guard_refuses_a_whole_reply(gw: Gateway) -> None:
    r = httpx.post(f"{gw.url}/g-openai/v1/chat/completions", timeout=30,
                   headers={"x-mock-reply": f"here: {AWS_KEY}"},
                   json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 400, r.text   # as for a prompt: no SDK retries it
    assert r.json()["error"]["message"] == ("response blocked by guard 'secrets': it contains "
                                            "aws access key")
    assert AWS_KEY not in r.text
    # and a clean whole reply still goes out with a right content-length
    r = httpx.post(f"{gw.url}/g-openai/v1/chat/completions", timeout=30,
                   headers={"x-mock-reply": "nothing to see"},
                   json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == \
        "nothing to see"


# --- the names of the calls a model makes ------------------------------------------------

def _forced(name: str) -> dict[str, Any]:
    """An Anthropic request that forces a call to the tool `name` (the mock answers it)."""
    return {"model": "claude-sonnet-4-5", "max_tokens": 64,
            "tools": [{"name": name, "input_schema": {"type": "object"}}],
            "tool_choice": {"type": "tool", "name": name},
            "messages": [{"role": "user", "content": "go"}]}


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_a_secret_in_the_name_of_a_call_in_a_reply_is_masked_or_refused(
        gw: Gateway, stream: bool) -> None:
    """On a route that guards replies only, a model's call named with an address has its
    name masked, and one named with an AWS key is refused (whole) or ends the stream."""
    url = f"{gw.url}/r-anthropic/v1/messages"
    headers = {"x-mock-reply": '{"city": "Paris"}', "x-mock-chunk-bytes": "9"}
    r = httpx.post(url, json={**_forced(f"notify_{EMAIL}"), "stream": stream},
                   headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    assert EMAIL.encode() not in r.content
    if stream:
        starts = [d["content_block"] for d in sse_json(r.content)
                  if d.get("type") == "content_block_start"]
        assert [b["name"] for b in starts] == ["<EMAIL>"]
    else:
        assert r.json()["content"][0]["name"] == "<EMAIL>"
        assert r.json()["content"][0]["input"] == {"city": "Paris"}
    r = httpx.post(url, json={**_forced(f"fetch_{AWS_KEY}"), "stream": stream},
                   headers=headers, timeout=30)
    assert AWS_KEY[4:].encode() not in r.content and b"aws access key" in r.content
    if stream:
        assert r.status_code == 200 and b"event: error" in r.content
    else:
        assert r.status_code == 400, r.text


def test_the_openai_sdk_reads_a_calls_masked_name_in_a_stream(gw: Gateway) -> None:
    name = "lookup_4111111111111111"
    client = openai.OpenAI(base_url=f"{gw.url}/r-openai/v1", api_key="k", max_retries=0,
                           default_headers={"x-mock-shape": "tool", "x-mock-reply": "hi",
                                            "x-mock-chunk-bytes": "4"})
    chunks = list(client.chat.completions.create(
        model="gpt-4o-mini", stream=True, messages=[{"role": "user", "content": "go"}],
        tools=[{"type": "function", "function": {"name": name, "parameters": {}}}],
        tool_choice={"type": "function", "function": {"name": name}}))
    names = [call.function.name for c in chunks if c.choices
             for call in c.choices[0].delta.tool_calls or [] if call.function.name]
    assert names == ["lookup <CARD>"]
    assert gw.mock.last() is not None and name in gw.mock.last()["body"]   # prompt untouched


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_googles_grounding_is_masked_as_the_reply_it_copies(gw: Gateway, stream: bool) -> None:
    """Grounded on Google Search, Gemini repeats each supported segment of its reply in the
    grounding metadata: masked like the reply, read by the google-genai SDK."""
    from google import genai
    from google.genai import types

    client = genai.Client(api_key="k", http_options=types.HttpOptions(
        base_url=f"{gw.url}/g-gemini", headers=TINY))
    config = types.GenerateContentConfig(tools=[types.Tool(google_search=types.GoogleSearch())])
    if stream:
        chunks = list(client.models.generate_content_stream(
            model="gemini-2.5-flash", contents="hi", config=config))
    else:
        chunks = [client.models.generate_content(model="gemini-2.5-flash", contents="hi",
                                                 config=config)]
    assert "".join(c.text or "" for c in chunks) == MASKED
    [metadata] = [c.candidates[0].grounding_metadata for c in chunks
                  if c.candidates and c.candidates[0].grounding_metadata]
    assert [s.segment.text for s in metadata.grounding_supports] == [MASKED]


def test_a_text_file_sent_inline_is_guarded(gw: Gateway) -> None:
    """A text file the google-genai SDK sends inline (base64) is read as the model reads it:
    an address in it is masked before it leaves, a key refuses the prompt."""
    import base64

    from google import genai
    from google.genai import errors, types

    client = genai.Client(api_key="k", http_options=types.HttpOptions(
        base_url=f"{gw.url}/g-gemini"))
    notes = f"name,mail\njohn,{EMAIL}\n".encode()
    client.models.generate_content(model="gemini-2.5-flash", contents=[
        "summarise", types.Part.from_bytes(data=notes, mime_type="text/csv")])
    part = upstream_body(gw)["contents"][0]["parts"][1]
    blob = part.get("inlineData") or part["inline_data"]
    assert base64.b64decode(blob["data"]) == b"name,mail\njohn,<EMAIL>\n"
    with pytest.raises(errors.ClientError) as exc:
        client.models.generate_content(model="gemini-2.5-flash", contents=[
            "summarise", types.Part.from_bytes(data=f"key={AWS_KEY}".encode(),
                                               mime_type="text/plain")])
    assert exc.value.code == 400 and "aws access key" in str(exc.value)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
def test_a_citation_of_a_document_is_masked_in_the_reply(gw: Gateway, stream: bool) -> None:
    """On a route that guards replies only, the passage a reply cites from the prompt's
    document reaches the client masked, in the text block's citations (whole) or its
    citations_delta (stream), which the anthropic SDK reads."""
    import anthropic

    client = anthropic.Anthropic(base_url=f"{gw.url}/r-anthropic", api_key="k", max_retries=0,
                                 default_headers={"x-mock-reply": "As the notes say.",
                                                  "x-mock-chunk-bytes": "11"})
    document = {"type": "document", "title": "notes", "citations": {"enabled": True},
                "source": {"type": "text", "media_type": "text/plain",
                           "data": f"Write to {EMAIL} about it."}}
    messages: Any = [{"role": "user", "content": [document, {"type": "text", "text": "?"}]}]
    if stream:
        with client.messages.stream(model="claude-sonnet-4-5", max_tokens=64,
                                    messages=messages) as events:
            message = events.get_final_message()
    else:
        message = client.messages.create(model="claude-sonnet-4-5", max_tokens=64,
                                         messages=messages)
    [block] = message.content
    assert block.text == "As the notes say."
    assert [c.cited_text for c in block.citations] == ["Write to <EMAIL> about it."]


PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c636060f80f0000010101002d0ab4a80000000049454e44ae426082")


def test_an_image_or_a_file_no_guard_reads_is_refused_by_default(gw: Gateway) -> None:
    """An image, audio or a PDF is read by the model but by no guard: on a guarded route the
    official SDKs get a 400 in their own format naming what and which guard, and the
    provider never sees the request; a route whose guards let images pass unread sends the
    image on untouched, and still refuses a PDF."""
    import base64

    import anthropic
    from google import genai
    from google.genai import errors, types

    marker = uuid.uuid4().hex
    image = {"type": "image_url", "image_url": {
        "url": "data:image/png;base64," + base64.b64encode(PNG).decode()}}
    pdf = {"type": "file", "file": {"filename": "a.pdf",
                                    "file_data": "data:application/pdf;base64,JVBERi0xLjQK"}}
    chat = openai.OpenAI(base_url=f"{gw.url}/g-openai/v1", api_key="k", max_retries=0)
    for part, what in ((image, "an image"), (pdf, "a binary document (a PDF, an office file)")):
        with pytest.raises(openai.BadRequestError) as exc:
            chat.chat.completions.create(model="gpt-4o-mini", messages=[
                {"role": "user", "content": [{"type": "text", "text": marker}, part]}])
        assert f"the prompt carries {what} in a user message, which guard 'secrets' " \
            "cannot read" in str(exc.value)
        last = gw.mock.last()
        assert last is None or marker not in last["body"]
    claude = anthropic.Anthropic(base_url=f"{gw.url}/g-anthropic", api_key="k", max_retries=0)
    block = {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                         "data": base64.b64encode(PNG).decode()}}
    with pytest.raises(anthropic.BadRequestError) as aexc:
        claude.messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=[
            {"role": "user", "content": [{"type": "text", "text": marker}, block]}])
    assert "carries an image" in str(aexc.value)
    gemini = genai.Client(api_key="k", http_options=types.HttpOptions(
        base_url=f"{gw.url}/g-gemini"))
    with pytest.raises(errors.ClientError) as gexc:
        gemini.models.generate_content(model="gemini-2.5-flash", contents=[
            marker, types.Part.from_bytes(data=b"RIFF....WAVE", mime_type="audio/wav")])
    assert gexc.value.code == 400 and "carries audio" in str(gexc.value)
    last = gw.mock.last()
    assert last is None or marker not in last["body"]

    # the m- routes let images pass: untouched, beside a prompt still masked
    chat = openai.OpenAI(base_url=f"{gw.url}/m-openai/v1", api_key="k", max_retries=0)
    chat.chat.completions.create(model="gpt-4o-mini", messages=[
        {"role": "user", "content": [{"type": "text", "text": f"mail {EMAIL}"}, image]}])
    sent = upstream_body(gw)["messages"][0]["content"]
    assert sent == [{"type": "text", "text": "mail <EMAIL>"}, image]
    with pytest.raises(openai.BadRequestError) as exc:
        chat.chat.completions.create(model="gpt-4o-mini", messages=[
            {"role": "user", "content": [{"type": "text", "text": "read"}, pdf]}])
    assert "a binary document" in str(exc.value)
    claude = anthropic.Anthropic(base_url=f"{gw.url}/m-anthropic", api_key="k", max_retries=0)
    claude.messages.create(model="claude-sonnet-4-5", max_tokens=50, messages=[
        {"role": "user", "content": [{"type": "text", "text": "look"}, block]}])
    assert upstream_body(gw)["messages"][0]["content"][1] == block
    gemini = genai.Client(api_key="k", http_options=types.HttpOptions(
        base_url=f"{gw.url}/m-gemini"))
    gemini.models.generate_content(model="gemini-2.5-flash", contents=[
        "look", types.Part.from_bytes(data=PNG, mime_type="image/png")])
    part = upstream_body(gw)["contents"][0]["parts"][1]
    blob = part.get("inlineData") or part["inline_data"]
    assert base64.b64decode(blob["data"]) == PNG


# ---- values written in look-alike characters (`guards.fold`) --------------------------------

#: a card in Arabic-Indic digits and an address with a fullwidth at sign and full stop: read
#: as the plain values, masked where they stand
LOOKALIKE_CARD = "4111 1111 1111 1111".translate(
    str.maketrans("0123456789", "".join(chr(0x0660 + i) for i in range(10))))
LOOKALIKE_EMAIL = "john.doe\uff20example\uff0ecom"


def test_a_prompt_in_look_alike_characters_is_masked_upstream(gw: Gateway) -> None:
    phone = "+1 415 555 0100".translate(   # fullwidth
        str.maketrans("+0123456789", "".join(chr(0xFF0B + i) for i in (0, *range(5, 15)))))
    r = openai_chat(gw, f"card {LOOKALIKE_CARD}, mail {LOOKALIKE_EMAIL}, tel {phone}")
    assert r.status_code == 200, r.text
    assert upstream_body(gw)["messages"][1]["content"] == "card <CARD>, mail <EMAIL>, tel <PHONE>"


def test_a_stream_in_look_alike_characters_is_masked_across_3_byte_chunks(gw: Gateway) -> None:
    reply = f"Card {LOOKALIKE_CARD}; write to {LOOKALIKE_EMAIL} today."
    with httpx.Client(timeout=30) as client, client.stream(
            "POST", f"{gw.url}/g-openai/v1/chat/completions",
            json={"model": "gpt-4o-mini", "stream": True,
                  "messages": [{"role": "user", "content": "hi"}]},
            headers={"x-mock-reply": reply.encode(), "x-mock-chunk-bytes": b"3"}) as r:
        assert r.status_code == 200
        raw = b"".join(r.iter_raw())
    text = "".join(c["choices"][0]["delta"].get("content") or ""
                   for c in sse_json(raw) if c.get("choices"))
    assert text == "Card <CARD>; write to <EMAIL> today."
    for digit in ("\u0664", "\u0661"):   # no digit of it, raw or escaped
        assert digit.encode() not in raw and b"\\u066" not in raw


#: zero-width and format characters inside the values (`guards.invisible`)
ZWSP, ZWJ, SHY = "\u200b", "\u200d", "\u00ad"
HIDDEN_EMAIL = f"john{ZWSP}.doe@exam{SHY}ple.com"
HIDDEN_CARD = f"4111{ZWSP}1111{ZWSP}1111{ZWSP}1111"


def test_a_prompt_with_invisible_characters_inside_its_values_is_masked_upstream(
        gw: Gateway) -> None:
    emoji = "\U0001f468\u200d\U0001f469\u200d\U0001f467"   # joiners outside a value stay
    r = openai_chat(gw, f"card {HIDDEN_CARD}, mail {HIDDEN_EMAIL} {emoji}")
    assert r.status_code == 200, r.text
    assert upstream_body(gw)["messages"][1]["content"] == f"card <CARD>, mail <EMAIL> {emoji}"


def test_a_reject_guard_refuses_a_key_spread_with_joiners(gw: Gateway) -> None:
    r = openai_chat(gw, f"my key is {ZWJ.join(AWS_KEY)}")
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"] == ("request blocked by guard 'secrets': the prompt "
                                            "contains aws access key")


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_stream_with_invisible_characters_inside_its_values_is_masked_across_3_byte_chunks(
        gw: Gateway, provider: str) -> None:
    reply = f"Card {HIDDEN_CARD}; write to {HIDDEN_EMAIL} today."
    if provider == "openai":
        url, body = f"{gw.url}/g-openai/v1/chat/completions", {
            "model": "gpt-4o-mini", "stream": True,
            "messages": [{"role": "user", "content": "hi"}]}
    else:
        url, body = f"{gw.url}/g-anthropic/v1/messages", {
            "model": "claude-sonnet-5-5", "max_tokens": 100, "stream": True,
            "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(timeout=30) as client, client.stream(
            "POST", url, json=body,
            headers={"x-mock-reply": reply.encode(), "x-mock-chunk-bytes": b"3"}) as r:
        assert r.status_code == 200
        raw = b"".join(r.iter_raw())
    events = sse_json(raw)
    if provider == "openai":
        text = "".join(c["choices"][0]["delta"].get("content") or ""
                       for c in events if c.get("choices"))
    else:
        text = "".join(e["delta"]["text"] for e in events
                       if e.get("type") == "content_block_delta")
    assert text == "Card <CARD>; write to <EMAIL> today."
    for piece in (b"john", b"doe@", b"1111", b"ple.com"):
        assert piece not in raw


def spelled(value: str) -> str:
    """`value` in tag characters: invisible, and read by a model as the ASCII it spells."""
    return "".join(chr(0xE0000 + ord(ch)) for ch in value)


def test_a_value_spelled_in_tag_characters_is_masked_upstream(gw: Gateway) -> None:
    r = openai_chat(gw, f"mail {spelled(EMAIL)} please")
    assert r.status_code == 200, r.text
    assert upstream_body(gw)["messages"][1]["content"] == "mail <EMAIL> please"


def test_a_key_smuggled_out_in_tag_characters_ends_the_stream_refused(gw: Gateway) -> None:
    with httpx.Client(timeout=30) as client, client.stream(
            "POST", f"{gw.url}/g-openai/v1/chat/completions",
            json={"model": "gpt-4o-mini", "stream": True,
                  "messages": [{"role": "user", "content": "hi"}]},
            headers={"x-mock-reply": f"all fine{spelled(AWS_KEY)} ok".encode(),
                     "x-mock-chunk-bytes": b"5"}) as r:
        assert r.status_code == 200
        raw = b"".join(r.iter_raw())
    assert b"response blocked by a guard: it contains aws access key" in raw
    events = sse_json(raw)
    text = "".join(c["choices"][0]["delta"].get("content") or ""
                   for c in events if c.get("choices"))
    assert text.startswith("all") and spelled("AKIA") not in text   # ("fine" may be held)
    assert spelled("AKIA").encode() not in raw and b"\\udb40" not in raw
    assert [c["choices"][0]["finish_reason"] for c in events if c.get("choices")][-1] \
        == "content_filter"
