package inference

// The TF C API, loaded with dlopen when the first Verifier loads (libtensorflow_cc.so.2 from the project's
// .venv, see tensorflowDir), not linked: a linked TensorFlow runs its static initialisers before main, and
// they read TF_ENABLE_ONEDNN_OPTS (whether oneDNN's kernels run at all; TF's default depends on the CPU) before Go
// code could pin it. Loading it after pinEnvironment gives it determinism.FORCED_ENV, as Python's configure() does
// before `import tensorflow`.

/*
#cgo CFLAGS: -I${SRCDIR}/../../.venv/lib/python3.11/site-packages/tensorflow/include
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <tensorflow/c/c_api.h>
#include <tensorflow/c/tf_tstring.h>

#define VEID_TF_FUNCTIONS(X) X(TF_NewStatus) X(TF_DeleteStatus) X(TF_GetCode) X(TF_Message) \
	X(TF_NewSessionOptions) X(TF_DeleteSessionOptions) X(TF_SetConfig) X(TF_NewBuffer) X(TF_DeleteBuffer) \
	X(TF_NewGraph) X(TF_DeleteGraph) X(TF_LoadSessionFromSavedModel) X(TF_CloseSession) X(TF_DeleteSession) \
	X(TF_GraphOperationByName) X(TF_DataTypeSize) X(TF_AllocateTensor) X(TF_TensorData) X(TF_TensorType) \
	X(TF_NumDims) X(TF_Dim) X(TF_TensorByteSize) X(TF_DeleteTensor) X(TF_SessionRun) \
	X(TF_StringGetDataPointer) X(TF_StringGetSize) X(TF_Version)

#define VEID_POINTER(name) static __typeof__(&name) p_##name;
VEID_TF_FUNCTIONS(VEID_POINTER)

// veid_tf_open loads the library and resolves every function: NULL, or what failed.
static const char *veid_tf_open(const char *path) {
	void *lib = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
	if (lib == NULL) return dlerror();
#define VEID_RESOLVE(name) if ((p_##name = (__typeof__(&name))dlsym(lib, #name)) == NULL) return "no symbol " #name;
	VEID_TF_FUNCTIONS(VEID_RESOLVE)
	return NULL;
}

// veid_tf_loaded: whether the library is already in the process (then its initialisers ran with the old environment).
static int veid_tf_loaded(const char *path) {
	void *lib = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
	if (lib != NULL) dlclose(lib);
	return lib != NULL;
}

// cgo cannot call through function pointers: one wrapper per function.
static TF_Status *tf_NewStatus(void) { return p_TF_NewStatus(); }
static void tf_DeleteStatus(TF_Status *s) { p_TF_DeleteStatus(s); }
static TF_Code tf_GetCode(const TF_Status *s) { return p_TF_GetCode(s); }
static const char *tf_Message(const TF_Status *s) { return p_TF_Message(s); }
static TF_SessionOptions *tf_NewSessionOptions(void) { return p_TF_NewSessionOptions(); }
static void tf_DeleteSessionOptions(TF_SessionOptions *o) { p_TF_DeleteSessionOptions(o); }
static void tf_SetConfig(TF_SessionOptions *o, const void *p, size_t n, TF_Status *s) { p_TF_SetConfig(o, p, n, s); }
static TF_Buffer *tf_NewBuffer(void) { return p_TF_NewBuffer(); }
static void tf_DeleteBuffer(TF_Buffer *b) { p_TF_DeleteBuffer(b); }
static TF_Graph *tf_NewGraph(void) { return p_TF_NewGraph(); }
static void tf_DeleteGraph(TF_Graph *g) { p_TF_DeleteGraph(g); }
static TF_Session *tf_LoadSessionFromSavedModel(const TF_SessionOptions *o, const char *dir, const char *const *tags,
		int ntags, TF_Graph *g, TF_Buffer *meta, TF_Status *s) {
	return p_TF_LoadSessionFromSavedModel(o, NULL, dir, tags, ntags, g, meta, s);
}
static void tf_CloseSession(TF_Session *x, TF_Status *s) { p_TF_CloseSession(x, s); }
static void tf_DeleteSession(TF_Session *x, TF_Status *s) { p_TF_DeleteSession(x, s); }
static TF_Operation *tf_GraphOperationByName(TF_Graph *g, const char *n) { return p_TF_GraphOperationByName(g, n); }
static size_t tf_DataTypeSize(TF_DataType t) { return p_TF_DataTypeSize(t); }
static TF_Tensor *tf_AllocateTensor(TF_DataType t, const int64_t *dims, int n, size_t len) {
	return p_TF_AllocateTensor(t, dims, n, len);
}
static void *tf_TensorData(const TF_Tensor *t) { return p_TF_TensorData(t); }
static TF_DataType tf_TensorType(const TF_Tensor *t) { return p_TF_TensorType(t); }
static int tf_NumDims(const TF_Tensor *t) { return p_TF_NumDims(t); }
static int64_t tf_Dim(const TF_Tensor *t, int i) { return p_TF_Dim(t, i); }
static size_t tf_TensorByteSize(const TF_Tensor *t) { return p_TF_TensorByteSize(t); }
static void tf_DeleteTensor(TF_Tensor *t) { p_TF_DeleteTensor(t); }
static void tf_SessionRun(TF_Session *x, const TF_Output *in, TF_Tensor *const *values, int nin,
		const TF_Output *out, TF_Tensor **results, int nout, TF_Status *s) {
	p_TF_SessionRun(x, NULL, in, values, nin, out, results, nout, NULL, 0, NULL, s);
}
static const char *tf_StringGetDataPointer(const TF_TString *t) { return p_TF_StringGetDataPointer(t); }
static size_t tf_StringGetSize(const TF_TString *t) { return p_TF_StringGetSize(t); }
static const char *tf_Version(void) { return p_TF_Version(); }
*/
import "C"

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"unsafe"
)

// startOneDNNOpts is TF_ENABLE_ONEDNN_OPTS as the process started (read before pinEnvironment changes it).
var startOneDNNOpts, startOneDNNOptsSet = os.LookupEnv("TF_ENABLE_ONEDNN_OPTS")

var (
	tfOnce sync.Once
	tfErr  error
)

// tensorflowDir is where libtensorflow_cc.so.2 lives: $VEID_TENSORFLOW_DIR, else the TensorFlow wheel in the
// checkout's .venv (found from this source file's build-time path, as the #cgo include path is).
func tensorflowDir() string {
	if dir := os.Getenv("VEID_TENSORFLOW_DIR"); dir != "" {
		return dir
	}
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", ".venv", "lib", "python3.11", "site-packages", "tensorflow")
}

// openTensorFlow pins the environment, then loads the TF C API (once per process).
func openTensorFlow() error {
	tfOnce.Do(func() {
		if tfErr = pinEnvironment(); tfErr != nil {
			return
		}
		lib := filepath.Join(tensorflowDir(), "libtensorflow_cc.so.2")
		clib := C.CString(lib)
		defer C.free(unsafe.Pointer(clib))
		if C.veid_tf_loaded(clib) != 0 && (!startOneDNNOptsSet || startOneDNNOpts != "1") {
			// determinism.configure's DeterminismError: TensorFlow initialised before the environment was pinned.
			tfErr = fmt.Errorf("TensorFlow (%s) was loaded into this process before the environment was pinned, "+
				"with TF_ENABLE_ONEDNN_OPTS=%q; its oneDNN setting is fixed. Start the process with "+
				"TF_ENABLE_ONEDNN_OPTS=1 or let this package load TensorFlow", lib, startOneDNNOpts)
			return
		}
		if msg := C.veid_tf_open(clib); msg != nil {
			tfErr = fmt.Errorf("loading the TensorFlow C API from %s (set VEID_TENSORFLOW_DIR, or run `make venv` "+
				"in the repository root): %s", lib, C.GoString(msg))
		}
	})
	return tfErr
}

// sessionConfig is ConfigProto{intra_op_parallelism_threads: 2, inter_op_parallelism_threads: 1}: the pinned
// thread counts of veid_ml.determinism (the same bytes tests/c_api/run_savedmodel.c passes).
var sessionConfig = []byte{0x10, 0x02, 0x28, 0x01}

// tensor is a host copy of a TF tensor: its type, shape and either raw little-endian bytes or strings (TF_STRING).
type tensor struct {
	DType   C.TF_DataType
	Shape   []int64
	Data    []byte
	Strings []string
}

func elements(shape []int64) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= d
	}
	return n
}

// uint8Tensor wraps bytes as a uint8 tensor of the given shape.
func uint8Tensor(shape []int64, data []byte) *tensor {
	return &tensor{DType: C.TF_UINT8, Shape: shape, Data: data}
}

// float32Tensor wraps values as a float32 tensor of the given shape.
func float32Tensor(shape []int64, values []float32) *tensor {
	data := make([]byte, 4*len(values))
	if len(values) > 0 {
		copy(data, unsafe.Slice((*byte)(unsafe.Pointer(&values[0])), len(data))) // host order, as TF keeps it
	}
	return &tensor{DType: C.TF_FLOAT, Shape: shape, Data: data}
}

// float32s returns a float32 tensor's values.
func (t *tensor) float32s() ([]float32, error) {
	if t.DType != C.TF_FLOAT {
		return nil, fmt.Errorf("tensor has dtype %d, want float32", t.DType)
	}
	out := make([]float32, len(t.Data)/4)
	if len(out) > 0 {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&out[0])), len(t.Data)), t.Data)
	}
	return out, nil
}

// int32s returns an int32 tensor's values.
func (t *tensor) int32s() ([]int32, error) {
	if t.DType != C.TF_INT32 {
		return nil, fmt.Errorf("tensor has dtype %d, want int32", t.DType)
	}
	out := make([]int32, len(t.Data)/4)
	if len(out) > 0 {
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&out[0])), len(t.Data)), t.Data)
	}
	return out, nil
}

// tensorName is a graph tensor "op:index".
type tensorName struct {
	op    string
	index int
}

func parseTensorName(s string) (tensorName, error) {
	op, idx, found := strings.Cut(s, ":")
	if !found {
		return tensorName{op: s}, nil
	}
	i, err := strconv.Atoi(idx)
	if err != nil {
		return tensorName{}, fmt.Errorf("bad tensor name %q", s)
	}
	return tensorName{op: op, index: i}, nil
}

// signature maps a SignatureDef's input and output keys to graph tensors.
type signature struct {
	inputs, outputs map[string]tensorName
}

// savedModel is one SavedModel loaded with tag "serve" into a TF session.
type savedModel struct {
	dir        string
	graph      *C.TF_Graph
	session    *C.TF_Session
	signatures map[string]signature
}

func statusError(what string, s *C.TF_Status) error {
	if C.tf_GetCode(s) == C.TF_OK {
		return nil
	}
	return fmt.Errorf("%s: %s", what, C.GoString(C.tf_Message(s)))
}

// loadSavedModel loads dir (tag "serve") with the pinned thread counts and reads its signatures from the
// MetaGraphDef.
func loadSavedModel(dir string) (*savedModel, error) {
	if err := openTensorFlow(); err != nil {
		return nil, err
	}
	status := C.tf_NewStatus()
	defer C.tf_DeleteStatus(status)
	opts := C.tf_NewSessionOptions()
	defer C.tf_DeleteSessionOptions(opts)
	C.tf_SetConfig(opts, unsafe.Pointer(&sessionConfig[0]), C.size_t(len(sessionConfig)), status)
	if err := statusError("TF_SetConfig", status); err != nil {
		return nil, err
	}
	cdir := C.CString(dir)
	defer C.free(unsafe.Pointer(cdir))
	ctag := C.CString("serve")
	defer C.free(unsafe.Pointer(ctag))
	tags := (**C.char)(C.malloc(C.size_t(unsafe.Sizeof(uintptr(0)))))
	defer C.free(unsafe.Pointer(tags))
	*tags = ctag
	meta := C.tf_NewBuffer()
	defer C.tf_DeleteBuffer(meta)
	graph := C.tf_NewGraph()
	session := C.tf_LoadSessionFromSavedModel(opts, cdir, tags, 1, graph, meta, status)
	if err := statusError("loading SavedModel "+dir, status); err != nil {
		C.tf_DeleteGraph(graph)
		return nil, err
	}
	m := &savedModel{dir: dir, graph: graph, session: session}
	raw := C.GoBytes(meta.data, C.int(meta.length))
	sigs, err := parseSignatures(raw)
	if err != nil {
		m.close()
		return nil, fmt.Errorf("SavedModel %s: %w", dir, err)
	}
	m.signatures = sigs
	return m, nil
}

func (m *savedModel) close() {
	if m.session != nil {
		status := C.tf_NewStatus()
		C.tf_CloseSession(m.session, status)
		C.tf_DeleteSession(m.session, status)
		C.tf_DeleteStatus(status)
		m.session = nil
	}
	if m.graph != nil {
		C.tf_DeleteGraph(m.graph)
		m.graph = nil
	}
}

func (m *savedModel) output(name tensorName) (C.TF_Output, error) {
	cname := C.CString(name.op)
	defer C.free(unsafe.Pointer(cname))
	op := C.tf_GraphOperationByName(m.graph, cname)
	if op == nil {
		return C.TF_Output{}, fmt.Errorf("SavedModel %s: no operation %q", m.dir, name.op)
	}
	return C.TF_Output{oper: op, index: C.int(name.index)}, nil
}

// newCTensor copies a host tensor into a TF-allocated tensor.
func newCTensor(t *tensor) (*C.TF_Tensor, error) {
	if t.DType == C.TF_STRING {
		return nil, fmt.Errorf("string inputs are not supported")
	}
	size := C.tf_DataTypeSize(t.DType) * C.size_t(elements(t.Shape))
	if int(size) != len(t.Data) {
		return nil, fmt.Errorf("tensor data is %d bytes, shape %v needs %d", len(t.Data), t.Shape, size)
	}
	var dims *C.int64_t
	if len(t.Shape) > 0 {
		dims = (*C.int64_t)(unsafe.Pointer(&t.Shape[0]))
	}
	ct := C.tf_AllocateTensor(t.DType, dims, C.int(len(t.Shape)), size)
	if ct == nil {
		return nil, fmt.Errorf("TF_AllocateTensor failed for shape %v", t.Shape)
	}
	if size > 0 {
		C.memcpy(C.tf_TensorData(ct), unsafe.Pointer(&t.Data[0]), size)
	}
	return ct, nil
}

// goTensor copies a TF tensor to the host (strings decoded from TF_TString).
func goTensor(ct *C.TF_Tensor) *tensor {
	t := &tensor{DType: C.tf_TensorType(ct)}
	for i := 0; i < int(C.tf_NumDims(ct)); i++ {
		t.Shape = append(t.Shape, int64(C.tf_Dim(ct, C.int(i))))
	}
	if t.DType == C.TF_STRING {
		n := int(elements(t.Shape))
		if n == 0 {
			return t
		}
		strs := unsafe.Slice((*C.TF_TString)(C.tf_TensorData(ct)), n)
		for i := range strs { // by pointer: an offset-type TF_TString is relative to its own address
			t.Strings = append(t.Strings, C.GoStringN(C.tf_StringGetDataPointer(&strs[i]),
				C.int(C.tf_StringGetSize(&strs[i]))))
		}
		return t
	}
	t.Data = C.GoBytes(C.tf_TensorData(ct), C.int(C.tf_TensorByteSize(ct)))
	return t
}

// run calls one signature: feeds by input key, returns the requested outputs by output key.
func (m *savedModel) run(sig string, feeds map[string]*tensor, fetch ...string) (map[string]*tensor, error) {
	s, ok := m.signatures[sig]
	if !ok {
		return nil, fmt.Errorf("SavedModel %s has no signature %q", m.dir, sig)
	}
	var inputs []C.TF_Output
	var values []*C.TF_Tensor
	defer func() {
		for _, v := range values {
			C.tf_DeleteTensor(v)
		}
	}()
	for key, t := range feeds {
		name, ok := s.inputs[key]
		if !ok {
			return nil, fmt.Errorf("signature %s of %s has no input %q", sig, m.dir, key)
		}
		in, err := m.output(name)
		if err != nil {
			return nil, err
		}
		ct, err := newCTensor(t)
		if err != nil {
			return nil, fmt.Errorf("input %q: %w", key, err)
		}
		inputs = append(inputs, in)
		values = append(values, ct)
	}
	outputs := make([]C.TF_Output, len(fetch))
	for i, key := range fetch {
		name, ok := s.outputs[key]
		if !ok {
			return nil, fmt.Errorf("signature %s of %s has no output %q", sig, m.dir, key)
		}
		out, err := m.output(name)
		if err != nil {
			return nil, err
		}
		outputs[i] = out
	}
	results := make([]*C.TF_Tensor, len(fetch))
	status := C.tf_NewStatus()
	defer C.tf_DeleteStatus(status)
	var inPtr *C.TF_Output
	var valPtr **C.TF_Tensor
	if len(inputs) > 0 {
		inPtr, valPtr = &inputs[0], &values[0]
	}
	var outPtr *C.TF_Output
	var resPtr **C.TF_Tensor
	if len(outputs) > 0 {
		outPtr, resPtr = &outputs[0], &results[0]
	}
	C.tf_SessionRun(m.session, inPtr, valPtr, C.int(len(inputs)), outPtr, resPtr, C.int(len(outputs)), status)
	if err := statusError(fmt.Sprintf("running %s of %s", sig, m.dir), status); err != nil {
		return nil, err
	}
	out := make(map[string]*tensor, len(fetch))
	for i, key := range fetch {
		out[key] = goTensor(results[i])
		C.tf_DeleteTensor(results[i])
	}
	return out, nil
}
