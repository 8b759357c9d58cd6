"""Synthetic holders and documents: the printed fields of an ID card or passport and their MRZ form.

Names mix a list of real-world name shapes (compound surnames, particles, hyphens, apostrophes, national letters such as
Ä, Ø, Ñ, Ç, ß) with syllable-built names of every length, so MRZ truncation and transliteration are exercised. Dates are
ISO strings (YYYY-MM-DD); `mrz_fields` turns a person into the YYMMDD/filler form that `veid_ml.mrz.build_*` expects.
"""

import datetime

import numpy as np

from veid_ml.data.rng import sample_rng

SURNAMES = [
    "Eriksson", "Müller", "García", "Núñez", "François", "Lefèvre", "Jørgensen", "Åström", "Schäfer", "Großmann",
    "O'Brien", "van der Berg", "de la Cruz", "Smith-Jones", "Nguyen", "Kowalski", "Rossi", "Silva", "Pereira",
    "Andersson", "Dubois", "Braun", "Wang", "Kim", "Okafor", "Mensah", "Patel", "Singh", "Ivanov", "Novak", "Horváth",
    "Papadopoulos", "Yilmaz", "Martínez", "Fernández", "D'Angelo", "MacDonald", "Børresen", "Çelik", "Öztürk",
    "Gonçalves", "Ibáñez", "Løvland", "Hähnel", "Kröger", "Übelhör", "Bélanger", "Côté", "Ærø", "Dupont-Lefèvre",
    "dos Santos", "Abu Bakr", "Al-Hassan", "Ferreira da Costa", "Schmidt", "Johansson", "Hansen", "Moreau", "Lambert",
]
GIVEN_F = ["Anna", "Maria", "Anna Maria", "María José", "Françoise", "Élodie", "Inês", "Lucía", "Søs", "Åsa", "Zoé",
           "Jóhanna", "Mette", "Sarah", "Ngozi", "Aïcha", "Marie-Claire", "Ann-Kristin", "Chloé", "Björg", "Mariana",
           "Ingrid", "Li", "Ayse", "Emma", "Olivia", "Sofía", "Renée", "Hélène", "Agnès", "Brigitte", "Mónica"]
GIVEN_M = ["Erik", "José", "Björn", "Søren", "Jürgen", "François", "Jean-Pierre", "Andrés", "Óscar", "Ángel", "Nuño",
           "Mohammed", "Chukwuemeka", "Hans Peter", "Karl-Heinz", "Lars", "Wei", "Rémi", "Sven", "Tomás", "Joël",
           "Jörg", "Olaf", "Pedro", "Kofi", "Raúl", "Émile", "Thomas", "Luca", "Ahmed", "Daniel", "Ole Kristian", "Jesús"]
PLACES = ["Zürich", "Malmö", "Besançon", "Córdoba", "Århus", "Tromsø", "Köln", "Genève", "München", "Lisboa",
          "Utopia City", "Bordeaux", "Göteborg", "Düsseldorf", "Málaga", "Québec", "Montréal", "Lagos", "Accra",
          "New York", "Dublin", "Kraków", "Ålesund", "Reykjavík", "Nîmes", "Cádiz", "Linköping", "Praha", "Wien",
          "Bruxelles", "Sevilla", "Oslo", "Amsterdam", "Helsinki", "Évora"]
# Alpha-3 codes as printed in MRZs; 'D' (Germany, written D<< in the MRZ) and 'UTO' (ICAO's fictional Utopia) included.
STATES = ["UTO", "D", "AUT", "BEL", "BRA", "CAN", "CHE", "CHN", "CZE", "DNK", "ESP", "FIN", "FRA", "GBR", "GRC", "IND",
          "IRL", "ITA", "JPN", "KOR", "MEX", "NGA", "NLD", "NOR", "POL", "PRT", "SWE", "TUR", "USA", "ZAF", "GHA",
          "ISL", "XXA"]
_ONSETS = ["b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z", "br", "ch", "kr",
           "st", "th", "sch", "gr", "pl", "tr", ""]
_VOWELS = ["a", "e", "i", "o", "u", "y", "ä", "ö", "ü", "é", "è", "á", "ó", "ú", "å", "ø", "æ", "í", "ê", "â", "à"]
_CODAS = ["", "", "n", "r", "s", "l", "m", "t", "k", "nd", "rs", "ss", "ç", "ñ", "ß", "x", "ck"]
_ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def _syllable_name(rng: np.random.Generator, syllables: int) -> str:
    plain = rng.random() < 0.6  # most synthetic names stay within A-Z so diacritics do not dominate
    parts = []
    for _ in range(syllables):
        vowel = _VOWELS[int(rng.integers(0, 6 if plain else len(_VOWELS)))]
        coda = _CODAS[int(rng.integers(0, 12 if plain else len(_CODAS)))]
        parts.append(_ONSETS[int(rng.integers(len(_ONSETS)))] + vowel + coda)
    return "".join(parts).capitalize()


def _name(rng: np.random.Generator, known: list[str]) -> str:
    if rng.random() < 0.55:
        return known[int(rng.integers(len(known)))]
    words = [_syllable_name(rng, int(rng.integers(1, 5))) for _ in range(int(rng.choice([1, 1, 1, 2, 3])))]
    return (" " if rng.random() < 0.6 else "-").join(words)


def _date(rng: np.random.Generator, first: datetime.date, last: datetime.date) -> datetime.date:
    return first + datetime.timedelta(days=int(rng.integers(0, (last - first).days + 1)))


def _code(rng: np.random.Generator, length: int, letters_first: int = 0) -> str:
    head = "".join(_ALNUM[int(rng.integers(26))] for _ in range(letters_first))
    return head + "".join(_ALNUM[int(rng.integers(len(_ALNUM)))] for _ in range(length - letters_first))


def person_fields(split: str, index: int, seed: int = 42) -> dict:
    """One synthetic holder and document: names in natural case, ISO dates, codes as printed."""
    rng = sample_rng("identity_fields", split, index, seed)
    sex = str(rng.choice(["F", "M", "X"], p=[0.48, 0.48, 0.04]))
    given = _name(rng, GIVEN_F if sex == "F" or (sex == "X" and rng.random() < 0.5) else GIVEN_M)
    if rng.random() < 0.25:
        given += " " + _name(rng, GIVEN_F + GIVEN_M).split("-")[0]
    surname = _name(rng, SURNAMES)
    if rng.random() < 0.08:  # very long names exercise the MRZ truncation rule
        surname += " " + _syllable_name(rng, 5) + " " + _syllable_name(rng, 4)
    nationality = STATES[int(rng.integers(len(STATES)))]
    issuing_state = nationality if rng.random() < 0.9 else STATES[int(rng.integers(len(STATES)))]
    birth = _date(rng, datetime.date(1940, 1, 1), datetime.date(2010, 12, 31))
    issue = _date(rng, datetime.date(2014, 1, 1), datetime.date(2025, 12, 31))
    years = int(rng.choice([5, 10]))
    expiry = issue.replace(year=issue.year + years, day=min(issue.day, 28)) - datetime.timedelta(days=1)
    long_number = rng.random() < 0.1  # TD1/TD2 numbers over 9 characters overflow into the optional data
    number = _code(rng, int(rng.integers(10, 13)) if long_number else int(rng.choice([8, 9, 9, 9])),
                   letters_first=int(rng.integers(0, 3)))
    personal = "".join(str(d) for d in rng.integers(0, 10, int(rng.integers(6, 12)))) if rng.random() < 0.5 else ""
    optional_2 = _code(rng, int(rng.integers(3, 10))) if rng.random() < 0.2 else ""
    return {
        "surname": surname,
        "given_names": given,
        "sex": sex,
        "nationality": nationality,
        "issuing_state": issuing_state,
        "birth_date": birth.isoformat(),
        "place_of_birth": PLACES[int(rng.integers(len(PLACES)))],
        "issue_date": issue.isoformat(),
        "expiry_date": expiry.isoformat(),
        "document_number": number,
        "optional_data": personal,
        "optional_data_2": optional_2,
        "document_subtype": str(rng.choice(["<", "<", "D", "R"])),
    }


def mrz_fields(person: dict, layout: str) -> dict:
    """The person's fields in the form `veid_ml.mrz.build_<layout>` takes (TD1, TD2 or TD3).

    TD3 passports hold at most 9 number characters and have no overflow rule, so long numbers keep their first 9; in TD1
    and TD2 the optional data is shortened to leave room for an overflowing number.
    """
    if layout not in ("TD1", "TD2", "TD3"):
        raise ValueError(f"layout must be TD1, TD2 or TD3, got {layout!r}")
    number = person["document_number"]
    optional, optional_2 = person["optional_data"], person["optional_data_2"]
    if layout == "TD3":
        number, document_type = number[:9], "P" + ("<" if person["document_subtype"] in "<D" else "P")
    else:
        document_type = "I" + person["document_subtype"]
        room = (15 if layout == "TD1" else 7) - (len(number) - 9 + 2 if len(number) > 9 else 0)
        optional = optional[:room]
    return {
        "document_type": document_type,
        "issuing_state": person["issuing_state"],
        "surname": person["surname"],
        "given_names": person["given_names"],
        "document_number": number,
        "nationality": person["nationality"],
        "birth_date": _yymmdd(person["birth_date"]),
        "sex": person["sex"],
        "expiry_date": _yymmdd(person["expiry_date"]),
        "optional_data": optional[:14],
        "optional_data_2": optional_2 if layout == "TD1" else "",
    }


def _yymmdd(iso: str) -> str:
    return iso[2:4] + iso[5:7] + iso[8:10]
