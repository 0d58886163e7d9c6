"""The built-in detectors read a text folded to its ASCII look-alike (`guards.fold`): a card
number in fullwidth or Arabic-Indic digits, grouped by no-break spaces, an SSN with Unicode
hyphens, an address with a fullwidth at sign are masked where they stand, whole texts and
streams alike, for any chunking; custom patterns still read the text as written. (Each value
below went out in clear before folding.)"""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from extproc.guards.custom import RegexDetector
from extproc.guards.fold import fold, fold_char, foldable
from extproc.guards.scanner import Scanner, builtin
from extproc.guards.stream import GuardTriggered, StreamMasker
from tests.unit.test_guard_stream import CUTS, split, stream

FULLWIDTH = str.maketrans("0123456789@.-", "".join(chr(0xFF10 + i) for i in range(10))
                          + "\uff20\uff0e\uff0d")
ARABIC_INDIC = str.maketrans("0123456789", "".join(chr(0x0660 + i) for i in range(10)))
MATH_BOLD = str.maketrans("0123456789", "".join(chr(0x1D7CE + i) for i in range(10)))
CYRILLIC_A = "\u0430"
NBSP, HYPHEN, MINUS = "\u00a0", "\u2010", "\u2212"

SCANNER = Scanner(builtin())

# each: the text as a model or a client may write it, and how the guard must release it
MASKED = [
    ("card 4111 1111 1111 1111 ok".translate(FULLWIDTH), "card <CARD> ok"),
    ("card 4111111111111111 ok".translate(ARABIC_INDIC), "card <CARD> ok"),
    ("card 4111 1111 1111 1111 ok".translate(MATH_BOLD), "card <CARD> ok"),
    (f"card 4111{NBSP}1111{NBSP}1111{NBSP}1111 ok", "card <CARD> ok"),
    (f"ssn 123{HYPHEN}45{HYPHEN}6789 ok", "ssn <SSN> ok"),
    (f"ssn 123{MINUS}45{MINUS}6789 ok", "ssn <SSN> ok"),
    ("mail john.doe@example.com ok".translate(FULLWIDTH), "mail <EMAIL> ok"),
    ("mail john.doe\ufe6bexample.com ok", "mail <EMAIL> ok"),                    # small @
    ("call +1 415-555-0100 ok".translate(FULLWIDTH), "call <PHONE> ok"),
    ("ip 192.168.0.1 ok".translate(FULLWIDTH), "ip <IP> ok"),
    ("key \uff53\uff4b-proj-a1B2c3D4e5F6g7H8i9J0k1L2m3N4 ok", "key <SECRET> ok"),
    ("key \U0001d400KIAIOSFODNN7EXAMPLE ok", "key <SECRET> ok"),                # bold A
]


@pytest.mark.parametrize(("text", "masked"), MASKED)
def test_a_value_in_look_alike_characters_is_masked_where_it_stands(text: str,
                                                                    masked: str) -> None:
    assert SCANNER.mask(text) == masked


@pytest.mark.parametrize(("text", "masked"), MASKED)
def test_streamed_one_character_at_a_time_it_is_masked_the_same(text: str, masked: str) -> None:
    masker = StreamMasker(SCANNER)
    assert "".join(stream(masker, list(text))) == masked


@pytest.mark.parametrize(("text", "masked"), MASKED[:3])
def test_a_reject_guard_stops_at_it(text: str, masked: str) -> None:
    masker = StreamMasker(SCANNER, action="reject")
    released = ""
    with pytest.raises(GuardTriggered):
        for ch in text:
            released += masker.feed(ch)
        masker.finish()
    assert released == masked[:masked.index("<")]   # nothing of the value


# found by review: a look-alike beside a value folds to a character that glues it to a word
# (a Japanese full stop before a number, an en dash after an address): read as written too
GLUED = [
    ("\u8a73\u7d30\uff0e415-555-0100\u3078", "\u8a73\u7d30\uff0e<PHONE>\u3078"),
    ("\u30a2\u30c9\u30ec\u30b9\uff0e192.168.0.1\u3067\u3059",
     "\u30a2\u30c9\u30ec\u30b9\uff0e<IP>\u3067\u3059"),
    ("Write to john.doe@example.com\u2013or call", "Write to <EMAIL>\u2013or call"),
    ("Employee ID\u2013123-45-6789", "Employee ID\u2013<SSN>"),
    ("card\uff0e4111111111111111\uff41", "card\uff0e<CARD>\uff41"),
]


@pytest.mark.parametrize(("text", "masked"), GLUED)
def test_a_look_alike_beside_a_value_does_not_hide_it(text: str, masked: str) -> None:
    assert SCANNER.mask(text) == masked
    assert "".join(stream(StreamMasker(SCANNER), list(text))) == masked


def test_a_footnote_mark_after_a_number_is_no_digit_of_it() -> None:
    # superscripts, subscripts and circled digits are not folded: `4111...1111¹` is a card
    # with its footnote, not a 17-digit number
    assert fold("\u00b9\u2082\u2460") == "\u00b9\u2082\u2460"
    assert SCANNER.mask("card 4111111111111111\u00b9 ok") == "card <CARD>\u00b9 ok"


def test_custom_patterns_read_the_text_as_written() -> None:
    # a pattern written for Cyrillic text: folding the text (a Cyrillic a to a Latin one)
    # would break it
    word = "\u0441\u0435\u043a\u0440\u0435\u0442"     # "secret" in Russian
    custom = RegexDetector("codeword", "[\u0430-\u044f]{6}", "<CODEWORD>", 6)
    scanner = Scanner([custom, *builtin(["card"])])
    assert scanner.mask(f"the {word} and 4111 1111 1111 1111".translate(ARABIC_INDIC)) \
        == "the <CODEWORD> and <CARD>"


def test_prose_in_other_scripts_keeps_its_text() -> None:
    text = "Привет, мир. 日本語のテキスト。Ελληνικά κείμενα — 2024年"
    assert SCANNER.mask(text) == text
    # letters of other alphabets are not folded: Russian or Greek prose stays as it is, and
    # a domain spelled with a Cyrillic a is another domain
    assert fold("Привет Ελληνικά") == "Привет Ελληνικά"
    assert fold(f"gm{CYRILLIC_A}il") == f"gm{CYRILLIC_A}il"
    # nor what no built-in's match is made of: CJK punctuation, the em dash (prose has them
    # in every sentence, and folding them would change no match)
    assert fold("\u3002\uff0c\uff08\uff09\uff1a\u2014") == "\u3002\uff0c\uff08\uff09\uff1a\u2014"


def test_the_blocks_searched_hold_every_character_that_folds() -> None:
    every = {chr(cp) for cp in range(0x80, 0x110000) if not 0xD800 <= cp <= 0xDFFF}
    assert {ch: fold_char(ch) for ch in every if fold_char(ch) != ch} == foldable()


@settings(max_examples=300, deadline=None)
@given(st.characters(blacklist_categories=("Cs",)))
def test_one_character_for_one_ascii_or_itself(ch: str) -> None:
    folded = fold(ch)
    assert len(folded) == 1
    assert folded == ch or folded.isascii()
    assert fold_char(ch) == folded
    if ch.isascii():
        assert folded == ch
    if ch.isdecimal():
        assert folded == str(unicodedata.decimal(ch))


LOOKALIKE = st.sampled_from([
    "4111 1111 1111 1111".translate(FULLWIDTH), "٤١١١٤١١١", f"4111{NBSP}1111{NBSP}",
    "1111", f"123{HYPHEN}45{HYPHEN}6789", "john@ex".translate(FULLWIDTH),
    f"ample.c{CYRILLIC_A}m", "\uff53k-", "john.doe@example.com", "4111 1111 1111 1111", "@",
    NBSP, HYPHEN, "\uff20", " ", ".", "a", "\u00b9", "x",
])
TEXTS = st.lists(LOOKALIKE, max_size=16).map("".join)


@settings(max_examples=400, deadline=None)
@given(text=TEXTS, cuts=CUTS, per_char=st.booleans())
def test_any_chunking_masks_like_the_whole_text(text: str, cuts: list[int],
                                                per_char: bool) -> None:
    pieces = list(text) if per_char else split(text, cuts)
    masker = StreamMasker(SCANNER)
    assert "".join(stream(masker, pieces)) == SCANNER.mask(text)
    # and every character a built-in matches in the text as written or in its ASCII
    # look-alike is masked
    covered = {i for span in SCANNER.find(text) for i in range(span.start, span.end)}
    for reading in (text, fold(text)):
        for detector in SCANNER.detectors:
            for span in detector.find(reading):
                assert set(range(span.start, span.end)) <= covered, (reading, span)
