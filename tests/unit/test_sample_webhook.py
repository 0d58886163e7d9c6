"""The sample guard webhook, and its answers and the OpenAPI examples against the contract."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import pytest_asyncio
import yaml
from aiohttp.test_utils import TestClient, TestServer

from extproc.guards.sample_webhook import make_app

SPEC = yaml.safe_load(
    (Path(__file__).parents[2] / "docs" / "guard-webhook.openapi.yaml").read_text())
SCHEMAS = SPEC["components"]["schemas"]


def validate(instance: Any, schema: str) -> None:
    """Validate against components.schemas[schema] (its $refs resolve in the wrapper)."""
    wrapper = {"$schema": "https://json-schema.org/draft/2020-12/schema",
               "$ref": f"#/components/schemas/{schema}", "components": {"schemas": SCHEMAS}}
    jsonschema.Draft202012Validator(wrapper).validate(instance)


def request(*texts: str | dict[str, Any], **fields: Any) -> dict[str, Any]:
    body = {"version": 1, "guard": "corp-dlp", "direction": "request", "stream": False,
            "route": "openai", "provider": "openai", "model": "gpt-4o-mini",
            "subject": "alice", "request_id": "6b0c", **fields,
            "texts": [t if isinstance(t, dict) else {"role": "user", "text": t}
                      for t in texts]}
    validate(body, "CheckRequest")
    return body


@pytest_asyncio.fixture(loop_scope="function")  # the tests' loop, not the session's
async def client() -> AsyncIterator[TestClient]:
    app = make_app(["project falcon", "Blue Harbor"], ["email"])
    async with TestClient(TestServer(app)) as c:
        yield c


async def check(client: TestClient, body: Any) -> dict[str, Any]:
    resp = await client.post("/check", json=body)
    assert resp.status == 200, await resp.text()
    answer = await resp.json()
    validate(answer, "Answer")
    # offsets within the text, spans of one text not overlapping (not expressible in schema)
    ends: dict[int, int] = {}
    for m in sorted(answer.get("masks", []), key=lambda m: (m["text"], m["start"])):
        assert 0 <= m["start"] < m["end"] <= len(body["texts"][m["text"]]["text"])
        assert m["start"] >= ends.get(m["text"], 0)
        ends[m["text"]] = m["end"]
    return answer


async def test_clean_text_passes(client: TestClient) -> None:
    body = request({"role": "system", "text": "Be brief."}, "What is 2 + 2?", "")
    assert await check(client, body) == {"action": "pass"}


async def test_email_masked_with_code_point_offsets(client: TestClient) -> None:
    # é (2 UTF-8 bytes), 👋 (4 UTF-8 bytes, 2 UTF-16 units), — (3 UTF-8 bytes) before it
    text = "héllo 👋 wörld — write to bob.smith@example.com, or 🎉 to c@d.io"
    body = request({"role": "system", "text": "no PII"}, text)
    answer = await check(client, body)
    start = text.index("bob.smith@example.com")
    assert start == 25
    assert len(text[:start].encode("utf-16-le")) // 2 == 26   # what UTF-16 units would say
    assert len(text[:start].encode()) == 32                   # what UTF-8 bytes would say
    second = text.index("c@d.io")
    assert answer == {"action": "mask", "masks": [
        {"text": 1, "start": start, "end": start + 21, "placeholder": "<EMAIL>"},
        {"text": 1, "start": second, "end": second + 6, "placeholder": "<EMAIL>"}]}
    m = answer["masks"][0]
    assert text[m["start"]:m["end"]] == "bob.smith@example.com"


async def test_masks_refer_to_the_right_texts(client: TestClient) -> None:
    body = request("a@b.co", "nothing here", "mail me at a@b.co")
    answer = await check(client, body)
    assert answer["masks"] == [
        {"text": 0, "start": 0, "end": 6, "placeholder": "<EMAIL>"},
        {"text": 2, "start": 11, "end": 17, "placeholder": "<EMAIL>"}]


async def test_stream_segment_masks_only_its_part_of_a_split_value(client: TestClient) -> None:
    segment = {"role": "assistant", "text": "example.com for details",
               "context": "reach the team at ops@"}
    body = request(segment, direction="response", stream=True)
    answer = await check(client, body)
    assert answer["masks"] == [{"text": 0, "start": 0, "end": 11, "placeholder": "<EMAIL>"}]
    # a value wholly in the context was delivered already: nothing to mask
    segment = {"role": "assistant", "text": " thanks", "context": "write to ops@example.com"}
    body = request(segment, direction="response", stream=True)
    assert await check(client, body) == {"action": "pass"}


@pytest.mark.parametrize("text", ["All about PROJECT Falcon.", "see blue harbor notes"])
async def test_deny_word_rejects(client: TestClient, text: str) -> None:
    answer = await check(client, request("a@b.co", text))
    assert answer["action"] == "reject"
    assert "falcon" not in answer["reason"].lower()
    assert "harbor" not in answer["reason"].lower()


async def test_default_deny_list_and_mask_choice() -> None:
    async with TestClient(TestServer(make_app(["project falcon"], ["ipv4"]))) as c:
        answer = await check(c, request("host 10.0.0.1, mail a@b.co"))
        assert answer["masks"] == [{"text": 0, "start": 5, "end": 13, "placeholder": "<IP>"}]
        assert (await check(c, request("Project Falcon")))["action"] == "reject"
    with pytest.raises(ValueError):
        make_app([], ["nonsense"])


@pytest.mark.parametrize("data", [
    b"{not json", b"", b"\xff\xfe", b"[]", b'{"version": 1}', b'{"texts": "hi"}',
    b'{"texts": [{"role": "user"}]}', b'{"texts": [{"text": 3}]}',
    b'{"texts": [{"text": "x", "context": 1}]}',
])
async def test_bad_body_is_400(client: TestClient, data: bytes) -> None:
    resp = await client.post("/check", data=data,
                             headers={"content-type": "application/json"})
    assert resp.status == 400
    body = await resp.json()
    validate(body, "ErrorBody")
    assert body["error"]


async def test_healthz(client: TestClient) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    assert await resp.text() == "ok"


# --- the OpenAPI document itself

def _media_examples(content: dict[str, Any]) -> list[Any]:
    media = content["application/json"]
    return [e["value"] for e in media.get("examples", {}).values()]


def test_spec_examples_match_their_schemas() -> None:
    assert SPEC["openapi"].startswith("3.1")
    jsonschema.Draft202012Validator.check_schema(
        {"$ref": "#/components/schemas/Answer", "components": {"schemas": SCHEMAS}})
    for name, schema in SCHEMAS.items():
        jsonschema.Draft202012Validator.check_schema(schema)
        for example in schema.get("examples", []):
            validate(example, name)
    op = SPEC["paths"]["/check"]["post"]
    requests = _media_examples(op["requestBody"]["content"])
    answers = _media_examples(op["responses"]["200"]["content"])
    errors = _media_examples(op["responses"]["400"]["content"])
    assert len(requests) >= 2 and len(errors) >= 1
    assert {a["action"] for a in answers} == {"pass", "mask", "reject"}
    for r in requests:
        validate(r, "CheckRequest")
    for a in answers:
        validate(a, "Answer")
    for e in errors:
        validate(e, "ErrorBody")


@pytest.mark.parametrize(("instance", "schema"), [
    ({"action": "pass", "extra": 1}, "Answer"),
    ({"action": "mask"}, "Answer"),
    ({"action": "mask", "masks": [{"text": 0, "start": 0}]}, "Answer"),
    ({"action": "mask", "masks": [{"text": 0, "start": 0, "end": 1, "placeholder": "x" * 65}]},
     "Answer"),
    ({"action": "reject", "reason": "x" * 201}, "Answer"),
    ({"action": "allow"}, "Answer"),
    ({"texts": []}, "CheckRequest"),
])
def test_spec_refuses_what_the_contract_forbids(instance: Any, schema: str) -> None:
    with pytest.raises(jsonschema.ValidationError):
        validate(instance, schema)


def test_spec_request_constraints() -> None:
    body = request("hi", future_field={"x": 1})   # unknown fields are allowed
    body["texts"][0]["also_new"] = True
    validate(body, "CheckRequest")
    for change in ({"provider": "bedrock"}, {"direction": "both"}, {"version": 2},
                   {"stream": True},   # a streamed segment is always a response
                   {"texts": [{"role": "robot", "text": "x"}]},
                   {"texts": [{"role": "assistant", "text": "x", "context": "c" * 257}]}):
        with pytest.raises(jsonschema.ValidationError):
            validate({**body, **change}, "CheckRequest")
