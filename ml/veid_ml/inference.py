"""Inference that loads only approved bytes: every file is hashed and checked against ml/models.lock.json first.

    from veid_ml import inference
    liveness = inference.load_approved("liveness_detection")      # raises UnapprovedModelError on any mismatch
    out = liveness(image=batch)                                     # dict of named output tensors

determinism.configure(reexec=False) runs before TensorFlow is imported, so scores are computed with the same kernels,
instruction set and threads as every other validator (and refused on a CPU that cannot).
"""

from pathlib import Path

from veid_ml import determinism, hashing, registry


class UnapprovedModelError(RuntimeError):
    """The model on disk is not byte-for-byte the approved one; scoring with it would break consensus."""


def check_approved(name: str, lock_path: Path = registry.LOCK_PATH) -> dict:
    """The lock entry of `name` if every artifact file matches it; raises UnapprovedModelError naming each problem."""
    lock = hashing.read_lock(lock_path)
    if name not in lock["models"]:
        raise UnapprovedModelError(f"{name} has no approved digest in {lock_path}; train it with `veid-ml train`")
    problems = hashing.verify(lock_path, [name])[name]
    if problems:
        raise UnapprovedModelError(f"{name} does not match its approved digest:\n  " + "\n  ".join(problems))
    return lock["models"][name]


def load_approved(name: str, signature: str = "serving_default", lock_path: Path = registry.LOCK_PATH):
    """Verify, then load one signature of an approved model as a callable returning a dict of tensors."""
    entry = check_approved(name, lock_path)
    determinism.configure(reexec=False)
    from veid_ml import export

    return export.load_serving(Path(lock_path).parent / entry["weights_dir"] / entry["artifact"], signature)
