"""The consensus graphs (issue 21): integer only, and the same output bytes in every execution configuration.

* Every approved model with a float twin serves an integer graph: its SavedModel signatures and frozen graph hold no
  floating-point op and take uint8 images (the float twins, which do, show the check can fail).
* veid_ml.tools.consensus runs the approved graphs on fixed inputs in a fresh process per configuration -- 1, 2 and 4
  intra-op threads, oneDNN off, the oneDNN ISA pin removed, and under `qemu-x86_64 -cpu Haswell-v4` and
  `-cpu EPYC-Rome-v1` (other CPUID and cache sizes, AVX2/FMA emulated) -- and every integer graph must give the
  committed golden bytes (ml/consensus_golden.json). The float graphs run in the same processes; where they differ
  from the first configuration is reported as an expected failure (xfail), which is why the consensus graphs are
  integer.
"""

import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import approved_model_dir
from veid_ml import hashing, integer, registry
from veid_ml.tools import consensus

INTEGER_MODELS = [n for n, a, is_integer in consensus.graphs() if is_integer]


def _graph_defs(weights_dir, artifact):
    """{where: GraphDef} of the frozen serving graph and of the SavedModel's meta graph (every signature)."""
    from tensorflow.core.framework import graph_pb2
    from tensorflow.core.protobuf import saved_model_pb2

    frozen = graph_pb2.GraphDef()
    frozen.ParseFromString((weights_dir / f"{artifact}_frozen.pb").read_bytes())
    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((weights_dir / artifact / "saved_model.pb").read_bytes())
    return {f"{artifact}_frozen.pb": frozen, f"{artifact}/saved_model.pb": saved.meta_graphs[0].graph_def}, saved


def test_every_governed_model_is_integer():
    assert set(INTEGER_MODELS) == set(registry.MODELS)


@pytest.mark.parametrize("name", INTEGER_MODELS)
def test_consensus_graphs_hold_no_float_op(name):
    approved_model_dir(name)
    spec = registry.get(name)
    graphs, saved = _graph_defs(spec.weights_dir, spec.artifact)
    for where, graph in graphs.items():
        assert integer.float_nodes(graph) == [], f"{where}: {integer.float_nodes(graph)[:10]}"
    for key, signature in saved.meta_graphs[0].signature_def.items():
        if key.startswith("__"):
            continue
        dtypes = {name: tensor.dtype for name, tensor in signature.inputs.items()}
        assert set(dtypes.values()) == {4}, f"{key}: inputs {dtypes} (4 is DT_UINT8)"
    twin, _ = _graph_defs(spec.weights_dir, hashing.float_artifact(spec.artifact))
    assert all(integer.float_nodes(g) for g in twin.values())  # the same check finds the float twin's floats


@pytest.fixture(scope="module")
def golden():
    doc = consensus.read_golden()
    stale = consensus.stale_golden(doc)
    assert not stale, f"{consensus.GOLDEN} is for other approved bytes of {stale}: run `veid-ml consensus golden`"
    assert {k.split("/", 1)[0] for k in doc["outputs"]} == set(INTEGER_MODELS)
    return doc


_runs = {}


def _run(configuration: str, wanted=()) -> dict:
    """consensus.run_configuration once per configuration for the whole module (one TF import each). The first call
    starts every configuration the session will ask for at once: an emulated run keeps ~1.4 of 2 cores busy, and side
    by side the runs took ~6 min of the suite instead of ~9.5 one after another."""
    def runnable(c):
        return consensus.CONFIGURATIONS[c][2] is None or shutil.which("qemu-x86_64") is not None

    if not _runs:
        started = [c for c in dict.fromkeys([configuration, *wanted]) if runnable(c)]
        pool = ThreadPoolExecutor(max_workers=max(1, len(started)))  # threads only wait on their subprocess
        _runs.update({c: pool.submit(consensus.run_configuration, c) for c in started})
        pool.shutdown(wait=False)
    if configuration not in _runs:
        if not runnable(configuration):
            pytest.fail("qemu-x86_64 is required for the emulated-CPU runs (Debian: apt-get install qemu-user; "
                        "`make venv` installs it when run as root)", pytrace=False)
        _runs[configuration] = ThreadPoolExecutor(max_workers=1).submit(consensus.run_configuration, configuration)
    return _runs[configuration].result()


@pytest.fixture
def run(request):
    """_run, told which configurations this session's selected consensus tests use."""
    params = [getattr(getattr(item, "callspec", None), "params", {}) for item in request.session.items
              if item.module is request.module]
    wanted = [p["configuration"] for p in params if "configuration" in p]
    return lambda configuration: _run(configuration, wanted)


@pytest.mark.parametrize("configuration", list(consensus.CONFIGURATIONS))
def test_integer_graphs_give_the_golden_bytes(configuration, golden, run):
    digests = run(configuration)
    different = sorted(k for k, v in golden["outputs"].items() if digests.get(k) != v)
    assert not different, f"{configuration}: {different} differ from {consensus.GOLDEN.name}"


@pytest.mark.parametrize("configuration", list(consensus.CONFIGURATIONS)[1:])
def test_float_graphs_in_the_same_configurations(configuration, golden, run):
    """Report: the float graphs against the first configuration. Differences are expected failures (xfail)."""
    reference, digests = run(next(iter(consensus.CONFIGURATIONS))), run(configuration)
    floats = sorted(k for k in digests if k not in golden["outputs"])
    assert floats, "no float graph was run"
    different = [k for k in floats if digests[k] != reference[k]]
    if different:
        pytest.xfail(f"float graphs differ under {configuration}: {', '.join(different)}")
