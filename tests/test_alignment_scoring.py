"""The integer face crop (veid_ml.alignment) and the integer VEID score (veid_ml.scoring): the rules their docstrings
state, checked on hand-made cases and random inputs. TF-free."""

import datetime

import numpy as np
import pytest

from veid_ml import alignment, scoring


def test_round_div_rounds_halves_up_for_negative_numerators_too():
    assert [alignment.round_div(n, 4) for n in (-6, -5, -2, -1, 1, 2, 5, 6)] == [-1, -1, 0, 0, 0, 1, 1, 2]
    assert alignment.round_div(np.array([-6, 6]), 4).tolist() == [-1, 2]


def test_eyes_are_rounded_to_sixteenths_and_ordered_left_first():
    eyes = alignment.eyes_q4(np.float32([[40.03125, 10.0], [20.5, 11.0], [0, 0], [0, 0], [0, 0]]))
    assert eyes.tolist() == [[328, 176], [640, 160]]  # 40.03125 * 16 = 640.5 -> 640 (half to even)


def test_a_face_already_at_the_canonical_eyes_is_copied_pixel_for_pixel():
    size = 64
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    eyes = alignment.canonical_q4(size)  # the crop's own eye points: the identity map
    assert alignment.shrink_factor(eyes, size) == 1
    assert np.array_equal(alignment.crop(image, eyes, size), image)


def test_a_face_twice_as_large_is_shrunk_by_2x2_block_means():
    size = 64
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (2 * size, 2 * size, 3), dtype=np.uint8)
    # eyes at twice the canonical points, on block centres: k = 1 (scale 2 is not > 2 * 1.x), plain bilinear
    eyes = alignment.canonical_q4(size) * 2 + 8
    assert alignment.shrink_factor(eyes, size) == 1
    # at 4x the size, k = 2: the crop equals the crop of the 2x2-block-mean image at 2x
    big = np.repeat(np.repeat(image, 2, axis=0), 2, axis=1)
    eyes4 = alignment.canonical_q4(size) * 4 + 24
    assert alignment.shrink_factor(eyes4, size) == 2
    assert np.array_equal(alignment.block_average(big, 2), image)
    assert np.array_equal(alignment.crop(big, eyes4, size), alignment.crop(image, eyes, size))


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
        eyes = alignment.eyes_q4(rng.uniform(-40, max(h, w) + 40, (2, 2)).astype(np.float32))
        if alignment.eye_distance_sq_q4(eyes) == 0:
            continue
        for size in (64, 128):
            assert np.array_equal(alignment.crop(image, eyes, size), alignment.crop_whole(image, eyes, size))


def test_basis_points_and_similarity_are_integers_with_stated_rounding():
    assert scoring.basis_points(np.float32(0.5)) == 5000
    assert scoring.basis_points(np.float32(0.00005)) == 0  # float32(0.00005) is just below half a bp
    one = scoring.quantise_embedding(np.eye(4, dtype=np.float32)[0])
    assert one.tolist() == [16384, 0, 0, 0]
    assert scoring.similarity_bp(one, one) == 10000
    assert scoring.similarity_bp(one, -one) == 0  # opposite faces: clamped, never negative
    half = scoring.quantise_embedding(np.float32([0.5, np.sqrt(0.75), 0, 0]))
    assert scoring.similarity_bp(one, half) == 5000


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
    eyes = alignment.eyes_q4(np.float32([[-3000, 10], [3000, 10]]))
    for size in (64, 128):
        assert alignment.shrink_factor(eyes, size) > 40
        assert np.array_equal(alignment.crop(image, eyes, size), alignment.crop_whole(image, eyes, size))


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
