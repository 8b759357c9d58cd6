"""The face detector: MTCNN's P/R/O-Net ported from the mtcnn==1.0.0 wheel's weights (model.py). Nothing is fitted.

Spec command: `cd ml/face_detection && python train.py --seed 42 --export-format savedmodel`. The trainer's loop runs
zero epochs (CONFIG["epochs"] = 0: build's train step is never called); finish() chooses the score threshold on
synthetic VALIDATION images and builds the in-graph detector (model.make_serving, the float twin); then compiles the
networks to integers, calibrated on TRAINING-split images (calibration_inputs), and chooses the consensus graph's own
threshold in basis points by the same rule on its validation scores (model.make_integer_serving, the governed
artifact); evaluate() measures an exported SavedModel (both, in turn) on a held-out synthetic TEST split. The weight
files are read from the installed wheel and named, with their sha256, licence and source, in metrics.json's
initial_weights and in the provenance.

Data (scenes.py): selfies (a face render in its room, 640 x 480 or 480 x 640, the face box 10-70% of the shorter
side), photographed ID documents (TD1 cards and TD3 passport pages: the holder photo; a TD3 page's ghost image is a
second, faded face that detections may find or not) and face-free scenes (the selfie room with the person's face out
of frame). Ground truth: the face box and five landmarks from the renderer's geometry (scenes module docstring).

Threshold rule: the lowest O-Net score threshold (>= threshold_floor) whose false detections on the validation images
(selfies, documents and face-free scenes together) are at most val_max_false_per_image per image.

Metrics (test split; a detection is correct when its box overlaps an unmatched ground-truth face with IoU >= iou,
matched greedily by descending score; a detection on a TD3 ghost face is neither correct nor false):
    recall, precision, f1_score  over detections: correct / ground-truth faces, correct / detections, their harmonic
                                 mean (selfies, documents and face-free scenes together)
    accuracy                     the share of test images whose output is exactly right: every face found, nothing
                                 false
    auc_roc                      is there a face in the image, scored by the image's highest detection score (0 when
                                 there is none): face images (selfies, documents) against face-free scenes. Scores below
                                 the threshold are not returned, so the ROC curve is traced only above it
    false_detections_per_image   false detections / images
    landmark_nme_mean, _p90      the five landmarks' mean distance to the renderer's points over the inter-ocular
                                 distance, per found face: mean and 90th percentile; eye_nme_*: the two eyes only
                                 (nose tip and mouth corners are the renderer's drawing geometry, the eyes its most
                                 exact points)
    by_kind                      all of the above for selfies, documents and face-free scenes separately, and selfie
                                 recall by face size (box height / shorter image side)
--data-dir is not supported: nothing is trained, and evaluating on real photos needs box annotations.
"""

import functools
from importlib import metadata

import numpy as np

from veid_ml import hashing, training
from veid_ml.data.rng import content_hash

CONFIG = {
    "epochs": 0,  # the weights are MTCNN's own: nothing is fitted, the trainer's loop runs no epoch
    "min_face_fraction": 0.1,  # smallest face (box height / shorter image side) the pyramid is built for: selfies, IDs
    "scale_factor": 0.6,  # 6 levels packing into one canvas with 8% waste: 0.709's recall at 0.7x its time (NOTES.md)
    "pnet_threshold": 0.6,  # the wheel's P-Net face-probability cut
    "pnet_candidates": 300,  # most confident P-Net cells kept before NMS: bounds the NMS matrix
    "nms_level": 0.5,  # the wheel's IoU limit within one pyramid level
    "nms_pyramid": 0.7,  # the wheel's IoU limit across levels
    "rnet_candidates": 32,  # proposals R-Net scores, best first: selfies and documents yield 3-30 (NOTES.md)
    "rnet_threshold": 0.6,  # below the wheel's 0.7: +1.4% selfie recall on training-split data, no false detection
    "nms_rnet": 0.7,  # the wheel's IoU limit after R-Net
    "onet_candidates": 8,  # boxes O-Net scores (~0.4 ms each): selfies and documents yield 0-2
    "nms_onet": 0.7,  # the wheel's limit after O-Net, over the smaller box: drops a box inside another
    "max_faces": 8,  # most faces returned, best first
    "threshold_floor": 0.5,  # lowest score threshold considered: O-Net finds a face more likely than not
    "val_max_false_per_image": 0.01,  # the threshold rule: at most 1 false detection per 100 validation images
    "iou": 0.5,  # a detection finds a face when its box overlaps the true box this much (the WIDER FACE rule)
    "val_selfies": 300,  # >= 300 faces: the threshold's false-detection count rests on ~500 images in all
    "val_documents": 100,  # TD1 and TD3 alternately: text, guilloche and rosettes as non-face clutter
    "val_empty": 100,  # face-free scenes: walls, furniture, hair and shoulders without the face
    "test_selfies": 600,  # recall to +-1.5% and per face-size bin to a few %
    "test_documents": 200,  # holder portraits: recall and landmark error on the document photo
    "test_empty": 200,  # false detections where there is no face
    # the consensus graph's calibration (training split, never evaluated): P-Net on whole canvases of landscape
    # selfies, R/O-Net on crops around the faces (jittered like P/R-Net proposals) and anywhere in the image
    "calibration_selfies": 24,
    "calibration_documents": 8,
    "calibration_empty": 8,
    "calibration_boxes": 4,  # jittered boxes per face, and as many random boxes per image
}
QUICK = {"val_selfies": 12, "val_documents": 4, "val_empty": 4, "test_selfies": 12, "test_documents": 4,
         "test_empty": 4, "calibration_selfies": 8, "calibration_documents": 2, "calibration_empty": 2}
EPOCH_STREAM = "face_detection_epoch"
KINDS = ("selfie", "document", "empty")
SIZE_BINS = (0.1, 0.15, 0.25, 0.4, 0.7)  # selfie recall by face box height / shorter image side
WHEEL = "mtcnn==1.0.0"


def detector_params(cfg: dict) -> dict:
    keys = ("min_face_fraction", "scale_factor", "pnet_threshold", "pnet_candidates", "nms_level", "nms_pyramid",
            "rnet_candidates", "rnet_threshold", "nms_rnet", "onet_candidates", "nms_onet", "max_faces")
    return {k: cfg[k] for k in keys}


def load_split(split: str, cfg: dict, data_dir) -> dict:
    """{kind: list of (image, landmarks (F, 5, 2), boxes (F, 4), ignore boxes (G, 4))} of one synthetic split."""
    from face_detection import scenes

    if data_dir is not None:
        raise ValueError("--data-dir is not supported: the detector is not trained, and evaluating it on real "
                         "photos needs face-box annotations")
    return scenes.dataset(split, cfg[f"{split}_selfies"], cfg[f"{split}_documents"], cfg[f"{split}_empty"],
                          seed=cfg["seed"])


def split_summary(split: dict) -> dict:
    """Counts and one content hash per kind (images, landmarks and boxes, in order)."""
    out = {}
    for kind in KINDS:
        items = split[kind]
        out[kind] = {"images": len(items), "faces": int(sum(len(boxes) for _, _, boxes, _ in items)),
                     "content_hash": content_hash(*(a for item in items for a in item))}
    return out


def load_data(cfg: dict, data_dir) -> dict:
    return {"val": load_split("val", cfg, data_dir)}


def build(cfg: dict, data: dict) -> training.Learner:
    """The three networks with the wheel's weights in one Keras model; no optimiser, no train step to run."""
    from face_detection.model import build_detector, build_networks

    def step(*batch):
        raise RuntimeError("face_detection is ported, not trained: CONFIG['epochs'] must stay 0")

    return training.Learner(build_detector(build_networks()), step, steps_per_epoch=0)


def epoch_batches(data: dict, cfg: dict, rng: np.random.Generator):
    """Nothing to train on."""
    yield from ()


def networks(detector) -> dict:
    return {key: detector.get_layer(key) for key in ("pnet", "rnet", "onet")}


def run(serve, images) -> list[dict]:
    """The signature on each image: {"boxes", "landmarks", "scores"} as NumPy arrays in pixels and probabilities
    (the consensus graph's 1/16 px and basis points divided out, so both graphs are scored alike)."""
    import tensorflow as tf

    out = []
    for image in images:
        result = serve(image=tf.constant(image))
        if "scores_bp" in result:  # the integer consensus graph
            out.append({"boxes": result["boxes_q4"].numpy() / 16.0, "landmarks": result["landmarks_q4"].numpy() / 16.0,
                        "scores": result["scores_bp"].numpy() / 10000.0})
        else:
            out.append({k: result[k].numpy() for k in ("boxes", "landmarks", "scores")})
    return out


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) IoU of [x0, y0, x1, y1] boxes."""
    lo = np.maximum(a[:, None, :2], b[None, :, :2])
    hi = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=2)
    area_a, area_b = np.prod(a[:, 2:] - a[:, :2], axis=1), np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None] - inter, 1e-9)


def match(boxes, scores, gt_boxes, ignore_boxes, iou: float) -> tuple[np.ndarray, np.ndarray]:
    """(status per detection: 1 correct, 0 false, -1 ignored (on an ignore box); detection index per ground-truth
    face, -1 if missed). Greedy by descending score, so a detection's status never depends on lower scores."""
    status = np.zeros(len(boxes), int)
    found = np.full(len(gt_boxes), -1)
    gt_iou = box_iou(boxes, gt_boxes) if len(gt_boxes) else np.zeros((len(boxes), 0))
    ignore_iou = box_iou(boxes, ignore_boxes) if len(ignore_boxes) else np.zeros((len(boxes), 0))
    for d in np.argsort(-scores, kind="stable"):
        free = np.where(found < 0, gt_iou[d], -1.0)
        if free.size and free.max() >= iou:
            g = int(np.argmax(free))
            found[g], status[d] = d, 1
        elif ignore_iou.shape[1] and ignore_iou[d].max() >= iou:
            status[d] = -1
    return status, found


def score_split(split: dict, results: dict, iou: float) -> dict:
    """Per kind and image: each detection's score and status, and per ground-truth face the score of the detection
    that found it (NaN if none), its landmark errors and its size (box side / shorter image side)."""
    out = {}
    for kind in KINDS:
        rows = []
        for (image, marks, gt_boxes, ignore), det in zip(split[kind], results[kind]):
            status, found = match(det["boxes"], det["scores"], gt_boxes, ignore, iou)
            nme, eye_nme = np.full(len(found), np.nan), np.full(len(found), np.nan)
            for g, d in enumerate(found):
                if d >= 0:
                    iod = np.linalg.norm(marks[g, 1] - marks[g, 0])
                    err = np.linalg.norm(det["landmarks"][d] - marks[g], axis=1) / iod
                    nme[g], eye_nme[g] = err.mean(), err[:2].mean()
            rows.append({"status": status, "scores": det["scores"],
                         "found_score": np.array([det["scores"][d] if d >= 0 else np.nan for d in found]),
                         "nme": nme, "eye_nme": eye_nme,
                         "sizes": (gt_boxes[:, 3] - gt_boxes[:, 1]) / min(image.shape[:2])})
        out[kind] = rows
    return out


def choose_threshold(scored: dict, floor: float, max_false_per_image: float) -> np.float32:
    """The lowest threshold >= floor with at most max_false_per_image false detections per validation image."""
    rows = [row for kind in KINDS for row in scored[kind]]
    false = np.sort(np.concatenate([row["scores"][row["status"] == 0] for row in rows]).astype(np.float32))[::-1]
    allowed = int(np.floor(max_false_per_image * len(rows)))
    threshold = np.float32(floor)
    if allowed < len(false):  # just above the highest false detection that must go
        threshold = max(threshold, np.nextafter(false[allowed], np.float32(np.inf)))
    return np.float32(threshold)


def choose_threshold_bp(scored: dict, floor_bp: int, max_false_per_image: float) -> int:
    """choose_threshold for the consensus graph's basis-point scores: the lowest bp >= floor_bp with at most
    max_false_per_image false detections per validation image."""
    rows = [row for kind in KINDS for row in scored[kind]]
    false = np.sort(np.rint(np.concatenate([row["scores"][row["status"] == 0] for row in rows]) * 10000))[::-1]
    allowed = int(np.floor(max_false_per_image * len(rows)))
    return int(max(floor_bp, false[allowed] + 1)) if allowed < len(false) else int(floor_bp)


def calibration_inputs(stages, split: dict, cfg: dict) -> tuple:
    """(P-Net canvases, R-Net crops, O-Net crops) of training-split images as the consensus graph computes them."""
    import tensorflow as tf

    from face_detection.model import CROP_SIZES, Q4

    rng = np.random.default_rng(cfg["seed"])
    items = [item for kind in KINDS for item in split[kind]]
    canvases = [stages.canvas(tf.constant(image, tf.int32))[0].numpy() for image, *_ in split["selfie"]]
    common = np.min([c.shape[1:3] for c in canvases], axis=0)  # portrait and landscape canvases: their shared part
    pnet = np.concatenate([c[:, :common[0], :common[1]] for c in canvases])
    crops = {"rnet": [], "onet": []}
    k = cfg["calibration_boxes"]
    for image, _, boxes, _ in items:
        height, width = image.shape[:2]
        found = []
        for x0, y0, x1, y1 in boxes:
            side = max(x1 - x0, y1 - y0) * rng.uniform(0.8, 1.25, k)
            cx = (x0 + x1) / 2 + rng.uniform(-0.15, 0.15, k) * side
            cy = (y0 + y1) / 2 + rng.uniform(-0.15, 0.15, k) * side
            found.append(np.stack([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], 1))
        side = rng.uniform(0.1, 0.6, k) * min(height, width)
        x0, y0 = rng.uniform(0, 1, k) * (width - side), rng.uniform(0, 1, k) * (height - side)
        found.append(np.stack([x0, y0, x0 + side, y0 + side], 1))
        q4 = np.rint(np.concatenate(found) * Q4).astype(np.int64)
        for net in crops:
            crops[net].append(stages.crops(tf.constant(image, tf.int32), q4, CROP_SIZES[net]).numpy())
    return pnet, np.concatenate(crops["rnet"]), np.concatenate(crops["onet"])


def at_threshold(scored: dict, threshold: float) -> dict:
    """The scored rows as the detector with a higher threshold would have produced them: detections below it are
    gone; greedy matching by score leaves every other detection's status as it was."""
    out = {}
    for kind, rows in scored.items():
        out[kind] = []
        for row in rows:
            keep = row["scores"] >= threshold
            found = row["found_score"] >= threshold  # NaN (missed) compares False
            out[kind].append({**row, "status": row["status"][keep], "scores": row["scores"][keep],
                              "found_score": np.where(found, row["found_score"], np.nan),
                              "nme": np.where(found, row["nme"], np.nan),
                              "eye_nme": np.where(found, row["eye_nme"], np.nan)})
    return out


def summary(rows: list[dict], with_sizes: bool = False) -> dict:
    status = np.concatenate([r["status"] for r in rows]) if rows else np.zeros(0, int)
    found = np.concatenate([~np.isnan(r["found_score"]) for r in rows]) if rows else np.zeros(0, bool)
    correct, false = int(np.sum(status == 1)), int(np.sum(status == 0))
    nme = np.concatenate([r["nme"] for r in rows]) if rows else np.zeros(0)
    eye = np.concatenate([r["eye_nme"] for r in rows]) if rows else np.zeros(0)
    nme, eye = nme[~np.isnan(nme)], eye[~np.isnan(eye)]
    out = {"images": len(rows), "faces": len(found), "found": correct, "false_detections": false,
           "recall": correct / len(found) if len(found) else None,
           "false_detections_per_image": false / len(rows) if rows else None,
           "exact_images": float(np.mean([not np.isnan(r["found_score"]).any() and not np.any(r["status"] == 0)
                                          for r in rows])) if rows else None}
    if len(nme):
        out.update(landmark_nme_mean=float(nme.mean()), landmark_nme_p90=float(np.percentile(nme, 90)),
                   eye_nme_mean=float(eye.mean()), eye_nme_p90=float(np.percentile(eye, 90)))
    if with_sizes and rows:
        sizes = np.concatenate([r["sizes"] for r in rows])
        out["recall_by_face_size"] = {
            f"{lo:g}-{hi:g}": float(found[(sizes >= lo) & (sizes < hi)].mean())
            for lo, hi in zip(SIZE_BINS[:-1], SIZE_BINS[1:]) if np.any((sizes >= lo) & (sizes < hi))}
    return out


def image_scores(scored: dict) -> tuple[np.ndarray, np.ndarray]:
    """(has a face, highest returned score or 0) per image: the face/no-face ROC's points."""
    y, s = [], []
    for kind in KINDS:
        for row in scored[kind]:
            y.append(int(len(row["found_score"]) > 0))
            s.append(float(row["scores"].max()) if len(row["scores"]) else 0.0)
    return np.array(y), np.array(s)


def spec_metrics(scored: dict) -> dict:
    from sklearn.metrics import roc_auc_score

    rows = [row for kind in KINDS for row in scored[kind]]
    total = summary(rows)
    detections = total["found"] + total["false_detections"]
    precision = total["found"] / detections if detections else 0.0
    recall = total["recall"] or 0.0
    y, s = image_scores(scored)
    return {"accuracy": total["exact_images"], "precision": precision, "recall": recall,
            "f1_score": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
            "auc_roc": float(roc_auc_score(y, s)) if 0 < y.sum() < len(y) else None,
            "false_detections_per_image": total["false_detections_per_image"],
            **{k: total[k] for k in ("landmark_nme_mean", "landmark_nme_p90", "eye_nme_mean", "eye_nme_p90")
               if k in total}}


def run_split(serve, split: dict) -> dict:
    return {kind: run(serve, [item[0] for item in split[kind]]) for kind in KINDS}


def pretrained_weights() -> list[dict]:
    """The wheel's weight files this model is built from, with their sha256."""
    from face_detection.model import WEIGHT_FILES, weights_dir

    version = metadata.version("mtcnn")
    if f"mtcnn=={version}" != WHEEL:
        raise RuntimeError(f"mtcnn {version} is installed; this model ports {WHEEL} "
                           "(ml/requirements-deterministic.txt)")
    folder = weights_dir()
    return [{"name": name, "sha256": hashing.file_sha256(folder / name), "license": "MIT",
             "source": f"{WHEEL} wheel (PyPI)"} for name in WEIGHT_FILES]


def finish(learner: training.Learner, cfg: dict, data: dict, data_dir) -> training.Trained:
    """The threshold from validation detections at threshold_floor, then the serving function with it; the same for
    the consensus graph (the integer cascade, calibrated on training-split images), on its own scores."""
    from face_detection import model, scenes

    nets, params = networks(learner.model), detector_params(cfg)
    scored = score_split(data["val"], run_split(model.make_serving(nets, params, cfg["threshold_floor"]),
                                                data["val"]), cfg["iou"])
    threshold = choose_threshold(scored, cfg["threshold_floor"], cfg["val_max_false_per_image"])
    val = at_threshold(scored, threshold)

    calibration = scenes.dataset("train", cfg["calibration_selfies"], cfg["calibration_documents"],
                                 cfg["calibration_empty"], seed=cfg["seed"])
    stages = model.IntegerStages(params)
    programs = model.compile_networks(nets, *calibration_inputs(stages, calibration, cfg))
    floor_bp = int(round(cfg["threshold_floor"] * 10000))
    int_scored = score_split(data["val"], run_split(model.make_integer_serving(programs, params, floor_bp),
                                                    data["val"]), cfg["iou"])
    threshold_bp = choose_threshold_bp(int_scored, floor_bp, cfg["val_max_false_per_image"])
    integer_info = {"activation_bits": model.INTEGER_BITS, "weight_bits": model.WEIGHT_BITS,
                    "head_scale": model.HEAD_SCALE, "threshold_bp": threshold_bp,
                    "calibration": split_summary(calibration),
                    "layers": {name: program.report for name, program in programs.items()}}

    dataset = {"source": "synthetic", "train": {"images": 0, "note": "nothing is trained: the weights are ported"},
               "val": split_summary(data["val"])}
    info = {"threshold": float(threshold),
            "threshold_rule": f"lowest O-Net score >= {cfg['threshold_floor']} with at most "
                              f"{cfg['val_max_false_per_image']} false detections per validation image",
            "validation": {kind: summary(val[kind], kind == "selfie") for kind in KINDS}}
    return training.Trained(learner.model, {"serving_default": model.make_serving(nets, params, float(threshold))},
                            dataset, info, pretrained=pretrained_weights(),
                            integer_signatures={"serving_default": model.make_integer_serving(programs, params,
                                                                                              threshold_bp)},
                            integer_info=integer_info)


@functools.lru_cache(maxsize=1)
def _test_split(selfies: int, documents: int, empty: int, seed: int) -> dict:
    """The rendered test split, kept for the second evaluate() of a run (the float twin): ~3 min of rendering."""
    from face_detection import scenes

    return scenes.dataset("test", selfies, documents, empty, seed=seed)


def evaluate(serving, cfg: dict, data_dir) -> training.Evaluation:
    serve = serving["serving_default"]
    if data_dir is not None:
        load_split("test", cfg, data_dir)  # refuses --data-dir with its reason
    split = _test_split(cfg["test_selfies"], cfg["test_documents"], cfg["test_empty"], cfg["seed"])
    scored = score_split(split, run_split(serve, split), cfg["iou"])
    metrics = {**spec_metrics(scored), "by_kind": {kind: summary(scored[kind], kind == "selfie") for kind in KINDS}}
    y, s = image_scores(scored)
    landscape = next((item[0] for item in split["selfie"] if item[0].shape == (480, 640, 3)), None)
    if landscape is None:  # a tiny split without a landscape selfie: the latency request is still 640 x 480
        landscape = np.ascontiguousarray(np.resize(split["selfie"][0][0], (480, 640, 3)))
    return training.Evaluation(metrics, {"image": landscape}, (y, s, "face in image (test)"),
                               {"test_set": split_summary(split)})
