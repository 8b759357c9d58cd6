"""ICAO Doc 9303 machine-readable zones: check digits, building MRZ lines and parsing them back.

Formats (Part 4-7): TD1 ID cards (3 x 30), TD2 (2 x 36), TD3 passports (2 x 44), and machine-readable visas MRV-A
(TD3 geometry) and MRV-B (TD2 geometry), which start with 'V' and carry no composite check digit.

Positions in comments are 1-based and inclusive, as in the spec.
"""

import re
import unicodedata
from dataclasses import dataclass, field

MRZ_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ<"
_MRZ_LINE = re.compile(r"^[0-9A-Z<]*$")
_WEIGHTS = (7, 3, 1)

# ICAO 9303 Part 3, section 6 (transliteration of Latin-alphabet national characters). Where the table offers two
# forms (e.g. Ä -> AE or A) we use the recommended multi-letter one; every other accented letter loses its accent.
_TRANSLITERATION = {
    "Ä": "AE", "Å": "AA", "Æ": "AE", "Ö": "OE", "Ø": "OE", "Ü": "UE", "ß": "SS", "Þ": "TH", "Ð": "D", "Ł": "L",
    "Œ": "OE", "Ĳ": "IJ",
}


def char_value(c: str) -> int:
    if "0" <= c <= "9":
        return ord(c) - ord("0")
    if "A" <= c <= "Z":
        return ord(c) - ord("A") + 10
    if c == "<":
        return 0
    raise ValueError(f"character {c!r} is not allowed in an MRZ (only 0-9, A-Z and '<')")


def check_digit(s: str) -> str:
    """ICAO 9303 Part 3 section 4.9: weighted (7, 3, 1, ...) sum of character values, mod 10."""
    return str(sum(char_value(c) * _WEIGHTS[i % 3] for i, c in enumerate(s)) % 10)


def transliterate(text: str) -> str:
    """Name or free text -> MRZ characters: national letters per ICAO Part 3, hyphens and spaces become '<',
    apostrophes and other punctuation are dropped."""
    out = []
    for c in text.upper():
        if c in _TRANSLITERATION:
            out.append(_TRANSLITERATION[c])
        elif c in " -":
            out.append("<")
        else:
            base = unicodedata.normalize("NFKD", c)[0]  # É -> E, Ñ -> N, Ç -> C
            if "A" <= base <= "Z" or "0" <= base <= "9":
                out.append(base)
    return re.sub("<+", "<", "".join(out)).strip("<")


def name_field(surname: str, given_names: str, width: int) -> str:
    """SURNAME<<GIVEN<NAMES padded with '<' to width.

    Truncation (Part 3 section 4.6): too-long names are cut at the field width, whole characters only; the surname is
    kept in full as long as it leaves room for '<<' and one given-name initial. A cut landing on a filler drops the
    dangling fillers, so the field never ends in a half separator followed by nothing.
    """
    primary, secondary = transliterate(surname), transliterate(given_names)
    if not primary:
        raise ValueError(f"surname {surname!r} has no characters that can be written in an MRZ")
    if len(primary) > width - 3 and secondary:
        primary = primary[: width - 3]
    full = primary + ("<<" + secondary if secondary else "")
    if len(full) > width:
        full = full[:width].rstrip("<")
    return full.ljust(width, "<")


def _pad(value: str, width: int, what: str) -> str:
    value = value.upper().replace(" ", "<")
    if not _MRZ_LINE.match(value):
        raise ValueError(f"{what} {value!r} contains characters outside 0-9, A-Z, '<'")
    if len(value) > width:
        raise ValueError(f"{what} {value!r} is longer than its {width}-character MRZ field")
    return value.ljust(width, "<")


def _date(value: str, what: str) -> str:
    if not re.fullmatch(r"\d{6}", value):
        raise ValueError(f"{what} must be YYMMDD digits, got {value!r}")
    return value


def _sex(value: str) -> str:
    if value not in ("M", "F", "<", "X"):
        raise ValueError(f"sex must be 'M', 'F' or '<' (unspecified), got {value!r}")
    return "<" if value == "X" else value


def _number_with_overflow(number: str, optional: str, optional_width: int) -> tuple[str, str]:
    """Document number field (9 chars + check digit) and the optional-data field it may overflow into.

    TD1/TD2 rule (Part 5 and 6, note j): a number longer than 9 characters puts its first 9 in the number field, '<' in
    the check-digit position, and its remaining characters plus the check digit over the full number at the start of
    the optional data, followed by a filler.
    """
    number = number.upper()
    if len(number) <= 9:
        return _pad(number, 9, "document_number") + check_digit(_pad(number, 9, "document_number")), _pad(
            optional, optional_width, "optional_data")
    _pad(number, len(number), "document_number")
    overflow = number[9:] + check_digit(number) + "<"
    return number[:9] + "<", _pad(overflow + optional, optional_width, "document_number overflow + optional_data")


def _common(fields: dict) -> dict:
    missing = {"document_type", "issuing_state", "surname", "document_number", "nationality", "birth_date", "sex",
               "expiry_date"} - set(fields)
    if missing:
        raise ValueError(f"MRZ fields missing: {sorted(missing)}")
    return {
        "type": _pad(fields["document_type"], 2, "document_type"),
        "state": _pad(fields["issuing_state"], 3, "issuing_state"),
        "nationality": _pad(fields["nationality"], 3, "nationality"),
        "birth": _date(fields["birth_date"], "birth_date"),
        "sex": _sex(fields["sex"]),
        "expiry": _date(fields["expiry_date"], "expiry_date"),
    }


def build_td1(fields: dict) -> list[str]:
    """Three 30-character lines of an ID card (Part 5)."""
    f = _common(fields)
    number, optional = _number_with_overflow(fields["document_number"], fields.get("optional_data", ""), 15)
    line1 = f["type"] + f["state"] + number + optional
    line2 = (f["birth"] + check_digit(f["birth"]) + f["sex"] + f["expiry"] + check_digit(f["expiry"])
             + f["nationality"] + _pad(fields.get("optional_data_2", ""), 11, "optional_data_2"))
    line2 += check_digit(line1[5:30] + line2[0:7] + line2[8:15] + line2[18:29])
    line3 = name_field(fields["surname"], fields.get("given_names", ""), 30)
    return [line1, line2, line3]


def build_td2(fields: dict) -> list[str]:
    """Two 36-character lines (Part 6)."""
    f = _common(fields)
    number, optional = _number_with_overflow(fields["document_number"], fields.get("optional_data", ""), 7)
    line1 = f["type"] + f["state"] + name_field(fields["surname"], fields.get("given_names", ""), 31)
    line2 = (number + f["nationality"] + f["birth"] + check_digit(f["birth"]) + f["sex"] + f["expiry"]
             + check_digit(f["expiry"]) + optional)
    line2 += check_digit(line2[0:10] + line2[13:20] + line2[21:35])
    return [line1, line2]


def build_td3(fields: dict) -> list[str]:
    """Two 44-character lines of a passport data page (Part 4). TD3 has no overflow: numbers are at most 9 chars."""
    f = _common(fields)
    number = _pad(fields["document_number"], 9, "document_number (TD3 allows 9 characters)")
    optional = _pad(fields.get("optional_data", ""), 14, "optional_data")
    line1 = f["type"] + f["state"] + name_field(fields["surname"], fields.get("given_names", ""), 39)
    line2 = (number + check_digit(number) + f["nationality"] + f["birth"] + check_digit(f["birth"]) + f["sex"]
             + f["expiry"] + check_digit(f["expiry"]) + optional + check_digit(optional))
    line2 += check_digit(line2[0:10] + line2[13:20] + line2[21:43])
    return [line1, line2]


BUILDERS = {"TD1": build_td1, "TD2": build_td2, "TD3": build_td3}


@dataclass
class MRZResult:
    """Parsed MRZ. Text fields have fillers removed; dates stay YYMMDD (the century is not in the MRZ).

    checks maps each check digit the format defines to whether it matches: document_number, birth_date, expiry_date,
    optional_data (TD3 only: the personal-number check digit) and composite (not for visas).
    confidences maps each field to the minimum confidence of its characters, when per-character confidences were given.
    """

    format: str
    lines: list[str]
    document_type: str
    issuing_state: str
    surname: str
    given_names: str
    document_number: str
    nationality: str
    birth_date: str
    sex: str
    expiry_date: str
    optional_data: str
    optional_data_2: str
    checks: dict[str, bool]
    confidences: dict[str, float] = field(default_factory=dict)

    @property
    def failed_checks(self) -> list[str]:
        return [name for name, ok in self.checks.items() if not ok]

    @property
    def valid(self) -> bool:
        return not self.failed_checks


def _detect_format(lines: list[str]) -> str:
    lengths = [len(line) for line in lines]
    if lengths == [30, 30, 30]:
        return "TD1"
    if lengths == [36, 36]:
        return "MRV-B" if lines[0].startswith("V") else "TD2"
    if lengths == [44, 44]:
        return "MRV-A" if lines[0].startswith("V") else "TD3"
    raise ValueError(f"MRZ must be 3 lines of 30, 2 of 36 or 2 of 44 characters; got {len(lines)} lines of {lengths}")


class _Reader:
    """Reads fields out of the MRZ by (line, start, end) spans and records which characters each field used."""

    def __init__(self, lines, confidences):
        self.lines, self.confidences, self.spans = lines, confidences, {}

    def take(self, name, line, start, end):  # 1-based inclusive, like the spec tables
        self.spans.setdefault(name, []).append((line, start - 1, end))
        return self.lines[line][start - 1: end]

    def field_confidences(self):
        if self.confidences is None:
            return {}
        return {name: min(min(self.confidences[line][a:b]) for line, a, b in spans)
                for name, spans in self.spans.items()}


def _check(value: str, digit: str) -> bool:
    return digit.isdigit() and check_digit(value) == digit


def _split_name(name: str) -> tuple[str, str]:
    surname, _, given = name.partition("<<")
    return surname.replace("<", " ").strip(), given.replace("<", " ").strip()


def _number_from(r: _Reader, line: int, start: int, optional_line: int, optional_start: int, optional_end: int):
    """Document number and its check result, following the TD1/TD2 overflow rule when the check position is '<'."""
    number = r.take("document_number", line, start, start + 8)
    digit = r.lines[line][start + 8]
    optional = r.lines[optional_line][optional_start - 1: optional_end]
    if digit == "<" and optional[0] != "<":
        overflow = optional.split("<", 1)[0]
        r.take("document_number", optional_line, optional_start, optional_start + len(overflow) - 1)
        full = number + overflow[:-1]
        ok = _check(full, overflow[-1])
        rest_start = optional_start + len(overflow) + 1
        rest = r.take("optional_data", optional_line, rest_start, optional_end) if rest_start <= optional_end else ""
        return full, ok, rest.strip("<")
    ok = _check(number, digit)
    optional = r.take("optional_data", optional_line, optional_start, optional_end)
    return number.strip("<"), ok, optional.strip("<")


# Reading a recognised MRZ (correct_reading). The recogniser also reads printed fields, so it has lower case and
# accents, which an MRZ never has; and on small print it confuses look-alikes that the position's kind tells apart
# (ICAO 9303 Part 3-7: dates and check digits are digits; document codes, states, nationality, sex and names letters).
FOLD = {**{c: c.upper() for c in "abcdefghijklmnopqrstuvwxyz"},
        **dict(zip("ÀÁÂÄÅÇÈÉÊËÍÎÏÑÓÔÖØÚÛÜàáâäåçèéêëíîïñóôöøúûü", "AAAAACEEEEIIINOOOOUUU" * 2))}
_AS_DIGIT = {"O": "0", "I": "1", "Z": "2", "S": "5", "G": "6", "B": "8"}
_AS_LETTER = {digit: letter for letter, digit in _AS_DIGIT.items()}
# What each position may hold, per format: A letters or '<', N digits or '<', x anything (document numbers and
# optional data are alphanumeric, and so is a document code's second character, e.g. the US "C1": a look-alike there is
# left as read).
_SECOND_LINE_START = "x" * 9 + "N" + "AAA" + "N" * 7 + "A" + "N" * 7  # number, check, nationality, birth, sex, expiry
POSITION_KINDS = {
    "TD1": ("AxAAA" + "x" * 9 + "N" + "x" * 15, "N" * 7 + "A" + "N" * 7 + "AAA" + "x" * 11 + "N", "A" * 30),
    "TD2": ("Ax" + "A" * 34, _SECOND_LINE_START + "x" * 7 + "N"),
    "MRV-B": ("Ax" + "A" * 34, _SECOND_LINE_START + "x" * 8),
    "TD3": ("Ax" + "A" * 42, _SECOND_LINE_START + "x" * 14 + "NN"),
    "MRV-A": ("Ax" + "A" * 42, _SECOND_LINE_START + "x" * 16),
}
MAX_FILLER_FIX = 2  # '<' characters added to or taken from a line's longest filler run to reach its format's width
# (line, start, end) of the alphanumeric numbers a check digit (at end) covers: the document number (and TD3's
# personal number), where O and 0 cannot be told apart by position.
_CHECKED_NUMBERS = {"TD1": [(0, 5, 14)], "TD2": [(1, 0, 9)], "MRV-B": [(1, 0, 9)], "TD3": [(1, 0, 9), (1, 28, 42)],
                    "MRV-A": [(1, 0, 9)]}
MAX_AMBIGUOUS = 4  # O/0 characters in one number whose spellings are tried (2^4 = 16)


def reading_width(lines: list[str]) -> int | None:
    """The line width the format of a reading of this many lines has: 30 for three lines, 36 or 44 for two (whichever
    is nearer their mean length), None for any other count."""
    if len(lines) == 3:
        return 30
    if len(lines) == 2:
        return 44 if sum(len(line) for line in lines) / 2 > 40 else 36
    return None


def reading_format(lines: list[str]) -> tuple[str, int] | None:
    """(format, width) a reading's line count and lengths point to: reading_width's, and a two-line reading whose
    first line starts with 'V' is a visa (MRV-B, MRV-A); None for any other line count."""
    width = reading_width(lines)
    if width is None:
        return None
    fmt = {30: "TD1", 36: "TD2", 44: "TD3"}[width]
    if fmt != "TD1" and lines[0][:1] == "V":
        fmt = {"TD2": "MRV-B", "TD3": "MRV-A"}[fmt]
    return fmt, width


def correct_reading(lines: list[str], confidences: list[list[float]] | None = None):
    """A recogniser's reading of MRZ lines (spaces already dropped) as MRZ characters: (lines, confidences).

    1. lower case and accented letters become the capital letter (a -> A, À -> A);
    2. the format is told by the line count and lengths (3 lines: 30 wide; 2: 36 or 44, whichever is nearer; a first
       line starting with 'V' is a visa); a line up to MAX_FILLER_FIX characters off that width gets '<' added to or
       taken from its longest run of fillers (long runs of '<' are where a count slips);
    3. in a line of the format's width, a digit where only letters may stand becomes its look-alike letter (0 -> O,
       1 -> I, ...) and a letter where only digits may stand its look-alike digit (POSITION_KINDS);
    4. a document (or TD3 personal) number whose check digit fails as read, with 1 to MAX_AMBIGUOUS O or 0 in it,
       takes the one other spelling of its O and 0 for which the check digit holds, if exactly one does.
    Anything else is left as read, so parse_mrz still refuses what is not an MRZ and check digits still catch what
    was misread. A mended run's fillers all get its lowest confidence."""
    lines = ["".join(FOLD.get(c, c) for c in line) for line in lines]
    confidences = [list(c) for c in confidences] if confidences is not None else None
    found = reading_format(lines)
    if found is None:
        return lines, confidences
    fmt, width = found
    for i, line in enumerate(lines):
        off = len(line) - width
        runs = [m for m in re.finditer("<{2,}", line) if m.end() - m.start() > max(off, 0)]
        if 0 < abs(off) <= MAX_FILLER_FIX and runs:
            run = max(runs, key=lambda m: (m.end() - m.start(), m.start()))  # the longest, the last of equals
            lines[i] = line[:run.start()] + "<" * (run.end() - run.start() - off) + line[run.end():]
            if confidences is not None:
                c = confidences[i]
                filler = [min(c[run.start():run.end()])] * (run.end() - run.start() - off)
                confidences[i] = c[:run.start()] + filler + c[run.end():]
    for i, (line, kinds) in enumerate(zip(lines, POSITION_KINDS[fmt])):
        if len(line) == width:
            lines[i] = "".join(_AS_LETTER.get(c, c) if k == "A" else _AS_DIGIT.get(c, c) if k == "N" else c
                               for c, k in zip(line, kinds))
    for i, start, end in _CHECKED_NUMBERS[fmt]:
        if len(lines[i]) == width:
            lines[i] = lines[i][:start] + _spell_by_check(lines[i][start:end], lines[i][end]) + lines[i][end:]
    return lines, confidences


def _spell_by_check(number: str, digit: str) -> str:
    """Step 4 of correct_reading for one number and its check digit."""
    spots = [i for i, c in enumerate(number) if c in "O0"]
    if digit not in "0123456789" or not 0 < len(spots) <= MAX_AMBIGUOUS:
        return number
    try:
        if check_digit(number) == digit:
            return number
    except ValueError:  # characters an MRZ cannot hold: parse_mrz refuses the line anyway
        return number
    fits = []
    for mask in range(1, 2 ** len(spots)):  # every other spelling: bit k flips the k-th O/0
        spelt = list(number)
        for k, i in enumerate(spots):
            if mask >> k & 1:
                spelt[i] = "0" if spelt[i] == "O" else "O"
        if check_digit("".join(spelt)) == digit:
            fits.append("".join(spelt))
    return fits[0] if len(fits) == 1 else number


def parse_mrz(lines: list[str], confidences: list[list[float]] | None = None) -> MRZResult:
    """Parse TD1/TD2/TD3/MRV-A/MRV-B lines and verify every check digit the format defines."""
    if isinstance(lines, str):
        raise ValueError("parse_mrz expects a list of MRZ lines, not one string")
    lines = list(lines)
    for i, line in enumerate(lines):
        if not isinstance(line, str) or not _MRZ_LINE.match(line):
            raise ValueError(f"MRZ line {i + 1} {line!r} has characters outside 0-9, A-Z, '<'")
    fmt = _detect_format(lines)
    if confidences is not None:
        if [len(c) for c in confidences] != [len(line) for line in lines]:
            raise ValueError("confidences must give one value per MRZ character, line by line")
    r = _Reader(lines, confidences)
    checks = {}
    if fmt == "TD1":
        document_type = r.take("document_type", 0, 1, 2)
        issuing_state = r.take("issuing_state", 0, 3, 5)
        number, checks["document_number"], optional = _number_from(r, 0, 6, 0, 16, 30)
        birth, sex, expiry = r.take("birth_date", 1, 1, 6), r.take("sex", 1, 8, 8), r.take("expiry_date", 1, 9, 14)
        checks["birth_date"] = _check(birth, lines[1][6])
        checks["expiry_date"] = _check(expiry, lines[1][14])
        nationality = r.take("nationality", 1, 16, 18)
        optional_2 = r.take("optional_data_2", 1, 19, 29)
        checks["composite"] = _check(lines[0][5:30] + lines[1][0:7] + lines[1][8:15] + lines[1][18:29], lines[1][29])
        surname, given = _split_name(r.take("name", 2, 1, 30))
    else:
        width = len(lines[0])
        document_type = r.take("document_type", 0, 1, 2)
        issuing_state = r.take("issuing_state", 0, 3, 5)
        surname, given = _split_name(r.take("name", 0, 6, width))
        nationality = r.take("nationality", 1, 11, 13)
        birth, sex, expiry = r.take("birth_date", 1, 14, 19), r.take("sex", 1, 21, 21), r.take("expiry_date", 1, 22, 27)
        optional_2 = ""
        if fmt == "TD2":
            number, checks["document_number"], optional = _number_from(r, 1, 1, 1, 29, 35)
        else:
            number = r.take("document_number", 1, 1, 9)
            checks["document_number"] = _check(number, lines[1][9])
            number = number.strip("<")
            optional_end = {"TD3": 42, "MRV-A": 44, "MRV-B": 36}[fmt]
            optional = r.take("optional_data", 1, 29, optional_end)
            if fmt == "TD3":  # Part 4: the personal-number check digit may be '<' when the field is all fillers
                checks["optional_data"] = _check(optional, lines[1][42]) or (optional == "<" * 14
                                                                              and lines[1][42] == "<")
            optional = optional.strip("<")
        checks["birth_date"] = _check(birth, lines[1][19])
        checks["expiry_date"] = _check(expiry, lines[1][27])
        if fmt in ("TD2", "TD3"):
            composite_end = 35 if fmt == "TD2" else 43
            checks["composite"] = _check(lines[1][0:10] + lines[1][13:20] + lines[1][21:composite_end],
                                         lines[1][composite_end])
        order = ["document_number", "birth_date", "expiry_date", "optional_data", "composite"]
        checks = {k: checks[k] for k in order if k in checks}
    return MRZResult(
        format=fmt, lines=lines, document_type=document_type.strip("<"), issuing_state=issuing_state.strip("<"),
        surname=surname, given_names=given, document_number=number, nationality=nationality.strip("<"),
        birth_date=birth, sex=sex, expiry_date=expiry, optional_data=optional, optional_data_2=optional_2.strip("<"),
        checks=checks, confidences=r.field_confidences())
