"""Face detection and alignment: turn a real photo into the crop the facial verification model was trained on.

MTCNN (the `mtcnn` package, whose weights ship in its wheel) finds the face and its eye centres; a similarity
transform (rotation, uniform scale, shift) then puts the eyes where the synthetic renderer puts them on average
(CANONICAL_EYES, measured over rendered views of veid_ml.data.faces). When no face is found the image's central
square is used instead, and the result says so, so callers can reject or flag the photo.

MTCNN runs on TensorFlow, which is imported lazily: call veid_ml.determinism.configure() before the first alignment.
"""

import warnings

import cv2
import numpy as np

# Eye centres (x, y) as fractions of the crop side, image-left eye first: where MTCNN finds the eyes on synthetic
# renders, on average (62 validation views; the renderer's own geometry gives (0.390, 0.497) and (0.611, 0.497)).
# The face model's views are rendered with their eyes at that geometric average (faces.aligned_view), so this holds
# for each view up to MTCNN's own error (tests/test_data_faces.py).
CANONICAL_EYES = np.array([[0.396, 0.493], [0.610, 0.493]])
DETECTION_SIZE = 160  # real photos are loaded at this size before alignment (enough pixels for MTCNN's eye points)
MIN_CONFIDENCE = 0.9

_detector = None


def detector():
    """The MTCNN detector, built once (importing TensorFlow on first use)."""
    global _detector
    if _detector is None:
        from mtcnn import MTCNN

        _detector = MTCNN(device="CPU:0")
    return _detector


def _as_rgb_uint8(image) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image (H, W, 3), got dtype {image.dtype} shape {image.shape}")
    if min(image.shape[:2]) < 16:
        raise ValueError(f"image {image.shape[1]}x{image.shape[0]} is too small to hold a face")
    return np.ascontiguousarray(image[..., :3])


def find_eyes(image: np.ndarray) -> np.ndarray | None:
    """(2, 2) eye centres in pixels (image-left eye first) of the most confident face, or None if there is none."""
    found = [f for f in detector().detect_faces(_as_rgb_uint8(image)) if f["confidence"] >= MIN_CONFIDENCE]
    if not found:
        return None
    best = max(found, key=lambda f: (f["confidence"], f["box"][2] * f["box"][3]))
    eyes = np.array([best["keypoints"]["left_eye"], best["keypoints"]["right_eye"]], np.float64)
    return eyes[np.argsort(eyes[:, 0])]


def eyes_to_crop(eyes: np.ndarray, size: int) -> np.ndarray:
    """The 2x3 similarity transform taking the eye points to CANONICAL_EYES in a size x size crop."""
    src, dst = np.asarray(eyes, np.float64), CANONICAL_EYES * size
    src_v, dst_v = src[1] - src[0], dst[1] - dst[0]
    scale = np.linalg.norm(dst_v) / max(np.linalg.norm(src_v), 1e-6)
    angle = np.arctan2(dst_v[1], dst_v[0]) - np.arctan2(src_v[1], src_v[0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    shift = dst.mean(axis=0) - rot @ src.mean(axis=0)
    return np.hstack([rot, shift[:, None]])


def centre_crop(image: np.ndarray, size: int) -> np.ndarray:
    h, w = image.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return cv2.resize(image[top:top + side, left:left + side], (size, size), interpolation=cv2.INTER_AREA)


def align(image, size: int = 64) -> tuple[np.ndarray, bool]:
    """(aligned RGB uint8 crop (size, size, 3), face_found). Without a face: the central square and a warning."""
    image = _as_rgb_uint8(image)
    eyes = find_eyes(image)
    if eyes is None:
        warnings.warn("no face found: using the central square of the image", stacklevel=2)
        return centre_crop(image, size), False
    # A bilinear warp that shrinks by more than 2x aliases: shrink big photos with area averaging first.
    scale = np.linalg.norm((CANONICAL_EYES[1] - CANONICAL_EYES[0]) * size) / max(np.linalg.norm(eyes[1] - eyes[0]), 1.0)
    if scale < 0.5:
        image = cv2.resize(image, None, fx=2 * scale, fy=2 * scale, interpolation=cv2.INTER_AREA)
        eyes = eyes * 2 * scale
    crop = cv2.warpAffine(image, eyes_to_crop(eyes, size), (size, size), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    return crop, True


def align_batch(images, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """align() over a batch: (crops uint8 (N, size, size, 3), face_found bool (N,))."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = [align(img, size) for img in images]
    return np.stack([c for c, _ in results]), np.array([f for _, f in results])
