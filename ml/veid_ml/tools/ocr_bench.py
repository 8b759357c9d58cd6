"""`veid-ml bench tesseract` and `veid-ml bench ocr-specimens`: how well the approved OCR model reads.

tesseract: our OCR model vs Tesseract (LSTM engine, --psm 7: one text line) on the same held-out synthetic test lines.
Prints CER, line exact match and ms per line for both, on all test lines and on the MRZ lines alone (Tesseract gets the
MRZ character whitelist there, which only helps it). Tesseract reads all lines in one process from a list file, so its
ms/line does not include process start-up; ours is one single-line request to the SavedModel.

ocr-specimens: renders every line of the real specimen MRZs in OCR-B twice, clean (black on white) and degraded (the
text-line generator's print and camera pipeline), reads them with the approved model and prints the line and document
exact-match shares and whether the read-out's check digits agree with the file's verdict.
"""

import csv
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from veid_ml import determinism, registry
from veid_ml.tools import add_command

TESSERACT_INSTALL = "sudo apt-get install tesseract-ocr tesseract-ocr-eng"


def _ocr_model_dir() -> Path:
    spec = registry.get("ocr_extraction")
    return spec.weights_dir / spec.artifact


def tesseract_lines(images, extra_args: list[str]) -> tuple[list[str], float]:
    """Texts and ms per line; every crop is a PNG listed in one file so Tesseract starts once."""
    from PIL import Image

    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, image in enumerate(images):
            paths.append(Path(tmp) / f"{i:05d}.png")
            Image.fromarray(image).save(paths[-1])
        listing = Path(tmp) / "lines.txt"
        listing.write_text("\n".join(str(p) for p in paths) + "\n")
        started = time.perf_counter()
        out = subprocess.run(["tesseract", str(listing), "stdout", "--psm", "7", "-l", "eng", *extra_args],
                             capture_output=True, text=True, check=True).stdout
        ms = (time.perf_counter() - started) * 1000 / len(images)
    pages = out.split("\f")[: len(images)]
    return [p.strip() for p in pages] + [""] * (len(images) - len(pages)), ms


def model_lines(serve, images) -> tuple[list[str], float]:
    """Texts (batched) and ms per line of single-line requests (the first 100 lines)."""
    from ocr_extraction.task import as_input, recognise

    texts = recognise(serve, images)
    started = time.perf_counter()
    for image in images[:100]:
        serve(image=as_input(image[None]))["text"].numpy()
    return texts, (time.perf_counter() - started) * 1000 / min(100, len(images))


def cmd_tesseract(args) -> int:
    if shutil.which("tesseract") is None:
        print(f"bench tesseract: `tesseract` is not installed; install it with: {TESSERACT_INSTALL}", file=sys.stderr)
        return 2
    determinism.configure(args.seed, reexec=False)
    from ocr_extraction.task import text_metrics

    from veid_ml import export, mrz
    from veid_ml.data import textlines

    images, texts, kinds = textlines.text_line_dataset("test", args.lines, seed=args.seed)
    serve = export.load_serving(_ocr_model_dir())
    mrz_idx = [i for i, k in enumerate(kinds) if k == "mrz"]
    whitelist = ["-c", f"tessedit_char_whitelist={mrz.MRZ_CHARS}"]
    rows = []
    for name, idx, tess_args in (("all test lines", list(range(len(texts))), []), ("MRZ lines", mrz_idx, whitelist)):
        sub_images, truth = images[idx], [texts[i] for i in idx]
        tess, tess_ms = tesseract_lines(sub_images, tess_args)
        ours, our_ms = model_lines(serve, sub_images)
        if name == "MRZ lines":  # Tesseract splits MRZ runs into words; spaces are not MRZ characters
            tess = [t.replace(" ", "") for t in tess]
        for engine, pred, ms in (("tesseract", tess, tess_ms), ("ours", ours, our_ms)):
            m = text_metrics(truth, pred)
            rows.append((name, engine, len(truth), m["cer"], m["line_exact_match"], ms))
    print(f"{'set':16s} {'engine':10s} {'lines':>5s} {'CER':>8s} {'exact':>7s} {'ms/line':>8s}")
    for name, engine, n, cer, exact, ms in rows:
        print(f"{name:16s} {engine:10s} {n:5d} {cer:8.4f} {exact:7.3f} {ms:8.2f}")
    return 0


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
    """Render, read and score every specimen MRZ of the TSV, clean and degraded; prints each miss and the shares."""
    determinism.configure(seed, reexec=False)
    import numpy as np
    from ocr_extraction.task import recognise

    from veid_ml import export, mrz
    from veid_ml.data import textlines
    from veid_ml.data.rng import sample_rng

    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    serve = export.load_serving(_ocr_model_dir())
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


def cmd_ocr_specimens(args) -> int:
    if not args.specimens.is_file():
        print(f"bench ocr-specimens: no such file: {args.specimens}", file=sys.stderr)
        return 2
    read_specimens(args.specimens, args.seed)
    return 0


def register(bench_subparsers) -> None:
    """Add `tesseract` and `ocr-specimens` to `veid-ml bench`."""
    sections = __doc__.split("\n\n")
    t = add_command(bench_subparsers, "tesseract", cmd_tesseract,
                    help="the OCR model vs Tesseract on held-out synthetic lines", description=sections[1])
    t.add_argument("--lines", type=int, default=300, help="held-out test lines to read (default 300)")
    t.add_argument("--seed", type=int, default=determinism.DEFAULT_SEED)

    s = add_command(bench_subparsers, "ocr-specimens", cmd_ocr_specimens,
                    help="the OCR model reading real ICAO specimen MRZs, rendered", description=sections[2])
    s.add_argument("--specimens", type=Path, required=True, metavar="TSV",
                   help="mrz_specimens.tsv (columns format, line1-3, all_check_digits_valid)")
    s.add_argument("--seed", type=int, default=determinism.DEFAULT_SEED)
