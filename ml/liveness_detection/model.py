"""A MiniFASNet-style CNN: fixed band-pass input branches, strided stem, depthwise-separable blocks -> P(bona fide).

Presentation attacks differ from live faces in fine local texture (halftone dots, a screen's pixel grid and its moiré,
paper grain and edges), so the network gets two fixed band-pass copies of the image next to it, and is mostly cheap
depthwise-separable convolutions (fast on two CPU cores) that widen as the image shrinks.

Serving contract (signature "serving_default"):
    input  "image"                 float32 [None, SIZE, SIZE, 3], RGB in [0, 1], face roughly centred and filling
                                   most of the frame (grayscale photos: repeat the channel three times)
    output "probability_bona_fide" float32 [None]  P(live face)
           "is_bona_fide"          bool    [None]  probability_bona_fide >= threshold
           "threshold"             float32 []      decision threshold chosen on validation data
"""

import keras
import tensorflow as tf

SIZE = 128
# (output channels, stride) of the depthwise-separable blocks after the stem
BLOCKS = ((48, 1), (64, 2), (64, 1), (128, 2), (128, 1), (192, 2), (192, 1))


def _conv_bn(x, filters, kernel, stride, name):
    x = keras.layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def _separable(x, filters, stride, name):
    x = keras.layers.DepthwiseConv2D(3, strides=stride, padding="same", use_bias=False, name=f"{name}_dw")(x)
    x = keras.layers.BatchNormalization(name=f"{name}_dw_bn")(x)
    x = keras.layers.ReLU(name=f"{name}_dw_relu")(x)
    return _conv_bn(x, filters, 1, 1, f"{name}_pw")


def build_model(size: int = SIZE, dropout: float = 0.2) -> keras.Model:
    """Keras model: float32 images in [0, 1] -> (batch, 1) probability of bona fide."""
    inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.Rescaling(2.0, offset=-1.0, name="to_unit_range")(inputs)
    # A fixed high-pass residual (image minus its 3x3 local mean), as in image forensics: it hands the first layer the
    # medium's texture without the face's shading, which the statistics matching made the only class cue.
    local_mean = keras.layers.AveragePooling2D(3, strides=1, padding="same", name="local_mean")(x)
    residual = keras.layers.Subtract(name="high_pass")([x, local_mean])
    residual = keras.layers.Rescaling(8.0, name="high_pass_gain")(residual)
    # A coarser band (3x3 mean minus 7x7 mean): medium-scale texture (moire beats, coarse halftone, paper grain) that
    # survives a camera blur which erases the finest band.
    wide_mean = keras.layers.AveragePooling2D(7, strides=1, padding="same", name="wide_mean")(x)
    band = keras.layers.Subtract(name="band_pass")([local_mean, wide_mean])
    band = keras.layers.Rescaling(4.0, name="band_pass_gain")(band)
    x = keras.layers.Concatenate(name="with_high_pass")([x, residual, band])
    # Strided from the first layer (a full-resolution layer before it cost a third of the training time), so the blocks
    # start at 32 x 32 whatever the input size: 3x3 stride 2 at 64 px, a 4x4 stride-4 patchify at 128 px. Either way
    # every pixel of the high-pass residual reaches the stem, and the finer input costs little more.
    stride = max(2, size // 32)
    x = _conv_bn(x, 32, 3 if stride <= 2 else stride, stride, "stem")
    for i, (filters, stride) in enumerate(BLOCKS):
        x = _separable(x, filters, stride, f"block{i}")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="bona_fide")(x)
    return keras.Model(inputs, outputs, name="liveness_minifasnet")


def serving_signature(model: keras.Model, threshold: float, size: int = SIZE):
    """The exported serving_default function; the validation threshold is baked in as a constant."""
    threshold = tf.constant(threshold, tf.float32, name="threshold")

    @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.float32, name="image")])
    def serve(image):
        probability = model(image, training=False)[:, 0]
        return {
            "probability_bona_fide": tf.identity(probability, name="probability_bona_fide"),
            "is_bona_fide": tf.greater_equal(probability, threshold, name="is_bona_fide"),
            "threshold": tf.identity(threshold, name="threshold_out"),
        }

    return serve
