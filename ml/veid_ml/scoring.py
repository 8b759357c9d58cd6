"""The VEID result from the models' outputs: integers only after each model's output is rounded once (ported line for
line to Go: pkg/inference/scoring.go).

Rounding the models' float outputs (the one place floats become integers):
- probabilities and thresholds -> basis points: rint(float64(p) * 10000), half to even (bp);
- an embedding -> int64 components rint(float64(e) * 2^14); the similarity of two faces is 1 - |a - b|^2 / 2 in bp:
  10000 - round_div(sq * 10000, 2 * 2^28) with sq the integer squared distance, clamped to 0..10000 (dlib's
  Euclidean distance as a score: 8200 at its threshold 0.6; for unit vectors it is the cosine).

The score (0..100) is the weakest component, each mapped so that its threshold lands on 50:
    points(x, t) = x * 50 // t                          if x < t
                 = 50 + (x - t) * 50 // (10000 - t)      otherwise          (x, t in bp; 0 <= t < 10000)
    score = min(points(similarity), points(liveness), 100 if the document passes else 0), or 0 without a face pair.
Decision: any reject reason -> "reject" (retaking cannot fix it); else any retake reason -> "retake"; else "accept",
which is exactly score >= 50.
"""

import datetime

import numpy as np

VERSION = "veid-1"
EMBEDDING_ONE = 1 << 14
BP = 10000

REASONS = {
    # reject: the submission itself fails
    "face_mismatch": "the selfie and the document portrait are not the same person",
    "presentation_attack": "the selfie is not a live capture (print, screen replay or mask)",
    "mrz_checksum_failed": "an MRZ check digit does not match",
    "mrz_invalid_date": "an MRZ date is not a calendar date",
    "document_expired": "the document's expiry date has passed",
    # retake: the photos cannot be judged
    "image_too_small": "an image is smaller than 32 px on its shorter side",
    "no_face_in_selfie": "no face was found in the selfie",
    "multiple_faces_in_selfie": "more than one face was found in the selfie",
    "face_too_small": "a face is too small to verify (eyes under 10 px apart)",
    "no_portrait_on_document": "no portrait was found on the document",
    "no_document_found": "no ID document was found in the document photo",
    "mrz_unreadable": "the machine-readable zone could not be read",
}
REJECT = ("face_mismatch", "presentation_attack", "mrz_checksum_failed", "mrz_invalid_date", "document_expired")
# MRZ check names (veid_ml.mrz.MRZResult.checks) -> the reason suffix: mrz_checksum_failed:expiry
CHECK_NAMES = {"document_number": "number", "birth_date": "birth", "expiry_date": "expiry",
               "optional_data": "optional", "composite": "composite"}


def reason(code: str, detail: str = "") -> dict:
    """{"code": "mrz_checksum_failed:expiry", "text": ...}: the code's family text, the detail appended."""
    family = code.split(":", 1)[0]
    return {"code": code, "text": REASONS[family] + (f" ({detail})" if detail else "")}


def basis_points(p) -> int:
    """A float32 probability or threshold in 1/10000, rounded half to even."""
    return int(np.rint(np.float64(np.float32(p)) * BP))


def quantise_embedding(embedding) -> np.ndarray:
    return np.rint(np.asarray(embedding, np.float32).astype(np.float64) * EMBEDDING_ONE).astype(np.int64)


def similarity_bp(a: np.ndarray, b: np.ndarray) -> int:
    """1 - |a - b|^2 / 2 of two quantised embeddings in bp, clamped to 0..10000 (module docstring)."""
    diff = np.asarray(a, np.int64) - np.asarray(b, np.int64)
    sq = int(np.dot(diff, diff))  # wraps at 64 bits like Go's int64 (only for absurd embeddings)
    one = EMBEDDING_ONE ** 2
    return min(BP, max(0, BP - (2 * sq * BP + 2 * one) // (4 * one)))


def points(x: int, threshold: int) -> int:
    return x * 50 // threshold if x < threshold else 50 + (x - threshold) * 50 // (BP - threshold)


def expiry_date(yymmdd: str) -> datetime.date:
    """An MRZ expiry date: 20YY (documents expire at most a few decades after issue; the MRZ has no century)."""
    return datetime.date(2000 + int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:6]))


def document_reasons(checks: dict, expiry: str, today: datetime.date) -> list[dict]:
    """Reject reasons from a parsed MRZ: failed check digits, an impossible or passed expiry date."""
    found = [reason(f"mrz_checksum_failed:{CHECK_NAMES.get(name, name)}") for name, ok in checks.items() if not ok]
    try:
        if expiry_date(expiry) < today:
            found.append(reason("document_expired", f"expired {expiry_date(expiry).isoformat()}"))
    except ValueError:
        found.append(reason("mrz_invalid_date:expiry", f"{expiry!r}"))
    return found


def combine(similarity: int | None, similarity_threshold: int, liveness: int | None, liveness_threshold: int,
            document_ok: bool, reasons: list[dict]) -> dict:
    """score and decision from the components (module docstring); adds face_mismatch / presentation_attack."""
    reasons = list(reasons)
    if similarity is not None and similarity < similarity_threshold:
        reasons.append(reason("face_mismatch"))
    if liveness is not None and liveness < liveness_threshold:
        reasons.append(reason("presentation_attack"))
    parts = [points(similarity, similarity_threshold) if similarity is not None else 0,
             points(liveness, liveness_threshold) if liveness is not None else 0,
             100 if document_ok else 0]
    families = {r["code"].split(":", 1)[0] for r in reasons}
    decision = "reject" if families & set(REJECT) else "retake" if reasons else "accept"
    return {"score": min(parts) if decision != "retake" else 0, "decision": decision, "reasons": reasons}
