"""Loaders for a user's own data, with errors that say what is wrong with the folder layout.

faces:    root/<identity>/*.png|jpg|jpeg|gif|bmp|pgm            -> (images, labels, identity names)
liveness: root/live/*  and  root/spoof/<species>/*             -> (images, is_bona_fide, species names per image)
ocr:      root/labels.tsv with lines "<relative image path>\t<text>" -> (grayscale images, texts)
"""

from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".pgm"}


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _subfolders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir())


def _open(path: Path, mode: str) -> Image.Image:
    try:
        with Image.open(path) as im:
            return im.convert(mode)
    except (OSError, ValueError) as e:
        raise ValueError(f"unreadable image {path}: {e}") from e


def _rgb(path: Path, size: int) -> np.ndarray:
    return np.asarray(_open(path, "RGB").resize((size, size), Image.BILINEAR))


def _root(root) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"data folder {root} does not exist")
    return root


def load_faces(root, size: int = 112) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(images uint8 (N, size, size, 3), labels int32 (N,), identity names) from one folder per identity."""
    root = _root(root)
    identities = _subfolders(root)
    if len(identities) < 2:
        raise ValueError(f"{root} needs at least 2 identity folders (root/<identity>/*.png), found {len(identities)}")
    images, labels = [], []
    for label, folder in enumerate(identities):
        files = _image_files(folder)
        if not files:
            raise ValueError(f"identity folder {folder} has no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
        images += [_rgb(f, size) for f in files]
        labels += [label] * len(files)
    return np.stack(images), np.array(labels, np.int32), [f.name for f in identities]


def load_liveness(root, size: int = 112) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(images uint8 (N, size, size, 3), is_bona_fide int32 (N,), species name per image, "" for bona fide)."""
    root = _root(root)
    live, spoof = root / "live", root / "spoof"
    for folder in (live, spoof):
        if not folder.is_dir():
            raise ValueError(f"missing folder {folder}: expected root/live/* and root/spoof/<species>/*")
    groups = [("", _image_files(live))] + [(f.name, _image_files(f)) for f in _subfolders(spoof)]
    if len(groups) == 1:
        raise ValueError(f"{spoof} has no species folders (root/spoof/<species>/*)")
    for name, files in groups:
        if not files:
            raise ValueError(f"{spoof / name if name else live} has no images")
    images = [_rgb(f, size) for _, files in groups for f in files]
    species = [name for name, files in groups for _ in files]
    return np.stack(images), np.array([s == "" for s in species], np.int32), species


def load_ocr(root) -> tuple[list[np.ndarray], list[str]]:
    """(grayscale uint8 images at their own size, texts) listed in root/labels.tsv."""
    root = _root(root)
    labels = root / "labels.tsv"
    if not labels.is_file():
        raise ValueError(f"missing label file {labels} (lines '<relative image path>\\t<text>')")
    images, texts = [], []
    for n, line in enumerate(labels.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        if "\t" not in line:
            raise ValueError(f"{labels} line {n}: expected '<relative image path>\\t<text>'")
        rel, text = line.split("\t", 1)
        path = root / rel
        if not path.is_file():
            raise ValueError(f"{labels} line {n}: image {path} does not exist")
        images.append(np.asarray(_open(path, "L")))
        texts.append(text)
    if not images:
        raise ValueError(f"{labels} lists no images")
    return images, texts
