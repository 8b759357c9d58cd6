"""`veid-ml fingerprint`: what the approved models compute on this CPU: sha256 of their serving outputs on fixed inputs.

Validators reach consensus only if the same approved bytes give the same scores on every validator's CPU. Training is
reproducible per CPU class (ml/README.md, Determinism configuration); whether inference is too is what this measures.
Run it on two machines and compare the lines: equal fingerprints mean bit-identical outputs on those inputs.

Inputs: for every input of a model's serving_default signature, uniform noise in [0, 1] from a fixed seed (batch of
--batch, the signature's other dimensions), the same on every machine.
"""

import hashlib
import sys

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
        if not spec.dtype.is_floating:
            raise SystemExit(f"error: {name} input {key!r} is {spec.dtype.name}; only float inputs are generated")
        shape = [batch] + [int(d) for d in spec.shape[1:]]
        inputs[key] = tf.constant(rng.random(shape, dtype=np.float32))
    outputs = serving(**inputs)
    h = hashlib.sha256()
    for key in sorted(outputs):
        value = np.atleast_1d(outputs[key].numpy())
        h.update(key.encode())
        h.update(b"\0".join(value.ravel().tolist()) if outputs[key].dtype == tf.string else value.tobytes())
    scores = [k for k in sorted(outputs) if outputs[k].dtype.is_floating]
    sample = f"{scores[0]}[0] = {float(np.ravel(outputs[scores[0]].numpy())[0])!r}" if scores else "no float output"
    return h.hexdigest(), sample


def cmd_fingerprint(args) -> int:
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
