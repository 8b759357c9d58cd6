"""Whole ID documents: a TD1 card or TD3 passport data page, photographed, with the boxes of every field.

The page is drawn flat at a fixed resolution (TD1 85.6 x 54 mm at 7.5 px/mm, TD3 125 x 88 mm at 6 px/mm): security-print
background, header, holder photo (veid_ml.data.faces), labelled fields in the split's fonts and the MRZ band in OCR-B at
the ICAO 2.54 mm character pitch. A random perspective warp puts it on a desk, and camera.capture takes the photo.
layout_info carries each field's box in the final image: ground truth for the field/MRZ locator. Page size, photo,
field grid and MRZ band come from veid_ml.document_layout, which the document reader reads too.
"""

from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw

from veid_ml import mrz
from veid_ml.data import camera, faces
from veid_ml.data.identity_fields import mrz_fields, person_fields
from veid_ml.data.rng import sample_rng
from veid_ml.data.textlines import FONTS, MRZ_FONT, font, format_date, guilloche, paper
from veid_ml.document_layout import (FIELD_AREA, MRZ_BAND, MRZ_LINE_GAP, MRZ_LINES, MRZ_PITCH, MRZ_TOP, PAGE, PHOTO,
                                     ROWS, VALUE_RIGHT_MARGIN)
from veid_ml.ocr_contract import ALPHABET

OUTPUT = {"TD1": (720, 480), "TD3": (840, 600)}  # photo size: the page plus some desk around it
STATE_NAMES = {"UTO": "UTOPIA", "D": "BUNDESREPUBLIK DEUTSCHLAND", "FRA": "RÉPUBLIQUE FRANÇAISE", "SWE": "SVERIGE",
               "NOR": "NORGE", "DNK": "DANMARK", "ESP": "REINO DE ESPAÑA", "CAN": "CANADA", "NLD": "NEDERLAND",
               "GBR": "UNITED KINGDOM", "USA": "UNITED STATES OF AMERICA", "ISL": "ÍSLAND", "CHE": "SCHWEIZ SUISSE"}
TITLES = {"TD1": ["IDENTITY CARD", "CARTE D'IDENTITÉ", "IDENTITY CARD / CARTE D'IDENTITÉ", "NATIONAL ID CARD"],
          "TD3": ["PASSPORT", "PASSPORT / PASSEPORT", "PASAPORTE / PASSPORT", "REISEPASS / PASSPORT"]}
LABELS = {
    "surname": "Surname / Nom", "given_names": "Given names / Prénoms", "sex": "Sex / Sexe",
    "nationality": "Nationality / Nationalité", "birth_date": "Date of birth / Date de naissance",
    "document_number": "Document No.", "expiry_date": "Date of expiry / Date d'expiration",
    "place_of_birth": "Place of birth / Lieu de naissance", "issue_date": "Date of issue / Date de délivrance",
    "authority": "Authority / Autorité", "type": "Type", "code": "Code",
}


def printed_fields(person: dict, layout: str, rng: np.random.Generator) -> dict:
    """The human-readable values as this document prints them (one date style and letter case per document)."""
    date_style = int(rng.integers(7))
    upper = rng.random() < 0.7

    def name(s):
        return s.upper() if upper else s

    fields = {
        "surname": person["surname"].upper() if rng.random() < 0.8 else person["surname"],
        "given_names": name(person["given_names"]),
        "sex": person["sex"],
        "nationality": person["nationality"],
        "birth_date": format_date(person["birth_date"], date_style),
        "document_number": person["document_number"] if layout == "TD1" else person["document_number"][:9],
        "expiry_date": format_date(person["expiry_date"], date_style),
    }
    if layout == "TD3":
        fields.update(type="P", code=person["issuing_state"], place_of_birth=name(person["place_of_birth"]),
                      issue_date=format_date(person["issue_date"], date_style),
                      authority=name(str(rng.choice(["Ministry of Interior", "Police", "Embassy", "Passport Office"]))))
    return fields


def _tint(rng: np.random.Generator, lo: float, hi: float) -> np.ndarray:
    hue = rng.uniform(0, 180)
    hsv = np.uint8([[[hue, rng.uniform(lo, hi), 255]]])
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def security_background(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """Pastel base, two colours of guilloche line families, a rosette and faint paper texture (float RGB 0..255)."""
    base = _tint(rng, 5, 40)
    img = np.broadcast_to(base, (h, w, 3)).copy()
    for _ in range(2):
        ink = _tint(rng, 60, 160)
        lines = guilloche(h, w, rng, scale=rng.uniform(0.8, 2.0))[:, :, None] * rng.uniform(0.25, 0.6)
        img = img * (1 - lines) + ink * lines
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = rng.uniform(0.3, 0.9) * w, rng.uniform(0.2, 0.7) * h
    r, theta = np.hypot(x - cx, y - cy), np.arctan2(y - cy, x - cx)
    petals = r + rng.uniform(6, 14) * np.sin(int(rng.integers(6, 16)) * theta)
    ring = np.exp(-((petals / rng.uniform(5, 9)) % 1 - 0.5) ** 2 / 0.01) * np.exp(-(r / (0.3 * w)) ** 2)
    img = img * (1 - 0.35 * ring[:, :, None]) + _tint(rng, 80, 180) * 0.35 * ring[:, :, None]
    return np.clip(img + paper(h, w, rng)[:, :, None] * rng.uniform(1, 4), 0, 255)


def _text_box(draw: ImageDraw.ImageDraw, xy, text, f) -> list[int]:
    x0, y0, x1, y1 = draw.textbbox(xy, text, font=f)
    return [int(x0), int(y0), int(x1), int(y1)]


def _draw_mrz(draw, lines, layout, y_top, boxes):
    """OCR-B at the ICAO pitch (MRZ_PITCH mm per character), lines centred on the page."""
    page_w, _, px_per_mm = PAGE[layout]
    pitch = MRZ_PITCH * px_per_mm
    probe = font(MRZ_FONT, 100)
    size = int(round(100 * pitch / probe.getlength("<")))
    f = font(MRZ_FONT, size)
    line_gap = MRZ_LINE_GAP[layout] * px_per_mm
    x0 = (page_w - pitch * len(lines[0])) / 2
    for i, line in enumerate(lines):
        y = y_top + i * line_gap
        draw.text((x0, y), line, font=f, fill=(15, 15, 20))
        boxes[f"mrz_line_{i + 1}"] = _text_box(draw, (x0, y), line, f)
    line_boxes = np.array([boxes[f"mrz_line_{i + 1}"] for i in range(len(lines))])
    boxes["mrz"] = [*line_boxes[:, :2].min(axis=0).tolist(), *line_boxes[:, 2:].max(axis=0).tolist()]


def render_page(person: dict, layout: str, split: str, index: int, seed: int, rng: np.random.Generator,
                mrz_lines: list[str] | None = None):
    """(page RGB uint8, printed fields, MRZ lines, boxes in page pixels). mrz_lines: print these instead of the
    person's MRZ (a forged or tampered zone, for the demo and tests)."""
    w, h, mm = PAGE[layout]
    page = Image.fromarray(security_background(h, w, rng).astype(np.uint8))
    draw = ImageDraw.Draw(page)
    boxes = {}
    fonts = FONTS[split]
    value_font = str(rng.choice(fonts["text"]))
    label_font = str(rng.choice(fonts["text"]))
    number_font = value_font if rng.random() < 0.6 else str(rng.choice(fonts["mono"]))
    ink = tuple(int(c) for c in rng.integers(0, 50, 3))
    label_ink = tuple(int(c) for c in _tint(rng, 120, 220) * rng.uniform(0.35, 0.6))

    # Header: issuing state and document title
    state = person["issuing_state"]
    title_f = font(str(rng.choice(fonts["text"])), int(3.2 * mm))
    draw.text((w / 2, 2.5 * mm), STATE_NAMES.get(state, state), font=title_f, fill=label_ink, anchor="mt")
    draw.text((w / 2, 6.8 * mm), str(rng.choice(TITLES[layout])), font=font(label_font, int(2.6 * mm)),
              fill=label_ink, anchor="mt")

    # Holder photo (a printed portrait, so slightly washed out) and, on passports, a ghost image
    photo_x, photo_y, photo_w, photo_h = (v * mm for v in PHOTO[layout])
    identity = index % faces.SPLIT_IDENTITIES[split]
    face = faces.face_image(split, identity, 0, seed, int(photo_h))
    face = face[:, (face.shape[1] - int(photo_w)) // 2:][:, : int(photo_w)]
    face = (face.astype(np.float32) * rng.uniform(0.8, 0.95) + rng.uniform(10, 40)).clip(0, 255).astype(np.uint8)
    page.paste(Image.fromarray(face), (int(photo_x), int(photo_y)))
    boxes["photo"] = [int(photo_x), int(photo_y), int(photo_x) + face.shape[1], int(photo_y) + face.shape[0]]
    if layout == "TD3":
        ghost = Image.fromarray(face).convert("L").resize((int(photo_w * 0.45), int(photo_h * 0.45)))
        ghost_box = (int(w - 24 * mm), int(14 * mm))
        faded = Image.fromarray((255 - (255 - np.asarray(ghost, np.float32)) * 0.35).astype(np.uint8))
        page.paste(Image.merge("RGB", [faded] * 3), ghost_box, Image.new("L", ghost.size, 150))

    # Labelled fields right of the photo
    fields = printed_fields(person, layout, rng)
    geo = FIELD_AREA[layout]
    label_f = font(label_font, int(geo["label_size"] * mm))
    value_size = int(geo["value_size"] * mm)
    left = geo["left"] * mm
    row_h = geo["row"] * mm
    y = geo["top"] * mm
    for row in ROWS[layout]:
        for name, col in row:
            x = left + col * mm
            draw.text((x, y), LABELS[name], font=label_f, fill=label_ink)
            value_name = number_font if name == "document_number" else value_font
            size = value_size  # shrink, never clip
            while font(value_name, size).getlength(fields[name]) > w - VALUE_RIGHT_MARGIN * mm - x and size > 8:
                size -= 1
            value_f = font(value_name, size)
            xy = (x, y + geo["value_offset"] * mm)
            draw.text(xy, fields[name], font=value_f, fill=ink)
            boxes[name] = _text_box(draw, xy, fields[name], value_f)
        y += row_h

    # MRZ band: a clear zone (lighter) with the machine-readable lines
    lines = mrz_lines or mrz.BUILDERS[layout](mrz_fields(person, layout))
    if len(lines) != MRZ_LINES[layout]:
        raise ValueError(f"{layout} MRZ has {len(lines)} lines, document_layout.MRZ_LINES says {MRZ_LINES[layout]}")
    band_top = h - MRZ_BAND[layout] * mm
    band = np.asarray(page, np.float32)
    band[int(band_top):] = band[int(band_top):] * 0.35 + 255 * 0.65
    page = Image.fromarray(band.astype(np.uint8))
    draw = ImageDraw.Draw(page)
    _draw_mrz(draw, lines, layout, band_top + MRZ_TOP * mm, boxes)
    for name, text in fields.items():
        if not set(text) <= set(ALPHABET):
            raise ValueError(f"printed field {name}={text!r} has characters outside the OCR ALPHABET")
    return np.asarray(page), fields, lines, boxes


def _desk(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    colour = _tint(rng, 10, 120) * rng.uniform(0.25, 0.9)
    y = np.linspace(-1, 1, h, dtype=np.float32)[:, None, None]
    gradient = 1 + rng.uniform(-0.25, 0.25) * y
    return np.clip(colour * gradient + paper(h, w, rng)[:, :, None] * rng.uniform(3, 12), 0, 255)


def document_sample(index: int, split: str, seed: int = 42, layout: str = "TD1", mrz_lines: list[str] | None = None):
    """(image uint8 RGB, fields, layout_info) for one photographed document (mrz_lines: see render_page).

    fields: the printed values plus 'mrz' (the MRZ lines). layout_info: 'layout', 'page_size', 'boxes' (name -> axis-
    aligned [x0, y0, x1, y1] in image pixels) and 'quads' (name -> 4 corner points, the exact warped rectangle) for
    every printed field, 'photo', 'mrz', 'mrz_line_1'.., and 'document'.
    """
    if layout not in PAGE:
        raise ValueError(f"layout must be one of {tuple(PAGE)}, got {layout!r}")
    rng = sample_rng(f"document_{layout}", split, index, seed)
    person = person_fields(split, index, seed)
    page, fields, lines, page_boxes = render_page(person, layout, split, index, seed, rng, mrz_lines)
    h, w = page.shape[:2]
    out_w, out_h = OUTPUT[layout]

    # Where the page lands: scale, centre, in-plane rotation and a keystone from a tilted camera
    scale = rng.uniform(0.78, 0.95) * min(out_w / w, out_h / h)
    angle = np.radians(rng.normal(0, 3))
    centre = np.array([out_w / 2, out_h / 2]) + rng.uniform(-1, 1, 2) * np.array([out_w, out_h]) * 0.03
    corners = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]]) * scale
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = corners @ rotation.T + centre + rng.uniform(-0.035, 0.035, (4, 2)) * np.array([w, h]) * scale
    span = dst.max(axis=0) - dst.min(axis=0)  # keep the whole page in frame: no field may be cut off
    dst = dst.mean(axis=0) + (dst - dst.mean(axis=0)) * min(1.0, *((np.array([out_w, out_h]) - 6) / span))
    dst += np.maximum(0, 3 - dst.min(axis=0)) - np.maximum(0, dst.max(axis=0) - (np.array([out_w, out_h]) - 3))
    src = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    homography = cv2.getPerspectiveTransform(src, dst.astype(np.float32))

    corner_mask = Image.new("L", (w, h), 0)
    ImageDraw.Draw(corner_mask).rounded_rectangle([0, 0, w - 1, h - 1], radius=int(3.2 * PAGE[layout][2]), fill=255)
    warped = cv2.warpPerspective(page, homography, (out_w, out_h), flags=cv2.INTER_AREA).astype(np.float32)
    alpha = cv2.warpPerspective(np.asarray(corner_mask), homography, (out_w, out_h))[:, :, None] / np.float32(255)
    desk = _desk(out_h, out_w, rng)
    shadow = cv2.GaussianBlur(alpha, (0, 0), 6)[:, :, None]
    shadow = np.roll(shadow, (int(rng.integers(2, 8)), int(rng.integers(-5, 6))), axis=(0, 1))
    desk *= 1 - 0.4 * shadow
    image = desk * (1 - alpha) + warped * alpha
    if rng.random() < 0.3:  # specular glare from a lamp or flash on the laminate
        gy, gx = np.mgrid[0:out_h, 0:out_w].astype(np.float32)
        cx, cy, r = rng.uniform(0, out_w), rng.uniform(0, out_h), rng.uniform(0.08, 0.25) * out_w
        glare = np.exp(-((gx - cx) ** 2 + (gy - cy) ** 2) / (2 * r * r))[:, :, None] * rng.uniform(0.2, 0.6)
        image = image * (1 - glare * alpha) + 255 * glare * alpha
    image = camera.capture(np.clip(image, 0, 255).astype(np.uint8), camera.random_params(rng, rng.uniform(0.2, 0.8)),
                           rng)

    quads, boxes = {}, {}
    page_boxes["document"] = [0, 0, w, h]
    for name, (x0, y0, x1, y1) in page_boxes.items():
        pts = np.float32([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])[None]
        q = cv2.perspectiveTransform(pts, homography)[0]
        quads[name] = np.round(q, 1).tolist()
        boxes[name] = [int(np.floor(q[:, 0].min())), int(np.floor(q[:, 1].min())), int(np.ceil(q[:, 0].max())),
                       int(np.ceil(q[:, 1].max()))]
    layout_info = {"layout": layout, "page_size": [w, h], "boxes": boxes, "quads": quads}
    return image, {**fields, "mrz": lines}, layout_info


def write_contact_sheets(out_dir, n: int = 4, seed: int = 42) -> Path:
    """documents.png: TD1 and TD3 samples (train, then test fonts), with the ground-truth boxes of the second row."""
    tiles = []
    for layout in ("TD1", "TD3"):
        row = []
        for i, split in enumerate(["train"] * (n - 1) + ["test"]):
            image, _, info = document_sample(i, split, seed, layout)
            if i == 1:
                image = image.copy()
                for name, quad in info["quads"].items():
                    colour = (255, 0, 0) if name.startswith("mrz") else (0, 160, 255)
                    cv2.polylines(image, [np.int32(quad)], True, colour, 1)
            row.append(cv2.resize(image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA))
        height = max(t.shape[0] for t in row)
        row = [np.pad(t, ((0, height - t.shape[0]), (0, 4), (0, 0)), constant_values=255) for t in row]
        tiles.append(np.hstack(row))
    width = max(t.shape[1] for t in tiles)
    sheet = np.vstack([np.pad(t, ((0, 4), (0, width - t.shape[1]), (0, 0)), constant_values=255) for t in tiles])
    out = Path(out_dir) / "documents.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(out)
    return out
