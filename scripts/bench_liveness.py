"""Time the liveness model's spec training: `python scripts/bench_liveness.py [--runs N]`.

Each run is the spec command in a fresh process writing into a temporary directory (--no-approve, so the committed
model and the lock are untouched). Prints every run's wall time, their median and the single-image inference latency
that training measured (metrics.json inference_latency_ms).
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "ml" / "liveness_detection"


def run_once(out_dir: Path) -> float:
    cmd = [sys.executable, "train.py", "--seed", "42", "--export-format", "savedmodel", "--out-dir", str(out_dir),
           "--no-approve"]
    started = time.perf_counter()
    proc = subprocess.run(cmd, cwd=PACKAGE, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"training failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=1, help="number of full trainings (default 1)")
    args = p.parse_args()
    if args.runs < 1:
        raise SystemExit("error: --runs must be >= 1")
    times, latency = [], None
    for run in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="liveness_bench_") as tmp:
            seconds = run_once(Path(tmp))
            latency = json.loads((Path(tmp) / "metrics.json").read_text())["inference_latency_ms"]
        times.append(seconds)
        print(f"run {run + 1}/{args.runs}: {seconds:.1f} s wall", flush=True)
    print(f"median training wall time: {statistics.median(times):.1f} s over {len(times)} run(s)")
    print(f"single-image inference latency (last run): p50 {latency['p50']:.3f} ms, p95 {latency['p95']:.3f} ms, "
          f"p99 {latency['p99']:.3f} ms")


if __name__ == "__main__":
    main()
