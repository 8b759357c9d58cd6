"""The one determinism entry: call `configure()` before TensorFlow is imported, in every train script and inference entry.

What changes trained weights on CPU (measured on TF 2.21, tensorflow-cpu wheel): the intra-op thread count, oneDNN
custom ops on/off, and the instruction set oneDNN's sgemm dispatches to at run time (AVX2 vs AVX-512), even with
TF_ENABLE_ONEDNN_OPTS=0, because Eigen's contractions call that sgemm. So the whole configuration is forced here,
whatever the caller's environment holds, and a CPU that cannot run it is refused instead of silently differing.
"""

import os
import platform
import random
import sys
from pathlib import Path

DEFAULT_SEED = 42
# PYTHONHASHSEED only takes effect when the interpreter starts, so it is fixed (not the training seed) and enforced by
# re-executing the interpreter when the environment disagrees.
PYTHON_HASH_SEED = "42"
# Fixed, machine-independent thread counts. Two intra-op threads is the fastest setting on the reference 2-core
# machines and, with the ISA pinned, gives the same bytes on 1 or 2 cores (tests/test_determinism.py proves it).
INTRA_OP_THREADS = 2
INTER_OP_THREADS = 1
# oneDNN may use at most AVX2 so AVX2-only and AVX-512 machines pick the same kernels and summation order.
PINNED_ISA = "AVX2"
REQUIRED_CPU_FLAGS = ("avx", "avx2", "fma")

FORCED_ENV = {
    "TF_DETERMINISTIC_OPS": "1",
    "TF_CUDNN_DETERMINISTIC": "1",
    "PYTHONHASHSEED": PYTHON_HASH_SEED,
    "CUDA_VISIBLE_DEVICES": "",
    # oneDNN's custom kernels on: several times faster CNN training than Eigen's (the determinism benchmark) and,
    # with the ISA, fp-math mode and thread count pinned, bit-exact across processes, cores and environments.
    "TF_ENABLE_ONEDNN_OPTS": "1",
    "ONEDNN_MAX_CPU_ISA": PINNED_ISA,
    "DNNL_MAX_CPU_ISA": PINNED_ISA,  # the pre-2.0 oneDNN spelling, still honoured
    "ONEDNN_DEFAULT_FPMATH_MODE": "STRICT",  # no implicit bf16/tf32 down-conversion
    "OMP_NUM_THREADS": str(INTRA_OP_THREADS),
    "MKL_NUM_THREADS": str(INTRA_OP_THREADS),
    "TF_NUM_INTRAOP_THREADS": str(INTRA_OP_THREADS),
    "TF_NUM_INTEROP_THREADS": str(INTER_OP_THREADS),
    "TF_FLAG_SAVED_MODEL_FINGERPRINTING": "false",  # fingerprint.pb holds a random uuid: never written
    "KERAS_BACKEND": "tensorflow",
    "TF_CPP_MIN_LOG_LEVEL": "2",
}
# Variables that would change kernels or compilation if a caller set them; removed, not overridden.
REMOVED_ENV = ("TF_XLA_FLAGS", "XLA_FLAGS", "TF_GPU_ALLOCATOR", "ONEDNN_VERBOSE")
REEXEC_MARKER = "VEID_ML_DETERMINISM_REEXEC"


class DeterminismError(RuntimeError):
    """The process cannot produce or score consensus artifacts."""


def cpu_flags() -> set[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_class() -> str:
    """The CPU model and cache sizes, e.g. 'AuthenticAMD family 25 model 17; L1d 32K L2 1024K L3 32768K'.

    Pinning the ISA is not enough across CPU models: oneDNN's and Eigen's kernels size their blocks (and so the order
    of their float sums) from the cache sizes they read at run time, and oneDNN promises identical results only on the
    same CPU (uxlfoundation/oneDNN#1443). Approved bytes are therefore reproducible on CPUs of their own class only
    (what another class gave: each model's NOTES.md).
    """
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if not sep:
                    break  # end of the first processor's block
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    caches = []
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level, kind, size = ((index / n).read_text().strip() for n in ("level", "type", "size"))
        except OSError:
            continue
        if kind != "Instruction":
            caches.append(f"L{level}{'d' if kind == 'Data' else ''} {size}")
    return (f"{fields.get('vendor_id', platform.machine())} family {fields.get('cpu family', '?')} "
            f"model {fields.get('model', '?')}; {' '.join(caches) or 'caches unknown'}")


def check_cpu() -> None:
    """Refuse CPUs that cannot run the pinned configuration: they would compute different bytes."""
    machine = platform.machine().lower()
    if machine not in ("x86_64", "amd64"):
        raise DeterminismError(
            f"consensus models need an x86-64 CPU with {PINNED_ISA}; this machine is {machine!r}, whose kernels "
            "compute different floating-point results. Train and score on an x86-64 validator.")
    missing = [f for f in REQUIRED_CPU_FLAGS if f not in cpu_flags()]
    if missing:
        raise DeterminismError(
            f"this CPU lacks {', '.join(missing)}; consensus models are pinned to oneDNN's {PINNED_ISA} kernels, "
            "and a CPU without them would silently compute different bytes. Use an x86-64 CPU with AVX2 and FMA.")


def _env_is_pinned(env) -> bool:
    return all(env.get(k) == v for k, v in FORCED_ENV.items()) and not any(k in env for k in REMOVED_ENV)


def pinned_environ(base=None) -> dict[str, str]:
    """`base` (default os.environ) with the forced settings applied: the environment a consensus process runs in."""
    env = dict(os.environ if base is None else base)
    for k in REMOVED_ENV:
        env.pop(k, None)
    env.update(FORCED_ENV)
    return env


def configure(seed: int = DEFAULT_SEED, reexec: bool = True) -> dict:
    """Pin everything that affects model bytes; returns the settings for metrics.json's "determinism".

    With reexec=True (train scripts), a process whose environment differs is replaced by a fresh interpreter with the
    pinned environment, because PYTHONHASHSEED and some TF/oneDNN variables are only read at start-up, and a CPU that
    cannot run the pinned float kernels is refused (check_cpu). Inference entries pass reexec=False: they pin what can
    still be pinned and refuse if TensorFlow was imported too early, on any CPU: the approved models are integer
    consensus graphs, whose output bytes do not depend on the CPU's kernels.
    """
    if reexec:
        check_cpu()
    if not _env_is_pinned(os.environ):
        if "tensorflow" in sys.modules:
            raise DeterminismError(
                "TensorFlow was imported before veid_ml.determinism.configure(); its thread pools and oneDNN "
                "settings are already fixed. Call configure() first (before importing tensorflow or keras).")
        if reexec:
            if os.environ.get(REEXEC_MARKER):
                raise DeterminismError("environment could not be pinned even after re-executing the interpreter")
            env = pinned_environ()
            env[REEXEC_MARKER] = "1"
            sys.stdout.flush()
            sys.stderr.flush()
            os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)
        os.environ.clear()
        os.environ.update(pinned_environ())

    random.seed(seed)
    import numpy as np

    np.random.seed(seed)
    tf = _import_tensorflow()
    _configure_tensorflow(tf)
    import keras

    keras.utils.set_random_seed(seed)  # seeds Python, NumPy and TensorFlow (tf.random.set_seed) together
    return settings(seed)


# What TensorFlow's C++ side prints on import before its log level applies: absl's preamble, and oneDNN's "you may see
# slightly different numerical results" notice, which is wrong here (the order of every sum is pinned above).
_IMPORT_NOTICES = ("WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
                   "port.cc:153] oneDNN custom operations are on.")


def _import_tensorflow():
    """Import TensorFlow with stderr captured at the file-descriptor level; replay everything except _IMPORT_NOTICES."""
    import tempfile

    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines(keepends=True):
                if not any(notice in line for notice in _IMPORT_NOTICES):
                    sys.stderr.write(line)
            sys.stderr.flush()
    return tf


def _configure_tensorflow(tf) -> None:
    try:
        tf.config.threading.set_intra_op_parallelism_threads(INTRA_OP_THREADS)
        tf.config.threading.set_inter_op_parallelism_threads(INTER_OP_THREADS)
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError as e:  # the runtime was already initialised with other settings
        if (tf.config.threading.get_intra_op_parallelism_threads() != INTRA_OP_THREADS
                or tf.config.threading.get_inter_op_parallelism_threads() != INTER_OP_THREADS):
            raise DeterminismError(f"TensorFlow runtime started before configure(): {e}") from e
    tf.config.experimental.enable_op_determinism()
    tf.config.optimizer.set_jit(False)  # XLA would compile other kernels than the exported graph runs


def settings(seed: int = DEFAULT_SEED) -> dict:
    """What metrics.json records under "determinism" (the spec's three keys first)."""
    return {
        "tf_deterministic_ops": True,
        "random_seed": int(seed),
        "cpu_only": True,
        "op_determinism": True,
        "python_hash_seed": int(PYTHON_HASH_SEED),
        "intra_op_threads": INTRA_OP_THREADS,
        "inter_op_threads": INTER_OP_THREADS,
        "onednn_opts": FORCED_ENV["TF_ENABLE_ONEDNN_OPTS"] == "1",
        "onednn_max_cpu_isa": PINNED_ISA,
        "onednn_fpmath_mode": FORCED_ENV["ONEDNN_DEFAULT_FPMATH_MODE"],
        "xla_jit": False,
        "saved_model_fingerprint": False,
        "required_cpu": f"x86_64 with {'+'.join(f.upper() for f in REQUIRED_CPU_FLAGS)}",
    }
