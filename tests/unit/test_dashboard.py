"""The Grafana dashboard, Prometheus and Grafana provisioning, and the compose profile that runs
them agree with each other and with the metrics the server exports (extproc/metrics.py); and
compose publishes nothing on the host's interfaces but Envoy's listener."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from extproc import metrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy/grafana/dashboards/extproc.json"
DATASOURCE = ROOT / "deploy/grafana/provisioning/datasources/prometheus.yaml"
PROVIDER = ROOT / "deploy/grafana/provisioning/dashboards/extproc.yaml"
PROMETHEUS = ROOT / "deploy/prometheus/prometheus.yml"
COMPOSE = ROOT / "docker-compose.yml"
ADMIN_PORT = 9464

#: PromQL functions, aggregations, keywords and the Grafana query helpers the dashboard may use
PROMQL_WORDS = frozenset("""
    sum avg min max count stddev stdvar topk bottomk quantile count_values group
    by without on ignoring group_left group_right bool and or unless offset
    rate irate increase delta idelta deriv predict_linear resets changes
    histogram_quantile clamp clamp_min clamp_max abs ceil floor round sqrt exp ln log2 log10
    time timestamp vector scalar absent absent_over_time label_replace label_join sort sort_desc
    avg_over_time min_over_time max_over_time sum_over_time count_over_time
    quantile_over_time last_over_time
    label_values label_names query_result
""".split())
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count")}

IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
SELECTOR = re.compile(r"([A-Za-z_:][A-Za-z0-9_:]*)?\s*\{([^}]*)\}")
GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
RANGE = re.compile(r"\[([^\]]*)\]")
NUMBER = re.compile(r"(?<![A-Za-z0-9_:])\d+(?:\.\d+)?(?:e[+-]?\d+)?")
LEGEND = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def _exported() -> dict[str, set[str]]:
    """Every series name the server exposes, with the label names it can carry."""
    families = metrics.families()
    names: dict[str, set[str]] = {}
    for family in metrics.REGISTRY.collect():
        for suffix in SUFFIXES[family.type]:
            names[family.name + suffix] = set(families[family.name][1]) | (
                {"le"} if suffix == "_bucket" else set())
    assert set(families) == {f.name for f in metrics.REGISTRY.collect()}
    return names


EXPORTED = _exported()


def _load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def _panels(dash: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in dash["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))  # panels inside collapsed rows
    return out


def _queries() -> list[tuple[str, str, str]]:
    """(where, expr, legendFormat) for every PromQL query in the dashboard."""
    dash = _dashboard()
    out = []
    for p in _panels(dash):
        for t in p.get("targets", []):
            out.append((f"panel {p['title']!r} {t['refId']}", t["expr"],
                        t.get("legendFormat", "")))
    for v in dash["templating"]["list"]:
        if v["type"] == "query":
            q = v["query"]
            out.append((f"variable ${v['name']}", q["query"] if isinstance(q, dict) else q, ""))
    return out


def _parse(expr: str) -> tuple[list[str], list[tuple[str | None, str]], set[str], list[str]]:
    """A small PromQL reader: (identifiers outside selectors and groupings, (metric, label)
    for every matcher, labels in by/on/... groupings, range selector contents)."""
    expr = re.sub(r"\$\{?(\w+)\}?", r"\1", STRING.sub('""', expr))  # Grafana $vars -> names
    matchers: list[tuple[str | None, str]] = []
    for m in SELECTOR.finditer(expr):
        for label in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", m.group(2)):
            matchers.append((m.group(1), label))
    expr = SELECTOR.sub(lambda m: f" {m.group(1) or ''} ", expr)
    grouped = {x.strip() for m in GROUPING.finditer(expr) for x in m.group(2).split(",")}
    expr = GROUPING.sub(" ", expr)
    ranges = RANGE.findall(expr)
    expr = NUMBER.sub(" ", RANGE.sub(" ", expr))
    # label_values(metric, label): the second argument is a label, not a metric
    lv = re.search(r"\blabel_values\s*\(\s*([A-Za-z_:][A-Za-z0-9_:]*)?\s*,\s*(\w+)\s*\)", expr)
    if lv:
        matchers.append((lv.group(1), lv.group(2)))
        expr = expr[:lv.start(2)] + expr[lv.end(2):]
    return IDENT.findall(expr), matchers, grouped - {""}, ranges


QUERIES = _queries()


def test_the_dashboard_has_queries_and_the_reader_understands_them() -> None:
    assert len(QUERIES) > 15
    idents, matchers, grouped, ranges = _parse(
        'histogram_quantile(0.99, sum by (le, route) (rate(x_bucket{route=~"$route"}'
        "[$__rate_interval]))) / on(route) y or vector(0)")
    assert idents == ["histogram_quantile", "sum", "rate", "x_bucket", "y", "or", "vector"]
    assert matchers == [("x_bucket", "route")] and grouped == {"le", "route"}
    assert ranges == ["__rate_interval"]
    assert _parse("label_values(m{a=\"b\"}, c)")[:2] == (["label_values", "m"],
                                                          [("m", "a"), ("m", "c")])


@pytest.mark.parametrize(("where", "expr", "legend"), QUERIES, ids=[q[0] for q in QUERIES])
def test_every_query_uses_only_exported_metrics_and_their_labels(
        where: str, expr: str, legend: str) -> None:
    idents, matchers, grouped, ranges = _parse(expr)
    unknown = [i for i in idents if i not in PROMQL_WORDS and i not in EXPORTED]
    assert not unknown, f"{where}: not exported by extproc.metrics: {unknown} in {expr}"
    used = [i for i in idents if i in EXPORTED]
    assert used, f"{where}: reads no extproc metric: {expr}"
    for metric, label in matchers:
        assert metric in EXPORTED, f"{where}: matcher without an exported metric: {expr}"
        assert label in EXPORTED[metric], f"{where}: {metric} has no label {label!r}"
    available = set().union(*(EXPORTED[m] for m in used))
    assert grouped <= available, f"{where}: grouping by {grouped - available} in {expr}"
    assert all(r == "__rate_interval" for r in ranges), f"{where}: use [$__rate_interval]"
    missing = set(LEGEND.findall(legend)) - grouped
    assert not missing, f"{where}: legend uses {missing}, which the query does not keep"


def test_the_dashboard_is_wired_to_the_provisioned_datasource() -> None:
    dash = _dashboard()
    ds = {"type": "prometheus", "uid": "prometheus"}
    assert 36 <= dash["schemaVersion"] <= 41 and dash["uid"]
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert set(variables) >= {"route", "model"}
    assert all(v["datasource"] == ds for v in variables.values())
    ids = [p["id"] for p in _panels(dash)]
    assert len(ids) == len(set(ids))
    for p in _panels(dash):
        if p["type"] == "row":
            continue
        assert p["datasource"] == ds, p["title"]
        assert all(t["datasource"] == ds for t in p["targets"]), p["title"]
        assert p["fieldConfig"]["defaults"].get("unit"), f"{p['title']}: no unit"


def _service(name: str) -> dict[str, Any]:
    return _load_yaml(COMPOSE)["services"][name]


def _mounts(service: str) -> dict[str, str]:
    """container path -> host path (relative to the compose file)"""
    out = {}
    for v in _service(service).get("volumes", []):
        host, container = v.split(":")[:2]
        out[container] = host
    return out


def test_grafana_provisioning_points_at_prometheus_and_the_mounted_dashboards() -> None:
    (source,) = _load_yaml(DATASOURCE)["datasources"]
    assert source["uid"] == "prometheus" and source["type"] == "prometheus"
    assert source["isDefault"] is True
    assert source["url"] == "http://prometheus:9090"
    assert "127.0.0.1:9090:9090" in _service("prometheus")["ports"]
    (provider,) = _load_yaml(PROVIDER)["providers"]
    assert provider["type"] == "file"
    mounts = _mounts("grafana")
    path = provider["options"]["path"]
    assert (ROOT / mounts[path]).resolve() == DASHBOARD.parent
    assert (ROOT / mounts["/etc/grafana/provisioning/datasources"]).resolve() == DATASOURCE.parent
    assert (ROOT / mounts["/etc/grafana/provisioning/dashboards"]).resolve() == PROVIDER.parent


def test_prometheus_scrapes_the_extproc_admin_port_and_envoy_admin() -> None:
    jobs = {j["job_name"]: j for j in _load_yaml(PROMETHEUS)["scrape_configs"]}
    extproc = jobs["extproc"]
    assert extproc.get("metrics_path", "/metrics") == "/metrics"
    assert extproc["scrape_interval"] == "5s"
    assert extproc["static_configs"][0]["targets"] == [f"extproc:{ADMIN_PORT}"]
    envoy = jobs["envoy"]
    assert envoy["metrics_path"] == "/stats/prometheus"
    compose = _load_yaml(ROOT / "envoy/compose.yaml")
    (stats,) = [li for li in compose["static_resources"]["listeners"]
                if li["name"] == "envoy_stats"]
    port = stats["address"]["socket_address"]["port_value"]
    assert envoy["static_configs"][0]["targets"] == [f"envoy:{port}"]
    # the admin API itself stays on Envoy's loopback (see test_envoy_config)
    assert compose["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    mounts = _mounts("prometheus")
    assert (ROOT / mounts["/etc/prometheus/prometheus.yml"]).resolve() == PROMETHEUS


def test_compose_observability_profile_and_extproc_metrics_port() -> None:
    services = _load_yaml(COMPOSE)["services"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["observability"], name
        image = services[name]["image"]
        assert re.search(r":v?\d+\.\d+\.\d+$", image), f"{name}: pin a concrete tag: {image}"
    assert all("profiles" not in s for n, s in services.items()
               if n not in ("prometheus", "grafana")), "plain `docker compose up` changed"
    env = services["grafana"]["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    extproc = services["extproc"]
    assert "ports" not in extproc   # Prometheus scrapes it inside the compose network
    # the admin server must listen on every interface inside the container
    command = extproc.get("command")
    if command is None:  # the image's CMD
        cmd = re.search(r"^CMD (\[.*?\])$", (ROOT / "Dockerfile").read_text(), re.M | re.S)
        assert cmd
        command = json.loads(cmd.group(1).replace("\\\n", ""))
    args = " ".join(command)
    assert f"--admin-port {ADMIN_PORT}" in args and "--admin-host 0.0.0.0" in args


def test_every_host_path_compose_mounts_exists() -> None:
    for name, service in _load_yaml(COMPOSE)["services"].items():
        for volume in service.get("volumes", []):
            host = volume.split(":")[0]
            if host.startswith((".", "/")):
                assert (ROOT / host).exists(), f"{name} mounts missing {host}"


def _published(spec: Any) -> tuple[str, str, str]:
    """(host address, host port, container port) of one `ports:` entry, short or long
    syntax; a host address of "" means every interface."""
    if isinstance(spec, dict):
        return (str(spec.get("host_ip", "")), str(spec.get("published", "")),
                str(spec["target"]))
    text = str(spec).split("/")[0]
    host = ""
    if text.startswith("["):                      # [IPv6]:published:target
        host, _, text = text[1:].partition("]:")
    parts = text.split(":")
    assert 1 <= len(parts) <= 3 and all(parts[-2:]), f"unreadable ports entry {spec!r}"
    if len(parts) == 3:
        host = parts.pop(0)
    return host, parts[0] if len(parts) == 2 else "", parts[-1]


LOOPBACK = ("127.0.0.1", "::1")


def test_compose_publishes_nothing_beyond_loopback() -> None:
    """The stack trusts the development credentials published with extproc: Envoy's
    listener too is published on the host's loopback only (found by review: on every
    interface, anyone on the network could use it with the README's development key)."""
    listener = _load_yaml(ROOT / "envoy/compose.yaml")["static_resources"]["listeners"][0]
    port = str(listener["address"]["socket_address"]["port_value"])
    published, wide = [], []
    for name, service in _load_yaml(COMPOSE)["services"].items():
        assert service.get("network_mode") != "host", f"{name} shares the host's network"
        for spec in service.get("ports", []):
            host, outside, target = _published(spec)
            published.append((name, outside, target))
            if host not in LOOPBACK:
                wide.append((name, outside, target))
    assert ("envoy", port, port) in published
    assert wide == [], f"published on every interface: {wide}"


@pytest.mark.parametrize(("spec", "parsed"), [
    ("10000:10000", ("", "10000", "10000")),
    ("9464", ("", "", "9464")),
    ("127.0.0.1:9090:9090", ("127.0.0.1", "9090", "9090")),
    ("[::1]:3000:3000/tcp", ("::1", "3000", "3000")),
    ("0.0.0.0:9464:9464", ("0.0.0.0", "9464", "9464")),
    ({"target": 9464, "published": 9464}, ("", "9464", "9464")),
    ({"target": 3000, "published": "3000", "host_ip": "127.0.0.1"},
     ("127.0.0.1", "3000", "3000")),
])
def test_ports_entries_are_read_in_every_syntax(spec: Any, parsed: tuple[str, str, str]
                                                 ) -> None:
    assert _published(spec) == parsed
