"""StreamMasker against the whole-text scanner: for any chunking the released text equals
scanner.mask(whole text), nothing of a value that ends up masked is released early, held text
stays bounded, prose flows through at once, and reject mode stops before the match."""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.guards.stream import ACTIONS, BATCH, LOOKAHEAD, GuardTriggered, StreamMasker

# ---- a small fake scanner with the detector protocol ---------------------------------------------


@dataclass(frozen=True)
class Span:
    start: int
    end: int
    detector: str


def luhn(value: str) -> bool:
    digits = [int(ch) for ch in value if ch.isdigit()]
    total = sum(d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2)
                for i, d in enumerate(reversed(digits)))
    return total % 10 == 0


class FakeDetector:
    """A regex detector; its tail is the trailing run of characters a match may contain."""

    def __init__(self, name: str, pattern: str, chars: str, starts: str, max_len: int,
                 valid: Callable[[str], bool] = lambda _: True) -> None:
        self.name, self.placeholder, self.max_len = name, f"[{name.upper()}]", max_len
        self.pattern, self.valid = re.compile(pattern, re.ASCII), valid
        self.chars, self.starts = frozenset(chars), frozenset(starts)

    def find(self, text: str) -> list[Span]:
        return [Span(m.start(), m.end(), self.name) for m in self.pattern.finditer(text)
                if self.valid(m.group())]

    def tail_start(self, text: str) -> int:
        i, lo = len(text), max(0, len(text) - self.max_len)
        while i > lo and text[i - 1] in self.chars:
            i -= 1
        return next((j for j in range(i, len(text)) if text[j] in self.starts), len(text))


class FakeScanner:
    def __init__(self, detectors: list[FakeDetector]) -> None:
        self.detectors = detectors
        self.max_len = max(d.max_len for d in detectors)

    def find(self, text: str) -> list[Span]:
        spans = sorted((s for d in self.detectors for s in d.find(text)),
                       key=lambda s: (s.start, s.start - s.end))
        out: list[Span] = []
        for s in spans:             # leftmost, then longest, wins
            if not out or s.start >= out[-1].end:
                out.append(s)
        return out

    def tail_start(self, text: str) -> int:
        return min(d.tail_start(text) for d in self.detectors)

    def mask(self, text: str, spans: list[Span] | None = None) -> str:
        marks = {d.name: d.placeholder for d in self.detectors}
        parts, at = [], 0
        for s in self.find(text) if spans is None else spans:
            parts += [text[at:s.start], marks[s.detector]]
            at = s.end
        return "".join(parts) + text[at:]


ALNUM = string.ascii_letters + string.digits
FAKE = FakeScanner([
    FakeDetector("email", r"(?<![\w.+-])[\w.+-]{1,20}@[A-Za-z0-9-]{1,15}"
                 r"(?:\.[A-Za-z0-9-]{1,10}){1,3}(?![\w-])",
                 ALNUM + "_.+-@", ALNUM + "_.+-", 20 + 1 + 15 + 3 * 11),
    FakeDetector("phone", r"(?<![\w+])(?:\+\d{1,2} )?\d{3}[ -]\d{3}[ -]\d{4}(?!\w)",
                 string.digits + " -+", string.digits + "+", 16),
    FakeDetector("card", r"(?<![\d-])\d{4}([ -]?)\d{4}\1\d{4}\1\d{1,4}(?!\d)",
                 string.digits + " -", string.digits, 19, valid=luhn),
])


def real_scanner(names: list[str] | None = None) -> object | None:
    """The project's scanner with built-in detectors (all by default), once it exists."""
    try:
        from extproc.guards.scanner import Scanner, builtin
    except ImportError:
        return None
    return Scanner(builtin(names))


REAL, REAL_EMAIL = real_scanner(), real_scanner(["email"])
_no_real = pytest.mark.skipif(REAL is None, reason="extproc.guards.scanner not there yet")
SCANNERS = [pytest.param(FAKE, id="fake"), pytest.param(REAL, id="real", marks=_no_real)]
TIGHT = [pytest.param(FAKE, id="fake"), pytest.param(REAL_EMAIL, id="email", marks=_no_real)]

# ---- helpers and strategies -------------------------------------------------------------------


def split(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts})
    return [text[a:b] for a, b in zip([0, *points], [*points, len(text)], strict=True)]


def stream(masker: StreamMasker, pieces: list[str]) -> list[str]:
    return [masker.feed(p) for p in pieces] + [masker.finish()]


FRAGMENTS = [
    "john.doe@example.com", "a@b.co", "x.y+z@mail.example.org", "bob@", "@", "john", ".", ".uk",
    "a@b", "415 555 0100", "+1 415-555-0100", "555 0100", "4111 1111 1111 1111",
    "4111 1111 1111 1112", "4111111111111111", "5500-0000-0000-0004", "1234 5678", "12", "0",
    "-", "+", "_", "hello", "world", "naïve", "日本語", "é", ",", "!", "?", "\n", "(", "'",
    "192.168.0.1", "123-45-6789", "(555) 123-4567", "GB82 WEST 1234 5698 7654 32", "::1",
    "sk-", "eyJ", "AKIA", "x",
]
SEPARATORS = ["", "", " ", " ", ", ", "\n", "."]
unicode_bits = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)
TEXTS = st.lists(st.tuples(st.one_of(st.sampled_from(FRAGMENTS), unicode_bits),
                           st.sampled_from(SEPARATORS)),
                 max_size=14).map(lambda parts: "".join(f + s for f, s in parts))
CUTS = st.lists(st.integers(0, 400), max_size=30)


# ---- the chunking property --------------------------------------------------------------------

@pytest.mark.parametrize("scanner", SCANNERS)
@settings(max_examples=500, deadline=None)
@given(text=TEXTS, cuts=CUTS, per_char=st.booleans())
def test_any_chunking_masks_like_the_whole_text(scanner, text: str, cuts: list[int],
                                                per_char: bool) -> None:
    pieces = list(text) if per_char else split(text, cuts)
    masker = StreamMasker(scanner)
    out = stream(masker, pieces)
    assert "".join(out) == scanner.mask(text)
    spans = scanner.find(text)
    assert masker.found == [s.detector for s in spans]
    assert masker.held == 0


@pytest.mark.parametrize("scanner", SCANNERS)
@settings(max_examples=300, deadline=None)
@given(text=TEXTS, cuts=CUTS)
def test_reject_stops_before_the_first_match(scanner, text: str, cuts: list[int]) -> None:
    masker = StreamMasker(scanner, action="reject")
    released: list[str] = []
    spans = scanner.find(text)
    try:
        for piece in split(text, cuts):
            released.append(masker.feed(piece))
        released.append(masker.finish())
    except GuardTriggered as exc:
        assert spans and exc.detector == spans[0].detector
        assert text[:spans[0].start].startswith("".join(released))
        assert masker.found == [exc.detector]
        with pytest.raises(GuardTriggered):
            masker.feed("more")
    else:
        assert not spans and "".join(released) == text


# ---- examples ---------------------------------------------------------------------------------

EXAMPLE = "write to john.doe@example.com please"


@pytest.mark.parametrize("scanner", SCANNERS)
def test_no_prefix_of_a_masked_value_is_released(scanner) -> None:
    masker = StreamMasker(scanner)
    out = stream(masker, [EXAMPLE[i:i + 3] for i in range(0, len(EXAMPLE), 3)])
    assert "".join(out) == scanner.mask(EXAMPLE) != EXAMPLE
    for piece in out:
        assert not any(part in piece for part in ("john", "@exa", "mple.com"))
    assert masker.found == ["email"]


def test_masks_a_value_split_one_character_at_a_time() -> None:
    text = "card 4111 1111 1111 1111, mail a@b.co.uk or call +1 415-555-0100."
    masker = StreamMasker(FAKE)
    assert "".join(stream(masker, list(text))) == \
        "card [CARD], mail [EMAIL] or call [PHONE]."
    assert masker.found == ["card", "email", "phone"]


def test_a_match_at_the_end_waits_for_what_follows() -> None:
    masker = StreamMasker(FAKE)
    assert masker.feed("mail a@b.co") == "mail "          # could still become a@b.com
    assert masker.feed("m") == ""
    assert masker.feed(" now!") == "[EMAIL] now!"
    assert masker.finish() == ""


@pytest.mark.parametrize("scanner", SCANNERS)
def test_prose_is_released_at_once(scanner) -> None:
    masker = StreamMasker(scanner)
    for piece in ["Hello there, ", "how are you? ", "Fine!\n", "naïve 日本語. ", "(yes) "]:
        assert masker.feed(piece) == piece
        assert masker.held == 0
    assert masker.finish() == ""


ADVERSARIAL = st.lists(st.text("ab.@-_+1 ", min_size=1, max_size=9), max_size=300)


def most_held(scanner, batch: int) -> int:
    """The bound on held text: `max_len + LOOKAHEAD` after each look at it; a masker that
    batches long held text (from `batch` characters) adds less than an eighth between looks."""
    bound = scanner.max_len + LOOKAHEAD
    return bound if batch > bound else bound + bound // 8


@pytest.mark.parametrize("batch", [BATCH, 10**9])
@pytest.mark.parametrize("scanner", TIGHT)
@settings(max_examples=100, deadline=None)
@given(pieces=ADVERSARIAL)
def test_held_text_stays_bounded(scanner, batch: int, pieces: list[str]) -> None:
    masker = StreamMasker(scanner, batch=batch)
    for piece in pieces:
        masker.feed(piece)
        assert masker.held <= most_held(scanner, batch)
    masker.finish()


@pytest.mark.parametrize("batch", [BATCH, 10**9])
@pytest.mark.parametrize("scanner", TIGHT)
def test_an_endless_email_like_run_is_held_within_the_bound(scanner, batch: int) -> None:
    masker = StreamMasker(scanner, batch=batch)
    released = [masker.feed("ab.c_d-") for _ in range(2000)]
    assert max(len(r) for r in released) > 0
    assert masker.held <= most_held(scanner, batch)
    assert "".join(released) + masker.finish() == "ab.c_d-" * 2000


def test_a_tail_that_holds_too_much_is_cut_to_the_bound_never_inside_a_match() -> None:
    key = FakeDetector("key", r"\bkey\d\b", "", "", 5)
    key.tail_start = lambda text: 0        # breaks the contract: would hold everything
    scanner = FakeScanner([key])
    text = "some key1 and key22 or key3, done " * 3
    masker = StreamMasker(scanner)
    out = []
    for ch in text:
        out.append(masker.feed(ch))
        assert masker.held <= scanner.max_len + LOOKAHEAD
    assert "".join(out) + masker.finish() == scanner.mask(text)
    assert masker.found == ["key", "key"] * 3


def test_reject_releases_the_text_before_the_match_only() -> None:
    masker = StreamMasker(FAKE, action="reject")
    released = []
    with pytest.raises(GuardTriggered) as exc:
        for i in range(0, len(EXAMPLE), 3):
            released.append(masker.feed(EXAMPLE[i:i + 3]))
    assert exc.value.detector == "email"
    assert "".join(released) == "write to "
    masker = StreamMasker(FAKE, action="reject")
    assert masker.feed("mail a@b.com") == "mail "
    with pytest.raises(GuardTriggered):
        masker.finish()


def test_feed_after_finish_is_an_error() -> None:
    masker = StreamMasker(FAKE)
    masker.finish()
    with pytest.raises(RuntimeError):
        masker.feed("x")
    with pytest.raises(ValueError):
        StreamMasker(FAKE, action="log")


PII = real_scanner(["email", "phone", "card", "us_ssn", "iban"])


@pytest.mark.parametrize("scanner", [pytest.param(REAL, id="real", marks=_no_real),
                                     pytest.param(PII, id="pii", marks=_no_real)])
@settings(max_examples=300, deadline=None)
@given(text=TEXTS, cuts=CUTS, per_char=st.booleans(), action=st.sampled_from(ACTIONS),
       context=st.sampled_from([64, 64, 3, 0]))
def test_the_prefiltered_path_releases_what_the_full_scan_releases(
        scanner, text: str, cuts: list[int], per_char: bool, action: str, context: int) -> None:
    """Feed for feed, the masker that skips the scan when the scanner's `may_match` rules a
    match out gives what scanning every feed gives."""
    pieces = list(text) if per_char else split(text, cuts)
    fast = StreamMasker(scanner, action=action, context=context)
    full = StreamMasker(scanner, action=action, context=context)
    full._may_match = None
    for piece in [*pieces, None]:
        outs: list[tuple[str, str, int]] = []
        for masker in (fast, full):
            try:
                out = masker.feed(piece) if piece is not None else masker.finish()
                outs.append(("released", out, masker.held))
            except GuardTriggered as exc:
                outs.append(("rejected", exc.detector, masker.held))
        assert outs[0] == outs[1]
        if outs[0][0] == "rejected":
            break
    assert fast.found == full.found


# ---- card numbers as people paste them, and matches that overlap ------------------------------

def luhn_digit(body: str) -> str:
    """The check digit that makes body + it pass Luhn."""
    return next(d for d in "0123456789" if luhn(body + d))


PAN_PREFIXES = ["", "card ", "Card No.", "pay with: ", "(", "+1 ", "call 555 123 ",
                "call 555-123-4567 ", "+44 20 7946 0958 ", "tel +33 1 23 45 67 89 ", "1234 ",
                "ref 12 ", "exp 12/27 cvc 123 ", "mail a@b.co ", "ssn 123-45-6789 "]


@st.composite
def pasted_cards(draw: st.DrawFn) -> tuple[str, int, int]:
    """A text with a valid card number (13-19 digits, laid out as cards are) in it, followed by
    random digits, spaces and slashes; and where the card number is."""
    n = draw(st.integers(13, 19))
    # a card number starts with 2-9, or with 1 as UATP's 15 digits (`validators.luhn`)
    body = draw(st.sampled_from("123456789" if n == 15 else "23456789")) + "".join(
        draw(st.lists(st.sampled_from("0123456789"), min_size=n - 2, max_size=n - 2)))
    pan = body + luhn_digit(body)
    if len(set(pan)) == 1:
        pan = "4" + pan[1:-1] + luhn_digit("4" + pan[1:-1])
    layouts = [[pan], [pan[:4], pan[4:8], pan[8:12], pan[12:]]]
    if n in (14, 15):
        layouts.append([pan[:4], pan[4:10], pan[10:]])
    if n == 19:
        layouts.append([pan[:4], pan[4:8], pan[8:12], pan[12:16], pan[16:]])
    card = draw(st.sampled_from(" -")).join(draw(st.sampled_from(layouts)))
    prefix = draw(st.one_of(st.sampled_from(PAN_PREFIXES),
                            st.text("0123456789 ", max_size=10).map(lambda t: t + " ")))
    suffix = draw(st.one_of(st.just(""), st.tuples(st.sampled_from([" ", "/", ", ", " / "]),
                                                   st.text("0123456789 /", max_size=14))
                            .map("".join)))
    tail = draw(st.sampled_from(["", " thanks", "\n", ". Call +1 415 555 0100", " 4567 a"]))
    return prefix + card + suffix + tail, len(prefix), len(prefix) + len(card)


@pytest.mark.skipif(PII is None, reason="extproc.guards.scanner not there yet")
@settings(max_examples=400, deadline=None)
@given(case=pasted_cards(), cuts=CUTS, per_char=st.booleans())
def test_no_digit_of_a_pasted_card_number_goes_out(case: tuple[str, int, int], cuts: list[int],
                                                   per_char: bool) -> None:
    text, start, end = case
    covered = {i for s in PII.find(text) for i in range(s.start, s.end)}
    assert all(i in covered for i in range(start, end) if text[i].isdigit()), text
    masker = StreamMasker(PII)
    out = "".join(stream(masker, list(text) if per_char else split(text, cuts)))
    assert out == PII.mask(text)
    assert text[start:end] not in out


OVERLAPS = ["tel +33 1 23 45 67 89 4111 1111 1111 1111 12/27 ok",
            "call 555 123 4111 1111 1111 1111, +1 4111 1111 1111 1111 12/27",
            "ref 1234 4111 1111 1111 1111 then +1 415 555 0100 4111 1111 1111 1111"]


@pytest.mark.skipif(PII is None, reason="extproc.guards.scanner not there yet")
@pytest.mark.parametrize("text", OVERLAPS)
@pytest.mark.parametrize("context", [64, 0])
def test_overlapping_matches_go_out_masked_together_for_every_split(text: str,
                                                                    context: int) -> None:
    whole = PII.mask(text)
    assert "1111" not in whole
    for pieces in [list(text), *([text[:k], text[k:]] for k in range(len(text) + 1))]:
        masker = StreamMasker(PII, context=context)
        assert "".join(stream(masker, pieces)) == whole, pieces
        assert masker.found == [s.detector for s in PII.find(text)]


def test_the_rest_of_an_overlapping_match_is_masked_after_a_cut_at_the_bound() -> None:
    from extproc.guards.custom import RegexDetector
    from extproc.guards.scanner import Scanner

    head = RegexDetector("head", r"abc", "<H>", 3)
    head.tail_start = lambda text: 0       # breaks the contract: would hold everything
    held_all = Scanner([head, RegexDetector("rest", r"cde", "<R>", 3)])
    # abc + cdee held together (the rest of a match goes out with it) pass the bound
    chained = Scanner([RegexDetector("head", r"abc", "<H>", 3),
                       RegexDetector("rest", r"cde+", "<R>", 6)])
    # a chain: what runs on from a match cut short by the context is masked from the cut on
    chain3 = Scanner([head, RegexDetector("mid", r"cdef", "<M>", 4),
                      RegexDetector("rest", r"efgh", "<R>", 4)])
    for scanner, text, masked in (
            (held_all, "xx abcde yy abcde", "xx <H><R> yy <H><R>"),
            (chained, "xx abcdee yy abcdee", "xx <H><R> yy <H><R>"),
            (chain3, "xx abcdefgh yy abcdefgh", "xx <H><M><R> yy <H><M><R>")):
        assert scanner.mask(text) == masked
        for context in (0, 1, 2, 64):
            masker = StreamMasker(scanner, context=context)
            out = []
            for ch in text:
                out.append(masker.feed(ch))
                assert masker.held <= scanner.max_len + LOOKAHEAD
            assert "".join(out) + masker.finish() == scanner.mask(text), context


NAMES_BEYOND_ASCII = ["mail müller.hans@example.de now", "o'brien@example.com, thanks",
                      "Ιωάννης@example.gr", "x иван.петров@example.ru y",
                      "请联系jörg@example.com谢谢", "café.owner@example.fr."]


@pytest.mark.skipif(PII is None, reason="extproc.guards.scanner not there yet")
@pytest.mark.parametrize("text", NAMES_BEYOND_ASCII)
def test_an_address_whose_name_goes_beyond_ascii_is_masked_whole_for_every_split(
        text: str) -> None:
    """Found by the masker audit: `müller@...` went out as `mü<EMAIL>` and `o'brien@...`
    as `o'<EMAIL>`, streamed or whole. The local part now takes the apostrophe and Latin,
    Greek and Cyrillic letters, and the streaming masker holds them as it holds ASCII."""
    whole = PII.mask(text)
    name = text[:text.index("@")].split()[-1].removeprefix("请联系")
    assert name not in whole and "<EMAIL>" in whole, whole
    for pieces in [list(text), *([text[:k], text[k:]] for k in range(len(text) + 1))]:
        masker = StreamMasker(PII)
        out = stream(masker, pieces)
        assert "".join(out) == whole, pieces
        assert not any(name[:2] in chunk for chunk in out if "<EMAIL>" not in chunk), out
