"""CRNN-style text-line recogniser: a small conv feature extractor, a 1-D conv sequence head and CTC.

A line crop (32 x 512 grey) becomes T = 128 time steps (4 px each); every step predicts one of the ALPHABET's
characters or the CTC blank. Why conv-only instead of a BiLSTM: it trains and serves faster with the same accuracy
on these short, left-aligned lines (a receptive field of ~25 steps covers several characters of context either side;
the comparison is in NOTES.md).

Class indices: 0 is the CTC blank, class k >= 1 is ALPHABET[k - 1]. The exported graph decodes greedily itself and
returns indices into ALPHABET (blank already removed), so consumers never see the blank convention.
"""

import keras
import tensorflow as tf
from keras import layers

from veid_ml.ocr_contract import ALPHABET, LINE_HEIGHT, LINE_WIDTH

HEIGHT, WIDTH = LINE_HEIGHT, LINE_WIDTH
TIME_STEPS = WIDTH // 4
NUM_CLASSES = len(ALPHABET) + 1  # + the CTC blank at index 0


def conv_block(x, filters: int, pool):
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
    x = layers.MaxPooling2D(pool)(x)  # before BN and ReLU: they then touch a quarter/half of the pixels
    return layers.ReLU()(layers.BatchNormalization()(x))


def build_model(width: int = 128) -> keras.Model:
    """Logits [batch, TIME_STEPS, NUM_CLASSES] from standardised line crops [batch, 32, 512, 1]."""
    inputs = keras.Input((HEIGHT, WIDTH, 1), name="line")
    x = layers.Conv2D(16, 3, strides=2, padding="same", use_bias=False)(inputs)  # 16 x 256: strided, the cheap way
    x = layers.ReLU()(layers.BatchNormalization()(x))
    x = conv_block(x, 32, (2, 2))  # 8 x 128: one column per time step from here on
    x = conv_block(x, 64, (2, 1))  # 4 x 128
    x = conv_block(x, 96, (2, 1))  # 2 x 128
    x = layers.Permute((2, 1, 3))(x)  # width becomes time
    x = layers.Reshape((TIME_STEPS, 2 * 96))(x)
    x = layers.Dense(width, activation="relu")(x)
    for dilation in (1, 2):  # sequence context along the line
        shortcut = x
        x = layers.Conv1D(width, 5, padding="same", dilation_rate=dilation, use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.ReLU()(x) + shortcut
    logits = layers.Dense(NUM_CLASSES, name="logits")(x)
    return keras.Model(inputs, logits, name="crnn_ctc")


def standardise(images):
    """Per-line zero mean, unit variance: removes exposure, paper tone and ink contrast before the network."""
    return tf.image.per_image_standardization(images)


def encode_texts(texts: list[str], max_len: int):
    """(labels int32 [N, max_len] zero-padded, lengths int32 [N]) with class k >= 1 for ALPHABET[k - 1]."""
    import numpy as np

    index = {c: i + 1 for i, c in enumerate(ALPHABET)}
    labels = np.zeros((len(texts), max_len), np.int32)
    lengths = np.zeros(len(texts), np.int32)
    for row, text in enumerate(texts):
        unknown = set(text) - set(index)
        if unknown:
            raise ValueError(f"text {text!r} has characters outside the OCR alphabet: {sorted(unknown)}")
        if len(text) > max_len:
            raise ValueError(f"text {text!r} is longer than {max_len} characters")
        labels[row, : len(text)] = [index[c] for c in text]
        lengths[row] = len(text)
    return labels, lengths


def ctc_loss(labels, label_lengths, logits):
    """Mean CTC loss; dense zero-padded labels go in as a SparseTensor so the (deterministic) CTCLoss kernel runs."""
    sparse = tf.sparse.from_dense(labels)  # padding is 0, which is also the blank: never a real label
    logit_lengths = tf.fill([tf.shape(logits)[0]], TIME_STEPS)
    loss = tf.nn.ctc_loss(sparse, logits, label_length=None, logit_length=logit_lengths, logits_time_major=False,
                          blank_index=0)
    return tf.reduce_mean(loss / tf.cast(tf.maximum(label_lengths, 1), tf.float32))


def greedy_decode(logits):
    """Best path: argmax per step, merge repeats, drop blanks; dense outputs padded with -1 (C-API friendly).

    Returns (labels int32 [N, T] indices into ALPHABET, lengths int32 [N], char_confidences float32 [N, T]: the
    softmax probability of each decoded character's best step, 0 in the padding).
    """
    probs = tf.nn.softmax(logits, axis=-1)
    best = tf.argmax(logits, axis=-1, output_type=tf.int32)
    return decode_best_path(best, tf.reduce_max(probs, axis=-1), 0.0)


def decode_best_path(best, confidence, padding):
    """(labels, lengths, char_confidences) from the best class per step and its confidence: merge repeats, drop
    blanks, kept steps first in time order, -1 / `padding` after them."""
    previous = tf.pad(best[:, :-1], [[0, 0], [1, 0]], constant_values=-1)
    keep = (best != 0) & (best != previous)
    order = tf.argsort(tf.cast(~keep, tf.int32), axis=1, stable=True)  # kept steps first, in time order
    lengths = tf.reduce_sum(tf.cast(keep, tf.int32), axis=1)
    valid = tf.range(tf.shape(best)[1])[None, :] < lengths[:, None]
    labels = tf.where(valid, tf.gather(best, order, batch_dims=1) - 1, -1)
    char_confidences = tf.where(valid, tf.gather(confidence, order, batch_dims=1), padding)
    return labels, lengths, char_confidences


def labels_to_text(labels):
    """Strings [N] from decoded labels (-1 padding ignored)."""
    chars = tf.constant(list(ALPHABET))
    picked = tf.where(labels >= 0, tf.gather(chars, tf.maximum(labels, 0)), "")
    return tf.strings.reduce_join(picked, axis=1)


def serving_signature(model: keras.Model):
    """serving_default: "image" float32 [None, 32, 512, 1] grey in [0, 1] (text dark or light, left-aligned line crop
    scaled to 32 px height, right-padded with background) -> labels, lengths, char_confidences, text, logits and the
    alphabet (a scalar string: labels index into it)."""

    @tf.function(input_signature=[tf.TensorSpec([None, HEIGHT, WIDTH, 1], tf.float32, name="image")])
    def serve(image):
        logits = model(standardise(image), training=False)
        labels, lengths, char_confidences = greedy_decode(logits)
        return {"labels": labels, "lengths": lengths, "char_confidences": char_confidences,
                "text": labels_to_text(labels), "logits": logits, "alphabet": tf.constant(ALPHABET)}

    return serve


INTEGER_BITS, WEIGHT_BITS = 10, 10  # the integer graph's activation and weight widths (metrics.json consensus_graph)


def integer_program(model: keras.Model, calibration):
    """The recogniser compiled to integer ops (veid_ml.integer) behind an integer per-image standardisation,
    calibrated on `calibration` (uint8 lines [N, 32, 512, 1]); BatchNorms after a convolution folded first."""
    from veid_ml import integer
    from veid_ml.fold_batchnorm import fold_batch_norms

    return integer.compile_model(fold_batch_norms(model), calibration, activation_bits=INTEGER_BITS,
                                 weight_bits=WEIGHT_BITS, output_bits=16,
                                 input_transform=integer.standardize_input())


def integer_signature(program):
    """The governed serving_default: "image" uint8 [None, 32, 512, 1] (the line crop, grey 0..255) -> "labels",
    "lengths" and "text" as the float twin's, "char_confidences_bp" int32 [N, T] (each decoded character's softmax
    probability in bp, 0 in the padding), "alphabet", and "logits_q" int32 [N, T, 1 + len(alphabet)] (class 0 the
    CTC blank; real logit = q * float("logit_scale"), a decimal string) for decoders that know what a line must hold
    (veid_ml.mrz_decode: integer sums of logits, the same on every CPU). Greedy decoding by integer argmax, ties to
    the lowest class."""
    from veid_ml import integer

    @tf.function(input_signature=[tf.TensorSpec([None, HEIGHT, WIDTH, 1], tf.uint8, name="image")])
    def serve(image):
        logits = program(tf, image)
        best = integer.argmax_lowest(tf, logits)
        confidence = integer.softmax_max_bp(tf, logits, program.output_scale)
        labels, lengths, char_confidences = decode_best_path(best, confidence, 0)
        return {"labels": labels, "lengths": lengths, "char_confidences_bp": char_confidences,
                "text": labels_to_text(labels), "alphabet": tf.constant(ALPHABET), "logits_q": logits,
                "logit_scale": tf.constant(repr(float(program.output_scale)))}

    return serve
