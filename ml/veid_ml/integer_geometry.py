"""Image geometry for the integer consensus graphs (veid_ml.integer): resizing, crops and box overlaps in int32/int64
TF ops only, so a detector's pyramid, crops and NMS give the same bytes on every CPU.

Rules (each a plain integer formula, written once here and tested against the float ops they replace):
  * division rounds half up: round_div(n, d) = floor((2n + d) / 2d) for d > 0 (floor also for negative n);
  * area resize (tf.image.resize "area"): output pixel i of an axis of n covers input [i N / n, (i + 1) N / n) of N,
    so input pixel p gives it n times their overlap, an integer: each output is an exact integer fraction of N,
    rounded once per axis;
  * bilinear crops (tf.image.crop_and_resize): sample positions in 1/256 px, floor((H - 1) (y0 (S - 1) + i (y1 - y0))
    / (H (S - 1))) of box corners in 1/16 px, the four neighbours weighted by 256ths; a sample outside the image
    takes the extrapolation value, as crop_and_resize does;
  * overlap tests: IoU > p / q as intersection q > p union on 1/16 px corners in int64 (no division).
"""

from fractions import Fraction

Q4 = 16  # box corners and landmarks in 1/16 px
Q8 = 256  # sample positions in 1/256 px


def round_div(tf, n, d):
    """round(n / d) half up of int64 tensors, d > 0."""
    return tf.math.floordiv(2 * n + d, 2 * d)


GROUPS = 32  # a large photo's row sums run in this many groups, one after another: never widened to int32 whole
GROUPED_ABOVE = 1 << 22  # input values (a 1.4 MP RGB photo) above which the row sums are grouped


def _area_axis(tf, x, n, gain: int, grouped: bool = False):
    """x (N, M) integers (uint8 or int32) area-resized to n rows, int32 times gain, rounded half up. Input row p lies
    in output row floor(p n / N) with weight n (its overlap times n), except the row holding a boundary (i + 1) N / n
    that is not a whole number: it gives r = (i + 1) N mod n to row i and n - r to row i + 1. So n times each row's
    sum, minus what its boundary row moves on, plus what the one before moved in. An upscale (n > N) reads every row
    ceil(n / N) times, which leaves an area resize unchanged. grouped: for more than GROUPED_ABOVE values the row
    sums run over GROUPS groups of output rows, each after the one before (control dependencies), each widening only
    its own input rows to int32 (a while loop would do the same, but its frozen graph is not reproducible)."""
    shape = tf.shape(x, out_type=tf.int64)
    n = tf.cast(n, tf.int64)
    repeat = tf.math.floordiv(n + shape[0] - 1, shape[0])
    length = shape[0] * repeat  # rows after the repeat; every output row covers at least one

    def whole():
        rows = tf.cond(repeat > 1, lambda: tf.gather(x, tf.range(length) // repeat), lambda: x)
        return tf.math.segment_sum(tf.cast(rows, tf.int32), (tf.range(length) * n) // length)

    def in_groups():
        per_group = (n + GROUPS - 1) // GROUPS
        parts = []
        for g in range(GROUPS):
            with tf.control_dependencies(parts[-1:]):
                first, last = tf.minimum(g * per_group, n), tf.minimum((g + 1) * per_group, n)  # output rows
                p = tf.range((first * length + n - 1) // n, (last * length + n - 1) // n)  # the input rows in them
                rows = tf.cast(tf.gather(x, p // repeat), tf.int32)
                parts.append(tf.math.segment_sum(rows, (p * n) // length - first))
        return tf.concat(parts, 0)

    rows = tf.cond(length * shape[1] > GROUPED_ABOVE, in_groups, whole) if grouped else whole()  # (n, M)
    edge = tf.range(1, n + 1, dtype=tf.int64) * length  # n times the right boundary of each output row
    part = tf.math.floormod(edge, n)
    boundary = tf.cast(tf.gather(x, tf.minimum(tf.math.floordiv(edge, n), length - 1) // repeat), tf.int32)
    moved = boundary * tf.cast(tf.where(part > 0, n - part, 0), tf.int32)[:, None]
    total = tf.cast(n, tf.int32) * rows - moved + tf.pad(moved[:-1], [[1, 0], [0, 0]])
    return round_div(tf, gain * total, tf.cast(length, tf.int32))


def area_resize(tf, x, size, gain: int = 1):
    """(1, H, W, C) integers area-resized to size = (h, w), times gain (e.g. 16 for 1/16 grey levels), int32 out,
    the photo's rows summed in groups when it is large (_area_axis), each axis rounded once (tf.image.resize "area"
    in exact integer weights). int32 sums: |values| * gain * (H + W + h + w) must stay below 2^30."""
    shape = tf.shape(x)
    rows = _area_axis(tf, tf.reshape(x, [shape[1], -1]), size[0], gain, grouped=True)  # (h, W C)
    columns = tf.transpose(tf.reshape(rows, [-1, shape[2], shape[3]]), [1, 0, 2])  # (W, h, C)
    out = _area_axis(tf, tf.reshape(columns, [shape[2], -1]), size[1], 1)  # (w, h C)
    return tf.transpose(tf.reshape(out, [-1, tf.cast(size[0], tf.int32), shape[3]]), [1, 0, 2])[None]


def _sample_axis(tf, lo, hi, length, size: int):
    """Per box and sample: (first pixel, second pixel, weight of the second in 256ths, inside the image) along one
    axis, crop_and_resize's positions (H - 1) * (lo + i (hi - lo) / (S - 1)) / H for corners in 1/16 px."""
    i = tf.range(size, dtype=tf.int64)[None]
    span = lo[:, None] * (size - 1) + i * (hi - lo)[:, None]  # 1/16 px, times S - 1
    pos = tf.math.floordiv(span * (Q8 // Q4) * (length - 1), length * (size - 1))  # 1/256 px, floor
    inside = tf.logical_and(pos >= 0, pos <= Q8 * (length - 1))
    pos = tf.clip_by_value(pos, 0, Q8 * (length - 1))
    first = tf.math.floordiv(pos, Q8)
    return first, tf.minimum(first + 1, length - 1), pos - first * Q8, inside


def bilinear_crops(tf, image, boxes_q4, size: int, outside: int):
    """size x size crops (n, S, S, C) int32 of image (H, W, C) integers at boxes (n, 4) x0, y0, x1, y1 in 1/16 px:
    sum of weights (256ths squared) times pixels, so values come out times 2^16; `outside` (already times 2^16) where
    a sample lies outside the image."""
    shape = tf.shape(image, out_type=tf.int64)
    height, width = shape[0], shape[1]
    boxes_q4 = tf.cast(boxes_q4, tf.int64)
    y0, y1, fy, in_y = _sample_axis(tf, boxes_q4[:, 1], boxes_q4[:, 3], height, size)
    x0, x1, fx, in_x = _sample_axis(tf, boxes_q4[:, 0], boxes_q4[:, 2], width, size)
    flat = tf.reshape(image, [-1, tf.shape(image)[2]])

    def pixels(rows, cols):
        return tf.cast(tf.gather(flat, rows[:, :, None] * width + cols[:, None, :]), tf.int32)  # (n, S, S, C)

    fy = tf.cast(fy, tf.int32)[:, :, None, None]
    fx = tf.cast(fx, tf.int32)[:, None, :, None]
    top = (Q8 - fx) * pixels(y0, x0) + fx * pixels(y0, x1)
    bottom = (Q8 - fx) * pixels(y1, x0) + fx * pixels(y1, x1)
    value = (Q8 - fy) * top + fy * bottom
    inside = tf.logical_and(in_y[:, :, None], in_x[:, None, :])[..., None]
    return tf.where(inside, value, outside)


def ratio(limit: float) -> tuple[int, int]:
    """An overlap limit as the exact fraction p / q it stands for (0.7 -> 7 / 10)."""
    f = Fraction(limit).limit_denominator(1000)
    return f.numerator, f.denominator


def overlap_exceeds(tf, boxes_q4, limit: float, method: str = "union"):
    """(n, n) bool: IoU (method "min": intersection over the smaller area) of [x0, y0, x1, y1] boxes in 1/16 px is
    above limit, by cross-multiplication in int64. Empty boxes overlap nothing."""
    p, q = ratio(limit)
    boxes = tf.cast(boxes_q4, tf.int64)
    lo, hi = boxes[:, :2], boxes[:, 2:]
    area = tf.reduce_prod(tf.maximum(hi - lo, 0), axis=1)
    sides = tf.maximum(tf.minimum(hi[:, None], hi[None]) - tf.maximum(lo[:, None], lo[None]), 0)
    inter = sides[..., 0] * sides[..., 1]
    if method == "union":
        base = area[:, None] + area[None, :] - inter
    else:
        base = tf.minimum(area[:, None], area[None, :])
    return inter * q > base * p
