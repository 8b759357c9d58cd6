"""Wall time and inference latency of the facial verification model's full (spec) training, over several runs.

Each run is the spec command in a fresh process writing to a temporary directory (--no-approve, so the committed
weights and the lock are untouched); prints each run and the medians.
usage: python scripts/bench_facial.py [--runs 3] [--profile full|quick]
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from veid_ml import registry


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--profile", choices=["full", "quick"], default="full")
    args = p.parse_args()
    if args.runs < 1:
        raise SystemExit("error: --runs must be >= 1")
    spec = registry.get("facial_verification")
    walls, latencies = [], []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as out:
            started = time.perf_counter()
            subprocess.run([sys.executable, "train.py", "--seed", "42", "--export-format", "savedmodel",
                            "--profile", args.profile, "--out-dir", out, "--no-approve"],
                           cwd=spec.package_dir, check=True, capture_output=True)
            walls.append(time.perf_counter() - started)
            doc = json.loads((Path(out) / "metrics.json").read_text())
        latencies.append(doc["inference_latency_ms"]["p50"])
        print(f"run {run + 1}: wall {walls[-1]:.1f} s, train {doc['timing']['train_seconds']:.1f} s, "
              f"latency p50 {latencies[-1]:.3f} ms, accuracy {doc['metrics']['accuracy']:.4f}", flush=True)
    print(f"median wall time {statistics.median(walls):.1f} s, "
          f"median latency p50 {statistics.median(latencies):.3f} ms over {args.runs} run(s)")


if __name__ == "__main__":
    main()
