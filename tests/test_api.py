"""The public API (veid_ml.api.Verifier) and `veid-ml score` on the approved models: demo cases get their decisions
and reasons, hostile input gives an InputError or a retake (never a traceback or a hang), a 1000-case fuzz of
mutated uploads finds no crash, and equal pixels give equal results whatever their encoding.

All Verifier work runs in ONE fresh, pinned process (loading five models costs seconds): the fixture collects what
each test then checks."""

import datetime
import io
import json
import resource
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, approved_model_dir, run_in_fresh_process

TODAY = datetime.date(2026, 11, 29)
# Demo cases whose decision is far from every threshold (similarity / liveness margins of 900+ bp on the approving
# CPU), so another CPU's float rounding cannot flip them.
DEMO = {"genuine_0": ("accept", None), "impostor_0": ("reject", "face_mismatch"),
        "forged_mrz_0": ("reject", "mrz_checksum_failed:expiry"), "expired_0": ("reject", "document_expired"),
        "no_face_0": ("retake", "no_face_in_selfie"), "print_attack_1": ("reject", "presentation_attack"),
        "replay_attack_2": ("reject", "presentation_attack")}
FUZZ_CASES = 1000


def _png(array: np.ndarray, **kwargs) -> bytes:
    out = io.BytesIO()
    Image.fromarray(array).save(out, format="PNG", **kwargs)
    return out.getvalue()


def _jpeg(img: Image.Image, **kwargs) -> bytes:
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=90, **kwargs)
    return out.getvalue()


def _bomb_png(side: int) -> bytes:
    """A valid side x side grey PNG of zeros: a few hundred KB that would decode to side^2 bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    z = zlib.compressobj(9)
    row = bytes(side + 1)
    idat = b"".join(z.compress(row) for _ in range(side)) + z.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


def _mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """One random corruption of an upload: flipped bytes, a cut, a repeated or deleted run."""
    buf = bytearray(data)
    kind = int(rng.integers(4))
    if kind == 0:
        for _ in range(int(rng.integers(1, 20))):
            buf[int(rng.integers(len(buf)))] = int(rng.integers(256))
    elif kind == 1:
        buf = buf[:int(rng.integers(1, len(buf)))]
    else:
        a = int(rng.integers(len(buf)))
        b = min(len(buf), a + int(rng.integers(1, 400)))
        buf = buf[:a] + (buf[a:b] * 2 if kind == 2 else b"") + buf[b:]
    return bytes(buf)


def _api_session(case_names: list[str], hostile: dict, fuzz_inputs: list[bytes], fuzz_document: bytes) -> dict:
    """Everything the tests check, computed in one pinned process."""
    import time

    from veid_ml import demo_cases, images
    from veid_ml.api import Verifier

    verifier = Verifier.load()
    out = {"demo": {}, "hostile": {}, "fuzz": {"results": 0, "input_errors": 0, "crashes": []}}
    by_name = {c["name"]: c for c in demo_cases.cases(3, TODAY)}
    for name in case_names:
        case = by_name[name]
        result = verifier.verify(case["selfie"], case["document"], today=TODAY)
        out["demo"][name] = result
    genuine = by_name["genuine_0"]
    # equal pixels, any encoding: array, PNG bytes, 16-bit PNG of the same values (v * 257 >> 8 == v)
    out["encodings"] = [verifier.verify(s, genuine["document"], today=TODAY) for s in (
        genuine["selfie"], _png(genuine["selfie"]), _png16(genuine["selfie"]))]
    out["repeat"] = verifier.verify(genuine["selfie"], genuine["document"], today=TODAY)

    def attempt(call):
        started = time.perf_counter()
        try:
            value = call()
            kind = "result"
        except images.InputError as e:
            value, kind = {"error": type(e).__name__, "reason": e.reason, "message": str(e)}, "input_error"
        except Exception as e:  # noqa: BLE001 - the test reports any other exception as a crash
            value, kind = {"error": type(e).__name__, "message": str(e)}, "crash"
        return {"kind": kind, "value": value, "seconds": time.perf_counter() - started}

    out["rss_before_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for name, (selfie, document, call) in hostile.items():
        document = genuine["document"] if document is None else document
        selfie = genuine["selfie"] if selfie is None else selfie
        if call == "verify":
            out["hostile"][name] = attempt(lambda: verifier.verify(selfie, document, today=TODAY))
        else:
            out["hostile"][name] = attempt(lambda: getattr(verifier, call)(selfie))
    for i, data in enumerate(fuzz_inputs):
        got = attempt(lambda: verifier.verify(data, fuzz_document, today=TODAY))
        if got["kind"] == "crash":
            out["fuzz"]["crashes"].append((i, got["value"]))
        else:
            out["fuzz"]["results" if got["kind"] == "result" else "input_errors"] += 1
    out["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["similarity"] = verifier.face_similarity(genuine["selfie"], genuine["document"])
    out["liveness"] = verifier.liveness(genuine["selfie"])
    out["read_document"] = verifier.read_document(genuine["document"])
    return out


def _png16(rgb: np.ndarray) -> bytes:
    import cv2

    ok, data = cv2.imencode(".png", (rgb[..., ::-1].astype(np.uint16) * 257))
    assert ok
    return data.tobytes()


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    for name in ("face_detection", "facial_verification", "liveness_detection", "ocr_extraction"):
        approved_model_dir(name)
    from veid_ml import demo_cases

    genuine = demo_cases.case("genuine", 0, TODAY)
    selfie = Image.fromarray(genuine["selfie"])
    two = np.hstack([genuine["selfie"], demo_cases.case("impostor", 0, TODAY)["selfie"]])
    gif = io.BytesIO()
    selfie.save(gif, format="GIF", save_all=True, append_images=[selfie.rotate(90)], duration=100, loop=0)
    exif = Image.Exif()
    exif[0x9286] = b"ASCII\0\0\0" + b"x" * 60000  # UserComment: a 60 KB EXIF block
    jpeg = _jpeg(selfie)
    png = _png(genuine["selfie"])
    hostile = {
        "empty_file": (b"", None, "verify"),
        "truncated_jpeg": (jpeg[: len(jpeg) // 2], None, "verify"),
        "truncated_png": (png[: len(png) // 2], None, "verify"),
        "text_as_jpeg": (tmp_path_factory.mktemp("hostile") / "note.jpg", None, "verify"),
        "one_pixel_verify": (_png(np.zeros((1, 1, 3), np.uint8)), None, "verify"),
        "one_pixel_liveness": (_png(np.zeros((1, 1, 3), np.uint8)), None, "liveness"),
        "bomb_30000": (_bomb_png(30000), None, "verify"),
        "cmyk_jpeg": (_jpeg(selfie.convert("CMYK")), None, "verify"),
        "png_16_bit": (_png16(genuine["selfie"]), None, "verify"),
        "animated_gif": (gif.getvalue(), None, "verify"),
        "huge_exif": (_jpeg(selfie, exif=exif.tobytes()), None, "verify"),
        "no_document_in_photo": (None, genuine["selfie"], "verify"),
        "two_faces_in_selfie": (two, None, "verify"),
        "missing_file": (tmp_path_factory.mktemp("hostile2") / "missing.png", None, "verify"),
        "not_an_image_object": ({"an": "dict"}, None, "verify"),
    }
    hostile["text_as_jpeg"][0].write_text("this is not a picture\n")
    rng = np.random.default_rng(2024)
    small = np.asarray(selfie.resize((240, 320)))
    seeds = [_png(small), _jpeg(Image.fromarray(small))]
    fuzz = [_mutate(seeds[i % 2], rng) for i in range(FUZZ_CASES)]
    document = _png(np.full((64, 96, 3), 200, np.uint8))
    return run_in_fresh_process(_api_session, list(DEMO), hostile, fuzz, document, timeout=900)


@pytest.mark.parametrize("name", list(DEMO))
def test_demo_case_gets_its_decision_and_reason(session, name):
    result = session["demo"][name]
    decision, reason = DEMO[name]
    codes = [r["code"] for r in result["reasons"]]
    assert result["decision"] == decision, (name, result["score"], codes, result["components"])
    assert reason is None and codes == [] or reason in codes
    assert (result["score"] >= 50) == (decision == "accept")
    assert isinstance(result["score"], int) and 0 <= result["score"] <= 100
    assert set(result["models"]) == {"face_detection", "facial_verification", "liveness_detection",
                                     "ocr_extraction", "mrz_locator"} and result["version"]


def test_the_result_is_plain_json_of_integers(session):
    result = session["demo"]["genuine_0"]
    assert json.loads(json.dumps(result)) == result
    for key in ("similarity", "similarity_threshold", "liveness", "liveness_threshold", "selfie_faces"):
        assert type(result["components"][key]) is int, key


def test_equal_pixels_give_equal_results_whatever_the_encoding(session):
    first = session["encodings"][0]
    for other in session["encodings"][1:] + [session["repeat"]]:
        assert other == first


def test_single_model_calls(session):
    sim, live, doc = session["similarity"], session["liveness"], session["read_document"]
    assert sim["faces_found"] == (True, True) and sim["match"] and 0 <= sim["similarity"] <= 10000
    assert sim["similarity"] == session["demo"]["genuine_0"]["components"]["similarity"]
    assert live["bona_fide"] and live["score"] == session["demo"]["genuine_0"]["components"]["liveness"]
    assert len(live["face_box"]) == 4
    assert doc["check_digits_valid"] and doc["errors"] == [] and doc["portrait_box"] is not None
    assert set(doc["fields"]) >= {"surname", "given_names", "document_number", "birth_date", "expiry_date", "sex"}
    assert doc["mrz_lines"] == session["demo"]["genuine_0"]["components"]["mrz_lines"]


@pytest.mark.parametrize("name, reason", [
    ("empty_file", "image_unreadable"), ("truncated_jpeg", "image_unreadable"), ("truncated_png", "image_unreadable"),
    ("text_as_jpeg", "image_unreadable"), ("one_pixel_liveness", "image_too_small"), ("bomb_30000", "image_too_large"),
    ("missing_file", "image_unreadable"), ("not_an_image_object", "image_unsupported")])
def test_hostile_input_raises_an_input_error_naming_the_problem(session, name, reason):
    got = session["hostile"][name]
    assert got["kind"] == "input_error", got
    assert got["value"]["reason"] == reason and got["value"]["message"]
    assert got["seconds"] < 10


@pytest.mark.parametrize("name, decision, reason", [
    ("one_pixel_verify", "retake", "image_too_small"), ("no_document_in_photo", "retake", "no_document_found"),
    ("two_faces_in_selfie", "retake", "multiple_faces_in_selfie")])
def test_unjudgeable_photos_give_a_retake_with_its_reason(session, name, decision, reason):
    got = session["hostile"][name]
    assert got["kind"] == "result", got
    assert got["value"]["decision"] == decision and reason in [r["code"] for r in got["value"]["reasons"]]


@pytest.mark.parametrize("name", ["cmyk_jpeg", "png_16_bit", "animated_gif", "huge_exif"])
def test_unusual_but_valid_uploads_are_scored(session, name):
    got = session["hostile"][name]
    assert got["kind"] == "result", got
    assert got["value"]["components"]["selfie_faces"] == 1


def test_fuzzed_uploads_never_crash(session):
    fuzz = session["fuzz"]
    assert fuzz["crashes"] == []
    assert fuzz["results"] + fuzz["input_errors"] == FUZZ_CASES
    assert fuzz["results"] > 50 and fuzz["input_errors"] > 50  # both paths were exercised


def test_hostile_input_does_not_grow_memory(session):
    """The peak resident size while the hostile and fuzzed inputs ran, over the peak of loading five models and
    scoring the demo cases: a 30000 x 30000 bomb decoded would add 900 MB (2.7 GB as RGB)."""
    assert session["max_rss_mb"] - session["rss_before_mb"] < 200, (session["rss_before_mb"], session["max_rss_mb"])


def _score(*args) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "veid-ml"), "score", *args], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)


def test_score_cli_exit_codes_and_json(tmp_path):
    from veid_ml import demo_cases

    genuine = demo_cases.case("genuine", 0, TODAY)
    Image.fromarray(genuine["selfie"]).save(tmp_path / "selfie.png")
    Image.fromarray(genuine["document"]).save(tmp_path / "document.png")
    ok = _score("--selfie", str(tmp_path / "selfie.png"), "--document", str(tmp_path / "document.png"),
                "--today", TODAY.isoformat(), "--json")
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert json.loads(ok.stdout)["decision"] == "accept"
    (tmp_path / "note.jpg").write_text("not a picture")
    bad = _score("--selfie", str(tmp_path / "note.jpg"), "--document", str(tmp_path / "document.png"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert len([line for line in bad.stderr.splitlines() if line.startswith("score:")]) == 1
    assert "note.jpg" in bad.stderr


def test_demo_cli_prints_a_table_and_writes_a_sheet(tmp_path):
    proc = subprocess.run([str(Path(sys.executable).parent / "veid-ml"), "demo", "--out", str(tmp_path / "demo.png")],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode in (0, 1), proc.stderr[-2000:]
    rows = [line for line in proc.stdout.splitlines() if line.endswith("]")]
    from veid_ml import demo_cases

    assert len(rows) == len(demo_cases.KINDS)
    assert f"/{len(demo_cases.KINDS)} cases got their expected decision" in proc.stdout
    assert (proc.returncode == 0) == ("MISS" not in proc.stdout)
    assert Image.open(tmp_path / "demo.png").size[1] > 100


def test_load_refuses_models_that_do_not_match_the_lock_and_names_every_one(tmp_path):
    """A copy of the lock elsewhere points at no model files: every model is refused, in one error, before any
    model (or TensorFlow) is loaded."""
    import shutil

    from veid_ml import registry
    from veid_ml.api import UnapprovedModelError, Verifier

    shutil.copy(registry.LOCK_PATH, tmp_path / "models.lock.json")
    with pytest.raises(UnapprovedModelError) as refused:
        Verifier.load(tmp_path / "models.lock.json")
    assert all(f"{name} does not match" in str(refused.value) for name in registry.MODELS)
    assert "missing:" in str(refused.value)
