#!/usr/bin/env python3
"""Benchmark dlib's own face verification pipeline (the reference) on real photo folders.

Same pairs, folds and 10-fold accuracy as `veid-ml eval-real facial`: the protocol and metric come from the
project's own modules (veid_ml.data.face_pairs, veid_ml.metrics), never re-implemented here. Per photo: HOG face
detector (upsample 1), else the CNN (mmod) detector, else the whole image as the face box; then the 5-point
shape predictor, dlib.get_face_chip(size 150, padding 0.25) and the ResNet descriptor (no jitter), i.e. what the
`face_recognition` package does. `--eye-only` instead aligns the chip from the two eye centres alone (similarity
transform onto dlib's template eye centres, PIL bilinear warp, black outside).

dlib is not a project dependency: run with an environment that has dlib, numpy, pillow and scikit-learn, e.g.
    python3 -m venv ~/venvs/dlib && ~/venvs/dlib/bin/pip install dlib-bin numpy pillow scikit-learn
    ~/venvs/dlib/bin/python scripts/bench_dlib_faces.py --faces DIR [--faces DIR ...] [--models DIR]
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "ml"))
from veid_ml.data.face_pairs import load_photos, verification_pairs  # noqa: E402
from facial_verification.dlib_resnet import installed_model_path  # noqa: E402
from veid_ml.atomic import write_text_atomic  # noqa: E402
from veid_ml.metrics import equal_error_rate, fold_accuracies, ten_fold_accuracy  # noqa: E402

CHIP, PADDING = 150, 0.25
DLIB_THRESHOLD = 0.6  # dlib's documented same-person rule: descriptor distance < 0.6
MODEL_FILES = {"shape": "shape_predictor_5_face_landmarks.dat", "resnet": "dlib_face_recognition_resnet_model_v1.dat",
               "mmod": "mmod_human_face_detector.dat"}
# dlib's 5-point template (get_face_chip_details, dlib/image_transforms/interpolation.h), unit square.
TEMPLATE = np.array([[0.8595674595992, 0.2134981538014], [0.6460604764104, 0.2289674387677],
                     [0.1205750620789, 0.2137274526848], [0.3340850613712, 0.2290642403242],
                     [0.4901123135679, 0.6277975316475]])
TEMPLATE_EYES = (PADDING + np.array([TEMPLATE[0:2].mean(0), TEMPLATE[2:4].mean(0)])) / (2 * PADDING + 1) * CHIP


def default_models_dir():
    """The installed face_recognition_models package's models folder, found without importing it."""
    path = installed_model_path()
    return path.parent if path else None


def eye_only_chip(img: np.ndarray, shape) -> np.ndarray:
    """Chip from the two eye centres (mean of each eye's two corner points) by a similarity transform."""
    parts = np.array([[shape.part(k).x, shape.part(k).y] for k in range(5)], float)
    eyes = np.array([parts[0:2].mean(0), parts[2:4].mean(0)])
    # Similarity template -> image as complex numbers: z_img = a z + b (pixel centres on integers, as in dlib).
    c, e = TEMPLATE_EYES @ [1, 1j], eyes @ [1, 1j]
    a = (e[1] - e[0]) / (c[1] - c[0])
    b = e[0] - a * c[0]
    # dlib's chip_details(points) keeps only a rect (centre a*75+b, side 150|a|-1) and an angle, and samples chip
    # pixel 0..149 across that side: chip pixel x -> centre + a' (x - 74.5), a' = a (150|a| - 1) / (149|a|).
    # Reproduced exactly (bit-identical to dlib.extract_image_chip when dlib uses no pyramid level).
    a1 = a * (CHIP * abs(a) - 1) / ((CHIP - 1) * abs(a))
    b1 = a * (CHIP / 2) * (1 + 1j) + b - a1 * (CHIP - 1) / 2 * (1 + 1j)
    b1 += (0.5 + 0.5j) - a1 * (0.5 + 0.5j)  # PIL puts pixel centres on .5: x_pil = x + 0.5 on both sides
    coeffs = (a1.real, -a1.imag, b1.real, a1.imag, a1.real, b1.imag)
    warped = Image.fromarray(img).transform((CHIP, CHIP), Image.Transform.AFFINE, coeffs,
                                            resample=Image.Resampling.BILINEAR, fillcolor=0)
    return np.asarray(warped)


class Pipeline:
    def __init__(self, models: Path, eye_only: bool):
        import dlib

        self.dlib, self.eye_only = dlib, eye_only
        self.hog = dlib.get_frontal_face_detector()
        self.cnn = dlib.cnn_face_detection_model_v1(str(models / MODEL_FILES["mmod"]))
        self.shape = dlib.shape_predictor(str(models / MODEL_FILES["shape"]))
        self.resnet = dlib.face_recognition_model_v1(str(models / MODEL_FILES["resnet"]))

    def face_box(self, img):
        """(box, detector name): the largest HOG face, else the largest CNN face, else the whole image."""
        boxes = list(self.hog(img, 1))
        if boxes:
            return max(boxes, key=lambda r: r.area()), "hog"
        boxes = [d.rect for d in self.cnn(img, 1)]
        if boxes:
            return max(boxes, key=lambda r: r.area()), "cnn"
        return self.dlib.rectangle(0, 0, img.shape[1] - 1, img.shape[0] - 1), "whole"

    def __call__(self, img):
        """(128-d descriptor, detector name, chip)."""
        box, detector = self.face_box(img)
        shape = self.shape(img, box)
        chip = eye_only_chip(img, shape) if self.eye_only else self.dlib.get_face_chip(img, shape, size=CHIP,
                                                                                       padding=PADDING)
        chip = np.ascontiguousarray(chip)
        return np.asarray(self.resnet.compute_face_descriptor(chip, 0)), detector, chip


def fold_scores(is_genuine, score, folds) -> dict:
    from sklearn.metrics import roc_auc_score

    mean, predicted = ten_fold_accuracy(is_genuine, score, folds)
    return {"ten_fold_accuracy": mean, "ten_fold_std": float(np.std(fold_accuracies(is_genuine, predicted, folds))),
            "auc": float(roc_auc_score(is_genuine, score)), "eer": equal_error_rate(is_genuine, score)[0]}


def bench_folder(pipe: Pipeline, folder: Path, save_chips: Path | None) -> dict:
    photos, labels, files = load_photos(folder)
    descriptors, counts, seconds = [], {"hog": 0, "cnn": 0, "whole": 0}, []
    for img, path in zip(photos, files):
        img = np.ascontiguousarray(img)
        t = time.perf_counter()
        descriptor, detector, chip = pipe(img)
        seconds.append(time.perf_counter() - t)
        descriptors.append(descriptor)
        counts[detector] += 1
        if save_chips:
            out = save_chips / folder.name
            out.mkdir(parents=True, exist_ok=True)
            Image.fromarray(chip).save(out / f"{path.stem}.png")
    d = np.stack(descriptors)
    pairs, is_genuine, folds = verification_pairs(labels)
    dist = np.linalg.norm(d[pairs[:, 0]] - d[pairs[:, 1]], axis=1)
    u = d / np.linalg.norm(d, axis=1, keepdims=True)
    cosine = np.sum(u[pairs[:, 0]] * u[pairs[:, 1]], axis=1)
    return {"folder": str(folder), "alignment": "eye-only" if pipe.eye_only else "dlib 5-point",
            "photos": len(photos), "identities": int(len(np.unique(labels))),
            "genuine_pairs": int(is_genuine.sum()), "impostor_pairs": int((1 - is_genuine).sum()),
            "detector_counts": counts,
            "neg_distance": fold_scores(is_genuine, -dist, folds),
            "cosine": fold_scores(is_genuine, cosine, folds),
            "accuracy_at_distance_0.6": float(np.mean((dist < DLIB_THRESHOLD) == (is_genuine == 1))),
            "median_seconds_per_photo": float(np.median(seconds))}


def print_result(r: dict) -> None:
    c = r["detector_counts"]
    print(f"\n{r['folder']}  [dlib descriptor, {r['alignment']} alignment]")
    print(f"  photos {r['photos']}, identities {r['identities']}, pairs {r['genuine_pairs']} genuine / "
          f"{r['impostor_pairs']} impostor")
    print(f"  face box: hog {c['hog']}, cnn {c['cnn']}, whole image {c['whole']}")
    for name, label in (("neg_distance", "-euclidean"), ("cosine", "cosine")):
        s = r[name]
        print(f"  {label:>10}: 10-fold acc {s['ten_fold_accuracy']:.4f} ± {s['ten_fold_std']:.4f}, "
              f"AUC {s['auc']:.4f}, EER {s['eer']:.4f}")
    print(f"  accuracy at distance < {DLIB_THRESHOLD}: {r['accuracy_at_distance_0.6']:.4f}")
    print(f"  median seconds per photo (detect + landmarks + descriptor): {r['median_seconds_per_photo']:.4f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--faces", type=Path, action="append", required=True, help="photo folder (repeatable)")
    ap.add_argument("--models", type=Path, default=default_models_dir(),
                    help="folder with dlib's .dat models (default: the face_recognition_models package's)")
    ap.add_argument("--eye-only", action="store_true", help="align from the two eye centres only")
    ap.add_argument("--save-chips", type=Path, help="write each aligned chip as PNG here (debugging)")
    ap.add_argument("--json", type=Path, help="write the figures here")
    args = ap.parse_args(argv)
    if args.models is None or not args.models.is_dir():
        return f"error: models folder not found: {args.models} (pass --models DIR)"
    missing = [f for f in MODEL_FILES.values() if not (args.models / f).is_file()]
    if missing:
        return f"error: {args.models} lacks {', '.join(missing)}"
    for folder in args.faces:
        if not folder.is_dir():
            return f"error: no such folder: {folder}"
    try:
        import dlib  # noqa: F401
    except ImportError:
        return "error: dlib is not installed in this Python (run with the environment that has it)"
    pipe = Pipeline(args.models, args.eye_only)
    results = []
    for folder in args.faces:
        try:
            results.append(bench_folder(pipe, folder, args.save_chips))
        except ValueError as e:
            return f"error: {e}"
        print_result(results[-1])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(args.json, json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
