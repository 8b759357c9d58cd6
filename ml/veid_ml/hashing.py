"""Model hashing and governance: per-model manifests, one model digest, and the repo-level lock of approved digests.

The model digest follows the OpenSSF model-signing idea: hash every artifact file, then hash the sorted list of
(path, file digest) pairs, so one value pins the whole model and a mismatch can still be traced to a file.
"""

import hashlib
import json
import os
from pathlib import Path

from veid_ml import determinism
from veid_ml.atomic import write_text_atomic

MANIFEST_NAME = "manifest.json"
LOCK_VERSION = 1


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def float_artifact(artifact: str) -> str:
    """The float model's directory beside an integer consensus artifact: facial_model -> facial_float."""
    return artifact.removesuffix("_model") + "_float"


def artifact_paths(weights_dir: Path, artifact: str) -> list[str]:
    """Every file of a model, as sorted posix paths: the SavedModel directory's files and the frozen graph, of the
    artifact and of its float twin where there is one (veid_ml.export: both are governed)."""
    weights_dir = Path(weights_dir)
    files = []
    for name in (artifact, float_artifact(artifact)):
        saved_model = weights_dir / name
        if saved_model.is_dir():
            files += [p.relative_to(weights_dir).as_posix() for p in saved_model.rglob("*") if p.is_file()]
        if (weights_dir / f"{name}_frozen.pb").is_file():
            files.append(f"{name}_frozen.pb")
    return sorted(files)


def model_digest(files: dict[str, str]) -> str:
    lines = "".join(f"{digest}  {path}\n" for path, digest in sorted(files.items()))
    return "sha256:" + hashlib.sha256(lines.encode()).hexdigest()


def compute_manifest(weights_dir: Path, artifact: str) -> dict:
    files = {rel: file_sha256(Path(weights_dir) / rel) for rel in artifact_paths(weights_dir, artifact)}
    return {"artifact": artifact, "algorithm": "sha256", "files": files, "digest": model_digest(files)}


def write_manifest(weights_dir: Path, artifact: str) -> dict:
    manifest = compute_manifest(weights_dir, artifact)
    write_text_atomic(Path(weights_dir) / MANIFEST_NAME, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} not found: {path}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{what} {path} is not valid JSON: {e}") from None


def read_lock(lock_path: Path) -> dict:
    if not Path(lock_path).exists():
        return {"version": LOCK_VERSION, "models": {}}
    lock = read_json(lock_path, "model lock file")
    if lock.get("version") != LOCK_VERSION or not isinstance(lock.get("models"), dict):
        raise ValueError(f"model lock file {lock_path} has an unknown layout (expected version {LOCK_VERSION})")
    return lock


def record_approval(lock_path: Path, model_name: str, weights_dir: Path, manifest: dict, cpu_class: str,
                    provenance: dict, approval: dict | None = None) -> None:
    """Write a model's lock entry: exactly these bytes, approved as trained on `cpu_class` (re-training reproduces them
    bit for bit on CPUs of that class; see determinism.cpu_class). Only veid_ml.governance.approve calls this."""
    lock = read_lock(lock_path)
    rel_dir = os.path.relpath(Path(weights_dir).resolve(), Path(lock_path).resolve().parent)
    lock["models"][model_name] = {
        "weights_dir": Path(rel_dir).as_posix(),
        "artifact": manifest["artifact"],
        "digest": manifest["digest"],
        "files": manifest["files"],
        "approved_on_cpu": cpu_class,
        "provenance": provenance,
        "approval": approval or {},
    }
    write_text_atomic(lock_path, json.dumps(lock, indent=2, sort_keys=True) + "\n")


def record_reproduction(lock_path: Path, model_name: str, manifest: dict, cpu_class: str, record: dict) -> None:
    """Record what re-training the approved model's code gives on another CPU class (its digest and files, when and
    from which commit), so that class's re-training is checked against it instead of skipped. The approved bytes and
    weights/ are unchanged. Only veid_ml.governance.record_reproduction calls this."""
    lock = read_lock(lock_path)
    entry = lock["models"][model_name]
    entry.setdefault("reproduced_on", {})[cpu_class] = {"digest": manifest["digest"], "files": manifest["files"],
                                                         **record}
    if cpu_class in entry.get("not_reproduced_on_cpu", []):  # now known exactly: the digest replaces the mark
        entry["not_reproduced_on_cpu"] = [c for c in entry["not_reproduced_on_cpu"] if c != cpu_class]
        if not entry["not_reproduced_on_cpu"]:
            del entry["not_reproduced_on_cpu"]
    write_text_atomic(lock_path, json.dumps(lock, indent=2, sort_keys=True) + "\n")


def expected_bytes(entry: dict, cpu_class: str | None = None) -> dict | None:
    """{"digest", "files", "source"} that re-training a lock entry must give on `cpu_class` (default: this machine's):
    the approved bytes on the approving class (or for an entry from before classes were recorded), the recorded
    re-training on another class; None where this class's bytes are unknown. oneDNN and Eigen block their float sums
    by the cache sizes they read at run time, so each CPU class has its own bytes (determinism.cpu_class)."""
    here = cpu_class or determinism.cpu_class()
    recorded = entry.get("reproduced_on", {}).get(here)
    if recorded is not None:
        return {"digest": recorded["digest"], "files": recorded["files"], "source": f"recorded for {here}"}
    if here in entry.get("not_reproduced_on_cpu", []):  # known to differ here, bytes not recorded
        return None
    approved_on = entry.get("approved_on_cpu")
    if approved_on is None or approved_on == here:
        return {"digest": entry["digest"], "files": entry["files"], "source": "approved"}
    return None


def other_cpu_class(entry: dict) -> str | None:
    """Why this machine cannot check a lock entry's re-training (None: it can, against expected_bytes)."""
    if expected_bytes(entry) is not None:
        return None
    here = determinism.cpu_class()
    known = sorted({entry.get("approved_on_cpu"), *entry.get("reproduced_on", {})} - {None})
    if here in entry.get("not_reproduced_on_cpu", []):
        return f"this CPU ({here}) is recorded as one that computes other bytes for it, digest not recorded"
    return f"bytes are recorded for {'; '.join(known)}; this is {here}"


def diff_files(expected: dict[str, str], actual: dict[str, str], prefix: str = "") -> list[str]:
    problems = [f"changed: {prefix}{p}" for p in sorted(expected) if p in actual and actual[p] != expected[p]]
    problems += [f"missing: {prefix}{p}" for p in sorted(expected) if p not in actual]
    problems += [f"extra: {prefix}{p}" for p in sorted(actual) if p not in expected]
    return problems


def verify(lock_path: Path, models: list[str] | None = None) -> dict[str, list[str]]:
    """Recompute every approved model's files and compare with the lock. Returns {model: [problems]}; empty = OK."""
    lock_path = Path(lock_path)
    lock = read_lock(lock_path)
    names = sorted(lock["models"]) if models is None else models
    report = {}
    for name in names:
        entry = lock["models"].get(name)
        if entry is None:
            report[name] = [f"not in the lock file {lock_path}"]
            continue
        weights_dir = lock_path.parent / entry["weights_dir"]
        actual = compute_manifest(weights_dir, entry["artifact"])
        problems = diff_files(entry["files"], actual["files"], prefix=f"{entry['weights_dir']}/")
        if not problems and actual["digest"] != entry["digest"]:
            problems.append(f"digest {actual['digest']} != approved {entry['digest']}")
        manifest_path = weights_dir / MANIFEST_NAME
        if not manifest_path.exists():
            problems.append(f"missing: {entry['weights_dir']}/{MANIFEST_NAME} (export incomplete?)")
        elif read_json(manifest_path, "model manifest").get("digest") != entry["digest"]:
            problems.append(f"changed: {entry['weights_dir']}/{MANIFEST_NAME} digest differs from the lock")
        report[name] = problems
    return report
