"""Train the facial verification model: a CosFace-trained face embedder, exported with a pair-matching signature.

    python train.py --seed 42 --export-format savedmodel          # the spec command (full profile)
    python train.py --profile quick --out-dir /tmp/fv               # seconds-long smoke run

Signatures of the SavedModel (images are float32 NHWC RGB in [0, 1], 64x64, aligned by veid_ml.alignment):
    serving_default(image_a, image_b) -> similarity (cosine of the embeddings), match_probability (logistic
        calibration of the similarity fitted on validation pairs), is_match (similarity >= threshold), threshold
    embed(image) -> embedding (N, 128), unit length, so similarity is a dot product; it averages the embeddings of
        the face and its mirror image (model.embed_mirror_averaged)

Data: synthetic faces from veid_ml.data.faces, aligned on the eyes as the pipeline aligns a real photo
(train/val/test identities are disjoint by construction), or with
--data-dir a folder per identity (veid_ml.data.real.load_faces), cropped as the pipeline crops (api.crop_largest_faces),
split by identity.
The validation and test protocols are pair-based, like LFW: genuine pairs are two views of one identity, impostor
pairs two identities, a quarter of them look-alikes (siblings from one family) so the threshold sees hard cases.
"""

import math

import numpy as np

from veid_ml import training
from veid_ml.data import faces
from veid_ml.data.rng import content_hash, sample_rng

CONFIG = {
    "epochs": 20,  # held-out accuracy still rises with training time, more than with width (NOTES.md)
    "batch_size": 128,  # many identities per step for the CosFace softmax over all training identities
    "learning_rate": 0.004,  # peak after the half-epoch warm-up; a higher peak did no better (NOTES.md)
    "optimizer": "adamw",  # weight decay decoupled from Adam's adaptive step (build() accepts only adamw)
    "weight_decay": 0.05,  # Keras' AdamW decays by this x learning rate per step: ~30% shrinkage over the run
    "width": 16,  # channel multiplier: for the same time, more epochs beat a wider net (NOTES.md)
    "cosface_margin": 0.45,  # views cluster tighter than unseen look-alikes need: fewer look-alike false matches
    "image_size": 64,  # side of the aligned crop the signatures take; build_embedder needs a multiple of 16
    "train_identities": 2667,  # unseen people are the hard part: many identities (the image budget's split: NOTES.md)
    "train_views": 12,  # enough views per identity that pose, light and occluders are learnt as nuisance
    "val_identities": 300,  # unseen identities, so threshold and calibration are fitted as they will be used
    "val_views": 4,  # several views per identity to draw genuine pairs from
    "val_pairs": 1000,  # genuine and impostor each: enough to place the threshold and fit the calibration
    "test_identities": 600,  # disjoint from training and validation: the test measures people never seen
    "test_views": 5,  # several views per identity to draw genuine pairs from
    "test_pairs": 3000,  # genuine and impostor each, as in LFW's 10-fold protocol
    "lookalike_fraction": 0.25,  # share of impostor pairs from one look-alike family: the threshold sees hard cases
    "augment_grayscale": 0.25,  # on top of the renderer's own: real enrolment photos are often grayscale
    "augment_max_shift": 0.015,  # fraction of the image: a landmark detector's eye error (MTCNN on renders: sd ~0.01)
    "augment_max_rotation": 0.03,  # radians: views are already eye-aligned, so only detector error is modelled
    "augment_max_scale": 0.02,  # likewise a small residual of eye-based alignment
    "augment_blur": 0.5,  # share blurred, so identity is also read from shapes that survive a soft photo
    "augment_max_blur_sigma": 1.5,  # px: up to the softness of real aligned photos at this size
}
EPOCH_STREAM = "facial_epoch"
DETECTION_SIZE = 160  # --data-dir photos are loaded at this size before detection (enough pixels for the eye points)
QUICK = {"epochs": 1, "train_identities": 40, "train_views": 3, "val_identities": 20, "val_views": 2,
         "val_pairs": 40, "test_identities": 20, "test_views": 2, "test_pairs": 40, "batch_size": 32}


def synthetic_split(split: str, n_identities: int, views: int, cfg: dict):
    """(images uint8, labels, family root per identity) for one synthetic split."""
    images, labels = faces.face_dataset(split, n_identities, views, cfg["seed"], cfg["image_size"])
    families = np.array([faces.family_root(split, i, cfg["seed"]) for i in range(n_identities)])
    return images, labels, families


def real_split(data_dir, split: str, cfg: dict):
    """A user's folder-per-identity data, aligned; identities split by training.split_indices."""
    from veid_ml.api import crop_largest_faces
    from veid_ml.data import real

    images, labels, names = real.load_faces(data_dir, DETECTION_SIZE)
    if len(names) < 10:
        raise ValueError(f"{data_dir} has {len(names)} identities; --data-dir needs >= 10 to split them by identity")
    keep_ids = training.split_indices(len(names), split).tolist()
    keep = np.isin(labels, keep_ids)
    aligned, _ = crop_largest_faces(images[keep], cfg["image_size"])
    relabel = {old: new for new, old in enumerate(keep_ids)}
    return aligned, np.array([relabel[l] for l in labels[keep]], np.int32), np.arange(len(keep_ids))


def load_split(data_dir, split: str, cfg: dict):
    if data_dir is not None:
        return real_split(data_dir, split, cfg)
    return synthetic_split(split, cfg[f"{split}_identities"], cfg[f"{split}_views"], cfg)


def make_pairs(labels: np.ndarray, families: np.ndarray, n_pairs: int, lookalike_fraction: float,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(index pairs (2n, 2), is_genuine (2n,), is_lookalike (2n,)): n genuine pairs, then n impostors, the first
    lookalike_fraction of them from one look-alike family when the split has any."""
    by_id = [np.flatnonzero(labels == i) for i in range(len(families))]
    multi_view = [i for i, v in enumerate(by_id) if len(v) >= 2]
    if not multi_view or len(by_id) < 2:
        raise ValueError("pairs need >= 2 identities and one with >= 2 images")
    pairs = [rng.choice(by_id[rng.choice(multi_view)], 2, replace=False) for _ in range(n_pairs)]
    by_family = {}
    for ident, root in enumerate(families):
        by_family.setdefault(int(root), []).append(ident)
    lookalikes = [ids for ids in by_family.values() if len(ids) >= 2]
    n_lookalike = int(n_pairs * lookalike_fraction) if lookalikes else 0
    for k in range(n_pairs):
        if k < n_lookalike:
            a, b = rng.choice(lookalikes[rng.integers(len(lookalikes))], 2, replace=False)
        else:
            a, b = rng.choice(len(by_id), 2, replace=False)
        pairs.append([rng.choice(by_id[a]), rng.choice(by_id[b])])
    is_lookalike = np.zeros(2 * n_pairs, bool)
    is_lookalike[n_pairs:n_pairs + n_lookalike] = True
    return np.array(pairs), np.repeat([1, 0], n_pairs), is_lookalike


def cosine_pairs(embeddings: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    return np.sum(embeddings[pairs[:, 0]] * embeddings[pairs[:, 1]], axis=1)


def best_threshold(is_genuine: np.ndarray, similarity: np.ndarray) -> float:
    """The accuracy-maximising threshold, midway between the two scores it separates."""
    order = np.argsort(similarity, kind="stable")
    s, y = similarity[order], is_genuine[order]
    # accept everything from position k on: correct = impostors below k + genuines from k
    correct = np.concatenate([[0], np.cumsum(1 - y)]) + np.concatenate([np.cumsum(y[::-1])[::-1], [0]])
    k = int(np.argmax(correct))
    if k == 0:
        return float(s[0] - 1e-6)
    if k == len(s):
        return float(s[-1] + 1e-6)
    return float((s[k - 1] + s[k]) / 2)


def augment(images: np.ndarray, rng: np.random.Generator, cfg: dict) -> np.ndarray:
    """Alignment jitter (small similarity warp), blur, mirror, extra grayscale, contrast/brightness; float32 0..1."""
    import cv2

    n, size = len(images), images.shape[1]
    angle = rng.uniform(-1, 1, n) * cfg["augment_max_rotation"]
    scale = 1 + rng.uniform(-1, 1, n) * cfg["augment_max_scale"]
    shift = rng.uniform(-1, 1, (n, 2)) * cfg["augment_max_shift"] * size
    mirror = rng.random(n) < 0.5
    gray = rng.random(n) < cfg["augment_grayscale"]
    contrast, brightness = rng.uniform(0.8, 1.2, n), rng.uniform(-0.08, 0.08, n)
    blur = np.where(rng.random(n) < cfg["augment_blur"], rng.uniform(0.3, cfg["augment_max_blur_sigma"], n), 0.0)
    out = np.empty(images.shape, np.float32)
    centre = (size / 2, size / 2)
    for i, img in enumerate(images):
        m = cv2.getRotationMatrix2D(centre, float(np.degrees(angle[i])), float(scale[i]))
        m[:, 2] += shift[i]
        img = cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        if blur[i] > 0:
            img = cv2.GaussianBlur(img, (0, 0), float(blur[i]))
        if mirror[i]:
            img = img[:, ::-1]
        if gray[i]:
            img = np.repeat(cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
        out[i] = img
    out = out / 255.0 * contrast[:, None, None, None] + brightness[:, None, None, None]
    return np.clip(out, 0.0, 1.0)


def embed_numpy(embedder, images: np.ndarray, batch: int = 512) -> np.ndarray:
    from facial_verification import model as fv_model

    return np.concatenate([fv_model.embed_mirror_averaged(embedder, images[i:i + batch].astype(np.float32) / 255.0)
                           .numpy() for i in range(0, len(images), batch)])


def load_data(cfg: dict, data_dir) -> dict:
    x_train, y_train, _ = load_split(data_dir, "train", cfg)
    x_val, y_val, val_families = load_split(data_dir, "val", cfg)
    return {"x_train": x_train, "y_train": y_train, "x_val": x_val, "y_val": y_val, "val_families": val_families,
            "onehot": np.eye(int(y_train.max()) + 1, dtype=np.float32)}


def build(cfg: dict, data: dict) -> training.Learner:
    """The embedder with the CosFace head over the training identities, AdamW with warm-up then cosine decay."""
    import keras

    from facial_verification import model as fv_model

    n_classes = len(data["onehot"])
    embedder = fv_model.build_embedder(cfg["width"], cfg["image_size"])
    trainer = fv_model.build_trainer(embedder, n_classes)
    steps_per_epoch = math.ceil(len(data["x_train"]) / cfg["batch_size"])
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, decay_steps=cfg["epochs"] * steps_per_epoch - steps_per_epoch // 2,
        warmup_target=cfg["learning_rate"], warmup_steps=steps_per_epoch // 2)
    if cfg["optimizer"] != "adamw":
        raise ValueError(f"optimizer must be 'adamw', got {cfg['optimizer']!r}")
    trainer.compile(keras.optimizers.AdamW(schedule, weight_decay=cfg["weight_decay"]),
                    fv_model.cosface_loss(cfg["cosface_margin"]), jit_compile=False)
    return training.Learner(embedder, trainer.train_on_batch, steps_per_epoch)


def epoch_batches(data: dict, cfg: dict, rng: np.random.Generator):
    """(augmented images, one-hot identities) in a random order; order and augmentation both come from rng."""
    order = rng.permutation(len(data["x_train"]))
    for start in range(0, len(order), cfg["batch_size"]):
        idx = order[start:start + cfg["batch_size"]]
        yield augment(data["x_train"][idx], rng, cfg), data["onehot"][data["y_train"][idx]]


def finish(learner: training.Learner, cfg: dict, data: dict, data_dir) -> training.Trained:
    """Threshold and calibration on validation identities never seen in training; the pair and embed signatures."""
    import tensorflow as tf
    from sklearn.linear_model import LogisticRegression

    from facial_verification import model as fv_model

    embedder, x_train, y_train, x_val, y_val = (learner.model, data["x_train"], data["y_train"], data["x_val"],
                                                 data["y_val"])
    pair_rng = sample_rng("facial_pairs", "val", 0, cfg["seed"])
    val_pairs, val_genuine, _ = make_pairs(y_val, data["val_families"], cfg["val_pairs"], cfg["lookalike_fraction"],
                                           pair_rng)
    val_sim = cosine_pairs(embed_numpy(embedder, x_val), val_pairs)
    threshold = best_threshold(val_genuine, val_sim)
    calib = LogisticRegression(C=100.0).fit(val_sim[:, None].astype(np.float64), val_genuine)
    slope, intercept = float(calib.coef_[0, 0]), float(calib.intercept_[0])
    val_accuracy = float(np.mean((val_sim >= threshold) == val_genuine))
    print(f"validation: threshold {threshold:.4f}, accuracy {val_accuracy:.4f}", flush=True)

    size = cfg["image_size"]
    image_spec = lambda name: tf.TensorSpec([None, size, size, 3], tf.float32, name=name)  # noqa: E731

    def embed_images(image):
        return fv_model.embed_mirror_averaged(embedder, tf.clip_by_value(image, 0.0, 1.0))

    @tf.function(input_signature=[image_spec("image")])
    def embed(image):
        return {"embedding": embed_images(image)}

    @tf.function(input_signature=[image_spec("image_a"), image_spec("image_b")])
    def verify(image_a, image_b):
        both = embed_images(tf.concat([image_a, image_b], axis=0))  # one pass: half the per-op overhead
        n = tf.shape(image_a)[0]
        similarity = tf.reduce_sum(both[:n] * both[n:], axis=1)
        return {"similarity": similarity,
                "match_probability": tf.sigmoid(slope * similarity + intercept),
                "is_match": similarity >= threshold,
                "threshold": tf.fill(tf.shape(similarity), tf.constant(threshold, tf.float32))}

    dataset = {
        "source": "synthetic" if data_dir is None else "data_dir",
        "train": {"images": len(x_train), "identities": len(data["onehot"]),
                  "content_hash": content_hash(x_train, y_train)},
        "val": {"images": len(x_val), "identities": int(y_val.max()) + 1, "pairs": len(val_pairs),
                "content_hash": content_hash(x_val, y_val)},
    }
    info = {"thresholds": {"similarity": threshold},
            "calibration": {"match_probability": "sigmoid(slope * similarity + intercept)",
                            "slope": slope, "intercept": intercept},
            "validation": {"accuracy_at_threshold": val_accuracy, "pairs": len(val_pairs)},
            "model": {"input_size": size, "embedding_dim": fv_model.EMBEDDING_DIM,
                      "parameters": int(embedder.count_params()), "loss": "cosface",
                      "cosface_scale": fv_model.COSFACE_SCALE}}
    return training.Trained(embedder, {"serving_default": verify, "embed": embed}, dataset, info)


def ten_fold_accuracy(is_genuine: np.ndarray, similarity: np.ndarray) -> tuple[float, np.ndarray]:
    """LFW protocol: each fold is scored with the threshold that is best on the other nine; (mean accuracy, preds)."""
    folds = np.arange(len(similarity)) % 10
    predicted = np.zeros(len(similarity), bool)
    accuracies = []
    for f in range(10):
        held = folds == f
        thr = best_threshold(is_genuine[~held], similarity[~held])
        predicted[held] = similarity[held] >= thr
        accuracies.append(np.mean(predicted[held] == is_genuine[held]))
    return float(np.mean(accuracies)), predicted


def evaluate(serving: dict, cfg: dict, data_dir) -> training.Evaluation:
    import tensorflow as tf
    from sklearn import metrics as skm

    from veid_ml import metrics

    x_test, y_test, test_families = load_split(data_dir, "test", cfg)

    def test_pairs(lookalike_fraction: float):  # one stream: every protocol shares the same genuine pairs
        return make_pairs(y_test, test_families, cfg["test_pairs"], lookalike_fraction,
                          sample_rng("facial_pairs", "test", 0, cfg["seed"]))

    pairs, genuine, lookalike = test_pairs(cfg["lookalike_fraction"])
    x = x_test.astype(np.float32) / 255.0
    embeddings = np.concatenate([serving["embed"](image=tf.constant(x[i:i + 512]))["embedding"].numpy()
                                 for i in range(0, len(x), 512)])
    similarity = cosine_pairs(embeddings, pairs)

    # The pair signature must give the same answer as embed + cosine (it is what consumers call).
    check = pairs[np.r_[0:8, len(pairs) - 8:len(pairs)]]
    out = serving["serving_default"](image_a=tf.constant(x[check[:, 0]]), image_b=tf.constant(x[check[:, 1]]))
    if not np.allclose(out["similarity"].numpy(), cosine_pairs(embeddings, check), atol=1e-4):
        raise RuntimeError("serving_default similarity disagrees with the embed signature")
    threshold = float(out["threshold"].numpy()[0])

    accuracy, predicted = ten_fold_accuracy(genuine, similarity)
    result = metrics.binary_metrics(genuine, predicted.astype(float), 0.5)
    result["accuracy"] = accuracy  # mean over folds (equal fold sizes up to one pair)
    result["auc_roc"] = float(skm.roc_auc_score(genuine, similarity))
    result["eer"] = metrics.equal_error_rate(genuine, similarity)[0]
    tar, _ = metrics.tpr_at_fpr(genuine, similarity, 1e-3)
    result["tar_at_far_1e-3"] = tar
    result["fnmr_at_fmr_1e-3"] = 1.0 - tar
    result["tar_at_far_1e-2"] = metrics.tpr_at_fpr(genuine, similarity, 1e-2)[0]
    result["accuracy_at_stored_threshold"] = float(np.mean((similarity >= threshold) == genuine))
    # null, not NaN, when the test identities have no look-alike families (--data-dir): metrics.json is strict JSON
    result["lookalike_false_match_rate_at_stored_threshold"] = (
        float(np.mean(similarity[lookalike] >= threshold)) if lookalike.any() else None)
    # The same genuine pairs against random impostors only, as in LFW: what the look-alike share costs. (The headline
    # numbers keep the look-alikes: a fraudster presents a document whose photo resembles them.)
    lfw_pairs, lfw_genuine, _ = test_pairs(0.0)
    lfw_similarity = cosine_pairs(embeddings, lfw_pairs)
    result["accuracy_random_impostors"] = ten_fold_accuracy(lfw_genuine, lfw_similarity)[0]
    result["eer_random_impostors"] = metrics.equal_error_rate(lfw_genuine, lfw_similarity)[0]
    result["tar_at_far_1e-3_random_impostors"] = metrics.tpr_at_fpr(lfw_genuine, lfw_similarity, 1e-3)[0]

    info = {"test_set": {"images": len(x_test), "identities": int(y_test.max()) + 1,
                         "genuine_pairs": int(genuine.sum()), "impostor_pairs": int((1 - genuine).sum()),
                         "protocol": "10-fold, threshold chosen on the other 9 folds",
                         "content_hash": content_hash(x_test, y_test)}}
    latency_inputs = {"image_a": tf.constant(x[:1]), "image_b": tf.constant(x[1:2])}
    return training.Evaluation(result, latency_inputs, (genuine, similarity, "facial verification (test pairs)"), info)
