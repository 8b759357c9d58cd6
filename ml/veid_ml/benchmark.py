"""Wall time of a model's spec training command over several runs, shared by scripts/bench_<model>.py.

Each run is the spec command (`train.py --seed 42 --export-format savedmodel`) in a fresh process writing into a
temporary directory, so the committed model and the lock are untouched. A full-profile run's files
are also compared with the approved lock entry: every timing run doubles as a fresh-process reproduction check.
Run nothing else on the machine meanwhile; the budgets are for the 2-core reference machine, one training at a time.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from veid_ml import hashing, registry


def _run_once(spec, profile: str, out_dir: Path) -> float:
    cmd = [sys.executable, "train.py", "--seed", "42", "--export-format", "savedmodel", "--profile", profile,
           "--out-dir", str(out_dir)]
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=spec.package_dir, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          env={**os.environ, "TF_DETERMINISTIC_OPS": "1"})
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        # SystemExit, not an exception: the bench scripts' user gets the training's own error, not a traceback here
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
        print(f"run {run + 1}/{runs}: wall {wall:.0f} s ({wall / 60:.1f} min), training {record['train_seconds']:.0f} s, "
              f"accuracy {record['accuracy']:.4f}, latency p50 {record['latency_p50_ms']:.2f} ms, {verdict}",
              flush=True)
    wall = statistics.median(r["wall_seconds"] for r in records)
    latency = statistics.median(r["latency_p50_ms"] for r in records)
    print(f"{name}: median wall time {wall:.0f} s ({wall / 60:.1f} min), median latency p50 {latency:.2f} ms "
          f"over {runs} run(s)")
    return records
