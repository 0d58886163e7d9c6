"""Provider replies for the no-leak property tests (tests/unit/test_no_leaks_streams.py and
test_no_leaks_whole.py), written from the wire formats.

Streamed: OpenAI chat and legacy completions SSE, Responses named events, Anthropic messages
SSE, Gemini/Vertex SSE and the JSON-array stream (rewritten to SSE, or left whole on the
`-array` routes of `tests.leaks.CONFIG`). A builder writes some text in pieces across events,
in one choice, candidate, block or output item among several; `FORMATS` says how each
endpoint format is asked for and framed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.leak_results import RESULTS

Doc = dict[str, Any]
#: (pieces of the text, choices or candidates, the one that writes it) -> the events
Build = Callable[[list[str], int, int], list[Doc]]

def _json(doc: Any) -> str:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False)


# --- OpenAI chat completions -----------------------------------------------------------

def _chunk(index: int, delta: Doc, finish: str | None = None) -> Doc:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
            "model": "gpt-4o-mini", "choices": [{"index": index, "delta": delta,
                                                  "logprobs": None, "finish_reason": finish}]}


def chat(field: Callable[[str], Doc], first: Doc | None = None) -> Build:
    def build(pieces: list[str], n: int, target: int) -> list[Doc]:
        docs = [_chunk(i, {"role": "assistant", "content": "",
                           **((first or {}) if i == target else {})}) for i in range(n)]
        for k, piece in enumerate(pieces):
            docs += [_chunk(i, {"content": f"fine {k} "}) for i in range(n) if i != target]
            docs.append(_chunk(target, field(piece)))
        return docs + [_chunk(i, {}, "stop") for i in range(n)]
    return build


def _tool(piece: str) -> Doc:
    return {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}


_TOOL_START = {"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                               "function": {"name": "send", "arguments": ""}}]}
CHAT = {
    "content": chat(lambda p: {"content": p}),
    "refusal": chat(lambda p: {"refusal": p}),
    "reasoning-content": chat(lambda p: {"reasoning_content": p}),
    "tool-call-arguments": chat(_tool, _TOOL_START),
    "function-call-arguments": chat(lambda p: {"function_call": {"arguments": p}},
                                    {"function_call": {"name": "send", "arguments": ""}}),
    "audio-transcript": chat(lambda p: {"audio": {"id": "audio_1", "transcript": p}}),
    # as OpenAI-compatible servers (behind Azure's /openai/v1) stream them: lists of parts
    "content-parts": chat(lambda p: {"content": [{"type": "text", "text": p}]}),
    "reasoning-parts": chat(lambda p: {"reasoning_content": [{"type": "text", "text": p}]}),
    "thinking-parts": chat(lambda p: {"content": [{"type": "thinking", "thinking": [
        {"type": "text", "text": p}]}]}),
    "custom-tool-input": chat(
        lambda p: {"tool_calls": [{"index": 0, "custom": {"input": p}}]},
        {"tool_calls": [{"index": 0, "id": "call_1", "type": "custom",
                         "custom": {"name": "run", "input": ""}}]}),
}
#: fields whose text is a JSON document (the secret is a string value in it)
ARGUMENTS = ("tool-call-arguments", "function-call-arguments", "function-call",
             "input-json", "server-tool-input-json", "mcp-call-arguments")

# --- legacy completions ----------------------------------------------------------------


def _cmpl(index: int, text: str, finish: str | None = None) -> Doc:
    return {"id": "cmpl-1", "object": "text_completion", "created": 1,
            "model": "gpt-3.5-turbo-instruct", "choices": [
                {"text": text, "index": index, "logprobs": None, "finish_reason": finish}]}


def completions(pieces: list[str], n: int, target: int) -> list[Doc]:
    docs = []
    for k, piece in enumerate(pieces):
        docs += [_cmpl(i, f"fine {k} ") for i in range(n) if i != target]
        docs.append(_cmpl(target, piece))
    return docs + [_cmpl(i, "", "stop") for i in range(n)]


# --- OpenAI Responses ------------------------------------------------------------------

@dataclass(frozen=True)
class Kind:
    """How one output item type streams its text."""

    item: Callable[[str], Doc]        # the item holding the whole text
    delta: str                        # the delta event's type
    done: str                         # the done event's type
    done_key: str                     # where the done event repeats the text
    part: Callable[[str], Doc] | None = None   # its content part, if any
    part_events: str = "content_part"
    index_key: str = "content_index"


def _message(part: Doc) -> Doc:
    return {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
            "content": [part]}


def _out_text(t: str) -> Doc:
    return {"type": "output_text", "text": t, "annotations": []}


KINDS = {
    "output-text": Kind(lambda t: _message(_out_text(t)), "response.output_text.delta",
                        "response.output_text.done", "text", _out_text),
    "refusal": Kind(lambda t: _message({"type": "refusal", "refusal": t}),
                    "response.refusal.delta", "response.refusal.done", "refusal",
                    lambda t: {"type": "refusal", "refusal": t}),
    "reasoning-summary": Kind(
        lambda t: {"type": "reasoning", "id": "rs_1", "summary": [
            {"type": "summary_text", "text": t}]},
        "response.reasoning_summary_text.delta", "response.reasoning_summary_text.done",
        "text", lambda t: {"type": "summary_text", "text": t}, "reasoning_summary_part",
        "summary_index"),
    "reasoning-text": Kind(
        lambda t: {"type": "reasoning", "id": "rs_1", "summary": [], "content": [
            {"type": "reasoning_text", "text": t}]},
        "response.reasoning_text.delta", "response.reasoning_text.done", "text",
        lambda t: {"type": "reasoning_text", "text": t}),
    "function-call": Kind(
        lambda t: {"type": "function_call", "id": "fc_1", "call_id": "call_1",
                   "name": "send", "arguments": t, "status": "completed"},
        "response.function_call_arguments.delta", "response.function_call_arguments.done",
        "arguments"),
    "custom-tool-call": Kind(
        lambda t: {"type": "custom_tool_call", "id": "ctc_1", "call_id": "call_1",
                   "name": "run", "input": t},
        "response.custom_tool_call_input.delta", "response.custom_tool_call_input.done",
        "input"),
    "mcp-call-arguments": Kind(
        lambda t: {"type": "mcp_call", "id": "mcp_1", "server_label": "s", "name": "f",
                   "arguments": t, "output": None},
        "response.mcp_call_arguments.delta", "response.mcp_call_arguments.done",
        "arguments"),
    "code-interpreter-code": Kind(
        lambda t: {"type": "code_interpreter_call", "id": "ci_1", "status": "completed",
                   "container_id": "cntr_1", "code": t, "outputs": []},
        "response.code_interpreter_call_code.delta",
        "response.code_interpreter_call_code.done", "code"),
}


def _response(status: str, output: list[Doc]) -> Doc:
    done = status == "completed"
    return {"id": "resp_1", "object": "response", "created_at": 1, "status": status,
            "model": "gpt-4o-mini", "output": output, "usage": {
                "input_tokens": 5, "output_tokens": 9, "total_tokens": 14} if done else None}


def responses(kind: Kind) -> Build:
    """`n - 1` plain message items, with the target item among them at `target`."""
    def build(pieces: list[str], n: int, target: int) -> list[Doc]:
        text = "".join(pieces)
        items = [_message(_out_text(f"fine {i}. ")) for i in range(n)]
        items[target] = kind.item(text)
        docs: list[Doc] = [{"type": "response.created",
                            "response": _response("in_progress", [])}]
        for index, item in enumerate(items):
            where = {"item_id": item["id"], "output_index": index}
            if index != target:
                docs += [{"type": "response.output_item.added", "output_index": index,
                          "item": item}, {"type": "response.output_item.done",
                                          "output_index": index, "item": item}]
                continue
            empty = kind.item("")
            docs.append({"type": "response.output_item.added", "output_index": index,
                         "item": {**empty, "status": "in_progress"}})
            at = {kind.index_key: 0} if kind.part is not None else {}
            if kind.part is not None:
                docs.append({"type": f"response.{kind.part_events}.added", **where, **at,
                             "part": kind.part("")})
            docs += [{"type": kind.delta, **where, **at, "delta": p} for p in pieces]
            # the done event of a call repeats its name, as the API sends it
            named = {"name": item["name"]} if isinstance(item.get("name"), str) else {}
            docs.append({"type": kind.done, **where, **at, kind.done_key: text, **named})
            if kind.part is not None:
                docs.append({"type": f"response.{kind.part_events}.done", **where, **at,
                             "part": kind.part(text)})
            docs.append({"type": "response.output_item.done", "output_index": index,
                         "item": item})
        return [*docs, {"type": "response.completed",
                        "response": _response("completed", items)}]
    return build


# --- Anthropic messages ----------------------------------------------------------------

def _an(kind: str, **fields: Any) -> Doc:
    return {"type": kind, **fields}


def anthropic(start: Doc, delta: str, key: str, head: bool = False, tail: Doc | None = None,
              whole: Callable[[str], Doc] | None = None) -> Build:
    """Blocks 0..n-1, plain text but block `target`, which writes the text (its first piece
    in the block's start when `head`; all of it in the start block `whole` makes: a tool's
    result arrives whole)."""
    def build(pieces: list[str], n: int, target: int) -> list[Doc]:
        docs = [_an("message_start", message={
            "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-x",
            "content": [], "stop_reason": None, "usage": {"input_tokens": 5,
                                                          "output_tokens": 1}})]
        for i in range(n):
            if i != target:
                docs += [_an("content_block_start", index=i,
                             content_block={"type": "text", "text": ""}),
                         _an("content_block_delta", index=i,
                             delta={"type": "text_delta", "text": f"fine {i}. "}),
                         _an("content_block_stop", index=i)]
                continue
            rest = pieces
            block = dict(start)
            if head:
                block[key], rest = pieces[0], pieces[1:]
            if whole is not None:
                block, rest = whole("".join(pieces)), []
            docs.append(_an("content_block_start", index=i, content_block=block))
            docs += [_an("content_block_delta", index=i, delta={"type": delta, key: p})
                     for p in rest]
            if tail is not None:
                docs.append(_an("content_block_delta", index=i, delta=tail))
            docs.append(_an("content_block_stop", index=i))
        return [*docs, _an("message_delta", delta={"stop_reason": "end_turn"},
                           usage={"output_tokens": 9}), _an("message_stop")]
    return build


_USE = {"type": "tool_use", "id": "toolu_1", "name": "send", "input": {}}
ANTHROPIC = {
    "text": anthropic({"type": "text", "text": ""}, "text_delta", "text"),
    "text-in-start": anthropic({"type": "text"}, "text_delta", "text", head=True),
    "thinking": anthropic({"type": "thinking", "thinking": "", "signature": ""},
                          "thinking_delta", "thinking",
                          tail={"type": "signature_delta", "signature": "c2ln"}),
    "thinking-in-start": anthropic({"type": "thinking", "signature": ""}, "thinking_delta",
                                   "thinking", head=True),
    "input-json": anthropic(_USE, "input_json_delta", "partial_json"),
    "server-tool-input-json": anthropic(
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}},
        "input_json_delta", "partial_json"),
    **{name: anthropic({}, "text_delta", "text", whole=block)
       for name, block in RESULTS.items()},
}

# --- Gemini / Vertex -------------------------------------------------------------------


def google(part: Callable[[str], Doc], whole: bool = False,
           end: Callable[[str], Doc] | None = None) -> Build:
    """Candidates 0..n-1; candidate `target` writes the text in `part`s (the whole text in
    one part when `whole`: function calls and code arrive whole; the last piece in `end`
    when given)."""
    def build(pieces: list[str], n: int, target: int) -> list[Doc]:
        pieces = ["".join(pieces)] if whole else pieces
        docs = []
        for k, piece in enumerate(pieces):
            last = k == len(pieces) - 1
            write = end if last and end is not None else part
            cands = [{"index": i, "content": {"role": "model", "parts": [
                write(piece) if i == target else {"text": f"fine {k} "}]}}
                for i in range(n)]
            for c in cands:
                if last:
                    c["finishReason"] = "STOP"
            doc: Doc = {"candidates": cands, "modelVersion": "gemini-2.5-flash"}
            if last:
                doc["usageMetadata"] = {"promptTokenCount": 5, "candidatesTokenCount": 9,
                                        "totalTokenCount": 14}
            docs.append(doc)
        return docs
    return build


def partial_args(piece: str, more: bool = True) -> Doc:
    """A piece of a function call's string argument as Vertex streams it (the request set
    `streamFunctionCallArguments`); the last piece of the argument does not continue."""
    arg = {"jsonPath": "$.to", "stringValue": piece, **({"willContinue": True} if more else {})}
    return {"functionCall": {"partialArgs": [arg], "willContinue": True}}


GOOGLE = {
    "text": google(lambda p: {"text": p}),
    # Vertex's streamed arguments: the argument's last piece ends it, or the finish does
    "partial-args": google(partial_args, end=lambda p: partial_args(p, more=False)),
    "partial-args-to-finish": google(partial_args),
    "thought": google(lambda p: {"text": p, "thought": True}),
    "function-call": google(lambda t: {"functionCall": {"name": "send",
                                                        "args": json.loads(t)}}, whole=True),
    "executable-code": google(lambda t: {"executableCode": {"language": "PYTHON", "code": t}},
                              whole=True),
    "code-execution-result": google(lambda t: {"codeExecutionResult": {
        "outcome": "OUTCOME_OK", "output": t}}, whole=True),
}

# --- the formats -----------------------------------------------------------------------

_G = "gemini-2.5-flash:streamGenerateContent"
_GP = f"/v1beta/models/{_G}"
_VP = f"/v1/projects/p/locations/l/publishers/google/models/{_G}"


@dataclass(frozen=True)
class Format:
    route: str
    path: str
    request: Doc
    frame: Callable[[list[Doc]], bytes]     # the events as the provider sends them
    ctype: str = "text/event-stream"


def _sse(docs: list[Doc], named: bool = False, sep: str = "\n\n", done: bool = False
         ) -> bytes:
    out = "".join((f"event: {d['type']}\n" if named else "") + f"data: {_json(d)}{sep}"
                  for d in docs)
    return (out + ("data: [DONE]\n\n" if done else "")).encode()


def _array(docs: list[Doc]) -> bytes:
    return ("[" + "\n,\r\n".join(_json(d) for d in docs) + "]").encode()


_CHAT_BODY = {"model": "gpt-4o-mini", "stream": True, "n": 3,
              "messages": [{"role": "user", "content": "hi"}]}


def _chat_sse(docs: list[Doc]) -> bytes:
    return _sse(docs, done=True)


_GOOGLE_BODY = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                "generationConfig": {"candidateCount": 3}}
FORMATS = {
    "openai-chat": Format("openai", "/v1/chat/completions", _CHAT_BODY, _chat_sse),
    "azure-chat": Format("azure", "/openai/deployments/d/chat/completions?api-version=1",
                         _CHAT_BODY, _chat_sse),
    "openai-completions": Format("openai", "/v1/completions", {
        "model": "gpt-3.5-turbo-instruct", "prompt": "hi", "stream": True, "n": 3}, _chat_sse),
    "azure-responses": Format("azure", "/openai/v1/responses", {
        "model": "gpt-4o-mini", "input": "hi", "stream": True},
        lambda d: _sse(d, named=True)),
    "openai-responses": Format("openai", "/v1/responses", {
        "model": "gpt-4o-mini", "input": "hi", "stream": True},
        lambda d: _sse(d, named=True)),
    "anthropic": Format("anthropic", "/v1/messages", {
        "model": "claude-x", "max_tokens": 99, "stream": True,
        "messages": [{"role": "user", "content": "hi"}]}, lambda d: _sse(d, named=True)),
    "gemini-sse": Format("gemini", _GP + "?alt=sse", _GOOGLE_BODY,
                         lambda d: _sse(d, sep="\r\n\r\n")),
    "vertex-sse": Format("vertex", _VP + "?alt=sse", _GOOGLE_BODY,
                         lambda d: _sse(d, sep="\r\n\r\n")),
    "gemini-array-to-sse": Format("gemini", _GP, _GOOGLE_BODY, _array, "application/json"),
    "vertex-array-to-sse": Format("vertex", _VP, _GOOGLE_BODY, _array, "application/json"),
    "gemini-array-whole": Format("gemini-array", _GP, _GOOGLE_BODY, _array,
                                 "application/json"),
    "vertex-array-whole": Format("vertex-array", _VP, _GOOGLE_BODY, _array,
                                 "application/json"),
}
_FAMILIES: dict[str, dict[str, Build]] = {
    "chat": CHAT, "completions": {"text": completions},
    "responses": {k: responses(v) for k, v in KINDS.items()},
    "anthropic": ANTHROPIC, "google": GOOGLE}
_FAMILY = {"openai-chat": "chat", "azure-chat": "chat", "openai-completions": "completions",
           "openai-responses": "responses", "azure-responses": "responses",
           "anthropic": "anthropic"}
CASES = [(fmt, field) for fmt in FORMATS
         for field in _FAMILIES[_FAMILY.get(fmt, "google")]]


def builder(fmt: str, field: str) -> Build:
    return _FAMILIES[_FAMILY.get(fmt, "google")][field]


def text_of(field: str, text: str) -> str:
    """The field's text: JSON arguments hold the text as a string value."""
    return json.dumps({"to": text, "n": 1}) if field in ARGUMENTS else text
