"""The OCR recogniser's input and output contract: its alphabet, its line-crop size and how any crop is fitted to it.

The text-line generator (veid_ml.data.textlines), the recogniser (ml/ocr_extraction), its training task and the
document reader all have to agree on these facts, so they live here and nowhere else. TF-free: data generation and
the reader import it without loading TensorFlow.

ALPHABET is upper- and lower-case: printed fields on cards are often mixed case ("Müller", "12 Aug 1985"), and a
case-folding reader would lose information that downstream field matching can use. The recogniser's class k >= 1 is
ALPHABET[k - 1] (0 is the CTC blank), so changing this string changes the model's output layer.
"""

import cv2
import numpy as np

_NATIONAL_UPPER = "ÀÁÂÄÅÆÇÈÉÊËÍÎÏÑÓÔÖØÚÛÜ"
ALPHABET = (" '-,./0123456789:<ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
            + _NATIONAL_UPPER + _NATIONAL_UPPER.lower() + "ß")

LINE_HEIGHT, LINE_WIDTH = 32, 512  # grey line crop in pixels, text left-aligned


def fit_line(gray: np.ndarray, height: int = LINE_HEIGHT, width: int = LINE_WIDTH) -> np.ndarray:
    """A grey line crop (any size) as the recogniser's input: scaled to `height` with its aspect ratio kept (narrower
    if it would exceed `width`), left-aligned, padded on the right with the crop's median border tone."""
    if gray.ndim != 2 or gray.size == 0:
        raise ValueError(f"expected a non-empty 2-D grey line crop, got shape {gray.shape}")
    h, w = gray.shape
    scale = min(height / h, width / w)
    new_w, new_h = max(1, min(width, int(round(w * scale)))), max(1, min(height, int(round(h * scale))))
    resized = cv2.resize(gray, (new_w, new_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    out = np.full((height, width), np.median(border), np.uint8)
    y0 = (height - new_h) // 2
    out[y0: y0 + new_h, :new_w] = resized
    return out
