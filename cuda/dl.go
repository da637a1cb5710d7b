package cuda

/*
#cgo LDFLAGS: -ldl
#include <stdlib.h>
#include "wrappers.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"strings"
	"unsafe"
)

// Sentinel errors for a host without the libraries; errors.Is works on
// what Open returns.
var (
	// ErrNoDriver: libcuda.so.1 (the NVIDIA driver) could not be loaded.
	ErrNoDriver = errors.New("libcuda.so.1 not found: this host has no NVIDIA driver; use --cpu")
	// ErrNoNVRTC: no libnvrtc.so (the CUDA toolkit's runtime compiler).
	ErrNoNVRTC = errors.New("libnvrtc.so not found: install the CUDA toolkit (nvrtc) or add its lib64 to LD_LIBRARY_PATH")
	// ErrNoCUBLAS: no libcublas.so; the vendor column is then empty.
	ErrNoCUBLAS = errors.New("libcublas.so not found: install the CUDA toolkit (cublas) or add its lib64 to LD_LIBRARY_PATH")
)

// Libraries names the shared objects to try, in order, for each library.
type Libraries struct {
	Driver, NVRTC, CUBLAS []string
}

// DefaultLibraries are the sonames of the driver and of CUDA 11.2 to 13,
// then the toolkit's default install folder.
func DefaultLibraries() Libraries {
	var nvrtc, cublas []string
	for _, dir := range []string{"", "/usr/local/cuda/lib64/", "/usr/local/cuda/targets/x86_64-linux/lib/"} {
		nvrtc = append(nvrtc, dir+"libnvrtc.so", dir+"libnvrtc.so.13", dir+"libnvrtc.so.12", dir+"libnvrtc.so.11.2")
		cublas = append(cublas, dir+"libcublas.so", dir+"libcublas.so.13", dir+"libcublas.so.12", dir+"libcublas.so.11")
	}
	return Libraries{Driver: []string{"libcuda.so.1"}, NVRTC: nvrtc, CUBLAS: cublas}
}

// lib is one dlopen'ed library and its symbols.
type lib struct {
	name string
	h    unsafe.Pointer
	syms map[string]unsafe.Pointer
}

// open tries each name and returns the first that loads, or sentinel
// wrapped with what dlopen said about each.
func open(names []string, sentinel error) (*lib, error) {
	var tried []string
	for _, n := range names {
		cn := C.CString(n)
		var msg *C.char
		h := C.dl_open(cn, &msg)
		C.free(unsafe.Pointer(cn))
		if h != nil {
			return &lib{name: n, h: h, syms: map[string]unsafe.Pointer{}}, nil
		}
		tried = append(tried, C.GoString(msg))
	}
	return nil, fmt.Errorf("%w (dlopen: %s)", sentinel, strings.Join(tried, "; "))
}

// bind looks up every name; a missing symbol is an error naming it.
func (l *lib) bind(names ...string) error {
	for _, n := range names {
		cn := C.CString(n)
		var msg *C.char
		p := C.dl_sym(l.h, cn, &msg)
		C.free(unsafe.Pointer(cn))
		if p == nil {
			return fmt.Errorf("%s: no symbol %s: %s", l.name, n, C.GoString(msg))
		}
		l.syms[n] = p
	}
	return nil
}

func (l *lib) sym(name string) unsafe.Pointer { return l.syms[name] }

// driverSymbols are the driver functions used (the _v2 names are the
// 64-bit ABI ones).
func driverSymbols() []string {
	return []string{"cuInit", "cuDriverGetVersion", "cuDeviceGetCount", "cuDeviceGet", "cuDeviceGetName",
		"cuDeviceGetAttribute", "cuDeviceTotalMem_v2", "cuDevicePrimaryCtxRetain", "cuDevicePrimaryCtxRelease_v2",
		"cuCtxSetCurrent", "cuCtxSynchronize", "cuMemAlloc_v2", "cuMemFree_v2", "cuMemcpyHtoD_v2", "cuMemcpyDtoH_v2",
		"cuMemcpyDtoD_v2", "cuMemsetD8_v2", "cuModuleLoadData", "cuModuleUnload", "cuModuleGetFunction",
		"cuFuncSetAttribute", "cuLaunchKernel", "cuEventCreate", "cuEventDestroy_v2", "cuEventRecord",
		"cuEventSynchronize", "cuEventElapsedTime", "cuGetErrorString"}
}

// nvrtcSymbols are the NVRTC functions used.
func nvrtcSymbols() []string {
	return []string{"nvrtcVersion", "nvrtcCreateProgram", "nvrtcCompileProgram", "nvrtcGetProgramLogSize",
		"nvrtcGetProgramLog", "nvrtcGetCUBINSize", "nvrtcGetCUBIN", "nvrtcDestroyProgram", "nvrtcGetErrorString"}
}

// cublasSymbols are the cuBLAS functions used.
func cublasSymbols() []string {
	return []string{"cublasCreate_v2", "cublasDestroy_v2", "cublasSgemm_v2", "cublasDgemm_v2", "cublasGemmEx", "cublasDasum_v2"}
}
