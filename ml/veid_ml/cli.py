"""`veid-ml`: train all models, verify approved bytes, regenerate metrics, write contact sheets."""

import argparse
import json
import subprocess
import sys
from pathlib import Path

from veid_ml import determinism, hashing, registry


def cmd_verify(args) -> int:
    try:
        report = hashing.verify(args.lock, args.model or None)
    except (FileNotFoundError, ValueError) as e:
        print(f"verify: {e}", file=sys.stderr)
        return 2
    if not report:
        print(f"verify: no approved models in {args.lock}", file=sys.stderr)
        return 1
    lock = hashing.read_lock(args.lock)
    bad = 0
    for name, problems in report.items():
        if problems:
            bad += 1
            print(f"FAIL {name}")
            for p in problems:
                print(f"  {p}")
        else:
            print(f"OK   {name} {lock['models'][name]['digest']}")
    return 1 if bad else 0


def cmd_train(args) -> int:
    """Each model trains in its own process, launched with the pinned environment from the start."""
    names = args.model or [m.name for m in registry.available()]
    env = determinism.pinned_environ()
    for name in names:
        spec = registry.get(name)
        if not spec.train_script.is_file():
            print(f"train: {name} has no {spec.train_script} yet", file=sys.stderr)
            return 2
        cmd = [sys.executable, str(spec.train_script), "--seed", str(args.seed), "--export-format", "savedmodel",
               "--profile", args.profile]
        print(f"== {name}: {' '.join(cmd)}", flush=True)
        rc = subprocess.call(cmd, cwd=spec.package_dir, env=env)
        if rc != 0:
            print(f"train: {name} failed with exit status {rc}", file=sys.stderr)
            return rc
    return 0


def cmd_metrics(args) -> int:
    from veid_ml import training

    try:
        doc = training.regenerate_metrics(args.model)
    except (FileNotFoundError, KeyError, ValueError) as e:
        print(f"metrics: {e}", file=sys.stderr)
        return 2
    print(json.dumps({k: doc[k] for k in ("model_name", "metrics", "inference_latency_ms")}, indent=2))
    return 0


def cmd_contact_sheets(args) -> int:
    from veid_ml.data import sheets

    for path in sheets.write_all(args.out_dir):
        print(path)
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="veid-ml", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    v = sub.add_parser("verify", help="recompute every approved model's hashes; non-zero exit on any difference")
    v.add_argument("--lock", type=Path, default=registry.LOCK_PATH)
    v.add_argument("--model", action="append", help="only this model (repeatable)")
    v.set_defaults(fn=cmd_verify)

    t = sub.add_parser("train", help="train and export models (all that exist by default)")
    t.add_argument("--model", action="append", choices=sorted(registry.MODELS))
    t.add_argument("--seed", type=int, default=determinism.DEFAULT_SEED)
    t.add_argument("--profile", choices=["full", "quick"], default="full")
    t.set_defaults(fn=cmd_train)

    m = sub.add_parser("metrics", help="re-evaluate an exported model and rewrite its metrics.json")
    m.add_argument("--model", required=True, choices=sorted(registry.MODELS))
    m.set_defaults(fn=cmd_metrics)

    c = sub.add_parser("contact-sheets", help="write PNG grids of every synthetic data generator")
    c.add_argument("--out-dir", type=Path, default=registry.ML_DIR.parent / "docs" / "contact_sheets")
    c.set_defaults(fn=cmd_contact_sheets)

    args = p.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
