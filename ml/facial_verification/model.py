"""The face embedder: dlib's face recognition ResNet (dlib_resnet.py, ported exactly); its 128-d descriptor is the
embedding, compared as dlib compares them, by Euclidean distance (as the score 1 - d^2 / 2, veid_ml.scoring).

Input: dlib's 150 x 150 five-point face chip (veid_ml.alignment.FACE_CHIP), float32 RGB in [0, 1]. The weights are the
file dlib_face_recognition_resnet_model_v1.dat of the PyPI sdist face-recognition-models 0.3.0 (pinned by hash in
ml/requirements-deterministic.txt; Davis King's model, public domain / CC0 1.0: LICENSE-face-recognition-models.txt).
task.py fine-tunes the layers after block 13 on synthetic identities and sets the threshold and match probability.
"""

from pathlib import Path

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
