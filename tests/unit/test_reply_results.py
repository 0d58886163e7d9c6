"""What a tool returned, in an Anthropic reply (the guard audit's first finding): the
blocks an MCP connector or a server tool puts in a reply (`mcp_tool_result`,
`tool_result`, web fetch results) are read, whole replies and streams alike, every text
once, as a prompt reads such a block (a fetched text document's data, a base64 text file
decoded), and media in them stay refused."""

from __future__ import annotations

import base64
import copy
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from extproc.providers.anthropic import AnthropicAdapter
from extproc.providers.values import MaskingFn

ADAPTER = AnthropicAdapter("anthropic")
SECRET = "jane.roe@example.org"


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _reply(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"type": "message", "role": "assistant", "content": list(blocks)}


RESULTS = {
    "mcp-list": {"type": "mcp_tool_result", "tool_use_id": "m1", "is_error": False,
                 "content": [{"type": "text", "text": SECRET}]},
    "mcp-string": {"type": "mcp_tool_result", "tool_use_id": "m1", "content": SECRET},
    "tool-result-document": {"type": "tool_result", "tool_use_id": "t1", "content": [
        {"type": "document", "source": {"type": "base64", "media_type": "text/plain",
                                        "data": _b64(SECRET)}}]},
    "fetched-text": {"type": "web_fetch_tool_result", "tool_use_id": "s1", "content": {
        "type": "web_fetch_result", "url": "https://news.test/p", "content": {
            "type": "document", "source": {"type": "text", "media_type": "text/plain",
                                           "data": SECRET}}}},
    "newer-kind": {"type": "some_tool_result_2027", "tool_use_id": "x",
                   "content": {"items": [{"note": SECRET}]}},
}


def test_every_text_of_a_result_block_is_read_once_and_masked() -> None:
    for name, block in RESULTS.items():
        reply = _reply(copy.deepcopy(block))
        texts = [t for _, t in ADAPTER.response_texts(reply)]
        assert texts.count(SECRET) == 1, (name, texts)
        assert ADAPTER.rewrite_response_texts(
            reply, MaskingFn(lambda t: t.replace(SECRET, "<EMAIL>")))
        assert SECRET not in str(reply) and _b64(SECRET) not in str(reply), name
        assert "<EMAIL>" in str(reply) or _b64("<EMAIL>") in str(reply), name


def test_a_result_block_in_a_stream_is_read_whole() -> None:
    for name, block in RESULTS.items():
        event = {"type": "content_block_start", "index": 1, "content_block": block}
        texts = ADAPTER.stream_texts(copy.deepcopy(event))
        read = [slot.holder[slot.key] for slot in texts.slots]
        assert read.count(SECRET) == 1 and all(slot.whole for slot in texts.slots), name


def test_an_image_in_an_mcp_tool_result_is_media_no_guard_reads() -> None:
    block = {"type": "mcp_tool_result", "tool_use_id": "m1", "content": [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                     "data": "iVBORw0KGgo="}}]}
    assert ADAPTER.reply_media(_reply(block)) == ["image"]
    event = {"type": "content_block_start", "index": 0, "content_block": block}
    assert ADAPTER.stream_texts(event).unread == ("image",)


_TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
_VALUE = st.recursive(st.none() | st.booleans() | st.integers() | _TEXT,
                      lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(_TEXT, inner, max_size=3), max_leaves=12)


@given(kind=st.sampled_from(["mcp_tool_result", "tool_result", "web_search_tool_result",
                             "a_newer_block"]), content=_VALUE, where=_VALUE)
def test_a_secret_anywhere_in_a_result_block_is_read(kind: str, content: Any,
                                                     where: Any) -> None:
    """Whatever a result block holds around it, a secret in a text of its content is read,
    whole and streamed."""
    block = {"type": kind, "tool_use_id": "x", "content": [
        {"type": "text", "text": SECRET}, {"extra": content}], "other": where}
    assert SECRET in [t for _, t in ADAPTER.response_texts(_reply(block))]
    event = {"type": "content_block_start", "index": 0, "content_block": block}
    assert SECRET in [s.holder[s.key] for s in ADAPTER.stream_texts(event).slots]
