// burn keeps one GPU busy with FP32 fused multiply-adds for a given number
// of seconds, so that TestRealGPU can check that utilisation, power and
// per-job usage move under a real load. It prints the rate it reached.
//
//   nvcc -O3 -o burn burn.cu && ./burn 6
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cuda_runtime.h>

// Each thread runs eight independent FMA chains so the SMs stay busy.
__global__ void fmaLoop(float *out, int iters) {
  float a[8];
  for (int k = 0; k < 8; k++) a[k] = threadIdx.x * 1e-3f + k;
  const float b = 0.999999f, c = 1e-6f;
  for (int i = 0; i < iters; i++) {
#pragma unroll
    for (int k = 0; k < 8; k++) a[k] = fmaf(a[k], b, c);
  }
  float s = 0;
  for (int k = 0; k < 8; k++) s += a[k];
  out[blockIdx.x * blockDim.x + threadIdx.x] = s;
}

static void check(cudaError_t err, const char *what) {
  if (err != cudaSuccess) {
    fprintf(stderr, "burn: %s: %s\n", what, cudaGetErrorString(err));
    exit(1);
  }
}

int main(int argc, char **argv) {
  double seconds = argc > 1 ? atof(argv[1]) : 5;
  if (seconds <= 0 || seconds > 600) {
    fprintf(stderr, "usage: burn SECONDS (0 < SECONDS <= 600)\n");
    return 2;
  }
  cudaDeviceProp prop;
  check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
  const int threads = 256, blocks = prop.multiProcessorCount * 8, iters = 1 << 16;
  float *out;
  check(cudaMalloc(&out, sizeof(float) * threads * blocks), "cudaMalloc");
  auto start = std::chrono::steady_clock::now();
  double elapsed = 0;
  long launches = 0;
  while (elapsed < seconds) {
    fmaLoop<<<blocks, threads>>>(out, iters);
    check(cudaGetLastError(), "launch");
    check(cudaDeviceSynchronize(), "synchronize");
    launches++;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  double flops = 2.0 * 8 * iters * (double)threads * blocks * launches;
  printf("burn: %s, %.1f s, %ld launches, %.1f TFLOP/s FP32 (FMA)\n", prop.name, elapsed, launches, flops / elapsed / 1e12);
  cudaFree(out);
  return 0;
}
