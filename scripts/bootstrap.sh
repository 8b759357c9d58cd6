#!/usr/bin/env bash
# Create .venv and install exactly the pinned, hash-checked dependencies (idempotent: reruns only when
# ml/requirements-deterministic.txt changes). Python 3.11 is required: the pins and approved model bytes are for it.
set -euo pipefail
cd "$(dirname "$0")/.."
REQ=ml/requirements-deterministic.txt
STAMP=.venv/.installed-requirements.sha256
PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
"$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || {
  echo "bootstrap: Python 3.11 is required (found $("$PY" --version 2>&1)); set PYTHON=/path/to/python3.11" >&2
  exit 1
}
# System packages: Go (golang-go, Debian's 1.19) builds and tests pkg/inference against the TF C API in the wheel.
if ! command -v go >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing golang-go with apt-get" >&2
    apt-get install -y -qq golang-go >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq golang-go >/dev/null; }
  else
    echo "bootstrap: Go is missing; install it (Debian/Ubuntu: sudo apt-get install golang-go) for pkg/inference" >&2
  fi
fi
# qemu-user: the consensus test runs the integer graphs under emulated CPUs (qemu-x86_64 -cpu Haswell-v4, EPYC-Rome-v1).
if ! command -v qemu-x86_64 >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing qemu-user with apt-get" >&2
    apt-get install -y -qq qemu-user >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq qemu-user >/dev/null; }
  else
    echo "bootstrap: qemu-x86_64 is missing; install it (Debian/Ubuntu: sudo apt-get install qemu-user) for the consensus test" >&2
  fi
fi
want=$(sha256sum "$REQ" pyproject.toml | sha256sum | cut -d' ' -f1)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
  exit 0
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r "$REQ"
.venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
echo "$want" > "$STAMP"
