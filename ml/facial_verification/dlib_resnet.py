"""dlib's face recognition network (dlib_face_recognition_resnet_model_v1.dat) as a Keras model, with the weights read
from dlib's own serialization by a pure-Python reader (numpy only; dlib is not needed).

    read_network(path)    the serialized network as a list of layer dicts, input first (see the reader's notes below)
    build_embedder(path)  the Keras model: image (N, 150, 150, 3) -> dlib's 128-d descriptor (N, 128), not normalised
    installed_model_path()  the file in the installed face_recognition_models package, if there is one

Provenance: the file is `face_recognition_models/models/dlib_face_recognition_resnet_model_v1.dat` of the PyPI sdist
face-recognition-models 0.3.0 (sha256 of face_recognition_models-0.3.0.tar.gz:
b79bd200a88c87c9a9d446c990ae71c5a626d1f3730174e6d570157ff1d896cf; of the .dat: MODEL_SHA256), Davis King's model,
released into the public domain (CC0 1.0, the sdist's LICENSE). The network definition is dlib's `anet_type`
(tools/python/src/face_recognition.cpp, examples/dnn_face_recognition_ex.cpp); the layer semantics below are from
dlib 20.0.1's source (dnn/layers.h, dnn/input.h, dnn/core.h, cuda/cpu_dlib.cpp) and were checked against dlib's
Python binding (tests/test_dlib_resnet.py).

Architecture, forward order (shapes NHWC for batch 1; dlib itself is NCHW):

    image (150, 150, 3) RGB in [0, 1]     the project's convention
    to_pixels  x * 255                    back to dlib's 0..255 pixel values
    dlib_input (p - mean) / 256           input_rgb_image_sized<150>: mean (R, G, B) from the file (122.782, 117.001,
                                          104.298)
    conv1 7x7/2, 32, pad 0, + affine      (72, 72, 32), then relu1
    pool1 max 3x3/2, pad 0                (35, 35, 32)
    15 residual blocks (dlib's ares / ares_down with `affine` in place of batch norm):
        ares N:      x -> conv 3x3/1 pad 1 -> affine -> relu -> conv 3x3/1 pad 1 -> affine -> + x -> relu
        ares_down N: x -> conv 3x3/2 pad 0 -> affine -> relu -> conv 3x3/1 pad 1 -> affine
                          -> + avg_pool 2x2/2 pad 0 of x -> relu
      block01-03  ares 32                 (35, 35, 32)
      block04     ares_down 64            (17, 17, 64)    shortcut 32 channels, zero-padded to 64
      block05-07  ares 64                 (17, 17, 64)
      block08     ares_down 128           (8, 8, 128)
      block09-10  ares 128
      block11     ares_down 256           (4, 4, 256)     block branch 3x3, shortcut 4x4: sum is 4x4
      block12-13  ares 256
      block14     ares_down 256           (2, 2, 256)     block branch 1x1, shortcut 2x2: sum is 2x2
    avg_pool_everything                   (256,)
    fc 128, no bias                       (128,) = the descriptor (loss_metric passes the fc output unchanged)

dlib's padding rules: a con/max_pool/avg_pool with stride 1 pads filter_size // 2, with stride != 1 pads 0 (the
template defaults; the file stores the paddings and the reader checks them). Output size is 1 + (n + 2 pad - k) //
stride, which is Keras' "valid" for pad 0 and "same" for stride 1 with an odd k. add_prev sums tensors of different
shapes by zero-padding the smaller one at the end of every axis (cpu tt::add: bottom rows, right columns, last
channels), the output taking the larger size of each axis: layer AddPrev. Convolutions are cross-correlations as
in Keras; filters are stored K x C x R x S (NCHW), transposed here to R x S x C x K.

Each `affine` (CONV_MODE: y = x * gamma[c] + beta[c]) is folded into the conv before it (kernel * gamma, bias * gamma
+ beta); build_embedder(fold_affine=False) keeps it as a separate 1x1 depthwise conv (kernel gamma, bias beta) to
compare. Folding costs nothing measurable: against dlib-bin 20.0.1 the descriptors differ by at most 3.9e-7 folded
and 3.2e-7 unfolded on tests/fixtures/dlib_reference, 3.6e-7 both ways on 20 real aligned face chips (descriptor
entries reach about 0.5).

dlib serialization, as this reader relies on it (dlib/serialize.h, float_details.h, cuda/tensor.h):
  - integers: one control byte (low nibble: number of bytes that follow, 1..8, never 0; bit 0x80: negative, signed
    types only), then the magnitude, little-endian
  - float/double scalars: a float_details, i.e. int64 mantissa and int16 exponent as integers above, value
    mantissa * 2**exponent (exponent 32000/32001/32002: inf/-inf/nan); the older ASCII float format is refused
  - std::string and C strings: the length as an integer, then the bytes; bool: the ASCII byte '0' or '1'
  - resizable_tensor: int version 2, long long num_samples, k, nr, nc, then the values as raw little-endian float32
    (a block, not float_details); alias_tensor: int version 1 and the four sizes, no data
  - a network is written outside-in: add_loss_layer (int 1, loss details), then each wrapper's int version down to the
    input (add_layer 2, add_tag_layer/add_skip_layer 1, the add_layer on the input 3), the input layer, and then, input
    to output, each add_layer's details (a version string such as "con_6" and its fields) followed by its bookkeeping
    (3 bools, x_grad, cached_output and params_grad/grad_final tensors, and for version 3 an unsigned int). Tag and
    skip layers write only their version, which is the same for both, and add_prev_ does not write its tag: the
    topology therefore comes from anet_type (ARCHITECTURE below), which the file's layer sequence must match.
  - a layer's weights are one `params` tensor that alias_tensors slice: con filters (K*C*R*S) then biases (K); affine
    gamma then beta; fc weights (num_inputs x num_outputs, output = input @ weights) then any biases. This file
    holds the versions con_4 (bias always on), affine_, relu_, max_pool_2, avg_pool_2, add_prev_, fc_2 (FC_NO_BIAS),
    input_rgb_image_sized and loss_metric_2 (margin 0.04, distance threshold 0.6); bn_con2 is converted as dlib does.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np

INPUT_SIZE = 150
DESCRIPTOR_DIM = 128
MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"
MODEL_SHA256 = "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30"

# anet_type in forward order: the type of each serialized layer and, for tags, skips and add_prev, the tag id that
# dlib's template gives it (the file cannot say). ares = relu<add_prev1<block<N, affine, 1, tag1<SUB>>>>;
# ares_down = relu<add_prev2<avg_pool<2,2,2,2, skip1<tag2<block<N, affine, 2, tag1<SUB>>>>>>>;
# block<N, BN, stride> = BN<con<N,3,3,1,1, relu<BN<con<N,3,3,stride,stride, SUB>>>>>.


def _block(filters: int, down: bool) -> list[tuple]:
    stride = 2 if down else 1
    body = [("tag", 1), ("con", filters, 3, stride), ("affine",), ("relu",), ("con", filters, 3, 1), ("affine",)]
    if down:
        return body + [("tag", 2), ("skip", 1), ("avg_pool", 2, 2), ("add_prev", 2), ("relu",)]
    return body + [("add_prev", 1), ("relu",)]


ARCHITECTURE: list[tuple] = (
    [("input_rgb_image_sized", INPUT_SIZE), ("con", 32, 7, 2), ("affine",), ("relu",), ("max_pool", 3, 2)]
    + [layer for filters, down in [(32, False)] * 3 + [(64, True)] + [(64, False)] * 3 + [(128, True)]
       + [(128, False)] * 2 + [(256, True)] + [(256, False)] * 2 + [(256, True)] for layer in _block(filters, down)]
    + [("avg_pool", 0, 1), ("fc", DESCRIPTOR_DIM, False), ("loss_metric",)]
)


def installed_model_path() -> Path | None:
    """The model file of the installed face_recognition_models package (the sdist above), or None. The package is
    located without being imported: its __init__ imports pkg_resources, which current setuptools no longer has."""
    spec = importlib.util.find_spec("face_recognition_models")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        if (path := Path(folder) / "models" / MODEL_FILE).is_file():
            return path
    return None


# ---------------------------------------------------------------------------------------------------------------
# The reader
# ---------------------------------------------------------------------------------------------------------------

_FLOAT_SPECIAL = {32000: np.inf, 32001: -np.inf, 32002: np.nan}


class _Stream:
    """A cursor over the file's bytes; every read names what it reads, so an error can say what and where."""

    def __init__(self, data: bytes, name: str):
        self.data, self.name, self.pos = data, name, 0

    def fail(self, message: str, offset: int | None = None) -> ValueError:
        return ValueError(f"{self.name}: offset {self.pos if offset is None else offset}: {message}")

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise self.fail(f"truncated: {what} needs {n} bytes, the file has {len(self.data) - self.pos} left")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def integer(self, what: str, nbytes: int = 8, signed: bool = True) -> int:
        start = self.pos
        control = self.take(1, what)[0]
        size = control & 0x0F if signed else control & 0x8F  # dlib's masks: unsigned values refuse the sign bit
        if size == 0 or size > nbytes:
            raise self.fail(f"bad integer control byte 0x{control:02x} for {what}", start)
        value = int.from_bytes(self.take(size, what), "little")
        return -value if signed and control & 0x80 else value

    def uint(self, what: str, nbytes: int = 8) -> int:
        return self.integer(what, nbytes, signed=False)

    def real(self, what: str, dtype=np.float64) -> float:
        """A float_details (dlib's portable float): int64 mantissa, int16 exponent."""
        if self.pos < len(self.data) and self.data[self.pos] & 0x70:
            raise self.fail(f"{what} is in dlib's old ASCII float format, which this reader does not read")
        mantissa = self.integer(what + " (mantissa)", 8)
        exponent = self.integer(what + " (exponent)", 2)
        if exponent >= 32000:
            return dtype(_FLOAT_SPECIAL.get(exponent, np.nan))
        return dtype(np.ldexp(dtype(mantissa), exponent))  # dlib: ldexp((T)mantissa, exponent)

    def string(self, what: str) -> str:
        start = self.pos
        n = self.uint(what + " (length)")
        if n > 1000:
            raise self.fail(f"implausible string length {n} for {what}", start)
        raw = self.take(n, what)
        try:
            return raw.decode("ascii")
        except UnicodeDecodeError:
            raise self.fail(f"{what} is not an ASCII string: {raw[:40]!r}", start) from None

    def version(self, what: str, allowed: tuple[str, ...]) -> str:
        start = self.pos
        v = self.string(f"{what} version string")
        if v not in allowed:
            raise self.fail(f"unexpected {what} version string {v!r} (expected {' or '.join(map(repr, allowed))})",
                            start)
        return v

    def boolean(self, what: str) -> bool:
        start = self.pos
        ch = self.take(1, what)
        if ch not in (b"0", b"1"):
            raise self.fail(f"{what}: a bool is '0' or '1', found {ch!r}", start)
        return ch == b"1"

    def dims(self, what: str) -> tuple[int, int, int, int]:
        shape = tuple(self.integer(f"{what} size", 8) for _ in range(4))
        if min(shape) < 0:
            raise self.fail(f"negative size {shape} for {what}")
        return shape

    def tensor(self, what: str) -> np.ndarray:
        """A resizable_tensor: int version 2, 4 sizes, raw little-endian float32 values; shape (n, k, nr, nc)."""
        start = self.pos
        if (v := self.integer(f"{what} tensor version", 4)) != 2:
            raise self.fail(f"{what}: tensor version {v}, expected 2", start)
        shape = self.dims(what)
        count = int(np.prod(shape))
        return np.frombuffer(self.take(4 * count, f"{what} ({count} float32 values)"), "<f4").reshape(shape)

    def alias(self, what: str) -> tuple[int, int, int, int]:
        """An alias_tensor: int version 1 and its 4 sizes; it holds no data (it is a view into `params`)."""
        start = self.pos
        if (v := self.integer(f"{what} alias_tensor version", 4)) != 1:
            raise self.fail(f"{what}: alias_tensor version {v}, expected 1", start)
        return self.dims(what)


def _slice(s: _Stream, params: np.ndarray, offset: int, shape: tuple, what: str, start: int) -> np.ndarray:
    flat = params.reshape(-1)
    count = int(np.prod(shape))
    if offset + count > flat.size:
        raise s.fail(f"{what} {shape} overruns its params tensor ({flat.size} values)", start)
    return flat[offset:offset + count].reshape(shape).astype(np.float32)


def _read_con(s: _Stream, start: int, version: str) -> dict:
    params = s.tensor("con params")
    num_filters = s.integer("con num_filters")
    nr, nc = s.integer("con nr"), s.integer("con nc")
    stride = (s.integer("con stride_y", 4), s.integer("con stride_x", 4))
    padding = (s.integer("con padding_y", 4), s.integer("con padding_x", 4))
    filters = s.alias("con filters")
    s.alias("con biases")  # the bias slice follows the filters in params (sliced below)
    for m in ("learning_rate", "weight_decay", "bias_learning_rate", "bias_weight_decay"):
        s.real(f"con {m}_multiplier")
    use_bias = s.boolean("con use_bias") if version in ("con_5", "con_6") else True
    use_relu = s.boolean("con use_relu") if version == "con_6" else False
    if filters != (num_filters, filters[1], nr, nc):
        raise s.fail(f"con filters {filters} do not match {num_filters} filters of {nr}x{nc}", start)
    layer = {"type": "con", "num_filters": num_filters, "kernel": (nr, nc), "stride": stride, "padding": padding,
             "use_relu": use_relu, "filters": _slice(s, params, 0, filters, "con filters", start), "biases": None}
    size = int(np.prod(filters))
    if use_bias:
        layer["biases"] = _slice(s, params, size, (num_filters,), "con biases", start)
        size += num_filters
    if params.size != size:
        raise s.fail(f"con params hold {params.size} values, filters and biases {size}", start)
    return layer


def _read_affine(s: _Stream, start: int, version: str) -> dict:
    if version in ("bn_con2", "bn_fc2"):  # dlib converts a stored bn_ into an affine_ on load: do the same
        params = s.tensor("bn params")
        gamma, beta = s.alias("bn gamma"), s.alias("bn beta")
        for t in ("means", "invstds"):
            s.tensor(f"bn {t}")
        running_means, running_variances = s.tensor("bn running_means"), s.tensor("bn running_variances")
        s.uint("bn num_updates"), s.uint("bn running_stats_window_size")
        for m in ("learning_rate", "weight_decay", "bias_learning_rate", "bias_weight_decay"):
            s.real(f"bn {m}_multiplier")
        eps = s.real("bn eps")
        g = _slice(s, params, 0, gamma, "bn gamma", start)
        b = _slice(s, params, int(np.prod(gamma)), beta, "bn beta", start)
        g = (g / np.sqrt(running_variances.reshape(g.shape) + np.float32(eps))).astype(np.float32)
        b = (b - g * running_means.reshape(g.shape)).astype(np.float32)
        return {"type": "affine", "mode": "conv" if version == "bn_con2" else "fc", "gamma": g, "beta": b,
                "disabled": False, "converted_from": version}
    params = s.tensor("affine params")
    gamma, beta = s.alias("affine gamma"), s.alias("affine beta")
    mode = s.integer("affine mode", 4)
    disabled = s.boolean("affine disabled") if version == "affine_2" else False
    if mode not in (0, 1):
        raise s.fail(f"affine mode {mode} is neither CONV_MODE (0) nor FC_MODE (1)", start)
    layer = {"type": "affine", "mode": "conv" if mode == 0 else "fc", "disabled": disabled, "gamma": None,
             "beta": None}
    if not disabled:
        layer["gamma"] = _slice(s, params, 0, gamma, "affine gamma", start)
        layer["beta"] = _slice(s, params, int(np.prod(gamma)), beta, "affine beta", start)
    return layer


def _read_relu(s: _Stream, start: int, version: str) -> dict:
    return {"type": "relu", "disabled": s.boolean("relu disabled") if version == "relu_2" else False}


def _read_pool(s: _Stream, start: int, version: str) -> dict:
    kind = version[: -len("_2")]
    nr, nc = s.integer(f"{kind} nr"), s.integer(f"{kind} nc")
    stride = (s.integer(f"{kind} stride_y", 4), s.integer(f"{kind} stride_x", 4))
    padding = (s.integer(f"{kind} padding_y", 4), s.integer(f"{kind} padding_x", 4))
    return {"type": kind, "window": (nr, nc), "stride": stride, "padding": padding}


def _read_add_prev(s: _Stream, start: int, version: str) -> dict:
    return {"type": "add_prev"}  # dlib writes no tag id: it is the template's


def _read_fc(s: _Stream, start: int, version: str) -> dict:
    num_outputs, num_inputs = s.uint("fc num_outputs"), s.uint("fc num_inputs")
    params = s.tensor("fc params")
    weights = s.alias("fc weights")
    s.alias("fc biases")  # present even without biases
    bias_mode = s.integer("fc bias_mode", 4)
    for m in ("learning_rate", "weight_decay", "bias_learning_rate", "bias_weight_decay"):
        s.real(f"fc {m}_multiplier")
    use_bias = (s.boolean("fc use_bias") if version == "fc_3" else True) and bias_mode == 0
    if bias_mode not in (0, 1) or weights[:2] != (num_inputs, num_outputs):
        raise s.fail(f"fc bias_mode {bias_mode}, weights {weights} for {num_inputs} -> {num_outputs}", start)
    size = num_inputs * num_outputs
    layer = {"type": "fc", "num_outputs": num_outputs, "num_inputs": num_inputs,
             "weights": _slice(s, params, 0, (num_inputs, num_outputs), "fc weights", start),  # x @ weights
             "biases": _slice(s, params, size, (num_outputs,), "fc biases", start) if use_bias else None}
    if params.size != size + (num_outputs if use_bias else 0):
        raise s.fail(f"fc params hold {params.size} values, expected {size} weights{' + biases' * use_bias}", start)
    return layer


_LAYER_READERS = {"con_4": _read_con, "con_5": _read_con, "con_6": _read_con,
                  "affine_": _read_affine, "affine_2": _read_affine, "bn_con2": _read_affine, "bn_fc2": _read_affine,
                  "relu_": _read_relu, "relu_2": _read_relu, "max_pool_2": _read_pool, "avg_pool_2": _read_pool,
                  "add_prev_": _read_add_prev, "fc_2": _read_fc, "fc_3": _read_fc}
_INPUT_NAME = "input_rgb_image_sized"


def _read_details(s: _Stream) -> dict:
    start = s.pos
    version = s.version("layer", tuple(_LAYER_READERS))
    layer = _LAYER_READERS[version](s, start, version)
    layer["version"], layer["offset"] = version, start
    return layer


def _read_bookkeeping(s: _Stream, what: str, input_level: bool) -> None:
    """What add_layer writes after its layer: training state that inference ignores (read to skip it exactly)."""
    for flag in ("this_layer_setup_called", "gradient_input_is_stale", "get_output_and_gradient_input_disabled"):
        s.boolean(f"{what} {flag}")
    for t in ("x_grad", "cached_output", "grad_final" if input_level else "params_grad"):
        s.tensor(f"{what} {t}")


def _starts_input_layer(s: _Stream) -> bool:
    name = _INPUT_NAME.encode()
    return s.data[s.pos:s.pos + 2 + len(name)] == bytes([1, len(name)]) + name


def read_network(path: str | Path) -> list[dict]:
    """The network serialized in `path` (a dlib `deserialize(file) >> net` file), as dicts in forward order:

        {"type": "input_rgb_image_sized", "mean": (r, g, b), "size": (nr, nc)}
        {"type": "con", "num_filters", "kernel": (nr, nc), "stride", "padding", "use_relu",
         "filters": float32 (K, C, R, S), "biases": float32 (K,) or None}
        {"type": "affine", "mode": "conv" | "fc", "gamma", "beta": float32 (1, K) or None, "disabled"}
        {"type": "relu", "disabled"}   {"type": "max_pool" | "avg_pool", "window", "stride", "padding"}
        {"type": "add_prev"}   {"type": "tag_or_skip"}   (the file does not say which, nor the tag id)
        {"type": "fc", "num_inputs", "num_outputs", "weights": float32 (num_inputs, num_outputs), "biases"}
        {"type": "loss_metric", "margin", "distance_threshold"}   (last)

    Each has "offset", where it starts in the file. A ValueError names the offset and the problem when the file is
    not such a network (an unknown version string, a truncated file, bytes left over at the end)."""
    path = Path(path)
    s = _Stream(path.read_bytes(), str(path))
    if (v := s.integer("add_loss_layer version", 4)) != 1:
        raise s.fail(f"add_loss_layer version {v}, expected 1 (is this a dlib network file?)", 0)
    loss_start = s.pos
    loss = {"type": "loss_metric", "offset": loss_start, "margin": 0.1, "distance_threshold": 0.75}
    if s.version("loss", ("loss_metric_", "loss_metric_2")) == "loss_metric_2":
        loss["margin"] = s.real("loss_metric margin", np.float32)
        loss["distance_threshold"] = s.real("loss_metric dist_thresh", np.float32)
    wrappers = []  # outermost first: ("add_layer" | "tag_or_skip", offset)
    while True:
        start = s.pos
        v = s.integer("layer wrapper version", 4)
        if v in (2, 3) and _starts_input_layer(s):
            break
        if v not in (1, 2):
            raise s.fail(f"layer wrapper version {v}: expected 2 (add_layer) or 1 (add_tag_layer/add_skip_layer)",
                         start)
        wrappers.append(("add_layer" if v == 2 else "tag_or_skip", start))
        if len(wrappers) > 10000:
            raise s.fail("more than 10000 nested layers")
    input_start = s.pos
    s.version("input layer", (_INPUT_NAME,))
    mean = tuple(s.real(f"input avg_{c}", np.float32) for c in ("red", "green", "blue"))
    size = (s.uint("input nr"), s.uint("input nc"))
    layers = [{"type": "input_rgb_image_sized", "offset": input_start, "mean": mean, "size": size},
              _read_details(s)]
    _read_bookkeeping(s, "add_layer", input_level=True)
    if v == 3:
        s.uint("add_layer sample_expansion_factor", 4)
    for kind, start in reversed(wrappers):
        if kind == "tag_or_skip":
            layers.append({"type": "tag_or_skip", "offset": start})
        else:
            layers.append(_read_details(s))
            _read_bookkeeping(s, "add_layer", input_level=False)
    if s.pos != len(s.data):
        raise s.fail(f"{len(s.data) - s.pos} bytes left after the network")
    return layers + [loss]


# ---------------------------------------------------------------------------------------------------------------
# The Keras model
# ---------------------------------------------------------------------------------------------------------------


@functools.cache
def _add_prev_class():
    """AddPrev, defined on first use so that reading a file does not import Keras."""
    import keras

    @keras.saving.register_keras_serializable(package="dlib_resnet")
    class AddPrev(keras.layers.Layer):
        """dlib's add_prev: a + b where each axis takes the larger size and the smaller tensor is zero-padded at the
        end (bottom rows, right columns, last channels), as cpu tt::add(dest, src1, src2) does."""

        def compute_output_shape(self, shapes):
            a, b = shapes
            return tuple(None if x is None or y is None else max(x, y) for x, y in zip(a, b))

        def call(self, inputs):
            a, b = inputs
            target = [max(x, y) for x, y in zip(a.shape[1:], b.shape[1:])]

            def pad(t):
                extra = [[0, 0]] + [[0, n - m] for n, m in zip(target, t.shape[1:])]
                return keras.ops.pad(t, extra) if any(e[1] for e in extra) else t

            return pad(a) + pad(b)

    return AddPrev


def _check_architecture(layers: list[dict]) -> None:
    """The file's layer sequence must be anet_type's: the tag/skip roles and add_prev tags come from it."""
    if len(layers) != len(ARCHITECTURE):
        raise ValueError(f"the file holds {len(layers)} layers, anet_type has {len(ARCHITECTURE)}")
    for i, (layer, spec) in enumerate(zip(layers, ARCHITECTURE)):
        kind, where = spec[0], f"layer {i} (offset {layer['offset']})"
        if layer["type"] != ("tag_or_skip" if kind in ("tag", "skip") else kind):
            raise ValueError(f"{where} is {layer['type']}, anet_type has {kind} there")
        if kind == "input_rgb_image_sized" and layer["size"] != (spec[1], spec[1]):
            raise ValueError(f"{where}: input size {layer['size']}, expected {spec[1]}x{spec[1]}")
        if kind == "con":
            _, filters, k, stride = spec
            pad = k // 2 if stride == 1 else 0
            got = (layer["num_filters"], layer["kernel"], layer["stride"], layer["padding"])
            if got != (filters, (k, k), (stride, stride), (pad, pad)) or layer["use_relu"]:
                raise ValueError(f"{where}: con {got}, use_relu {layer['use_relu']}; anet_type has "
                                 f"{(filters, (k, k), (stride, stride), (pad, pad))}")
        if kind in ("max_pool", "avg_pool"):
            got = (layer["window"], layer["stride"], layer["padding"])
            if got != ((spec[1], spec[1]), (spec[2], spec[2]), (0, 0)):
                raise ValueError(f"{where}: {kind} window, stride, padding {got}, expected "
                                 f"{((spec[1], spec[1]), (spec[2], spec[2]), (0, 0))}")
        if kind == "affine" and (layer["mode"] != "conv" or layer["disabled"]):
            raise ValueError(f"{where}: affine mode {layer['mode']}, disabled {layer['disabled']}: expected an "
                             "enabled CONV_MODE affine")
        if kind == "relu" and layer["disabled"]:
            raise ValueError(f"{where}: relu is disabled")
        if kind == "fc" and (layer["num_outputs"] != spec[1] or (layer["biases"] is not None) != spec[2]):
            raise ValueError(f"{where}: fc with {layer['num_outputs']} outputs, biases {layer['biases'] is not None}")


def build_embedder(path: str | Path, fold_affine: bool = True):
    """The Keras model of the network in `path` (dlib_face_recognition_resnet_model_v1.dat): input `image`
    float32 (N, 150, 150, 3) RGB in [0, 1], output `descriptor` (N, 128), dlib's face descriptor as dlib computes it
    (not normalised; dlib compares descriptors by Euclidean distance, 0.6 being its usual threshold). fold_affine:
    each affine layer folded into the conv before it (default), or kept as a 1x1 depthwise conv."""
    import keras
    from keras import layers as L

    net = read_network(path)
    _check_architecture(net)
    add_prev = _add_prev_class()
    zeros = {"kernel_initializer": "zeros", "bias_initializer": "zeros"}  # building draws nothing random
    weights: dict[str, list[np.ndarray]] = {}

    image = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), dtype="float32", name="image")
    mean = np.asarray(net[0]["mean"], np.float32)
    x = L.Rescaling(255.0, name="to_pixels")(image)
    x = L.Rescaling(1.0 / 256.0, offset=[float(v) for v in -mean / np.float32(256)], name="dlib_input")(x)

    tags: dict[int, object] = {}
    block, conv_in_block, pending = 0, 0, None  # pending: the conv layer name an affine folds into
    for i, (layer, spec) in enumerate(zip(net[1:-1], ARCHITECTURE[1:-1]), start=1):
        kind = spec[0]
        prefix = f"block{block:02d}_" if block else ""
        if kind == "tag":
            if spec[1] == 1:  # tag1 opens a residual block
                block, conv_in_block = block + 1, 0
            tags[spec[1]] = x
        elif kind == "skip":
            x = tags[spec[1]]
        elif kind == "con":
            conv_in_block += 1
            name = f"{prefix}conv{conv_in_block}"
            k, stride = layer["kernel"][0], layer["stride"][0]
            padding = "same" if stride == 1 and layer["padding"][0] == k // 2 else "valid"
            x = L.Conv2D(layer["num_filters"], k, stride, padding=padding, use_bias=True, name=name, **zeros)(x)
            kernel = layer["filters"].transpose(2, 3, 1, 0)  # K, C, R, S -> R, S, C, K
            bias = layer["biases"] if layer["biases"] is not None else np.zeros(layer["num_filters"], np.float32)
            weights[name] = [kernel, bias]
            pending = name
        elif kind == "affine":
            gamma, beta = layer["gamma"].reshape(-1), layer["beta"].reshape(-1)
            if fold_affine:
                kernel, bias = weights[pending]
                weights[pending] = [kernel * gamma, bias * gamma + beta]
            else:
                name = f"{pending}_affine"
                x = L.DepthwiseConv2D(1, name=name, depthwise_initializer="zeros", bias_initializer="zeros")(x)
                weights[name] = [gamma.reshape(1, 1, -1, 1), beta]
            pending = None
        elif kind == "relu":
            nxt = ARCHITECTURE[i + 1][0]
            name = f"{prefix}out" if prefix and nxt in ("tag", "avg_pool") else f"{prefix}relu{conv_in_block}"
            x = L.ReLU(name=name)(x)
        elif kind == "max_pool":
            x = L.MaxPooling2D(spec[1], spec[2], padding="valid", name="pool1")(x)
        elif kind == "avg_pool" and spec[1] == 0:  # avg_pool_everything
            x = L.GlobalAveragePooling2D(name="avg_pool_everything")(x)
        elif kind == "avg_pool":
            x = L.AveragePooling2D(spec[1], spec[2], padding="valid", name=f"{prefix}shortcut_pool")(x)
        elif kind == "add_prev":
            x = add_prev(name=f"{prefix}add")([x, tags[spec[1]]])
        elif kind == "fc":
            x = L.Dense(layer["num_outputs"], use_bias=False, name="fc", kernel_initializer="zeros")(x)
            weights["fc"] = [layer["weights"]]  # the input is 1x1 spatially: NCHW and NHWC flatten alike
    model = keras.Model(image, L.Identity(name="descriptor")(x), name="dlib_face_recognition_resnet_v1")
    for name, values in weights.items():
        target = model.get_layer(name)
        expected = [tuple(w.shape) for w in target.get_weights()]
        if [v.shape for v in values] != expected:
            raise ValueError(f"{name}: shapes {[v.shape for v in values]} from the file, Keras has {expected}")
        target.set_weights([np.asarray(v, np.float32) for v in values])
    return model
