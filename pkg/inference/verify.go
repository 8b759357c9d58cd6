package inference

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// The VEID pipeline of veid_ml.api.Verifier.verify: detect -> align -> liveness -> embed, and the located document
// lines -> recognise -> parse, then the integer score, decision and reasons.

const (
	FaceSize     = 150 // api.FACE_CHIP.size: facial_verification's input side (FaceChip)
	LivenessSize = 128 // api.LIVENESS_CHIP.size: liveness_detection's input side (LivenessChip)
)

// Box is a face box [x0, y0, x1, y1] in pixels, corners rounded half to even.
type Box [4]int

// Face is one detected face (api.Verifier.faces): box, five landmarks in 1/16 px, score in basis points.
type Face struct {
	Box    Box
	Points Points
	Score  int
}

// usable is api.usable: eyes at least MinEyeDistanceQ4 apart.
func (f Face) usable() bool { return eyeDistanceSqQ4(f.Points) >= MinEyeDistanceQ4*MinEyeDistanceQ4 }

// Verifier holds the four approved models it runs, loaded after every governed model's bytes matched the lock.
type Verifier struct {
	LockPath            string
	Digests             map[string]string // model name -> approved digest
	SimilarityThreshold int               // bp, read from facial_verification's graph
	LivenessThreshold   int               // bp, read from liveness_detection's graph

	detect, facial, liveness, ocr *savedModel
}

// Load checks every governed model's files against the lock (an *UnapprovedModelError names each difference), and
// only then pins the environment and loads them: Verifier.load.
func Load(lockPath string) (*Verifier, error) {
	entries, err := checkApproved(lockPath)
	if err != nil {
		return nil, err
	}
	if err := openTensorFlow(); err != nil {
		return nil, err
	}
	v := &Verifier{LockPath: lockPath, Digests: map[string]string{}}
	models := map[string]**savedModel{"face_detection": &v.detect, "facial_verification": &v.facial,
		"liveness_detection": &v.liveness, "ocr_extraction": &v.ocr}
	for _, name := range ModelNames {
		entry := entries[name]
		v.Digests[name] = entry.Digest
		model, runs := models[name]
		if !runs { // checked against the lock, run by the Python side (mrz_locator)
			continue
		}
		dir := under(under(filepath.Dir(lockPath), entry.WeightsDir), entry.Artifact)
		if *model, err = loadSavedModel(dir); err != nil {
			v.Close()
			return nil, err
		}
	}
	if err := v.readThresholds(); err != nil {
		v.Close()
		return nil, err
	}
	return v, nil
}

// Close releases the TF sessions.
func (v *Verifier) Close() {
	for _, m := range []*savedModel{v.detect, v.facial, v.liveness, v.ocr} {
		if m != nil {
			m.close()
		}
	}
}

// readThresholds reads the thresholds from the integer graphs as Python does: facial serving_default on one
// all-zero 150 x 150 pair, liveness serving_default on one all-zero 128 x 128 image (threshold_bp, int32).
func (v *Verifier) readThresholds() error {
	face := uint8Tensor([]int64{1, FaceSize, FaceSize, 3}, make([]byte, FaceSize*FaceSize*3))
	out, err := v.facial.run("serving_default", map[string]*tensor{"image_a": face, "image_b": face}, "threshold_bp")
	if err != nil {
		return err
	}
	t, err := out["threshold_bp"].int32s()
	if err != nil || len(t) < 1 {
		return fmt.Errorf("facial_verification threshold_bp output: %v (%d values)", err, len(t))
	}
	v.SimilarityThreshold = int(t[0])
	live := uint8Tensor([]int64{1, LivenessSize, LivenessSize, 3}, make([]byte, LivenessSize*LivenessSize*3))
	out, err = v.liveness.run("serving_default", map[string]*tensor{"image": live}, "threshold_bp")
	if err != nil {
		return err
	}
	if t, err = out["threshold_bp"].int32s(); err != nil || len(t) != 1 {
		return fmt.Errorf("liveness_detection threshold_bp output: %v (%d values)", err, len(t))
	}
	v.LivenessThreshold = int(t[0])
	return nil
}

// Faces is api.Verifier.faces: the faces in an image, largest box first (a stable sort: equal areas keep the
// detector's order).
func (v *Verifier) Faces(img *RGB) ([]Face, error) {
	out, err := v.detect.run("serving_default",
		map[string]*tensor{"image": uint8Tensor([]int64{int64(img.Height), int64(img.Width), 3}, img.Pix)},
		"boxes_q4", "landmarks_q4", "scores_bp")
	if err != nil {
		return nil, err
	}
	boxes, err1 := out["boxes_q4"].int32s()
	marks, err2 := out["landmarks_q4"].int32s()
	scores, err3 := out["scores_bp"].int32s()
	n := len(scores)
	if err1 != nil || err2 != nil || err3 != nil || len(boxes) != 4*n || len(marks) != 10*n {
		return nil, fmt.Errorf("face_detection outputs: %d boxes, %d landmarks, %d scores (%v %v %v)",
			len(boxes), len(marks), n, err1, err2, err3)
	}
	faces := make([]Face, n)
	for i := range faces {
		for j := 0; j < 4; j++ {
			faces[i].Box[j] = int(math.RoundToEven(float64(boxes[4*i+j]) / 16)) // exact: a 1/16 px integer
		}
		var lm Points
		for j := range lm {
			lm[j] = [2]int64{int64(marks[10*i+2*j]), int64(marks[10*i+2*j+1])}
		}
		faces[i].Points = orderedQ4(lm)
		faces[i].Score = int(scores[i])
	}
	area := func(b Box) int64 { return int64(b[2]-b[0]) * int64(b[3]-b[1]) }
	sort.SliceStable(faces, func(a, b int) bool { return area(faces[a].Box) > area(faces[b].Box) })
	return faces, nil
}

// similarity is api.Verifier._similarity: facial_verification's `embed` on the two 150 px face chips in one batch
// of two (the batch shape is part of the contract): Q14 integer embeddings, then similarityBP.
func (v *Verifier) similarity(imgA *RGB, faceA Face, imgB *RGB, faceB Face) (int, error) {
	cropA, err := cropFace(imgA, faceA.Points, FaceChip)
	if err != nil {
		return 0, err
	}
	cropB, err := cropFace(imgB, faceB.Points, FaceChip)
	if err != nil {
		return 0, err
	}
	out, err := v.facial.run("embed", map[string]*tensor{
		"image": uint8Tensor([]int64{2, FaceSize, FaceSize, 3}, append(cropA, cropB...))}, "embedding")
	if err != nil {
		return 0, err
	}
	e, err := out["embedding"].int32s()
	if err != nil {
		return 0, err
	}
	if len(e)%2 != 0 {
		return 0, fmt.Errorf("facial_verification embed output: %d values for 2 faces", len(e))
	}
	a, b := make([]int64, len(e)/2), make([]int64, len(e)/2)
	for i := range a {
		a[i], b[i] = int64(e[i]), int64(e[len(a)+i])
	}
	return similarityBP(a, b), nil
}

// livenessBP is api.Verifier._liveness_bp: liveness_detection on one 128 px crop.
func (v *Verifier) livenessBP(img *RGB, face Face) (int, error) {
	crop, err := cropFace(img, face.Points, LivenessChip)
	if err != nil {
		return 0, err
	}
	out, err := v.liveness.run("serving_default",
		map[string]*tensor{"image": uint8Tensor([]int64{1, LivenessSize, LivenessSize, 3}, crop)},
		"probability_bona_fide_bp")
	if err != nil {
		return 0, err
	}
	p, err := out["probability_bona_fide_bp"].int32s()
	if err != nil || len(p) != 1 {
		return 0, fmt.Errorf("liveness_detection probability_bona_fide_bp output: %v (%d values)", err, len(p))
	}
	return int(p[0]), nil
}

// SelfieComponents are the selfie's entries of a result's components (absent when the selfie was too small).
type SelfieComponents struct {
	Faces   int
	FaceBox *Box // largest face; nil = null
}

// DocumentComponents are the document's entries (absent when the document photo was too small).
type DocumentComponents struct {
	Faces       int
	PortraitBox *Box
	MRZLines    []string
	MRZChecks   []Check
}

// Components is a result's "components": every model's integer output, with Python's keys, order and nulls.
type Components struct {
	Selfie              *SelfieComponents
	Document            *DocumentComponents
	Similarity          *int
	SimilarityThreshold int
	Liveness            *int
	LivenessThreshold   int
}

// jsonObject writes an ordered JSON object.
type jsonObject struct {
	buf bytes.Buffer
	err error
}

func (o *jsonObject) add(key string, value any) {
	if o.err != nil {
		return
	}
	if o.buf.Len() == 0 {
		o.buf.WriteByte('{')
	} else {
		o.buf.WriteByte(',')
	}
	k, _ := json.Marshal(key)
	v, err := json.Marshal(value)
	o.buf.Write(k)
	o.buf.WriteByte(':')
	o.buf.Write(v)
	o.err = err
}

func (o *jsonObject) bytes() ([]byte, error) {
	if o.buf.Len() == 0 {
		o.buf.WriteByte('{')
	}
	o.buf.WriteByte('}')
	return o.buf.Bytes(), o.err
}

// checksJSON is an ordered {"check": bool} object, as Python's dict keeps its order.
type checksJSON []Check

func (c checksJSON) MarshalJSON() ([]byte, error) {
	var o jsonObject
	for _, check := range c {
		o.add(check.Name, check.OK)
	}
	return o.bytes()
}

// MarshalJSON writes the components in Python's key order: selfie_faces, selfie_face_box, document_faces,
// portrait_box, mrz_lines, mrz_checks, similarity, similarity_threshold, liveness, liveness_threshold.
func (c Components) MarshalJSON() ([]byte, error) {
	var o jsonObject
	if c.Selfie != nil {
		o.add("selfie_faces", c.Selfie.Faces)
		o.add("selfie_face_box", c.Selfie.FaceBox)
	}
	if d := c.Document; d != nil {
		o.add("document_faces", d.Faces)
		o.add("portrait_box", d.PortraitBox)
		lines := d.MRZLines
		if lines == nil {
			lines = []string{}
		}
		o.add("mrz_lines", lines)
		o.add("mrz_checks", checksJSON(d.MRZChecks))
	}
	o.add("similarity", c.Similarity)
	o.add("similarity_threshold", c.SimilarityThreshold)
	o.add("liveness", c.Liveness)
	o.add("liveness_threshold", c.LivenessThreshold)
	return o.bytes()
}

// Result is the VEID result of api.Verifier.verify.
type Result struct {
	Score      int               `json:"score"`
	Decision   string            `json:"decision"` // accept | reject | retake
	Reasons    []Reason          `json:"reasons"`
	Components Components        `json:"components"`
	Models     map[string]string `json:"models"` // model name -> approved digest
	Version    string            `json:"version"`
}

// tooSmall is images._check_size's minimum for an H x W x 3 array (the form Python's verify decodes): nil if fine.
func tooSmall(name string, img *RGB) *Reason {
	if img.Width >= MinSide && img.Height >= MinSide {
		return nil
	}
	r := newReason("image_too_small", fmt.Sprintf("%s: array (shape (%d, %d, 3), dtype uint8): is %dx%d pixels; "+
		"both sides must be at least %d px", name, img.Height, img.Width, img.Width, img.Height, MinSide))
	return &r
}

// Verify is api.Verifier.verify for decoded images and the document's located lines (or the error locating gave):
// the score, decision, reasons and components. today is the date the document must not have expired by (its
// calendar date in its own location; the zero time means today in UTC, Python's default). Safe for concurrent use.
func (v *Verifier) Verify(selfie, document *RGB, lines *Lines, today time.Time) (*Result, error) {
	if selfie == nil || document == nil || lines == nil {
		return nil, fmt.Errorf("Verify needs a selfie, a document and the document's located lines")
	}
	if today.IsZero() {
		today = time.Now().UTC()
	}
	var reasons []Reason
	var c Components
	images := map[string]*RGB{}
	for _, in := range []struct {
		name string
		img  *RGB
	}{{"selfie", selfie}, {"document", document}} {
		if len(in.img.Pix) != 3*in.img.Width*in.img.Height {
			return nil, fmt.Errorf("%s: %d bytes for %dx%d RGB", in.name, len(in.img.Pix), in.img.Width, in.img.Height)
		}
		if int64(in.img.Width)*int64(in.img.Height) > MaxPixels {
			return nil, tooLarge(in.name, fmt.Sprintf("is %dx%d pixels, more than the %d-pixel limit",
				in.img.Width, in.img.Height, MaxPixels))
		}
		if r := tooSmall(in.name, in.img); r != nil {
			reasons = append(reasons, *r)
		} else {
			images[in.name] = in.img
		}
	}
	var selfieFace, documentFace *Face
	if img, ok := images["selfie"]; ok {
		faces, err := v.Faces(img)
		if err != nil {
			return nil, err
		}
		c.Selfie = &SelfieComponents{Faces: len(faces)}
		switch {
		case len(faces) == 0:
			reasons = append(reasons, newReason("no_face_in_selfie", ""))
		case len(faces) > 1:
			reasons = append(reasons, newReason("multiple_faces_in_selfie", fmt.Sprintf("%d faces", len(faces))))
		case !faces[0].usable():
			reasons = append(reasons, newReason("face_too_small", "selfie"))
		default:
			selfieFace = &faces[0]
		}
		if len(faces) > 0 {
			box := faces[0].Box
			c.Selfie.FaceBox = &box
		}
	}
	documentOK := false
	if img, ok := images["document"]; ok {
		faces, err := v.Faces(img)
		if err != nil {
			return nil, err
		}
		r, err := v.read(faces, lines)
		if err != nil {
			return nil, err
		}
		c.Document = &DocumentComponents{Faces: len(faces), PortraitBox: r.portraitBox}
		if len(faces) > 0 && !faces[0].usable() {
			reasons = append(reasons, newReason("face_too_small", "document portrait"))
		} else if len(faces) > 0 {
			documentFace = &faces[0]
		}
		for _, e := range r.errors {
			code, detail, _ := strings.Cut(e, ": ") // str.partition
			reasons = append(reasons, newReason(code, detail))
		}
		c.Document.MRZLines, c.Document.MRZChecks = r.mrzLines, r.checks
		if r.mrz != nil {
			found := documentReasons(r.checks, r.mrz.ExpiryDate, today)
			reasons = append(reasons, found...)
			documentOK = len(found) == 0
		}
	}
	if selfieFace != nil {
		live, err := v.livenessBP(images["selfie"], *selfieFace)
		if err != nil {
			return nil, err
		}
		c.Liveness = &live
		if documentFace != nil {
			similarity, err := v.similarity(images["selfie"], *selfieFace, images["document"], *documentFace)
			if err != nil {
				return nil, err
			}
			c.Similarity = &similarity
		}
	}
	c.SimilarityThreshold, c.LivenessThreshold = v.SimilarityThreshold, v.LivenessThreshold
	score, decision, all, err := combine(c.Similarity, v.SimilarityThreshold, c.Liveness, v.LivenessThreshold,
		documentOK, reasons)
	if err != nil {
		return nil, err
	}
	models := map[string]string{}
	for k, d := range v.Digests {
		models[k] = d
	}
	return &Result{Score: score, Decision: decision, Reasons: all, Components: c, Models: models,
		Version: Version}, nil
}
