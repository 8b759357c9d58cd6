package inference

import (
	"os"
	"sync"
)

// forcedEnv is veid_ml.determinism.FORCED_ENV: the kernels, instruction set and threads every validator scores with.
var forcedEnv = [][2]string{
	{"TF_DETERMINISTIC_OPS", "1"},
	{"TF_CUDNN_DETERMINISTIC", "1"},
	{"PYTHONHASHSEED", "42"},
	{"CUDA_VISIBLE_DEVICES", ""},
	{"TF_ENABLE_ONEDNN_OPTS", "1"},
	{"ONEDNN_MAX_CPU_ISA", "AVX2"},
	{"DNNL_MAX_CPU_ISA", "AVX2"},
	{"ONEDNN_DEFAULT_FPMATH_MODE", "STRICT"},
	{"OMP_NUM_THREADS", "2"},
	{"MKL_NUM_THREADS", "2"},
	{"TF_NUM_INTRAOP_THREADS", "2"},
	{"TF_NUM_INTEROP_THREADS", "1"},
	{"TF_FLAG_SAVED_MODEL_FINGERPRINTING", "false"},
	{"KERAS_BACKEND", "tensorflow"},
	{"TF_CPP_MIN_LOG_LEVEL", "2"},
}

// removedEnv is determinism.REMOVED_ENV: variables that would change kernels or compilation; removed, not set.
var removedEnv = []string{"TF_XLA_FLAGS", "XLA_FLAGS", "TF_GPU_ALLOCATOR", "ONEDNN_VERBOSE"}

var (
	pinOnce sync.Once
	pinErr  error
)

// pinEnvironment pins the environment (determinism.configure for inference) once, before the first TF call: with
// cgo, os.Setenv also sets the C environment TensorFlow and oneDNN read. Any CPU is accepted: every approved model is
// an integer consensus graph, whose output bytes do not depend on the CPU's kernels (only training checks the CPU).
func pinEnvironment() error {
	pinOnce.Do(func() {
		for _, k := range removedEnv {
			if err := os.Unsetenv(k); err != nil {
				pinErr = err
				return
			}
		}
		for _, kv := range forcedEnv {
			if err := os.Setenv(kv[0], kv[1]); err != nil {
				pinErr = err
				return
			}
		}
	})
	return pinErr
}
