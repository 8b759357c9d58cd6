"""Camera pipeline shared by every generator: the last step every synthetic image goes through.

Bona fide faces, presentation attacks and documents all pass through the same function with parameters drawn from the
same ranges, so no global cue (exposure, blur, noise, JPEG level) tells one class from another.
"""

import io

import cv2
import numpy as np
from PIL import Image


def random_params(rng: np.random.Generator, strength: float = 1.0) -> dict:
    """Draw one capture's nuisance parameters; strength scales how harsh the capture may be (0 = clean)."""
    return {
        "exposure": float(np.exp(rng.normal(0.0, 0.25 * strength))),
        "gamma": float(np.exp(rng.normal(0.0, 0.15 * strength))),
        "white_balance": (1.0 + rng.normal(0.0, 0.06 * strength, size=3)).tolist(),
        "blur_sigma": float(abs(rng.normal(0.0, 0.7 * strength))),
        "motion_blur": float(rng.uniform(0, 4 * strength) if rng.random() < 0.2 else 0.0),
        "motion_angle": float(rng.uniform(0, 180)),
        "noise_sigma": float(abs(rng.normal(0.0, 5.0 * strength))),
        "jpeg_quality": int(rng.integers(max(20, int(95 - 65 * strength)), 96)),
    }


def downscaled(params: dict, factor: float) -> dict:
    """The same capture seen through a crop downscaled by factor: blur and motion lengths shrink with the pixels,
    and averaging factor x factor sensor pixels divides the noise by factor. (JPEG stays at its drawn quality: a
    conservative approximation, since real block artefacts are also averaged down.)"""
    return dict(params, blur_sigma=params["blur_sigma"] / factor, motion_blur=params["motion_blur"] / factor,
                noise_sigma=params["noise_sigma"] / factor)


def capture(img: np.ndarray, params: dict, rng: np.random.Generator) -> np.ndarray:
    """Apply exposure, white balance, gamma, blur, sensor noise and JPEG to an RGB uint8 image."""
    x = img.astype(np.float32) / 255.0
    x = x * params["exposure"] * np.asarray(params["white_balance"], np.float32)
    x = np.clip(x, 0.0, 1.0) ** params["gamma"]
    if params["blur_sigma"] > 0.3:
        x = cv2.GaussianBlur(x, (0, 0), params["blur_sigma"])
    if params["motion_blur"] >= 1.0:
        x = motion_blur(x, params["motion_blur"], params["motion_angle"])
    x = x * 255.0 + rng.normal(0.0, params["noise_sigma"], size=x.shape).astype(np.float32)
    x = np.clip(np.rint(x), 0, 255).astype(np.uint8)
    return jpeg(x, params["jpeg_quality"])


def motion_blur(x: np.ndarray, length: float, angle_deg: float) -> np.ndarray:
    k = int(max(3, round(length) | 1))
    kernel = np.zeros((k, k), np.float32)
    kernel[k // 2, :] = 1.0
    rot = cv2.getRotationMatrix2D((k / 2 - 0.5, k / 2 - 0.5), angle_deg, 1.0)
    kernel = cv2.warpAffine(kernel, rot, (k, k))
    return cv2.filter2D(x, -1, kernel / max(kernel.sum(), 1e-6))


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """JPEG round trip through Pillow (its bundled libjpeg is pinned by the wheel, so bytes are reproducible)."""
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    return np.asarray(Image.open(buf).convert(img.ndim == 2 and "L" or "RGB"))
