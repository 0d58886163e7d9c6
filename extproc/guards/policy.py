"""`Guards`: the built-in route policy that rejects or masks sensitive content in prompts
and in responses.

Requests: it reads the body's text the way the provider adapter extracts it (all roles, or
the guard's), runs reject guards first (a 400 in the provider's format that names the guard
and what it found, never the matched text), then mask guards, rewriting each text in place
with the adapter and re-serialising the body.

Streamed responses (SSE, including Gemini JSON-array streams rewritten to SSE): every text
piece goes through the streaming maskers (`stream.py`) and is re-framed as the provider's
events (`reframe.py`); a reject guard ends the stream with the provider's finish and error
events. Whole JSON responses are asked for BUFFERED (their headers wait): a reject guard
refuses them with an error in the provider's format, mask guards mask them in one pass.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..policy import BodyTransform, Policy, Reject
from ..providers import adapter_for, read_request
from .reframe import SSEMaskingReframer
from .settings import Guard
from .stream import StreamMasker

MAX_EVENT_BYTES = 1024 * 1024

if TYPE_CHECKING:
    from ..exchange import Exchange


class Guards(Policy):
    needs_request_body = True

    def __init__(self, provider: str, guards: tuple[Guard, ...],
                 side: str = "request") -> None:
        """`side`: the request side runs before the LLM traffic policy (a refused prompt
        costs no budget); the response side after it (it sees Gemini JSON-array streams
        already rewritten to SSE, and rate limits count the masked text delivered)."""
        super().__init__({})
        self.provider = provider
        self.side = side
        self.adapter = adapter_for(provider)
        requests = tuple(g for g in guards if "request" in g.apply_to) \
            if side == "request" else ()
        self.rejecting = tuple(g for g in requests if g.action == "reject")
        self.masking = tuple(g for g in requests if g.action == "mask")
        responses = tuple(g for g in guards if "response" in g.apply_to) \
            if side == "response" else ()
        # reject guards first: a value they stop must never be masked and sent
        self.response_guards = tuple(sorted(responses, key=lambda g: g.action != "reject"))
        self.needs_request_body = bool(requests)
        self.needs_response_body = bool(responses)
        self.stats = {"rejected": 0, "masked": 0, "response_rejected": 0}

    def _maskers(self) -> list[StreamMasker]:
        return [StreamMasker(g.scanner, action=g.action) for g in self.response_guards]

    def response_transform(self, ex: Exchange) -> BodyTransform | None:
        if ex.status != 200 or not self.response_guards:
            return None
        ctype = (ex.pending_response_header("content-type")
                 or ex.response_headers.get("content-type", ""))
        ctype = ctype.split(";", 1)[0].strip().lower()
        if ctype == "text/event-stream":
            stats = self.stats

            def rejected(detector: str) -> None:
                stats["response_rejected"] += 1
                ex.metadata["guard_response"] = f"rejected:{detector}"

            return SSEMaskingReframer(self.provider, self._maskers, MAX_EVENT_BYTES,
                                      rejected)
        if ctype == "application/json":
            return _WholeJsonGuard(self.adapter, self.response_guards, self.stats, ex)
        return None

    async def on_request_body(self, ex: Exchange, body: bytes) -> bytes | None:
        path = ex.request_headers.get(":path", "")
        read = read_request(self.adapter, path, body)
        if read is None:
            return None
        doc, texts = read[0], read[1].texts
        for guard in self.rejecting:
            found = _found(guard, texts)
            if found:
                self.stats["rejected"] += 1
                ex.metadata["guard_request"] = f"{guard.name}:rejected:{','.join(found)}"
                raise Reject(400, f"request blocked by guard '{guard.name}': the prompt "
                             f"contains {_describe(found)}", details="extproc_guard_rejected")
        if not self.masking:
            return None
        masked: list[str] = []

        def mask(role: str, text: str) -> str:
            for guard in self.masking:
                if role in guard.roles:
                    spans = guard.scanner.find(text)
                    if spans:
                        masked.extend(s.detector for s in spans)
                        text = guard.scanner.mask(text, spans)
            return text

        if not self.adapter.rewrite_request_texts(path, doc, mask):
            return None
        self.stats["masked"] += 1
        names = sorted(set(masked))
        ex.metadata["guard_request"] = ",".join(
            f"{g.name}:masked" for g in self.masking) + f":{','.join(names)}"
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


class _WholeJsonGuard(BodyTransform):
    """A whole JSON reply, buffered by Envoy (so its headers wait): refused with a 400 in the
    provider's format (as a prompt would be: SDKs do not retry it) if a reject guard finds
    something in its text, else masked with the adapter."""

    whole_body = True

    def __init__(self, adapter: Any, guards: tuple[Guard, ...], stats: dict[str, int],
                 ex: Exchange) -> None:
        self.adapter = adapter
        self.guards = guards
        self.stats = stats
        self.ex: Exchange | None = ex      # dropped at finish: no cycle outlives the reply
        self.parts: list[bytes] = []

    def feed(self, chunk: bytes) -> bytes:
        self.parts.append(chunk)
        return b""

    def finish(self) -> bytes:
        body, self.parts = b"".join(self.parts), []
        ex, self.ex = self.ex, None
        try:
            doc = json.loads(body) if body else None
        except ValueError:
            return body
        if not isinstance(doc, dict):
            return body
        texts: list[str] = []
        self.adapter.rewrite_response_texts(doc, lambda t: texts.append(t) or t)
        for guard in self.guards:
            if guard.action != "reject":
                continue
            found = _found(guard, [("assistant", t) for t in texts])
            if found:
                self.stats["response_rejected"] += 1
                if ex is not None:
                    ex.metadata["guard_response"] = f"{guard.name}:rejected:{','.join(found)}"
                raise Reject(400, f"response blocked by guard '{guard.name}': it contains "
                             f"{_describe(found)}", details="extproc_guard_rejected")
        masking = [g for g in self.guards if g.action == "mask"]

        def mask(text: str) -> str:
            for guard in masking:
                text = guard.scanner.mask(text)
            return text

        if not masking or not self.adapter.rewrite_response_texts(doc, mask):
            return body
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode()


def _found(guard: Guard, texts: list[tuple[str, str]]) -> list[str]:
    names: list[str] = []
    for role, text in texts:
        if role in guard.roles:
            for span in guard.scanner.find(text):
                if span.detector not in names:
                    names.append(span.detector)
    return names


def _describe(names: list[Any]) -> str:
    kinds = [str(n).replace("_", " ") for n in names]
    return kinds[0] if len(kinds) == 1 else ", ".join(kinds[:-1]) + " and " + kinds[-1]
