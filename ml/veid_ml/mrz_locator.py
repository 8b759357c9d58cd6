"""The MRZ locator's contract: what its network reads and how its output becomes the MRZ band in the photo.

1. locator_input: the photo's grey image, scaled so its longer side is INPUT_SIZE (cv2 area when shrinking, bilinear
   when enlarging), placed at the top-left of an INPUT_SIZE square of PAD grey.
2. The network (ml/mrz_locator) scores every cell of a GRID x GRID map (STRIDE input px each) twice: the logit of
   "inside the MRZ band" and of "inside the band's upper half" (toward the first line, in reading orientation), in
   1/1024 in the integer graph.
3. band_corners: the cells whose band logit is above 0, their 8-connected group with the largest summed logit, its
   minimum-area rectangle; "up" is the side of its long axis where the upper-half cells lie. Corners are returned in
   reading order (top-left, top-right, bottom-right, bottom-left of the upright band) in photo px.
4. band_image: that rectangle cut from the full-resolution grey photo, grown by MARGIN of its height above and
   below (WIDE_MARGIN when the reader looks again) and to the photo's edges at either end (a band found short still
   holds its lines' first and last characters; the reader finds each line's own ends), upright. band_columns: the
   columns of that image the located band itself spans.
band_candidates gives step 3 for the next-heaviest groups too, for a reader that checks what it reads.
No TensorFlow here: the training data (veid_ml.data.mrz_scenes) and the reader (veid_ml.document_reader) share it.
"""

import cv2
import numpy as np

INPUT_SIZE = 512
STRIDE = 8
GRID = INPUT_SIZE // STRIDE
PAD = 128
MARGIN = 0.15  # of the band's height, added above and below: the zone's rim never cuts a character
WIDE_MARGIN = 1.0  # of the band's height, above and below, when the band did not read as an MRZ


def input_scale(shape) -> float:
    return INPUT_SIZE / max(shape[0], shape[1])


def locator_input(gray: np.ndarray) -> np.ndarray:
    """uint8 (INPUT_SIZE, INPUT_SIZE): step 1 of the module docstring."""
    h, w = gray.shape[:2]
    s = input_scale(gray.shape)
    size = (max(1, min(INPUT_SIZE, int(round(w * s)))), max(1, min(INPUT_SIZE, int(round(h * s)))))
    resized = cv2.resize(gray, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    out = np.full((INPUT_SIZE, INPUT_SIZE), PAD, np.uint8)
    out[:size[1], :size[0]] = resized
    return out


def band_corners(logits: np.ndarray, shape) -> np.ndarray | None:
    """float32 (4, 2) corners of the upright band in photo px (step 3), or None when no cell is in the band.
    logits: (GRID, GRID, 2) band and upper-half logits, any scale."""
    candidates = band_candidates(logits, shape, 1)
    return candidates[0] if candidates else None


def band_candidates(logits: np.ndarray, shape, count: int) -> list[np.ndarray]:
    """Corners (as band_corners') of up to `count` groups of band cells, the largest summed logit first: the reader
    looks at the next group when the first does not read as an MRZ."""
    logits = np.asarray(logits, np.float64)
    band, upper = logits[..., 0], logits[..., 1]
    found, labels = cv2.connectedComponents((band > 0).astype(np.uint8), connectivity=8)
    weight = [band[labels == k].sum() for k in range(1, found)]
    ranked = sorted(range(1, found), key=lambda k: -weight[k - 1])[:count]
    return [_group_corners(labels == k, upper, shape) for k in ranked]


def _group_corners(group: np.ndarray, upper: np.ndarray, shape) -> np.ndarray:
    ys, xs = np.nonzero(group)
    cells = np.stack([xs, ys], 1).astype(np.float32)
    # every cell as its four corners, so a one-cell-high band still has a height
    pts = np.concatenate([cells + d for d in ((0, 0), (1, 0), (0, 1), (1, 1))]) * STRIDE / input_scale(shape)
    (cx, cy), (w, h), angle = cv2.minAreaRect(pts.astype(np.float32))
    a = np.radians(angle)
    along, across = np.array([np.cos(a), np.sin(a)]), np.array([-np.sin(a), np.cos(a)])
    if h > w:  # the long side is the reading direction
        w, h, along, across = h, w, across, -along
    # "down" (across) points away from the upper-half cells; then "right" (along) makes a right-handed frame
    centres = (cells + 0.5) * STRIDE / input_scale(shape) - (cx, cy)
    side = np.where(upper[group] > 0, -1.0, 1.0)  # upper-half cells should lie at negative "down"
    if float(np.sum(side * (centres @ across))) < 0:
        across = -across
    if along[0] * across[1] - along[1] * across[0] < 0:
        along = -along
    c = np.array([cx, cy])
    return np.float32([c + sx * along * w / 2 + sy * across * h / 2 for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1))])


def _band_frame(corners: np.ndarray, shape):
    """The band's top-left corner, unit vectors along and across it, its width and height, and how far the photo
    reaches beyond its left and right ends along it."""
    tl, tr, _, bl = corners.astype(np.float64)
    w, h = np.linalg.norm(tr - tl), np.linalg.norm(bl - tl)
    along, across = (tr - tl) / max(w, 1e-6), (bl - tl) / max(h, 1e-6)
    photo = np.float64([[0, 0], [shape[1], 0], [0, shape[0]], [shape[1], shape[0]]])
    reach = (photo - tl) @ along
    return tl, along, across, w, h, max(0.0, -reach.min()), max(0.0, reach.max() - w)


def band_columns(corners: np.ndarray, shape) -> tuple[int, int]:
    """The columns of band_image that the located band itself spans: where the reader looks for the band's rows, so
    text beside it (another card, a visa's printed fields) does not fill the gaps between its lines."""
    _, _, _, w, _, left, _ = _band_frame(corners, shape)
    return int(round(left)), int(round(left + w))


def band_image(gray: np.ndarray, corners: np.ndarray, margin: float = MARGIN) -> np.ndarray:
    """uint8: the band cut from the photo, grown by `margin` of its height above and below and to the photo's edges
    at either end, upright (step 4); beyond the photo's edges white, like paper (replicated edge pixels would streak
    into rows of ink). corners: band_corners'."""
    tl, along, across, w, h, left, right = _band_frame(corners, gray.shape)
    pad = margin * h
    origin = tl - left * along - pad * across
    out_w, out_h = max(1, int(round(left + w + right))), max(1, int(round(h + 2 * pad)))
    src = np.float32([origin, origin + out_w * along, origin + out_h * across])
    affine = cv2.getAffineTransform(src, np.float32([[0, 0], [out_w, 0], [0, out_h]]))
    return cv2.warpAffine(gray, affine, (out_w, out_h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=255)
