"""The unified front as a new user meets it: the reference config as `make run` serves it
(config/gateway.yaml, with its dev API key, its PII guard and its limits), the official
OpenAI SDK with `base_url=<gateway>/v1`, and an Anthropic, a Gemini and a Vertex model
streaming text, calling tools and returning usage."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
import yaml

from tests.harness import Gateway, Mock

ROOT = Path(__file__).resolve().parents[2]
DEV_KEY = "gw-local-dev-key-DEV-ONLY"       # the README's local API key
TEXT = "One API for every model."
TOOLS = [{"type": "function", "function": {
    "name": "lookup", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}}]
# (the reference limit is 10 requests a minute per subject: this module sends 9)
MODELS = ["claude-sonnet-4-5", "gemini-2.5-flash", "vertex/gemini-2.5-flash", "fast"]


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    base = tmp_path_factory.mktemp("front-reference")
    shutil.copytree(ROOT / "config" / "dev-secrets", base / "dev-secrets")
    shutil.copy(ROOT / "config" / "dev-jwks.json", base / "dev-jwks.json")
    config = yaml.safe_load((ROOT / "config" / "gateway.yaml").read_text())
    g = Gateway(base, config, mock=mock)
    yield g
    g.close()


def sdk(gw: Gateway, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{gw.url}/v1", api_key=DEV_KEY, max_retries=0,
                         default_headers={"x-mock-reply": TEXT, **headers})


@pytest.mark.parametrize("model", MODELS)
def test_text_streams_with_usage(gw: Gateway, model: str) -> None:
    chunks = list(sdk(gw).chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == TEXT
    usage = chunks[-1].usage
    assert usage is not None and usage.prompt_tokens > 0 and usage.completion_tokens > 0


@pytest.mark.parametrize("model", MODELS)
def test_tools_are_called(gw: Gateway, model: str) -> None:
    stream = sdk(gw, **{"x-mock-shape": "tool"}).chat.completions.create(
        model=model, messages=[{"role": "user", "content": "look it up"}], tools=TOOLS,
        stream=True)
    name, arguments, finish = "", "", None
    for chunk in stream:
        for call in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
            name += call.function.name or "" if call.function else ""
            arguments += call.function.arguments or "" if call.function else ""
        if chunk.choices and chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
    assert name and isinstance(json.loads(arguments), dict) and finish == "tool_calls"


def test_the_reference_policies_apply(gw: Gateway) -> None:
    # the PII guard masks the reply; the per-subject limit answers in the headers
    raw = sdk(gw, **{"x-mock-reply": "mail ops@example.com now"}).chat.completions \
        .with_raw_response.create(model="claude-sonnet-4-5",
                                  messages=[{"role": "user", "content": "hi"}])
    assert "ops@example.com" not in (raw.parse().choices[0].message.content or "")
    assert raw.headers.get("x-ratelimit-limit-requests") == "10"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{gw.url}/v1", api_key="nope", max_retries=0) \
            .chat.completions.create(model="fast", messages=[{"role": "user", "content": "x"}])
