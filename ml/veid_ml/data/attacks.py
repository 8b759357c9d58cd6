"""Presentation attacks (printed photo, screen replay, paper cut-out) and the liveness samples built from them.

An attack is a face render (the "source photo") passed through the attack medium, placed in a scene and then recaptured
by the same camera, with parameters drawn from the same distribution, as a bona fide face. Each attack has a strength
in STRENGTH_RANGE so subtle attacks exist. Before the camera, every attack's per-channel mean and contrast are matched
to a bona fide render from the same distribution, so global statistics carry no class information: a detector has to
learn the medium's local traces (halftone, pixel grid, paper texture and edges, flat shading).
"""

import os

import cv2
import numpy as np
from PIL import Image, ImageDraw

from veid_ml.data.faces import (CAPTURE_SCALE, SPLIT_IDENTITIES, capture_view, identity_params, random_view,
                                render_layers)
from veid_ml.data.parallel import generate
from veid_ml.data.rng import sample_rng

SPECIES = ("print", "replay", "cutout")
# Strength scales every trace of the medium (gamut loss, halftone, grain, pixel grid, glare, paper shading). Below ~0.2
# a cut-out's print is indistinguishable from skin even before the camera (see docs/contact_sheets/attacks.png): no
# real printer or screen is that faithful, and such samples only teach the detector label noise.
STRENGTH_RANGE = (0.2, 1.0)


def _grid(size):
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    return x, y


def _scene(rng, size):
    """A smooth backdrop around a held-up medium: a few muted random tones, upsampled."""
    tone = rng.uniform(0.15, 0.9, (3, 3, 1)) * (1 + rng.normal(0, 0.12, (3, 3, 3)))
    cells = tone.astype(np.float32)
    return cv2.resize(cells, (size, size), interpolation=cv2.INTER_CUBIC).clip(0, 1)


def _perspective(img, rng, size, amount, shrink, fill):
    """Warp the medium as if held at an angle; shrink < 1 leaves its edge and the scene around it visible."""
    src = np.float32([[0, 0], [size, 0], [size, size], [0, size]])
    centre = size / 2
    dst = (src - centre) * shrink + centre
    dst = dst + rng.normal(0, amount * size * 0.06, (4, 2)).astype(np.float32)
    m = cv2.getPerspectiveTransform(src, dst.astype(np.float32))
    out = cv2.warpPerspective(img, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                              borderValue=(-1, -1, -1))
    outside = out[..., :1] < 0
    return np.where(outside, fill, out)


def _print_medium(photo, rng, s):
    """Ink on paper: reduced gamut and contrast, halftone screen, paper grain."""
    size = photo.shape[0]
    grey = photo.mean(axis=2, keepdims=True)
    out = photo + (grey - photo) * (0.35 * s)  # inks cover a smaller gamut
    out = 0.06 * s + out * (1 - 0.16 * s)  # ink never reaches black nor the paper white
    x, y = _grid(size)
    period, angle = rng.uniform(2.2, 4.0), rng.uniform(0, np.pi / 2)
    xr, yr = x * np.cos(angle) + y * np.sin(angle), -x * np.sin(angle) + y * np.cos(angle)
    screen = 0.5 + 0.25 * (np.cos(2 * np.pi * xr / period) + np.cos(2 * np.pi * yr / period))
    dots = np.clip((out - screen[..., None]) * 4 + 0.5, 0, 1)
    out = out + (dots - out) * (0.5 * s)
    grain = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), 0.8)
    return np.clip(out * (1 + 0.06 * s * grain[..., None]), 0, 1)


def _print_attack(source, scene, rng, s):
    size = source.shape[0]
    paper = _print_medium(source, rng, s)
    if rng.random() < 0.5:  # a white paper margin around the photo
        m = int(rng.integers(2, max(3, size // 12)))
        paper = cv2.copyMakeBorder(paper, m, m, m, m, cv2.BORDER_CONSTANT, value=(0.92, 0.91, 0.88))
        paper = cv2.resize(paper, (size, size), interpolation=cv2.INTER_AREA)
    x, _ = _grid(size)
    bend = 1 + rng.uniform(0.05, 0.3) * s * np.cos((x / size - rng.uniform(0.3, 0.7)) * np.pi)  # curved paper shading
    paper = paper * bend[..., None]
    shrink = rng.uniform(0.75, 0.95) if rng.random() < 0.4 else rng.uniform(1.0, 1.15)
    return _perspective(paper, rng, size, 0.3 + s, shrink, scene)


def _replay_attack(source, scene, rng, s):
    """A phone or monitor showing the photo: pixel grid, moiré from resampling it, glare, colour cast, bezel."""
    size = source.shape[0]
    pitch = rng.uniform(1.5, 3.0)
    low = cv2.resize(source, (int(size / pitch), int(size / pitch)), interpolation=cv2.INTER_AREA)
    screen = cv2.resize(low, (size, size), interpolation=cv2.INTER_NEAREST)
    x, y = _grid(size)
    sub = np.stack([np.cos(2 * np.pi * (x / pitch - k / 3)) for k in range(3)], axis=2)  # RGB sub-pixel stripes
    rows = np.cos(2 * np.pi * y / pitch)[..., None]
    screen = screen * (1 - 0.3 * s + 0.15 * s * (sub + rows))
    screen = screen * (1 + np.array([-0.05, 0.0, 0.08], np.float32) * s)  # backlight colour cast
    gx, gy, gr = rng.uniform(0, size, 2).tolist() + [rng.uniform(0.15, 0.5) * size]
    glare = np.exp(-((x - gx) ** 2 + (y - gy) ** 2) / (2 * gr**2))
    screen = screen + (0.35 * s * rng.random()) * glare[..., None]
    if rng.random() < 0.5:  # bezel
        b = int(rng.integers(2, max(3, size // 10)))
        screen = cv2.copyMakeBorder(screen, b, b, b, b, cv2.BORDER_CONSTANT, value=(0.04, 0.04, 0.05))
        screen = cv2.resize(screen, (size, size), interpolation=cv2.INTER_AREA)
    shrink = rng.uniform(0.75, 0.95) if rng.random() < 0.4 else rng.uniform(1.0, 1.15)
    return _perspective(np.clip(screen, 0, 1.2), rng, size, 0.2 + s, shrink, scene)


def _cutout_attack(params, view, split, seed, rng, s, size):
    """The victim's printed face, cut out along its outline (sometimes with eye holes), held over a real person."""
    wearer = identity_params(split, int(rng.integers(SPLIT_IDENTITIES[split])), seed)
    real, _ = render_layers(wearer, view, size)
    flat = dict(view, glasses=None, hand=None, ambient=float(rng.uniform(0.45, 0.85)),
                light_azimuth=float(rng.uniform(-0.4, 0.4)))
    photo, face = render_layers(params, flat, size)
    photo = _print_medium(photo, rng, s)
    cut = cv2.erode(face, np.ones((3, 3), np.uint8)) if rng.random() < 0.5 else face
    if rng.random() < 0.5:  # eye holes show the wearer's eyes through the paper
        holes = Image.new("L", (size, size), 0)
        ys, xs = np.nonzero(face > 0.5)
        cx, cy, half = xs.mean(), ys.min() + 0.42 * (ys.max() - ys.min()), 0.2 * (xs.max() - xs.min())
        r = rng.uniform(0.04, 0.07) * size
        for ex in (cx - half, cx + half):
            ImageDraw.Draw(holes).ellipse([ex - r, cy - r * 0.6, ex + r, cy + r * 0.6], fill=255)
        cut = cut * (1 - np.asarray(holes, np.float32) / 255)
    return real + (photo - real) * cut[..., None], real


def _match_stats(img, reference):
    """Give the attack a bona fide render's per-channel mean, contrast and fine-detail energy (kills global cues).

    The medium's texture (halftone, pixel grid) keeps its pattern but not its extra energy, so sharpness and JPEG size
    say nothing about the class; only the pattern itself does.
    """
    img, reference = img.astype(np.float32), reference.astype(np.float32)
    out = cv2.GaussianBlur(img, (0, 0), 3.0)
    ref_prev, img_prev = reference, img
    for sigma in (1.0, 3.0):  # match the energy of the finest and the mid-frequency band separately
        ref_band, img_band = cv2.GaussianBlur(reference, (0, 0), sigma), cv2.GaussianBlur(img, (0, 0), sigma)
        gain = (ref_prev - ref_band).std(axis=(0, 1)) / np.maximum((img_prev - img_band).std(axis=(0, 1)), 1e-6)
        out = out + (img_prev - img_band) * np.clip(gain, 0.25, 4.0)
        ref_prev, img_prev = ref_band, img_band
    out = out - out.mean(axis=(0, 1))
    out = out * (reference.std() / max(float(out.std()), 1e-6)) + reference.mean(axis=(0, 1))
    return np.clip(out, 0, 1)


def attack_image(params, view, species, strength, rng, split, seed, size):
    """The attack as it stands before the camera (float RGB in [0, 1]), stats matched to a bona fide render."""
    if SPECIES[species] == "cutout":
        img, reference = _cutout_attack(params, view, split, seed, rng, strength, size)
        return _match_stats(img, reference)
    source, _ = render_layers(params, random_view(rng), size)
    scene = _scene(rng, size)
    img = (_print_attack if SPECIES[species] == "print" else _replay_attack)(source, scene, rng, strength)
    return _match_stats(img, source)


def liveness_sample(index: int, split: str, seed: int = 42, size: int = 112, capture_scale: int = CAPTURE_SCALE,
                    crop_downscale: float = 1.0) -> tuple[np.ndarray, int, int]:
    """(image uint8 (size, size, 3), is_bona_fide, species index or -1 for bona fide).

    Rendered and captured at capture_scale x the output size, then area-downscaled like a detector's crop of a real
    selfie: the media's fine traces alias into moire at the output size as they do in real recaptures (a capture at a
    small output size has blur, noise and JPEG blocks several times coarser than any real one). capture_scale=1 returns
    the capture itself; its draws do not depend on capture_scale, so size 2s at scale 1 is the capture behind size s.
    crop_downscale > 1: the rendered image is already a detector's crop, that many times smaller than the camera frame,
    so blur, motion and sensor noise shrink with the pixels (faces.capture_view's downscale; the draws stay the same).
    """
    rng = sample_rng("liveness", split, index, seed)
    out_size, size = size, size * capture_scale
    bona_fide = rng.random() < 0.5
    species = -1 if bona_fide else int(rng.integers(len(SPECIES)))
    params = identity_params(split, int(rng.integers(SPLIT_IDENTITIES[split])), seed)
    view = random_view(rng)
    if bona_fide:
        img, _ = render_layers(params, view, size)
    else:
        img = attack_image(params, view, species, float(rng.uniform(*STRENGTH_RANGE)), rng, split, seed, size)
    captured = capture_view(np.rint(img * 255).astype(np.uint8), view, rng, downscale=crop_downscale)
    if capture_scale > 1:
        captured = cv2.resize(captured, (out_size, out_size), interpolation=cv2.INTER_AREA)
    return captured, int(bona_fide), species


def liveness_dataset(split: str, n: int, seed: int = 42, size: int = 112, workers: int | None = None,
                     capture_scale: int = CAPTURE_SCALE, crop_downscale: float = 1.0
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images uint8 (n, size, size, 3), is_bona_fide int32 (n,), species int32 (n,), -1 for bona fide)."""
    if n < 1:
        raise ValueError(f"need n >= 1 liveness samples, got {n}")
    samples = generate(liveness_sample, n, workers, desc=f"liveness/{split}", split=split, seed=seed, size=size,
                       capture_scale=capture_scale, crop_downscale=crop_downscale)
    images, live, species = zip(*samples)
    return np.stack(images), np.array(live, np.int32), np.array(species, np.int32)


def write_contact_sheets(out_dir, size: int = 112, columns: int = 8) -> str:
    """attacks.png: first row bona fide, then one row per species with strength increasing left to right."""
    rows = []
    for r in range(len(SPECIES) + 1):
        row = []
        for c in range(columns):
            rng = sample_rng("liveness_sheet", "train", r * 100 + c, 42)
            params = identity_params("train", c, 42)
            view = random_view(rng)
            if r == 0:
                img, _ = render_layers(params, view, size)
            else:
                strength = STRENGTH_RANGE[0] + (STRENGTH_RANGE[1] - STRENGTH_RANGE[0]) * c / (columns - 1)
                img = attack_image(params, view, r - 1, strength, rng, "train", 42, size)
            row.append(capture_view(np.rint(img * 255).astype(np.uint8), view, rng))
        rows.append(np.concatenate(row, axis=1))
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "attacks.png")
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)
    return path
