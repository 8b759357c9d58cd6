"""Training speed of a small CNN (64x64x3, ~150k params) under several determinism configurations.

Each configuration runs in its own process with its environment set before TensorFlow starts; prints images/s
(median of --repeats timed epochs) so the cost of the pinned settings can be read as a ratio.
usage: python scripts/bench_determinism.py [--repeats 3]
"""

import argparse
import json
import os
import subprocess
import sys

from veid_ml import determinism

CONFIGS = {
    "pinned (oneDNN opts on, AVX2, 2 threads)": {},
    "oneDNN opts off (Eigen kernels), AVX2, 2 threads": {"TF_ENABLE_ONEDNN_OPTS": "0"},
    "pinned but 1 thread": {"TF_NUM_INTRAOP_THREADS": "1", "OMP_NUM_THREADS": "1"},
    "unpinned TF defaults (oneDNN on, native ISA)": None,
}

WORKER = r"""
import json, os, time
import numpy as np, tensorflow as tf, keras
tf.config.threading.set_intra_op_parallelism_threads(int(os.environ.get("TF_NUM_INTRAOP_THREADS", "0")))
tf.config.threading.set_inter_op_parallelism_threads(int(os.environ.get("TF_NUM_INTEROP_THREADS", "0")))
if os.environ.get("TF_DETERMINISTIC_OPS") == "1":
    tf.config.experimental.enable_op_determinism()
keras.utils.set_random_seed(42)
n = 4096
x = np.random.default_rng(0).random((n, 64, 64, 3), dtype=np.float32)
y = np.random.default_rng(1).integers(0, 2, n).astype("float32")
L = keras.layers
m = keras.Sequential([keras.Input((64, 64, 3))] + [l for f in (32, 64, 96, 128) for l in (
    L.Conv2D(f, 3, padding="same", use_bias=False), L.BatchNormalization(), L.ReLU(), L.MaxPooling2D())]
    + [L.GlobalAveragePooling2D(), L.Dense(1, activation="sigmoid")])
m.compile("adam", "binary_crossentropy", jit_compile=False)
m.fit(x[:512], y[:512], epochs=1, batch_size=64, verbose=0)
rates = []
for _ in range(REPEATS):
    t = time.perf_counter(); m.fit(x, y, epochs=1, batch_size=64, verbose=0); rates.append(n / (time.perf_counter() - t))
print(json.dumps({"params": m.count_params(), "img_per_s": sorted(rates)[len(rates) // 2]}))
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    base = None
    for name, overrides in CONFIGS.items():
        if overrides is None:
            env = {k: v for k, v in os.environ.items() if k not in determinism.FORCED_ENV}
            env["TF_CPP_MIN_LOG_LEVEL"] = "2"
        else:
            env = determinism.pinned_environ()
            env.update(overrides)
        out = subprocess.run([sys.executable, "-c", WORKER.replace("REPEATS", str(args.repeats))], env=env,
                             capture_output=True, text=True, check=True)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        base = base or result["img_per_s"]
        print(f"{name:48s} {result['img_per_s']:8.0f} img/s  ({result['img_per_s'] / base:.2f}x pinned)"
              f"  params={result['params']}", flush=True)


if __name__ == "__main__":
    main()
