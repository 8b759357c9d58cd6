"""Atomic writes, the metrics.json schema, the trainer's overrides, batch-norm folding and the training benchmark."""

import json

import numpy as np
import pytest

from conftest import run_in_fresh_process
from veid_ml import atomic, metrics, training


def test_interrupted_directory_write_leaves_nothing_behind(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("approved")
    with pytest.raises(RuntimeError):
        with atomic.atomic_dir(target) as staging:
            (staging / "half.txt").write_text("half-written")
            raise RuntimeError("killed mid-export")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert (target / "old.txt").read_text() == "approved"


def test_directory_write_replaces_the_old_one(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old")
    with atomic.atomic_dir(target) as staging:
        (staging / "new.txt").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_metrics_schema_and_deterministic_part():
    doc = metrics.build_metrics(
        "liveness_detection", {"accuracy": 0.991234567}, {"p50": 1.0, "p95": 2.0, "p99": 3.0},
        {"epochs": 3, "batch_size": 64, "learning_rate": 1e-3, "optimizer": "adam", "seed": 42},
        {"train_samples": 10, "validation_samples": 2, "test_samples": 3}, {"tf_deterministic_ops": True})
    for key in ("model_name", "version", "training_date", "framework", "framework_version", "metrics",
                "inference_latency_ms", "training_config", "dataset", "determinism"):
        assert key in doc
    assert doc["framework"] == "tensorflow" and doc["metrics"]["accuracy"] == 0.991235
    det = metrics.deterministic_part(doc)
    assert "training_date" not in det and "inference_latency_ms" not in det and det["metrics"] == doc["metrics"]


def test_binary_metrics_are_real():
    m = metrics.binary_metrics([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9], threshold=0.5)
    assert m["accuracy"] == 0.5 and m["precision"] == 0.5 and m["recall"] == 0.5 and m["auc_roc"] == 0.75
    eer, _ = metrics.equal_error_rate([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    assert eer == 0.0


def test_overrides_are_typed_and_checked():
    cfg = training.parse_overrides(["epochs=3", "learning_rate=0.01", "optimizer=sgd"],
                                   {"epochs": 10, "learning_rate": 1e-3, "optimizer": "adam"})
    assert cfg == {"epochs": 3, "learning_rate": 0.01, "optimizer": "sgd"}
    with pytest.raises(SystemExit, match="key one of"):
        training.parse_overrides(["epoch=3"], {"epochs": 10})
    with pytest.raises(SystemExit, match="not a valid int"):
        training.parse_overrides(["epochs=many"], {"epochs": 10})


def test_fresh_process_latency_names_a_model_it_cannot_load(tmp_path):
    import numpy as np

    with pytest.raises(RuntimeError, match="latency measurement of .*nowhere failed"):
        metrics.latency_ms_fresh_process(tmp_path / "nowhere", "serving_default",
                                         {"image": np.zeros((1, 4), np.float32)})


def fold_a_model_with_three_batch_norms() -> dict:
    """Run in a fresh process: a model with BatchNorms folded with and without a ReLU, and one left as it is."""
    import keras
    import numpy as np

    from veid_ml.fold_batchnorm import fold_batch_norms

    rng = np.random.default_rng(0)
    x = inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", use_bias=False)(x)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))  # folded, ReLU fused in
    x = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=True)(x)
    x = keras.layers.BatchNormalization()(x)  # folded, no ReLU after it
    branch = keras.layers.Conv2D(8, 1)(x)
    kept = keras.layers.BatchNormalization()(branch)  # its conv feeds two layers: left as it is
    x = keras.layers.Add()([branch, keras.layers.ReLU(max_value=6.0)(kept)])
    out = keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inp, out)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            for w in layer.weights:
                w.assign(rng.uniform(0.5, 1.5, w.shape).astype("float32"))
    images = rng.random((4, 16, 16, 3)).astype("float32")
    before = model(images, training=False).numpy()
    folded = fold_batch_norms(model)
    after = folded(images, training=False).numpy()

    def batch_norms(m):
        return sum(isinstance(layer, keras.layers.BatchNormalization) for layer in m.layers)

    return {"err": float(np.abs(after - before).max() / np.abs(before).max()),
            "bn_before": batch_norms(model), "bn_after": batch_norms(folded),
            "relu_convs": sum(getattr(layer, "activation", None) is keras.activations.relu for layer in folded.layers),
            "same_again": bool(np.array_equal(model(images, training=False).numpy(), before))}


def test_batchnorm_folding_keeps_the_outputs_and_leaves_no_batchnorm():
    result = run_in_fresh_process(fold_a_model_with_three_batch_norms)
    assert result["err"] < 1e-5, result
    assert (result["bn_before"], result["bn_after"], result["relu_convs"]) == (3, 1, 1), result
    assert result["same_again"], result  # the trained model itself is untouched


def test_training_benchmark_compares_each_run_with_the_lock(monkeypatch, capsys):
    """`veid-ml bench training`'s helper: a run whose bytes equal the approved ones says so; a changed byte is named."""
    import shutil

    from veid_ml import hashing, registry
    from veid_ml.tools import bench as benchmark

    spec = registry.get("ocr_extraction")
    tamper = {"on": False}

    def fake_run(spec_, profile, out_dir):  # stands in for the ~13-minute spec command: copies the approved files
        for artifact in (spec_.artifact, hashing.float_artifact(spec_.artifact)):  # the graph and its float twin
            if (spec_.weights_dir / artifact).is_dir():
                shutil.copy(spec_.weights_dir / f"{artifact}_frozen.pb", out_dir / f"{artifact}_frozen.pb")
                shutil.copytree(spec_.weights_dir / artifact, out_dir / artifact)
        shutil.copy(spec_.weights_dir / "metrics.json", out_dir / "metrics.json")
        if tamper["on"]:
            with open(out_dir / f"{spec_.artifact}_frozen.pb", "ab") as f:
                f.write(b"\0")
        return 1.0

    monkeypatch.setattr(benchmark, "_run_once", fake_run)
    assert benchmark.time_spec_training(spec.name, 1)[0]["matches_lock"]
    tamper["on"] = True
    assert not benchmark.time_spec_training(spec.name, 1)[0]["matches_lock"]
    out = capsys.readouterr().out
    assert "bytes identical to the approved lock" in out
    assert f"DIFFERS from the lock: ['changed: {spec.artifact}_frozen.pb']" in out
    with pytest.raises(ValueError, match="runs must be >= 1"):
        benchmark.time_spec_training(spec.name, 0)


def test_metrics_json_is_strict_json(tmp_path):
    """A metric that cannot be computed (no look-alike pairs in a user's data) is written as null, never NaN."""
    doc = metrics.round_floats({"rate": float("nan"), "ratio": np.float32("inf"), "ok": np.float64(0.5)})
    assert doc == {"rate": None, "ratio": None, "ok": 0.5}
    metrics.write_metrics(tmp_path / "metrics.json", doc)
    json.loads((tmp_path / "metrics.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in metrics.json"))
