"""Train the MRZ locator (veid_ml.mrz_locator has its input and output contract; model.py the network).

Spec-style command: `cd ml/mrz_locator && python train.py --seed 42 --export-format savedmodel`.
Synthetic data: veid_ml.data.mrz_scenes (documents framed as tight crops, scans, desk photos and passport spreads,
turned by quarter turns, stamped, at native resolutions with MRZ characters ~5-40 px high); train/val/test use
disjoint people and sample streams. The loss is per-cell binary cross-entropy against the share of each cell inside
the band.

Metrics (test split, through the exported graph): the spec's five over band cells (a cell is positive when most of
it is inside the band; score: its band logit), and per document: `documents_located`, the share whose band
(veid_ml.mrz_locator.band_corners) overlaps the true band with IoU >= 0.5 AND is the right way up (its top-left
corner nearer the true top-left than the true bottom-right), `upright` (the share the right way up) and the median
IoU.
"""

import functools

import numpy as np

from veid_ml import training
from veid_ml.data import mrz_scenes
from veid_ml.data.rng import content_hash

CONFIG = {
    "train_samples": 1600,  # ~0.2 s each to render on one core
    "val_samples": 160,
    "test_samples": 400,  # the located share rests on 400 documents: +-2.5 points at 90%
    "epochs": 12,  # 6: 0.695 of test documents located, 12: 0.81 (NOTES.md)
    "batch_size": 16,
    "learning_rate": 0.002,  # start of the cosine decay
    "positive_weight": 3.0,  # band cells are ~5% of the map: weighted so the band is not eroded away
    "calibration_images": 32,
}
QUICK = {"train_samples": 32, "val_samples": 8, "test_samples": 8, "epochs": 1, "batch_size": 8,
         "calibration_images": 4}
EPOCH_STREAM = "mrz_locator_epoch"
IOU_LOCATED = 0.5


def load_split(split: str, cfg: dict):
    return mrz_scenes.locator_dataset(split, cfg[f"{split}_samples"], seed=cfg["seed"])


@functools.lru_cache(maxsize=1)
def _test_split(samples: int, seed: int):
    """The test split, rendered once per run: the integer graph and its float twin are evaluated on it."""
    return load_split("test", {"test_samples": samples, "seed": seed})


def load_data(cfg: dict, data_dir) -> dict:
    if data_dir is not None:
        raise ValueError("the MRZ locator trains on synthetic scenes only (no --data-dir)")
    x_train, y_train, _ = load_split("train", cfg)
    x_val, y_val, c_val = load_split("val", cfg)
    return {"x_train": x_train, "y_train": y_train, "x_val": x_val, "y_val": y_val, "c_val": c_val}


def build(cfg: dict, data: dict) -> training.Learner:
    """The network under weighted binary cross-entropy on logits, Adam with a cosine-decayed rate."""
    import keras
    import tensorflow as tf

    from mrz_locator.model import build_model

    model = build_model()
    steps_per_epoch = int(np.ceil(len(data["x_train"]) / cfg["batch_size"]))
    schedule = keras.optimizers.schedules.CosineDecay(cfg["learning_rate"], cfg["epochs"] * steps_per_epoch)
    optimizer = keras.optimizers.Adam(schedule)
    w = cfg["positive_weight"]

    def loss(target, logits):  # both maps; band cells (and upper-half cells) weighted up
        per_cell = tf.nn.sigmoid_cross_entropy_with_logits(labels=target, logits=logits)
        return tf.reduce_mean(per_cell * (1 + (w - 1) * target[..., :1]))

    model.compile(optimizer, loss, jit_compile=False)

    def step(images, targets):
        return model.train_on_batch(tf.cast(images[..., None], tf.float32) / 255.0, tf.constant(targets, tf.float32))

    return training.Learner(model, step, steps_per_epoch)


def epoch_batches(data: dict, cfg: dict, rng: np.random.Generator):
    images, targets = data["x_train"], data["y_train"]
    order = rng.permutation(len(images))
    for start in range(0, len(images), cfg["batch_size"]):
        take = order[start:start + cfg["batch_size"]]
        yield images[take], targets[take].astype(np.float32)


def band_logits(serving, images, batch: int = 16) -> np.ndarray:
    """float64 (n, GRID, GRID, 2) logits from a serving signature: the integer graph's in 1/1024, or the float
    twin's."""
    import tensorflow as tf

    from veid_ml import export

    integer = export.is_integer_graph(serving)
    out = []
    for start in range(0, len(images), batch):
        chunk = images[start:start + batch, ..., None]
        if integer:
            out.append(serving(image=tf.constant(chunk))["band_logits_q10"].numpy() / 1024.0)
        else:
            out.append(serving(image=tf.constant(chunk.astype(np.float32) / 255.0))["band_logits"].numpy())
    return np.concatenate(out).astype(np.float64)


def polygon_iou(a: np.ndarray, b: np.ndarray, size: int) -> float:
    """IoU of two quadrilaterals (4, 2) in px of a size x size image, by rasterising both at 4x."""
    import cv2

    masks = []
    for quad in (a, b):
        m = np.zeros((size, size), np.uint8)
        cv2.fillPoly(m, [np.rint(quad * 4).astype(np.int32)], 1, shift=2)
        masks.append(m.astype(bool))
    union = np.logical_or(*masks).sum()
    return float(np.logical_and(*masks).sum() / union) if union else 0.0


def document_scores(logits: np.ndarray, corners: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(IoU of each image's located band with its true band, 0 where none is found; whether it is the right way up)."""
    from veid_ml import mrz_locator

    size = mrz_locator.INPUT_SIZE
    ious, upright = [], []
    for cell_logits, truth in zip(logits, corners):
        found = mrz_locator.band_corners(cell_logits, (size, size))
        ious.append(0.0 if found is None else polygon_iou(found, truth, size))
        upright.append(found is not None and np.linalg.norm(found[0] - truth[0]) < np.linalg.norm(found[0] - truth[2]))
    return np.array(ious), np.array(upright)


def located(ious: np.ndarray, upright: np.ndarray) -> dict:
    return {"documents_located": float(np.mean((ious >= IOU_LOCATED) & upright)), "upright": float(np.mean(upright)),
            "median_iou": float(np.median(ious))}


def split_summary(images, targets) -> dict:
    return {"samples": int(len(images)), "band_cells": float(np.mean(targets[..., 0] > 0.5)),
            "content_hash": content_hash(images, targets)}


def finish(learner: training.Learner, cfg: dict, data: dict, data_dir) -> training.Trained:
    from mrz_locator.model import (INPUT_BITS, INTEGER_BITS, LOGIT_SCALE, WEIGHT_BITS, integer_program,
                                   integer_signature, serving_signature)

    model = learner.model
    calibration = data["x_train"][:: max(1, len(data["x_train"]) // cfg["calibration_images"])]
    calibration = calibration[: cfg["calibration_images"], ..., None]  # spread over the whole training set
    program = integer_program(model, calibration)
    integer_serve = integer_signature(program)
    val_scores = document_scores(band_logits(integer_serve, data["x_val"]), data["c_val"])
    dataset = {"source": "synthetic", "generator": "veid_ml.data.mrz_scenes",
               "train": split_summary(data["x_train"], data["y_train"]),
               "val": split_summary(data["x_val"], data["y_val"])}
    info = {"validation": located(*val_scores)}
    integer_info = {"activation_bits": INTEGER_BITS, "weight_bits": WEIGHT_BITS, "input_bits": INPUT_BITS,
                    "logit_scale": LOGIT_SCALE, "calibration_images": int(len(calibration)),
                    "layers": program.report}
    return training.Trained(model, {"serving_default": serving_signature(model)}, dataset, info,
                            integer_signatures={"serving_default": integer_serve}, integer_info=integer_info)


def evaluate(serving, cfg: dict, data_dir) -> training.Evaluation:
    import tensorflow as tf

    from veid_ml import export, metrics

    images, targets, corners = _test_split(cfg["test_samples"], cfg["seed"])
    logits = band_logits(serving["serving_default"], images)
    cells, cell_logits = (targets[..., 0] > 0.5).ravel(), logits[..., 0].ravel()
    result = {**metrics.binary_metrics(cells, cell_logits, 0.0), **located(*document_scores(logits, corners))}
    integer = export.is_integer_graph(serving["serving_default"])
    first = images[:1, ..., None]
    first = tf.constant(first if integer else first.astype(np.float32) / 255.0)
    info = {"test_set": split_summary(images, targets)}
    return training.Evaluation(result, {"image": first}, (cells, cell_logits, "MRZ band cells (test)"), info)
