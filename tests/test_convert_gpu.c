/*
 * launch_convert_to_f16 on fresh random inputs, with the output poisoned first.
 * Oracle: arithmetic (tests/half_oracle.h). Each fp16 result h must be the nearest fp16 to its
 * input x, ties to even. Exits 77 where there is no CUDA device.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/cuda_check.h"
#include "kernels/kernels.h"
#include "model/sampler.h"
#include "tests/check.h"
#include "tests/half_oracle.h"

#define N 100003 /* not a multiple of the block size */

static void check_from_f32(uint64_t *rng) {
    float *host_in = malloc(N * sizeof(float));
    uint16_t *host_out = malloc(N * sizeof(uint16_t));
    for (int i = 0; i < N; i++) /* magnitudes from 2^-20 to 2^12, both signs */
        host_in[i] = (sampler_next_uniform(rng) < 0.5f ? -1.0f : 1.0f) *
                     ldexpf(1.0f + sampler_next_uniform(rng), (int)(sampler_next_uniform(rng) * 32) - 20);
    float *dev_in;
    gpt2_f16 *dev_out;
    CUDA_CHECK(cudaMalloc((void **)&dev_in, N * sizeof(float)));
    CUDA_CHECK(cudaMalloc((void **)&dev_out, (N + 1) * sizeof(gpt2_f16)));
    CUDA_CHECK(cudaMemset(dev_out, 0xFF, (N + 1) * sizeof(gpt2_f16))); /* poison: fp16 NaN */
    CUDA_CHECK(cudaMemcpy(dev_in, host_in, N * sizeof(float), cudaMemcpyHostToDevice));
    launch_convert_to_f16(dev_out, dev_in, CONVERT_FROM_F32, N, 0);
    CUDA_CHECK(cudaMemcpy(host_out, dev_out, N * sizeof(uint16_t), cudaMemcpyDeviceToHost));
    uint16_t past_end;
    CUDA_CHECK(cudaMemcpy(&past_end, dev_out + N, sizeof past_end, cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int i = 0; i < N; i++) bad += !half_is_nearest(host_in[i], host_out[i]);
    CHECK(bad == 0, "%d of %d f32 -> f16 results are not a nearest fp16", bad, N);
    CHECK(past_end == 0xFFFF, "the kernel wrote past the end");
    cudaFree(dev_in);
    cudaFree(dev_out);
    free(host_in);
    free(host_out);
}

/* bf16 values within fp16's normal range convert exactly or to a nearest fp16. */
static void check_from_bf16(uint64_t *rng) {
    uint16_t *host_in = malloc(N * sizeof(uint16_t)), *host_out = malloc(N * sizeof(uint16_t));
    for (int i = 0; i < N; i++) {
        float x = (sampler_next_uniform(rng) - 0.5f) * 200.0f;
        uint32_t bits;
        memcpy(&bits, &x, 4);
        host_in[i] = (uint16_t)(bits >> 16); /* truncation gives a valid bf16 */
    }
    void *dev_in;
    gpt2_f16 *dev_out;
    CUDA_CHECK(cudaMalloc(&dev_in, N * sizeof(uint16_t)));
    CUDA_CHECK(cudaMalloc((void **)&dev_out, N * sizeof(gpt2_f16)));
    CUDA_CHECK(cudaMemset(dev_out, 0xFF, N * sizeof(gpt2_f16)));
    CUDA_CHECK(cudaMemcpy(dev_in, host_in, N * sizeof(uint16_t), cudaMemcpyHostToDevice));
    launch_convert_to_f16(dev_out, dev_in, CONVERT_FROM_BF16, N, 0);
    CUDA_CHECK(cudaMemcpy(host_out, dev_out, N * sizeof(uint16_t), cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int i = 0; i < N; i++) {
        uint32_t bits = (uint32_t)host_in[i] << 16;
        float x;
        memcpy(&x, &bits, 4);
        bad += !half_is_nearest(x, host_out[i]);
    }
    CHECK(bad == 0, "%d of %d bf16 -> f16 results are not a nearest fp16", bad, N);
    cudaFree(dev_in);
    cudaFree(dev_out);
    free(host_in);
    free(host_out);
}

int main(void) {
    if (gpt2_cuda_device_count() == 0) {
        printf("test_convert_gpu: no CUDA device, skipped\n");
        return SKIP_EXIT_CODE;
    }
    uint64_t rng = (uint64_t)time(NULL);
    printf("test_convert_gpu: seed %llu\n", (unsigned long long)rng);
    check_from_f32(&rng);
    check_from_bf16(&rng);
    return check_finish("test_convert_gpu");
}
