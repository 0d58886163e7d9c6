"""What a client (or a file) can put in a value the gateway writes elsewhere: a model name in
metric labels, log lines, Envoy's metadata; a config file the watcher reads. None of them can
break a scrape, forge a log line, fill the logs, or stop the config watcher (found by the
operations audit)."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from extproc import filewatch, httpclient, metrics, server
from extproc.logs import TextFormatter
from extproc.providers.endpoints import classify
from extproc.reading import MAX_MODEL_CHARS, Unreadable, canonical_target, read_body
from extproc.servicer import Processor
from extproc.workers import merge_expositions
from tests.unit.test_reload_watch import reloads, wait_for


def test_a_merged_exposition_keeps_samples_whose_labels_hold_line_separators() -> None:
    text = ('# HELP m_total a counter\n# TYPE m_total counter\n'
            'm_total{model="a\u2028b\x85c\x0bd"} 1.0\n')
    merged = merge_expositions([("0", text), ("1", text)])
    samples = [s for f in text_string_to_metric_families(merged) for s in f.samples]
    assert [s.labels["worker"] for s in samples] == ["0", "1"]


@pytest.mark.parametrize("name", ["gpt\u2028x", "gpt\rx", "gpt\nx", "gpt\x1ex"])
def test_a_model_label_holds_no_line_breaking_character(name: str) -> None:
    assert metrics.model_label(name) == "other"
    assert metrics.team_label(name) == "other"


@pytest.mark.parametrize("model", ["m" * (MAX_MODEL_CHARS + 1), "gpt-4o\nERROR forged",
                                   "gpt\u2028x", "gpt\x00"])
def test_a_model_name_no_provider_serves_is_refused_before_any_policy(model: str) -> None:
    endpoint = classify("openai", "POST", canonical_target("/v1/chat/completions"))
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "hi"}]},
                      ensure_ascii=False).encode()
    with pytest.raises(Unreadable) as exc:
        read_body(endpoint, body, [], 1 << 20, "/v1/chat/completions")
    assert exc.value.status == 400 and model not in str(exc.value)
    ok = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
                    ).encode()
    assert read_body(endpoint, ok, [], 1 << 20, "/v1/chat/completions")[1][1].model == "gpt-4o"


def test_the_text_log_format_writes_a_clients_line_break_escaped() -> None:
    formatter = TextFormatter("%(levelname)s %(name)s: %(message)s")
    record = logging.LogRecord("extproc", logging.WARNING, "f", 1, "model %s refused",
                               ("gpt\nERROR extproc: forged",), None)
    record.fields = {"model": "a\u2028b"}
    line = formatter.format(record)
    assert "\n" not in line and "\u2028" not in line
    assert "gpt\\nERROR" in line and 'model="a\\\\u2028b"' in line
    # a field's value with a space is quoted: it cannot pass for fields of its own (found
    # by the operations audit: an x-request-id `r1 route=admin status=200`)
    record.fields = {"request_id": 'r1 route=admin status=200 "x', "route": "openai"}
    line = formatter.format(record)
    assert line.endswith('request_id="r1 route=admin status=200 \\"x" route=openai'), line


@pytest.mark.parametrize("content", [b"\xff\xfe not utf-8", b"a:" + b"[" * 5000])
async def test_a_config_file_that_cannot_be_loaded_is_refused_and_the_watch_goes_on(
        tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("routes: [{name: one, provider: openai}]\n")
    with filewatch.tracking() as read:
        processor = Processor(server._load(str(path)))
    watch = filewatch.Watch(str(path), read)
    task = asyncio.get_running_loop().create_task(
        server._watch(processor, str(path), watch, interval=0.01))
    try:
        refused = reloads("refused")
        path.write_bytes(content)
        await wait_for(lambda: reloads("refused") == refused + 1)
        assert set(processor.config.routes) == {"one"} and not task.done()
        path.write_text("routes: [{name: two, provider: openai}]\n")
        await wait_for(lambda: "two" in processor.config.routes)   # still watching
    finally:
        task.cancel()
        await httpclient.close()   # this test's loop's session, as the server does at exit


def test_made_up_model_names_cannot_fill_the_label_cap() -> None:
    """A name takes a place in the 200-name cap only when the provider served it: 200
    made-up names (each a 404 upstream) leave room for the real one."""
    saved = set(metrics._models)
    metrics._models.clear()
    try:
        for i in range(metrics.MAX_MODELS + 5):
            assert metrics.model_label(f"made-up-{i}", admit=False) == "other"
        assert metrics.model_label("gpt-4o") == "gpt-4o"              # served: admitted
        assert metrics.model_label("gpt-4o", admit=False) == "gpt-4o"   # and known since
        assert metrics._models == {"gpt-4o"}
    finally:
        metrics._models.clear()
        metrics._models.update(saved)
