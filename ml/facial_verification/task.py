"""The facial verification model: dlib's face ResNet (model.py), its last block fine-tuned on synthetic identities.

    python train.py --seed 42 --export-format savedmodel          # the spec command (full profile)
    python train.py --profile quick --out-dir /tmp/fv               # seconds-long smoke run

Signatures of the SavedModel (images are float32 NHWC RGB in [0, 1]: dlib's 150 px five-point chip, aligned by
veid_ml.alignment.FACE_CHIP):
    serving_default(image_a, image_b) -> similarity (1 - |a - b|^2 / 2 of the two embeddings: dlib's Euclidean
        distance d as a score, the cosine for unit vectors), match_probability (a logistic in the similarity, 0.5 at
        the threshold, its slope fitted on validation pairs), is_match (similarity >= threshold), threshold
    embed(image) -> embedding (N, 128): dlib's face descriptor, as dlib computes it

Training: the network up to block 13 stays dlib's (frozen: its features are computed once per training chip); the
last residual block and the final fc layer are fine-tuned for a few epochs at a low learning rate with dlib's own
metric loss (its loss_metric's hinge, with the distance threshold and margin stored in the model file): pairs of one
identity are pulled under threshold - margin, pairs of two identities pushed beyond threshold + margin. Batches hold
batch_identities whole identities, so every batch has both kinds. dlib's network sees all cartoon identities as one
person (distances 0.35-0.56, under its 0.6); the fine-tuning separates them while keeping 0.6 the boundary, which also
helped real photos at that threshold (NOTES.md).
The threshold is dlib's own: the distance threshold 0.6 of the model file (threshold_rule "dlib"), i.e. similarity
1 - 0.6^2 / 2 = 0.82. Fitted on our synthetic validation pairs it lands where cartoon faces need it, not real ones
(NOTES.md); threshold_rule "validation" fits it on the validation pairs, right for a user's own photos (--data-dir).

Data: synthetic faces from veid_ml.data.faces as dlib chips (faces.face_chip_dataset: cut at the renders' own five
landmarks), validation and test identities disjoint by construction; or with --data-dir a folder per identity
(veid_ml.data.real.load_faces) cropped as the pipeline crops (api.crop_largest_faces), split by identity.
The protocols are pair-based, like LFW: genuine pairs are two views of one identity, impostor pairs two identities, a
quarter of them look-alikes (siblings from one family). Real-photo figures: `veid-ml eval-real facial`, and dlib's
own pipeline on the same pairs: scripts/bench_dlib_faces.py.
"""

import functools

import numpy as np

from veid_ml import alignment, metrics, scoring, training
from veid_ml.data import faces
from veid_ml.data.rng import content_hash, sample_rng

CONFIG = {
    "epochs": 10,  # synthetic accuracy still creeps up (0.894 -> 0.899 over epochs 8-10); real photos stay put
    "learning_rate": 1e-4,  # Adam; at 3e-4 real genuine pairs drift past dlib's threshold within a few epochs
    "train_identities": 1000,  # synthetic identities the last block learns to separate
    "train_views": 8,  # views per identity: the positive pairs
    "batch_identities": 32,  # whole identities per batch (32 x 8 chips): positive and negative pairs in every batch
    "image_size": alignment.FACE_CHIP.size,  # dlib's chip side; the pipeline crops exactly this
    "threshold_rule": "dlib",  # "dlib": the model file's distance threshold; "validation": best on validation pairs
    "val_identities": 300,  # unseen identities: the match-probability slope and the validation figures
    "val_views": 4,  # several views per identity to draw genuine pairs from
    "val_pairs": 1000,  # genuine and impostor each
    "test_identities": 600,  # disjoint from validation: the test measures people never seen
    "test_views": 5,  # several views per identity to draw genuine pairs from
    "test_pairs": 3000,  # genuine and impostor each, as in LFW's 10-fold protocol
    "lookalike_fraction": 0.25,  # share of impostor pairs from one look-alike family: the hard cases
}
DETECTION_SIZE = 160  # --data-dir photos are loaded at this size before detection (enough pixels for the landmarks)
QUICK = {"epochs": 1, "train_identities": 16, "train_views": 2, "batch_identities": 8, "val_identities": 20,
         "val_views": 2, "val_pairs": 40, "test_identities": 20, "test_views": 2, "test_pairs": 40}
FROZEN_UNTIL = "block13_out"  # dlib's layers up to this one keep their weights; the rest is fine-tuned
EPOCH_STREAM = "facial_epoch"


def synthetic_split(split: str, n_identities: int, views: int, cfg: dict):
    """(chips uint8, labels, family root per identity) for one synthetic split."""
    images, labels = faces.face_chip_dataset(split, n_identities, views, cfg["seed"], alignment.FACE_CHIP)
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
    aligned, _ = crop_largest_faces(images[keep], alignment.FACE_CHIP)
    relabel = {old: new for new, old in enumerate(keep_ids)}
    return aligned, np.array([relabel[l] for l in labels[keep]], np.int32), np.arange(len(keep_ids))


def load_split(data_dir, split: str, cfg: dict):
    if cfg["image_size"] != alignment.FACE_CHIP.size:
        raise ValueError(f"image_size must be {alignment.FACE_CHIP.size} (dlib's chip), got {cfg['image_size']}")
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


def similarities(embeddings: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """1 - |a - b|^2 / 2 per pair: the signature's similarity (and veid_ml.scoring's, in integers)."""
    diff = embeddings[pairs[:, 0]] - embeddings[pairs[:, 1]]
    return 1.0 - np.sum(diff * diff, axis=1) / 2.0


def integer_similarities(embeddings: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """veid_ml.scoring.similarity_bp of each pair of Q14 integer embeddings, / 10000."""
    return np.array([scoring.similarity_bp(embeddings[a], embeddings[b]) for a, b in pairs]) / scoring.BP


def embed_numpy(embedder, images: np.ndarray, batch: int = 64) -> np.ndarray:
    import tensorflow as tf

    run = tf.function(lambda x: embedder(x, training=False))
    return np.concatenate([run(tf.constant(images[i:i + batch].astype(np.float32) / np.float32(255))).numpy()
                           for i in range(0, len(images), batch)])


def load_data(cfg: dict, data_dir) -> dict:
    if cfg["threshold_rule"] not in ("dlib", "validation"):
        raise ValueError(f"threshold_rule must be 'dlib' or 'validation', got {cfg['threshold_rule']!r}")
    x_train, y_train, _ = load_split(data_dir, "train", cfg)
    x_val, y_val, val_families = load_split(data_dir, "val", cfg)
    return {"x_train": x_train, "y_train": y_train, "x_val": x_val, "y_val": y_val, "val_families": val_families}


def metric_loss(descriptors, labels, threshold: float, margin: float):
    """dlib's loss_metric hinge, averaged over every pair of the batch: same identity relu(d - (threshold - margin)),
    two identities relu(threshold + margin - d), d the Euclidean distance of the descriptors."""
    import tensorflow as tf

    d = tf.sqrt(tf.reduce_sum(tf.square(descriptors[:, None] - descriptors[None]), axis=-1) + 1e-12)
    same = tf.cast(labels[:, None] == labels[None], tf.float32)
    other_pair = 1.0 - tf.eye(tf.shape(descriptors)[0])  # a chip with itself is no pair
    hinge = same * other_pair * tf.nn.relu(d - (threshold - margin)) + (1 - same) * tf.nn.relu(threshold + margin - d)
    return tf.reduce_sum(hinge) / tf.reduce_sum(other_pair)


def build(cfg: dict, data: dict) -> training.Learner:
    """dlib's network; its frozen part's features of every training chip, computed once; Adam on the rest."""
    import keras
    import tensorflow as tf

    from facial_verification import model as fv_model

    embedder = fv_model.build_embedder()
    frozen = keras.Model(embedder.input, embedder.get_layer(FROZEN_UNTIL).output)
    head = keras.Model(frozen.output, embedder.output)  # shares its layers with the embedder
    data["features"] = embed_numpy(frozen, data["x_train"])
    threshold, margin = dlib_loss_constants()
    optimizer = keras.optimizers.Adam(cfg["learning_rate"])

    @tf.function(jit_compile=False)
    def step(features, labels):
        with tf.GradientTape() as tape:
            loss = metric_loss(head(features, training=False), labels, threshold, margin)
        optimizer.apply_gradients(zip(tape.gradient(loss, head.trainable_weights), head.trainable_weights))
        return loss

    n_ids = int(data["y_train"].max()) + 1
    return training.Learner(embedder, step, steps_per_epoch=-(-n_ids // cfg["batch_identities"]))


def epoch_batches(data: dict, cfg: dict, rng: np.random.Generator):
    """(frozen features, identities) of batch_identities whole identities at a time, identities in a random order."""
    labels = data["y_train"]
    order = rng.permutation(int(labels.max()) + 1)
    for start in range(0, len(order), cfg["batch_identities"]):
        idx = np.flatnonzero(np.isin(labels, order[start:start + cfg["batch_identities"]]))
        yield data["features"][idx], labels[idx]


@functools.cache
def dlib_loss_constants() -> tuple[float, float]:
    """(distance threshold, margin) of dlib's metric loss, from the model file's loss layer (read once a run)."""
    from facial_verification import dlib_resnet, model as fv_model

    loss = dlib_resnet.read_network(fv_model.weights_file())[-1]
    return float(loss["distance_threshold"]), float(loss["margin"])


def dlib_threshold() -> float:
    """dlib's distance threshold from the model file's loss layer, as a similarity: 1 - d^2 / 2."""
    distance = dlib_loss_constants()[0]
    return 1.0 - distance * distance / 2.0


def finish(learner: training.Learner, cfg: dict, data: dict, data_dir) -> training.Trained:
    """The threshold (threshold_rule) and the match-probability slope from validation pairs; the two signatures."""
    import tensorflow as tf
    from sklearn.linear_model import LogisticRegression

    from facial_verification import model as fv_model

    embedder, x_val, y_val = learner.model, data["x_val"], data["y_val"]
    pair_rng = sample_rng("facial_pairs", "val", 0, cfg["seed"])
    val_pairs, val_genuine, _ = make_pairs(y_val, data["val_families"], cfg["val_pairs"], cfg["lookalike_fraction"],
                                           pair_rng)
    val_sim = similarities(embed_numpy(embedder, x_val), val_pairs)
    fitted = metrics.best_threshold(val_genuine, val_sim)
    threshold = float(np.float32(dlib_threshold() if cfg["threshold_rule"] == "dlib" else fitted))
    # the slope only: the probability is 0.5 exactly at the threshold the decision uses
    calib = LogisticRegression(C=100.0).fit((val_sim - threshold)[:, None].astype(np.float64), val_genuine)
    slope = float(calib.coef_[0, 0])
    val_accuracy = float(np.mean((val_sim >= threshold) == val_genuine))
    print(f"validation: threshold {threshold:.4f} ({cfg['threshold_rule']}; best on validation {fitted:.4f}), "
          f"accuracy {val_accuracy:.4f}", flush=True)

    size = cfg["image_size"]
    image_spec = lambda name: tf.TensorSpec([None, size, size, 3], tf.float32, name=name)  # noqa: E731

    def embed_images(image):
        return embedder(tf.clip_by_value(image, 0.0, 1.0), training=False)

    @tf.function(input_signature=[image_spec("image")])
    def embed(image):
        return {"embedding": embed_images(image)}

    @tf.function(input_signature=[image_spec("image_a"), image_spec("image_b")])
    def verify(image_a, image_b):
        both = embed_images(tf.concat([image_a, image_b], axis=0))  # one pass: half the per-op overhead
        n = tf.shape(image_a)[0]
        similarity = 1.0 - tf.reduce_sum(tf.square(both[:n] - both[n:]), axis=1) / 2.0
        return {"similarity": similarity,
                "match_probability": tf.sigmoid(slope * (similarity - threshold)),
                "is_match": similarity >= threshold,
                "threshold": tf.fill(tf.shape(similarity), tf.constant(threshold, tf.float32))}

    # The consensus graph: integer ops calibrated on training chips (one view of 256 identities), the same threshold
    calibration = data["x_train"][:: max(1, len(data["x_train"]) // 256)][:256]
    program = fv_model.integer_program(embedder, calibration)
    threshold_bp = scoring.basis_points(threshold)
    integer_signatures = fv_model.integer_signatures(program, threshold_bp, slope, size)

    dataset = {
        "source": "synthetic" if data_dir is None else "data_dir",
        "train": {"images": len(data["x_train"]), "identities": int(data["y_train"].max()) + 1,
                  "content_hash": content_hash(data["x_train"], data["y_train"]),
                  "trained": f"the layers after {FROZEN_UNTIL} (block 14 and fc); the rest is dlib's"},
        "val": {"images": len(x_val), "identities": int(y_val.max()) + 1, "pairs": len(val_pairs),
                "content_hash": content_hash(x_val, y_val)},
    }
    info = {"thresholds": {"similarity": threshold},
            "threshold_rule": {"dlib": "dlib's distance threshold d from the model file, as 1 - d^2 / 2",
                               "validation": "best accuracy on the validation pairs"}[cfg["threshold_rule"]],
            "calibration": {"match_probability": "sigmoid(slope * (similarity - threshold))", "slope": slope},
            "validation": {"accuracy_at_threshold": val_accuracy, "best_threshold": fitted,
                           "pairs": len(val_pairs)},
            "model": {"input_size": size, "embedding_dim": fv_model.EMBEDDING_DIM,
                      "parameters": int(embedder.count_params()), "architecture": "dlib face ResNet (29 conv)",
                      "similarity": "1 - |a - b|^2 / 2 of dlib's descriptors"}}
    info["thresholds"]["similarity_bp"] = threshold_bp
    integer_info = {"activation_bits": fv_model.INTEGER_BITS, "weight_bits": fv_model.WEIGHT_BITS,
                    "input_bits": fv_model.INPUT_BITS, "embedding": "dlib's descriptor in Q14 (int32)",
                    "calibration_chips": len(calibration), "layers": program.report}
    return training.Trained(embedder, {"serving_default": verify, "embed": embed}, dataset, info,
                            pretrained=fv_model.pretrained_weights(), integer_signatures=integer_signatures,
                            integer_info=integer_info)


def evaluate(serving: dict, cfg: dict, data_dir) -> training.Evaluation:
    import tensorflow as tf
    from sklearn import metrics as skm

    x_test, y_test, test_families = load_split(data_dir, "test", cfg)

    def test_pairs(lookalike_fraction: float):  # one stream: every protocol shares the same genuine pairs
        return make_pairs(y_test, test_families, cfg["test_pairs"], lookalike_fraction,
                          sample_rng("facial_pairs", "test", 0, cfg["seed"]))

    pairs, genuine, lookalike = test_pairs(cfg["lookalike_fraction"])
    from veid_ml import export

    integer = export.is_integer_graph(serving["embed"])  # the consensus graph, or the float twin
    x = x_test if integer else x_test.astype(np.float32) / np.float32(255)
    embeddings = np.concatenate([serving["embed"](image=tf.constant(x[i:i + 64]))["embedding"].numpy()
                                 for i in range(0, len(x), 64)])
    similarity = (integer_similarities if integer else similarities)(embeddings, pairs)

    # The pair signature must give the same answer as embed + the similarity (it is what consumers call).
    check = pairs[np.r_[0:8, len(pairs) - 8:len(pairs)]]
    out = serving["serving_default"](image_a=tf.constant(x[check[:, 0]]), image_b=tf.constant(x[check[:, 1]]))
    paired = out["similarity_bp"].numpy() / 10000.0 if integer else out["similarity"].numpy()
    if not np.allclose(paired, (integer_similarities if integer else similarities)(embeddings, check), atol=1e-4):
        raise RuntimeError("serving_default similarity disagrees with the embed signature")
    threshold = out["threshold_bp"].numpy()[0] / 10000.0 if integer else float(out["threshold"].numpy()[0])

    accuracy, predicted = metrics.ten_fold_accuracy(genuine, similarity)
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
    lfw_similarity = (integer_similarities if integer else similarities)(embeddings, lfw_pairs)
    result["accuracy_random_impostors"] = metrics.ten_fold_accuracy(lfw_genuine, lfw_similarity)[0]
    result["eer_random_impostors"] = metrics.equal_error_rate(lfw_genuine, lfw_similarity)[0]
    result["tar_at_far_1e-3_random_impostors"] = metrics.tpr_at_fpr(lfw_genuine, lfw_similarity, 1e-3)[0]

    info = {"test_set": {"images": len(x_test), "identities": int(y_test.max()) + 1,
                         "genuine_pairs": int(genuine.sum()), "impostor_pairs": int((1 - genuine).sum()),
                         "protocol": "10-fold, threshold chosen on the other 9 folds",
                         "content_hash": content_hash(x_test, y_test)}}
    latency_inputs = {"image_a": tf.constant(x[:1]), "image_b": tf.constant(x[1:2])}
    return training.Evaluation(result, latency_inputs, (genuine, similarity, "facial verification (test pairs)"), info)
