"""Synthetic camera frames for liveness with the context the crop contract sees: a face and what surrounds it.

The crop contract (veid_ml.alignment.liveness_box) takes the detector's face box scaled by 2.7 about its centre, so
the liveness model sees the head, the shoulders and the room, and for an attack the medium's edges, the hand-held
paper or screen and the person behind it. The face-filling samples of veid_ml.data.attacks cannot show that, so this
module composes frames:
- bona fide: a split identity in its room (faces.render_face), the face box a third of the frame;
- print / replay: the same kind of frame of another person (the attacker) with the victim's photo as printed paper
  or a screen (attacks.attack_image, face filling the medium) held over the attacker's face, the medium 1.4-2.4 face
  boxes tall, so its edges show inside the crop more often than not;
- cutout: attacks' cut-out face over the wearer, rendered in the frame's own framing.
Every frame then goes through the shared camera step (faces.capture_view). Pure functions of (index, split, seed).
"""

import cv2
import numpy as np

from face_detection import scenes
from veid_ml.data import attacks, faces
from veid_ml.data.parallel import generate
from veid_ml.data.rng import sample_rng

FRAME = 256  # px: a 2.7 x face box of ~85 px is ~230 px, resampled to the model's 80
FACE_FRACTION = (0.25, 0.4)  # face box height / frame side


def framed_view(params: dict, rng: np.random.Generator, size: int) -> dict:
    """A random view whose face box is FACE_FRACTION of the frame, placed so a 2.7 x box mostly stays inside."""
    view = faces.random_view(rng)
    view["scale"], view["shift"] = 1.0, [0.0, 0.0]
    box = scenes.face_box(faces.landmarks_in_render(params, view, size))
    view["scale"] = float(rng.uniform(*FACE_FRACTION)) * size / (box[3] - box[1])
    box = scenes.face_box(faces.landmarks_in_render(params, view, size))
    target = size / 2 + rng.uniform(-0.12, 0.12, 2) * size
    centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
    view["shift"] = [float((target[0] - centre[0]) / size), float((target[1] - centre[1]) / size)]
    return view


def _held_medium(frame: np.ndarray, medium: np.ndarray, box: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The medium (square, float RGB) pasted over the face box, 1.4-2.4 box heights tall, slightly off-centre."""
    side = int(round((box[3] - box[1]) * rng.uniform(1.4, 2.4)))
    medium = cv2.resize(medium, (side, side), interpolation=cv2.INTER_AREA)
    cx = (box[0] + box[2]) / 2 + rng.normal(0, 0.1) * side
    cy = (box[1] + box[3]) / 2 + rng.normal(0, 0.1) * side
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    h, w = frame.shape[:2]
    fx0, fy0, fx1, fy1 = max(0, x0), max(0, y0), min(w, x0 + side), min(h, y0 + side)
    out = frame.copy()
    out[fy0:fy1, fx0:fx1] = medium[fy0 - y0:fy1 - y0, fx0 - x0:fx1 - x0]
    return out


def liveness_frame(index: int, split: str, seed: int = 42, size: int = FRAME) -> tuple[np.ndarray, int, int]:
    """(frame uint8 (size, size, 3), is_bona_fide, species index into attacks.SPECIES or -1 for bona fide)."""
    rng = sample_rng("liveness_frame", split, index, seed)
    bona_fide = rng.random() < 0.5
    species = -1 if bona_fide else int(rng.integers(len(attacks.SPECIES)))
    person = faces.identity_params(split, int(rng.integers(faces.SPLIT_IDENTITIES[split])), seed)
    view = framed_view(person, rng, size)
    if bona_fide:
        img, _ = faces.render_layers(person, view, size)
    elif attacks.SPECIES[species] == "cutout":
        img = attacks.attack_image(person, view, species, float(rng.uniform(*attacks.STRENGTH_RANGE)), rng, split,
                                   seed, size)
    else:  # `person` is the attacker holding a photo of the victim over their face
        victim = faces.identity_params(split, int(rng.integers(faces.SPLIT_IDENTITIES[split])), seed)
        medium = attacks.attack_image(victim, faces.random_view(rng), species,
                                      float(rng.uniform(*attacks.STRENGTH_RANGE)), rng, split, seed, size)
        attacker, _ = faces.render_layers(person, view, size)
        box = scenes.face_box(faces.landmarks_in_render(person, view, size))
        img = _held_medium(attacker, medium.astype(np.float32), box, rng)
    return faces.capture_view(np.rint(np.clip(img, 0, 1) * 255).astype(np.uint8), view, rng), int(bona_fide), species


def liveness_frames(split: str, n: int, seed: int = 42, size: int = FRAME, workers: int | None = None):
    """(frames uint8 (n, size, size, 3), is_bona_fide int32 (n,), species int32 (n,))."""
    samples = generate(liveness_frame, n, workers, desc=f"liveness frames/{split}", split=split, seed=seed, size=size)
    frames, live, species = zip(*samples)
    return np.stack(frames), np.array(live, np.int32), np.array(species, np.int32)
