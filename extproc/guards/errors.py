"""Error replies on a guarded route: a reply the provider answered with a status other than
2xx carries no model output the adapters read, but its message can quote any text (a prompt
echoed back, what a broken or hostile upstream put there). On a route whose local guards
read replies it is read whole, buffered as a whole JSON reply is (its headers wait): every
text of a JSON body (keys and numbers too), or a body of another type as one text. A reject
guard's match replaces it with an error of the same status, in the provider's format, that
says why; mask guards mask it in place. A body in a content-encoding no guard reads is
replaced the same way. Webhook guards are not called on error replies."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..codecs import jsonunique
from ..policy import BodyTransform, Reject
from ..providers.values import MaskingFn, json_bytes, rewrite_json_strings
from .decisions import decide
from .replies import describe, found, mask_text

if TYPE_CHECKING:
    from ..context import Context
    from .settings import Guard


class ErrorReplyGuard(BodyTransform):
    """The local reply guards over an error reply (see the module's docstring)."""

    whole_body = True

    def __init__(self, guards: tuple[Guard, ...], stats: dict[str, int], ex: Context) -> None:
        self.guards = guards
        self.stats = stats
        self.ex: Context | None = ex      # dropped at finish: no cycle outlives the reply
        self.status = ex.status
        self.encoding = ex.response_headers.get("content-encoding", "").strip().lower()
        self.parts: list[bytes] = []

    def feed(self, chunk: bytes) -> bytes:
        self.parts.append(chunk)
        return b""

    def finish(self) -> bytes:
        ex, self.ex = self.ex, None
        body, self.parts = b"".join(self.parts), []
        if not body.strip():
            return body
        if self.encoding not in ("", "identity"):
            raise Reject(self.status, f"the provider's error reply is {self.encoding}-encoded"
                         ", which the gateway's reply guards cannot read",
                         details="extproc_unreadable_reply")
        try:
            doc: Any = jsonunique.loads(body)
        except (jsonunique.RepeatedKey, RecursionError):   # JSON no guard reads one way
            raise Reject(self.status, "the provider's error reply was withheld: it is JSON "
                         "the gateway's reply guards cannot read",
                         details="extproc_unreadable_reply") from None
        except ValueError:
            doc = None
        # a JSON object, array or string as its texts (escapes decoded; keys and numbers
        # too), any other body as one text (a number's or a page's text is as it is sent)
        json_text = isinstance(doc, dict | list | str)
        box: list[Any] = [doc] if json_text else [body.decode("utf-8", "replace")]
        texts: list[tuple[None, str]] = []

        def collect(_role: str, text: str) -> str:
            texts.append((None, text))
            return text

        rewrite_json_strings(box, 0, "assistant", MaskingFn(collect))
        for guard in self.guards:
            if guard.action != "reject":
                continue
            hits = found(guard, texts)
            if hits:
                self.stats["response_rejected"] += 1
                if ex is not None:
                    decide(ex, guard.name, "response", "rejected", ",".join(hits))
                raise Reject(self.status, "the provider's error reply was withheld: it "
                             f"contains {describe(hits)}, which guard '{guard.name}' refuses",
                             details="extproc_guard_rejected")
        masking = [g for g in self.guards if g.action == "mask"]
        masked: dict[str, set[str]] = {}
        if not masking or not rewrite_json_strings(
                box, 0, "assistant", MaskingFn(lambda _r, t: mask_text(masking, t, masked))):
            return body
        if ex is not None:
            for name, detectors in masked.items():
                decide(ex, name, "response", "masked", ",".join(sorted(detectors)))
        return json_bytes(box[0]) if json_text else box[0].encode()
