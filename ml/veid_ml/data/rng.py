"""Per-sample random streams: every sample is a pure function of (generator, split, index, seed)."""

import hashlib

import numpy as np

SPLITS = ("train", "val", "test")


def sample_rng(generator: str, split: str, index: int, seed: int) -> np.random.Generator:
    """A NumPy generator seeded only by the sample's coordinates.

    sha256 (not Python's hash(), which PYTHONHASHSEED salts) makes the stream identical in every process and machine,
    so generation can be split across workers in any way and still yield the same bytes.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
    if index < 0:
        raise ValueError(f"sample index must be >= 0, got {index}")
    key = f"{generator}/{split}/{int(index)}/{int(seed)}".encode()
    words = np.frombuffer(hashlib.sha256(key).digest(), dtype="<u4")
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(words.tolist())))


def content_hash(*arrays) -> str:
    """sha256 over arrays' dtype, shape and bytes: the dataset content hash written into metrics.json."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()
