package inference

import (
	"fmt"
	"strconv"
	"strings"
)

// The document side after locating: recognise the located lines with ocr_extraction and parse the MRZ
// (veid_ml.document_reader.recognise and parse). Locating the card and cutting its lines (OpenCV) is not ported:
// the caller passes the located lines, or the error locating gave (README.md).

const (
	LineHeight = 32  // ocr_contract.LINE_HEIGHT
	LineWidth  = 512 // ocr_contract.LINE_WIDTH
)

// Lines is what document_reader.locate gives the recogniser: grey LineHeight x LineWidth line crops, the MRZ lines
// first (MRZCount of them, top to bottom), then the printed-field lines. When locating failed, LocateError holds its
// message (the ValueError's text) and Images is empty.
type Lines struct {
	Images      [][]byte
	MRZCount    int
	LocateError string
}

// LinesFromPNG reads located lines stored as one (N*32) x 512 grey PNG (the golden "<case>_lines.png").
func LinesFromPNG(data []byte, mrzCount int) (*Lines, error) {
	images, err := decodeGreyLinesPNG(data)
	if err != nil {
		return nil, err
	}
	if mrzCount < 0 || mrzCount > len(images) {
		return nil, fmt.Errorf("mrz line count %d is outside 0..%d lines", mrzCount, len(images))
	}
	return &Lines{Images: images, MRZCount: mrzCount}, nil
}

// LocateFailed is the Lines of a document photo document_reader.locate could not read (reason no_document_found).
func LocateFailed(message string) *Lines {
	return &Lines{LocateError: message}
}

// recognise is document_reader.recognise: every line in one batch (uint8, the integer graph's input), the text of
// each from the model's labels, lengths and alphabet outputs exactly as its own "text" output joins them
// (ml/ocr_extraction/model.py labels_to_text: label k is alphabet[k], -1 is padding), and the lines' logits.
func (v *Verifier) recognise(lines [][]byte) ([]string, *LineLogits, error) {
	n := len(lines)
	values := make([]byte, 0, n*LineHeight*LineWidth)
	for _, line := range lines {
		if len(line) != LineHeight*LineWidth {
			return nil, nil, fmt.Errorf("a located line has %d pixels, want %d x %d", len(line), LineHeight, LineWidth)
		}
		values = append(values, line...)
	}
	out, err := v.ocr.run("serving_default",
		map[string]*tensor{"image": uint8Tensor([]int64{int64(n), LineHeight, LineWidth, 1}, values)},
		"labels", "lengths", "alphabet", "logits_q", "logit_scale")
	if err != nil {
		return nil, nil, err
	}
	labels, err := out["labels"].int32s()
	if err != nil {
		return nil, nil, fmt.Errorf("ocr labels: %w", err)
	}
	lengths, err := out["lengths"].int32s()
	if err != nil {
		return nil, nil, fmt.Errorf("ocr lengths: %w", err)
	}
	if len(out["alphabet"].Strings) != 1 {
		return nil, nil, fmt.Errorf("ocr alphabet output has %d strings, want 1", len(out["alphabet"].Strings))
	}
	alphabet := []rune(out["alphabet"].Strings[0])
	if len(lengths) != n || n == 0 || len(labels)%n != 0 {
		return nil, nil, fmt.Errorf("ocr outputs have %d lengths and %d labels for %d lines", len(lengths), len(labels), n)
	}
	steps := len(labels) / n
	texts := make([]string, n)
	for i := 0; i < n; i++ {
		var b strings.Builder
		for _, k := range labels[i*steps : (i+1)*steps] {
			if k < 0 { // padding: labels_to_text joins "" for it
				continue
			}
			if int(k) >= len(alphabet) {
				return nil, nil, fmt.Errorf("ocr label %d is outside its %d-character alphabet", k, len(alphabet))
			}
			b.WriteRune(alphabet[k])
		}
		texts[i] = b.String()
		if got := len([]rune(texts[i])); got != int(lengths[i]) {
			return nil, nil, fmt.Errorf("ocr line %d: %d characters decoded but length output %d", i, got, lengths[i])
		}
	}
	q, err := out["logits_q"].int32s()
	if err != nil {
		return nil, nil, fmt.Errorf("ocr logits_q: %w", err)
	}
	if len(out["logit_scale"].Strings) != 1 {
		return nil, nil, fmt.Errorf("ocr logit_scale output has %d strings, want 1", len(out["logit_scale"].Strings))
	}
	scale, err := strconv.ParseFloat(out["logit_scale"].Strings[0], 64)
	if err != nil || scale <= 0 {
		return nil, nil, fmt.Errorf("ocr logit_scale %q is not a positive number", out["logit_scale"].Strings[0])
	}
	classes := 1 + len(alphabet)
	if len(q) != n*steps*classes {
		return nil, nil, fmt.Errorf("ocr logits_q has %d values, want %d lines x %d steps x %d classes", len(q), n,
			steps, classes)
	}
	return texts, &LineLogits{Q: q, Lines: n, Steps: steps, Classes: classes, Alphabet: alphabet, Scale: scale}, nil
}

// reading is what Verifier._read reports to verify (read_document's fields the result uses).
type reading struct {
	portraitBox *Box
	mrzLines    []string
	checks      []Check
	mrz         *MRZResult // nil when the MRZ lines do not parse
	errors      []string   // "code" or "code: detail", in Python's order
}

// read is Verifier._read for located lines: the portrait, the MRZ lines (spaces dropped, then readMRZ:
// document_reader.parse), the parsed MRZ or the reason it could not be read.
func (v *Verifier) read(faces []Face, lines *Lines) (*reading, error) {
	r := &reading{mrzLines: []string{}, checks: []Check{}}
	if len(faces) > 0 {
		box := faces[0].Box
		r.portraitBox = &box
	} else {
		r.errors = append(r.errors, "no_portrait_on_document")
	}
	if lines.LocateError != "" {
		r.errors = append(r.errors, "no_document_found: "+lines.LocateError)
		return r, nil
	}
	if len(lines.Images) == 0 || lines.MRZCount < 0 || lines.MRZCount > len(lines.Images) {
		// document_reader.locate either raises or returns at least its MRZ lines
		return nil, fmt.Errorf("lines: %d located lines with %d MRZ lines and no locate error",
			len(lines.Images), lines.MRZCount)
	}
	texts, logits, err := v.recognise(lines.Images)
	if err != nil {
		return nil, err
	}
	for _, t := range texts[:lines.MRZCount] {
		r.mrzLines = append(r.mrzLines, strings.ReplaceAll(t, " ", "")) // characters that are spaces are dropped
	}
	if r.mrzLines, err = readMRZ(r.mrzLines, logits.head(lines.MRZCount)); err != nil {
		return nil, err
	}
	mrz, err := ParseMRZ(r.mrzLines)
	if err != nil {
		r.errors = append(r.errors, "mrz_unreadable: the MRZ lines do not have an MRZ's lengths and characters")
		return r, nil
	}
	r.mrz, r.checks = mrz, mrz.Checks
	return r, nil
}
