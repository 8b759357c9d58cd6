"""A small fully convolutional network: a document's grey image -> a map of "inside the MRZ band" logits.

Three strided convolutions take the INPUT_SIZE square to the GRID map (stride 8), and plain 3x3 convolutions there
widen the view to ~120 input px, enough to see several characters and the '<' runs, the fixed pitch and the parallel
lines that tell the MRZ from other printed text. No BatchNorm, no pooling, no upsampling: every op is one the integer
compiler (veid_ml.integer) maps exactly.

Serving contract of the governed integer graph mrz_locator_model, signature "serving_default":
    input  "image"            uint8 [None, INPUT_SIZE, INPUT_SIZE, 1]: veid_ml.mrz_locator.locator_input of the photo
    output "band_logits_q10"  int32 [None, GRID, GRID, 2]: the logits of each cell being inside the MRZ band and
                              inside its upper half (reading orientation), in 1/1024
The float twin mrz_locator_float, signature "serving_default":
    input  "image"        float32 [None, INPUT_SIZE, INPUT_SIZE, 1], the same image / 255
    output "band_logits"  float32 [None, GRID, GRID, 2]
veid_ml.mrz_locator turns the maps into the upright band's corners in the photo.
"""

import keras
import tensorflow as tf

from veid_ml.mrz_locator import INPUT_SIZE, STRIDE

STEM = ((16, 2), (24, 2), (32, 2))  # (filters, stride): INPUT_SIZE -> the GRID map, STRIDE px per cell
BODY = (32, 32, 32, 32, 32)  # 3x3 convolutions at the GRID map
assert STEM[0][1] * STEM[1][1] * STEM[2][1] == STRIDE  # the map's cells are the contract's
LOGIT_SCALE = 1 / 1024
LOGIT_BOUND = 32 * 1024  # logits clamped to +-32
INTEGER_BITS, WEIGHT_BITS, INPUT_BITS = 12, 12, 14  # 10-bit activations and weights: precision -0.31 points


def build_model() -> keras.Model:
    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 1), name="image")
    x = inputs
    for i, (filters, stride) in enumerate(STEM):
        x = keras.layers.Conv2D(filters, 3, strides=stride, padding="same", activation="relu", name=f"stem{i}")(x)
    for i, filters in enumerate(BODY):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"body{i}")(x)
    outputs = keras.layers.Conv2D(2, 1, name="band_logits")(x)
    return keras.Model(inputs, outputs, name="mrz_locator")


def integer_program(model: keras.Model, calibration):
    """The model compiled to integer ops, calibrated on `calibration` (uint8 [N, INPUT_SIZE, INPUT_SIZE, 1])."""
    from veid_ml import integer

    return integer.compile_model(model, calibration, activation_bits=INTEGER_BITS, weight_bits=WEIGHT_BITS,
                                 input_bits=INPUT_BITS, output_scale=LOGIT_SCALE,
                                 output_bits=LOGIT_BOUND.bit_length() + 1)


def integer_signature(program):
    @tf.function(input_signature=[tf.TensorSpec([None, INPUT_SIZE, INPUT_SIZE, 1], tf.uint8, name="image")])
    def serve(image):
        return {"band_logits_q10": tf.identity(program(tf, image), name="band_logits_q10")}

    return serve


def serving_signature(model: keras.Model):
    @tf.function(input_signature=[tf.TensorSpec([None, INPUT_SIZE, INPUT_SIZE, 1], tf.float32, name="image")])
    def serve(image):
        return {"band_logits": tf.identity(model(image, training=False), name="band_logits")}

    return serve

