"""Governance: `veid-ml verify` accepts exactly the approved bytes and names every changed, missing or extra file."""

import json
import shutil
import subprocess
import sys

import pytest

from conftest import run_in_fresh_process
from veid_ml import cli, determinism, hashing, inference

ARTIFACT = "tiny_model"


@pytest.fixture
def approved(tiny_export, tmp_path):
    weights = tmp_path / "ml" / "tiny" / "weights"
    shutil.copytree(tiny_export, weights)
    lock = tmp_path / "ml" / "models.lock.json"
    hashing.record_approval(lock, "tiny", weights, hashing.compute_manifest(weights, ARTIFACT), cpu_class="test",
                            provenance={})
    return lock, weights


def run_verify(lock, capsys):
    rc = cli.main(["verify", "--lock", str(lock)])
    return rc, capsys.readouterr().out


def test_untouched_model_verifies(approved, capsys):
    lock, _ = approved
    rc, out = run_verify(lock, capsys)
    assert rc == 0, out
    assert "OK   tiny sha256:" in out
    entry = json.loads(lock.read_text())["models"]["tiny"]
    assert entry["weights_dir"] == "tiny/weights"
    assert entry["digest"] == hashing.model_digest(entry["files"])


@pytest.mark.parametrize("victim", ["tiny_model/saved_model.pb", "tiny_model/variables/variables.index",
                                    "tiny_model/variables/variables.data-00000-of-00001", "tiny_model_frozen.pb"])
def test_one_flipped_byte_in_any_file_is_refused(approved, capsys, victim):
    lock, weights = approved
    path = weights / victim
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    rc, out = run_verify(lock, capsys)
    assert rc == 1
    assert f"changed: tiny/weights/{victim}" in out


def test_missing_file_is_refused(approved, capsys):
    lock, weights = approved
    (weights / "tiny_model" / "variables" / "variables.index").unlink()
    rc, out = run_verify(lock, capsys)
    assert rc == 1 and "missing: tiny/weights/tiny_model/variables/variables.index" in out


def test_extra_file_is_refused(approved, capsys):
    lock, weights = approved
    (weights / "tiny_model" / "assets").mkdir(exist_ok=True)
    (weights / "tiny_model" / "assets" / "vocab.txt").write_text("smuggled\n")
    rc, out = run_verify(lock, capsys)
    assert rc == 1 and "extra: tiny/weights/tiny_model/assets/vocab.txt" in out


def test_missing_manifest_means_incomplete_export(approved, capsys):
    lock, weights = approved
    (weights / hashing.MANIFEST_NAME).unlink()
    rc, out = run_verify(lock, capsys)
    assert rc == 1 and "export incomplete" in out


def test_verify_command_exit_status(approved):
    lock, weights = approved
    ok = subprocess.run([sys.executable, "-m", "veid_ml.cli", "verify", "--lock", str(lock)], capture_output=True)
    assert ok.returncode == 0
    (weights / "tiny_model_frozen.pb").unlink()
    bad = subprocess.run([sys.executable, "-m", "veid_ml.cli", "verify", "--lock", str(lock)],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "missing: tiny/weights/tiny_model_frozen.pb" in bad.stdout


def test_broken_lock_file_is_a_clear_error(tmp_path, capsys):
    lock = tmp_path / "models.lock.json"
    lock.write_text("{not json")
    rc = cli.main(["verify", "--lock", str(lock)])
    assert rc == 2 and "not valid JSON" in capsys.readouterr().err


def score_with_the_approved_model(lock) -> float:
    """Run in a fresh process: inference.load_approved's tiny model on one grey image."""
    import numpy as np

    from veid_ml import inference

    serve = inference.load_approved("tiny", lock_path=lock)
    return float(serve(image=np.full((1, 24, 24, 3), 0.5, np.float32))["probability"].numpy()[0, 0])


def test_inference_loads_only_approved_bytes(approved, monkeypatch):
    lock, weights = approved
    assert 0.0 < run_in_fresh_process(score_with_the_approved_model, lock) < 1.0
    path = weights / "tiny_model" / "variables" / "variables.data-00000-of-00001"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x80
    path.write_bytes(bytes(data))

    def went_on_to_load(*args, **kwargs):
        raise AssertionError("load_approved went on to load a model whose bytes were changed")

    # refused here, in this process: the hashes are checked before determinism.configure() and TensorFlow
    monkeypatch.setattr(determinism, "configure", went_on_to_load)
    with pytest.raises(inference.UnapprovedModelError, match="changed: tiny/weights/tiny_model/variables/variables"):
        inference.load_approved("tiny", lock_path=lock)
