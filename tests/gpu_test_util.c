#include "tests/gpu_test_util.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "kernels/cuda_check.h"
#include "kernels/half.h"
#include "model/sampler.h"

#define HEAD 64
#define NAN_BITS 0x7FFFu
#define NO_BLOCK 0x7FFF7FFF

static void *checked_malloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "out of host memory (%zu bytes)\n", bytes);
        exit(EXIT_FAILURE);
    }
    return p;
}

uint64_t gpu_test_seed(const char *test_name) {
    const char *text = getenv("GPT2_TEST_SEED");
    const uint64_t seed = text ? strtoull(text, NULL, 10) : (uint64_t)time(NULL);
    printf("%s: seed %llu (GPT2_TEST_SEED=%llu reproduces it)\n", test_name,
           (unsigned long long)seed, (unsigned long long)seed);
    return seed;
}

void *device_copy(const void *host, size_t bytes) {
    void *dev;
    CUDA_CHECK(cudaMalloc(&dev, bytes ? bytes : 1));
    if (bytes) CUDA_CHECK(cudaMemcpy(dev, host, bytes, cudaMemcpyHostToDevice));
    return dev;
}

uint16_t *random_halves(size_t n, float scale, uint64_t *rng) {
    uint16_t *h = checked_malloc(n * sizeof *h);
    for (size_t i = 0; i < n; i++)
        h[i] = float_to_half(scale * (2.0f * sampler_next_uniform(rng) - 1.0f));
    return h;
}

float *halves_to_floats(const uint16_t *h, size_t n) {
    float *f = checked_malloc(n * sizeof *f);
    for (size_t i = 0; i < n; i++) f[i] = half_to_float(h[i]);
    return f;
}

/* A random permutation of [0, n). */
static int32_t *shuffled_ids(int n, uint64_t *rng) {
    int32_t *ids = checked_malloc((size_t)n * sizeof *ids);
    for (int i = 0; i < n; i++) ids[i] = i;
    for (int i = n - 1; i > 0; i--) {
        const int j = (int)(splitmix64_mix((*rng)++) % (uint64_t)(i + 1));
        const int32_t tmp = ids[i];
        ids[i] = ids[j];
        ids[j] = tmp;
    }
    return ids;
}

void paged_kv_fixture_create(paged_kv_fixture *f, int n_head, int block_size, int max_tokens,
                             const int *seq_lens, int n_seqs, uint64_t *rng) {
    const int B = block_size, max_blocks = (max_tokens + B - 1) / B;
    int used = 0;
    for (int s = 0; s < n_seqs; s++) used += (seq_lens[s] + B - 1) / B;
    *f = (paged_kv_fixture){.n_head = n_head, .block_size = B, .max_blocks_per_seq = max_blocks,
                            .num_blocks = used + 5, .n_seqs = n_seqs};
    const size_t page = (size_t)n_head * B * HEAD, elems = (size_t)f->num_blocks * page;
    f->k_pages = checked_malloc(elems * 2);
    f->v_pages = checked_malloc(elems * 2);
    for (size_t i = 0; i < elems; i++) f->k_pages[i] = f->v_pages[i] = NAN_BITS;
    f->tables = checked_malloc((size_t)n_seqs * max_blocks * sizeof *f->tables);
    int32_t *order = shuffled_ids(f->num_blocks, rng);
    int next = 0;
    for (int s = 0; s < n_seqs; s++)
        for (int b = 0; b < max_blocks; b++) {
            const int owned = b * B < seq_lens[s];
            const int32_t id = owned ? order[next++] : NO_BLOCK;
            f->tables[s * max_blocks + b] = id;
            if (!owned) continue;
            for (size_t i = 0; i < page; i++) {
                f->k_pages[(size_t)id * page + i] = float_to_half(2.0f * sampler_next_uniform(rng) - 1.0f);
                f->v_pages[(size_t)id * page + i] = float_to_half(2.0f * sampler_next_uniform(rng) - 1.0f);
            }
        }
    free(order);
    f->device = (paged_kv_layer){
        .k = device_copy(f->k_pages, elems * 2), .v = device_copy(f->v_pages, elems * 2),
        .block_tables = device_copy(f->tables, (size_t)n_seqs * max_blocks * sizeof *f->tables),
        .max_blocks_per_seq = max_blocks, .block_size = B, .n_head = n_head};
}

void paged_kv_fixture_destroy(paged_kv_fixture *f) {
    CUDA_CHECK(cudaFree((void *)f->device.k));
    CUDA_CHECK(cudaFree((void *)f->device.v));
    CUDA_CHECK(cudaFree((void *)f->device.block_tables));
    free(f->k_pages);
    free(f->v_pages);
    free(f->tables);
}

void paged_kv_fixture_rows(const paged_kv_fixture *f, int seq, int n_tokens, float *k, float *v) {
    const int C = f->n_head * HEAD, B = f->block_size;
    for (int t = 0; t < n_tokens; t++) {
        const int64_t block = f->tables[seq * f->max_blocks_per_seq + t / B];
        for (int h = 0; h < f->n_head; h++)
            for (int d = 0; d < HEAD; d++) {
                const size_t src = (size_t)(((block * f->n_head + h) * B + t % B) * HEAD + d);
                k[(size_t)t * C + h * HEAD + d] = half_to_float(f->k_pages[src]);
                v[(size_t)t * C + h * HEAD + d] = half_to_float(f->v_pages[src]);
            }
    }
}
