"""Text-line crops with ground truth for the OCR model: MRZ lines (OCR-B) and printed document fields.

Each sample is one line of text, scaled to the crop height with its aspect ratio kept and left-aligned, as a line
detector would cut it out of a document photo. Printed fields are drawn in split-specific fonts (test fonts are never
seen in training; see fonts/README.md); MRZ lines use OCR-B in every split, as real MRZs do. The alphabet and the
crop size are the recogniser's (veid_ml.ocr_contract).
"""

from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from veid_ml import mrz, ocr_contract
from veid_ml.data import camera, parallel
from veid_ml.data.identity_fields import mrz_fields, person_fields
from veid_ml.data.rng import sample_rng

FONT_DIR = Path(__file__).parent / "fonts"
MRZ_FONT = "OCRB.otf"
# Printed-field fonts per split: "text" for names/labels, "mono" for numbers and a minority of MRZ lines. The test
# fonts never appear in train or val. Val reuses the train fonts with its own sample streams.
# Many families (grotesque, geometric, narrow, old-style and modern serifs) so the reader learns letter shapes rather
# than a handful of typefaces, which is what the unseen test fonts measure (history: ocr_extraction/NOTES.md).
_TRAIN_FONTS = {
    "text": ["DejaVuSans.ttf", "DejaVuSansCondensed-Bold.ttf", "DejaVuSerif.ttf", "LiberationSans-Regular.ttf",
             "LiberationSans-Bold.ttf", "LiberationSerif-Regular.ttf", "LiberationSansNarrow-Regular.ttf",
             "NimbusSans-Regular.otf", "NimbusSans-Bold.otf", "NimbusSansNarrow-Regular.otf", "NimbusRoman-Regular.otf",
             "URWGothic-Book.otf", "C059-Roman.otf", "P052-Roman.otf"],
    "mono": ["LiberationMono-Regular.ttf", "DejaVuSansMono.ttf", "NimbusMonoPS-Regular.otf"],
}
FONTS = {
    "train": _TRAIN_FONTS,
    "val": _TRAIN_FONTS,
    "test": {"text": ["NotoSans-Regular.ttf", "NotoSerif-Regular.ttf"], "mono": ["FreeMono.ttf"]},
}
MRZ_SHARE = 0.4
# Real cards photographed or scanned whole print their MRZ characters 7-12 px high: a share of the training lines is
# captured (blur, noise, JPEG blocks) at 0.45-0.7 of the crop's scale, where O/0, 3/5, 8/0 and E/t differ by a pixel or
# two. Validation and test lines keep the standard capture (the specification's test set); the recogniser is also
# measured on an all-low-resolution test set.
LOW_RES_SHARE = 0.25
LOW_RES_FACTOR = (0.45, 0.7)
MAX_FIELD_CHARS = 44  # longer printed values wrap onto a second line on real documents; 44 still reads at 32 x 512
_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
LABELS = ["Surname / Nom", "Given names / Prénoms", "Date of birth / Date de naissance", "Nationality / Nationalité",
          "Date of expiry / Date d'expiration", "Document No. / No du document", "Sex / Sexe", "Place of birth",
          "Passport / Passeport", "IDENTITY CARD", "Authority / Autorité", "Type", "Code", "Date of issue",
          "Personal No.", "Signature", "REPUBLIC OF UTOPIA", "Holder's signature"]


@lru_cache(maxsize=256)
def font(name: str, size: int) -> ImageFont.FreeTypeFont:
    """A vendored font at a pixel size. BASIC layout: no shaping library, so glyph placement is FreeType's alone."""
    return ImageFont.truetype(str(FONT_DIR / name), size, layout_engine=ImageFont.Layout.BASIC)


def field_fonts(split: str) -> list[str]:
    if split not in FONTS:
        raise ValueError(f"unknown split {split!r}; expected one of {tuple(FONTS)}")
    return FONTS[split]["text"] + FONTS[split]["mono"]


def format_date(iso: str, style: int) -> str:
    """A date as documents print it; style picks one of the common layouts."""
    year, month, day = iso[:4], int(iso[5:7]), iso[8:10]
    return [
        f"{day} {_MONTHS[month - 1]} {year}",
        f"{day}.{month:02d}.{year}",
        f"{day}/{month:02d}/{year}",
        f"{year}-{month:02d}-{day}",
        f"{day} {month:02d} {year}",
        f"{day} {_MONTHS[month - 1].capitalize()} {year[2:]}",
        f"{day} {_MONTHS[month - 1]}/{_MONTHS[month - 1].capitalize()} {year}",
    ][style]


def _cased(text: str, rng: np.random.Generator) -> str:
    return text.upper() if rng.random() < 0.6 else text


def field_text(person: dict, rng: np.random.Generator) -> str:
    """One printed line from a document: a name, date, number, code, place or label."""
    kind = int(rng.integers(10))
    if kind == 0:
        text = _cased(person["surname"], rng)
    elif kind == 1:
        text = _cased(person["given_names"], rng)
    elif kind == 2:
        text = _cased(f"{person['given_names']} {person['surname']}", rng)
    elif kind in (3, 4):
        text = format_date(person[str(rng.choice(["birth_date", "expiry_date", "issue_date"]))], int(rng.integers(7)))
    elif kind == 5:
        text = person["document_number"] if rng.random() < 0.8 else person["optional_data"] or person["document_number"]
    elif kind == 6:
        sex = person["sex"]
        text = str(rng.choice([sex, f"{sex}/{sex}", f"{person['nationality']}", f"{sex}  {person['nationality']}"]))
    elif kind == 7:
        text = _cased(person["place_of_birth"], rng)
        if rng.random() < 0.3:
            text += ", " + person["nationality"]
    else:
        text = str(rng.choice(LABELS))
        text = text.upper() if rng.random() < 0.3 else text
    if len(text) > MAX_FIELD_CHARS:  # keep the first printed line: cut at a word boundary
        text = text[: MAX_FIELD_CHARS + 1].rsplit(" ", 1)[0][:MAX_FIELD_CHARS]
    return text


def mrz_line(person: dict, rng: np.random.Generator) -> str:
    layout = str(rng.choice(["TD1", "TD2", "TD3"], p=[0.4, 0.2, 0.4]))
    lines = mrz.BUILDERS[layout](mrz_fields(person, layout))
    return lines[int(rng.integers(len(lines)))]


@lru_cache(maxsize=65536)
def glyph(font_name: str, size: int, char: str, stroke: int) -> tuple[np.ndarray, int, int]:
    """One glyph's ink (float32 0..1) and its offset from the pen position at the ascender line; rendered once."""
    f = font(font_name, size)
    ascent, descent = f.getmetrics()
    margin = size + stroke
    canvas = Image.new("L", (int(f.getlength(char)) + 2 * margin, ascent + descent + 2 * margin), 0)
    ImageDraw.Draw(canvas).text((margin, margin), char, font=f, fill=255, stroke_width=stroke, stroke_fill=255)
    ink = np.asarray(canvas, np.float32) / 255.0
    rows, cols = np.flatnonzero(ink.max(axis=1)), np.flatnonzero(ink.max(axis=0))
    if len(rows) == 0:  # a space: no ink, only an advance
        return np.zeros((0, 0), np.float32), 0, 0
    return ink[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1], int(cols[0]) - margin, int(rows[0]) - margin


def render_text_mask(text: str, font_name: str, size: int, rng: np.random.Generator, tracking: float = 0.0,
                     jitter: float = 0.0, stroke: int = 0) -> np.ndarray:
    """Ink coverage (float32 0..1) of one line placed glyph by glyph.

    Placing cached glyphs ourselves gives letter spacing (tracking, in em) and per-glyph baseline jitter (in em) at a
    fraction of the cost of drawing the string character by character.
    """
    f = font(font_name, size)
    ascent, descent = f.getmetrics()
    advances = [f.getlength(c) + tracking * size for c in text]
    margin = size + stroke + 2
    canvas = np.zeros((ascent + descent + 2 * margin, int(sum(max(a, 0) for a in advances)) + 2 * margin + size),
                      np.float32)
    offsets = rng.normal(0.0, jitter * size, len(text)) if jitter > 0 else np.zeros(len(text))
    x = float(margin)
    for c, advance, dy in zip(text, advances, offsets):
        ink, dx, top = glyph(font_name, size, c, stroke)
        if ink.size:
            y0, x0 = margin + top + int(round(dy)), int(round(x)) + dx
            region = canvas[y0: y0 + ink.shape[0], x0: x0 + ink.shape[1]]
            np.maximum(region, ink, out=region)
        x += advance
    return canvas


def _crop_to_ink(mask: np.ndarray) -> np.ndarray:
    rows, cols = np.flatnonzero(mask.max(axis=1) > 0.02), np.flatnonzero(mask.max(axis=0) > 0.02)
    if len(rows) == 0:
        raise ValueError("rendered text has no ink")
    return mask[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1]


def _restyle(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Vary the typeface beyond the font files: width (condensed or extended printing) and a slight slant, so unseen
    typefaces fall inside the training distribution. (Stroke weight comes from the fonts and the bold stroke in
    render_line: thinning strokes would erase dots, accents and commas while their labels stay.)"""
    h, w = mask.shape
    width_scale = float(np.exp(rng.normal(0, 0.1)))
    shear = float(rng.normal(0, 0.06)) if rng.random() < 0.3 else 0.0
    if abs(width_scale - 1) > 0.02 or shear:
        pad = int(abs(shear) * h) + 1
        m = np.float32([[width_scale, -shear, pad + shear * h / 2], [0, 1, 0]])
        mask = cv2.warpAffine(mask, m, (int(w * width_scale) + 2 * pad, h), flags=cv2.INTER_LINEAR)
    return mask


def _tilt(mask: np.ndarray, rng: np.random.Generator, angle_deg: float, perspective: float) -> np.ndarray:
    """Small rotation plus a keystone warp; the output canvas grows so that no ink leaves it."""
    h, w = mask.shape
    pad = int(np.ceil(abs(np.sin(np.radians(angle_deg))) * w / 2 + perspective * h + 2))
    mask = cv2.copyMakeBorder(mask, pad, pad, 2, 2, cv2.BORDER_CONSTANT, value=0)
    h2, w2 = mask.shape
    src = np.float32([[0, 0], [w2, 0], [w2, h2], [0, h2]])
    dst = src + rng.uniform(-perspective * h, perspective * h, (4, 2)).astype(np.float32)
    rot = cv2.getRotationMatrix2D((w2 / 2, h2 / 2), angle_deg, 1.0)
    dst = (np.hstack([dst, np.ones((4, 1), np.float32)]) @ rot.T).astype(np.float32)
    dst -= dst.min(axis=0)
    out_w, out_h = int(np.ceil(dst[:, 0].max())) + 1, int(np.ceil(dst[:, 1].max())) + 1
    return cv2.warpPerspective(mask, cv2.getPerspectiveTransform(src, dst), (out_w, out_h), flags=cv2.INTER_LINEAR)


def guilloche(h: int, w: int, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
    """Security-print background: thin interleaved sinusoidal line families (0..1 line intensity)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    out = np.zeros((h, w), np.float32)
    for _ in range(int(rng.integers(1, 4))):
        period = rng.uniform(6, 18) * scale
        amplitude, wavelength = rng.uniform(3, 25) * scale, rng.uniform(40, 200) * scale
        phase, theta = rng.uniform(0, 2 * np.pi), rng.uniform(0, np.pi)
        cos, sin = float(np.cos(theta)), float(np.sin(theta))  # Python floats keep the arrays float32
        u = x * cos + y * sin
        v = y * cos - x * sin
        wave = (v + amplitude * np.sin(2 * np.pi * u / wavelength + phase)) / period
        line = np.exp(-((wave - np.round(wave)) ** 2) / (2 * (0.06 + 0.05 * rng.random()) ** 2))
        out = np.maximum(out, line * rng.uniform(0.4, 1.0))
    return out


def paper(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Low-frequency blotches plus fibre-like fine noise (zero-mean, about unit scale)."""
    coarse = cv2.resize(rng.normal(0, 1, (max(2, h // 16), max(2, w // 16))).astype(np.float32), (w, h),
                        interpolation=cv2.INTER_CUBIC)
    fine = cv2.GaussianBlur(rng.normal(0, 1, (h, w)).astype(np.float32), (0, 0), 0.7)
    return coarse + 0.5 * fine


def _background(h: int, w: int, rng: np.random.Generator) -> tuple[np.ndarray, float]:
    level = rng.uniform(150, 245)
    bg = np.full((h, w), level, np.float32)
    kind = rng.random()
    if kind < 0.4:
        bg -= guilloche(h, w, rng, scale=h / 48) * rng.uniform(15, 60)
    if 0.25 < kind:
        bg += paper(h, w, rng) * rng.uniform(2, 10)
    return bg, level


def text_line_sample(index: int, split: str, seed: int = 42, height: int = ocr_contract.LINE_HEIGHT,
                     width: int = ocr_contract.LINE_WIDTH, low_res_share: float | None = None):
    """(image uint8 (height, width) grayscale, text, kind) with kind 'mrz' or 'field'. low_res_share: the share of
    lines captured at low resolution (render_line); by default LOW_RES_SHARE for the train split, else none."""
    rng = sample_rng("text_line", split, index, seed)
    person = person_fields(split, index, seed)
    if rng.random() < MRZ_SHARE:
        kind, text = "mrz", mrz_line(person, rng)
        font_name = MRZ_FONT if rng.random() < 0.85 else str(rng.choice(FONTS[split]["mono"]))
        tracking, jitter, shrink = rng.uniform(-0.02, 0.08), rng.uniform(0, 0.015), rng.uniform(0.85, 1.0)
    else:
        kind, text = "field", field_text(person, rng)
        font_name = str(rng.choice(field_fonts(split)))
        tracking, jitter, shrink = rng.uniform(-0.04, 0.15), rng.uniform(0, 0.02), rng.uniform(0.7, 1.0)
    alphabet = set(ocr_contract.ALPHABET)
    if not set(text) <= alphabet:
        raise ValueError(f"generated text {text!r} has characters outside the OCR ALPHABET: {set(text) - alphabet}")
    if low_res_share is None:
        low_res_share = LOW_RES_SHARE if split == "train" else 0.0
    return render_line(text, font_name, rng, tracking, jitter, shrink, height, width, low_res_share), text, kind


def render_line(text: str, font_name: str, rng: np.random.Generator, tracking: float = 0.0, jitter: float = 0.0,
                shrink: float = 1.0, height: int = ocr_contract.LINE_HEIGHT,
                width: int = ocr_contract.LINE_WIDTH, low_res_share: float = 0.0) -> np.ndarray:
    """A given text as a photographed line crop (uint8 (height, width)) in the style of text_line_sample; with
    probability low_res_share captured at LOW_RES_FACTOR of its scale and fitted back up.

    Also used to render real MRZ specimens for evaluation scripts.
    """
    size = int(rng.integers(16, 44))  # rendering size: small sizes get upscaled (soft), large ones downscaled
    stroke = int(rng.random() < 0.15 and size >= 28)
    mask = render_text_mask(text, font_name, size, rng, tracking, jitter, stroke)
    mask = _restyle(mask, rng)
    mask = _crop_to_ink(_tilt(mask, rng, float(np.clip(rng.normal(0, 0.7), -2, 2)), rng.uniform(0, 0.06)))

    top, bottom = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    left, right = int(rng.integers(1, 12)), int(rng.integers(2, 8))
    avail_h, avail_w = height - top - bottom, width - left - right
    scale = min(avail_h / mask.shape[0], avail_w / mask.shape[1]) * shrink
    new_w = min(avail_w, max(1, int(mask.shape[1] * scale)))
    new_h = min(avail_h, max(1, int(mask.shape[0] * scale)))
    mask = cv2.resize(mask, (new_w, new_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    y0 = top + int(rng.integers(0, avail_h - new_h + 1))
    assert y0 + new_h <= height and left + new_w <= width, "text must fit inside the crop"

    bg, level = _background(height, width, rng)
    # Print contrast signal (paper - ink) / paper >= 0.6, the level commonly required of machine-read OCR print
    # (ISO 1831; the MRZ is such print); lighter ink gives unreadable lines whose labels the model would have to fit.
    ink = rng.uniform(0, 0.4 * level)
    alpha = np.zeros((height, width), np.float32)
    alpha[y0: y0 + new_h, left: left + new_w] = np.clip(mask, 0, 1) * rng.uniform(0.8, 1.0)
    gray = bg * (1 - alpha) + ink * alpha
    params = camera.random_params(rng, rng.uniform(0.2, 1.0))
    if low_res_share and rng.random() < low_res_share:  # captured small, then fitted up as the reader fits a crop
        factor = rng.uniform(*LOW_RES_FACTOR)
        small = cv2.resize(gray, (round(width * factor), round(height * factor)), interpolation=cv2.INTER_AREA)
        return cv2.resize(capture_gray(small, params, rng), (width, height), interpolation=cv2.INTER_LINEAR)
    return capture_gray(gray, params, rng)


def capture_gray(gray: np.ndarray, params: dict, rng: np.random.Generator) -> np.ndarray:
    """camera.capture for a single-channel image (0..255 float): same parameters and steps, a third of the work.

    White balance becomes the mean channel gain, which is what it does to the luminance of a grey scene.
    """
    x = np.clip(gray / 255.0 * params["exposure"] * float(np.mean(params["white_balance"])), 0.0, 1.0)
    x = x ** params["gamma"]
    if params["blur_sigma"] > 0.3:
        x = cv2.GaussianBlur(x, (0, 0), params["blur_sigma"])
    if params["motion_blur"] >= 1.0:
        x = camera.motion_blur(x, params["motion_blur"], params["motion_angle"])
    x = x * 255.0 + rng.normal(0.0, params["noise_sigma"], size=x.shape).astype(np.float32)
    return camera.jpeg(np.clip(np.rint(x), 0, 255).astype(np.uint8), params["jpeg_quality"])


def text_line_dataset(split: str, n: int, seed: int = 42, height: int = ocr_contract.LINE_HEIGHT,
                      width: int = ocr_contract.LINE_WIDTH, workers=None, low_res_share: float | None = None):
    """(images uint8 (N, height, width), texts, kinds) for samples 0..n-1 of a split (low_res_share: see
    text_line_sample)."""
    samples = parallel.generate(text_line_sample, n, workers=workers, desc=f"text lines ({split})", split=split,
                                seed=seed, height=height, width=width, low_res_share=low_res_share)
    images = np.stack([s[0] for s in samples]) if samples else np.zeros((0, height, width), np.uint8)
    return images, [s[1] for s in samples], [s[2] for s in samples]


def write_contact_sheets(out_dir, n: int = 28, seed: int = 42) -> Path:
    """text_lines.png: train and test crops, each over its ground-truth text (for eyeballing)."""
    rows = []
    caption_font = font("DejaVuSans.ttf", 13)
    for split in ("train", "test"):
        for i in range(n // 2):
            image, text, kind = text_line_sample(i, split, seed)
            caption = Image.new("L", (image.shape[1], 18), 255)
            ImageDraw.Draw(caption).text((2, 1), f"{split} {kind}: {text}", font=caption_font, fill=0)
            rows += [np.asarray(caption), image, np.full((4, image.shape[1]), 255, np.uint8)]
    out = Path(out_dir) / "text_lines.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.vstack(rows)).save(out)
    return out
