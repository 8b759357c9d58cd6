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


def test_other_cpu_class_is_only_a_reason_on_another_cpu():
    here = determinism.cpu_class()
    assert hashing.other_cpu_class({"approved_on_cpu": here}) is None
    assert hashing.other_cpu_class({}) is None  # an entry from before classes were recorded is held to its bytes
    assert "approved on" in hashing.other_cpu_class({"approved_on_cpu": "GenuineIntel family 6 model 0; L1d 1K"})
    assert "recorded" in hashing.other_cpu_class({"not_reproduced_on_cpu": [here]})


@pytest.mark.slow
@pytest.mark.parametrize("name", APPROVED)
def test_retraining_reproduces_the_approved_bytes(name, tmp_path):
    """What every validator relies on: the spec's command, in a fresh process, gives the approved model exactly.
    Decided before training: on a CPU class that cannot reproduce the entry, nothing is trained."""
    approved = LOCK["models"][name]
    reason = hashing.other_cpu_class(approved)
    if reason:
        pytest.skip(f"{name}: approved bytes are reproducible on their own CPU class only: {reason}")
    spec = registry.get(name)
    proc = subprocess.run(
        [sys.executable, "train.py", "--seed", "42", "--export-format", "savedmodel", "--out-dir", str(tmp_path)],
        cwd=spec.package_dir, capture_output=True, text=True, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert f"{name}: reproduced the approved bytes" in proc.stdout, proc.stdout[-2000:]
    retrained = hashing.compute_manifest(tmp_path, spec.artifact)
    assert hashing.diff_files(approved["files"], retrained["files"]) == []
    assert retrained["digest"] == approved["digest"]
    committed = json.loads((spec.weights_dir / "metrics.json").read_text())
    fresh = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("metrics", "dataset", "determinism"):
        assert metrics.deterministic_part(fresh)[key] == metrics.deterministic_part(committed)[key], key
