"""Integer-only inference: a (BatchNorm-folded) Keras model compiled into TensorFlow ops on int32 tensors.

Why: float sums give other bytes on other CPUs (oneDNN and Eigen block them by the cache sizes they read at run time;
rsqrt and FMA differ between vendors), and validators must agree on every score. Integer addition is associative, so
int32 convolutions give the same bytes in any order, with any thread count, on any CPU.

The arithmetic (every constant is computed once, here, from the float weights and a calibration batch):
  * a tensor is int32 values q with one real scale s (real = q * s; zero is q = 0) and a proven bound |q| <= bound;
  * weights: int8 per output channel, w_q = round(w / s_w), s_w = max|w| / 127 (a constant channel is exact), or
    wider (weight_bits, int16 storage) where a model needs the precision and the overflow proof allows it;
  * Conv2D / Conv1D / Dense: int32 Conv2D or MatMul of int32 tensors plus an int32 bias round(b / (s_in * s_w)); every
    layer is checked at export for int32 overflow with its worst-case input (sum |w_q| * bound + |b_q| < 2^31);
  * DepthwiseConv2D (TF has no integer kernel): the taps as int32 patches (ExtractImagePatches), times the
    per-channel weights, summed over the taps (4 ops: 9 slice-multiply-adds were 2x slower at batch 1);
  * per-channel affine maps (Rescaling, a BatchNormalization not after a convolution): x * k_q + b_q like a 1x1
    depthwise convolution;
  * requantization: out = clamp(floor((acc * m + 2^(n-1)) / 2^n)) in int64 -- the real multiplier s_acc / s_out as an
    integer m < 2^31 and one shift n per layer, ROUNDED HALF UP; clamp to the activation range (8 bits by default:
    -127..127, or 0..255 when a ReLU follows, which is then just this clamp);
  * PReLU after a Conv2D or Dense: a second per-channel multiplier, the slope times m, for negative accumulators;
  * Add (and dlib's add_prev, zero-padding the smaller tensor): both operands requantized to the sum's scale in one
    int64 expression; MaxPooling2D on int32; average pools as exact window sums whose scale is divided by the area.
Output scales come from the calibration batch run through the integer graph itself, layer by layer: the int32
accumulators are exact, their real range is a float64 elementwise product and a max, so the constants (and so the
exported bytes) are the same on every CPU that computes the same float weights.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

INT32_LIMIT = 2**31 - 1


@dataclasses.dataclass
class QTensor:
    """An integer tensor during compilation: its values on the calibration batch and what they mean."""
    calib: object  # tf.Tensor int32: the tensor on the calibration batch
    scale: float  # real value = q * scale
    bound: int  # |q| <= bound for every possible input (proven, not measured)


@dataclasses.dataclass
class Step:
    """One op of the integer graph: `run(step, *inputs)` computes it with TF ops (eagerly or traced)."""
    kind: str
    inputs: list  # indices of the input tensors in the compiled program's value list
    params: dict


def requant_params(multipliers: np.ndarray) -> tuple[np.ndarray, int]:
    """Integer multipliers m (int64, each < 2^31) and one shift n with m / 2^n ~ the real multipliers (float64)."""
    largest = float(np.max(np.abs(multipliers)))  # PReLU's negative-side multipliers may be negative
    if not largest > 0 or not math.isfinite(largest):
        raise ValueError(f"requantization multiplier {largest} is not a positive number")
    shift = min(62, math.floor(math.log2(INT32_LIMIT / largest)))
    while largest * 2.0**shift >= 2**31:  # log2's rounding: make sure the largest m fits 31 bits
        shift -= 1
    if shift < 1:
        raise ValueError(f"requantization multiplier {largest} needs no shift: the output scale is too fine")
    return np.rint(np.asarray(multipliers, np.float64) * 2.0**shift).astype(np.int64), shift


def quantize_weights(w: np.ndarray, axis: int = -1, bits: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """(integer weights, float64 scale per output channel) of a float kernel; `axis` is the output-channel axis.
    8 bits: int8 in -127..127; up to 16 bits: int16 (more precision where the int32 accumulator has room)."""
    qmax = (1 << (bits - 1)) - 1
    w = np.asarray(w, np.float32).astype(np.float64)
    moved = np.moveaxis(w, axis, -1)
    peak = np.max(np.abs(moved.reshape(-1, moved.shape[-1])), axis=0)
    scale = np.where(peak > 0, peak / qmax, 1.0)
    q = np.clip(np.rint(moved / scale), -qmax, qmax).astype(np.int8 if bits <= 8 else np.int16)
    return np.moveaxis(q, -1, axis), scale


def _same_pads(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TF's "same" padding (before, after) of one axis."""
    effective = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    return total // 2, total - total // 2


# --- the ops, as TF code: the same functions compute the calibration batch and the exported graph -------------------

def _requantize(tf, acc, m, shift: int, lo: int, hi: int, m_neg=None):
    acc = tf.cast(acc, tf.int64)
    if m_neg is None:
        x = acc * tf.constant(m, tf.int64)
    else:  # a PReLU after the layer: negative accumulators take the slope-scaled multiplier of their channel
        x = acc * tf.where(acc >= 0, tf.constant(m, tf.int64), tf.constant(m_neg, tf.int64))
    x = tf.bitwise.right_shift(x + (1 << (shift - 1)), tf.constant(shift, tf.int64))  # arithmetic: floor
    return tf.cast(tf.clip_by_value(x, lo, hi), tf.int32)


def _accumulate(tf, step: Step, x):
    p = step.params
    if step.kind == "conv":  # NHWC int32 Conv2D (Conv1D as height 1, Dense as a 1x1 convolution or a MatMul)
        kernel = tf.cast(tf.constant(p["kernel"]), tf.int32)
        if p["rank"] == 2:
            acc = tf.linalg.matmul(x, kernel)
        elif p["rank"] == 3 and p["kernel"].ndim == 2:  # Dense over time steps
            shape = tf.shape(x)
            acc = tf.reshape(tf.linalg.matmul(tf.reshape(x, [-1, shape[2]]), kernel), [shape[0], shape[1], -1])
        elif p["rank"] == 3:  # Conv1D: (k, in, out) -> (1, k, in, out) over (N, 1, T, C)
            acc = tf.nn.conv2d(x[:, None], kernel[None], [1, 1, p["stride"], 1], p["padding"],
                               dilations=[1, 1, p["dilation"], 1])[:, 0]
        else:
            acc = tf.nn.conv2d(x, kernel, [1, *p["strides"], 1], p["padding"], dilations=[1, *p["dilations"], 1])
        return acc + tf.constant(p["bias"], tf.int32)
    if step.kind == "depthwise":  # the taps as patches (one op), times the per-channel weights, summed per tap
        kernel = p["kernel"]
        (kh, kw), (sh, sw) = kernel.shape[:2], p["strides"]
        x = tf.pad(x, [[0, 0], list(p["pads"][0]), list(p["pads"][1]), [0, 0]])
        patches = tf.image.extract_patches(x, [1, kh, kw, 1], [1, sh, sw, 1], [1, 1, 1, 1], "VALID")
        shape = tf.shape(patches)
        taps = tf.reshape(patches, [shape[0], shape[1], shape[2], kh * kw, kernel.shape[2]])
        weights = tf.cast(tf.constant(kernel.reshape(kh * kw, kernel.shape[2])), tf.int32)
        return tf.reduce_sum(taps * weights, axis=3) + tf.constant(p["bias"], tf.int32)
    if step.kind == "affine":  # per-channel x * k + b
        return x * tf.constant(p["kernel"].astype(np.int32)) + tf.constant(p["bias"], tf.int32)
    raise ValueError(step.kind)


def run(tf, step: Step, *xs):
    """The int32 output of one step."""
    p = step.params
    if step.kind in ("conv", "depthwise", "affine"):
        return _requantize(tf, _accumulate(tf, step, xs[0]), p["m"], p["shift"], p["lo"], p["hi"], p.get("m_neg"))
    if step.kind == "add":  # both operands to the sum's scale in one rounding
        a, b = (_pad_to(tf, x, p["shape"]) for x in xs)
        total = tf.cast(a, tf.int64) * p["m"][0] + tf.cast(b, tf.int64) * p["m"][1] + (1 << (p["shift"] - 1))
        total = tf.bitwise.right_shift(total, tf.constant(p["shift"], tf.int64))
        return tf.cast(tf.clip_by_value(total, p["lo"], p["hi"]), tf.int32)
    if step.kind == "standardize":  # tf.image.per_image_standardization of u / 255, in integers
        return _standardize(tf, xs[0], p["shift"], p["hi"])
    if step.kind == "relu":
        return tf.maximum(xs[0], 0)
    if step.kind == "max_pool":
        return tf.nn.max_pool2d(xs[0], p["pool"], p["strides"], p["padding"])
    if step.kind == "sum_pool":  # an average pool's window sum (valid padding); the scale carries the 1 / area
        (ph, pw), (sh, sw), (oh, ow) = p["pool"], p["strides"], p["out_hw"]
        x, acc = xs[0], None
        for i in range(ph):
            for j in range(pw):
                tap = x[:, i:i + sh * (oh - 1) + 1:sh, j:j + sw * (ow - 1) + 1:sw]
                acc = tap if acc is None else acc + tap
        return acc
    if step.kind == "global_sum":
        return tf.reduce_sum(xs[0], axis=[1, 2])
    if step.kind == "transpose":
        return tf.transpose(xs[0], p["perm"])
    if step.kind == "reshape":
        return tf.reshape(xs[0], [-1, *p["shape"]])
    raise ValueError(f"unknown integer op {step.kind}")


def _standardize(tf, x, shift: int, hi: int):
    """round((n u - S) 2^shift / max(isqrt(n Q - S^2), 255 isqrt(n))) per image, clamped to +-hi: TF's
    (x - mean) / max(std, 1 / sqrt(n)) of x = u / 255 in units of 2^-shift (S, Q: the image's sum and sum of squares
    of its n values u, exact in int64; the 255 isqrt(n) floor is TF's 1 / sqrt(n) in these units)."""
    n = int(np.prod(x.shape[1:]))
    flat = tf.cast(tf.reshape(x, [-1, n]), tf.int64)
    total = tf.reduce_sum(flat, axis=1, keepdims=True)
    spread = n * tf.reduce_sum(flat * flat, axis=1, keepdims=True) - total * total  # n^2 variance, >= 0
    denominator = tf.maximum(isqrt(tf, spread), 255 * math.isqrt(n))
    numerator = (n * flat - total) * (1 << (shift + 1)) + denominator
    out = tf.math.floordiv(numerator, 2 * denominator)  # half up
    return tf.reshape(tf.cast(tf.clip_by_value(out, -hi, hi), tf.int32), tf.shape(x))


def standardize_input(bits: int = 12, shift: int = 7):
    """A compile_model input_transform: per-image standardisation (the OCR's) in integers, out in units of 2^-shift
    (1/128 of a standard deviation by default), clamped to `bits` signed bits."""

    def transform(c) -> int:
        hi = (1 << (bits - 1)) - 1
        if 255 * 255 * int(np.prod(c.values[0].calib.shape[1:])) ** 2 >= 2**62:
            raise ValueError("per-image standardisation: the image is too large for the int64 sums")
        step = Step("standardize", [0], dict(shift=shift, hi=hi))
        return c.add(step, QTensor(run(c.tf, step, c.values[0].calib), 2.0**-shift, hi), "standardize")

    return transform


def _pad_to(tf, x, shape):
    """x zero-padded at the end of each axis to `shape` (dlib's add_prev of unequal tensors)."""
    extra = [[0, 0]] + [[0, n - m] for n, m in zip(shape, x.shape[1:])]
    return tf.pad(x, extra) if any(e[1] for e in extra) else x


# --- compilation -------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Program:
    """A compiled model: steps over a value list whose entry 0 is the uint8 input (as int32)."""
    steps: list  # (Step, output index)
    output: int  # value index of the model output
    output_scale: float  # real value of the output = q * output_scale
    output_activation: str  # the last layer's activation, not applied (e.g. "sigmoid": apply a lookup table)
    report: list  # per layer: name, kind, output bits, scale, bound (for metrics.json and NOTES)

    def __call__(self, tf, image):
        values = [tf.cast(image, tf.int32)]
        for step, _ in self.steps:
            values.append(run(tf, step, *(values[i] for i in step.inputs)))
        return values[self.output]


class _Compiler:
    def __init__(self, tf, activation_bits: int, input_bits: int, output_bits: int, output_scale: float | None,
                 weight_bits: int = 8, fit_weight_bits: bool = False):
        self.tf, self.weight_bits, self.fit_weight_bits = tf, weight_bits, fit_weight_bits
        self.activation_bits, self.input_bits, self.output_bits = activation_bits, input_bits, output_bits
        self.output_scale = output_scale
        self.values: list[QTensor] = []
        self.steps: list = []
        self.report: list = []

    def add(self, step: Step, qt: QTensor, name: str) -> int:
        self.steps.append((step, len(self.values)))
        self.values.append(qt)
        bits = int(qt.bound).bit_length() + 1
        self.report.append({"layer": name, "op": step.kind, "bits": bits, "bound": int(qt.bound),
                            "scale": float(qt.scale)})
        if "weight_bits" in step.params:
            self.report[-1]["weight_bits"] = step.params["weight_bits"]
        return len(self.values) - 1

    def requantized(self, name, step, acc, acc_scale, relu: bool, bits: int, fixed_scale=None, alpha=None) -> int:
        """Finish a conv/depthwise/affine step: output scale from the real range of its exact int32 accumulator on
        the calibration batch (or fixed_scale), multipliers, and the clamped output. alpha: the per-channel slopes
        of a PReLU after the layer (float32, folded into the multipliers of negative accumulators)."""
        acc_scale = np.broadcast_to(np.asarray(acc_scale, np.float64), acc.shape[-1:])
        real = acc.numpy().astype(np.float64) * acc_scale
        if alpha is not None:
            alpha = np.broadcast_to(np.asarray(alpha, np.float32).astype(np.float64), acc.shape[-1:])
            real = np.where(real >= 0, real, real * alpha)
        scale, qmax = _output_scale(real, relu, bits, fixed_scale, float(np.max(acc_scale)))
        if alpha is None:
            m, shift = requant_params(acc_scale / scale)
            m_neg = None
        else:
            both, shift = requant_params(np.concatenate([acc_scale / scale, acc_scale * alpha / scale]))
            m, m_neg = both[:len(acc_scale)], both[len(acc_scale):]
            step.params.update(m_neg=m_neg)
        step.params.update(m=m, shift=shift, lo=0 if relu else -qmax, hi=qmax)
        out = _requantize(self.tf, acc, m, shift, step.params["lo"], qmax, m_neg)
        return self.add(step, QTensor(out, scale, qmax), name)

    def check_overflow(self, name: str, kernel_abs_sum: np.ndarray, bound: int, bias: np.ndarray) -> None:
        worst = int(np.max(kernel_abs_sum.astype(np.int64) * bound + np.abs(bias.astype(np.int64))))
        if worst > INT32_LIMIT:
            raise ValueError(f"{name}: the int32 accumulator can reach {worst} > 2^31 - 1 with inputs up to {bound}; "
                             "use fewer activation or weight bits")

    def weighted(self, name, kind, x: QTensor, index: int, kernel, bias, relu: bool, out_axis: int, bits: int,
                 fixed_scale=None, alpha=None, **params) -> int:
        for weight_bits in range(self.weight_bits, 7, -1):  # narrower only where fit_weight_bits allows it
            kernel_q, w_scale = quantize_weights(kernel, out_axis, weight_bits)
            acc_scale = x.scale * w_scale
            bias_q = np.zeros(kernel_q.shape[out_axis], np.int32) if bias is None else np.rint(
                np.asarray(bias, np.float32).astype(np.float64) / acc_scale).astype(np.int64)
            if np.max(np.abs(bias_q)) > INT32_LIMIT // 2:
                raise ValueError(f"{name}: a bias is too large for the int32 accumulator at this input scale")
            abs_sum = np.sum(np.abs(np.moveaxis(kernel_q.astype(np.int64), out_axis, -1)).reshape(
                -1, kernel_q.shape[out_axis]), axis=0)
            try:
                self.check_overflow(name, abs_sum, x.bound, bias_q)
                break
            except ValueError:
                if not self.fit_weight_bits or weight_bits == 8:
                    raise
        if self.fit_weight_bits:
            params["weight_bits"] = weight_bits
        step = Step(kind, [index], dict(kernel=kernel_q, bias=bias_q.astype(np.int32), **params))
        acc = _accumulate(self.tf, step, x.calib)
        return self.requantized(name, step, acc, acc_scale, relu, bits, fixed_scale, alpha)


def _output_scale(real: np.ndarray, relu: bool, bits: int, fixed_scale, fallback: float) -> tuple[float, int]:
    """(scale, qmax) of an op's output: its calibrated real peak over the `bits`-bit range (unsigned after a ReLU),
    or fixed_scale; `fallback` when the calibration batch gives only zeros."""
    qmax = (1 << bits) - 1 if relu else (1 << (bits - 1)) - 1
    if fixed_scale is not None:
        return fixed_scale, qmax
    peak = float(np.max(real)) if relu else float(np.max(np.abs(real)))
    return (peak / qmax if peak > 0 else fallback), qmax


def _is_relu(op) -> bool:
    import keras

    return (isinstance(op, keras.layers.ReLU) and op.max_value is None and not op.negative_slope
            and not op.threshold)


def compile_model(model, calibration: np.ndarray, input_scale: float = 1 / 255, activation_bits: int = 8,
                  input_bits: int = 16, output_bits: int = 16, output_scale: float | None = None,
                  input_transform=None, weight_bits: int = 8, input_bound: int = 255,
                  fit_weight_bits: bool = False) -> Program:
    """Compile a single-input functional Keras model for uint8 input (real value = u * input_scale), or for integer
    input with |u| <= input_bound (e.g. an image already centred in the graph before it).

    calibration: uint8 images the output scales are calibrated on (training data). weight_bits: 8 (int8) or more
    (int16 storage) per output channel. input_bits: the width of the per-channel affine maps right after the input
    (Rescaling); output_bits: the last layer's; output_scale: fix the last layer's scale instead of calibrating it
    (e.g. 2^-14 for an embedding in Q14). fit_weight_bits: a layer whose int32 accumulator could overflow with
    weight_bits gets the widest weights (down to 8 bits) that cannot, instead of an error. input_transform: an
    optional prologue adding its own step, e.g. integer per-image standardisation (`standardize_input`). Each layer
    is read through its first call, the model's own graph (a sub-model built on the same tensors, like the facial
    task's head, adds calls but no other wiring).
    """
    import keras
    import tensorflow as tf

    if not hasattr(model, "operations") or len(model.inputs) != 1:
        raise ValueError(f"{model.name}: compile_model needs a functional Keras model with one input")
    c = _Compiler(tf, activation_bits, input_bits, output_bits, output_scale, weight_bits, fit_weight_bits)
    image = tf.cast(tf.constant(calibration), tf.int32)
    if int(np.max(np.abs(calibration))) > input_bound:
        raise ValueError(f"{model.name}: calibration input exceeds input_bound {input_bound}")
    c.values.append(QTensor(image, float(input_scale), int(input_bound)))
    where = {id(model.inputs[0]): 0}
    if input_transform is not None:
        where[id(model.inputs[0])] = input_transform(c)
    operations = [op for op in model.operations if not isinstance(op, keras.layers.InputLayer)]
    consumers = {}
    for op in operations:
        for t in op._inbound_nodes[0].input_tensors:
            consumers.setdefault(id(t), []).append(op)
    passthrough = (keras.layers.Dropout, keras.layers.Identity)
    final = [op for op in operations if not (isinstance(op, passthrough) or type(op).__name__ == "_PassThrough")][-1]
    activation = "linear"
    absorbed = set()  # ReLUs done by the clamp of the op before them
    for op in operations:
        node = op._inbound_nodes[0]
        ins = [where[id(t)] for t in node.input_tensors]
        x = c.values[ins[0]]
        name, out_id = op.name, id(node.output_tensors[0])
        if id(op) in absorbed:
            where[out_id] = ins[0]
            continue
        following = consumers.get(out_id, [])
        relu_next = len(following) == 1 and _is_relu(following[0])
        prelu_next = len(following) == 1 and isinstance(following[0], keras.layers.PReLU)
        alpha = following[0].alpha.numpy().reshape(-1) if prelu_next else None
        if prelu_next and not isinstance(op, (keras.layers.Conv2D, keras.layers.Dense)):
            raise ValueError(f"{following[0].name}: a PReLU is only supported right after a Conv2D or Dense layer")
        last = op is final or ((relu_next or prelu_next) and following[0] is final)
        bits = output_bits if last else activation_bits
        fixed = output_scale if op is final else None
        act = getattr(op, "activation", None)
        act_name = getattr(act, "__name__", "linear") if act is not None else "linear"
        if act_name not in ("linear", "relu"):
            if op is not final:
                raise ValueError(f"{name}: activation {act_name} is only supported on the last layer")
            activation = act_name
        relu = act_name == "relu" or relu_next
        if relu_next or prelu_next:
            absorbed.add(id(following[0]))

        if isinstance(op, passthrough) or type(op).__name__ == "_PassThrough":
            where[out_id] = ins[0]
            continue
        if isinstance(op, keras.layers.Rescaling):
            channels = x.calib.shape[-1]
            k = np.broadcast_to(np.asarray(op.scale, np.float64), (channels,))
            b = np.broadcast_to(np.asarray(op.offset, np.float64), (channels,))
            idx = c.weighted(name, "affine", x, ins[0], k.astype(np.float32), b.astype(np.float32), relu, -1,
                             bits if last else input_bits, fixed)
        elif isinstance(op, keras.layers.BatchNormalization):
            gamma = op.gamma.numpy() if op.scale else 1.0
            beta = op.beta.numpy() if op.center else 0.0
            k = (gamma / np.sqrt(op.moving_variance.numpy() + np.float32(op.epsilon))).astype(np.float32)
            b = (beta - op.moving_mean.numpy() * k).astype(np.float32)
            idx = c.weighted(name, "affine", x, ins[0], k, b, relu, -1, bits, fixed)
        elif isinstance(op, keras.layers.DepthwiseConv2D):
            kernel = op.kernel.numpy()
            if kernel.shape[3] != 1:
                raise ValueError(f"{name}: depth multiplier {kernel.shape[3]} is not supported")
            h, w = x.calib.shape[1:3]
            (kh, kw), (sh, sw) = kernel.shape[:2], op.strides
            if op.padding == "same":
                pads = (_same_pads(h, kh, sh), _same_pads(w, kw, sw))
            else:
                pads = ((0, 0), (0, 0))
            out_hw = ((h + sum(pads[0]) - kh) // sh + 1, (w + sum(pads[1]) - kw) // sw + 1)
            bias = op.bias.numpy() if op.use_bias else None
            idx = c.weighted(name, "depthwise", x, ins[0], kernel[:, :, :, 0], bias, relu, -1, bits, fixed,
                             strides=tuple(op.strides), pads=pads, out_hw=out_hw)
        elif isinstance(op, (keras.layers.Conv2D, keras.layers.Conv1D, keras.layers.Dense)):
            kernel = keras.ops.convert_to_numpy(op.kernel)
            bias = op.bias.numpy() if op.use_bias else None
            rank = len(x.calib.shape)
            if isinstance(op, keras.layers.Dense):
                params = dict(rank=rank)
            elif isinstance(op, keras.layers.Conv1D):
                params = dict(rank=3, stride=op.strides[0], padding=op.padding.upper(), dilation=op.dilation_rate[0])
            else:
                params = dict(rank=4, strides=tuple(op.strides), padding=op.padding.upper(),
                              dilations=tuple(op.dilation_rate))
            if getattr(op, "groups", 1) != 1:
                raise ValueError(f"{name}: grouped convolutions are not supported")
            idx = c.weighted(name, "conv", x, ins[0], kernel, bias, relu, -1, bits, fixed, alpha, **params)
        elif _is_relu(op):
            idx = c.add(Step("relu", ins, {}), QTensor(tf.maximum(x.calib, 0), x.scale, x.bound), name)
        elif isinstance(op, keras.layers.MaxPooling2D):
            step = Step("max_pool", ins, dict(pool=tuple(op.pool_size), strides=tuple(op.strides),
                                              padding=op.padding.upper()))
            idx = c.add(step, QTensor(run(tf, step, x.calib), x.scale, x.bound), name)
        elif isinstance(op, keras.layers.AveragePooling2D):
            if op.padding != "valid":
                raise ValueError(f"{name}: only valid average pooling is supported")
            (ph, pw), (sh, sw) = op.pool_size, op.strides
            h, w = x.calib.shape[1:3]
            step = Step("sum_pool", ins, dict(pool=(ph, pw), strides=(sh, sw),
                                              out_hw=((h - ph) // sh + 1, (w - pw) // sw + 1)))
            idx = c.add(step, QTensor(run(tf, step, x.calib), x.scale / (ph * pw), x.bound * ph * pw), name)
        elif isinstance(op, keras.layers.GlobalAveragePooling2D):
            h, w = x.calib.shape[1:3]
            step = Step("global_sum", ins, {})
            idx = c.add(step, QTensor(run(tf, step, x.calib), x.scale / (h * w), x.bound * h * w), name)
        elif isinstance(op, keras.layers.Permute):
            step = Step("transpose", ins, dict(perm=[0, *op.dims]))
            idx = c.add(step, QTensor(run(tf, step, x.calib), x.scale, x.bound), name)
        elif isinstance(op, keras.layers.Flatten):
            step = Step("reshape", ins, dict(shape=[int(np.prod(x.calib.shape[1:]))]))
            idx = c.add(step, QTensor(run(tf, step, x.calib), x.scale, x.bound), name)
        elif isinstance(op, keras.layers.Reshape):
            step = Step("reshape", ins, dict(shape=list(op.target_shape)))
            idx = c.add(step, QTensor(run(tf, step, x.calib), x.scale, x.bound), name)
        elif type(op).__name__ in ("Add", "AddPrev") and len(ins) == 2:
            a, b = c.values[ins[0]], c.values[ins[1]]
            shape = [max(p, q) for p, q in zip(a.calib.shape[1:], b.calib.shape[1:])]
            real = (_pad_to(tf, a.calib, shape).numpy().astype(np.float64) * a.scale
                    + _pad_to(tf, b.calib, shape).numpy().astype(np.float64) * b.scale)
            scale, qmax = _output_scale(real, relu, bits, fixed, max(a.scale, b.scale))
            m, shift = requant_params(np.array([a.scale / scale, b.scale / scale]))
            if max(a.bound, b.bound) >= 2**31:
                raise ValueError(f"{name}: operand bound exceeds int32")
            step = Step("add", ins, dict(m=[int(m[0]), int(m[1])], shift=shift, lo=0 if relu else -qmax, hi=qmax,
                                         shape=shape))
            idx = c.add(step, QTensor(run(tf, step, a.calib, b.calib), scale, qmax), name)
        else:
            raise ValueError(f"{name}: layer type {type(op).__name__} has no integer implementation")
        where[out_id] = idx
        if relu_next or prelu_next:
            where[id(following[0]._inbound_nodes[0].output_tensors[0])] = idx
    out = where[id(model.outputs[0])]
    return Program(c.steps, out, c.values[out].scale, activation, c.report)


# --- integer heads: lookup tables, square roots, the float-op check ----------------------------------------------

BP = 10000  # probabilities and similarities leave the integer graphs in basis points


def sigmoid_bp_table(scale: float, bound: int) -> np.ndarray:
    """int16 table[q + bound] = round(10000 * sigmoid(q * scale)) (half up) for q in -bound..bound, in float64 once
    at export: the graph itself only indexes it."""
    table = np.empty(2 * bound + 1, np.int16)
    for i, q in enumerate(range(-bound, bound + 1)):
        z = q * scale
        p = 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))
        table[i] = math.floor(BP * p + 0.5)
    return table


def lookup(tf, table: np.ndarray, q, bound: int):
    """table[clamp(q, -bound, bound) + bound] as int32: an integer function of an integer."""
    index = tf.clip_by_value(q, -bound, bound) + bound
    return tf.cast(tf.gather(tf.constant(table), index), tf.int32)


def isqrt(tf, n):
    """floor(sqrt(n)) of an int64 tensor 0 <= n < 2^62, bit by bit (31 steps of compare-and-set)."""
    root = tf.zeros_like(n)
    for bit in range(30, -1, -1):
        candidate = root + (1 << bit)
        root = tf.where(candidate * candidate <= n, candidate, root)
    return root


def argmax_lowest(tf, q, axis: int = -1):
    """The index of the largest value along `axis`, ties to the lowest index (tf.argmax leaves ties unspecified)."""
    best = tf.reduce_max(q, axis=axis, keepdims=True)
    positions = tf.range(tf.shape(q)[axis], dtype=tf.int32)
    return tf.reduce_min(tf.where(q == best, positions, tf.int32.max), axis=axis)


def softmax_max_bp(tf, q, scale: float):
    """The largest softmax probability along the last axis of integer logits q (real = q * scale), in bp: 10000 *
    2^15 / sum_j E[max - q_j] rounded half up, E[d] = round(2^15 exp(-d scale)) a table over d (0 beyond its end)."""
    size = 1
    while size < 1 << 20 and math.floor(32768 * math.exp(-size * scale) + 0.5) > 0:
        size += 1
    table = np.array([math.floor(32768 * math.exp(-d * scale) + 0.5) for d in range(size)] + [0], np.int32)
    gap = tf.minimum(tf.reduce_max(q, axis=-1, keepdims=True) - q, size)
    total = tf.cast(tf.reduce_sum(tf.gather(tf.constant(table), gap), axis=-1), tf.int64)  # >= 2^15: the max's own
    return tf.cast(tf.math.floordiv(2 * BP * 32768 + total, 2 * total), tf.int32)


FLOAT_TYPES = {1, 2, 14, 19}  # DT_FLOAT, DT_DOUBLE, DT_BFLOAT16, DT_HALF (tensorflow/core/framework/types.proto)


def float_nodes(graph_def) -> list[str]:
    """'name (op)' of every node of a GraphDef (function library included) that reads, makes or holds a float."""
    found = []

    def scan(nodes):
        for node in nodes:
            types = [v.type for v in node.attr.values() if v.WhichOneof("value") == "type"]
            types += [t for v in node.attr.values() if v.WhichOneof("value") == "list" for t in v.list.type]
            tensor = node.attr["value"].tensor if "value" in node.attr else None
            if set(types) & FLOAT_TYPES or (tensor is not None and tensor.dtype in FLOAT_TYPES):
                found.append(f"{node.name} ({node.op})")

    scan(graph_def.node)
    for fn in graph_def.library.function:
        scan(fn.node_def)
    return found
