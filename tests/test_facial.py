"""Facial verification: the quick training profile end to end, the committed model's behaviour, the crop of a photo
without a face, and a user's own folder. (The port of dlib's network itself: test_dlib_resnet.py.)"""

import subprocess
import sys

import numpy as np
import pytest

from conftest import approved_model_dir, quick_train, run_in_fresh_process

SPEC_METRICS = ("accuracy", "precision", "recall", "f1_score", "auc_roc", "eer", "tar_at_far_1e-3",
                "fnmr_at_fmr_1e-3", "accuracy_at_stored_threshold")


def test_quick_training_exports_a_complete_model(tmp_path):
    doc = quick_train("facial_verification", tmp_path)
    for name in ("facial_model/saved_model.pb", "facial_model_frozen.pb", "facial_float/saved_model.pb",
                 "facial_float_frozen.pb", "manifest.json", "metrics.json", "roc_det.png"):
        assert (tmp_path / name).is_file(), name
    assert set(SPEC_METRICS) <= set(doc["metrics"])
    assert all(0.0 <= doc["metrics"][k] <= 1.0 for k in SPEC_METRICS)
    assert doc["inference_latency_ms"]["p50"] > 0
    assert doc["training_config"]["profile"] == "quick"
    assert doc["thresholds"]["similarity"] == pytest.approx(1 - 0.6 ** 2 / 2)  # dlib's distance threshold 0.6
    assert 0.0 <= doc["metrics"]["accuracy_random_impostors"] <= 1.0  # the LFW-style figure beside the headline
    [weights] = doc["initial_weights"]
    assert weights["name"] == "dlib_face_recognition_resnet_model_v1.dat" and "CC0" in weights["license"]
    assert doc["dataset"]["train"]["identities"] == 16
    assert doc["consensus_graph"]["float_artifact"] == "facial_float" and doc["float_model"]["metrics"]["accuracy"] > 0


def score_test_pairs(model_dir) -> dict:
    """Run in a fresh process: the committed model's outputs on 40 genuine and impostor synthetic test pairs."""
    import tensorflow as tf

    from veid_ml import alignment, export
    from veid_ml.data import faces

    serving = export.load_serving(model_dir)
    chips, _ = faces.face_chip_dataset("test", 40, 2, 42, alignment.FACE_CHIP, workers=1)
    a, b = chips[0::2], chips[1::2]  # the integer consensus graph takes the uint8 chips

    def pair(x, y):
        return {k: v.numpy() for k, v in serving(image_a=tf.constant(x), image_b=tf.constant(y)).items()}

    genuine, impostor = pair(a, b), pair(a, np.roll(b, 1, axis=0))
    return {"genuine": genuine["similarity_bp"] / 10000.0, "impostor": impostor["similarity_bp"] / 10000.0,
            "threshold": genuine["threshold_bp"] / 10000.0,
            "p": np.concatenate([genuine["match_probability_bp"], impostor["match_probability_bp"]]) / 10000.0,
            "match": np.concatenate([genuine["is_match"], impostor["is_match"]])}


def test_committed_model_scores_genuine_pairs_above_impostors():
    """On synthetic faces, which dlib's network alone separates poorly (NOTES.md): genuine pairs above impostors
    and over the threshold, the threshold dlib's, the probability a logistic through 0.5 there."""
    r = run_in_fresh_process(score_test_pairs, approved_model_dir("facial_verification"))
    assert np.all(r["threshold"] == 0.82)  # 1 - 0.6^2 / 2 in basis points
    assert r["genuine"].mean() > r["impostor"].mean() + 0.1
    assert np.mean(r["genuine"] > r["impostor"]) >= 0.75
    assert np.mean(r["genuine"] >= r["threshold"]) >= 0.6  # measured 0.725 (synthetic views: pose, light, occluders)
    assert np.all((r["p"] >= 0) & (r["p"] <= 1))
    assert np.array_equal(r["p"] >= 0.5, r["match"])  # 0.5 exactly at the threshold
    assert not r["match"].all()  # some impostors fall below it


def crop_a_blank_image() -> dict:
    """Run in a fresh process (the detector runs on TensorFlow): api.crop_largest_faces on a grey image."""
    from veid_ml.api import FACE_CHIP, crop_largest_faces

    blank = np.full((120, 160, 3), 128, np.uint8)
    blank[:, :20] = 0
    crops, found = crop_largest_faces([blank], FACE_CHIP)
    return {"found": found.tolist(), "shape": list(crops.shape), "values": np.unique(crops).tolist()}


def test_real_photo_crops_say_when_there_is_no_face():
    approved_model_dir("face_detection")
    assert run_in_fresh_process(crop_a_blank_image) == {"found": [False], "shape": [1, 150, 150, 3], "values": [128]}


def test_random_impostor_pairs_share_the_genuine_pairs():
    """accuracy_random_impostors differs from the headline only in its impostors: same stream, same genuine pairs."""
    from facial_verification.task import make_pairs
    from veid_ml.data.rng import sample_rng

    labels = np.repeat(np.arange(40), 3)
    families = np.arange(40) // 2  # twenty look-alike pairs
    strict = make_pairs(labels, families, 50, 0.25, sample_rng("facial_pairs", "test", 0, 42))
    lfw = make_pairs(labels, families, 50, 0.0, sample_rng("facial_pairs", "test", 0, 42))
    assert np.array_equal(strict[0][:50], lfw[0][:50]) and np.array_equal(strict[1], lfw[1])
    assert strict[2].sum() == 12 and not lfw[2].any()
    impostors = lfw[0][50:]
    assert np.all(labels[impostors[:, 0]] != labels[impostors[:, 1]])


def test_training_on_a_users_folder_per_person(tmp_path):
    """--data-dir as a new user would use it: one folder per person, split by person; strict JSON (no look-alike
    families in such data, so that rate is null, not NaN)."""
    import json

    from PIL import Image

    from veid_ml import registry
    from veid_ml.data import faces

    root = tmp_path / "people"
    for person in range(12):
        (root / f"person{person:02d}").mkdir(parents=True)
        for view in range(3):
            Image.fromarray(faces.face_image("train", person, view, size=160)).save(
                root / f"person{person:02d}" / f"{view}.png")
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "train.py", "--profile", "quick", "--data-dir", str(root), "--out-dir",
                           str(out), "--set", "val_pairs=10", "--set", "test_pairs=10", "--set",
                           "threshold_rule=validation"],
                          cwd=registry.get("facial_verification").package_dir, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((out / "metrics.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in metrics.json"))
    assert doc["dataset"]["source"] == "data_dir"
    assert doc["dataset"]["train"]["identities"] == 8  # persons 0 and 10 are test, 1 and 11 validation
    assert doc["threshold_rule"] == "best accuracy on the validation pairs"
    assert doc["metrics"]["lookalike_false_match_rate_at_stored_threshold"] is None
    assert "not comparable with the approved model" in proc.stdout


def test_real_photo_figures_are_recorded_beside_the_synthetic_ones(tmp_path):
    """eval-real facial --record: real_data[<folder>] in the model's metrics.json, with the model's digest and the date,
    listed as non-deterministic (measured on data outside the repository), the rest of the file untouched."""
    import json

    from veid_ml import metrics
    from veid_ml.tools.evaluate_real import record_real_data

    (tmp_path / "facial_model").mkdir()
    doc = {"metrics": {"accuracy": 0.9}, "non_deterministic_fields": list(metrics.NON_DETERMINISTIC_FIELDS[:-1])}
    (tmp_path / "metrics.json").write_text(json.dumps(doc))
    (tmp_path / "manifest.json").write_text(json.dumps({"digest": "sha256:abc"}))
    record_real_data(tmp_path / "facial_model", "yalefaces", {"ten_fold_accuracy": 0.98765432, "photos": 164})
    out = json.loads((tmp_path / "metrics.json").read_text())
    assert out["metrics"] == {"accuracy": 0.9}
    assert out["real_data"]["yalefaces"]["ten_fold_accuracy"] == 0.987654
    assert out["real_data"]["yalefaces"]["model_digest"] == "sha256:abc"
    assert "real_data" in out["non_deterministic_fields"] and "real_data" not in metrics.deterministic_part(out)
