"""veid_ml.integer: Keras models compiled to integer-only graphs (the consensus graphs, issue 21).

A small model with every supported layer kind is compiled and compared with its float self; its exported graph must
hold no floating-point op, and its outputs must not depend on the thread count. The integer helpers (rounding rule,
square root, argmax ties, sigmoid table) are checked against exact Python arithmetic.
"""

import math

import numpy as np
import pytest

from conftest import run_in_fresh_process
from veid_ml import integer


def _every_layer_model():
    """A model using every layer kind the compiler supports, with trained-looking (random, BN-folded) weights."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(7)
    image = keras.Input((24, 24, 3), name="image")
    x = layers.Rescaling(2.0, offset=-1.0)(image)
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)  # 12 x 12
    x = layers.DepthwiseConv2D(3, padding="same")(x)
    x = layers.BatchNormalization()(x)
    x = layers.ReLU()(x)
    shortcut = x
    x = layers.Conv2D(8, 3, padding="same")(x)
    x = layers.ReLU()(layers.Add()([x, shortcut]))
    x = layers.MaxPooling2D(2)(x)  # 6 x 6
    y = layers.AveragePooling2D(2)(x)  # 3 x 3
    y = layers.Permute((2, 1, 3))(y)
    y = layers.Reshape((3, 24))(y)
    y = layers.Conv1D(12, 3, padding="same", dilation_rate=2, activation="relu")(y)
    y = layers.Dense(6)(y)
    y = layers.Reshape((18,))(y)
    z = layers.GlobalAveragePooling2D()(x)
    z = layers.Dense(18, activation="relu")(z)
    out = layers.Dense(1, activation="sigmoid", name="score")(layers.Add()([y, z]))
    model = keras.Model(image, out)
    for layer in model.layers:  # BN statistics away from the identity, as after training
        if isinstance(layer, layers.BatchNormalization):
            rng = np.random.default_rng(1)
            layer.moving_mean.assign(rng.normal(0, 0.3, 8).astype(np.float32))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, 8).astype(np.float32))
    return model


def compile_and_compare(threads: int) -> dict:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    model = _every_layer_model()
    rng = np.random.default_rng(0)
    calibration = rng.integers(0, 256, (64, 24, 24, 3), dtype=np.uint8)
    test = rng.integers(0, 256, (32, 24, 24, 3), dtype=np.uint8)
    program = integer.compile_model(model, calibration, activation_bits=8, output_scale=2.0**-10, output_bits=16)
    table = integer.sigmoid_bp_table(program.output_scale, 16 * 1024)

    @tf.function(input_signature=[tf.TensorSpec([None, 24, 24, 3], tf.uint8, name="image")])
    def serve(image):
        return {"bp": integer.lookup(tf, table, program(tf, image)[:, 0], 16 * 1024)}

    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    graph = convert_variables_to_constants_v2(serve.get_concrete_function()).graph.as_graph_def()
    bp = serve(tf.constant(test))["bp"].numpy()
    reference = model.predict_on_batch(test.astype(np.float32) / 255.0)[:, 0]
    return {"bp": bp, "float": reference, "float_nodes": integer.float_nodes(graph), "dtype": str(bp.dtype),
            "activation": program.output_activation, "ops": sorted({n.op for n in graph.node})}


@pytest.fixture(scope="module")
def compiled():
    return run_in_fresh_process(compile_and_compare, 2)


def test_integer_graph_tracks_the_float_model(compiled):
    assert compiled["activation"] == "sigmoid" and compiled["dtype"] == "int32"
    error = np.abs(compiled["bp"] / 10000.0 - compiled["float"])
    assert np.median(error) < 0.01 and error.max() < 0.05, (np.median(error), error.max())
    assert len(set(compiled["bp"].tolist())) > 8  # not a constant: the comparison above means something


def test_integer_graph_has_no_float_op(compiled):
    assert compiled["float_nodes"] == [], compiled["float_nodes"]
    assert "Conv2D" in compiled["ops"] and "MatMul" in compiled["ops"]


def test_integer_outputs_do_not_depend_on_the_thread_count(compiled):
    for threads in (1, 3):
        assert run_in_fresh_process(compile_and_compare, threads)["bp"].tobytes() == compiled["bp"].tobytes()


def float_nodes_of_a_float_graph() -> list:
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.uint8)])
    def f(x):
        return tf.cast(tf.cast(x, tf.float32) * 0.5, tf.int32)

    return integer.float_nodes(f.get_concrete_function().graph.as_graph_def())


def test_the_float_op_check_can_fail():
    found = run_in_fresh_process(float_nodes_of_a_float_graph)
    assert any("(Mul)" in n for n in found) and any("(Cast)" in n for n in found), found


def requantize_examples(values, m, shift) -> list:
    import tensorflow as tf

    return integer._requantize(tf, tf.constant(values, tf.int32), np.int64(m), shift, -1000, 1000).numpy().tolist()


def test_requantization_rounds_half_up_with_an_arithmetic_shift():
    values = [-7, -6, -5, -3, -2, -1, 0, 1, 2, 3, 5, 6, 7]
    got = run_in_fresh_process(requantize_examples, values, 1, 2)  # x / 4
    assert got == [math.floor(v / 4 + 0.5) for v in values]  # -1.5 -> -1, -0.5 -> 0, 1.5 -> 2 (half up)


def test_requant_params_fit_31_bits_and_keep_precision():
    multipliers = np.array([0.7, 0.0123, 3.5e-5])
    m, shift = integer.requant_params(multipliers)
    assert m.max() < 2**31 and m.max() >= 2**30
    np.testing.assert_allclose(m / 2.0**shift, multipliers, rtol=1e-4)
    with pytest.raises(ValueError, match="not a positive number"):
        integer.requant_params(np.array([0.0]))


def test_weights_quantize_per_output_channel():
    w = np.array([[0.5, -0.01], [-0.25, 0.02]], np.float32)  # (in, out)
    q, scale = integer.quantize_weights(w, axis=-1)
    assert q.dtype == np.int8 and q[:, 0].tolist() == [127, -64] and q[:, 1].tolist() == [-64, 127]
    np.testing.assert_allclose(scale, [0.5 / 127, 0.02 / 127])


def overflowing_compile():
    import keras

    keras.utils.set_random_seed(0)
    x = keras.Input((8, 8, 64))
    model = keras.Model(x, keras.layers.Conv2D(4, 3, kernel_initializer="ones")(
        keras.layers.Conv2D(4, 3, activation="relu")(x)))
    try:
        integer.compile_model(model, np.full((2, 8, 8, 64), 255, np.uint8), activation_bits=24)
    except ValueError as e:
        return str(e)
    return None


def test_an_int32_overflow_is_refused_at_export():
    message = run_in_fresh_process(overflowing_compile)
    assert message is not None and "int32 accumulator can reach" in message


def integer_helpers(values, rows) -> tuple:
    import tensorflow as tf

    roots = integer.isqrt(tf, tf.constant(values, tf.int64)).numpy().tolist()
    best = integer.argmax_lowest(tf, tf.constant(rows, tf.int32)).numpy().tolist()
    return roots, best


def test_isqrt_and_argmax_ties():
    values = [0, 1, 2, 3, 4, 15, 16, 17, 10**12, 2**62 - 1, 123456789012345]
    rows = [[1, 5, 5, 0], [7, 7, 7, 7], [-3, -1, -2, -1]]
    roots, best = run_in_fresh_process(integer_helpers, values, rows)
    assert roots == [math.isqrt(v) for v in values]
    assert best == [1, 0, 1]  # ties to the lowest index


def test_sigmoid_table():
    table = integer.sigmoid_bp_table(2.0**-4, 200)
    assert table[200] == 5000 and table[0] == round(10000 / (1 + math.exp(200 / 16)))
    assert np.all(np.diff(table.astype(int)) >= 0) and table[-1] == 10000


def standardize_and_softmax() -> dict:
    import tensorflow as tf

    rng = np.random.default_rng(3)
    lines = rng.integers(0, 256, (3, 32, 512, 1), dtype=np.uint8)
    lines[1] = 200  # a blank line: TF's 1 / sqrt(n) floor on the standard deviation
    lines[2] = np.clip(lines[2] // 8 + 100, 0, 255)  # low contrast
    got = integer._standardize(tf, tf.cast(tf.constant(lines), tf.int32), 7, 2047).numpy()
    want = tf.image.per_image_standardization(tf.constant(lines, tf.float32) / 255.0).numpy() * 128
    logits = rng.integers(-3000, 3000, (4, 16, 30), dtype=np.int32)
    logits[0, 0, :] = 5  # all tied
    bp = integer.softmax_max_bp(tf, tf.constant(logits), 0.004).numpy()
    soft = tf.nn.softmax(tf.constant(logits, tf.float64) * 0.004).numpy().max(axis=-1) * 10000
    return {"got": got, "want": want, "bp": bp, "soft": soft}


def test_integer_standardisation_and_softmax_confidence():
    r = run_in_fresh_process(standardize_and_softmax)
    assert np.abs(r["got"] - r["want"]).max() <= 0.51  # one rounding of the exact value
    assert np.all(r["got"][1] == 0)
    assert np.abs(r["bp"] - r["soft"]).max() <= 2 and r["bp"][0, 0] == round(10000 / 30)
