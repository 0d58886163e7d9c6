"""What the gateway's own logs, metadata and admin plumbing may carry (found by this stop's
red team of the observability surfaces): no value a client chose as a field name, no
proxy between the supervisor and its workers' admin ports, no webhook URL's secrets in a
config error."""

from __future__ import annotations

import http.server
import json
import logging
import threading
from collections.abc import Iterator

import pytest
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb

from extproc import loader, workers
from extproc import protocol as P
from extproc.exchange import Exchange
from extproc.front.policy import shown_fields
from extproc.schema import ConfigError
from tests.unit.test_exchange import request_body, request_headers, send

CARD = "4111111111111111"


def test_a_dropped_field_is_named_only_by_a_plain_path() -> None:
    assert shown_fields(("logprobs", "json_schema.description", "tools[0].strict")) == [
        "logprobs", "json_schema.description", "tools[0].strict"]
    assert shown_fields((f"card {CARD}", "x" * 65)) == ["<unknown field>"] * 2
    # found by review: names without a space that spell a secret were shown whole
    secrets = (CARD, "4111-1111-1111-1111", f"card_{CARD}", f"messages[0].{CARD}",
               "sk-ant-api03-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789", "AKIAIOSFODNN7EXAMPLE",
               "john.doe@example", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.abcde",
               "ghp_aB3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5")
    assert shown_fields(secrets[:16]) == ["<unknown field>"] * len(secrets)
    grouped = ("card_4111_1111_1111_1111", "_4111_1111_1111_1111", "ssn_123_45_6789",
               "a[4111][1111][1111][1111]", "phone_415_555_0132")
    assert shown_fields(grouped) == ["<unknown field>"] * len(grouped)
    assert shown_fields(("topK", "web_search_options", "messages[12].content[0].x_y")) == [
        "topK", "web_search_options", "messages[12].content[0].x_y"]
    many = shown_fields(tuple(f"f{i}" for i in range(40)))
    assert len(many) == 17 and many[-1] == "<24 more>"


async def test_an_unknown_field_a_front_drops_reaches_no_log_by_its_name(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """No guard reads key names: a key holding a card number, dropped for a backend that
    does not know it, must not be written to the log line or Envoy's access log."""
    monkeypatch.setenv("FAKE_KEY", "k")
    cfg = loader.parse({"routes": [{
        "name": "front", "provider": "openai-compatible", "auth": "none",
        "backends": {"anthropic": {"upstream_credential": {"env": "FAKE_KEY"}}},
        "models": [{"model": "claude-*", "backend": "anthropic"}],
        "drop_unsupported": True}]})
    ex = Exchange(cfg.route("front"), "front")
    body = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}],
            f"customer card {CARD}": 1, "y" * 5000: 2}
    caplog.set_level(logging.INFO, logger="extproc.front")
    await send(ex, request_headers(path="/v1/chat/completions", req_mode=P.BUFFERED))
    replies = await send(ex, request_body(json.dumps(body).encode(), True))
    reply = replies[0] if not isinstance(replies[0], bytes) else \
        pb.ProcessingResponse.FromString(replies[0])
    md = reply.dynamic_metadata.fields[P.METADATA_NAMESPACE].struct_value
    assert md.fields["dropped_fields"].string_value == "<unknown field>,<unknown field>"
    assert CARD not in caplog.text and "yyyy" not in caplog.text
    assert "front dropped <unknown field>" in caplog.text


@pytest.fixture
def admin() -> Iterator[int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_the_supervisor_asks_its_workers_directly_whatever_the_proxy(
        admin: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """urllib honours HTTP_PROXY even for 127.0.0.1: a proxy would see every budget's
    subject and key on /spend (here a proxy that does not exist: through it, no answer)."""
    for name in ("http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert workers._fetch(admin, "/spend") == b"ok"


def test_a_webhook_url_error_shows_no_secret() -> None:
    url = "htps://user:tok3n@dlp.example/check?key=S3CRET"
    with pytest.raises(ConfigError) as err:
        loader.parse({"guards": {"dlp": {"webhook": {"url": url}}},
                      "routes": [{"name": "chat", "provider": "openai", "auth": "none"}]})
    text = " ".join(err.value.errors)
    assert "expected an http:// or https:// URL" in text
    assert "tok3n" not in text and "S3CRET" not in text
