"""Procedural face renderer: an identity is a parameter vector, a view is everything that must not change identity.

Every part of the face is an analytic soft mask or height bump evaluated on a grid of canonical face coordinates
(u right, v down; the face centre is the origin and 1 unit is the image width). Pose, scale and roll come from mapping
the pixel grid into that frame, so nothing is resampled. Shading is Lambertian on a height map (head ellipsoid + nose,
brow ridge, cheekbones, eye sockets, lips, chin), which gives the side-lit relief that real photos such as Yale's have.
"""

import cv2
import numpy as np
from PIL import Image

from veid_ml.data import camera
from veid_ml.data.parallel import generate
from veid_ml.data.rng import sample_rng

SPLIT_IDENTITIES = {"train": 4000, "val": 400, "test": 600}
SIBLING_FRACTION = 0.2  # identities that are look-alikes (same base parameters, small perturbation) of another one
# A look-alike moves each continuous trait by N(0, SIBLING_SPREAD * range). With traits uniform on their range
# (sd = 0.29 range) a look-alike differs from its family root as much as two relatives whose traits correlate at
# r = 1 - SIBLING_SPREAD**2 / (2 * 0.29**2) ~ 0.63 (E(x1 - x2)^2 = 2 sd^2 (1 - r)):
# full siblings (facial-trait correlations of roughly 0.4-0.6), not near-identical twins (0.15 gives r ~ 0.87, and at
# 64 px many such pairs differ by less than a pixel anywhere: no verifier can separate them, real or synthetic).
SIBLING_SPREAD = 0.25
# Face crops are CAPTURE_SCALE x smaller than the camera frame they come from (a detector crops and downscales the
# face, as veid_ml.alignment does for real photos): capture artefacts measured in camera pixels shrink accordingly
# (also used by attacks.liveness_sample, which renders at the larger size instead). Applied at
# crop size they would make a third of the views blurrier than any aligned real photo, identity detail included.
CAPTURE_SCALE = 2
GRAYSCALE_FRACTION = 0.2  # views captured in grayscale, like many real enrolment and benchmark photos (e.g. Yale)

# Continuous identity parameters: name -> (low, high). Siblings move each by SIBLING_SPREAD of its range.
RANGES = {
    "skin_tone": (0.0, 1.0),  # 0 = very light, 1 = very dark
    "undertone": (-1.0, 1.0),  # yellow <-> red
    "face_w": (0.205, 0.255),  # half width at the cheeks
    "face_len": (1.22, 1.5),  # half height / half width
    "jaw": (0.0, 1.0),  # pointed -> square
    "cheek": (0.0, 1.0),  # cheekbone prominence
    "chin": (0.0, 1.0),
    "eye_y": (-0.05, -0.02),
    "eye_sep": (0.085, 0.1),  # half distance between eye centres
    "eye_w": (0.072, 0.09),
    "eye_h": (0.36, 0.56),  # height / width
    "eye_tilt": (-0.12, 0.12),
    "iris_hue": (0.0, 1.0),
    "brow_gap": (0.035, 0.06),
    "brow_thick": (0.011, 0.024),
    "brow_arch": (0.0, 1.0),
    "brow_len": (0.045, 0.07),
    "nose_len": (0.075, 0.12),
    "nose_w": (0.03, 0.05),
    "nose_prom": (0.6, 1.4),
    "mouth_y": (0.16, 0.21),
    "mouth_w": (0.05, 0.078),
    "lip_top": (0.009, 0.018),
    "lip_bottom": (0.013, 0.025),
    "lip_red": (0.0, 1.0),
    "hairline": (-0.25, -0.17),
    "hair_volume": (0.0, 1.0),
    "hair_shade": (0.0, 1.0),
    "hair_grey": (0.0, 1.0),
    "ear_size": (0.8, 1.2),
    "ear_y": (-0.02, 0.03),
    "beard_density": (0.3, 1.0),
}
HAIR_STYLES = ("short", "long", "receding", "buzz", "bangs", "bob")
BEARDS = ("none", "stubble", "moustache", "goatee", "full")
EYE_COLOURS = np.array([[60, 38, 25], [95, 60, 35], [120, 95, 55], [80, 110, 75], [85, 120, 160], [110, 120, 130]])
HAIR_COLOURS = np.array([[25, 20, 18], [55, 38, 28], [95, 65, 40], [165, 130, 80], [130, 60, 30], [70, 60, 55]])


def _draw_identity(rng: np.random.Generator) -> dict:
    p = {k: float(rng.uniform(lo, hi)) for k, (lo, hi) in RANGES.items()}
    p["skin_tone"] = float(rng.beta(1.3, 1.6))  # lighter tones a bit more common, the full range still covered
    p["eye_colour"] = int(rng.choice(len(EYE_COLOURS), p=[0.3, 0.25, 0.15, 0.1, 0.12, 0.08]))
    p["hair_colour"] = int(rng.choice(len(HAIR_COLOURS), p=[0.3, 0.25, 0.2, 0.1, 0.05, 0.1]))
    p["hair_style"] = int(rng.choice(len(HAIR_STYLES), p=[0.35, 0.2, 0.12, 0.1, 0.1, 0.13]))
    p["beard"] = int(rng.choice(len(BEARDS), p=[0.6, 0.12, 0.1, 0.06, 0.12]))
    p["hair_part"] = float(rng.uniform(-1, 1))
    p["hair_streaks"] = rng.normal(0, 1, 24).round(4).tolist()
    p["moles"] = [(float(rng.uniform(-0.15, 0.15)), float(rng.uniform(-0.15, 0.25)), float(rng.uniform(0.003, 0.007)))
                  for _ in range(int(rng.choice(4, p=[0.5, 0.3, 0.15, 0.05])))]
    return p


def _is_sibling(split: str, index: int, seed: int) -> bool:
    return index > 0 and sample_rng("face_family", split, index, seed).random() < SIBLING_FRACTION


def family_root(split: str, identity_index: int, seed: int = 42) -> int:
    """The non-sibling identity a look-alike copies (itself for a non-sibling): same root = look-alike family."""
    root = identity_index
    while _is_sibling(split, root, seed):  # walk up to a non-sibling so all look-alikes resemble the same person
        root = int(sample_rng("face_family", split, root, seed).integers(0, root))
    return root


def identity_params(split: str, identity_index: int, seed: int = 42) -> dict:
    """The identity's parameter dict. A sibling copies its family root's parameters with a small perturbation."""
    rng = sample_rng("face_identity", split, identity_index, seed)
    own = _draw_identity(rng)
    if not _is_sibling(split, identity_index, seed):
        return own
    root = family_root(split, identity_index, seed)
    p = _draw_identity(sample_rng("face_identity", split, root, seed))
    for k, (lo, hi) in RANGES.items():
        p[k] = float(np.clip(p[k] + rng.normal(0, SIBLING_SPREAD * (hi - lo)), lo, hi))
    p["hair_style"] = own["hair_style"] if rng.random() < 0.3 else p["hair_style"]
    p["beard"] = own["beard"] if rng.random() < 0.3 else p["beard"]
    p["moles"] = own["moles"]
    return p


def random_view(rng: np.random.Generator) -> dict:
    """Pose, expression, light, framing, occluders and background: everything that must not change identity."""
    bg_tone = rng.uniform(0.15, 0.95)
    return {
        "yaw": float(np.clip(rng.normal(0, 0.22), -0.55, 0.55)),
        "pitch": float(np.clip(rng.normal(0, 0.12), -0.3, 0.3)),
        "roll": float(np.clip(rng.normal(0, 0.07), -0.2, 0.2)),
        "scale": float(rng.uniform(1.1, 1.35)),
        "shift": rng.normal(0, 0.025, 2).tolist(),
        "smile": float(rng.uniform(0, 1) if rng.random() < 0.4 else 0.0),
        "mouth_open": float(rng.uniform(0, 1) if rng.random() < 0.2 else 0.0),
        "brow_raise": float(rng.uniform(-0.5, 1) if rng.random() < 0.3 else 0.0),
        "eye_open": float(rng.uniform(0.15, 0.7) if rng.random() < 0.15 else rng.uniform(0.8, 1.05)),
        "light_azimuth": float(rng.uniform(-1.3, 1.3)),
        "light_elevation": float(rng.uniform(-0.2, 0.7)),
        "ambient": float(rng.uniform(0.12, 0.6)),
        "light_colour": (1 + rng.normal(0, 0.06, 3)).tolist(),
        "background": [bg_tone * (1 + rng.normal(0, 0.15, 3))[i] for i in range(3)],
        "background_gradient": rng.normal(0, 0.3, 2).tolist(),
        "clutter": [(rng.uniform(0, 1, 4).tolist(), rng.uniform(0.05, 1, 3).tolist())
                    for _ in range(int(rng.integers(0, 5)))],
        "clothes": rng.uniform(0.05, 0.9, 3).tolist(),
        "glasses": rng.uniform([0.9, 0.02, 0.0], [1.15, 0.035, 0.6]).tolist() if rng.random() < 0.15 else None,
        "hand": rng.uniform([-0.2, 0.1, 0.0], [0.2, 0.35, 1.0]).tolist() if rng.random() < 0.06 else None,
        "strand": rng.uniform([-0.15, -0.2, -1.0], [0.15, 0.05, 1.0]).tolist() if rng.random() < 0.1 else None,
        "grayscale": bool(rng.random() < GRAYSCALE_FRACTION),
        "texture": float(rng.uniform(0.0, 0.09)),  # fine surface grain: skin pores, wall plaster, fabric
        "texture_seed": int(rng.integers(2**31)),
    }


def _soft(d: np.ndarray, edge: float) -> np.ndarray:
    """Signed inside-distance -> anti-aliased coverage in [0, 1]."""
    return np.clip(d / edge + 0.5, 0.0, 1.0)


def _ellipse(u, v, cx, cy, a, b, edge):
    r = np.sqrt(((u - cx) / a) ** 2 + ((v - cy) / b) ** 2)
    return _soft((1.0 - r) * min(a, b), edge)


def _bump(u, v, cx, cy, a, b):
    return np.exp(-(((u - cx) / a) ** 2 + ((v - cy) / b) ** 2))


def _paint(img, mask, colour):
    """Alpha-blend a colour into img in place (img may be a view of a window of the full image)."""
    img += mask[..., None] * (np.asarray(colour, np.float32) - img)


def skin_colour(p: dict) -> np.ndarray:
    light, dark = np.array([236, 196, 172]), np.array([92, 60, 44])
    c = light + (dark - light) * p["skin_tone"]
    return (c + p["undertone"] * np.array([8, -2, -8])) / 255.0


def render_layers(params: dict, view: dict, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(RGB float32 image in [0, 1], face-region mask) before any camera effect."""
    p, w = params, view
    s = w["scale"]
    edge = 1.2 / (size * s)  # one pixel in canonical units: the anti-aliasing width
    pix = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    px, py = np.meshgrid(pix - w["shift"][0], pix - 0.04 - w["shift"][1])
    cr, sr = float(np.cos(w["roll"])), float(np.sin(w["roll"]))
    u, v = (cr * px + sr * py) / s, (-sr * px + cr * py) / s
    yaw, pitch = w["yaw"], w["pitch"]
    cy_, sy_ = float(np.cos(yaw)), float(np.sin(yaw))

    def at(x, y, depth):  # where a feature at canonical (x, y) with depth toward the camera lands after yaw/pitch
        return float(x * cy_ + depth * sy_), float(y * np.cos(pitch) - depth * np.sin(pitch))

    def window(cx, cy, r):  # pixel slices covering a canonical disc: small features are evaluated only there
        x = (cr * cx - sr * cy) * s + w["shift"][0] + 0.5
        y = (sr * cx + cr * cy) * s + w["shift"][1] + 0.54
        rp = r * s
        lo_x, hi_x = max(0, int((x - rp) * size)), min(size, int((x + rp) * size) + 2)
        lo_y, hi_y = max(0, int((y - rp) * size)), min(size, int((y + rp) * size) + 2)
        sl = (slice(lo_y, max(lo_y, hi_y)), slice(lo_x, max(lo_x, hi_x)))
        return sl, u[sl], v[sl]

    W, H = p["face_w"], p["face_w"] * p["face_len"]
    fx, fy = at(0.0, 0.0, -0.05)
    Wy = W * (1 - 0.25 * abs(sy_))
    skin = skin_colour(p)
    hair = HAIR_COLOURS[p["hair_colour"]] * (0.7 + 0.6 * p["hair_shade"]) / 255.0
    hair = hair + (np.array([0.72, 0.72, 0.72]) - hair) * max(0.0, p["hair_grey"] - 0.9) * 10
    dark_hair = np.clip(hair * 0.8, 0, 1)

    # Background: tinted wall with a light gradient and furniture-like rectangles.
    img = np.empty((size, size, 3), np.float32)
    img[:] = np.clip(w["background"], 0, 1)
    for (x0, y0, x1, y1), col in w["clutter"]:
        ys, xs = slice(int(y0 * size), int(y1 * size) + 1), slice(int(x0 * size), int(x1 * size) + 1)
        img[ys, xs] = img[ys, xs] * 0.15 + np.asarray(col, np.float32) * 0.85
    g = 1 + w["background_gradient"][0] * px + w["background_gradient"][1] * py
    img *= np.clip(g, 0.4, 1.6)[..., None]

    # Head outline: elliptical crown, superellipse jaw whose squareness and chin length vary per identity.
    du, dv = (u - fx) / Wy, (v - fy) / H
    k = 1.7 + 1.6 * p["jaw"]
    lower = np.clip(dv, 0, 1) * (1 + 0.12 * p["chin"])
    half = np.where(dv < 0, np.sqrt(np.clip(1 - dv**2, 0, 1)), np.clip(1 - lower**k, 0, 1) ** (1 / k))
    half *= 1 + 0.05 * p["cheek"] * np.exp(-((dv + 0.05) / 0.3) ** 2)
    face = _soft((half - np.abs(du)) * Wy, edge) * _soft((1 - np.abs(dv) * (dv < 0) - lower) * H, edge)

    neck = _soft(np.minimum(0.58 * W - np.abs(u - fx * 0.5), 0.6 - v), edge) * (v > fy)
    shoulders = _ellipse(u, v, fx * 0.3, fy + H + 0.42, 2.6 * W, 0.36, edge)
    _paint(img, shoulders, w["clothes"])
    style = HAIR_STYLES[p["hair_style"]]
    vol = 0.02 + 0.05 * p["hair_volume"] * (style not in ("buzz", "receding"))
    crown = _ellipse(u, v, fx, fy - 0.1 * H, Wy * 1.08 + vol, H * 0.98 + vol, edge)
    if style == "long":
        back = _soft(np.minimum(Wy * 1.3 + vol - np.abs(u - fx), fy + H * 1.25 - v), edge)
        _paint(img, np.maximum(back * (v > fy - 0.1), crown), dark_hair)
    _paint(img, neck, skin * 0.92)
    for side in (-1, 1):
        ex, ey = at(side * W * 0.98, p["ear_y"], -0.12)
        hidden = np.clip(side * sy_ * 4, 0, 1)  # the ear facing away slips behind the head
        sl, uu, vv = window(ex, ey, 0.07)
        _paint(img[sl], _ellipse(uu, vv, ex, ey, 0.028 * p["ear_size"], 0.058 * p["ear_size"], edge) * (1 - hidden),
               skin * 0.95)
    _paint(img, face, skin)

    # Height map for shading (canonical units toward the camera): head dome plus facial relief.
    z = 0.9 * H * np.clip(1 - du**2 * 0.8 - (dv * 0.9) ** 2, 0, 1) ** 0.7

    def bump(height, cx, cy, a, b):
        sl, uu, vv = window(cx, cy, 2.5 * max(a, b))
        z[sl] += height * _bump(uu, vv, cx, cy, a, b)

    ey0 = p["eye_y"]
    nx, ny = at(0.0, ey0 + p["nose_len"], 0.1)
    bump(0.03 * p["nose_prom"], nx, (ny + ey0) / 2, p["nose_w"] * 0.5, p["nose_len"] * 0.6)
    bump(0.035 * p["nose_prom"], nx, ny - 0.01, p["nose_w"] * 0.7, 0.02)
    bump(0.012, *at(0.0, ey0 - p["brow_gap"], 0.05), W * 0.8, 0.02)
    for side in (-1, 1):
        ex, ey = at(side * p["eye_sep"], ey0, 0.04)
        bump(-0.018, ex, ey - 0.005, p["eye_w"] * 0.65, p["eye_w"] * 0.45)
        bump(0.01 * (0.5 + p["cheek"]), *at(side * W * 0.6, ey0 + 0.06, 0.03), 0.05, 0.035)
    mx, my = at(0.0, p["mouth_y"], 0.07)
    bump(0.01, mx, my, p["mouth_w"], 0.03)
    bump(0.012, *at(0.0, H * 0.85, 0.03), 0.05, 0.035)

    # Skin details painted before shading so the light falls on them.
    for side in (-1, 1):
        cx, cy = at(side * W * 0.55, ey0 + 0.09, 0.03)
        sl, uu, vv = window(cx, cy, 0.1)
        _paint(img[sl], 0.12 * _bump(uu, vv, cx, cy, 0.05, 0.04), skin * [1.1, 0.8, 0.8])
    for mu, mv, mr in p["moles"]:
        cx, cy = at(mu * W / 0.2, mv, 0.05)
        sl, uu, vv = window(cx, cy, 2 * mr)
        _paint(img[sl], _ellipse(uu, vv, cx, cy, mr, mr, edge) * 0.85, skin * 0.45)
    beard = BEARDS[p["beard"]]
    if beard != "none":
        jaw_band = face * _soft(v - (my - 0.03) + 0.12 * ((u - fx) / Wy) ** 2, 0.015)
        mous = _ellipse(u, v, mx, my - 0.022, p["mouth_w"] * 1.15, 0.018, edge)
        goatee = _ellipse(u, v, *at(0.0, (my + H) / 2 + 0.01, 0.06), p["mouth_w"] * 0.7, (H - my) / 2, edge)
        region = {"stubble": face * _soft(v - (my - 0.04), 0.02), "moustache": mous,
                  "goatee": np.maximum(goatee, mous), "full": np.maximum(jaw_band, mous)}[beard]
        _paint(img, region * p["beard_density"] * (0.3 if beard == "stubble" else 0.7), dark_hair)

    # Mouth: lips whose corners lift with a smile; an open mouth shows a dark gap and teeth.
    lip = skin * (0.6 - 0.1 * p["lip_red"]) + np.array([0.6, 0.2, 0.22]) * (0.25 + 0.15 * p["lip_red"])
    smile, gap = w["smile"], 0.02 * w["mouth_open"]
    mw = p["mouth_w"] * (1 + 0.2 * smile) * cy_
    sl, uu, vv = window(mx, my, mw + 0.05)
    m_img = img[sl]
    tu = ((uu - mx) / mw) ** 2
    mline = my - (smile * 0.02 - 0.004) * tu + gap / 2
    width_ok = _soft((1 - np.sqrt(tu)) * mw, edge)
    upper = _soft(np.minimum(mline - vv, vv - (mline - gap - p["lip_top"] * (1 - tu))), edge)
    lower = _soft(np.minimum(vv - mline, mline + p["lip_bottom"] * (1 - tu) - vv), edge)
    _paint(m_img, np.maximum(upper, lower) * width_ok, lip)
    if gap > 0.002:
        inner = _soft(np.minimum(vv - (mline - gap), mline - vv), edge) * width_ok
        _paint(m_img, inner, [0.25, 0.08, 0.08])
        _paint(m_img, inner * _soft(vv - (mline - gap), 0.004) * _soft(mline - gap * 0.45 - vv, edge) * 0.9,
               [0.92, 0.9, 0.85])
    _paint(m_img, width_ok * _soft(0.0025 - np.abs(vv - mline), edge) * 0.6, lip * 0.4)

    # Eyes: almond-shaped sclera, iris and pupil, a lash line; eye_open lowers the lid. Then the eyebrow above.
    for side in (-1, 1):
        ex, ey = at(side * p["eye_sep"], ey0, 0.03)
        ew = p["eye_w"] * cy_ * (1 - 0.25 * side * sy_)
        eh = p["eye_w"] * p["eye_h"] * w["eye_open"]
        sl, uu, vv = window(ex, ey, ew)
        e_img = img[sl]
        du_e = uu - ex
        dv_e = vv - ey + side * p["eye_tilt"] * du_e
        t = np.clip(1 - (du_e / (ew / 2)) ** 2, 0, 1)
        sclera = _soft(np.minimum(eh * 0.55 * t - dv_e, dv_e + eh * 0.45 * t), edge) * (t > 0)
        gaze = 0.1 * ew * sy_
        _paint(e_img, 0.35 * _bump(uu, vv, ex, ey - eh * 0.3, ew * 0.75, ew * 0.45), skin * 0.6)  # socket, crease
        _paint(e_img, sclera, [0.76, 0.72, 0.68])
        _paint(e_img, _ellipse(uu, vv, ex - gaze, ey, ew * 0.27, ew * 0.27, edge) * sclera,
               EYE_COLOURS[p["eye_colour"]] * (0.8 + 0.4 * p["iris_hue"]) / 255.0)
        _paint(e_img, _ellipse(uu, vv, ex - gaze, ey, ew * 0.1, ew * 0.1, edge) * sclera, [0.04, 0.03, 0.03])
        lid = _soft(0.005 - np.abs(dv_e + eh * 0.55 * t), edge) * (t > 0.02)
        _paint(e_img, lid * 0.9, [0.12, 0.09, 0.08])

        bx, by = at(side * (p["eye_sep"] + 0.005), ey0 - p["brow_gap"] - 0.012 * w["brow_raise"], 0.05)
        bl = p["brow_len"] * cy_
        sl, uu, vv = window(bx, by, bl + 0.03)
        tb = (uu - bx) / bl
        arch = -0.012 * (0.5 + p["brow_arch"]) * (1 - tb**2) + 0.006 * side * tb
        thick = p["brow_thick"] * (1 - 0.5 * np.clip(side * tb, 0, 1))
        brow = _soft(thick / 2 - np.abs(vv - by - arch), edge) * _soft((1 - np.abs(tb)) * bl, edge)
        _paint(img[sl], brow * 0.9, dark_hair * 0.8)

    for side in (-1, 1):  # nostrils
        cx, cy = nx + side * p["nose_w"] * 0.35, ny + 0.008
        sl, uu, vv = window(cx, cy, 0.02)
        _paint(img[sl], _ellipse(uu, vv, cx, cy, 0.008, 0.004, edge) * 0.7, skin * 0.3)

    # Hair in front: the crown above a hairline that curves down to the temples; style sets volume and fringe.
    hl = p["hairline"] - 0.05 * (style == "receding") + 0.08 * (style == "bangs")
    temple = np.abs(u - fx) / Wy
    hairline = fy + hl + 0.2 * temple**4 - 0.035 * (style == "receding") * np.exp(-((temple - 0.55) / 0.2) ** 2)
    part = 0.01 * np.exp(-((u - fx - p["hair_part"] * 0.07) / 0.01) ** 2)
    front = crown * _soft(hairline + part - v, edge * 2)
    if style in ("long", "bob"):
        drop = 1.15 if style == "long" else 0.75
        curtain = _soft(np.minimum(np.abs(u - fx) - Wy * 0.82, Wy * 1.12 + vol - np.abs(u - fx)), edge)
        front = np.maximum(front, curtain * _soft(fy + H * drop - v, edge) * (v > fy - 0.2))
    streaks = np.interp(u * 60, np.arange(-12, 12), p["hair_streaks"]).astype(np.float32)
    hair_tex = hair * (1 + 0.08 * streaks[..., None])
    _paint(img, front * (0.45 if style == "buzz" else 1.0), np.clip(hair_tex, 0, 1))
    if style != "buzz":
        z += 0.02 * front

    # Lambertian shading on the head, a softer directional falloff on the body and background.
    gy, gx = np.gradient(z * (size * s))
    az, el = w["light_azimuth"], w["light_elevation"]
    light = np.array([np.sin(az) * np.cos(el), -np.sin(el), np.cos(az) * np.cos(el)], np.float32)
    diffuse = np.clip((-gx * light[0] - gy * light[1] + light[2]) / np.sqrt(gx**2 + gy**2 + 1), 0, 1)
    head = np.maximum(face, front)
    body_light = np.clip(0.75 + 0.7 * light[0] * px, 0, 1.2) * (1 - 0.45 * neck)
    shade = w["ambient"] + (1 - w["ambient"]) * (head * diffuse * 1.15 + (1 - head) * body_light)
    grain = np.random.Generator(np.random.PCG64(w["texture_seed"])).standard_normal((size, size), np.float32)
    grain = cv2.GaussianBlur(grain, (0, 0), 0.6)
    img *= (shade * (1 + w["texture"] * grain))[..., None]
    img *= np.asarray(w["light_colour"], np.float32)

    # Catchlights reflect the light's direction; then occluders, which the light model leaves out.
    for side in (-1, 1):
        ex, ey = at(side * p["eye_sep"], ey0, 0.04)
        r = p["eye_w"] * 0.06 * w["eye_open"]
        cx, cy = ex + float(light[0]) * 0.006, ey - 0.004
        sl, uu, vv = window(cx, cy, 0.01)
        _paint(img[sl], _ellipse(uu, vv, cx, cy, r, r, edge) * 0.8, [1, 1, 1])
    if w["strand"] is not None:
        sx, sy, bend = w["strand"]
        strand = _soft(0.004 - np.abs(u - fx - sx - bend * 0.8 * (v - sy) ** 2), edge) * crown * (v > sy - 0.1)
        _paint(img, strand * (v < sy + 0.12), hair * 0.7)
    if w["glasses"] is not None:
        ls, thick, tint = w["glasses"]
        for side in (-1, 1):
            ex, ey = at(side * p["eye_sep"], ey0, 0.06)
            a, b = 0.045 * ls * cy_, 0.033 * ls
            sl, uu, vv = window(ex, ey, a + 0.01)
            r = np.sqrt(((uu - ex) / a) ** 2 + ((vv - ey) / b) ** 2)
            _paint(img[sl], _soft(1 - r, 0.05) * tint * 0.6, [0.2, 0.22, 0.25])
            _paint(img[sl], _soft(thick * 0.5 - np.abs(r - 1) * b, edge) * 0.9, [0.08, 0.07, 0.07])
        bx, by = at(0.0, ey0 - 0.01, 0.06)
        sl, uu, vv = window(bx, by, 0.06)
        bridge = _soft(0.003 - np.abs(vv - by), edge) * _soft(p["eye_sep"] - 0.04 * ls - np.abs(uu - bx), edge)
        _paint(img[sl], bridge, [0.08, 0.07, 0.07])
    if w["hand"] is not None:
        hx, hy, tone = w["hand"]
        palm = _ellipse(u, v, fx + hx, fy + hy + 0.12, 0.09, 0.07, edge)
        fingers = [_ellipse(u, v, fx + hx + dx, fy + hy + 0.02, 0.016, 0.07, edge) for dx in (-0.045, -0.015, 0.015, 0.045)]
        _paint(img, np.clip(palm + sum(fingers), 0, 1), skin * (0.85 + 0.25 * tone) * w["ambient"] * 1.6)
    return np.clip(img, 0, 1), face


def render_face(params: dict, view: dict, size: int) -> np.ndarray:
    """Clean RGB uint8 render (size, size, 3), no camera effects."""
    img, _ = render_layers(params, view, size)
    return np.rint(img * 255).astype(np.uint8)


def to_grayscale(img: np.ndarray) -> np.ndarray:
    """Grayscale in three channels, so grayscale views stay shape-compatible with colour ones."""
    return np.repeat(np.asarray(Image.fromarray(img).convert("L"))[..., None], 3, axis=2)


def capture_view(img: np.ndarray, view: dict, rng: np.random.Generator, downscale: float = 1.0) -> np.ndarray:
    """The camera step every face-like image (bona fide or recaptured attack) goes through. downscale > 1: img is
    already the crop, downscale x smaller than the camera frame (the capture artefacts shrink with it)."""
    params = camera.random_params(rng, float(rng.uniform(0.2, 1.0)))
    out = camera.capture(img, camera.downscaled(params, downscale), rng)
    return to_grayscale(out) if view["grayscale"] else out


# Where the eye centres of an aligned crop lie (fractions of the crop side): the renderer's average over random views.
ALIGNED_EYE_DISTANCE = 0.221
ALIGNED_EYE_MIDPOINT = (0.5005, 0.497)


def aligned_view(params: dict, view: dict) -> dict:
    """The view re-framed the way veid_ml.alignment frames a real photo: eyes level, their distance and midpoint fixed
    in the crop (so a turned head is scaled up, as a landmark-based alignment does). The random view's own framing
    survives only as a small residual (scale +-3%, shift sd 0.5%, roll sd 1.2 deg), the error of a landmark detector.
    Without this, scale alone (1.1-1.35) varies the picture more than a look-alike's traits do."""
    yaw, pitch = view["yaw"], view["pitch"]
    eye_depth = 0.03  # where the eyes are drawn (render_layers)
    roll = 0.3 * view["roll"]
    # random_view's scale is uniform on 1.1-1.35 (centre 1.225, half-width 0.125): mapped to a +-3% residual
    scale = ALIGNED_EYE_DISTANCE / (2 * params["eye_sep"] * np.cos(yaw)) * (1 + 0.03 * (view["scale"] - 1.225) / 0.125)
    mx, my = eye_depth * np.sin(yaw), params["eye_y"] * np.cos(pitch) - eye_depth * np.sin(pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    # canonical (u, v) -> crop fraction is (R(roll) (u, v) * scale + shift + (0.5, 0.54)), as render_layers' window()
    shift = [ALIGNED_EYE_MIDPOINT[0] - 0.5 - (cr * mx - sr * my) * scale + 0.2 * view["shift"][0],
             ALIGNED_EYE_MIDPOINT[1] - 0.54 - (sr * mx + cr * my) * scale + 0.2 * view["shift"][1]]
    return {**view, "roll": float(roll), "scale": float(scale), "shift": [float(v) for v in shift]}


# Five landmarks from render_layers' drawing geometry (face_detection.scenes documents the choices).
EYE_DEPTH, NOSE_DEPTH, MOUTH_DEPTH = 0.03, 0.1, 0.07  # the depths render_layers draws them at


def _at(view, x, y, depth):
    """render_layers' at(): where a canonical feature lands after yaw and pitch."""
    yaw, pitch = view["yaw"], view["pitch"]
    return x * np.cos(yaw) + depth * np.sin(yaw), y * np.cos(pitch) - depth * np.sin(pitch)


def canonical_landmarks(params: dict, view: dict) -> np.ndarray:
    """(5, 2) canonical (u, v) of the five landmarks after pose (before roll, scale and shift)."""
    ey = params["eye_y"]
    left_eye, right_eye = (_at(view, side * params["eye_sep"], ey, EYE_DEPTH) for side in (-1, 1))
    nx, ny = _at(view, 0.0, ey + params["nose_len"], NOSE_DEPTH)
    mx, my = _at(view, 0.0, params["mouth_y"], MOUTH_DEPTH)
    smile, gap = view["smile"], 0.02 * view["mouth_open"]
    half = params["mouth_w"] * (1 + 0.2 * smile) * np.cos(view["yaw"])
    corner_y = my - (smile * 0.02 - 0.004) + gap / 2  # the lip line's height at its ends (tu = 1)
    return np.array([left_eye, right_eye, (nx, ny - 0.01), (mx - half, corner_y), (mx + half, corner_y)], np.float64)


def landmarks_in_render(params: dict, view: dict, size: int) -> np.ndarray:
    """(5, 2) landmark pixels in a size x size render of (params, view): x right, y down, the top-left pixel's centre
    at (0.5, 0.5); image-left eye, image-right eye, nose tip, image-left and image-right mouth corners."""
    uv = canonical_landmarks(params, view)
    s, roll = view["scale"], view["roll"]
    cr, sr = np.cos(roll), np.sin(roll)
    x = (cr * uv[:, 0] - sr * uv[:, 1]) * s + view["shift"][0] + 0.5
    y = (sr * uv[:, 0] + cr * uv[:, 1]) * s + view["shift"][1] + 0.54
    return np.stack([x, y], axis=1) * size


def face_image(split: str, identity_index: int, view_index: int, seed: int = 42, size: int = 112) -> np.ndarray:
    """One view of an identity as the face model sees it: rendered, aligned (aligned_view), through the camera."""
    return _face_view(split, identity_index, view_index, seed, size)[0]


def _face_view(split: str, identity_index: int, view_index: int, seed: int, size: int) -> tuple[np.ndarray, dict, dict]:
    """(face_image, its identity parameters, its aligned view)."""
    rng = sample_rng("face_view", split, identity_index * 1000 + view_index, seed)
    params = identity_params(split, identity_index, seed)
    view = aligned_view(params, random_view(rng))
    face = render_face(params, view, size)
    return capture_view(face, view, rng, downscale=CAPTURE_SCALE), params, view


def _face_sample(i, split, views_per_identity, seed, size):
    return face_image(split, i // views_per_identity, i % views_per_identity, seed, size)


def face_dataset(split: str, n_identities: int | None = None, views_per_identity: int = 8, seed: int = 42,
                 size: int = 112, workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (N, size, size, 3), identity labels int32 (N,)), N = n_identities * views_per_identity."""
    n_identities = SPLIT_IDENTITIES[split] if n_identities is None else n_identities
    if n_identities < 1 or views_per_identity < 1:
        raise ValueError(f"need >= 1 identity and view, got {n_identities} identities x {views_per_identity} views")
    if views_per_identity > 1000:
        raise ValueError("views_per_identity must be <= 1000 (view streams are indexed identity * 1000 + view)")
    n = n_identities * views_per_identity
    images = generate(_face_sample, n, workers, desc=f"faces/{split}", split=split,
                      views_per_identity=views_per_identity, seed=seed, size=size)
    return np.stack(images), (np.arange(n) // views_per_identity).astype(np.int32)


def _chip_sample(i, split, views_per_identity, seed, chip):
    return face_chip(split, i // views_per_identity, i % views_per_identity, seed, chip)


def face_chip(split: str, identity_index: int, view_index: int, seed: int, chip) -> np.ndarray:
    """One view framed as the pipeline frames a real photo for a veid_ml.alignment.Chip: rendered (face_image) at the
    size whose aligned eyes lie as far apart as the chip's, then cut by alignment.crop at the render's own five
    landmarks (what an exact detector would report)."""
    from veid_ml import alignment

    (x0, _), (x1, _) = chip.points_bp[:2]
    size = round((x1 - x0) / 10000 * chip.size / ALIGNED_EYE_DISTANCE)
    image, params, view = _face_view(split, identity_index, view_index, seed, size)
    marks = landmarks_in_render(params, view, size) - 0.5  # pixel centres at integers, as the detector reports
    return alignment.crop(image, alignment.landmarks_q4(marks.astype(np.float32)), chip)


def face_chip_dataset(split: str, n_identities: int, views_per_identity: int, seed: int, chip,
                      workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """face_dataset's identities and views as chips (face_chip): (uint8 (N, chip.size, chip.size, 3), labels)."""
    if n_identities < 1 or not 1 <= views_per_identity <= 1000:
        raise ValueError(f"need >= 1 identity and 1..1000 views, got {n_identities} x {views_per_identity}")
    n = n_identities * views_per_identity
    images = generate(_chip_sample, n, workers, desc=f"face chips/{split}", split=split,
                      views_per_identity=views_per_identity, seed=seed, chip=chip)
    return np.stack(images), (np.arange(n) // views_per_identity).astype(np.int32)


def write_contact_sheets(out_dir, size: int = 112, views: int = 8) -> str:
    """faces.png: one row per identity, one column per view; the first two rows are a look-alike (sibling) pair."""
    import os

    sibling = next(i for i in range(1, 200) if _is_sibling("train", i, 42))
    root = family_root("train", sibling, 42)
    rows = [root, sibling] + [i for i in range(12) if i not in (root, sibling)][:8]
    sheet = Image.new("RGB", (views * size, len(rows) * size))
    for r, ident in enumerate(rows):
        for c in range(views):
            sheet.paste(Image.fromarray(face_image("train", ident, c, 42, size)), (c * size, r * size))
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "faces.png")
    sheet.save(path)
    return path
