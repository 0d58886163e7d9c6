"""OpenAI Chat Completions -> Gemini / Vertex request translation: golden translations for each
feature (outputs in tests/golden/translate/google_requests.json), every refusal naming its
field, and the drop mode. (Replies: test_translate_google_reply.py.)

Regenerate the golden file after a deliberate change with
``GOLDEN_UPDATE=1 pytest tests/unit/test_translate_google.py`` and review the diff.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest

from extproc.translate.base import Backend, Unsupported
from extproc.translate.google import THINKING_BUDGETS, translate_request
from extproc.translate.google_messages import THOUGHT_SEP
from extproc.translate.google_request import CAPPED_EFFORTS

GOLDEN = Path(__file__).parent.parent / "golden" / "translate" / "google_requests.json"
GEMINI = Backend("gemini", "gemini-2.5-flash")
VERTEX = Backend("vertex", "gemini-2.5-pro", "my-project", "us-central1")
PNG = "iVBORw0KGgo="   # base64 of the PNG signature, enough for a data URL

USER = {"role": "user", "content": "Hi"}


def req(**fields: Any) -> dict[str, Any]:
    return {"model": "front-model", "messages": [USER], **fields}


WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a place",
    "parameters": {"type": "object", "properties": {"location": {"type": "string"}},
                   "required": ["location"], "additionalProperties": False,
                   "$defs": {"unit": {"enum": ["c", "f"]}}}}}
TIME_TOOL = {"type": "function", "function": {"name": "get_time"}}
CALL = {"id": "call_1", "type": "function",
        "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'}}

# name -> (backend, request, drop_unsupported)
CASES: dict[str, tuple[Backend, dict[str, Any], bool]] = {
    "minimal_gemini": (GEMINI, req(), False),
    "minimal_vertex": (VERTEX, req(), False),
    "stream_gemini": (GEMINI, req(stream=True, stream_options={"include_usage": True}), False),
    "stream_vertex": (VERTEX, req(stream=True), False),
    "system_and_developer": (GEMINI, {"model": "m", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "developer", "content": [{"type": "text", "text": "Answer in "},
                                          {"type": "text", "text": "French."}]},
        USER,
        {"role": "system", "content": "Never swear."}]}, False),
    "user_parts": (GEMINI, req(messages=[{"role": "user", "content": [
        {"type": "text", "text": "What is in these?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.JPG?size=2",
                                            "detail": "auto"}},
        {"type": "image_url", "image_url": {"url": "http://example.com/a/b.webp"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/x.heic"}},
        {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
        {"type": "input_audio", "input_audio": {"data": "SUQz", "format": "mp3"}},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBERi0=",
                                  "filename": "a.pdf"}}]}]), False),
    "tool_round_trip": (VERTEX, req(messages=[
        USER,
        {"role": "assistant", "content": "Let me check.", "tool_calls": [
            CALL,
            {"id": "call_2__thought__c2lnbmF0dXJl", "type": "function",
             "function": {"name": "get_time", "arguments": ""}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 21, "sky": "clear"}'},
        {"role": "tool", "tool_call_id": "call_2__thought__c2lnbmF0dXJl",
         "content": [{"type": "text", "text": "12:00"}]},
        {"role": "user", "content": "Thanks"},
        {"role": "assistant", "content": [{"type": "text", "text": "No: "},
                                          {"type": "refusal", "refusal": "unsafe. "}],
         "refusal": "I can't do that."},
        {"role": "user", "content": "ok"}],
        tools=[WEATHER_TOOL, TIME_TOOL]), False),
    "tool_result_not_object": (GEMINI, req(messages=[
        USER, {"role": "assistant", "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "call_1", "content": "[1, 2]"}]), False),
    "tool_choice_auto": (GEMINI, req(tools=[WEATHER_TOOL], tool_choice="auto"), False),
    "tool_choice_none": (GEMINI, req(tools=[WEATHER_TOOL], tool_choice="none"), False),
    "tool_choice_none_no_tools": (GEMINI, req(tool_choice="none"), False),
    "tool_choice_required": (GEMINI, req(tools=[WEATHER_TOOL], tool_choice="required"), False),
    "tool_choice_named": (GEMINI, req(tools=[WEATHER_TOOL, TIME_TOOL], tool_choice={
        "type": "function", "function": {"name": "get_time"}}), False),
    "tool_choice_allowed_auto": (GEMINI, req(tools=[WEATHER_TOOL, TIME_TOOL], tool_choice={
        "type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": [
            {"type": "function", "function": {"name": "get_time"}}]}}), False),
    "tool_choice_allowed_required": (GEMINI, req(tools=[WEATHER_TOOL, TIME_TOOL], tool_choice={
        "type": "allowed_tools", "allowed_tools": {"mode": "required", "tools": [
            {"type": "function", "function": {"name": "get_weather"}}]}}), False),
    "strict_tools": (GEMINI, req(tools=[{"type": "function", "function": {
        **WEATHER_TOOL["function"], "strict": True}}], parallel_tool_calls=True), False),
    "json_object": (GEMINI, req(response_format={"type": "json_object"}), False),
    "json_schema": (VERTEX, req(response_format={"type": "json_schema", "json_schema": {
        "name": "answer", "strict": True, "schema": {
            "type": "object", "properties": {"n": {"type": ["integer", "null"]}},
            "required": ["n"], "additionalProperties": False}}}), False),
    "text_format": (GEMINI, req(response_format={"type": "text"}), False),
    "sampling": (GEMINI, req(temperature=0.2, top_p=0.9, stop=["END", "STOP"], max_tokens=10,
                             max_completion_tokens=20, n=2, seed=7, presence_penalty=0.5,
                             frequency_penalty=-0.5), False),
    "stop_string": (GEMINI, req(stop="END", max_tokens=5), False),
    "defaults_accepted": (GEMINI, req(
        n=1, logprobs=False, presence_penalty=0, store=False, parallel_tool_calls=True,
        service_tier="auto", modalities=["text"], verbosity="medium", logit_bias={},
        metadata={}, top_logprobs=None, user=None, audio=None, prediction=None,
        functions=None, function_call=None, temperature=None, stream=False), False),
    **{f"reasoning_{effort}": (GEMINI, req(reasoning_effort=effort),
                               effort in CAPPED_EFFORTS)   # (sent as high: dropped)
       for effort in THINKING_BUDGETS},
    "drop_mode": (GEMINI, req(
        messages=[{"role": "user", "name": "ann", "content": [
            {"type": "text", "text": "Hi", "prompt_cache_breakpoint": {"mode": "explicit"}},
            {"type": "image_url", "image_url": {"url": "https://e.com/i.png",
                                                "detail": "high"}}]},
            {"role": "assistant", "content": "Hello", "reasoning_content": "hmm"}],
        user="u-1", safety_identifier="s", logprobs=True, top_logprobs=3, logit_bias={"1": 5},
        store=True, metadata={"a": "b"}, service_tier="flex", modalities=["text", "audio"],
        audio={"voice": "alloy", "format": "mp3"}, parallel_tool_calls=False,
        prediction={"type": "content", "content": "x"}, web_search_options={},
        verbosity="low", moderation={"model": "omni-moderation-latest"},
        prompt_cache_key="k", prompt_cache_options={"mode": "explicit"},
        prompt_cache_retention="24h", extra_field=1, temperature=0.5), True),
}


def translate(name: str) -> dict[str, Any]:
    backend, doc, drop = CASES[name]
    original = copy.deepcopy(doc)
    out = translate_request(doc, backend, drop_unsupported=drop)
    assert doc == original, "the client's request must not be changed"
    assert out.headers == {"content-type": "application/json"}
    return {"path": out.path, "stream": out.stream, "dropped": list(out.dropped),
            "body": json.loads(out.body)}


def test_golden_requests() -> None:
    got = {name: translate(name) for name in CASES}
    if os.environ.get("GOLDEN_UPDATE"):
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(json.dumps(got, indent=1, ensure_ascii=False) + "\n")
    want = json.loads(GOLDEN.read_text())
    assert set(want) == set(got)
    for name in CASES:
        assert got[name] == want[name], name


def test_paths() -> None:
    assert translate("minimal_gemini")["path"] == \
        "/v1beta/models/gemini-2.5-flash:generateContent"
    assert translate("stream_gemini")["path"] == \
        "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    assert translate("stream_vertex")["path"] == (
        "/v1/projects/my-project/locations/us-central1/publishers/google/models/"
        "gemini-2.5-pro:streamGenerateContent?alt=sse")
    assert translate("stream_vertex")["stream"] is True
    assert translate("minimal_vertex")["stream"] is False


def test_compact_body_keeps_unicode() -> None:
    out = translate_request(req(messages=[{"role": "user", "content": "héllo ✓"}]), GEMINI)
    assert out.body == '{"contents":[{"role":"user","parts":[{"text":"héllo ✓"}]}]}'.encode()


def test_key_features_in_golden() -> None:
    """The golden file says what the module doc promises (so a regenerated file that
    silently changed meaning fails here)."""
    body = translate("tool_round_trip")["body"]
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user", "model", "user"]
    model = body["contents"][1]["parts"]
    assert model[1] == {"functionCall": {"name": "get_weather", "args": {"location": "Paris"}}}
    assert model[2] == {"functionCall": {"name": "get_time", "args": {}},
                        "thoughtSignature": "c2lnbmF0dXJl"}
    results = body["contents"][2]["parts"]
    assert results[0] == {"functionResponse": {"name": "get_weather", "response": {
        "content": {"temp": 21, "sky": "clear"}}}}
    assert results[1] == {"functionResponse": {"name": "get_time",
                                               "response": {"content": "12:00"}}}
    assert results[2] == {"text": "Thanks"}
    decl = body["tools"][0]["functionDeclarations"][0]
    assert decl["parametersJsonSchema"] == WEATHER_TOOL["function"]["parameters"]
    system = translate("system_and_developer")["body"]["systemInstruction"]
    # a list of text parts stays parts, as the guards read them (never joined into one)
    assert system == {"parts": [{"text": "Be brief."}, {"text": "Answer in "},
                                {"text": "French."}, {"text": "Never swear."}]}
    gen = translate("sampling")["body"]["generationConfig"]
    assert gen["maxOutputTokens"] == 20 and gen["candidateCount"] == 2
    assert translate("strict_tools")["body"]["toolConfig"] == {
        "functionCallingConfig": {"mode": "VALIDATED"}}
    assert translate("reasoning_none")["body"]["generationConfig"] == {
        "thinkingConfig": {"thinkingBudget": 0}}
    assert translate("reasoning_high")["body"]["generationConfig"] == {
        "thinkingConfig": {"thinkingBudget": 24576, "includeThoughts": True}}
    assert "generationConfig" not in translate("defaults_accepted")["body"]
    assert "toolConfig" not in translate("tool_choice_none_no_tools")["body"]


def test_drop_mode_lists_every_dropped_field() -> None:
    out = translate("drop_mode")
    assert set(out["dropped"]) == {
        "messages[0].name", "messages[0].content[0].prompt_cache_breakpoint",
        "messages[0].content[1].image_url.detail", "messages[1].reasoning_content", "user",
        "safety_identifier", "logprobs", "top_logprobs", "logit_bias", "store", "metadata",
        "service_tier", "modalities", "audio", "parallel_tool_calls", "prediction",
        "web_search_options", "verbosity", "moderation", "prompt_cache_key",
        "prompt_cache_options", "prompt_cache_retention", "extra_field"}
    assert out["body"] == {
        "contents": [{"role": "user", "parts": [
            {"text": "Hi"},
            {"fileData": {"mimeType": "image/png", "fileUri": "https://e.com/i.png"}}]},
            {"role": "model", "parts": [{"text": "Hello"}]}],
        "generationConfig": {"temperature": 0.5}}


# (request, the field named, droppable)
REFUSED: list[tuple[dict[str, Any], str, bool]] = [
    (req(logprobs=True), "logprobs", True),
    (req(top_logprobs=2), "top_logprobs", True),
    (req(logit_bias={"50256": -100}), "logit_bias", True),
    (req(audio={"voice": "alloy", "format": "wav"}), "audio", True),
    (req(modalities=["text", "audio"]), "modalities", True),
    (req(prediction={"type": "content", "content": "x"}), "prediction", True),
    (req(web_search_options={}), "web_search_options", True),
    (req(service_tier="priority"), "service_tier", True),
    (req(store=True), "store", True),
    (req(metadata={"k": "v"}), "metadata", True),
    (req(user="user-1"), "user", True),
    (req(safety_identifier="h"), "safety_identifier", True),
    (req(verbosity="high"), "verbosity", True),
    (req(moderation={"model": "omni-moderation-latest"}), "moderation", True),
    (req(prompt_cache_key="k"), "prompt_cache_key", True),
    (req(prompt_cache_retention="24h"), "prompt_cache_retention", True),
    (req(prompt_cache_options={"ttl": "30m"}), "prompt_cache_options", True),
    (req(parallel_tool_calls=False, tools=[WEATHER_TOOL]), "parallel_tool_calls", True),
    (req(unknown_field=True), "unknown_field", True),
    # (OpenAI shows these to the model; Gemini has no place for them, or a smaller budget)
    (req(response_format={"type": "json_schema", "json_schema": {
        "name": "a", "description": "the answer", "schema": {"type": "object"}}}),
     "response_format.json_schema.description", True),
    (req(reasoning_effort="xhigh"), "reasoning_effort", True),
    (req(reasoning_effort="max"), "reasoning_effort", True),
    (req(n=True), "n", False),
    (req(logprobs=0), "logprobs", True),
    (req(functions=[{"name": "f"}]), "functions", False),
    (req(function_call="auto"), "function_call", False),
    (req(messages=[{"role": "function", "name": "f", "content": "x"}]),
     "messages[0].role", False),
    (req(messages=[{"role": "critic", "content": "x"}]), "messages[0].role", False),
    (req(messages=[{"role": "user", "name": "ann", "content": "x"}]), "messages[0].name", True),
    (req(messages=[{"role": "user", "content": "x", "extra": 1}]), "messages[0].extra", False),
    (req(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {
        "url": "https://e.com/cat"}}]}]), "messages[0].content[0].image_url.url", False),
    (req(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {
        "url": "https://e.com/cat.bmp"}}]}]), "messages[0].content[0].image_url.url", False),
    (req(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {
        "url": "ftp://e.com/cat.png"}}]}]), "messages[0].content[0].image_url.url", False),
    (req(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {
        "url": "data:text/plain;base64,aGk="}}]}]),
     "messages[0].content[0].image_url.url", False),
    (req(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {
        "url": "data:image/png;base64,not base64!"}}]}]),
     "messages[0].content[0].image_url.url", False),
    (req(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {
        "url": "https://e.com/a.png", "detail": "low"}}]}]),
     "messages[0].content[0].image_url.detail", True),
    (req(messages=[{"role": "user", "content": [{"type": "text", "text": "x",
                                                 "prompt_cache_breakpoint": {}}]}]),
     "messages[0].content[0].prompt_cache_breakpoint", True),
    (req(messages=[{"role": "user", "content": [{"type": "input_audio", "input_audio": {
        "data": "AAAA", "format": "flac"}}]}]),
     "messages[0].content[0].input_audio.format", False),
    (req(messages=[{"role": "user", "content": [{"type": "file", "file": {
        "file_id": "file-abc"}}]}]), "messages[0].content[0].file.file_id", False),
    (req(messages=[{"role": "user", "content": [{"type": "file", "file": {
        "file_data": "JVBERi0="}}]}]), "messages[0].content[0].file.file_data", False),
    (req(messages=[{"role": "user", "content": [{"type": "video", "video": {}}]}]),
     "messages[0].content[0].type", False),
    (req(messages=[USER, {"role": "assistant", "tool_calls": [
        {**CALL, "function": {"name": "get_weather", "arguments": "{not json"}}]}]),
     "messages[1].tool_calls[0].function.arguments", False),
    (req(messages=[USER, {"role": "assistant", "tool_calls": [
        {**CALL, "function": {"name": "get_weather", "arguments": "[1]"}}]}]),
     "messages[1].tool_calls[0].function.arguments", False),
    (req(messages=[USER, {"role": "assistant", "tool_calls": [
        {**CALL, "type": "custom"}]}]), "messages[1].tool_calls[0].type", False),
    (req(messages=[USER, {"role": "assistant", "content": "x",
                          "function_call": {"name": "f", "arguments": "{}"}}]),
     "messages[1].function_call", False),
    (req(messages=[USER, {"role": "assistant", "content": "x", "audio": {"id": "a"}}]),
     "messages[1].audio", False),
    (req(messages=[USER, {"role": "assistant", "content": "x", "reasoning_content": "r"}]),
     "messages[1].reasoning_content", True),
    (req(messages=[USER, {"role": "assistant", "content": None}]),
     "messages[1].content", False),
    (req(messages=[USER, {"role": "tool", "tool_call_id": "nope", "content": "x"}]),
     "messages[1].tool_call_id", False),
    (req(messages=[USER, {"role": "tool", "tool_call_id": "call_1", "content": "x"},
                   {"role": "assistant", "tool_calls": [CALL]}]),
     "messages[1].tool_call_id", False),
    (req(messages=[{"role": "system", "content": [{"type": "image_url", "image_url": {
        "url": "https://e.com/a.png"}}]}, USER]), "messages[0].content[0]", False),
    (req(messages=[{"role": "system", "content": "only a system prompt"}]), "messages", False),
    (req(messages=[]), "messages", False),
    (req(tools=[{"type": "custom", "custom": {"name": "grammar"}}]), "tools[0].type", False),
    (req(tools=[{"type": "function", "function": {"name": "f", "parameters": "x"}}]),
     "tools[0].function.parameters", False),
    (req(tool_choice="required"), "tool_choice", False),
    (req(tools=[WEATHER_TOOL], tool_choice={"type": "function",
                                            "function": {"name": "other"}}),
     "tool_choice", False),
    (req(tools=[WEATHER_TOOL], tool_choice={"type": "custom", "custom": {"name": "g"}}),
     "tool_choice", False),
    (req(response_format={"type": "json_schema", "json_schema": {"name": "a",
                                                                "schema": {}, "x": 1}}),
     "response_format.json_schema.x", False),
    (req(response_format={"type": "grammar"}), "response_format", False),
    (req(reasoning_effort="extreme"), "reasoning_effort", False),
    (req(temperature="hot"), "temperature", False),
    (req(max_tokens=1.5), "max_tokens", False),
    (req(stop=[1]), "stop", False),
    (req(stream="yes"), "stream", False),
    (req(stream_options={"include_usage": True}), "stream_options", False),
    (req(stream=True, stream_options={"include_usage": True, "x": True}),
     "stream_options.x", False),
    # found by review: sent as given while budgets reserved the next limit (-3 beside 5),
    # and a padding the translated stream does not have accepted in silence
    (req(max_completion_tokens=-3, max_tokens=5), "max_completion_tokens", False),
    (req(max_tokens=-1), "max_tokens", False),
    (req(stream=True, stream_options={"include_obfuscation": True}),
     "stream_options.include_obfuscation", True),
]


@pytest.mark.parametrize(("doc", "field", "droppable"), REFUSED,
                         ids=[f"{i}-{c[1]}" for i, c in enumerate(REFUSED)])
def test_refused_names_the_field(doc: dict[str, Any], field: str, droppable: bool) -> None:
    with pytest.raises(Unsupported) as err:
        translate_request(doc, GEMINI)
    assert err.value.field == field
    assert str(err.value).startswith(f"{field}: ")
    if droppable:
        out = translate_request(doc, GEMINI, drop_unsupported=True)
        assert field in out.dropped
        assert field.split(".")[-1].split("[")[0] not in json.loads(out.body)
    else:
        with pytest.raises(Unsupported) as err2:
            translate_request(doc, GEMINI, drop_unsupported=True)
        assert err2.value.field == field


@pytest.mark.parametrize("model", ["gemini/2.5", "a:b", "x?alt=json", "m#f", "m%2F",
                                   "", "../v1", "gemini 2"])
def test_unsafe_model_names_are_refused(model: str) -> None:
    for backend in (Backend("gemini", model), Backend("vertex", model, "p", "us-central1")):
        with pytest.raises(Unsupported) as err:
            translate_request(req(), backend)
        assert err.value.field == "model"


@pytest.mark.parametrize(("project", "location"), [(None, "us-central1"), ("p", None),
                                                   ("p/x", "us-central1"), ("p", "us?x")])
def test_vertex_needs_project_and_location(project: str | None, location: str | None) -> None:
    with pytest.raises(ValueError, match="Vertex backend needs") as err:
        translate_request(req(), Backend("vertex", "gemini-2.5-flash", project, location))
    assert not isinstance(err.value, Unsupported)


def test_other_providers_are_not_google() -> None:
    with pytest.raises(ValueError, match="not a Google backend"):
        translate_request(req(), Backend("anthropic", "claude"))


CALL = {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}


def _tool_result(content: Any) -> Any:
    body = json.loads(translate_request(req(messages=[
        {"role": "user", "content": "who owns it?"},
        {"role": "assistant", "content": None, "tool_calls": [CALL]},
        {"role": "tool", "tool_call_id": "c1", "content": content}]), GEMINI).body)
    return body["contents"][-1]["parts"][0]["functionResponse"]["response"]["content"]


@pytest.mark.parametrize("content", [
    '{"owner":"john.doe\\u0040example.com"}',          # an escape the guards read as written
    '{"john.doe\\u0040example.com":true}',
    '{"card":4.111111111111111e15}',                   # a number Gemini would write otherwise
    '{"card":4111111111111111E0}',
    '{"a":"\\"quoted\\""}'])
def test_a_tool_result_goes_as_the_text_the_guards_read(content: str) -> None:
    """The guards read a tool result as its text; as an object, Gemini's model would read
    its escapes decoded and its numbers rewritten, which no guard saw. So the text goes."""
    assert _tool_result(content) == content


@pytest.mark.parametrize(("content", "sent"), [
    ('{"temp": 21, "sky": "clear", "wind": 3.5, "note": "e1 ok"}',
     {"temp": 21, "sky": "clear", "wind": 3.5, "note": "e1 ok"}),
    ("12:00", "12:00"), ("[1, 2]", "[1, 2]"),
    ([{"type": "text", "text": "john.doe@exa"}, {"type": "text", "text": "mple.com"}],
     ["john.doe@exa", "mple.com"]),                  # parts stay apart, as guards read them
    ([{"type": "text", "text": '{"a": 1}'}], {"a": 1})])
def test_a_tool_result_that_reads_as_its_text_goes_as_an_object(content: Any, sent: Any) -> None:
    assert _tool_result(content) == sent


def test_text_parts_are_never_joined_into_a_value_no_guard_read() -> None:
    parts = [{"type": "text", "text": "key AKIAIOSF"}, {"type": "text", "text": "ODNN7EXAMPLE"}]
    body = json.loads(translate_request(req(messages=[
        {"role": "system", "content": parts}, {"role": "user", "content": "hi"},
        {"role": "assistant", "content": parts}, {"role": "user", "content": "ok"}]),
        GEMINI).body)
    assert body["systemInstruction"]["parts"] == [{"text": "key AKIAIOSF"},
                                                  {"text": "ODNN7EXAMPLE"}]
    assert body["contents"][1]["parts"] == [{"text": "key AKIAIOSF"}, {"text": "ODNN7EXAMPLE"}]


def test_a_file_name_gemini_has_no_place_for_is_listed_as_dropped_in_either_mode() -> None:
    """Gemini's inlineData has no name: it is left out, and never silently (the OpenAI SDK
    sends a filename with every file, so refusing it would refuse file parts)."""
    part = {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{PNG}",
                                     "filename": "a.pdf"}}
    for drop in (False, True):
        out = translate_request(req(messages=[{"role": "user", "content": [part]}]), GEMINI,
                                drop_unsupported=drop)
        assert out.dropped == ("messages[0].content[0].file.filename",)
        assert b"a.pdf" not in out.body
    part["file"]["filename"] = {"a": 1}
    with pytest.raises(Unsupported) as err:
        translate_request(req(messages=[{"role": "user", "content": [part]}]), GEMINI)
    assert err.value.field == "messages[0].content[0].file.filename"


def _signed(call_id: str) -> dict[str, Any]:
    return req(messages=[
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": call_id, "type": "function",
             "function": {"name": "lookup", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": call_id, "content": "ok"}])


@pytest.mark.parametrize("signature", [
    "not base64!", "abc", "a" * 4 + "\n", "{\"x\":1}", "QUJD" * (16 * 1024 + 1)])
def test_a_thought_signature_that_is_not_bounded_base64_is_refused(signature: str) -> None:
    with pytest.raises(Unsupported) as err:
        translate_request(_signed(f"c1{THOUGHT_SEP}{signature}"), GEMINI)
    assert err.value.field == "messages[1].tool_calls[0].id"


def test_a_thought_signature_gemini_gave_goes_back() -> None:
    body = json.loads(translate_request(_signed(f"c1{THOUGHT_SEP}QUJD+/=="), GEMINI).body)
    assert body["contents"][1]["parts"][0]["thoughtSignature"] == "QUJD+/=="
