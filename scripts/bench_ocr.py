"""OCR model benchmarks: full training wall time, and reading real ICAO specimen MRZs.

    python scripts/bench_ocr.py --runs 3                   # spec training N times (veid_ml.benchmark), median wall time
    python scripts/bench_ocr.py --specimens /work/shared/data/mrz_specimens.tsv

--specimens renders every line of the real specimen MRZs in OCR-B twice, clean (black on white) and degraded (the
text-line generator's print and camera pipeline), reads them with the committed model and prints the line and
document exact-match shares and whether the read-out's check digits agree with the file's verdict.
"""

import argparse
import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "ml"))

from veid_ml import benchmark, determinism  # noqa: E402


def clean_line(text: str):
    """Black OCR-B on white, cut to the ink with a small margin, as the recogniser's 32 x 512 input."""
    import numpy as np

    from veid_ml.data import textlines
    from veid_ml.document_reader import fit_line

    mask = textlines.render_text_mask(text, textlines.MRZ_FONT, 40, np.random.default_rng(0))
    rows, cols = np.flatnonzero(mask.max(axis=1) > 0.02), np.flatnonzero(mask.max(axis=0) > 0.02)
    mask = np.pad(mask[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1], 4)
    return fit_line((255 - mask * 255).astype(np.uint8))


def read_specimens(path: Path, seed: int) -> None:
    determinism.configure(seed, reexec=False)
    import numpy as np

    from ocr_extraction.train import recognise
    from veid_ml import export, mrz
    from veid_ml.data import textlines
    from veid_ml.data.rng import sample_rng

    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    serve = export.load_serving(ROOT / "ml" / "ocr_extraction" / "weights" / "ocr_model")
    for style in ("clean", "degraded"):
        lines_ok = lines_n = docs_ok = verdict_ok = 0
        for i, row in enumerate(rows):
            lines = [row[k] for k in ("line1", "line2", "line3") if row[k]]
            rng = sample_rng("mrz_specimen", "test", i, seed)
            images = np.stack([clean_line(line) if style == "clean" else textlines.render_line(
                line, textlines.MRZ_FONT, rng, tracking=rng.uniform(-0.02, 0.08), jitter=rng.uniform(0, 0.015),
                shrink=rng.uniform(0.85, 1.0)) for line in lines])
            read = [t.replace(" ", "") for t in recognise(serve, images)]
            lines_ok += sum(r == t for r, t in zip(read, lines))
            lines_n += len(lines)
            docs_ok += read == lines
            try:
                valid = mrz.parse_mrz(read).valid
            except ValueError:
                valid = None
            verdict_ok += valid == (row["all_check_digits_valid"] == "true")
            if read != lines:
                print(f"  {style} row {i + 2}: " + " | ".join(f"{t} -> {r}" for t, r in zip(lines, read) if t != r))
        print(f"{style}: lines exact {lines_ok}/{lines_n} = {lines_ok / lines_n:.3f}, documents exact "
              f"{docs_ok}/{len(rows)}, check-digit verdict as in the file {verdict_ok}/{len(rows)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=0, help="time N full training runs")
    parser.add_argument("--specimens", type=Path, help="mrz_specimens.tsv to render and read")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    if args.runs < 0:
        parser.error("--runs must be >= 0")
    if not args.runs and not args.specimens:
        parser.error("give --runs N and/or --specimens PATH")
    if args.runs:
        benchmark.time_spec_training("ocr_extraction", args.runs)
    if args.specimens:
        read_specimens(args.specimens, args.seed)


if __name__ == "__main__":
    main()
