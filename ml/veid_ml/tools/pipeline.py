"""`veid-ml score`, `veid-ml demo` and `veid-ml bench pipeline`: the VEID pipeline (veid_ml.api) from the command line.

score: one selfie and one document photo -> decision, score, reasons and every model's integer output. Exit status 0
accept, 1 reject or retake, 2 an input the pipeline refuses (unreadable, unsupported, too large) or unapproved models.

demo: synthetic submissions with a known answer (veid_ml.demo_cases: genuine, impostor, look-alike, print and replay
attacks, forged MRZ, expired document, no face), each scored through the pipeline; prints a table and writes a PNG
sheet of the cases with their decisions. Exit status 0 when every case got its expected decision, else 1.

pipeline: p50/p95 of Verifier.verify on a 640 x 480 selfie and a 1500 x 1000 document photo, with the per-stage
breakdown (decode, detect, align, liveness, embed, locate, recognise, parse); run nothing else on the machine meanwhile.
"""

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

from veid_ml import registry
from veid_ml.tools import add_command


def _load_verifier(lock: Path | None, command: str):
    """(Verifier, None) or (None, exit status 2) after one line on stderr."""
    from veid_ml.api import Verifier, UnapprovedModelError

    try:
        return Verifier.load(lock), None
    except (UnapprovedModelError, FileNotFoundError, ValueError) as e:
        print(f"{command}: {str(e).splitlines()[0]}", file=sys.stderr)
        return None, 2


def _date(text: str) -> datetime.date:
    """--today's type: a usage error (exit 2) unless YYYY-MM-DD."""
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a date YYYY-MM-DD, not {text!r}") from None


def summary(result: dict) -> str:
    """The VEID result as a few readable lines."""
    c = result["components"]
    lines = [f"decision: {result['decision']} (score {result['score']}/100)"]
    if c.get("similarity") is not None:
        verdict = "same person" if c["similarity"] >= c["similarity_threshold"] else "different people"
        lines.append(f"  face similarity {c['similarity']}/10000 (threshold {c['similarity_threshold']}): {verdict}")
    if c.get("liveness") is not None:
        verdict = "bona fide" if c["liveness"] >= c["liveness_threshold"] else "attack"
        lines.append(f"  liveness        {c['liveness']}/10000 (threshold {c['liveness_threshold']}): {verdict}")
    if c.get("mrz_lines"):
        failed = [name for name, ok in c.get("mrz_checks", {}).items() if not ok]
        lines.append(f"  MRZ             {' / '.join(c['mrz_lines'])}")
        lines.append(f"                  check digits {'all valid' if not failed else 'FAILED: ' + ', '.join(failed)}")
    lines.append("reasons:" + (" none" if not result["reasons"] else ""))
    lines += [f"  {r['code']}: {r['text']}" for r in result["reasons"]]
    return "\n".join(lines)


def cmd_score(args) -> int:
    from veid_ml.images import InputError

    verifier, status = _load_verifier(args.lock, "score")
    if verifier is None:
        return status
    today = args.today
    started = time.perf_counter()
    try:
        result = verifier.verify(args.selfie, args.document, today=today)
    except InputError as e:
        print(f"score: {e}", file=sys.stderr)
        return 2
    elapsed = (time.perf_counter() - started) * 1000
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(summary(result))
        stages = ", ".join(f"{k} {v:.0f}" for k, v in verifier.timings.items())
        print(f"time: {elapsed:.0f} ms ({stages})")
    return 0 if result["decision"] == "accept" else 1


def _thumbnail(image, height: int):
    import cv2

    return cv2.resize(image, (round(image.shape[1] * height / image.shape[0]), height), interpolation=cv2.INTER_AREA)


def write_sheet(rows: list[tuple[dict, dict]], path: Path) -> None:
    """One row per case: selfie, document, and the case's expected and actual decision."""
    import numpy as np
    from PIL import Image, ImageDraw

    height, text_w = 160, 420
    tiles = []
    for case, result in rows:
        selfie, document = _thumbnail(case["selfie"], height), _thumbnail(case["document"], height)
        panel = Image.new("RGB", (text_w, height), "white")
        draw = ImageDraw.Draw(panel)
        ok = result["decision"] == case["expected"]
        draw.text((8, 8), case["name"], fill="black")
        draw.text((8, 30), f"expected {case['expected']}, got {result['decision']} (score {result['score']})",
                  fill=(0, 120, 0) if ok else (200, 0, 0))
        for i, r in enumerate(result["reasons"][:5]):
            draw.text((8, 54 + 18 * i), r["code"], fill="black")
        c = result["components"]
        draw.text((8, height - 24), f"similarity {c.get('similarity')}  liveness {c.get('liveness')}", fill="black")
        tiles.append(np.hstack([selfie, document, np.asarray(panel)]))
    width = max(t.shape[1] for t in tiles)
    sheet = np.vstack([np.pad(t, ((0, 4), (0, width - t.shape[1]), (0, 0)), constant_values=255) for t in tiles])
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(path)


def cmd_demo(args) -> int:
    from veid_ml import demo_cases

    verifier, status = _load_verifier(args.lock, "demo")
    if verifier is None:
        return status
    today = args.today or demo_cases.TODAY
    kinds = demo_cases.KINDS
    rows = []
    print(f"{'case':18s} {'expected':9s} {'decision':9s} {'score':>5s}  reasons")
    for n in range(args.per_kind):
        for kind in kinds:
            case = demo_cases.case(kind, n, today)
            result = verifier.verify(case["selfie"], case["document"], today=today)
            rows.append((case, result))
            codes = [r["code"] for r in result["reasons"]]
            mark = ("MISS" if result["decision"] != case["expected"]
                    else "ok" if case["expected_reason"] in codes + [None] else "ok, other reason")
            print(f"{case['name']:18s} {case['expected']:9s} {result['decision']:9s} {result['score']:5d}  "
                  f"{', '.join(codes) or '-'}  [{mark}]", flush=True)
    right = sum(result["decision"] == case["expected"] for case, result in rows)
    print(f"{right}/{len(rows)} cases got their expected decision (today = {today})")
    write_sheet(rows, args.out)
    print(f"sheet: {args.out}")
    return 0 if right == len(rows) else 1


def cmd_bench(args) -> int:
    import statistics

    import numpy as np

    from veid_ml import demo_cases

    verifier, status = _load_verifier(args.lock, "bench pipeline")
    if verifier is None:
        return status
    case = demo_cases.case("genuine", 0, demo_cases.TODAY)
    shapes = f"selfie {case['selfie'].shape[1]}x{case['selfie'].shape[0]}, document " \
             f"{case['document'].shape[1]}x{case['document'].shape[0]}"
    selfie, document = (_jpeg(case[k]) for k in ("selfie", "document"))  # as uploaded: decoding is a stage
    print(f"{shapes}, JPEG quality 90 ({len(selfie) // 1024} KiB, {len(document) // 1024} KiB); "
          f"{args.warmup} warm-up + {args.runs} timed runs of Verifier.verify")
    for _ in range(args.warmup):
        verifier.verify(selfie, document)
    totals, stages = [], {}
    for _ in range(args.runs):
        started = time.perf_counter()
        verifier.verify(selfie, document)
        totals.append((time.perf_counter() - started) * 1000)
        for stage, ms in verifier.timings.items():
            stages.setdefault(stage, []).append(ms)
    print(f"verify: p50 {statistics.median(totals):.1f} ms, p95 {np.percentile(totals, 95):.1f} ms")
    for stage, values in stages.items():
        print(f"  {stage:10s} p50 {statistics.median(values):6.1f} ms  p95 {np.percentile(values, 95):6.1f} ms")
    return 0


def _jpeg(rgb) -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="JPEG", quality=90)
    return out.getvalue()


def register(subparsers, bench_subparsers) -> None:
    """`score` and `demo` on the CLI's top level, `pipeline` under `bench`."""
    sections = __doc__.split("\n\n")
    s = add_command(subparsers, "score", cmd_score, help="score a selfie and a document photo: decision, score, "
                    "reasons", description=sections[1])
    s.add_argument("--selfie", required=True, help="selfie image file (JPEG, PNG, ...)")
    s.add_argument("--document", required=True, help="ID document photo")
    s.add_argument("--json", action="store_true", help="print the full result as JSON")
    s.add_argument("--today", type=_date, help="judge expiry as of this date (YYYY-MM-DD; default today, UTC)")
    s.add_argument("--lock", type=Path, default=None, help="the lock whose approved models to use (default: the "
                                                           "installed package's)")

    d = add_command(subparsers, "demo", cmd_demo, help="score synthetic genuine, impostor, attack and forged cases; "
                    "print a table, write a PNG sheet", description=sections[2])
    d.add_argument("--per-kind", type=int, default=1, help="cases of each kind (default 1)")
    d.add_argument("--today", type=_date, default=None,
                   help="the date expiry is judged at (default: demo_cases.TODAY, a fixed date, so the demo's "
                        "decisions do not change with the calendar)")
    d.add_argument("--out", type=Path, default=registry.ML_DIR.parent / "docs" / "demo.png")
    d.add_argument("--lock", type=Path, default=None)

    b = add_command(bench_subparsers, "pipeline", cmd_bench, help="p50/p95 of Verifier.verify with a per-stage "
                    "breakdown", description=sections[3])
    b.add_argument("--runs", type=int, default=30)
    b.add_argument("--warmup", type=int, default=3)
    b.add_argument("--lock", type=Path, default=None)
