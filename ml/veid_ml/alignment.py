"""Face crops from the detector's landmarks, in integer arithmetic only (ported line for line to Go: pkg/inference).

A Chip names a model's crop: its side, where the landmarks it aligns sit (1/10000 of the side) and what lies outside
the photo. FACE_CHIP is dlib's 150 px five-point face chip (facial_verification, transferred from dlib's face ResNet);
LIVENESS_CHIP is the 128 px crop with the two eyes where the ported MTCNN finds them on the synthetic renders the
liveness model learned from. The crop is the least-squares similarity warp (rotation, uniform scale, shift) that
moves the photo's landmarks onto the chip's. Everything after the detector is integer arithmetic, so Python and Go
(and any CPU) cut the same crop bytes from the same pixels and landmarks:

1. Landmarks: the detector's five (x, y) points in 1/16 px (Q4 integers; float landmarks are rounded half-to-even
   to them), pixel centres at half a pixel, in the order image-left eye, image-right eye, nose tip, image-left mouth
   corner, image-right mouth corner: each pair is ordered by x (on a tie, the detector's order).
2. Fit: the chip's points c_i = chip.points_bp[i] * size * 16 // 10000 (Q4) and the photo's p_i, i < n =
   len(chip.points_bp). With the sums C = sum c_i, P = sum p_i and the centred, n-scaled points c'_i = n c_i - C,
   p'_i = n p_i - P, the least-squares map from crop to photo is s = P/n + a (o - C/n) with the complex ratio
   a = sum p'_i conj(c'_i) / sum |c'_i|^2, kept as Q16 integers A = round_div(65536 sum p' conj(c'), sum |c'|^2)
   (each component). For crop pixel o (integers):  T = 16 n o - C,  s_q16 = round_div(65536 P + A T, 16 n)  with the
   complex product A T = (A.x T.x - A.y T.y, A.y T.x + A.x T.y), and round_div(n, d) = floor((2n + d) / (2d))
   (halves round up). With two points the fit is exact: the eyes land on the chip's eyes.
3. Shrink first: a bilinear warp that shrinks by more than 2x aliases. k = isqrt(|A|^2 // (4 * 65536^2)), the
   largest integer <= |a| / 2 (|a|: photo px per crop px), at most the photo's shorter side (landmarks far outside a
   tiny photo); when k >= 2 the photo is reduced by averaging k x k blocks: out = (block sum + k*k // 2) // (k*k),
   over the floor(H/k) x floor(W/k) whole blocks, and coordinates follow: s' = floor((s_q16 - (k - 1) * 32768) / k)
   (block centres).
4. Bilinear sampling at s (Q16): x0 = s.x >> 16 (floor), fx = (s.x >> 8) & 255, likewise y; neighbours clamped to
   the image (replicated border) or, for a chip with zero_border, a neighbour outside the photo counts as 0 (the
   photo lies on black, as dlib's chips do: a small photo is padded, never smeared); value = (p00 (256-fx)(256-fy)
   + p01 fx (256-fy) + p10 (256-fx) fy + p11 fx fy + 32768) >> 16, per channel.

The eye distance in photo pixels also decides whether a face is big enough to verify (MIN_EYE_DISTANCE_Q4).
"""

from math import isqrt
from typing import NamedTuple

import numpy as np


class Chip(NamedTuple):
    """A model's face crop: side in px; (x, y) in 1/10000 of the side of the first len(points_bp) landmarks (step 1's
    order), where the fit puts them; whether the photo lies on black (zero_border) or its edge pixels repeat."""
    size: int
    points_bp: tuple
    zero_border: bool


# Where MTCNN finds the eyes on the synthetic renders the liveness model learned from (tests/test_data_faces.py
# measures it with face_detection).
CANONICAL_EYES_BP = ((3960, 4930), (6100, 4930))
LIVENESS_CHIP = Chip(128, CANONICAL_EYES_BP, zero_border=False)
# dlib's 150 px chip with padding 0.25 (dlib's get_face_chip_details: a point p of its mean face lands at
# (0.25 + p) / 1.5 of the side). Eyes: the mean of each eye's two corners in its 5-point template (the two differ in y
# by 0.0002: averaged); nose tip and mouth corners: points 30, 48 and 54 of its 68-point mean face, the same frame.
FACE_CHIP = Chip(150, ((3182, 3142), (6685, 3142), (4934, 5104), (3361, 6868), (6507, 6868)), zero_border=True)
# Faces whose eyes are closer than 10 px hold too few pixels for either model.
MIN_EYE_DISTANCE_Q4 = 10 * 16


def landmarks_q4(landmarks: np.ndarray) -> np.ndarray:
    """int64 (n, 2), n = 2 or 5: float landmarks (px) rounded half-to-even to 1/16 px, then ordered (ordered_q4)."""
    return ordered_q4(np.rint(np.asarray(landmarks, np.float32).astype(np.float64) * 16).astype(np.int64))


def ordered_q4(points: np.ndarray) -> np.ndarray:
    """int64 (n, 2), n = 2 or 5: landmarks in 1/16 px (the detector's own output), the eyes (and the mouth corners)
    ordered by x, on a tie in the detector's order (step 1)."""
    points = np.array(points, np.int64)
    for i in (0, 3) if len(points) >= 5 else (0,):
        if points[i + 1, 0] < points[i, 0]:
            points[[i, i + 1]] = points[[i + 1, i]]
    return points


def chip_q4(chip: Chip) -> np.ndarray:
    return np.array(chip.points_bp, np.int64) * chip.size * 16 // 10000


def eye_distance_sq_q4(points: np.ndarray) -> int:
    u = points[1] - points[0]
    return int(u[0] * u[0] + u[1] * u[1])


def round_div(n, d: int):
    """n / d rounded to the nearest integer, halves up (d > 0), for Python ints or int64 arrays: floor division only."""
    return (2 * n + d) // (2 * d)


def fit_q16(points: np.ndarray, chip: Chip) -> tuple[int, int, int, int]:
    """(A.x, A.y, P.x, P.y) of step 2: the Q16 complex ratio and the sum of the photo's points."""
    c = chip_q4(chip)
    n = len(c)
    p = np.asarray(points, np.int64)[:n]
    if len(p) < n:
        raise ValueError(f"the chip aligns {n} landmarks, got {len(p)}")
    cs, ps = c.sum(axis=0), p.sum(axis=0)
    cc, pc = n * c - cs, n * p - ps
    num_x = int(np.sum(pc[:, 0] * cc[:, 0] + pc[:, 1] * cc[:, 1]))  # p' conj(c'): real part
    num_y = int(np.sum(pc[:, 1] * cc[:, 0] - pc[:, 0] * cc[:, 1]))  # imaginary part
    den = int(np.sum(cc * cc))
    return round_div(65536 * num_x, den), round_div(65536 * num_y, den), int(ps[0]), int(ps[1])


def shrink_factor(points: np.ndarray, chip: Chip) -> int:
    ax, ay, _, _ = fit_q16(points, chip)
    return max(1, isqrt((ax * ax + ay * ay) // (4 * 65536 * 65536)))


def source_points_q16(points: np.ndarray, chip: Chip) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) int64 (size, size): where each crop pixel centre lies in the photo, in 1/65536 px."""
    c = chip_q4(chip)
    n, cs = len(c), c.sum(axis=0)
    ax, ay, px, py = fit_q16(points, chip)
    oy, ox = np.mgrid[0:chip.size, 0:chip.size].astype(np.int64)
    tx, ty = 16 * n * ox - cs[0], 16 * n * oy - cs[1]
    sx = round_div(65536 * px + ax * tx - ay * ty, 16 * n)
    sy = round_div(65536 * py + ay * tx + ax * ty, 16 * n)
    return sx, sy


def block_average(image: np.ndarray, k: int) -> np.ndarray:
    """The image reduced k times: each output pixel the rounded mean of a k x k block (whole blocks only)."""
    h, w = image.shape[0] // k, image.shape[1] // k
    total = np.full((h, w) + image.shape[2:], k * k // 2, np.int64)
    for dy in range(k):  # k * k strided adds: far faster than a reduction over a 5-D view
        for dx in range(k):
            total += image[dy:h * k:k, dx:w * k:k]
    return (total // (k * k)).astype(np.uint8)


def bilinear_q16(image: np.ndarray, sx: np.ndarray, sy: np.ndarray, zero_border: bool = False) -> np.ndarray:
    """Sample an H x W x C uint8 image at Q16 points with Q8 weights; outside it, the edge repeats or (zero_border)
    counts as 0 (module docstring, 4)."""
    h, w = image.shape[:2]
    fx, fy = ((sx >> 8) & 255).astype(np.int32), ((sy >> 8) & 255).astype(np.int32)
    x0, y0 = sx >> 16, sy >> 16
    xa, xb = np.clip(x0, 0, w - 1), np.clip(x0 + 1, 0, w - 1)
    ya, yb = np.clip(y0, 0, h - 1) * w, np.clip(y0 + 1, 0, h - 1) * w
    flat = image.reshape(h * w, -1)
    if zero_border:  # a weight whose neighbour lies outside the photo becomes 0
        left, right = (256 - fx) * ((x0 >= 0) & (x0 < w)), fx * ((x0 >= -1) & (x0 + 1 < w))
        top, bottom = (256 - fy) * ((y0 >= 0) & (y0 < h)), fy * ((y0 >= -1) & (y0 + 1 < h))
        weights = (left * top, right * top, left * bottom, right * bottom)
    else:
        weights = ((256 - fx) * (256 - fy), fx * (256 - fy), (256 - fx) * fy, fx * fy)  # Q16, sum 65536
    value = np.full(sx.shape + flat.shape[1:], 32768, np.int32)  # int32: at most 255 * 65536 + 32768
    for index, weight in zip((ya + xa, ya + xb, yb + xa, yb + xb), weights):
        value += flat[index].astype(np.int32) * weight[..., None]
    return (value >> 16).astype(np.uint8)


def crop(image: np.ndarray, points: np.ndarray, chip: Chip) -> np.ndarray:
    """uint8 (size, size, 3): the face with its landmarks (landmarks_q4) fitted onto the chip's points."""
    sx, sy = source_points_q16(points, chip)
    return sample(image, sx, sy, shrink_factor(points, chip), chip.zero_border)


def sample(image: np.ndarray, sx: np.ndarray, sy: np.ndarray, k: int, zero_border: bool = False) -> np.ndarray:
    """Steps 3-4 of the module docstring at Q16 points of the photo: k x k block means (k >= 2), then bilinear.

    Only the pixels the samples reach are shrunk and read: the same bytes as shrinking the whole photo (every clamped
    neighbour index lies inside the window, and a neighbour outside the window lies outside the photo), at a
    fraction of the cost for a large photo."""
    k = min(k, *image.shape[:2])  # landmarks far outside a tiny photo: never reduce it below one pixel
    if k >= 2:
        sx, sy = (sx - (k - 1) * 32768) // k, (sy - (k - 1) * 32768) // k
    h, w = image.shape[0] // k, image.shape[1] // k
    x_lo, x_hi = (int(np.clip(v, 0, w - 1)) for v in ((sx >> 16).min(), (sx >> 16).max() + 1))
    y_lo, y_hi = (int(np.clip(v, 0, h - 1)) for v in ((sy >> 16).min(), (sy >> 16).max() + 1))
    window = image[y_lo * k:(y_hi + 1) * k, x_lo * k:(x_hi + 1) * k]
    window = block_average(window, k) if k >= 2 else window
    return bilinear_q16(window, sx - (x_lo << 16), sy - (y_lo << 16), zero_border)


# Liveness crop: the face box scaled by LIVENESS_SCALE about its centre (MiniFASNet's rule, in integers).
LIVENESS_SCALE = (27, 10)


def liveness_box(box, height: int, width: int, scale: tuple[int, int] = LIVENESS_SCALE) -> tuple[int, int, int, int]:
    """(left, top, crop width, crop height) in pixels: the detector box [x0, y0, x1, y1] (integers) scaled about its
    centre by scale[0] / scale[1], the scale first reduced to min(scale, (width - 1) / w, (height - 1) / h) so the
    box fits, sides floor(w * scale) and floor(h * scale), corner floor((2 x0 + w - new_w) / 2), moved inside the
    image (left edge first, then right edge at width - 1); the crop spans new_w + 1 x new_h + 1 pixels (both corners
    included, as the original)."""
    x0, y0, x1, y1 = (int(v) for v in box)
    w, h = max(1, x1 - x0), max(1, y1 - y0)
    num, den = scale
    for n, d in ((width - 1, w), (height - 1, h)):
        if n * den < num * d:  # n / d < num / den: this fraction is the smaller
            num, den = n, d
    new_w, new_h = w * num // den, h * num // den
    left, top = (2 * x0 + w - new_w) // 2, (2 * y0 + h - new_h) // 2
    left, top = max(0, left), max(0, top)
    left, top = min(left, width - 1 - new_w), min(top, height - 1 - new_h)
    return left, top, new_w + 1, new_h + 1


def crop_region(image: np.ndarray, region: tuple[int, int, int, int], size: int) -> np.ndarray:
    """uint8 (size, size, 3): the region (left, top, width, height) resampled to size x size: output pixel o's
    centre maps to left - 1/2 + (o + 1/2) width / size (Q16, halves up); k = min(width, height) // (2 size)."""
    left, top, cw, ch = region
    o = np.arange(size, dtype=np.int64)
    xs = (left << 16) - 32768 + round_div((2 * o + 1) * cw * 32768, size)
    ys = (top << 16) - 32768 + round_div((2 * o + 1) * ch * 32768, size)
    sx, sy = np.broadcast_to(xs[None, :], (size, size)), np.broadcast_to(ys[:, None], (size, size))
    return sample(image, sx, sy, max(1, min(cw, ch) // (2 * size)))


def crop_whole(image: np.ndarray, points: np.ndarray, chip: Chip) -> np.ndarray:
    """crop() as the module docstring states it, shrinking the whole photo: the reference crop() must equal."""
    sx, sy = source_points_q16(points, chip)
    k = min(shrink_factor(points, chip), *image.shape[:2])
    if k >= 2:
        image = block_average(image, k)
        sx, sy = (sx - (k - 1) * 32768) // k, (sy - (k - 1) * 32768) // k
    return bilinear_q16(image, sx, sy, chip.zero_border)
