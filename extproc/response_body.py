"""The response body side of an `Exchange`: each chunk through the route's body transforms
(`response_chunk`, without a coroutine, on the path of every chunk of a stream; awaited
when a transform calls out), the reply that carries the result (passed on unchanged, a body
mutation with its content-length in BUFFERED, a `streamed_response` in FULL_DUPLEX_STREAMED,
the end of a stream a transform cut), the bytes and first token counted as the provider
sent them, a BUFFERED reply Envoy streamed anyway refused, and trailers. A base class of
`Exchange`, which owns the state it reads.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Sequence

from envoy.service.ext_proc.v3 import external_processor_pb2 as pb

from . import protocol as P
from . import unshown
from .context import succeeded
from .policy import BodyTransform, Reject, cancelled, run_transforms, run_transforms_async
from .request_body import Reply, RequestBody

log = logging.getLogger("extproc.exchange")

#: the reply to a response chunk passed on unchanged (shared: a tuple of bytes)
_CONTINUE_BODY: tuple[Reply, ...] = (P.CONTINUE_RESPONSE_BODY,)


def _json_value(body: bytes) -> bool:
    """Whether `body` is a whole JSON object, array or string (what the error reply guard
    reads as JSON text: `guards.errors`)."""
    try:
        return isinstance(json.loads(body), dict | list | str)
    except (ValueError, RecursionError):
        return False


class ResponseBody(RequestBody):
    """The response body's handling; the attributes are the `Exchange`'s."""

    response_headers: dict[str, str]
    response_mode: int
    response_body_bytes: int
    status: int
    first_token_at: float | None
    first_delivered_at: float | None
    ended_at: float | None
    _transforms: list[BodyTransform]
    _async_transforms: bool
    _configured: tuple[int, int] | None
    _cut: bool
    _ends_early: bool
    _buffered_seen: bool
    _buffered_part: bool
    _watch: re.Pattern[bytes] | None
    _delivered_watch: re.Pattern[bytes] | None

    def _refusal(self, kind: str, exc: Exception) -> Sequence[Reply]:
        raise NotImplementedError   # the Exchange's: a policy's refusal or an error as replies

    def response_chunk(self, b: pb.HttpBody) -> Sequence[Reply] | None:
        """`handle` of a response body message, without two coroutines per chunk: the path
        of every chunk of a stream. None when a transform calls out (then `handle` it)."""
        if self._async_transforms or self._configured is None:
            return None
        try:
            if self._cut:
                return self._after_cut()
            if self._buffered_part and self._ends_buffered(b):
                return _CONTINUE_BODY
            chunk, eos = b.body, self._response_ends(b)
            self._saw_upstream(chunk)
            out = run_transforms(self._transforms, chunk, eos) if self._transforms \
                else self._untransformed(chunk)
            if self._ends_early and not eos and any(t.ended for t in self._transforms):
                out += run_transforms(self._transforms, b"", True)   # finish them all
                eos = self._cut = True
            return self._response_replies(chunk, out, eos)
        except Exception as exc:
            return self._refusal("response_body", exc)
        except asyncio.CancelledError as exc:   # (synchronous: never the stream's own)
            return self._refusal("response_body", cancelled(exc))

    def _untransformed(self, chunk: bytes) -> bytes:
        """A response chunk no transform reads: refused if the reply's headers never came
        (Envoy skips them: no policy set up for this reply)."""
        if not self.response_headers:
            raise unshown.refuse_skipped_headers(self.route_name or "unknown", "response")
        return chunk

    async def _on_response_body(self, b: pb.HttpBody) -> Sequence[Reply]:
        replies = self.response_chunk(b)  # None only when a transform calls out
        if replies is not None:
            return replies
        if self._cut:
            return self._after_cut()
        if self._buffered_part and self._ends_buffered(b):
            return _CONTINUE_BODY
        chunk, eos = b.body, self._response_ends(b)
        self._saw_upstream(chunk)
        out = await run_transforms_async(self._transforms, chunk, eos)
        if self._ends_early and not eos and any(t.ended for t in self._transforms):
            out += await run_transforms_async(self._transforms, b"", True)
            eos = self._cut = True
        return self._response_replies(chunk, out, eos)

    def _after_cut(self) -> Sequence[Reply]:
        """A response chunk after a transform ended the response: in FULL_DUPLEX_STREAMED
        (the end_of_stream sent, Envoy is closing the upstream) nothing; in STREAMED, where
        the response cannot end early, the chunk is dropped."""
        if self.response_mode == P.FULL_DUPLEX:
            return ()
        return (P.body_reply(True, b""),)

    def _ends_buffered(self, b: pb.HttpBody) -> bool:
        """Whether `b`, after the one part of a reply asked for BUFFERED that came without
        end_of_stream, only ends it: no bytes, end_of_stream. Envoy ignored the override and
        streamed the reply, but its first part held all of it (a chunked reply whose last
        chunk came apart), so the transforms read the whole reply: nothing is left to read,
        and it passes (bytes would be refused, `_response_ends`)."""
        if self.response_mode != P.BUFFERED or b.body or not b.end_of_stream:
            return False
        self._buffered_part = False
        if self._transforms:
            unshown.whole_in_first_part(self.route_name or "unknown")
        return True

    def _response_ends(self, b: pb.HttpBody) -> bool:
        # BUFFERED: the whole body in one message, final even when trailers follow; a second
        # one means Envoy ignored the override that asked for it (`allow_mode_override`)
        if self.response_mode == P.BUFFERED:
            if self._transforms and all(t.parts_ok for t in self._transforms):
                return b.end_of_stream   # read in parts as well: whole or not, as it comes
            if self._buffered_seen and self._transforms:
                raise unshown.refuse_ignored_response_override(self.route_name or "unknown")
            self._buffered_seen = True
            self._buffered_part = not b.end_of_stream
            if self._buffered_part and not succeeded(self.status) and self._transforms \
                    and not _json_value(b.body):
                # a reply other than a 2xx (an error, a redirect) is read as text if it is
                # no JSON: a part would pass as whole (one that is a JSON object, array or
                # string holds all its texts: read so, its end coming apart passes, as a
                # 2xx reply's does)
                raise unshown.refuse_ignored_response_override(self.route_name or "unknown")
            return True
        if self.response_mode == P.BUFFERED_PARTIAL:
            if not b.end_of_stream and self._transforms:
                # the part Envoy buffered, the rest going to the client unseen (a mesh's
                # BufferedPartial): no guard may read a part as the whole, so it is refused
                raise Reject(502, "the reply exceeds what the gateway's Envoy buffers for "
                             "the policies to read", details="extproc_reply_too_large")
            return True
        return b.end_of_stream

    def _saw_upstream(self, chunk: bytes) -> None:
        """Count a response chunk as the provider sent it, and watch for its first token."""
        self.response_body_bytes += len(chunk)
        if self.first_token_at is not None:
            return
        watch = self._watch
        if watch is not None and watch.search(chunk):
            self.first_token_at = time.monotonic()
            if not self._transforms:
                self.first_delivered_at = self.first_token_at

    def _response_replies(self, chunk: bytes, out: bytes, eos: bool) -> Sequence[Reply]:
        """The replies for a response chunk that the transforms turned into `out`."""
        duplex = self.response_mode == P.FULL_DUPLEX
        if not self._transforms:
            if eos:
                self.ended_at = time.monotonic()
            if duplex:
                return (P.streamed_reply(True, chunk, eos),)
            return _CONTINUE_BODY
        watch = self._delivered_watch
        if watch is not None and self.first_delivered_at is None and out and watch.search(out):
            self.first_delivered_at = time.monotonic()
        if eos:
            self.ended_at = time.monotonic()
        if duplex:
            if self.metadata and eos:
                return (self._with_metadata(P.streamed_message(True, out, eos)),)
            return (P.streamed_reply(True, out, eos),) if out or eos else ()
        unchanged = out is chunk or out == chunk
        if unchanged and not self.metadata:
            return _CONTINUE_BODY
        msg = P.body_reply(True, None if unchanged else out)
        if not unchanged and self.response_mode == P.BUFFERED:
            msg.response_body.response.header_mutation.CopyFrom(
                P.header_mutation({"content-length": str(len(out))}))
        return (self._with_metadata(msg),)

    async def _on_response_trailers(self, t: pb.HttpTrailers) -> Sequence[Reply]:
        if self._cut:   # the response already ended
            return (P.CONTINUE_RESPONSE_TRAILERS,)
        self.ended_at = time.monotonic()
        if self.response_mode == P.FULL_DUPLEX:
            out = await run_transforms_async(self._transforms, b"", True)
            last = self._with_metadata(P.streamed_message(True, out, True))
            return (last, P.CONTINUE_RESPONSE_TRAILERS)
        if self._transforms and self.response_mode == P.STREAMED:
            # a trailers reply cannot carry body bytes: whatever a transform still holds is
            # lost. LLM providers send no trailers; FULL_DUPLEX_STREAMED handles them fully.
            log.warning("response trailers after a STREAMED body with held bytes "
                        "(request_id=%s); use FULL_DUPLEX_STREAMED on this route",
                        self.request_id)
        return (P.CONTINUE_RESPONSE_TRAILERS,)
