"""`veid-ml consensus`: do the approved models compute the same output bytes in every execution configuration?

    python -m veid_ml.tools.consensus outputs [--threads N]     # one configuration: JSON of output digests
    veid-ml consensus check [--float] [--qemu]                   # every configuration, against the golden file
    veid-ml consensus golden                                     # rewrite the golden file (after an approval)

`outputs` runs in the configuration its process was started in (threads from --threads, oneDNN and the ISA pin from
the environment, the CPU from whoever started it: qemu-x86_64 -cpu ...). It deliberately skips
veid_ml.determinism.configure, which would pin all of that: the integer graphs must not need the pin. Inputs are fixed
uint8 pixels from one seed (the same bytes everywhere; the float twins get the same pixels / 255).

`check` starts one `outputs` process per configuration (CONFIGURATIONS: 1, 2 and 4 intra-op threads, oneDNN off, the
ISA pin removed, and, with --qemu, `qemu-x86_64 -cpu Haswell-v4` and `-cpu EPYC-Rome-v1`) and compares each integer
graph's digest with GOLDEN (committed; written natively by `golden`). With --float it also reports the float twins
and the float-only models against the first configuration: where those differ is why the consensus graphs are
integer.
"""

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

from veid_ml import determinism, hashing, registry
from veid_ml.tools import add_command

GOLDEN = registry.ML_DIR / "consensus_golden.json"
# A synthetic 320 x 240 selfie (face_detection.scenes, test split, seed 7, selfie 8, area-resized from 640 x 480): PNG,
# so Pillow decodes the same pixels everywhere.
PHOTO = Path(__file__).with_name("consensus_photo.png")
SEED = 20261207
BATCH = 2  # small: emulation is ~10x slower; one image per model would not exercise batching
QEMU_CPUS = ("Haswell-v4", "EPYC-Rome-v1")
# name -> (environment changes: None removes a variable, intra-op threads, qemu CPU model or None)
CONFIGURATIONS = {
    "native, 2 threads (the pinned set-up)": ({}, 2, None),
    "native, 1 thread": ({}, 1, None),
    "native, 4 threads": ({}, 4, None),
    "native, oneDNN off": ({"TF_ENABLE_ONEDNN_OPTS": "0"}, 2, None),
    "native, ISA pin removed": ({"ONEDNN_MAX_CPU_ISA": None, "DNNL_MAX_CPU_ISA": None}, 2, None),
    **{f"qemu-x86_64 -cpu {cpu}": ({}, 2, cpu) for cpu in QEMU_CPUS},
}


def graphs() -> list[tuple[str, str, bool]]:
    """(model name, artifact directory name, is the integer consensus graph) of every approved SavedModel: the
    artifact and, for integer models, its float twin (hashing.float_artifact)."""
    found = []
    for spec in registry.MODELS.values():
        twin = hashing.float_artifact(spec.artifact)
        integer = (spec.weights_dir / twin / "saved_model.pb").is_file()
        for artifact, is_integer in ((spec.artifact, integer), (twin, False)):
            if (spec.weights_dir / artifact / "saved_model.pb").is_file():
                found.append((spec.name, artifact, is_integer))
    return found


def _pixels(rng, shape, np):
    """uint8 pixels of `shape` (..., H, W, C): 16 x 16 blocks of 60..200 plus +-12 noise. Not white noise, on which
    every liveness output saturates at 0 and would hide a difference inside the graph."""
    h, w = shape[-3], shape[-2]
    coarse = rng.integers(60, 201, (*shape[:-3], -(-h // 16), -(-w // 16), shape[-1]))
    coarse = np.repeat(np.repeat(coarse, 16, axis=-3), 16, axis=-2)[..., :h, :w, :]
    return np.clip(coarse + rng.integers(-12, 13, shape), 0, 255).astype(np.uint8)


def _inputs(signature, rng, tf, np):
    """Fixed inputs for one signature: uint8 pixels (_pixels, a batch), or for the detector's [H, W, 3] input the
    committed PHOTO, in which it finds a face (blocks alone give no detection, and an empty output hides every
    difference inside the cascade); float32 inputs get the same pixels / 255."""
    inputs = {}
    for key, spec in sorted(signature.structured_input_signature[1].items()):
        shape = [int(d) if d is not None else BATCH for d in spec.shape]
        if spec.shape.rank == 3:  # a whole photo, any size
            from PIL import Image

            with Image.open(PHOTO) as photo:
                pixels = np.asarray(photo.convert("RGB"))
        else:
            pixels = _pixels(rng, shape, np)
        if spec.dtype == tf.uint8:
            inputs[key] = tf.constant(pixels)
        elif spec.dtype == tf.float32:
            inputs[key] = tf.constant(pixels.astype(np.float32) / np.float32(255))
        else:
            raise ValueError(f"input {key!r} is {spec.dtype.name}: only uint8 and float32 inputs are generated")
    return inputs


def output_digests(threads: int) -> dict:
    """{"<model>/<artifact>/<signature>": sha256 of its outputs} in this process's configuration."""
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    digests = {}
    for name, artifact, _ in graphs():
        loaded = tf.saved_model.load(str(registry.get(name).weights_dir / artifact))
        for key in sorted(loaded.signatures):
            signature = loaded.signatures[key]
            outputs = signature(**_inputs(signature, np.random.default_rng(SEED), tf, np))
            h = hashlib.sha256()
            for out in sorted(outputs):
                value = np.atleast_1d(outputs[out].numpy())
                h.update(out.encode() + b"\0" + str(value.dtype).encode() + str(value.shape).encode())
                h.update(b"\0".join(value.ravel().tolist()) if outputs[out].dtype == tf.string else value.tobytes())
            digests[f"{name}/{artifact}/{key}"] = h.hexdigest()
    return digests


def run_configuration(name: str, timeout: int = 1200) -> dict:
    """output_digests in a fresh process started in configuration `name`; raises with its stderr if it fails."""
    changes, threads, cpu = CONFIGURATIONS[name]
    env = determinism.pinned_environ()  # the validators' settings, then this configuration's changes
    for key in ("TF_NUM_INTRAOP_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # every pool at the thread count
        env[key] = str(threads)
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    command = [sys.executable, "-m", "veid_ml.tools.consensus", "outputs", "--threads", str(threads)]
    if cpu is not None:
        qemu = shutil.which("qemu-x86_64")
        if qemu is None:
            raise FileNotFoundError("qemu-x86_64 is not installed (Debian: apt-get install qemu-user; `make venv` "
                                    "installs it when run as root)")
        command = [qemu, "-cpu", cpu, *command]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout,
                          cwd=registry.ML_DIR.parent)
    if proc.returncode != 0:
        raise RuntimeError(f"{name}: `{' '.join(command)}` failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def golden_document(digests: dict) -> dict:
    """The golden file: the integer graphs' digests and the lock digests they belong to."""
    lock = hashing.read_lock(registry.LOCK_PATH)["models"]
    integer = {f"{n}/{a}" for n, a, is_integer in graphs() if is_integer}
    outputs = {k: v for k, v in sorted(digests.items()) if k.rsplit("/", 1)[0] in integer}
    models = sorted({k.split("/", 1)[0] for k in outputs})
    return {"seed": SEED, "batch": BATCH, "lock_digests": {m: lock[m]["digest"] for m in models}, "outputs": outputs}


def read_golden() -> dict:
    return hashing.read_json(GOLDEN, "consensus golden file (write it with `veid-ml consensus golden`)")


def stale_golden(golden: dict) -> list[str]:
    """Models whose approved digest is not the one the golden outputs were written for."""
    lock = hashing.read_lock(registry.LOCK_PATH)["models"]
    return [m for m, d in golden["lock_digests"].items() if lock.get(m, {}).get("digest") != d]


def cmd_consensus(args) -> int:
    if args.action == "outputs":
        print(json.dumps(output_digests(args.threads), sort_keys=True))
        return 0
    if args.action == "golden":
        doc = golden_document(run_configuration(next(iter(CONFIGURATIONS))))
        GOLDEN.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {GOLDEN}: {len(doc['outputs'])} integer signatures of {', '.join(doc['lock_digests'])}")
        return 0
    golden = read_golden()
    if stale_golden(golden):
        print(f"consensus: {GOLDEN} was written for other approved bytes of {', '.join(stale_golden(golden))}; "
              "run `veid-ml consensus golden`", file=sys.stderr)
        return 2
    names = [n for n in CONFIGURATIONS if args.qemu or CONFIGURATIONS[n][2] is None]
    reference, failed = None, 0
    for name in names:
        started = time.perf_counter()
        digests = run_configuration(name)
        reference = reference or digests
        bad = [k for k, v in golden["outputs"].items() if digests.get(k) != v]
        failed += bool(bad)
        print(f"{name:40s} {time.perf_counter() - started:6.1f} s  integer: "
              f"{'all golden' if not bad else 'DIFFERENT: ' + ', '.join(bad)}")
        if args.float:
            floats = sorted(k for k in digests if k not in golden["outputs"])
            differ = [k for k in floats if digests[k] != reference[k]]
            print(f"{'':40s}           float: {len(floats) - len(differ)}/{len(floats)} as in the first "
                  f"configuration{'; different: ' + ', '.join(differ) if differ else ''}")
    return 1 if failed else 0


def register(subparsers) -> None:
    """Add `consensus` to `veid-ml`."""
    c = add_command(subparsers, "consensus", cmd_consensus, help="the integer graphs' output bytes in every "
                    "execution configuration (threads, oneDNN, ISA pin, emulated CPUs)", description=__doc__)
    c.add_argument("action", choices=["check", "golden", "outputs"], nargs="?", default="check")
    c.add_argument("--threads", type=int, default=2, help="outputs: intra-op threads (default 2)")
    c.add_argument("--float", action="store_true", help="check: also report the float graphs")
    c.add_argument("--qemu", action="store_true", help="check: also under qemu-x86_64 (Haswell-v4, EPYC-Rome-v1)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m veid_ml.tools.consensus", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["consensus", *(argv if argv is not None else sys.argv[1:])])
    return args.fn(args)


if __name__ == "__main__":
    sys.exit(main())
