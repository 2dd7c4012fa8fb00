/*
 * Weight conversion at load time: F32, F16 or BF16 checkpoint data to the engine's fp16.
 * A grid-stride loop; each thread converts one element per step. Load-time only, so simplicity
 * wins over the last few percent of bandwidth.
 */
#include <stdint.h>

#include <cuda_bf16.h>

#include "kernels/cuda_check.h"
#include "kernels/kernels.h"
#include "kernels/launch.h"

/* ---- kernels ---- */

static __global__ void convert_f32_kernel(__half *out /* [n] */, const float *in /* [n] */, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = __float2half_rn(in[i]);
}

static __global__ void convert_bf16_kernel(__half *out /* [n] */, const __nv_bfloat16 *in /* [n] */,
                                           size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        out[i] = __float2half_rn(__bfloat162float(in[i]));
}

/* ---- launchers ---- */

static size_t source_element_size(convert_source from) {
    return from == CONVERT_FROM_F32 ? sizeof(float) : sizeof(__half);
}

extern "C" void launch_convert_to_f16(gpt2_f16 *out, const void *in, convert_source from, size_t n,
                                      cudaStream_t stream) {
    const char *op = "convert_to_f16";
    LAUNCH_REQUIRE(from == CONVERT_FROM_F32 || from == CONVERT_FROM_F16 || from == CONVERT_FROM_BF16, op);
    if (n == 0) return;
    LAUNCH_REQUIRE(out != NULL && in != NULL, op);
    LAUNCH_REQUIRE((uintptr_t)out % sizeof(__half) == 0, op);
    LAUNCH_REQUIRE((uintptr_t)in % source_element_size(from) == 0, op); /* copy unaligned data first */
    const int threads = 256;
    const size_t max_blocks = 4096; /* grid-stride: enough to fill any GPU */
    const unsigned blocks = (unsigned)(CEIL_DIV(n, (size_t)threads) < max_blocks ? CEIL_DIV(n, (size_t)threads)
                                                                                 : max_blocks);
    switch (from) {
    case CONVERT_FROM_F16:
        CUDA_CHECK(cudaMemcpyAsync(out, in, n * sizeof(__half), cudaMemcpyDeviceToDevice, stream));
        return;
    case CONVERT_FROM_F32:
        LAUNCH_KERNEL(convert_f32_kernel, blocks, threads, 0, stream, out, (const float *)in, n);
        LAUNCH_CHECK("convert_f32_to_f16", stream);
        return;
    case CONVERT_FROM_BF16:
        LAUNCH_KERNEL(convert_bf16_kernel, blocks, threads, 0, stream, out, (const __nv_bfloat16 *)in, n);
        LAUNCH_CHECK("convert_bf16_to_f16", stream);
        return;
    }
}
