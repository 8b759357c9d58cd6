import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TINY_TRAIN = ROOT / "tests" / "fixtures" / "tiny_train.py"


def run_tiny(out_dir: Path, env_overrides: dict | None = None, prefix: list[str] | None = None) -> str:
    """Train and export the tiny model in a fresh process; returns the digest it printed."""
    env = dict(os.environ)
    env.update(env_overrides or {})
    cmd = [*(prefix or []), sys.executable, str(TINY_TRAIN), str(out_dir)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory) -> Path:
    """One tiny model exported by a separate process, shared by the tests that only read it."""
    out = tmp_path_factory.mktemp("tiny") / "weights"
    run_tiny(out)
    return out


def quick_train(model_name: str, out_dir: Path, timeout: int = 600) -> dict:
    """Run a model's train.py with the seconds-long quick profile into out_dir (lock untouched); its metrics.json."""
    from veid_ml import registry

    proc = subprocess.run([sys.executable, "train.py", "--profile", "quick", "--out-dir", str(out_dir)],
                          cwd=registry.get(model_name).package_dir, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((Path(out_dir) / "metrics.json").read_text())


def run_python(code: str, timeout: int = 300) -> str:
    """Run code in a fresh interpreter from ml/ (so it can configure determinism first); its last stdout line."""
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT / "ml", capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout.strip().splitlines()[-1]
