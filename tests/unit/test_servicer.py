"""The gRPC servicer's stream loop, driven through a stand-in for grpc.aio's servicer context.

`Processor.Process` does not wait for a reply's write to complete before it reads the next
message (that saves the event loop a wake-up per message). These tests hold it to what that
must not change: replies leave in order, one write at a time, the stream ends only once the
last reply is out, and a failed or cancelled write leaves nothing behind.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Sequence
from typing import Any

import grpc
import pytest
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb

from extproc import loader
from extproc.policy import Policy, Reject
from extproc.servicer import Processor
from tests.unit.test_exchange import request_body, request_headers, response_body, response_headers

CHAT = (b'{"model":"gpt-4o-mini","stream":true,'
        b'"messages":[{"role":"user","content":"hi"}]}')


def stream_messages(chunks: int = 5) -> list[pb.ProcessingRequest]:
    """One streamed OpenAI exchange as Envoy sends it in the reference config's modes
    (request BUFFERED = 2, response STREAMED = 1)."""
    events = [b'data: {"id":"c1","object":"chat.completion.chunk","model":"gpt-4o-mini",'
              b'"choices":[{"index":0,"delta":{"content":"w%d "},"finish_reason":null}]}\n\n'
              % i for i in range(chunks)]
    events.append(b'data: {"id":"c1","object":"chat.completion.chunk","model":"gpt-4o-mini",'
                  b'"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n')
    events.append(b"data: [DONE]\n\n")
    return [
        request_headers({":path": "/openai/v1/chat/completions"}, req_mode=2, resp_mode=1),
        request_body(CHAT, True),
        response_headers(200, **{"content-type": "text/event-stream"}),
        *(response_body(e, i == len(events) - 1) for i, e in enumerate(events)),
    ]


class SlowContext:
    """grpc.aio's context as far as Process uses it: reads from a list, writes slowly."""

    def __init__(self, messages: Sequence[pb.ProcessingRequest], write_delay: float = 0.002,
                 fail_on_write: int | None = None, fail_at_start: bool = False,
                 call_ended: bool = False) -> None:
        self.messages = list(messages)
        self.call_ended = call_ended   # what done() says once a write has failed
        self.fail_at_start = fail_at_start  # fail before the write's first wait (as gRPC
        # does for a call that has already ended)
        self.delay = write_delay
        self.fail_on_write = fail_on_write
        self.reads = 0
        self.written: list[bytes] = []
        self.in_flight = 0
        self.overlapped = False
        self.started = 0
        self.read_during_write = 0  # reads served while a reply was still going out
        self.writing = asyncio.Event()  # set once a write has started

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return (("x-extproc-route", "openai"),)

    def done(self) -> bool:
        """True once the call has ended (Envoy closed the stream): a write failing then
        lost a race with that end."""
        return self.call_ended

    async def read(self) -> Any:
        await asyncio.sleep(0)
        if self.in_flight:
            self.read_during_write += 1
        if self.reads == len(self.messages):
            return grpc.aio.EOF
        self.reads += 1
        return self.messages[self.reads - 1]

    async def write(self, reply: Any) -> None:
        self.started += 1
        if self.fail_at_start and self.fail_on_write == self.started:
            raise RuntimeError("the call has ended")
        if self.in_flight:
            self.overlapped = True
        self.in_flight += 1
        self.writing.set()
        try:
            await asyncio.sleep(self.delay)
            if self.fail_on_write == self.started:
                raise RuntimeError("the transport broke")
            self.written.append(reply if isinstance(reply, bytes) else reply.SerializeToString())
        finally:
            self.in_flight -= 1


def processor() -> Processor:
    return Processor(loader.parse({"routes": [{"name": "openai", "provider": "openai"}]}))


async def reference_replies(messages: Sequence[pb.ProcessingRequest]) -> list[bytes]:
    """What the same stream gets when every write completes at once."""
    ctx = SlowContext(messages, write_delay=0)
    await processor().Process(iter(()), ctx)  # type: ignore[arg-type]
    return ctx.written


def unhandled_errors() -> list[dict[str, Any]]:
    """What the running loop would report as never retrieved (filled as it happens)."""
    seen: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: seen.append(ctx))
    return seen


def other_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]


def kinds(replies: Sequence[bytes]) -> list[str]:
    return [pb.ProcessingResponse.FromString(r).WhichOneof("response") or "" for r in replies]


def test_slow_writes_keep_order_one_at_a_time_and_end_the_stream_last() -> None:
    async def main() -> None:
        messages = stream_messages()
        expected = await reference_replies(messages)
        ctx = SlowContext(messages, write_delay=0.003)
        proc = processor()
        await proc.Process(iter(()), ctx)  # type: ignore[arg-type]
        assert not ctx.overlapped, "two writes were in flight at once"
        assert ctx.in_flight == 0, "the stream ended before its last write completed"
        assert ctx.written == expected
        assert kinds(ctx.written) == (["request_headers", "request_body", "response_headers"]
                                      + ["response_body"] * (len(messages) - 3))
        assert proc.streams_active == 0 and proc.stream_errors == 0

    asyncio.run(main())


def test_reads_run_ahead_of_slow_writes() -> None:
    """The point of not waiting: the next message is read while a reply is still going out."""
    async def main() -> None:
        ctx = SlowContext(stream_messages(), write_delay=0.005)
        await processor().Process(iter(()), ctx)  # type: ignore[arg-type]
        assert ctx.read_during_write >= len(ctx.messages) - 1

    asyncio.run(main())


def test_a_failed_write_fails_the_stream_once_and_leaves_no_task_behind() -> None:
    async def main() -> None:
        unhandled = unhandled_errors()
        ctx = SlowContext(stream_messages(), write_delay=0.001, fail_on_write=2)
        proc = processor()
        with pytest.raises(RuntimeError, match="transport broke"):
            await proc.Process(iter(()), ctx)  # type: ignore[arg-type]
        assert proc.stream_errors == 1 and proc.streams_active == 0
        assert len(ctx.written) == 1  # the failed reply is not counted as sent
        assert ctx.started == 2, "a write was started after one had failed"
        await asyncio.sleep(0.01)
        assert other_tasks() == []
        assert unhandled == []

    asyncio.run(main())


def test_a_write_that_fails_as_it_starts_fails_the_stream_once() -> None:
    """A write is started by hand up to its first wait: one failing before it raises there,
    after the write before it has gone out."""
    async def main() -> None:
        unhandled = unhandled_errors()
        ctx = SlowContext(stream_messages(), write_delay=0.001, fail_on_write=3,
                          fail_at_start=True)
        proc = processor()
        with pytest.raises(RuntimeError, match="the call has ended"):
            await proc.Process(iter(()), ctx)  # type: ignore[arg-type]
        assert proc.stream_errors == 1 and proc.streams_active == 0
        assert len(ctx.written) == 2 and ctx.in_flight == 0
        assert ctx.started == 3, "a write was started after one had failed"
        await asyncio.sleep(0.01)
        assert other_tasks() == []
        assert unhandled == []

    asyncio.run(main())


@pytest.mark.parametrize("at_start", [False, True])
def test_a_write_that_fails_because_the_call_ended_is_the_streams_end(at_start: bool) -> None:
    """A client leaving mid-stream: Envoy ends the call and the send in flight fails. That is
    the stream's end, not a failure: no error counted or raised, nothing left behind."""
    async def main() -> None:
        unhandled = unhandled_errors()
        ctx = SlowContext(stream_messages(), write_delay=0.001, fail_on_write=2,
                          fail_at_start=at_start, call_ended=True)
        proc = processor()
        await proc.Process(iter(()), ctx)  # type: ignore[arg-type]
        assert proc.stream_errors == 0 and proc.streams_active == 0
        await asyncio.sleep(0.01)
        assert other_tasks() == []
        assert unhandled == []

    asyncio.run(main())


class FailedSend(SlowContext):
    """Writes as gRPC's do: each awaits its send's future, and a send whose call is gone
    fails by an exception set on that future (the same object raised out of every write)."""

    async def write(self, reply: Any) -> None:
        self.started += 1
        sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.started == self.fail_on_write:
            self.call_ended = True
            sent.set_exception(RuntimeError('Failed "execute_batch": 1'))
        else:
            sent.set_result(None)
        await sent


@pytest.mark.parametrize("fail_on_write", [1, 2, 4])
def test_a_send_failed_as_grpc_fails_it_leaves_no_exchange_to_the_cyclic_gc(
        fail_on_write: int) -> None:
    """Found by review of a flaky test (test_clients_that_leave_mid_stream_log_no_error:
    `exchanges_alive` 1, ten seconds after 80 clients left): the failed send's exception,
    kept by its future, has a traceback through Process's frame, which held the exchange. A
    cycle only the cyclic GC frees, and an idle server allocates too little to run it. The
    frame lets go of the exchange as the stream ends."""
    async def main() -> None:
        ctx = FailedSend(stream_messages(), fail_on_write=fail_on_write)
        proc = processor()
        await proc.Process(iter(()), ctx)  # type: ignore[arg-type]
        await asyncio.sleep(0.01)
        assert proc.stream_errors == 0 and proc.streams_active == 0
        assert proc.stats()["exchanges_alive"] == 0

    gc.disable()
    try:
        asyncio.run(main())
    finally:
        gc.enable()


def _kept_errors() -> Any:
    """A long-lived generator handing out the errors it caught (its frame, suspended, is in
    each one's traceback): as a plugin's watcher of a backend might."""
    while True:
        try:
            raise ConnectionError("backend down")
        except ConnectionError as exc:
            yield exc


class KeptError(Policy):
    errors = _kept_errors()

    async def on_request_headers(self, ex: Any) -> None:
        raise Reject(503, "backend down") from next(self.errors)


def test_a_refusal_leaves_the_code_its_exception_went_through_running() -> None:
    """Found by review: clearing the frames of a refusal's traceback (to free a policy's
    frame that a kept exception held, with its exchange, in a cycle) closed a suspended
    generator or coroutine they belonged to: a plugin's watcher died at the first refusal.
    Nothing of a refusal's exception is cleared (docs/configuration.md, plugins)."""
    from extproc.config import RouteConfig

    async def main() -> None:
        cfg = loader.parse({"routes": [{"name": "openai", "provider": "openai"}]})
        cfg.routes["openai"] = RouteConfig("openai", "openai", (KeptError(),))
        proc = Processor(cfg)
        for _ in range(3):
            ctx = SlowContext([request_headers({":path": "/v1/chat/completions"})])
            await proc.Process(iter(()), ctx)  # type: ignore[arg-type]
            (reply,) = [pb.ProcessingResponse.FromString(w) for w in ctx.written]
            assert reply.immediate_response.status.code == 503

    asyncio.run(main())


def test_cancelling_the_stream_mid_write_cancels_the_write() -> None:
    """Envoy closing the stream cancels the handler while a reply may be going out."""
    async def main() -> None:
        unhandled = unhandled_errors()
        ctx = SlowContext(stream_messages(), write_delay=10)
        proc = processor()
        task = asyncio.create_task(proc.Process(iter(()), ctx))  # type: ignore[arg-type]
        await ctx.writing.wait()
        task.cancel()
        await asyncio.wait([task])
        await asyncio.sleep(0.01)
        assert ctx.in_flight == 0, "the write kept running after the stream was cancelled"
        assert proc.streams_active == 0 and proc.stream_errors == 0
        assert other_tasks() == []
        assert unhandled == []

    asyncio.run(main())


FINISHED: list[str] = []


class FinishNow(Policy):
    """A finish hook that never waits (as settling in memory)."""

    needs_finish = True
    finish_waits = False

    async def on_finish(self, ex: Any) -> None:
        FINISHED.append(f"now:{self.options.get('tag')}")


class FinishLater(Policy):
    """A finish hook that waits (as settling over Redis)."""

    needs_finish = True

    async def on_finish(self, ex: Any) -> None:
        await asyncio.sleep(0.01)
        FINISHED.append("later")


class FinishLaterUnsaid(FinishLater):
    """A finish hook that waits though it says it never does."""

    finish_waits = False


class FinishTimesOut(Policy):
    """A finish hook waiting on a stalled backend, under a timeout (as the Redis store's)."""

    needs_finish = True

    async def on_finish(self, ex: Any) -> None:
        try:
            async with asyncio.timeout(0.05):
                await asyncio.Event().wait()
        except TimeoutError:
            FINISHED.append("timed out")


class Abort(BaseException):
    """A library's own BaseException (neither an Exception nor a cancel)."""


class FinishCatchesAbort(Policy):
    """A hook whose I/O fails with a BaseException it handles itself."""

    needs_finish = True

    async def on_finish(self, ex: Any) -> None:
        failed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.01, failed.set_exception, Abort())
        try:
            await failed
        except Abort:
            FINISHED.append("caught abort")


class FinishReleasesOnTimeout(Policy):
    """A hook whose timeout fires while it waits, and whose release of what it holds fails
    (its own I/O error, during the cancel): it handles that, and the cancel becomes its
    TimeoutError."""

    needs_finish = True

    async def on_finish(self, ex: Any) -> None:
        try:
            async with asyncio.timeout(0.02):
                try:
                    await asyncio.sleep(1)
                except asyncio.CancelledError:
                    failed: asyncio.Future[None] = \
                        asyncio.get_running_loop().create_future()
                    asyncio.get_running_loop().call_later(
                        0.005, failed.set_exception, ConnectionError("release failed"))
                    try:
                        await failed
                    except ConnectionError:
                        FINISHED.append("release failed, handled")
                    raise
        except TimeoutError:
            FINISHED.append("timed out, handled")


class FinishTimesOutThenFails(Policy):
    needs_finish = True

    async def on_finish(self, ex: Any) -> None:
        try:
            async with asyncio.timeout(0.02):
                await asyncio.Event().wait()
        except TimeoutError:
            raise RuntimeError("gave up on the backend") from None


class FinishBoom(Policy):
    needs_finish = True
    finish_waits = False

    async def on_finish(self, ex: Any) -> None:
        raise RuntimeError("settling failed")


def finishing(*plugins: str) -> Processor:
    FINISHED.clear()
    return Processor(loader.parse({"routes": [{
        "name": "openai", "provider": "openai",
        "plugins": [{"class": f"tests.unit.test_servicer:{p.split('=')[0]}",
                     "options": {"tag": p.split("=")[1]} if "=" in p else {}}
                    for p in plugins]}]}))


def test_finish_hooks_that_never_wait_are_done_when_the_stream_ends() -> None:
    """No Task for them: the stream's own handler runs them to the end."""
    async def main() -> None:
        proc = finishing("FinishNow=a", "FinishNow=b")
        await proc.Process(iter(()), SlowContext(stream_messages(), write_delay=0))  # type: ignore[arg-type]
        assert FINISHED == ["now:a", "now:b"]
        assert proc._finishing == set() and other_tasks() == []

    asyncio.run(main())


@pytest.mark.parametrize("later", ["FinishLater", "FinishLaterUnsaid"])
def test_finish_hooks_that_wait_go_on_in_a_task_in_order_and_a_failure_stops_none(
        caplog: pytest.LogCaptureFixture, later: str) -> None:
    """The hooks run in place up to one that may wait, or one that waits though it said it
    would not, and on from there in a Task."""
    async def main() -> None:
        unhandled = unhandled_errors()
        proc = finishing("FinishNow=a", later, "FinishBoom", "FinishNow=b")
        await proc.Process(iter(()), SlowContext(stream_messages(), write_delay=0))  # type: ignore[arg-type]
        assert FINISHED == ["now:a"]
        assert len(proc._finishing) == 1
        await proc.drain(5)
        assert FINISHED == ["now:a", "later", "now:b"]
        assert proc._finishing == set() and other_tasks() == []
        assert unhandled == []

    asyncio.run(main())
    assert "FinishBoom.on_finish failed" in caplog.text


def test_a_timeout_inside_a_finish_hook_applies() -> None:
    """Found by review: run in place, a hook's `asyncio.timeout` was bound to the stream's
    Task, which had ended, so a settlement waiting on a stalled Redis never timed out (nor
    was counted as finishing, and its exchange stayed alive). Hooks that may wait run in a
    Task of their own, where it applies."""
    async def main() -> None:
        proc = finishing("FinishTimesOut")
        await proc.Process(iter(()), SlowContext(stream_messages(), write_delay=0))  # type: ignore[arg-type]
        assert proc.stats()["finishing"] == 1
        await proc.drain(2)
        assert FINISHED == ["timed out"]
        assert proc.stats()["finishing"] == 0 and proc.stats()["exchanges_alive"] == 0

    asyncio.run(main())


def test_hooks_run_in_the_task_as_a_plain_task_would_run_them(
        caplog: pytest.LogCaptureFixture) -> None:
    """Found by reviews of the Task that drives the hooks: a BaseException a hook's future
    failed with, or an error of its own I/O while its timeout's cancel was under way, was
    raised in the driver, not in the hook (whose handler never ran, nor the hooks after
    it), and what a hook raised after its timeout had the cancel as context in the log.
    The hook handles its own outcome; its error is logged as it is."""
    async def main() -> None:
        proc = finishing("FinishCatchesAbort", "FinishReleasesOnTimeout",
                         "FinishTimesOutThenFails", "FinishNow=b")
        await proc.Process(iter(()), SlowContext(stream_messages(), write_delay=0))  # type: ignore[arg-type]
        await proc.drain(2)
        assert FINISHED == ["caught abort", "release failed, handled", "timed out, handled",
                            "now:b"]
        assert proc.stats()["finishing"] == 0 and other_tasks() == []

    asyncio.run(main())
    assert "FinishTimesOutThenFails.on_finish failed" in caplog.text
    assert "gave up on the backend" in caplog.text and "CancelledError" not in caplog.text


def test_hooks_before_one_that_may_wait_still_run_as_the_stream_ends() -> None:
    """Found by the review of the fix above: one plugin hook that may wait moved every hook
    of the route into the Task, settling in memory too, so the client's next request could
    be admitted before its last one was settled. Those before it run in place."""
    async def main() -> None:
        proc = finishing("FinishNow=a", "FinishTimesOut", "FinishNow=b")
        await proc.Process(iter(()), SlowContext(stream_messages(), write_delay=0))  # type: ignore[arg-type]
        assert FINISHED == ["now:a"]
        await proc.drain(2)
        assert FINISHED == ["now:a", "timed out", "now:b"]

    asyncio.run(main())


def test_finish_hooks_run_when_envoy_cancels_the_stream() -> None:
    """The stream's handler is being cancelled: the hooks' wait is not part of it."""
    async def main() -> None:
        proc = finishing("FinishLater", "FinishNow=a")
        ctx = SlowContext(stream_messages(), write_delay=10)
        task = asyncio.create_task(proc.Process(iter(()), ctx))  # type: ignore[arg-type]
        await ctx.writing.wait()
        task.cancel()
        await asyncio.wait([task])
        await proc.drain(5)
        assert FINISHED == ["later", "now:a"]
        assert other_tasks() == []

    asyncio.run(main())
