"""Our catalogue of the text fields of OpenAI's (and Azure OpenAI's) requests, for the no-leak
property tests: Chat Completions, Responses, legacy Completions and Embeddings (see
`tests.leak_prompts`, which adds the other providers and the endpoints)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Body = dict[str, Any]

@dataclass(frozen=True)
class Field:
    """One text field of a request: `build(text)` is the endpoint-specific part of a valid
    body with `text` in that field. `ident`: the API allows only an identifier there
    (`[A-Za-z0-9_-]`), so only a key, whole, fits."""

    id: str
    build: Callable[[str], Body]
    ident: bool = False
    args: bool = False     # the text is a string literal inside a string (JSON arguments,
                           # a grammar): escaped there, the known limit (ARGUMENT_ESCAPES)


def fields_of(table: dict[str, Callable[[str], Body]], idents: tuple[str, ...] = (),
            args: tuple[str, ...] = ()) -> list[Field]:
    return [Field(name, build, name in idents, name in args) for name, build in table.items()]


def json_args(t: str) -> str:
    return json.dumps({"to": t, "n": 1})


def schema(t: str) -> Body:
    return {"type": "object", "properties": {"to": {"type": "string", "description": t}}}


# --- OpenAI / Azure Chat Completions ---------------------------------------------------

_HI = {"role": "user", "content": "hi"}


def chat(*messages: Body, **extra: Any) -> Body:
    return {"messages": list(messages) or [_HI], **extra}


def _call(t: str, kind: str = "function") -> Body:
    fn = {"name": "send", "arguments": json_args(t)} if kind == "function" \
        else {"name": "run", "input": t}
    return {"role": "assistant", "content": None,
            "tool_calls": [{"id": "call_1", "type": kind, kind: fn}]}


_CALL = _call("x")
#: a text file sent inline (read, decoded): a file part whose name is the field
_TEXT_FILE = "data:text/plain;base64,bm90ZXM="
CHAT = fields_of({
    "user-string": lambda t: chat({"role": "user", "content": t}),
    # what an OpenAI-compatible server (vLLM) renders into the prompt with its chat template
    "vllm-documents": lambda t: chat(documents=[{"title": "notes", "text": t}]),
    "vllm-chat-template": lambda t: chat(chat_template="{{ '" + t + "' }}{% for m in messages %}"
                                         "{{ m.content }}{% endfor %}"),
    "vllm-chat-template-kwargs": lambda t: chat(chat_template_kwargs={"persona": t}),
    "user-text-part": lambda t: chat({"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
        {"type": "text", "text": t}]}),
    "user-name": lambda t: chat({"role": "user", "name": t, "content": "hi"}),
    "system-string": lambda t: chat({"role": "system", "content": t}, _HI),
    "system-parts": lambda t: chat({"role": "system", "content": [{"type": "text", "text": t}]},
                                    _HI),
    "developer-string": lambda t: chat({"role": "developer", "content": t}, _HI),
    "developer-parts": lambda t: chat(
        {"role": "developer", "content": [{"type": "text", "text": t}]}, _HI),
    "assistant-string": lambda t: chat(_HI, {"role": "assistant", "content": t}, _HI),
    "assistant-parts": lambda t: chat(
        _HI, {"role": "assistant", "content": [{"type": "text", "text": t}]}, _HI),
    "assistant-refusal": lambda t: chat(
        _HI, {"role": "assistant", "content": None, "refusal": t}, _HI),
    "assistant-refusal-part": lambda t: chat(
        _HI, {"role": "assistant", "content": [{"type": "refusal", "refusal": t}]}, _HI),
    "assistant-name": lambda t: chat(_HI, {"role": "assistant", "name": t, "content": "ok"},
                                      _HI),
    "assistant-tool-call-arguments": lambda t: chat(_HI, _call(t)),
    "assistant-tool-call-name": lambda t: chat(_HI, {"role": "assistant", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": t, "arguments": "{}"}}]}),
    "assistant-custom-tool-call-input": lambda t: chat(_HI, _call(t, "custom")),
    "assistant-function-call-arguments": lambda t: chat(_HI, {
        "role": "assistant", "content": None,
        "function_call": {"name": "send", "arguments": json_args(t)}}),
    "tool-string": lambda t: chat(_HI, _CALL, {"role": "tool", "tool_call_id": "call_1",
                                                 "content": t}),
    "tool-parts": lambda t: chat(_HI, _CALL, {"role": "tool", "tool_call_id": "call_1",
                                                "content": [{"type": "text", "text": t}]}),
    "function-message": lambda t: chat(_HI, {"role": "function", "name": "send",
                                              "content": t}),
    "tool-description": lambda t: chat(tools=[{"type": "function", "function": {
        "name": "send", "description": t, "parameters": schema("who")}}]),
    "tool-parameter-description": lambda t: chat(tools=[{"type": "function", "function": {
        "name": "send", "parameters": schema(t)}}]),
    "tool-parameter-enum": lambda t: chat(tools=[{"type": "function", "function": {
        "name": "send", "parameters": {"type": "object", "properties": {
            "to": {"type": "string", "enum": [t, "other"]}}}}}]),
    "tool-name": lambda t: chat(tools=[{"type": "function", "function": {"name": t}}]),
    "custom-tool-description": lambda t: chat(tools=[{"type": "custom", "custom": {
        "name": "run", "description": t}}]),
    "custom-tool-grammar": lambda t: chat(tools=[{"type": "custom", "custom": {
        "name": "run", "format": {"type": "grammar", "grammar": {
            "syntax": "lark", "definition": f"start: {json.dumps(t)}"}}}}]),
    "legacy-function-description": lambda t: chat(functions=[
        {"name": "send", "description": t, "parameters": schema("who")}]),
    "legacy-function-parameters": lambda t: chat(functions=[
        {"name": "send", "parameters": schema(t)}]),
    "response-format-description": lambda t: chat(response_format={
        "type": "json_schema", "json_schema": {"name": "out", "description": t,
                                               "schema": schema("who")}}),
    "response-format-schema": lambda t: chat(response_format={
        "type": "json_schema", "json_schema": {"name": "out", "schema": schema(t)}}),
    "user-file-filename": lambda t: chat({"role": "user", "content": [
        {"type": "text", "text": "read it"},
        {"type": "file", "file": {"filename": t, "file_data": _TEXT_FILE}}]}),
    "tool-file-filename": lambda t: chat(_HI, _CALL, {"role": "tool", "tool_call_id": "call_1",
                                                        "content": [{"type": "file", "file": {
                                                            "filename": t,
                                                            "file_id": "file-1"}}]}),
    "prediction-string": lambda t: chat(prediction={"type": "content", "content": t}),
    "prediction-parts": lambda t: chat(prediction={
        "type": "content", "content": [{"type": "text", "text": t}]}),
    "azure-data-sources-role-information": lambda t: chat(data_sources=[{
        "type": "azure_search", "parameters": {"endpoint": "https://s.search.windows.net",
                                               "index_name": "i", "role_information": t}}]),
}, idents=("assistant-tool-call-name", "tool-name"),
   args=("assistant-tool-call-arguments", "assistant-function-call-arguments",
         "custom-tool-grammar"))

# --- OpenAI / Azure Responses ----------------------------------------------------------


def _inp(*items: Body, **extra: Any) -> Body:
    return {"input": list(items), **extra}


def _msg(role: str, t: str, part: str = "input_text") -> Body:
    return {"type": "message", "role": role, "content": [{"type": part, "text": t}]}


RESPONSES = fields_of({
    "input-string": lambda t: {"input": t},
    "input-message-string": lambda t: _inp({"role": "user", "content": t}),
    "input-message-parts": lambda t: _inp({"role": "user", "content": [
        {"type": "input_image", "image_url": "https://x.test/a.png"},
        {"type": "input_text", "text": t}]}),
    "input-message-typed": lambda t: _inp(_msg("user", t)),
    "input-system": lambda t: _inp({"role": "system", "content": t}, _msg("user", "hi")),
    "input-developer": lambda t: _inp(_msg("developer", t), _msg("user", "hi")),
    "input-assistant-string": lambda t: _inp({"role": "assistant", "content": t}),
    "input-output-text": lambda t: _inp({
        "type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
        "content": [{"type": "output_text", "text": t, "annotations": []}]}),
    "input-output-refusal": lambda t: _inp({
        "type": "message", "role": "assistant", "id": "msg_1", "status": "completed",
        "content": [{"type": "refusal", "refusal": t}]}),
    "function-call-arguments": lambda t: _inp({
        "type": "function_call", "call_id": "c1", "name": "send", "arguments": json_args(t)}),
    "function-call-name": lambda t: _inp({
        "type": "function_call", "call_id": "c1", "name": t, "arguments": "{}"}),
    "function-call-output-string": lambda t: _inp({
        "type": "function_call_output", "call_id": "c1", "output": t}),
    "function-call-output-parts": lambda t: _inp({
        "type": "function_call_output", "call_id": "c1",
        "output": [{"type": "input_text", "text": t}]}),
    "input-file-filename": lambda t: _inp({"role": "user", "content": [
        {"type": "input_text", "text": "read it"},
        {"type": "input_file", "filename": t, "file_data": _TEXT_FILE}]}),
    "function-call-output-file-filename": lambda t: _inp({
        "type": "function_call_output", "call_id": "c1",
        "output": [{"type": "input_file", "filename": t, "file_id": "file-1"}]}),
    "custom-tool-call-input": lambda t: _inp({
        "type": "custom_tool_call", "call_id": "c1", "name": "run", "input": t}),
    "custom-tool-call-output": lambda t: _inp({
        "type": "custom_tool_call_output", "call_id": "c1", "output": t}),
    "reasoning-summary": lambda t: _inp({
        "type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": t}]}),
    "reasoning-content": lambda t: _inp({
        "type": "reasoning", "id": "rs_1", "summary": [],
        "content": [{"type": "reasoning_text", "text": t}]}),
    "mcp-call-arguments": lambda t: _inp({
        "type": "mcp_call", "id": "mcp_1", "server_label": "s", "name": "f",
        "arguments": json_args(t)}),
    "mcp-call-output": lambda t: _inp({
        "type": "mcp_call", "id": "mcp_1", "server_label": "s", "name": "f",
        "arguments": "{}", "output": t}),
    "mcp-approval-request": lambda t: _inp({
        "type": "mcp_approval_request", "id": "mcpr_1", "server_label": "s", "name": "f",
        "arguments": json_args(t)}),
    "mcp-approval-response-reason": lambda t: _inp({
        "type": "mcp_approval_response", "approval_request_id": "mcpr_1", "approve": False,
        "reason": t}),
    "mcp-list-tools-description": lambda t: _inp({
        "type": "mcp_list_tools", "id": "mcpl_1", "server_label": "s",
        "tools": [{"name": "f", "description": t, "input_schema": schema("who")}]}),
    "local-shell-call-command": lambda t: _inp({
        "type": "local_shell_call", "id": "ls_1", "call_id": "c1", "status": "completed",
        "action": {"type": "exec", "command": ["echo", t], "env": {}}}),
    "local-shell-call-output": lambda t: _inp({
        "type": "local_shell_call_output", "id": "c1", "output": t}),
    "shell-call-output": lambda t: _inp({
        "type": "shell_call_output", "call_id": "c1", "output": [
            {"stdout": t, "stderr": "", "outcome": {"type": "exit", "exit_code": 0}}]}),
    "apply-patch-call-diff": lambda t: _inp({
        "type": "apply_patch_call", "call_id": "c1", "status": "completed",
        "operation": {"type": "create_file", "path": "a.txt", "diff": t}}),
    "apply-patch-call-output": lambda t: _inp({
        "type": "apply_patch_call_output", "call_id": "c1", "status": "completed",
        "output": t}),
    "file-search-call": lambda t: _inp({
        "type": "file_search_call", "id": "fs_1", "status": "completed", "queries": ["q"],
        "results": [{"file_id": "f", "filename": "a.txt", "text": t}]}),
    "web-search-call-query": lambda t: _inp({
        "type": "web_search_call", "id": "ws_1", "status": "completed",
        "action": {"type": "search", "query": t}}),
    "computer-call-typed-text": lambda t: _inp({
        "type": "computer_call", "id": "cu_1", "call_id": "c1", "status": "completed",
        "pending_safety_checks": [], "action": {"type": "type", "text": t}}),
    "code-interpreter-call": lambda t: _inp({
        "type": "code_interpreter_call", "id": "ci_1", "status": "completed",
        "container_id": "cntr_1", "code": "print(1)", "outputs": [{"type": "logs",
                                                                   "logs": t}]}),
    "image-generation-revised-prompt": lambda t: _inp({
        "type": "image_generation_call", "id": "ig_1", "status": "completed",
        "result": "aGk=", "revised_prompt": t}),
    "instructions": lambda t: {"input": "hi", "instructions": t},
    "prompt-variable-string": lambda t: {"prompt": {"id": "pmpt_1", "variables": {"who": t}}},
    "prompt-variable-input-text": lambda t: {"prompt": {"id": "pmpt_1", "variables": {
        "who": {"type": "input_text", "text": t}}}},
    "tool-description": lambda t: {"input": "hi", "tools": [
        {"type": "function", "name": "send", "description": t, "parameters": schema("who")}]},
    "tool-parameter-description": lambda t: {"input": "hi", "tools": [
        {"type": "function", "name": "send", "parameters": schema(t)}]},
    "custom-tool-description": lambda t: {"input": "hi", "tools": [
        {"type": "custom", "name": "run", "description": t}]},
    "mcp-server-description": lambda t: {"input": "hi", "tools": [
        {"type": "mcp", "server_label": "s", "server_url": "https://mcp.x.test/",
         "server_description": t, "require_approval": "never"}]},
    "text-format-description": lambda t: {"input": "hi", "text": {"format": {
        "type": "json_schema", "name": "out", "description": t, "schema": schema("who")}}},
    "text-format-schema": lambda t: {"input": "hi", "text": {"format": {
        "type": "json_schema", "name": "out", "schema": schema(t)}}},
    "namespace-description": lambda t: {"input": "hi", "tools": [
        {"type": "namespace", "name": "crm", "description": t, "tools": [
            {"type": "function", "name": "f", "parameters": schema("who")}]}]},
    "tool-search-description": lambda t: {"input": "hi", "tools": [
        {"type": "tool_search", "execution": "client", "description": t,
         "parameters": schema("who")}]},
    "tool-search-parameters": lambda t: {"input": "hi", "tools": [
        {"type": "tool_search", "execution": "client", "parameters": schema(t)}]},
    "tool-output-schema": lambda t: {"input": "hi", "tools": [
        {"type": "function", "name": "f", "parameters": schema("who"),
         "output_schema": schema(t)}]},
    "additional-tools-property-name": lambda t: _inp({
        "type": "additional_tools", "role": "developer", "tools": [
            {"type": "function", "name": "f", "parameters": {
                "type": "object", "properties": {t: {"type": "string"}}}}]}),
    "tool-search-call-arguments-key": lambda t: _inp({
        "type": "tool_search_call", "id": "ts_1", "call_id": "c1", "status": "completed",
        "arguments": {t: 1}}),
    "mcp-list-tools-schema-key": lambda t: _inp({
        "type": "mcp_list_tools", "id": "mcpl_1", "server_label": "s", "tools": [
            {"name": "f", "input_schema": {"type": "object", "properties": {t: {}}}}]}),
    "local-shell-call-env-key": lambda t: _inp({
        "type": "local_shell_call", "id": "ls_1", "call_id": "c1", "status": "completed",
        "action": {"type": "exec", "command": ["env"], "env": {t: "1"}}}),
}, idents=("function-call-name",),
   args=("function-call-arguments", "mcp-call-arguments", "mcp-approval-request"))

# --- legacy Completions and Embeddings -------------------------------------------------

COMPLETIONS = fields_of({
    "prompt-string": lambda t: {"prompt": t},
    "prompt-list": lambda t: {"prompt": ["hi", t]},
    "suffix": lambda t: {"prompt": "def f():", "suffix": t},
})
EMBEDDINGS = fields_of({
    "input-string": lambda t: {"input": t},
    "input-list": lambda t: {"input": ["hi", t]},
})
