"""Real-photo face verification protocol: named photo folders -> pairs in 10 folds split by person.

Evaluation only (Yale faces, Georgia Tech faces, a user's own photos): never train or pick a threshold on them.
Imports NumPy and Pillow only, so a benchmark of another library (e.g. dlib, in its own environment) scores exactly
the same pairs as `veid-ml eval-real facial`.

Files: `subjectNN_<condition>.*` (Yale) or `sNN_MM.*` (Georgia Tech); the identity is the name's first field.
Pairs: every genuine pair (two photos of one person) and as many impostor pairs (two people), drawn without
replacement from all impostor pairs by a generator seeded with PAIR_SEED. People are dealt round-robin into 10 folds
after a seeded shuffle; a genuine pair belongs to its person's fold, an impostor pair to the fold of its first
photo's person (the photo with the lower index). 10-fold accuracy (veid_ml.metrics.ten_fold_accuracy) scores each
fold with the threshold that is best on the other nine.
"""

import re
from pathlib import Path

import numpy as np
from PIL import Image

IDENTITY = re.compile(r"^(subject\d+|s\d+)[._]", re.IGNORECASE)
SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".pgm", ".bmp"}
PAIR_SEED = 20261129
FOLDS = 10


def photo_files(folder) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"no such folder: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in SUFFIXES and IDENTITY.match(p.name))
    if not files:
        raise ValueError(f"{folder} has no photos named subjectNN_<condition> or sNN_MM")
    return files


def load_photos(folder) -> tuple[list[np.ndarray], np.ndarray, list[Path]]:
    """(RGB uint8 photos at their own size, identity index per photo, files) of one folder."""
    files = photo_files(folder)
    photos = []
    for path in files:
        with Image.open(path) as im:
            photos.append(np.asarray(im.convert("RGB")))
    names = [IDENTITY.match(p.name).group(1).lower() for p in files]
    return photos, np.unique(names, return_inverse=True)[1].astype(np.int64), files


def verification_pairs(labels: np.ndarray, seed: int = PAIR_SEED) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pairs (n, 2) photo indices, is_genuine (n,), fold (n,)) as the module docstring defines them."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    people = np.unique(labels)
    fold_of_person = np.empty(people.max() + 1, np.int64)
    fold_of_person[rng.permutation(people)] = np.arange(len(people)) % FOLDS
    i, j = np.triu_indices(len(labels), k=1)
    same = labels[i] == labels[j]
    genuine = np.flatnonzero(same)
    impostor = np.sort(rng.choice(np.flatnonzero(~same), min(len(genuine), int((~same).sum())), replace=False))
    chosen = np.concatenate([genuine, impostor])
    pairs = np.stack([i[chosen], j[chosen]], axis=1)
    is_genuine = np.repeat([1, 0], [len(genuine), len(impostor)])
    return pairs, is_genuine, fold_of_person[labels[pairs[:, 0]]]
