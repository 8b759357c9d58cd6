"""Bit-exact export: a SavedModel (TF-Serving / TF C API / Go compatible) plus a frozen graph, then the manifest.

Why not `model.export()` or `model.save()`: Keras orders variables by memory address, so its SavedModels differ
between processes, and a tf.Module holding a Keras 3 model exports duplicate variables that the C API cannot load.
A plain tf.Module that tracks the raw tf.Variables in `model.variables` order is both loadable everywhere and
byte-stable. fingerprint.pb is not written (TF_FLAG_SAVED_MODEL_FINGERPRINTING=false, set by determinism.configure):
it would hold a random uuid.
"""

import os
import shutil
from pathlib import Path

import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

from veid_ml import hashing
from veid_ml.atomic import atomic_dir, write_bytes_atomic

SERVING_KEY = tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY  # "serving_default"


def export_model(weights_dir: Path, artifact: str, model, signatures: dict, integer_signatures: dict | None = None
                 ) -> dict:
    """Write `<weights_dir>/<artifact>/` and `<weights_dir>/<artifact>_frozen.pb`, then the manifest; return it.

    `signatures` maps signature keys to tf.functions with a full input_signature (named TensorSpecs, batch dim None)
    that return a dict of named outputs; it must contain "serving_default", which is also the frozen graph.
    With `integer_signatures` (the consensus graphs, veid_ml.integer: uint8 in, integers out, constants only) those
    become the artifact and the float signatures go to hashing.float_artifact(artifact) beside it; one manifest
    pins both. The manifest is removed first and written last, so a directory with a manifest is a complete export.
    """
    if os.environ.get("TF_FLAG_SAVED_MODEL_FINGERPRINTING") != "false":
        raise RuntimeError("export needs veid_ml.determinism.configure() first (fingerprint.pb would hold a uuid)")
    weights_dir = Path(weights_dir)
    weights_dir.mkdir(parents=True, exist_ok=True)
    (weights_dir / hashing.MANIFEST_NAME).unlink(missing_ok=True)
    float_artifact = hashing.float_artifact(artifact)
    if integer_signatures is None:
        _remove_artifact(weights_dir, float_artifact)  # a float-only model: no stale float copy beside it
        write_savedmodel(weights_dir, artifact, [v.value for v in model.variables], signatures)
    else:
        write_savedmodel(weights_dir, float_artifact, [v.value for v in model.variables], signatures)
        write_savedmodel(weights_dir, artifact, [], integer_signatures)
    return hashing.write_manifest(weights_dir, artifact)


def _remove_artifact(weights_dir: Path, artifact: str) -> None:
    shutil.rmtree(weights_dir / artifact, ignore_errors=True)
    (weights_dir / f"{artifact}_frozen.pb").unlink(missing_ok=True)


def write_savedmodel(weights_dir: Path, artifact: str, variables: list, signatures: dict) -> None:
    """One SavedModel directory and its frozen serving_default graph (canonical bytes)."""
    if SERVING_KEY not in signatures:
        raise ValueError(f"signatures must include {SERVING_KEY!r}; got {sorted(signatures)}")
    module = tf.Module()
    module.model_variables = list(variables)
    concrete = {key: fn.get_concrete_function() for key, fn in signatures.items()}
    with atomic_dir(weights_dir / artifact) as staging:
        tf.saved_model.save(module, str(staging), signatures=concrete)
    frozen = convert_variables_to_constants_v2(concrete[SERVING_KEY])
    write_bytes_atomic(weights_dir / f"{artifact}_frozen.pb", canonical_graph_bytes(frozen.graph.as_graph_def()))


def canonical_graph_bytes(graph_def) -> bytes:
    """A GraphDef serialized byte-stably: nodes and library functions sorted by name.

    Node order carries no meaning in a GraphDef, but freezing emits the nodes that replace captured variables in an
    order that can differ between processes; `deterministic=True` only fixes map ordering.
    """
    nodes = sorted(graph_def.node, key=lambda n: n.name)
    del graph_def.node[:]
    graph_def.node.extend(nodes)
    functions = sorted(graph_def.library.function, key=lambda f: f.signature.name)
    del graph_def.library.function[:]
    graph_def.library.function.extend(functions)
    for fn in graph_def.library.function:
        body = sorted(fn.node_def, key=lambda n: n.name)
        del fn.node_def[:]
        fn.node_def.extend(body)
    return graph_def.SerializeToString(deterministic=True)


def load_signatures(saved_model_dir: Path) -> dict:
    """Load a SavedModel once; return every signature as a callable taking named tensors, returning a dict."""
    saved_model_dir = Path(saved_model_dir)
    if not (saved_model_dir / "saved_model.pb").is_file():
        raise FileNotFoundError(f"no SavedModel at {saved_model_dir} (missing saved_model.pb); train the model first")
    loaded = tf.saved_model.load(str(saved_model_dir))
    signatures = dict(loaded.signatures)
    for fn in signatures.values():
        fn._veid_keepalive = loaded  # a signature does not own its variables' object graph
    return signatures


def load_serving(saved_model_dir: Path, key: str = SERVING_KEY):
    """One signature of a SavedModel (default serving_default)."""
    signatures = load_signatures(saved_model_dir)
    if key not in signatures:
        raise KeyError(f"SavedModel {saved_model_dir} has no signature {key!r}; it has {sorted(signatures)}")
    return signatures[key]


def is_integer_graph(signature, name: str = "image") -> bool:
    """Whether a signature (loaded, or a tf.function with an input_signature) is an integer consensus graph
    (veid_ml.integer: its input `name` is uint8) rather than a float twin (float32)."""
    if hasattr(signature, "structured_input_signature"):
        dtype = signature.structured_input_signature[1][name].dtype
    else:
        dtype = next(spec for spec in signature.input_signature if spec.name == name).dtype
    return dtype == tf.uint8
