"""`veid-ml eval-real facial|liveness|face-detection --faces DIR`: the approved models on real photos, never used to
train or tune.

facial: every image is aligned as the VEID pipeline aligns a selfie (the approved face_detection model's landmarks ->
veid_ml.alignment's integer crop), embedded with the SavedModel's `embed` signature, and the pairs of
veid_ml.data.face_pairs (files subjectNN_<condition> as Yale's or sNN_MM as Georgia Tech's; all genuine pairs, as many
impostors, 10 folds split by person) are scored by the pipeline's integer similarity (veid_ml.scoring, in 1/10000).
The 10-fold accuracy picks each fold's threshold on the other nine; the accuracy at the stored (the approved graph's)
threshold is what a deployment would see. scripts/bench_dlib_faces.py scores dlib on the same pairs.

liveness: scores REAL bona fide photos; the share accepted is 1 - BPCER on real data. Each photo is cropped as the
VEID pipeline crops a selfie (detector landmarks -> the 128 px integer crop; grey repeated to RGB); a photo without a
detected face counts as rejected.

face-detection: runs the detector on each real photo (one person per photo, e.g. Yale) as the API will, whole image
in, and counts the photos with a face found and with exactly one face.
"""

import sys
from pathlib import Path

from veid_ml import determinism, registry
from veid_ml.tools import add_command

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".pgm"}


def cmd_facial(args) -> int:
    from veid_ml.data import face_pairs

    try:
        photos, labels, _ = face_pairs.load_photos(args.faces)
    except ValueError as e:
        print(f"eval-real facial: {e}", file=sys.stderr)
        return 2
    determinism.configure(reexec=False)  # before TensorFlow is imported
    import numpy as np
    import tensorflow as tf
    from sklearn import metrics as skm

    from veid_ml import export, metrics, scoring
    from veid_ml.api import FACE_CHIP, crop_largest_faces

    signatures = export.load_signatures(args.model)
    embed, pair_fn = signatures["embed"], signatures[export.SERVING_KEY]
    size = int(embed.structured_input_signature[1]["image"].shape[1])
    if size != FACE_CHIP.size:
        print(f"eval-real facial: the model takes {size} px faces; the pipeline crops {FACE_CHIP.size}",
              file=sys.stderr)
        return 2
    crops, found = crop_largest_faces(photos, FACE_CHIP)
    integer = export.is_integer_graph(embed)  # the consensus graph, or a float twin (--model)
    x = crops if integer else crops.astype(np.float32) / np.float32(255)
    emb = np.concatenate([embed(image=tf.constant(x[i:i + 64]))["embedding"].numpy() for i in range(0, len(x), 64)])
    emb = emb.astype(np.int64) if integer else scoring.quantise_embedding(emb)
    pair = pair_fn(image_a=x[:1], image_b=x[:1])
    threshold = int(pair["threshold_bp"].numpy()[0]) if integer else scoring.basis_points(pair["threshold"].numpy()[0])

    pairs, genuine, folds = face_pairs.verification_pairs(labels)
    sim = np.array([scoring.similarity_bp(emb[a], emb[b]) for a, b in pairs])
    accuracy, predicted = metrics.ten_fold_accuracy(genuine, sim, folds)
    at_stored = sim >= threshold
    result = {"photos": len(labels), "faces_found": int(found.sum()), "identities": int(labels.max() + 1),
              "genuine_pairs": int(genuine.sum()), "impostor_pairs": int((1 - genuine).sum()),
              "protocol": "veid_ml.data.face_pairs: 10 folds split by person; the integer pipeline's similarity",
              "ten_fold_accuracy": accuracy,
              "ten_fold_std": float(np.std(metrics.fold_accuracies(genuine, predicted, folds))),
              "auc": float(skm.roc_auc_score(genuine, sim)), "eer": metrics.equal_error_rate(genuine, sim)[0],
              "stored_threshold_bp": threshold, "accuracy_at_stored_threshold": float(np.mean(at_stored == genuine)),
              "tar_at_stored_threshold": float(np.mean(at_stored[genuine == 1])),
              "far_at_stored_threshold": float(np.mean(at_stored[genuine == 0]))}
    print(f"{args.faces}: images {len(labels)} ({int(found.sum())} faces found by face_detection, "
          f"{int((~found).sum())} without), identities {labels.max() + 1}, pairs {len(sim)} "
          f"({genuine.sum()} genuine, {(1 - genuine).sum()} impostor), 10 folds split by person")
    print(f"10-fold accuracy {accuracy:.4f} +- {result['ten_fold_std']:.4f}")
    print(f"AUC {result['auc']:.4f}")
    print(f"EER {result['eer']:.4f}")
    print(f"accuracy at the stored threshold {threshold}/10000: {result['accuracy_at_stored_threshold']:.4f} "
          f"(TAR {result['tar_at_stored_threshold']:.4f}, FAR {result['far_at_stored_threshold']:.4f})")
    record(args, result)
    return 0


def record(args, result: dict) -> None:
    """--record [NAME]: result into the model's metrics.json (record_real_data)."""
    if args.record is not None:
        name = args.record or args.faces.name
        print(f"recorded as real_data[{name!r}] in {record_real_data(args.model, name, result)}")


def record_real_data(model_dir: Path, name: str, result: dict) -> Path:
    """Add result to the model's metrics.json (beside the SavedModel) under real_data[name], with the date and the
    model's digest: the model card's real-photo figures, measured by this command, never by training."""
    from veid_ml import hashing, metrics

    path = model_dir.parent / "metrics.json"
    doc = hashing.read_json(path, "the model's metrics file")
    manifest = model_dir.parent / "manifest.json"
    digest = hashing.read_json(manifest, "the model's manifest")["digest"] if manifest.is_file() else None
    doc.setdefault("real_data", {})[name] = {**metrics.round_floats(result), "model_digest": digest,
                                             "measured": metrics.utc_now()}
    if "real_data" not in doc.get("non_deterministic_fields", ["real_data"]):
        doc["non_deterministic_fields"].append("real_data")  # measured on data outside the repository
    metrics.write_metrics(path, doc)
    return path


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

    from veid_ml import export, images
    from veid_ml.api import LIVENESS_CHIP, crop_largest_faces

    size = serve.structured_input_signature[1]["image"].shape[1]
    crops, found = crop_largest_faces([images.load_rgb(f) for f in files], LIVENESS_CHIP)
    if export.is_integer_graph(serve):  # the consensus graph: basis points
        out = serve(image=tf.constant(crops))
        prob, threshold = out["probability_bona_fide_bp"].numpy() / 10000.0, int(out["threshold_bp"].numpy()) / 10000.0
    else:  # a float twin (--model)
        out = serve(image=tf.constant(crops.astype(np.float32) / np.float32(255)))
        prob, threshold = out["probability_bona_fide"].numpy(), float(out["threshold"].numpy())
    accepted = out["is_bona_fide"].numpy() & found
    print(f"{len(files)} real bona fide photos from {args.faces} ({int(found.sum())} with a face), model input "
          f"{size}x{size}, threshold {threshold:.4f}")
    by_condition = {}
    for f, ok in zip(files, accepted):
        by_condition.setdefault(f.stem.split("_", 1)[-1], []).append(bool(ok))
    for condition, oks in sorted(by_condition.items()):
        print(f"  {condition:12s} accepted {sum(oks)}/{len(oks)}")
    print(f"median probability_bona_fide: {np.median(prob):.4f}")
    print(f"classified bona fide: {accepted.mean():.4f} ({int(accepted.sum())}/{len(files)}) "
          f"= 1 - BPCER on real photos (BPCER {1 - accepted.mean():.4f})")
    if args.record is not None:
        result = {"photos": len(files), "faces_found": int(found.sum()), "accepted": int(accepted.sum()),
                  "acceptance_rate": float(accepted.mean()), "bpcer": float(1 - accepted.mean()),
                  "median_probability_bona_fide": float(np.median(prob)),
                  "threshold": threshold,
                  "crop": "the pipeline's: face_detection's landmarks -> alignment.LIVENESS_CHIP (128 px); "
                          "a photo without a face counts as rejected"}
        record(args, result)
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
            out = serve(image=tf.constant(np.asarray(im.convert("RGB"))))
            counts.append(int(out["scores_bp" if "scores_bp" in out else "scores"].shape[0]))  # or the float twin
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
         "10-fold verification accuracy, AUC, EER on pairs of real faces",
         "folder of subjectNN_<condition> or sNN_MM images, e.g. the Yale or Georgia Tech faces"),
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
        if name in ("facial", "liveness"):
            parser.add_argument("--record", nargs="?", const="", default=None, metavar="NAME",
                                help="write the figures into the model's metrics.json under real_data[NAME] "
                                     "(default NAME: the folder's name)")
