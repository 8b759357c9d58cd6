"""The one trainer entry all three train.py scripts share (config as code, plain command-line overrides).

A model's train.py defines CONFIG (the full profile), QUICK (overrides for the seconds-long test profile) and:
    train(cfg, data_dir) -> Trained        build data, fit, choose thresholds on validation data
    evaluate(serving, cfg, data_dir) -> Evaluation   held-out test metrics through the *exported* SavedModel
and ends with `if __name__ == "__main__": training.main("<model name>")`.
Everything else (determinism, export, hashing, metrics.json, plots, lock approval) happens here, once.
"""

import argparse
import dataclasses
import importlib
import json
import sys
import time
from pathlib import Path

from veid_ml import determinism, registry


@dataclasses.dataclass
class Trained:
    model: object  # keras.Model whose variables the signatures read
    signatures: dict  # signature key -> tf.function with input_signature
    dataset: dict  # sizes and content hashes of the data the model was trained/validated on
    info: dict = dataclasses.field(default_factory=dict)  # deterministic extras for metrics.json (e.g. thresholds)


@dataclasses.dataclass
class Evaluation:
    metrics: dict  # spec metrics (accuracy, precision, recall, f1_score, auc_roc) + model-specific ones
    latency_inputs: dict  # one single-sample request for the serving_default signature
    curve: tuple | None = None  # (y_true, score, title) for the ROC/DET plot
    info: dict = dataclasses.field(default_factory=dict)  # deterministic extras (test-set sizes, per-class numbers)


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
    p.add_argument("--out-dir", type=Path, default=spec.weights_dir, help=f"default {spec.weights_dir}")
    p.add_argument("--approve", action=argparse.BooleanOptionalAction, default=None,
                   help="record the digest in ml/models.lock.json (default: only for the full profile written to "
                        "the package's weights/ directory on synthetic data with seed 42)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a CONFIG entry")
    return p


def main(name: str, argv=None) -> None:
    spec = registry.get(name)
    module = sys.modules["__main__"]
    args = build_parser(name).parse_args(argv)
    cfg = dict(module.CONFIG)
    if args.profile == "quick":
        cfg.update(module.QUICK)
    cfg = parse_overrides(args.set, cfg)
    if args.data_dir is not None and not args.data_dir.is_dir():
        raise SystemExit(f"error: --data-dir {args.data_dir} is not a directory")
    settings = determinism.configure(args.seed)  # before TensorFlow is imported; may re-exec the interpreter
    cfg["seed"] = args.seed

    from veid_ml import export, metrics

    started = time.perf_counter()
    trained = module.train(cfg, args.data_dir)
    train_seconds = time.perf_counter() - started
    out_dir = args.out_dir.resolve()
    manifest = export.export_model(out_dir, spec.artifact, trained.model, trained.signatures)

    serving = export.load_signatures(out_dir / spec.artifact)
    evaluation = module.evaluate(serving, cfg, args.data_dir)
    latency = metrics.latency_ms_fresh_process(out_dir / spec.artifact, export.SERVING_KEY, evaluation.latency_inputs)
    doc = metrics.build_metrics(
        name, evaluation.metrics, latency, training_config={**cfg, "profile": args.profile}, dataset=trained.dataset,
        determinism=settings,
        timing={"train_seconds": train_seconds, "total_seconds": time.perf_counter() - started},
        model_digest=manifest["digest"], **trained.info, **evaluation.info)
    metrics.write_metrics(out_dir / "metrics.json", doc)
    if evaluation.curve is not None:
        metrics.save_curve_plot(out_dir / "roc_det.png", *evaluation.curve)

    approve = args.approve
    if approve is None:
        approve = (args.profile == "full" and args.data_dir is None and args.seed == determinism.DEFAULT_SEED
                   and out_dir == spec.weights_dir.resolve())
    if approve:
        from veid_ml import hashing

        hashing.approve(registry.LOCK_PATH, name, out_dir, manifest)
    print(json.dumps({"model": name, "digest": manifest["digest"], "approved": bool(approve),
                      "metrics": doc["metrics"], "inference_latency_ms": doc["inference_latency_ms"],
                      "train_seconds": round(train_seconds, 1)}, indent=2))


def load_train_module(name: str):
    """Import a model's train.py as a module (its __main__ guard keeps it from training)."""
    registry.get(name)
    return importlib.import_module(f"{name}.train")


def regenerate_metrics(name: str) -> dict:
    """Re-evaluate the exported model on its held-out test split and rewrite metrics.json (generate_metrics.py).

    Training-time fields (training_date, training_config, dataset, determinism, thresholds, timing) are kept from the
    existing file; test metrics and latency are recomputed through the SavedModel as it is on disk, and metrics_date
    says when.
    """
    from veid_ml import hashing

    spec = registry.get(name)
    path = spec.weights_dir / "metrics.json"
    old = hashing.read_json(path, f"{name} metrics file (train the model first)")
    cfg = old["training_config"]
    data_dir = None
    determinism.configure(cfg.get("seed", determinism.DEFAULT_SEED))

    from veid_ml import export, metrics

    serving = export.load_signatures(spec.weights_dir / spec.artifact)
    evaluation = load_train_module(name).evaluate(serving, cfg, data_dir)
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
