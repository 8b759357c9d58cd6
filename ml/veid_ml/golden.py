"""Golden files for the Go package (pkg/inference): inputs as PNG and the VEID results Python computed from them.

    python -m veid_ml.golden OUT_DIR [--per-kind N]

OUT_DIR/cases.json lists, per demo case (veid_ml.demo_cases), the selfie and document PNGs (8-bit RGB: lossless, so
Go's image/png decodes the very pixels Python scored), the document's located text lines as one grey PNG (the
recogniser's 32 x 512 inputs stacked, MRZ lines first: locating the card is OpenCV image processing the Go package
does not port, see pkg/inference/README.md) and Python's result: score, decision, reason codes and components. Go
must reproduce all of them exactly (`go test ./...` in pkg/inference reads VEID_GOLDEN_DIR, default testdata/golden).
"decode" lists PNGs in other pixel modes (grey, alpha, palette, 16-bit) with the sha256 of the RGB bytes Python's
images.load_rgb makes of them: Go's decoder must follow the same conversion rule.

Results depend on the CPU's float kernels until the models are integer-exact (the next issue): generate the golden
files on the machine that runs the Go test (tests/test_go_inference.py does).
"""

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

def _png(path: Path, array: np.ndarray) -> str:
    Image.fromarray(array).save(path, format="PNG")
    return path.name


def decode_cases(out_dir: Path) -> list[dict]:
    """PNGs in the modes a service receives, and the sha256 of the RGB bytes load_rgb makes of each."""
    from veid_ml import images

    rng = np.random.default_rng(7)
    rgb = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    alpha = rng.integers(0, 256, (40, 48), dtype=np.uint8)
    variants = {
        "rgb8": Image.fromarray(rgb),
        "grey8": Image.fromarray(rgb[..., 0]),
        "rgba8": Image.fromarray(np.dstack([rgb, alpha])),
        "grey_alpha8": Image.fromarray(np.dstack([rgb[..., 0], alpha])).convert("LA"),
        "palette": Image.fromarray(rgb).quantize(64),
        "rgb16": None,
        "grey16": Image.fromarray((rgb[..., 0].astype(np.uint16) * 257 + 3).astype(np.uint16)),
    }
    out = []
    for name, img in variants.items():
        path = out_dir / f"decode_{name}.png"
        if name == "rgb16":  # Pillow cannot write 16-bit RGB; OpenCV can (BGR order on disk is its business)
            import cv2

            cv2.imwrite(str(path), (rgb[..., ::-1].astype(np.uint16) * 257 + 5))
        else:
            img.save(path, format="PNG")
        decoded = images.load_rgb(path)
        out.append({"file": path.name, "height": decoded.shape[0], "width": decoded.shape[1],
                    "rgb_sha256": hashlib.sha256(decoded.tobytes()).hexdigest()})
    return out


def comparable(result: dict) -> dict:
    """What Go (and another CPU) must reproduce of a VEID result, as JSON values: score, decision, reason codes and
    components (reason texts, model digests and version are not outputs of the inputs)."""
    return json.loads(json.dumps({"score": result["score"], "decision": result["decision"],
                                  "reason_codes": [r["code"] for r in result["reasons"]],
                                  "components": result["components"]}))


def write(out_dir: Path, per_kind: int = 1) -> Path:
    """Write the golden files for per_kind cases of every demo kind; returns cases.json's path."""
    from veid_ml import demo_cases
    from veid_ml.api import Verifier

    out_dir.mkdir(parents=True, exist_ok=True)
    verifier = Verifier.load()
    entries = []
    for case in demo_cases.cases(per_kind, demo_cases.TODAY):
        name = case["name"]
        result = verifier.verify(case["selfie"], case["document"], today=demo_cases.TODAY)
        entry = {"name": name, "selfie": _png(out_dir / f"{name}_selfie.png", case["selfie"]),
                 "document": _png(out_dir / f"{name}_document.png", case["document"]),
                 "lines": None, "mrz_line_count": 0, "locate_error": None}
        try:
            located = verifier.locate_document(case["document"])
            entry["lines"] = _png(out_dir / f"{name}_lines.png",
                                  np.concatenate([located.mrz_lines, located.field_lines]).reshape(-1, 512))
            entry["mrz_line_count"] = len(located.mrz_lines)
        except ValueError as e:
            entry["locate_error"] = str(e)
        entry["result"] = comparable(result)
        entries.append(entry)
        print(f"{name}: {result['decision']} {result['score']}", flush=True)
    doc = {"version": result["version"], "today": demo_cases.TODAY.isoformat(), "models": verifier.digests,
           "cases": entries, "decode": decode_cases(out_dir)}
    path = out_dir / "cases.json"
    path.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m veid_ml.golden", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--per-kind", type=int, default=1)
    args = p.parse_args(argv)
    print(write(args.out_dir, args.per_kind))
    return 0


if __name__ == "__main__":
    sys.exit(main())
