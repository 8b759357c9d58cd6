"""The face detector's integer pieces (issue 21): PReLU, Flatten and signed input in veid_ml.integer, and
veid_ml.integer_geometry's area resize, bilinear crops and overlap tests against the float TF ops they replace."""

import numpy as np

from conftest import run_in_fresh_process
from veid_ml import integer


def prelu_model_against_float() -> dict:
    """Run in a fresh process: an MTCNN-like model (conv + PReLU, max pool, Permute, Flatten, Dense + PReLU) on signed
    integer input, compiled with fit_weight_bits, against its float self."""
    import keras
    import tensorflow as tf
    from keras import layers

    keras.utils.set_random_seed(3)
    image = keras.Input((16, 16, 3))
    x = layers.Conv2D(16, 3)(image)
    x = layers.PReLU(shared_axes=[1, 2])(x)
    x = layers.MaxPooling2D(2, 2, padding="same")(x)
    x = layers.Conv2D(64, 3)(x)
    x = layers.PReLU(shared_axes=[1, 2])(x)
    x = layers.Flatten()(layers.Permute((2, 1, 3))(x))
    x = layers.PReLU()(layers.Dense(300)(x))
    out = layers.Dense(3)(x)
    model = keras.Model(image, out)
    rng = np.random.default_rng(0)
    for layer in model.layers:  # slopes as trained PReLUs have them, one of them negative
        if isinstance(layer, layers.PReLU):
            alpha = rng.uniform(0.05, 0.5, layer.alpha.shape).astype(np.float32)
            alpha.flat[0] = -0.2
            layer.alpha.assign(alpha)
    calibration = rng.integers(-2040, 2041, (64, 16, 16, 3)).astype(np.int32)
    test = rng.integers(-2040, 2041, (32, 16, 16, 3)).astype(np.int32)
    program = integer.compile_model(model, calibration, input_scale=1 / 2048, input_bound=2040, activation_bits=12,
                                    weight_bits=12, output_bits=16, output_scale=2.0**-10, fit_weight_bits=True)
    got = program(tf, tf.constant(test)).numpy() * program.output_scale
    want = model(test.astype(np.float32) / 2048).numpy()
    refused = None
    try:
        integer.compile_model(model, calibration, input_scale=1 / 2048, input_bound=2040, activation_bits=12,
                              weight_bits=12, output_bits=16, output_scale=2.0**-10)
    except ValueError as e:
        refused = str(e)
    return {"error": float(np.abs(got - want).max()), "peak": float(np.abs(want).max()),
            "report": program.report, "refused": refused}


def test_prelu_flatten_and_signed_input_compile():
    got = run_in_fresh_process(prelu_model_against_float)
    assert got["error"] < 0.02 * got["peak"], got
    assert [r["op"] for r in got["report"]] == ["conv", "max_pool", "conv", "transpose", "reshape", "conv", "conv"]
    weight_bits = {r["layer"]: r.get("weight_bits") for r in got["report"] if "weight_bits" in r}
    assert max(weight_bits.values()) == 12 and min(weight_bits.values()) < 12, weight_bits  # the wide layer narrowed
    assert got["refused"] and "accumulator can reach" in got["refused"]  # without fit_weight_bits: refused


def geometry_against_float() -> dict:
    """Run in a fresh process: area_resize against tf.image.resize("area"), bilinear_crops against crop_and_resize,
    overlap_exceeds against float IoU."""
    import tensorflow as tf

    from veid_ml import integer_geometry as geometry

    rng = np.random.default_rng(5)
    out = {"resize": {}, "crops": None, "overlaps": None}
    for shape, size in (((480, 640), (120, 160)), ((37, 50), (120, 162)), ((243, 320), (120, 159)),
                        ((100, 33), (17, 120)), ((13, 12), (13, 12)), ((1, 5), (3, 2)),
                        ((1500, 1000), (120, 80)), ((10, 60000), (30, 50))):  # row sums in groups (the second:
        # every row read three times, and two of the 32 groups empty)
        x = rng.integers(0, 256, (1, *shape, 3)).astype(np.int32)
        got = geometry.area_resize(tf, tf.constant(x, tf.uint8), tf.constant(size, tf.int64), gain=16).numpy() / 16
        want = tf.image.resize(x.astype(np.float64), size, method="area").numpy()
        out["resize"][shape] = (got.shape == want.shape, float(np.abs(got - want).max()))
    signed = rng.integers(-2040, 2041, (1, 45, 61, 3)).astype(np.int32)  # a level resized from another
    got = geometry.area_resize(tf, tf.constant(signed), tf.constant([44, 60], tf.int64)).numpy()
    out["signed"] = float(np.abs(got - tf.image.resize(signed.astype(np.float64), [44, 60], "area").numpy()).max())

    image = rng.integers(0, 256, (60, 80, 3)).astype(np.uint8)
    # (a box ending exactly on the last pixel centre is left out: TF's float position lands a hair beyond it and
    # extrapolates the whole row, the integer one samples the pixel)
    boxes_q4 = np.array([[160, 96, 640, 576], [-80, -80, 320, 320], [1200, 800, 1400, 1000], [0, 0, 1264, 944],
                         [333, 17, 901, 585]], np.int64)
    got = geometry.bilinear_crops(tf, tf.constant(image), tf.constant(boxes_q4), 24, 2040 << 12).numpy() / 65536
    norm = (boxes_q4[:, [1, 0, 3, 2]] / 16 / np.array([60, 80, 60, 80])).astype(np.float32)
    want = tf.image.crop_and_resize(image[None].astype(np.float32), norm, np.zeros(5, np.int32), [24, 24],
                                    extrapolation_value=127.5).numpy()
    out["crops"] = float(np.abs(got - want).max())

    boxes = rng.integers(0, 400, (40, 2))
    boxes = np.concatenate([boxes, boxes + rng.integers(20, 200, (40, 2))], 1) * 16
    lo, hi = boxes[:, :2] / 16, boxes[:, 2:] / 16
    inter = np.prod(np.clip(np.minimum(hi[:, None], hi[None]) - np.maximum(lo[:, None], lo[None]), 0, None), -1)
    area = np.prod(hi - lo, 1)
    iou = inter / (area[:, None] + area[None] - inter)
    over_min = inter / np.minimum(area[:, None], area[None])
    exceeds = geometry.overlap_exceeds(tf, tf.constant(boxes), 0.3).numpy()
    exceeds_min = geometry.overlap_exceeds(tf, tf.constant(boxes), 0.7, "min").numpy()
    out["overlaps"] = (bool(np.array_equal(exceeds, iou > 0.3)), bool(np.array_equal(exceeds_min, over_min > 0.7)),
                       int(exceeds.sum()) - 40)
    out["ratio"] = geometry.ratio(0.7)
    return out


def test_integer_geometry_matches_the_float_ops():
    got = run_in_fresh_process(geometry_against_float)
    for shape, (same_shape, error) in got["resize"].items():  # two roundings to 1/16 (downscale and upscale)
        assert same_shape and error <= 1 / 16, (shape, error)
    assert got["signed"] <= 1.0, got["signed"]  # two roundings to whole units of negative and positive values
    assert got["crops"] <= 2.0, got["crops"]  # positions in 1/256 px: at most ~1 grey level apart on noise
    assert got["overlaps"][:2] == (True, True) and got["overlaps"][2] > 0, got["overlaps"]
    assert got["ratio"] == (7, 10)


def test_round_div_rounds_half_up_for_both_signs():
    import tensorflow as tf

    from veid_ml.integer_geometry import round_div

    n = tf.constant([5, -5, 7, -7, 6, -6], tf.int64)
    assert round_div(tf, n, tf.constant(2, tf.int64)).numpy().tolist() == [3, -2, 4, -3, 3, -3]


def test_requant_params_accept_negative_multipliers():
    m, shift = integer.requant_params(np.array([0.5, -0.25, 0.125]))
    assert m[1] < 0 and abs(m[1]) == m[0] // 2 and m[0] < 2**31
