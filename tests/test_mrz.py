"""ICAO 9303 MRZ: check digits, building, parsing, and real specimen MRZs from the spec."""

import json
from pathlib import Path

import pytest

from veid_ml.mrz import (BUILDERS, build_td1, build_td2, build_td3, check_digit, correct_reading, name_field,
                         parse_mrz, transliterate)

# Specimens printed in ICAO Doc 9303 (8th edition): Part 4 Fig. A-1 (TD3), Part 5 Fig. A-2 (TD1), Part 6 Fig. A-1
# (TD2), Part 7 Fig. 11 and 12 (MRV-A, MRV-B).
TD3 = ["P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<", "L898902C36UTO7408122F1204159ZE184226B<<<<<10"]
TD1 = ["I<UTOD231458907<<<<<<<<<<<<<<<", "7408122F1204159UTO<<<<<<<<<<<6", "ERIKSSON<<ANNA<MARIA<<<<<<<<<<"]
TD2 = ["I<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<", "D231458907UTO7408122F1204159<<<<<<<6"]
MRVA = ["V<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<", "L8988901C4XXX7408122F96121096ZE184226B<<<<<<"]
MRVB = ["V<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<", "L8988901C4XXX7408122F9612109<<<<<<<<"]

ANNA = dict(document_type="P", issuing_state="UTO", surname="Eriksson", given_names="Anna Maria",
            document_number="L898902C3", nationality="UTO", birth_date="740812", sex="F", expiry_date="120415",
            optional_data="ZE184226B")


def _mutate(lines, line, pos, char):
    lines = list(lines)
    lines[line] = lines[line][:pos] + char + lines[line][pos + 1:]
    return lines


def test_check_digits_from_icao_part3_worked_examples():
    assert check_digit("740812") == "2"
    assert check_digit("120415") == "9"
    assert check_digit("L898902C3") == "6"
    assert check_digit("ZE184226B<<<<<") == "1"
    assert check_digit("L898902C36" + "7408122" + "1204159ZE184226B<<<<<1") == "0"
    assert check_digit("D23145890") == "7"
    assert check_digit("<<<<<") == "0"
    with pytest.raises(ValueError, match="not allowed"):
        check_digit("abc")


@pytest.mark.parametrize("lines,fmt", [(TD3, "TD3"), (TD1, "TD1"), (TD2, "TD2"), (MRVA, "MRV-A"), (MRVB, "MRV-B")])
def test_icao_specimens_parse_valid(lines, fmt):
    r = parse_mrz(lines)
    assert r.format == fmt and r.valid and r.failed_checks == []
    assert (r.surname, r.given_names, r.birth_date, r.sex) == ("ERIKSSON", "ANNA MARIA", "740812", "F")
    assert r.issuing_state == "UTO"
    if fmt == "TD3":
        assert r.document_number == "L898902C3" and r.optional_data == "ZE184226B" and r.expiry_date == "120415"
        assert set(r.checks) == {"document_number", "birth_date", "expiry_date", "optional_data", "composite"}
    if fmt.startswith("MRV"):
        assert "composite" not in r.checks and r.document_type == "V" and r.nationality == "XXX"
    if fmt in ("TD1", "TD2"):
        assert r.document_number == "D23145890" and r.document_type == "I"


@pytest.mark.parametrize("lines,line,pos,char,failed", [
    (TD3, 1, 15, "9", ["birth_date", "composite"]),  # birth date digit changed
    (TD3, 1, 9, "7", ["document_number", "composite"]),  # document number check digit changed
    (TD3, 1, 30, "X", ["optional_data", "composite"]),  # personal number changed
    (TD3, 1, 43, "1", ["composite"]),
    (TD1, 0, 8, "2", ["document_number", "composite"]),
    (TD1, 1, 10, "3", ["expiry_date", "composite"]),
    (TD1, 1, 29, "7", ["composite"]),
    (TD2, 1, 19, "3", ["birth_date", "composite"]),
    (MRVA, 1, 23, "3", ["expiry_date"]),  # visas have no composite check digit
    (MRVB, 1, 0, "M", ["document_number"]),
])
def test_mutated_specimens_report_the_right_failed_checks(lines, line, pos, char, failed):
    assert lines[line][pos] != char
    r = parse_mrz(_mutate(lines, line, pos, char))
    assert r.failed_checks == failed and not r.valid


def test_td3_personal_number_check_may_be_filler_when_field_is_empty():
    line2 = "ZE000509<9CAN8501019F2301147<<<<<<<<<<<<<<08"
    assert parse_mrz(["P<CANMARTIN<<SARAH" + "<" * 26, line2]).valid
    assert parse_mrz(["P<CANMARTIN<<SARAH" + "<" * 26, line2[:42] + "<" + line2[43:]]).valid


def test_build_reproduces_icao_specimens():
    assert build_td3(ANNA) == TD3
    td1 = dict(ANNA, document_type="I", document_number="D23145890", optional_data="")
    assert build_td1(td1) == TD1
    assert build_td2(td1) == TD2


@pytest.mark.parametrize("builder", [build_td1, build_td2, build_td3])
def test_build_parse_round_trip(builder):
    fields = dict(ANNA, surname="Lüd-Meyer", given_names="José Ñuño", sex="<", issuing_state="D",
                  nationality="D", document_number="C01X00T47", optional_data="1234567")
    r = parse_mrz(builder(fields))
    assert r.valid
    assert (r.surname, r.given_names) == ("LUED MEYER", "JOSE NUNO")
    assert (r.document_number, r.nationality, r.issuing_state, r.sex) == ("C01X00T47", "D", "D", "<")
    assert (r.birth_date, r.expiry_date, r.optional_data) == ("740812", "120415", "1234567")


@pytest.mark.parametrize("builder,number", [(build_td1, "D23145890734"), (build_td1, "AB12345678901"),
                                            (build_td2, "X1234567890")])
def test_long_document_numbers_overflow_into_optional_data(builder, number):
    lines = builder(dict(ANNA, document_number=number, optional_data="ZZ"))
    r = parse_mrz(lines)
    assert r.valid and r.document_number == number and r.optional_data == "ZZ"
    assert (lines[0] if builder is build_td1 else lines[1])[14 if builder is build_td1 else 9] == "<"


def test_td1_long_number_matches_icao_layout():
    lines = build_td1(dict(ANNA, document_type="I", document_number="D23145890734", optional_data=""))
    assert lines[0] == "I<UTOD23145890<7349<<<<<<<<<<<"
    corrupted = _mutate(lines, 0, 16, "5")  # a digit of the overflowed number part
    assert parse_mrz(corrupted).failed_checks == ["document_number", "composite"]


def test_td3_rejects_numbers_that_do_not_fit():
    with pytest.raises(ValueError, match="longer than"):
        build_td3(dict(ANNA, document_number="1234567890"))


def test_transliteration_follows_icao_part3():
    assert transliterate("Müller") == "MUELLER"
    assert transliterate("Jørgensen") == "JOERGENSEN"
    assert transliterate("Åström") == "AASTROEM"
    assert transliterate("Großmann") == "GROSSMANN"
    assert transliterate("Núñez García") == "NUNEZ<GARCIA"
    assert transliterate("O'Brien") == "OBRIEN"
    assert transliterate("van der Berg") == "VAN<DER<BERG"
    assert transliterate("Smith-Jones") == "SMITH<JONES"
    assert transliterate("François Çelik") == "FRANCOIS<CELIK"


def test_long_names_are_truncated_to_the_field():
    field = name_field("Wolfeschlegelsteinhausenbergerdorff", "Hubert Blaine", 30)
    assert len(field) == 30 and field.startswith("WOLFESCHLEGELSTEINHAUSENBER<<H")
    field = name_field("Smith", "Alexandra Konstantina Maximiliane Zoe", 30)
    assert field == "SMITH<<ALEXANDRA<KONSTANTINA<M"
    assert name_field("Li", "", 10) == "LI<<<<<<<<"
    with pytest.raises(ValueError, match="surname"):
        name_field("'-", "Anna", 30)


def test_field_confidences_are_the_minimum_over_their_characters():
    conf = [[0.99] * 44, [0.99] * 44]
    conf[1][3] = 0.2  # inside the document number
    conf[0][7] = 0.5  # inside the name
    r = parse_mrz(TD3, conf)
    assert r.confidences["document_number"] == 0.2
    assert r.confidences["name"] == 0.5
    assert r.confidences["birth_date"] == 0.99
    with pytest.raises(ValueError, match="one value per MRZ character"):
        parse_mrz(TD3, [[0.9] * 44])


@pytest.mark.parametrize("lines,message", [
    (TD3[:1], "2 of 44"),
    (TD1[:2], "3 lines of 30"),
    ([TD3[0], TD3[1][:-1]], "2 of 44"),
    ([TD3[0].lower(), TD3[1]], "outside 0-9, A-Z"),
    ([TD3[0].replace("<", " ", 1), TD3[1]], "outside 0-9, A-Z"),
    ("P<UTO", "list of MRZ lines"),
])
def test_bad_input_raises_clear_errors(lines, message):
    with pytest.raises(ValueError, match=message):
        parse_mrz(lines)


def test_bad_build_fields_raise():
    with pytest.raises(ValueError, match="birth_date"):
        build_td3(dict(ANNA, birth_date="1974-08-12"))
    with pytest.raises(ValueError, match="sex"):
        build_td3(dict(ANNA, sex="female"))
    with pytest.raises(ValueError, match="missing"):
        build_td1({"surname": "X"})


# --- reading a recognised MRZ (correct_reading); the same cases are Go's (pkg/inference CorrectReading) -----------

READINGS = Path(__file__).resolve().parents[1] / "pkg" / "inference" / "testdata" / "mrz_readings.json"


@pytest.mark.parametrize("case", json.loads(READINGS.read_text(encoding="utf-8")), ids=lambda c: c["note"][:40])
def test_correct_reading_cases_shared_with_go(case):
    assert correct_reading(case["read"])[0] == case["corrected"]


def test_correct_reading_leaves_every_well_read_mrz_as_it_is():
    """Printed MRZs (the specimens, and generated holders in every format) are never changed: only characters a
    position cannot hold are."""
    from veid_ml.data.identity_fields import mrz_fields, person_fields

    readings = [TD3, TD1, TD2, MRVA, MRVB]
    for i in range(150):
        layout = ("TD1", "TD2", "TD3")[i % 3]
        readings.append(BUILDERS[layout](mrz_fields(person_fields("test", i, 42), layout)))
    for lines in readings:
        assert correct_reading(lines)[0] == lines


def test_correct_reading_keeps_confidences_aligned():
    read = ["P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<", TD3[1]]  # one filler short
    confidences = [[0.9] * 25 + [0.8] * 5 + [0.4] + [0.8] * 12, [0.7] * 44]  # the filler run: characters 26-43
    lines, fixed = correct_reading(read, confidences)
    assert lines == TD3 and [len(c) for c in fixed] == [44, 44]
    assert fixed[0] == [0.9] * 25 + [0.4] * 19  # the mended run: its lowest confidence
    assert parse_mrz(lines, fixed).valid
    assert confidences[0] == [0.9] * 25 + [0.8] * 5 + [0.4] + [0.8] * 12  # the caller's lists are not changed
