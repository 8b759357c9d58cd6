package inference

import (
	"fmt"
	"os"
	"runtime"
	"strings"
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

// requiredCPUFlags is determinism.REQUIRED_CPU_FLAGS.
var requiredCPUFlags = []string{"avx", "avx2", "fma"}

var (
	pinOnce sync.Once
	pinErr  error
)

// pinEnvironment checks the CPU and pins the environment (determinism.configure) once, before the first TF call:
// with cgo, os.Setenv also sets the C environment TensorFlow and oneDNN read.
func pinEnvironment() error {
	pinOnce.Do(func() {
		if pinErr = checkCPU(); pinErr != nil {
			return
		}
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

// checkCPU is determinism.check_cpu: refuse CPUs that cannot run the pinned oneDNN AVX2 kernels.
func checkCPU() error {
	if runtime.GOARCH != "amd64" {
		return fmt.Errorf("consensus models need an x86-64 CPU with AVX2; this machine is %q, whose kernels "+
			"compute different floating-point results. Train and score on an x86-64 validator", runtime.GOARCH)
	}
	data, _ := os.ReadFile("/proc/cpuinfo")
	flags := map[string]bool{}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "flags") {
			if _, list, ok := strings.Cut(line, ":"); ok {
				for _, f := range strings.Fields(list) {
					flags[f] = true
				}
			}
			break
		}
	}
	var missing []string
	for _, f := range requiredCPUFlags {
		if !flags[f] {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("this CPU lacks %s; consensus models are pinned to oneDNN's AVX2 kernels, and a CPU "+
			"without them would silently compute different bytes. Use an x86-64 CPU with AVX2 and FMA",
			strings.Join(missing, ", "))
	}
	return nil
}
