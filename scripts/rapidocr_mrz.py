#!/usr/bin/env python3
"""Read images with RapidOCR and print their text lines as JSON, for `veid-ml bench mrz-documents`.

RapidOCR is not a project dependency: run this with a throwaway environment, e.g.
    python3 -m venv ~/venvs/rapidocr && ~/venvs/rapidocr/bin/pip install rapidocr-onnxruntime
    ~/venvs/rapidocr/bin/python scripts/rapidocr_mrz.py IMAGE [IMAGE ...]

Prints one JSON line: {"engine", "load_seconds", "images": [{"path", "lines", "seconds", "error"}]}. Each image is
read whole at its own resolution with the default models; the detected boxes are grouped into rows (boxes that
overlap vertically by more than half the smaller height), each row's texts joined left to right with a space, rows
ordered top to bottom. "seconds" is the RapidOCR call alone; the first image is also read once before, untimed, so
the timings do not include the ONNX sessions' first-run cost. Model loading is in load_seconds.
"""

import json
import sys
import time


def rows_of(result) -> list[str]:
    """RapidOCR's [box, text, score] items -> text lines, top to bottom."""
    boxes = []
    for box, text, _score in result or []:
        ys, xs = [p[1] for p in box], [p[0] for p in box]
        boxes.append((min(ys), max(ys), min(xs), text))
    boxes.sort()
    rows = []  # [top, bottom, [(x, text)]]
    for top, bottom, x, text in boxes:
        for row in rows:
            overlap = min(bottom, row[1]) - max(top, row[0])
            if overlap > 0.5 * min(bottom - top, row[1] - row[0]):
                row[2].append((x, text))
                row[0], row[1] = min(top, row[0]), max(bottom, row[1])
                break
        else:
            rows.append([top, bottom, [(x, text)]])
    rows.sort(key=lambda r: r[0])
    return [" ".join(t for _, t in sorted(r[2])) for r in rows]


def main(paths: list[str]) -> int:
    if not paths:
        print(__doc__, file=sys.stderr)
        return 2
    started = time.perf_counter()
    from rapidocr_onnxruntime import RapidOCR

    engine = RapidOCR()
    load_seconds = time.perf_counter() - started
    try:
        engine(paths[0])  # warm-up, untimed
    except Exception:  # noqa: BLE001 - reported below with the image
        pass
    images = []
    for path in paths:
        started = time.perf_counter()
        try:
            result, _ = engine(path)
            lines, error = rows_of(result), None
        except Exception as e:  # noqa: BLE001 - one unreadable image must not lose the others
            lines, error = [], f"{type(e).__name__}: {e}"
        images.append({"path": path, "lines": lines, "seconds": time.perf_counter() - started, "error": error})
    print(json.dumps({"engine": "rapidocr_onnxruntime", "load_seconds": load_seconds, "images": images}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
