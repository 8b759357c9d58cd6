"""Score REAL bona fide photos with the committed liveness model: the share accepted is 1 - BPCER on real data.

usage: python scripts/eval_liveness_real.py [--faces /work/shared/data/yalefaces] [--model DIR]

The Yale faces are grayscale, frontal and roughly centred, so a square centre crop (side = image height) frames them
like the synthetic training renders; the grey channel is repeated to RGB, as the serving contract asks.
"""

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from veid_ml import determinism, registry

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".pgm"}


def centre_crop(path: Path, size: int) -> np.ndarray:
    """float32 (size, size, 3) in [0, 1]: the largest centred square, resized, grey repeated to RGB."""
    with Image.open(path) as im:
        im = im.convert("RGB")
    w, h = im.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    im = im.crop((left, top, left + side, top + side)).resize((size, size), Image.BILINEAR)
    return np.asarray(im, np.float32) / 255.0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--faces", type=Path, default=Path("/work/shared/data/yalefaces"))
    p.add_argument("--model", type=Path, default=registry.get("liveness_detection").weights_dir / "liveness_model")
    args = p.parse_args()
    files = sorted(f for f in args.faces.glob("*") if f.suffix.lower() in IMAGE_SUFFIXES) if args.faces.is_dir() else []
    if not files:
        raise SystemExit(f"error: no images in {args.faces}")
    determinism.configure(reexec=False)
    import tensorflow as tf

    from veid_ml import export

    serve = export.load_serving(args.model)
    size = serve.structured_input_signature[1]["image"].shape[1]
    images = np.stack([centre_crop(f, size) for f in files])
    out = serve(image=tf.constant(images))
    prob, accepted = out["probability_bona_fide"].numpy(), out["is_bona_fide"].numpy()
    print(f"{len(files)} real bona fide photos from {args.faces}, model input {size}x{size}, "
          f"threshold {float(out['threshold'].numpy()):.4f}")
    by_condition = {}
    for f, ok in zip(files, accepted):
        by_condition.setdefault(f.stem.split("_", 1)[-1], []).append(bool(ok))
    for condition, oks in sorted(by_condition.items()):
        print(f"  {condition:12s} accepted {sum(oks)}/{len(oks)}")
    print(f"median probability_bona_fide: {np.median(prob):.4f}")
    print(f"classified bona fide: {accepted.mean():.4f} ({int(accepted.sum())}/{len(files)}) "
          f"= 1 - BPCER on real photos (BPCER {1 - accepted.mean():.4f})")


if __name__ == "__main__":
    sys.exit(main())
