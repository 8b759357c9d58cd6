"""The one trainer: every model is trained by `main(name)`, from `veid-ml train` or a model's train.py shim.

Read top to bottom, a run is:
    args -> config (CONFIG, QUICK, --set) -> determinism.configure(seed) -> task.load_data -> task.build
    -> for each epoch: rng = epoch_rng(...); for batch in task.epoch_batches(data, cfg, rng): learner.step(*batch)
    -> task.finish (thresholds on validation data, serving signatures) -> export -> task.evaluate (held-out test,
    through the exported SavedModel) -> metrics.json + provenance.json -> a verdict against the approved lock.

A model is a task module (`ml/<name>/task.py`, found through veid_ml.registry) with this interface:
    CONFIG, QUICK                     the full profile and the quick-profile overrides (config as code)
    EPOCH_STREAM                      name of its per-epoch random stream (see epoch_rng)
    load_data(cfg, data_dir) -> dict  the train and validation splits; data_dir is a user's folder or None
    build(cfg, data) -> Learner       the model and its train step (optimizer, loss); no loop of its own
    epoch_batches(data, cfg, rng)     one epoch's batches, drawn from rng; each is passed as learner.step(*batch)
    finish(learner, cfg, data, data_dir) -> Trained      thresholds/calibration on validation data, signatures
    evaluate(serving, cfg, data_dir) -> Evaluation       held-out test metrics through the exported signatures
Training never touches the lock: approval is a separate act (`veid-ml approve`, veid_ml.governance).
"""

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

from veid_ml import determinism, registry
from veid_ml.data.parallel import Progress
from veid_ml.data.rng import sample_rng


@dataclasses.dataclass
class Learner:
    model: object  # the keras.Model being trained
    step: Callable[..., float]  # one optimisation step on one batch; returns the batch loss
    steps_per_epoch: int
    report: Callable[[], str] | None = None  # extra text for the end-of-epoch line (e.g. a validation score)
    signatures: dict = dataclasses.field(default_factory=dict)  # serving functions already traced, for finish to reuse


@dataclasses.dataclass
class Trained:
    model: object  # keras.Model whose variables the signatures read
    signatures: dict  # signature key -> tf.function with input_signature
    dataset: dict  # sizes and content hashes of the data the model was trained/validated on
    info: dict = dataclasses.field(default_factory=dict)  # deterministic extras for metrics.json (e.g. thresholds)
    # initial weights this model was built from: [{"name": file, "sha256": ..., "license": ..., "source": package}];
    # written into metrics.json ("initial_weights") and the provenance's resolved dependencies
    pretrained: list = dataclasses.field(default_factory=list)
    # the consensus graphs (veid_ml.integer): uint8 in, integers out; exported as the governed artifact, the float
    # signatures beside them (hashing.float_artifact). None: the float graph is the artifact.
    integer_signatures: dict | None = None
    integer_info: dict = dataclasses.field(default_factory=dict)  # the integer export's layer report, bits, tables


@dataclasses.dataclass
class Evaluation:
    metrics: dict  # spec metrics (accuracy, precision, recall, f1_score, auc_roc) + model-specific ones
    latency_inputs: dict  # one single-sample request for the serving_default signature
    curve: tuple | None = None  # (y_true, score, title) for the ROC/DET plot
    info: dict = dataclasses.field(default_factory=dict)  # deterministic extras (test-set sizes, per-class numbers)


def epoch_rng(stream: str | None, epoch: int, seed: int) -> np.random.Generator:
    """The random numbers of one epoch (order, augmentation), a pure function of (stream, epoch, seed): resuming or
    re-running an epoch draws the same batches, whatever ran before. stream None is the plain (seed, epoch) stream
    the OCR model's approved bytes were drawn from; every other model names its stream."""
    if stream is None:
        return np.random.default_rng([seed, epoch])
    return sample_rng(stream, "train", epoch, seed)


def split_indices(n: int, split: str) -> np.ndarray:
    """The --data-dir split rule of every model: item i (an identity for faces, an image or line otherwise) is test
    when i % 10 == 0, validation when i % 10 == 1, training otherwise; the same on every run, no seed involved."""
    which = np.arange(n) % 10
    masks = {"test": which == 0, "val": which == 1, "train": which >= 2}
    if split not in masks:
        raise ValueError(f"unknown split {split!r}; expected one of {sorted(masks)}")
    return np.flatnonzero(masks[split])


def parse_overrides(pairs: list[str], config: dict) -> dict:
    """--set key=value, typed like the default it replaces; unknown keys are an error, not silently ignored."""
    cfg = dict(config)
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or key not in cfg:
            raise SystemExit(f"error: --set {pair!r}: expected key=value with key one of {', '.join(sorted(cfg))}")
        default = cfg[key]
        try:
            cfg[key] = json.loads(raw) if not isinstance(default, str) else raw
            if isinstance(default, bool) != isinstance(cfg[key], bool) or (
                    isinstance(default, (int, float)) and not isinstance(cfg[key], (int, float))):
                raise ValueError
            if isinstance(default, float):
                cfg[key] = float(cfg[key])
        except ValueError:
            raise SystemExit(f"error: --set {pair!r}: {raw!r} is not a valid {type(default).__name__}") from None
    return cfg


def build_parser(name: str) -> argparse.ArgumentParser:
    spec = registry.get(name)
    p = argparse.ArgumentParser(description=f"Train and export the {name} model deterministically on CPU.")
    p.add_argument("--seed", type=int, default=determinism.DEFAULT_SEED,
                   help="global seed (default 42; another seed is recorded in metrics.json and changes the hashes)")
    p.add_argument("--export-format", choices=["savedmodel"], default="savedmodel",
                   help="SavedModel plus frozen graph (the only format: what TF-Serving and the Go package load)")
    p.add_argument("--profile", choices=["full", "quick"], default="full",
                   help="full: the approved model; quick: seconds-long smoke run for tests")
    p.add_argument("--data-dir", type=Path, default=None, help="train on a user's real data instead of synthetic")
    p.add_argument("--out-dir", type=Path, default=spec.candidate_dir,
                   help=f"where the trained model is written (default {spec.candidate_dir}; the approved model in "
                        f"{spec.weights_dir} changes only through `veid-ml approve {name}`)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a CONFIG entry")
    return p


def fit(task, learner: Learner, data: dict, cfg: dict) -> None:
    """THE training loop: one pass per epoch over the task's batches, random numbers from epoch_rng."""
    epochs = cfg["epochs"]
    started = time.perf_counter()
    for epoch in range(epochs):
        epoch_started = time.perf_counter()
        rng = epoch_rng(task.EPOCH_STREAM, epoch, cfg["seed"])
        losses = []
        bar = Progress(learner.steps_per_epoch, f"epoch {epoch + 1}/{epochs}", unit="step", done_line=False)
        for batch in task.epoch_batches(data, cfg, rng):  # the epoch's log line is printed below
            losses.append(float(learner.step(*batch)))
            bar.update(len(losses))
        took = time.perf_counter() - epoch_started
        remaining = (time.perf_counter() - started) / (epoch + 1) * (epochs - epoch - 1)
        extra = f", {learner.report()}" if learner.report else ""
        print(f"epoch {epoch + 1}/{epochs}: loss {np.mean(losses):.4f}{extra}; {took:.0f} s"
              f"{f', about {remaining / 60:.1f} min to go' if remaining else ''}", flush=True)


def main(name: str, argv=None) -> None:
    spec = registry.get(name)
    task = registry.load_task(name)
    args = build_parser(name).parse_args(argv)
    cfg = dict(task.CONFIG)
    if args.profile == "quick":
        cfg.update(task.QUICK)
    cfg = parse_overrides(args.set, cfg)
    if args.data_dir is not None and not args.data_dir.is_dir():
        raise SystemExit(f"error: --data-dir {args.data_dir} is not a directory")
    settings = determinism.configure(args.seed)  # before TensorFlow is imported; may re-exec the interpreter
    cfg["seed"] = args.seed

    from veid_ml import export, governance, hashing, metrics

    source = governance.source_state(name)  # the code as it is now, when it is loaded, not after hours of training
    started_on = metrics.utc_now()
    started = time.perf_counter()
    try:
        data = task.load_data(cfg, args.data_dir)
    except (OSError, ValueError) as e:  # a user's --data-dir folder: say what is wrong with it, no traceback
        raise SystemExit(f"error: {name}: {e}") from None
    learner = task.build(cfg, data)
    fit(task, learner, data, cfg)
    trained = task.finish(learner, cfg, data, args.data_dir)
    train_seconds = time.perf_counter() - started

    out_dir = args.out_dir.resolve()
    for stale in ("metrics.json", governance.PROVENANCE_NAME):  # a previous run's, until this run writes its own
        (out_dir / stale).unlink(missing_ok=True)
    manifest = export.export_model(out_dir, spec.artifact, trained.model, trained.signatures,
                                   trained.integer_signatures)
    serving = export.load_signatures(out_dir / spec.artifact)
    evaluation = task.evaluate(serving, cfg, args.data_dir)
    print("measuring single-request latency in a fresh process", flush=True)
    latency = metrics.latency_ms_fresh_process(out_dir / spec.artifact, export.SERVING_KEY, evaluation.latency_inputs)
    if trained.integer_signatures is not None:  # the float twin, measured the same way, for the comparison
        float_dir = out_dir / hashing.float_artifact(spec.artifact)
        float_evaluation = task.evaluate(export.load_signatures(float_dir), cfg, args.data_dir)
        float_latency = metrics.latency_ms_fresh_process(float_dir, export.SERVING_KEY,
                                                         float_evaluation.latency_inputs)
        trained.info.update(metrics.integer_comparison(evaluation.metrics, float_evaluation.metrics, latency,
                                                       float_latency, trained.integer_info,
                                                       hashing.float_artifact(spec.artifact)))
    doc = metrics.build_metrics(
        name, evaluation.metrics, latency, training_config={**cfg, "profile": args.profile}, dataset=trained.dataset,
        determinism=settings,
        timing={"train_seconds": train_seconds, "total_seconds": time.perf_counter() - started},
        model_digest=manifest["digest"],
        initial_weights=trained.pretrained or "none: every weight trained here from a seeded random initialisation",
        **trained.info, **evaluation.info)
    metrics.write_metrics(out_dir / "metrics.json", doc)
    if evaluation.curve is not None:
        metrics.save_curve_plot(out_dir / "roc_det.png", *evaluation.curve)
    governance.write_run_provenance(out_dir, name, argv=sys.argv, config=doc["training_config"],
                                    dataset=doc["dataset"], manifest=manifest, started_on=started_on, source=source,
                                    data_dir=args.data_dir, pretrained=trained.pretrained)
    print(json.dumps({"model": name, "digest": manifest["digest"], "out_dir": str(out_dir),
                      "metrics": doc["metrics"], "inference_latency_ms": doc["inference_latency_ms"],
                      "train_seconds": round(train_seconds, 1)}, indent=2))
    print(governance.verdict(name, out_dir), flush=True)


def regenerate_metrics(name: str) -> dict:
    """Re-evaluate the approved model on its held-out test split and rewrite its metrics.json (generate_metrics.py).

    Training-time fields (training_date, training_config, dataset, determinism, thresholds, timing) are kept from the
    existing file; test metrics and latency are recomputed through the SavedModel as it is on disk, and metrics_date
    says when.
    """
    from veid_ml import hashing

    spec = registry.get(name)
    path = spec.weights_dir / "metrics.json"
    old = hashing.read_json(path, f"{name} metrics file (train and approve the model first)")
    cfg = old["training_config"]
    if old.get("dataset", {}).get("source", "synthetic") != "synthetic":
        raise ValueError(f"{path} comes from a --data-dir run; re-evaluation needs that data: train again")
    determinism.configure(cfg.get("seed", determinism.DEFAULT_SEED))

    from veid_ml import export, metrics

    serving = export.load_signatures(spec.weights_dir / spec.artifact)
    evaluation = registry.load_task(name).evaluate(serving, cfg, None)
    kept = {k: v for k, v in old.items() if k not in (
        "model_name", "version", "training_date", "framework", "framework_version", "metrics", "inference_latency_ms",
        "training_config", "dataset", "determinism", "non_deterministic_fields", "metrics_date", *evaluation.info)}
    latency = metrics.latency_ms_fresh_process(spec.weights_dir / spec.artifact, export.SERVING_KEY,
                                               evaluation.latency_inputs)
    doc = metrics.build_metrics(
        name, evaluation.metrics, latency, training_config=cfg, dataset=old["dataset"], determinism=old["determinism"],
        training_date=old.get("training_date"), metrics_date=metrics.utc_now(), **kept, **evaluation.info)
    metrics.write_metrics(path, doc)
    if evaluation.curve is not None:
        metrics.save_curve_plot(spec.weights_dir / "roc_det.png", *evaluation.curve)
    return doc
