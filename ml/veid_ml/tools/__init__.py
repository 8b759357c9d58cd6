"""`veid-ml` tool commands: benchmarks, evaluation on real photos, data checks and the inference fingerprint.

`register(subparsers)` adds the groups `bench`, `eval-real`, `check` and the commands `score`, `demo`,
`fingerprint` and `consensus` to the CLI's subparsers; each command sets `fn(args) -> int` like the commands in
veid_ml.cli. Nothing here imports TensorFlow at import time: the commands that need it call
veid_ml.determinism.configure() first.
"""

import argparse


def add_command(subparsers, name: str, fn, help: str, description: str) -> argparse.ArgumentParser:
    """One tool command: its parser (the module docstring's section as --help text, layout kept) running fn(args)."""
    parser = subparsers.add_parser(name, help=help, description=description,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(fn=fn)
    return parser


def register(subparsers) -> None:
    """Add the tool commands to `veid-ml`'s subparsers (argparse's add_subparsers() result)."""
    # imported here, not at module level, so `python -m veid_ml.tools.bench --worker` does not import itself twice
    from veid_ml.tools import bench, checks, consensus, evaluate_real, fingerprint, mrz_bench, ocr_bench, pipeline

    bench_parser = subparsers.add_parser("bench", help="training-time, determinism-cost, OCR and pipeline benchmarks",
                                         description="Benchmarks; run nothing else on the machine meanwhile.")
    bench_sub = bench_parser.add_subparsers(dest="bench_command", required=True, metavar="BENCHMARK")
    bench.register(bench_sub)
    ocr_bench.register(bench_sub)
    mrz_bench.register(bench_sub)
    pipeline.register(subparsers, bench_sub)  # `score` and `demo`, and `bench pipeline`

    eval_parser = subparsers.add_parser("eval-real", help="score the approved models on a folder of real photos",
                                        description="Score the approved models on real photos, never used in training.")
    evaluate_real.register(eval_parser.add_subparsers(dest="eval_command", required=True, metavar="MODEL"))

    check_parser = subparsers.add_parser("check", help="checks of the MRZ parser and the synthetic liveness data",
                                         description="Checks of the MRZ parser and the synthetic data generators.")
    checks.register(check_parser.add_subparsers(dest="check_command", required=True, metavar="CHECK"))

    fingerprint.register(subparsers)
    consensus.register(subparsers)
