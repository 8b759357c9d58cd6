"""Read an ID document photo: find the MRZ lines and the printed field zones, recognise them, parse the MRZ.

The pipeline's path (locate with band_logits, the approved mrz_locator model):
a. the MRZ band: the locator's map -> the upright band cut from the full-resolution photo (veid_ml.mrz_locator),
b. its lines: the rows of ink (black-hat) in the band (band_rows), each with margins; with a reader (read_lines),
   every row is read and the 2 or 3 consecutive rows that read most like an MRZ win (mrz_reading_score), over the
   band, the band widened (WIDE_MARGIN) and the locator's next groups (CANDIDATE_BANDS) until one reads as an MRZ
   whose check digits all hold; without, the two or three heaviest rows (band_line_boxes),
c. printed fields: only where steps 1 and 3 below also find a card of the same layout.
The classical path (without band_logits), written for the synthetic documents and kept for them:
1. the card: its rim is the longest Canny edge; lines fitted to the straight middle of its four sides meet at the
   corners, and the quad is warped flat to its layout's page size (TD1 card 85.6 x 54 mm or TD3 passport page
   125 x 88 mm, told apart by the aspect ratio),
2. MRZ lines: rows of dark ink (black-hat) in the lower band of the flat page, found by a horizontal projection
   profile; each line's ink columns give its left and right ends,
3. printed fields: the zones of the synthetic layout (veid_ml.document_layout), each tightened to its ink,
4. every line crop is scaled to the recogniser's 32 px height (fit_line) and read in one batch; the MRZ lines are
   the reading mended by ICAO 9303's rules (veid_ml.mrz_decode.read_mrz: from the text, else from the logits), parsed
   with their check digits (veid_ml.mrz.parse_mrz) and per-character confidences.

The field grid is that of the synthetic documents; the classical MRZ search assumes the ICAO band at the bottom.
No TensorFlow import here: `band_logits` is any callable from the uint8 locator input to its (GRID, GRID, 2) map
(Verifier.band_logits); `ocr_serving` is any callable taking image=uint8 [N, 32, 512, 1] and returning "text",
"char_confidences_bp", "logits_q", "alphabet" and "logit_scale" (the approved integer graph's serving_default
signature).
"""

import dataclasses

import cv2
import numpy as np

from veid_ml import mrz, mrz_decode, mrz_locator
from veid_ml.document_layout import FIELD_AREA, MRZ_BAND, MRZ_LINES, PAGE, ROWS, VALUE_RIGHT_MARGIN
from veid_ml.ocr_contract import fit_line


def find_card(gray: np.ndarray) -> np.ndarray:
    """The card's corners (float32 [4, 2]: top-left, top-right, bottom-right, bottom-left) in image pixels.

    The desk is smooth and the card's rim is a long, sharp edge against it: the longest Canny edge contour (its
    convex hull) is the card outline.
    """
    edges = cv2.Canny(cv2.GaussianBlur(gray, (0, 0), 1.5), 40, 100)
    edges = cv2.dilate(edges, np.ones((3, 3), np.uint8))  # bridge one-pixel gaps in the rim
    contours, _ = cv2.findContours(edges, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        raise ValueError("no document found: the image has no edges")
    outline = max(contours, key=lambda c: cv2.arcLength(c, True))[:, 0].astype(np.float32)
    hull = cv2.convexHull(outline)
    if cv2.contourArea(hull) < 0.1 * gray.size:
        raise ValueError("no document found: the longest edge outlines under 10% of the image")
    perimeter = cv2.arcLength(hull, True)
    quad = None
    for eps in (0.01, 0.02, 0.03, 0.05):
        approx = cv2.approxPolyDP(hull, eps * perimeter, True)
        if len(approx) == 4:
            quad = approx[:, 0].astype(np.float32)
            break
    if quad is None:  # rounded corners left too many vertices: fall back to the tightest rotated rectangle
        quad = cv2.boxPoints(cv2.minAreaRect(hull)).astype(np.float32)
    s, d = quad.sum(axis=1), quad[:, 0] - quad[:, 1]
    quad = np.float32([quad[np.argmin(s)], quad[np.argmax(d)], quad[np.argmax(s)], quad[np.argmin(d)]])
    return refine_corners(outline, quad)


def refine_corners(outline: np.ndarray, quad: np.ndarray) -> np.ndarray:
    """Corners where straight lines fitted to the middle of each side meet: the rounded corners' arcs pull
    polygon-approximation vertices inwards, the straight parts of the sides do not."""
    lines = []
    for a, b in zip(quad, np.roll(quad, -1, axis=0)):
        direction = (b - a) / max(1e-6, np.linalg.norm(b - a))
        along = (outline - a) @ direction / max(1e-6, np.linalg.norm(b - a))
        across = np.abs((outline - a) @ np.float32([-direction[1], direction[0]]))
        side = outline[(along > 0.15) & (along < 0.85) & (across < 6)]
        if len(side) < 10:
            return quad
        vx, vy, x0, y0 = cv2.fitLine(side, cv2.DIST_HUBER, 0, 0.01, 0.01)[:, 0]
        lines.append(np.cross([x0, y0, 1.0], [x0 + vx, y0 + vy, 1.0]))  # homogeneous line through two points
    corners = []
    for i in range(4):
        x, y, w = np.cross(lines[i - 1], lines[i])
        if abs(w) < 1e-9:
            return quad
        corners.append((x / w, y / w))
    return np.float32(corners)


def flatten_card(gray: np.ndarray, quad: np.ndarray) -> tuple[np.ndarray, str]:
    """(the card warped flat at its layout's page resolution, layout 'TD1' or 'TD3')."""
    width = (np.linalg.norm(quad[1] - quad[0]) + np.linalg.norm(quad[2] - quad[3])) / 2
    height = (np.linalg.norm(quad[3] - quad[0]) + np.linalg.norm(quad[2] - quad[1])) / 2
    layout = "TD1" if width / height > 1.5 else "TD3"  # 1.585 vs 1.42
    w, h, _ = PAGE[layout]
    target = np.float32([[0, 0], [w, 0], [w, h], [0, h]])
    return cv2.warpPerspective(gray, cv2.getPerspectiveTransform(quad, target), (w, h), flags=cv2.INTER_LINEAR), layout


def ink_map(gray: np.ndarray, size: int) -> np.ndarray:
    """Dark strokes thinner than `size` px, relative to their surroundings (black-hat), 0..255."""
    return cv2.morphologyEx(gray, cv2.MORPH_BLACKHAT, cv2.getStructuringElement(cv2.MORPH_RECT, (size, size)))


def _runs(active: np.ndarray) -> list[tuple[int, int]]:
    edges = np.flatnonzero(np.diff(np.concatenate([[0], active.astype(np.int8), [0]])))
    return list(zip(edges[::2], edges[1::2]))


def ink_columns(ink: np.ndarray, min_gap: int, near: tuple[int, int] | None = None) -> tuple[int, int]:
    """First and last column of the main text run: column runs closer than `min_gap` px merge into one; the main run
    is the one overlapping the columns `near` the most, else (or without `near`) the longest."""
    columns = cv2.dilate((ink > 60).any(axis=0).astype(np.uint8)[None], np.ones((1, min_gap), np.uint8))[0] > 0
    runs = _runs(columns)
    if not runs:
        return 0, ink.shape[1]
    a, b = near or (0, 0)
    start, end = max(runs, key=lambda r: (max(0, min(r[1], b) - max(r[0], a)), r[1] - r[0]))
    return max(0, start + min_gap // 2 - 2), min(ink.shape[1], end - min_gap // 2 + 2)


def text_rows(ink: np.ndarray, count: int, min_share: float) -> list[tuple[int, int]]:
    """The `count` heaviest runs of inked rows (top to bottom); a row is inked when a `min_share` fraction of its
    columns has ink; runs 2 px apart (accents, dots) merge."""
    profile = (ink > 60).mean(axis=1)
    active = cv2.dilate((profile > min_share).astype(np.uint8)[:, None], np.ones((3, 1), np.uint8))[:, 0] > 0
    rows = sorted(_runs(active), key=lambda r: -profile[r[0]:r[1]].sum())[:count]
    return sorted((y0 + 1, y1 - 1) for y0, y1 in rows)


def mrz_line_boxes(page: np.ndarray, layout: str) -> list[tuple[int, int, int, int]]:
    """(x0, y0, x1, y1) of each MRZ line on the flat page, top to bottom."""
    _, h, mm = PAGE[layout]
    top = int(h - (MRZ_BAND[layout] + 4) * mm)  # a little above the band: the flattening is not exact
    ink = ink_map(page[top:], int(2 * mm))
    rows = text_rows(ink, MRZ_LINES[layout], 0.15)
    if len(rows) < MRZ_LINES[layout]:
        raise ValueError(f"found {len(rows)} MRZ text rows, expected {MRZ_LINES[layout]} for {layout}")
    boxes = []
    for y0, y1 in rows:
        x0, x1 = ink_columns(ink[y0:y1], int(3 * mm))
        pad = max(2, (y1 - y0) // 6)
        boxes.append((max(0, x0 - pad), top + max(0, y0 - pad), x1 + pad, min(h, top + y1 + pad)))
    return boxes


def field_boxes(page: np.ndarray, layout: str) -> dict[str, tuple[int, int, int, int]]:
    """(x0, y0, x1, y1) of each printed field value on the flat page: the layout's zone, tightened to its ink."""
    w, _, mm = PAGE[layout]
    geo = FIELD_AREA[layout]
    right = int(w - (VALUE_RIGHT_MARGIN - 1) * mm)  # 1 mm past where a row's last value may end
    boxes = {}
    for r, row in enumerate(ROWS[layout]):
        top = int((geo["top"] + r * geo["row"] + geo["value_offset"] - 0.8) * mm)
        bottom = int(top + (geo["value_size"] * 1.6) * mm)
        for c, (name, col) in enumerate(row):
            x0 = int((geo["left"] + col - 0.5) * mm)
            x1 = int((geo["left"] + row[c + 1][1] - 1) * mm) if c + 1 < len(row) else right
            ink = ink_map(page[top:bottom, x0:x1], int(1.5 * mm))
            rows = text_rows(ink, 1, 0.2 * max(1e-3, (ink > 60).mean(axis=1).max()))  # the value, not the label
            y0, y1 = rows[0] if rows else (0, bottom - top)
            pad = max(2, (y1 - y0) // 5)
            y0, y1 = max(0, y0 - pad), min(bottom - top, y1 + pad)
            x_start, x_end = ink_columns(ink[y0:y1], int(2.5 * mm))
            boxes[name] = (x0 + max(0, x_start - 3), top + y0, x0 + min(x1 - x0, x_end + 3), top + y1)
    return boxes


PAPER_MIN = 110  # grey level under which the background around a stroke is not paper
ROW_SHARE = 0.3  # a band row holds text when its inked share is this fraction of the best row's


Box = tuple[int, int, int, int]  # x0, y0, x1, y1


def band_rows(band: np.ndarray, columns: tuple[int, int] | None = None) -> list[tuple[Box, float]]:
    """Every text row of an upright band image (veid_ml.mrz_locator.band_image), top to bottom: its box and its
    weight (summed inked share). Rows are looked for in `columns` (mrz_locator.band_columns: the located band
    itself), each line's ends in the whole width (the ink run through those columns).

    Ink: dark strokes (black-hat) on paper (a dark desk's texture and the shadow past a card's edge are not text),
    without horizontal runs longer than half the band's height (rules, edges) or vertical runs taller than that (a
    card's edge beside the text).
    A row of the band is inked when its share of inked columns is at least ROW_SHARE of the best row's; runs of
    inked rows 2 px apart merge (accents, a character's thin middle), runs under half the tallest run's height are
    dropped (rules, edges). Each box has a third of the line's height above and below and half of it at either end
    (short of a card edge): margins never cut a character."""
    size = max(3, band.shape[0] // 4)
    ink = ink_map(band, size)
    paper = cv2.morphologyEx(band, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_RECT, (size, size)))
    ink[paper < PAPER_MIN] = 0
    strokes = (ink > 60).astype(np.uint8)
    # long horizontal runs are rules and edges, not characters (an MRZ character is narrower than the band's quarter);
    # vertical runs taller than half the band are card edges (a character is one line high)
    edges = cv2.morphologyEx(strokes, cv2.MORPH_OPEN, np.ones((2 * size, 1), np.uint8))
    rules = cv2.morphologyEx(strokes, cv2.MORPH_OPEN, np.ones((1, 2 * size), np.uint8)) | edges
    ink[cv2.dilate(rules, np.ones((3, 3), np.uint8)) > 0] = 0
    c0, c1 = columns or (0, band.shape[1])
    profile = (ink[:, c0:c1] > 60).mean(axis=1)
    active = profile >= ROW_SHARE * max(profile.max(), 1e-6)
    active = cv2.morphologyEx(active.astype(np.uint8)[:, None], cv2.MORPH_CLOSE, np.ones((3, 1), np.uint8))[:, 0] > 0
    runs = _runs(active)
    tallest = max((y1 - y0 for y0, y1 in runs), default=0)
    rows = []
    for y0, y1 in runs:
        if y1 - y0 < tallest / 2:
            continue
        height = y1 - y0
        x0, x1 = ink_columns(ink[y0:y1], max(3, height), (c0, c1))
        pad_y, pad_x = max(2, height // 3), max(2, height // 2)
        # the margin at either end stops short of a card edge (the recogniser would read it as an 'I')
        edge_columns = np.flatnonzero(edges[max(0, y0 - pad_y):y1 + pad_y].any(axis=0))
        left = edge_columns[(edge_columns < x0) & (edge_columns >= x0 - pad_x)]
        right = edge_columns[(edge_columns >= x1) & (edge_columns < x1 + pad_x)]
        start = left.max() + 2 if len(left) else x0 - pad_x
        end = right.min() - 1 if len(right) else x1 + pad_x
        box = (max(0, start), max(0, y0 - pad_y), min(band.shape[1], end), min(band.shape[0], y1 + pad_y))
        rows.append((box, float(profile[y0:y1].sum())))
    return rows


def band_line_boxes(band: np.ndarray, columns: tuple[int, int] | None = None) -> list[Box]:
    """The boxes of the MRZ lines among band_rows, top to bottom, without reading them: the three heaviest
    rows when the third is at least 40% as heavy as the heaviest (TD1), else two. ValueError with fewer than two."""
    rows = sorted(band_rows(band, columns), key=lambda r: -r[1])[:3]  # heaviest first
    if len(rows) == 3 and rows[2][1] < 0.4 * rows[0][1]:
        rows = rows[:2]
    if len(rows) < 2:
        raise ValueError(f"found {len(rows)} MRZ text rows in the located band, expected 2 or 3")
    return sorted((box for box, _ in rows), key=lambda box: box[1])


@dataclasses.dataclass
class LocatedDocument:
    """Where the text is: the card's layout and corners, and every line as the recogniser's input (fit_line)."""

    layout: str
    quad: np.ndarray  # float32 [4, 2] card corners in image pixels
    mrz_lines: np.ndarray  # uint8 [n, LINE_HEIGHT, LINE_WIDTH], top to bottom
    field_names: list[str]
    field_lines: np.ndarray  # uint8 [len(field_names), LINE_HEIGHT, LINE_WIDTH]
    mrz_reading: tuple | None = None  # (texts, confidences, logits) of mrz_lines where locating read them already


def locate(image_rgb: np.ndarray, band_logits=None, read_lines=None) -> LocatedDocument:
    """Cut out the MRZ and printed-field lines. With band_logits (grey locator input -> the MRZ locator's logits,
    veid_ml.mrz_locator): the MRZ lines come from the located band (step b; read_lines: fitted lines -> their texts
    and confidences, e.g. recognise's), and printed fields are read only where a card outline of the same layout is
    found too. Without: the card is found, flattened and cut up (steps 1-3 of the module docstring). Raises
    ValueError naming what was not found."""
    image_rgb = np.asarray(image_rgb)
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image [H, W, 3], got {image_rgb.dtype} {image_rgb.shape}")
    gray = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY)
    if band_logits is not None:
        return _locate_by_band(gray, band_logits, read_lines)
    quad = find_card(gray)
    page, layout = flatten_card(gray, quad)
    mrz_boxes = mrz_line_boxes(page, layout)
    fields = field_boxes(page, layout)
    fitted = [fit_line(page[y0:y1, x0:x1]) for x0, y0, x1, y1 in mrz_boxes + list(fields.values())]
    n = len(mrz_boxes)
    return LocatedDocument(layout, quad, np.stack(fitted[:n]), list(fields), np.stack(fitted[n:]))


CANDIDATE_BANDS = 3  # locator groups looked at, the heaviest first, until one reads as an MRZ with valid checks
MAX_ROWS_READ = 40  # rows read while locating, at most: a photo full of text that never reads as an MRZ stays fast


def mrz_reading_score(texts: list[str], logits: mrz_decode.LineLogits | None = None) -> tuple:
    """How much consecutive recognised lines read like an MRZ, higher is better: lines that parse (mrz.parse_mrz,
    after mrz_decode.read_mrz) beat any that do not, then the share of check digits that hold; then how near each
    line's length is to its format's width (30 for three lines, 36 or 44 for two) times its share of MRZ characters,
    plus a half for a '<<'."""
    lines, _ = mrz_decode.read_mrz(texts, None, logits)
    try:
        checks = mrz.parse_mrz(lines).checks
        parsed, held = 1, sum(checks.values()) / len(checks)
    except ValueError:
        parsed, held = 0, 0.0
    width = mrz.reading_width(lines)
    likeness = np.mean([max(0.0, 1 - abs(len(t) - width) / width) * sum(c in mrz.MRZ_CHARS for c in t) / max(1, len(t))
                        + 0.5 * ("<<" in t) for t in lines])
    return parsed, held, float(likeness)


def _locate_by_band(gray: np.ndarray, band_logits, read_lines=None) -> LocatedDocument:
    logits = band_logits(mrz_locator.locator_input(gray))
    candidates = mrz_locator.band_candidates(logits, gray.shape, CANDIDATE_BANDS if read_lines else 1)
    if not candidates:
        raise ValueError("no MRZ found: the locator marks no band in the image")
    if read_lines is None:
        band, columns = mrz_locator.band_image(gray, candidates[0]), mrz_locator.band_columns(candidates[0], gray.shape)
        try:
            boxes = band_line_boxes(band, columns)
        except ValueError:  # a band found over one line only: look again with room for the lines beside it
            band = mrz_locator.band_image(gray, candidates[0], mrz_locator.WIDE_MARGIN)
            boxes = band_line_boxes(band, columns)
        mrz_lines, corners = np.stack([fit_line(band[y0:y1, x0:x1]) for x0, y0, x1, y1 in boxes]), candidates[0]
        reading = None
    else:
        mrz_lines, corners, reading = _read_best_rows(gray, candidates, read_lines)
    layout = "TD1" if len(mrz_lines) == 3 else "TD3"
    names, fields, quad = [], np.zeros((0, *mrz_lines.shape[1:]), np.uint8), corners
    try:  # the printed fields of the synthetic layouts, where the card itself is found
        card = find_card(gray)
        page, card_layout = flatten_card(gray, card)
        if card_layout == layout:
            boxes = field_boxes(page, layout)
            names, quad = list(boxes), card
            fields = np.stack([fit_line(page[y0:y1, x0:x1]) for x0, y0, x1, y1 in boxes.values()])
    except ValueError:
        pass
    return LocatedDocument(layout, quad, mrz_lines, names, fields, reading)


def _read_best_rows(gray: np.ndarray, candidates: list[np.ndarray], read_lines) -> tuple:
    """The 2 or 3 consecutive text rows (fitted lines), their band's corners and their reading, over the candidate
    bands, then, if no reading parses, the long_text_blocks fallback's (each cut with MARGIN, then WIDE_MARGIN unless
    already half the photo's height, each also turned 180 degrees: the locator's "up" can be wrong), whose reading
    has the best mrz_reading_score; the first that parses with every check valid ends the search, and so does a band
    whose rows would take the rows read past MAX_ROWS_READ."""
    best_key, best, read = None, None, 0

    def bands():  # the locator's, then, while nothing read parses as an MRZ, the classical fallback's
        yield from candidates
        if best_key is None or best_key[0] == 0:
            yield from long_text_blocks(gray)

    for rank, upright in enumerate(bands()):
        # widened only while under half the photo's shorter side: an MRZ is at most a third of its card (TD1), and a
        # band already that tall holds its neighbours (widening it would cost a black-hat over the whole photo)
        small = np.linalg.norm(upright[3] - upright[0]) < min(gray.shape) / 2
        margins = (mrz_locator.MARGIN, mrz_locator.WIDE_MARGIN) if small else (mrz_locator.MARGIN,)
        for wide, margin in enumerate(margins):
            for turned, corners in enumerate((upright, upright[[2, 3, 0, 1]])):
                band = mrz_locator.band_image(gray, corners, margin)
                rows = [box for box, _ in band_rows(band, mrz_locator.band_columns(corners, gray.shape))]
                if len(rows) < 2:
                    continue
                read += len(rows)
                if read > MAX_ROWS_READ:
                    return _best_or_raise(best)
                lines = np.stack([fit_line(band[y0:y1, x0:x1]) for x0, y0, x1, y1 in rows])
                texts, confidences, logits = read_lines(lines)
                for n in (2, 3):
                    for i in range(len(rows) - n + 1):
                        window = slice(i, i + n)
                        key = (*mrz_reading_score(texts[window], logits[window]), -rank, -wide, -turned)
                        if best_key is None or key > best_key:
                            best_key, best = key, (lines[window], corners,
                                                   (texts[window], confidences[window], logits[window]))
                if best_key[:2] == (1, 1.0):
                    return best
    return _best_or_raise(best)


TEXT_BLOCKS = 2  # blocks of long text lines the classical fallback offers the reader


def long_text_blocks(gray: np.ndarray, count: int = TEXT_BLOCKS) -> list[np.ndarray]:
    """The classical fallback for a photo in which no band the locator marks reads as an MRZ (arrows and boxes drawn
    over it, say): blocks of long, level lines of dark print, as upright band corners, the block with the longest
    line first. Ink (black-hat) is closed across character gaps (a 25th of the width), strokes thinner than a 160th of
    it are opened away (drawn lines, rules), and lines at least 8 times as long as high and a quarter of the photo's
    width are grouped while less than two line heights apart."""
    scale = min(1.0, 800 / gray.shape[1])  # the search runs at most 800 px wide
    small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else gray
    h, w = small.shape
    _, mask = cv2.threshold(ink_map(small, max(3, w // 60)), 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((3, max(3, w // 25)), np.uint8))
    mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((max(3, w // 160), 1), np.uint8))
    _, _, stats, _ = cv2.connectedComponentsWithStats(mask)
    lines = sorted((tuple(int(v) for v in box[:4]) for box in stats[1:]
                    if box[2] >= max(8 * box[3], w / 4) and box[3] >= 3), key=lambda box: box[1])
    blocks = []
    for x, y, bw, bh in lines:
        if blocks and y - max(b[1] + b[3] for b in blocks[-1]) < 2 * bh:
            blocks[-1].append((x, y, bw, bh))
        else:
            blocks.append([(x, y, bw, bh)])
    corners = []
    for block in sorted(blocks, key=lambda block: -max(b[2] for b in block))[:count]:
        x0, y0 = min(b[0] for b in block), min(b[1] for b in block)
        x1, y1 = max(b[0] + b[2] for b in block), max(b[1] + b[3] for b in block)
        corners.append(np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32) / scale)
    return corners


def _best_or_raise(best):
    if best is None:
        raise ValueError("found no 2 MRZ text rows in the bands the locator marks")
    return best


def recognise(ocr_serving, lines: np.ndarray) -> tuple[list[str], list[list[float]], mrz_decode.LineLogits]:
    """Texts, per-character confidences and logits of fitted grey lines (uint8 [N, LINE_HEIGHT, LINE_WIDTH]), one
    batch."""
    out = ocr_serving(image=np.asarray(lines, np.uint8)[..., None])  # the integer consensus graph: uint8 lines
    texts = [t.decode("utf-8") for t in np.asarray(out["text"])]
    confidences = np.asarray(out["char_confidences_bp"]) / 10000.0
    logits = mrz_decode.LineLogits(np.asarray(out["logits_q"]), np.asarray(out["alphabet"]).item().decode("utf-8"),
                                   float(np.asarray(out["logit_scale"]).item().decode("ascii")))
    return texts, [confidences[i, : len(t)].tolist() for i, t in enumerate(texts)], logits


def parse(located: LocatedDocument, texts: list[str], confidences: list[list[float]],
          logits: mrz_decode.LineLogits | None = None) -> dict:
    """The reading of a located document from the recogniser's texts, confidences and logits (MRZ lines first, then
    the printed fields): {"layout", "document_quad" (4 corners in image pixels), "mrz_lines" (mrz_decode.read_mrz),
    "mrz" (parsed fields, checks, failed_checks, valid, per-field confidences; None if the lines do not form an MRZ),
    "fields" (printed values by name), "field_confidences" (lowest character confidence per printed field)}."""
    n = len(located.mrz_lines)
    mrz_lines, mrz_confidences = mrz_decode.read_mrz(texts[:n], confidences[:n], logits[:n] if logits else None)
    try:
        parsed = mrz.parse_mrz(mrz_lines, mrz_confidences)
        mrz_doc = {**dataclasses.asdict(parsed), "failed_checks": parsed.failed_checks, "valid": parsed.valid}
    except ValueError:  # misread line lengths or characters: report the raw lines, no parse
        mrz_doc = None
    return {
        "layout": located.layout,
        "document_quad": located.quad.round(1).tolist(),
        "mrz_lines": mrz_lines,
        "mrz": mrz_doc,
        "fields": dict(zip(located.field_names, texts[n:])),
        "field_confidences": {name: min(c, default=0.0) for name, c in zip(located.field_names, confidences[n:])},
    }


def read_document(image_rgb: np.ndarray, ocr_serving, band_logits=None) -> dict:
    """Read a photographed TD1 card or TD3 passport page: locate (band_logits: see locate), recognise every line in
    one batch, parse."""
    def read_lines(lines):
        return recognise(ocr_serving, lines)

    located = locate(image_rgb, band_logits, read_lines)
    return parse(located, *read_located(located, read_lines))


def read_located(located: LocatedDocument, read_lines) -> tuple[list[str], list[list[float]], mrz_decode.LineLogits]:
    """Texts, confidences and logits of the MRZ lines, then the field lines: read_lines (recognise's) reads in one
    batch what locating has not read already."""
    if located.mrz_reading is None:
        return read_lines(np.concatenate([located.mrz_lines, located.field_lines]))
    texts, confidences, logits = located.mrz_reading
    if len(located.field_lines):
        field_texts, field_confidences, field_logits = read_lines(located.field_lines)
        texts, confidences, logits = texts + field_texts, confidences + field_confidences, logits + field_logits
    return texts, confidences, logits
