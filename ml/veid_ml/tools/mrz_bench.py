"""`veid-ml bench mrz-documents --docs DIR`: reading the MRZ of real document images, ours vs Tesseract vs RapidOCR.

DIR holds the images and labels.tsv (tab-separated, one header row: file, doc_type, mrz with lines joined by '|',
all_check_digits_valid true/false, source_path, note). Every engine reads the whole image:
  ours       veid_ml.api.Verifier.read_document(path)["mrz_lines"] (the VEID pipeline; its time includes the face
             detection that read_document also runs).
  tesseract  `tesseract` (LSTM) on the grayscale image, --psm 6 and the MRZ character whitelist, one process per image.
  rapidocr   scripts/rapidocr_mrz.py run by --rapidocr-python (a separate venv with `pip install
             rapidocr-onnxruntime`; RapidOCR is not a project dependency).
Tesseract's and RapidOCR's text lines go through the same MRZ-candidate selection: lines that, with spaces removed,
have at least 28 characters and contain '<<'; the last 3 of them when the last one's length is nearest 30 (TD1),
else the last 2 (36 or 44); then the correction ours applies to its own text (veid_ml.mrz.correct_reading: case,
accents, a miscounted filler, look-alikes where a position allows one kind only). Ours also decodes its recogniser's
logits where that text is not a valid MRZ (veid_ml.mrz_decode); the other engines give no logits to decode.
Scoring, the same for every engine: a predicted line has its spaces removed and is uppercased; it is exact when it
equals the label's line; a document is exact when it has exactly the labelled number of lines, all exact. "valid"
counts, among documents labelled all_check_digits_valid=true, those whose prediction is a strict MRZ
(veid_ml.mrz.parse_mrz) with every check digit valid. Seconds per document exclude model loading; ours and RapidOCR
get one untimed warm-up read of the first image.
"""

import csv
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from veid_ml.atomic import write_text_atomic
from veid_ml.tools import add_command

TESSERACT_INSTALL = "sudo apt-get install tesseract-ocr tesseract-ocr-eng"
RAPIDOCR_SETUP = ("python3 -m venv ~/venvs/rapidocr && ~/venvs/rapidocr/bin/pip install rapidocr-onnxruntime, "
                  "then pass --rapidocr-python ~/venvs/rapidocr/bin/python")
RAPIDOCR_SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "rapidocr_mrz.py"
ENGINES = ("ours", "tesseract", "rapidocr")
DOC_LINES = {"TD1": (3, 30), "TD2": (2, 36), "TD3": (2, 44), "MRVA": (2, 44), "MRVB": (2, 36)}
MIN_CANDIDATE = 28


class LabelError(ValueError):
    """labels.tsv or the folder is missing or malformed."""


def read_labels(docs: Path) -> list[dict]:
    """Rows of DIR/labels.tsv: file, doc_type, lines (list), all_valid (bool), path; LabelError on any problem."""
    if not docs.is_dir():
        raise LabelError(f"no such folder: {docs}")
    labels = docs / "labels.tsv"
    if not labels.is_file():
        raise LabelError(f"no labels.tsv in {docs}")
    with open(labels, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows or rows[0][:4] != ["file", "doc_type", "mrz", "all_check_digits_valid"]:
        raise LabelError(f"{labels}: the header must start with file, doc_type, mrz, all_check_digits_valid")
    out = []
    for n, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) < 4:
            raise LabelError(f"{labels} line {n}: {len(row)} columns, expected at least 4")
        file, doc_type, mrz_text, valid = row[:4]
        if doc_type not in DOC_LINES:
            raise LabelError(f"{labels} line {n}: unknown doc_type {doc_type!r} (expected {', '.join(DOC_LINES)})")
        lines = mrz_text.split("|")
        count, width = DOC_LINES[doc_type]
        if len(lines) != count or any(len(line) != width for line in lines):
            raise LabelError(f"{labels} line {n}: a {doc_type} MRZ is {count} lines of {width}; got "
                             f"{[len(line) for line in lines]}")
        if valid not in ("true", "false"):
            raise LabelError(f"{labels} line {n}: all_check_digits_valid must be true or false, not {valid!r}")
        path = docs / file
        if not path.is_file():
            raise LabelError(f"{labels} line {n}: no such image: {path}")
        out.append({"file": file, "doc_type": doc_type, "lines": lines, "all_valid": valid == "true", "path": path})
    if not out:
        raise LabelError(f"{labels} has no rows")
    return out


def normalise(line: str) -> str:
    return line.replace(" ", "").upper()


def mrz_candidates(text_lines: list[str]) -> list[str]:
    """The MRZ lines among OCR output lines (top to bottom): the last 2 or 3 lines of >= 28 characters with '<<',
    corrected as our pipeline corrects its own reading (veid_ml.mrz.correct_reading)."""
    from veid_ml import mrz

    candidates = [normalise(t) for t in text_lines]
    candidates = [c for c in candidates if len(c) >= MIN_CANDIDATE and "<<" in c]
    if not candidates:
        return []
    nearest = min((30, 36, 44), key=lambda width: abs(len(candidates[-1]) - width))
    return mrz.correct_reading(candidates[-(3 if nearest == 30 else 2):])[0]


def score_document(label: list[str], predicted: list[str], all_valid: bool) -> dict:
    """lines_exact (count), exact (whole document) and valid (a strict MRZ, every check digit valid; only counted
    when the label says all_valid, else None)."""
    from veid_ml import mrz

    predicted = [normalise(p) for p in predicted]
    lines_exact = sum(p == t for p, t in zip(predicted, label))
    exact = len(predicted) == len(label) and lines_exact == len(label)
    valid = None
    if all_valid:
        try:
            valid = mrz.parse_mrz(predicted).valid
        except ValueError:
            valid = False
    return {"lines_exact": lines_exact, "exact": exact, "valid": valid}


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    import numpy as np

    return float(np.percentile(values, q))


def summarise(rows: list[dict], results: list[dict]) -> dict:
    """Totals of one engine's per-document results (same order as rows)."""
    seconds = [r["seconds"] for r in results if r["seconds"] is not None]
    by_type = {}
    for row, r in zip(rows, results):
        t = by_type.setdefault(row["doc_type"], [0, 0])
        t[0] += r["exact"]
        t[1] += 1
    return {"docs_exact": sum(r["exact"] for r in results), "docs": len(rows),
            "lines_exact": sum(r["lines_exact"] for r in results), "lines": sum(len(row["lines"]) for row in rows),
            "valid": sum(bool(r["valid"]) for r in results), "valid_docs": sum(row["all_valid"] for row in rows),
            "median_s": percentile(seconds, 50), "p90_s": percentile(seconds, 90),
            "by_doc_type": {k: {"exact": v[0], "docs": v[1]} for k, v in by_type.items()}}


# --- engines: each returns per image {"mrz_lines", "raw_lines" (None for ours), "seconds", "error"} ---------------

def run_ours(rows: list[dict]) -> list[dict]:
    from veid_ml import determinism

    determinism.configure(reexec=False)  # before TensorFlow is imported
    from veid_ml.api import Verifier

    verifier = Verifier.load()
    try:
        verifier.read_document(rows[0]["path"])  # warm-up, untimed
    except Exception:  # noqa: BLE001 - reported below with the image
        pass
    out = []
    for row in rows:
        started = time.perf_counter()
        try:
            lines, error = verifier.read_document(row["path"])["mrz_lines"], None
        except Exception as e:  # noqa: BLE001 - an unreadable image counts as a miss, the benchmark goes on
            lines, error = [], f"{type(e).__name__}: {e}"
        out.append({"mrz_lines": list(lines), "raw_lines": None, "seconds": time.perf_counter() - started,
                    "error": error})
    return out


def tesseract_text(path: Path, psm: int) -> list[str]:
    """Tesseract's output lines for the grayscale image."""
    from PIL import Image

    from veid_ml import mrz

    with tempfile.TemporaryDirectory() as tmp:
        gray = Path(tmp) / "gray.png"
        Image.open(path).convert("L").save(gray)
        out = subprocess.run(["tesseract", str(gray), "stdout", "--psm", str(psm), "-l", "eng",
                              "-c", f"tessedit_char_whitelist={mrz.MRZ_CHARS}"],
                             capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line.strip()]


def run_tesseract(rows: list[dict], psm: int) -> list[dict]:
    out = []
    for row in rows:
        started = time.perf_counter()
        try:
            raw, error = tesseract_text(row["path"], psm), None
        except (subprocess.CalledProcessError, OSError) as e:
            raw, error = [], f"{type(e).__name__}: {e}"
        seconds = time.perf_counter() - started
        out.append({"mrz_lines": mrz_candidates(raw), "raw_lines": raw, "seconds": seconds, "error": error})
    return out


def run_rapidocr(rows: list[dict], python: str) -> list[dict]:
    """Run scripts/rapidocr_mrz.py with the given interpreter; RuntimeError with its stderr tail when it fails."""
    proc = subprocess.run([python, str(RAPIDOCR_SCRIPT), *[str(row["path"]) for row in rows]],
                          capture_output=True, text=True)
    last = [line for line in proc.stdout.splitlines() if line.strip()][-1:]
    if proc.returncode != 0 or not last:
        raise RuntimeError(f"{RAPIDOCR_SCRIPT.name} exited {proc.returncode}: {proc.stderr.strip()[-1500:]}")
    images = json.loads(last[0])["images"]
    if len(images) != len(rows):
        raise RuntimeError(f"{RAPIDOCR_SCRIPT.name} returned {len(images)} results for {len(rows)} images")
    return [{"mrz_lines": mrz_candidates(im["lines"]), "raw_lines": im["lines"], "seconds": im["seconds"],
             "error": im.get("error")} for im in images]


# --- the command ------------------------------------------------------------------------------------------------

def _fmt_s(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def print_table(rows: list[dict], summaries: dict) -> None:
    print(f"{'engine':10s} {'docs exact':>11s} {'lines exact':>12s} {'valid chk':>10s} {'median s':>9s} "
          f"{'p90 s':>7s}")
    for engine, s in summaries.items():
        print(f"{engine:10s} {s['docs_exact']:>5d}/{s['docs']:<5d} {s['lines_exact']:>6d}/{s['lines']:<5d} "
              f"{s['valid']:>5d}/{s['valid_docs']:<4d} {_fmt_s(s['median_s']):>9s} {_fmt_s(s['p90_s']):>7s}")
    doc_types = sorted({row["doc_type"] for row in rows}, key=list(DOC_LINES).index)
    print("\ndocuments exact by doc_type")
    print(f"{'doc_type':10s} {'N':>3s} " + " ".join(f"{e:>10s}" for e in summaries))
    for t in doc_types:
        n = sum(row["doc_type"] == t for row in rows)
        print(f"{t:10s} {n:3d} " + " ".join(f"{s['by_doc_type'][t]['exact']:>10d}" for s in summaries.values()))


def cmd_mrz_documents(args) -> int:
    name = "bench mrz-documents"
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown or not engines:
        print(f"{name}: unknown engine(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(ENGINES)}",
              file=sys.stderr)
        return 2
    try:
        rows = read_labels(args.docs)
    except LabelError as e:
        print(f"{name}: {e}", file=sys.stderr)
        return 2

    results, skipped = {}, {}
    for engine in engines:
        if engine == "tesseract" and shutil.which("tesseract") is None:
            skipped[engine] = f"`tesseract` is not installed; install it with: {TESSERACT_INSTALL}"
        elif engine == "rapidocr" and not args.rapidocr_python:
            skipped[engine] = f"no --rapidocr-python; set it up with: {RAPIDOCR_SETUP}"
        if engine in skipped:
            print(f"{name}: skipping {engine}: {skipped[engine]}", file=sys.stderr)
            continue
        started = time.perf_counter()
        try:
            if engine == "ours":
                results[engine] = run_ours(rows)
            elif engine == "tesseract":
                results[engine] = run_tesseract(rows, args.tesseract_psm)
            else:
                results[engine] = run_rapidocr(rows, args.rapidocr_python)
        except Exception as e:  # noqa: BLE001 - one engine failing must not lose the others' results
            skipped[engine] = f"failed: {type(e).__name__}: {e}"
            print(f"{name}: skipping {engine}: {skipped[engine]}", file=sys.stderr)
            continue
        print(f"{name}: {engine} read {len(rows)} documents in {time.perf_counter() - started:.1f} s",
              file=sys.stderr)

    for engine, per_doc in results.items():
        for row, r in zip(rows, per_doc):
            r.update(score_document(row["lines"], r["mrz_lines"], row["all_valid"]))
    summaries = {engine: summarise(rows, per_doc) for engine, per_doc in results.items()}
    if summaries:
        print_table(rows, summaries)
    else:
        print(f"{name}: no engine ran", file=sys.stderr)

    if args.json:
        report = {"docs": str(args.docs), "tesseract_psm": args.tesseract_psm, "skipped": skipped,
                  "summary": summaries,
                  "documents": [{"file": row["file"], "doc_type": row["doc_type"], "label": row["lines"],
                                 "all_check_digits_valid": row["all_valid"],
                                 "engines": {engine: {**per_doc[i], "mrz_lines": [normalise(p) for p in
                                                                                  per_doc[i]["mrz_lines"]]}
                                             for engine, per_doc in results.items()}}
                                for i, row in enumerate(rows)]}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(args.json, json.dumps(report, indent=1) + "\n")
        print(f"{name}: wrote {args.json}", file=sys.stderr)
    return 0 if summaries else 1


def register(bench_subparsers) -> None:
    """Add `mrz-documents` to `veid-ml bench`."""
    p = add_command(bench_subparsers, "mrz-documents", cmd_mrz_documents,
                    help="MRZ reading on real document images: ours vs Tesseract vs RapidOCR", description=__doc__)
    p.add_argument("--docs", type=Path, required=True, metavar="DIR", help="folder with the images and labels.tsv")
    p.add_argument("--engines", default=",".join(ENGINES), help=f"comma-separated, default {','.join(ENGINES)}")
    p.add_argument("--rapidocr-python", metavar="PATH",
                   help="interpreter of a venv with rapidocr-onnxruntime installed (else RapidOCR is skipped)")
    p.add_argument("--tesseract-psm", type=int, default=6, choices=(6, 11),
                   help="Tesseract page segmentation mode: 6 one block, 11 sparse text (default 6)")
    p.add_argument("--json", type=Path, metavar="OUT", help="write the summary and per-document predictions here")
