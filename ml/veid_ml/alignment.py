"""Face crops from the detector's eye points, in integer arithmetic only (ported line for line to Go: pkg/inference).

The facial and liveness models read a face whose eyes sit at CANONICAL_EYES_BP of a size x size crop (where the ported
MTCNN finds the eyes on the synthetic renders the models were trained on). The crop is a similarity warp (rotation,
uniform scale, shift) of the photo. Everything after the detector is integer arithmetic, so Python and Go (and any
CPU) cut the same crop bytes from the same pixels and eye points:

1. Eye points: the detector's float32 (x, y) of the two eyes, pixel centres at integers, rounded half-to-even to
   1/16 px (Q4 integers); the point with the smaller x is e0 (on a tie, the detector's first eye).
2. Canonical eyes: c0, c1 = CANONICAL_EYES_BP (fractions of the side in 1/10000) * size * 16 // 10000 (Q4). They are
   level (c0.y == c1.y), so the map from crop to photo is  s = e0 + W (o - c0)  with the complex ratio
   W = (e1 - e0) / (c1.x - c0.x): for crop pixel o (integers),
       t = 16 o - c0,  s_q16 = 4096 e0 + round_div(4096 (u.x t.x - u.y t.y, u.y t.x + u.x t.y), c1.x - c0.x)
   with u = e1 - e0, and round_div(n, d) = floor((2n + d) / (2d)) (halves round up).
3. Shrink first: a bilinear warp that shrinks by more than 2x aliases. k = isqrt(|u|^2 // (4 |c1 - c0|^2)), the
   largest integer <= scale / 2 (scale = |u| / |c1 - c0|, photo px per crop px), at most the photo's shorter side
   (eyes far outside a tiny photo); when k >= 2 the photo is reduced by
   averaging k x k blocks: out = (block sum + k*k // 2) // (k*k), over the floor(H/k) x floor(W/k) whole blocks, and
   coordinates follow: s' = floor((s_q16 - (k - 1) * 32768) / k) (block centres).
4. Bilinear sampling at s (Q16): x0 = s.x >> 16 (floor), fx = (s.x >> 8) & 255, likewise y; neighbours clamped to
   the image (replicated border); value = (p00 (256-fx)(256-fy) + p01 fx (256-fy) + p10 (256-fx) fy + p11 fx fy
   + 32768) >> 16, per channel.

The eye distance |u| in source pixels also decides whether a face is big enough to verify (MIN_EYE_DISTANCE_Q4).
"""

from math import isqrt

import numpy as np

# (x, y) of the image-left and image-right eye centres, in 1/10000 of the crop side: where MTCNN finds the eyes on
# the synthetic renders both face models learned from (tests/test_data_faces.py measures it with face_detection).
CANONICAL_EYES_BP = ((3960, 4930), (6100, 4930))
# Faces whose eyes are closer than 10 px hold too few pixels for either model (the facial model's crop has 14 px).
MIN_EYE_DISTANCE_Q4 = 10 * 16


def eyes_q4(landmarks: np.ndarray) -> np.ndarray:
    """int64 (2, 2): the detector's first two landmarks (the eyes), rounded half-to-even to 1/16 px, left eye first."""
    eyes = np.rint(np.asarray(landmarks, np.float32)[:2].astype(np.float64) * 16).astype(np.int64)
    return eyes[::-1] if eyes[1, 0] < eyes[0, 0] else eyes


def canonical_q4(size: int) -> np.ndarray:
    return np.array(CANONICAL_EYES_BP, np.int64) * size * 16 // 10000


def eye_distance_sq_q4(eyes: np.ndarray) -> int:
    u = eyes[1] - eyes[0]
    return int(u[0] * u[0] + u[1] * u[1])


def round_div(n, d: int):
    """n / d rounded to the nearest integer, halves up (d > 0), for Python ints or int64 arrays: floor division only."""
    return (2 * n + d) // (2 * d)


def shrink_factor(eyes: np.ndarray, size: int) -> int:
    c = canonical_q4(size)
    span = int(c[1, 0] - c[0, 0])
    return max(1, isqrt(eye_distance_sq_q4(eyes) // (4 * span * span)))


def block_average(image: np.ndarray, k: int) -> np.ndarray:
    """The image reduced k times: each output pixel the rounded mean of a k x k block (whole blocks only)."""
    h, w = image.shape[0] // k, image.shape[1] // k
    total = np.full((h, w) + image.shape[2:], k * k // 2, np.int64)
    for dy in range(k):  # k * k strided adds: far faster than a reduction over a 5-D view
        for dx in range(k):
            total += image[dy:h * k:k, dx:w * k:k]
    return (total // (k * k)).astype(np.uint8)


def source_points_q16(eyes: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) int64 (size, size): where each crop pixel centre lies in the photo, in 1/65536 px."""
    c = canonical_q4(size)
    u = eyes[1] - eyes[0]
    span = int(c[1, 0] - c[0, 0])
    oy, ox = np.mgrid[0:size, 0:size].astype(np.int64)
    tx, ty = 16 * ox - c[0, 0], 16 * oy - c[0, 1]
    sx = 4096 * eyes[0, 0] + round_div(4096 * (u[0] * tx - u[1] * ty), span)
    sy = 4096 * eyes[0, 1] + round_div(4096 * (u[1] * tx + u[0] * ty), span)
    return sx, sy


def bilinear_q16(image: np.ndarray, sx: np.ndarray, sy: np.ndarray) -> np.ndarray:
    """Sample an H x W x C uint8 image at Q16 points with Q8 weights and a replicated border (module docstring, 4)."""
    h, w = image.shape[:2]
    fx, fy = ((sx >> 8) & 255).astype(np.int32), ((sy >> 8) & 255).astype(np.int32)
    x0, y0 = sx >> 16, sy >> 16
    xa, xb = np.clip(x0, 0, w - 1), np.clip(x0 + 1, 0, w - 1)
    ya, yb = np.clip(y0, 0, h - 1) * w, np.clip(y0 + 1, 0, h - 1) * w
    flat = image.reshape(h * w, -1)
    weights = ((256 - fx) * (256 - fy), fx * (256 - fy), (256 - fx) * fy, fx * fy)  # Q16, sum 65536
    value = np.full(sx.shape + flat.shape[1:], 32768, np.int32)  # int32: at most 255 * 65536 + 32768
    for index, weight in zip((ya + xa, ya + xb, yb + xa, yb + xb), weights):
        value += flat[index].astype(np.int32) * weight[..., None]
    return (value >> 16).astype(np.uint8)


def crop(image: np.ndarray, eyes: np.ndarray, size: int) -> np.ndarray:
    """uint8 (size, size, 3): the face with its eyes (eyes_q4) moved to the canonical eye points."""
    sx, sy = source_points_q16(eyes, size)
    return sample(image, sx, sy, shrink_factor(eyes, size))


def sample(image: np.ndarray, sx: np.ndarray, sy: np.ndarray, k: int) -> np.ndarray:
    """Steps 3-4 of the module docstring at Q16 points of the photo: k x k block means (k >= 2), then bilinear.

    Only the pixels the samples reach are shrunk and read: the same bytes as shrinking the whole photo (every clamped
    neighbour index lies inside the window), at a fraction of the cost for a large photo."""
    k = min(k, *image.shape[:2])  # eyes far outside a tiny photo: never reduce it below one pixel
    if k >= 2:
        sx, sy = (sx - (k - 1) * 32768) // k, (sy - (k - 1) * 32768) // k
    h, w = image.shape[0] // k, image.shape[1] // k
    x_lo, x_hi = (int(np.clip(v, 0, w - 1)) for v in ((sx >> 16).min(), (sx >> 16).max() + 1))
    y_lo, y_hi = (int(np.clip(v, 0, h - 1)) for v in ((sy >> 16).min(), (sy >> 16).max() + 1))
    window = image[y_lo * k:(y_hi + 1) * k, x_lo * k:(x_hi + 1) * k]
    window = block_average(window, k) if k >= 2 else window
    return bilinear_q16(window, sx - (x_lo << 16), sy - (y_lo << 16))


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


def crop_whole(image: np.ndarray, eyes: np.ndarray, size: int) -> np.ndarray:
    """crop() as the module docstring states it, shrinking the whole photo: the reference crop() must equal."""
    sx, sy = source_points_q16(eyes, size)
    k = min(shrink_factor(eyes, size), *image.shape[:2])
    if k >= 2:
        image = block_average(image, k)
        sx, sy = (sx - (k - 1) * 32768) // k, (sy - (k - 1) * 32768) // k
    return bilinear_q16(image, sx, sy)
