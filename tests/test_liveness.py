"""Liveness model: threshold rule, quick end-to-end training, and the committed model's ranking of live vs. attacks."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from liveness_detection.train import apcer_per_species, threshold_for_apcer
from conftest import quick_train, run_python
from veid_ml import registry

SPEC = registry.get("liveness_detection")
METRIC_KEYS = {"accuracy", "precision", "recall", "f1_score", "auc_roc", "apcer", "apcer_max", "bpcer", "acer", "eer",
               "bpcer_at_apcer_1pct"}


def test_threshold_keeps_every_species_under_the_apcer_target_with_least_bpcer():
    rng = np.random.default_rng(0)
    live = np.array([1] * 200 + [0] * 600)
    species = [""] * 200 + ["print"] * 300 + ["replay"] * 300
    score = np.concatenate([rng.uniform(0.3, 1, 200), rng.uniform(0, 0.5, 300), rng.uniform(0, 0.8, 300)])
    score = score.astype(np.float32)
    t = threshold_for_apcer(live, species, score, 0.01)
    apcer = apcer_per_species(live, species, score, t)
    assert set(apcer) == {"print", "replay"} and max(apcer.values()) <= 0.01
    below = np.nextafter(t, np.float32(0))  # any lower threshold breaks the target for some species
    assert max(apcer_per_species(live, species, score, below).values()) > 0.01


def test_training_stream_is_each_epochs_shuffled_mirrored_batches_in_turn():
    out = run_python("""
        import json
        from veid_ml import determinism
        determinism.configure(reexec=False)
        import numpy as np
        from liveness_detection.train import epoch_order, training_batches
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (10, 4, 5, 3), dtype=np.uint8)
        live = rng.integers(0, 2, 10).astype(np.int32)
        stream = [(x.numpy(), y.numpy()) for x, y in training_batches(images, live, 2, 42, 4)]
        expected = []
        for epoch in range(2):  # batches of 4, 4 and 2 per epoch: a short batch ends each epoch
            order, mirror = epoch_order(10, epoch, 42)
            x = images[order]
            x[mirror] = x[mirror][:, :, ::-1]
            expected += [(x[s:s + 4] / np.float32(255), live[order][s:s + 4]) for s in range(0, 10, 4)]
        same = len(stream) == len(expected) and all(
            np.array_equal(a, c) and np.array_equal(b, d) for (a, b), (c, d) in zip(stream, expected))
        mirrored = sum(int(m.sum()) for m in (epoch_order(10, e, 42)[1] for e in range(2)))
        print(json.dumps({"same": same, "batches": len(stream), "mirrored": mirrored,
                          "epochs_differ": not np.array_equal(epoch_order(10, 0, 42)[0], epoch_order(10, 1, 42)[0])}))
    """)
    result = json.loads(out)
    assert result["same"] and result["batches"] == 6 and result["epochs_differ"], result
    assert 0 < result["mirrored"] < 20, result  # some images of the two epochs are mirrored, not all


def test_band_pass_stem_is_the_fixed_filters_then_the_learnt_patch_convolution():
    out = run_python("""
        import json
        from veid_ml import determinism
        determinism.configure(reexec=False)
        import keras, numpy as np, tensorflow as tf
        from liveness_detection.model import band_filters, build_model
        from veid_ml.fold_batchnorm import fold_batch_norms
        result = {}
        for size in (128, 32):  # patch 4 (10x10 kernel) and patch 2 (8x8)
            model = build_model(size, 0.0)
            stem = model.get_layer("stem_conv")
            x = np.random.default_rng(size).uniform(-1, 1, (2, size, size, 3)).astype("float32")
            bands = tf.nn.conv2d(x, band_filters(), 1, "SAME")  # zero beyond the edge, as the composed kernel sees it
            expected = tf.nn.conv2d(bands, stem.patch_kernel, stem.strides[0], "VALID").numpy()
            got = stem(x).numpy()
            folded = fold_batch_norms(model).get_layer("stem_conv")
            result[size] = {"err": float(np.abs(got - expected).max() / np.abs(expected).max()),
                            "shape": list(got.shape), "trainable": [v.name for v in stem.trainable_variables],
                            "folded": [type(folded).__name__, list(folded.kernel.shape)]}
        print(json.dumps(result))
    """)
    result = json.loads(out)
    assert result["128"]["shape"] == [2, 32, 32, 32] and result["32"]["shape"] == [2, 16, 16, 32], result
    for size, kernel in (("128", 10), ("32", 8)):
        assert result[size]["err"] < 1e-5, result
        assert result[size]["trainable"] == ["patch_kernel"], result  # the band filters stay fixed
        assert result[size]["folded"] == ["Conv2D", [kernel, kernel, 3, 32]], result  # exported as a plain conv


def test_quick_training_end_to_end(tmp_path):
    doc = quick_train("liveness_detection", tmp_path, timeout=300)
    for name in ("liveness_model/saved_model.pb", "liveness_model_frozen.pb", "manifest.json", "metrics.json",
                 "roc_det.png"):
        assert (tmp_path / name).is_file(), name
    assert METRIC_KEYS <= set(doc["metrics"])
    assert set(doc["metrics"]["apcer"]) == {"print", "replay", "cutout"}
    assert 0.0 <= doc["threshold"] <= 1.0
    assert doc["training_config"]["profile"] == "quick"


SCORE_COMMITTED = """
import json, sys
from pathlib import Path
import numpy as np
from veid_ml import determinism
determinism.configure(reexec=False)
import tensorflow as tf
from veid_ml import export
from veid_ml.data.attacks import SPECIES, liveness_sample
serve = export.load_serving(sys.argv[1])
size = serve.structured_input_signature[1]["image"].shape[1]
metrics = json.loads((Path(sys.argv[1]).parent / "metrics.json").read_text())
capture_scale = metrics["training_config"]["capture_scale"]  # the capture the model was trained on
crop_downscale = metrics["training_config"].get("eval_crop_downscale", 1.0)  # and the test split's camera
groups = {}
for i in range(400):  # held-out test identities; first 16 samples of each class
    img, live, species = liveness_sample(i, "test", 42, size, capture_scale, crop_downscale)
    group = "bona_fide" if live else SPECIES[species]
    if len(groups.setdefault(group, [])) < 16:
        groups[group].append(img)
out = {}
for group, imgs in groups.items():
    res = serve(image=tf.constant(np.stack(imgs).astype(np.float32) / 255.0))
    prob = res["probability_bona_fide"].numpy()
    consistent = bool(np.array_equal(res["is_bona_fide"].numpy(), prob >= res["threshold"].numpy()))
    out[group] = {"mean": float(prob.mean()), "n": len(imgs), "consistent": consistent}
print(json.dumps(out))
"""


def test_committed_model_scores_bona_fide_above_every_attack_species():
    # a fresh process: determinism.configure must run before TensorFlow, which other tests may have imported
    proc = subprocess.run([sys.executable, "-c", SCORE_COMMITTED, str(SPEC.weights_dir / SPEC.artifact)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    groups = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(groups) == {"bona_fide", "print", "replay", "cutout"}
    assert all(g["n"] == 16 and g["consistent"] for g in groups.values()), groups
    for species in ("print", "replay", "cutout"):
        assert groups["bona_fide"]["mean"] > groups[species]["mean"] + 0.5, groups


@pytest.mark.parametrize("layout", ["no_spoof", "empty_species"])
def test_data_dir_with_a_bad_layout_is_a_clear_error(tmp_path, layout):
    from liveness_detection.train import load_split

    from PIL import Image

    (tmp_path / "live").mkdir()
    (tmp_path / "spoof").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "live" / "a.png")
    if layout == "empty_species":
        (tmp_path / "spoof" / "print").mkdir()
    with pytest.raises(ValueError, match="spoof"):
        load_split("train", {"image_size": 64, "seed": 42}, Path(tmp_path))
