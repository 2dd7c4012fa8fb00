/*
 * The INT8 KV kernels (kernels/kv_quant.cu) against cache/kv_quant.h, bit for bit, on fresh
 * random rows with poisoned outputs:
 * - the fused write (launch_kv_write_int8) and the unfused one (launch_kv_write_fp16 into
 *   scratch pages at shuffled slots, then launch_kv_quantize): the codes and scale of every kept
 *   (token, head) row are kv_quantize_head's, on rows of every kind below; tokens whose slot is
 *   -1 or past the pages (either of the unfused path's two) are skipped, and every element
 *   nobody wrote keeps its poison;
 * - launch_kv_dequantize over shuffled pages into a compact scratch numbering: position t < len
 *   of each sequence holds fp16(kv_dequantize_head) at block out_tables[s, t / B], a block id
 *   past the scratch is skipped, and every other element keeps its poison.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/kv_quant.h"
#include "kernels/cuda_check.h"
#include "kernels/half.h"
#include "kernels/kernels.h"
#include "model/sampler.h"
#include "tests/check.h"
#include "tests/gpu_test_util.h"

#define HEAD 64
#define POISON_BYTE 0xFF
#define HALF_POISON 0xFFFFu
#define HALF_MAX_BITS 0x7BFFu /* 65504 */

/* ---- rows of every kind ---- */

typedef enum {
    ROW_UNIFORM,     /* uniform in [-m, m], m = 2^-20 .. 2^15: normal and subnormal scales */
    ROW_RANDOM_BITS, /* finite fp16 bit patterns of both signs: 2^-24 .. 2^15 in one row */
    ROW_ZEROS,       /* +0 and -0: scale 0, codes 0 */
    ROW_ONE_HUGE,    /* one +-65504 or +-60000 among values in [-1, 1] */
    ROW_HALF_MAX,    /* every value +-65504 */
    ROW_SUBNORMALS,  /* fp16 subnormals only */
    ROW_TIES,        /* max 127/16, the rest odd multiples of 1/32: x / scale = k + 0.5 */
    ROW_NONFINITE,   /* +-inf and NaN among values in [-4, 4]: the CPU's saturated codes */
    N_ROW_KINDS
} row_kind;

static uint16_t random_sign(uint64_t *rng) {
    return sampler_next_uniform(rng) < 0.5f ? 0 : 0x8000;
}

static float uniform_pm(float m, uint64_t *rng) {
    return m * (2.0f * sampler_next_uniform(rng) - 1.0f);
}

/* An odd multiple of 1/32 in [-253/32, 253/32]. */
static float odd_32nd(uint64_t *rng) {
    return (float)(2 * (int)(sampler_next_uniform(rng) * 254) - 253) / 32.0f;
}

/* One row of 64 fp16 values of the given kind. */
static void fill_row(uint16_t *row /* [64] */, row_kind kind, uint64_t *rng) {
    const float m = ldexpf(1.0f, (int)(sampler_next_uniform(rng) * 36) - 20);
    const int special = (int)(sampler_next_uniform(rng) * HEAD);
    for (int d = 0; d < HEAD; d++) {
        switch (kind) {
        case ROW_UNIFORM: row[d] = float_to_half(uniform_pm(m, rng)); break;
        case ROW_RANDOM_BITS: row[d] = (uint16_t)(splitmix64_mix((*rng)++) & 0xFBFF); break;
        case ROW_ZEROS: row[d] = random_sign(rng); break;
        case ROW_ONE_HUGE:
            row[d] = d == special ? (uint16_t)(random_sign(rng) | (d % 2 ? HALF_MAX_BITS : 0x7B53))
                                  : float_to_half(uniform_pm(1.0f, rng));
            break;
        case ROW_HALF_MAX: row[d] = random_sign(rng) | HALF_MAX_BITS; break;
        case ROW_SUBNORMALS:
            row[d] = random_sign(rng) | (uint16_t)(1 + splitmix64_mix((*rng)++) % 0x3FF);
            break;
        case ROW_TIES:
            row[d] = float_to_half(d == special ? 127.0f / 16.0f : odd_32nd(rng));
            break;
        case ROW_NONFINITE: {
            static const uint16_t specials[] = {0x7C00, 0xFC00, 0x7E00, 0xFE01};
            row[d] = d % 5 == 0 ? specials[d / 5 % 4] : float_to_half(uniform_pm(4.0f, rng));
            break;
        }
        default: break;
        }
    }
}

/* kv_quantize_head on the fp16 row. */
static void quantize_row(int8_t *codes /* [64] */, uint16_t *scale,
                         const uint16_t *row /* [64] */) {
    float x[HEAD];
    for (int d = 0; d < HEAD; d++) x[d] = half_to_float(row[d]);
    kv_quantize_head(codes, scale, x);
}

/* ---- the writes: fused, and fp16 write + quantize ---- */

/* The INT8 pages of one layer, on the host or the device. */
typedef struct {
    int8_t *k_codes, *v_codes;     /* [num_blocks, n_head, block_size, 64] */
    uint16_t *k_scales, *v_scales; /* [num_blocks, n_head, block_size] */
} int8_pages;

static int8_pages device_int8_pages(size_t rows) {
    int8_pages p;
    CUDA_CHECK(cudaMalloc((void **)&p.k_codes, rows * HEAD));
    CUDA_CHECK(cudaMalloc((void **)&p.v_codes, rows * HEAD));
    CUDA_CHECK(cudaMalloc((void **)&p.k_scales, rows * 2));
    CUDA_CHECK(cudaMalloc((void **)&p.v_scales, rows * 2));
    CUDA_CHECK(cudaMemset(p.k_codes, POISON_BYTE, rows * HEAD));
    CUDA_CHECK(cudaMemset(p.v_codes, POISON_BYTE, rows * HEAD));
    CUDA_CHECK(cudaMemset(p.k_scales, POISON_BYTE, rows * 2));
    CUDA_CHECK(cudaMemset(p.v_scales, POISON_BYTE, rows * 2));
    return p;
}

static int8_pages host_int8_pages(size_t rows) {
    int8_pages p = {malloc(rows * HEAD), malloc(rows * HEAD), malloc(rows * 2), malloc(rows * 2)};
    memset(p.k_codes, POISON_BYTE, rows * HEAD);
    memset(p.v_codes, POISON_BYTE, rows * HEAD);
    memset(p.k_scales, POISON_BYTE, rows * 2);
    memset(p.v_scales, POISON_BYTE, rows * 2);
    return p;
}

static int8_pages copy_to_host(const int8_pages *dev, size_t rows) {
    int8_pages p = host_int8_pages(rows);
    CUDA_CHECK(cudaMemcpy(p.k_codes, dev->k_codes, rows * HEAD, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(p.v_codes, dev->v_codes, rows * HEAD, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(p.k_scales, dev->k_scales, rows * 2, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(p.v_scales, dev->v_scales, rows * 2, cudaMemcpyDeviceToHost));
    return p;
}

static void free_device_pages(int8_pages *p) {
    CUDA_CHECK(cudaFree(p->k_codes));
    CUDA_CHECK(cudaFree(p->v_codes));
    CUDA_CHECK(cudaFree(p->k_scales));
    CUDA_CHECK(cudaFree(p->v_scales));
}

static void free_host_pages(int8_pages *p) {
    free(p->k_codes), free(p->v_codes), free(p->k_scales), free(p->v_scales);
}

/* Elements of got that differ from want: codes and scales, K and V. */
static size_t count_differences(const int8_pages *got, const int8_pages *want, size_t rows) {
    size_t bad = 0;
    for (size_t i = 0; i < rows * HEAD; i++)
        bad += (got->k_codes[i] != want->k_codes[i]) + (got->v_codes[i] != want->v_codes[i]);
    for (size_t i = 0; i < rows; i++)
        bad += (got->k_scales[i] != want->k_scales[i]) + (got->v_scales[i] != want->v_scales[i]);
    return bad;
}

/* n distinct random slots in [0, n_slots), every 7th -1, slot 3 past the end. */
static int64_t *random_slots(int n, int64_t n_slots, uint64_t *rng) {
    int64_t *slots = malloc((size_t)n * sizeof *slots);
    for (int i = 0; i < n; i++) {
        bool taken;
        do {
            slots[i] = (int64_t)(sampler_next_uniform(rng) * (float)n_slots) % n_slots;
            taken = false;
            for (int j = 0; j < i; j++) taken |= slots[j] == slots[i];
        } while (taken);
    }
    for (int i = 0; i < n; i += 7) slots[i] = -1;
    if (n > 3) slots[3] = n_slots + 5;
    return slots;
}

/* A random permutation of [0, n). */
static int64_t *permutation(int n, uint64_t *rng) {
    int64_t *ids = malloc((size_t)n * sizeof *ids);
    for (int i = 0; i < n; i++) ids[i] = i;
    for (int i = n - 1; i > 0; i--) {
        const int j = (int)(splitmix64_mix((*rng)++) % (uint64_t)(i + 1));
        const int64_t tmp = ids[i];
        ids[i] = ids[j];
        ids[j] = tmp;
    }
    return ids;
}

/* The expected pages: poison, then kv_quantize_head of each token whose slots are all valid. */
static int8_pages expected_pages(const uint16_t *qkv, int stride, const int64_t *dst_slots,
                                 const int64_t *src_slots /* or NULL */, int n_tokens, int n_head,
                                 int block_size, int64_t n_slots) {
    const int C = n_head * HEAD;
    int8_pages want = host_int8_pages((size_t)n_slots * n_head);
    for (int i = 0; i < n_tokens; i++) {
        const bool kept = dst_slots[i] >= 0 && dst_slots[i] < n_slots &&
                          (!src_slots || src_slots[i] >= 0);
        if (!kept) continue;
        const int64_t block = dst_slots[i] / block_size, offset = dst_slots[i] % block_size;
        for (int h = 0; h < n_head; h++) {
            const size_t row = (size_t)((block * n_head + h) * block_size + offset);
            const uint16_t *src = qkv + (size_t)i * stride + h * HEAD;
            quantize_row(want.k_codes + row * HEAD, &want.k_scales[row], src + C);
            quantize_row(want.v_codes + row * HEAD, &want.v_scales[row], src + 2 * C);
        }
    }
    return want;
}

static void run_write_case(int n_tokens, int n_head, int block_size, int num_blocks,
                           uint64_t *rng) {
    const int C = n_head * HEAD, stride = 3 * C + 8; /* a padded row: a view into a wider buffer */
    const int64_t n_slots = (int64_t)num_blocks * block_size;
    const size_t rows = (size_t)n_slots * n_head;
    uint16_t *qkv = malloc((size_t)n_tokens * stride * 2);
    const int first_kind = (int)(sampler_next_uniform(rng) * N_ROW_KINDS);
    for (int i = 0; i < n_tokens; i++)
        for (int part = 0; part < 3; part++) /* q | k | v, each n_head rows of a rotating kind */
            for (int h = 0; h < n_head; h++)
                fill_row(qkv + (size_t)i * stride + part * C + h * HEAD,
                         (row_kind)((first_kind + (i * 3 + part) * n_head + h) % N_ROW_KINDS), rng);
    int64_t *slots = random_slots(n_tokens, n_slots, rng);
    gpt2_f16 *dev_qkv = device_copy(qkv, (size_t)n_tokens * stride * 2);
    int64_t *dev_slots = device_copy(slots, (size_t)n_tokens * sizeof *slots);

    /* Fused. */
    int8_pages fused = device_int8_pages(rows);
    launch_kv_write_int8(fused.k_codes, (gpt2_f16 *)fused.k_scales, fused.v_codes,
                         (gpt2_f16 *)fused.v_scales, dev_qkv, stride, dev_slots, n_tokens, n_head,
                         block_size, num_blocks, 0);
    int8_pages got = copy_to_host(&fused, rows);
    int8_pages want =
        expected_pages(qkv, stride, slots, NULL, n_tokens, n_head, block_size, n_slots);
    size_t bad = count_differences(&got, &want, rows);
    CHECK(bad == 0, "fused: T %d, %d heads, block %d: %zu elements differ", n_tokens, n_head,
          block_size, bad);
    free_host_pages(&got), free_host_pages(&want);

    /* Unfused: fp16 scratch pages for the batch only, at shuffled slots, then the quantize. */
    const int scratch_blocks = (n_tokens + block_size - 1) / block_size;
    const size_t scratch_elems = (size_t)scratch_blocks * block_size * n_head * HEAD;
    int64_t *src_slots = permutation(n_tokens, rng);
    if (n_tokens > 5) src_slots[5] = -1; /* a token skipped by the fp16 write and the quantize */
    int64_t *dev_src = device_copy(src_slots, (size_t)n_tokens * sizeof *src_slots);
    gpt2_f16 *scratch_k, *scratch_v;
    CUDA_CHECK(cudaMalloc((void **)&scratch_k, scratch_elems * 2));
    CUDA_CHECK(cudaMalloc((void **)&scratch_v, scratch_elems * 2));
    int8_pages unfused = device_int8_pages(rows);
    launch_kv_write_fp16(scratch_k, scratch_v, dev_qkv, stride, dev_src, n_tokens, n_head,
                         block_size, scratch_blocks, 0);
    launch_kv_quantize(unfused.k_codes, (gpt2_f16 *)unfused.k_scales, unfused.v_codes,
                       (gpt2_f16 *)unfused.v_scales, num_blocks, scratch_k, scratch_v,
                       scratch_blocks, dev_src, dev_slots, n_tokens, n_head, block_size, 0);
    got = copy_to_host(&unfused, rows);
    want = expected_pages(qkv, stride, slots, src_slots, n_tokens, n_head, block_size, n_slots);
    bad = count_differences(&got, &want, rows);
    CHECK(bad == 0, "unfused: T %d, %d heads, block %d: %zu elements differ", n_tokens, n_head,
          block_size, bad);
    free_host_pages(&got), free_host_pages(&want);

    free_device_pages(&fused), free_device_pages(&unfused);
    CUDA_CHECK(cudaFree(dev_qkv));
    CUDA_CHECK(cudaFree(dev_slots));
    CUDA_CHECK(cudaFree(dev_src));
    CUDA_CHECK(cudaFree(scratch_k));
    CUDA_CHECK(cudaFree(scratch_v));
    free(qkv), free(slots), free(src_slots);
}

/* ---- the dequantize ---- */

static void run_dequantize_case(int n_head, int block_size, const int *seq_lens, int n_seqs,
                                uint64_t *rng) {
    int max_len = 1;
    for (int s = 0; s < n_seqs; s++)
        if (seq_lens[s] > max_len) max_len = seq_lens[s];
    paged_kv_fixture f;
    paged_kv_fixture_create(&f, n_head, block_size, max_len, seq_lens, n_seqs, rng);
    paged_kv_int8_fixture q;
    paged_kv_int8_fixture_create(&q, &f, rng);

    /* The scratch: one block per (sequence, logical block), numbered in a shuffled order; block 1
     * of sequence 0 (give it two blocks or more) aimed past the scratch. */
    const int n_entries = n_seqs * f.max_blocks_per_seq, num_out_blocks = n_entries;
    int64_t *order = permutation(n_entries, rng);
    int32_t *out_tables = malloc((size_t)n_entries * sizeof *out_tables);
    for (int i = 0; i < n_entries; i++) out_tables[i] = (int32_t)order[i];
    out_tables[1] = num_out_blocks + 3;
    int32_t *dev_out_tables = device_copy(out_tables, (size_t)n_entries * sizeof *out_tables);
    int32_t *dev_lens = device_copy(seq_lens, (size_t)n_seqs * sizeof(int32_t));
    const size_t out_rows = (size_t)num_out_blocks * n_head * block_size;
    gpt2_f16 *dev_k, *dev_v;
    CUDA_CHECK(cudaMalloc((void **)&dev_k, out_rows * HEAD * 2));
    CUDA_CHECK(cudaMalloc((void **)&dev_v, out_rows * HEAD * 2));
    CUDA_CHECK(cudaMemset(dev_k, POISON_BYTE, out_rows * HEAD * 2));
    CUDA_CHECK(cudaMemset(dev_v, POISON_BYTE, out_rows * HEAD * 2));

    launch_kv_dequantize(dev_k, dev_v, dev_out_tables, num_out_blocks, q.device, dev_lens, n_seqs,
                         max_len, 0);
    uint16_t *k = malloc(out_rows * HEAD * 2), *v = malloc(out_rows * HEAD * 2);
    CUDA_CHECK(cudaMemcpy(k, dev_k, out_rows * HEAD * 2, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(v, dev_v, out_rows * HEAD * 2, cudaMemcpyDeviceToHost));

    uint16_t *want_k = malloc(out_rows * HEAD * 2), *want_v = malloc(out_rows * HEAD * 2);
    for (size_t i = 0; i < out_rows * HEAD; i++) want_k[i] = want_v[i] = HALF_POISON;
    for (int s = 0; s < n_seqs; s++)
        for (int t = 0; t < seq_lens[s]; t++) {
            const int entry = s * f.max_blocks_per_seq + t / block_size;
            if (out_tables[entry] >= num_out_blocks) continue;
            for (int h = 0; h < n_head; h++) {
                const int offset = t % block_size;
                const size_t src = ((size_t)f.tables[entry] * n_head + h) * block_size + offset;
                const size_t dst = ((size_t)out_tables[entry] * n_head + h) * block_size + offset;
                float row[HEAD];
                kv_dequantize_head(row, q.k_codes + src * HEAD, q.k_scales[src]);
                for (int d = 0; d < HEAD; d++) want_k[dst * HEAD + d] = float_to_half(row[d]);
                kv_dequantize_head(row, q.v_codes + src * HEAD, q.v_scales[src]);
                for (int d = 0; d < HEAD; d++) want_v[dst * HEAD + d] = float_to_half(row[d]);
            }
        }
    size_t bad_k = 0, bad_v = 0;
    for (size_t i = 0; i < out_rows * HEAD; i++) {
        bad_k += k[i] != want_k[i];
        bad_v += v[i] != want_v[i];
    }
    CHECK(bad_k == 0 && bad_v == 0, "dequantize: %d heads, block %d: %zu K, %zu V elements differ",
          n_head, block_size, bad_k, bad_v);

    paged_kv_int8_fixture_destroy(&q);
    paged_kv_fixture_destroy(&f);
    CUDA_CHECK(cudaFree(dev_out_tables));
    CUDA_CHECK(cudaFree(dev_lens));
    CUDA_CHECK(cudaFree(dev_k));
    CUDA_CHECK(cudaFree(dev_v));
    free(order), free(out_tables), free(k), free(v), free(want_k), free(want_v);
}

int main(void) {
    if (gpt2_cuda_device_count() == 0) {
        printf("test_kv_quant_gpu: no CUDA device, skipped\n");
        return SKIP_EXIT_CODE;
    }
    uint64_t rng = gpu_test_seed("test_kv_quant_gpu");
    run_write_case(1, 12, 16, 4, &rng);
    run_write_case(37, 12, 16, 8, &rng); /* a prefill chunk: odd length, over several pages */
    run_write_case(64, 25, 16, 9, &rng); /* GPT-2 1.5B's 25 heads */
    run_write_case(29, 2, 32, 3, &rng);
    /* Lengths 0, 1, page boundaries +-1, several pages (sequence 0 has two or more). */
    const int lens[] = {40, 15, 16, 17, 0, 1};
    run_dequantize_case(3, 16, lens, 6, &rng);
    const int page32_lens[] = {64, 33, 31, 2};
    run_dequantize_case(12, 32, page32_lens, 4, &rng);
    return check_finish("test_kv_quant_gpu");
}
