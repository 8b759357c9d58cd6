"""Our OCR model vs Tesseract (LSTM engine, --psm 7: one text line) on the same held-out synthetic test lines.

Installs Debian's tesseract-ocr and tesseract-ocr-eng with apt-get when `tesseract` is missing. Prints CER, line
exact match and ms per line for both, on all test lines and on the MRZ lines alone (Tesseract gets the MRZ character
whitelist there, which only helps it). Tesseract reads all lines in one process from a list file, so its ms/line does
not include process start-up; ours is one single-line request to the SavedModel.

    python scripts/bench_tesseract.py [--lines 300]
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ml"))

from veid_ml import determinism  # noqa: E402

MODEL_DIR = Path(__file__).resolve().parents[1] / "ml" / "ocr_extraction" / "weights" / "ocr_model"


def ensure_tesseract() -> str:
    if shutil.which("tesseract") is None:
        subprocess.run(["apt-get", "install", "-y", "tesseract-ocr", "tesseract-ocr-eng"], check=True)
    return shutil.which("tesseract")


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
    from ocr_extraction.train import as_input, recognise

    texts = recognise(serve, images)
    started = time.perf_counter()
    for image in images[:100]:
        serve(image=as_input(image[None]))["text"].numpy()
    return texts, (time.perf_counter() - started) * 1000 / min(100, len(images))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=300)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    ensure_tesseract()
    determinism.configure(args.seed, reexec=False)
    from ocr_extraction.train import text_metrics
    from veid_ml import export, mrz
    from veid_ml.data import textlines

    images, texts, kinds = textlines.text_line_dataset("test", args.lines, seed=args.seed)
    serve = export.load_serving(MODEL_DIR)
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


if __name__ == "__main__":
    main()
