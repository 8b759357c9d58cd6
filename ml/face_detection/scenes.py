"""Synthetic selfies, face-free scenes and document portraits with face-detection ground truth.

The five landmarks come from the renderer's own drawing geometry (faces.landmarks_in_render, after
faces.render_layers): the eye centres where it draws the iris
(`at(+-eye_sep, eye_y, 0.03)`), the nose tip where it raises the tip bump (`at(0, eye_y + nose_len, 0.1)`, 0.01 up),
and the mouth corners at the ends of the lip line (`mouth_w`, widened by the smile, lifted by it and lowered by an open
mouth). Canonical face coordinates map to pixels exactly as render_layers' window() maps them (roll, scale, shift).
If the renderer's geometry changes, faces.canonical_landmarks must follow it (tests/test_face_detection.py compares
its eye points with faces.aligned_view's fixed eye positions).

Coordinates: x right, y down, in pixels of the image with its top-left corner at (0, 0), so pixel (i, j)'s centre is
(i + 0.5, j + 0.5); landmarks in the detector's order: image-left eye, image-right eye, nose tip, image-left mouth
corner, image-right mouth corner.

The face box follows the convention of WIDER FACE, whose boxes MTCNN learnt (brows to chin, cheek to cheek, narrower
for a turned head): from the inter-ocular distance e and the eye-midpoint-to-mouth distance d, width 1.85 e + 0.23 d,
height 2.37 e + 0.37 d, centred 0.24 d below the eye midpoint and 0.56 of the nose's sideways offset from it to the
other side. Those numbers are least-squares fits to the boxes of the mtcnn wheel itself on 288 faces of 300
training-split selfies (NOTES.md); a face's "size" is its box height.

Samples are pure functions of (kind, split, index, seed) through veid_ml.data.rng.sample_rng; the identities are the
face engine's split identities, so validation and test faces are different people.
"""

import cv2
import numpy as np

from veid_ml.data import documents, faces
from veid_ml.data.parallel import generate
from veid_ml.data.rng import sample_rng
from veid_ml.document_layout import PAGE, PHOTO

RENDER = 640  # selfies are cut from a square render of this size: 640 x 480 landscape or 480 x 640 portrait frames
FRAME_SHORT = 480
BOX_WIDTH = (1.85, 0.23)  # face box width in inter-ocular distances and eye-to-mouth distances (module docstring)
BOX_HEIGHT = (2.37, 0.37)
BOX_CENTRE = (-0.56, 0.24)  # x: times the nose's offset from the eye midpoint; y: eye-to-mouth distances below it
GHOST_SCALE = 0.45  # documents.render_page's ghost image: the photo at this scale
def face_box(landmarks: np.ndarray) -> np.ndarray:
    """The ground-truth box [x0, y0, x1, y1] of a face from its five landmarks (module docstring)."""
    eyes, mouth = landmarks[:2].mean(axis=0), landmarks[3:].mean(axis=0)
    e, d = np.linalg.norm(landmarks[1] - landmarks[0]), np.linalg.norm(mouth - eyes)
    w, h = BOX_WIDTH[0] * e + BOX_WIDTH[1] * d, BOX_HEIGHT[0] * e + BOX_HEIGHT[1] * d
    cx, cy = eyes[0] + BOX_CENTRE[0] * (landmarks[2, 0] - eyes[0]), eyes[1] + BOX_CENTRE[1] * d
    return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


def _selfie_view(params: dict, rng: np.random.Generator, size_range, portrait: bool, face_in_frame: bool):
    """A random view placed in the frame: the face box's height a log-uniform fraction of the frame's short side,
    anywhere inside the frame (face_in_frame) or wholly outside it (a face-free scene of the same kind)."""
    view = faces.random_view(rng)
    view["scale"] = 1.0
    view["shift"] = [0.0, 0.0]
    box = face_box(faces.landmarks_in_render(params, view, RENDER))
    fraction = float(np.exp(rng.uniform(np.log(size_range[0]), np.log(size_range[1]))))
    view["scale"] = fraction * FRAME_SHORT / (box[3] - box[1])
    box = face_box(faces.landmarks_in_render(params, view, RENDER))
    half = (box[2] - box[0]) / 2, (box[3] - box[1]) / 2
    frame = (FRAME_SHORT, RENDER) if portrait else (RENDER, FRAME_SHORT)  # width, height
    offset = ((RENDER - frame[0]) / 2, (RENDER - frame[1]) / 2)
    if face_in_frame:
        target = [rng.uniform(offset[i] + half[i] + 2, offset[i] + frame[i] - half[i] - 2) for i in (0, 1)]
    else:  # centre the face beyond a random edge: the frame shows the wall, clutter, maybe hair or shoulders
        axis, sign = int(rng.integers(2)), float(rng.choice([-1.0, 1.0]))
        target = [RENDER / 2 + rng.uniform(-0.3, 0.3) * frame[0], RENDER / 2 + rng.uniform(-0.3, 0.3) * frame[1]]
        target[axis] = RENDER / 2 + sign * (frame[axis] / 2 + half[axis] * rng.uniform(1.2, 2.4))
    centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
    view["shift"] = [(target[0] - centre[0]) / RENDER, (target[1] - centre[1]) / RENDER]
    return view, offset, frame


def selfie(split: str, index: int, seed: int = 42, size_range=(0.1, 0.7), face: bool = True,
           identity: int | None = None):
    """(image uint8 (H, W, 3), landmarks (F, 5, 2), boxes (F, 4)); F = 1, or 0 for a face-free scene (face=False).
    identity: show this split identity instead of the one the sample draws (every other draw unchanged).

    A face render of a split identity in its own room (wall, furniture, shoulders) cut to a 640 x 480 or 480 x 640
    frame, then the shared camera step (exposure, blur, noise, JPEG; a fifth of the views in grey)."""
    kind = "face_detection_selfie" if face else "face_detection_empty"
    rng = sample_rng(kind, split, index, seed)
    drawn = int(rng.integers(faces.SPLIT_IDENTITIES[split]))
    params = faces.identity_params(split, drawn if identity is None else identity, seed)
    view, offset, frame = _selfie_view(params, rng, size_range, portrait=bool(rng.random() < 0.5),
                                       face_in_frame=face)
    x0, y0 = int(offset[0]), int(offset[1])
    image = faces.render_face(params, view, RENDER)[y0:y0 + frame[1], x0:x0 + frame[0]]
    image = faces.capture_view(np.ascontiguousarray(image), view, rng)
    marks = faces.landmarks_in_render(params, view, RENDER) - (x0, y0)
    if not face:
        return image, np.zeros((0, 5, 2)), np.zeros((0, 4))
    return image, marks[None], face_box(marks)[None]


def _apply_homography(h: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Edge-convention points through a homography that OpenCV applies to pixel centres."""
    pts = cv2.perspectiveTransform((points - 0.5).astype(np.float64)[None], h)[0]
    return pts + 0.5


def document(split: str, index: int, seed: int = 42, layout: str = "TD1"):
    """(image, landmarks (1, 5, 2), boxes (1, 4), ignore boxes (G, 4)) of documents.document_sample(index, split, seed,
    layout): the holder photo's face, and on a TD3 page the ghost image's face, which detections may find or not."""
    image, _, info = documents.document_sample(index, split, seed, layout)
    w, _, mm = PAGE[layout]
    photo_x, photo_y, photo_w, photo_h = (v * mm for v in PHOTO[layout])
    identity = index % faces.SPLIT_IDENTITIES[split]
    rng = sample_rng("face_view", split, identity * 1000, seed)  # faces.face_image's view of that photo
    params = faces.identity_params(split, identity, seed)
    view = faces.aligned_view(params, faces.random_view(rng))
    size = int(photo_h)
    crop_x = (size - int(photo_w)) // 2
    marks = faces.landmarks_in_render(params, view, size) - (crop_x, 0)  # in the pasted photo
    fw, fh = min(int(photo_w), size - crop_x), size
    page_corners = np.float64([[0, 0], [fw, 0], [fw, fh], [0, fh]]) + (int(photo_x), int(photo_y))
    quad = np.float64(info["quads"]["photo"])
    # page -> image homography (on pixel-centre coordinates, as OpenCV warps) from the photo's corners: its quad is
    # their exact image, rounded to 0.1 px
    hom = cv2.getPerspectiveTransform(page_corners.astype(np.float32), quad.astype(np.float32))
    page_marks = marks + (int(photo_x), int(photo_y))
    image_marks = _apply_homography(hom, page_marks)
    ignore = np.zeros((0, 4))
    if layout == "TD3":  # the ghost: the pasted photo resized to GHOST_SCALE, at (w - 24 mm, 14 mm) on the page
        gw, gh = int(photo_w * GHOST_SCALE), int(photo_h * GHOST_SCALE)
        ghost_marks = marks * (gw / fw, gh / fh) + (int(w - 24 * mm), int(14 * mm))
        ignore = face_box(_apply_homography(hom, ghost_marks))[None]
    return image, image_marks[None], face_box(image_marks)[None], ignore


def _selfie_sample(i, split, seed, face):
    image, marks, boxes = selfie(split, i, seed, face=face)
    return image, marks, boxes, np.zeros((0, 4))


def _document_sample(i, split, seed):
    return document(split, i // 2, seed, ("TD1", "TD3")[i % 2])


def dataset(split: str, n_selfies: int, n_documents: int, n_empty: int, seed: int = 42,
            workers: int | None = None) -> dict:
    """{"selfie", "document", "empty"} -> list of (image, landmarks, boxes, ignore boxes); documents alternate TD1 and
    TD3 pages."""
    kw = dict(split=split, seed=seed, workers=workers)
    return {"selfie": generate(_selfie_sample, n_selfies, desc=f"selfies/{split}", face=True, **kw),
            "document": generate(_document_sample, n_documents, desc=f"documents/{split}", **kw),
            "empty": generate(_selfie_sample, n_empty, desc=f"empty scenes/{split}", face=False, **kw)}
