"""Route identity (extproc.routing): every source in its documented order, `provider: auto`,
the refusal of what no route claims, the config checks, and the servicer using it."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import grpc
import pytest
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from hypothesis import given
from hypothesis import strategies as st

from extproc import loader
from extproc import protocol as P
from extproc.routing import ATTRIBUTES_KEY, Router, glob, holds, route_metadata_name
from extproc.schema import ConfigError
from extproc.servicer import Processor
from tests.unit.test_exchange import request_headers

KEYS = {p: {"env": f"TEST_ROUTING_{p.upper()}_KEY"}
        for p in ("openai", "anthropic", "gemini", "vertex", "azure")}


@pytest.fixture(autouse=True)
def _keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for spec in KEYS.values():
        monkeypatch.setenv(spec["env"], "sk-test")


def config(**top: Any) -> Any:
    routes = top.pop("routes", None) or [
        {"name": "openai", "provider": "openai",
         "envoy_route_names": ["httproute/llm/openai/**"]},
        {"name": "anthropic", "provider": "anthropic",
         "match": {"path_prefix": "/anthropic/"}},
        {"name": "team-a", "provider": "openai",
         "match": {"host": "*.team-a.example", "headers": {"x-llm": "yes"}}},
        {"name": "gemini", "provider": "gemini"},
    ]
    return loader.parse({"routes": routes, **top})


def attrs(route_name: str | None = None, metadata: str | None = None) -> Any:
    req = pb.ProcessingRequest()
    fields = req.attributes[ATTRIBUTES_KEY].fields
    if route_name is not None:
        fields["xds.route_name"].string_value = route_name
    if metadata is not None:
        fields["xds.route_metadata"].string_value = metadata
    return req.attributes


def eg_metadata(route: str, key: str = "extproc-route", namespace: str = "llm") -> str:
    """`xds.route_metadata` as Envoy 1.40 sent it for a route shaped like Envoy Gateway's
    (the text format of envoy.config.core.v3.Metadata, copied from a real run): EG copies
    the annotation `gateway.envoyproxy.io/extproc-route` without its prefix, beside the
    HTTPRoute's kind, name and namespace."""
    return (
        'filter_metadata { key: "envoy-gateway" value { fields { key: "resources" value { '
        'list_value { values { struct_value { fields { key: "annotations" value { struct_value '
        '{ fields { key: "KEY" value { string_value: "ROUTE" } '
        '} } } } fields { key: "kind" value { string_value: "HTTPRoute" } } fields { key: '
        '"name" value { string_value: "openai" } } fields { key: "namespace" value { '
        'string_value: "NS" } } } } } } } } } ').replace("ROUTE", route).replace("KEY", key) \
        .replace('"NS"', f'"{namespace}"')


def istio_metadata(namespace: str, name: str, version: str = "v1") -> str:
    """`xds.route_metadata` of a route Istio generated from a VirtualService
    (util.BuildConfigInfoMetadata)."""
    return ('filter_metadata { key: "istio" value { fields { key: "config" value { '
            f'string_value: "/apis/networking.istio.io/{version}/namespaces/{namespace}/'
            f'virtual-service/{name}" }} }} }} }}')


OURS = {"route_owners": [{"kind": "HTTPRoute", "namespace": "llm"}]}


def own_metadata(route: str) -> str:
    return (f'filter_metadata {{ key: "extproc" value {{ fields {{ key: "route" value {{ '
            f'string_value: "{route}" }} }} }} }}')


H = {":path": "/v1/chat/completions", ":authority": "llm.example:443", ":method": "POST"}


def test_initial_metadata_comes_first_and_an_unknown_name_is_refused() -> None:
    r = Router(config())
    found = r.resolve("gemini", attrs("httproute/llm/openai/rule/0/match/0/*"),
                      {**H, ":path": "/anthropic/v1/messages"})
    assert (found.route.name, found.source) == ("gemini", "metadata")
    unknown = r.resolve("nope", attrs("httproute/llm/openai/rule/0"), H)
    assert unknown.route is None and unknown.refusal == (
        404, "no gateway route serves this request (route 'nope' is not configured)")


def test_envoy_route_name_patterns_then_route_metadata() -> None:
    r = Router(config(routing=OURS))
    eg = r.resolve(None, attrs("httproute/llm/openai/rule/0/match/0/llm_example_com",
                               eg_metadata("", "none")), H)
    assert (eg.route.name, eg.source) == ("openai", "route_name")
    # a route name no pattern claims falls through to the route's metadata
    meta = r.resolve(None, attrs("httproute/llm/other/rule/0", eg_metadata("gemini")), H)
    assert (meta.route.name, meta.source) == ("gemini", "route_metadata")
    r = Router(config())
    own = r.resolve(None, attrs(None, own_metadata("anthropic")), H)
    assert (own.route.name, own.source) == ("anthropic", "route_metadata")
    bad = r.resolve(None, attrs(None, own_metadata("ghost")), H)
    assert bad.route is None and bad.refusal[0] == 404 and "'ghost'" in bad.refusal[1]


def test_globs() -> None:
    assert glob("httproute/llm/*/rule/0").fullmatch("httproute/llm/openai/rule/0")
    assert not glob("httproute/llm/*/rule/0").fullmatch("httproute/llm/a/b/rule/0")
    assert glob("httproute/llm/**").fullmatch("httproute/llm/a/b/c")
    assert not glob("httproute/llm.x").fullmatch("httproute/llmXx")   # dots are literal


def test_request_match_in_config_order() -> None:
    r = Router(config())
    found = r.resolve(None, None, {**H, ":path": "/anthropic/v1/messages"})
    assert (found.route.name, found.source) == ("anthropic", "match")
    team = {**H, ":authority": "gw.team-a.example:8443", "x-llm": "yes"}
    assert r.resolve(None, None, team).route.name == "team-a"
    assert r.resolve(None, None, {**team, "x-llm": "no"}).route is None
    assert r.resolve(None, None, {**team, ":authority": "team-a.example"}).route is None
    # the canonical path decides: an encoded prefix is the same prefix
    assert r.resolve(None, None, {**H, ":path": "/%61nthropic/v1/messages"}).route.name \
        == "anthropic"
    # attributes that name nothing fall through to the request itself
    found = r.resolve(None, attrs("unrelated"), {**H, ":path": "/anthropic/v1/messages"})
    assert found.source == "match"


def test_unmatched_is_refused_neutrally_or_given_the_explicit_default() -> None:
    none = Router(config()).resolve(None, None, H)
    assert none.route is None and none.refusal == (404, "no gateway route serves this request")
    assert Router(config(routing={"unmatched_status": 403})).resolve(
        None, None, H).refusal[0] == 403
    default = Router(config(default_route="gemini")).resolve(None, None, H)
    assert (default.route.name, default.source) == ("gemini", "default")


def test_answers_are_cached_per_distinct_value() -> None:
    r = Router(config(routing=OURS))
    named = ("httproute/llm/openai/rule/0", eg_metadata("", "none"))
    a = r.resolve(None, attrs(*named), H)
    assert r.resolve(None, attrs(*named), H) is a
    m = r.resolve(None, attrs(None, eg_metadata("gemini")), H)
    assert r.resolve(None, attrs(None, eg_metadata("gemini")), H) is m


AUTO_PATHS = [
    ("/v1/chat/completions", "openai"),
    ("/v1/responses", "openai"),
    ("/v1/embeddings", "openai"),
    ("/v1/messages", "anthropic"),
    ("/v1/messages/count_tokens", "anthropic"),
    ("/v1beta/models/gemini-2.5-flash:generateContent", "gemini"),
    ("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", "gemini"),
    ("/v1/projects/p/locations/us-central1/publishers/google/models/gemini-2.5-pro:"
     "streamGenerateContent", "vertex"),
    ("/openai/deployments/gpt4o/chat/completions?api-version=2024-10-21", "azure"),
    ("/openai/v1/chat/completions", "azure"),
    ("/v1/completions", "openai"),
]


@pytest.mark.parametrize(("path", "provider"), AUTO_PATHS)
def test_provider_auto_recognises_the_provider_from_the_path(path: str, provider: str) -> None:
    cfg = config(routes=[{"name": "llm", "provider": "auto", "match": {"host": "llm.example"},
                          "upstream_credential": KEYS, "auth": "none",
                          "project": "*"}])   # Vertex: any project, said on purpose
    found = Router(cfg).resolve(None, None, {**H, ":path": path})
    assert found.route is not None and found.route.provider == provider
    assert found.name == "llm" and found.route.name == "llm"
    # each provider gets its own credential, adapters and error format
    auth = found.route.policies[0]
    assert type(auth).__name__ == "Authenticate" and auth.provider == provider


def test_provider_auto_refuses_a_path_no_served_provider_has() -> None:
    cfg = config(routes=[{"name": "llm", "provider": "auto", "providers": ["anthropic"],
                          "match": {"path_prefix": "/"}}])
    r = Router(cfg)
    assert r.resolve(None, None, {**H, ":path": "/v1/messages"}).route.provider == "anthropic"
    refused = r.resolve(None, None, H)   # an OpenAI path: not served here
    assert refused.route is None and refused.refusal == (
        404, "no provider served by route 'llm' has this endpoint (served: anthropic)")


@given(st.sampled_from([p for p, _ in AUTO_PATHS]), st.sampled_from(
    ["/", "/v1/", "/openai/", "/x/y/z"]))
def test_holds_path_prefix_is_a_plain_prefix_of_the_canonical_path(path: str,
                                                                     prefix: str) -> None:
    from extproc.config import RequestMatch
    assert holds(RequestMatch(path_prefix=prefix), {":path": path}) == \
        path.split("?")[0].startswith(prefix)


def test_route_metadata_parsing_ignores_what_it_cannot_read() -> None:
    assert route_metadata_name("not { a metadata") is None
    assert route_metadata_name("") is None
    assert route_metadata_name('filter_metadata { key: "other" value { } }') is None
    owners = config(routing=OURS).route_owners
    assert route_metadata_name(eg_metadata("x"), owners) == "x"
    assert route_metadata_name(eg_metadata("y", "gateway.envoyproxy.io/extproc-route"),
                               owners) == "y"
    assert route_metadata_name(eg_metadata("z", "other-annotation"), owners) is None


def test_an_annotation_is_read_only_from_an_owned_namespace() -> None:
    """Found by the mesh review: on a shared Envoy Gateway, another team's HTTPRoute
    annotated `extproc-route: openai` (on their own Gateway, their policy pointing at our
    Service) got our route and so our provider key. An annotation is now read only from
    an HTTPRoute `routing.route_owners` admits, and with no owners configured, from none."""
    unowned = Router(config())
    found = unowned.resolve(None, attrs(None, eg_metadata("gemini")), H)
    assert found.route is None and found.source == "none"
    assert route_metadata_name(eg_metadata("gemini")) is None
    r = Router(config(routing=OURS))
    ours = r.resolve(None, attrs(None, eg_metadata("gemini")), H)
    assert (ours.route.name, ours.source) == ("gemini", "route_metadata")
    theirs = r.resolve(None, attrs(None, eg_metadata("gemini", namespace="tenant")), H)
    assert theirs.route is None and theirs.source == "unowned"
    assert theirs.refusal is not None and theirs.refusal[0] == 404
    # nor does a route name our glob claims help a route from another namespace
    named = r.resolve(None, attrs("httproute/llm/openai/rule/0/match/0/x",
                                  eg_metadata("", "none", namespace="tenant")), H)
    assert named.route is None and named.source == "unowned"


def test_route_owners_gate_every_source_on_istio_route_metadata() -> None:
    """Found by the mesh review: on a shared Istio ingress, a VirtualService of another
    namespace with a route named like ours got our EnvoyFilter's per-route patch, so our
    x-extproc-route and our provider key. With `route_owners`, x-extproc-route (and every
    other source) is trusted only on a route Istio generated from our VirtualService."""
    r = Router(config(routing={"route_owners": [
        {"kind": "VirtualService", "namespace": "llm-gateway", "name": "llm"}]}))
    ours = r.resolve("gemini", attrs(None, istio_metadata("llm-gateway", "llm")), H)
    assert (ours.route.name, ours.source) == ("gemini", "metadata")
    # Istio's stored version may be another; the object is what counts
    old = r.resolve("gemini", attrs(None, istio_metadata("llm-gateway", "llm", "v1beta1")), H)
    assert old.route is not None
    for meta in (istio_metadata("tenant", "llm"), istio_metadata("llm-gateway", "other"),
                 own_metadata("gemini"), eg_metadata("gemini", namespace="llm-gateway"),
                 "not { metadata", None):
        found = r.resolve("gemini", attrs(None, meta), H)
        assert found.route is None and found.source == "unowned", meta
        assert found.refusal == (404, "no gateway route serves this request (its Envoy route "
                                      "belongs to no routing.route_owners object)")
    # no attributes at all (a filter that does not send xds.route_metadata): refused
    assert r.resolve("gemini", None, H).source == "unowned"
    assert r.resolve(None, None, {**H, ":path": "/anthropic/v1/messages"}).route is None
    # the answer is cached per metadata text, as the other sources' are
    assert len(r._owned) == 8


@pytest.mark.parametrize(("routing", "error"), [
    ({"route_owners": []}, "routing.route_owners: name at least one owner (or remove the key)"),
    ({"route_owners": [{"kind": "HTTPRoute"}]},
     "routing.route_owners[0].namespace: is required"),
    ({"route_owners": [{"kind": "HTTPRoute", "namespace": "a", "nam": "x"}]},
     "routing.route_owners[0].nam: unknown key (known keys: kind, name, namespace)"),
    ({"route_owners": "llm"}, "routing.route_owners: expected a list, got str"),
])
def test_check_names_each_route_owner_mistake(routing: dict[str, Any], error: str) -> None:
    with pytest.raises(ConfigError) as exc:
        loader.parse({"routing": routing, "routes": [{"name": "r", "provider": "openai"}]})
    assert error in exc.value.errors


@pytest.mark.parametrize(("route", "error"), [
    ({"name": "r", "provider": "openai", "envoy_route_names": [""]},
     "routes[0].envoy_route_names[0]: expected a non-empty pattern, got ''"),
    ({"name": "r", "provider": "openai", "match": {}},
     "routes[0].match: give at least one of path_prefix, host, headers"),
    ({"name": "r", "provider": "openai", "match": {"path_prefix": "v1"}},
     "routes[0].match.path_prefix: must start with '/': 'v1'"),
    ({"name": "r", "provider": "openai", "match": {"host": "a.*.com"}},
     "routes[0].match.host: a host name, or '*.' and a domain (no port): 'a.*.com'"),
    ({"name": "r", "provider": "openai", "match": {"headers": {":path": "/"}}},
     "routes[0].match.headers: not a header name: ':path' (use path_prefix and host for the "
     "path and authority)"),
    ({"name": "r", "provider": "openai", "providers": ["openai"]},
     "routes[0].providers: only a route with provider: auto lists providers"),
    ({"name": "r", "provider": "auto", "providers": ["openai", "bard"]},
     "routes[0].providers: unknown provider(s) ['bard'] (one of: openai, azure, anthropic, "
     "gemini, vertex)"),
    ({"name": "r", "provider": "auto", "upstream_credential": {"openai": {"env": "K"}}},
     "routes[0].upstream_credential: with provider: auto, name a credential for each "
     "provider served (missing: azure, vertex, gemini, anthropic)"),
    ({"name": "r", "provider": "auto", "passthrough": [{"path": "/v1/models"}]},
     "routes[0].passthrough: a provider: auto route cannot tell whose pass-through a path "
     "is: give that provider a route of its own"),
])
def test_check_names_each_mistake(route: dict[str, Any], error: str) -> None:
    with pytest.raises(ConfigError) as exc:
        loader.parse({"routes": [route]})
    assert error in exc.value.errors


def test_check_refuses_an_unmatched_status_other_than_404_or_403() -> None:
    with pytest.raises(ConfigError) as exc:
        loader.parse({"routing": {"unmatched_status": 500},
                      "routes": [{"name": "r", "provider": "openai"}]})
    assert exc.value.errors == ["routing.unmatched_status: must be 404 or 403, got 500"]


class Context:
    """grpc.aio's servicer context as far as Process uses it (no initial metadata)."""

    def __init__(self, messages: list[pb.ProcessingRequest]) -> None:
        self.messages = messages
        self.written: list[Any] = []

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return ()

    async def read(self) -> Any:
        return self.messages.pop(0) if self.messages else grpc.aio.EOF

    async def write(self, reply: Any) -> None:
        self.written.append(reply)


def test_the_servicer_routes_by_attributes_and_refuses_what_nothing_claims() -> None:
    processor = Processor(config())
    # (the body modes the reference Envoy config sets: the route's usage reads the reply)
    first = request_headers(eos=False, req_mode=P.BUFFERED, resp_mode=P.STREAMED)
    first.attributes[ATTRIBUTES_KEY].fields["xds.route_name"].string_value = \
        "httproute/llm/openai/rule/0/match/0/x"
    ctx = Context([first])
    asyncio.run(processor.Process(iter(()), ctx))  # type: ignore[arg-type]
    reply = pb.ProcessingResponse.FromString(ctx.written[0]) \
        if isinstance(ctx.written[0], bytes) else ctx.written[0]
    assert reply.WhichOneof("response") == "request_headers"
    assert processor.stats()["routed_by"] == {"route_name": 1}

    ctx = Context([request_headers(eos=True)])
    asyncio.run(processor.Process(iter(()), ctx))  # type: ignore[arg-type]
    reply = ctx.written[0] if not isinstance(ctx.written[0], bytes) else \
        pb.ProcessingResponse.FromString(ctx.written[0])
    imm = reply.immediate_response
    assert imm.status.code == 404 and imm.details == "extproc_unknown_route"
    assert json.loads(imm.body) == {"error": {
        "message": "no gateway route serves this request", "type": "gateway_error",
        "code": 404}}
    assert processor.stats()["routed_by"] == {"route_name": 1, "none": 1}


def test_check_prints_how_each_route_is_recognised() -> None:
    from extproc.cli import identity_lines
    cfg = config(routes=[
        {"name": "eg", "provider": "openai", "envoy_route_names": ["httproute/a/**"]},
        {"name": "llm", "provider": "auto", "providers": ["openai", "anthropic"],
         "match": {"host": "*.x.example", "headers": {"x-llm": "1"}}}],
        routing={"unmatched_status": 403})
    assert identity_lines(cfg) == [
        "eg (openai) <- x-extproc-route: eg | xds.route_name ~ httproute/a/** | "
        "route metadata: eg",
        "llm (auto: anthropic, openai) <- x-extproc-route: llm | route metadata: llm | "
        "match host *.x.example, x-llm: 1",
        "anything else -> 403 (no route)"]
