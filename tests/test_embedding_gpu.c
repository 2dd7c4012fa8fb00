/*
 * launch_embedding on fresh random tables and (id, position) pairs, the output poisoned first.
 * Oracle: the same fp32 add of the two fp16 rows in C, rounded by float_to_half, so every
 * element must match bit for bit. Bad pairs (id or position out of range) must give NaN rows
 * (0x7E00, not the poison), and a guard vector past the end must stay poisoned.
 * Exits 77 where there is no CUDA device.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda_check.h"
#include "kernels/half.h"
#include "kernels/kernels.h"
#include "model/sampler.h"
#include "tests/check.h"
#include "tests/gpu_test_util.h"

#define V 257
#define P 97
#define GUARD 8 /* one 128-bit vector past the end */
#define POISON 0xFFFF
#define DEVICE_NAN 0x7E00

/* Runs one batch of N pairs (bad ones included when with_bad) at width C and checks it. */
static void check_batch(int N, int C, int with_bad, uint64_t *rng) {
    uint16_t *wte = random_halves((size_t)V * C, 1.0f, rng);
    uint16_t *wpe = random_halves((size_t)P * C, 0.5f, rng);
    int32_t *ids = malloc(N * sizeof *ids), *positions = malloc(N * sizeof *positions);
    for (int i = 0; i < N; i++) {
        ids[i] = (int32_t)(sampler_next_uniform(rng) * V);
        positions[i] = (int32_t)(sampler_next_uniform(rng) * P);
    }
    if (with_bad) { /* every kind of bad pair, the rest still good */
        const int32_t bad_ids[4] = {-1, V, 0, 0}, bad_positions[4] = {0, 0, -1, P};
        for (int b = 0; b < 4 && b < N; b++) {
            ids[N - 1 - b] = bad_ids[b];
            positions[N - 1 - b] = bad_positions[b];
        }
    }
    const size_t out_n = (size_t)N * C;
    gpt2_f16 *dev_wte = device_copy(wte, (size_t)V * C * 2), *dev_wpe = device_copy(wpe, (size_t)P * C * 2);
    int32_t *dev_ids = device_copy(ids, N * sizeof *ids);
    int32_t *dev_pos = device_copy(positions, N * sizeof *positions);
    gpt2_f16 *dev_out;
    CUDA_CHECK(cudaMalloc((void **)&dev_out, (out_n + GUARD) * 2));
    CUDA_CHECK(cudaMemset(dev_out, 0xFF, (out_n + GUARD) * 2));
    launch_embedding(dev_out, dev_ids, dev_pos, dev_wte, dev_wpe, N, C, V, P, 0);
    uint16_t *out = malloc((out_n + GUARD) * 2);
    CUDA_CHECK(cudaMemcpy(out, dev_out, (out_n + GUARD) * 2, cudaMemcpyDeviceToHost));

    int wrong = 0, wrong_bad = 0, guard_hit = 0;
    for (int i = 0; i < N; i++) {
        const int valid = ids[i] >= 0 && ids[i] < V && positions[i] >= 0 && positions[i] < P;
        for (int c = 0; c < C; c++) {
            const uint16_t got = out[(size_t)i * C + c];
            if (!valid) {
                wrong_bad += got != DEVICE_NAN;
                continue;
            }
            const float sum = half_to_float(wte[(size_t)ids[i] * C + c]) +
                              half_to_float(wpe[(size_t)positions[i] * C + c]);
            wrong += got != float_to_half(sum);
        }
    }
    for (int g = 0; g < GUARD; g++) guard_hit += out[out_n + g] != POISON;
    CHECK(wrong == 0, "N=%d C=%d: %d of %zu elements differ from fp16(wte + wpe)", N, C, wrong, out_n);
    CHECK(wrong_bad == 0, "N=%d C=%d: %d elements of bad pairs are not NaN 0x7E00", N, C, wrong_bad);
    CHECK(guard_hit == 0, "N=%d C=%d: the kernel wrote past the end", N, C);

    CUDA_CHECK(cudaFree(dev_wte));
    CUDA_CHECK(cudaFree(dev_wpe));
    CUDA_CHECK(cudaFree(dev_ids));
    CUDA_CHECK(cudaFree(dev_pos));
    CUDA_CHECK(cudaFree(dev_out));
    free(wte);
    free(wpe);
    free(ids);
    free(positions);
    free(out);
}

int main(void) {
    if (gpt2_cuda_device_count() == 0) {
        printf("test_embedding_gpu: no CUDA device, skipped\n");
        return SKIP_EXIT_CODE;
    }
    uint64_t rng = gpu_test_seed("test_embedding_gpu");
    const int widths[] = {768, 1024, 1280, 1600, 8, 2056}; /* GPT-2's, the smallest, > 256 vectors */
    const int batches[] = {1, 7, 64};
    for (size_t w = 0; w < sizeof widths / sizeof *widths; w++)
        for (size_t b = 0; b < sizeof batches / sizeof *batches; b++)
            check_batch(batches[b], widths[w], 0, &rng);
    check_batch(9, 768, 1, &rng);
    check_batch(4, 1600, 1, &rng);
    return check_finish("test_embedding_gpu");
}
