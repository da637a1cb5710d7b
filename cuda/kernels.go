// Package cuda loads the NVIDIA driver, NVRTC and cuBLAS at run time with
// dlopen (no CUDA headers or libraries are needed to build), compiles the
// embedded CUDA C kernels for the device's compute capability, and runs
// them. A host without the driver gets ErrNoDriver from Open.
package cuda

import (
	"embed"
	"fmt"
)

//go:embed kernels/*.cu
var kernelFS embed.FS

// Kernel sources embedded in the binary, by file name.
const (
	GemmSource    = "gemm.cu"
	TCGemmSource  = "tcgemm.cu"
	MemorySource  = "memory.cu"
	StencilSource = "stencil.cu"
)

// Source returns the text of an embedded kernel file.
func Source(name string) (string, error) {
	b, err := kernelFS.ReadFile("kernels/" + name)
	if err != nil {
		return "", fmt.Errorf("kernel source %s: %w", name, err)
	}
	return string(b), nil
}
