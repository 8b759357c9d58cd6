"""MTCNN's three networks (P-Net, R-Net, O-Net) as Keras models with the weights of the `mtcnn==1.0.0` wheel, and the
whole cascade as ONE in-graph serving function, twice: the consensus graph in integer ops only (make_integer_serving,
the governed artifact) and its float twin (make_serving).

The networks are the wheel's `mtcnn/network/{pnet,rnet,onet}.py` layer for layer (3x3 convolutions, PReLU with one
slope per channel, the same max-pooling paddings, R/O-Net's (2, 1, 3) permute before flattening) and read its
`assets/weights/*.lz4` files (joblib lists of arrays, MIT licence: LICENSE-mtcnn.txt). The cascade follows the wheel's
stages (`mtcnn/stages/*.py`, `mtcnn/utils/bboxes.py`): P-Net proposals per pyramid level with box regression, NMS per
level (IoU 0.5) and across levels (0.7), square boxes, R-Net on 24 px crops (NMS 0.7), square boxes, O-Net on 48 px
crops (boxes, five landmarks, NMS 0.7 over the smaller box). Its NMS is the wheel's own: a box is dropped when ANY
higher-scored box overlaps it beyond the limit (a matrix operation, no sequential loop).

What differs from the wheel, on purpose (NOTES.md has the measurements):
  * a fixed, short pyramid for selfies and document portraits: 6 levels (scale factor 0.6) for faces from 1/10 of
    the image's shorter side (min_face_fraction) up to all of it, their sizes in exact integer arithmetic
    (level_sizes). The first level is area-resized straight from the uint8 image, the others from the first, and all
    six are packed onto one canvas (plan_canvas, build_canvas), so P-Net runs once; a P-Net cell whose window lies
    inside one level computes exactly what it computes on that level alone, and the cells that straddle two levels
    are ignored. (The wheel resizes the full image for each of ~10 levels of a 640 x 480 photo and runs P-Net on each.)
  * the float forward passes are plain TF ops over the Keras layers' variables (Forward): P-Net's face score is the
    logit difference, and R/O-Net's sigmoid(logit difference) equals their softmax, each in fewer graph ops;
  * candidates are capped (P-Net cells before NMS, boxes into R-Net, into O-Net, faces out), so the cost is bounded;
  * outputs use pixel-edge coordinates: the wheel's boxes are inclusive pixel indices [x0, x1] (its "+ 1" widths),
    so its box edges are x0 - 0.5 and x1 + 0.5, and its landmarks x0 - 1 + w * l are x0 - 0.5 + w * l here.
R-Net and O-Net crop from the full image exactly as the wheel does (bilinear, corners at box / image size).

The consensus graph is the same cascade in int32/int64 ops (veid_ml.integer for the networks, veid_ml.integer_geometry
for the rest), so every CPU computes the same bytes: levels and crops in 1/16 grey levels (the wheel's (x - 127.5) /
128 is (v - 2040) / 2048), integer area resize and bilinear crops, each network's heads merged into one layer in
1/1024 (box offsets, landmark fractions, the face logit difference), corners in 1/16 px with every division rounded
half up, NMS by cross-multiplying areas, thresholds on the logit, and O-Net's probability from a table in basis
points. Faces are ordered by O-Net's logit.

Serving contract (signature "serving_default"), one image per call:
    input  "image"         uint8   [H, W, 3]  RGB (grey photos: the grey value in all three channels), any size with
                                              sides under 2^17 px. An image whose shorter side is under MIN_SIDE (32)
                                              px returns no faces (N = 0). Other dtypes are refused by TensorFlow before
                                              anything runs, and other shapes (a batch, a grey [H, W]) by the graph's
                                              first op, through the C API too (InvalidArgument).
    output "boxes_q4"      int32   [N, 4]     x0, y0, x1, y1 in 1/16 px: x right, y down, the image spans 0..16 W and
                                              0..16 H (a pixel's centre is at +8); clipped to the image
           "landmarks_q4"  int32   [N, 5, 2]  (x, y) in 1/16 px of the image-left eye, image-right eye, nose tip,
                                              image-left mouth corner, image-right mouth corner (not clipped).
                                              "Image-left" is the subject's right for a frontal face.
           "scores_bp"     int32   [N]        O-Net's face probability in basis points; every score >= threshold_bp
           "threshold_bp"  int32   []         the score threshold chosen on validation data (baked into the graph)
    N is variable: 0 <= N <= max_faces (no padding), the most confident faces first.
The float twin (weights/face_detection_float/) has the same input and float32 "boxes", "landmarks" (pixels),
"scores" (probabilities) and "threshold".
Faces of less than about 1/10 of the shorter side are found less and less often. An image more elongated than
MAX_ASPECT:1 is searched as if padded to that shape, so its smallest findable face is 1/10 of longer side / MAX_ASPECT.
"""

import importlib.util
import math
from fractions import Fraction
from pathlib import Path

import numpy as np

from veid_ml.integer_geometry import Q4, area_resize, bilinear_crops, overlap_exceeds, round_div

WEIGHT_FILES = ("pnet.lz4", "rnet.lz4", "onet.lz4")
MIN_SIDE = 32  # as veid_ml.images.DEFAULT_MIN_SIDE: the API's smallest accepted image
MAX_ASPECT = 4.0  # a more elongated image's pyramid is padded to this aspect ratio (bounds the canvas)
PNET_CELL, PNET_STRIDE = 12, 2  # P-Net's window and step in pixels of a pyramid level
CROP_SIZES = {"rnet": 24, "onet": 48}

# Layers in the order of each weight file's arrays (the wheel's Keras subclasses assign them in this order).
PNET_LAYERS = ("conv1", "prelu1", "conv2", "prelu2", "conv3", "prelu3", "conv4_1", "conv4_2")
RNET_LAYERS = ("conv1", "prelu1", "conv2", "prelu2", "conv3", "prelu3", "fc4", "prelu4", "fc5_1", "fc5_2")
ONET_LAYERS = ("conv1", "prelu1", "conv2", "prelu2", "conv3", "prelu3", "conv4", "prelu4", "fc5", "prelu5", "fc6_1",
               "fc6_2", "fc6_3")


def weights_dir() -> Path:
    """assets/weights of the installed mtcnn wheel, found without importing the package (it imports TensorFlow)."""
    spec = importlib.util.find_spec("mtcnn")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the mtcnn package is not installed (ml/requirements-deterministic.txt pins it)")
    folder = Path(list(spec.submodule_search_locations)[0]) / "assets" / "weights"
    missing = [name for name in WEIGHT_FILES if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(f"the mtcnn wheel at {folder.parent.parent} lacks {', '.join(missing)}")
    return folder


def load_weight_arrays(name: str) -> list[np.ndarray]:
    """The arrays of one weight file (joblib + lz4, as the wheel's own loader reads them)."""
    import joblib

    return [np.asarray(a, np.float32) for a in joblib.load(weights_dir() / name)]


def _conv(x, filters, kernel, name):
    import keras

    return keras.layers.Conv2D(filters, kernel, padding="valid", name=name)(x)


def _prelu(x, name, per_channel_map=True):
    import keras

    return keras.layers.PReLU(shared_axes=[1, 2] if per_channel_map else None, name=name)(x)


def build_pnet():
    """P-Net: any H x W x 3 -> (box regression, face/non-face softmax), each (h', w', .) with h' = ceil(H / 2) - 5."""
    import keras

    inputs = keras.Input((None, None, 3), name="pnet_input")
    x = _prelu(_conv(inputs, 10, 3, "conv1"), "prelu1")
    x = keras.layers.MaxPooling2D(2, 2, padding="same", name="pool1")(x)
    x = _prelu(_conv(x, 16, 3, "conv2"), "prelu2")
    x = _prelu(_conv(x, 32, 3, "conv3"), "prelu3")
    reg = keras.layers.Conv2D(4, 1, name="conv4_1")(x)
    prob = keras.layers.Conv2D(2, 1, activation="softmax", name="conv4_2")(x)
    return keras.Model(inputs, [reg, prob], name="pnet")


def build_rnet():
    """R-Net: 24 x 24 x 3 crops -> (box regression (4,), softmax (2,))."""
    import keras

    inputs = keras.Input((24, 24, 3), name="rnet_input")
    x = _prelu(_conv(inputs, 28, 3, "conv1"), "prelu1")
    x = keras.layers.MaxPooling2D(3, 2, padding="same", name="pool1")(x)
    x = _prelu(_conv(x, 48, 3, "conv2"), "prelu2")
    x = keras.layers.MaxPooling2D(3, 2, padding="valid", name="pool2")(x)
    x = _prelu(_conv(x, 64, 2, "conv3"), "prelu3")
    x = keras.layers.Flatten(name="flatten")(keras.layers.Permute((2, 1, 3), name="permute")(x))  # Caffe's order
    x = _prelu(keras.layers.Dense(128, name="fc4")(x), "prelu4", per_channel_map=False)
    reg = keras.layers.Dense(4, name="fc5_1")(x)
    prob = keras.layers.Dense(2, activation="softmax", name="fc5_2")(x)
    return keras.Model(inputs, [reg, prob], name="rnet")


def build_onet():
    """O-Net: 48 x 48 x 3 crops -> (box regression (4,), landmarks (10,) as x1..x5, y1..y5 in box fractions,
    softmax (2,))."""
    import keras

    inputs = keras.Input((48, 48, 3), name="onet_input")
    x = _prelu(_conv(inputs, 32, 3, "conv1"), "prelu1")
    x = keras.layers.MaxPooling2D(3, 2, padding="same", name="pool1")(x)
    x = _prelu(_conv(x, 64, 3, "conv2"), "prelu2")
    x = keras.layers.MaxPooling2D(3, 2, padding="valid", name="pool2")(x)
    x = _prelu(_conv(x, 64, 3, "conv3"), "prelu3")
    x = keras.layers.MaxPooling2D(2, 2, padding="same", name="pool3")(x)
    x = _prelu(_conv(x, 128, 2, "conv4"), "prelu4")
    x = keras.layers.Flatten(name="flatten")(keras.layers.Permute((2, 1, 3), name="permute")(x))
    x = _prelu(keras.layers.Dense(256, name="fc5")(x), "prelu5", per_channel_map=False)
    reg = keras.layers.Dense(4, name="fc6_1")(x)
    landmarks = keras.layers.Dense(10, name="fc6_2")(x)
    prob = keras.layers.Dense(2, activation="softmax", name="fc6_3")(x)
    return keras.Model(inputs, [reg, landmarks, prob], name="onet")


def set_ported_weights(model, layer_names, arrays) -> None:
    """Assign a weight file's arrays to the named layers in order, checking every shape."""
    arrays = list(arrays)
    for name in layer_names:
        layer = model.get_layer(name)
        wanted = [tuple(w.shape) for w in layer.weights]
        take, arrays = arrays[:len(wanted)], arrays[len(wanted):]
        if [a.shape for a in take] != wanted:
            raise ValueError(f"{model.name}.{name}: weight file shapes {[a.shape for a in take]} != layer {wanted}")
        layer.set_weights(take)
    if arrays:
        raise ValueError(f"{model.name}: {len(arrays)} weight arrays left over")


def build_networks() -> dict:
    """{"pnet", "rnet", "onet"}: the three Keras models with the wheel's weights."""
    nets = {"pnet": build_pnet(), "rnet": build_rnet(), "onet": build_onet()}
    for (key, net), layers, file in zip(nets.items(), (PNET_LAYERS, RNET_LAYERS, ONET_LAYERS), WEIGHT_FILES):
        set_ported_weights(net, layers, load_weight_arrays(file))
    return nets


def build_detector(nets: dict):
    """One Keras model holding the three networks, so the exporter tracks all their variables in a fixed order."""
    import keras

    ins = [keras.Input((None, None, 3), name="p"), keras.Input((24, 24, 3), name="r"),
           keras.Input((48, 48, 3), name="o")]
    outs = [*nets["pnet"](ins[0]), *nets["rnet"](ins[1]), *nets["onet"](ins[2])]
    return keras.Model(ins, outs, name="mtcnn")


class Forward:
    """The three networks' forward passes in plain TF ops over the Keras layers' own variables: the same arithmetic
    (tests compare them) in fewer graph ops, and P-Net's two heads in one 1x1 convolution whose face channel is the
    softmax's logit difference (a monotone stand-in for the face probability: no softmax over the whole pyramid)."""

    def __init__(self, nets: dict):
        import tensorflow as tf

        self.tf = tf
        self.w = {key: {layer.name: layer.weights for layer in net.layers if layer.weights}
                  for key, net in nets.items()}

    def _prelu(self, x, alpha):
        return self.tf.nn.relu(x) + alpha * self.tf.minimum(x, 0.0)  # alpha broadcasts: (1, 1, C) or (C,)

    def _conv(self, x, net, name):
        kernel, bias = self.w[net][name]
        return self.tf.nn.bias_add(self.tf.nn.conv2d(x, kernel, 1, "VALID"), bias)

    def _dense(self, x, net, name):
        kernel, bias = self.w[net][name]
        return self.tf.nn.bias_add(self.tf.matmul(x, kernel), bias)

    def _face_probability(self, y, net, name):
        """softmax(logits)[:, 1] as sigmoid(face logit - non-face logit): equal, and one oneDNN op fewer."""
        kernel, bias = self.w[net][name]
        return self.tf.sigmoid(self.tf.matmul(y, kernel[:, 1:] - kernel[:, :1])[:, 0] + (bias[1] - bias[0]))

    def _block(self, x, net, i):
        return self._prelu(self._conv(x, net, f"conv{i}"), self.w[net][f"prelu{i}"][0])

    def pnet(self, x):
        """(1, H, W, 3) -> (box regression (h', w', 4), face logit minus non-face logit (h', w'))."""
        tf = self.tf
        y = tf.nn.max_pool2d(self._block(x, "pnet", 1), 2, 2, "SAME")
        y = self._block(self._block(y, "pnet", 2), "pnet", 3)
        (k41, b41), (k42, b42) = self.w["pnet"]["conv4_1"], self.w["pnet"]["conv4_2"]
        kernel = tf.concat([k41, k42[..., 1:] - k42[..., :1]], axis=-1)
        bias = tf.concat([b41, b42[1:] - b42[:1]], axis=0)
        out = tf.nn.bias_add(tf.nn.conv2d(y, kernel, 1, "VALID"), bias)[0]
        return out[..., :4], out[..., 4]

    def _flat(self, y):
        tf = self.tf
        y = tf.transpose(y, [0, 2, 1, 3])  # the Caffe model's (W, H, C) flattening order
        return tf.reshape(y, [tf.shape(y)[0], -1])

    def rnet(self, x):
        """(n, 24, 24, 3) -> (box regression (n, 4), face probability (n,))."""
        tf = self.tf
        y = tf.nn.max_pool2d(self._block(x, "rnet", 1), 3, 2, "SAME")
        y = tf.nn.max_pool2d(self._block(y, "rnet", 2), 3, 2, "VALID")
        y = self._flat(self._block(y, "rnet", 3))
        y = self._prelu(self._dense(y, "rnet", "fc4"), self.w["rnet"]["prelu4"][0])
        return self._dense(y, "rnet", "fc5_1"), self._face_probability(y, "rnet", "fc5_2")

    def onet(self, x):
        """(n, 48, 48, 3) -> (box regression (n, 4), landmarks (n, 10) as x1..x5, y1..y5 in box fractions,
        face probability (n,))."""
        tf = self.tf
        y = tf.nn.max_pool2d(self._block(x, "onet", 1), 3, 2, "SAME")
        y = tf.nn.max_pool2d(self._block(y, "onet", 2), 3, 2, "VALID")
        y = tf.nn.max_pool2d(self._block(y, "onet", 3), 2, 2, "SAME")
        y = self._flat(self._block(y, "onet", 4))
        y = self._prelu(self._dense(y, "onet", "fc5"), self.w["onet"]["prelu5"][0])
        return (self._dense(y, "onet", "fc6_1"), self._dense(y, "onet", "fc6_2"),
                self._face_probability(y, "onet", "fc6_3"))


def overlaps(boxes, method: str = "union"):
    """(n, n) IoU (or intersection over the smaller area, method "min") of [x0, y0, x1, y1] boxes."""
    import tensorflow as tf

    lo, hi = boxes[:, :2], boxes[:, 2:]
    area = tf.reduce_prod(hi - lo, axis=1)
    inter = tf.reduce_prod(tf.maximum(0.0, tf.minimum(hi[:, None], hi[None]) - tf.maximum(lo[:, None], lo[None])), -1)
    if method == "union":
        return tf.math.divide_no_nan(inter, area[:, None] + area[None, :] - inter)
    return tf.math.divide_no_nan(inter, tf.minimum(area[:, None], area[None, :]))


def fast_nms_mask(overlap, limit: float, candidates=None):
    """The wheel's NMS on boxes sorted by descending score: box j is dropped when any earlier box (among
    `candidates`, default all) overlaps it by more than `limit`. Returns the kept mask."""
    import tensorflow as tf

    n = tf.range(tf.shape(overlap)[0])
    hit = tf.logical_and(n[:, None] < n[None, :], overlap > limit)
    if candidates is not None:
        hit = tf.logical_and(hit, candidates[:, None])
    return tf.logical_not(tf.reduce_any(hit, axis=0))


def square(boxes):
    """The wheel's resize_to_square: same centre, side = the longer side."""
    import tensorflow as tf

    lo, size = boxes[:, :2], boxes[:, 2:] - boxes[:, :2]
    side = tf.reduce_max(size, axis=1, keepdims=True)
    lo = lo + size * 0.5 - side * 0.5
    return tf.concat([lo, lo + side], axis=1)


def refine(boxes, reg):
    """The wheel's adjust_bboxes: offsets in units of the box size (+1: the Caffe model's inclusive pixel count)."""
    import tensorflow as tf

    size = boxes[:, 2:] - boxes[:, :2] + 1.0
    return boxes + reg * tf.concat([size, size], axis=1)


def where(mask):
    """Indices of the true entries of a 1-D mask (tf.boolean_mask in three ops instead of eight)."""
    import tensorflow as tf

    return tf.where(mask)[:, 0]


def sorted_top(scores, k):
    """Indices of the k highest scores, descending (ties: lower index first)."""
    import tensorflow as tf

    return tf.math.top_k(scores, tf.minimum(k, tf.size(scores)), sorted=True).indices


def pyramid_windows(min_face_fraction: float, scale_factor: float) -> list[Fraction]:
    """Per pyramid level, the image side (in level pixels) of a frame whose faces fill P-Net's 12 px window: level k
    finds faces of min_face_fraction / scale_factor**k of the frame, up to the first level whose faces fill it all.
    Exact fractions (the config's decimals read as the fractions they stand for), so level sizes are exact."""
    first, step = Fraction(min_face_fraction).limit_denominator(1000), Fraction(scale_factor).limit_denominator(1000)
    fractions = [first]
    while fractions[-1] < 1:
        fractions.append(fractions[-1] / step)
    return [(PNET_CELL / f).limit_denominator(10000) for f in fractions]  # small terms for int64 (0.709**k: huge)


def level_sizes(windows, height, width, ops=np):
    """(..., L, 2) heights and widths of the pyramid levels of images of height x width, and level 0's size before
    padding: level k shrinks the image so that its frame spans windows[k] px, the frame side being the shorter side,
    or the longer side / MAX_ASPECT for more elongated images, whose levels are then padded to that frame (so every
    pyramid has the shape of one of an aspect ratio <= MAX_ASPECT): content = ceil(window * side / frame), padded to
    ceil(window), in exact integers. NumPy (any batch shape) or TensorFlow (one image, int64); both graphs use it."""
    aspect = int(MAX_ASPECT)
    nums = [w.numerator for w in windows]
    dens = [w.denominator for w in windows]
    if ops is np:
        hw = np.stack(np.broadcast_arrays(np.int64(height), np.int64(width)), axis=-1).astype(np.int64)
        frame4 = np.maximum(aspect * hw.min(axis=-1), hw.max(axis=-1))[..., None, None]
        num, den = np.array(nums, np.int64)[:, None], np.array(dens, np.int64)[:, None]
        content = np.maximum(1, -((-aspect * num * hw[..., None, :]) // (den * frame4)))
        padded = np.maximum(PNET_CELL, np.maximum(content, -((-num) // den)))
        return padded, content[..., 0, :]
    import tensorflow as tf

    hw = tf.cast(tf.stack([height, width]), tf.int64)
    frame4 = tf.maximum(aspect * tf.reduce_min(hw), tf.reduce_max(hw))
    num, den = tf.constant(nums, tf.int64)[:, None], tf.constant(dens, tf.int64)[:, None]
    content = tf.maximum(tf.constant(1, tf.int64), -tf.math.floordiv(-aspect * num * hw[None], den * frame4))
    padded = tf.maximum(tf.constant(PNET_CELL, tf.int64), tf.maximum(content, -tf.math.floordiv(-num, den)))
    return padded, content[0]


class Slot:
    """A rectangle of the pyramid canvas: empty, or holding one level at its top-left corner with two child slots,
    the rest of its column below the level and the rest of the slot to its right (a guillotine packing)."""

    def __init__(self, width, height):
        self.width, self.height = width, height  # dicts {("w" | "h", level): coefficient}; width None: unbounded
        self.level, self.below, self.right = None, None, None


def _value(expr, even):
    """A slot dimension for concrete even level sizes (..., L, 2); None (unbounded) stays None."""
    if expr is None:
        return None
    return sum(c * even[..., k, 0 if axis == "h" else 1] for (axis, k), c in expr.items())


def _minus(expr, term):
    out = dict(expr)
    out[term] = out.get(term, 0) - 1
    return {k: c for k, c in out.items() if c}


def plan_canvas(windows) -> Slot:
    """Pack the pyramid levels on one canvas: largest first, each into the free slot of least area it fits in a square
    image's pyramid (the unbounded strip right of everything last). The slot sizes are kept as sums of level sizes,
    and the arrangement is checked for every image shape (level sizes depend on it through the aspect ratio and
    rounding only); if it fails anywhere, all levels go side by side in one strip, which always fits."""
    try:
        return _plan(windows, best_fit=True)
    except ValueError:
        return _plan(windows, best_fit=False)


def _plan(windows, best_fit: bool) -> Slot:
    sizes, _ = level_sizes(windows, 480, 480)
    even = sizes + sizes % 2
    root = Slot(None, {("h", 0): 1})
    open_slots = [root]
    for k in range(len(windows)):
        fits = [slot for slot in open_slots if even[k, 0] <= _value(slot.height, even)
                and (slot.width is None or even[k, 1] <= _value(slot.width, even))]
        if not best_fit:
            fits = [slot for slot in fits if slot.width is None]
        slot = min(fits, key=lambda s: np.inf if s.width is None else _value(s.width, even) * _value(s.height, even))
        open_slots.remove(slot)
        slot.level = k
        slot.below = Slot({("w", k): 1}, _minus(slot.height, ("h", k)))
        slot.right = Slot(None if slot.width is None else _minus(slot.width, ("w", k)), slot.height)
        open_slots += [child for child in (slot.below, slot.right) if child.height]
    # every image 32-8000 px high (a sample of heights) and 1-5 times as wide or as tall
    for short in (32, 33, 47, 100, 243, 479, 480, 481, 720, 1080, 1081, 2999, 8000):
        long = np.arange(short, (MAX_ASPECT + 1) * short + 1)
        for height, width in ((short, long), (long, short)):
            sizes, _ = level_sizes(windows, height, width)
            _check_slot(root, sizes + sizes % 2)
    return root


def _check_slot(slot, even):
    if slot is None or not slot.height:
        return
    height, width = _value(slot.height, even), _value(slot.width, even)
    bad = height < 0 if width is None else (height < 0) | (width < 0)
    if slot.level is not None:
        bad = bad | (even[..., slot.level, 0] > height)
        if width is not None:
            bad = bad | (even[..., slot.level, 1] > width)
    if np.any(bad):
        raise ValueError("the pyramid canvas layout does not hold for every image size: choose another scale_factor "
                         "or min_face_fraction")
    _check_slot(slot.below, even)
    _check_slot(slot.right, even)


def build_canvas(root: Slot, levels, sizes):
    """The planned canvas for these levels: (canvas (1, Hc, Wc, 3), x offsets (L,), y offsets (L,)). Each level is
    zero-padded to even sizes and sits at even offsets (P-Net's stride); zeros are mid grey after normalisation."""
    import tensorflow as tf

    even = sizes + sizes % 2
    offsets = {}

    def value(expr):
        return tf.add_n([c * even[k, 0 if axis == "h" else 1] for (axis, k), c in expr.items()])

    def block(slot, x, y):
        if slot is None or not slot.height:
            return None
        if slot.level is None:
            if slot.width is None:
                return None
            return tf.zeros(tf.stack([1, value(slot.height), value(slot.width), 3]), levels[0].dtype)
        k = slot.level
        offsets[k] = (x, y)
        level = tf.pad(levels[k], [[0, 0], [0, even[k, 0] - sizes[k, 0]], [0, even[k, 1] - sizes[k, 1]], [0, 0]])
        below = block(slot.below, x, y + even[k, 0])
        column = level if below is None else tf.concat([level, below], axis=1)
        right = block(slot.right, x + even[k, 1], y)
        return column if right is None else tf.concat([column, right], axis=2)

    canvas = block(root, tf.constant(0), tf.constant(0))
    xs, ys = zip(*(offsets[k] for k in range(len(levels))))
    return canvas, tf.stack(xs), tf.stack(ys)


def cell_levels(canvas_shape, sizes, xs, ys):
    """The level of each P-Net cell of the canvas (h', w') int32, -1 where its 12 px window is not inside one level."""
    import tensorflow as tf

    ci = tf.range((canvas_shape[1] - PNET_CELL) // PNET_STRIDE + 1) * PNET_STRIDE
    cj = tf.range((canvas_shape[2] - PNET_CELL) // PNET_STRIDE + 1) * PNET_STRIDE
    row_in = tf.logical_and(ci[:, None] >= ys[None], ci[:, None] + PNET_CELL <= (ys + sizes[:, 0])[None])
    col_in = tf.logical_and(cj[:, None] >= xs[None], cj[:, None] + PNET_CELL <= (xs + sizes[:, 1])[None])
    inside = tf.logical_and(row_in[:, None, :], col_in[None, :, :])
    return tf.where(tf.reduce_any(inside, -1), tf.argmax(tf.cast(inside, tf.int32), -1, tf.int32), -1)


def proposals(logit, level_id, xs, ys, k: int, threshold, outside):
    """P-Net's k most confident cells above threshold (inside one level; `outside` marks the others), best first:
    (flat cell indices, their levels, their top-left corners (n, 2) x, y in level pixels)."""
    import tensorflow as tf

    flat = tf.reshape(tf.where(level_id >= 0, logit, outside), [-1])
    idx = sorted_top(flat, k)
    idx = tf.gather(idx, where(tf.gather(flat, idx) > threshold))
    width = tf.shape(logit)[1]
    level = tf.gather(tf.reshape(level_id, [-1]), idx)
    cell = tf.stack([idx % width * PNET_STRIDE - tf.gather(xs, level),
                     idx // width * PNET_STRIDE - tf.gather(ys, level)], axis=1)
    return idx, level, cell


def one_image(image, detect, nothing):
    """Both serving functions' input rule: detect(image) for one [H, W, 3] image whose sides are MIN_SIDE px up to
    MAX_INTEGER_SIDE, nothing() for a smaller one; a batch, a grey [H, W] or a larger image fails (InvalidArgument,
    also through the C API)."""
    import tensorflow as tf

    image = tf.ensure_shape(image, [None, None, 3])
    shape = tf.shape(image)
    tf.debugging.assert_less(tf.reduce_max(shape), MAX_INTEGER_SIDE,
                             message=f"face_detection: image sides must be under {MAX_INTEGER_SIDE} px")
    big_enough = tf.minimum(shape[0], shape[1]) >= MIN_SIDE
    return tf.cond(big_enough, lambda: detect(image), nothing)


def make_serving(nets: dict, params: dict, threshold: float):
    """The serving_default tf.function: the whole cascade for one uint8 RGB image (module docstring)."""
    import tensorflow as tf

    forward = Forward(nets)
    windows = pyramid_windows(params["min_face_fraction"], params["scale_factor"])
    layout = plan_canvas(windows)
    max_faces, rnet_k, onet_k = int(params["max_faces"]), int(params["rnet_candidates"]), int(params["onet_candidates"])
    pnet_logit = float(np.log(params["pnet_threshold"] / (1.0 - params["pnet_threshold"])))
    dummy = np.array([[0.0, 0.0, 12.0, 12.0]], np.float32)

    def normalise(x):
        return (x - 127.5) * 0.0078125  # the wheel's (x - 127.5) / 128

    def detect(image, threshold_c):
        hw = tf.cast(tf.shape(image)[:2], tf.float32)
        batch = image[None]

        with tf.name_scope("pyramid"):  # level k: the frame spans windows[k] px, so its faces of that size fill P-Net
            sizes, content = (tf.cast(t, tf.int32) for t in level_sizes(windows, tf.shape(image)[0],
                                                                        tf.shape(image)[1], ops=tf))
            first = normalise(tf.image.resize(batch, content, method="area"))  # straight from the uint8 image
            first = tf.pad(first, [[0, 0], [0, sizes[0, 0] - content[0]], [0, sizes[0, 1] - content[1]], [0, 0]])
            levels = [first] + [tf.image.resize(first, sizes[k], method="area") for k in range(1, len(windows))]
            canvas, xs, ys = build_canvas(layout, levels, sizes)
            level_id = cell_levels(tf.shape(canvas), sizes, xs, ys)
            # (L, 2) y and x scale from the image to each level (levels k > 0 are level 0, padding included, resized)
            level_scale = (tf.cast(sizes, tf.float32) / tf.cast(sizes[:1], tf.float32)
                           * (tf.cast(content, tf.float32) / hw)[None])

        with tf.name_scope("pnet"):
            reg, logit = forward.pnet(canvas)

        with tf.name_scope("proposals"):
            idx, level, cell = proposals(logit, level_id, xs, ys, int(params["pnet_candidates"]), pnet_logit, -np.inf)
            cell = tf.cast(tf.concat([cell, cell + PNET_CELL], axis=1), tf.float32)
            scale = tf.tile(tf.reverse(tf.gather(level_scale, level), [1]), [1, 2])  # x, y, x, y
            boxes = (cell + tf.gather(tf.reshape(reg, [-1, 4]), idx) * PNET_CELL) / scale
            # the wheel's NMS within each level (IoU 0.5), then across levels among the survivors (0.7)
            overlap = overlaps(boxes)
            kept = fast_nms_mask(tf.where(tf.equal(level[:, None], level[None]), overlap, 0.0), params["nms_level"])
            kept = tf.logical_and(kept, fast_nms_mask(overlap, params["nms_pyramid"], kept))
            boxes = square(tf.gather(boxes, where(kept)[:rnet_k]))

        def crops(boxes, size):
            """size x size bilinear crops of the boxes as the wheel takes them (corners at box / image size),
            normalised; outside the image mid grey."""
            boxes = tf.concat([boxes, dummy], 0)  # never an empty batch: Conv2D refuses one
            norm = tf.gather(boxes, [1, 0, 3, 2], axis=1) / tf.tile(hw, [2])
            patches = tf.image.crop_and_resize(batch, norm, tf.zeros(tf.shape(boxes)[:1], tf.int32), [size, size],
                                               extrapolation_value=127.5)
            return normalise(patches)

        with tf.name_scope("rnet"):
            n = tf.shape(boxes)[0]
            reg, score = (t[:n] for t in forward.rnet(crops(boxes, CROP_SIZES["rnet"])))
            keep = where(score > params["rnet_threshold"])
            keep = tf.gather(keep, sorted_top(tf.gather(score, keep), tf.size(keep)))
            boxes = tf.gather(refine(boxes, reg), keep)
            boxes = square(tf.gather(boxes, where(fast_nms_mask(overlaps(boxes), params["nms_rnet"]))[:onet_k]))

        with tf.name_scope("onet"):
            n = tf.shape(boxes)[0]
            reg, marks, score = (t[:n] for t in forward.onet(crops(boxes, CROP_SIZES["onet"])))
            # the wheel's boxes hold inclusive pixel indices [x0, x1]: edges x0 - 0.5 .. x1 + 0.5 in the output's
            # coordinates, and O-Net's landmark fractions span those edges
            size = boxes[:, 2:] - boxes[:, :2] + 1.0
            landmarks = tf.reshape(marks, [-1, 2, 5]) * size[:, :, None] + boxes[:, :2, None] - 0.5
            boxes = refine(boxes, reg) + [-0.5, -0.5, 0.5, 0.5]
            order = where(score >= threshold_c)
            order = tf.gather(order, sorted_top(tf.gather(score, order), tf.size(order)))
            kept = fast_nms_mask(overlaps(tf.gather(boxes, order), "min"), params["nms_onet"])
            order = tf.gather(order, where(kept)[:max_faces])
            boxes = tf.clip_by_value(tf.gather(boxes, order), 0.0, tf.tile(tf.reverse(hw, [0]), [2]))
        return boxes, tf.transpose(tf.gather(landmarks, order), [0, 2, 1]), tf.gather(score, order)

    def nothing():
        return tf.zeros([0, 4], tf.float32), tf.zeros([0, 5, 2], tf.float32), tf.zeros([0], tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8, name="image")])
    def serve(image):
        threshold_c = tf.constant(threshold, tf.float32)
        boxes, landmarks, scores = one_image(image, lambda image: detect(image, threshold_c), nothing)
        return {"boxes": tf.identity(boxes, name="boxes"), "landmarks": tf.identity(landmarks, name="landmarks"),
                "scores": tf.identity(scores, name="scores"),
                "threshold": tf.identity(threshold_c, name="threshold_out")}

    return serve


# --- the consensus graph: the same cascade in integer ops only (veid_ml.integer, veid_ml.integer_geometry) ----------

LEVEL_GAIN = 16  # pyramid levels and crops in 1/16 grey levels
MID_GREY = 2040  # 127.5 grey levels in 1/16: the wheel's (x - 127.5) / 128 is (v - 2040) / 2048
NET_INPUT_SCALE = 1 / 2048
NET_INPUT_BOUND = 2040
HEAD_SCALE = 2.0**-10  # every head (box offsets, landmark fractions, face logit) in 1/1024
HEAD_BITS = 16  # heads clamp at +-32 (offsets and landmarks are fractions of a box; logits beyond that saturate)
MAX_INTEGER_SIDE = 1 << 17  # the pyramid's int32 area sums hold for image sides below this (integer_geometry)
LOGIT_BOUND = 16384  # the score table spans logits -16..16 (sigmoid 16 is 10000 bp)
INTEGER_BITS, WEIGHT_BITS = 12, 12  # activations (signed: PReLU keeps negatives) and weights per output channel


def integer_networks(nets: dict) -> dict:
    """The three networks with each one's heads merged into one linear layer (compiled by veid_ml.integer): P-Net
    (box offsets 4, face logit difference 1), R-Net (4, 1), O-Net (4, landmarks 10, 1). The logit difference is the
    softmax's face probability through a sigmoid."""
    import keras

    def head(net, trunk_layer, parts, conv: bool):
        kernels, biases = [], []
        for name, difference in parts:
            kernel, bias = (np.asarray(w) for w in net.get_layer(name).get_weights())
            if difference:
                kernel, bias = kernel[..., 1:] - kernel[..., :1], bias[1:] - bias[:1]
            kernels.append(kernel)
            biases.append(bias)
        kernel, bias = np.concatenate(kernels, -1), np.concatenate(biases)
        layer = (keras.layers.Conv2D(kernel.shape[-1], 1, name="head") if conv
                 else keras.layers.Dense(kernel.shape[-1], name="head"))
        out = layer(net.get_layer(trunk_layer).output)
        layer.set_weights([kernel, bias])
        return keras.Model(net.inputs[0], out, name=f"{net.name}_integer")

    return {"pnet": head(nets["pnet"], "prelu3", [("conv4_1", False), ("conv4_2", True)], conv=True),
            "rnet": head(nets["rnet"], "prelu4", [("fc5_1", False), ("fc5_2", True)], conv=False),
            "onet": head(nets["onet"], "prelu5", [("fc6_1", False), ("fc6_2", False), ("fc6_3", True)], conv=False)}


class IntegerStages:
    """The cascade's integer pieces, usable eagerly (calibration, tests) and inside the serving graph."""

    def __init__(self, params: dict):
        import tensorflow as tf

        self.tf = tf
        self.windows = pyramid_windows(params["min_face_fraction"], params["scale_factor"])
        self.layout = plan_canvas(self.windows)

    def canvas(self, image):
        """(canvas (1, Hc, Wc, 3) int32 in 1/2048 of the wheel's normalised units, level sizes (L, 2), level 0's
        content size (2,), x and y offsets (L,)) of a uint8 (H, W, 3) image."""
        tf = self.tf
        shape = tf.shape(image)
        sizes, content = level_sizes(self.windows, shape[0], shape[1], ops=tf)
        first = area_resize(tf, image[None], content, gain=LEVEL_GAIN) - MID_GREY  # straight from the uint8 image
        extra = tf.cast(sizes[0] - content, tf.int32)
        first = tf.pad(first, [[0, 0], [0, extra[0]], [0, extra[1]], [0, 0]])  # zero: mid grey
        levels = [first] + [area_resize(tf, first, sizes[k]) for k in range(1, len(self.windows))]
        sizes32 = tf.cast(sizes, tf.int32)
        canvas, xs, ys = build_canvas(self.layout, levels, sizes32)
        return canvas, sizes, content, xs, ys

    def crops(self, image, boxes_q4, size: int):
        """(n, size, size, 3) network inputs: the wheel's bilinear crops (corners at box / image size) in 1/2048 of
        its normalised units; outside the image mid grey (zero)."""
        tf = self.tf
        values = bilinear_crops(tf, image, boxes_q4, size, MID_GREY << 12)
        return tf.bitwise.right_shift(values + (1 << 11), 12) - MID_GREY  # 2^-16 grey levels -> 1/16, half up


def compile_networks(nets: dict, pnet_inputs, rnet_inputs, onet_inputs, activation_bits: int = INTEGER_BITS,
                     weight_bits: int = WEIGHT_BITS) -> dict:
    """{"pnet", "rnet", "onet"}: veid_ml.integer Programs of integer_networks, calibrated on these network inputs
    (int32 in 1/2048 of the normalised units, from training images). A layer gets narrower weights where weight_bits
    could overflow its int32 accumulator (the report says which)."""
    from veid_ml import integer

    heads = integer_networks(nets)
    common = dict(input_scale=NET_INPUT_SCALE, input_bound=NET_INPUT_BOUND, activation_bits=activation_bits,
                  output_bits=HEAD_BITS, output_scale=HEAD_SCALE, weight_bits=weight_bits, fit_weight_bits=True)
    inputs = {"pnet": pnet_inputs, "rnet": rnet_inputs, "onet": onet_inputs}
    return {name: integer.compile_model(heads[name], inputs[name], **common) for name in heads}


def square_q4(boxes):
    """square() on int64 corners in 1/16 px: same centre (rounded down), side = the longer side."""
    import tensorflow as tf

    lo, size = boxes[:, :2], boxes[:, 2:] - boxes[:, :2]
    side = tf.reduce_max(size, axis=1, keepdims=True)
    lo = lo + tf.math.floordiv(size - side, 2)
    return tf.concat([lo, lo + side], axis=1)


def refine_q4(boxes, reg):
    """refine() on int64 corners in 1/16 px with offsets in 1/1024: the offset times (size + 1 px), rounded."""
    import tensorflow as tf

    size = boxes[:, 2:] - boxes[:, :2] + Q4
    return boxes + round_div(tf, reg * tf.concat([size, size], axis=1), 1024)


def keep_mask(exceeds, candidates=None):
    """fast_nms_mask on a precomputed (n, n) 'overlaps beyond the limit' matrix of score-sorted boxes."""
    import tensorflow as tf

    n = tf.range(tf.shape(exceeds)[0])
    hit = tf.logical_and(n[:, None] < n[None, :], exceeds)
    if candidates is not None:
        hit = tf.logical_and(hit, candidates[:, None])
    return tf.logical_not(tf.reduce_any(hit, axis=0))


def logit_threshold_q(probability: float) -> int:
    """The largest head logit (1/1024) at or below the logit of `probability`: 'p > probability' is 'q > this'."""
    return math.floor(math.log(probability / (1.0 - probability)) / HEAD_SCALE)


def make_integer_serving(programs: dict, params: dict, threshold_bp: int):
    """The consensus serving_default tf.function: make_serving's cascade in integer ops only (module docstring), for
    one uint8 RGB image:
        boxes_q4      int32 [N, 4]     x0, y0, x1, y1 in 1/16 px, pixel-edge coordinates, clipped to the image
        landmarks_q4  int32 [N, 5, 2]  the five landmarks in 1/16 px (not clipped)
        scores_bp     int32 [N]        O-Net's face probability in basis points (a table over its 1/1024 logit),
                                       most confident first (ordered by the logit), every one >= threshold_bp
        threshold_bp  int32 []
    """
    import tensorflow as tf

    from veid_ml import integer

    stages = IntegerStages(params)
    max_faces, rnet_k, onet_k = int(params["max_faces"]), int(params["rnet_candidates"]), int(params["onet_candidates"])
    pnet_q, rnet_q = logit_threshold_q(params["pnet_threshold"]), logit_threshold_q(params["rnet_threshold"])
    table = integer.sigmoid_bp_table(HEAD_SCALE, LOGIT_BOUND)
    dummy = np.array([[0, 0, PNET_CELL * Q4, PNET_CELL * Q4]], np.int64)
    lowest = np.iinfo(np.int32).min

    def sorted_by(logits, indices):
        """indices reordered by descending logit (ties: lower position first)."""
        return tf.gather(indices, sorted_top(tf.gather(logits, indices), tf.size(indices)))

    def detect(image, threshold_c):
        shape = tf.shape(image, out_type=tf.int64)
        hw = shape[:2]

        with tf.name_scope("pyramid"):
            canvas, sizes, content, xs, ys = stages.canvas(image)
            level_id = cell_levels(tf.shape(canvas), tf.cast(sizes, tf.int32), xs, ys)

        with tf.name_scope("pnet"):
            out = programs["pnet"](tf, canvas)[0]
            reg, logit = tf.cast(out[..., :4], tf.int64), out[..., 4]

        with tf.name_scope("proposals"):
            idx, level, cell = proposals(logit, level_id, xs, ys, int(params["pnet_candidates"]), pnet_q, lowest)
            cell = tf.cast(tf.concat([cell, cell + PNET_CELL], axis=1), tf.int64) * 1024
            # image px = level px * (level 0 size / level size) * (image size / level 0 content), x y x y
            up = tf.tile(tf.reverse(sizes[:1] * hw[None], [1]), [1, 2])
            down = tf.tile(tf.reverse(tf.gather(sizes, level) * content[None], [1]), [1, 2])
            offsets = tf.gather(tf.reshape(reg, [-1, 4]), idx) * PNET_CELL
            boxes = round_div(tf, (cell + offsets) * Q4 * up, 1024 * down)
            same_level = tf.equal(level[:, None], level[None])
            kept = keep_mask(tf.logical_and(same_level, overlap_exceeds(tf, boxes, params["nms_level"])))
            kept = tf.logical_and(kept, keep_mask(overlap_exceeds(tf, boxes, params["nms_pyramid"]), kept))
            boxes = square_q4(tf.gather(boxes, where(kept)[:rnet_k]))

        def network(name, boxes):
            n = tf.shape(boxes)[0]
            crops = stages.crops(image, tf.concat([boxes, dummy], 0), CROP_SIZES[name])  # never an empty batch
            return tf.cast(programs[name](tf, crops)[:n], tf.int64)

        with tf.name_scope("rnet"):
            out = network("rnet", boxes)
            logit = out[:, 4]
            keep = sorted_by(logit, where(logit > rnet_q))
            boxes = tf.gather(refine_q4(boxes, out[:, :4]), keep)
            boxes = square_q4(tf.gather(boxes, where(keep_mask(overlap_exceeds(tf, boxes, params["nms_rnet"])))[
                :onet_k]))

        with tf.name_scope("onet"):
            out = network("onet", boxes)
            logit = tf.cast(out[:, 14], tf.int32)
            size = boxes[:, 2:] - boxes[:, :2] + Q4  # the wheel's inclusive pixel count, as make_serving
            marks = tf.reshape(out[:, 4:14], [-1, 2, 5])
            landmarks = round_div(tf, marks * size[:, :, None], 1024) + boxes[:, :2, None] - Q4 // 2
            boxes = refine_q4(boxes, out[:, :4]) + np.array([-1, -1, 1, 1], np.int64) * (Q4 // 2)
            score = integer.lookup(tf, table, logit, LOGIT_BOUND)
            order = sorted_by(logit, where(score >= threshold_c))
            kept = keep_mask(overlap_exceeds(tf, tf.gather(boxes, order), params["nms_onet"], "min"))
            order = tf.gather(order, where(kept)[:max_faces])
            limit = tf.tile(tf.reverse(hw, [0]), [2]) * Q4
            boxes = tf.clip_by_value(tf.gather(boxes, order), tf.zeros_like(limit), limit)
        landmarks = tf.transpose(tf.gather(landmarks, order), [0, 2, 1])
        return tf.cast(boxes, tf.int32), tf.cast(landmarks, tf.int32), tf.gather(score, order)

    def nothing():
        return tf.zeros([0, 4], tf.int32), tf.zeros([0, 5, 2], tf.int32), tf.zeros([0], tf.int32)

    @tf.function(input_signature=[tf.TensorSpec([None, None, 3], tf.uint8, name="image")])
    def serve(image):
        threshold_c = tf.constant(int(threshold_bp), tf.int32)
        boxes, landmarks, scores = one_image(image, lambda image: detect(image, threshold_c), nothing)
        return {"boxes_q4": tf.identity(boxes, name="boxes_q4"),
                "landmarks_q4": tf.identity(landmarks, name="landmarks_q4"),
                "scores_bp": tf.identity(scores, name="scores_bp"),
                "threshold_bp": tf.identity(threshold_c, name="threshold_bp")}

    return serve
