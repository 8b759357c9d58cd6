"""The face embedder: dlib's face recognition ResNet (dlib_resnet.py, ported exactly); its 128-d descriptor is the
embedding, compared as dlib compares them, by Euclidean distance (as the score 1 - d^2 / 2, veid_ml.scoring).

Input: dlib's 150 x 150 five-point face chip (veid_ml.alignment.FACE_CHIP), float32 RGB in [0, 1]. The weights are the
file dlib_face_recognition_resnet_model_v1.dat of the PyPI sdist face-recognition-models 0.3.0 (pinned by hash in
ml/requirements-deterministic.txt; Davis King's model, public domain / CC0 1.0: LICENSE-face-recognition-models.txt).
task.py fine-tunes the layers after block 13 on synthetic identities and sets the threshold and match probability.
"""

from pathlib import Path

import numpy as np

from facial_verification import dlib_resnet

INPUT_SIZE = dlib_resnet.INPUT_SIZE
EMBEDDING_DIM = dlib_resnet.DESCRIPTOR_DIM
SDIST = "face-recognition-models==0.3.0"
LICENSE = "CC0-1.0 (public domain dedication; ml/facial_verification/LICENSE-face-recognition-models.txt)"


def weights_file() -> Path:
    """The installed sdist's model file, checked against its known sha256."""
    from veid_ml import hashing

    path = dlib_resnet.installed_model_path()
    if path is None:
        raise RuntimeError(f"{dlib_resnet.MODEL_FILE} not found: install {SDIST} "
                           "(bash scripts/bootstrap.sh installs ml/requirements-deterministic.txt)")
    digest = hashing.file_sha256(path)
    if digest != dlib_resnet.MODEL_SHA256:
        raise RuntimeError(f"{path} has sha256 {digest}, not {dlib_resnet.MODEL_SHA256} ({SDIST}'s file)")
    return path


def pretrained_weights() -> list[dict]:
    """The initial weights for metrics.json and the provenance: file, sha256, license, source."""
    return [{"name": dlib_resnet.MODEL_FILE, "sha256": dlib_resnet.MODEL_SHA256, "license": LICENSE,
             "source": f"{SDIST} sdist (PyPI), face_recognition_models/models/"}]


def build_embedder():
    """Face chip (N, 150, 150, 3) in [0, 1] -> embedding (N, 128): dlib's descriptor."""
    return dlib_resnet.build_embedder(weights_file())


# The integer graph's widths (NOTES.md has the sweep): 10-bit activations, 12-bit weights (int8 weights cost 0.4-0.6
# points of 10-fold accuracy and precision), the input affine in 14 bits so that conv1 provably fits int32.
INTEGER_BITS, WEIGHT_BITS, INPUT_BITS = 10, 12, 14
EMBEDDING_SCALE = 2.0**-14  # the integer graph's embedding is dlib's descriptor in Q14 (veid_ml.scoring)


def integer_program(embedder, calibration: np.ndarray):
    """The embedder compiled to integer ops (veid_ml.integer), calibrated on `calibration` (uint8 chips); its output
    is the descriptor in Q14, clamped to +-2^17 (dlib's components stay far below 1)."""
    from veid_ml import integer

    return integer.compile_model(embedder, calibration, activation_bits=INTEGER_BITS, weight_bits=WEIGHT_BITS,
                                 input_bits=INPUT_BITS, output_scale=EMBEDDING_SCALE, output_bits=18)


def integer_signatures(program, threshold_bp: int, slope: float, size: int) -> dict:
    """The governed graph's signatures: "embed" (uint8 chips -> int32 Q14 embeddings) and "serving_default" (two
    chips -> similarity in bp as veid_ml.scoring.similarity_bp, match probability in bp from a table, decision)."""
    import math

    import tensorflow as tf

    from veid_ml import integer

    one = 1 << 28  # |unit|^2 in Q14 squared
    # match probability of each similarity in bp: sigmoid(slope * (s / 10000 - threshold)), one table entry each
    table = np.array([math.floor(integer.BP / (1.0 + math.exp(-slope * (s - threshold_bp) / integer.BP)) + 0.5)
                      for s in range(integer.BP + 1)], np.int16)
    threshold = tf.constant(threshold_bp, tf.int32)
    image_spec = lambda name: tf.TensorSpec([None, size, size, 3], tf.uint8, name=name)  # noqa: E731

    @tf.function(input_signature=[image_spec("image")])
    def embed(image):
        return {"embedding": program(tf, image)}

    @tf.function(input_signature=[image_spec("image_a"), image_spec("image_b")])
    def verify(image_a, image_b):
        both = tf.cast(program(tf, tf.concat([image_a, image_b], axis=0)), tf.int64)  # one pass, as the pipeline
        n = tf.shape(image_a)[0]
        diff = both[:n] - both[n:]
        sq = tf.reduce_sum(diff * diff, axis=1)
        similarity = tf.cast(tf.clip_by_value(integer.BP - (2 * sq * integer.BP + 2 * one) // (4 * one), 0,
                                              integer.BP), tf.int32)
        return {"similarity_bp": similarity,
                "match_probability_bp": tf.cast(tf.gather(tf.constant(table), similarity), tf.int32),
                "is_match": similarity >= threshold,
                "threshold_bp": tf.fill(tf.shape(similarity), threshold)}

    return {"serving_default": verify, "embed": embed}
