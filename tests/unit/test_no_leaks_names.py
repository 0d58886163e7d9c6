"""No secret a model writes as the name of a call crosses the gateway in clear: an AWS key
id, an address or a card number written as the name of an OpenAI tool call or function
call, an Anthropic tool use, a Gemini function call or a Responses API function, custom
tool or MCP call (and its server's name), in whole replies and in streams cut anywhere. A
reject guard refuses the reply or ends the stream; a mask guard masks the name, read as the
prompt's names are read: as written, and with underscores as spaces
(`lookup_4111111111111111`). A client dispatches calls by name, but a name a guard finds
something in is none the prompt declared (the prompt's names pass the same guards).

The exchanges, the replies and the config (`tests.leaks.CONFIG`: e-mail addresses and card
numbers masked, AWS keys refused) are those of the other no-leak tests.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from extproc import protocol as P
from extproc.guards.names import mask_name, name_readings
from extproc.providers import adapter_for
from extproc.providers.slots import Name
from tests.leak_replies import FORMATS, builder
from tests.leaks import EMAILS, KEYS
from tests.unit.test_no_leaks_json_values import check
from tests.unit.test_no_leaks_streams import play, split
from tests.unit.test_no_leaks_whole import FORMATS as WHOLE

Doc = dict[str, Any]
#: the secret as text, the name that holds it, and its placeholder (None: refused)
SECRETS = {
    "aws-key": (KEYS[0], KEYS[0], None),
    "email": (EMAILS[0], EMAILS[0], "<EMAIL>"),
    "card-after-underscore": ("4111111111111111", "lookup_4111111111111111", "<CARD>"),
}
#: the fields of the replies the other no-leak tests build whose items are named calls
CALL_FIELDS = ("tool-call-arguments", "function-call-arguments", "function-call",
               "tool-use-input", "server-tool-use-input", "input-json",
               "server-tool-input-json", "custom-tool-call", "mcp-call-arguments")


def renamed(doc: Any, name: str, key: str = "name") -> Any:
    """`doc` (a reply, an event, a list of them) with every string under `key` set to
    `name`."""
    if isinstance(doc, list):
        return [renamed(item, name, key) for item in doc]
    if isinstance(doc, dict):
        return {k: name if k == key and isinstance(v, str) else renamed(v, name, key)
                for k, v in doc.items()}
    return doc


# --- whole replies ---------------------------------------------------------------------

def _keys(field: str) -> tuple[str, ...]:
    """The name keys of a call field: an MCP call names its server too."""
    if field == "mcp-call-arguments":
        return ("name", "server_label")
    if field in ("tool-use-input", "server-tool-use-input"):
        return ("name", "server_name")    # as an Anthropic MCP tool use
    return ("name",)


WHOLE_CASES = [(fmt, field, key) for fmt, (_, fields) in WHOLE.items() for field in fields
               if field in CALL_FIELDS for key in _keys(field)]


def test_the_whole_cases_cover_every_format_that_names_calls() -> None:
    assert {fmt for fmt, _, _ in WHOLE_CASES} >= {"openai-chat", "azure-chat",
                                                  "openai-responses", "anthropic", "gemini",
                                                  "vertex"}


@pytest.mark.parametrize(("fmt", "field", "key"), WHOLE_CASES,
                         ids=["-".join(case) for case in WHOLE_CASES])
@pytest.mark.parametrize("kind", sorted(SECRETS))
@pytest.mark.parametrize("mode", [P.STREAMED, P.FULL_DUPLEX], ids=["buffered", "duplex"])
def test_a_secret_in_the_name_of_a_call_in_a_whole_reply_is_guarded(
        fmt: str, field: str, key: str, kind: str, mode: int) -> None:
    spec, fields = WHOLE[fmt]
    secret, name, placeholder = SECRETS[kind]
    doc = fields[field]("{}", 3, 1)
    if key == "server_name":
        doc = {**doc, "content": [dict(b, type="mcp_tool_use", server_name="crm")
                                  if b.get("type") in ("tool_use", "server_tool_use") else b
                                  for b in doc["content"]]}
    assert f'"{key}"' in json.dumps(doc)
    doc = renamed(doc, name, key)
    check(play(spec, [doc], [17, 80, 200], mode), secret, placeholder)


def test_a_masked_name_is_the_only_change_to_a_whole_reply() -> None:
    spec, fields = WHOLE["openai-chat"]
    doc = renamed(fields["tool-call-arguments"]('{"to": "x"}', 1, 0), "lookup_4111111111111111")
    out = json.loads(play(spec, [doc], [], P.STREAMED).body)
    calls = out["choices"][0]["message"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["lookup <CARD>", "lookup <CARD>"]
    assert [c["function"]["arguments"] for c in calls] == ["{}", '{"to": "x"}']


def test_an_innocent_name_passes_a_whole_reply_untouched() -> None:
    spec, fields = WHOLE["anthropic"]
    doc = renamed(fields["tool-use-input"]('{"to": "x"}', 2, 1), "get_weather_2024")
    out = play(spec, [doc], [], P.STREAMED)
    assert out.refused is None
    assert json.loads(out.body) == doc


# --- streamed replies ------------------------------------------------------------------

def _stream_cases() -> list[tuple[str, str]]:
    out = []
    for fmt in FORMATS:
        for field in CALL_FIELDS:
            try:
                builder(fmt, field)
            except KeyError:
                continue
            out.append((fmt, field))
    return out


STREAM_CASES = _stream_cases()


def test_the_stream_cases_cover_every_format_that_names_calls() -> None:
    assert {fmt for fmt, _ in STREAM_CASES} >= {
        "openai-chat", "azure-chat", "openai-responses", "anthropic", "gemini-sse",
        "gemini-array-to-sse", "gemini-array-whole", "vertex-sse"}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.sampled_from(STREAM_CASES), kind=st.sampled_from(sorted(SECRETS)),
       data=st.data())
def test_a_secret_in_the_name_of_a_streamed_call_is_guarded_however_cut(
        case: tuple[str, str], kind: str, data: st.DataObject) -> None:
    fmt, field = case
    secret, name, placeholder = SECRETS[kind]
    n = data.draw(st.integers(1, 3))
    text = json.dumps({"to": "x"})
    docs = builder(fmt, field)(split(text, data.draw(st.lists(st.integers(0, 12), max_size=4))),
                               n, data.draw(st.integers(0, n - 1)))
    docs = renamed(docs, name, data.draw(st.sampled_from(["name", "server_label"]))
                   if field == "mcp-call-arguments" else "name")
    raw_len = len(FORMATS[fmt].frame(docs))
    cuts = data.draw(st.lists(st.integers(0, raw_len), max_size=12))
    mode = data.draw(st.sampled_from([P.STREAMED, P.FULL_DUPLEX]))
    check(play(FORMATS[fmt], docs, cuts, mode), secret, placeholder)


# --- the reading of a name -------------------------------------------------------------

def test_a_name_is_masked_as_written_first_then_with_underscores_as_spaces() -> None:
    def mask(text: str) -> str:   # whole words, as the detectors match
        return re.sub(r"\b4111111111111111\b", "<CARD>", re.sub(r"\bghp_x", "<GH>", text))

    assert mask_name("lookup_4111111111111111", mask) == "lookup <CARD>"
    assert mask_name("ghp_x_1", mask) == "<GH>_1"          # as written: no spaces
    assert mask_name("get_weather", mask) == "get_weather"
    assert name_readings("a_b") == ("a_b", "a b")
    assert name_readings("ab") == ("ab",)


def test_every_adapter_hands_a_calls_name_to_the_guards_as_a_name() -> None:
    reply = {"choices": [{"index": 0, "message": {"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "send", "arguments": "{}"}}]}}]}
    seen: list[str] = []
    adapter_for("openai").rewrite_response_texts(reply, lambda t: seen.append(t) or t)
    assert [type(t) for t in seen if t == "send"] == [Name]
    assert ("name", "send") in adapter_for("openai").response_texts(reply)
