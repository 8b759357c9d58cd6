"""A MiniFASNet-style CNN: a strided stem over the image and fixed band-pass copies of it, depthwise-separable blocks
-> P(bona fide).

Presentation attacks differ from live faces in fine local texture (halftone dots, a screen's pixel grid and its moiré,
paper grain and edges), so the stem reads two fixed band-pass copies of the image next to it (composed with its learnt
kernel into one convolution), and the rest is four cheap depthwise-separable blocks that widen as the image shrinks:
few ops, because at batch 1 each op's fixed cost, not its arithmetic, sets the latency.

Serving contract of the governed (integer, veid_ml.integer) graph liveness_model, signature "serving_default":
    input  "image"                    uint8 [None, SIZE, SIZE, 3], RGB, the face crop (veid_ml.alignment.LIVENESS_CHIP)
    output "probability_bona_fide_bp" int32 [None]  P(live face) in basis points (0..10000)
           "is_bona_fide"             bool  [None]  probability_bona_fide_bp >= threshold_bp
           "threshold_bp"             int32 []      decision threshold chosen on the integer graph's validation scores
The float twin liveness_float (training-time evaluation and research), signature "serving_default":
    input  "image"                 float32 [None, SIZE, SIZE, 3], RGB in [0, 1], face roughly centred and filling
                                   most of the frame (grayscale photos: repeat the channel three times)
    output "probability_bona_fide" float32 [None]  P(live face)
           "is_bona_fide"          bool    [None]  probability_bona_fide >= threshold
           "threshold"             float32 []      decision threshold chosen on validation data
"""

import keras
import numpy as np
import tensorflow as tf

SIZE = 128
# (output channels, stride) of the depthwise-separable blocks after the stem; each block after the first halves the map,
# with no stride-1 repeat: single-image latency is mostly a fixed cost per op, even for a small depthwise convolution.
BLOCKS = ((64, 1), (96, 2), (160, 2), (256, 2))


def band_filters() -> np.ndarray:
    """(7, 7, 3, 9) fixed filters: per RGB channel the image itself, a high-pass residual (image minus its 3x3 mean,
    gain 8: the finest medium texture without the face's shading) and a band (3x3 mean minus 7x7 mean, gain 4:
    moire beats, coarse halftone and paper grain that survive a camera blur which erases the finest band)."""
    delta = np.zeros((7, 7), np.float32)
    delta[3, 3] = 1.0
    mean3 = np.zeros((7, 7), np.float32)
    mean3[2:5, 2:5] = 1.0 / 9.0
    mean7 = np.full((7, 7), 1.0 / 49.0, np.float32)
    bank = np.zeros((7, 7, 3, 9), np.float32)
    for c in range(3):
        bank[:, :, c, c] = delta
        bank[:, :, c, 3 + c] = 8.0 * (delta - mean3)
        bank[:, :, c, 6 + c] = 4.0 * (mean3 - mean7)
    return bank


class BandPassStem(keras.layers.Conv2D):
    """A learnt patch x patch, stride-`patch` convolution over the image and its fixed band-pass copies (band_filters),
    run as ONE (patch + 6)-sized convolution of the image: the fixed filters and the learnt kernel compose into it.

    One convolution instead of two pooling passes, a concatenation and a convolution at full resolution: the same
    model class (borders aside: the filters see zeros beyond the image edge), and a plain Conv2D to export.
    """

    def __init__(self, filters, patch: int = 4, **kwargs):
        strides = kwargs.pop("strides", patch)  # from_config passes a Conv2D's config: the patch is its stride
        patch = strides[0] if isinstance(strides, (tuple, list)) else strides
        kwargs.update(kernel_size=patch + 6, strides=patch, padding="same", use_bias=False)
        super().__init__(filters, **kwargs)

    def build(self, input_shape):
        if input_shape[-1] != 3:
            raise ValueError(f"BandPassStem needs RGB input, got {input_shape[-1]} channels")
        patch = self.strides[0]
        self._bank = band_filters()
        self.patch_kernel = self.add_weight(name="patch_kernel", shape=(patch, patch, 9, self.filters),
                                            initializer=self.kernel_initializer, dtype=self.dtype)
        self.built = True

    @property
    def kernel(self):
        # kernel[i + a, j + b, c, o] = sum_k bank[a, b, c, k] * patch_kernel[i, j, k, o]
        patch = self.strides[0]
        size = patch + 6
        kernel = 0.0
        for i in range(patch):
            for j in range(patch):
                term = keras.ops.einsum("abck,ko->abco", self._bank, self.patch_kernel[i, j])
                kernel = kernel + keras.ops.pad(term, [[i, size - 7 - i], [j, size - 7 - j], [0, 0], [0, 0]])
        return kernel


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
    # Strided from the first layer (a full-resolution layer would be the costliest in training), so the blocks
    # start at 32 x 32 whatever the input size: a 4x4 stride-4 patchify of the image and its band-pass copies at 128
    # px, 2x2 stride 2 at 64 px. Either way every pixel of the fixed high-pass residual reaches the stem.
    x = BandPassStem(32, patch=max(2, size // 32), name="stem_conv")(x)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    for i, (filters, stride) in enumerate(BLOCKS):
        x = _separable(x, filters, stride, f"block{i}")
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(dropout, name="dropout")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="bona_fide")(x)
    return keras.Model(inputs, outputs, name="liveness_minifasnet")


# The integer graph's widths (NOTES.md has the sweep): 10-bit activations and weights, the input affine in 14 bits so
# that the stem provably fits int32 (8-bit weights: replay APCER 1.09% on the test split against the float's 0.78%).
INTEGER_BITS, WEIGHT_BITS, INPUT_BITS = 10, 10, 14
LOGIT_SCALE = 2.0**-10  # the integer graph's logit resolution; the sigmoid is a table over it
LOGIT_BOUND = 16 * 1024  # logits clamped to +-16 (probabilities within 1e-7 of 0 and 1)


def integer_program(model: keras.Model, calibration: np.ndarray):
    """The folded model compiled to integer ops (veid_ml.integer), calibrated on `calibration` (uint8 crops)."""
    from veid_ml import integer

    return integer.compile_model(model, calibration, activation_bits=INTEGER_BITS, weight_bits=WEIGHT_BITS,
                                 input_bits=INPUT_BITS, output_scale=LOGIT_SCALE,
                                 output_bits=LOGIT_BOUND.bit_length() + 1)


def integer_signature(program, threshold_bp: int, size: int = SIZE):
    """The governed serving_default: uint8 crops -> probability in bp through the sigmoid table, integer decision."""
    from veid_ml import integer

    if program.output_activation != "sigmoid":
        raise ValueError(f"the liveness model must end in a sigmoid, not {program.output_activation}")
    table = integer.sigmoid_bp_table(program.output_scale, LOGIT_BOUND)
    threshold = tf.constant(threshold_bp, tf.int32)

    @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8, name="image")])
    def serve(image):
        probability = integer.lookup(tf, table, program(tf, image)[:, 0], LOGIT_BOUND)
        return {"probability_bona_fide_bp": tf.identity(probability, name="probability_bona_fide_bp"),
                "is_bona_fide": tf.greater_equal(probability, threshold, name="is_bona_fide"),
                "threshold_bp": tf.identity(threshold, name="threshold_bp")}

    return serve


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
