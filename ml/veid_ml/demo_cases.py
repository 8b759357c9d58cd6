"""Synthetic VEID submissions with a known right answer: a selfie and a document photo per case, from the data engine.

Every case is built from the held-out "test" split (people, fonts and attack draws no model trained on):
- genuine: a selfie of the document holder;                              expected accept
- impostor: a selfie of someone else (not a look-alike);                   reject: face_mismatch
- look-alike: a selfie of the holder's look-alike sibling identity;        reject: face_mismatch
- print / replay attack: the holder's face recaptured from paper / screen; reject: presentation_attack
- forged MRZ: the expiry date in the MRZ changed, its check digit not;     reject: mrz_checksum_failed:expiry
- expired: a genuine pair whose document expired before `today`;          reject: document_expired
- no face: a selfie of an empty room;                                      retake: no_face_in_selfie
Cases are pure functions of (kind, number, seed), so the demo, the golden files for the Go package and the tests see
the same pixels on every run.
"""

import datetime

import cv2
import numpy as np

from veid_ml import mrz
from veid_ml.data import attacks, documents, faces
from veid_ml.data.identity_fields import mrz_fields, person_fields
from veid_ml.data.rng import sample_rng

SPLIT = "test"
KINDS = ("genuine", "impostor", "lookalike", "print_attack", "replay_attack", "forged_mrz", "expired", "no_face")
EXPECTED = {"genuine": "accept", "impostor": "reject", "lookalike": "reject", "print_attack": "reject",
            "replay_attack": "reject", "forged_mrz": "reject", "expired": "reject", "no_face": "retake"}
EXPECTED_REASON = {"impostor": "face_mismatch", "lookalike": "face_mismatch", "print_attack": "presentation_attack",
                   "replay_attack": "presentation_attack", "forged_mrz": "mrz_checksum_failed:expiry",
                   "expired": "document_expired", "no_face": "no_face_in_selfie"}
TODAY = datetime.date(2026, 11, 29)  # the demo's and golden files' fixed date: their decisions must not age
DOCUMENT_SIZE = (1500, 1000)  # document photos are scaled up (aspect kept, edges replicated) to the bench's size


def _scenes():
    from face_detection import scenes  # the selfie renderer lives with the detector whose ground truth it draws

    return scenes


def _identities() -> int:
    return faces.SPLIT_IDENTITIES[SPLIT]


def _document_index(identity: int, today: datetime.date, expired: bool, seed: int) -> int:
    """The first document index showing `identity` (index % identities == identity) whose expiry is (not) past."""
    for k in range(50):
        index = identity + k * _identities()
        expiry = datetime.date.fromisoformat(person_fields(SPLIT, index, seed)["expiry_date"])
        if (expiry < today) == expired:
            return index
    raise ValueError(f"no {'expired' if expired else 'valid'} document for identity {identity}")


def _lookalike(identity: int, seed: int) -> int | None:
    """Another identity of the same look-alike family, or None."""
    root = faces.family_root(SPLIT, identity, seed)
    for other in range(_identities()):
        if other != identity and faces.family_root(SPLIT, other, seed) == root:
            return other
    return None


def _forge_expiry(lines: list[str], layout: str) -> list[str]:
    """The MRZ with the expiry year moved 10 years on and every check digit left as issued."""
    line, start = (1, 8) if layout == "TD1" else (1, 21)
    text = list(lines[line])
    year = int("".join(text[start:start + 2]))
    text[start:start + 2] = f"{(year + 10) % 100:02d}"
    return [*lines[:line], "".join(text), *lines[line + 1:]]


def _attack_selfie(identity: int, species: str, number: int, seed: int) -> np.ndarray:
    """The holder's face as a print or screen replay held up to the selfie camera, as the liveness data renders it
    (attacks.liveness_sample: 2x the model's 128 px, recaptured), filling the middle of a 640 x 480 frame."""
    rng = sample_rng(f"demo_{species}", SPLIT, number, seed)
    params = faces.identity_params(SPLIT, identity, seed)
    view = faces.random_view(rng)
    img = attacks.attack_image(params, view, attacks.SPECIES.index(species), float(rng.uniform(0.6, 1.0)), rng,
                               SPLIT, seed, 256)
    img = faces.capture_view(np.rint(img * 255).astype(np.uint8), view, rng)
    return cv2.copyMakeBorder(img, 112, 112, 192, 192, cv2.BORDER_REPLICATE)


def _document_photo(index: int, layout: str, mrz_lines: list[str] | None, seed: int) -> np.ndarray:
    image, _, _ = documents.document_sample(index, SPLIT, seed, layout, mrz_lines=mrz_lines)
    scale = min(DOCUMENT_SIZE[0] / image.shape[1], DOCUMENT_SIZE[1] / image.shape[0])  # keep the card's aspect
    image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    pad_x, pad_y = DOCUMENT_SIZE[0] - image.shape[1], DOCUMENT_SIZE[1] - image.shape[0]
    return cv2.copyMakeBorder(image, pad_y // 2, pad_y - pad_y // 2, pad_x // 2, pad_x - pad_x // 2,
                              cv2.BORDER_REPLICATE)


def case(kind: str, number: int, today: datetime.date, seed: int = 42) -> dict:
    """{"name", "kind", "expected", "expected_reason", "selfie", "document"} (RGB uint8 arrays)."""
    if kind not in KINDS:
        raise ValueError(f"unknown case kind {kind!r}; kinds: {', '.join(KINDS)}")
    scenes = _scenes()
    rng = sample_rng(f"demo_{kind}", SPLIT, number, seed)
    identity = int(rng.integers(_identities()))
    if kind == "lookalike":
        while _lookalike(identity, seed) is None:
            identity = int(rng.integers(_identities()))
    layout = ("TD1", "TD3")[number % 2]
    index = _document_index(identity, today, kind == "expired", seed)
    forged = None
    if kind == "forged_mrz":
        forged = _forge_expiry(mrz.BUILDERS[layout](mrz_fields(person_fields(SPLIT, index, seed), layout)), layout)
    document = _document_photo(index, layout, forged, seed)
    selfie_identity = {"impostor": (identity + 1 + int(rng.integers(_identities() - 1))) % _identities(),
                       "lookalike": _lookalike(identity, seed)}.get(kind, identity)
    if kind == "impostor":
        while faces.family_root(SPLIT, selfie_identity, seed) == faces.family_root(SPLIT, identity, seed):
            selfie_identity = (selfie_identity + 1) % _identities()
    if kind in ("print_attack", "replay_attack"):
        selfie = _attack_selfie(identity, kind.split("_")[0], number, seed)
    else:
        selfie, _, _ = scenes.selfie(SPLIT, 1000 + number, seed, size_range=(0.35, 0.6), face=kind != "no_face",
                                     identity=selfie_identity)
    return {"name": f"{kind}_{number}", "kind": kind, "expected": EXPECTED[kind],
            "expected_reason": EXPECTED_REASON.get(kind), "selfie": selfie, "document": document}


def cases(per_kind: int, today: datetime.date, seed: int = 42, kinds=KINDS) -> list[dict]:
    return [case(kind, n, today, seed) for n in range(per_kind) for kind in kinds]
