"""One admin port for `--workers N`: the workers' expositions merged, each series labelled,
and their spend budgets listed."""

from __future__ import annotations

import json
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from extproc import metrics, workers
from extproc.workers import _labelled, merge_expositions


def test_labels_go_first_in_every_sample_form() -> None:
    assert _labelled("up 1", 'worker="0"') == 'up{worker="0"} 1'
    assert _labelled("up{} 1", 'worker="0"') == 'up{worker="0"} 1'
    assert _labelled('x_total{a="b c}",d="e"} 2.0 1700000000', 'worker="1"') == \
        'x_total{worker="1",a="b c}",d="e"} 2.0 1700000000'


def test_every_family_once_with_every_workers_samples() -> None:
    metrics.MESSAGE_DURATION.labels("request_headers").observe(0.001)
    metrics.RELOADS.labels("ok").inc()
    text = metrics.render().decode()
    merged = merge_expositions([("0", text), ("1", text)])
    families = {f.name: f for f in text_string_to_metric_families(merged)}   # parses
    single = {f.name: f for f in text_string_to_metric_families(text)}
    assert set(families) == set(single)
    for name, family in single.items():
        assert len(families[name].samples) == 2 * len(family.samples), name
        for worker in ("0", "1"):
            mine = [s for s in families[name].samples if s.labels.get("worker") == worker]
            assert [(s.name, {k: v for k, v in s.labels.items() if k != "worker"}, s.value)
                    for s in mine] == [(s.name, s.labels, s.value) for s in family.samples]
    for line in merged.splitlines():   # HELP and TYPE once per family
        if line.startswith("# "):
            assert merged.count(line + "\n") == 1, line


def test_a_worker_with_a_family_the_others_lack() -> None:
    a = "# HELP a_total A\n# TYPE a_total counter\na_total 1.0\n"
    b = a + '# HELP b Only here\n# TYPE b gauge\nb{x="1"} 5.0\n'
    merged = merge_expositions([("0", a), ("1", b)])
    assert merged == ('# HELP a_total A\n# TYPE a_total counter\na_total{worker="0"} 1.0\n'
                      'a_total{worker="1"} 1.0\n# HELP b Only here\n# TYPE b gauge\n'
                      'b{worker="1",x="1"} 5.0\n')
    assert merge_expositions([]) == ""


def test_spend_lists_each_workers_memory_budgets_or_redis_once(monkeypatch: Any) -> None:
    row = {"route": "r", "limit": "l", "key": {}, "spent": "1.00"}
    answers = {1: {"store": "memory", "budgets": [row]}, 2: None,
               3: {"store": "memory", "budgets": [row, row]}}
    monkeypatch.setattr(workers, "_fetch", lambda port, path, token=None:
                        None if answers[port] is None else json.dumps(answers[port]).encode())
    status, body, _ = workers._spend([1, 2, 3], [True, True, True])
    found = json.loads(body)
    assert status == 200 and found["store"] == "memory"
    assert [r["worker"] for r in found["budgets"]] == [0, 2, 2]
    shared = {"store": "redis", "budgets": [row]}
    answers.update({1: shared, 3: shared})
    assert json.loads(workers._spend([1, 2, 3], [True, True, True])[1]) == shared


def test_a_worker_that_has_not_bound_its_admin_port_is_not_asked(monkeypatch: Any) -> None:
    asked: list[int] = []
    row = {"route": "r", "limit": "l", "key": {}, "spent": "1.00"}

    def fetch(port: int, path: str, token: str | None = None) -> bytes:
        asked.append(port)
        return json.dumps({"store": "memory", "budgets": [row]}).encode()
    monkeypatch.setattr(workers, "_fetch", fetch)
    # worker 0 is starting (or restarting): its port is still 0
    found = json.loads(workers._spend([0, 7], [True, True])[1])
    assert asked == [7] and [r["worker"] for r in found["budgets"]] == [1]


def test_spend_of_the_workers_says_how_many_budgets_are_configured(monkeypatch: Any) -> None:
    answers = {1: {"store": "memory", "budgets": [], "configured": 0}, 2: None}
    monkeypatch.setattr(workers, "_fetch", lambda port, path, token=None:
                        None if answers[port] is None else json.dumps(answers[port]).encode())
    assert json.loads(workers._spend([1, 2], [True, True])[1])["configured"] == 0
    assert "configured" not in json.loads(workers._spend([2], [True])[1])
