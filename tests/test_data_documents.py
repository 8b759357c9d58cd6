"""Synthetic ID documents and text lines: determinism, held-out fonts, valid MRZs, alphabet and shapes."""

import numpy as np
import pytest

from conftest import run_in_fresh_process
from veid_ml import mrz
from veid_ml.data import documents, textlines
from veid_ml.data.identity_fields import mrz_fields, person_fields
from veid_ml.data.rng import content_hash
from veid_ml.ocr_contract import ALPHABET

def hash_text_lines_and_a_document() -> tuple:
    images, texts, kinds = textlines.text_line_dataset("train", 12, workers=1)
    doc, fields, info = documents.document_sample(3, "test", layout="TD1")
    return content_hash(images, doc), texts, fields["mrz"]


def test_same_bytes_in_a_fresh_process():
    # another interpreter (its own hash seed, nothing cached); no TensorFlow involved, so no determinism configure
    assert run_in_fresh_process(hash_text_lines_and_a_document, configure=False) == hash_text_lines_and_a_document()


def test_worker_count_does_not_change_the_dataset():
    one = textlines.text_line_dataset("val", 70, workers=1)  # 70 > one chunk of 64, so two workers share it
    two = textlines.text_line_dataset("val", 70, workers=2)
    assert content_hash(one[0]) == content_hash(two[0])
    assert one[1:] == two[1:]


def test_test_split_fonts_are_held_out():
    train, val, test = (set(textlines.field_fonts(s)) for s in ("train", "val", "test"))
    assert train.isdisjoint(test) and val.isdisjoint(test)
    assert len(test - set(textlines.FONTS["test"]["mono"])) >= 2 and textlines.FONTS["test"]["mono"]
    assert textlines.MRZ_FONT not in train | test  # OCR-B is shared by all splits, for the MRZ only
    for name in train | test | {textlines.MRZ_FONT}:
        assert (textlines.FONT_DIR / name).is_file()


def test_every_generated_mrz_is_valid():
    for i in range(150):
        person = person_fields("train", i)
        for layout in ("TD1", "TD2", "TD3"):
            result = mrz.parse_mrz(mrz.BUILDERS[layout](mrz_fields(person, layout)))
            assert result.valid, (layout, person)
            if layout == "TD1":
                assert result.document_number == person["document_number"]
    assert any(len(person_fields("train", i)["document_number"]) > 9 for i in range(150))


def test_text_lines_shapes_alphabet_and_mix():
    images, texts, kinds = textlines.text_line_dataset("test", 60, height=32, width=512, workers=1)
    assert images.shape == (60, 32, 512) and images.dtype == np.uint8
    assert all(set(t) <= set(ALPHABET) and 0 < len(t) <= 44 for t in texts)
    mrz_texts = [t for t, k in zip(texts, kinds) if k == "mrz"]
    assert 10 <= len(mrz_texts) <= 40 and set(kinds) == {"mrz", "field"}
    assert all(len(t) in (30, 36, 44) and set(t) <= set(mrz.MRZ_CHARS) for t in mrz_texts)
    assert any(t != t.upper() for t in texts)  # mixed-case printed fields occur
    assert images.std(axis=(1, 2)).min() > 5  # every crop carries ink


def test_text_line_other_sizes_and_longest_mrz_fit():
    image, text, kind = textlines.text_line_sample(0, "train", height=48, width=256)
    assert image.shape == (48, 256) and image.dtype == np.uint8
    rng = np.random.default_rng(0)
    mask = textlines.render_text_mask("P<UTO" + "<" * 39, textlines.MRZ_FONT, 24, rng, tracking=0.08)
    assert mask.max() > 0.9


def test_low_resolution_lines_only_in_training_unless_asked():
    """Train lines are captured small at LOW_RES_SHARE; validation and test lines never (the specification's test
    set), unless a low-resolution test set asks for them: the same text, softer (less high-frequency energy)."""
    def sharpness(image):
        return float(np.abs(np.diff(image.astype(np.float32), axis=1)).mean())

    for i in range(4):
        standard, text, _ = textlines.text_line_sample(i, "test")
        assert np.array_equal(standard, textlines.text_line_sample(i, "test", low_res_share=0.0)[0])
        small, small_text, _ = textlines.text_line_sample(i, "test", low_res_share=1.0)
        assert small_text == text and small.shape == standard.shape
        assert sharpness(small) < sharpness(standard)
    softer = sum(sharpness(textlines.text_line_sample(i, "train")[0])
                 < 0.9 * sharpness(textlines.text_line_sample(i, "train", low_res_share=0.0)[0]) for i in range(60))
    assert 0.08 * 60 <= softer <= 0.45 * 60  # about LOW_RES_SHARE of the train lines (the mildest look unchanged)


@pytest.mark.parametrize("layout,size", [("TD1", (480, 720, 3)), ("TD3", (600, 840, 3))])
def test_document_sample(layout, size):
    image, fields, info = documents.document_sample(1, "train", layout=layout)
    assert image.shape == size and image.dtype == np.uint8
    assert mrz.parse_mrz(fields["mrz"]).valid
    assert len(fields["mrz"]) == (3 if layout == "TD1" else 2)
    boxes = info["boxes"]
    for name in ("surname", "given_names", "birth_date", "document_number", "photo", "mrz", "document"):
        assert name in boxes and name in info["quads"]
    for name, (x0, y0, x1, y1) in boxes.items():
        assert 0 <= x0 < x1 <= size[1] and 0 <= y0 < y1 <= size[0], name
    assert boxes["mrz"][1] > boxes["surname"][3]  # the MRZ band is below the printed fields
    assert all(set(v) <= set(ALPHABET) for k, v in fields.items() if k != "mrz")


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="layout"):
        documents.document_sample(0, "train", layout="TD2")
    with pytest.raises(ValueError, match="split"):
        textlines.text_line_sample(0, "dev")
