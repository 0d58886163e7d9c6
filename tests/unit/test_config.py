"""Loading and validating the YAML config (extproc.config, extproc.schema)."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from extproc import config, loader
from extproc.config import Config, RouteConfig, ServerConfig
from extproc.llm.policy import LLMTraffic
from extproc.policy import Policy
from extproc.schema import ConfigError
from tests.plugins import Gatekeeper, TagRequest, UpperResponse

VALID = """\
server:
  max_request_body_bytes: 1048576
  grace_period_s: 2.5
default_route: openai
routes:
  - name: openai
    provider: openai
    streams: {usage: false}
    plugins:
      - class: tests.plugins:Gatekeeper
      - class: tests.plugins:TagRequest
        options: {user: alice}
  - name: claude
    provider: anthropic
    streams: {usage: false}
  - name: gem
    provider: gemini
    streams: {usage: false, json_array_to_sse: false}
    plugins:
      - class: tests.plugins:UpperResponse
"""


class PickyPolicy(Policy):
    """A plugin that validates its own options."""

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        if "limit" not in self.options:
            raise ValueError("option 'limit' is required")


NOT_A_POLICY = object()


def errors_of(data: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        loader.parse(data)
    assert str(info.value) == "\n".join(info.value.errors)
    return info.value.errors


def one_error(data: Any) -> str:
    errors = errors_of(data)
    assert len(errors) == 1, errors
    return errors[0]


def route(**kw: Any) -> dict[str, Any]:
    return {"name": "r", "provider": "openai", **kw}


def plugin_error(spec: Any, **kw: Any) -> str:
    return one_error({"routes": [route(), route(name="p", plugins=[
        {"class": "tests.plugins:Gatekeeper"}, {"class": spec, **kw}])]})


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(text))
    return path


# --- a valid config ----------------------------------------------------------------------

def test_valid_config_loads(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    cfg = loader.load(path)
    assert isinstance(cfg, Config)
    assert cfg.source == str(path)
    assert cfg.server == ServerConfig(max_request_body_bytes=1048576, grace_period_s=2.5)
    assert list(cfg.routes) == ["openai", "claude", "gem"]
    assert cfg.default_route == "openai"
    openai = cfg.routes["openai"]
    assert (openai.name, openai.provider) == ("openai", "openai")
    assert [type(p) for p in openai.plugins] == [Gatekeeper, TagRequest]
    assert cfg.routes["claude"].provider == "anthropic"
    assert cfg.routes["claude"].plugins == ()
    assert [type(p) for p in cfg.routes["gem"].plugins] == [UpperResponse]


def test_route_lookup_and_default_route(tmp_path: Path) -> None:
    cfg = loader.load(write(tmp_path, VALID))
    assert cfg.route("claude") is cfg.routes["claude"]
    assert cfg.route(None) is cfg.routes["openai"]
    assert cfg.route("") is cfg.routes["openai"]
    assert cfg.route("nope") is None


def test_no_default_route() -> None:
    cfg = loader.parse({"routes": [route()]})
    assert cfg.default_route is None
    assert cfg.route(None) is None
    assert cfg.route("r") is not None


def test_defaults() -> None:
    cfg = loader.parse({"routes": [route()]})
    assert cfg.server.max_request_body_bytes == config.DEFAULT_MAX_BODY == 8 * 1024 * 1024
    assert cfg.server.grace_period_s == 10.0
    assert isinstance(cfg.server.grace_period_s, float)
    assert cfg.routes["r"].plugins == ()
    (builtin,) = cfg.routes["r"].policies          # the built-in LLM policy, usage on
    assert isinstance(builtin, LLMTraffic) and cfg.routes["r"].streams.usage


@pytest.mark.parametrize("provider", config.PROVIDERS)
def test_every_provider_is_accepted(provider: str) -> None:
    assert loader.parse({"routes": [route(provider=provider)]}).routes["r"].provider == provider


def test_plugin_options_are_passed(tmp_path: Path) -> None:
    cfg = loader.load(write(tmp_path, VALID))
    tag = cfg.routes["openai"].plugins[1]
    assert dict(tag.options) == {"user": "alice"}
    assert dict(cfg.routes["openai"].plugins[0].options) == {}


async def test_loaded_plugin_uses_its_options(tmp_path: Path) -> None:
    cfg = loader.load(write(tmp_path, VALID))
    tag = cfg.routes["openai"].plugins[1]
    out = await tag.on_request_body(None, b'{"model": "m"}')  # type: ignore[arg-type]
    assert out == b'{"model": "m", "user": "alice"}'


def test_each_route_gets_its_own_plugin_instance() -> None:
    spec = {"class": "tests.plugins:TagRequest"}
    cfg = loader.parse({"routes": [route(name="a", plugins=[spec]),
                                   route(name="b", plugins=[spec])]})
    assert cfg.routes["a"].plugins[0] is not cfg.routes["b"].plugins[0]


def test_needs_body_reflects_plugins() -> None:
    def r(*policies: Policy) -> RouteConfig:
        return RouteConfig("x", "openai", policies)

    assert not r().needs_request_body and not r().needs_response_body
    assert not r(Gatekeeper()).needs_request_body
    assert not r(Gatekeeper()).needs_response_body
    assert r(Gatekeeper(), TagRequest()).needs_request_body
    assert not r(Gatekeeper(), TagRequest()).needs_response_body
    assert not r(UpperResponse()).needs_request_body
    assert r(UpperResponse()).needs_response_body
    both = r(TagRequest(), UpperResponse())
    assert both.needs_request_body and both.needs_response_body


def test_needs_body_from_loaded_config(tmp_path: Path) -> None:
    cfg = loader.load(write(tmp_path, VALID))
    assert cfg.routes["openai"].needs_request_body
    assert not cfg.routes["openai"].needs_response_body
    assert not cfg.routes["claude"].needs_request_body
    assert not cfg.routes["claude"].needs_response_body
    assert cfg.routes["gem"].needs_response_body


@pytest.mark.parametrize("size", [1024, 1048576, config.DEFAULT_MAX_BODY, 256 * 1024 * 1024])
def test_grpc_max_message_is_larger_than_the_body_limit(size: int) -> None:
    limit = ServerConfig(max_request_body_bytes=size).grpc_max_message_bytes
    assert limit == config.grpc_max_message_bytes(size)
    assert limit > size
    assert limit >= size + config.GRPC_MESSAGE_OVERHEAD


def test_grpc_max_message_follows_the_configured_limit() -> None:
    tiny = loader.parse({"server": {"max_request_body_bytes": 2048}, "routes": [route()]})
    small = loader.parse({"server": {"max_request_body_bytes": 16 << 20}, "routes": [route()]})
    big = loader.parse({"server": {"max_request_body_bytes": 32 << 20}, "routes": [route()]})
    assert tiny.server.grpc_max_message_bytes == config.GRPC_MESSAGE_FLOOR  # never below it
    assert small.server.grpc_max_message_bytes > 16 << 20
    assert big.server.grpc_max_message_bytes > small.server.grpc_max_message_bytes


# --- errors, each with its key path ------------------------------------------------------

def test_unknown_top_level_key() -> None:
    err = one_error({"routes": [route()], "rotues": []})
    assert err.startswith("rotues: unknown key")
    assert "routes" in err  # the known keys are listed


def test_unknown_route_key() -> None:
    assert one_error({"routes": [route(), route(name="b", porvider="x")]}).startswith(
        "routes[1].porvider: unknown key")


def test_unknown_server_key() -> None:
    assert one_error({"server": {"max_body": 1}, "routes": [route()]}).startswith(
        "server.max_body: unknown key")


def test_unknown_plugin_key() -> None:
    assert plugin_error("tests.plugins:TagRequest", option={}).startswith(
        "routes[1].plugins[1].option: unknown key")


def test_unknown_provider() -> None:
    err = one_error({"routes": [route(provider="gemni")]})
    assert err.startswith("routes[0].provider: unknown provider 'gemni'")
    assert "gemini" in err


def test_missing_provider() -> None:
    assert one_error({"routes": [route(provider=None)]}).startswith(
        "routes[0].provider: is required")


def test_missing_name() -> None:
    assert one_error({"routes": [route(), {"provider": "openai"}]}) == (
        "routes[1].name: is required")


@pytest.mark.parametrize("name", ["", 3, ["a"]])
def test_bad_name(name: Any) -> None:
    assert one_error({"routes": [route(name=name)]}).startswith(
        "routes[0].name: expected a non-empty string")


def test_duplicate_names() -> None:
    assert one_error({"routes": [route(name="a"), route(name="b"), route(name="a")]}) == (
        "routes[2].name: duplicate route name 'a'")


@pytest.mark.parametrize("value", ["big", 1.5, True, None, [1]])
def test_bad_type_for_max_request_body_bytes(value: Any) -> None:
    err = one_error({"server": {"max_request_body_bytes": value}, "routes": [route()]})
    assert err == f"server.max_request_body_bytes: expected an integer, got {value!r}"


@pytest.mark.parametrize(("value", "message"), [
    (1023, "must be >= 1024"),
    (-5, "must be >= 1024"),
    (256 * 1024 * 1024 + 1, "must be at most 268435456"),
])
def test_out_of_range_max_request_body_bytes(value: int, message: str) -> None:
    err = one_error({"server": {"max_request_body_bytes": value}, "routes": [route()]})
    assert err.startswith(f"server.max_request_body_bytes: {message}")


def test_request_header_limits_default_to_envoys_reference_values() -> None:
    server = loader.parse({"routes": [route()]}).server
    assert (server.max_request_headers_kb, server.max_request_headers_count) == (96, 100)
    server = loader.parse({"server": {"max_request_headers_kb": 64,
                                      "max_request_headers_count": 200},
                           "routes": [route()]}).server
    assert (server.max_request_headers_kb, server.max_request_headers_count) == (64, 200)


@pytest.mark.parametrize(("key", "value", "message"), [
    ("max_request_headers_kb", 4, "must be >= 8"),
    ("max_request_headers_kb", 8193, "must be at most 8192"),
    ("max_request_headers_kb", "96k", "expected an integer"),
    ("max_request_headers_count", 10, "must be >= 32"),
    ("max_request_headers_count", 1.5, "expected an integer"),
])
def test_bad_request_header_limits(key: str, value: Any, message: str) -> None:
    err = one_error({"server": {key: value}, "routes": [route()]})
    assert err.startswith(f"server.{key}: {message}")


@pytest.mark.parametrize("value", ["10s", True, None, {}])
def test_bad_type_for_grace_period_s(value: Any) -> None:
    err = one_error({"server": {"grace_period_s": value}, "routes": [route()]})
    assert err == f"server.grace_period_s: expected a number, got {value!r}"


def test_negative_grace_period_s() -> None:
    assert one_error({"server": {"grace_period_s": -1}, "routes": [route()]}).startswith(
        "server.grace_period_s: must be >= 0")


def test_integer_grace_period_is_a_float() -> None:
    cfg = loader.parse({"server": {"grace_period_s": 3}, "routes": [route()]})
    assert cfg.server.grace_period_s == 3.0
    assert isinstance(cfg.server.grace_period_s, float)


def test_server_must_be_a_mapping() -> None:
    assert one_error({"server": [1], "routes": [route()]}) == (
        "server: expected a mapping, got list")


def test_default_route_naming_no_route() -> None:
    assert one_error({"routes": [route()], "default_route": "nope"}) == (
        "default_route: names no route: 'nope'")


@pytest.mark.parametrize("routes", [[], None])
def test_empty_routes(routes: Any) -> None:
    assert one_error({"routes": routes}) == "routes: at least one route is required"


def test_missing_routes() -> None:
    assert one_error({"server": {}}) == "routes: at least one route is required"


def test_routes_must_be_a_list() -> None:
    errors = errors_of({"routes": {"name": "a", "provider": "openai"}})
    assert "routes: expected a list, got dict" in errors


def test_route_must_be_a_mapping() -> None:
    errors = errors_of({"routes": [route(), "openai"]})
    assert errors[0] == "routes[1]: expected a mapping, got str"
    assert all(e.startswith("routes[1]") for e in errors)


@pytest.mark.parametrize("data", [[1, 2], "text", 3])
def test_top_level_must_be_a_mapping(data: Any) -> None:
    errors = errors_of(data)
    assert errors[0].startswith("<top>: expected a mapping")


def test_empty_document() -> None:
    assert errors_of(None) == ["routes: at least one route is required"]


def test_all_errors_are_reported_at_once() -> None:
    errors = errors_of({
        "bogus": 1,
        "server": {"max_request_body_bytes": "big", "grace_period_s": "soon"},
        "default_route": "missing",
        "routes": [
            {"name": "a", "provider": "gemni"},
            {"provider": "openai"},
            {"name": "c", "provider": "openai", "extra": True},
            {"name": "d", "provider": "openai"},
            {"name": "d", "provider": "anthropic"},
            {"name": "e", "provider": "openai", "plugins": [{"class": "nope"}]},
        ],
    })
    paths = [e.split(":", 1)[0] for e in errors]
    for expected in ["bogus", "server.max_request_body_bytes", "server.grace_period_s",
                     "routes[0].provider", "routes[1].name", "routes[2].extra",
                     "routes[4].name", "routes[5].plugins[0].class", "default_route"]:
        assert expected in paths, (expected, errors)
    assert "routes[0].provider: unknown provider 'gemni'" in "\n".join(errors)
    assert "duplicate route name 'd'" in errors[paths.index("routes[4].name")]


def test_invalid_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "routes: [\n  - name: a\n  provider: {\n")
    with pytest.raises(ConfigError) as info:
        loader.load(path)
    (err,) = info.value.errors
    assert err.startswith("<file>: not valid YAML")
    # where, by name, in one line (PyYAML's own message spans six)
    assert f"{path}:2:3: expected the node content, but found '-'" in err, err
    assert "<unicode string>" not in err and "\n" not in err


def test_unreadable_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError) as info:
        loader.load(missing)
    (err,) = info.value.errors
    assert err.startswith(f"<file>: cannot read {missing}")


def test_directory_is_unreadable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        loader.load(tmp_path)
    assert info.value.errors[0].startswith("<file>: cannot read")


def test_load_reports_validation_errors(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        routes:
          - name: a
            provider: gemni
        """)
    with pytest.raises(ConfigError) as info:
        loader.load(path)
    assert info.value.errors[0].startswith("routes[0].provider: unknown provider 'gemni'")


# --- plugins -----------------------------------------------------------------------------

def test_plugin_module_not_importable() -> None:
    err = plugin_error("no_such_module_xyz.sub:Policy")
    assert err.startswith("routes[1].plugins[1].class: cannot import "
                          "'no_such_module_xyz.sub:Policy'")


def test_plugin_attribute_missing() -> None:
    err = plugin_error("tests.plugins:NoSuchPolicy")
    assert err.startswith("routes[1].plugins[1].class: cannot import 'tests.plugins:NoSuchPolicy'")


@pytest.mark.parametrize("spec", ["tests.plugins:Reject",            # a class, not a Policy
                                  "tests.plugins:json",              # a module
                                  "tests.unit.test_config:NOT_A_POLICY",
                                  "extproc.policy:BodyTransform"])
def test_plugin_not_a_policy(spec: str) -> None:
    assert plugin_error(spec) == (
        f"routes[1].plugins[1].class: {spec!r} is not a subclass of extproc.policy.Policy")


@pytest.mark.parametrize("spec", ["tests.plugins.TagRequest", "tests.plugins:", "TagRequest"])
def test_plugin_class_spec_without_colon(spec: str) -> None:
    assert plugin_error(spec) == (
        f"routes[1].plugins[1].class: expected 'package.module:Class', got {spec!r}")


def test_plugin_class_missing() -> None:
    assert plugin_error(None, options={}) == "routes[1].plugins[1].class: is required"


def test_plugin_class_not_a_string() -> None:
    assert plugin_error(42).startswith("routes[1].plugins[1].class: expected a non-empty string")


def test_plugin_options_rejected_by_the_plugin() -> None:
    err = plugin_error("tests.unit.test_config:PickyPolicy", options={"other": 1})
    assert err.startswith("routes[1].plugins[1].options: ")
    assert "option 'limit' is required" in err


def test_plugin_options_accepted_by_the_plugin() -> None:
    cfg = loader.parse({"routes": [route(plugins=[
        {"class": "tests.unit.test_config:PickyPolicy", "options": {"limit": 3}}])]})
    (policy,) = cfg.routes["r"].plugins
    assert isinstance(policy, PickyPolicy)
    assert dict(policy.options) == {"limit": 3}


def test_plugin_options_must_be_a_mapping() -> None:
    assert plugin_error("tests.plugins:TagRequest", options=[1]).startswith(
        "routes[1].plugins[1].options: expected a mapping")


def test_plugins_must_be_a_list() -> None:
    assert one_error({"routes": [route(plugins={"class": "tests.plugins:TagRequest"})]}) == (
        "routes[0].plugins: expected a list, got dict")


def test_plugin_errors_are_all_reported() -> None:
    errors = errors_of({"routes": [route(plugins=[
        {"class": "nope"}, {"class": "tests.plugins:TagRequest"},
        {"class": "tests.plugins:Missing"}])]})
    assert [e.split(":", 1)[0] for e in errors] == ["routes[0].plugins[0].class",
                                                     "routes[0].plugins[2].class"]


@pytest.mark.parametrize("spec", [":TagRequest", ".plugins:TagRequest"])
def test_plugin_class_with_empty_or_relative_module_is_a_config_error(spec: str) -> None:
    assert plugin_error(spec).startswith("routes[1].plugins[1].class: ")


@pytest.mark.parametrize(("name", "source"), [
    ("extproc_test_syntax_error", "def broken(:\n"),
    ("extproc_test_raises", "raise RuntimeError('at import')\n")])
def test_plugin_module_failing_at_import_is_a_config_error(
        name: str, source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert plugin_error(f"{name}:Policy").startswith("routes[1].plugins[1].class: ")


@pytest.mark.parametrize("provider", config.PROVIDERS)
def test_streams_defaults_per_provider(provider: str) -> None:
    r = loader.parse({"routes": [route(provider=provider)]}).routes["r"]
    google = provider in ("gemini", "vertex")
    assert r.streams.usage and r.streams.json_array_to_sse is google
    assert r.needs_response_body
    assert r.needs_request_body is not google   # Gemini/Vertex: model and stream in the path


def test_streams_off_means_no_builtin_policy() -> None:
    r = loader.parse({"routes": [route(provider="gemini", streams={
        "usage": False, "json_array_to_sse": False})]}).routes["r"]
    assert r.policies == () and not r.needs_response_body


def test_streams_errors_are_named() -> None:
    errors = errors_of({"routes": [route(provider="openai", streams={
        "json_array_to_sse": True, "usage": "yes", "max_event_bytes": 10, "x": 1})]})
    assert "routes[0].streams.json_array_to_sse: only for gemini and vertex, not openai" \
        in errors
    assert any(e.startswith("routes[0].streams.usage: expected true or false") for e in errors)
    assert any(e.startswith("routes[0].streams.max_event_bytes: must be >= 1024")
               for e in errors)
    assert any(e.startswith("routes[0].streams.x: unknown key") for e in errors)


def test_passthrough_entries_are_validated() -> None:
    ok = loader.parse({"routes": [{"name": "r", "provider": "openai", "passthrough": [
        {"path": "/openai/v1/models"}, {"path": "/openai/v1/files/**",
                                        "methods": ["GET", "DELETE"]}]}]})
    allowed = ok.routes["r"].passthrough
    assert [(p.path, p.methods) for p in allowed] == [
        ("/openai/v1/models", ("GET",)), ("/openai/v1/files/**", ("GET", "DELETE"))]
    with pytest.raises(ConfigError) as err:
        loader.parse({"routes": [{"name": "r", "provider": "openai", "passthrough": [
            {"path": "v1/models"}, {"path": "/a/**/b"}, {"path": "/x", "methods": ["FETCH"]},
            {"methods": ["GET"]}, {"path": "/y", "extra": 1}]}]})
    text = str(err.value)
    for where in ("passthrough[0].path", "passthrough[1].path", "passthrough[2].methods",
                  "passthrough[3].path", "passthrough[4]"):
        assert where in text, text


def test_a_passthrough_that_may_generate_is_refused_where_budgets_settle() -> None:
    """Found by the spend audit: a POST pass-through (images, batches) on a route with spend
    or token budgets was neither reserved nor charged, a way around every budget."""
    def route(limits: dict[str, Any], **entry: Any) -> dict[str, Any]:
        return {"routes": [{"name": "r", "provider": "openai", "rate_limits": [
            {"name": "l", "key": ["route"], **limits}], "passthrough": [
            {"path": "/openai/v1/models"}, {"path": "/openai/v1/images/generations",
                                            "methods": ["POST"], **entry}]}]}
    for limits in ({"tokens": [{"limit": 1000, "per": "1m"}]},
                   {"spend": [{"limit": 1, "per": "1d"}]}):
        with pytest.raises(ConfigError) as err:
            loader.parse(route(limits))
        assert "routes[0].passthrough[1]: POST /openai/v1/images/generations on a route " \
            "with token or spend budgets is neither reserved nor charged" in str(err.value)
        said = loader.parse(route(limits, unmetered=True)).routes["r"].passthrough[1]
        assert said.unmetered and said.methods == ("POST",)
    # request limits only: nothing to reserve, nothing to get around
    loader.parse(route({"requests": [{"limit": 10, "per": "1m"}]}))


# --- keys with no value, and keys given twice --------------------------------------------

@pytest.mark.parametrize(("where", "doc"), [
    ("auth.jwt_providers.idp.audiences",
     {"auth": {"jwt_providers": {"idp": {"issuer": "https://idp/", "audiences": None,
                                         "jwks": {"file": "/dev/null"}}}}}),
    ("guards.pii.roles", {"guards": {"pii": {"detectors": ["email"], "roles": None}}}),
    ("guards.pii.apply_to", {"guards": {"pii": {"detectors": ["email"], "apply_to": None}}}),
    ("routes[0].guards", {"routes": [{"name": "r", "provider": "openai", "guards": None}]}),
    ("routes[0].rate_limits", {"routes": [{"name": "r", "provider": "openai",
                                           "rate_limits": None}]}),
])
def test_a_key_with_no_value_is_refused_not_read_as_empty(where: str, doc: dict[str, Any]
                                                          ) -> None:
    """Found by the config audit: a key left blank (a template variable that rendered
    empty) read as an empty list or as absent, and switched its check off: `audiences:`
    accepted every token of the issuer, `roles:` masked no prompt, a route's `guards:` or
    `rate_limits:` left it unguarded or unlimited."""
    doc = {"routes": [{"name": "r", "provider": "openai"}], **doc}
    errors = errors_of(doc)
    assert f"{where}: has no value: give one ([] for an empty list), or remove the key" \
        in errors, errors


@pytest.mark.parametrize("key", ["roles", "apply_to"])
def test_a_guard_told_to_read_nothing_is_refused(key: str) -> None:
    errors = errors_of({"guards": {"pii": {"detectors": ["email"], key: []}},
                        "routes": [{"name": "r", "provider": "openai", "guards": ["pii"]}]})
    assert errors[0].startswith(f"guards.pii.{key}: is empty"), errors


def test_a_key_with_no_value_that_a_check_already_names_is_said_once() -> None:
    errors = errors_of({"routes": [{"name": "r", "provider": None}]})
    assert len(errors) == 1 and errors[0].startswith("routes[0].provider:"), errors


def test_a_key_given_twice_is_refused(tmp_path: Path) -> None:
    """PyYAML keeps the last copy of a repeated key without a word: a second `guards:` in a
    route removed its masking. Refused, naming both lines; a key a merge brings in may
    still be overridden."""
    f = tmp_path / "gateway.yaml"
    f.write_text(textwrap.dedent("""\
        guards:
          pii: {detectors: [email]}
        routes:
          - name: r
            provider: openai
            guards: [pii]
            guards: []
    """))
    with pytest.raises(ConfigError) as info:
        loader.load(f)
    (error,) = info.value.errors
    assert "found the key 'guards' twice (first on line 6)" in error
    f.write_text(textwrap.dedent("""\
        guards:
          pii: {detectors: [email]}
        x-route: &route {provider: openai, guards: [pii]}
        routes:
          - <<: *route
            name: r
            guards: []
    """))
    assert loader.load(f).routes["r"]


def test_an_unhashable_key_is_a_config_error(tmp_path: Path) -> None:
    f = tmp_path / "gateway.yaml"
    f.write_text("routes:\n  - name: a\n    provider: openai\n    ? [x, y]\n    : 1\n")
    with pytest.raises(ConfigError) as info:
        loader.load(f)
    assert "unhashable" in info.value.errors[0]
