"""Facial verification: the quick training profile end to end, the committed model's behaviour, alignment fallback."""

import json

import numpy as np
import pytest

from conftest import quick_train, run_python
from veid_ml import registry

SPEC = registry.get("facial_verification")
SPEC_METRICS = ("accuracy", "precision", "recall", "f1_score", "auc_roc", "eer", "tar_at_far_1e-3",
                "fnmr_at_fmr_1e-3", "accuracy_at_stored_threshold")


def test_quick_training_exports_a_complete_model(tmp_path):
    doc = quick_train("facial_verification", tmp_path)
    for name in ("facial_model/saved_model.pb", "facial_model_frozen.pb", "manifest.json", "metrics.json",
                 "roc_det.png"):
        assert (tmp_path / name).is_file(), name
    assert set(SPEC_METRICS) <= set(doc["metrics"])
    assert all(0.0 <= doc["metrics"][k] <= 1.0 for k in SPEC_METRICS)
    assert doc["inference_latency_ms"]["p50"] > 0
    assert doc["training_config"]["profile"] == "quick"
    assert -1.0 <= doc["thresholds"]["similarity"] <= 1.0
    assert 0.0 <= doc["metrics"]["accuracy_random_impostors"] <= 1.0  # the LFW-style figure beside the headline


@pytest.mark.skipif(not (SPEC.weights_dir / "facial_model" / "saved_model.pb").is_file(),
                    reason="no committed facial model")
def test_committed_model_scores_genuine_pairs_above_impostors():
    out = run_python(f"""
        from veid_ml import determinism
        determinism.configure(reexec=False)
        import json
        import numpy as np
        import tensorflow as tf
        from veid_ml import export
        from veid_ml.data import faces
        serving = export.load_serving({str(SPEC.weights_dir / "facial_model")!r})
        a = np.stack([faces.face_image("test", i, 0, size=64) for i in range(20)]) / 255.0
        b = np.stack([faces.face_image("test", i, 1, size=64) for i in range(20)]) / 255.0
        f = lambda x, y: serving(image_a=tf.constant(x, tf.float32), image_b=tf.constant(y, tf.float32))
        genuine, impostor = f(a, b), f(a, np.roll(b, 1, axis=0))
        print(json.dumps({{"genuine": genuine["similarity"].numpy().tolist(),
                           "impostor": impostor["similarity"].numpy().tolist(),
                           "genuine_match": genuine["is_match"].numpy().tolist(),
                           "impostor_match": impostor["is_match"].numpy().tolist(),
                           "p_genuine": genuine["match_probability"].numpy().tolist(),
                           "mirrored": f(a, a[:, :, ::-1])["similarity"].numpy().tolist()}}))
    """)
    r = {k: np.array(v) for k, v in json.loads(out).items()}
    assert r["genuine"].mean() > r["impostor"].mean() + 0.3
    assert np.mean(r["genuine"] > r["impostor"]) >= 0.9
    assert r["genuine_match"].mean() >= 0.8 and r["impostor_match"].mean() <= 0.2
    assert np.all((r["p_genuine"] >= 0) & (r["p_genuine"] <= 1))
    assert np.all(r["mirrored"] > 0.9999)  # the embedding averages each face with its mirror image


def test_align_falls_back_to_the_centre_crop_without_a_face():
    out = run_python("""
        from veid_ml import determinism
        determinism.configure(reexec=False)
        import json, warnings
        import numpy as np
        from veid_ml import face_align
        blank = np.full((120, 160, 3), 128, np.uint8)
        blank[:, :20] = 0  # outside the central square: the fallback crop must not include it
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            crop, found = face_align.align(blank, 64)
        print(json.dumps({"found": bool(found), "shape": list(crop.shape), "min": int(crop.min()),
                          "warned": any("no face" in str(w.message) for w in caught)}))
    """)
    r = json.loads(out)
    assert r == {"found": False, "shape": [64, 64, 3], "min": 128, "warned": True}


def test_align_rejects_bad_input():
    from veid_ml import face_align

    with pytest.raises(ValueError, match="uint8"):
        face_align.align(np.zeros((64, 64, 3), np.float32))
    with pytest.raises(ValueError, match="too small"):
        face_align.align(np.zeros((8, 8, 3), np.uint8))


def test_random_impostor_pairs_share_the_genuine_pairs():
    """accuracy_random_impostors differs from the headline only in its impostors: same stream, same genuine pairs."""
    from facial_verification.train import make_pairs
    from veid_ml.data.rng import sample_rng

    labels = np.repeat(np.arange(40), 3)
    families = np.arange(40) // 2  # twenty look-alike pairs
    strict = make_pairs(labels, families, 50, 0.25, sample_rng("facial_pairs", "test", 0, 42))
    lfw = make_pairs(labels, families, 50, 0.0, sample_rng("facial_pairs", "test", 0, 42))
    assert np.array_equal(strict[0][:50], lfw[0][:50]) and np.array_equal(strict[1], lfw[1])
    assert strict[2].sum() == 12 and not lfw[2].any()
    impostors = lfw[0][50:]
    assert np.all(labels[impostors[:, 0]] != labels[impostors[:, 1]])
