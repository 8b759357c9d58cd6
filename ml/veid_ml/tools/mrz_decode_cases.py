"""The mrz_decode cases the Python tests and the Go port share: recogniser logits made from MRZ lines with the
recogniser's known slips (a character the blank outweighs, a look-alike read), and what read_mrz makes of them.

    python -m veid_ml.tools.mrz_decode_cases   # writes pkg/inference/testdata/mrz_decode_cases.json

Each line's character k is emitted at step 2k (blank at 2k + 1 and after the line): that class at HIGH, the others
at 0, scale SCALE. A case may change one character's step: "weak" [line, position, share] (the blank wins, the
character keeps `share` of the probability), "swap" [line, position, read_as, share] (read_as wins, the printed
character keeps `share`), "runner_up" [line, position, char] (char as likely as the printed character there).
"""

import json
import math

import numpy as np

from veid_ml import mrz_decode, registry
from veid_ml.ocr_contract import ALPHABET

PATH = registry.ML_DIR.parent / "pkg" / "inference" / "testdata" / "mrz_decode_cases.json"
STEPS, SCALE, HIGH = 128, 0.001, 8000  # the recogniser's 128 steps; logits in thousandths of a nat, 8 nats apart
_TD1 = ["I<UTOD231458907<<<<<<<<<<<<<<<", "7408122F1204159UTO<<<<<<<<<<<6", "ERIKSSON<<ANNA<MARIA<<<<<<<<<<"]
_TD3 = ["P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<", "L898902C36UTO7408122F1204159ZE184226B<<<<<10"]
CASES = {
    "clean TD3": {"lines": _TD3},
    "clean TD1": {"lines": _TD1},
    "dropped first I": {"lines": _TD1, "weak": [[0, 0, 0.25]]},
    "dropped filler": {"lines": _TD3, "weak": [[0, 30, 0.3]]},
    "S read as 5": {"lines": _TD3, "swap": [[1, 1, "5", 0.15]]},
    "5 read as S, unlikely": {"lines": _TD3, "swap": [[1, 1, "5", 0.02]]},
    "filler read as X": {"lines": _TD1, "swap": [[0, 20, "X", 0.2]]},
    "forged check digit": {"lines": [_TD3[0], _TD3[1][:9] + "7" + _TD3[1][10:]]},
    "two fixes as cheap": {"lines": _TD1, "swap": [[0, 5, "0", 0.2]], "runner_up": [[0, 5, "N"]]},
    "two misreads in one number": {"lines": _TD3, "swap": [[1, 2, "4", 0.2], [1, 4, "6", 0.2]]},
    "line too short": {"lines": [_TD1[0], _TD1[1], _TD1[2][:25]]},
    "dropped and look-alike": {"lines": _TD1, "weak": [[2, 3, 0.3]], "swap": [[1, 3, "B", 0.1]]},
}


def _class(ch: str) -> int:
    return ALPHABET.index(ch) + 1


def logits(case: dict) -> mrz_decode.LineLogits:
    """The case's recogniser logits (int32 [lines, STEPS, 1 + len(ALPHABET)])."""
    q = np.zeros((len(case["lines"]), STEPS, 1 + len(ALPHABET)), np.int32)
    q[:, :, 0] = HIGH
    for i, line in enumerate(case["lines"]):
        for k, ch in enumerate(line):
            q[i, 2 * k, 0], q[i, 2 * k, _class(ch)] = 0, HIGH
    nats = lambda share: HIGH + round(math.log(share) / SCALE)  # noqa: E731 -- a logit `share` of the step's mass
    for i, k, share in case.get("weak", []):
        q[i, 2 * k, 0], q[i, 2 * k, _class(case["lines"][i][k])] = nats(1 - share), nats(share)
    for i, k, read_as, share in case.get("swap", []):
        q[i, 2 * k, _class(read_as)], q[i, 2 * k, _class(case["lines"][i][k])] = nats(1 - share), nats(share)
    for i, k, ch in case.get("runner_up", []):
        q[i, 2 * k, _class(ch)] = q[i, 2 * k, _class(case["lines"][i][k])]
    return mrz_decode.LineLogits(q, ALPHABET, SCALE)


def greedy(q: np.ndarray) -> str:
    """The recogniser's own reading of one line's logits: best class per step (lowest on ties), repeats merged,
    blanks dropped."""
    best = q.argmax(axis=1)
    return "".join(ALPHABET[b - 1] for t, b in enumerate(best) if b and (t == 0 or best[t - 1] != b))


def document() -> dict:
    """Per case: the logits as their non-zero entries [line, step, class, value], the greedy texts and read_mrz's
    lines."""
    cases = []
    for name, case in CASES.items():
        q = logits(case).q
        texts = [greedy(line) for line in q]
        cases.append({"name": name, "shape": list(q.shape), "entries": np.argwhere(q).tolist(),
                      "values": q[q != 0].tolist(), "texts": texts,
                      "read": mrz_decode.read_mrz(texts, None, logits(case))[0]})
    return {"alphabet": ALPHABET, "logit_scale": repr(SCALE), "cases": cases}


def main() -> int:
    PATH.write_text(json.dumps(document(), ensure_ascii=False) + "\n")
    print(f"wrote {PATH}: {len(CASES)} cases")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
