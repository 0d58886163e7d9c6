"""The gRPC adapter: one `Exchange` per `ExternalProcessor.Process` stream.

It finds which route the request is on (`extproc.routing`: the stream's `x-extproc-route`
metadata, Envoy's route attributes, or the request itself), feeds each message to the
Exchange (with Envoy's header limits, `headerlimits`, which it checks the request headers
reply against) and writes its replies.
Envoy closing the stream (an ended iterator or a cancelled call) is the normal end. Replies
may be pre-serialised bytes, so the method is registered with a serializer that passes bytes
through.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import grpc
from envoy.service.ext_proc.v3 import external_processor_pb2 as pb
from envoy.service.ext_proc.v3.external_processor_pb2_grpc import ExternalProcessorServicer

from . import accesslog, headerlimits, metrics
from .config import ROUTE_METADATA_KEY, Config
from .exchange import Exchange, Reply
from .routing import Router

log = logging.getLogger("extproc.servicer")
SERVICE = "envoy.service.ext_proc.v3.ExternalProcessor"
_KINDS = ("request_headers", "request_body", "request_trailers", "response_headers",
          "response_body", "response_trailers")


_DONE = object()   # what `_resume` returns once a write's coroutine has finished
_SWITCH = object()  # what it returns when finish hooks driven by hand go on in a Task


class _ToTask:
    """Awaited by the finish hooks (`_finish`) before the first that may wait: driven by
    hand so far, they go on in a Task of their own from there (`_finish_in_task`), where a
    timeout inside that hook applies (`asyncio.timeout` cancels the Task current as it
    starts: by hand, the stream's, which is ending)."""

    def __await__(self) -> Any:
        yield _SWITCH


def _resume(write: Coroutine[Any, Any, None]) -> Any:
    """Run a coroutine (a reply's write, or a stream's finish hooks) on until it next waits:
    what it waits on (for a write, the future of the send it started), or `_DONE` once it
    has finished (raising what it raised).

    Driving the coroutine by hand, not as a Task, starts the send at once and costs no Task
    (creation, registry, two scheduled steps): a third of what a message costs the loop."""
    try:
        return write.send(None)
    except StopIteration:
        return _DONE


async def _written(write: Coroutine[Any, Any, None], waiting: Any) -> None:
    """Wait until the coroutine `_resume` left `waiting` has finished; raise what it
    raised."""
    while waiting is not _DONE:
        if waiting is None:   # a bare yield: give the loop one turn
            await asyncio.sleep(0)
        elif not waiting.done():
            # the Task protocol: the coroutine yielded the future to its runner (us), which
            # clears the flag before waiting on it
            waiting._asyncio_future_blocking = False
            try:
                await waiting
            except asyncio.CancelledError:
                raise
            except Exception:
                pass   # the write's coroutine raises it itself, just below
        waiting = _resume(write)


async def _finish_in_task(finishing: Coroutine[Any, Any, None], waiting: Any) -> None:
    """The finish hooks, on from where `_start_finish` left them, in this Task, driven as
    a Task drives its coroutine: what they wait on is awaited here, and its outcome (a
    result, an error, a cancel: another's, or this Task's, which cancels it) reaches them
    as they go on; a cancel of this Task that did not cancel it (during a bare yield, or
    once it was done) is thrown into them, as a Task throws it."""
    while True:
        cancel: BaseException | None = None
        try:
            if waiting is None:   # a bare yield: give the loop one turn
                await asyncio.sleep(0)
            elif waiting is not _SWITCH and not waiting.done():
                waiting._asyncio_future_blocking = False
                try:
                    await waiting
                except BaseException as exc:
                    # decided by where it came from (found by review: this Task's count
                    # of cancels said nothing of it, and a hook's own error escaped it)
                    if not (waiting.done() and (waiting.cancelled()
                                                or waiting.exception() is exc)):
                        raise
        except asyncio.CancelledError as exc:
            cancel = exc
        try:   # (outside the handler: what the hooks raise next has no cancel as context)
            waiting = finishing.send(None) if cancel is None else finishing.throw(cancel)
        except StopIteration:
            return
        finally:
            cancel = None   # (its traceback holds this frame: no cycle through it)


def _abandon(write: Coroutine[Any, Any, None], waiting: Any) -> None:
    """Close a write the stream no longer waits for (it failed or was cancelled). The send
    it was waiting on may still fail (the call is gone): that failure is read here, or
    asyncio would log it as an error no one retrieved."""
    try:
        write.close()
    except Exception:   # the stream is already ending on an error of its own
        log.debug("closing an abandoned write failed", exc_info=True)
    if isinstance(waiting, asyncio.Future):
        waiting.add_done_callback(_retrieved)


#: when `_interrupted` last logged (one line per 10 s, not one per request, when a policy
#: service is slow for everyone)
_LAST_INTERRUPTED = [0.0]


def _interrupted(ex: Exchange, kind: str, waited_s: float) -> None:
    """Note that the stream ended while a policy was handling its `kind` message, after
    `waited_s`: the exchange's outcome is then `interrupted`, and a warning says where."""
    ex.state["interrupted"] = kind
    ex.state["interrupted_after_ms"] = round(waited_s * 1000, 1)
    now = time.monotonic()
    if now - _LAST_INTERRUPTED[0] >= 10:
        _LAST_INTERRUPTED[0] = now
        log.warning("stream ended while a policy handled its %s message, after %.0f ms: "
                    "Envoy's message timeout (the client got a 504) or the client leaving "
                    "(route=%s request_id=%s)", kind, waited_s * 1000, ex.route_name,
                    ex.request_id)


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _serialize(reply: Reply) -> bytes:
    return reply if reply.__class__ is bytes else reply.SerializeToString()  # type: ignore


class Processor(ExternalProcessorServicer):
    """Serves ext_proc streams under the current config (swapped whole on reload)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.routed: dict[str, int] = {}   # streams by the source that named their route
        self.streams_total = 0
        self.streams_active = 0
        self.stream_errors = 0
        self.messages: dict[str, int] = dict.fromkeys(_KINDS, 0)
        self._alive: weakref.WeakSet[Exchange] = weakref.WeakSet()
        self._finishing: set[asyncio.Task[None]] = set()
        self._timers = metrics.message_timers()
        metrics.ACTIVE_STREAMS.set_function(lambda: self.streams_active)
        metrics.HELD_BYTES.set_function(self.held_bytes)

    def held_bytes(self) -> int:
        """Response bytes held by the transforms of every exchange in flight."""
        return sum(t.held_bytes for ex in list(self._alive) for t in ex.transforms)

    def stats(self) -> dict[str, Any]:
        return {"streams_total": self.streams_total, "streams_active": self.streams_active,
                "stream_errors": self.stream_errors, "exchanges_alive": len(self._alive),
                "finishing": len(self._finishing),
                "messages": dict(self.messages),
                "routed_by": dict(self.routed),
                "routes": sorted(self.config.routes)}

    @property
    def config(self) -> Config:
        return self._config

    @config.setter
    def config(self, config: Config) -> None:
        """Swap the config (a reload) and its route lookup together, for new streams."""
        self._current = (config, Router(config))
        self._config = config

    def _route_name(self, context: grpc.aio.ServicerContext) -> str | None:
        for key, value in context.invocation_metadata() or ():
            if key == ROUTE_METADATA_KEY:
                return value if isinstance(value, str) else value.decode()
        return None

    async def Process(self, request_iterator: AsyncIterator[pb.ProcessingRequest],
                      context: grpc.aio.ServicerContext) -> None:
        """One stream. Uses the call's read/write API: cheaper per message than iterating
        `request_iterator` and yielding from an async generator."""
        config, router = self._current
        initial = self._route_name(context)
        ex = Exchange(None, None, config.server.max_request_body_bytes,
                      config.server.trust_mode_override, headerlimits.of(config.server))
        routed = self.routed
        self._alive.add(ex)
        self.streams_total += 1
        self.streams_active += 1
        counts, timers, clock = self.messages, self._timers, time.perf_counter
        read, write, eof = context.read, context.write, grpc.aio.EOF
        # The reply in flight: its write's coroutine (started by hand, see `_resume`) and
        # what it waits on. A write is not awaited before the next read: waiting for its
        # completion would cost the event loop one more wake-up per message. gRPC allows one
        # send at a time, so each write still waits for the one before it, and the stream
        # ends only once the last one is out.
        writing: Coroutine[Any, Any, None] | None = None
        waiting: Any = _DONE
        handling: str | None = None   # the kind of message being handled (None: waiting)
        try:
            while True:
                req = await read()
                if req is eof:
                    break
                kind = req.WhichOneof("request")
                if kind is None:
                    continue
                counts[kind] += 1
                started = clock()
                handling = kind
                if kind == "response_body":  # a stream's every chunk: no coroutine if we can
                    replies = ex.response_chunk(req.response_body)
                    if replies is None:
                        replies = await ex.handle(req, kind)
                elif kind == "request_headers":
                    found = router.resolve(initial, req.attributes, req.request_headers)
                    ex.bind(found.route, found.name, found.refusal)
                    routed[found.source] = routed.get(found.source, 0) + 1
                    replies = await ex.handle(req, kind)
                else:
                    replies = await ex.handle(req, kind)
                handling = None
                timers[kind](clock() - started)
                for reply in replies:
                    if waiting is not _DONE:
                        if waiting is not None and waiting.done():
                            waiting = _resume(writing)  # type: ignore[arg-type]
                        if waiting is not _DONE:
                            await _written(writing, waiting)  # type: ignore[arg-type]
                    writing = write(reply)
                    waiting = _resume(writing)
                if ex.done:
                    break
            if waiting is not _DONE:
                await _written(writing, waiting)  # type: ignore[arg-type]
            waiting = _DONE
        except asyncio.CancelledError:
            # Envoy closed the stream: the request is over. While a policy still handled a
            # message, that is Envoy's message timeout (the client got Envoy's 504) or the
            # client leaving during the wait: said apart from a client leaving (found by
            # review: a slow plugin or webhook read as the client's doing)
            if handling is not None:
                _interrupted(ex, handling, clock() - started)
        except Exception:
            if context.done():   # a write that lost the race with Envoy closing the
                # stream (ExecuteBatchError): that end, not a failure (kept at debug level)
                log.debug("ext_proc stream ended by Envoy mid-write (route=%s request_id=%s)",
                          ex.route_name, ex.request_id, exc_info=True)
                return
            self.stream_errors += 1
            log.exception("ext_proc stream failed (route=%s request_id=%s)", ex.route_name,
                          ex.request_id)
            raise
        finally:
            if waiting is not _DONE:  # the stream failed or was cancelled: drop the write
                _abandon(writing, waiting)  # type: ignore[arg-type]
            self.streams_active -= 1
            if ex.request_headers:
                outcome = metrics.outcome(ex)
                metrics.observe_exchange(ex, outcome)
                if config.server.access_log:
                    accesslog.write(ex, outcome)
            ex.close()
            if ex.route is not None and ex.route.finishers:
                self._start_finish(ex)
            # A failed send's exception is kept by its future, and its traceback keeps this
            # frame: a cycle only the cyclic GC frees (an idle server may not run it for
            # long). The frame holds neither the exchange nor the write past here.
            ex = writing = waiting = None  # type: ignore[assignment]

    def _start_finish(self, ex: Exchange) -> None:
        """Run the finish hooks in place as far as they go without waiting (settling in
        memory never waits), and the rest in a Task of their own, as this stream's may be
        being cancelled (Envoy closed it): from the first hook that may wait
        (`Policy.finish_waits`: settling over Redis), or from where one waits though it
        said it would not. No Task for the common case: its creation and two scheduled
        steps cost more than settling does."""
        finishing = self._finish(ex)
        waiting = _resume(finishing)
        if waiting is _DONE:
            return
        task = asyncio.get_running_loop().create_task(_finish_in_task(finishing, waiting))
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)

    @staticmethod
    async def _finish(ex: Exchange) -> None:
        """Run the route's `on_finish` hooks (settlement) once the stream is over."""
        assert ex.route is not None
        in_place = True
        for policy in ex.route.finishers:
            if in_place and policy.finish_waits:
                in_place = False
                await _ToTask()
            try:
                await policy.on_finish(ex)
            except Exception:
                log.exception("%s.on_finish failed (route=%s request_id=%s)", policy.name,
                              ex.route_name, ex.request_id)

    async def drain(self, seconds: float) -> None:
        """Wait (a bounded time) for finish hooks still running, at shutdown."""
        if self._finishing:
            await asyncio.wait(set(self._finishing), timeout=seconds)

    def handler(self) -> grpc.GenericRpcHandler:
        return grpc.method_handlers_generic_handler(SERVICE, {
            "Process": grpc.stream_stream_rpc_method_handler(
                self.Process, request_deserializer=pb.ProcessingRequest.FromString,
                response_serializer=_serialize)})
