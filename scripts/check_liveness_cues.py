"""Trivial-cue check: can global image statistics alone tell bona fide faces from presentation attacks?

A logistic regression on per-image global features (channel means, contrast, saturation, sharpness, JPEG re-encode size)
is trained on half of a liveness set and scored on the other half. Near 50% means the generator leaks no global cue
and a detector must learn the attacks' local traces. Usage: python scripts/check_liveness_cues.py [n_samples]
"""

import io
import sys

import cv2
import numpy as np
from PIL import Image
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from veid_ml.data.attacks import liveness_dataset


def global_features(img: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
    hsv = cv2.cvtColor(img, cv2.COLOR_RGB2HSV)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=75)
    return np.array([*img.reshape(-1, 3).mean(0), grey.std(), hsv[..., 1].mean(),
                     np.log1p(cv2.Laplacian(grey, cv2.CV_64F).var()), np.log(buf.tell())])


def cue_accuracy(n: int = 3000, split: str = "val", seed: int = 42, workers: int | None = None) -> float:
    """Held-out accuracy of the global-feature classifier (bona fide vs attack)."""
    images, live, _ = liveness_dataset(split, n, seed=seed, workers=workers)
    x = np.stack([global_features(im) for im in images])
    half = n // 2
    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    clf.fit(x[:half], live[:half])
    return float(clf.score(x[half:], live[half:]))


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    print(f"global-cue accuracy (bona fide vs attack, {n} samples, chance = 0.5): {cue_accuracy(n):.3f}")
