"""Synthetic document images framed the way real inputs arrive, with the MRZ band marked: the MRZ locator's data.

A scene starts from documents.render_page (a TD1 card or a TD3 passport page with its MRZ) and frames it as one of:
- tight: the page cut close (a scan or a specimen image), sometimes stacked with the card's other side (no MRZ);
- scan: the page anywhere on a white sheet with other printed text around it;
- photo: the page in perspective on a desk, light or dark;
- booklet: a passport spread, the data page below an opposite page, on black or dark cloth, in perspective.
Then: a quarter turn (0/90/180/270) plus a small angle, stamps ("SPECIMEN") that may cross the MRZ, a random native
resolution (MRZ characters from ~5 to ~40 px high), and the shared camera step (blur, noise, JPEG).
The target is the MRZ band (the lines' union plus half a character height around it) at the locator's output grid.
Pure functions of (index, split, seed).
"""

import cv2
import numpy as np
from PIL import Image, ImageDraw

from veid_ml import mrz_locator
from veid_ml.data import camera
from veid_ml.data.documents import render_page, security_background
from veid_ml.data.identity_fields import person_fields
from veid_ml.data.parallel import generate
from veid_ml.data.rng import sample_rng
from veid_ml.data.textlines import FONTS, MRZ_FONT, font

FRAMINGS = ("tight", "scan", "photo", "booklet")
FRAMING_P = (0.35, 0.25, 0.25, 0.15)
TURN_P = (0.6, 0.15, 0.1, 0.15)  # quarter turns 0, 90, 180, 270 degrees counter-clockwise
STAMPS = ("SPECIMEN", "SAMPLE", "MUSTER", "SPÉCIMEN", "VOID", "ESPÉCIMEN")
DISTRACTOR_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 <"


def _mottle(h: int, w: int, rng: np.random.Generator, amplitude: float) -> np.ndarray:
    """float32 (h, w, 1): smooth low-frequency unevenness of a sheet or desk (cheap: drawn at 1/16 size)."""
    small = rng.normal(0, amplitude, (max(2, h // 16), max(2, w // 16))).astype(np.float32)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)[:, :, None]


def _band(boxes: dict) -> np.ndarray:
    """The MRZ band's corners (4, 2) in page pixels: the lines' union grown by half a character height."""
    lines = np.array([v for k, v in boxes.items() if k.startswith("mrz_line_")], np.float32)
    x0, y0 = lines[:, :2].min(axis=0)
    x1, y1 = lines[:, 2:].max(axis=0)
    pad = 0.5 * float(np.median(lines[:, 3] - lines[:, 1]))
    return np.float32([[x0 - pad, y0 - pad], [x1 + pad, y0 - pad], [x1 + pad, y1 + pad], [x0 - pad, y1 + pad]])


def _no_mrz_side(page: np.ndarray, band: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The card's other side: the same page with its MRZ band painted over (a front without a zone)."""
    out = page.copy()
    y0 = max(0, int(band[:, 1].min()) - 4)
    out[y0:] = security_background(out.shape[0] - y0, out.shape[1], rng).astype(np.uint8)
    return out


def _text_lines(canvas: np.ndarray, rng: np.random.Generator, count: int, height: tuple, keep_out=None) -> None:
    """Random printed lines (letters, digits, some '<' runs, other fonts and sizes) drawn into canvas in place."""
    img = Image.fromarray(canvas)
    draw = ImageDraw.Draw(img)
    h, w = canvas.shape[:2]
    names = FONTS["train"]["text"] + FONTS["train"]["mono"] + [MRZ_FONT]
    for _ in range(count):
        size = int(rng.uniform(*height))
        f = font(str(rng.choice(names)), max(6, size))
        n = int(rng.integers(4, 40))
        text = "".join(rng.choice(list(DISTRACTOR_CHARS), n))
        x, y = rng.uniform(-0.1, 0.9) * w, rng.uniform(0, 1) * h
        if keep_out is not None and keep_out[0] - size < y < keep_out[1] + size:
            continue
        ink = tuple(int(v) for v in rng.integers(0, 90, 3))
        draw.text((x, y), text, font=f, fill=ink)
    if rng.random() < 0.3:  # a barcode
        bw, bh = int(rng.uniform(0.15, 0.4) * w), int(rng.uniform(0.03, 0.1) * h)
        x0, y0 = int(rng.uniform(0, w - bw)), int(rng.uniform(0, h - bh))
        bars = np.repeat(rng.random(bw // 2 + 1) < 0.5, 2)[:bw]
        region = np.asarray(img)[y0:y0 + bh, x0:x0 + bw].copy()
        region[:, bars[:region.shape[1]]] = 20
        img.paste(Image.fromarray(region), (x0, y0))
    canvas[:] = np.asarray(img)


def _stamp(canvas: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A translucent rubber stamp or overprint word across the page (it may cross the MRZ)."""
    h, w = canvas.shape[:2]
    layer = Image.new("L", (w, h), 0)
    size = int(rng.uniform(0.08, 0.2) * min(h, w) + 8)
    ImageDraw.Draw(layer).text((rng.uniform(0, 0.5) * w, rng.uniform(0, 0.9) * h), str(rng.choice(STAMPS)),
                               font=font(str(rng.choice(FONTS["train"]["text"])), size), fill=255)
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), float(rng.uniform(-40, 40)), 1.0)
    alpha = cv2.warpAffine(np.asarray(layer), rot, (w, h))
    strength = np.float32(rng.uniform(0.25, 0.7) / 255)
    colour = np.array([[200, 30, 40], [40, 60, 190], [120, 120, 120]], np.float32)[int(rng.integers(3))]
    ys, xs = np.nonzero(alpha)
    if not len(ys):
        return canvas
    region = np.s_[ys.min():ys.max() + 1, xs.min():xs.max() + 1]  # only where the stamp is
    a = alpha[region][:, :, None].astype(np.float32) * strength
    out = canvas.copy()
    out[region] = (canvas[region] * (1 - a) + colour * a).astype(np.uint8)
    return out


def _canvas(page: np.ndarray, band: np.ndarray, framing: str,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, float]:
    """(canvas RGB uint8, band corners in canvas pixels, perspective strength) for one framing."""
    ph, pw = page.shape[:2]
    if framing in ("tight", "scan") and rng.random() < 0.4:  # the other side above (or beside) the MRZ side
        other = _no_mrz_side(page, band, rng)
        gap = int(rng.uniform(0, 0.15) * ph)
        if rng.random() < 0.75:
            stack = np.full((2 * ph + gap, pw, 3), 255, np.uint8)
            stack[:ph], stack[ph + gap:] = other, page
            band = band + np.float32([0, ph + gap])
        else:
            stack = np.full((ph, 2 * pw + gap, 3), 255, np.uint8)
            stack[:, :pw], stack[:, pw + gap:] = other, page
            band = band + np.float32([pw + gap, 0])
        page, (ph, pw) = stack, stack.shape[:2]
    if framing == "tight":
        m = rng.uniform(-0.02, 0.05, 4) * np.array([pw, ph, pw, ph])  # a few px in or out on each side
        canvas = np.full((int(ph + m[1] + m[3]), int(pw + m[0] + m[2]), 3), int(rng.uniform(200, 256)), np.uint8)
        x0, y0 = int(m[0]), int(m[1])
        src = page[max(0, -y0):ph - max(0, -int(m[3])), max(0, -x0):pw - max(0, -int(m[2]))]
        canvas[max(0, y0):max(0, y0) + src.shape[0], max(0, x0):max(0, x0) + src.shape[1]] = src[
            :canvas.shape[0] - max(0, y0), :canvas.shape[1] - max(0, x0)]
        return canvas, band + np.float32([x0, y0]), 0.0
    if framing == "scan":
        sheet_w = int(pw / rng.uniform(0.45, 0.85))
        sheet_h = int(sheet_w * rng.uniform(1.0, 1.42))
        canvas = np.clip(250 + _mottle(sheet_h, sheet_w, rng, 3), 0, 255).astype(np.uint8).repeat(3, 2)
        x0, y0 = int(rng.uniform(0, sheet_w - pw)), int(rng.uniform(0, max(1, sheet_h - ph)))
        canvas = canvas if sheet_h >= ph + y0 else np.pad(canvas, ((0, ph + y0 - sheet_h), (0, 0), (0, 0)),
                                                          constant_values=250)
        char = float(band[2, 1] - band[0, 1]) / 4
        _text_lines(canvas, rng, int(rng.integers(3, 25)), (0.6 * char, 2.5 * char), keep_out=(y0, y0 + ph))
        canvas[y0:y0 + ph, x0:x0 + pw] = page
        return canvas, band + np.float32([x0, y0]), 0.03
    if framing == "booklet":
        opposite = security_background(ph, pw, rng).astype(np.uint8)
        char = float(band[2, 1] - band[0, 1]) / 4
        _text_lines(opposite, rng, int(rng.integers(0, 12)), (0.8 * char, 2.0 * char))
        spread = np.concatenate([opposite, np.full((int(rng.uniform(2, 8)), pw, 3), 90, np.uint8), page])
        band = band + np.float32([0, spread.shape[0] - ph])
        page, (ph, pw) = spread, spread.shape[:2]
    border = int(rng.uniform(0.1, 0.5) * max(ph, pw))
    dark = framing == "booklet" or rng.random() < 0.5
    lo, hi = (0, 60) if dark else (90, 230)
    desk = (np.full(3, rng.uniform(lo, hi)) * rng.uniform(0.8, 1.2, 3)).clip(0, 255)
    canvas = np.empty((ph + 2 * border, pw + 2 * border, 3), np.uint8)
    canvas[:] = desk.astype(np.uint8)
    canvas = np.clip(canvas + _mottle(*canvas.shape[:2], rng, rng.uniform(2, 10)), 0, 255).astype(np.uint8)
    canvas[border:border + ph, border:border + pw] = page
    return canvas, band + np.float32([border, border]), 0.08


def scene(index: int, split: str, seed: int = 42) -> tuple[np.ndarray, np.ndarray]:
    """(image RGB uint8 at its native resolution, MRZ band corners (4, 2) float32 in that image's pixels)."""
    rng = sample_rng("mrz_scene", split, index, seed)
    layout = "TD1" if rng.random() < 0.5 else "TD3"
    person = person_fields(split, index, seed)
    page, _, _, boxes = render_page(person, layout, split, index, seed, rng)
    band = _band(boxes)
    framing = FRAMINGS[int(rng.choice(len(FRAMINGS), p=FRAMING_P))]
    canvas, band, perspective = _canvas(page, band, framing, rng)
    if rng.random() < 0.35:
        canvas = _stamp(canvas, rng)
    h, w = canvas.shape[:2]
    # native size: the MRZ character height in the final image, drawn log-uniform
    char = float(band[2, 1] - band[0, 1]) / (4 if layout == "TD1" else 3.2)
    scale = float(np.exp(rng.uniform(np.log(5), np.log(40)))) / char
    scale = min(scale, 1000 / max(h, w))  # the locator sees 512 px: larger natives only cost time
    turn = int(rng.choice(4, p=TURN_P))
    angle = np.radians(90 * turn + rng.normal(0, 2.5 if framing in ("photo", "booklet") else 1.0))
    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]]) - np.float32([w / 2, h / 2])
    rot = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]], np.float32)
    dst = (corners * scale) @ rot.T
    dst = dst + rng.uniform(-perspective, perspective, (4, 2)).astype(np.float32) * scale * max(h, w)
    dst -= dst.min(axis=0)
    out_w, out_h = (int(np.ceil(v)) + 1 for v in dst.max(axis=0))
    homography = cv2.getPerspectiveTransform(corners + np.float32([w / 2, h / 2]), dst.astype(np.float32))
    fill = tuple(int(v) for v in canvas[0, 0])
    image = cv2.warpPerspective(canvas, homography, (out_w, out_h), flags=cv2.INTER_AREA if scale < 1 else
                                cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=fill)
    band = cv2.perspectiveTransform(band[None], homography)[0]
    image = camera.capture(image, camera.random_params(rng, float(rng.uniform(0.1, 0.8))), rng)
    return image, band.astype(np.float32)


def band_target(band: np.ndarray, image_shape: tuple) -> np.ndarray:
    """float32 (GRID, GRID, 2): the share of each output cell inside the band and inside its upper half (band corners
    in reading order: top-left, top-right, bottom-right, bottom-left), for an image of image_shape."""
    scale = mrz_locator.input_scale(image_shape)
    fine = mrz_locator.GRID * 8
    pts = band * scale * fine / mrz_locator.INPUT_SIZE
    upper = np.float32([pts[0], pts[1], (pts[1] + pts[2]) / 2, (pts[0] + pts[3]) / 2])
    out = []
    for quad in (pts, upper):
        mask = np.zeros((fine, fine), np.uint8)
        cv2.fillPoly(mask, [np.rint(quad * 16).astype(np.int32)], 255, lineType=cv2.LINE_8, shift=4)
        out.append(cv2.resize(mask.astype(np.float32) / 255, (mrz_locator.GRID, mrz_locator.GRID),
                              interpolation=cv2.INTER_AREA))
    return np.stack(out, axis=-1)


def locator_sample(index: int, split: str, seed: int = 42) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(locator input uint8 (INPUT_SIZE, INPUT_SIZE), band target float16 (GRID, GRID, 2), band corners float32
    (4, 2) in input px, reading order)."""
    image, band = scene(index, split, seed)
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return (mrz_locator.locator_input(gray), band_target(band, gray.shape).astype(np.float16),
            band * np.float32(mrz_locator.input_scale(gray.shape)))


def locator_dataset(split: str, n: int, seed: int = 42, workers: int | None = None):
    """(inputs uint8 (n, INPUT_SIZE, INPUT_SIZE), targets float16 (n, GRID, GRID, 2), corners float32 (n, 4, 2))."""
    samples = generate(locator_sample, n, workers, desc=f"mrz scenes/{split}", split=split, seed=seed)
    x, y, corners = zip(*samples)
    return np.stack(x), np.stack(y), np.stack(corners)
