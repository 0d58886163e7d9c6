"""Shutdown the way Kubernetes does it, with a real server process behind the real Envoy: on
SIGTERM the gRPC health service reports NOT_SERVING at once (a Watch opened before gets it,
then ends), a paced stream in flight finishes whole, a new stream is refused (the server no
longer accepts connections), and the process exits 0 as soon as the stream is over; a stream
longer than `server.grace_period_s` is cut at the grace period and the process exits all the
same. The same with `--workers 2`."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Iterator

import grpc
import httpx
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.harness import Gateway, Mock, Server, add_route, write_config

pytestmark = pytest.mark.envoy

WORDS = [f"w{i:02d}" for i in range(40)]
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SERVING = health_pb2.HealthCheckResponse.SERVING


def config(grace: float) -> dict[str, object]:
    return {"server": {"max_request_body_bytes": 1048576, "grace_period_s": grace},
            "routes": [{"name": "drain", "provider": "openai"}]}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory, mock: Mock) -> Iterator[Gateway]:
    gateway = Gateway(tmp_path_factory.mktemp("k8s-shutdown"), config(5), mock=mock,
                      start_server=False,
                      adjust=lambda doc: add_route(doc, "/drain/", "openai", "drain"))
    yield gateway
    gateway.close()


def start(gw: Gateway, grace: float, extra: list[str] | None = None) -> Server:
    write_config(gw.config_path, config(grace))
    gw.server = Server(gw.config_path, gw.log_dir, port=gw.server_port, extra=extra,
                       name=f"extproc-{time.monotonic_ns()}")
    return gw.server


class Stream(threading.Thread):
    """A streamed chat completion of `words` SSE frames, one every `delay_ms`."""

    def __init__(self, gw: Gateway, words: int, delay_ms: int) -> None:
        super().__init__(daemon=True)
        self.url = f"{gw.url}/drain/v1/chat/completions"
        self.headers = {"x-mock-reply": " ".join(WORDS[:words]),
                        "x-mock-delay-ms": str(delay_ms)}
        self.status: int | None = None
        self.text = ""
        self.error: Exception | None = None
        self.first = threading.Event()
        self.ended = 0.0

    def run(self) -> None:
        body = {"model": "gpt-4o-mini", "stream": True,
                "messages": [{"role": "user", "content": "count"}]}
        try:
            with httpx.stream("POST", self.url, json=body, headers=self.headers,
                              timeout=60) as r:
                self.status = r.status_code
                for chunk in r.iter_text():
                    self.text += chunk
                    if "w00" in self.text:
                        self.first.set()
        except httpx.HTTPError as exc:
            self.error = exc
        finally:
            self.ended = time.monotonic()
            self.first.set()

    def words(self) -> str:
        out = []
        for line in self.text.splitlines():
            if line.startswith("data: {"):
                for choice in json.loads(line[6:]).get("choices", []):
                    out.append(choice.get("delta", {}).get("content") or "")
        return "".join(out)


class HealthWatch(threading.Thread):
    """A grpc.health.v1 Watch on the server, each status with the time it arrived."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.seen: list[tuple[float, int]] = []
        self.ended: tuple[float, grpc.StatusCode] | None = None
        self.serving = threading.Event()
        self.not_serving = threading.Event()
        self.start()
        assert self.serving.wait(10), "no SERVING from the health Watch"

    def run(self) -> None:
        stub = health_pb2_grpc.HealthStub(self.channel)
        code = grpc.StatusCode.OK
        try:
            for resp in stub.Watch(health_pb2.HealthCheckRequest(service="")):
                self.seen.append((time.monotonic(), resp.status))
                (self.serving if resp.status == SERVING else self.not_serving).set()
        except grpc.RpcError as exc:
            code = exc.code()
        self.ended = (time.monotonic(), code)

    def close(self) -> None:
        self.channel.close()


def check(port: int) -> int | grpc.StatusCode:
    """A health Check on a new connection: the status, or the gRPC error code."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        try:
            return health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=2).status
        except grpc.RpcError as exc:
            return exc.code()


def sigterm_mid_stream(gw: Gateway, server: Server, words: int,
                       delay_ms: int) -> tuple[Stream, HealthWatch, float]:
    """Start a paced stream, wait for its first words, SIGTERM the server; returns the
    stream, the health watch opened before, and when the signal was sent."""
    watch = HealthWatch(server.port)
    assert check(server.port) == SERVING
    assert httpx.get(f"http://127.0.0.1:{server.admin_port}/healthz", timeout=2
                     ).status_code == 200
    stream = Stream(gw, words, delay_ms)
    stream.start()
    assert stream.first.wait(10) and stream.error is None and not stream.ended
    sent = time.monotonic()
    server.proc.signal(signal.SIGTERM)
    return stream, watch, sent


def assert_not_serving_at_once(watch: HealthWatch, sent: float, server: Server) -> None:
    port = server.port
    assert watch.not_serving.wait(2), f"no NOT_SERVING; seen {watch.seen}"
    at = next(t for t, s in watch.seen if s == NOT_SERVING)
    assert at - sent < 1.0, f"NOT_SERVING {at - sent:.2f}s after SIGTERM"
    # a probe on a new connection: never SERVING again (NOT_SERVING, or refused once the
    # listening socket is closed, which a kubelet probe reads as a failure too)
    assert check(port) in (NOT_SERVING, grpc.StatusCode.UNAVAILABLE)
    # the admin port's /healthz, the probe of a mutual-TLS gRPC port, says so too (or is
    # closed already, when no stream kept the server)
    try:
        health = httpx.get(f"http://127.0.0.1:{server.admin_port}/healthz", timeout=2)
    except httpx.ConnectError:
        server.proc.popen.wait(5)   # it is exiting: no TimeoutExpired
    else:
        assert health.status_code == 503, health.text
    deadline = time.monotonic() + 2
    while watch.ended is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert watch.ended is not None, "the Watch stream stays open after NOT_SERVING"
    watch.close()


def test_sigterm_reports_not_serving_at_once_and_the_stream_finishes(gw: Gateway) -> None:
    grace = 8.0
    server = start(gw, grace)
    stream, watch, sent = sigterm_mid_stream(gw, server, 12, 250)      # about 3.5 s
    assert_not_serving_at_once(watch, sent, server)
    # a new request now: the listening socket is closed and Envoy's connection got GOAWAY,
    # so Envoy's new connection is refused; with no other replica, Envoy (fail closed)
    # answers 500 in the provider's format instead of passing the request on unprocessed
    r = httpx.post(f"{gw.url}/drain/v1/chat/completions", timeout=30,
                   json={"model": "gpt-4o-mini",
                         "messages": [{"role": "user", "content": "late"}]})
    assert r.status_code == 500 and r.json()["error"]["type"] == "gateway_error", r.text
    assert "Connection_refused" in r.text
    stream.join(30)
    assert stream.status == 200 and stream.error is None, stream.error
    assert stream.words() == " ".join(WORDS[:12])                      # whole
    assert stream.text.rstrip().endswith("data: [DONE]")
    code = server.proc.popen.wait(grace + 5)
    exited = time.monotonic()
    assert code == 0
    assert exited - sent < grace, "waited past the grace period"
    assert exited - stream.ended < 2.0, "did not exit once the stream was over"
    log = server.proc.log()
    assert "stopping: 1 streams in flight" in log and "stopped" in log


def test_a_stream_longer_than_the_grace_period_is_cut_at_it(gw: Gateway) -> None:
    grace = 2.0
    server = start(gw, grace)
    stream, watch, sent = sigterm_mid_stream(gw, server, 40, 250)      # about 10 s
    assert_not_serving_at_once(watch, sent, server)
    code = server.proc.popen.wait(grace + 5)
    exited = time.monotonic()
    assert code == 0
    assert grace - 0.5 < exited - sent < grace + 2.5
    stream.join(10)
    assert not stream.is_alive()
    assert grace - 0.5 < stream.ended - sent < grace + 2.5            # cut at the grace
    assert "[DONE]" not in stream.text and WORDS[39] not in stream.words()
    assert isinstance(stream.error, httpx.RemoteProtocolError), stream.error   # a reset
    assert "w00" in stream.words()


def test_with_workers_every_worker_drains(gw: Gateway) -> None:
    grace = 8.0
    server = start(gw, grace, ["--workers", "2"])
    # the port opens with the first worker; a SIGTERM while the second is still importing
    # ends it before it can log its drain. A worker that answers /stats has its SIGTERM
    # handler (installed before its port opens)
    deadline = time.monotonic() + 30
    while not all(w["stats"] for w in server.stats()["workers"]):
        assert time.monotonic() < deadline, "the second worker did not start"
        time.sleep(0.1)
    stream, watch, sent = sigterm_mid_stream(gw, server, 12, 250)
    assert_not_serving_at_once(watch, sent, server)
    stream.join(30)
    assert stream.status == 200 and stream.error is None, stream.error
    assert stream.words() == " ".join(WORDS[:12])
    code = server.proc.popen.wait(grace + 5)
    exited = time.monotonic()
    assert code == 0
    assert exited - sent < grace and exited - stream.ended < 2.5
    stopped = [json.loads(line[line.index("{"):]) for line in server.proc.log().splitlines()
               if '"msg": "stopped"' in line]
    assert sorted(s["process"] for s in stopped) == ["worker0", "worker1"]


def test_the_health_watch_does_not_hold_an_idle_server(gw: Gateway) -> None:
    server = start(gw, 30.0)
    watch = HealthWatch(server.port)
    sent = time.monotonic()
    server.proc.signal(signal.SIGTERM)
    assert_not_serving_at_once(watch, sent, server)
    assert server.proc.popen.wait(10) == 0
    assert time.monotonic() - sent < 5, "an open health Watch held the grace period"
