"""Check veid_ml.mrz against real MRZ specimens (ICAO 9303 figures and open-source test suites).

For every row of mrz_specimens.tsv, parse the lines and compare "all check digits valid" with the file's verdict.
Exits non-zero on any disagreement, or if a specimen's format is detected differently.

    python scripts/check_mrz_specimens.py [/work/shared/data/mrz_specimens.tsv]
"""

import argparse
import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ml"))
from veid_ml.mrz import parse_mrz  # noqa: E402

FORMAT_NAMES = {"MRVA": "MRV-A", "MRVB": "MRV-B"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tsv", nargs="?", default="/work/shared/data/mrz_specimens.tsv")
    args = parser.parse_args()
    with open(args.tsv, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    disagreements = 0
    for row in rows:
        lines = [row[k] for k in ("line1", "line2", "line3") if row[k]]
        result = parse_mrz(lines)
        expected = row["all_check_digits_valid"] == "true"
        expected_format = FORMAT_NAMES.get(row["format"], row["format"])
        ok = result.valid == expected and result.format == expected_format
        disagreements += not ok
        status = "ok  " if ok else "DIFF"
        print(f"{status} {result.format:5s} expected valid={expected!s:5s} got valid={result.valid!s:5s} "
              f"failed={','.join(result.failed_checks) or '-'}  {lines[0]}")
    print(f"agreement: {len(rows) - disagreements}/{len(rows)}")
    return 1 if disagreements else 0


if __name__ == "__main__":
    sys.exit(main())
