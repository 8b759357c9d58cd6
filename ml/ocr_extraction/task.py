"""Train the OCR text-line recogniser (CRNN + CTC) on synthetic MRZ and printed-field lines, deterministically on CPU.

    cd ml/ocr_extraction && python train.py --seed 42 --export-format savedmodel

Synthetic lines come from veid_ml.data.textlines (printed fields in split-specific fonts: the test fonts are never
seen in training). --data-dir trains on real crops instead: root/labels.tsv lists '<image path>\\t<text>', split by
training.split_indices (every 10th line held out for test, the next one for validation).

Metrics are character-level: "accuracy" is 1 - CER; precision / recall / f1_score count the characters matched in a
minimum-edit-distance alignment of prediction and ground truth (precision = matched / predicted characters, recall =
matched / true characters). "auc_roc" is null: a text recogniser has no binary score to threshold.
"""

import functools
from pathlib import Path

import numpy as np

from veid_ml import mrz, training
from veid_ml.data import textlines
from veid_ml.data.identity_fields import mrz_fields, person_fields
from veid_ml.data.rng import content_hash, sample_rng
from veid_ml.ocr_contract import ALPHABET, fit_line

CONFIG = {
    "epochs": 6,  # with low-resolution training lines, a 5-epoch run read 0.9686 of the standard test (NOTES.md)
    "batch_size": 32,  # small batches: ~470 updates per epoch
    "learning_rate": 0.006,  # peak after warm-up: the best of the rates tried (NOTES.md)
    "optimizer": "adam",  # what build() uses (clipped to norm 5): it converges within these few epochs
    "warmup_steps": 200,  # reach the high peak rate gradually, so the untrained net's first updates stay small
    "train_lines": 15008,  # 469 whole batches; more lines for fewer epochs read worse (NOTES.md)
    "val_lines": 512,  # read after every epoch: enough to show the trend, few enough not to slow training
    "test_lines": 2000,  # enough MRZ and printed-field lines (MRZ_SHARE 0.4) for stable per-kind metrics
    "mrz_documents": 100,  # whole MRZs (TD1/TD2/TD3 in turn) for the document-level check-digit metrics
    "low_res_test_lines": 1000,  # test lines all captured at low resolution: the real specimens' kind of MRZ
    "sequence_width": 128,  # channels of the 1-D conv sequence head: about one per output class (116)
    "max_label_length": 48,  # room for the longest line: 44 characters (TD3 MRZ, textlines.MAX_FIELD_CHARS)
}
EPOCH_STREAM = None  # the plain (seed, epoch) stream: see training.epoch_rng
QUICK = {"epochs": 1, "train_lines": 256, "val_lines": 64, "test_lines": 64, "mrz_documents": 4,
         "low_res_test_lines": 64}
MRZ_LAYOUTS = ("TD1", "TD2", "TD3")


@functools.lru_cache(maxsize=1)  # train, val and test all come from one load
def _real_splits(data_dir: Path) -> dict:
    from veid_ml.data import real

    images, texts = real.load_ocr(data_dir)
    lines = np.stack([fit_line(image) for image in images])
    splits = {}
    for split in ("test", "val", "train"):
        idx = training.split_indices(len(texts), split)
        splits[split] = (lines[idx], [texts[i] for i in idx], ["real"] * len(idx))
    return splits


def line_data(split: str, n: int, cfg: dict, data_dir) -> tuple[np.ndarray, list[str], list[str]]:
    if data_dir is not None:
        images, texts, kinds = _real_splits(data_dir)[split]
        return images[:n], texts[:n], kinds[:n]
    return textlines.text_line_dataset(split, n, seed=cfg["seed"])


def as_input(images: np.ndarray, integer: bool = True) -> np.ndarray:
    """uint8 [N, 32, 512] -> a serving input: the integer graph's uint8 [N, 32, 512, 1], or the float twin's float32
    [N, 32, 512, 1] in [0, 1]."""
    return images[..., None] if integer else (images.astype(np.float32) / 255.0)[..., None]


def recognise(serving, images: np.ndarray, batch: int = 256) -> list[str]:
    from veid_ml import export

    texts, integer = [], export.is_integer_graph(serving)
    for start in range(0, len(images), batch):
        out = serving(image=as_input(images[start: start + batch], integer))
        texts += [t.decode("utf-8") for t in out["text"].numpy()]
    return texts


def load_data(cfg: dict, data_dir) -> dict:
    import time

    from ocr_extraction import model as ocr

    started = time.perf_counter()
    images, texts, _ = line_data("train", cfg["train_lines"], cfg, data_dir)
    val_images, val_texts, _ = line_data("val", cfg["val_lines"], cfg, data_dir)
    print(f"data: {len(texts)} train / {len(val_texts)} val lines in {time.perf_counter() - started:.0f} s", flush=True)
    labels, lengths = ocr.encode_texts(texts, cfg["max_label_length"])
    return {"images": images, "texts": texts, "labels": labels, "lengths": lengths, "val_images": val_images,
            "val_texts": val_texts}


def build(cfg: dict, data: dict) -> training.Learner:
    """The CRNN under CTC loss (its own step: the labels are sparse), Adam with warm-up, cosine decay and clipping."""
    import keras
    import tensorflow as tf

    from ocr_extraction import model as ocr

    net = ocr.build_model(cfg["sequence_width"])
    batch = cfg["batch_size"]
    steps_per_epoch = len(data["texts"]) // batch  # whole batches only: one traced shape
    if steps_per_epoch == 0:
        raise ValueError(f"{len(data['texts'])} training lines is less than one batch of {batch}")
    total = steps_per_epoch * cfg["epochs"]
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, max(1, total - cfg["warmup_steps"]), warmup_target=cfg["learning_rate"],
        warmup_steps=min(cfg["warmup_steps"], total // 2))
    optimizer = keras.optimizers.Adam(schedule, clipnorm=5.0)

    @tf.function(input_signature=[tf.TensorSpec([batch, ocr.HEIGHT, ocr.WIDTH], tf.uint8),
                                  tf.TensorSpec([batch, cfg["max_label_length"]], tf.int32),
                                  tf.TensorSpec([batch], tf.int32)], jit_compile=False)
    def step(x, y, n):
        x = ocr.standardise(tf.cast(x, tf.float32)[..., None] / 255.0)
        with tf.GradientTape() as tape:
            loss = ocr.ctc_loss(y, n, net(x, training=True))
        optimizer.apply_gradients(zip(tape.gradient(loss, net.trainable_variables), net.trainable_variables))
        return loss

    serve = ocr.serving_signature(net)

    def report():  # validation read after every epoch: the one number that shows the recogniser learning
        read = recognise(serve, data["val_images"])
        return f"val char accuracy {text_metrics(data['val_texts'], read)['char_accuracy']:.4f}"

    return training.Learner(net, step, steps_per_epoch, report, signatures={"serving_default": serve})


def epoch_batches(data: dict, cfg: dict, rng: np.random.Generator):
    """(uint8 lines, labels, label lengths) of whole batches in a random order (each batch's lines in index order)."""
    batch = cfg["batch_size"]
    order = rng.permutation(len(data["texts"]))
    for step in range(len(data["texts"]) // batch):
        idx = np.sort(order[step * batch: (step + 1) * batch])
        yield data["images"][idx], data["labels"][idx], data["lengths"][idx]


def finish(learner: training.Learner, cfg: dict, data: dict, data_dir) -> training.Trained:
    net, images, labels = learner.model, data["images"], data["labels"]
    serve = learner.signatures["serving_default"]  # traced once, in build: another trace renames the graph's functions
    val_metrics = text_metrics(data["val_texts"], recognise(serve, data["val_images"]))
    dataset = {
        "source": "real" if data_dir is not None else "synthetic",
        "train_lines": len(data["texts"]), "val_lines": len(data["val_texts"]),
        "train_hash": content_hash(images, labels), "val_hash": content_hash(data["val_images"]),
    }
    info = {"alphabet": ALPHABET, "num_parameters": int(net.count_params()),
            "validation": {k: val_metrics[k] for k in ("char_accuracy", "line_exact_match")}}
    # The consensus graph: integer ops behind an integer standardisation, calibrated on training lines
    from ocr_extraction.model import INTEGER_BITS, WEIGHT_BITS, integer_program, integer_signature

    calibration = images[:: max(1, len(images) // 256)][:256, ..., None]
    program = integer_program(net, calibration)
    integer_info = {"activation_bits": INTEGER_BITS, "weight_bits": WEIGHT_BITS, "calibration_lines": len(calibration),
                    "input": "per-image standardisation in integers (veid_ml.integer.standardize_input)",
                    "layers": program.report}
    return training.Trained(model=net, signatures={"serving_default": serve}, dataset=dataset, info=info,
                            integer_signatures={"serving_default": integer_signature(program)},
                            integer_info=integer_info)


def char_alignment(truth: str, predicted: str) -> tuple[int, int]:
    """(edit distance, characters matched) of a minimum-edit alignment; ties prefer more matches."""
    prev = [(j, 0) for j in range(len(predicted) + 1)]
    for i, t in enumerate(truth, start=1):
        row = [(i, 0)]
        for j, p in enumerate(predicted, start=1):
            sub = (prev[j - 1][0] + (t != p), prev[j - 1][1] + (t == p))
            row.append(min(sub, (prev[j][0] + 1, prev[j][1]), (row[j - 1][0] + 1, row[j - 1][1]),
                           key=lambda c: (c[0], -c[1])))
        prev = row
    return prev[-1]


def text_metrics(truths: list[str], predictions: list[str]) -> dict:
    """Character-level CER/accuracy/precision/recall/F1, word error rate and line exact match."""
    edits = matched = true_chars = predicted_chars = word_edits = words = 0
    for truth, predicted in zip(truths, predictions, strict=True):
        e, m = char_alignment(truth, predicted)
        edits, matched = edits + e, matched + m
        true_chars, predicted_chars = true_chars + len(truth), predicted_chars + len(predicted)
        word_edits += char_alignment(truth.split(), predicted.split())[0]
        words += len(truth.split())
    cer = edits / max(1, true_chars)
    precision, recall = matched / max(1, predicted_chars), matched / max(1, true_chars)
    return {
        "char_accuracy": 1.0 - cer, "cer": cer, "precision": precision, "recall": recall,
        "f1_score": 2 * precision * recall / max(1e-12, precision + recall),
        "word_accuracy": 1.0 - word_edits / max(1, words),
        "line_exact_match": float(np.mean([t == p for t, p in zip(truths, predictions)])) if truths else 0.0,
    }


def mrz_groups(n: int, seed: int, split: str = "test") -> tuple[np.ndarray, list[list[str]]]:
    """n whole MRZs (TD1/TD2/TD3 in turn) of test holders, each line rendered as an OCR-B line crop."""
    images, groups = [], []
    for i in range(n):
        layout = MRZ_LAYOUTS[i % len(MRZ_LAYOUTS)]
        lines = mrz.BUILDERS[layout](mrz_fields(person_fields(split, i, seed), layout))
        rng = sample_rng("mrz_group", split, i, seed)
        for line in lines:
            images.append(textlines.render_line(line, textlines.MRZ_FONT, rng, tracking=rng.uniform(-0.02, 0.08),
                                                jitter=rng.uniform(0, 0.015), shrink=rng.uniform(0.85, 1.0)))
        groups.append(lines)
    return np.stack(images), groups


def evaluate(serving, cfg: dict, data_dir):
    from veid_ml import export

    serve = serving["serving_default"]
    images, texts, kinds = line_data("test", cfg["test_lines"], cfg, data_dir)
    predictions = recognise(serve, images)
    overall = text_metrics(texts, predictions)
    metrics = {"accuracy": overall["char_accuracy"], "precision": overall["precision"], "recall": overall["recall"],
               "f1_score": overall["f1_score"], "auc_roc": None, **overall}
    for kind in ("mrz", "field"):
        picked = [i for i, k in enumerate(kinds) if k == kind]
        if picked:
            part = text_metrics([texts[i] for i in picked], [predictions[i] for i in picked])
            metrics[f"{kind}_line_exact_match"] = part["line_exact_match"]
            metrics[f"{kind}_char_accuracy"] = part["char_accuracy"]
    info = {"test_set": {"lines": len(texts), "mrz_lines": kinds.count("mrz"), "field_lines": kinds.count("field")}}
    if data_dir is None:  # the same test holders, every line captured at low resolution (textlines.LOW_RES_FACTOR)
        low_images, low_texts, low_kinds = textlines.text_line_dataset("test", cfg["low_res_test_lines"],
                                                                       seed=cfg["seed"], low_res_share=1.0)
        low = recognise(serve, low_images)
        metrics["low_res_char_accuracy"] = text_metrics(low_texts, low)["char_accuracy"]
        picked = [i for i, k in enumerate(low_kinds) if k == "mrz"]
        metrics["low_res_mrz_line_exact_match"] = text_metrics([low_texts[i] for i in picked],
                                                               [low[i] for i in picked])["line_exact_match"]
        info["test_set"]["low_res_lines"] = len(low_texts)
    if data_dir is None:  # whole MRZs: share of documents whose read-out passes every check digit
        group_images, groups = mrz_groups(cfg["mrz_documents"], cfg["seed"])
        read = iter(recognise(serve, group_images))
        results = [(lines, [next(read) for _ in lines]) for lines in groups]
        metrics["mrz_document_exact_match"] = float(np.mean([t == p for t, p in results]))
        metrics["mrz_document_checks_valid"] = float(np.mean([_valid(p) for _, p in results]))
        info["test_set"]["mrz_documents"] = len(groups)
    first = as_input(images[:1], export.is_integer_graph(serve))
    return training.Evaluation(metrics=metrics, latency_inputs={"image": first}, info=info)


def _valid(lines: list[str]) -> bool:
    try:
        return mrz.parse_mrz(lines).valid
    except ValueError:  # wrong line lengths or characters: not a readable MRZ
        return False
