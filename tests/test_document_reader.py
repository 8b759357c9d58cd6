"""Document reader: card and MRZ location with classical image processing, and reading generated documents with the
committed OCR model."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import cv2
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "ml"))

from veid_ml import document_reader  # noqa: E402
from veid_ml.data import documents  # noqa: E402

WEIGHTS = ROOT / "ml" / "ocr_extraction" / "weights"


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


def test_reads_generated_documents():
    if not (WEIGHTS / "ocr_model" / "saved_model.pb").is_file():
        pytest.fail("no committed OCR model: run `cd ml/ocr_extraction && python train.py`")
    code = f"""
        import json
        from veid_ml import determinism
        determinism.configure(reexec=False)
        from veid_ml import export
        from veid_ml.data import documents
        from veid_ml.document_reader import read_document
        serve = export.load_serving({str(WEIGHTS / "ocr_model")!r})
        results = []
        for index, layout in [(0, "TD1"), (1, "TD3"), (2, "TD1"), (3, "TD3")]:
            image, fields, _ = documents.document_sample(index, "test", 42, layout)
            doc = read_document(image, serve)
            results.append({{"valid": bool(doc["mrz"] and doc["mrz"]["valid"]), "exact": doc["mrz_lines"] == fields["mrz"],
                             "surname": doc["fields"]["surname"] == fields["surname"], "layout": doc["layout"] == layout}})
        print(json.dumps(results))
    """
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT / "ml", capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    assert all(r["layout"] for r in results), results
    assert sum(r["valid"] for r in results) >= 3, results
    assert sum(r["surname"] for r in results) >= 2, results
