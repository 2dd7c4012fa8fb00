/*
 * LayerNorm over rows of C features, fp16 in and out, statistics in fp32:
 * out = (x - mean) / sqrt(var + eps) * gamma + beta, var the biased (population) variance.
 * And the fused residual add + LayerNorm of every transformer sub-block boundary:
 * residual += x (rounded to fp16 and written back), normed = LayerNorm(the new residual).
 *
 * One block per row, one thread per 8 features: the row stays in registers between the two
 * passes of an exact two-pass mean and variance (no re-read, no Welford drift), and T = 1 (a
 * decode step) still spreads a row over C/8 threads. C is a multiple of 8 and at most 8192
 * (1024 threads); GPT-2's 768..1600 take 96..200 threads.
 */
#include <stdint.h>

#include "kernels/cuda_check.h"
#include "kernels/half8.cuh"
#include "kernels/kernels.h"
#include "kernels/launch.h"
#include "kernels/reduce.cuh"

#define LAYERNORM_MAX_C (8 * 1024)

/* ---- kernels ---- */

/*
 * Normalizes the row the block holds, x[8] per thread (features [8t, 8t + 8) of thread t;
 * threads past C / 8 hold zeros and write nothing), into out_row.
 */
static __device__ void normalize_row(__half *out_row /* [C] */, const float (&x)[8], int C, float eps,
                                     const __half *gamma /* [C] */, const __half *beta /* [C] */) {
    __shared__ float scratch_mean[32], scratch_var[32];
    const int c = 8 * threadIdx.x;
    float sum = 0.0f;
    for (int j = 0; j < 8; j++) sum += x[j];
    const float mean = block_reduce(sum, scratch_mean, sum_op()) / C;
    float squares = 0.0f;
    for (int j = 0; j < 8 && c < C; j++) squares += (x[j] - mean) * (x[j] - mean);
    const float inv_std = rsqrtf(block_reduce(squares, scratch_var, sum_op()) / C + eps);
    if (c >= C) return;
    float g[8], b[8], y[8];
    unpack_half8(load_half8(gamma + c), g);
    unpack_half8(load_half8(beta + c), b);
    for (int j = 0; j < 8; j++) y[j] = (x[j] - mean) * inv_std * g[j] + b[j];
    store_half8(out_row + c, pack_half8(y));
}

static __global__ void layernorm_kernel(__half *out /* [T, C] */, const __half *x /* [T, C] */,
                                        const __half *gamma /* [C] */, const __half *beta /* [C] */,
                                        int C, float eps) {
    const size_t row = blockIdx.x * (size_t)C;
    const int c = 8 * threadIdx.x;
    float v[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    if (c < C) unpack_half8(load_half8(x + row + c), v);
    normalize_row(out + row, v, C, eps, gamma, beta);
}

static __global__ void residual_layernorm_kernel(__half *residual /* [T, C] */, __half *normed /* [T, C] */,
                                                 const __half *x /* [T, C] */,
                                                 const __half *gamma /* [C] */,
                                                 const __half *beta /* [C] */, int C, float eps) {
    const size_t row = blockIdx.x * (size_t)C;
    const int c = 8 * threadIdx.x;
    float v[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    if (c < C) {
        float add[8];
        unpack_half8(load_half8(residual + row + c), v);
        unpack_half8(load_half8(x + row + c), add);
        for (int j = 0; j < 8; j++) v[j] += add[j];
        const half8 rounded = pack_half8(v);
        store_half8(residual + row + c, rounded);
        unpack_half8(rounded, v); /* normalize what the next sub-block will read */
    }
    normalize_row(normed + row, v, C, eps, gamma, beta);
}

/* ---- launchers ---- */

/* Checks the shape and returns the block size: one thread per 8 features, whole warps. */
static int layernorm_threads(int T, int C, float eps, const char *op) {
    LAUNCH_REQUIRE(T >= 0 && C > 0 && C % 8 == 0 && C <= LAYERNORM_MAX_C, op);
    LAUNCH_REQUIRE(eps >= 0.0f, op);
    return 32 * CEIL_DIV(C / 8, 32);
}

extern "C" void launch_layernorm(gpt2_f16 *out, const gpt2_f16 *x, const gpt2_f16 *gamma,
                                 const gpt2_f16 *beta, int T, int C, float eps, cudaStream_t stream) {
    const char *op = "layernorm";
    const int threads = layernorm_threads(T, C, eps, op);
    if (T == 0) return;
    LAUNCH_REQUIRE(out != NULL && x != NULL && gamma != NULL && beta != NULL, op);
    LAUNCH_REQUIRE(half8_aligned(out) && half8_aligned(x), op);
    LAUNCH_REQUIRE(half8_aligned(gamma) && half8_aligned(beta), op);
    LAUNCH_KERNEL(layernorm_kernel, T, threads, 0, stream, out, x, gamma, beta, C, eps);
    LAUNCH_CHECK(op, stream);
}

extern "C" void launch_residual_layernorm(gpt2_f16 *residual, gpt2_f16 *normed, const gpt2_f16 *x,
                                          const gpt2_f16 *gamma, const gpt2_f16 *beta, int T, int C,
                                          float eps, cudaStream_t stream) {
    const char *op = "residual_layernorm";
    const int threads = layernorm_threads(T, C, eps, op);
    if (T == 0) return;
    LAUNCH_REQUIRE(residual != NULL && normed != NULL && x != NULL && gamma != NULL && beta != NULL, op);
    LAUNCH_REQUIRE(half8_aligned(residual) && half8_aligned(normed) && half8_aligned(x), op);
    LAUNCH_REQUIRE(half8_aligned(gamma) && half8_aligned(beta), op);
    LAUNCH_REQUIRE(normed != residual, op);
    LAUNCH_KERNEL(residual_layernorm_kernel, T, threads, 0, stream, residual, normed, x, gamma, beta,
                  C, eps);
    LAUNCH_CHECK(op, stream);
}
