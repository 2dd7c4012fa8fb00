/*
 * Decode and prefill attention over INT8 pages, both paths, against cpu_causal_attention
 * (model/cpu_ops) on fresh random inputs over shuffled, non-contiguous pages
 * (tests/gpu_test_util.h, rows of their own scales):
 * - fused: launch_attention_decode / launch_attention_prefill on the INT8 layer, against the
 *   reference over the dequantized rows (kv_dequantize_head: code * scale in fp32);
 * - unfused: launch_kv_dequantize into fp16 scratch pages, then the same launchers on the fp16
 *   layer, against the reference over those rows rounded to fp16 (what the scratch holds).
 * Lengths cover 1 token, 0 (a zero row), page boundaries +-1, one and several decode partitions,
 * odd prefill chunks over several query tiles, fresh and on top of cached prefixes. Outputs are
 * poisoned, with a guard row (decode) or padding columns (prefill) that must keep the poison.
 *
 * Tolerance, as in test_attention_decode_gpu: the kernels read exactly the values the reference
 * reads and accumulate in fp32, so the difference is the fp16 rounding of the output plus fp32
 * summation order and __expf: |gpu - cpu| <= 1e-3 |cpu| + 1e-4.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda_check.h"
#include "kernels/half.h"
#include "kernels/kernels.h"
#include "model/cpu_ops.h"
#include "tests/check.h"
#include "tests/gpu_test_util.h"

#define HEAD 64
#define POISON 0xFFFFu
#define OUT_PAD 8 /* halves after each prefill output row */

/* The INT8 pool, and the fp16 scratch pages the unfused path dequantizes it into. */
typedef struct {
    paged_kv_fixture f;     /* the random pages and the shuffled tables */
    paged_kv_int8_fixture q; /* the same rows in INT8: what the kernels read */
    gpt2_f16 *scratch_k, *scratch_v; /* [f.num_blocks, n_head, block_size, 64] unfused path */
} int8_pool;

static void int8_pool_create(int8_pool *p, int n_head, int block_size, int max_tokens,
                             const int *lens, int n_seqs, uint64_t *rng) {
    paged_kv_fixture_create(&p->f, n_head, block_size, max_tokens, lens, n_seqs, rng);
    paged_kv_int8_fixture_create(&p->q, &p->f, rng);
    const size_t bytes = (size_t)p->f.num_blocks * n_head * block_size * HEAD * 2;
    CUDA_CHECK(cudaMalloc((void **)&p->scratch_k, bytes));
    CUDA_CHECK(cudaMalloc((void **)&p->scratch_v, bytes));
    CUDA_CHECK(cudaMemset(p->scratch_k, 0xFF, bytes));
    CUDA_CHECK(cudaMemset(p->scratch_v, 0xFF, bytes));
}

static void int8_pool_destroy(int8_pool *p) {
    paged_kv_int8_fixture_destroy(&p->q);
    paged_kv_fixture_destroy(&p->f);
    CUDA_CHECK(cudaFree(p->scratch_k));
    CUDA_CHECK(cudaFree(p->scratch_v));
}

/*
 * The unfused path's fp16 layer: the sequences' rows dequantized into the pool-sized scratch at
 * the same block ids (out_tables = the INT8 layer's own tables).
 */
static paged_kv_layer dequantized_layer(const int8_pool *p, const int *lens, int n_seqs,
                                        int max_len) {
    int32_t *dev_lens = device_copy(lens, (size_t)n_seqs * sizeof(int32_t));
    launch_kv_dequantize(p->scratch_k, p->scratch_v, p->q.device.block_tables, p->f.num_blocks,
                         p->q.device, dev_lens, n_seqs, max_len, 0);
    CUDA_CHECK(cudaFree(dev_lens));
    return (paged_kv_layer){.k = p->scratch_k, .v = p->scratch_v,
                            .block_tables = p->q.device.block_tables,
                            .max_blocks_per_seq = p->f.max_blocks_per_seq,
                            .block_size = p->f.block_size, .n_head = p->f.n_head};
}

/*
 * The reference rows [n_new, C] of sequence seq: cpu_causal_attention of queries at positions
 * pos0 .. pos0 + n_new - 1 over the dequantized rows, rounded to fp16 first when `rounded`.
 */
static float *reference_rows(const float *q /* [n_new, q_stride] */, int q_stride,
                             const int8_pool *p, int seq, int pos0, int n_new, bool rounded) {
    const int C = p->f.n_head * HEAD, len = pos0 + n_new;
    float *out = malloc((size_t)n_new * C * sizeof *out);
    float *k = malloc((size_t)len * C * sizeof *k), *v = malloc((size_t)len * C * sizeof *v);
    const float **k_rows = malloc((size_t)len * sizeof *k_rows);
    const float **v_rows = malloc((size_t)len * sizeof *v_rows);
    float *scores = malloc((size_t)len * sizeof *scores);
    paged_kv_int8_fixture_rows(&p->q, &p->f, seq, len, k, v);
    for (size_t i = 0; rounded && i < (size_t)len * C; i++) {
        k[i] = half_to_float(float_to_half(k[i]));
        v[i] = half_to_float(float_to_half(v[i]));
    }
    for (int t = 0; t < len; t++) k_rows[t] = k + (size_t)t * C, v_rows[t] = v + (size_t)t * C;
    cpu_causal_attention(out, q, q_stride, k_rows, v_rows, pos0, n_new, p->f.n_head, scores);
    free(k), free(v), free(k_rows), free(v_rows), free(scores);
    return out;
}

/* Values of got [n, C] (fp16) outside the tolerance around want [n, C]. */
static int count_off(const uint16_t *got, int got_stride, const float *want, int n, int C) {
    int bad = 0;
    for (int i = 0; i < n; i++)
        for (int c = 0; c < C; c++) {
            const double w = want[(size_t)i * C + c];
            const double err = fabs((double)half_to_float(got[(size_t)i * got_stride + c]) - w);
            bad += !(err <= 1e-3 * fabs(w) + 1e-4);
        }
    return bad;
}

/* ---- decode ---- */

/* One decode launch on `layer`, checked against the reference of each sequence. */
static void check_decode(const char *path, paged_kv_layer layer, const int8_pool *p,
                         const uint16_t *q, int q_stride, const int *lens, int n_seqs,
                         int max_len, bool rounded) {
    const int C = p->f.n_head * HEAD;
    gpt2_f16 *dev_q = device_copy(q, (size_t)n_seqs * q_stride * 2);
    int32_t *dev_lens = device_copy(lens, (size_t)n_seqs * sizeof(int32_t));
    const size_t workspace_bytes = attention_decode_workspace_bytes(n_seqs, p->f.n_head, max_len);
    float *workspace = NULL;
    if (workspace_bytes) CUDA_CHECK(cudaMalloc((void **)&workspace, workspace_bytes));
    const size_t out_elems = (size_t)n_seqs * C;
    gpt2_f16 *dev_out;
    CUDA_CHECK(cudaMalloc((void **)&dev_out, (out_elems + C) * 2));
    CUDA_CHECK(cudaMemset(dev_out, 0xFF, (out_elems + C) * 2)); /* poison, and a guard row */

    launch_attention_decode(dev_out, workspace, workspace_bytes, dev_q, q_stride, layer, dev_lens,
                            n_seqs, max_len, 0);
    uint16_t *out = malloc((out_elems + C) * 2);
    CUDA_CHECK(cudaMemcpy(out, dev_out, (out_elems + C) * 2, cudaMemcpyDeviceToHost));

    for (int s = 0; s < n_seqs; s++) {
        float *want;
        if (lens[s] == 0) {
            want = calloc((size_t)C, sizeof *want);
        } else {
            float *q_row = halves_to_floats(q + (size_t)s * q_stride, (size_t)C);
            want = reference_rows(q_row, C, p, s, lens[s] - 1, 1, rounded);
            free(q_row);
        }
        const int bad = count_off(out + (size_t)s * C, C, want, 1, C);
        CHECK(bad == 0, "decode %s: %d heads, block %d, max_len %d: sequence %d (len %d): %d of %d "
              "values off", path, p->f.n_head, p->f.block_size, max_len, s, lens[s], bad, C);
        free(want);
    }
    int guard_bad = 0;
    for (int i = 0; i < C; i++) guard_bad += out[out_elems + i] != POISON;
    CHECK(guard_bad == 0, "decode %s: %d values written past the output", path, guard_bad);

    CUDA_CHECK(cudaFree(dev_q));
    CUDA_CHECK(cudaFree(dev_lens));
    CUDA_CHECK(cudaFree(dev_out));
    if (workspace) CUDA_CHECK(cudaFree(workspace));
    free(out);
}

static void run_decode_case(int n_head, int block_size, int max_len, const int *lens, int n_seqs,
                            uint64_t *rng) {
    const int q_stride = 3 * n_head * HEAD; /* q inside a fused qkv row */
    int8_pool p;
    int8_pool_create(&p, n_head, block_size, max_len, lens, n_seqs, rng);
    uint16_t *q = random_halves((size_t)n_seqs * q_stride, 1.0f, rng);
    check_decode("fused", p.q.device, &p, q, q_stride, lens, n_seqs, max_len, false);
    const paged_kv_layer fp16 = dequantized_layer(&p, lens, n_seqs, max_len);
    check_decode("unfused", fp16, &p, q, q_stride, lens, n_seqs, max_len, true);
    int8_pool_destroy(&p);
    free(q);
}

/* ---- prefill ---- */

/* One prefill launch on `layer`, checked against the reference of each sequence. */
static void check_prefill(const char *path, paged_kv_layer layer, const int8_pool *p,
                          const uint16_t *q, int q_stride, const int *cached, const int *new_tokens,
                          const int *starts, const int *lens, int n_seqs, int max_new, bool rounded) {
    const int C = p->f.n_head * HEAD, out_stride = C + OUT_PAD, n_rows = starts[n_seqs];
    gpt2_f16 *dev_q = device_copy(q, (size_t)n_rows * q_stride * 2);
    int32_t *dev_starts = device_copy(starts, (size_t)(n_seqs + 1) * sizeof(int32_t));
    int32_t *dev_lens = device_copy(lens, (size_t)n_seqs * sizeof(int32_t));
    gpt2_f16 *dev_out;
    CUDA_CHECK(cudaMalloc((void **)&dev_out, (size_t)n_rows * out_stride * 2));
    CUDA_CHECK(cudaMemset(dev_out, 0xFF, (size_t)n_rows * out_stride * 2));

    launch_attention_prefill(dev_out, out_stride, dev_q, q_stride, layer, dev_starts, dev_lens,
                             n_seqs, max_new, 0);
    uint16_t *out = malloc((size_t)n_rows * out_stride * 2);
    CUDA_CHECK(cudaMemcpy(out, dev_out, (size_t)n_rows * out_stride * 2, cudaMemcpyDeviceToHost));

    float *qf = halves_to_floats(q, (size_t)n_rows * q_stride);
    for (int s = 0; s < n_seqs; s++) {
        float *want = reference_rows(qf + (size_t)starts[s] * q_stride, q_stride, p, s, cached[s],
                                     new_tokens[s], rounded);
        const uint16_t *rows = out + (size_t)starts[s] * out_stride;
        const int bad = count_off(rows, out_stride, want, new_tokens[s], C);
        int pad_bad = 0;
        for (int i = 0; i < new_tokens[s]; i++)
            for (int c = C; c < out_stride; c++) pad_bad += rows[(size_t)i * out_stride + c] != POISON;
        CHECK(bad == 0, "prefill %s: %d heads, block %d: sequence %d (cached %d, new %d): %d values "
              "off", path, p->f.n_head, p->f.block_size, s, cached[s], new_tokens[s], bad);
        CHECK(pad_bad == 0, "prefill %s: sequence %d: %d padding values written", path, s, pad_bad);
        free(want);
    }
    CUDA_CHECK(cudaFree(dev_q));
    CUDA_CHECK(cudaFree(dev_starts));
    CUDA_CHECK(cudaFree(dev_lens));
    CUDA_CHECK(cudaFree(dev_out));
    free(out), free(qf);
}

static void run_prefill_case(int n_head, int block_size, const int *cached, const int *new_tokens,
                             int n_seqs, uint64_t *rng) {
    int *lens = malloc((size_t)n_seqs * sizeof *lens);
    int *starts = malloc((size_t)(n_seqs + 1) * sizeof *starts);
    int max_len = 1, max_new = 1;
    starts[0] = 0;
    for (int s = 0; s < n_seqs; s++) {
        lens[s] = cached[s] + new_tokens[s];
        starts[s + 1] = starts[s] + new_tokens[s];
        if (lens[s] > max_len) max_len = lens[s];
        if (new_tokens[s] > max_new) max_new = new_tokens[s];
    }
    const int q_stride = 3 * n_head * HEAD;
    int8_pool p;
    int8_pool_create(&p, n_head, block_size, max_len, lens, n_seqs, rng);
    uint16_t *q = random_halves((size_t)starts[n_seqs] * q_stride, 1.0f, rng);
    check_prefill("fused", p.q.device, &p, q, q_stride, cached, new_tokens, starts, lens, n_seqs,
                  max_new, false);
    const paged_kv_layer fp16 = dequantized_layer(&p, lens, n_seqs, max_len);
    check_prefill("unfused", fp16, &p, q, q_stride, cached, new_tokens, starts, lens, n_seqs,
                  max_new, true);
    int8_pool_destroy(&p);
    free(q), free(lens), free(starts);
}

int main(void) {
    if (gpt2_cuda_device_count() == 0) {
        printf("test_attention_int8_gpu: no CUDA device, skipped\n");
        return SKIP_EXIT_CODE;
    }
    uint64_t rng = gpu_test_seed("test_attention_int8_gpu");
    /* Decode: one partition (max_len <= 256), then several and the reduce kernel. */
    const int short_lens[] = {1, 15, 16, 17, 0, 255, 33};
    run_decode_case(2, 16, 256, short_lens, 7, &rng);
    const int long_lens[] = {700, 1, 256, 257, 1024, 0, 513};
    run_decode_case(12, 16, 1024, long_lens, 7, &rng); /* GPT-2 124M's 12 heads */
    const int page32_lens[] = {31, 32, 33, 100};
    run_decode_case(3, 32, 100, page32_lens, 4, &rng);
    /* Prefill: fresh prompts of odd lengths, then chunks on top of cached prefixes. */
    const int fresh_cached[] = {0, 0, 0}, fresh_new[] = {1, 17, 70};
    run_prefill_case(2, 16, fresh_cached, fresh_new, 3, &rng);
    const int chunk_cached[] = {5, 16, 31, 100, 0, 47}, chunk_new[] = {1, 16, 40, 29, 64, 3};
    run_prefill_case(12, 16, chunk_cached, chunk_new, 6, &rng);
    const int page32_cached[] = {32, 1}, page32_new[] = {33, 45};
    run_prefill_case(3, 32, page32_cached, page32_new, 2, &rng);
    return check_finish("test_attention_int8_gpu");
}
