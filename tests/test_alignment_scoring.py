"""The integer face crop (veid_ml.alignment) and the integer VEID score (veid_ml.scoring): the rules their docstrings
state, checked on hand-made cases and random inputs. TF-free."""

import datetime

import numpy as np
import pytest

from veid_ml import alignment, scoring


def test_round_div_rounds_halves_up_for_negative_numerators_too():
    assert [alignment.round_div(n, 4) for n in (-6, -5, -2, -1, 1, 2, 5, 6)] == [-1, -1, 0, 0, 0, 1, 1, 2]
    assert alignment.round_div(np.array([-6, 6]), 4).tolist() == [-1, 2]


def test_landmarks_are_rounded_to_sixteenths_and_each_pair_ordered_left_first():
    points = alignment.landmarks_q4(np.float32([[40.03125, 10.0], [20.5, 11.0], [30, 20], [35, 30], [25, 31]]))
    # 40.03125 * 16 = 640.5 -> 640 (half to even); eyes and mouth corners swapped to image-left first
    assert points.tolist() == [[328, 176], [640, 160], [480, 320], [400, 496], [560, 480]]
    assert alignment.landmarks_q4(np.float32([[40.03125, 10.0], [20.5, 11.0]])).tolist() == [[328, 176], [640, 160]]
    # the integer detector's own 1/16 px output: only ordered (ties keep the detector's order)
    assert alignment.ordered_q4(np.array([[640, 160], [328, 176], [1, 2], [9, 9], [9, 1]])).tolist() == [
        [328, 176], [640, 160], [1, 2], [9, 9], [9, 1]]


def test_five_point_fit_is_exact_for_a_similar_face_and_least_squares_otherwise():
    """Landmarks that are the chip's own points scaled by 2, rotated 90 degrees and shifted: the fit recovers that
    map exactly (A = 2i in Q16); moving one point moves the fit by a fifth of it, not all of it."""
    chip = alignment.FACE_CHIP
    c = alignment.chip_q4(chip)
    rotated = np.stack([-2 * c[:, 1], 2 * c[:, 0]], axis=1) + [16 * 1000, 16 * 50]
    assert alignment.fit_q16(rotated, chip)[:2] == (0, 2 * 65536)
    sx, sy = alignment.source_points_q16(rotated, chip)
    assert (sx[0, 0], sy[0, 0]) == (1000 << 16, 50 << 16)  # crop pixel (0, 0) -> photo (1000, 50)
    moved = c.copy()
    moved[2] += [16 * 5, 0]  # the nose 5 px to the right: the whole fit shifts 1 px
    sx, _ = alignment.source_points_q16(moved, chip)
    ax, ay, _, _ = alignment.fit_q16(moved, chip)
    assert abs(ax - 65536) < 700 and abs(ay) < 700 and abs(int(sx[75, 75]) - ((75 << 16) + 65536)) < 65536 // 4


CHIP64 = alignment.Chip(64, alignment.CANONICAL_EYES_BP, zero_border=False)
CHIPS = (CHIP64, alignment.LIVENESS_CHIP, alignment.FACE_CHIP)


@pytest.mark.parametrize("chip", CHIPS)
def test_a_face_already_at_the_canonical_eyes_is_copied_pixel_for_pixel(chip):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (chip.size, chip.size, 3), dtype=np.uint8)
    eyes = alignment.chip_q4(chip)  # the crop's own eye points: the identity map
    assert alignment.shrink_factor(eyes, chip) == 1
    assert np.array_equal(alignment.crop(image, eyes, chip), image)


def test_a_face_twice_as_large_is_shrunk_by_2x2_block_means():
    chip, size = CHIP64, CHIP64.size
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (2 * size, 2 * size, 3), dtype=np.uint8)
    # eyes at twice the canonical points, on block centres: k = 1 (scale 2 is not > 2 * 1.x), plain bilinear
    eyes = alignment.chip_q4(chip) * 2 + 8
    assert alignment.shrink_factor(eyes, chip) == 1
    # at 4x the size, k = 2: the crop equals the crop of the 2x2-block-mean image at 2x
    big = np.repeat(np.repeat(image, 2, axis=0), 2, axis=1)
    eyes4 = alignment.chip_q4(chip) * 4 + 24
    assert alignment.shrink_factor(eyes4, chip) == 2
    assert np.array_equal(alignment.block_average(big, 2), image)
    assert np.array_equal(alignment.crop(big, eyes4, chip), alignment.crop(image, eyes, chip))


def test_a_small_photo_is_padded_with_black_on_the_face_chip_and_its_edge_repeats_on_others():
    """A 30 x 30 grey photo whose face fills it: the face chip shows it on black, never smeared; the liveness crop
    repeats its edge (its model learned from crops inside larger renders)."""
    image = np.full((30, 30, 3), 200, np.uint8)
    points = alignment.landmarks_q4(np.float32([[12, 4], [28, 4], [20, 11], [14, 18], [26, 18]]))
    face = alignment.crop(image, points, alignment.FACE_CHIP)
    assert face[0, 0].tolist() == [0, 0, 0] and face[-1, -1].tolist() == [0, 0, 0]
    assert face[75, 75].tolist() == [200, 200, 200]
    assert set(np.unique(face)) <= set(range(0, 201))  # edges blend toward black, nothing brighter appears
    live = alignment.crop(image, points, alignment.LIVENESS_CHIP)
    assert np.all(live == 200)


def test_block_average_rounds_half_up():
    image = np.array([[[0], [1]], [[1], [0]]], np.uint8)  # mean 0.5 -> 1
    assert alignment.block_average(image, 2).tolist() == [[[1]]]


@pytest.mark.parametrize("seed", range(3))
def test_windowed_crop_equals_the_whole_image_rule(seed):
    """crop() shrinks and reads only the window the samples reach; the docstring's rule shrinks the whole photo."""
    rng = np.random.default_rng(seed)
    for _ in range(300):
        h, w = (int(v) for v in rng.integers(32, 500, 2))
        image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        points = alignment.landmarks_q4(rng.uniform(-40, max(h, w) + 40, (5, 2)).astype(np.float32))
        if alignment.eye_distance_sq_q4(points) == 0:
            continue
        for chip in CHIPS:
            assert np.array_equal(alignment.crop(image, points, chip), alignment.crop_whole(image, points, chip))


def test_basis_points_and_similarity_are_integers_with_stated_rounding():
    assert scoring.basis_points(np.float32(0.5)) == 5000
    assert scoring.basis_points(np.float32(0.00005)) == 0  # float32(0.00005) is just below half a bp
    one = scoring.quantise_embedding(np.eye(4, dtype=np.float32)[0])
    assert one.tolist() == [16384, 0, 0, 0]
    assert scoring.similarity_bp(one, one) == 10000
    assert scoring.similarity_bp(one, -one) == 0  # opposite faces: clamped, never negative
    half = scoring.quantise_embedding(np.float32([0.5, np.sqrt(0.75), 0, 0]))
    assert scoring.similarity_bp(one, half) == 5000
    # not unit length (dlib's descriptors): 1 - d^2 / 2, so dlib's distance threshold 0.6 is 8200
    zero = scoring.quantise_embedding(np.zeros(4, np.float32))
    assert scoring.similarity_bp(scoring.quantise_embedding(np.float32([0.6, 0, 0, 0])), zero) == 8200
    assert scoring.similarity_bp(scoring.quantise_embedding(np.float32([0, 3, 0, 0])), zero) == 0  # clamped


def test_points_put_every_threshold_at_50():
    for t in (1, 5442, 8574, 9999):
        assert scoring.points(t, t) == 50 and scoring.points(t - 1, t) < 50 and scoring.points(10000, t) == 100
        assert scoring.points(0, t) == 0


def test_decision_rules():
    ok = scoring.combine(7000, 5442, 9000, 8574, True, [])
    assert ok["decision"] == "accept" and ok["score"] >= 50 and ok["reasons"] == []
    mismatch = scoring.combine(5441, 5442, 9000, 8574, True, [])
    assert mismatch["decision"] == "reject" and mismatch["score"] < 50
    assert [r["code"] for r in mismatch["reasons"]] == ["face_mismatch"]
    attack = scoring.combine(7000, 5442, 100, 8574, True, [])
    assert [r["code"] for r in attack["reasons"]] == ["presentation_attack"] and attack["decision"] == "reject"
    retake = scoring.combine(None, 5442, None, 8574, False, [scoring.reason("no_face_in_selfie")])
    assert retake["decision"] == "retake" and retake["score"] == 0
    # a reject reason wins over a retake reason: retaking the selfie cannot fix an expired document
    both = scoring.combine(None, 5442, None, 8574, False, [scoring.reason("no_face_in_selfie"),
                                                            scoring.reason("document_expired")])
    assert both["decision"] == "reject"
    # a failed document gives 0 however good the faces are
    assert scoring.combine(10000, 5442, 10000, 8574, False, [scoring.reason("mrz_checksum_failed:expiry")])[
        "score"] == 0


def test_document_reasons_name_the_failed_check_and_the_expiry():
    today = datetime.date(2026, 11, 29)
    checks = {"document_number": True, "expiry_date": False, "composite": False}
    codes = [r["code"] for r in scoring.document_reasons(checks, "261128", today)]
    assert codes == ["mrz_checksum_failed:expiry", "mrz_checksum_failed:composite", "document_expired"]
    assert scoring.document_reasons({}, "261129", today) == []  # valid through its expiry day
    assert [r["code"] for r in scoring.document_reasons({}, "261340", today)] == ["mrz_invalid_date:expiry"]


def test_eyes_far_outside_a_tiny_photo_still_give_a_crop():
    """The shrink factor is capped at the photo's shorter side: a detector's wild landmarks cannot empty the photo."""
    image = np.arange(40 * 40 * 3, dtype=np.uint8).reshape(40, 40, 3)
    points = alignment.landmarks_q4(np.float32([[-3000, 10], [3000, 10], [0, 3000], [-2000, 6000], [2000, 6000]]))
    for chip in CHIPS:
        assert alignment.shrink_factor(points, chip) > 40
        assert np.array_equal(alignment.crop(image, points, chip), alignment.crop_whole(image, points, chip))


def test_liveness_box_scales_about_the_centre_and_stays_inside():
    # a 40 x 50 box at (100, 100) in a 640 x 480 photo: 108 x 135 about the centre (120, 125),
    # left = (200 + 40 - 108) // 2 = 66, top = (200 + 50 - 135) // 2 = 57, both corners kept (+1)
    assert alignment.liveness_box([100, 100, 140, 150], 480, 640) == (66, 57, 109, 136)
    # near the left/top edges: moved inside
    assert alignment.liveness_box([0, 0, 40, 50], 480, 640)[:2] == (0, 0)
    # a box larger than the photo allows: the scale drops to (height - 1) / h = 99 / 80, then the box is moved inside
    left, top, w, h = alignment.liveness_box([10, 10, 70, 90], 100, 300)
    assert (h, top) == (99 + 1, 0) and w == 60 * 99 // 80 + 1 and 0 <= left and left + w <= 300


def test_crop_region_of_the_whole_image_at_its_own_size_is_the_image():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (80, 80, 3), dtype=np.uint8)
    assert np.array_equal(alignment.crop_region(image, (0, 0, 80, 80), 80), image)
    big = np.repeat(np.repeat(image, 4, axis=0), 4, axis=1)  # 4x: 2 x 2 block means, then an exact 2x bilinear
    assert alignment.crop_region(big, (0, 0, 320, 320), 80).shape == (80, 80, 3)
    assert np.abs(alignment.crop_region(big, (0, 0, 320, 320), 80).astype(int) - image).max() <= 1
