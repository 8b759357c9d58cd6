"""`veid-ml bench training` and `veid-ml bench determinism`: what training costs, in wall time and in speed.

training: wall time of a model's spec training command over several runs. Each run is the spec command
(`train.py --seed 42 --export-format savedmodel`) in a fresh process writing into a temporary directory, so the
committed model and the lock are untouched. A full-profile run's files are also compared with the approved lock entry:
every timing run doubles as a fresh-process reproduction check. Run nothing else on the machine meanwhile; the budgets
are for the 2-core reference machine, one training at a time.

determinism: training speed of a small CNN (64x64x3, ~190k params) under several determinism configurations. Each
configuration runs in its own process (`python -m veid_ml.tools.bench --worker`) with its environment set before
TensorFlow starts; prints images/s (median of --repeats timed epochs) so the cost of the pinned settings reads as a
ratio.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from veid_ml import determinism, hashing, registry
from veid_ml.tools import add_command

# Environment overrides of determinism.pinned_environ() per configuration; None = TensorFlow's own defaults.
DETERMINISM_CONFIGS = {
    "pinned (oneDNN opts on, AVX2, 2 threads)": {},
    "oneDNN opts off (Eigen kernels), AVX2, 2 threads": {"TF_ENABLE_ONEDNN_OPTS": "0"},
    "pinned but 1 thread": {"TF_NUM_INTRAOP_THREADS": "1", "OMP_NUM_THREADS": "1"},
    "unpinned TF defaults (oneDNN on, native ISA)": None,
}


def _run_once(spec, profile: str, out_dir: Path) -> float:
    cmd = [sys.executable, "train.py", "--seed", "42", "--export-format", "savedmodel", "--profile", profile,
           "--out-dir", str(out_dir)]
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=spec.package_dir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, "TF_DETERMINISTIC_OPS": "1"})
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        # SystemExit, not an exception: the user gets the training's own error, not a traceback from here
        raise SystemExit(f"error: {spec.name} training failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return seconds


def time_spec_training(name: str, runs: int, profile: str = "full") -> list[dict]:
    """Run the spec command `runs` times; print one line per run and the medians; return the per-run records."""
    if runs < 1:
        raise ValueError(f"runs must be >= 1, got {runs}")
    spec = registry.get(name)
    entry = hashing.read_lock(registry.LOCK_PATH)["models"].get(name, {})
    approved = entry.get("files", {})
    other_class = hashing.other_cpu_class(entry) if entry else None
    if other_class:
        print(f"note: {name}'s bytes are not expected to be reproduced here: {other_class} "
              "(ml/README.md, Determinism)", flush=True)
    records = []
    for run in range(runs):
        with tempfile.TemporaryDirectory(prefix=f"{name}_bench_") as tmp:
            out = Path(tmp)
            wall = _run_once(spec, profile, out)
            doc = json.loads((out / "metrics.json").read_text())
            compared = profile == "full" and bool(approved)
            problems = []
            if compared:
                problems = hashing.diff_files(approved, hashing.compute_manifest(out, spec.artifact)["files"])
        if profile != "full":
            verdict = "quick profile, not compared with the lock"
        elif not compared:
            verdict = "no approved lock entry to compare with"
        else:
            verdict = f"DIFFERS from the lock: {problems}" if problems else "bytes identical to the approved lock"
        record = {"wall_seconds": wall, "train_seconds": doc["timing"]["train_seconds"],
                  "latency_p50_ms": doc["inference_latency_ms"]["p50"], "accuracy": doc["metrics"]["accuracy"],
                  "matches_lock": compared and not problems}
        records.append(record)
        print(f"run {run + 1}/{runs}: wall {wall:.0f} s ({wall / 60:.1f} min), "
              f"training {record['train_seconds']:.0f} s, accuracy {record['accuracy']:.4f}, "
              f"latency p50 {record['latency_p50_ms']:.2f} ms, {verdict}", flush=True)
    wall = statistics.median(r["wall_seconds"] for r in records)
    latency = statistics.median(r["latency_p50_ms"] for r in records)
    print(f"{name}: median wall time {wall:.0f} s ({wall / 60:.1f} min), median latency p50 {latency:.2f} ms "
          f"over {runs} run(s)")
    return records


def cmd_training(args) -> int:
    time_spec_training(args.model, args.runs, args.profile)
    return 0


def determinism_worker(repeats: int) -> dict:
    """Time `repeats` epochs of the small CNN in this process, under the environment it was started with."""
    import keras
    import numpy as np
    import tensorflow as tf

    # the thread counts are read from the environment here, as the pinned configuration's trainer does
    tf.config.threading.set_intra_op_parallelism_threads(int(os.environ.get("TF_NUM_INTRAOP_THREADS", "0")))
    tf.config.threading.set_inter_op_parallelism_threads(int(os.environ.get("TF_NUM_INTEROP_THREADS", "0")))
    if os.environ.get("TF_DETERMINISTIC_OPS") == "1":
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(42)
    n_images = 4096
    images = np.random.default_rng(0).random((n_images, 64, 64, 3), dtype=np.float32)
    labels = np.random.default_rng(1).integers(0, 2, n_images).astype("float32")
    layers = keras.layers
    conv_blocks = [layer for filters in (32, 64, 96, 128) for layer in (
        layers.Conv2D(filters, 3, padding="same", use_bias=False), layers.BatchNormalization(), layers.ReLU(),
        layers.MaxPooling2D())]
    model = keras.Sequential([keras.Input((64, 64, 3)), *conv_blocks, layers.GlobalAveragePooling2D(),
                              layers.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy", jit_compile=False)
    model.fit(images[:512], labels[:512], epochs=1, batch_size=64, verbose=0)  # warm-up: tracing is not timed
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        model.fit(images, labels, epochs=1, batch_size=64, verbose=0)
        rates.append(n_images / (time.perf_counter() - started))
    return {"params": model.count_params(), "img_per_s": sorted(rates)[len(rates) // 2]}


def cmd_determinism(args) -> int:
    base = None
    for name, overrides in DETERMINISM_CONFIGS.items():
        if overrides is None:
            env = {k: v for k, v in os.environ.items() if k not in determinism.FORCED_ENV}
            env["TF_CPP_MIN_LOG_LEVEL"] = "2"
        else:
            env = determinism.pinned_environ()
            env.update(overrides)
        # a fresh interpreter per configuration: TensorFlow reads these variables only when it starts
        out = subprocess.run([sys.executable, "-m", "veid_ml.tools.bench", "--worker", "--repeats", str(args.repeats)],
                             env=env, capture_output=True, text=True)
        if out.returncode != 0:
            print(f"bench determinism: worker for {name!r} failed (exit {out.returncode}):\n{out.stderr[-3000:]}",
                  file=sys.stderr)
            return 1
        result = json.loads(out.stdout.strip().splitlines()[-1])
        base = base or result["img_per_s"]
        print(f"{name:48s} {result['img_per_s']:8.0f} img/s  ({result['img_per_s'] / base:.2f}x pinned)"
              f"  params={result['params']}", flush=True)
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def register(bench_subparsers) -> None:
    """Add `training` and `determinism` to `veid-ml bench`."""
    sections = __doc__.split("\n\n")
    t = add_command(bench_subparsers, "training", cmd_training,
                    help="wall time of a model's spec training over N fresh-process runs, each checked with the lock",
                    description=sections[1])
    t.add_argument("--model", required=True, choices=sorted(registry.MODELS))
    t.add_argument("--runs", type=_positive_int, default=1, help="number of trainings (default 1)")
    t.add_argument("--profile", choices=["full", "quick"], default="full",
                   help="full (the spec command, compared with the lock) or quick (seconds, not compared)")

    d = add_command(bench_subparsers, "determinism", cmd_determinism,
                    help="images/s of a small CNN under the pinned and other determinism configurations",
                    description=sections[2])
    d.add_argument("--repeats", type=_positive_int, default=3, help="timed epochs per configuration (median)")


def _worker_main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m veid_ml.tools.bench",
                                description="One timing process of `veid-ml bench determinism` (run that instead).")
    p.add_argument("--worker", action="store_true", help="time the small CNN here and print one JSON line")
    p.add_argument("--repeats", type=_positive_int, default=3)
    args = p.parse_args(argv)
    if not args.worker:
        p.error("this module is the worker of `veid-ml bench determinism`; pass --worker or run that command")
    print(json.dumps(determinism_worker(args.repeats)))
    return 0


if __name__ == "__main__":
    sys.exit(_worker_main())
