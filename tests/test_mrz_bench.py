"""veid-ml bench mrz-documents: scoring, MRZ-candidate selection and label errors (no TensorFlow, no images)."""

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

from veid_ml.tools import mrz_bench

ROOT = Path(__file__).resolve().parent.parent
# ICAO 9303 example TD3 (all check digits valid) and a TD1 line set
TD3 = ["P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<", "L898902C36UTO7408122F1204159ZE184226B<<<<<10"]
TD1 = ["I<UTOD231458907<<<<<<<<<<<<<<<", "7408122F1204159UTO<<<<<<<<<<<6", "ERIKSSON<<ANNA<MARIA<<<<<<<<<<"]


def test_score_exact_with_spaces_and_case():
    pred = ["p<utoeriksson<<anna<maria<<<<<<<<<<<<<<<<<<<", "L898902C36UTO 7408122F1204159ZE184226B<<<<< 10"]
    assert mrz_bench.score_document(TD3, pred, True) == {"lines_exact": 2, "exact": True, "valid": True}


def test_score_partial_and_extra_lines():
    wrong = TD3[1].replace("7408122", "7408123")
    assert mrz_bench.score_document(TD3, [TD3[0], wrong], True) == {"lines_exact": 1, "exact": False,
                                                                     "valid": False}
    # the right lines plus an extra one: lines exact, document not
    assert mrz_bench.score_document(TD3, TD3 + ["X" * 44], True)["exact"] is False
    assert mrz_bench.score_document(TD3, [], True) == {"lines_exact": 0, "exact": False, "valid": False}
    # valid is only counted for documents labelled all_check_digits_valid
    assert mrz_bench.score_document(TD3, TD3, False)["valid"] is None


def test_candidates_td3_and_td1():
    text = ["PASSPORT  PASSEPORT", "ERIKSSON", "ANNA MARIA << noise", *TD3]
    assert mrz_bench.mrz_candidates(text) == TD3
    text = ["IDENTITY CARD", "<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<<", "I<UTOD231458907 <<<<<<<<<<<<<<<", *TD1[1:]]
    assert mrz_bench.mrz_candidates(text) == TD1
    assert mrz_bench.mrz_candidates(["SHORT<<LINE", "A" * 40]) == []
    # a 44-long last candidate keeps only the last two, even after other candidates
    assert mrz_bench.mrz_candidates(["X<<" + "Y" * 30, *TD3]) == TD3


def _write(tmp_path: Path, rows: list[str]) -> Path:
    (tmp_path / "a.png").write_bytes(b"")
    (tmp_path / "labels.tsv").write_text("file\tdoc_type\tmrz\tall_check_digits_valid\tsource_path\tnote\n"
                                         + "".join(r + "\n" for r in rows))
    return tmp_path


def test_labels_read_and_malformed(tmp_path):
    ok = _write(tmp_path, ["a.png\tTD3\t" + "|".join(TD3) + "\ttrue\tx\ty"])
    rows = mrz_bench.read_labels(ok)
    assert rows[0]["lines"] == TD3 and rows[0]["all_valid"] is True
    for bad in ("a.png\tTD3\t" + TD3[0] + "\ttrue\tx\ty",  # one line for a TD3
                "a.png\tTD9\t" + "|".join(TD3) + "\ttrue\tx\ty",
                "a.png\tTD3\t" + "|".join(TD3) + "\tyes\tx\ty",
                "missing.png\tTD3\t" + "|".join(TD3) + "\ttrue\tx\ty",
                "a.png\tTD3"):
        _write(tmp_path, [bad])
        args = SimpleNamespace(docs=tmp_path, engines="ours", rapidocr_python=None, tesseract_psm=6, json=None)
        assert mrz_bench.cmd_mrz_documents(args) == 2


def test_missing_docs_folder_is_a_clear_error(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "veid_ml.cli", "bench", "mrz-documents", "--docs",
                           str(tmp_path / "nope")], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 2
    assert "no such folder" in proc.stderr and "Traceback" not in proc.stderr
