package inference

import (
	"fmt"
	"math/big"
	"strings"
	"time"
)

// The VEID result from the models' outputs: veid_ml.scoring, line for line. Every model output becomes an integer
// once; the score and decision are integer arithmetic on those.

// Version is scoring.VERSION.
const Version = "veid-1"

const (
	embeddingOne = 1 << 14 // scoring.EMBEDDING_ONE
	bp           = 10000   // scoring.BP
)

// reasonTexts is scoring.REASONS.
var reasonTexts = map[string]string{
	"face_mismatch":            "the selfie and the document portrait are not the same person",
	"presentation_attack":      "the selfie is not a live capture (print, screen replay or mask)",
	"mrz_checksum_failed":      "an MRZ check digit does not match",
	"mrz_invalid_date":         "an MRZ date is not a calendar date",
	"document_expired":         "the document's expiry date has passed",
	"image_too_small":          "an image is smaller than 32 px on its shorter side",
	"no_face_in_selfie":        "no face was found in the selfie",
	"multiple_faces_in_selfie": "more than one face was found in the selfie",
	"face_too_small":           "a face is too small to verify (eyes under 10 px apart)",
	"no_portrait_on_document":  "no portrait was found on the document",
	"no_document_found":        "no ID document was found in the document photo",
	"mrz_unreadable":           "the machine-readable zone could not be read",
}

// rejectReasons is scoring.REJECT: reasons retaking cannot fix.
var rejectReasons = map[string]bool{"face_mismatch": true, "presentation_attack": true,
	"mrz_checksum_failed": true, "mrz_invalid_date": true, "document_expired": true}

// checkNames is scoring.CHECK_NAMES: MRZ check -> reason suffix (mrz_checksum_failed:expiry).
var checkNames = map[string]string{"document_number": "number", "birth_date": "birth", "expiry_date": "expiry",
	"optional_data": "optional", "composite": "composite"}

// Reason is one reason of a result: {"code", "text"}.
type Reason struct {
	Code string `json:"code"`
	Text string `json:"text"`
}

// newReason is scoring.reason: the code's family text, the detail appended in parentheses.
func newReason(code, detail string) Reason {
	family, _, _ := strings.Cut(code, ":")
	text := reasonTexts[family]
	if detail != "" {
		text += " (" + detail + ")"
	}
	return Reason{Code: code, Text: text}
}

// similarityBP is scoring.similarity_bp: 1 - |a - b|^2 / 2 of two quantised embeddings in bp, clamped to 0..10000.
// The squared distance wraps at 64 bits like np.dot on int64; the rest is Python's unbounded integer arithmetic.
func similarityBP(a, b []int64) int {
	var sq int64
	for i := range a {
		d := a[i] - b[i]
		sq += d * d
	}
	one := big.NewInt(embeddingOne * embeddingOne)
	n := new(big.Int).Mul(big.NewInt(sq), big.NewInt(2*bp))
	n.Add(n, new(big.Int).Mul(one, big.NewInt(2)))
	q := new(big.Int).Div(n, new(big.Int).Mul(one, big.NewInt(4))) // Euclidean = floor for a positive divisor
	q.Sub(big.NewInt(bp), q)
	if q.Sign() < 0 {
		return 0
	}
	if q.Cmp(big.NewInt(bp)) > 0 {
		return bp
	}
	return int(q.Int64())
}

// points is scoring.points: x mapped so that its threshold lands on 50.
func points(x, threshold int) (int, error) {
	if x < threshold {
		if threshold == 0 {
			return 0, fmt.Errorf("threshold 0")
		}
		return int(floorDiv(int64(x)*50, int64(threshold))), nil
	}
	if threshold == bp {
		return 0, fmt.Errorf("threshold %d leaves no range above it (Python divides by zero)", threshold)
	}
	return 50 + int(floorDiv(int64(x-threshold)*50, int64(bp-threshold))), nil
}

// expiryDate is scoring.expiry_date: 20YY-MM-DD, or an error where Python's int() or datetime.date raises.
func expiryDate(yymmdd string) (time.Time, error) {
	if len(yymmdd) != 6 {
		return time.Time{}, fmt.Errorf("not YYMMDD")
	}
	var parts [3]int
	for i := range parts {
		a, b := yymmdd[2*i], yymmdd[2*i+1]
		if a < '0' || a > '9' || b < '0' || b > '9' {
			return time.Time{}, fmt.Errorf("not digits") // MRZ characters: only ASCII digits parse
		}
		parts[i] = int(a-'0')*10 + int(b-'0')
	}
	year, month, day := 2000+parts[0], parts[1], parts[2]
	d := time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC)
	if month < 1 || month > 12 || day < 1 || d.Day() != day {
		return time.Time{}, fmt.Errorf("not a calendar date")
	}
	return d, nil
}

// pyRepr is Python's repr() of an MRZ field (characters 0-9, A-Z, '<': no quotes or escapes inside).
func pyRepr(s string) string { return "'" + s + "'" }

// documentReasons is scoring.document_reasons: failed check digits, an impossible or passed expiry date.
func documentReasons(checks []Check, expiry string, today time.Time) []Reason {
	var found []Reason
	for _, c := range checks {
		if !c.OK {
			suffix, ok := checkNames[c.Name]
			if !ok {
				suffix = c.Name
			}
			found = append(found, newReason("mrz_checksum_failed:"+suffix, ""))
		}
	}
	date, err := expiryDate(expiry)
	if err != nil {
		return append(found, newReason("mrz_invalid_date:expiry", pyRepr(expiry)))
	}
	y, m, d := today.Date()
	if date.Before(time.Date(y, m, d, 0, 0, 0, 0, time.UTC)) {
		found = append(found, newReason("document_expired", "expired "+date.Format("2006-01-02")))
	}
	return found
}

// combine is scoring.combine: the score and decision from the components; adds face_mismatch and
// presentation_attack. similarity and liveness are nil without a face pair / a usable selfie face.
func combine(similarity *int, similarityThreshold int, liveness *int, livenessThreshold int, documentOK bool,
	reasons []Reason) (score int, decision string, out []Reason, err error) {
	out = append([]Reason{}, reasons...)
	if similarity != nil && *similarity < similarityThreshold {
		out = append(out, newReason("face_mismatch", ""))
	}
	if liveness != nil && *liveness < livenessThreshold {
		out = append(out, newReason("presentation_attack", ""))
	}
	parts := [3]int{}
	if similarity != nil {
		if parts[0], err = points(*similarity, similarityThreshold); err != nil {
			return 0, "", nil, err
		}
	}
	if liveness != nil {
		if parts[1], err = points(*liveness, livenessThreshold); err != nil {
			return 0, "", nil, err
		}
	}
	if documentOK {
		parts[2] = 100
	}
	decision = "accept"
	if len(out) > 0 {
		decision = "retake"
	}
	for _, r := range out {
		family, _, _ := strings.Cut(r.Code, ":")
		if rejectReasons[family] {
			decision = "reject"
			break
		}
	}
	if decision != "retake" {
		score = parts[0]
		for _, p := range parts[1:] {
			if p < score {
				score = p
			}
		}
	}
	return score, decision, out, nil
}
