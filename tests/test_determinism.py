"""Determinism: re-training reproduces every exported byte, whatever the process, core set or environment."""

import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import run_in_fresh_process, run_tiny
from veid_ml import determinism, hashing

HOSTILE_ENV = {
    "OMP_NUM_THREADS": "7",
    "TF_NUM_INTRAOP_THREADS": "5",
    "TF_ENABLE_ONEDNN_OPTS": "0",
    "ONEDNN_MAX_CPU_ISA": "AVX512_CORE",
    "PYTHONHASHSEED": "1",
    "TF_DETERMINISTIC_OPS": "0",
    "TF_XLA_FLAGS": "--tf_xla_auto_jit=2",
    "TF_FLAG_SAVED_MODEL_FINGERPRINTING": "true",
}


def all_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def assert_identical(a: Path, b: Path) -> None:
    files = all_files(a)
    assert files == all_files(b)
    assert "tiny_model/saved_model.pb" in files and "tiny_model_frozen.pb" in files
    assert not any(f.endswith("fingerprint.pb") for f in files), "fingerprint.pb holds a random uuid"
    _, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
    assert not mismatch and not errors, f"files differ between runs: {mismatch + errors}"


def test_retraining_in_a_new_process_is_bit_exact(tiny_export, tmp_path):
    digest = run_tiny(tmp_path / "again")
    assert digest == hashing.compute_manifest(tiny_export, "tiny_model")["digest"]
    assert_identical(tiny_export, tmp_path / "again")


def test_hostile_environment_cannot_change_the_bytes(tiny_export, tmp_path):
    run_tiny(tmp_path / "hostile", env_overrides=HOSTILE_ENV)
    assert_identical(tiny_export, tmp_path / "hostile")


@pytest.mark.skipif(shutil.which("taskset") is None, reason="taskset (util-linux) not installed")
def test_one_core_gives_the_same_bytes_as_all_cores(tiny_export, tmp_path):
    run_tiny(tmp_path / "one_core", prefix=["taskset", "-c", "0"])
    assert_identical(tiny_export, tmp_path / "one_core")


def test_a_different_seed_changes_the_bytes(tiny_export, tmp_path):
    # Proves the test above can fail: the training really depends on its random state.
    script = Path(__file__).parent / "fixtures" / "tiny_train.py"
    patched = tmp_path / "tiny_seed7.py"
    patched.write_text(script.read_text().replace("determinism.configure()", "determinism.configure(seed=7)"))
    out = subprocess.run([sys.executable, str(patched), str(tmp_path / "seed7")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] != hashing.compute_manifest(tiny_export, "tiny_model")["digest"]


def configure_after_importing_tensorflow() -> str:
    """Run in a fresh, unconfigured process: TensorFlow imported first, then configure(); its refusal."""
    import tensorflow  # noqa: F401

    try:
        determinism.configure()
    except determinism.DeterminismError as e:
        return str(e)
    return "configure() went on"


def test_configure_refuses_after_tensorflow_was_imported():
    # a process of its own that imports TensorFlow first: the pytest process and the helper's configured one can't
    refusal = run_in_fresh_process(configure_after_importing_tensorflow, configure=False)
    assert "TensorFlow was imported before" in refusal


def test_cpu_without_avx2_is_refused(monkeypatch):
    monkeypatch.setattr(determinism, "cpu_flags", lambda: {"sse4_2", "avx"})
    with pytest.raises(determinism.DeterminismError, match="lacks avx2, fma"):
        determinism.check_cpu()


def test_non_x86_cpu_is_refused(monkeypatch):
    monkeypatch.setattr(determinism.platform, "machine", lambda: "aarch64")
    with pytest.raises(determinism.DeterminismError, match="x86-64"):
        determinism.check_cpu()


def test_inference_configuration_accepts_any_cpu(monkeypatch):
    # integer consensus graphs give the same bytes on every CPU: only training (reexec=True) checks the CPU
    monkeypatch.setattr(determinism.platform, "machine", lambda: "aarch64")
    monkeypatch.setattr(determinism, "cpu_flags", lambda: {"neon"})
    monkeypatch.setattr(determinism, "_env_is_pinned", lambda env: True)
    monkeypatch.setattr(determinism, "_configure_tensorflow", lambda tf: None)  # this process's TF is set up already
    determinism.configure(reexec=False)
    with pytest.raises(determinism.DeterminismError, match="x86-64"):
        determinism.configure(reexec=True)


def test_pinned_environ_overrides_everything_hostile():
    env = determinism.pinned_environ(HOSTILE_ENV)
    for key, value in determinism.FORCED_ENV.items():
        assert env[key] == value
    assert "TF_XLA_FLAGS" not in env


def test_frozen_graph_is_canonical(tiny_export):
    """Frozen-graph node order once differed between processes: it is serialized sorted, and still loads."""
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString((tiny_export / "tiny_model_frozen.pb").read_bytes())
    names = [n.name for n in graph_def.node]
    assert names == sorted(names)
    with tf.Graph().as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
