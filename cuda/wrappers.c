// wrappers.c: see wrappers.h.
#include <dlfcn.h>
#include "wrappers.h"

// dl_open and dl_sym report dlerror in the same call: it is per thread and a
// goroutine may change threads between two cgo calls.
void* dl_open(const char* name, const char** err) {
	void* h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
	if (!h) { const char* e = dlerror(); *err = e ? e : "unknown dlopen error"; }
	return h;
}
void* dl_sym(void* h, const char* name, const char** err) {
	dlerror();
	void* p = dlsym(h, name);
	if (!p) { const char* e = dlerror(); *err = e ? e : "symbol is NULL"; }
	return p;
}

// Each wrapper calls a function pointer found by dlsym with its C signature.
CUresult cu_init(void* f, unsigned flags) { return ((CUresult(*)(unsigned))f)(flags); }
CUresult cu_int_out(void* f, int* v) { return ((CUresult(*)(int*))f)(v); }
CUresult cu_device_get(void* f, CUdevice* d, int ord) { return ((CUresult(*)(CUdevice*, int))f)(d, ord); }
CUresult cu_device_name(void* f, char* name, int len, CUdevice d) { return ((CUresult(*)(char*, int, CUdevice))f)(name, len, d); }
CUresult cu_device_attr(void* f, int* v, int attr, CUdevice d) { return ((CUresult(*)(int*, int, CUdevice))f)(v, attr, d); }
CUresult cu_device_total_mem(void* f, size_t* b, CUdevice d) { return ((CUresult(*)(size_t*, CUdevice))f)(b, d); }
CUresult cu_primary_retain(void* f, CUcontext* c, CUdevice d) { return ((CUresult(*)(CUcontext*, CUdevice))f)(c, d); }
CUresult cu_primary_release(void* f, CUdevice d) { return ((CUresult(*)(CUdevice))f)(d); }
CUresult cu_ctx_set_current(void* f, CUcontext c) { return ((CUresult(*)(CUcontext))f)(c); }
CUresult cu_void(void* f) { return ((CUresult(*)(void))f)(); }
CUresult cu_mem_alloc(void* f, CUdeviceptr* p, size_t n) { return ((CUresult(*)(CUdeviceptr*, size_t))f)(p, n); }
CUresult cu_mem_free(void* f, CUdeviceptr p) { return ((CUresult(*)(CUdeviceptr))f)(p); }
CUresult cu_htod(void* f, CUdeviceptr dst, const void* src, size_t n) { return ((CUresult(*)(CUdeviceptr, const void*, size_t))f)(dst, src, n); }
CUresult cu_dtoh(void* f, void* dst, CUdeviceptr src, size_t n) { return ((CUresult(*)(void*, CUdeviceptr, size_t))f)(dst, src, n); }
CUresult cu_dtod(void* f, CUdeviceptr dst, CUdeviceptr src, size_t n) { return ((CUresult(*)(CUdeviceptr, CUdeviceptr, size_t))f)(dst, src, n); }
CUresult cu_memset_d8(void* f, CUdeviceptr dst, unsigned char v, size_t n) { return ((CUresult(*)(CUdeviceptr, unsigned char, size_t))f)(dst, v, n); }
CUresult cu_module_load_data(void* f, CUmodule* m, const void* image) { return ((CUresult(*)(CUmodule*, const void*))f)(m, image); }
CUresult cu_module_unload(void* f, CUmodule m) { return ((CUresult(*)(CUmodule))f)(m); }
CUresult cu_module_get_function(void* f, CUfunction* fn, CUmodule m, const char* name) { return ((CUresult(*)(CUfunction*, CUmodule, const char*))f)(fn, m, name); }
CUresult cu_func_set_attr(void* f, CUfunction fn, int attr, int v) { return ((CUresult(*)(CUfunction, int, int))f)(fn, attr, v); }
CUresult cu_launch(void* f, CUfunction fn, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned smem, void** params) {
	return ((CUresult(*)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream, void**, void**))f)(fn, gx, gy, gz, bx, by, bz, smem, (CUstream)0, params, (void**)0);
}
CUresult cu_event_create(void* f, CUevent* e, unsigned flags) { return ((CUresult(*)(CUevent*, unsigned))f)(e, flags); }
CUresult cu_event_destroy(void* f, CUevent e) { return ((CUresult(*)(CUevent))f)(e); }
CUresult cu_event_record(void* f, CUevent e) { return ((CUresult(*)(CUevent, CUstream))f)(e, (CUstream)0); }
CUresult cu_event_sync(void* f, CUevent e) { return ((CUresult(*)(CUevent))f)(e); }
CUresult cu_event_elapsed(void* f, float* ms, CUevent a, CUevent b) { return ((CUresult(*)(float*, CUevent, CUevent))f)(ms, a, b); }
CUresult cu_error_string(void* f, CUresult r, const char** s) { return ((CUresult(*)(CUresult, const char**))f)(r, s); }

nvrtcResult nv_version(void* f, int* major, int* minor) { return ((nvrtcResult(*)(int*, int*))f)(major, minor); }
nvrtcResult nv_create(void* f, nvrtcProgram* p, const char* src, const char* name) {
	return ((nvrtcResult(*)(nvrtcProgram*, const char*, const char*, int, const char* const*, const char* const*))f)(p, src, name, 0, 0, 0);
}
nvrtcResult nv_compile(void* f, nvrtcProgram p, int n, char** opts) { return ((nvrtcResult(*)(nvrtcProgram, int, const char* const*))f)(p, n, (const char* const*)opts); }
nvrtcResult nv_size(void* f, nvrtcProgram p, size_t* n) { return ((nvrtcResult(*)(nvrtcProgram, size_t*))f)(p, n); }
nvrtcResult nv_bytes(void* f, nvrtcProgram p, char* out) { return ((nvrtcResult(*)(nvrtcProgram, char*))f)(p, out); }
nvrtcResult nv_destroy(void* f, nvrtcProgram* p) { return ((nvrtcResult(*)(nvrtcProgram*))f)(p); }
const char* nv_error_string(void* f, nvrtcResult r) { return ((const char*(*)(nvrtcResult))f)(r); }

cublasStatus_t cb_create(void* f, cublasHandle_t* h) { return ((cublasStatus_t(*)(cublasHandle_t*))f)(h); }
cublasStatus_t cb_destroy(void* f, cublasHandle_t h) { return ((cublasStatus_t(*)(cublasHandle_t))f)(h); }
cublasStatus_t cb_sgemm(void* f, cublasHandle_t h, int ta, int tb, int m, int n, int k, float alpha, CUdeviceptr a, int lda, CUdeviceptr b, int ldb, float beta, CUdeviceptr c, int ldc) {
	return ((cublasStatus_t(*)(cublasHandle_t, int, int, int, int, int, const float*, const float*, int, const float*, int, const float*, float*, int))f)(
		h, ta, tb, m, n, k, &alpha, (const float*)(uintptr_t)a, lda, (const float*)(uintptr_t)b, ldb, &beta, (float*)(uintptr_t)c, ldc);
}
cublasStatus_t cb_dgemm(void* f, cublasHandle_t h, int ta, int tb, int m, int n, int k, double alpha, CUdeviceptr a, int lda, CUdeviceptr b, int ldb, double beta, CUdeviceptr c, int ldc) {
	return ((cublasStatus_t(*)(cublasHandle_t, int, int, int, int, int, const double*, const double*, int, const double*, int, const double*, double*, int))f)(
		h, ta, tb, m, n, k, &alpha, (const double*)(uintptr_t)a, lda, (const double*)(uintptr_t)b, ldb, &beta, (double*)(uintptr_t)c, ldc);
}
// cb_gemmex: FP32 alpha/beta (compute type 32F), any input/output types.
cublasStatus_t cb_gemmex(void* f, cublasHandle_t h, int ta, int tb, int m, int n, int k, float alpha, CUdeviceptr a, int atype, int lda, CUdeviceptr b, int btype, int ldb, float beta, CUdeviceptr c, int ctype, int ldc, int compute, int algo) {
	return ((cublasStatus_t(*)(cublasHandle_t, int, int, int, int, int, const void*, const void*, int, int, const void*, int, int, const void*, void*, int, int, int, int))f)(
		h, ta, tb, m, n, k, &alpha, (const void*)(uintptr_t)a, atype, lda, (const void*)(uintptr_t)b, btype, ldb, &beta, (void*)(uintptr_t)c, ctype, ldc, compute, algo);
}
cublasStatus_t cb_dasum(void* f, cublasHandle_t h, int n, CUdeviceptr x, double* out) {
	return ((cublasStatus_t(*)(cublasHandle_t, int, const double*, int, double*))f)(h, n, (const double*)(uintptr_t)x, 1, out);
}
