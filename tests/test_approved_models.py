"""The committed, approved models: their bytes match the lock, and re-training from scratch reproduces them."""

import json
import subprocess
import sys

import pytest

from veid_ml import determinism, hashing, metrics, registry

LOCK = hashing.read_lock(registry.LOCK_PATH)
APPROVED = sorted(LOCK["models"])


def test_lock_covers_every_registered_model():
    assert sorted(registry.MODELS) == APPROVED


@pytest.mark.parametrize("name", APPROVED)
def test_committed_artifacts_verify(name):
    assert hashing.verify(registry.LOCK_PATH, [name]) == {name: []}


def test_each_cpu_class_is_held_to_its_own_recorded_bytes():
    here, other = determinism.cpu_class(), "GenuineIntel family 6 model 0; L1d 1K"
    approved = {"digest": "sha256:a", "files": {"f": "a"}, "approved_on_cpu": here}
    assert hashing.expected_bytes(approved)["digest"] == "sha256:a" and hashing.other_cpu_class(approved) is None
    old = {"digest": "sha256:a", "files": {"f": "a"}}  # an entry from before classes were recorded: held to its bytes
    assert hashing.expected_bytes(old)["digest"] == "sha256:a"
    elsewhere = {"digest": "sha256:a", "files": {"f": "a"}, "approved_on_cpu": other}
    assert hashing.expected_bytes(elsewhere) is None and other in hashing.other_cpu_class(elsewhere)
    recorded = {**elsewhere, "reproduced_on": {here: {"digest": "sha256:b", "files": {"f": "b"}}}}
    assert hashing.expected_bytes(recorded)["digest"] == "sha256:b" and hashing.other_cpu_class(recorded) is None
    assert "recorded as one" in hashing.other_cpu_class({**elsewhere, "not_reproduced_on_cpu": [here]})
    assert hashing.expected_bytes({**old, "not_reproduced_on_cpu": [here]}) is None  # unrecorded class, known to differ


@pytest.mark.slow
@pytest.mark.parametrize("name", APPROVED)
def test_retraining_reproduces_the_approved_bytes(name, tmp_path):
    """What every validator relies on: the spec's command, in a fresh process, gives the approved model exactly on the
    approving CPU class, and on every other class the bytes recorded for it (`veid-ml record-retraining`). Decided
    before training: on a class with nothing recorded, nothing is trained."""
    approved = LOCK["models"][name]
    expected = hashing.expected_bytes(approved)
    if expected is None:
        pytest.skip(f"{name}: no bytes recorded for this CPU class: {hashing.other_cpu_class(approved)}")
    spec = registry.get(name)
    proc = subprocess.run(
        [sys.executable, "train.py", "--seed", "42", "--export-format", "savedmodel", "--out-dir", str(tmp_path)],
        cwd=spec.package_dir, capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert f"{name}: reproduced the " in proc.stdout, proc.stdout[-2000:]
    retrained = hashing.compute_manifest(tmp_path, spec.artifact)
    assert hashing.diff_files(expected["files"], retrained["files"]) == []
    assert retrained["digest"] == expected["digest"]
    if expected["source"] == "approved":  # the approved run's metrics.json is the approving class's
        committed = json.loads((spec.weights_dir / "metrics.json").read_text())
        fresh = json.loads((tmp_path / "metrics.json").read_text())
        for key in ("metrics", "dataset", "determinism"):
            assert metrics.deterministic_part(fresh)[key] == metrics.deterministic_part(committed)[key], key
