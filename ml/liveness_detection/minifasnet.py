"""MiniFASNetV2 and MiniFASNetV1SE (Silent-Face-Anti-Spoofing, Minivision) as Keras models, with their original
pretrained weights read from the PyTorch files without PyTorch.

The weights are vendored unchanged in `pretrained/` (see its README: source, commit, sha256, Apache-2.0 license).
This module is the project's own port of the published network definitions, layer for layer:

    read_legacy_state_dict(path)  the .pth state_dict as {name: numpy array}; a restricted unpickler that only knows
                                  the few names such a file may hold, so reading a file never runs code from it
    build(name)                   the Keras network, untrained
    load(name)                    the Keras network with the vendored weights (every file entry used exactly once)
    crop_box(box, h, w, scale)    the original crop rule (CropImage._get_new_box), a pure function
    crop_patch(image, box, scale) that crop resized to 80x80 as the original (cv2.INTER_LINEAR)
    softmax(logits)               the class probabilities; class REAL_CLASS (1) is bona fide, 0 and 2 are attacks

Input convention (the original's, not this project's [0, 1] RGB): float32 [N, 80, 80, 3] NHWC, channels in **BGR**
order, values 0..255 (the uint8 pixel values cast to float, NOT divided by 255). The crop is the face box scaled by
SCALES[name] about its centre (crop_box) and resized to 80x80. Output: [N, 3] logits. The original demo sums the
softmax of both networks, each on its own crop; its score is the summed class-1 probability divided by 2.

Differences from PyTorch handled here: explicit symmetric zero padding before the stride-2 3x3 convolutions (TF
'same' would pad 0 before and 1 after an even-sized input), OIHW -> HWIO and depthwise (C, 1, kh, kw) -> (kh, kw, C, 1)
kernel layouts, Linear (out, in) -> Dense (in, out), BatchNorm epsilon 1e-5 (PyTorch's default; Keras' is 1e-3) and
per-channel PReLU. The 5x5 depthwise "linear" convolution leaves a 1x1x512 map, so flattening NHWC or NCHW gives the
same order. Dropout is in the graph (as the original) and is the identity at inference.
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
from pathlib import Path

import numpy as np

PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"
SIZE = 80  # input height and width of both networks
REAL_CLASS = 1  # logits/softmax index of a bona fide face; 0 and 2 are two kinds of attack
BN_EPSILON = 1e-5  # PyTorch BatchNorm1d/2d default, which the original uses everywhere
WEIGHT_FILES = {"MiniFASNetV2": "2.7_80x80_MiniFASNetV2.pth", "MiniFASNetV1SE": "4_0_0_80x80_MiniFASNetV1SE.pth"}
# crop scale of each network, from its file name ("scale_HxW_Type.pth"; "4_0_0" is read as 4.0 by the original)
SCALES = {"MiniFASNetV2": 2.7, "MiniFASNetV1SE": 4.0}
DROPOUT = {"MiniFASNetV2": 0.2, "MiniFASNetV1SE": 0.75}  # training only
EMBEDDING_SIZE = 128
NUM_CLASSES = 3
SE_REDUCTION = 4

# Channel plans of the original ("keep" lists): V1SE uses "1.8M", V2 uses "1.8M_".
_KEEP = {
    "1.8M": [32, 32, 103, 103, 64, 13, 13, 64, 26, 26, 64, 13, 13, 64, 52, 52, 64, 231, 231, 128, 154, 154, 128, 52,
             52, 128, 26, 26, 128, 52, 52, 128, 26, 26, 128, 26, 26, 128, 308, 308, 128, 26, 26, 128, 26, 26, 128, 512,
             512],
    "1.8M_": [32, 32, 103, 103, 64, 13, 13, 64, 13, 13, 64, 13, 13, 64, 13, 13, 64, 231, 231, 128, 231, 231, 128, 52,
              52, 128, 26, 26, 128, 77, 77, 128, 26, 26, 128, 26, 26, 128, 308, 308, 128, 26, 26, 128, 26, 26, 128,
              512, 512],
}
_ARCH = {"MiniFASNetV2": ("1.8M_", False), "MiniFASNetV1SE": ("1.8M", True)}  # (channel plan, squeeze-excitation)

# ---------------------------------------------------------------------------------------------------------------
# PyTorch legacy (pre-zip) serialization, read without torch
# ---------------------------------------------------------------------------------------------------------------

LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL = 1001
_STORAGE_DTYPES = {"FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2", "LongStorage": "<i8",
                   "IntStorage": "<i4"}


class _StandIn:
    """Base of the objects the restricted unpickler hands out: BUILD (__setstate__) on them is refused."""

    __slots__ = ()

    def __setstate__(self, state):
        raise pickle.UnpicklingError(f"a pickle tried to set the state of {type(self).__name__}")


class _StorageType(_StandIn):
    """Stands for torch.FloatStorage & co.: only its element dtype matters."""

    __slots__ = ("name", "dtype")

    def __init__(self, name: str):
        self.name, self.dtype = name, np.dtype(_STORAGE_DTYPES[name])


class _Storage(_StandIn):
    """One storage of the file: its element count and dtype; `data` is filled in after the main pickle."""

    __slots__ = ("key", "dtype", "size", "data")

    def __init__(self, key: str, dtype: np.dtype, size: int):
        self.key, self.dtype, self.size, self.data = key, dtype, size, None


class _StorageView(_StandIn):
    """A view (offset, size) into a root storage: the old serialization's view_metadata."""

    __slots__ = ("root", "offset", "size")

    def __init__(self, root: _Storage, offset: int, size: int):
        self.root, self.offset, self.size = root, offset, size


class _TensorRef(_StandIn):
    """What torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...) stands for, resolved later."""

    __slots__ = ("storage", "offset", "shape", "stride")

    def __init__(self, storage, offset, shape, stride):
        self.storage, self.offset, self.shape, self.stride = storage, offset, shape, stride


class _OrderedDict(collections.OrderedDict):
    """collections.OrderedDict that accepts only the `_metadata` attribute torch's state_dict carries."""

    def __setstate__(self, state):
        if not isinstance(state, dict) or set(state) - {"_metadata"}:
            raise pickle.UnpicklingError(f"unexpected OrderedDict state {type(state).__name__}")
        self.metadata = state.get("_metadata")


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None,
                       metadata=None):
    if not isinstance(storage, (_Storage, _StorageView)):
        raise pickle.UnpicklingError(f"_rebuild_tensor_v2 on a {type(storage).__name__}, not a storage")
    for value in (storage_offset, *size, *stride):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise pickle.UnpicklingError(f"bad tensor geometry: offset {storage_offset}, size {size}, stride {stride}")
    if len(size) != len(stride):
        raise pickle.UnpicklingError(f"size {size} and stride {stride} differ in length")
    return _TensorRef(storage, storage_offset, tuple(size), tuple(stride))


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals a legacy state_dict holds, to inert stand-ins; refuses every other name."""

    def __init__(self, file, tensors: bool):
        super().__init__(file, encoding="utf-8")
        self._tensors = tensors
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module, name):
        if self._tensors:
            if (module, name) == ("collections", "OrderedDict"):
                return _OrderedDict
            if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
                return _rebuild_tensor_v2
            if module == "torch" and name in _STORAGE_DTYPES:
                return _StorageType(name)
        allowed = (f"collections.OrderedDict, torch._utils._rebuild_tensor_v2, torch.{{{','.join(_STORAGE_DTYPES)}}}"
                   if self._tensors else "none in this part of the file")
        raise pickle.UnpicklingError(f"refusing global {module}.{name}: not allowed in a legacy PyTorch state_dict "
                                     f"(allowed: {allowed})")

    def persistent_load(self, pid):
        if not self._tensors or not isinstance(pid, tuple) or len(pid) not in (5, 6) or pid[0] != "storage":
            raise pickle.UnpicklingError(f"unexpected persistent id {pid!r}")
        _, storage_type, key, _location, size, *view = pid
        if not isinstance(storage_type, _StorageType) or not isinstance(key, str) or not isinstance(size, int):
            raise pickle.UnpicklingError(f"unexpected storage id {pid!r}")
        storage = self.storages.get(key)
        if storage is None:
            storage = self.storages[key] = _Storage(key, storage_type.dtype, size)
        elif storage.dtype != storage_type.dtype or storage.size != size:
            raise pickle.UnpicklingError(f"storage {key} referenced with two types or sizes")
        if view and view[0] is not None:
            view_key, offset, view_size = view[0]
            if not (isinstance(offset, int) and isinstance(view_size, int) and 0 <= offset
                    and offset + view_size <= size):
                raise pickle.UnpicklingError(f"bad storage view {view[0]!r} of {key}")
            return _StorageView(storage, offset, view_size)
        return storage


def _unpickle(f):
    """One of the file's plain-data pickles (header, storage keys): no global at all is allowed."""
    return _RestrictedUnpickler(f, tensors=False).load()


def _resolve(ref: _TensorRef) -> np.ndarray:
    storage, base = ref.storage, ref.offset
    if isinstance(storage, _StorageView):
        storage, base, limit = storage.root, storage.offset + base, storage.offset + storage.size
    else:
        limit = storage.size
    flat = storage.data
    if any(n == 0 for n in ref.shape):
        return np.zeros(ref.shape, flat.dtype.newbyteorder("="))
    last = base + sum((n - 1) * s for n, s in zip(ref.shape, ref.stride))
    if last >= limit:
        raise ValueError(f"tensor {ref.shape} stride {ref.stride} at offset {ref.offset} overruns storage "
                         f"{storage.key} ({storage.size} elements)")
    item = flat.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(flat[base:], shape=ref.shape, strides=[s * item for s in ref.stride],
                                           writeable=False)
    return np.array(view, dtype=flat.dtype.newbyteorder("="), order="C")  # a copy, native byte order


def read_legacy_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """A state_dict saved by torch.save in the legacy (pre-zip, pickle protocol 2) format, as {name: array}.

    Layout: pickles of the magic number, the protocol version and sys_info, then the main pickle (the OrderedDict;
    each tensor is torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...) with storages as persistent
    ids ('storage', type, key, location, size[, view_metadata])), then a pickle of the storage keys in file order,
    then per storage an int64 element count and its raw little-endian data. Only collections.OrderedDict,
    torch._utils._rebuild_tensor_v2 and torch.{Float,Double,Half,Long,Int}Storage are resolved, each to an inert
    stand-in; any other global raises pickle.UnpicklingError before anything is called, so reading never runs code
    from the file. A "module." prefix (DataParallel training) is stripped from the keys. Values are C-contiguous
    arrays in native byte order (float32 weights, int64 num_batches_tracked for these files).
    """
    data = Path(path).read_bytes()
    if data[:2] == b"PK":
        raise ValueError(f"{path} is a zip-format torch file, not the legacy format this reader handles")
    f = io.BytesIO(data)
    if _unpickle(f) != LEGACY_MAGIC:
        raise ValueError(f"{path}: not a legacy PyTorch file (bad magic number)")
    if _unpickle(f) != LEGACY_PROTOCOL:
        raise ValueError(f"{path}: unsupported legacy protocol version")
    sys_info = _unpickle(f)
    if not isinstance(sys_info, dict) or sys_info.get("little_endian") is not True:
        raise ValueError(f"{path}: only little-endian files are supported (sys_info {sys_info!r})")
    main = _RestrictedUnpickler(f, tensors=True)
    state = main.load()
    keys = _unpickle(f)
    if not isinstance(state, dict) or not isinstance(keys, list) or sorted(keys) != sorted(main.storages):
        raise ValueError(f"{path}: the storage list does not match the storages the state_dict references")
    for key in keys:
        storage = main.storages[key]
        (count,) = struct.unpack("<q", f.read(8))
        nbytes = count * storage.dtype.itemsize
        raw = f.read(nbytes)
        if count != storage.size or len(raw) != nbytes:
            raise ValueError(f"{path}: storage {key} holds {count} elements ({len(raw)} bytes read), "
                             f"expected {storage.size}")
        storage.data = np.frombuffer(raw, storage.dtype)
    if f.read(1):
        raise ValueError(f"{path}: trailing bytes after the last storage")
    out = {}
    for name, ref in state.items():
        if not isinstance(name, str) or not isinstance(ref, _TensorRef):
            raise ValueError(f"{path}: entry {name!r} is not a tensor")
        name = name[len("module."):] if name.startswith("module.") else name
        if name in out:
            raise ValueError(f"{path}: {name!r} appears twice once 'module.' is stripped")
        out[name] = _resolve(ref)
    return out


# ---------------------------------------------------------------------------------------------------------------
# The networks
# ---------------------------------------------------------------------------------------------------------------


def _plan(keep: list[int], se: bool) -> list[tuple]:
    """The original's modules in forward order: (state-dict prefix, kind, arguments)."""
    k = keep
    plan = [("conv1", "conv", (k[0], 3, 2, 1, False)),
            ("conv2_dw", "conv", (k[1], 3, 1, 1, True)),
            ("conv_23", "dw", ((k[2], k[3], k[4]), 2, False))]

    def stage(prefix, first, blocks):
        for i in range(blocks):
            j = first + 3 * i  # c1 = (k[j], k[j+1]), c2 = (k[j+1], k[j+2]), c3 = (k[j+2], k[j+3])
            plan.append((f"{prefix}.model.{i}", "dw", ((k[j + 1], k[j + 2], k[j + 3]), 1, se and i == blocks - 1)))

    stage("conv_3", 4, 4)
    plan.append(("conv_34", "dw", ((k[17], k[18], k[19]), 2, False)))
    stage("conv_4", 19, 6)
    plan.append(("conv_45", "dw", ((k[38], k[39], k[40]), 2, False)))
    stage("conv_5", 40, 2)
    plan.append(("conv_6_sep", "conv", (k[47], 1, 1, 0, False)))
    return plan


def _layer_name(prefix: str) -> str:
    return prefix.replace(".", "__")  # Keras names carry the state-dict prefix ("conv_3.model.0.conv" -> "conv_3__...")


def build(name: str):
    """The untrained Keras network `name` ("MiniFASNetV2" or "MiniFASNetV1SE"): float32 [N, 80, 80, 3] BGR 0..255
    (see the module docstring) -> [N, 3] logits. Layer names are the state-dict prefixes with "." -> "__"."""
    import keras
    from keras import layers

    if name not in _ARCH:
        raise ValueError(f"unknown network {name!r}; known: {', '.join(_ARCH)}")
    keep, se = _ARCH[name]
    keep = _KEEP[keep]

    def conv_bn(x, prefix, filters, kernel, stride, pad, depthwise, prelu=True):
        if stride == 1 and pad == (kernel - 1) // 2:
            padding = "same"  # symmetric for an odd kernel at stride 1: the same as PyTorch's padding
        else:
            padding = "valid"
            if pad:
                x = layers.ZeroPadding2D(pad, name=_layer_name(prefix + ".pad"))(x)
        if depthwise:
            if filters != x.shape[-1]:
                raise ValueError(f"{prefix}: depthwise with {x.shape[-1]} -> {filters} channels")
            x = layers.DepthwiseConv2D(kernel, stride, padding=padding, use_bias=False,
                                       name=_layer_name(prefix + ".conv"))(x)
        else:
            x = layers.Conv2D(filters, kernel, stride, padding=padding, use_bias=False,
                              name=_layer_name(prefix + ".conv"))(x)
        x = layers.BatchNormalization(epsilon=BN_EPSILON, name=_layer_name(prefix + ".bn"))(x)
        if prelu:
            x = layers.PReLU(shared_axes=[1, 2], name=_layer_name(prefix + ".prelu"))(x)
        return x

    def depth_wise(x, prefix, channels, stride, with_se):
        expand, dw, out = channels
        residual = stride == 1  # the original's Residual stages are exactly its stride-1 blocks
        shortcut = x
        x = conv_bn(x, prefix + ".conv", expand, 1, 1, 0, False)
        x = conv_bn(x, prefix + ".conv_dw", dw, 3, stride, 1, True)
        x = conv_bn(x, prefix + ".project", out, 1, 1, 0, False, prelu=False)
        if with_se:
            s = layers.GlobalAveragePooling2D(keepdims=True, name=_layer_name(prefix + ".se_module.avg_pool"))(x)
            s = layers.Conv2D(out // SE_REDUCTION, 1, use_bias=False, name=_layer_name(prefix + ".se_module.fc1"))(s)
            s = layers.BatchNormalization(epsilon=BN_EPSILON, name=_layer_name(prefix + ".se_module.bn1"))(s)
            s = layers.ReLU(name=_layer_name(prefix + ".se_module.relu"))(s)
            s = layers.Conv2D(out, 1, use_bias=False, name=_layer_name(prefix + ".se_module.fc2"))(s)
            s = layers.BatchNormalization(epsilon=BN_EPSILON, name=_layer_name(prefix + ".se_module.bn2"))(s)
            s = layers.Activation("sigmoid", name=_layer_name(prefix + ".se_module.sigmoid"))(s)
            x = layers.Multiply(name=_layer_name(prefix + ".se_module.scale"))([x, s])
        if residual:
            x = layers.Add(name=_layer_name(prefix + ".add"))([shortcut, x])
        return x

    image = keras.Input((SIZE, SIZE, 3), dtype="float32", name="image_bgr")
    x = image
    for prefix, kind, args in _plan(keep, se):
        if kind == "conv":
            filters, kernel, stride, pad, depthwise = args
            x = conv_bn(x, prefix, filters, kernel, stride, pad, depthwise)
        else:
            x = depth_wise(x, prefix, *args)
    kernel = (SIZE + 15) // 16  # the original's get_kernel((h + 15) // 16, (w + 15) // 16): 5x5 for 80x80
    x = conv_bn(x, "conv_6_dw", keep[48], kernel, 1, 0, True, prelu=False)
    if tuple(x.shape[1:3]) != (1, 1):
        raise AssertionError(f"conv_6_dw leaves {x.shape[1:3]}, not 1x1: NHWC and NCHW flattening would differ")
    x = layers.Flatten(name="conv_6_flatten")(x)
    x = layers.Dense(EMBEDDING_SIZE, use_bias=False, name="linear")(x)
    x = layers.BatchNormalization(epsilon=BN_EPSILON, name="bn")(x)
    x = layers.Dropout(DROPOUT[name], name="drop")(x)
    logits = layers.Dense(NUM_CLASSES, use_bias=False, name="prob")(x)
    return keras.Model(image, logits, name=name)


def _keras_weights(layer, state: dict[str, np.ndarray], prefix: str, used: set) -> list[np.ndarray] | None:
    """The layer's weights from the state-dict entries under `prefix`, converted to Keras layouts; None: no weights."""
    from keras import layers

    def take(suffix):
        key = f"{prefix}.{suffix}"
        if key not in state:
            raise KeyError(f"{key} is missing from the state_dict (needed by Keras layer {layer.name})")
        if key in used:
            raise AssertionError(f"{key} used twice")
        used.add(key)
        return state[key]

    if isinstance(layer, layers.DepthwiseConv2D):  # (C, 1, kh, kw) -> (kh, kw, C, 1)
        return [take("weight").transpose(2, 3, 0, 1)]
    if isinstance(layer, layers.Conv2D):  # OIHW -> HWIO
        return [take("weight").transpose(2, 3, 1, 0)]
    if isinstance(layer, layers.BatchNormalization):
        weights = [take(s) for s in ("weight", "bias", "running_mean", "running_var")]
        take("num_batches_tracked")  # training bookkeeping only
        return weights
    if isinstance(layer, layers.PReLU):  # per-channel (C,) -> (1, 1, C)
        return [take("weight").reshape(1, 1, -1)]
    if isinstance(layer, layers.Dense):  # (out, in) -> (in, out)
        return [take("weight").T]
    if layer.weights:
        raise TypeError(f"no weight mapping for {type(layer).__name__} {layer.name}")
    return None


def load(name: str, path: str | Path | None = None):
    """build(name) with the weights of its vendored .pth (or `path`); every state-dict entry is used exactly once."""
    model = build(name)
    state = read_legacy_state_dict(path or PRETRAINED_DIR / WEIGHT_FILES[name])
    used: set[str] = set()
    for layer in model.layers:
        weights = _keras_weights(layer, state, layer.name.replace("__", "."), used)
        if weights is None:
            continue
        expected = [tuple(w.shape) for w in layer.get_weights()]
        if [w.shape for w in weights] != expected:
            raise ValueError(f"{layer.name}: shapes {[w.shape for w in weights]} from the file, Keras has {expected}")
        layer.set_weights([w.astype(np.float32) for w in weights])
    unused = sorted(set(state) - used)
    if unused:
        raise AssertionError(f"state_dict entries not used by the Keras {name}: {unused}")
    return model


def softmax(logits, axis: int = -1) -> np.ndarray:
    """Class probabilities of logits (numpy, float64 arithmetic, as float32); [..., REAL_CLASS] is P(bona fide)."""
    z = np.asarray(logits, np.float64)
    z = np.exp(z - z.max(axis=axis, keepdims=True))
    return (z / z.sum(axis=axis, keepdims=True)).astype(np.float32)


# ---------------------------------------------------------------------------------------------------------------
# The original crop
# ---------------------------------------------------------------------------------------------------------------


def crop_box(box_xywh, image_h: int, image_w: int, scale: float) -> tuple[int, int, int, int]:
    """The original crop rule (generate_patches.CropImage._get_new_box): inclusive corners (x0, y0, x1, y1).

    box_xywh is the detector's face box (left, top, width, height). scale is first reduced so the scaled box fits:
    scale = min(scale, (image_h - 1) / h, (image_w - 1) / w). The box is scaled by it about its centre
    (x + w/2, y + h/2). Where it sticks out left or top, it is moved right or down so that edge is 0. Where it then
    sticks out right or bottom, it is moved left or up so that edge is image_w - 1 or image_h - 1. The corners are
    truncated toward zero (Python int(), as the original). The crop is image[y0 : y1 + 1, x0 : x1 + 1]: both corners
    are included.
    """
    x, y, w, h = (float(v) for v in box_xywh)
    if not (w > 0 and h > 0):
        raise ValueError(f"box width and height must be positive, got {box_xywh!r}")
    scale = min((image_h - 1) / h, min((image_w - 1) / w, scale))
    new_w, new_h = w * scale, h * scale
    cx, cy = x + w / 2, y + h / 2
    x0, y0, x1, y1 = cx - new_w / 2, cy - new_h / 2, cx + new_w / 2, cy + new_h / 2
    if x0 < 0:
        x1 -= x0
        x0 = 0
    if y0 < 0:
        y1 -= y0
        y0 = 0
    if x1 > image_w - 1:
        x0 -= x1 - image_w + 1
        x1 = image_w - 1
    if y1 > image_h - 1:
        y0 -= y1 - image_h + 1
        y1 = image_h - 1
    return int(x0), int(y0), int(x1), int(y1)


def crop_patch(image: np.ndarray, box_xywh, scale: float) -> np.ndarray:
    """The original input patch: crop_box's crop of `image` (H x W x C, channel order kept) resized to 80x80 with
    cv2.INTER_LINEAR (the original's cv2.resize default). For the networks: BGR, then .astype(np.float32)."""
    import cv2

    x0, y0, x1, y1 = crop_box(box_xywh, image.shape[0], image.shape[1], scale)
    return cv2.resize(image[y0:y1 + 1, x0:x1 + 1], (SIZE, SIZE), interpolation=cv2.INTER_LINEAR)
