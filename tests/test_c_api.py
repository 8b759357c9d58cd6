"""A non-Python consumer: a C program built against the TF C API in the tensorflow wheel (what Go bindings wrap)
loads the SavedModel with tag "serve", runs serving_default and must produce Python's output bytes."""

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from conftest import run_in_fresh_process
from veid_ml import determinism

C_SOURCE = Path(__file__).parent / "c_api" / "run_savedmodel.c"
TF_DIR = Path(sysconfig.get_paths()["purelib"]) / "tensorflow"


def python_probability_bytes(model_dir: Path, x: np.ndarray) -> bytes:
    """Run in a fresh process: serving_default's probability output for x, as raw float32 bytes."""
    from veid_ml import export

    return export.load_serving(model_dir)(image=x)["probability"].numpy().tobytes()


@pytest.fixture(scope="module")
def c_runner(tmp_path_factory) -> Path:
    if shutil.which("gcc") is None:
        pytest.fail("gcc is required for the C API test (install build-essential)")
    exe = tmp_path_factory.mktemp("capi") / "run_savedmodel"
    subprocess.run(["gcc", "-O1", "-o", str(exe), str(C_SOURCE), f"-I{TF_DIR / 'include'}", f"-L{TF_DIR}",
                    "-l:libtensorflow_cc.so.2", "-l:libtensorflow_framework.so.2", f"-Wl,-rpath,{TF_DIR}"],
                   check=True)
    return exe


def test_c_api_output_equals_python_bit_for_bit(tiny_export, c_runner, tmp_path):
    x = np.random.default_rng(1).random((4, 24, 24, 3), dtype=np.float32)
    x.tofile(tmp_path / "input.f32")
    model_dir = tiny_export / "tiny_model"
    py_out = run_in_fresh_process(python_probability_bytes, model_dir, x)
    signature = _serving_signature(model_dir)
    input_op = signature.inputs["image"].name.split(":")[0]
    c = subprocess.run([str(c_runner), str(model_dir), input_op, str(tmp_path / "input.f32"), "4", "24", "24", "3",
                        "--", signature.outputs["probability"].name, str(tmp_path / "c.bin")],
                       capture_output=True, text=True, env=determinism.pinned_environ(), timeout=300)
    assert c.returncode == 0, c.stderr[-2000:]
    c_out = (tmp_path / "c.bin").read_bytes()
    assert len(c_out) == 4 * 4
    assert c_out == py_out
    assert np.all(np.isfinite(np.frombuffer(c_out, np.float32)))


def _serving_signature(model_dir: Path):
    """serving_default's SignatureDef (graph tensor names of each named input and output), from saved_model.pb."""
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString((model_dir / "saved_model.pb").read_bytes())
    return sm.meta_graphs[0].signature_def["serving_default"]


def test_saved_model_cli_runs_the_signature(tiny_export, tmp_path):
    np.save(tmp_path / "x.npy", np.full((2, 24, 24, 3), 0.5, np.float32))
    cli = Path(sys.executable).parent / "saved_model_cli"
    out = subprocess.run([str(cli), "run", "--dir", str(tiny_export / "tiny_model"), "--tag_set", "serve",
                          "--signature_def", "serving_default", "--inputs", f"image={tmp_path / 'x.npy'}",
                          "--outdir", str(tmp_path / "out")],
                         capture_output=True, text=True, env=determinism.pinned_environ(), timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    probs = np.load(tmp_path / "out" / "probability.npy")
    assert probs.shape == (2, 1) and np.all((probs >= 0) & (probs <= 1))
