"""mrz_decode: MRZ lines from the recogniser's logits, under ICAO 9303's position kinds and check digits. The cases
are shared with the Go port (pkg/inference/testdata/mrz_decode_cases.json, written by
`python -m veid_ml.tools.mrz_decode_cases`, checked here to be current)."""

import json

import numpy as np
import pytest

from veid_ml import mrz, mrz_decode
from veid_ml.ocr_contract import ALPHABET
from veid_ml.tools import mrz_decode_cases

CASES = mrz_decode_cases.CASES


def read(name):
    case = CASES[name]
    logits = mrz_decode_cases.logits(case)
    texts = [mrz_decode_cases.greedy(q) for q in logits.q]
    return case["lines"], texts, mrz_decode.read_mrz(texts, None, logits)[0]


def test_the_specimens_are_valid():
    assert mrz.parse_mrz(CASES["clean TD1"]["lines"]).valid and mrz.parse_mrz(CASES["clean TD3"]["lines"]).valid


@pytest.mark.parametrize("name", ["clean TD1", "clean TD3"])
def test_a_clean_reading_is_read_as_it_is(name):
    printed, texts, lines = read(name)
    assert texts == printed and lines == printed


def test_a_character_the_greedy_reading_drops_is_found_where_the_width_needs_it():
    """The first 'I' under a hologram: the blank wins its step, the 'I' is the runner-up (Liechtenstein's card)."""
    printed, texts, lines = read("dropped first I")
    assert texts[0] == printed[0][1:] and lines == printed
    printed, texts, lines = read("dropped filler")
    assert len(texts[0]) == 43 and lines == printed


def test_a_look_alike_takes_the_runner_up_the_check_digit_needs():
    """'S' read as '5' in a document number (Japan's passport): the 'S' was 15% likely, the check digit fails."""
    printed, texts, lines = read("S read as 5")
    assert texts[1][1] == "5" and lines == printed
    printed, texts, lines = read("filler read as X")
    assert texts[0][20] == "X" and lines == printed


def test_positions_are_decoded_as_their_kind_and_the_width_as_the_format_says():
    printed, texts, lines = read("dropped and look-alike")
    assert texts[1][3] == "B" and len(texts[2]) == 29 and lines == printed


def test_a_confident_reading_with_a_failing_check_digit_stays_as_read():
    """A forged or misprinted MRZ is not 'repaired': only characters the recogniser was unsure of change."""
    printed, texts, lines = read("forged check digit")
    assert lines == printed and not mrz.parse_mrz(lines).valid
    printed, texts, lines = read("5 read as S, unlikely")  # the printed S under e^-3 of the 5 read
    assert lines[1][1] == "5" and not mrz.parse_mrz(lines).valid


def test_two_fixes_as_cheap_leave_the_reading_as_read():
    """D and N are as likely where '0' was read, and either makes every check digit hold: the logits cannot tell."""
    printed, texts, lines = read("two fixes as cheap")
    assert lines[0][5] == "0" and lines == texts


def test_one_change_at_most():
    """Two misread digits of one document number: both stay misread (no single runner-up mends the number)."""
    printed, texts, lines = read("two misreads in one number")
    assert (texts[1][2], texts[1][4]) == ("4", "6") and (lines[1][2], lines[1][4]) == ("4", "6")


def test_a_line_too_far_from_its_width_is_not_decoded():
    printed, texts, lines = read("line too short")
    assert lines == printed


def test_positions_hold_only_their_kind():
    allowed = mrz_decode.allowed_chars("AN")
    assert allowed[0][mrz.MRZ_CHARS.index("A")] and not allowed[0][mrz.MRZ_CHARS.index("5")]
    assert allowed[1][mrz.MRZ_CHARS.index("5")] and not allowed[1][mrz.MRZ_CHARS.index("S")]
    classes = mrz_decode.mrz_classes(ALPHABET)
    assert ALPHABET.index("t") + 1 in classes[mrz.MRZ_CHARS.index("T")]  # lower case reads as its capital


def test_best_path_emits_exactly_the_width_asked_for():
    q = mrz_decode_cases.logits(CASES["clean TD3"]).q[0]
    scores = mrz_decode.char_logits(q, mrz_decode.mrz_classes(ALPHABET))
    for width in (43, 44, 45):
        path = mrz_decode.best_path(scores, np.ones((width, len(mrz.MRZ_CHARS)), bool))
        assert len(path) == width and all(a[2] < b[1] for a, b in zip(path, path[1:]))
    with pytest.raises(ValueError, match="no path"):
        mrz_decode.best_path(scores, np.ones((200, len(mrz.MRZ_CHARS)), bool))


def test_the_cases_shared_with_go_are_current():
    assert json.loads(mrz_decode_cases.PATH.read_text()) == mrz_decode_cases.document()
