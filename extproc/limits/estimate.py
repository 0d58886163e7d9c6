"""Token estimates, before a request runs and for a stream cut short (sans-IO).

Before: the prompt text the provider adapter extracted, at `chars_per_token` characters per
token, plus the request's max output tokens (or a configured default).

After a stream that ended without the provider's final usage report (the client went away,
the upstream broke, an error event ended it), the output is estimated from what was
delivered (`DeliveredText`). Every piece of generated output counts, whatever the provider
puts it in: text, refusals, thinking and reasoning (with Anthropic's thinking signature),
tool-call arguments (Gemini's `args` object too), and generated media:

* one token per output event at least: each adapter names the byte strings that start one
  (`Adapter.output_markers`; providers stream about a token per event);
* the characters of the output values (`OUTPUT_KEY`: the JSON keys whose string values are
  generated output, in every provider's format), at `chars_per_token`: read exactly on a
  sample (the stream's first `SAMPLE` bytes) and on the events that may carry much output
  in one piece (`Adapter.dense_markers`: a block start, a function call, media), and scaled
  from the sample's characters per byte for every other byte;
* generated media (base64 images and audio, `MEDIA_KEYS`): one token per
  `MEDIA_BYTES_PER_TOKEN` bytes, and `media` turns true, which makes the settlement charge
  at least the request's reservation (`limits.policy`): no count of bytes can size an image
  (a plain one compresses to almost nothing and is billed the same).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from ..policy import BodyTransform

#: the byte string that started each streamed text fragment, by provider, before every kind
#: of output was counted (still counted: an estimate is never lower than it was)
TEXT_MARKERS = {"openai": b'"content"', "azure": b'"content"', "anthropic": b'"text_delta"',
                "gemini": b'"text"', "vertex": b'"text"'}

CHARS_PER_TOKEN = 4.0

#: a JSON key whose value is generated output, in any provider's stream, and what follows
#: it: a string (`"`) or, for Gemini's function call `args`, an object (`{`). Text: OpenAI
#: chat `content`, `refusal`, `reasoning_content` / `reasoning` (OpenAI-compatible servers,
#: the unified front), `arguments`, audio `transcript`; legacy completions and Gemini
#: `text`; the Responses API's `delta` (every `*.delta` event: text, refusal, reasoning,
#: function-call arguments, tool input); Anthropic `text`, `thinking`, `signature`,
#: `partial_json`; Gemini `code` (executable code). Media: see `MEDIA_KEYS`.
OUTPUT_KEY = re.compile(
    rb'"(content|text|partial_json|arguments|thinking|signature|refusal|reasoning_content|'
    rb'reasoning|delta|transcript|code|data|partial_image_b64|result|args)"\s*:\s*([{"])')
#: the keys the estimate read before every kind of output was counted: its first KiB, read
#: for them and scaled to the whole stream, stays a floor (an estimate is never lower)
LEGACY_KEY = re.compile(rb'"(content|text|partial_json|arguments)"\s*:\s*(")')
#: the keys whose string values are base64 media: Gemini `inlineData.data`, OpenAI chat
#: `audio.data`, Anthropic redacted thinking `data`, the Responses API's image generation
#: `partial_image_b64` and `result`
MEDIA_KEYS = frozenset((b"data", b"partial_image_b64", b"result"))
#: the only key whose object value is output (Gemini's function call arguments)
OBJECT_KEYS = frozenset((b"args",))
#: base64 bytes per token of generated media. Audio is billed by its length: at most about
#: 50 tokens a second (OpenAI's audio models; Gemini 32), and the lowest bitrate a provider
#: streams (32 kbit/s compressed) is about 5,300 base64 bytes a second, 107 per token: 64
#: never counts fewer tokens than that. An image's bytes cannot bound its tokens (see above).
MEDIA_BYTES_PER_TOKEN = 64
#: a key split across two chunks is found in the last bytes of the first kept this long
_CARRY = 48
#: an event that may carry much output is read this far past its marker for its value
_DENSE_REACH = 4096

_STRUCT = re.compile(rb'[{}"]')
_BACKSLASH = 92


def prompt_tokens(texts: Iterable[str], chars_per_token: float = CHARS_PER_TOKEN) -> int:
    """The prompt's tokens: ASCII characters at `chars_per_token`, every other character by
    its UTF-8 length, as tokenizers read them: one of 2 bytes (Cyrillic, Greek, Hebrew,
    Arabic, accented Latin) half a token, one of 3 (CJK, Indic, Thai) a token, one of 4
    (emoji, rare CJK, tag characters) three. Byte-level tokenizers split a character outside
    their merges into its bytes, so rare characters counted at `chars_per_token` under-reserved
    a prompt up to 12x (found by review); this way no text is counted at less than about a
    quarter of its tokens, and the common scripts near what they are."""
    ascii_chars = 0
    other = 0.0
    for t in texts:
        n = len(t)
        if t.isascii():
            ascii_chars += n
            continue
        a = len(t.encode("ascii", "ignore"))
        utf8 = len(t.encode("utf-8", "surrogatepass"))
        four = len(t.encode("utf-16-le", "surrogatepass")) // 2 - n   # beyond the BMP
        three = (utf8 - a - 4 * four) - 2 * (n - a - four)
        two = n - a - four - three
        ascii_chars += a
        other += 0.5 * two + three + 3 * four
    tokens = ascii_chars / chars_per_token + other
    return math.ceil(tokens) if tokens else 0


def _string_end(raw: bytes, p: int, escaped: bool) -> tuple[int, bool]:
    """Where the JSON string that runs from `p` closes (its quote), or -1, and whether the
    bytes end in the middle of an escape; `escaped`: the first byte is escaped."""
    n = len(raw)
    if escaped:
        if p >= n:
            return -1, True
        p += 1
    while True:
        e = raw.find(b'"', p)
        k = n if e < 0 else e
        j = k
        while j > p and raw[j - 1] == _BACKSLASH:
            j -= 1
        odd = (k - j) % 2 == 1
        if e < 0:
            return -1, odd
        if not odd:
            return e, False
        p = e + 1


class OutputScan:
    """The characters of generated output in a JSON text fed in pieces (a stream, or one
    event): `chars` of text values, `media` bytes of base64 values. A value still open when
    the bytes end counts as far as they go, and goes on in the next piece."""

    __slots__ = ("chars", "depth", "escaped", "in_string", "keys", "media", "open", "tail",
                 "values")

    def __init__(self, keys: re.Pattern[bytes] = OUTPUT_KEY) -> None:
        self.keys = keys
        self.chars = 0
        self.media = 0
        self.values = 0          # output values closed so far
        self.open = 0            # inside: 0 nothing, 1 a text, 2 media, 3 an args object
        self.escaped = False
        self.depth = 0           # in an object: its depth, and whether in one of its strings
        self.in_string = False
        self.tail = b""          # the last bytes before this piece, for a key split there

    def feed(self, raw: bytes, stop: bool = False) -> int:
        """Read `raw`, which follows what was fed before; with `stop`, only up to where an
        output value closes. Returns how much of `raw` was read."""
        carry = self.tail
        n = len(raw)
        pos = self._continue(raw, 0)
        if self.open:
            self.tail = b""
            return n
        if stop and pos > 0:
            self.tail = b""
            return pos
        buf = carry + raw if carry else raw     # (no carry after an open value)
        skip = len(carry)
        for m in self.keys.finditer(buf):
            if m.end() <= skip or m.start() < pos:
                continue
            key = m.group(1)
            start = m.end()
            if m.group(2) == b"{":
                if key not in OBJECT_KEYS:
                    continue
                self.open, self.depth, self.in_string = 3, 1, False
                self.chars += 1      # its brace
            else:
                self.open = 2 if key in MEDIA_KEYS else 1
            self.escaped = False
            pos = self._continue(buf, start)
            if self.open:
                self.tail = b""
                return n
            if stop:
                self.tail = b""
                return pos - skip
        self.tail = buf[max(pos, len(buf) - _CARRY):]
        return n

    def _continue(self, raw: bytes, p: int) -> int:
        """Go on with the value open at `p`; returns where it closed (or the end)."""
        if self.open == 0:
            return p
        if self.open == 3:
            return self._object(raw, p)
        end, self.escaped = _string_end(raw, p, self.escaped)
        stop = len(raw) if end < 0 else end
        if self.open == 2:
            self.media += stop - p
        else:
            self.chars += stop - p
        if end < 0:
            return stop
        self.open = 0
        self.values += 1
        return end + 1

    def _object(self, raw: bytes, p: int) -> int:
        start, n = p, len(raw)
        while p < n:
            if self.in_string:
                end, self.escaped = _string_end(raw, p, self.escaped)
                if end < 0:
                    p = n
                    break
                self.in_string = False
                p = end + 1
                continue
            m = _STRUCT.search(raw, p)
            if m is None:
                p = n
                break
            c = raw[m.start()]
            p = m.end()
            if c == 34:              # "
                self.in_string, self.escaped = True, False
            elif c == 123:           # {
                self.depth += 1
            else:                    # }
                self.depth -= 1
                if self.depth == 0:
                    self.open = 0
                    self.values += 1
                    break
        self.chars += p - start
        return p

    @property
    def busy(self) -> bool:
        return self.open != 0


def output_of(raw: bytes) -> tuple[int, int]:
    """(text characters, media bytes) of the generated output in one whole event."""
    scan = OutputScan()
    scan.feed(raw)
    return scan.chars, scan.media


def count_markers(chunk: bytes, markers: tuple[bytes, ...]) -> int:
    n = 0
    for m in markers:
        n += chunk.count(m)
    return n


class DeliveredText(BodyTransform):
    """Observes a response stream (returns every chunk untouched) and estimates the output
    tokens it carried, at little cost per chunk: `bytes.count` of the adapter's output
    markers (every output event counts at least one token), the output characters read on a
    sample (the `SAMPLE` bytes after the first marker) and scaled to every later byte, and
    read exactly from each dense marker to where its first output value closes (media
    included). Every position is the stream's, so any chunking gives the same estimate. A
    full scan of every chunk would cost several times the skim."""

    SAMPLE = 1024

    def __init__(self, marker: bytes | None = b'"content"',
                 chars_per_token: float = CHARS_PER_TOKEN,
                 markers: tuple[bytes, ...] = (), dense: tuple[bytes, ...] = ()) -> None:
        # the legacy marker needs no count of its own when an output marker is part of it
        # (each of its occurrences holds one of that marker's)
        legacy = None if marker is None or any(m in marker for m in markers) else marker
        self.chars_per_token = chars_per_token
        #: every marker counted: (bytes, counts as output, counts as legacy, dense)
        self.table = tuple([(m, True, False, m in dense) for m in markers]
                           + [(m, False, False, True) for m in dense if m not in markers]
                           + ([(legacy, False, True, False)] if legacy is not None else []))
        self.longest = max((len(m) for m, _, _, _ in self.table), default=1)
        self.legacy = 0             # `marker` (the count before every output was counted)
        self.counted = 0            # `markers`
        self.size = 0
        self.tail = b""             # the stream's last `longest - 1` bytes
        self.start = 0 if not self.table else -1    # where the sample starts (-1: not yet)
        self.sampled = 0
        self.sample = OutputScan()
        self.sample_at = -1         # the stream position after the last sampled byte
        self.exact = OutputScan()   # from each dense marker to its first output value's end
        self.exact_bytes = 0
        self.until = -1             # while reading exactly: the position to stop at, at most
        self.legacy_sample = OutputScan(LEGACY_KEY)   # the first KiB, as read before

    @property
    def fragments(self) -> int:
        return max(self.legacy, self.counted)

    @property
    def sample_chars(self) -> int:
        return self.sample.chars

    @property
    def media(self) -> bool:
        """Generated media was delivered (its tokens cannot be sized)."""
        return self.sample.media > 0 or self.exact.media > 0

    def _hits(self, chunk: bytes) -> list[tuple[int, bytes]] | None:
        """Count the markers in `chunk` (and one split by its boundary with the bytes
        before). Returns None, or where each dense marker ends and, until the sample has
        started, where the first marker ends, as (-end - 1, marker), in `chunk`'s
        positions."""
        out: list[tuple[int, bytes]] | None = None
        tail = self.tail
        # (no marker holds a line break: after one, none can be split by this boundary)
        t = len(tail) if tail and tail[-1] != 10 else 0
        window = tail + chunk[:self.longest - 1] if t else b""
        first = -1
        lead = b""
        for m, output, legacy, dense in self.table:
            c = chunk.count(m)
            straddle = -1
            if t and m in window:
                i = window.find(m)
                while 0 <= i and i + len(m) <= t:
                    i = window.find(m, i + 1)
                if 0 <= i < t:
                    c += 1
                    straddle = i + len(m) - t
            if not c:
                continue
            if output:
                self.counted += c
            elif legacy:
                self.legacy += c
            if dense or self.start < 0:
                ends = [straddle] if straddle >= 0 else []
                i = chunk.find(m)
                while i >= 0:
                    ends.append(i + len(m))
                    i = chunk.find(m, i + 1) if dense else -1
                if self.start < 0 and (first < 0 or ends[0] < first):
                    first, lead = ends[0], m
                if dense:
                    if out is None:
                        out = []
                    out.extend((e, m) for e in ends)
        if first >= 0:
            if out is None:
                out = []
            out.append((-first - 1, lead))
        return out

    def feed(self, chunk: bytes) -> bytes:
        n = len(chunk)
        base = self.size
        hits = self._hits(chunk)
        keep = self.longest - 1
        if keep:
            self.tail = chunk[-keep:] if n >= keep else (self.tail + chunk)[-keep:]
        self.size += n
        if base < self.SAMPLE:
            self.legacy_sample.feed(chunk[:self.SAMPLE - base] if n > self.SAMPLE - base
                                    else chunk)
        if hits is None and self.until < 0 and (self.start < 0 or self.sampled >= self.SAMPLE):
            return chunk                        # the skim: nothing to read here
        if hits is None:
            hits = []
        elif self.start < 0 and hits[-1][0] < 0:
            e, m = hits.pop()
            self.start = base - e - 1
            self.sample.feed(m)                 # (its key, when the marker is one)
            self.sample_at = self.start
        hits.sort()
        p = 0
        h = 0
        while p < n:
            if self.until >= 0:                 # reading a dense event exactly
                # (on past `until` while a value is open: a generated image is one value)
                q = n if self.exact.busy else min(n, max(p, self.until - base))
                before = self.exact.values
                read = self.exact.feed(chunk[p:q] if p or q < n else chunk, stop=True)
                self.exact_bytes += read
                p += read
                if not self.exact.busy and (self.exact.values > before
                                            or base + p >= self.until):
                    self.until = -1             # its value closed, or none came
                continue
            while h < len(hits) and hits[h][0] < p:
                h += 1
            q = hits[h][0] if h < len(hits) else n
            self._skim(chunk, p, q, base)
            p = q
            if h < len(hits):
                e, m = hits[h]
                h += 1
                self.exact.tail = b""
                self.exact.feed(m, stop=True)   # (its key, when the marker is one)
                self.until = base + e + _DENSE_REACH
        return chunk

    def _skim(self, chunk: bytes, p: int, q: int, base: int) -> None:
        """Bytes p..q of `chunk` not read exactly: the sample's part of them is read."""
        if self.start < 0 or self.sampled >= self.SAMPLE:
            return
        a = max(p, self.start - base)
        b = min(q, a + self.SAMPLE - self.sampled)
        if b <= a:
            return
        if base + a != self.sample_at:
            self.sample.tail = b""
        self.sample.feed(chunk[a:b] if a or b < len(chunk) else chunk)
        self.sampled += b - a
        self.sample_at = base + b

    @property
    def tokens(self) -> int:
        head = self.start if self.start >= 0 else self.size
        skimmed = max(0, self.size - head - self.sampled - self.exact_bytes)
        chars = self.sample.chars + self.exact.chars
        if self.sampled:
            chars += math.ceil(self.sample.chars * skimmed / self.sampled)
        if self.size:
            chars = max(chars, math.ceil(
                self.legacy_sample.chars * self.size / min(self.size, self.SAMPLE)))
        text = max(self.fragments, math.ceil(chars / self.chars_per_token))
        media = self.sample.media + self.exact.media
        return text + math.ceil(media / MEDIA_BYTES_PER_TOKEN)
