"""metrics.json in the spec's schema, shared metric helpers, latency measurement and ROC/DET plots.

Fields split in two: the deterministic part (metrics, training_config, dataset sizes and content hashes, determinism)
must be identical on every machine that re-trains the model; the rest (training_date, inference_latency_ms and
anything listed in "non_deterministic_fields") depends on when and where it ran. `deterministic_part()` returns the
comparable half.
"""

import datetime
import json
import time
from pathlib import Path

import numpy as np
from sklearn import metrics as skm

from veid_ml import __version__
from veid_ml.atomic import write_bytes_atomic, write_text_atomic

NON_DETERMINISTIC_FIELDS = ("training_date", "metrics_date", "inference_latency_ms", "timing",
                            "non_deterministic_fields", "real_data", "float_inference_latency_ms")
HEADLINE = ("accuracy", "precision", "recall", "f1_score", "auc_roc")  # the spec's metrics
MAX_INTEGER_LOSS_POINTS = 0.3  # an integer graph may lose at most this much of any headline metric (issue 21)


def round_floats(x):
    """Round floats for the JSON (6 significant decimals); the values themselves are bit-exact across machines."""
    if isinstance(x, dict):
        return {k: round_floats(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [round_floats(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return round(float(x), 6) if np.isfinite(x) else None  # metrics.json is strict JSON: no NaN or Infinity
    if isinstance(x, np.integer):
        return int(x)
    return x


def utc_now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_metrics(model_name: str, metrics: dict, latency_ms: dict, training_config: dict, dataset: dict,
                  determinism: dict, timing: dict | None = None, training_date: str | None = None, **extra) -> dict:
    """metrics.json's document; training_date defaults to now (a re-evaluation passes the model's own)."""
    import tensorflow as tf

    doc = {
        "model_name": model_name,
        "version": __version__,
        "training_date": training_date or utc_now(),
        "metrics_date": extra.pop("metrics_date", None) or training_date or utc_now(),  # when metrics were measured
        "framework": "tensorflow",
        "framework_version": tf.__version__,
        "metrics": metrics,
        "inference_latency_ms": latency_ms,
        "training_config": training_config,
        "dataset": dataset,
        "determinism": determinism,
    }
    if timing:
        doc["timing"] = timing
    doc.update(extra)
    doc["non_deterministic_fields"] = list(NON_DETERMINISTIC_FIELDS)
    return round_floats(doc)


def integer_comparison(integer: dict, floating: dict, integer_latency: dict, float_latency: dict, info: dict,
                       float_artifact: str) -> dict:
    """metrics.json fields comparing the integer consensus graph (the artifact) with its float twin: the float
    metrics, the difference of every shared numeric metric in points (integer - float), and the latency ratio."""
    deltas = {k: 100.0 * (integer[k] - floating[k]) for k in integer
              if isinstance(integer.get(k), (int, float)) and isinstance(floating.get(k), (int, float))}
    worst = min((deltas[k] for k in HEADLINE if k in deltas), default=0.0)
    ratio = {k: integer_latency[k] / float_latency[k] for k in ("p50", "p95")
             if float_latency.get(k) and integer_latency.get(k)}
    return {"consensus_graph": {"kind": "integer (veid_ml.integer: uint8 in, int32 out, no float op)",
                                "float_artifact": float_artifact,
                                "headline_loss_points": -worst,
                                "within_budget": -worst <= MAX_INTEGER_LOSS_POINTS,
                                "metric_deltas_points": deltas, **info},
            "float_model": {"metrics": floating},
            "float_inference_latency_ms": {**float_latency, "integer_over_float": ratio}}


def write_metrics(path: Path, doc: dict) -> None:
    write_text_atomic(path, json.dumps(doc, indent=2, allow_nan=False) + "\n")


def deterministic_part(doc: dict) -> dict:
    skip = set(doc.get("non_deterministic_fields", NON_DETERMINISTIC_FIELDS))
    return {k: v for k, v in doc.items() if k not in skip}


def binary_metrics(y_true, score, threshold: float) -> dict:
    """The spec's five metrics for a score where higher means positive."""
    y_true = np.asarray(y_true).astype(int)
    y_pred = (np.asarray(score) >= threshold).astype(int)
    return {
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "precision": skm.precision_score(y_true, y_pred, zero_division=0),
        "recall": skm.recall_score(y_true, y_pred, zero_division=0),
        "f1_score": skm.f1_score(y_true, y_pred, zero_division=0),
        "auc_roc": skm.roc_auc_score(y_true, score),
    }


def equal_error_rate(y_true, score) -> tuple[float, float]:
    """(EER, threshold at the EER) from the ROC curve."""
    fpr, tpr, thr = skm.roc_curve(y_true, score)
    fnr = 1.0 - tpr
    i = int(np.nanargmin(np.abs(fnr - fpr)))
    return float((fpr[i] + fnr[i]) / 2.0), float(thr[i])


def tpr_at_fpr(y_true, score, max_fpr: float) -> tuple[float, float]:
    """(best TPR with FPR <= max_fpr, its threshold)."""
    fpr, tpr, thr = skm.roc_curve(y_true, score)
    ok = np.flatnonzero(fpr <= max_fpr)
    i = ok[np.argmax(tpr[ok])]
    return float(tpr[i]), float(thr[i])


def best_threshold(is_genuine: np.ndarray, similarity: np.ndarray) -> float:
    """The accuracy-maximising threshold, midway between the two scores it separates."""
    order = np.argsort(similarity, kind="stable")
    s, y = similarity[order], is_genuine[order]
    # accept everything from position k on: correct = impostors below k + genuines from k
    correct = np.concatenate([[0], np.cumsum(1 - y)]) + np.concatenate([np.cumsum(y[::-1])[::-1], [0]])
    k = int(np.argmax(correct))
    if k == 0:
        return float(s[0] - 1e-6)
    if k == len(s):
        return float(s[-1] + 1e-6)
    return float((s[k - 1] + s[k]) / 2)


def ten_fold_accuracy(is_genuine: np.ndarray, similarity: np.ndarray, folds: np.ndarray | None = None
                      ) -> tuple[float, np.ndarray]:
    """LFW protocol: each fold is scored with the threshold that is best on the other nine; (mean accuracy, preds).
    folds: the fold (0..9) of each pair; default pair i in fold i % 10."""
    folds = np.arange(len(similarity)) % 10 if folds is None else np.asarray(folds)
    predicted = np.zeros(len(similarity), bool)
    for f in np.unique(folds):
        held = folds == f
        predicted[held] = similarity[held] >= best_threshold(is_genuine[~held], similarity[~held])
    return float(np.mean(fold_accuracies(is_genuine, predicted, folds))), predicted


def fold_accuracies(is_genuine: np.ndarray, predicted: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """The accuracy of each fold's predictions, folds in np.unique order (their spread is the protocol's noise)."""
    return np.array([np.mean(predicted[folds == f] == is_genuine[folds == f]) for f in np.unique(folds)])


def latency_ms(fn, inputs: dict, runs: int = 300, warmup: int = 30) -> dict:
    """p50/p95/p99 wall time of single calls of a loaded signature (what a validator pays per request)."""
    for _ in range(warmup):
        fn(**inputs)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        out = fn(**inputs)
        for v in out.values():
            v.numpy()
        times.append((time.perf_counter() - t) * 1000.0)
    p50, p95, p99 = np.percentile(times, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99)}


def latency_ms_fresh_process(saved_model_dir: Path, key: str, inputs: dict) -> dict:
    """latency_ms of signature `key` of a SavedModel loaded by a new interpreter, as a validator serves it. Inside the
    process that has just trained, the same calls run markedly slower, which is not what a validator pays."""
    import subprocess
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        inputs_path = Path(tmp) / "inputs.npz"
        np.savez(inputs_path, **{name: np.asarray(value) for name, value in inputs.items()})
        args = [str(Path(saved_model_dir).resolve()), str(inputs_path), key]
        proc = subprocess.run([sys.executable, "-m", "veid_ml.metrics", *args],
                              capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"latency measurement of {saved_model_dir} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def latency_in_this_process(saved_model_dir: str, inputs_path: str, key: str) -> dict:
    from veid_ml import determinism, export

    determinism.configure(reexec=False)  # the parent's pinned environment: same threads and ISA as serving
    import tensorflow as tf

    serving = export.load_serving(Path(saved_model_dir), key)
    with np.load(inputs_path) as data:
        inputs = {name: tf.constant(data[name]) for name in data.files}
    return latency_ms(serving, inputs)


def save_curve_plot(path: Path, y_true, score, title: str) -> None:
    """ROC and DET curves side by side, as PNG (matplotlib, no display needed)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_roc, ax_det) = plt.subplots(1, 2, figsize=(10, 4.2))
    skm.RocCurveDisplay.from_predictions(y_true, score, ax=ax_roc, name=title)
    skm.DetCurveDisplay.from_predictions(y_true, score, ax=ax_det, name=title)
    ax_roc.set_title("ROC")
    ax_det.set_title("DET")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    write_bytes_atomic(path, buf.getvalue())


if __name__ == "__main__":  # the fresh process of latency_ms_fresh_process: SAVED_MODEL_DIR INPUTS_NPZ SIGNATURE_KEY
    import sys

    print(json.dumps(latency_in_this_process(*sys.argv[1:])))
