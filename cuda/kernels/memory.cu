// memory.cu: STREAM copy/scale/add/triad and a sum reduction, FP64,
// grid-stride loops over double2 (n even) so each thread moves 16 bytes
// per access.

extern "C" __global__ void stream_copy(int n2, const double2* __restrict__ a, double2* __restrict__ c)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n2; i += gridDim.x * blockDim.x)
        c[i] = a[i];
}

extern "C" __global__ void stream_scale(int n2, double q, double2* __restrict__ b, const double2* __restrict__ c)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n2; i += gridDim.x * blockDim.x) {
        const double2 v = c[i];
        b[i] = make_double2(q * v.x, q * v.y);
    }
}

extern "C" __global__ void stream_add(int n2, const double2* __restrict__ a, const double2* __restrict__ b,
                                      double2* __restrict__ c)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n2; i += gridDim.x * blockDim.x) {
        const double2 x = a[i], y = b[i];
        c[i] = make_double2(x.x + y.x, x.y + y.y);
    }
}

extern "C" __global__ void stream_triad(int n2, double q, double2* __restrict__ a, const double2* __restrict__ b,
                                        const double2* __restrict__ c)
{
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n2; i += gridDim.x * blockDim.x) {
        const double2 x = b[i], y = c[i];
        a[i] = make_double2(x.x + q * y.x, x.y + q * y.y);
    }
}

// reduce_sum adds n2 double2s into *out (zeroed by the caller): a
// grid-stride partial sum per thread, a warp shuffle tree, one shared slot
// per warp, one atomicAdd per block. 256 threads per block.
extern "C" __global__ void __launch_bounds__(256)
reduce_sum(int n2, const double2* __restrict__ x, double* __restrict__ out)
{
    __shared__ double warp_sums[8];
    double s0 = 0.0, s1 = 0.0;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n2; i += gridDim.x * blockDim.x) {
        const double2 v = x[i];
        s0 += v.x;
        s1 += v.y;
    }
    double s = s0 + s1;
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) s += __shfl_down_sync(0xffffffffu, s, off);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) warp_sums[warp] = s;
    __syncthreads();
    if (warp == 0) {
        s = lane < (blockDim.x >> 5) ? warp_sums[lane] : 0.0;
#pragma unroll
        for (int off = 4; off > 0; off >>= 1) s += __shfl_down_sync(0xffffffffu, s, off);
        if (lane == 0) atomicAdd(out, s);
    }
}
