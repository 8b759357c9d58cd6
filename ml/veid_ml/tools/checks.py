"""`veid-ml check mrz-specimens` and `veid-ml check liveness-cues`: the MRZ parser and the liveness data, checked.

mrz-specimens: checks veid_ml.mrz against real MRZ specimens (ICAO 9303 figures and open-source test suites). For every
row of the TSV, parses the lines and compares "all check digits valid" with the file's verdict. Exits non-zero on any
disagreement, or if a specimen's format is detected differently.

liveness-cues: can global image statistics alone tell bona fide faces from presentation attacks? A logistic regression
on per-image global features (channel means, contrast, saturation, sharpness, JPEG re-encode size) is trained on half
of a synthetic liveness set and scored on the other half. Near 50% means the generator leaks no global cue and a
detector must learn the attacks' local traces.
"""

import csv
import io
import sys
from pathlib import Path

from veid_ml.tools import add_command

# the TSV spells the visa formats without the hyphen veid_ml.mrz reports
FORMAT_NAMES = {"MRVA": "MRV-A", "MRVB": "MRV-B"}


def cmd_mrz_specimens(args) -> int:
    from veid_ml.mrz import parse_mrz

    if not args.specimens.is_file():
        print(f"check mrz-specimens: no such file: {args.specimens}", file=sys.stderr)
        return 2
    with open(args.specimens, encoding="utf-8", newline="") as f:
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


def global_features(img):
    """Channel means, contrast, saturation, log sharpness and log JPEG size of one RGB uint8 image."""
    import cv2
    import numpy as np
    from PIL import Image

    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=75)
    return np.array([*img.reshape(-1, 3).mean(0), grey.std(), hsv[..., 1].mean(),
                     np.log1p(cv2.Laplacian(grey, cv2.CV_64F).var()), np.log(buf.tell())])


def cue_accuracy(n: int = 3000, split: str = "val", seed: int = 42, workers: int | None = None) -> float:
    """Held-out accuracy of the global-feature classifier (bona fide vs attack)."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from veid_ml.data.attacks import liveness_dataset

    images, live, _ = liveness_dataset(split, n, seed=seed, workers=workers)
    x = np.stack([global_features(im) for im in images])
    half = n // 2
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    clf.fit(x[:half], live[:half])
    return float(clf.score(x[half:], live[half:]))


def cmd_liveness_cues(args) -> int:
    if args.samples < 4:
        print("check liveness-cues: --samples must be >= 4", file=sys.stderr)
        return 2
    print(f"global-cue accuracy (bona fide vs attack, {args.samples} samples, chance = 0.5): "
          f"{cue_accuracy(args.samples):.3f}")
    return 0


def register(check_subparsers) -> None:
    """Add `mrz-specimens` and `liveness-cues` to `veid-ml check`."""
    sections = __doc__.split("\n\n")
    m = add_command(check_subparsers, "mrz-specimens", cmd_mrz_specimens,
                    help="veid_ml.mrz's check-digit verdicts vs real MRZ specimens", description=sections[1])
    m.add_argument("--specimens", type=Path, required=True, metavar="TSV",
                   help="mrz_specimens.tsv (columns format, line1-3, all_check_digits_valid)")

    c = add_command(check_subparsers, "liveness-cues", cmd_liveness_cues,
                    help="whether global image statistics alone separate the synthetic bona fide faces from "
                         "attacks (should be near chance)", description=sections[2])
    c.add_argument("--samples", type=int, default=3000, help="images generated, half to fit, half to score")
