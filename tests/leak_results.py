"""What a tool returned, as the blocks of an Anthropic reply carry it (an MCP connector's
`mcp_tool_result`, a `tool_result`, a server tool's fetched document), for the no-leak
catalogues (`tests.leak_replies`, tests/unit/test_no_leaks_whole.py): each block holds
the whole text, as these blocks arrive whole."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Doc = dict[str, Any]


def _result(kind: str, content: Callable[[str], Any]) -> Callable[[str], Doc]:
    """A tool's result block, as an MCP connector (`mcp_tool_result`) or a tool run on the
    provider's side puts it in a reply."""
    return lambda t: {"type": kind, "tool_use_id": "mcptoolu_1", "is_error": False,
                      "content": content(t)}


#: the blocks of a reply that carry what a tool returned, whole
RESULTS: dict[str, Callable[[str], Doc]] = {
    "mcp-tool-result": _result("mcp_tool_result", lambda t: [{"type": "text", "text": t}]),
    "mcp-tool-result-string": _result("mcp_tool_result", lambda t: t),
    "tool-result": _result("tool_result", lambda t: [{"type": "text", "text": "see:"},
                                                    {"type": "text", "text": t}]),
    "web-fetch-document": lambda t: {
        "type": "web_fetch_tool_result", "tool_use_id": "srvtoolu_1", "content": {
            "type": "web_fetch_result", "url": "https://news.test/p",
            "content": {"type": "document", "title": "page", "source": {
                "type": "text", "media_type": "text/plain", "data": t}}}},
}
