"""Document reader: card and MRZ location with classical image processing, and reading generated documents with the
committed OCR model."""

import cv2
import numpy as np
import pytest

from conftest import approved_model_dir, run_in_fresh_process
from veid_ml import document_reader
from veid_ml.data import documents


@pytest.mark.parametrize("index,layout", [(0, "TD1"), (1, "TD3"), (2, "TD1")])
def test_card_and_mrz_lines_are_found(index, layout):
    image, fields, info = documents.document_sample(index, "test", 42, layout)
    gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    quad = document_reader.find_card(gray)
    assert np.abs(quad - np.array(info["quads"]["document"])).max() < 6  # pixels
    page, found_layout = document_reader.flatten_card(gray, quad)
    assert found_layout == layout
    boxes = document_reader.mrz_line_boxes(page, layout)
    assert len(boxes) == len(fields["mrz"])
    assert all(x1 - x0 > 10 * (y1 - y0) for x0, y0, x1, y1 in boxes)  # long, thin text lines


def test_fit_line_keeps_aspect_and_rejects_bad_input():
    line = document_reader.fit_line(np.full((20, 100), 200, np.uint8))
    assert line.shape == (32, 512) and line.dtype == np.uint8
    with pytest.raises(ValueError):
        document_reader.fit_line(np.zeros((0, 10), np.uint8))
    with pytest.raises(ValueError):
        document_reader.read_document(np.zeros((10, 10), np.uint8), ocr_serving=None)


def read_documents(model_dir) -> list[dict]:
    """Run in a fresh process: read_document with the committed OCR model on twelve generated test documents."""
    from veid_ml import export

    serve = export.load_serving(model_dir)
    results = []
    for index, layout in [(i, ("TD1", "TD3")[i % 2]) for i in range(12)]:
        image, fields, _ = documents.document_sample(index, "test", 42, layout)
        doc = document_reader.read_document(image, serve)
        results.append({"valid": bool(doc["mrz"] and doc["mrz"]["valid"]), "exact": doc["mrz_lines"] == fields["mrz"],
                        "surname": doc["fields"]["surname"] == fields["surname"], "layout": doc["layout"] == layout})
    return results


def test_reads_generated_documents():
    """Twelve, not four: one O/0 confusion decides a document, and a re-trained model misreads other ones (the
    approved model reads 33 of the first 40 with valid check digits, and 4 of these 12 surnames exactly: its float
    twin reads the same)."""
    results = run_in_fresh_process(read_documents, approved_model_dir("ocr_extraction"))
    assert all(r["layout"] for r in results), results
    assert sum(r["valid"] for r in results) >= 8, results
    assert sum(r["surname"] for r in results) >= 3, results
