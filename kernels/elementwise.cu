/*
 * The standalone elementwise ops of the unfused path and the benchmarks, fp16 in and out with
 * the math in fp32: x += bias (per row), x = gelu_tanh(x + bias), and the residual add x += y.
 * Grid-stride loops over 8-half vectors with 128-bit loads and stores; a vector never straddles
 * a row because C is a multiple of 8.
 */
#include <stdint.h>

#include "kernels/cuda_check.h"
#include "kernels/half8.cuh"
#include "kernels/kernels.h"
#include "kernels/launch.h"

#define ELEMENTWISE_THREADS 256
#define ELEMENTWISE_MAX_BLOCKS 4096 /* grid-stride: enough to fill any GPU */

/* ---- kernels ---- */

struct add_op {
    __device__ __forceinline__ float operator()(float x, float b) const { return x + b; }
};

/* GPT-2's gelu_new: 0.5 v (1 + tanh(sqrt(2 / pi) (v + 0.044715 v^3))), as cpu_gelu_tanh. */
struct add_gelu_op {
    __device__ __forceinline__ float operator()(float x, float b) const {
        const float v = x + b;
        return 0.5f * v * (1.0f + tanhf(0.7978845608028654f * (v + 0.044715f * v * v * v)));
    }
};

static __device__ __forceinline__ size_t grid_thread(void) {
    return blockIdx.x * (size_t)blockDim.x + threadIdx.x;
}

static __device__ __forceinline__ size_t grid_threads(void) { return (size_t)gridDim.x * blockDim.x; }

/*
 * x[i] = op(x[i], y[i % y_len]) over n elements in 8-half vectors; the index into y advances
 * with the loop, so there is no division per vector.
 */
template <class Op>
static __global__ void elementwise_kernel(__half *x /* [n] */, const __half *y /* [y_len] */,
                                          size_t n, size_t y_len) {
    const size_t step = 8 * grid_threads(), y_step = step % y_len;
    size_t i = 8 * grid_thread(), k = i % y_len;
    for (; i < n; i += step) {
        float a[8], b[8];
        unpack_half8(load_half8(x + i), a);
        unpack_half8(load_half8(y + k), b);
        for (int j = 0; j < 8; j++) a[j] = Op()(a[j], b[j]);
        store_half8(x + i, pack_half8(a));
        k += y_step;
        if (k >= y_len) k -= y_len;
    }
}

/* ---- launchers ---- */

/* Checks the operands and launches x = op(x, y broadcast over rows of y_len). */
template <class Op>
static void launch_elementwise(__half *x, const __half *y, size_t n, size_t y_len, const char *op,
                               cudaStream_t stream) {
    LAUNCH_REQUIRE(y_len > 0 && y_len % 8 == 0 && n % y_len == 0, op);
    if (n == 0) return;
    LAUNCH_REQUIRE(x != NULL && y != NULL && half8_aligned(x) && half8_aligned(y), op);
    const size_t blocks = CEIL_DIV(n / 8, (size_t)ELEMENTWISE_THREADS);
    const unsigned grid = (unsigned)(blocks < ELEMENTWISE_MAX_BLOCKS ? blocks : ELEMENTWISE_MAX_BLOCKS);
    LAUNCH_KERNEL((elementwise_kernel<Op>), grid, ELEMENTWISE_THREADS, 0, stream, x, y, n, y_len);
    LAUNCH_CHECK(op, stream);
}

extern "C" void launch_add_bias(gpt2_f16 *x, const gpt2_f16 *bias, int T, int C, cudaStream_t stream) {
    LAUNCH_REQUIRE(T >= 0 && C > 0, "add_bias");
    launch_elementwise<add_op>(x, bias, (size_t)T * C, (size_t)C, "add_bias", stream);
}

extern "C" void launch_bias_gelu(gpt2_f16 *x, const gpt2_f16 *bias, int T, int C, cudaStream_t stream) {
    LAUNCH_REQUIRE(T >= 0 && C > 0, "bias_gelu");
    launch_elementwise<add_gelu_op>(x, bias, (size_t)T * C, (size_t)C, "bias_gelu", stream);
}

extern "C" void launch_residual_add(gpt2_f16 *x, const gpt2_f16 *y, size_t n, cudaStream_t stream) {
    LAUNCH_REQUIRE(n % 8 == 0, "residual_add");
    if (n == 0) return;
    launch_elementwise<add_op>(x, y, n, n, "residual_add", stream);
}
