"""In-process guard costs, measured without Envoy or a network: the detectors' scan speed in
MB/s, and the CPU each streamed chunk costs the guard (decode, scan, re-frame) against the
SSE decoding every streamed chunk pays anyway.

Run alone (`python bench/guards_micro.py`) or as part of `bench/run.py`, which puts the
table in RESULTS.md beside the end-to-end rows of setup (g).
"""

from __future__ import annotations

import json
import time
from typing import Any

from extproc.codecs.sse import SSEDecoder
from extproc.guards.reframe import SSEMaskingReframer
from extproc.guards.scanner import Scanner, builtin
from extproc.guards.stream import StreamMasker

#: the reference config's PII guard (config/gateway.yaml)
PII = ["email", "phone", "card", "us_ssn", "iban"]
PROSE = ("The quarterly report is attached; revenue grew 12% year over year, and the team "
         "expects similar results next quarter if the supply issues are resolved in time. ")
WITH_PII = ("Contact jane.roe@example.org or call +1 415 555 0100 about card "
            "4111 1111 1111 1111. ")


def corpus(size: int, pii_every: int = 20) -> str:
    """`size` characters of prose with a sentence of PII in every `pii_every`th sentence."""
    parts, n, i = [], 0, 0
    while n < size:
        part = WITH_PII if i % pii_every == pii_every - 1 else PROSE
        parts.append(part)
        n += len(part)
        i += 1
    return "".join(parts)[:size]


def _best(fn: Any, repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def scan_speed(names: list[str], text: str) -> dict[str, float]:
    scanner = Scanner(builtin(names))
    mb = len(text.encode()) / 1e6
    find = _best(lambda: scanner.find(text))
    mask = _best(lambda: scanner.mask(text))
    return {"find_mb_s": round(mb / find, 1), "mask_mb_s": round(mb / mask, 1)}


def openai_stream(text: str, piece: int = 16) -> list[bytes]:
    """An OpenAI stream of `text` in `piece`-character deltas, one event per chunk."""
    out = []
    for i in range(0, len(text), piece):
        doc = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1,
               "model": "gpt-4o-mini", "choices": [{"index": 0, "delta": {
                   "content": text[i:i + piece]}, "finish_reason": None}]}
        out.append(b"data: " + json.dumps(doc, separators=(",", ":")).encode() + b"\n\n")
    return [*out, b"data: [DONE]\n\n"]


def per_chunk(chunks: list[bytes]) -> dict[str, float]:
    scanner = Scanner(builtin(PII))

    def decode_only() -> None:
        d = SSEDecoder(1 << 20)
        for c in chunks:
            for ev in d.feed(c):
                _ = ev.data

    def guarded() -> None:
        t = SSEMaskingReframer("openai", lambda: [StreamMasker(scanner)], 1 << 20)
        for c in chunks:
            t.feed(c)
        t.finish()

    n = len(chunks)
    base = _best(decode_only) / n * 1e6
    guard = _best(guarded) / n * 1e6
    return {"decode_us": round(base, 1), "guard_us": round(guard, 1),
            "added_us": round(guard - base, 1)}


def measure() -> dict[str, Any]:
    text = corpus(2_000_000)
    return {
        "scan": {"pii (reference guard)": scan_speed(PII, text),
                 "secrets": scan_speed(["secrets"], text),
                 "all built-ins": scan_speed(["email", "phone", "card", "us_ssn", "iban",
                                              "ip", "secrets"], text)},
        "chunk": per_chunk(openai_stream(corpus(200_000))),
        "corpus": "2 MB of English prose, one sentence in 20 carrying an e-mail, a phone "
                  "number and a card number",
    }


def markdown(result: dict[str, Any]) -> list[str]:
    out = ["## Guards, in process (`bench/guards_micro.py`)", "",
           f"Scan speed over {result['corpus']} (best of 5, one core):", "",
           "| detectors | find MB/s | mask MB/s |", "|---|---|---|"]
    for name, r in result["scan"].items():
        out.append(f"| {name} | {r['find_mb_s']} | {r['mask_mb_s']} |")
    c = result["chunk"]
    out += ["", f"Per streamed chunk (an OpenAI event with a 16-character delta): SSE "
            f"decoding alone {c['decode_us']} µs, with the PII guard (decode, scan, re-frame) "
            f"{c['guard_us']} µs: the guard adds {c['added_us']} µs of CPU per chunk.", ""]
    return out


if __name__ == "__main__":
    print("\n".join(markdown(measure())))
