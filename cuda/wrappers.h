// wrappers.h: hand-declared CUDA driver, NVRTC and cuBLAS types and the C
// wrappers that call their functions through pointers found by dlsym.
#ifndef VHPC_CUDA_WRAPPERS_H
#define VHPC_CUDA_WRAPPERS_H
#include <stddef.h>
#include <stdint.h>

// The few CUDA driver, NVRTC and cuBLAS types used here, declared by hand:
// there are no CUDA headers on a build host. Handles are opaque pointers,
// enums are ints, CUdeviceptr is 64 bits.
typedef int CUresult;
typedef int CUdevice;
typedef void* CUcontext;
typedef void* CUmodule;
typedef void* CUfunction;
typedef void* CUstream;
typedef void* CUevent;
typedef unsigned long long CUdeviceptr;
typedef int nvrtcResult;
typedef void* nvrtcProgram;
typedef int cublasStatus_t;
typedef void* cublasHandle_t;


void* dl_open(const char* name, const char** err);
void* dl_sym(void* h, const char* name, const char** err);
CUresult cu_init(void* f, unsigned flags);
CUresult cu_int_out(void* f, int* v);
CUresult cu_device_get(void* f, CUdevice* d, int ord);
CUresult cu_device_name(void* f, char* name, int len, CUdevice d);
CUresult cu_device_attr(void* f, int* v, int attr, CUdevice d);
CUresult cu_device_total_mem(void* f, size_t* b, CUdevice d);
CUresult cu_primary_retain(void* f, CUcontext* c, CUdevice d);
CUresult cu_primary_release(void* f, CUdevice d);
CUresult cu_ctx_set_current(void* f, CUcontext c);
CUresult cu_void(void* f);
CUresult cu_mem_alloc(void* f, CUdeviceptr* p, size_t n);
CUresult cu_mem_free(void* f, CUdeviceptr p);
CUresult cu_htod(void* f, CUdeviceptr dst, const void* src, size_t n);
CUresult cu_dtoh(void* f, void* dst, CUdeviceptr src, size_t n);
CUresult cu_dtod(void* f, CUdeviceptr dst, CUdeviceptr src, size_t n);
CUresult cu_memset_d8(void* f, CUdeviceptr dst, unsigned char v, size_t n);
CUresult cu_module_load_data(void* f, CUmodule* m, const void* image);
CUresult cu_module_unload(void* f, CUmodule m);
CUresult cu_module_get_function(void* f, CUfunction* fn, CUmodule m, const char* name);
CUresult cu_func_set_attr(void* f, CUfunction fn, int attr, int v);
CUresult cu_launch(void* f, CUfunction fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned smem, void** params);
CUresult cu_event_create(void* f, CUevent* e, unsigned flags);
CUresult cu_event_destroy(void* f, CUevent e);
CUresult cu_event_record(void* f, CUevent e);
CUresult cu_event_sync(void* f, CUevent e);
CUresult cu_event_elapsed(void* f, float* ms, CUevent a, CUevent b);
CUresult cu_error_string(void* f, CUresult r, const char** s);
nvrtcResult nv_version(void* f, int* major, int* minor);
nvrtcResult nv_create(void* f, nvrtcProgram* p, const char* src, const char* name);
nvrtcResult nv_compile(void* f, nvrtcProgram p, int n, char** opts);
nvrtcResult nv_size(void* f, nvrtcProgram p, size_t* n);
nvrtcResult nv_bytes(void* f, nvrtcProgram p, char* out);
nvrtcResult nv_destroy(void* f, nvrtcProgram* p);
const char* nv_error_string(void* f, nvrtcResult r);
cublasStatus_t cb_create(void* f, cublasHandle_t* h);
cublasStatus_t cb_destroy(void* f, cublasHandle_t h);
cublasStatus_t cb_sgemm(void* f, cublasHandle_t h, int ta, int tb, int m, int n, int k, float alpha, CUdeviceptr a, int lda, CUdeviceptr b, int ldb, float beta, CUdeviceptr c, int ldc);
cublasStatus_t cb_dgemm(void* f, cublasHandle_t h, int ta, int tb, int m, int n, int k, double alpha, CUdeviceptr a, int lda, CUdeviceptr b, int ldb, double beta, CUdeviceptr c, int ldc);
cublasStatus_t cb_gemmex(void* f, cublasHandle_t h, int ta, int tb, int m, int n, int k, float alpha, CUdeviceptr a, int atype, int lda, CUdeviceptr b, int btype, int ldb, float beta, CUdeviceptr c, int ctype, int ldc, int compute, int algo);
cublasStatus_t cb_dasum(void* f, cublasHandle_t h, int n, CUdeviceptr x, double* out);

#endif
