"""Evaluate the exported facial verification model on real photos: the Yale faces (15 people x 11 conditions).

Every image is aligned with veid_ml.face_align (MTCNN eyes -> the synthetic crop), embedded with the SavedModel's
`embed` signature, and ALL pairs are scored by cosine similarity. Nothing here is used for training or tuning.

    python scripts/eval_facial_yale.py [--data /work/shared/data/yalefaces] [--model ml/facial_verification/weights]

"best accuracy" picks its threshold on these same pairs, so it is an optimistic upper bound; the accuracy at the
stored (synthetic-validation) threshold is what a deployment would see.
"""

import argparse
import re
from pathlib import Path

from veid_ml import determinism

determinism.configure()  # before TensorFlow (MTCNN and the SavedModel) is imported

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from sklearn import metrics as skm  # noqa: E402

from veid_ml import export, face_align, metrics, registry  # noqa: E402

NAME = re.compile(r"^(subject\d+)[._]")


def load_yale(folder: Path) -> tuple[list[np.ndarray], np.ndarray]:
    files = sorted(p for p in folder.iterdir() if NAME.match(p.name) and p.suffix.lower() in (".png", ".gif", ".pgm"))
    if not files:
        raise SystemExit(f"error: no subjectNN_<condition> images in {folder}")
    images = [np.asarray(Image.open(p).convert("RGB")) for p in files]
    subjects = [NAME.match(p.name).group(1) for p in files]
    return images, np.unique(subjects, return_inverse=True)[1]


def main() -> None:
    spec = registry.get("facial_verification")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=Path("/work/shared/data/yalefaces"))
    p.add_argument("--model", type=Path, default=spec.weights_dir, help="weights dir holding the SavedModel")
    args = p.parse_args()

    import tensorflow as tf

    images, labels = load_yale(args.data)
    signatures = export.load_signatures(args.model / spec.artifact)
    embed, pair_fn = signatures["embed"], signatures[export.SERVING_KEY]
    size = int(embed.structured_input_signature[1]["image"].shape[1])
    crops, found = face_align.align_batch(images, size)
    x = tf.constant(crops.astype(np.float32) / 255.0)
    emb = embed(image=x)["embedding"].numpy()
    threshold = float(pair_fn(image_a=x[:1], image_b=x[:1])["threshold"].numpy()[0])

    i, j = np.triu_indices(len(labels), k=1)
    genuine = (labels[i] == labels[j]).astype(int)
    sim = np.sum(emb[i] * emb[j], axis=1)
    fpr, tpr, thr = skm.roc_curve(genuine, sim)
    best = max(np.mean((sim >= t) == genuine) for t in thr)
    print(f"images {len(labels)} ({int(found.sum())} faces found by MTCNN, {int((~found).sum())} centre-cropped), "
          f"identities {labels.max() + 1}, pairs {len(sim)} ({genuine.sum()} genuine, {(1 - genuine).sum()} impostor)")
    print(f"AUC {skm.roc_auc_score(genuine, sim):.4f}")
    print(f"EER {metrics.equal_error_rate(genuine, sim)[0]:.4f}")
    print(f"best accuracy {best:.4f} (threshold chosen on these pairs: optimistic)")
    print(f"TAR@FAR=1e-2 {metrics.tpr_at_fpr(genuine, sim, 1e-2)[0]:.4f}")
    print(f"accuracy at the stored threshold {threshold:.4f}: {np.mean((sim >= threshold) == genuine):.4f} "
          f"(TAR {np.mean(sim[genuine == 1] >= threshold):.4f}, FAR {np.mean(sim[genuine == 0] >= threshold):.4f})")


if __name__ == "__main__":
    main()
