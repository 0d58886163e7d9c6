"""The ``x-mock-*`` request headers that shape the mock's replies, and the write plan.

Parsing is pure: :func:`parse_control` turns request headers into a :class:`Control`, and
:func:`plan_chunks` turns response frames plus a Control into the byte chunks to write.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from extproc.mock.common import decode_header_text

REPLY = "x-mock-reply"
CHUNK_BYTES = "x-mock-chunk-bytes"
DELAY_MS = "x-mock-delay-ms"
STATUS = "x-mock-status"
FAIL_AFTER = "x-mock-fail-after"
#: end the body cleanly after N bytes (a stream that stops short, mid-event, without a reset)
END_AFTER = "x-mock-end-after"
#: ``x-mock-end-delay-ms: N``: end the body N ms after its last byte, in chunked encoding (the
#: last chunk, of no bytes, comes apart: as from a provider that flushes its body first)
END_DELAY_MS = "x-mock-end-delay-ms"
#: a streamed reply ends after N of its frames with the provider's mid-stream error event
#: (OpenAI's error chunk, Anthropic's `event: error`, Gemini's error object; SSE streams)
ERROR_AFTER = "x-mock-error-after"
#: the message of that mid-stream error event (default: the provider's usual one)
ERROR_MESSAGE = "x-mock-error-message"
#: where the reply goes besides visible text: the formats' SHAPES (refusal, thinking, tool,
#: tool-escaped, start; image and audio, generated media with the reply; mcp, an MCP
#: server's tool result; partial-args, Vertex's streamed call arguments; parts, content as
#: a list of parts; blocks, Anthropic text blocks cut at each `|`); a shape a provider
#: has not is a 400
SHAPE = "x-mock-shape"
SHAPES = ("refusal", "thinking", "tool", "tool-escaped", "start", "image", "audio", "mcp",
          "partial-args", "parts", "blocks")
ECHO = "echo"
#: ``x-mock-usage: omit``: a whole (non-streamed) reply leaves out its usage report
#: (``usage``, ``usageMetadata``), as an upstream that is not quite the provider might
USAGE = "x-mock-usage"
#: wait N ms before answering at all (status and headers), as a provider generating a whole
#: reply, or a reasoning model thinking before its first event, does
WAIT_MS = "x-mock-wait-ms"
#: ``x-mock-charset: X``: the reply's Content-Type names ``charset=X`` (its bytes unchanged),
#: as an upstream that labels its replies otherwise might
CHARSET = "x-mock-charset"


class ControlError(ValueError):
    """A control header has an invalid value."""


@dataclass(frozen=True)
class Control:
    """The reply-shaping options of one request."""

    reply: str | None = None
    chunk_bytes: int | None = None
    delay_ms: int = 0
    status: int | None = None
    fail_after: int | None = None
    end_after: int | None = None
    shape: str | None = None
    error_after: int | None = None
    #: a 2xx other than 200 (``x-mock-status: 201``): the normal reply, sent with it
    success_status: int | None = None
    #: ``x-mock-usage: omit``: a whole reply without its usage report
    omit_usage: bool = False
    #: ``x-mock-wait-ms: N``: N ms before the status and headers go out
    wait_ms: int = 0
    #: ``x-mock-error-message``: the mid-stream error event's message
    error_message: str | None = None
    #: ``x-mock-charset``: the charset the reply's Content-Type names
    charset: str | None = None
    #: ``x-mock-end-delay-ms: N``: the body's end (chunked) N ms after its last byte
    end_delay_ms: int = 0

    @property
    def echo(self) -> bool:
        """True when the reply should echo the last user message."""
        return self.reply == ECHO


def _int_header(headers: Mapping[str, str], name: str, minimum: int) -> int | None:
    raw = headers.get(name)
    if raw is None:
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        raise ControlError(f"invalid {name} header: {raw!r} is not an integer") from None
    if value < minimum:
        raise ControlError(f"invalid {name} header: {value} is below {minimum}")
    return value


def parse_control(headers: Mapping[str, str]) -> Control:
    """Read the x-mock-* headers (case-insensitive mapping); raise ControlError if invalid."""
    reply = headers.get(REPLY)
    shape = headers.get(SHAPE)
    if shape is not None:
        shape = shape.strip().lower()
        if shape not in SHAPES:
            raise ControlError(f"invalid {SHAPE} header: {shape!r} is not one of "
                               f"{', '.join(SHAPES)}")
    status = _int_header(headers, STATUS, 100)
    if status is not None and status > 599:
        raise ControlError(f"invalid {STATUS} header: {status} is not an HTTP status")
    usage = headers.get(USAGE)
    error_message = headers.get(ERROR_MESSAGE)
    if usage is not None and usage.strip().lower() != "omit":
        raise ControlError(f"invalid {USAGE} header: {usage!r} is not 'omit'")
    return Control(
        reply=None if reply is None else decode_header_text(reply),
        chunk_bytes=_int_header(headers, CHUNK_BYTES, 1),
        delay_ms=_int_header(headers, DELAY_MS, 0) or 0,
        status=status if status is not None and status >= 400 else None,
        fail_after=_int_header(headers, FAIL_AFTER, 0),
        end_after=_int_header(headers, END_AFTER, 0),
        shape=shape,
        error_after=_int_header(headers, ERROR_AFTER, 1),
        success_status=status if status is not None and 200 < status < 300 else None,
        omit_usage=usage is not None,
        wait_ms=_int_header(headers, WAIT_MS, 0) or 0,
        error_message=None if error_message is None else decode_header_text(error_message),
        charset=headers.get(CHARSET),
        end_delay_ms=_int_header(headers, END_DELAY_MS, 0) or 0,
    )


@dataclass(frozen=True)
class Plan:
    """A response ready to write: status, headers and body frames."""

    status: int
    headers: dict[str, str]
    frames: list[bytes]
    streamed: bool = False
    #: how many of the last frames the provider sends the moment generation ends, right
    #: after the frame before them: OpenAI's usage chunk and `[DONE]`, Anthropic's
    #: `message_delta` and `message_stop`, the Responses API's closing events.
    #: ``x-mock-delay-ms`` paces the frames a model generates, not these (a real stream
    #: that reports usage is no longer for it)
    settled: int = 0


def error_plan(status: int, body: bytes, headers: dict[str, str]) -> Plan:
    """An error response plan; JSON unless ``headers`` sets Content-Type, retry-after on 429."""
    headers = {"Content-Type": "application/json", **headers}
    if status == 429:
        headers["retry-after"] = "1"
    return Plan(status, headers, [body])


def plan_chunks(plan: Plan, control: Control) -> tuple[list[bytes], bool]:
    """The chunks to write and whether to use chunked transfer encoding.

    With ``x-mock-chunk-bytes: N`` the whole body is cut into N-byte chunks regardless of
    frame (or UTF-8 character) boundaries; otherwise each stream frame is one chunk and a
    non-streamed body is written at once with a content-length.
    """
    if control.end_delay_ms and not control.chunk_bytes and not plan.streamed:
        return [b"".join(plan.frames)], True   # chunked: its end can come apart
    if control.chunk_bytes:
        body = b"".join(plan.frames)
        size = control.chunk_bytes
        return [body[i : i + size] for i in range(0, len(body), size)], True
    if plan.streamed:
        return [frame for frame in plan.frames if frame], True
    return [b"".join(plan.frames)], False
