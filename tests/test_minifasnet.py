"""MiniFASNet port (liveness_detection/minifasnet.py): the torch-free reader of legacy .pth files (exact, and refusing
any global it does not know), the Keras networks against the original PyTorch ones, and the original crop rule.

tests/fixtures/minifasnet_reference.npz was made once, outside the project's environment, with torch 2.13.0+cpu
(recorded in its `torch_version`): the reference MiniFASNet.py of the source repository, each network built with
conv6_kernel (5, 5), the vendored .pth loaded by torch.load (the "module." prefix stripped), eval(), no_grad. Inputs
(`inputs_bgr_uint8`, [8, 80, 80, 3] HWC as given to cv2-style callers): 4 uniform-random uint8 images
(np.random.default_rng(20240601).integers(0, 256)), a colour ramp, a smooth blob, a sinusoid and a flat colour; each
fed as float 0..255 NCHW. `MiniFASNetV2` and `MiniFASNetV1SE` hold the float32 logits [8, 3]. The reference run in
float64 differs from its float32 run by ~3e-6, the Keras port from the reference by ~6e-6.
"""

import hashlib
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, run_in_fresh_process
from liveness_detection import minifasnet

REFERENCE = ROOT / "tests" / "fixtures" / "minifasnet_reference.npz"
SHA256 = {"2.7_80x80_MiniFASNetV2.pth": "a5eb02e1843f19b5386b953cc4c9f011c3f985d0ee2bb9819eea9a142099bec0",
          "4_0_0_80x80_MiniFASNetV1SE.pth": "84ee1d37d96894d5e82de5a57df044ef80a58be2b218b5ed7cdfd875ec2f5990"}


# -- writing legacy .pth files without torch: globals are written by name only, never imported -------------------


class Name:
    """A global as a pickle names it (GLOBAL 'module name'); writing it imports nothing."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def __call__(self, *args):  # pickle only reduces to callables; this one is never called
        raise AssertionError("never called")


class Call:
    """Pickled as REDUCE: func(*args) when loaded."""

    def __init__(self, func: Name, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


class Storage:
    def __init__(self, type_name: str, key: str, values: np.ndarray):
        self.type_name, self.key, self.values = type_name, key, values


class LegacyWriter(pickle._Pickler):  # the pure-Python pickler: its dispatch table can name a Name as a GLOBAL
    dispatch = dict(pickle._Pickler.dispatch)

    def save_name(self, obj):
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())
        self.memoize(obj)

    dispatch[Name] = save_name

    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return "storage", Name("torch", obj.type_name), obj.key, "cpu", len(obj.values), None
        return None


def tensor(storage: Storage, offset: int, size: tuple, stride: tuple) -> Call:
    return Call(Name("torch._utils", "_rebuild_tensor_v2"), storage, offset, size, stride, False,
                Call(Name("collections", "OrderedDict")))


def write_legacy(path: Path, state, storages: list[Storage], magic=minifasnet.LEGACY_MAGIC) -> Path:
    """torch.save's legacy layout: magic, protocol version, sys_info, the main pickle, the storage keys, the data."""
    with open(path, "wb") as f:
        LegacyWriter(f, protocol=2).dump(magic)
        pickle.dump(1001, f, protocol=2)
        pickle.dump({"protocol_version": 1001, "little_endian": True,
                     "type_sizes": {"short": 2, "int": 4, "long": 4}}, f, protocol=2)
        LegacyWriter(f, protocol=2).dump(state)
        pickle.dump([s.key for s in storages], f, protocol=2)
        for s in storages:
            f.write(struct.pack("<q", len(s.values)) + s.values.astype(s.values.dtype.newbyteorder("<")).tobytes())
    return path


def test_reader_rebuilds_offsets_strides_shared_storages_and_scalars(tmp_path):
    floats = Storage("FloatStorage", "140", np.arange(7, dtype=np.float32) * 0.5)
    longs = Storage("LongStorage", "141", np.array([92385], np.int64))
    state = {"module.a": tensor(floats, 1, (2, 3), (1, 2)),  # a transposed view, one element in
             "module.b": tensor(floats, 0, (7,), (1,)),  # the same storage again
             "module.c.num_batches_tracked": tensor(longs, 0, (), ())}
    got = minifasnet.read_legacy_state_dict(write_legacy(tmp_path / "t.pth", state, [floats, longs]))
    assert list(got) == ["a", "b", "c.num_batches_tracked"]  # "module." stripped, order kept
    flat = floats.values
    assert got["a"].dtype == np.float32 and np.array_equal(got["a"], [[flat[1], flat[3], flat[5]],
                                                                        [flat[2], flat[4], flat[6]]])
    assert got["a"].flags.c_contiguous and got["a"].flags.writeable
    assert np.array_equal(got["b"], flat)
    assert got["c.num_batches_tracked"].dtype == np.int64 and got["c.num_batches_tracked"].shape == ()
    assert int(got["c.num_batches_tracked"]) == 92385

    overrun = {"a": tensor(floats, 2, (2, 3), (1, 2))}  # the last element would be flat[7]
    with pytest.raises(ValueError, match="overruns storage"):
        minifasnet.read_legacy_state_dict(write_legacy(tmp_path / "o.pth", overrun, [floats]))


@pytest.mark.parametrize("module,name", [("os", "system"), ("builtins", "eval"), ("torch", "load"),
                                         ("torch._utils", "_rebuild_parameter"), ("collections", "Counter")])
def test_reader_refuses_any_other_global_before_calling_anything(tmp_path, module, name):
    marker = tmp_path / "ran"
    floats = Storage("FloatStorage", "1", np.zeros(3, np.float32))
    state = {"w": tensor(floats, 0, (3,), (1,)), "evil": Call(Name(module, name), f"touch {marker}")}
    path = write_legacy(tmp_path / "evil.pth", state, [floats])
    with pytest.raises(pickle.UnpicklingError, match=rf"refusing global {module}\.{name}: not allowed"):
        minifasnet.read_legacy_state_dict(path)
    assert not marker.exists()


def test_reader_allows_no_global_at_all_in_the_header_pickles(tmp_path):
    path = write_legacy(tmp_path / "evil.pth", {}, [], magic=Call(Name("os", "system"), "true"))
    with pytest.raises(pickle.UnpicklingError, match=r"refusing global os\.system.*allowed: none"):
        minifasnet.read_legacy_state_dict(path)


def test_vendored_files_are_the_unchanged_originals_and_read_as_float32_state_dicts():
    for file, digest in SHA256.items():
        path = minifasnet.PRETRAINED_DIR / file
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, file
    assert (minifasnet.PRETRAINED_DIR / "LICENSE").read_text().lstrip().startswith("Apache License")
    for name, count in (("MiniFASNetV2", 334), ("MiniFASNetV1SE", 370)):
        state = minifasnet.read_legacy_state_dict(minifasnet.PRETRAINED_DIR / minifasnet.WEIGHT_FILES[name])
        assert len(state) == count and not any(k.startswith("module.") for k in state)
        assert {k for k, v in state.items() if v.dtype != np.float32} == {
            k for k in state if k.endswith("num_batches_tracked")}
        assert state["conv1.conv.weight"].shape == (32, 3, 3, 3) and state["conv_6_dw.conv.weight"].shape == (
            512, 1, 5, 5) and state["prob.weight"].shape == (3, 128)
        assert ("conv_3.model.3.se_module.fc1.weight" in state) == (name == "MiniFASNetV1SE")


def keras_logits(inputs: np.ndarray) -> dict:
    """Run in a fresh process: both Keras networks with the vendored weights (load() checks every entry is used
    once) on the reference inputs, as float 0..255 BGR."""
    x = inputs.astype(np.float32)
    return {name: minifasnet.load(name)(x, training=False).numpy() for name in minifasnet.WEIGHT_FILES}


def test_keras_networks_give_the_pytorch_logits():
    with np.load(REFERENCE, allow_pickle=False) as ref:
        reference = {k: ref[k] for k in ref.files}
    assert reference["inputs_bgr_uint8"].shape == (8, 80, 80, 3)
    got = run_in_fresh_process(keras_logits, reference["inputs_bgr_uint8"])
    for name in minifasnet.WEIGHT_FILES:
        assert got[name].shape == (8, 3) and got[name].dtype == np.float32
        np.testing.assert_allclose(got[name], reference[name], rtol=0, atol=1e-4, err_msg=name)
    probs = minifasnet.softmax(reference["MiniFASNetV2"])
    assert np.allclose(probs.sum(-1), 1, atol=1e-6) and np.all(probs.argmax(-1) == reference["MiniFASNetV2"].argmax(-1))


@pytest.mark.parametrize("box,h,w,scale,expected", [
    # scale kept; the scaled box (270 x 324 about (60, 80)) sticks out left and top: moved to x0 = y0 = 0
    ((10, 20, 100, 120), 480, 640, 2.7, (0, 0, 270, 324)),
    # 4.0 is too large: reduced to (101 - 1) / 40 = 2.5; the 100 x 100 box about (70, 60) spans y 10..110, moved up 10
    ((50, 40, 40, 40), 101, 200, 4.0, (20, 0, 120, 100)),
    # 80 x 60 about (270, 165): x 230..310 sticks out right of 299, moved left by 11
    ((250, 150, 40, 30), 200, 300, 2.0, (219, 135, 299, 195)),
    # inside the image, corners truncated: 125 x 150 about (325.7, 230.2) -> 263.2, 155.2, 388.2, 305.2
    ((300.7, 200.2, 50, 60), 480, 640, 2.5, (263, 155, 388, 305)),
])
def test_crop_box_follows_the_original_rule(box, h, w, scale, expected):
    assert minifasnet.crop_box(box, h, w, scale) == expected


def test_crop_patch_includes_both_corners_and_refuses_an_empty_box():
    image = np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    box = (70.25, 70.25, 39.5, 39.5)  # x 2 -> 79 px about 90: 50.5..129.5 -> corners 50 and 129, 80 pixels
    assert minifasnet.crop_box(box, 200, 200, 2.0) == (50, 50, 129, 129)
    assert np.array_equal(minifasnet.crop_patch(image, box, 2.0), image[50:130, 50:130])
    with pytest.raises(ValueError, match="positive"):
        minifasnet.crop_box((10, 10, 0, 20), 200, 200, 2.7)
