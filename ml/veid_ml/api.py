"""The public VEID API: a selfie and an ID document photo in, a score, a decision and its reasons out.

    from veid_ml.api import Verifier
    verifier = Verifier.load()                 # checks every approved model's bytes against the lock first
    result = verifier.verify("selfie.jpg", "passport.jpg")
    result["decision"], result["score"], [r["code"] for r in result["reasons"]]

Images: a file path, encoded bytes or an H x W x 3 uint8 RGB array, decoded by veid_ml.images.load_rgb (one
documented conversion rule: EXIF orientation, grey/alpha/16-bit, limits). Unusable input raises an
images.InputError subclass naming the problem; a photo that can be decoded but not judged (no face, two faces, no
document, an unreadable MRZ, an image under 32 px in verify) gives the decision "retake" with its reason.

The pipeline (each stage timed in `Verifier.timings` after a call):
  decode -> detect (face_detection on the whole photo) -> align (veid_ml.alignment: integer similarity warp fitted to
  the detector's landmarks) -> liveness (liveness_detection on the selfie's 128 px eye-aligned crop) -> embed
  (facial_verification's `embed` on dlib's 150 px five-point chips of the selfie and of the document's largest
  face, in one batch) -> locate (mrz_locator's band map on the document photo -> veid_ml.mrz_locator's upright band
  -> document_reader's text rows, read by ocr_extraction, the 2 or 3 that read as an MRZ kept; printed field lines
  where the card outline is found too) -> recognise (ocr_extraction: the field lines; the MRZ lines were read while
  locating) -> parse (mrz.correct_reading, MRZ check digits, expiry; veid_ml.scoring).
All five models are integer consensus graphs (veid_ml.integer: uint8 images in; boxes and landmarks in 1/16 px,
basis points, Q14 embeddings and OCR labels out; the same bytes on every CPU). The score and decision are integer
arithmetic on those (veid_ml.scoring).
The Go package pkg/inference computes the same result from the same PNG inputs (tests/test_go_inference.py).
"""

from __future__ import annotations

import datetime
import time
from pathlib import Path

import numpy as np

from veid_ml import alignment, determinism, document_reader, hashing, images, registry, scoring
from veid_ml.inference import UnapprovedModelError, check_approved

__all__ = ["Verifier", "UnapprovedModelError", "InputError"]
InputError = images.InputError

FACE_CHIP = alignment.FACE_CHIP  # facial_verification's input: dlib's 150 px face chip
LIVENESS_CHIP = alignment.LIVENESS_CHIP  # liveness_detection's input: 128 px
MRZ_FIELDS = ("surname", "given_names", "document_number", "issuing_state", "nationality", "birth_date", "sex",
              "expiry_date", "optional_data")


class Verifier:
    """The five approved models and the pipeline between them. Build with Verifier.load()."""

    def __init__(self, lock_path: Path, digests: dict, signatures: dict):
        self.lock_path, self.digests = lock_path, digests
        self._detect = signatures["face_detection"]["serving_default"]
        self._embed = signatures["facial_verification"]["embed"]
        self._liveness = signatures["liveness_detection"]["serving_default"]
        self._ocr = signatures["ocr_extraction"]["serving_default"]
        self._locator = signatures["mrz_locator"]["serving_default"]
        import tensorflow as tf

        self._tf = tf
        # The thresholds are constants inside the approved graphs: read them from the graphs, not from metrics.json.
        pair = signatures["facial_verification"]["serving_default"]
        face = tf.zeros([1, FACE_CHIP.size, FACE_CHIP.size, 3], tf.uint8)
        self.similarity_threshold = int(pair(image_a=face, image_b=face)["threshold_bp"].numpy()[0])
        live = self._liveness(image=tf.zeros([1, LIVENESS_CHIP.size, LIVENESS_CHIP.size, 3], tf.uint8))
        self.liveness_threshold = int(live["threshold_bp"].numpy())
        self.timings: dict[str, float] = {}

    @classmethod
    def load(cls, lock_path: str | Path | None = None) -> "Verifier":
        """Check every approved model's files against the lock (UnapprovedModelError names each difference), then
        load them. lock_path: default the installed package's ml/models.lock.json."""
        lock_path = Path(lock_path) if lock_path is not None else registry.LOCK_PATH
        digests, problems = {}, []
        for name in registry.MODELS:  # every model checked before any is refused: one error names them all
            try:
                digests[name] = check_approved(name, lock_path)["digest"]
            except UnapprovedModelError as e:
                problems.append(str(e))
        if problems:
            raise UnapprovedModelError("\n".join(problems))
        determinism.configure(reexec=False)
        from veid_ml import export

        lock = hashing.read_lock(lock_path)
        signatures = {}
        for name in registry.MODELS:
            entry = lock["models"][name]
            signatures[name] = export.load_signatures(lock_path.parent / entry["weights_dir"] / entry["artifact"])
        return cls(lock_path, digests, signatures)

    # -- stages ------------------------------------------------------------------------------------------------

    def _timed(self, stage: str, started: float) -> None:
        self.timings[stage] = self.timings.get(stage, 0.0) + (time.perf_counter() - started) * 1000

    def _decode(self, image) -> np.ndarray:
        started = time.perf_counter()
        try:
            return images.load_rgb(image)
        finally:
            self._timed("decode", started)

    def faces(self, rgb: np.ndarray) -> list[dict]:
        """Faces found in an RGB uint8 array, largest first (detected_faces)."""
        started = time.perf_counter()
        out = self._detect(image=self._tf.constant(rgb))
        self._timed("detect", started)
        return detected_faces(out)

    def _crop(self, rgb: np.ndarray, face: dict, chip: alignment.Chip) -> np.ndarray:
        started = time.perf_counter()
        crop = alignment.crop(rgb, face["points"], chip)
        self._timed("align", started)
        return crop

    def _similarity(self, crop_a: np.ndarray, crop_b: np.ndarray) -> int:
        """The two chips' similarity in bp; both embedded in one batch of two (half the time of two calls, and part of
        the contract: Go does the same, so every validator runs the same batch shape)."""
        started = time.perf_counter()
        out = self._embed(image=self._tf.constant(np.stack([crop_a, crop_b])))["embedding"].numpy()
        self._timed("embed", started)
        return scoring.similarity_bp(*out)

    def _liveness_bp(self, crop: np.ndarray) -> int:
        started = time.perf_counter()
        out = self._liveness(image=self._tf.constant(crop[None]))["probability_bona_fide_bp"].numpy()[0]
        self._timed("liveness", started)
        return int(out)

    def band_logits(self, locator_input: np.ndarray) -> np.ndarray:
        """The MRZ locator's int32 (GRID, GRID, 2) map of one veid_ml.mrz_locator.locator_input image."""
        return self._locator(image=self._tf.constant(locator_input[None, :, :, None]))["band_logits_q10"].numpy()[0]

    def locate_document(self, rgb: np.ndarray) -> document_reader.LocatedDocument:
        started = time.perf_counter()
        try:
            # reading the band's rows to choose the MRZ among them is part of locating (timed here, not in recognise)
            return document_reader.locate(rgb, self.band_logits, self._read_rows)
        finally:
            self._timed("locate", started)

    def _read_rows(self, rows: np.ndarray) -> tuple:
        return document_reader.recognise(self._ocr, rows)

    def recognise_lines(self, lines: np.ndarray) -> tuple:
        """document_reader.recognise's (texts, confidences, logits), timed."""
        started = time.perf_counter()
        reading = document_reader.recognise(self._ocr, lines)
        self._timed("recognise", started)
        return reading

    # -- public calls ------------------------------------------------------------------------------------------

    def face_similarity(self, image_a, image_b) -> dict:
        """{"similarity": bp 0..10000 (1 - d^2 / 2 of the largest faces' embeddings, scoring), "match": at the
        approved threshold, "faces_found": (bool, bool)}; similarity 0 and no match when a face is missing or too
        small."""
        self.timings = {}
        chips = []
        for image in (image_a, image_b):
            rgb = self._decode(image)
            faces = [f for f in self.faces(rgb) if usable(f)]
            chips.append(self._crop(rgb, faces[0], FACE_CHIP) if faces else None)
        found = tuple(c is not None for c in chips)
        similarity = self._similarity(*chips) if all(found) else 0
        return {"similarity": similarity, "match": all(found) and similarity >= self.similarity_threshold,
                "threshold": self.similarity_threshold, "faces_found": found}

    def liveness(self, image) -> dict:
        """{"score": bp 0..10000, higher = bona fide, "bona_fide", "face_box"} of the largest face; without a usable
        face: score 0, not bona fide, face_box None."""
        self.timings = {}
        rgb = self._decode(image)
        faces = [f for f in self.faces(rgb) if usable(f)]
        if not faces:
            return {"score": 0, "bona_fide": False, "threshold": self.liveness_threshold, "face_box": None}
        score = self._liveness_bp(self._crop(rgb, faces[0], LIVENESS_CHIP))
        return {"score": score, "bona_fide": score >= self.liveness_threshold, "threshold": self.liveness_threshold,
                "face_box": faces[0]["box"]}

    def read_document(self, image) -> dict:
        """{"mrz_lines", "document_type", "fields" (from the MRZ: MRZ_FIELDS), "check_digits_valid", "checks",
        "portrait_box", "layout", "printed_fields", "errors"}; what could not be found is listed in errors."""
        self.timings = {}
        rgb = self._decode(image)
        return self._read(rgb, self.faces(rgb))

    def _read(self, rgb: np.ndarray, faces: list[dict]) -> dict:
        result = {"mrz_lines": [], "document_type": None, "fields": {}, "check_digits_valid": False, "checks": {},
                  "portrait_box": faces[0]["box"] if faces else None, "layout": None, "printed_fields": {},
                  "errors": [] if faces else ["no_portrait_on_document"]}
        try:
            located = self.locate_document(rgb)
        except ValueError as e:
            result["errors"].append(f"no_document_found: {e}")
            return result
        texts, confidences, logits = document_reader.read_located(located, self.recognise_lines)
        started = time.perf_counter()
        reading = document_reader.parse(located, texts, confidences, logits)
        self._timed("parse", started)
        result.update(layout=reading["layout"], mrz_lines=reading["mrz_lines"], printed_fields=reading["fields"])
        if reading["mrz"] is None:
            result["errors"].append("mrz_unreadable: the MRZ lines do not have an MRZ's lengths and characters")
            return result
        mrz = reading["mrz"]
        result.update(document_type=mrz["document_type"], fields={k: mrz[k] for k in MRZ_FIELDS},
                      check_digits_valid=mrz["valid"], checks=mrz["checks"])
        return result

    def verify(self, selfie, document, today: datetime.date | None = None) -> dict:
        """The VEID result: {"score" 0..100, "decision" accept|reject|retake, "reasons" [{"code", "text"}],
        "components" (every model's integer output), "models" (name -> approved digest), "version"}.
        today: the date documents must not have expired by (default: today in UTC)."""
        today = today or datetime.datetime.now(datetime.timezone.utc).date()
        self.timings = {}
        reasons, components = [], {}
        rgb = {}
        for name, image in (("selfie", selfie), ("document", document)):
            try:
                rgb[name] = self._decode(image)
            except images.ImageTooSmallError as e:
                reasons.append(scoring.reason("image_too_small", f"{name}: {e}"))
        selfie_face = document_face = None
        if "selfie" in rgb:
            faces = self.faces(rgb["selfie"])
            components["selfie_faces"] = len(faces)
            if not faces:
                reasons.append(scoring.reason("no_face_in_selfie"))
            elif len(faces) > 1:
                reasons.append(scoring.reason("multiple_faces_in_selfie", f"{len(faces)} faces"))
            elif not usable(faces[0]):
                reasons.append(scoring.reason("face_too_small", "selfie"))
            else:
                selfie_face = faces[0]
            components["selfie_face_box"] = faces[0]["box"] if faces else None
        document_ok = False
        if "document" in rgb:
            faces = self.faces(rgb["document"])
            components["document_faces"] = len(faces)
            reading = self._read(rgb["document"], faces)
            components["portrait_box"] = reading["portrait_box"]
            if faces and not usable(faces[0]):
                reasons.append(scoring.reason("face_too_small", "document portrait"))
            elif faces:
                document_face = faces[0]
            for error in reading["errors"]:
                code, _, detail = error.partition(": ")
                reasons.append(scoring.reason(code, detail))
            components["mrz_lines"] = reading["mrz_lines"]
            components["mrz_checks"] = reading["checks"]
            if reading["fields"]:
                found = scoring.document_reasons(reading["checks"], reading["fields"]["expiry_date"], today)
                reasons += found
                document_ok = not found
        similarity = liveness = None
        if selfie_face is not None:
            liveness = self._liveness_bp(self._crop(rgb["selfie"], selfie_face, LIVENESS_CHIP))
            if document_face is not None:
                similarity = self._similarity(self._crop(rgb["selfie"], selfie_face, FACE_CHIP),
                                              self._crop(rgb["document"], document_face, FACE_CHIP))
        components.update(similarity=similarity, similarity_threshold=self.similarity_threshold, liveness=liveness,
                          liveness_threshold=self.liveness_threshold)
        result = scoring.combine(similarity, self.similarity_threshold, liveness, self.liveness_threshold,
                                 document_ok, reasons)
        return {**result, "components": components, "models": dict(self.digests), "version": scoring.VERSION}


def detected_faces(out: dict) -> list[dict]:
    """The face_detection consensus graph's outputs as faces, largest first: {"box": [x0, y0, x1, y1] int px,
    "points": int64 (5, 2) landmarks in 1/16 px (alignment.ordered_q4), "score": bp}. Box corners (1/16 px) are
    rounded to whole pixels half to even; equal areas keep the detector's order."""
    boxes, marks, scores = (out[k].numpy() for k in ("boxes_q4", "landmarks_q4", "scores_bp"))
    found = [{"box": [int(v) for v in np.rint(boxes[i].astype(np.float64) / 16)],
              "points": alignment.ordered_q4(marks[i]), "score": int(scores[i])} for i in range(len(scores))]
    return sorted(found, key=lambda f: -(f["box"][2] - f["box"][0]) * (f["box"][3] - f["box"][1]))


def crop_largest_faces(rgb_images, chip: alignment.Chip, lock_path: Path = registry.LOCK_PATH
                       ) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 crops (N, size, size, 3), face found (N,)): each image's largest usable face, found by the approved
    face_detection model and cropped by veid_ml.alignment exactly as Verifier does; mid grey where there is none.
    For evaluations and training on real photos (eval-real, facial --data-dir): the crops the pipeline would score."""
    import tensorflow as tf

    from veid_ml import inference

    detect = inference.load_approved("face_detection", lock_path=lock_path)
    crops, found = [], []
    for rgb in rgb_images:
        faces = [f for f in detected_faces(detect(image=tf.constant(rgb))) if usable(f)]
        found.append(bool(faces))
        crops.append(alignment.crop(rgb, faces[0]["points"], chip) if faces
                     else np.full((chip.size, chip.size, 3), 128, np.uint8))
    return np.stack(crops), np.array(found, bool)


def usable(face: dict) -> bool:
    """Eyes at least alignment.MIN_EYE_DISTANCE_Q4 apart: enough pixels for the face models."""
    return alignment.eye_distance_sq_q4(face["points"]) >= alignment.MIN_EYE_DISTANCE_Q4 ** 2
