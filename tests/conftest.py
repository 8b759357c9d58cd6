import json
import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TINY_TRAIN = ROOT / "tests" / "fixtures" / "tiny_train.py"
FRESH_PROCESS = Path(__file__).resolve().parent / "fresh_process.py"


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
    """Run a model's train.py with the seconds-long quick profile into out_dir; its metrics.json."""
    from veid_ml import registry

    proc = subprocess.run([sys.executable, "train.py", "--profile", "quick", "--out-dir", str(out_dir)],
                          cwd=registry.get(model_name).package_dir, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((Path(out_dir) / "metrics.json").read_text())


def approved_model_dir(name: str) -> Path:
    """The committed, approved SavedModel of `name`. It is part of the repository, so its absence fails the test."""
    from veid_ml import registry

    spec = registry.get(name)
    path = spec.weights_dir / spec.artifact
    if not (path / "saved_model.pb").is_file():
        pytest.fail(f"the approved {name} model is missing: {path / 'saved_model.pb'} is committed to the repository "
                    f"(restore it with git, or `veid-ml train --model {name}` then `veid-ml approve {name}`)",
                    pytrace=False)
    return path


def run_in_fresh_process(fn, *args, configure: bool = True, timeout: int = 300, **kwargs):
    """fn(*args, **kwargs) in a new interpreter; its return value (pickled back).

    fn must be a module-level function of a test module (or conftest). The interpreter starts with
    determinism.pinned_environ() and calls determinism.configure(reexec=False) before it imports fn's module, so fn
    may import TensorFlow freely: this is how a test scores with the kernels every validator uses, whatever this pytest
    process has already imported. configure=False: this process's environment as it is and no configure, for checks
    that need another, unconfigured process (generated data independent of the hash seed; configure's own refusals).
    A failure in the child fails the test with the tail of the child's stderr (its traceback).
    """
    __tracebackhide__ = True  # a failure points at the test's line, not at this helper
    from veid_ml import determinism

    module = sys.modules.get(fn.__module__)
    if getattr(module, fn.__name__, None) is not fn:
        raise TypeError(f"run_in_fresh_process needs a module-level function, not {fn.__qualname__!r}")
    with tempfile.TemporaryDirectory(prefix="fresh-process-") as tmp:
        call, result = Path(tmp) / "call.pickle", Path(tmp) / "result.pickle"
        call.write_bytes(pickle.dumps((args, kwargs)))
        cmd = [sys.executable, str(FRESH_PROCESS), fn.__module__, fn.__name__, str(call), str(result)]
        if not configure:
            cmd.append("--no-configure")
        env = determinism.pinned_environ() if configure else dict(os.environ)
        # fn's module is imported by its name, as pytest imported it: from its own folder (tests/ or one below it)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(Path(module.__file__).parent), env.get("PYTHONPATH"))))
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            pytest.fail(f"{fn.__module__}.{fn.__name__} failed in a fresh process (exit {proc.returncode}):\n"
                        f"{proc.stderr[-3000:]}")
        return pickle.loads(result.read_bytes())
