"""Time the liveness model's spec training: `python scripts/bench_liveness.py [--runs N]`.

Each run is the spec command in a fresh process writing into a temporary directory (--no-approve, so the committed
model and the lock are untouched); its files are compared with the approved lock entry. Prints every run's wall time,
accuracy, single-image inference latency (metrics.json) and reproduction verdict, then the medians.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ml"))

from veid_ml import benchmark  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=1, help="number of full trainings (default 1)")
    args = p.parse_args()
    if args.runs < 1:
        p.error("--runs must be >= 1")
    benchmark.time_spec_training("liveness_detection", args.runs)


if __name__ == "__main__":
    main()
