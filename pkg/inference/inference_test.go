package inference

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"image"
	"image/jpeg"
	"math/rand"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The golden test: Python's results (python -m veid_ml.golden DIR) reproduced exactly from the same PNGs.

const goldenHint = "generate with: .venv/bin/python -m veid_ml.golden DIR (in the repository root), then run " +
	"VEID_GOLDEN_DIR=DIR go test ./..."

func lockPath() string {
	if p := os.Getenv("VEID_LOCK"); p != "" {
		return p
	}
	return filepath.Join("..", "..", "ml", "models.lock.json")
}

var (
	loadOnce   sync.Once
	verifier   *Verifier
	loadErr    error
	loadedTook time.Duration
)

func loadVerifier(t *testing.T) *Verifier {
	t.Helper()
	loadOnce.Do(func() {
		started := time.Now()
		verifier, loadErr = Load(lockPath())
		loadedTook = time.Since(started)
	})
	if loadErr != nil {
		t.Fatalf("Load(%s): %v", lockPath(), loadErr)
	}
	return verifier
}

type goldenCase struct {
	Name         string  `json:"name"`
	Selfie       string  `json:"selfie"`
	Document     string  `json:"document"`
	Lines        *string `json:"lines"`
	MRZLineCount int     `json:"mrz_line_count"`
	LocateError  *string `json:"locate_error"`
	Result       struct {
		Score       int             `json:"score"`
		Decision    string          `json:"decision"`
		ReasonCodes []string        `json:"reason_codes"`
		Components  json.RawMessage `json:"components"`
	} `json:"result"`
}

type goldenDecode struct {
	File      string `json:"file"`
	Height    int    `json:"height"`
	Width     int    `json:"width"`
	RGBSHA256 string `json:"rgb_sha256"`
}

type goldenFile struct {
	Version string            `json:"version"`
	Today   string            `json:"today"`
	Models  map[string]string `json:"models"`
	Cases   []goldenCase      `json:"cases"`
	Decode  []goldenDecode    `json:"decode"`
}

func readGolden(t *testing.T) (string, *goldenFile) {
	t.Helper()
	dir := os.Getenv("VEID_GOLDEN_DIR")
	if dir == "" {
		if _, err := os.Stat(filepath.Join("testdata", "golden", "cases.json")); err != nil {
			t.Fatalf("VEID_GOLDEN_DIR is not set (and there is no testdata/golden); %s", goldenHint)
		}
		dir = filepath.Join("testdata", "golden")
	}
	data, err := os.ReadFile(filepath.Join(dir, "cases.json"))
	if err != nil {
		t.Fatalf("VEID_GOLDEN_DIR=%s has no readable cases.json (%v); %s", dir, err, goldenHint)
	}
	var g goldenFile
	if err := json.Unmarshal(data, &g); err != nil {
		t.Fatalf("%s/cases.json: %v", dir, err)
	}
	return dir, &g
}

// normalised is a JSON value decoded generically, so that key order and number spelling do not matter.
func normalised(t *testing.T, data []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("bad JSON %s: %v", data, err)
	}
	return v
}

func TestGoldenCases(t *testing.T) {
	dir, g := readGolden(t)
	v := loadVerifier(t)
	t.Logf("Load (lock check of 5 models + 4 SavedModels + thresholds): %v", loadedTook)
	if g.Version != Version {
		t.Errorf("golden version %q, Go %q", g.Version, Version)
	}
	if !reflect.DeepEqual(g.Models, v.Digests) {
		t.Errorf("golden models %v, Go loaded %v", g.Models, v.Digests)
	}
	today, err := time.Parse("2006-01-02", g.Today)
	if err != nil {
		t.Fatalf("golden today %q: %v", g.Today, err)
	}
	if len(g.Cases) == 0 {
		t.Fatalf("%s/cases.json has no cases", dir)
	}
	matched := 0
	for _, c := range g.Cases {
		c := c
		ok := t.Run(c.Name, func(t *testing.T) {
			selfie, err := DecodePNGFile(filepath.Join(dir, c.Selfie))
			if err != nil {
				t.Fatal(err)
			}
			document, err := DecodePNGFile(filepath.Join(dir, c.Document))
			if err != nil {
				t.Fatal(err)
			}
			var lines *Lines
			if c.Lines != nil {
				data, err := os.ReadFile(filepath.Join(dir, *c.Lines))
				if err != nil {
					t.Fatal(err)
				}
				if lines, err = LinesFromPNG(data, c.MRZLineCount); err != nil {
					t.Fatal(err)
				}
			} else {
				if c.LocateError == nil {
					t.Fatal("case has neither lines nor a locate_error")
				}
				lines = LocateFailed(*c.LocateError)
			}
			started := time.Now()
			got, err := v.Verify(selfie, document, lines, today)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %s %d in %v", c.Name, got.Decision, got.Score, time.Since(started))
			if got.Score != c.Result.Score {
				t.Errorf("score %d, Python %d", got.Score, c.Result.Score)
			}
			if got.Decision != c.Result.Decision {
				t.Errorf("decision %q, Python %q", got.Decision, c.Result.Decision)
			}
			codes := []string{}
			for _, r := range got.Reasons {
				codes = append(codes, r.Code)
			}
			want := append([]string{}, c.Result.ReasonCodes...)
			if !reflect.DeepEqual(codes, want) {
				t.Errorf("reason codes %v, Python %v", codes, want)
			}
			mine, err := json.Marshal(got.Components)
			if err != nil {
				t.Fatal(err)
			}
			if a, b := normalised(t, mine), normalised(t, c.Result.Components); !reflect.DeepEqual(a, b) {
				t.Errorf("components differ:\n Go     %s\n Python %s", mine, c.Result.Components)
			}
		})
		if ok {
			matched++
		}
	}
	t.Logf("%d of %d golden cases matched", matched, len(g.Cases))
}

func TestGoldenDecode(t *testing.T) {
	dir, g := readGolden(t)
	if len(g.Decode) == 0 {
		t.Fatalf("%s/cases.json has no decode entries", dir)
	}
	for _, d := range g.Decode {
		img, err := DecodePNGFile(filepath.Join(dir, d.File))
		if err != nil {
			t.Errorf("%s: %v", d.File, err)
			continue
		}
		sum := sha256.Sum256(img.Pix)
		if img.Height != d.Height || img.Width != d.Width || hex.EncodeToString(sum[:]) != d.RGBSHA256 {
			t.Errorf("%s: %dx%d sha256 %x, Python %dx%d %s", d.File, img.Height, img.Width, sum, d.Height, d.Width,
				d.RGBSHA256)
		}
	}
}

// TestTamperedLockIsRefused: a lock copy with one file hash changed is refused before anything loads, naming the file.
func TestTamperedLockIsRefused(t *testing.T) {
	original, err := filepath.Abs(lockPath())
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(original)
	if err != nil {
		t.Fatalf("reading the lock %s: %v", original, err)
	}
	var lock map[string]any
	if err := json.Unmarshal(data, &lock); err != nil {
		t.Fatal(err)
	}
	models := lock["models"].(map[string]any)
	target := ""
	for _, name := range ModelNames {
		entry := models[name].(map[string]any)
		// the copy lives elsewhere: point it at the real weights (pathlib: an absolute right side wins)
		entry["weights_dir"] = filepath.Join(filepath.Dir(original), entry["weights_dir"].(string))
		if name == "liveness_detection" {
			files := entry["files"].(map[string]any)
			rel := entry["artifact"].(string) + "/saved_model.pb"
			files[rel] = strings.Repeat("0", 64)
			target = entry["weights_dir"].(string) + "/" + rel
		}
	}
	tampered := filepath.Join(t.TempDir(), "models.lock.json")
	out, _ := json.Marshal(lock)
	if err := os.WriteFile(tampered, out, 0o644); err != nil {
		t.Fatal(err)
	}
	v, err := Load(tampered)
	if err == nil {
		v.Close()
		t.Fatal("a tampered lock was accepted")
	}
	var unapproved *UnapprovedModelError
	if !errors.As(err, &unapproved) {
		t.Fatalf("want an *UnapprovedModelError, got %T: %v", err, err)
	}
	if !strings.Contains(err.Error(), "changed: "+target) {
		t.Errorf("the error does not name %s:\n%v", target, err)
	}
	if len(unapproved.Problems) != 1 || len(unapproved.Problems["liveness_detection"]) != 1 {
		t.Errorf("want exactly one problem (liveness_detection), got %v", unapproved.Problems)
	}
}

func TestMissingLockEntryIsRefused(t *testing.T) {
	lock := filepath.Join(t.TempDir(), "models.lock.json")
	if err := os.WriteFile(lock, []byte(`{"version": 1, "models": {}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(lock)
	if err == nil || !strings.Contains(err.Error(), "face_detection has no approved digest") {
		t.Fatalf("want a no-approved-digest error, got %v", err)
	}
}

func TestRefusesJPEGAndGarbage(t *testing.T) {
	var jpg bytes.Buffer
	if err := jpeg.Encode(&jpg, image.NewRGBA(image.Rect(0, 0, 40, 40)), nil); err != nil {
		t.Fatal(err)
	}
	var inputErr *InputError
	_, err := DecodePNG(jpg.Bytes())
	if !errors.As(err, &inputErr) || inputErr.Reason != "image_unsupported" || !strings.Contains(err.Error(), "JPEG") {
		t.Errorf("JPEG: want an image_unsupported error naming JPEG, got %v", err)
	}
	for name, data := range map[string][]byte{
		"garbage":   []byte("this is not an image at all"),
		"empty":     {},
		"truncated": append(append([]byte{}, pngMagic...), 0, 0, 0, 13, 'I', 'H', 'D', 'R'),
	} {
		_, err := DecodePNG(data)
		if !errors.As(err, &inputErr) || inputErr.Reason != "image_unreadable" {
			t.Errorf("%s: want an image_unreadable error, got %v", name, err)
		}
	}
	if _, err := DecodePNGFile(filepath.Join(t.TempDir(), "missing.png")); err == nil ||
		!strings.Contains(err.Error(), "does not exist") {
		t.Errorf("missing file: got %v", err)
	}
}

// TestCropEqualsCropWhole: the windowed crop reads the same bytes as shrinking the whole photo (alignment.crop's
// promise), for landmarks in and out of the image and at shrink factors 1..5.
func TestCropEqualsCropWhole(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	img := &RGB{Width: 301, Height: 233, Pix: make([]byte, 301*233*3)}
	rng.Read(img.Pix)
	for i := 0; i < 300; i++ {
		x0, y0 := rng.Int63n(16*400)-16*50, rng.Int63n(16*300)-16*50
		dist := 16 + rng.Int63n(16*180)
		e := Points{{x0, y0}, {x0 + dist, y0 + rng.Int63n(dist) - dist/2}}
		for j := 2; j < 5; j++ {
			e[j] = [2]int64{x0 + rng.Int63n(dist+1), y0 + rng.Int63n(2*dist+1)}
		}
		for _, chip := range []Chip{FaceChip, LivenessChip} {
			a, errA := cropFace(img, e, chip)
			b, errB := cropWhole(img, e, chip)
			if (errA == nil) != (errB == nil) || !bytes.Equal(a, b) {
				t.Fatalf("eyes %v chip %v: crop and crop_whole differ (%v, %v)", e, chip, errA, errB)
			}
		}
	}
}

func TestCheckDigitsAndParse(t *testing.T) {
	// ICAO 9303 Part 5 specimen (TD1)
	lines := []string{"I<UTOD231458907<<<<<<<<<<<<<<<", "7408122F1204159UTO<<<<<<<<<<<6", "ERIKSSON<<ANNA<MARIA<<<<<<<<<<"}
	r, err := ParseMRZ(lines)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Valid() || r.Surname != "ERIKSSON" || r.GivenNames != "ANNA MARIA" || r.DocumentNumber != "D23145890" {
		t.Errorf("parsed %+v", r)
	}
	if _, err := ParseMRZ([]string{"I<UTO", "x"}); err == nil {
		t.Error("bad lines parsed")
	}
}

func TestScoring(t *testing.T) {
	if p, _ := points(5442, 5442); p != 50 {
		t.Errorf("points at the threshold: %d", p)
	}
	if s := similarityBP([]int64{1 << 14}, []int64{-(1 << 14)}); s != 0 {
		t.Errorf("opposite embeddings: %d", s)
	}
	if s := similarityBP([]int64{1 << 14}, []int64{1 << 14}); s != 10000 {
		t.Errorf("equal embeddings: %d", s)
	}
	if s := similarityBP([]int64{9830, 0}, []int64{0, 0}); s != 8200 { // dlib's distance threshold 0.6
		t.Errorf("distance 0.6: %d", s)
	}
	if floorDiv(-7, 2) != -4 || floorDiv(7, -2) != -4 || floorDiv(-6, 2) != -3 {
		t.Error("floorDiv is not Python's //")
	}
	today := time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)
	if r := documentReasons(nil, "261128", today); len(r) != 1 || r[0].Code != "document_expired" {
		t.Errorf("expired: %v", r)
	}
	if r := documentReasons(nil, "261129", today); len(r) != 0 {
		t.Errorf("expires today: %v", r)
	}
	if r := documentReasons(nil, "260230", today); len(r) != 1 || r[0].Code != "mrz_invalid_date:expiry" {
		t.Errorf("30 February: %v", r)
	}
}

// TestCorrectReading runs the cases tests/test_mrz.py also runs against mrz.correct_reading.
func TestCorrectReading(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "mrz_readings.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		Note      string   `json:"note"`
		Read      []string `json:"read"`
		Corrected []string `json:"corrected"`
	}
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) == 0 {
		t.Fatal("no cases in testdata/mrz_readings.json")
	}
	for _, c := range cases {
		if got := CorrectReading(c.Read); !reflect.DeepEqual(got, c.Corrected) {
			t.Errorf("%s: CorrectReading(%q) = %q, want %q", c.Note, c.Read, got, c.Corrected)
		}
	}
}

// TestMRZDecodeCases runs readMRZ on the cases veid_ml.tools.mrz_decode_cases writes (tests/test_mrz_decode.py
// checks they are current): recogniser logits with the recogniser's known slips, and Python's read_mrz result.
func TestMRZDecodeCases(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "mrz_decode_cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Alphabet   string `json:"alphabet"`
		LogitScale string `json:"logit_scale"`
		Cases      []struct {
			Name    string   `json:"name"`
			Shape   [3]int   `json:"shape"`
			Entries [][3]int `json:"entries"`
			Values  []int32  `json:"values"`
			Texts   []string `json:"texts"`
			Read    []string `json:"read"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	scale, err := strconv.ParseFloat(doc.LogitScale, 64)
	if err != nil || len(doc.Cases) == 0 {
		t.Fatalf("logit_scale %q (%v), %d cases", doc.LogitScale, err, len(doc.Cases))
	}
	for _, c := range doc.Cases {
		l := &LineLogits{Q: make([]int32, c.Shape[0]*c.Shape[1]*c.Shape[2]), Lines: c.Shape[0], Steps: c.Shape[1],
			Classes: c.Shape[2], Alphabet: []rune(doc.Alphabet), Scale: scale}
		for i, e := range c.Entries {
			l.Q[(e[0]*l.Steps+e[1])*l.Classes+e[2]] = c.Values[i]
		}
		got, err := readMRZ(c.Texts, l)
		if err != nil || !reflect.DeepEqual(got, c.Read) {
			t.Errorf("%s: readMRZ(%q) = %q (%v), want %q", c.Name, c.Texts, got, err, c.Read)
		}
	}
}
