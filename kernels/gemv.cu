/*
 * Skinny GEMM for decode: y[b, n] = epilogue(sum_k x[b, k] * w[n, k] + bias[n]) (bias optional)
 * for the rows of x, the shape of one decode step (QKV, attention out, MLP fc and proj, and the
 * LM head). A block takes up to 8 rows (blockIdx.y picks which 8), the shape it is built for.
 * Every row's arithmetic is the same whatever the number of rows, so a decode step's results do
 * not depend on the batch around a sequence; past 8 rows the weights are read once per 8 rows,
 * mostly from L2.
 *
 * At these shapes the weight matrix is read once and every other byte is noise, so the kernel
 * is built to stream w at the copy bandwidth:
 * - w is stored [N, K] (output-major, each output's weights contiguous), so a warp reads a row
 *   with 16-byte loads, 512 contiguous bytes per warp-wide load;
 * - each warp owns OUTS_PER_WARP outputs and walks K in steps of 256, all batch rows at once, so
 *   every weight byte is loaded exactly once and reused ROWS times from registers;
 * - x and w are read-only (__restrict__, so the loads may take the non-coherent path); every
 *   warp of the block reads the same chunks of x (at most 8 x 6400 halves): cache hits after
 *   the first;
 * - fp32 accumulation, one warp reduction per output at the end, and the epilogue (bias, then
 *   GELU or residual add) fused before the single store.
 * K must be a multiple of 8; N is arbitrary (the LM head's 50257).
 */
#include <stdint.h>

#include "kernels/cuda_check.h"
#include "kernels/kernels.h"
#include "kernels/launch.h"
#include "kernels/half8.cuh"
#include "kernels/reduce.cuh"

#define WARPS 8
#define THREADS (WARPS * 32)
#define OUTS_PER_WARP 2
#define OUTS_PER_BLOCK (WARPS * OUTS_PER_WARP)
#define K_STEP 256 /* 32 lanes x 8 halves */
#define MAX_ROWS 8          /* rows per block */
#define MAX_ROW_CHUNKS 65535 /* gridDim.y */

/* ---- kernels ---- */

/* GPT-2's GELU, the tanh approximation, in fp32. */
static __device__ __forceinline__ float gelu_tanh(float x) {
    const float inner = 0.7978845608028654f * (x + 0.044715f * x * x * x);
    return 0.5f * x * (1.0f + tanhf(inner));
}

static __device__ __forceinline__ void store(__half *y, float value) { *y = __float2half_rn(value); }
static __device__ __forceinline__ void store(float *y, float value) { *y = value; }

template <int ROWS, typename Out>
static __global__ void __launch_bounds__(THREADS)
gemv_kernel(Out *__restrict__ y /* [ROWS, y_stride] */, int y_stride,
            const __half *__restrict__ x /* [ROWS, x_stride] */, int x_stride,
            const __half *__restrict__ w /* [N, K] */, const __half *bias /* [N] or NULL */,
            const __half *residual /* [ROWS, residual_stride] or NULL */, int residual_stride,
            int K, int N, linear_epilogue epilogue) {
    const int64_t first_row = (int64_t)blockIdx.y * ROWS;
    x += first_row * x_stride;
    y += first_row * y_stride;
    if (residual) residual += first_row * residual_stride;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int n0 = (blockIdx.x * WARPS + warp) * OUTS_PER_WARP;
    if (n0 >= N) return; /* whole warps only: no block barrier in this kernel */
    float acc[OUTS_PER_WARP][ROWS];
    for (int o = 0; o < OUTS_PER_WARP; o++)
        for (int r = 0; r < ROWS; r++) acc[o][r] = 0.0f;

#pragma unroll 4
    for (int k = lane * 8; k < K; k += K_STEP) {
        float xs[ROWS][8];
        for (int r = 0; r < ROWS; r++)
            unpack_half8(load_half8(x + (int64_t)r * x_stride + k), xs[r]);
        for (int o = 0; o < OUTS_PER_WARP; o++) {
            const int n = min(n0 + o, N - 1); /* a tail output re-reads a valid row, unstored */
            float ws[8];
            unpack_half8(load_half8(w + (int64_t)n * K + k), ws);
            for (int r = 0; r < ROWS; r++)
                for (int i = 0; i < 8; i++) acc[o][r] += xs[r][i] * ws[i];
        }
    }
    for (int o = 0; o < OUTS_PER_WARP; o++) {
        const int n = n0 + o;
        for (int r = 0; r < ROWS; r++) {
            const float dot = warp_reduce(acc[o][r], sum_op());
            if (lane != r || n >= N) continue; /* lane r stores row r */
            float value = dot + (bias ? __half2float(bias[n]) : 0.0f);
            if (epilogue == LINEAR_GELU) value = gelu_tanh(value);
            if (epilogue == LINEAR_RESIDUAL)
                value += __half2float(residual[(int64_t)r * residual_stride + n]);
            store(y + (int64_t)r * y_stride + n, value);
        }
    }
}

/* ---- launchers ---- */

/* `chunks` groups of `rows` rows (1..8), one grid row of blocks per group. */
template <typename Out>
static void launch_chunks(int rows, int chunks, Out *y, int y_stride, const __half *x,
                          int x_stride, const __half *w, const __half *bias,
                          const __half *residual, int residual_stride, int K, int N,
                          linear_epilogue epilogue, cudaStream_t stream) {
    const dim3 grid((unsigned)CEIL_DIV(N, OUTS_PER_BLOCK), (unsigned)chunks);
#define GEMV_CASE(R)                                                                             \
    case R:                                                                                      \
        LAUNCH_KERNEL((gemv_kernel<R, Out>), grid, THREADS, 0, stream, y, y_stride, x, x_stride, \
                      w, bias, residual, residual_stride, K, N, epilogue);                       \
        break
    switch (rows) {
        GEMV_CASE(1); GEMV_CASE(2); GEMV_CASE(3); GEMV_CASE(4);
        GEMV_CASE(5); GEMV_CASE(6); GEMV_CASE(7); GEMV_CASE(8);
    }
#undef GEMV_CASE
}

/* Every full group of 8 rows in one launch, then the remaining rows in another. */
template <typename Out>
static void launch_rows(int rows, Out *y, int y_stride, const __half *x, int x_stride,
                        const __half *w, const __half *bias, const __half *residual,
                        int residual_stride, int K, int N, linear_epilogue epilogue,
                        cudaStream_t stream) {
    const int full = rows / MAX_ROWS, tail = rows % MAX_ROWS;
    if (full > 0)
        launch_chunks<Out>(MAX_ROWS, full, y, y_stride, x, x_stride, w, bias, residual,
                           residual_stride, K, N, epilogue, stream);
    if (tail == 0) return;
    const int64_t done = (int64_t)full * MAX_ROWS;
    launch_chunks<Out>(tail, 1, y + done * y_stride, y_stride, x + done * x_stride, x_stride, w,
                       bias, residual ? residual + done * residual_stride : NULL, residual_stride,
                       K, N, epilogue, stream);
}

static void check_gemv(const char *op, int rows, const void *y, int y_stride, const gpt2_f16 *x,
                       int x_stride, const gpt2_f16 *w, const gpt2_f16 *bias,
                       const gpt2_f16 *residual, int residual_stride, int K, int N,
                       linear_epilogue epilogue) {
    LAUNCH_REQUIRE(rows >= 1 && rows / MAX_ROWS <= MAX_ROW_CHUNKS, op);
    LAUNCH_REQUIRE(K >= 8 && K % 8 == 0 && N >= 1, op);
    LAUNCH_REQUIRE(y && x && w && y_stride >= N && x_stride >= K && x_stride % 8 == 0, op);
    LAUNCH_REQUIRE((uintptr_t)x % 16 == 0 && (uintptr_t)w % 16 == 0, op);
    LAUNCH_REQUIRE(epilogue == LINEAR_PLAIN || epilogue == LINEAR_GELU ||
                       epilogue == LINEAR_RESIDUAL, op);
    LAUNCH_REQUIRE(epilogue != LINEAR_RESIDUAL || (residual && residual_stride >= N), op);
}

extern "C" void launch_gemv_f16(gpt2_f16 *y, int y_stride, const gpt2_f16 *x, int x_stride,
                                const gpt2_f16 *w, const gpt2_f16 *bias, const gpt2_f16 *residual,
                                int residual_stride, int rows, int K, int N,
                                linear_epilogue epilogue, cudaStream_t stream) {
    check_gemv("gemv_f16", rows, y, y_stride, x, x_stride, w, bias, residual, residual_stride, K,
               N, epilogue);
    launch_rows<__half>(rows, (__half *)y, y_stride, (const __half *)x, x_stride,
                        (const __half *)w, (const __half *)bias, (const __half *)residual,
                        residual_stride, K, N, epilogue, stream);
    LAUNCH_CHECK("gemv_f16", stream);
}

extern "C" void launch_gemv_f32_out(float *y, int y_stride, const gpt2_f16 *x, int x_stride,
                                    const gpt2_f16 *w, int rows, int K, int N,
                                    cudaStream_t stream) {
    check_gemv("gemv_f32_out", rows, y, y_stride, x, x_stride, w, NULL, NULL, 0, K, N, LINEAR_PLAIN);
    launch_rows<float>(rows, y, y_stride, (const __half *)x, x_stride, (const __half *)w, NULL,
                       NULL, 0, K, N, LINEAR_PLAIN, stream);
    LAUNCH_CHECK("gemv_f32_out", stream);
}
