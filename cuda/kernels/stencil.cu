// stencil.cu: one 7-point Jacobi step on an n^3 FP64 grid (x fastest):
// out = c0*center + c1*(sum of the 6 neighbours) on interior points; the
// boundary is not written. Each thread walks z for one (x, y), keeping the
// z-1, z, z+1 column values in registers, so every input is read once from
// DRAM (x/y neighbours come from L1/L2).
extern "C" __global__ void __launch_bounds__(256)
stencil7(int n, double c0, double c1, const double* __restrict__ in, double* __restrict__ out)
{
    const int x = blockIdx.x * blockDim.x + threadIdx.x + 1;
    const int y = blockIdx.y * blockDim.y + threadIdx.y + 1;
    if (x >= n - 1 || y >= n - 1) return;
    const size_t plane = (size_t)n * n;
    size_t p = plane + (size_t)y * n + x;
    double below = in[p - plane], here = in[p];
    for (int z = 1; z < n - 1; ++z, p += plane) {
        const double above = in[p + plane];
        const double s = (in[p - 1] + in[p + 1]) + (in[p - n] + in[p + n]) + (below + above);
        out[p] = c0 * here + c1 * s;
        below = here;
        here = above;
    }
}
