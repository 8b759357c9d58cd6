package inference

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// The lock check of veid_ml.hashing and veid_ml.inference.check_approved: every file of every approved model is
// hashed and compared with ml/models.lock.json before anything is loaded.

// ModelNames is registry.MODELS: the governed models, in Python's order. Every one is checked against the lock;
// mrz_locator is not loaded (locating the document stays in Python: README.md), but the lines Go reads come from it.
var ModelNames = []string{"facial_verification", "liveness_detection", "ocr_extraction", "face_detection",
	"mrz_locator"}

const manifestName = "manifest.json" // hashing.MANIFEST_NAME

// LockEntry is the part of a lock entry the check reads.
type LockEntry struct {
	WeightsDir string            `json:"weights_dir"`
	Artifact   string            `json:"artifact"`
	Digest     string            `json:"digest"`
	Files      map[string]string `json:"files"`
}

// UnapprovedModelError is inference.UnapprovedModelError: the model on disk is not byte-for-byte the approved one.
// Problems maps each failing model to its differences ("changed: <file>", "missing: ...", "extra: ...", ...).
type UnapprovedModelError struct {
	LockPath string
	Unlisted []string // models without a lock entry
	Problems map[string][]string
}

func (e *UnapprovedModelError) Error() string {
	var parts []string
	for _, name := range e.Unlisted {
		parts = append(parts, fmt.Sprintf("%s has no approved digest in %s; train it with `veid-ml train`", name,
			e.LockPath))
	}
	for _, name := range ModelNames {
		if problems, ok := e.Problems[name]; ok {
			parts = append(parts, name+" does not match its approved digest:\n  "+strings.Join(problems, "\n  "))
		}
	}
	return strings.Join(parts, "\n")
}

// readLock is hashing.read_lock: a missing lock has no models; a lock of another layout is an error.
func readLock(lockPath string) (map[string]json.RawMessage, error) {
	data, err := os.ReadFile(lockPath)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]json.RawMessage{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("model lock file %s: %w", lockPath, err)
	}
	var lock struct {
		Version any                        `json:"version"`
		Models  map[string]json.RawMessage `json:"models"`
	}
	if err := json.Unmarshal(data, &lock); err != nil {
		return nil, fmt.Errorf("model lock file %s is not valid JSON (or has an unknown layout): %w", lockPath, err)
	}
	if v, ok := lock.Version.(float64); !ok || v != 1 || lock.Models == nil {
		return nil, fmt.Errorf("model lock file %s has an unknown layout (expected version 1)", lockPath)
	}
	return lock.Models, nil
}

// under joins like pathlib's `/`: an absolute right-hand side replaces the left; nothing is cleaned.
func under(dir, rel string) string {
	if filepath.IsAbs(rel) {
		return rel
	}
	return dir + string(filepath.Separator) + rel
}

func isFile(path string) bool { // Path.is_file: follows symlinks, false on any error
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

// floatArtifact is hashing.float_artifact: the float twin's name beside an integer graph (facial_model -> facial_float).
func floatArtifact(artifact string) string {
	return strings.TrimSuffix(artifact, "_model") + "_float"
}

// artifactPaths is hashing.artifact_paths: the SavedModel directory's files (Path.rglob: symlinked directories are
// not entered, symlinked files count) and the frozen graph, of the artifact and of its float twin, as sorted
// slash-separated paths under weightsDir.
func artifactPaths(weightsDir, artifact string) ([]string, error) {
	var files []string
	var walk func(dir, rel string) error
	walk = func(dir, rel string) error {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			path, name := filepath.Join(dir, e.Name()), rel+"/"+e.Name()
			if e.IsDir() { // a real directory (ReadDir does not follow symlinks)
				if err := walk(path, name); err != nil {
					return err
				}
			} else if isFile(path) {
				files = append(files, name)
			}
		}
		return nil
	}
	for _, name := range []string{artifact, floatArtifact(artifact)} { // the graph and, if any, its float twin
		savedModel := under(weightsDir, name)
		if st, err := os.Stat(savedModel); err == nil && st.IsDir() {
			if err := walk(savedModel, name); err != nil {
				return nil, err
			}
		}
		if isFile(under(weightsDir, name+"_frozen.pb")) {
			files = append(files, name+"_frozen.pb")
		}
	}
	sort.Strings(files) // byte order of UTF-8 = Python's code point order
	return files, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// modelDigest is hashing.model_digest: sha256 over "<digest>  <path>\n" lines sorted by path.
func modelDigest(files map[string]string) string {
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	h := sha256.New()
	for _, p := range paths {
		fmt.Fprintf(h, "%s  %s\n", files[p], p)
	}
	return "sha256:" + hex.EncodeToString(h.Sum(nil))
}

// diffFiles is hashing.diff_files.
func diffFiles(expected, actual map[string]string, prefix string) []string {
	sorted := func(m map[string]string) []string {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		return keys
	}
	var problems []string
	for _, p := range sorted(expected) {
		if a, ok := actual[p]; ok && a != expected[p] {
			problems = append(problems, "changed: "+prefix+p)
		}
	}
	for _, p := range sorted(expected) {
		if _, ok := actual[p]; !ok {
			problems = append(problems, "missing: "+prefix+p)
		}
	}
	for _, p := range sorted(actual) {
		if _, ok := expected[p]; !ok {
			problems = append(problems, "extra: "+prefix+p)
		}
	}
	return problems
}

// verifyModel is hashing.verify for one model: its problems (none = the approved bytes).
func verifyModel(lockPath string, entry *LockEntry) ([]string, error) {
	weightsDir := under(filepath.Dir(lockPath), entry.WeightsDir)
	paths, err := artifactPaths(weightsDir, entry.Artifact)
	if err != nil {
		return nil, err
	}
	actual := map[string]string{}
	for _, p := range paths {
		if actual[p], err = fileSHA256(under(weightsDir, filepath.FromSlash(p))); err != nil {
			return nil, err
		}
	}
	problems := diffFiles(entry.Files, actual, entry.WeightsDir+"/")
	if digest := modelDigest(actual); len(problems) == 0 && digest != entry.Digest {
		problems = append(problems, fmt.Sprintf("digest %s != approved %s", digest, entry.Digest))
	}
	manifestPath := under(weightsDir, manifestName)
	if _, err := os.Stat(manifestPath); err != nil {
		problems = append(problems, fmt.Sprintf("missing: %s/%s (export incomplete?)", entry.WeightsDir, manifestName))
	} else {
		data, err := os.ReadFile(manifestPath)
		if err != nil {
			return nil, fmt.Errorf("model manifest %s: %w", manifestPath, err)
		}
		var manifest map[string]any
		if err := json.Unmarshal(data, &manifest); err != nil {
			return nil, fmt.Errorf("model manifest %s is not valid JSON: %w", manifestPath, err)
		}
		if digest, _ := manifest["digest"].(string); digest != entry.Digest {
			problems = append(problems, fmt.Sprintf("changed: %s/%s digest differs from the lock", entry.WeightsDir,
				manifestName))
		}
	}
	return problems, nil
}

// checkApproved is inference.check_approved for every governed model: their lock entries when every file matches,
// else an *UnapprovedModelError naming each difference of each model.
func checkApproved(lockPath string) (map[string]*LockEntry, error) {
	models, err := readLock(lockPath)
	if err != nil {
		return nil, err
	}
	entries := map[string]*LockEntry{}
	failed := &UnapprovedModelError{LockPath: lockPath, Problems: map[string][]string{}}
	for _, name := range ModelNames {
		raw, ok := models[name]
		if !ok {
			failed.Unlisted = append(failed.Unlisted, name)
			continue
		}
		entry := &LockEntry{}
		if err := json.Unmarshal(raw, entry); err != nil {
			return nil, fmt.Errorf("lock entry %s in %s: %w", name, lockPath, err)
		}
		if entry.WeightsDir == "" || entry.Artifact == "" || entry.Files == nil {
			return nil, fmt.Errorf("lock entry %s in %s lacks weights_dir, artifact or files", name, lockPath)
		}
		problems, err := verifyModel(lockPath, entry)
		if err != nil {
			return nil, fmt.Errorf("checking %s: %w", name, err)
		}
		if len(problems) > 0 {
			failed.Problems[name] = problems
		}
		entries[name] = entry
	}
	if len(failed.Unlisted) > 0 || len(failed.Problems) > 0 {
		return nil, failed
	}
	return entries, nil
}
