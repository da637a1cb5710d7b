// gemm.cu: SGEMM and DGEMM on row-major matrices, C = A*B, A m x k, B k x n.
// m, n must be multiples of the block tile and k of BK (the harness picks
// such sizes). Compiled by NVRTC at run time; no headers.

// ---- SGEMM: 128x128 block tile, BK = 8, 256 threads, 8x8 outputs each,
// A stored transposed in shared memory, double-buffered through registers.
#define SG_BM 128
#define SG_BN 128
#define SG_BK 8

extern "C" __global__ void __launch_bounds__(256)
sgemm_128x128(int M, int N, int K, const float* __restrict__ A,
              const float* __restrict__ B, float* __restrict__ C)
{
    __shared__ __align__(16) float As[2][SG_BK][SG_BM];
    __shared__ __align__(16) float Bs[2][SG_BK][SG_BN];
    const int tid = threadIdx.x;
    const int bm = blockIdx.y * SG_BM, bn = blockIdx.x * SG_BN;
    // Global loads: A tile 128x8 (one float4 per thread), B tile 8x128.
    const int a_row = tid >> 1, a_col = (tid & 1) << 2;
    const int b_row = tid >> 5, b_col = (tid & 31) << 2;
    const float* Ap = A + (size_t)(bm + a_row) * K + a_col;
    const float* Bp = B + (size_t)b_row * N + bn + b_col;
    // Thread (ty, tx) computes rows {ty*4..+3, 64+ty*4..+3} and the same
    // columns from tx: split so shared reads are conflict-free float4s.
    const int tx = tid & 15, ty = tid >> 4;

    float acc[8][8];
#pragma unroll
    for (int i = 0; i < 8; ++i)
#pragma unroll
        for (int j = 0; j < 8; ++j) acc[i][j] = 0.f;

    float4 ra = *(const float4*)Ap;
    float4 rb = *(const float4*)Bp;
    As[0][a_col + 0][a_row] = ra.x;
    As[0][a_col + 1][a_row] = ra.y;
    As[0][a_col + 2][a_row] = ra.z;
    As[0][a_col + 3][a_row] = ra.w;
    *(float4*)&Bs[0][b_row][b_col] = rb;
    __syncthreads();

    int buf = 0;
    for (int k0 = 0; k0 < K; k0 += SG_BK) {
        const bool more = k0 + SG_BK < K;
        if (more) {
            ra = *(const float4*)(Ap + k0 + SG_BK);
            rb = *(const float4*)(Bp + (size_t)(k0 + SG_BK) * N);
        }
#pragma unroll
        for (int k = 0; k < SG_BK; ++k) {
            float a[8], b[8];
            *(float4*)&a[0] = *(const float4*)&As[buf][k][ty * 4];
            *(float4*)&a[4] = *(const float4*)&As[buf][k][64 + ty * 4];
            *(float4*)&b[0] = *(const float4*)&Bs[buf][k][tx * 4];
            *(float4*)&b[4] = *(const float4*)&Bs[buf][k][64 + tx * 4];
#pragma unroll
            for (int i = 0; i < 8; ++i)
#pragma unroll
                for (int j = 0; j < 8; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        if (more) {
            const int nb = buf ^ 1;
            As[nb][a_col + 0][a_row] = ra.x;
            As[nb][a_col + 1][a_row] = ra.y;
            As[nb][a_col + 2][a_row] = ra.z;
            As[nb][a_col + 3][a_row] = ra.w;
            *(float4*)&Bs[nb][b_row][b_col] = rb;
            __syncthreads();
            buf = nb;
        }
    }
#pragma unroll
    for (int i = 0; i < 8; ++i) {
        const int row = bm + (i < 4 ? ty * 4 + i : 64 + ty * 4 + i - 4);
        float* crow = C + (size_t)row * N + bn;
        *(float4*)&crow[tx * 4] = make_float4(acc[i][0], acc[i][1], acc[i][2], acc[i][3]);
        *(float4*)&crow[64 + tx * 4] = make_float4(acc[i][4], acc[i][5], acc[i][6], acc[i][7]);
    }
}

// ---- DGEMM on the FP64 tensor cores (DMMA, sm_80+): mma.sync m8n8k4.
// 64x64 block tile, BK = 16, 4 warps (2x2), each warp 32x32 = 4x4 MMA tiles.
// Shared rows are padded (20 and 68 doubles) so fragment loads are
// conflict-free.
#define DG_BM 64
#define DG_BN 64
#define DG_BK 16
#define DG_LDA (DG_BK + 4)
#define DG_LDB (DG_BN + 4)

__device__ __forceinline__ void dmma_8x8x4(double (&c)[2], double a, double b)
{
    asm volatile("mma.sync.aligned.m8n8k4.row.col.f64.f64.f64.f64 {%0,%1}, {%2}, {%3}, {%0,%1};"
                 : "+d"(c[0]), "+d"(c[1]) : "d"(a), "d"(b));
}

extern "C" __global__ void __launch_bounds__(128)
dgemm_dmma_64x64(int M, int N, int K, const double* __restrict__ A,
                 const double* __restrict__ B, double* __restrict__ C)
{
    __shared__ __align__(16) double As[2][DG_BM][DG_LDA];
    __shared__ __align__(16) double Bs[2][DG_BK][DG_LDB];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = (warp >> 1) * 32, wn = (warp & 1) * 32;
    const int bm = blockIdx.y * DG_BM, bn = blockIdx.x * DG_BN;
    // Loads: A tile 64x16 and B tile 16x64 doubles = 512 double2 each,
    // 4 per thread.
    double2 ra[4], rb[4];
    auto load = [&](int k0) {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int idx = tid + i * 128;
            const int ar = idx >> 3, ac = (idx & 7) << 1;
            ra[i] = *(const double2*)(A + (size_t)(bm + ar) * K + k0 + ac);
            const int br = idx >> 5, bc = (idx & 31) << 1;
            rb[i] = *(const double2*)(B + (size_t)(k0 + br) * N + bn + bc);
        }
    };
    auto store = [&](int s) {
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int idx = tid + i * 128;
            *(double2*)&As[s][idx >> 3][(idx & 7) << 1] = ra[i];
            *(double2*)&Bs[s][idx >> 5][(idx & 31) << 1] = rb[i];
        }
    };
    double acc[4][4][2];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) acc[i][j][0] = acc[i][j][1] = 0.0;

    load(0);
    store(0);
    __syncthreads();
    const int g = lane >> 2, t = lane & 3;
    int buf = 0;
    for (int k0 = 0; k0 < K; k0 += DG_BK) {
        const bool more = k0 + DG_BK < K;
        if (more) load(k0 + DG_BK);
#pragma unroll
        for (int kk = 0; kk < DG_BK; kk += 4) {
            double af[4], bf[4];
#pragma unroll
            for (int i = 0; i < 4; ++i) af[i] = As[buf][wm + i * 8 + g][kk + t];
#pragma unroll
            for (int j = 0; j < 4; ++j) bf[j] = Bs[buf][kk + t][wn + j * 8 + g];
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j) dmma_8x8x4(acc[i][j], af[i], bf[j]);
        }
        if (more) {
            store(buf ^ 1);
            __syncthreads();
            buf ^= 1;
        }
    }
    // Accumulator: row g, columns 2t and 2t+1 of each 8x8 tile.
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int row = bm + wm + i * 8 + g, col = bn + wn + j * 8 + 2 * t;
            *(double2*)&C[(size_t)row * N + col] = make_double2(acc[i][j][0], acc[i][j][1]);
        }
}

// ---- Shared-memory FP64 GEMM on the SIMT cores, for sm < 80 (no DMMA).
extern "C" __global__ void dgemm_simt(int M, int N, int K, const double* __restrict__ A,
                                      const double* __restrict__ B, double* __restrict__ C)
{
    __shared__ double As[16][17], Bs[16][17];
    const int row = blockIdx.y * 16 + threadIdx.y, col = blockIdx.x * 16 + threadIdx.x;
    double acc = 0.0;
    for (int k0 = 0; k0 < K; k0 += 16) {
        As[threadIdx.y][threadIdx.x] = A[(size_t)row * K + k0 + threadIdx.x];
        Bs[threadIdx.y][threadIdx.x] = B[(size_t)(k0 + threadIdx.y) * N + col];
        __syncthreads();
#pragma unroll
        for (int k = 0; k < 16; ++k) acc = fma(As[threadIdx.y][k], Bs[k][threadIdx.x], acc);
        __syncthreads();
    }
    C[(size_t)row * N + col] = acc;
}
