package inference

import (
	"fmt"
	"strings"
)

// MRZ lines from the recogniser's logits (veid_ml.mrz_decode, line for line): where the corrected reading does not
// parse with every check digit valid, or a line's width had to be mended, each line is the best CTC path with
// exactly its format's width of characters of its positions' kinds, and one character may take a runner-up the
// check digits need. Integer sums and comparisons only, ties broken as Python breaks them.

const (
	maxGapNats = 3                 // mrz_decode.MAX_GAP_NATS
	maxChanges = 2                 // mrz_decode.MAX_CHANGES
	impossible = -(int64(1) << 50) // mrz_decode._IMPOSSIBLE
	mrzChars   = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ<"
)

var kindChars = map[byte]string{'A': "ABCDEFGHIJKLMNOPQRSTUVWXYZ<", 'N': "0123456789<", 'x': mrzChars}

// LineLogits is mrz_decode.LineLogits: the OCR's "logits_q" of the lines read ([lines][steps][classes], class 0 the
// CTC blank, class k+1 alphabet[k]) and its scale (real logit = q * Scale).
type LineLogits struct {
	Q                     []int32
	Lines, Steps, Classes int
	Alphabet              []rune
	Scale                 float64
}

// head is the logits of the first n lines.
func (l *LineLogits) head(n int) *LineLogits {
	h := *l
	h.Lines, h.Q = n, l.Q[:n*l.Steps*l.Classes]
	return &h
}

func (l *LineLogits) at(line, step, class int) int64 {
	return int64(l.Q[(line*l.Steps+step)*l.Classes+class])
}

// mrzClasses is mrz_decode.mrz_classes: for each MRZ character, the recogniser classes that fold into it.
func mrzClasses(alphabet []rune) [][]int {
	classes := make([][]int, len(mrzChars))
	for k, r := range alphabet {
		if f, ok := fold[r]; ok {
			r = f
		}
		if i := strings.IndexRune(mrzChars, r); i >= 0 {
			classes[i] = append(classes[i], k+1)
		}
	}
	return classes
}

// charLogits is mrz_decode.char_logits for one line: per step, the blank's logit then each MRZ character's (the
// largest of its classes).
func (l *LineLogits) charLogits(line int, classes [][]int) [][]int64 {
	scores := make([][]int64, l.Steps)
	for t := range scores {
		scores[t] = make([]int64, 1+len(mrzChars))
		scores[t][0] = l.at(line, t, 0)
		for m, cs := range classes {
			best := impossible
			for j, c := range cs {
				if v := l.at(line, t, c); j == 0 || v > best {
					best = v
				}
			}
			scores[t][1+m] = best
		}
	}
	return scores
}

func allowedChars(kinds string) [][]bool {
	allowed := make([][]bool, len(kinds))
	for p := range kinds {
		allowed[p] = make([]bool, len(mrzChars))
		for m := range mrzChars {
			allowed[p][m] = strings.IndexByte(kindChars[kinds[p]], mrzChars[m]) >= 0
		}
	}
	return allowed
}

type pathChar struct{ char, first, last int }

// argmaxLowest is numpy's argmax: the first index of the largest value, skipping `skip` (-1: none).
func argmaxLowest(values []int64, skip int) (int64, int) {
	best, at := int64(0), -1
	for c, v := range values {
		if c != skip && (at < 0 || v > best) {
			best, at = v, c
		}
	}
	return best, at
}

// bestPath is mrz_decode.best_path: the best CTC path over scores (charLogits) emitting exactly len(allowed)
// characters, each allowed at its position.
func bestPath(scores [][]int64, allowed [][]bool) ([]pathChar, error) {
	steps, width, k := len(scores), len(allowed), len(mrzChars)
	blank := make([]int64, width+1)
	char := make([][]int64, width+1)
	for n := range blank {
		blank[n] = impossible
		char[n] = make([]int64, k)
		for c := range char[n] {
			char[n][c] = impossible
		}
	}
	blank[0] = 0
	blankFromChar := make([][]bool, steps)
	blankLabel := make([][]int, steps)
	source := make([][][]int8, steps)
	previousLabel := make([][][]int, steps)
	for t := 0; t < steps; t++ {
		blankFromChar[t], blankLabel[t] = make([]bool, width+1), make([]int, width+1)
		source[t], previousLabel[t] = make([][]int8, width+1), make([][]int, width+1)
		newBlank := make([]int64, width+1)
		newChar := make([][]int64, width+1)
		for n := 0; n <= width; n++ {
			best, label := argmaxLowest(char[n], -1)
			fromChar := best > blank[n]
			if fromChar {
				newBlank[n] = best + scores[t][0]
			} else {
				newBlank[n] = blank[n] + scores[t][0]
			}
			blankFromChar[t][n], blankLabel[t][n] = fromChar, label
			newChar[n] = make([]int64, k)
			source[t][n], previousLabel[t][n] = make([]int8, k), make([]int, k)
			if n == 0 {
				for c := range newChar[0] {
					newChar[0][c] = impossible
				}
				continue
			}
			first, firstLabel := argmaxLowest(char[n-1], -1)
			second, secondLabel := argmaxLowest(char[n-1], firstLabel)
			for c := 0; c < k; c++ {
				otherBest, otherLabel := first, firstLabel
				if c == firstLabel {
					otherBest, otherLabel = second, secondLabel
				}
				afterBlank := blank[n-1] >= otherBest
				emitted := otherBest
				if afterBlank {
					emitted = blank[n-1]
				}
				if !allowed[n-1][c] {
					emitted += impossible
				}
				stay := char[n][c] >= emitted
				switch {
				case stay:
					newChar[n][c] = char[n][c] + scores[t][1+c]
				case afterBlank:
					newChar[n][c], source[t][n][c] = emitted+scores[t][1+c], 1
				default:
					newChar[n][c], source[t][n][c] = emitted+scores[t][1+c], 2
				}
				previousLabel[t][n][c] = otherLabel
			}
		}
		blank, char = newBlank, newChar
	}
	lastBest, c := argmaxLowest(char[width], -1)
	if max64(blank[width], lastBest) < impossible/2 {
		return nil, fmt.Errorf("no path of %d allowed characters in %d steps", width, steps)
	}
	inChar, n, last := lastBest > blank[width], width, -1
	var path []pathChar
	for t := steps - 1; t >= 0; t-- {
		if !inChar {
			if blankFromChar[t][n] {
				inChar, c = true, blankLabel[t][n]
			}
			continue
		}
		if last < 0 {
			last = t
		}
		s := source[t][n][c]
		if s == 0 {
			continue
		}
		path = append(path, pathChar{c, t, last})
		last, n = -1, n-1
		if s == 1 {
			inChar = false
		} else {
			c = previousLabel[t][n+1][c]
		}
	}
	for i, j := 0, len(path)-1; i < j; i, j = i+1, j-1 {
		path[i], path[j] = path[j], path[i]
	}
	return path, nil
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

func validMRZ(lines []string) bool {
	r, err := ParseMRZ(lines)
	return err == nil && r.Valid()
}

type decodeOption struct {
	gap       int64
	line, pos int
	char      byte
}

// decodeLines is mrz_decode.decode_lines (without the confidences): the lines of one MRZ of `format`.
func decodeLines(l *LineLogits, format string) ([]string, error) {
	maxGap, classes := int64(float64(maxGapNats)/l.Scale), mrzClasses(l.Alphabet)
	var lines []string
	var options []decodeOption
	for i, kinds := range positionKinds[format] {
		scores, allowed := l.charLogits(i, classes), allowedChars(kinds)
		path, err := bestPath(scores, allowed)
		if err != nil {
			return nil, err
		}
		var b strings.Builder
		for p, pc := range path {
			b.WriteByte(mrzChars[pc.char])
			for a := range mrzChars {
				gap := int64(0)
				for t := pc.first; t <= pc.last; t++ { // the character's cheapest step in its run
					if g := scores[t][1+pc.char] - scores[t][1+a]; t == pc.first || g < gap {
						gap = g
					}
				}
				if a != pc.char && allowed[p][a] && gap <= maxGap {
					options = append(options, decodeOption{gap, i, p, mrzChars[a]})
				}
			}
		}
		lines = append(lines, b.String())
	}
	if validMRZ(lines) {
		return lines, nil
	}
	apply := func(o decodeOption) []string {
		changed := append([]string{}, lines...)
		line := []byte(changed[o.line])
		line[o.pos] = o.char
		changed[o.line] = string(line)
		return changed
	}
	// the cheapest single change for which every check digit holds, taken only if no other change costs the same
	// (Python walks them sorted by cost; the outcome is the same)
	var best []string
	bestCost, ties := int64(0), 0
	for _, o := range options {
		if best != nil && o.gap > bestCost {
			continue
		}
		changed := apply(o)
		if !validMRZ(changed) {
			continue
		}
		if best == nil || o.gap < bestCost {
			best, bestCost, ties = changed, o.gap, 1
		} else {
			ties++
		}
	}
	if best != nil && ties == 1 {
		return best, nil
	}
	return lines, nil
}

// readMRZ is mrz_decode.read_mrz without confidences: CorrectReading of the texts (spaces already dropped), and
// where the logits are given, every line was read within maxFillerFix of its format's width and the correction is
// not valid or mended a width, decodeLines taken if valid.
func readMRZ(texts []string, l *LineLogits) ([]string, error) {
	lines := CorrectReading(texts)
	format, width := readingFormat(lines)
	if l == nil || width == 0 {
		return lines, nil
	}
	mended := false
	for _, t := range texts {
		off := len([]rune(t)) - width
		if off > maxFillerFix || off < -maxFillerFix {
			return lines, nil
		}
		mended = mended || off != 0
	}
	if validMRZ(lines) && !mended {
		return lines, nil
	}
	if l.Lines != len(lines) {
		return nil, fmt.Errorf("%d lines of logits for %d MRZ lines", l.Lines, len(lines))
	}
	decoded, err := decodeLines(l, format)
	if err != nil {
		return nil, err
	}
	if validMRZ(decoded) {
		return decoded, nil
	}
	return lines, nil
}

// readingFormat is mrz.reading_format ("" and 0 for no format): 30 wide for three lines, 36 or 44 for two (the
// mean length nearer 44 than 36), a two-line reading whose first line starts with 'V' a visa.
func readingFormat(lines []string) (string, int) {
	var format string
	var width int
	switch {
	case len(lines) == 3:
		format, width = "TD1", 30
	case len(lines) == 2 && len([]rune(lines[0]))+len([]rune(lines[1])) > 80:
		format, width = "TD3", 44
	case len(lines) == 2:
		format, width = "TD2", 36
	default:
		return "", 0
	}
	if format != "TD1" && strings.HasPrefix(lines[0], "V") {
		format = map[string]string{"TD2": "MRV-B", "TD3": "MRV-A"}[format]
	}
	return format, width
}
