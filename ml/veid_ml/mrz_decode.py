"""Reading MRZ lines from the recogniser's logits with what ICAO 9303 says each position holds.

The recogniser's greedy reading (the best class per step, repeats merged, blanks dropped) can drop a character (an 'I'
under a hologram), add one, or take a look-alike ('5' for 'S' in a document number). mrz.correct_reading mends what
the text alone shows. When that reading does not parse with every check digit valid, or a line's width had to be
mended (a names line has no check digit to catch a '<' put in the wrong run), read_mrz decodes the lines again from
the logits (the OCR's "logits_q", real = q * scale):

1. each line is the best CTC path -- the largest sum of step logits -- with exactly its format's width of characters,
   each one a character its position may hold (mrz position kinds: letters or '<', digits or '<', anything). A
   character's logit is the largest of its own class and the classes correct_reading folds into it (t, À);
2. where check digits still fail, one character takes a runner-up class, one whose logit is at most MAX_GAP_NATS
   below the character read in one step of its run (so only characters the recogniser was unsure of change): the
   cheapest such change for which every check digit holds, if no other change costs the same. One change only: on
   300 generated MRZs a second one added 1 exact reading and 1 more that its check digits wrongly pass (NOTES).

The decoded lines replace the reading only if they parse with every check digit valid; otherwise the reading stands.
Integer sums and comparisons of integer logits only, ties broken in a fixed order: every CPU, and the Go port
(pkg/inference/mrz_decode.go), decode the same characters.
"""

import dataclasses

import numpy as np

from veid_ml import mrz

MAX_GAP_NATS = 3  # a runner-up at least e^-3 (5%) as likely as the character read, in one step of its run
_IMPOSSIBLE = -(1 << 50)  # a path score no real path reaches (|logit| < 2^16, 128 steps)
_KIND_CHARS = {"A": "ABCDEFGHIJKLMNOPQRSTUVWXYZ<", "N": "0123456789<", "x": mrz.MRZ_CHARS}


@dataclasses.dataclass(frozen=True)
class LineLogits:
    """The recogniser's logits of the lines it read (its "logits_q", "alphabet" and "logit_scale" outputs)."""

    q: np.ndarray  # int32 [lines, steps, 1 + len(alphabet)], class 0 the CTC blank
    alphabet: str
    scale: float  # real logit = q * scale

    def __getitem__(self, lines) -> "LineLogits":
        return LineLogits(self.q[lines], self.alphabet, self.scale)

    def __add__(self, other: "LineLogits") -> "LineLogits":
        return LineLogits(np.concatenate([self.q, other.q]), self.alphabet, self.scale)


def mrz_classes(alphabet: str) -> list[list[int]]:
    """For each MRZ character (mrz.MRZ_CHARS order), the recogniser classes that read as it: its own and those
    correct_reading folds into it (class k + 1 is alphabet[k]; class 0 is the CTC blank)."""
    return [[k + 1 for k, c in enumerate(alphabet) if mrz.FOLD.get(c, c) == m] for m in mrz.MRZ_CHARS]


def char_logits(logits: np.ndarray, classes: list[list[int]]) -> np.ndarray:
    """int64 [T, 1 + 37]: the blank's logit, then each MRZ character's (the largest of its classes)."""
    logits = np.asarray(logits, np.int64)
    columns = [logits[:, 0]] + [logits[:, c].max(axis=1) if c else np.full(len(logits), _IMPOSSIBLE) for c in classes]
    return np.stack(columns, axis=1)


def allowed_chars(kinds: str) -> np.ndarray:
    """bool [len(kinds), 37]: which MRZ characters each position of a line may hold."""
    return np.array([[m in _KIND_CHARS[k] for m in mrz.MRZ_CHARS] for k in kinds])


def best_path(logits: np.ndarray, allowed: np.ndarray) -> list[tuple[int, int, int]]:
    """The best CTC path over `logits` (char_logits) that emits exactly len(allowed) characters, each one allowed at
    its position: [(character index, first step, last step)] per position. Ties prefer staying in the state held
    (a blank, or the character's own run), then a blank before a new character, then the lowest character index."""
    steps, width, k = len(logits), len(allowed), allowed.shape[1]
    blank = np.full(width + 1, _IMPOSSIBLE, np.int64)
    blank[0] = 0  # before the first step: nothing emitted
    char = np.full((width + 1, k), _IMPOSSIBLE, np.int64)  # char[n, c]: n emitted, the n-th is c, in its run
    not_allowed = np.where(allowed, 0, _IMPOSSIBLE).astype(np.int64)
    rows = np.arange(width)
    blank_from_char = np.zeros((steps, width + 1), bool)
    blank_label = np.zeros((steps, width + 1), np.int64)
    char_source = np.zeros((steps, width + 1, k), np.int8)  # 0 its own run, 1 after a blank, 2 after another char
    char_previous = np.zeros((steps, width + 1, k), np.int64)
    for t in range(steps):
        best, label = char.max(axis=1), char.argmax(axis=1)
        from_char = best > blank
        new_blank = np.where(from_char, best, blank) + logits[t, 0]
        previous = char[:-1]  # [width, k]: the state before the n-th character (n = 1..width)
        first, first_label = previous.max(axis=1), previous.argmax(axis=1)
        others = previous.copy()
        others[rows, first_label] = 2 * _IMPOSSIBLE
        second, second_label = others.max(axis=1), others.argmax(axis=1)
        same = np.arange(k)[None, :] == first_label[:, None]
        other_best = np.where(same, second[:, None], first[:, None])  # the best other character before this one
        other_label = np.where(same, second_label[:, None], first_label[:, None])
        after_blank = blank[:-1, None] >= other_best
        emitted = np.where(after_blank, blank[:-1, None], other_best) + not_allowed
        stay = char[1:] >= emitted
        new_char = np.full_like(char, _IMPOSSIBLE)
        new_char[1:] = np.where(stay, char[1:], emitted) + logits[t, 1:][None, :]
        blank_from_char[t], blank_label[t] = from_char, label
        char_source[t, 1:] = np.where(stay, 0, np.where(after_blank, 1, 2))
        char_previous[t, 1:] = other_label
        blank, char = new_blank, new_char
    if max(blank[width], char[width].max()) < _IMPOSSIBLE // 2:
        raise ValueError(f"no path of {width} allowed characters in {steps} steps")
    in_char = char[width].max() > blank[width]
    n, c, path, last = width, int(char[width].argmax()), [], None
    for t in range(steps - 1, -1, -1):  # walk back: which state each step's best came from
        if not in_char:
            if blank_from_char[t, n]:
                in_char, c = True, int(blank_label[t, n])
            continue
        last = t if last is None else last
        source = char_source[t, n, c]
        if source == 0:
            continue
        path.append((c, t, last))
        last, n = None, n - 1
        if source == 1:
            in_char = False
        else:
            c = int(char_previous[t, n + 1, c])
    return path[::-1]


def _valid(lines: list[str]) -> bool:
    try:
        return mrz.parse_mrz(lines).valid
    except ValueError:
        return False


def decode_lines(logits: LineLogits, fmt: str) -> tuple[list[str], list[list[float]]]:
    """Steps 1 and 2 of the module docstring for the lines of one MRZ of format `fmt`: (lines, per-character
    confidences: the softmax probability of each character's class at its best step)."""
    classes, scale = mrz_classes(logits.alphabet), logits.scale
    max_gap = int(MAX_GAP_NATS / scale)
    lines, confidences, options = [], [], []
    for i, (line_logits, kinds) in enumerate(zip(logits.q, mrz.POSITION_KINDS[fmt])):
        scores = char_logits(line_logits, classes)
        allowed = allowed_chars(kinds)
        path = best_path(scores, allowed)
        lines.append("".join(mrz.MRZ_CHARS[c] for c, _, _ in path))
        line_confidences = []
        for p, (c, first, last) in enumerate(path):
            run = scores[first:last + 1]
            peak = first + int(run[:, 1 + c].argmax())
            probabilities = np.exp((scores[peak] - scores[peak].max()) * scale)
            line_confidences.append(float(probabilities[1 + c] / probabilities.sum()))
            gaps = (run[:, 1 + c][:, None] - run[:, 1:]).min(axis=0)  # per character, its cheapest step in the run
            for alternative in np.flatnonzero(allowed[p] & (gaps <= max_gap)):
                if alternative != c:
                    options.append((int(gaps[alternative]), i, p, mrz.MRZ_CHARS[alternative]))
        confidences.append(line_confidences)
    if _valid(lines):
        return lines, confidences
    options.sort()  # the cheapest change first
    for rank, (cost, i, p, ch) in enumerate(options):
        changed = _change(lines, i, p, ch)
        if not _valid(changed):
            continue
        for other_cost, *other in options[rank + 1:]:  # another change as cheap: the logits cannot tell, none is made
            if other_cost > cost:
                break
            if _valid(_change(lines, *other)):
                return lines, confidences
        return changed, confidences
    return lines, confidences


def _change(lines: list[str], i: int, p: int, ch: str) -> list[str]:
    return [line[:p] + ch + line[p + 1:] if k == i else line for k, line in enumerate(lines)]


def read_mrz(texts: list[str], confidences: list[list[float]] | None = None,
             logits: LineLogits | None = None) -> tuple[list[str], list[list[float]] | None]:
    """MRZ lines and confidences from a recogniser's reading of 2 or 3 lines: mrz.correct_reading of the texts
    (spaces dropped). Where the lines' logits are given, every line was read within mrz.MAX_FILLER_FIX characters of
    its format's width, and the correction does not parse with every check digit valid or had to mend a line's
    width (a names line has no check digit to catch a '<' added in the wrong run): decode_lines, taken if valid."""
    kept = [t.replace(" ", "") for t in texts]  # a space is never an MRZ character
    if confidences is not None:
        confidences = [[cf for ch, cf in zip(t, c) if ch != " "] for t, c in zip(texts, confidences)]
    lines, corrected = mrz.correct_reading(kept, confidences)
    found = mrz.reading_format(lines)
    if logits is None or found is None or any(abs(len(line) - found[1]) > mrz.MAX_FILLER_FIX for line in kept):
        return lines, corrected
    if _valid(lines) and all(len(line) == found[1] for line in kept):  # a '<' run mended is a guess the logits check
        return lines, corrected
    decoded, decoded_confidences = decode_lines(logits, found[0])
    if _valid(decoded):
        return decoded, decoded_confidences
    return lines, corrected
