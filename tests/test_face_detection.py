"""Face detector: the port of the mtcnn wheel's networks, the packed pyramid, the ground truth and matching rules, and a
quick-profile export whose integer consensus graph finds a synthetic face (eyes within a few pixels) as its float
twin does, finds nothing where there is none, handles small and wrongly typed input as documented, and runs through
the TF C API byte for byte.

Until the model is approved there is no committed model to test: everything runs on a quick-profile export in a tmp
directory (one training, ~25 s, shared by the tests that read it)."""

import shutil
import subprocess
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from conftest import quick_train, run_in_fresh_process
from face_detection import scenes, task
from face_detection.model import PNET_CELL, level_sizes, plan_canvas, pyramid_windows
from veid_ml import determinism
from veid_ml.data import documents, faces
from veid_ml.data.rng import sample_rng

METRIC_KEYS = {"accuracy", "precision", "recall", "f1_score", "auc_roc", "false_detections_per_image",
               "landmark_nme_mean", "landmark_nme_p90", "eye_nme_mean", "eye_nme_p90", "by_kind"}
C_SOURCE = Path(__file__).parent / "c_api" / "run_savedmodel.c"
TF_DIR = Path(sysconfig.get_paths()["purelib"]) / "tensorflow"


@pytest.fixture(scope="module")
def quick_export(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("face_detection")
    return out, quick_train("face_detection", out, timeout=300)


def test_quick_training_exports_a_complete_model(quick_export):
    out, doc = quick_export
    for name in ("face_detection_model/saved_model.pb", "face_detection_model_frozen.pb", "manifest.json",
                 "metrics.json", "provenance.json", "roc_det.png"):
        assert (out / name).is_file(), name
    assert METRIC_KEYS <= set(doc["metrics"])
    assert set(doc["metrics"]["by_kind"]) == {"selfie", "document", "empty"}
    assert doc["training_config"]["epochs"] == 0 and doc["training_config"]["profile"] == "quick"
    assert task.CONFIG["threshold_floor"] <= doc["threshold"] <= 1.0
    consensus = doc["consensus_graph"]
    assert consensus["float_artifact"] == "face_detection_float" and (out / "face_detection_float_frozen.pb").is_file()
    assert 10000 * task.CONFIG["threshold_floor"] <= consensus["threshold_bp"] <= 10000
    assert set(consensus["layers"]) == {"pnet", "rnet", "onet"}
    weights = {w["name"]: w for w in doc["initial_weights"]}
    assert set(weights) == {"pnet.lz4", "rnet.lz4", "onet.lz4"}
    assert all(w["license"] == "MIT" and w["source"] == "mtcnn==1.0.0 wheel (PyPI)" and len(w["sha256"]) == 64
               for w in weights.values())
    assert doc["dataset"]["val"]["selfie"]["images"] == task.QUICK["val_selfies"]


def selfies_with_truth(n: int) -> list:
    """Test-split selfies with a face of 20-25% of the short side: eyes ~30 px apart."""
    return [scenes.selfie("test", i, 42, size_range=(0.2, 0.25)) for i in range(n)]


OUTPUTS = ("boxes_q4", "landmarks_q4", "scores_bp")  # the consensus graph's; its float twin's are FLOAT_OUTPUTS
FLOAT_OUTPUTS = ("boxes", "landmarks", "scores")


def signature_behaviour(model_dir: Path, selfies: list) -> dict:
    """Run in a fresh process: the exported signature on selfies, blank and noise images, tiny and mistyped input;
    the float twin beside it on the selfies."""
    import tensorflow as tf

    from veid_ml import export

    serve = export.load_serving(model_dir)
    twin = export.load_serving(model_dir.parent / "face_detection_float")
    out = {"selfies": [], "float": []}
    for image, _, _ in selfies:
        result = serve(image=tf.constant(image))
        out["selfies"].append({k: result[k].numpy() for k in OUTPUTS})
        result = twin(image=tf.constant(image))
        out["float"].append({k: result[k].numpy() for k in FLOAT_OUTPUTS})
    again = serve(image=tf.constant(selfies[0][0]))
    out["repeatable"] = all(again[k].numpy().tobytes() == out["selfies"][0][k].tobytes() for k in OUTPUTS)
    rng = np.random.default_rng(0)
    empty = {"blank": np.full((480, 640, 3), 128, np.uint8), "black": np.zeros((480, 640, 3), np.uint8),
             "noise": rng.integers(0, 256, (480, 640, 3), dtype=np.uint8),
             "smooth noise": np.repeat(np.repeat(rng.integers(0, 256, (60, 80, 3), dtype=np.uint8), 8, 0), 8, 1),
             "tiny": np.full((31, 200, 3), 128, np.uint8), "zero": np.zeros((0, 0, 3), np.uint8),
             "smallest": np.full((32, 32, 3), 128, np.uint8), "elongated": np.full((32, 1000, 3), 128, np.uint8)}
    out["empty"] = {}
    for name, image in empty.items():
        result = serve(image=tf.constant(image))
        out["empty"][name] = {k: tuple(result[k].shape) for k in OUTPUTS}
    out["threshold"] = int(serve(image=tf.constant(empty["blank"]))["threshold_bp"])
    out["rejected"] = {}
    for name, bad in (("float32", tf.zeros([64, 64, 3], tf.float32)), ("batch", tf.zeros([1, 64, 64, 3], tf.uint8)),
                      ("grey", tf.zeros([64, 64], tf.uint8))):
        try:
            serve(image=bad)
            out["rejected"][name] = None
        except (TypeError, ValueError, tf.errors.InvalidArgumentError) as e:
            out["rejected"][name] = type(e).__name__
    return out


def test_signature_finds_the_face_and_nothing_else(quick_export):
    selfies = selfies_with_truth(6)
    got = run_in_fresh_process(signature_behaviour, quick_export[0] / "face_detection_model", selfies)
    eye_errors = []
    for (image, marks, box), det, twin in zip(selfies, got["selfies"], got["float"]):
        assert det["boxes_q4"].shape[1:] == (4,) and det["landmarks_q4"].shape[1:] == (5, 2)
        assert all(det[k].dtype == np.int32 for k in OUTPUTS)
        assert np.all(det["scores_bp"] >= got["threshold"])  # ordered by O-Net's logit: bp may tie
        assert np.all(np.diff(det["scores_bp"]) <= 0)
        boxes, landmarks = det["boxes_q4"] / 16, det["landmarks_q4"] / 16
        if len(det["scores_bp"]):
            assert task.box_iou(boxes[:1], box)[0, 0] >= 0.5  # the best detection is the face
            eye_errors.append(np.linalg.norm(landmarks[0, :2] - marks[0, :2], axis=1))
            if len(twin["scores"]):  # the float twin's face, up to quantisation and the crops it moves: measured on
                # 120 validation images, box corners ~1 px apart (median) and scores 0.002 (median), 0.2 at most
                assert task.box_iou(boxes[:1], twin["boxes"][:1])[0, 0] > 0.9
                assert np.abs(landmarks[0] - twin["landmarks"][0]).max() < 3.0
                assert abs(det["scores_bp"][0] / 10000 - twin["scores"][0]) < 0.25
    assert len(eye_errors) >= 5, "the face was missed in more than one of 6 selfies"
    eye_errors = np.array(eye_errors)
    # measured: eyes ~30 px apart, median error ~1.5 px, none above ~4 px
    assert np.median(eye_errors) < 3.0 and eye_errors.max() < 6.0, eye_errors
    assert got["repeatable"]
    for name, shapes in got["empty"].items():  # blank, noise, too small (< 32 px): nothing found
        assert shapes == {"boxes_q4": (0, 4), "landmarks_q4": (0, 5, 2), "scores_bp": (0,)}, (name, shapes)
    assert all(got["rejected"].values()), got["rejected"]  # uint8 [H, W, 3] only, refused before running


def test_c_api_runs_the_signature_bit_for_bit(quick_export, tmp_path):
    """The serving signature through the TF C API (what the Go bindings wrap): uint8 input of any size, the same
    output bytes as Python. The C consumer is tests/c_api/run_savedmodel.c with a uint8 input tensor."""
    if shutil.which("gcc") is None:
        pytest.fail("gcc is required for the C API test (install build-essential)")
    source = C_SOURCE.read_text()
    assert source.count("TF_FLOAT") == 1
    (tmp_path / "run_u8.c").write_text(source.replace("TF_FLOAT", "TF_UINT8"))
    exe = tmp_path / "run_u8"
    subprocess.run(["gcc", "-O1", "-o", str(exe), str(tmp_path / "run_u8.c"), f"-I{TF_DIR / 'include'}",
                    f"-L{TF_DIR}", "-l:libtensorflow_cc.so.2", "-l:libtensorflow_framework.so.2",
                    f"-Wl,-rpath,{TF_DIR}"], check=True)
    image, _, _ = selfies_with_truth(1)[0]
    image.tofile(tmp_path / "image.u8")
    model_dir = quick_export[0] / "face_detection_model"
    py = run_in_fresh_process(signature_behaviour, model_dir, [(image, None, None)])["selfies"][0]
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    saved.ParseFromString((model_dir / "saved_model.pb").read_bytes())
    signature = saved.meta_graphs[0].signature_def["serving_default"]
    args = [str(exe), str(model_dir), signature.inputs["image"].name.split(":")[0], str(tmp_path / "image.u8"),
            str(image.shape[0]), str(image.shape[1]), "3", "--"]
    for name in OUTPUTS:
        args += [signature.outputs[name].name, str(tmp_path / f"{name}.bin")]
    c = subprocess.run(args, capture_output=True, text=True, env=determinism.pinned_environ(), timeout=300)
    assert c.returncode == 0, c.stderr[-2000:]
    assert len(py["scores_bp"]) >= 1
    for name in OUTPUTS:
        assert (tmp_path / f"{name}.bin").read_bytes() == py[name].tobytes(), name


def port_and_packing() -> dict:
    """Run in a fresh process: the Keras networks against the wheel's own classes with the same weights, the plain-op
    forward passes against the Keras networks, and P-Net on the packed canvas against P-Net on each level alone."""
    import tensorflow as tf
    from mtcnn.network.onet import ONet
    from mtcnn.network.pnet import PNet
    from mtcnn.network.rnet import RNet

    from face_detection import model

    nets = model.build_networks()
    forward = model.Forward(nets)
    rng = np.random.default_rng(0)
    out = {"wheel": {}, "forward": {}}
    for key, cls, shape, file in (("pnet", PNet, (2, 37, 53, 3), "pnet.lz4"),
                                  ("rnet", RNet, (5, 24, 24, 3), "rnet.lz4"),
                                  ("onet", ONet, (5, 48, 48, 3), "onet.lz4")):
        wheel = cls()
        wheel.build()
        wheel.set_weights(model.load_weight_arrays(file))
        x = rng.uniform(-1, 1, shape).astype(np.float32)
        ours = [t.numpy() for t in nets[key](x)]
        out["wheel"][key] = max(float(np.abs(a - b.numpy()).max()) for a, b in zip(ours, wheel(x)))
        if key == "pnet":
            reg, logit = forward.pnet(x[:1])
            mine = [reg.numpy(), tf.sigmoid(logit).numpy()]
            ours = [ours[0][0], ours[1][0, ..., 1]]
        else:
            mine = [t.numpy() for t in getattr(forward, key)(x)]
            ours = ours[:-1] + [ours[-1][:, 1]]
        out["forward"][key] = max(float(np.abs(a - b).max()) for a, b in zip(ours, mine))

    windows = model.pyramid_windows(0.1, 0.6)
    layout = model.plan_canvas(windows)
    out["packing"] = {}
    for h, w in ((480, 640), (640, 480), (243, 320)):
        sizes = tf.cast(model.level_sizes(windows, tf.constant(h), tf.constant(w), ops=tf)[0], tf.int32)
        levels = [tf.constant(rng.uniform(-1, 1, (1, int(hh), int(ww), 3)).astype(np.float32))
                  for hh, ww in sizes.numpy()]
        canvas, xs, ys = model.build_canvas(layout, levels, sizes)
        level_id = model.cell_levels(tf.shape(canvas), sizes, xs, ys).numpy()
        _, logit = forward.pnet(canvas)
        worst, complete = 0.0, 0
        for k, level in enumerate(levels):
            _, alone = forward.pnet(level)
            cells = np.argwhere(level_id == k)
            i, j = cells[:, 0] - int(ys[k]) // 2, cells[:, 1] - int(xs[k]) // 2
            worst = max(worst, float(np.abs(logit.numpy()[cells[:, 0], cells[:, 1]] - alone.numpy()[i, j]).max()))
            # every cell whose 12 px window lies inside the level is on the canvas
            complete += len(cells) == ((int(sizes[k, 0]) - 12) // 2 + 1) * ((int(sizes[k, 1]) - 12) // 2 + 1)
        out["packing"][(h, w)] = (worst, complete, len(levels))
    return out


def test_networks_are_the_wheels_and_the_packed_pyramid_is_exact():
    got = run_in_fresh_process(port_and_packing)
    assert all(v == 0.0 for v in got["wheel"].values()), got["wheel"]  # same layers, same weights, same outputs
    assert all(v < 1e-5 for v in got["forward"].values()), got["forward"]  # plain ops: float rounding only
    for shape, (worst, complete, levels) in got["packing"].items():
        assert worst < 1e-4 and complete == levels, (shape, worst, complete, levels)


def test_canvas_layout_holds_for_every_pyramid_and_image_shape():
    for factor in (0.5, 0.6, 0.709):  # best-fit packing where it holds, one strip otherwise: never an overlap
        windows = pyramid_windows(0.1, factor)
        assert windows[0] == 120 and windows[-1] <= PNET_CELL  # faces from 1/10 of the frame up to all of it
        plan_canvas(windows)  # raises if no arrangement holds
    windows = pyramid_windows(0.1, 0.6)
    assert [str(w) for w in windows] == ["120", "72", "216/5", "648/25", "1944/125", "5832/625"]  # exact: 0.6 is 3/5
    sizes, content = level_sizes(windows, 480, 640)
    assert sizes[0].tolist() == [120, 160] == content.tolist()  # a face of 1/10 of the short side: 12 px
    assert sizes[:, 1].tolist() == [160, 96, 58, 35, 21, 13] and sizes.min() >= 12  # ceil(window * 4 / 3)
    sizes, content = level_sizes(windows, 480, 720)
    assert sizes[1].tolist() == [72, 108]  # exactly 72 * 1.5 (float32 arithmetic gave 109)
    sizes, content = level_sizes(windows, 32, 1000)  # beyond 4:1, the frame is 250 x 1000
    assert content.tolist() == [16, 480] and sizes[0].tolist() == [120, 480]
    import tensorflow as tf

    for h, w in ((480, 720), (32, 1000), (243, 320), (8000, 33)):  # TensorFlow's int64 graph ops agree
        got = [t.numpy().tolist() for t in level_sizes(windows, tf.constant(h), tf.constant(w), ops=tf)]
        assert got == [t.tolist() for t in level_sizes(windows, h, w)], (h, w)


def test_landmarks_follow_the_renderer():
    """The geometry the ground truth is computed from agrees with faces.aligned_view, which puts the eye centres at a
    fixed place of the crop (up to a small residual of scale, shift and roll)."""
    eyes = []
    for i in range(40):
        params = faces.identity_params("val", i)
        view = faces.aligned_view(params, faces.random_view(sample_rng("face_view", "val", i * 1000, 42)))
        marks = faces.landmarks_in_render(params, view, 1000) / 1000
        eyes.append(marks[:2])
        assert marks[0, 0] < marks[2, 0] < marks[1, 0] and marks[3, 0] < marks[4, 0]  # left to right
        assert marks[:2, 1].max() < marks[2, 1] < marks[3:, 1].min()  # eyes above the nose above the mouth
    eyes = np.array(eyes)
    assert np.abs(eyes.mean(axis=(0, 1)) - faces.ALIGNED_EYE_MIDPOINT).max() < 0.005
    assert abs(np.linalg.norm(eyes[:, 1] - eyes[:, 0], axis=1).mean() - faces.ALIGNED_EYE_DISTANCE) < 0.005


def test_document_truth_is_the_holder_photo():
    image, marks, boxes, ignore = scenes.document("val", 1, 42, "TD3")
    _, _, info = documents.document_sample(1, "val", 42, "TD3")
    photo = np.array(info["boxes"]["photo"], float)
    assert boxes.shape == (1, 4) and marks.shape == (1, 5, 2) and ignore.shape == (1, 4)  # TD3: the ghost image
    assert np.all(marks[0, :, 0] > photo[0]) and np.all(marks[0, :, 0] < photo[2])
    assert np.all(marks[0, :, 1] > photo[1]) and np.all(marks[0, :, 1] < photo[3])
    assert ignore[0, 0] > photo[2]  # the ghost sits right of the photo
    assert scenes.document("val", 0, 42, "TD1")[3].shape == (0, 4)


def test_matching_and_threshold_rule():
    gt = np.array([[100.0, 100, 200, 220]])
    boxes = np.array([[102.0, 98, 203, 225], [104.0, 100, 200, 215], [400, 50, 450, 110], [0, 0, 30, 30]])
    scores = np.array([0.99, 0.95, 0.9, 0.6], np.float32)
    status, found = task.match(boxes, scores, gt, np.array([[0.0, 0, 30, 30]]), 0.5)
    assert status.tolist() == [1, 0, 0, -1]  # a second box on a found face is false; the ignore box is neither
    assert found.tolist() == [0]
    rows = {"selfie": [{"status": status, "scores": scores, "found_score": np.array([0.99]), "nme": np.array([0.1]),
                        "eye_nme": np.array([0.05]), "sizes": np.array([0.25])}],
            "document": [], "empty": [{"status": np.array([0]), "scores": np.array([0.7], np.float32),
                                       "found_score": np.zeros(0), "nme": np.zeros(0), "eye_nme": np.zeros(0),
                                       "sizes": np.zeros(0)}]}
    threshold = task.choose_threshold(rows, 0.5, 0.0)  # no false detection allowed: just above the highest one
    assert threshold == np.nextafter(np.float32(0.95), np.float32(1))
    assert task.choose_threshold(rows, 0.5, 0.5) == np.nextafter(np.float32(0.9), np.float32(1))  # one allowed
    assert task.choose_threshold(rows, 0.5, 1.5) == np.float32(0.5)  # all three allowed: the floor
    kept = task.at_threshold(rows, threshold)
    assert task.summary(kept["selfie"])["false_detections"] == 0 and task.summary(kept["selfie"])["recall"] == 1.0
    assert task.summary(kept["empty"])["false_detections_per_image"] == 0.0
    assert task.spec_metrics(kept)["precision"] == 1.0
