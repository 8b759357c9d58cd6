"""`veid-ml`: train models, approve them, verify approved bytes, regenerate metrics, benchmarks and real-data checks."""

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from veid_ml import determinism, governance, hashing, registry, tools


def cmd_verify(args) -> int:
    lock_path = args.lock.resolve()
    try:
        report = hashing.verify(lock_path, args.model or None)
        lock = hashing.read_lock(lock_path)
    except (FileNotFoundError, ValueError) as e:
        print(f"verify: {e}", file=sys.stderr)
        return 2
    print(f"lock: {lock_path}")
    if not report:
        print(f"verify: no approved models in {lock_path}", file=sys.stderr)
        return 1
    bad = 0
    for name, problems in report.items():
        if problems:
            bad += 1
            print(f"FAIL {name}")
            for p in problems:
                print(f"  {p}")
        else:
            print(f"OK   {name} {lock['models'][name]['digest']}")
        if args.provenance and name in lock["models"]:
            print(governance.describe_provenance(lock["models"][name]))
    return 1 if bad else 0


def cmd_train(args) -> int:
    """Each model trains in its own process, launched with the pinned environment from the start; the lock is never
    written here (approval is `veid-ml approve`). Ends with one verdict line per model."""
    names = args.model or [m.name for m in registry.available()]
    env = determinism.pinned_environ()
    verdicts = []
    started = time.perf_counter()
    for k, name in enumerate(names, start=1):
        spec = registry.get(name)
        cmd = [sys.executable, str(spec.train_script), "--seed", str(args.seed), "--export-format", "savedmodel",
               "--profile", args.profile]
        print(f"== model {k} of {len(names)}: {name}{estimate(spec, args.profile)}", flush=True)
        proc = subprocess.Popen(cmd, cwd=spec.package_dir, env=env, stdout=subprocess.PIPE, text=True, bufsize=1)
        verdict = None
        for line in proc.stdout:  # relayed as it comes; the trainer's last line is its verdict
            print(line, end="", flush=True)
            if line.startswith(f"{name}: "):
                verdict = line.strip()
        if proc.wait() != 0:
            print(f"train: {name} failed with exit status {proc.returncode}", file=sys.stderr)
            return proc.returncode
        verdicts.append(verdict or f"{name}: trained (no verdict printed)")
    print(f"== {len(names)} model(s) in {(time.perf_counter() - started) / 60:.1f} min; the lock was not changed:")
    for line in verdicts:
        print(f"  {line}")
    return 0


def estimate(spec, profile: str) -> str:
    """ ' (about N min: the approved model's own training time)' when its metrics.json says, else ''."""
    if profile != "full":
        return ""
    try:
        seconds = hashing.read_json(spec.weights_dir / "metrics.json", "metrics")["timing"]["total_seconds"]
    except (FileNotFoundError, ValueError, KeyError):
        return ""
    return f" (about {seconds / 60:.0f} min: the approved run's time; CPUs differ)"


def cmd_approve(args) -> int:
    try:
        manifest = governance.approve(args.model, args.source, args.lock.resolve())
    except (governance.ApprovalError, FileNotFoundError, ValueError) as e:
        print(f"approve: {e}", file=sys.stderr)
        return 2
    print(f"approved {args.model} {manifest['digest']} in {args.lock}; commit the lock and weights/ together")
    return 0


def cmd_record(args) -> int:
    try:
        manifest = governance.record_reproduction(args.model, args.source, args.lock.resolve())
    except (governance.ApprovalError, FileNotFoundError, ValueError) as e:
        print(f"record-retraining: {e}", file=sys.stderr)
        return 2
    print(f"recorded {args.model} re-trained on {determinism.cpu_class()}: {manifest['digest']} in {args.lock}; "
          "commit the lock")
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
    v.add_argument("--lock", type=Path, default=registry.find_lock(),
                   help="the lock to check (default: the checkout containing the working directory, else the "
                        "installed one; the path checked is printed)")
    v.add_argument("--model", action="append", help="only this model (repeatable)")
    v.add_argument("--provenance", action="store_true", help="also show each approval's provenance")
    v.set_defaults(fn=cmd_verify)

    for command, fn, summary in (
            ("approve", cmd_approve, "install a trained candidate into weights/ and record it in the lock, with "
                                     "provenance (refuses uncommitted model code)"),
            ("record-retraining", cmd_record, "record what re-training an approved model gives on this CPU class "
                                              "(so CI checks it here instead of skipping)")):
        a = sub.add_parser(command, help=summary)
        a.add_argument("model", choices=sorted(registry.MODELS))
        a.add_argument("--source", type=Path, default=None, help="the trained model folder (default: its "
                                                                 "weights.candidate/)")
        a.add_argument("--lock", type=Path, default=registry.LOCK_PATH)
        a.set_defaults(fn=fn)

    t = sub.add_parser("train", help="train and export models (all by default) into weights.candidate/; never "
                                     "changes the lock")
    t.add_argument("--model", action="append", choices=sorted(registry.MODELS))
    t.add_argument("--seed", type=int, default=determinism.DEFAULT_SEED)
    t.add_argument("--profile", choices=["full", "quick"], default="full")
    t.set_defaults(fn=cmd_train)

    m = sub.add_parser("evaluate", aliases=["metrics"],
                       help="re-evaluate the approved model on its held-out test split and rewrite its metrics.json "
                            "(generate_metrics.py)")
    m.add_argument("--model", required=True, choices=sorted(registry.MODELS))
    m.set_defaults(fn=cmd_metrics)

    c = sub.add_parser("contact-sheets", help="write PNG grids of every synthetic data generator")
    c.add_argument("--out-dir", type=Path, default=registry.ML_DIR.parent / "docs" / "contact_sheets")
    c.set_defaults(fn=cmd_contact_sheets)

    tools.register(sub)  # benchmarks, real-data evaluations and checks
    args = p.parse_args(argv)
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
