"""A Vertex AI route's project and location (found by the auth audit): Vertex reads the
project to bill and the region to run in from the path, so with the operator's credential
injected a client could name any project that credential reaches, another team's. A route
that sets `project` and `location` serves those only: another is refused (403, Google's
format) and never sent; the client's own credential never goes upstream either way."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator

import httpx
import pytest

from extproc import loader
from extproc.auth.apikeys import hash_key
from extproc.schema import ConfigError
from tests.harness import Gateway, Mock

pytestmark = pytest.mark.envoy

KEY = "gw-vertex-scope-key"
BODY = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}]}


def path(project: str, location: str) -> str:
    return (f"/vertex/v1/projects/{project}/locations/{location}/publishers/google/models/"
            "gemini-2.5-flash:generateContent")


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    tmp = tmp_path_factory.mktemp("vertex-scope")
    (tmp / "vertex.key").write_text("ya29.operator\n")
    config = {"auth": {"api_keys": [{"id": "k", "sha256": hash_key(KEY), "subject": "a"}]},
              "routes": [{"name": "vertex", "provider": "vertex", "auth": {"api_keys": True},
                          "upstream_credential": {"file": "vertex.key"},
                          "project": "team-a", "project_number": 123456789012,
                          "location": "us-central1"}]}
    gateway = Gateway(tmp, config, mock=mock)
    yield gateway
    gateway.close()


def send(gw: Gateway, target: str) -> tuple[httpx.Response, bool]:
    httpx.get(gw.mock.url + "/reset")
    r = httpx.post(gw.url + target, json=BODY, timeout=30,
                   headers={"authorization": f"Bearer {KEY}"})
    last = gw.mock.last()
    return r, last is not None and last["path"] != "/reset"


def test_the_routes_project_and_location_pass(gw: Gateway) -> None:
    r, sent = send(gw, path("team-a", "us-central1"))
    assert r.status_code == 200, r.text
    assert sent and gw.mock.last()["headers"]["authorization"] == "Bearer ya29.operator"


@pytest.mark.parametrize(("project", "location", "what"), [
    ("team-b", "us-central1", "project"), ("team-a", "europe-west4", "location")])
def test_another_project_or_location_is_refused(gw: Gateway, project: str, location: str,
                                                what: str) -> None:
    r, sent = send(gw, path(project, location))
    assert r.status_code == 403, r.text
    assert r.json()["error"]["status"] == "PERMISSION_DENIED"
    assert f"serves the {what}" in r.json()["error"]["message"]
    assert not sent


def send_body(gw: Gateway, body: dict) -> tuple[httpx.Response, bool]:
    httpx.get(gw.mock.url + "/reset")
    r = httpx.post(gw.url + path("team-a", "us-central1"), json=body, timeout=30,
                   headers={"authorization": f"Bearer {KEY}"})
    last = gw.mock.last()
    return r, last is not None and last["path"] != "/reset"


RAG = "projects/team-b/locations/us-central1/ragCorpora/hr"
STORE = "projects/team-b/locations/global/collections/default_collection/dataStores/hr-docs"


@pytest.mark.parametrize("extra", [
    {"tools": [{"retrieval": {"vertexRagStore": {"ragResources": [{"ragCorpus": RAG}]}}}]},
    {"tools": [{"retrieval": {"vertexAiSearch": {"datastore": STORE}}}]},
    {"cachedContent": "projects/team-b/locations/us-central1/cachedContents/1"},
    {"cached_content": "projects/team-a/locations/europe-west4/cachedContents/1"},
], ids=["rag-corpus", "search-datastore", "cached-content", "cached-content-location"])
def test_a_resource_of_another_project_named_in_the_body_is_refused(
        gw: Gateway, extra: dict) -> None:
    """Found by review: the path was pinned, the body was not, and the provider reads a
    retrieval tool's corpus or a cached content with the operator's credential."""
    r, sent = send_body(gw, {**BODY, **extra})
    assert r.status_code == 403, r.text
    assert r.json()["error"]["status"] == "PERMISSION_DENIED"
    assert "a resource the body names is another's" in r.json()["error"]["message"]
    assert not sent


def test_a_resource_name_spelled_with_json_escapes_is_refused(gw: Gateway) -> None:
    """JSON may write "/" as "\\/" and any letter as a \\u escape: the check reads the
    parsed body, never the bytes."""
    body = json.dumps({**BODY, "cachedContent": "projects/team-b/locations/us-central1/"
                       "cachedContents/1"}).replace("/", "\\/").replace("p", "\\u0070")
    httpx.get(gw.mock.url + "/reset")
    r = httpx.post(gw.url + path("team-a", "us-central1"), content=body, timeout=30,
                   headers={"authorization": f"Bearer {KEY}",
                            "content-type": "application/json"})
    assert r.status_code == 403, r.text
    last = gw.mock.last()
    assert last is None or last["path"] == "/reset"


def test_a_body_the_check_could_misread_is_refused(gw: Gateway) -> None:
    """Found by review: on a route where no other policy read the body as JSON, a gzip body
    or a key given twice (the last one read, the first one another parser's) passed the
    check. The body is now read as the provider reads it: decoded, each key once."""
    evil = {**BODY, "cachedContent": "projects/team-b/locations/us-central1/cachedContents/1"}
    twice = json.dumps(evil)[:-1] + ', "cachedContent": "projects/team-a/locations/' \
        'us-central1/cachedContents/1"}'
    for content, extra, status in ((gzip.compress(json.dumps(evil).encode()),
                                    {"content-encoding": "gzip"}, 403),
                                   (twice.encode(), {}, 400)):
        httpx.get(gw.mock.url + "/reset")
        r = httpx.post(gw.url + path("team-a", "us-central1"), content=content, timeout=30,
                       headers={"authorization": f"Bearer {KEY}",
                                "content-type": "application/json", **extra})
        assert r.status_code == status, r.text
        last = gw.mock.last()
        assert last is None or last["path"] == "/reset"


@pytest.mark.parametrize("extra", [
    {"modelArmorConfig": {"promptTemplateName":
                          "projects/team-b/locations/us-central1/templates/t"}},
    {"model_armor_config": {"response_template_name":
                            "projects/team-b/locations/us-central1/templates/t"}},
    {"tools": [{"retrieval": {"vertexAiSearch": {
        "datastore": "projects/team-a/locations/europe-west4/collections/c/dataStores/d"}}}]},
    {"tools": [{"retrieval": {"vertexRagStore": {"ragResources": [{"ragCorpus": " " + RAG}]}}}]},
    {"CachedContent": "projects/team-b/locations/us-central1/cachedContents/1"},
], ids=["model-armor", "model-armor-snake", "search-in-another-region", "leading-space",
        "key-case"])
def test_other_resources_the_provider_reads_are_checked(gw: Gateway, extra: dict) -> None:
    r, sent = send_body(gw, {**BODY, **extra})
    assert r.status_code == 403, r.text
    assert not sent


def test_the_routes_own_resources_and_a_prompt_naming_another_pass(gw: Gateway) -> None:
    """The route's project by its id or by its number (Vertex names the resources it
    creates so), and another project named where the provider fetches nothing by it: the
    prompt, a function's description, an output schema, a label (found by the review of
    the fix: schemas naming "projects/..." were refused)."""
    prompt = {"contents": [{"role": "user", "parts": [{"text": f"what is {RAG}?"}]}]}
    bodies = [
        {**BODY, "cachedContent": "projects/team-a/locations/us-central1/cachedContents/1"},
        {**BODY, "cachedContent": "projects/123456789012/locations/us-central1/"
                                  "cachedContents/1"},
        {**BODY, "tools": [{"retrieval": {"vertexRagStore": {"ragResources": [
            {"ragCorpus": "projects/123456789012/locations/us-central1/ragCorpora/c"}]}}},
            {"functionDeclarations": [{"name": "f", "description": f"reads {RAG}"}]}]},
        {**BODY, "generationConfig": {"responseMimeType": "application/json",
                                      "responseJsonSchema": {
                                          "$id": "https://example.com/projects/s.json",
                                          "enum": ["projects/active"]}}},
        {**BODY, "labels": {"origin": "projects/team-b"}},
        # Vertex AI Search lives in global, us or eu, whatever the route's region
        {**BODY, "tools": [{"retrieval": {"vertexAiSearch": {"datastore": STORE.replace(
            "team-b", "team-a")}}}]},
        {**BODY, "modelArmorConfig": {"promptTemplateName":
                                      "projects/team-a/locations/us-central1/templates/t"}},
        prompt]
    for body in bodies:
        r, sent = send_body(gw, body)
        assert r.status_code == 200, (body, r.text)
        assert sent
    r, sent = send(gw, path("123456789012", "us-central1"))
    assert r.status_code == 200 and sent, r.text


def test_a_project_number_must_be_digits_beside_a_project() -> None:
    config = {"auth": {"api_keys": [{"id": "k", "sha256": hash_key(KEY), "subject": "a"}]}}
    for extra in ({"project": "team-a", "project_number": "team-b"},
                  {"project": "*", "project_number": 1}):
        with pytest.raises(ConfigError) as exc:
            loader.parse({**config, "routes": [_vertex_route(**extra)]})
        assert "routes[0].project_number" in "\n".join(exc.value.errors)


def test_project_and_location_belong_to_vertex_routes() -> None:
    with pytest.raises(ConfigError) as exc:
        loader.parse({"routes": [{"name": "o", "provider": "openai", "project": "p"}]})
    assert "only for a provider: vertex route" in "\n".join(exc.value.errors)


@pytest.fixture(autouse=True)
def _vertex_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERTEX_TOKEN", "ya29.operator")


def _vertex_route(**extra: object) -> dict:
    return {"name": "vertex", "provider": "vertex", "auth": {"api_keys": True},
            "upstream_credential": {"env": "VERTEX_TOKEN"}, **extra}


def test_a_vertex_route_injecting_a_credential_must_name_its_project() -> None:
    # without a project, the client's path picks whichever project the credential reaches
    config = {"auth": {"api_keys": [{"id": "k", "sha256": hash_key(KEY), "subject": "a"}]}}
    with pytest.raises(ConfigError) as exc:
        loader.parse({**config, "routes": [_vertex_route()]})
    errors = "\n".join(exc.value.errors)
    assert "routes[0].project" in errors and "project: '*'" in errors
    # a location alone does not pin the project
    with pytest.raises(ConfigError):
        loader.parse({**config, "routes": [_vertex_route(location="us-central1")]})


@pytest.mark.parametrize("extra", [{"project": "team-a"}, {"project": "*"},
                                   {"project": "*", "location": "*"}])
def test_a_named_or_starred_project_loads(extra: dict) -> None:
    config = {"auth": {"api_keys": [{"id": "k", "sha256": hash_key(KEY), "subject": "a"}]},
              "routes": [_vertex_route(**extra)]}
    route = loader.parse(config).routes["vertex"]
    scopes = [p for p in route.policies if type(p).__name__ == "VertexScope"]
    if extra["project"] == "*":   # any project, said on purpose: nothing pins the path
        assert all(s.project is None for s in scopes)
        assert all(s.location is None for s in scopes) or "location" not in extra
    else:
        assert [s.project for s in scopes] == ["team-a"]


def test_a_vertex_route_without_a_credential_needs_no_project() -> None:
    # the client's own credential goes upstream: it bills only what the client may
    loader.parse({"routes": [{"name": "vertex", "provider": "vertex", "auth": "none"}]})


def _auto_route(providers: list[str] | None = None, **extra: object) -> dict:
    served = providers or ["openai", "azure", "anthropic", "gemini", "vertex"]
    route = {"name": "llm", "provider": "auto", "auth": {"api_keys": True},
             "upstream_credential": {p: {"env": "VERTEX_TOKEN"} for p in served}, **extra}
    if providers is not None:
        route["providers"] = providers
    return route


def _scopes(route: object) -> list[tuple[str | None, str | None]]:
    return [(p.project, p.location) for p in route.policies   # type: ignore[attr-defined]
            if type(p).__name__ == "VertexScope"]


AUTH = {"api_keys": [{"id": "k", "sha256": hash_key(KEY), "subject": "a"}]}


@pytest.mark.parametrize("providers", [None, ["azure", "vertex"], ["vertex", "openai"]])
def test_an_auto_route_serving_vertex_with_a_credential_must_name_its_project(
        providers: list[str] | None) -> None:
    # Vertex is rarely the first provider an auto route recognises: the check must not
    # depend on which provider's settings are read first (found by this stop's review)
    with pytest.raises(ConfigError) as exc:
        loader.parse({"auth": AUTH, "routes": [_auto_route(providers)]})
    assert "routes[0].project" in "\n".join(exc.value.errors)


@pytest.mark.parametrize("providers", [None, ["azure", "vertex"], ["vertex", "openai"]])
def test_an_auto_routes_project_pins_its_vertex_requests_only(
        providers: list[str] | None) -> None:
    route = loader.parse({"auth": AUTH, "routes": [
        _auto_route(providers, project="team-a", location="us-central1")]}).routes["llm"]
    assert route.variants is not None
    for name, variant in route.variants.items():
        assert _scopes(variant) == ([("team-a", "us-central1")] if name == "vertex" else [])


def test_a_project_on_a_route_that_serves_no_vertex_is_refused() -> None:
    with pytest.raises(ConfigError) as exc:
        loader.parse({"auth": AUTH, "routes": [_auto_route(["azure", "openai"],
                                                           project="p")]})
    assert "only for a provider: vertex route" in "\n".join(exc.value.errors)
