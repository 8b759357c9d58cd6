"""Go ≡ Python: the Go package pkg/inference computes the same VEID results as veid_ml.api from the same PNG inputs.

Python writes the golden files on THIS machine (python -m veid_ml.golden: one case of every demo kind, plus PNGs in
other pixel modes), then `go test ./...` in pkg/inference must reproduce every score, decision, reason code and
integer component, and decode every PNG to the same RGB bytes. Golden files are made here, not committed: until the
models are integer-exact (the consensus issue) float kernels may differ between CPU classes, and what this test
proves is that the two languages agree on one machine through the same TF C library.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, approved_model_dir, run_in_fresh_process

PACKAGE = ROOT / "pkg" / "inference"


def _write_golden(out_dir: str) -> str:
    from veid_ml import golden

    return str(golden.write(Path(out_dir)))


@pytest.fixture(scope="module")
def golden_dir(tmp_path_factory):
    for name in ("face_detection", "facial_verification", "liveness_detection", "ocr_extraction"):
        approved_model_dir(name)
    out = tmp_path_factory.mktemp("golden")
    run_in_fresh_process(_write_golden, str(out), timeout=600)
    return out


def _go() -> str:
    go = shutil.which("go")
    if go is None:
        pytest.fail("Go is required for pkg/inference (Debian: apt-get install golang-go; `make venv` installs it "
                    "when run as root)", pytrace=False)
    return go


def test_go_package_reproduces_python_results(golden_dir, tmp_path):
    env = dict(os.environ, VEID_GOLDEN_DIR=str(golden_dir), GOFLAGS="-mod=mod", GOCACHE=str(tmp_path / "gocache"),
               GOPATH=str(tmp_path / "gopath"), GOPROXY="off", CGO_ENABLED="1")
    proc = subprocess.run([_go(), "test", "-count=1", "-v", "./..."], cwd=PACKAGE, env=env, capture_output=True,
                          text=True, timeout=900)
    sys.stdout.write(proc.stdout[-6000:])
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-3000:]
    assert "--- PASS" in proc.stdout and "--- FAIL" not in proc.stdout


def test_go_vet_is_clean(tmp_path):
    env = dict(os.environ, GOCACHE=str(tmp_path / "gocache"), GOPATH=str(tmp_path / "gopath"), GOPROXY="off")
    proc = subprocess.run([_go(), "vet", "./..."], cwd=PACKAGE, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_fingerprint_reproduces_the_golden_results_on_the_machine_that_wrote_them(golden_dir):
    """`veid-ml fingerprint --golden DIR`, the cross-CPU check of the whole pipeline, agrees with itself here."""
    proc = subprocess.run([str(Path(sys.executable).parent / "veid-ml"), "fingerprint", "--golden", str(golden_dir)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "DIFFERS" not in proc.stdout and "cases as stored" in proc.stdout
