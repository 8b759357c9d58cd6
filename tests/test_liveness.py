"""Liveness model: threshold rule, quick end-to-end training, and the committed model's ranking of live vs. attacks."""

import json
from pathlib import Path

import numpy as np
import pytest

from conftest import approved_model_dir, quick_train, run_in_fresh_process
from liveness_detection.task import EPOCH_STREAM, apcer_per_species, epoch_batches, threshold_for_apcer
from veid_ml import training

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


def test_epoch_batches_are_a_shuffled_randomly_mirrored_pass_drawn_from_the_epoch_alone():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (10, 4, 5, 3), dtype=np.uint8)  # no two alike, none symmetric
    data = {"x_train": images.copy(), "y_train": rng.integers(0, 2, 10).astype(np.int32)}
    cfg = {"batch_size": 4}
    which = {}  # image bytes -> (index, mirrored)
    for i, image in enumerate(images):
        which[image.tobytes()], which[image[:, ::-1].tobytes()] = (i, False), (i, True)

    def epoch(number, seed=42):
        return list(epoch_batches(data, cfg, training.epoch_rng(EPOCH_STREAM, number, seed)))

    streams, orders, mirrored = [], [], 0
    for number in range(2):
        batches = epoch(number)
        streams.append(batches)
        assert [len(x) for x, _ in batches] == [4, 4, 2]  # a short batch ends the epoch
        assert all(x.dtype == np.uint8 and y.dtype == np.float32 for x, y in batches)  # scaled in the train step
        drawn = [which[image.tobytes()] for x, _ in batches for image in x]
        order = [i for i, _ in drawn]
        assert sorted(order) == list(range(10))  # every image once per epoch
        assert np.array_equal(np.concatenate([y for _, y in batches]), data["y_train"][order])  # labels follow
        orders.append(order)
        mirrored += sum(m for _, m in drawn)
    assert orders[0] != orders[1]  # each epoch its own order
    assert 0 < mirrored < 20  # some images of the two epochs are mirrored, not all
    assert np.array_equal(data["x_train"], images)  # the training set itself is never flipped
    # a pure function of (epoch, seed): epoch 1 drawn again, after epoch 0 and 1 were, gives the same batches
    again = epoch(1)
    assert len(again) == 3 and all(np.array_equal(a, b) for x, y in zip(streams[1], again) for a, b in zip(x, y))
    assert [which[image.tobytes()][0] for x, _ in epoch(1, seed=7) for image in x] != orders[1]  # the seed counts


def band_pass_stems() -> dict:
    """Run in a fresh process: the stem of models of 128 and 32 px against the band filters then the patch kernel."""
    import tensorflow as tf

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
    return result


def test_band_pass_stem_is_the_fixed_filters_then_the_learnt_patch_convolution():
    result = run_in_fresh_process(band_pass_stems)
    assert result[128]["shape"] == [2, 32, 32, 32] and result[32]["shape"] == [2, 16, 16, 32], result
    for size, kernel in ((128, 10), (32, 8)):
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


def score_test_samples_by_group(model_dir: Path) -> dict:
    """Run in a fresh process: the committed model's mean bona fide probability over the first 16 held-out test
    samples of each class, on the capture and camera it was trained and evaluated with (from its metrics.json)."""
    import tensorflow as tf

    from veid_ml import export
    from veid_ml.data.attacks import SPECIES, liveness_sample

    serve = export.load_serving(model_dir)
    size = serve.structured_input_signature[1]["image"].shape[1]
    config = json.loads((model_dir.parent / "metrics.json").read_text())["training_config"]
    groups = {}
    for i in range(400):
        img, live, species = liveness_sample(i, "test", 42, size, config["capture_scale"],
                                             config.get("eval_crop_downscale", 1.0))
        group = "bona_fide" if live else SPECIES[species]
        if len(groups.setdefault(group, [])) < 16:
            groups[group].append(img)
    out = {}
    for group, imgs in groups.items():
        res = serve(image=tf.constant(np.stack(imgs)))  # the integer consensus graph: uint8 in, basis points out
        prob = res["probability_bona_fide_bp"].numpy() / 10000.0
        consistent = bool(np.array_equal(res["is_bona_fide"].numpy(),
                                         res["probability_bona_fide_bp"].numpy() >= res["threshold_bp"].numpy()))
        out[group] = {"mean": float(prob.mean()), "n": len(imgs), "consistent": consistent}
    return out


def test_committed_model_scores_bona_fide_above_every_attack_species():
    groups = run_in_fresh_process(score_test_samples_by_group, approved_model_dir("liveness_detection"))
    assert set(groups) == {"bona_fide", "print", "replay", "cutout"}
    assert all(g["n"] == 16 and g["consistent"] for g in groups.values()), groups
    for species in ("print", "replay", "cutout"):
        assert groups["bona_fide"]["mean"] > groups[species]["mean"] + 0.5, groups


@pytest.mark.parametrize("layout", ["no_spoof", "empty_species"])
def test_data_dir_with_a_bad_layout_is_a_clear_error(tmp_path, layout):
    from PIL import Image

    from liveness_detection.task import load_split

    (tmp_path / "live").mkdir()
    (tmp_path / "spoof").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "live" / "a.png")
    if layout == "empty_species":
        (tmp_path / "spoof" / "print").mkdir()
    with pytest.raises(ValueError, match="spoof"):
        load_split("train", {"image_size": 64, "seed": 42}, Path(tmp_path))


def test_context_frames_are_pure_functions_with_both_classes():
    """liveness_detection.frames (the crop contract's training frames, issue 23): same index, same pixels; both
    classes and every attack species appear; the face is where the crop contract will look for it."""
    from liveness_detection import frames

    samples = [frames.liveness_frame(i, "val", size=128) for i in range(12)]
    again = frames.liveness_frame(3, "val", size=128)
    assert np.array_equal(samples[3][0], again[0]) and samples[3][1:] == again[1:]
    assert all(s[0].shape == (128, 128, 3) and s[0].dtype == np.uint8 for s in samples)
    assert {s[1] for s in samples} == {0, 1} and {s[2] for s in samples} == {-1, 0, 1, 2}
