"""The process's one outbound HTTP client (JWKS fetches now, guard webhooks later).

One aiohttp session per event loop, created on first use and closed by the server at
shutdown: connections are pooled and reused, never rebuilt per request.
"""

from __future__ import annotations

import asyncio

import aiohttp

_sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
MAX_RESPONSE_BYTES = 4 * 1024 * 1024


def session() -> aiohttp.ClientSession:
    loop = asyncio.get_running_loop()
    s = _sessions.get(loop)
    if s is None or s.closed:
        s = _sessions[loop] = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=64, ttl_dns_cache=60),
            headers={"user-agent": "extproc-llm-gateway"})
    return s


async def fetch_bytes(url: str, timeout_s: float) -> bytes:
    """GET `url`; the body of a 200 answer, else an exception that says what went wrong.

    Redirects are not followed (a 3xx is a failure, saying so): the URL is the one the
    config names and checks (a JWKS's: https, or http only to a loopback host), and a
    redirect could take the fetch to http, or to another host, where keys can be swapped."""
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with session().get(url, timeout=timeout, allow_redirects=False) as resp:
        if 300 <= resp.status < 400:
            raise RuntimeError(f"HTTP {resp.status} (a redirect: not followed; name the "
                               "final URL in the config)")
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}")
        body = await read_bounded(resp.content, MAX_RESPONSE_BYTES)
        if len(body) > MAX_RESPONSE_BYTES:
            raise RuntimeError(f"response larger than {MAX_RESPONSE_BYTES} bytes")
        return body


async def read_bounded(content: aiohttp.StreamReader, limit: int) -> bytes:
    """The whole body, or its first `limit` + 1 bytes when it is longer (so the caller can
    tell). `StreamReader.read(n)` returns what is buffered, up to n bytes, not n bytes: a
    body that arrives in more than one read (chunked, or large) needs the loop."""
    parts: list[bytes] = []
    size = 0
    while size <= limit:
        part = await content.read(limit + 1 - size)
        if not part:
            break
        parts.append(part)
        size += len(part)
    return b"".join(parts)


async def close() -> None:
    """Close this loop's session (at server shutdown)."""
    s = _sessions.pop(asyncio.get_running_loop(), None)
    if s is not None:
        await s.close()
