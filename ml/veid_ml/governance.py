"""Approval: the one act that changes ml/models.lock.json, with provenance a validator can audit.

Training writes a candidate (`ml/<model>/weights.candidate/`: artifacts, metrics.json, provenance.json) and prints a
verdict against the lock; it never touches the lock or the approved `weights/`. `veid-ml approve NAME` then checks the
candidate (its files match its manifest; it was trained from committed code equal to HEAD's, with the full profile,
seed and synthetic data), installs it into `weights/` and records the entry with its provenance.

Provenance is an in-toto Statement (v1) whose predicate is SLSA Provenance (v1): subject = the model digest;
buildDefinition = the training command, CONFIG, seed, determinism settings and the resolved inputs (code commit, data
content hashes, pretrained files); runDetails = library versions, CPU class and start/finish times.
"""

import json
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from veid_ml import determinism, hashing, registry
from veid_ml.atomic import atomic_dir, write_bytes_atomic, write_text_atomic

REPO_ROOT = registry.ML_DIR.parent
PROVENANCE_NAME = "provenance.json"
BUILD_TYPE = "https://github.com/veid/veid-ml/training/v1"  # names the meaning of buildDefinition, as SLSA asks
LIBRARIES = ("tensorflow-cpu", "keras", "numpy", "scipy", "scikit-learn", "opencv-python-headless", "pillow", "h5py")
# Files whose changes can change a model's bytes (besides the model package itself): the shared core, the data engine,
# the packaging and the pinned requirements. Excluded: what never runs in training (the command line, the tools, the
# notes) and what only records or scores approved bytes (governance, hashing, the VEID pipeline and its demo cases).
SHARED_INPUTS = ("ml/veid_ml", "pyproject.toml", "ml/requirements-deterministic.txt",
                 ":(exclude)ml/veid_ml/cli.py", ":(exclude)ml/veid_ml/tools", ":(exclude,glob)ml/**/*.md",
                 *(f":(exclude)ml/veid_ml/{f}.py" for f in ("governance", "hashing", "api", "scoring", "golden",
                                                            "demo_cases")))


class ApprovalError(RuntimeError):
    """The candidate cannot be approved; the message says why."""


def model_inputs(name: str) -> list[str]:
    """git pathspecs of everything a model's bytes depend on, minus its own artifact folders."""
    return [f"ml/{name}", *SHARED_INPUTS, f":(exclude)ml/{name}/weights", f":(exclude)ml/{name}/weights.candidate"]


def _git(repo: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.rstrip("\n") if proc.returncode == 0 else None


def source_state(name: str, repo: Path = REPO_ROOT) -> dict:
    """{"commit": HEAD or None (not a git checkout), "uncommitted": model-input paths changed since HEAD}."""
    commit = _git(repo, "rev-parse", "HEAD")
    status = _git(repo, "status", "--porcelain", "--untracked-files=all", "--", *model_inputs(name)) or ""
    return {"commit": commit, "uncommitted": sorted(line[3:] for line in status.splitlines() if line.strip())}


def library_versions() -> dict:
    versions = {"python": sys.version.split()[0]}
    for lib in LIBRARIES:
        try:
            versions[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            continue
    return versions


def write_run_provenance(out_dir: Path, name: str, argv: list[str], config: dict, dataset: dict, manifest: dict,
                         started_on: str, source: dict | None = None, data_dir=None,
                         pretrained: list[dict] | None = None, repo: Path = REPO_ROOT) -> dict:
    """provenance.json beside a freshly trained model (what `approve` will record); source is source_state() taken
    when training started (default: now)."""
    from veid_ml import metrics

    source = source or source_state(name, repo)
    statement = {
        "_type": "https://in-toto.io/Statement/v1",
        "subject": [{"name": f"{name}/{manifest['artifact']}",
                     "digest": {"sha256": manifest["digest"].removeprefix("sha256:")}}],
        "predicateType": "https://slsa.dev/provenance/v1",
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {"model": name, "command": " ".join(Path(a).name if i == 0 else a
                                                                          for i, a in enumerate(argv)),
                                       "config": config, "data_dir": None if data_dir is None else str(data_dir)},
                "internalParameters": {"determinism": determinism.settings(config.get("seed", 42))},
                "resolvedDependencies": [
                    {"uri": "git+veid-ml", "digest": {"gitCommit": source["commit"]},
                     "annotations": {"uncommitted_model_inputs": source["uncommitted"]}},
                    {"uri": "veid-ml:training-data", "annotations": {"dataset": dataset}},
                    *({"name": w["name"], "uri": w.get("source", w["name"]), "digest": {"sha256": w["sha256"]},
                       "annotations": {"license": w.get("license")}} for w in pretrained or []),
                ],
            },
            "runDetails": {
                "builder": {"id": f"cpu-class:{determinism.cpu_class()}"},
                "metadata": {"startedOn": started_on, "finishedOn": metrics.utc_now()},
                "byproducts": [{"name": "libraries", "annotations": library_versions()},
                               {"name": "files", "annotations": manifest["files"]}],
            },
        },
    }
    write_text_atomic(Path(out_dir) / PROVENANCE_NAME, json.dumps(statement, indent=2, sort_keys=True) + "\n")
    return statement


def _headline(doc: dict) -> str:
    return f"accuracy {doc['metrics']['accuracy']:.4f}" if doc.get("metrics", {}).get("accuracy") is not None else ""


def verdict(name: str, out_dir: Path, lock_path: Path = registry.LOCK_PATH) -> str:
    """One line: did this run reproduce the approved bytes, differ from them, or is the model not yet approved?"""
    spec = registry.get(name)
    out_dir = Path(out_dir)
    digest = hashing.compute_manifest(out_dir, spec.artifact)["digest"]
    entry = hashing.read_lock(lock_path)["models"].get(name)
    here = determinism.cpu_class()
    run = hashing.read_json(out_dir / "metrics.json", "metrics file")
    config = run.get("training_config", {})
    if entry is None:
        return f"{name}: not yet approved; this run ({digest}) is in {out_dir} -> `veid-ml approve {name}`"
    if digest == entry["digest"]:
        return f"{name}: reproduced the approved bytes {digest} on {here}; weights/ unchanged"
    recorded = entry.get("reproduced_on", {}).get(here)
    if recorded is not None and digest == recorded["digest"]:
        return (f"{name}: reproduced the bytes recorded for this CPU class {digest} on {here} (the approved bytes, "
                f"from {entry.get('approved_on_cpu')}, are {entry['digest']}); weights/ unchanged")
    if config.get("profile") != "full" or config.get("seed") != determinism.DEFAULT_SEED or \
            run.get("dataset", {}).get("source") != "synthetic":
        return (f"{name}: a {config.get('profile')}-profile, seed {config.get('seed')}, "
                f"{run.get('dataset', {}).get('source')} run ({digest}, in {out_dir}), not comparable with the "
                f"approved model; weights/ unchanged")
    approved_doc = hashing.read_json(spec.weights_dir / "metrics.json", "approved metrics file") \
        if (spec.weights_dir / "metrics.json").is_file() else {}
    approved_on = entry.get("approved_on_cpu", "an unrecorded CPU class")
    delta = ""
    if _headline(run) and _headline(approved_doc):
        delta = (f"; {_headline(run)} vs approved {approved_doc['metrics']['accuracy']:.4f} "
                 f"({run['metrics']['accuracy'] - approved_doc['metrics']['accuracy']:+.4f})")
    return (f"{name}: DIFFERS from the approved digest {entry['digest']} (approved on {approved_on}; this is {here})"
            f"{delta}; the approved model in weights/ is unchanged, this run is in {out_dir}")


def check_approvable(name: str, source: Path, repo: Path = REPO_ROOT) -> dict:
    """The candidate's provenance, after every check approval needs; raises ApprovalError naming the first failure."""
    spec = registry.get(name)
    source = Path(source)
    try:
        statement = hashing.read_json(source / PROVENANCE_NAME, f"{name} candidate provenance")
        run = hashing.read_json(source / "metrics.json", f"{name} candidate metrics")
    except (FileNotFoundError, ValueError) as e:
        raise ApprovalError(f"{e} (train it first: `veid-ml train --model {name}`)") from None
    manifest = hashing.compute_manifest(source, spec.artifact)
    if not manifest["files"]:
        raise ApprovalError(f"{source} holds no {spec.artifact} artifacts")
    recorded = statement["subject"][0]["digest"]["sha256"]
    if manifest["digest"] != "sha256:" + recorded:
        raise ApprovalError(f"{source}: files changed since training (digest {manifest['digest']}, provenance says "
                            f"sha256:{recorded})")
    config = run["training_config"]
    if config.get("profile") != "full" or run["dataset"].get("source") != "synthetic":
        raise ApprovalError(f"{source} is a {config.get('profile')}-profile run on {run['dataset'].get('source')} "
                            "data; only full-profile runs on the embedded synthetic data are approved (anyone can "
                            "re-train them)")
    now = source_state(name, repo)
    if now["uncommitted"]:
        raise ApprovalError(f"uncommitted changes to {name}'s code or data engine: {', '.join(now['uncommitted'])}; "
                            "commit them and re-train before approving")
    code = statement["predicate"]["buildDefinition"]["resolvedDependencies"][0]
    trained_at = code["digest"]["gitCommit"]
    if trained_at is None or code["annotations"]["uncommitted_model_inputs"]:
        raise ApprovalError(f"{source} was trained from uncommitted code "
                            f"({', '.join(code['annotations']['uncommitted_model_inputs']) or 'not a git checkout'}); "
                            "re-train from a clean checkout")
    if now["commit"] != trained_at and _git(repo, "diff", "--quiet", trained_at, "HEAD", "--",
                                             *model_inputs(name)) is None:
        raise ApprovalError(f"{name}'s code changed between the training commit {trained_at[:12]} and HEAD "
                            f"{(now['commit'] or '?')[:12]}; re-train before approving")
    return statement


def approve(name: str, source: Path | None = None, lock_path: Path = registry.LOCK_PATH,
            repo: Path = REPO_ROOT) -> dict:
    """Install a checked candidate into the model's weights/ and record it in the lock with its provenance."""
    spec = registry.get(name)
    source = Path(source or spec.candidate_dir)
    statement = check_approvable(name, source, repo)
    weights_dir = Path(lock_path).parent / spec.weights_dir.relative_to(registry.ML_DIR)
    if source.resolve() != weights_dir.resolve():
        install(source, weights_dir, spec.artifact)
    manifest = hashing.compute_manifest(weights_dir, spec.artifact)
    from veid_ml import metrics

    approval = {"date": metrics.utc_now(), "head_commit": _git(repo, "rev-parse", "HEAD"),
                "by": _git(repo, "config", "user.email") or "unknown"}
    hashing.record_approval(lock_path, name, weights_dir, manifest,
                            cpu_class=statement["predicate"]["runDetails"]["builder"]["id"].removeprefix("cpu-class:"),
                            provenance=statement, approval=approval)
    return manifest


def record_reproduction(name: str, source: Path | None = None, lock_path: Path = registry.LOCK_PATH,
                        repo: Path = REPO_ROOT) -> dict:
    """Record a candidate re-trained on another CPU class as that class's bytes of the approved model (the lock's
    reproduced_on), after the checks approval makes (full profile, committed code unchanged since training)."""
    spec = registry.get(name)
    source = Path(source or spec.candidate_dir)
    entry = hashing.read_lock(lock_path)["models"].get(name)
    if entry is None:
        raise ApprovalError(f"{name} is not approved yet: approve it first (`veid-ml approve {name}`)")
    statement = check_approvable(name, source, repo)
    cpu_class = statement["predicate"]["runDetails"]["builder"]["id"].removeprefix("cpu-class:")
    manifest = hashing.compute_manifest(source, spec.artifact)
    if cpu_class == entry.get("approved_on_cpu"):
        if manifest["digest"] != entry["digest"]:
            raise ApprovalError(f"{source} was trained on the approving CPU class but gives {manifest['digest']}, "
                                f"not the approved {entry['digest']}: the code no longer reproduces the approved "
                                "model; re-approve instead")
        raise ApprovalError(f"{source} was trained on the approving CPU class: its bytes are the approved ones")
    from veid_ml import metrics

    code = statement["predicate"]["buildDefinition"]["resolvedDependencies"][0]
    hashing.record_reproduction(lock_path, name, manifest, cpu_class, {
        "date": metrics.utc_now(), "training_commit": code["digest"]["gitCommit"],
        "by": _git(repo, "config", "user.email") or "unknown"})
    return manifest


def install(source: Path, weights_dir: Path, artifact: str) -> None:
    """Copy a candidate over the approved folder: manifest removed first and written last (a folder with a manifest
    is complete), the SavedModel swapped in whole."""
    weights_dir.mkdir(parents=True, exist_ok=True)
    (weights_dir / hashing.MANIFEST_NAME).unlink(missing_ok=True)
    twin = hashing.float_artifact(artifact)
    for name in (artifact, twin):  # the consensus graph and, for integer models, its float twin
        if (source / name).is_dir():
            with atomic_dir(weights_dir / name) as staging:
                shutil.copytree(source / name, staging, dirs_exist_ok=True)
        else:
            shutil.rmtree(weights_dir / name, ignore_errors=True)
    for name in (f"{artifact}_frozen.pb", f"{twin}_frozen.pb", "metrics.json", "roc_det.png", PROVENANCE_NAME):
        if (source / name).is_file():
            write_bytes_atomic(weights_dir / name, (source / name).read_bytes())
        else:
            (weights_dir / name).unlink(missing_ok=True)
    hashing.write_manifest(weights_dir, artifact)


def describe_provenance(entry: dict) -> str:
    """Indented, human-readable summary of a lock entry's provenance (`veid-ml verify --provenance`)."""
    statement = entry.get("provenance")
    if not statement:
        return "  provenance: none recorded (approved before provenance was kept)"
    build = statement["predicate"]["buildDefinition"]
    run = statement["predicate"]["runDetails"]
    code, data = build["resolvedDependencies"][0], build["resolvedDependencies"][1]
    lines = [f"  trained by:   {build['externalParameters']['command']}",
             f"  code commit:  {code['digest']['gitCommit']}",
             f"  cpu class:    {run['builder']['id'].removeprefix('cpu-class:')}",
             f"  trained:      {run['metadata']['startedOn']} .. {run['metadata']['finishedOn']}",
             f"  libraries:    {', '.join(f'{k} {v}' for k, v in run['byproducts'][0]['annotations'].items())}",
             f"  config:       {json.dumps(build['externalParameters']['config'], sort_keys=True)}",
             f"  data:         {json.dumps(data['annotations']['dataset'], sort_keys=True)}"]
    lines += [f"  pretrained:   {dep.get('name', dep.get('uri'))} sha256:{dep['digest']['sha256']}"
              for dep in build["resolvedDependencies"][2:]]
    if entry.get("approval"):
        lines.append(f"  approved:     {entry['approval']['date']} by {entry['approval']['by']} at commit "
                     f"{entry['approval']['head_commit']}")
    for cpu_class, record in sorted(entry.get("reproduced_on", {}).items()):
        lines.append(f"  re-trained:   {record['digest']} on {cpu_class}, {record['date']}, commit "
                     f"{record['training_commit']}")
    return "\n".join(lines)
