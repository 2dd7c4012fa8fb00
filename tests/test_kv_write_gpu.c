/*
 * launch_kv_write_fp16 on fresh random rows: every token with a valid slot lands, bit for bit, at
 * block slot / B, offset slot % B of its layer's pages, head by head; slots of -1 and slots past
 * the pool are skipped; every page element nobody wrote keeps its poison. The oracle is the page
 * layout written out in plain C.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda_check.h"
#include "kernels/kernels.h"
#include "model/sampler.h"
#include "tests/check.h"
#include "tests/gpu_test_util.h"

#define HEAD 64
#define POISON 0xFFFFu

static void run_case(int n_tokens, int n_head, int block_size, int num_blocks, uint64_t *rng) {
    const int C = n_head * HEAD, stride = 3 * C + 8; /* a padded row, as a view into a wider buffer */
    const int64_t n_slots = (int64_t)num_blocks * block_size;
    const size_t page_elems = (size_t)n_slots * n_head * HEAD;
    uint16_t *qkv = malloc((size_t)n_tokens * stride * 2);
    for (size_t i = 0; i < (size_t)n_tokens * stride; i++)
        qkv[i] = (uint16_t)(splitmix64_mix(*rng + i) & 0x7BFF); /* finite fp16 bit patterns */
    *rng += (uint64_t)n_tokens * stride;

    /* Distinct random slots; every 7th token skipped, one token aimed past the pool. */
    int64_t *slots = malloc((size_t)n_tokens * sizeof *slots);
    for (int i = 0; i < n_tokens; i++) {
        bool taken;
        do {
            slots[i] = (int64_t)(sampler_next_uniform(rng) * (float)n_slots) % n_slots;
            taken = false;
            for (int j = 0; j < i; j++) taken |= slots[j] == slots[i];
        } while (taken);
    }
    for (int i = 0; i < n_tokens; i += 7) slots[i] = -1;
    if (n_tokens > 3) slots[3] = n_slots + 5;

    gpt2_f16 *dev_qkv = device_copy(qkv, (size_t)n_tokens * stride * 2), *dev_k, *dev_v;
    int64_t *dev_slots = device_copy(slots, (size_t)n_tokens * sizeof *slots);
    CUDA_CHECK(cudaMalloc((void **)&dev_k, page_elems * 2));
    CUDA_CHECK(cudaMalloc((void **)&dev_v, page_elems * 2));
    CUDA_CHECK(cudaMemset(dev_k, 0xFF, page_elems * 2));
    CUDA_CHECK(cudaMemset(dev_v, 0xFF, page_elems * 2));

    launch_kv_write_fp16(dev_k, dev_v, dev_qkv, stride, dev_slots, n_tokens, n_head, block_size,
                         num_blocks, 0);
    uint16_t *k = malloc(page_elems * 2), *v = malloc(page_elems * 2);
    CUDA_CHECK(cudaMemcpy(k, dev_k, page_elems * 2, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(v, dev_v, page_elems * 2, cudaMemcpyDeviceToHost));

    /* The expected pages: poison everywhere, then each kept token's rows at its slot. */
    uint16_t *want_k = malloc(page_elems * 2), *want_v = malloc(page_elems * 2);
    for (size_t i = 0; i < page_elems; i++) want_k[i] = want_v[i] = POISON;
    for (int i = 0; i < n_tokens; i++) {
        if (slots[i] < 0 || slots[i] >= n_slots) continue;
        const int64_t block = slots[i] / block_size, offset = slots[i] % block_size;
        for (int h = 0; h < n_head; h++) {
            const size_t dst = (size_t)((block * n_head + h) * block_size + offset) * HEAD;
            memcpy(want_k + dst, qkv + (size_t)i * stride + C + h * HEAD, HEAD * 2);
            memcpy(want_v + dst, qkv + (size_t)i * stride + 2 * C + h * HEAD, HEAD * 2);
        }
    }
    size_t bad_k = 0, bad_v = 0;
    for (size_t i = 0; i < page_elems; i++) {
        bad_k += k[i] != want_k[i];
        bad_v += v[i] != want_v[i];
    }
    CHECK(bad_k == 0 && bad_v == 0, "T %d, %d heads, block %d: %zu K and %zu V elements differ",
          n_tokens, n_head, block_size, bad_k, bad_v);

    CUDA_CHECK(cudaFree(dev_qkv));
    CUDA_CHECK(cudaFree(dev_k));
    CUDA_CHECK(cudaFree(dev_v));
    CUDA_CHECK(cudaFree(dev_slots));
    free(qkv), free(slots), free(k), free(v), free(want_k), free(want_v);
}

int main(void) {
    if (gpt2_cuda_device_count() == 0) {
        printf("test_kv_write_gpu: no CUDA device, skipped\n");
        return SKIP_EXIT_CODE;
    }
    uint64_t rng = gpu_test_seed("test_kv_write_gpu");
    run_case(1, 12, 16, 4, &rng);
    run_case(37, 12, 16, 8, &rng);  /* a prefill chunk: odd length, over several pages */
    run_case(64, 25, 16, 9, &rng);  /* GPT-2 1.5B's 25 heads */
    run_case(29, 2, 32, 3, &rng);
    return check_finish("test_kv_write_gpu");
}
