"""Writing a planned mock response to the wire, with the x-mock-* misbehaviours applied.

Honours chunk size (``x-mock-chunk-bytes``), the inter-chunk delay (``x-mock-delay-ms``), the
mid-body connection reset (``x-mock-fail-after``), the body ended short
(``x-mock-end-after``) and its end delayed (``x-mock-end-delay-ms``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct

from aiohttp import web

from extproc.mock.control import Control, Plan, plan_chunks


class MockResponse(web.StreamResponse):
    """A streamed response that remembers how many body bytes went out and if it was reset."""

    sent_bytes = 0
    aborted = False


async def send_plan(request: web.Request, plan: Plan, control: Control) -> MockResponse:
    """Write ``plan``: one ``write()`` + drain per chunk, sleeping between chunks (not
    before the frames the provider sends once generation has ended, ``plan.settled``, unless
    ``x-mock-chunk-bytes`` cuts the body regardless of frames).

    With ``control.fail_after`` set, exactly that many body bytes are written (or the whole
    body if shorter) and then the connection is reset instead of ending the response. With
    ``control.end_after``, the body ends there, as a whole response does.
    """
    if control.wait_ms:
        await asyncio.sleep(control.wait_ms / 1000)
    chunks, chunked = plan_chunks(plan, control)
    if control.end_after is not None:
        chunks = _first_bytes(chunks, control.end_after)
    headers = plan.headers
    if control.charset is not None:
        headers = {k: f"{v}; charset={control.charset}" if k.lower() == "content-type" else v
                   for k, v in headers.items()}
    resp = MockResponse(status=plan.status, headers=headers)
    if chunked:
        resp.enable_chunked_encoding()
    else:
        resp.content_length = sum(len(c) for c in chunks)
    writer = await resp.prepare(request)
    assert writer is not None
    limit = control.fail_after
    paced = len(chunks) - (0 if control.chunk_bytes else plan.settled)
    try:
        for i, chunk in enumerate(chunks):
            if i and control.delay_ms and i < paced:
                await asyncio.sleep(control.delay_ms / 1000)
            if limit is not None and resp.sent_bytes + len(chunk) > limit:
                chunk = chunk[: limit - resp.sent_bytes]
                if chunk:
                    await resp.write(chunk)
                    resp.sent_bytes += len(chunk)
                break
            await resp.write(chunk)
            await writer.drain()
            resp.sent_bytes += len(chunk)
        if limit is not None:
            resp.aborted = True
            await abort_connection(request)
            return resp
        if control.end_delay_ms:
            await asyncio.sleep(control.end_delay_ms / 1000)
        await resp.write_eof()
    except ConnectionError:
        resp.aborted = True
    return resp


def _first_bytes(chunks: list[bytes], n: int) -> list[bytes]:
    """The chunks cut to their first `n` bytes."""
    out: list[bytes] = []
    for chunk in chunks:
        if n <= 0:
            break
        out.append(chunk[:n])
        n -= len(chunk)
    return out


async def abort_connection(request: web.Request) -> None:
    """Flush what was written, then reset the connection (SO_LINGER 0: RST, not FIN)."""
    transport = request.transport
    if transport is None:
        return
    for _ in range(200):
        if transport.is_closing() or not transport.get_write_buffer_size():
            break
        await asyncio.sleep(0.005)
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()
