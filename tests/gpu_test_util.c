#include "tests/gpu_test_util.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache/kv_quant.h"
#include "kernels/cuda_check.h"
#include "kernels/half.h"
#include "model/cpu_ops.h"
#include "model/sampler.h"

#define HEAD 64
#define NAN_BITS 0x7FFFu
#define POISON_CODE 127
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

int32_t *paged_kv_fixture_set_holes(paged_kv_fixture *f, const int *seq_lens, int sinks,
                                    const int *holes) {
    int32_t *kept = calloc((size_t)f->n_seqs, sizeof *kept);
    for (int s = 0; s < f->n_seqs; s++) kept[s] = seq_lens[s] - (holes ? holes[s] : 0);
    int32_t *dev_kept = device_copy(kept, (size_t)f->n_seqs * sizeof *kept);
    free(kept);
    f->device.hole_rows = holes ? device_copy(holes, (size_t)f->n_seqs * sizeof(int32_t)) : NULL;
    f->device.sink_rows = sinks;
    f->sinks = sinks;
    if (holes) {
        f->holes = checked_malloc((size_t)f->n_seqs * sizeof *f->holes);
        memcpy(f->holes, holes, (size_t)f->n_seqs * sizeof *f->holes);
    }
    return dev_kept;
}

/* 2^u for u uniform in [-2, 2]. */
static float random_row_factor(uint64_t *rng) {
    return exp2f(4.0f * sampler_next_uniform(rng) - 2.0f);
}

/* n_rows ratios 2^u, u uniform in [-2, 2], NaN where `owned` is false. */
static float *random_ratios(size_t n_rows, const bool *owned, uint64_t *rng) {
    float *r = checked_malloc(n_rows * sizeof *r);
    for (size_t i = 0; i < n_rows; i++) r[i] = owned[i] ? random_row_factor(rng) : NAN;
    return r;
}

int32_t *paged_kv_fixture_create_merged(paged_kv_fixture *f, int n_head, int max_tokens,
                                        const int *own_lens, const int *merged, int n_upper,
                                        uint64_t *rng) {
    int *lens = checked_malloc(2 * (size_t)n_upper * sizeof *lens);
    for (int s = 0; s < n_upper; s++) lens[s] = own_lens[s], lens[n_upper + s] = merged[s];
    paged_kv_fixture_create(f, n_head, 16, max_tokens, lens, 2 * n_upper, rng);
    free(lens);
    const size_t page_rows = (size_t)f->n_head * f->block_size;
    const size_t n_rows = (size_t)f->num_blocks * page_rows;
    bool *owned = calloc(n_rows, sizeof *owned);
    for (int i = 0; i < f->n_seqs * f->max_blocks_per_seq; i++)
        if (f->tables[i] != NO_BLOCK)
            for (size_t r = 0; r < page_rows; r++) owned[(size_t)f->tables[i] * page_rows + r] = true;
    f->k_ratios = random_ratios(n_rows, owned, rng);
    f->v_ratios = random_ratios(n_rows, owned, rng);
    free(owned);
    f->n_upper = n_upper;
    f->merged = checked_malloc((size_t)n_upper * sizeof *f->merged);
    int32_t *kept = checked_malloc((size_t)n_upper * sizeof *kept);
    for (int s = 0; s < n_upper; s++) f->merged[s] = merged[s], kept[s] = merged[s] + own_lens[s];
    int32_t *dev_kept = device_copy(kept, (size_t)n_upper * sizeof *kept);
    free(kept);
    f->device.merged_tables = f->device.block_tables + (size_t)n_upper * f->max_blocks_per_seq;
    f->device.merged_rows = device_copy(f->merged, (size_t)n_upper * sizeof *f->merged);
    f->device.k_ratios = device_copy(f->k_ratios, n_rows * sizeof *f->k_ratios);
    f->device.v_ratios = device_copy(f->v_ratios, n_rows * sizeof *f->v_ratios);
    return dev_kept;
}

/* Table row `row` of sequence seq into k, v (fp32, all heads), times its ratios when asked. */
static void fixture_row(const paged_kv_fixture *f, int seq, int row, bool scaled, float *k, float *v) {
    const int B = f->block_size;
    const int64_t block = f->tables[seq * f->max_blocks_per_seq + row / B];
    for (int h = 0; h < f->n_head; h++) {
        const size_t head_row = (size_t)((block * f->n_head + h) * B + row % B);
        const float kf = scaled ? f->k_ratios[head_row] : 1.0f, vf = scaled ? f->v_ratios[head_row] : 1.0f;
        for (int d = 0; d < HEAD; d++) {
            k[h * HEAD + d] = half_to_float(f->k_pages[head_row * HEAD + d]) * kf;
            v[h * HEAD + d] = half_to_float(f->v_pages[head_row * HEAD + d]) * vf;
        }
    }
}

void paged_kv_fixture_kept_rows(const paged_kv_fixture *f, int seq, int n_kept, float *k, float *v) {
    const int C = f->n_head * HEAD, merged = f->merged ? f->merged[seq] : 0;
    const int hole = f->holes ? f->holes[seq] : 0;
    for (int t = 0; t < n_kept; t++) {
        float *k_row = k + (size_t)t * C, *v_row = v + (size_t)t * C;
        if (t < merged) {
            fixture_row(f, f->n_upper + seq, t, true, k_row, v_row);
            continue;
        }
        const int own = t - merged;
        fixture_row(f, seq, own < f->sinks ? own : own + hole, false, k_row, v_row);
    }
}

void paged_kv_fixture_destroy(paged_kv_fixture *f) {
    CUDA_CHECK(cudaFree((void *)f->device.hole_rows));
    CUDA_CHECK(cudaFree((void *)f->device.merged_rows));
    CUDA_CHECK(cudaFree((void *)f->device.k_ratios));
    CUDA_CHECK(cudaFree((void *)f->device.v_ratios));
    free(f->holes);
    free(f->merged);
    free(f->k_ratios);
    free(f->v_ratios);
    CUDA_CHECK(cudaFree((void *)f->device.k));
    CUDA_CHECK(cudaFree((void *)f->device.v));
    CUDA_CHECK(cudaFree((void *)f->device.block_tables));
    free(f->k_pages);
    free(f->v_pages);
    free(f->tables);
}

void paged_kv_fixture_attention(const paged_kv_fixture *f, int seq, int n_kept, const float *q,
                                int q_stride, int n_new, float *out) {
    const int C = f->n_head * HEAD;
    float *k = checked_malloc((size_t)n_kept * C * sizeof *k), *v = checked_malloc((size_t)n_kept * C * sizeof *v);
    const float **k_rows = checked_malloc((size_t)n_kept * sizeof *k_rows);
    const float **v_rows = checked_malloc((size_t)n_kept * sizeof *v_rows);
    float *scores = checked_malloc((size_t)n_kept * sizeof *scores);
    paged_kv_fixture_kept_rows(f, seq, n_kept, k, v);
    for (int t = 0; t < n_kept; t++) k_rows[t] = k + (size_t)t * C, v_rows[t] = v + (size_t)t * C;
    cpu_causal_attention(out, q, q_stride, k_rows, v_rows, n_kept - n_new, n_new, f->n_head, scores);
    free(k), free(v), free(k_rows), free(v_rows), free(scores);
}

void paged_kv_fixture_rows(const paged_kv_fixture *f, int seq, int n_tokens, float *k, float *v) {
    const int C = f->n_head * HEAD;
    for (int t = 0; t < n_tokens; t++) fixture_row(f, seq, t, false, k + (size_t)t * C, v + (size_t)t * C);
}

/* Quantizes the fp16 row pages[row] of 64 values, times `factor`, into codes[row], scales[row]. */
static void quantize_page_row(int8_t *codes /* [rows, 64] */, uint16_t *scales /* [rows] */,
                              const uint16_t *pages /* [rows, 64] */, size_t row, float factor) {
    float x[HEAD];
    for (int d = 0; d < HEAD; d++) x[d] = half_to_float(pages[row * HEAD + d]) * factor;
    kv_quantize_head(codes + row * HEAD, &scales[row], x);
}

void paged_kv_int8_fixture_create(paged_kv_int8_fixture *q, const paged_kv_fixture *f,
                                  uint64_t *rng) {
    const size_t page_rows = (size_t)f->n_head * f->block_size;
    const size_t rows = (size_t)f->num_blocks * page_rows, elems = rows * HEAD;
    q->k_codes = checked_malloc(elems);
    q->v_codes = checked_malloc(elems);
    q->k_scales = checked_malloc(rows * 2);
    q->v_scales = checked_malloc(rows * 2);
    memset(q->k_codes, POISON_CODE, elems);
    memset(q->v_codes, POISON_CODE, elems);
    for (size_t r = 0; r < rows; r++) q->k_scales[r] = q->v_scales[r] = NAN_BITS;
    for (int i = 0; i < f->n_seqs * f->max_blocks_per_seq; i++) {
        if (f->tables[i] == NO_BLOCK) continue;
        for (size_t r = 0; r < page_rows; r++) {
            const size_t row = (size_t)f->tables[i] * page_rows + r;
            quantize_page_row(q->k_codes, q->k_scales, f->k_pages, row, random_row_factor(rng));
            quantize_page_row(q->v_codes, q->v_scales, f->v_pages, row, random_row_factor(rng));
        }
    }
    q->device = f->device;
    q->device.k = q->device.v = NULL;
    q->device.format = PAGED_KV_INT8;
    q->device.k_codes = device_copy(q->k_codes, elems);
    q->device.v_codes = device_copy(q->v_codes, elems);
    q->device.k_scales = device_copy(q->k_scales, rows * 2);
    q->device.v_scales = device_copy(q->v_scales, rows * 2);
}

void paged_kv_int8_fixture_destroy(paged_kv_int8_fixture *q) {
    CUDA_CHECK(cudaFree((void *)q->device.k_codes));
    CUDA_CHECK(cudaFree((void *)q->device.v_codes));
    CUDA_CHECK(cudaFree((void *)q->device.k_scales));
    CUDA_CHECK(cudaFree((void *)q->device.v_scales));
    free(q->k_codes);
    free(q->v_codes);
    free(q->k_scales);
    free(q->v_scales);
}

void paged_kv_int8_fixture_rows(const paged_kv_int8_fixture *q, const paged_kv_fixture *f, int seq,
                                int n_tokens, float *k, float *v) {
    const int C = f->n_head * HEAD, B = f->block_size;
    for (int t = 0; t < n_tokens; t++) {
        const int64_t block = f->tables[seq * f->max_blocks_per_seq + t / B];
        for (int h = 0; h < f->n_head; h++) {
            const size_t row = (size_t)((block * f->n_head + h) * B + t % B);
            const size_t at = (size_t)t * C + h * HEAD;
            kv_dequantize_head(k + at, q->k_codes + row * HEAD, q->k_scales[row]);
            kv_dequantize_head(v + at, q->v_codes + row * HEAD, q->v_scales[row]);
        }
    }
}
