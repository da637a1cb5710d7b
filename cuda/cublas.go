package cuda

/*
#include "wrappers.h"
*/
import "C"

import (
	"fmt"
)

// cuBLAS enum values used (cublas_api.h, library_types.h).
const (
	cublasOpN       = 0
	cublasOpT       = 1
	cudaR32F        = 0
	cudaR16BF       = 14
	cublasCompute32 = 68
	cublasGemmDflt  = -1
)

func (c *Context) handle() (C.cublasHandle_t, error) {
	if c.d.cublas == nil {
		return nil, c.d.CUBLASErr
	}
	if c.blas == nil {
		if r := C.cb_create(c.d.cublas.sym("cublasCreate_v2"), &c.blas); r != 0 {
			return nil, fmt.Errorf("cublasCreate: status %d", int(r))
		}
	}
	return c.blas, nil
}

func blasErr(r C.cublasStatus_t, what string) error {
	if r != 0 {
		return fmt.Errorf("%s: cuBLAS status %d", what, int(r))
	}
	return nil
}

// Sgemm is cuBLAS's FP32 GEMM on row-major matrices: C = A*B with A m x k,
// B k x n, C m x n (computed as the column-major C^T = B^T A^T).
func (c *Context) Sgemm(m, n, k int, a, b, out Ptr) error {
	h, err := c.handle()
	if err != nil {
		return err
	}
	return blasErr(C.cb_sgemm(c.d.cublas.sym("cublasSgemm_v2"), h, cublasOpN, cublasOpN, C.int(n), C.int(m), C.int(k),
		1, C.CUdeviceptr(b), C.int(n), C.CUdeviceptr(a), C.int(k), 0, C.CUdeviceptr(out), C.int(n)), "cublasSgemm")
}

// Dgemm is the FP64 twin of Sgemm.
func (c *Context) Dgemm(m, n, k int, a, b, out Ptr) error {
	h, err := c.handle()
	if err != nil {
		return err
	}
	return blasErr(C.cb_dgemm(c.d.cublas.sym("cublasDgemm_v2"), h, cublasOpN, cublasOpN, C.int(n), C.int(m), C.int(k),
		1, C.CUdeviceptr(b), C.int(n), C.CUdeviceptr(a), C.int(k), 0, C.CUdeviceptr(out), C.int(n)), "cublasDgemm")
}

// GemmBF16 is cublasGemmEx with BF16 inputs and FP32 output and compute on
// row-major matrices: C (m x n) = A (m x k) * Bt^T, Bt n x k (the layout of
// the tensor-core kernel).
func (c *Context) GemmBF16(m, n, k int, a, bt, out Ptr) error {
	h, err := c.handle()
	if err != nil {
		return err
	}
	// Column-major: C^T (n x m) = Bt (viewed k x n, transposed) * A (viewed k x m).
	return blasErr(C.cb_gemmex(c.d.cublas.sym("cublasGemmEx"), h, cublasOpT, cublasOpN, C.int(n), C.int(m), C.int(k),
		1, C.CUdeviceptr(bt), cudaR16BF, C.int(k), C.CUdeviceptr(a), cudaR16BF, C.int(k),
		0, C.CUdeviceptr(out), cudaR32F, C.int(n), cublasCompute32, cublasGemmDflt), "cublasGemmEx")
}

// Dasum is cuBLAS's sum of absolute values of n doubles (the vendor
// reduction; the inputs are positive so it equals the sum). It waits for
// the result.
func (c *Context) Dasum(n int, x Ptr) (float64, error) {
	h, err := c.handle()
	if err != nil {
		return 0, err
	}
	var out C.double
	if err := blasErr(C.cb_dasum(c.d.cublas.sym("cublasDasum_v2"), h, C.int(n), C.CUdeviceptr(x), &out), "cublasDasum"); err != nil {
		return 0, err
	}
	return float64(out), nil
}
