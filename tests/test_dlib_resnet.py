"""dlib's face recognition ResNet ported to Keras (facial_verification/dlib_resnet.py): the pure-Python reader of
dlib's serialization, and the Keras model against the descriptors dlib itself computed (tests/fixtures/dlib_reference,
see its README; dlib is not a project dependency and nothing here imports it).

The model file comes from the face_recognition_models package (the PyPI sdist face-recognition-models 0.3.0). It is
located without importing the package, whose __init__ needs pkg_resources; VEID_DLIB_FACE_MODEL (a path to the .dat)
overrides it. Without either, these tests skip.
"""

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, run_in_fresh_process
from facial_verification import dlib_resnet

REFERENCE = ROOT / "tests" / "fixtures" / "dlib_reference"


@pytest.fixture(scope="module")
def model_path() -> Path:
    path = os.environ.get("VEID_DLIB_FACE_MODEL") or dlib_resnet.installed_model_path()
    if path is None:
        pytest.skip("dlib_face_recognition_resnet_model_v1.dat not found: install the face_recognition_models "
                    "package (pip install --no-deps face_recognition_models-0.3.0.tar.gz) or set "
                    "VEID_DLIB_FACE_MODEL to the file")
    return Path(path)


def test_reader_reads_the_whole_network(model_path):
    assert hashlib.sha256(model_path.read_bytes()).hexdigest() == dlib_resnet.MODEL_SHA256
    net = dlib_resnet.read_network(model_path)
    assert [layer["type"] for layer in net] == [
        "tag_or_skip" if spec[0] in ("tag", "skip") else spec[0] for spec in dlib_resnet.ARCHITECTURE]
    first, conv1, fc, loss = net[0], net[1], net[-2], net[-1]
    assert first["size"] == (150, 150)
    np.testing.assert_allclose(first["mean"], (122.782, 117.001, 104.298), rtol=1e-6)
    assert conv1["filters"].shape == (32, 3, 7, 7) and conv1["filters"].dtype == np.float32
    assert conv1["biases"].shape == (32,) and conv1["stride"] == (2, 2) and conv1["padding"] == (0, 0)
    assert fc["weights"].shape == (256, 128) and fc["biases"] is None
    assert loss["margin"] == np.float32(0.04) and loss["distance_threshold"] == np.float32(0.6)
    convs = [layer for layer in net if layer["type"] == "con"]
    affines = [layer for layer in net if layer["type"] == "affine"]
    assert len(convs) == len(affines) == 29
    assert sum(c["filters"].size + c["biases"].size for c in convs) == 5_574_720  # and every conv has biases
    assert sum(a["gamma"].size + a["beta"].size for a in affines) == 7_104 and fc["weights"].size == 32_768
    assert all(np.isfinite(c["filters"]).all() and np.isfinite(c["biases"]).all() for c in convs)


def test_reader_names_the_problem_and_the_offset(model_path, tmp_path):
    data = model_path.read_bytes()
    truncated = tmp_path / "truncated.dat"
    truncated.write_bytes(data[:1_000_000])
    with pytest.raises(ValueError, match=r"truncated\.dat: offset \d+: truncated: .* needs \d+ bytes"):
        dlib_resnet.read_network(truncated)

    renamed = tmp_path / "renamed.dat"  # "loss_metric_2" -> "loss_metric_9"
    at = data.index(b"loss_metric_2") + len(b"loss_metric_")
    renamed.write_bytes(data[:at] + b"9" + data[at + 1:])
    with pytest.raises(ValueError, match=r"offset 2: unexpected loss version string 'loss_metric_9'"):
        dlib_resnet.read_network(renamed)

    extra = tmp_path / "extra.dat"
    extra.write_bytes(data + b"\0")
    with pytest.raises(ValueError, match="1 bytes left after the network"):
        dlib_resnet.read_network(extra)

    not_dlib = tmp_path / "not_dlib.dat"
    not_dlib.write_bytes(b"PK\x03\x04" + data[4:100])
    with pytest.raises(ValueError, match="offset 0: bad integer control byte 0x50"):
        dlib_resnet.read_network(not_dlib)


def keras_descriptors(path: str, chips: np.ndarray) -> dict:
    """Run in a fresh process: the Keras port, affine folded and not, on the chips as the project feeds images."""
    model = dlib_resnet.build_embedder(path)
    image = chips.astype(np.float32) / 255.0
    return {"folded": model(image, training=False).numpy(),
            "unfolded": dlib_resnet.build_embedder(path, fold_affine=False)(image, training=False).numpy(),
            "input": model.input.name, "layers": [layer.name for layer in model.layers]}


def test_keras_model_gives_dlibs_descriptors(model_path):
    with np.load(REFERENCE / "chips.npz", allow_pickle=False) as f:
        chips = f["chips"]
    reference = np.load(REFERENCE / "descriptors.npy", allow_pickle=False)
    assert chips.shape == (6, 150, 150, 3) and chips.dtype == np.uint8 and reference.shape == (6, 128)
    got = run_in_fresh_process(keras_descriptors, str(model_path), chips)
    for variant in ("folded", "unfolded"):
        assert got[variant].shape == (6, 128) and got[variant].dtype == np.float32
        np.testing.assert_allclose(got[variant], reference, rtol=0, atol=1e-4, err_msg=variant)
    assert got["input"] == "image" and got["layers"][-1] == "descriptor"
    assert not any(name.endswith("_affine") for name in got["layers"])  # folded by default
