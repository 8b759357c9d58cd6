import os
import subprocess
import sys
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
