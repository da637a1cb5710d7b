// tcgemm.cu: BF16 tensor-core GEMM with FP32 accumulate, sm_80+.
// C (M x N, FP32, row-major) = A (M x K, BF16, row-major) * Bt^T, where Bt is
// N x K BF16 row-major (the "TN" layout: both operands K-contiguous, so both
// fragments come straight from ldmatrix). M, N multiples of 128, K of 32.
//
// Block tile 128x128x32, 8 warps as 2 (m) x 4 (n), each warp 64x32 =
// 4 x 4 mma.sync.m16n8k16 tiles. STAGES-deep cp.async pipeline in dynamic
// shared memory; rows padded to 40 halves (80 bytes) so ldmatrix is
// conflict-free.
#define TC_BM 128
#define TC_BN 128
#define TC_BK 32
#define TC_LD 40
#define TC_STAGES 4
#define TC_STAGE_ELEMS ((TC_BM + TC_BN) * TC_LD)

typedef unsigned short bf16_t;

__device__ __forceinline__ unsigned smem_addr(const void* p)
{
    unsigned r;
    asm volatile("{ .reg .u64 a; cvta.to.shared.u64 a, %1; cvt.u32.u64 %0, a; }" : "=r"(r) : "l"(p));
    return r;
}

__device__ __forceinline__ void cp_async16(void* smem, const void* gmem)
{
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" :: "r"(smem_addr(smem)), "l"(gmem));
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;"); }

template <int N>
__device__ __forceinline__ void cp_async_wait() { asm volatile("cp.async.wait_group %0;" :: "n"(N)); }

__device__ __forceinline__ void ldmatrix_x4(unsigned (&r)[4], const void* p)
{
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(smem_addr(p)));
}

__device__ __forceinline__ void mma_bf16_16816(float (&c)[4], const unsigned (&a)[4], unsigned b0, unsigned b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// TC_SMEM_BYTES is the dynamic shared memory a launch needs.
#define TC_SMEM_BYTES (TC_STAGES * TC_STAGE_ELEMS * 2)

extern "C" __global__ void __launch_bounds__(256)
tcgemm_bf16_128x128(int M, int N, int K, const bf16_t* __restrict__ A,
                    const bf16_t* __restrict__ Bt, float* __restrict__ C)
{
    extern __shared__ __align__(16) bf16_t smem[];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = (warp >> 2) * 64, wn = (warp & 3) * 32;
    const int bm = blockIdx.y * TC_BM, bn = blockIdx.x * TC_BN;
    const int KT = K / TC_BK;

    // Each stage: A tile [128][40] then Bt tile [128][40]. A tile row = 32
    // halves = 4 chunks of 16 bytes; 512 chunks per operand, 2 per thread.
    auto load_stage = [&](int stage, int kt) {
        bf16_t* as = smem + stage * TC_STAGE_ELEMS;
        bf16_t* bs = as + TC_BM * TC_LD;
        const int k0 = kt * TC_BK;
#pragma unroll
        for (int i = 0; i < 2; ++i) {
            const int c = tid + i * 256, row = c >> 2, col = (c & 3) << 3;
            cp_async16(as + row * TC_LD + col, A + (size_t)(bm + row) * K + k0 + col);
            cp_async16(bs + row * TC_LD + col, Bt + (size_t)(bn + row) * K + k0 + col);
        }
    };

    float acc[4][4][4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j)
#pragma unroll
            for (int r = 0; r < 4; ++r) acc[i][j][r] = 0.f;

#pragma unroll
    for (int s = 0; s < TC_STAGES - 1; ++s) {
        if (s < KT) load_stage(s, s);
        cp_async_commit();
    }

    // ldmatrix row addresses: A x4 = rows 0-15 x cols 0-7 | 8-15;
    // Bt x4 = two n8 tiles x k 0-7 | 8-15.
    const int a_r = lane & 15, a_c = (lane >> 4) << 3;
    const int b_r = (lane & 7) + ((lane >> 4) << 3), b_c = ((lane >> 3) & 1) << 3;

    for (int kt = 0; kt < KT; ++kt) {
        cp_async_wait<TC_STAGES - 2>();
        __syncthreads();
        const int pf = kt + TC_STAGES - 1;
        if (pf < KT) load_stage(pf % TC_STAGES, pf);
        cp_async_commit();

        const bf16_t* as = smem + (kt % TC_STAGES) * TC_STAGE_ELEMS;
        const bf16_t* bs = as + TC_BM * TC_LD;
#pragma unroll
        for (int kk = 0; kk < TC_BK; kk += 16) {
            unsigned af[4][4], bf[2][4];
#pragma unroll
            for (int i = 0; i < 4; ++i)
                ldmatrix_x4(af[i], as + (wm + i * 16 + a_r) * TC_LD + kk + a_c);
#pragma unroll
            for (int p = 0; p < 2; ++p)
                ldmatrix_x4(bf[p], bs + (wn + p * 16 + b_r) * TC_LD + kk + b_c);
#pragma unroll
            for (int i = 0; i < 4; ++i)
#pragma unroll
                for (int j = 0; j < 4; ++j)
                    mma_bf16_16816(acc[i][j], af[i], bf[j >> 1][(j & 1) * 2], bf[j >> 1][(j & 1) * 2 + 1]);
        }
    }
    cp_async_wait<0>();

    // Accumulator of an m16n8 tile: c0,c1 at row g, cols 2t, 2t+1; c2,c3 at row g+8.
    const int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const int row = bm + wm + i * 16 + g, col = bn + wn + j * 8 + 2 * t;
            *(float2*)&C[(size_t)row * N + col] = make_float2(acc[i][j][0], acc[i][j][1]);
            *(float2*)&C[(size_t)(row + 8) * N + col] = make_float2(acc[i][j][2], acc[i][j][3]);
        }
}
