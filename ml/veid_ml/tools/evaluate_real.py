"""`veid-ml eval-real facial|liveness|face-detection --faces DIR`: the approved models on real photos, never used to
train or tune.

facial: every image is aligned as the VEID pipeline aligns a selfie (the approved face_detection model's eyes ->
veid_ml.alignment's integer crop), embedded with the SavedModel's `embed` signature, and ALL pairs are scored by
the pipeline's integer similarity (veid_ml.scoring, in 1/10000). Files are named subjectNN_<condition>
(the Yale faces: 15 people x 11 conditions). "best accuracy" picks its threshold on these same pairs, so it is an
optimistic upper bound; the accuracy at the stored (synthetic-validation) threshold is what a deployment would see.

liveness: scores REAL bona fide photos; the share accepted is 1 - BPCER on real data. Each photo is cropped as the
VEID pipeline crops a selfie (detector eyes -> the 128 px integer crop; grey repeated to RGB); a photo without a
detected face counts as rejected.

face-detection: runs the detector on each real photo (one person per photo, e.g. Yale) as the API will, whole image
in, and counts the photos with a face found and with exactly one face.
"""

import re
import sys
from pathlib import Path

from veid_ml import determinism, registry
from veid_ml.tools import add_command

YALE_NAME = re.compile(r"^(subject\d+)[._]")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".pgm"}


def load_yale(folder: Path):
    """(RGB images, integer identity per image) of the subjectNN_<condition> files in folder."""
    import numpy as np
    from PIL import Image

    files = sorted(p for p in folder.iterdir()
                   if YALE_NAME.match(p.name) and p.suffix.lower() in (".png", ".gif", ".pgm"))
    if not files:
        raise SystemExit(f"error: no subjectNN_<condition> images in {folder}")
    images = [np.asarray(Image.open(p).convert("RGB")) for p in files]
    subjects = [YALE_NAME.match(p.name).group(1) for p in files]
    return images, np.unique(subjects, return_inverse=True)[1]


def cmd_facial(args) -> int:
    if not args.faces.is_dir():
        print(f"eval-real facial: no such folder: {args.faces}", file=sys.stderr)
        return 2
    determinism.configure(reexec=False)  # before TensorFlow is imported
    import numpy as np
    import tensorflow as tf
    from sklearn import metrics as skm

    from veid_ml import export, metrics, scoring
    from veid_ml.api import crop_largest_faces

    images, labels = load_yale(args.faces)
    signatures = export.load_signatures(args.model)
    embed, pair_fn = signatures["embed"], signatures[export.SERVING_KEY]
    size = int(embed.structured_input_signature[1]["image"].shape[1])
    crops, found = crop_largest_faces(images, size)
    x = tf.constant(crops.astype(np.float32) / np.float32(255))
    emb = scoring.quantise_embedding(embed(image=x)["embedding"].numpy())
    threshold = scoring.basis_points(pair_fn(image_a=x[:1], image_b=x[:1])["threshold"].numpy()[0])

    i, j = np.triu_indices(len(labels), k=1)
    genuine = (labels[i] == labels[j]).astype(int)
    sim = np.array([scoring.similarity_bp(emb[a], emb[b]) for a, b in zip(i, j)])
    thr = skm.roc_curve(genuine, sim)[2]  # every distinct score, as candidate thresholds
    best = max(np.mean((sim >= t) == genuine) for t in thr)
    print(f"images {len(labels)} ({int(found.sum())} faces found by face_detection, {int((~found).sum())} without), "
          f"identities {labels.max() + 1}, pairs {len(sim)} ({genuine.sum()} genuine, {(1 - genuine).sum()} impostor)")
    print(f"AUC {skm.roc_auc_score(genuine, sim):.4f}")
    print(f"EER {metrics.equal_error_rate(genuine, sim)[0]:.4f}")
    print(f"best accuracy {best:.4f} (threshold chosen on these pairs: optimistic)")
    print(f"TAR@FAR=1e-2 {metrics.tpr_at_fpr(genuine, sim, 1e-2)[0]:.4f}")
    print(f"accuracy at the stored threshold {threshold}/10000: {np.mean((sim >= threshold) == genuine):.4f} "
          f"(TAR {np.mean(sim[genuine == 1] >= threshold):.4f}, FAR {np.mean(sim[genuine == 0] >= threshold):.4f})")
    return 0


def photos_and_model(args, command: str):
    """(the image files in --faces, the --model's serving signature), or (None, None) after saying there are no images;
    determinism is configured before TensorFlow loads the model."""
    folder = args.faces
    files = sorted(f for f in folder.glob("*") if f.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
    if not files:
        print(f"eval-real {command}: no images in {folder}", file=sys.stderr)
        return None, None
    determinism.configure(reexec=False)
    from veid_ml import export

    return files, export.load_serving(args.model)


def cmd_liveness(args) -> int:
    files, serve = photos_and_model(args, "liveness")
    if files is None:
        return 2
    import numpy as np
    import tensorflow as tf

    from veid_ml import images
    from veid_ml.api import crop_largest_faces

    size = serve.structured_input_signature[1]["image"].shape[1]
    crops, found = crop_largest_faces([images.load_rgb(f) for f in files], size)
    out = serve(image=tf.constant(crops.astype(np.float32) / np.float32(255)))
    prob, accepted = out["probability_bona_fide"].numpy(), out["is_bona_fide"].numpy() & found
    print(f"{len(files)} real bona fide photos from {args.faces} ({int(found.sum())} with a face), model input "
          f"{size}x{size}, "
          f"threshold {float(out['threshold'].numpy()):.4f}")
    by_condition = {}
    for f, ok in zip(files, accepted):
        by_condition.setdefault(f.stem.split("_", 1)[-1], []).append(bool(ok))
    for condition, oks in sorted(by_condition.items()):
        print(f"  {condition:12s} accepted {sum(oks)}/{len(oks)}")
    print(f"median probability_bona_fide: {np.median(prob):.4f}")
    print(f"classified bona fide: {accepted.mean():.4f} ({int(accepted.sum())}/{len(files)}) "
          f"= 1 - BPCER on real photos (BPCER {1 - accepted.mean():.4f})")
    return 0


def cmd_face_detection(args) -> int:
    files, serve = photos_and_model(args, "face-detection")
    if files is None:
        return 2
    import numpy as np
    import tensorflow as tf
    from PIL import Image

    counts = []
    for path in files:
        with Image.open(path) as im:
            counts.append(int(serve(image=tf.constant(np.asarray(im.convert("RGB"))))["scores"].shape[0]))
    counts = np.array(counts)
    print(f"{len(files)} real photos from {args.faces}: a face found in {int((counts > 0).sum())}, exactly one in "
          f"{int((counts == 1).sum())} (detection rate {(counts > 0).mean():.4f})")
    return 0


def _approved_model_dir(name: str) -> Path:
    spec = registry.get(name)
    return spec.weights_dir / spec.artifact


def register(eval_subparsers) -> None:
    """Add `facial`, `liveness` and `face-detection` to `veid-ml eval-real`: each reads a folder of real faces with an
    approved model."""
    sections = __doc__.split("\n\n")
    commands = (
        ("facial", cmd_facial, "facial_verification", sections[1],
         "verification AUC/EER/accuracy over all pairs of real faces",
         "folder of subjectNN_<condition> images, e.g. the Yale faces"),
        ("liveness", cmd_liveness, "liveness_detection", sections[2],
         "share of real bona fide photos accepted (1 - BPCER)",
         "folder of real bona fide face photos (<name>_<condition>.<ext>)"),
        ("face-detection", cmd_face_detection, "face_detection", sections[3],
         "share of real one-person photos in which the detector finds a face (and exactly one)",
         "folder of real photos with one person each"),
    )
    for name, fn, model, description, summary, faces_help in commands:
        parser = add_command(eval_subparsers, name, fn, help=summary, description=description)
        parser.add_argument("--faces", type=Path, required=True, metavar="DIR", help=faces_help)
        parser.add_argument("--model", type=Path, default=_approved_model_dir(model), metavar="SAVEDMODEL",
                            help=f"SavedModel directory (default: the approved {name} model)")
