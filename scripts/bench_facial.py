"""Wall time and inference latency of the facial verification model's full (spec) training, over several runs.

Each run is the spec command in a fresh process writing to a temporary directory (--no-approve, so the committed
weights and the lock are untouched); a full-profile run's files are compared with the approved lock entry. Prints each
run and the medians.
usage: python scripts/bench_facial.py [--runs 3] [--profile full|quick]
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ml"))

from veid_ml import benchmark  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--profile", choices=["full", "quick"], default="full")
    args = p.parse_args()
    if args.runs < 1:
        p.error("--runs must be >= 1")
    benchmark.time_spec_training("facial_verification", args.runs, args.profile)


if __name__ == "__main__":
    main()
