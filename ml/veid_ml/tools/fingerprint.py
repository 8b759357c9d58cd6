"""`veid-ml fingerprint`: what the approved models compute on this CPU: sha256 of their serving outputs on fixed inputs.

Validators reach consensus only if the same approved bytes give the same scores on every validator's CPU. Training is
reproducible per CPU class (ml/README.md, Determinism configuration); whether inference is too is what this measures.
Run it on two machines and compare the lines: equal fingerprints mean bit-identical outputs on those inputs.

Inputs: for every input of a model's serving_default signature, noise from a fixed seed (batch of --batch, the
signature's other dimensions), the same on every machine: uniform in [0, 1] for float inputs, 0..255 for the integer
graphs' uint8 crops, and a 240 x 320 noise photo for the face detector. (`veid-ml consensus` runs every graph in
every thread / oneDNN / emulated-CPU configuration.)

--golden DIR: the whole VEID pipeline instead. DIR is written by `python -m veid_ml.golden DIR` on a reference machine;
every case's selfie and document PNG are scored by Verifier.verify here and compared with the results stored there
(score, decision, reason codes and every integer component). Run it under another CPU (or `qemu-x86_64 -cpu
Haswell-v4`) to see whether the scores, not only the raw outputs, agree.
"""

import hashlib
import sys
from pathlib import Path

from veid_ml import determinism, hashing, registry
from veid_ml.tools import add_command


def fingerprint(name: str, batch: int) -> tuple[str, str]:
    """(sha256 of the outputs, first output value as text) of one approved model on fixed inputs."""
    import numpy as np
    import tensorflow as tf

    from veid_ml import inference

    serving = inference.load_approved(name)
    rng = np.random.default_rng(0)
    inputs = {}
    for key, spec in sorted(serving.structured_input_signature[1].items()):
        if spec.dtype == tf.uint8 and spec.shape.rank == 3:  # a whole photo: no batch dimension, any size
            inputs[key] = tf.constant(rng.integers(0, 256, (240, 320, 3), dtype=np.uint8))
            continue
        if spec.dtype == tf.uint8:  # a batch of crops for an integer consensus graph
            shape = [batch] + [int(d) for d in spec.shape[1:]]
            inputs[key] = tf.constant(rng.integers(0, 256, shape, dtype=np.uint8))
            continue
        if not spec.dtype.is_floating:
            raise SystemExit(f"error: {name} input {key!r} is {spec.dtype.name}; only float and uint8 inputs are "
                             "generated")
        shape = [batch] + [int(d) for d in spec.shape[1:]]
        inputs[key] = tf.constant(rng.random(shape, dtype=np.float32))
    outputs = serving(**inputs)
    h = hashlib.sha256()
    for key in sorted(outputs):
        value = np.atleast_1d(outputs[key].numpy())
        h.update(key.encode())
        h.update(b"\0".join(value.ravel().tolist()) if outputs[key].dtype == tf.string else value.tobytes())
    scores = [k for k in sorted(outputs) if (outputs[k].dtype.is_floating or outputs[k].dtype == tf.int32)
              and np.size(outputs[k].numpy())]
    sample = f"{scores[0]}[0] = {np.ravel(outputs[scores[0]].numpy())[0]!r}" if scores else "no numeric output"
    return h.hexdigest(), sample


def pipeline_against_golden(golden_dir) -> int:
    """Score every golden case here and compare with the stored result; 0 when all agree."""
    import datetime
    import json

    from veid_ml import golden
    from veid_ml.api import Verifier

    doc = hashing.read_json(golden_dir / "cases.json", "golden cases")
    verifier = Verifier.load()
    today = datetime.date.fromisoformat(doc["today"])
    differ, h = 0, hashlib.sha256()
    for case in doc["cases"]:
        result = verifier.verify(golden_dir / case["selfie"], golden_dir / case["document"], today=today)
        got, want = golden.comparable(result), case["result"]
        h.update(json.dumps(got, sort_keys=True).encode())
        changed = [k for k in ("score", "decision", "reason_codes") if got[k] != want[k]]
        changed += [k for k in sorted(set(got["components"]) | set(want["components"]))
                    if got["components"].get(k) != want["components"].get(k)]
        differ += bool(changed)
        print(f"{case['name']:18s} {got['decision']:7s} {got['score']:3d}  "
              f"{'same' if not changed else 'DIFFERS: ' + ', '.join(changed)}")
    print(f"pipeline results sha256 {h.hexdigest()}: {len(doc['cases']) - differ}/{len(doc['cases'])} cases as stored")
    return 1 if differ else 0


def cmd_fingerprint(args) -> int:
    if args.golden is not None:
        if not (args.golden / "cases.json").is_file():
            print(f"fingerprint: no cases.json in {args.golden} (write it with python -m veid_ml.golden DIR)",
                  file=sys.stderr)
            return 2
        determinism.configure(reexec=False)
        print(f"cpu class: {determinism.cpu_class()}")
        return pipeline_against_golden(args.golden)
    if args.batch < 1:
        print("fingerprint: --batch must be >= 1", file=sys.stderr)
        return 2
    determinism.configure(reexec=False)
    print(f"cpu class: {determinism.cpu_class()}")
    for name in sorted(hashing.read_lock(registry.LOCK_PATH)["models"]):
        digest, sample = fingerprint(name, args.batch)
        print(f"{name}: outputs sha256 {digest}  ({sample})")
    return 0


def register(subparsers) -> None:
    """Add `fingerprint` to `veid-ml`."""
    f = add_command(subparsers, "fingerprint", cmd_fingerprint,
                    help="sha256 of each approved model's outputs on fixed inputs, this CPU", description=__doc__)
    f.add_argument("--batch", type=int, default=8, help="inputs per model (default 8)")
    f.add_argument("--golden", type=Path, default=None, metavar="DIR",
                   help="compare the whole pipeline's results with golden files (python -m veid_ml.golden DIR)")
