"""Face embedding CNN and its CosFace training head.

The embedder maps a 64x64 RGB face crop (float32 in [0, 1], aligned like veid_ml.alignment's crops), seen as
standardised grayscale, to an L2-normalised 128-d vector; two faces are the same person when the cosine of their
embeddings is high. It is a plain VGG-style stack (3x3 convs, max-pooling) ending in a flattened 4x4 map, so the
embedding keeps where features are (global average pooling would throw away the face's geometry, which is most of what
identifies a synthetic face).
Training adds a cosine classifier over the training identities with an additive margin (CosFace, Wang et al. 2018):
    loss = softmax-CE(scale * (cos(theta_y) - margin), others: scale * cos(theta_j))
which pulls each identity's views together and pushes identities apart on the sphere. The head is discarded at export.
"""

import keras
import tensorflow as tf

INPUT_SIZE = 64
EMBEDDING_DIM = 128
COSFACE_SCALE = 30.0


class GrayStandardize(keras.layers.Layer):
    """RGB -> luma, then zero mean and unit variance per image: exposure, contrast and white balance carry no identity,
    and real enrolment photos (and benchmarks such as Yale) are often grayscale."""

    def call(self, image):
        gray = tf.reduce_sum(image * tf.constant([0.299, 0.587, 0.114]), axis=-1, keepdims=True)
        mean, var = tf.nn.moments(gray, axes=[1, 2, 3], keepdims=True)
        return (gray - mean) * tf.math.rsqrt(var + 1e-4)


def _conv(x, filters, name, strides=1):
    x = keras.layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = keras.layers.BatchNormalization(name=f"{name}_bn")(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def embed_mirror_averaged(embedder: keras.Model, image: tf.Tensor) -> tf.Tensor:
    """The unit mean of the embeddings of each face and of its mirror image, in one pass. Training mirrors half the
    views, so both are valid readings of one face; averaging them cancels part of each reading's error (test-time
    augmentation, as in ArcFace's evaluation). This is THE embedding: validation, export and evaluation all use it."""
    n = tf.shape(image)[0]
    both = embedder(tf.concat([image, tf.reverse(image, axis=[2])], axis=0), training=False)
    return tf.math.l2_normalize(both[:n] + both[n:], axis=1)


def build_embedder(width: int = 16, size: int = INPUT_SIZE) -> keras.Model:
    """Face image (N, size, size, 3) in [0, 1] -> unit embedding (N, 128); size is a multiple of 16. Channels grow
    fast where the map is small, where they are cheap: 16 at size/2, 3 * width at size/4, 6 * width at size/8."""
    if size % 16:
        raise ValueError(f"the embedder's input size must be a multiple of 16, got {size}")
    image = keras.Input((size, size, 3), name="image")
    x = GrayStandardize(name="gray_standardize")(image)
    x = _conv(x, 16, "stem", strides=2)  # size / 2
    x = _conv(x, 16, "b1")
    x = keras.layers.MaxPooling2D(name="pool1")(x)  # size / 4
    x = _conv(x, 3 * width, "b2a")
    x = _conv(x, 3 * width, "b2b")
    x = keras.layers.MaxPooling2D(name="pool2")(x)  # size / 8
    x = _conv(x, 6 * width, "b3a")
    x = _conv(x, 6 * width, "b3b")
    x = keras.layers.MaxPooling2D(name="pool3")(x)  # size / 16
    x = keras.layers.Flatten(name="flatten")(x)
    x = keras.layers.Dense(EMBEDDING_DIM, use_bias=False, name="embedding_dense")(x)
    x = keras.layers.BatchNormalization(name="embedding_bn")(x)
    embedding = keras.layers.UnitNormalization(name="embedding")(x)
    return keras.Model(image, embedding, name="face_embedder")


class CosineClassifier(keras.layers.Layer):
    """cos(angle) between each embedding and one learned unit vector per training identity."""

    def __init__(self, n_classes: int, **kwargs):
        super().__init__(**kwargs)
        self.n_classes = n_classes

    def build(self, input_shape):
        self.centres = self.add_weight(shape=(input_shape[-1], self.n_classes), initializer="glorot_uniform",
                                       name="centres")

    def call(self, embedding):
        return tf.matmul(embedding, tf.math.l2_normalize(self.centres, axis=0))


def cosface_loss(margin: float):
    """Softmax cross-entropy on scaled cosines, with the margin subtracted from the true identity's cosine."""

    def loss(onehot, cosine):
        logits = COSFACE_SCALE * (cosine - margin * onehot)
        return keras.losses.categorical_crossentropy(onehot, logits, from_logits=True)

    return loss


def build_trainer(embedder: keras.Model, n_classes: int) -> keras.Model:
    """The embedder plus the CosFace head, for training only."""
    cosine = CosineClassifier(n_classes, name="cosface_head")(embedder.output)
    return keras.Model(embedder.input, cosine, name="face_trainer")
