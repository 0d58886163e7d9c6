"""Invisible characters inside a value do not hide it from the built-in detectors
(`guards.invisible`): a zero-width space, joiner, soft hyphen, word joiner, byte order mark,
variation selector, bidirectional control or tag character between its characters, nor a
value spelled in tag characters, whole texts and streams alike, for any chunking; the text
around it, emoji sequences and Persian non-joiners included, goes out unchanged. (Each value
below went out in clear before.)"""

from __future__ import annotations

import sys
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.guards.custom import RegexDetector
from extproc.guards.event_stream import refusal_message
from extproc.guards.invisible import (
    HIDDEN_MOST,
    INVISIBLE,
    RANGES,
    TOO_MANY_HIDDEN,
    Compacted,
    count,
    has,
    tagged,
    trailing,
)
from extproc.guards.scanner import Scanner, builtin
from extproc.guards.stream import BATCH, GuardTriggered, StreamMasker
from tests.unit.test_guard_stream import CUTS, split, stream

SCANNER = Scanner(builtin())
#: short matches only: its masker's bound (the longest match) is passed by the invisible
#: characters inside a value, which it holds too
SMALL = Scanner(builtin(["aws_access_key", "card", "us_ssn"]))
#: built-ins beside a custom pattern that counts invisible characters in its matches
MIXED = Scanner([*builtin(["email", "phone", "card"]),
                 RegexDetector("kz", r"K[^Z]{0,80}Z", "<KZ>", max_len=82)])
SCANNERS = [SCANNER, SMALL, MIXED]
IDS = ["all", "small", "mixed"]
ZWSP, ZWNJ, ZWJ, SHY, WJ, BOM, VS16, RLO, PDF = ("\u200b", "\u200c", "\u200d", "\u00ad",
                                                "\u2060", "\ufeff", "\ufe0f", "\u202e",
                                                "\u202c")
TAG_SPACE = "\U000e0020"


def spread(value: str, sep: str) -> str:
    """`value` with `sep` between every two of its characters."""
    return sep.join(value)


def run(masker: StreamMasker, pieces: list[str]) -> tuple[str, str | None]:
    """What `masker` releases fed `pieces` and finished, and what refused the stream (the
    detector a `GuardTriggered` names) or None."""
    released: list[str] = []
    try:
        for piece in pieces:
            released.append(masker.feed(piece))
        released.append(masker.finish())
    except GuardTriggered as hit:
        return "".join(released), hit.detector
    return "".join(released), None


def tags(value: str) -> str:
    """`value` spelled in tag characters: invisible, and read by a model as the ASCII."""
    return "".join(chr(0xE0000 + ord(ch)) for ch in value)


MASKED = [
    (f"mail john{ZWSP}.doe@example.com ok", "mail <EMAIL> ok"),
    (f"mail {spread('john.doe@example.com', ZWNJ)} ok", "mail <EMAIL> ok"),
    (f"card 4111{ZWSP}1111{ZWSP}1111{ZWSP}1111 ok", "card <CARD> ok"),
    (f"card {spread('4111111111111111', SHY)} ok", "card <CARD> ok"),
    (f"ssn 123-45{WJ}-6789 ok", "ssn <SSN> ok"),
    (f"key {spread('AKIAIOSFODNN7EXAMPLE', ZWJ)} ok", "key <SECRET> ok"),
    (f"key sk-proj-a1B2c3D4e5F6{BOM}g7H8i9J0k1L2m3N4 ok", "key <SECRET> ok"),
    (f"key ghp_{spread('a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8', VS16)} ok", "key <SECRET> ok"),
    (f"call +1 415-555{TAG_SPACE}-0100 ok", "call <PHONE> ok"),
    (f"ip 192.168{ZWSP * 3}.0.1 ok", "ip <IP> ok"),
    (f"iban GB82{RLO}WEST12345698765432{PDF} ok", f"iban <IBAN>{PDF} ok"),
    # in look-alike characters too (fullwidth digits and at sign, `fold`)
    (f"card \uff14\uff11\uff11\uff11{ZWSP}\uff11\uff11\uff11\uff11{ZWSP}"
     f"\uff11\uff11\uff11\uff11{ZWSP}\uff11\uff11\uff11\uff11 ok", "card <CARD> ok"),
    # spelled in tag characters ("ASCII smuggling"), beside visible text or glued to it
    (f"Hello {tags('AKIAIOSFODNN7EXAMPLE')} ok", "Hello <SECRET> ok"),
    (f"Hi{tags('mail john.doe@example.com')}!", f"Hi{tags('mail ')}<EMAIL>!"),
    (f"a{tags('4111 1111 1111 1111')}b", "a<CARD>b"),
    # found by review: another invisible character inside the spelled value
    (f"key {tags('AKIA')}{ZWSP}{tags('IOSFODNN7EXAMPLE')} ok", "key <SECRET> ok"),
    (f"{tags('john.doe')}{ZWSP}{VS16}\U000e0001{tags('@example.com')}", "<EMAIL>"),
    # found by review: a look-alike beside it glues the value in the fold, and the invisible
    # character inside breaks it as written; read as written without them
    (f"write to john.doe{ZWSP}@example.com\u2013 thanks", "write to <EMAIL>\u2013 thanks"),
    (f"ssn \u2013123-45{ZWSP}-6789 ok", "ssn \u2013<SSN> ok"),
    (f"key \uff0dsk-proj-a1B2c3D4e5F6{ZWSP}g7H8i9J0k1L2m3N4 ok", "key \uff0d<SECRET> ok"),
    (f"card \uff0b4111{ZWSP} 1111 1111 1111 ok", "card \uff0b<CARD> ok"),
    (f"ip \uff0e192{ZWSP}.168.0.1 ok", "ip \uff0e<IP> ok"),
    (f"mail john{ZWSP}.doe@example.com\u2013 ok", "mail <EMAIL>\u2013 ok"),
    # found by review: Braille's blank, no invisible character but drawn as a space
    ("card 4111\u28001111\u28001111\u28001111 ok", "card <CARD> ok"),
    ("call +1\u2800415\u2800555\u28000100 ok", "call <PHONE> ok"),
    # an invisible character beside a value, not inside it, stays where it is
    (f"mail {ZWSP}john@example.com{ZWSP} ok", f"mail {ZWSP}<EMAIL>{ZWSP} ok"),
    # one that glues a value to a word taken out is still a boundary as written
    (f"card{ZWSP}4111111111111111 ok", f"card{ZWSP}<CARD> ok"),
]


@pytest.mark.parametrize(("text", "masked"), MASKED)
def test_a_value_with_invisible_characters_inside_is_masked_whole(text: str,
                                                                  masked: str) -> None:
    assert SCANNER.mask(text) == masked


@pytest.mark.parametrize(("text", "masked"), MASKED)
def test_streamed_one_character_at_a_time_it_is_masked_the_same(text: str, masked: str) -> None:
    assert "".join(stream(StreamMasker(SCANNER), list(text))) == masked


@pytest.mark.parametrize(("text", "masked"), MASKED[:8])
def test_a_reject_guard_stops_before_any_of_it(text: str, masked: str) -> None:
    masker = StreamMasker(SCANNER, action="reject")
    released = ""
    with pytest.raises(GuardTriggered):
        for ch in text:
            released += masker.feed(ch)
        masker.finish()
    assert released == masked[:masked.index("<")]


UNCHANGED = [
    "a family \U0001f468\u200d\U0001f469\u200d\U0001f467 and a heart \u2764\ufe0f",
    "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645 \u0628\u0631\u0648\u0645",  # Persian ZWNJ
    f"shy{SHY}phen{ZWSP}ation {RLO}right to left{PDF} and 12{ZWSP}34 or 2024{ZWSP}12",
    f"order 4111{ZWSP}1111{ZWSP}1111{ZWSP}1112 (Luhn fails)",
    f"a flag \U0001f3f4{tags('gbsct')}\U000e007f and {tags('plain words')} in tags",
]


@pytest.mark.parametrize("text", UNCHANGED)
def test_text_without_a_value_goes_out_as_it_came(text: str) -> None:
    assert SCANNER.mask(text) == text
    assert "".join(stream(StreamMasker(SCANNER), list(text))) == text


def test_custom_patterns_read_the_text_as_written() -> None:
    scanner = Scanner([RegexDetector("code", r"PROJECT-X", "<CODE>", max_len=16)])
    assert scanner.mask(f"PROJECT{ZWSP}-X and PROJECT-X") == f"PROJECT{ZWSP}-X and <CODE>"


def test_the_ranges_are_unicodes_default_ignorable_code_points() -> None:
    # each range is the format, nonspacing-mark, filler or reserved characters it names
    categories = {unicodedata.category(chr(cp)) for lo, hi in RANGES
                  for cp in range(lo, hi + 1)}
    assert categories <= {"Cf", "Mn", "Lo", "Cn"}
    # every format character is in them, but those that show something (number signs that
    # carry digits, hieroglyph and annotation controls, shown as a mark when not joined)
    shown = {cp for cp in range(sys.maxunicode + 1)
             if unicodedata.category(chr(cp)) == "Cf" and INVISIBLE.match(chr(cp)) is None}
    assert {cp for cp in shown
            if not (0x600 <= cp <= 0x605 or 0x13430 <= cp <= 0x1345F
                    or 0xFFF9 <= cp <= 0xFFFB or 0x1BCA0 <= cp <= 0x1BCA3)} \
        <= {0x06DD, 0x070F, 0x0890, 0x0891, 0x08E2, 0x110BD, 0x110CD}
    for ch in (ZWSP, ZWNJ, ZWJ, SHY, WJ, BOM, VS16, RLO, PDF, TAG_SPACE, "\u034f", "\u3164",
               "\U000e0100"):
        assert has(f"a{ch}b")
    assert not has("plain ascii") and not has("日本語 é \u00a0")


@given(st.text(st.sampled_from(["a", "1", "é", ZWSP, ZWJ, TAG_SPACE]), max_size=24))
def test_compacted_places_map_back(text: str) -> None:
    hidden = Compacted.of(text)
    visible = [i for i, ch in enumerate(text) if not has(ch)]
    if hidden is None:
        assert len(visible) == len(text)
        return
    assert hidden.text == "".join(text[i] for i in visible)
    assert [hidden.place(j) for j in range(len(hidden.text))] == visible
    for i in range(len(text) + 1):
        assert hidden.visible(i) == sum(1 for v in visible if v < i)
    assert count(text) == len(text) - len(visible)
    assert trailing(text) == len(text) - len(text.rstrip(f"{ZWSP}{ZWJ}{TAG_SPACE}"))


INVISIBLES = st.sampled_from([ZWSP, ZWNJ, ZWJ, SHY, WJ, BOM, VS16, TAG_SPACE])
FRAGMENTS = st.sampled_from([
    "john.doe@example.com", "a@b.co", "4111 1111 1111 1111", "4111111111111111", "1111",
    "123-45-6789", "+1 415-555-0100", "192.168.0.1", "AKIAIOSFODNN7EXAMPLE", "AKIA",
    "sk-proj-a1B2c3D4e5F6g7H8i9J0k1L2m3N4", "eyJ", "@", ".", "-", " ", "x", "card", "é",
    "\U0001f468", "\u0645\u06cc", tags("john.doe@example.com"), tags("AKIAIOSFODNN7EXAMPLE"),
    tags("4111 1111 1111 1111"), tags("AKIA"), tags("@"), tags(" x"),
    "\u2013", "\uff0e", "\uff0b", "\uff0d", "\uff14\uff11\uff11\uff11", "K", "Z~",
])


@st.composite
def hidden_texts(draw: st.DrawFn, runs: tuple[int, ...] = (1, 2, 13)) -> str:
    """Fragments, each possibly cut by runs of invisible characters at a few places."""
    parts: list[str] = []
    for fragment in draw(st.lists(FRAGMENTS, max_size=10)):
        cuts = sorted(draw(st.lists(st.integers(0, len(fragment)), max_size=3)))
        pos = 0
        for cut in cuts:
            parts.append(fragment[pos:cut] + draw(INVISIBLES) * draw(st.sampled_from(runs)))
            pos = cut
        parts.append(fragment[pos:])
    return "".join(parts)


@pytest.mark.parametrize("scanner", SCANNERS, ids=IDS)
@settings(max_examples=600, deadline=None)
@given(text=hidden_texts(), cuts=CUTS, per_char=st.booleans())
def test_any_chunking_masks_like_the_whole_text(scanner: Scanner, text: str, cuts: list[int],
                                                per_char: bool) -> None:
    pieces = list(text) if per_char else split(text, cuts)
    masker = StreamMasker(scanner)
    assert "".join(stream(masker, pieces)) == scanner.mask(text)
    assert masker.held == 0
    # every visible character a built-in matches with the invisible ones taken out is masked
    covered = {i for span in scanner.find(text) for i in range(span.start, span.end)}
    hidden = Compacted.of(text)
    if hidden is not None:
        for detector in scanner.detectors:
            if isinstance(detector, RegexDetector):
                continue
            for span in detector.find(hidden.text):
                a, b = hidden.span(span.start, span.end)
                assert set(range(a, b)) <= covered, (text, span)
    # and every one it matches in what the text spells in tag characters
    spelled = tagged(text)
    if spelled is not None:
        for detector in scanner.detectors:
            if isinstance(detector, RegexDetector):
                continue   # (custom patterns read the text as written)
            for span in detector.find(spelled.text):
                a, b = spelled.span(span.start, span.end)
                assert set(range(a, b)) <= covered, (text, span)


@pytest.mark.parametrize("scanner", SCANNERS, ids=IDS)
@settings(max_examples=300, deadline=None)
@given(text=hidden_texts((1, 70, 300)), cuts=st.lists(st.integers(0, 4000), max_size=30))
def test_long_runs_of_them_stream_like_the_whole_text(scanner: Scanner, text: str,
                                                      cuts: list[int]) -> None:
    # more invisible characters than the left context and the bound hold as written
    released, refused = run(StreamMasker(scanner), split(text, cuts))
    if refused is not None:
        # (found by hypothesis: addresses glued by runs of them, held past the bound with
        # more than HIDDEN_MOST of them) refused, nothing released but what the whole
        # text releases
        assert refused == TOO_MANY_HIDDEN and count(text) > HIDDEN_MOST
        assert scanner.mask(text).startswith(released)
    else:
        assert released == scanner.mask(text)


@settings(max_examples=300, deadline=None)
@given(text=hidden_texts(), cuts=CUTS)
def test_reject_stops_before_the_first_match(text: str, cuts: list[int]) -> None:
    spans = SCANNER.find(text)
    released, refused = run(StreamMasker(SCANNER, action="reject"), split(text, cuts))
    if refused is not None:
        assert spans and refused == spans[0].detector
        assert text[:spans[0].start].startswith(released)
    else:
        assert not spans and released == text


@pytest.mark.parametrize("scanner", [SCANNER, SMALL], ids=["all", "small"])
def test_a_key_spread_over_thousands_of_invisible_characters_is_masked_whole(
        scanner: Scanner) -> None:
    key = "AKIAIOSFODNN7EXAMPLE"
    text = "key " + key[:8] + ZWSP * 3000 + spread(key[8:], ZWSP * 9) + " ok"
    masker = StreamMasker(scanner)
    out = [masker.feed(text[i:i + 7]) for i in range(0, len(text), 7)] + [masker.finish()]
    assert "".join(out) == scanner.mask(text) == "key <SECRET> ok"
    # nothing of the key went out before its end arrived
    assert all("AKIA" not in piece for piece in out)


def test_past_the_most_invisible_characters_held_the_stream_is_refused() -> None:
    masker = StreamMasker(SMALL)
    released = masker.feed("key AKIAIOSF")
    with pytest.raises(GuardTriggered) as hit:
        for _ in range(2 * HIDDEN_MOST // BATCH):   # (looked at again as it grows)
            released += masker.feed(ZWSP * BATCH)
    assert hit.value.detector == TOO_MANY_HIDDEN
    assert "AKIA" not in released
    with pytest.raises(GuardTriggered):
        masker.feed("ODNN7EXAMPLE")
    assert "invisible characters" in refusal_message(TOO_MANY_HIDDEN)


def test_invisible_characters_in_prose_are_not_held() -> None:
    masker = StreamMasker(SCANNER)
    prose = f"a{ZWSP}b c{ZWJ}d " * 2000
    out = "".join(masker.feed(prose[i:i + 5]) for i in range(0, len(prose), 5))
    assert masker.held < 16
    assert out + masker.finish() == prose


def test_a_stream_dense_with_them_keeps_a_short_left_context() -> None:
    # found by review: the context reached back over thousands of them, read again with
    # every piece; each run is kept as one character, which every reading reads the same
    masker = StreamMasker(SCANNER)
    text = (" " + ZWSP * 64 + tags("ab") + ZWJ * 30) * 300 + "mail john.doe@example.com ok"
    longest = 0
    out = []
    for i in range(0, len(text), 4):
        out.append(masker.feed(text[i:i + 4]))
        longest = max(longest, len(masker._left))
    out.append(masker.finish())
    assert "".join(out) == SCANNER.mask(text)
    assert longest <= 6 * masker.context


@pytest.mark.parametrize("scanner", [SCANNER, SMALL], ids=["all", "small"])
@pytest.mark.parametrize("size", [1, 50, 6000])
def test_thousands_of_them_before_a_value_stream_like_the_whole_text(scanner: Scanner,
                                                                      size: int) -> None:
    # found by review: the left context reached back over at most 4096 of them, so the
    # word the whole text glues to the value was cut off, and the stream masked more
    for text in ("x" + ZWSP * 5000 + "4111" + ZWSP + "111111111111 ok",
                 # found by hypothesis: the tag before the run glues the key in the tag
                 # reading, and was cut with the run
                 "a@b.co " * 12 + tags(" x") + ZWSP * 70 + tags("AKIAIOSFODNN7EXAMPLE"),
                 "x" + ZWSP * 5000 + "4111111111111111 ok",
                 "AKIA" + tags("q") * 3000 + "IOSFODNN7EXAMPLE ok"):   # (held: < HIDDEN_MOST)
        pieces = [text[i:i + size] for i in range(0, len(text), size)]
        assert "".join(stream(StreamMasker(scanner), pieces)) == scanner.mask(text)


# found by review: with a custom pattern in the scanner the left context is kept as it came
# (cut to one character, a run too long for `K[^Z]{0,80}Z` became a made-up match in the
# context that hid the real one after it, or ran into a span)
CUSTOM_CASES = [
    ("K" + ZWSP * 100 + "~" * 54, "K~~~~~Z tail"),
    (" K" + ZWSP * 100 + "b" * 42, "@+1 4111 1111 1111 1111.Zcom end"),
]


@pytest.mark.parametrize(("head", "rest"), CUSTOM_CASES)
@pytest.mark.parametrize("action", ["mask", "reject"])
def test_a_custom_pattern_reads_the_context_as_it_came(head: str, rest: str,
                                                       action: str) -> None:
    text = head + rest
    whole = MIXED.find(text)
    for pieces in ([head, rest], list(text)):
        released, refused = run(StreamMasker(MIXED, action=action), pieces)
        if refused is not None:
            assert action == "reject" and refused == whole[0].detector
            assert text[:whole[0].start].startswith(released)
        else:
            assert action == "mask" and released == MIXED.mask(text)


def test_the_trailing_run_is_found_from_the_end() -> None:
    # found by review: searched for from the start, every place in a run before the end was
    # tried (quadratic in the run); only what ends the text counts
    assert trailing(ZWSP * 5000 + "x" + ZWJ * 3) == 3
    assert trailing(ZWSP * 5000 + "x") == 0
    assert trailing(tags("ab")) == 2 and trailing("") == 0
