"""MRZ locator (issue 24): its synthetic scenes, the contract that turns its map into an upright band
(veid_ml.mrz_locator), the band's lines (document_reader.band_line_boxes), and the approved model reading generated
documents end to end."""

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw

from conftest import approved_model_dir, run_in_fresh_process
from veid_ml import document_reader, mrz_locator
from veid_ml.data import documents, mrz_scenes
from veid_ml.data.textlines import MRZ_FONT, font

GRID, SIZE = mrz_locator.GRID, mrz_locator.INPUT_SIZE


def test_scenes_are_pure_functions_with_the_band_inside():
    first = mrz_scenes.locator_sample(5, "val")
    again = mrz_scenes.locator_sample(5, "val")
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    x, target, corners = first
    assert x.shape == (SIZE, SIZE) and x.dtype == np.uint8
    assert target.shape == (GRID, GRID, 2) and 0 <= target.min() and target.max() <= 1
    assert target[..., 0].sum() > 4  # the band covers several cells
    assert (target[..., 1] <= target[..., 0] + 0.05).all()  # its upper half lies inside it
    assert 0.3 < target[..., 1].sum() / target[..., 0].sum() < 0.7
    assert corners.shape == (4, 2) and (corners > -2).all() and (corners < SIZE + 2).all()
    assert not np.array_equal(mrz_scenes.locator_sample(6, "val")[0], x)


def band_map(turned: bool) -> np.ndarray:
    """Logits of a horizontal band (rows 40-45, columns 10-49) whose upper half is rows 40-42, or turned 180 degrees."""
    logits = np.full((GRID, GRID, 2), -5.0)
    logits[40:46, 10:50, 0] = 5.0
    logits[40:43, 10:50, 1] = 5.0
    return logits[::-1, ::-1] if turned else logits


def test_band_corners_come_in_reading_order_whichever_way_up():
    shape = (SIZE, SIZE)
    upright = mrz_locator.band_corners(band_map(False), shape)
    tl, tr, br, bl = upright
    assert tl[0] < tr[0] and tl[1] < bl[1]  # upright: left to right, top to bottom
    assert np.allclose(tl, (10 * 8, 40 * 8), atol=1) and np.allclose(br, (50 * 8, 46 * 8), atol=1)
    turned = mrz_locator.band_corners(band_map(True), shape)
    assert turned[0][0] > turned[1][0] and turned[0][1] > turned[3][1]  # read right to left, bottom to top
    assert mrz_locator.band_corners(np.full((GRID, GRID, 2), -1.0), shape) is None
    # a photo twice the input's size: corners in its pixels
    assert np.allclose(mrz_locator.band_corners(band_map(False), (2 * SIZE, SIZE)), upright * 2, atol=1)


def ink_crop(gray: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(gray < 128)
    return gray[ys.min():ys.max() + 1, xs.min():xs.max() + 1]


def mrz_page(lines: list[str], turned: bool) -> tuple[np.ndarray, np.ndarray]:
    """A grey 400 x 640 page with MRZ lines at the bottom (optionally turned 180 degrees) and its band's logits."""
    page = Image.new("L", (640, 400), 235)
    draw = ImageDraw.Draw(page)
    for i, line in enumerate(lines):
        draw.text((40, 320 - 28 * (len(lines) - 1 - i)), line, font=font(MRZ_FONT, 18), fill=20)
    gray = np.asarray(page)
    logits = np.full((GRID, GRID, 2), -5.0)
    top = (320 - 28 * (len(lines) - 1)) * SIZE // 640 // 8
    logits[top - 1:top + 3 * len(lines) - 1, 3:62, 0] = 5.0
    logits[top - 1:top + 3 * len(lines) // 2, 3:62, 1] = 5.0
    if turned:  # the photo turned round, and the map over the part of the locator input it fills (its top-left)
        rows = 400 * SIZE // 640 // 8
        logits[:rows] = logits[:rows][::-1, ::-1].copy()
        gray = gray[::-1, ::-1].copy()
    return gray, logits


@pytest.mark.parametrize("turned", [False, True])
@pytest.mark.parametrize("count", [2, 3])
def test_band_image_is_upright_and_its_lines_are_found(count, turned):
    lines = ["P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<", "L898902C36UTO7408122F1204159ZE184226B<<<<<10",
             "ERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<"][:count]
    gray, logits = mrz_page(lines, turned)
    band = mrz_locator.band_image(gray, mrz_locator.band_corners(logits, gray.shape))
    boxes = document_reader.band_line_boxes(band)
    assert len(boxes) == count
    assert [b[1] for b in boxes] == sorted(b[1] for b in boxes)
    # the first line found reads like the first line printed, not like it turned round
    crop = ink_crop(band[boxes[0][1]:boxes[0][3], boxes[0][0]:boxes[0][2]])
    reference = cv2.resize(ink_crop(mrz_page(lines[:1], False)[0]), crop.shape[::-1], interpolation=cv2.INTER_AREA)
    assert np.abs(crop.astype(int) - reference).mean() < np.abs(crop[::-1, ::-1].astype(int) - reference).mean()
    for x0, y0, x1, y1 in boxes:  # margins around the ink: no dark pixel on a box's rim
        crop = band[y0:y1, x0:x1]
        assert crop[0].min() > 100 and crop[-1].min() > 100 and crop[:, 0].min() > 100 and crop[:, -1].min() > 100


def test_a_band_without_text_rows_is_refused_by_name():
    with pytest.raises(ValueError, match="MRZ text rows"):
        document_reader.band_line_boxes(np.full((40, 400), 230, np.uint8))
    blank = np.full((300, 300, 3), 200, np.uint8)
    with pytest.raises(ValueError, match="no MRZ found"):
        document_reader.locate(blank, lambda x: np.full((GRID, GRID, 2), -100, np.int32))


def read_with_locator(ocr_dir, locator_dir) -> list[dict]:
    """Run in a fresh process: read_document with the approved locator and OCR on generated test documents, turned
    0, 90, 180 and 270 degrees in turn."""
    import tensorflow as tf

    from veid_ml import export

    ocr = export.load_serving(ocr_dir)
    locator = export.load_serving(locator_dir)

    def band_logits(x):
        return locator(image=tf.constant(x[None, :, :, None]))["band_logits_q10"].numpy()[0]

    results = []
    for index in range(8):
        layout = ("TD1", "TD3")[index % 2]
        image, fields, _ = documents.document_sample(index, "test", 42, layout)
        image = np.rot90(image, k=index % 4).copy()
        try:
            doc = document_reader.read_document(image, ocr, band_logits)
            lines = doc["mrz_lines"]
        except ValueError:
            lines = []
        truth = fields["mrz"]
        results.append({"count": len(lines) == len(truth), "exact": lines == truth,
                        "lines": sum(a == b for a, b in zip(lines, truth)), "of": len(truth)})
    return results


def test_the_approved_locator_finds_the_mrz_of_generated_documents_any_way_up():
    """Eight generated documents, two at each quarter turn: the approved locator and OCR read seven or more exactly,
    at least one each way up (the locator's "up" is sometimes wrong: the reader also reads the band turned round)."""
    results = run_in_fresh_process(read_with_locator, approved_model_dir("ocr_extraction"),
                                   approved_model_dir("mrz_locator"))
    assert sum(r["exact"] for r in results) >= 7, results
    assert all(results[k]["exact"] or results[k + 4]["exact"] for k in range(4)), results


def test_a_band_found_over_one_line_is_widened_to_its_neighbours(monkeypatch):
    """The locator's map on real specimens can cover one MRZ line only: locate looks again with WIDE_MARGIN (here
    wide enough for this one-cell band, 10 px high between lines 28 px apart)."""
    monkeypatch.setattr(mrz_locator, "WIDE_MARGIN", 3.0)
    lines = ["IDMLT9999999<<3<9999999M<999<<", "7309258F0810245MLT0310240<<<<5", "ERIKSSON<<ANNA<MARIA<<<<<<<<<<"]
    gray, logits = mrz_page(lines, False)
    middle = np.full_like(logits, -5.0)
    rows = np.nonzero((logits[..., 0] > 0).any(axis=1))[0]
    centre = (rows.min() + rows.max()) // 2
    middle[centre, 3:62, 0] = 5.0
    middle[centre, 3:62, 1] = 5.0
    band = mrz_locator.band_image(gray, mrz_locator.band_corners(middle, gray.shape))
    with pytest.raises(ValueError, match="MRZ text rows"):
        document_reader.band_line_boxes(band)
    located = document_reader.locate(np.stack([gray] * 3, axis=-1), lambda x: middle)
    assert len(located.mrz_lines) >= 2  # the retry found the neighbouring line(s) the narrow band missed


def test_band_candidates_come_heaviest_first():
    logits = np.full((GRID, GRID, 2), -5.0)
    logits[10:13, 5:30, 0] = 2.0  # a light group (75 cells)
    logits[40:46, 10:50, 0] = 5.0  # a heavy one (240 cells)
    logits[40:43, 10:50, 1] = 5.0
    first, second = mrz_locator.band_candidates(logits, (SIZE, SIZE), 3)
    assert np.array_equal(first, mrz_locator.band_corners(logits, (SIZE, SIZE)))
    assert np.allclose(first[0], (10 * 8, 40 * 8), atol=1) and np.allclose(second[0][1], 10 * 8, atol=1)
    assert len(mrz_locator.band_candidates(logits, (SIZE, SIZE), 1)) == 1
    assert mrz_locator.band_candidates(np.full((GRID, GRID, 2), -1.0), (SIZE, SIZE), 3) == []


def test_the_band_reaches_the_photos_edges_and_its_rows_skip_a_card_edge():
    """A map over the right part of the lines only: the band still holds each line's first character (the band runs
    to the photo's edges and a line is the ink run through the band), and a card's vertical edge left of the text
    (a line taller than any character) is not taken for an 'I'."""
    lines = ["IDMLT9999999<<3<9999999M<999<<", "7309258F0810245MLT0310240<<<<5", "ERIKSSON<<ANNA<MARIA<<<<<<<<<<"]
    gray, logits = mrz_page(lines, False)
    gray = gray.copy()
    gray[150:390, 34:36] = 20  # the card's edge, 4 px left of the text (inside a line's end margin)
    right = logits.copy()
    right[..., :40, :] = -5.0  # the map covers columns 40-61 (of the text's 3-61)
    corners = mrz_locator.band_corners(right, gray.shape)
    band = mrz_locator.band_image(gray, corners)
    assert band.shape[1] >= gray.shape[1] - 2  # a horizontal band: the photo's whole width
    boxes = document_reader.band_line_boxes(band, mrz_locator.band_columns(corners, gray.shape))
    assert len(boxes) == 3
    text_left = np.nonzero((gray[200:400] < 128).any(axis=0))[0]
    first_ink = text_left[text_left > 36].min()
    for x0, y0, x1, y1 in boxes:
        assert 36 <= x0 <= first_ink  # from beyond the card's edge up to the first character
        assert band[y0:y1, x0:x1][:, 0].min() > 100  # its rim cuts no character


def test_mrz_reading_score_prefers_lines_that_read_as_a_valid_mrz():
    line_1, line_2 = "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<", "L898902C36UTO7408122F1204159ZE184226B<<<<<10"
    score = document_reader.mrz_reading_score
    valid, broken = score([line_1, line_2]), score([line_1, line_2[:-1] + "1"])  # the composite check digit wrong
    misread = score([line_1, line_2[:-3]])  # three characters short: beyond mending, no parse
    assert score([line_1, line_2[:-3] + line_2[-2:]]) == valid  # a filler short: mended (mrz.correct_reading)
    visual_zone = score(["Date of expiry 15 APR 12 Signature", line_1])
    assert valid > broken > misread > visual_zone
    assert valid[:2] == (1, 1.0) and broken[0] == 1 and broken[1] < 1 and misread[0] == 0
    td1 = ["I<UTOD231458907<<<<<<<<<<<<<<<", "7408122F1204159UTO<<<<<<<<<<<6", "ERIKSSON<<ANNA<MARIA<<<<<<<<<<"]
    assert score(td1)[:2] == (1, 1.0) and score(td1[:2]) < score(td1)


def read_decoy_page(ocr_dir) -> list[str]:
    """Run in a fresh process: the approved OCR reads a page whose locator map marks a block of other text as the
    heaviest group, and the MRZ band one line too high (over the text above it)."""
    from veid_ml import export

    ocr = export.load_serving(ocr_dir)
    lines = ["P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<", "L898902C36UTO7408122F1204159ZE184226B<<<<<10"]
    page = Image.new("L", (640, 400), 235)
    draw = ImageDraw.Draw(page)
    draw.text((40, 40), "PASSPORT  UTOPIA  ERIKSSON ANNA MARIA", font=font(MRZ_FONT, 18), fill=20)
    draw.text((40, 68), "12 AUG 74  F  15 APR 12  ZENITH", font=font(MRZ_FONT, 18), fill=20)
    draw.text((40, 264), "SIGNATURE OF BEARER  ANNA ERIKSSON", font=font(MRZ_FONT, 18), fill=20)
    for i, line in enumerate(lines):
        draw.text((40, 292 + 28 * i), line, font=font(MRZ_FONT, 18), fill=20)
    logits = np.full((GRID, GRID, 2), -5.0)
    logits[3:9, 3:50, 0] = 9.0  # the decoy: the heaviest group
    logits[32:38, 3:62, 0] = 5.0  # rows 264-304 of the page: the line above the MRZ and MRZ line 1
    logits[32:35, 3:62, 1] = 5.0
    rgb = np.stack([np.asarray(page)] * 3, axis=-1)
    return document_reader.read_document(rgb, ocr, lambda x: logits)["mrz_lines"]


def test_locate_keeps_the_rows_that_read_as_an_mrz():
    assert run_in_fresh_process(read_decoy_page, approved_model_dir("ocr_extraction")) == [
        "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<", "L898902C36UTO7408122F1204159ZE184226B<<<<<10"]


def annotated_page() -> tuple[np.ndarray, np.ndarray]:
    """A passport page whose MRZ has arrows drawn from a box to its characters, and a locator map that marks only the
    printed text at the top (no group over the MRZ)."""
    lines = ["P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<", "L898902C36UTO7408122F1204159ZE184226B<<<<<10"]
    page = Image.new("L", (640, 400), 235)
    draw = ImageDraw.Draw(page)
    draw.text((40, 40), "PASSPORT  UTOPIA  ERIKSSON ANNA MARIA", font=font(MRZ_FONT, 18), fill=20)
    draw.text((40, 68), "12 AUG 74  F  15 APR 12  ZENITH", font=font(MRZ_FONT, 18), fill=20)
    for i, line in enumerate(lines):
        draw.text((40, 292 + 28 * i), line, font=font(MRZ_FONT, 18), fill=20)
    draw.rectangle((300, 230, 400, 250), outline=60)
    for x in (120, 330, 560):  # arrows from the box down to characters of both lines
        draw.line((350, 250, x, 322), fill=60, width=1)
        draw.rectangle((x - 8, 318, x + 8, 346), outline=60)
    logits = np.full((GRID, GRID, 2), -5.0)
    logits[3:9, 3:50, 0] = 9.0
    logits[3:6, 3:50, 1] = 9.0
    return np.stack([np.asarray(page)] * 3, axis=-1), logits


def test_the_fallback_finds_long_text_lines_the_locator_missed():
    rgb, _ = annotated_page()
    blocks = document_reader.long_text_blocks(rgb[..., 0])
    (x0, y0), (x1, y1) = blocks[0][0], blocks[0][2]
    assert y0 <= 292 and y1 >= 292 + 28 + 18 and x0 <= 45 and x1 >= 560  # both MRZ lines, whole
    assert document_reader.long_text_blocks(np.full((300, 500), 230, np.uint8)) == []


def read_annotated_page(ocr_dir) -> list[str]:
    """Run in a fresh process: the approved OCR reads annotated_page with its locator map."""
    from veid_ml import export

    rgb, logits = annotated_page()
    return document_reader.read_document(rgb, export.load_serving(ocr_dir), lambda x: logits)["mrz_lines"]


def test_a_reading_that_never_parses_falls_back_to_long_text_lines():
    assert run_in_fresh_process(read_annotated_page, approved_model_dir("ocr_extraction")) == [
        "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<", "L898902C36UTO7408122F1204159ZE184226B<<<<<10"]
