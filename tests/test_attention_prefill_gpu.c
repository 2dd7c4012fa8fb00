/*
 * launch_attention_prefill against cpu_causal_attention (model/cpu_ops) on a varlen batch: each
 * sequence has a random cached prefix (pos0, possibly 0) and a chunk of new queries (odd
 * lengths, several query tiles, crossing page boundaries), all over shuffled pages
 * (tests/gpu_test_util.h). The output rows are poisoned, with padding columns that must stay
 * poisoned. Tolerance as in test_attention_decode_gpu: |gpu - cpu| <= 1e-3 |cpu| + 1e-4. With
 * eviction holes (kv.hole_rows, kv.sink_rows), a chunk attends to the kept cached rows only:
 * the first sinks and those past its sequence's hole. At a MiniCache pair's upper layer the
 * first kept rows are the lower layer's, scaled per row and head by their ratios.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda_check.h"
#include "kernels/half.h"
#include "kernels/kernels.h"
#include "tests/check.h"
#include "tests/gpu_test_util.h"

#define HEAD 64
#define OUT_PAD 8 /* halves after each output row */

/*
 * Launches the prefill attention over sequences [0, n_seqs) of kv, each with kept[s] rows of
 * which the last new_tokens[s] are its queries' (dev_lens: kept, on the device), and checks every
 * output row against the reference and the padding columns.
 */
static void check_prefill(const paged_kv_fixture *kv, const int32_t *dev_lens, const int *kept,
                          const int *new_tokens, int n_seqs, uint64_t *rng) {
    const int n_head = kv->n_head, C = n_head * HEAD, q_stride = 3 * C, out_stride = C + OUT_PAD;
    int *starts = malloc((size_t)(n_seqs + 1) * sizeof *starts), max_new = 1;
    starts[0] = 0;
    for (int s = 0; s < n_seqs; s++) {
        starts[s + 1] = starts[s] + new_tokens[s];
        if (new_tokens[s] > max_new) max_new = new_tokens[s];
    }
    const int n_rows = starts[n_seqs];
    uint16_t *q = random_halves((size_t)n_rows * q_stride, 1.0f, rng);
    gpt2_f16 *dev_q = device_copy(q, (size_t)n_rows * q_stride * 2);
    int32_t *dev_starts = device_copy(starts, (size_t)(n_seqs + 1) * sizeof(int32_t));
    gpt2_f16 *dev_out;
    CUDA_CHECK(cudaMalloc((void **)&dev_out, (size_t)n_rows * out_stride * 2));
    CUDA_CHECK(cudaMemset(dev_out, 0xFF, (size_t)n_rows * out_stride * 2));

    launch_attention_prefill(dev_out, out_stride, dev_q, q_stride, kv->device, dev_starts, dev_lens,
                             n_seqs, max_new, 0);
    uint16_t *out = malloc((size_t)n_rows * out_stride * 2);
    CUDA_CHECK(cudaMemcpy(out, dev_out, (size_t)n_rows * out_stride * 2, cudaMemcpyDeviceToHost));

    float *qf = halves_to_floats(q, (size_t)n_rows * q_stride);
    for (int s = 0; s < n_seqs; s++) {
        float *ref = malloc((size_t)new_tokens[s] * C * sizeof *ref);
        paged_kv_fixture_attention(kv, s, kept[s], qf + (size_t)starts[s] * q_stride, q_stride,
                                   new_tokens[s], ref);
        int bad = 0, pad_bad = 0;
        for (int i = 0; i < new_tokens[s]; i++) {
            const uint16_t *row = out + (size_t)(starts[s] + i) * out_stride;
            for (int c = 0; c < C; c++) {
                const double want = ref[(size_t)i * C + c];
                if (!(fabs((double)half_to_float(row[c]) - want) <= 1e-3 * fabs(want) + 1e-4)) bad++;
            }
            for (int c = C; c < out_stride; c++) pad_bad += row[c] != 0xFFFF;
        }
        CHECK(bad == 0, "%d heads, block %d: sequence %d (%d kept, %d new): %d values off", n_head,
              kv->block_size, s, kept[s], new_tokens[s], bad);
        CHECK(pad_bad == 0, "sequence %d: %d padding values written", s, pad_bad);
        free(ref);
    }
    CUDA_CHECK(cudaFree(dev_q));
    CUDA_CHECK(cudaFree(dev_starts));
    CUDA_CHECK(cudaFree(dev_out));
    free(starts), free(q), free(out), free(qf);
}

/* holes NULL: no eviction; else rows [sinks, sinks + holes[s]) of cached[s] are evicted. */
static void run_case(int n_head, int block_size, const int *cached, const int *new_tokens,
                     int n_seqs, int sinks, const int *holes, uint64_t *rng) {
    int *lens = malloc((size_t)n_seqs * sizeof *lens), *kept = malloc((size_t)n_seqs * sizeof *kept);
    int max_len = 1;
    for (int s = 0; s < n_seqs; s++) {
        lens[s] = cached[s] + new_tokens[s];
        kept[s] = lens[s] - (holes ? holes[s] : 0);
        if (lens[s] > max_len) max_len = lens[s];
    }
    paged_kv_fixture kv;
    paged_kv_fixture_create(&kv, n_head, block_size, max_len, lens, n_seqs, rng);
    int32_t *dev_lens = paged_kv_fixture_set_holes(&kv, lens, sinks, holes);
    check_prefill(&kv, dev_lens, kept, new_tokens, n_seqs, rng);
    paged_kv_fixture_destroy(&kv);
    CUDA_CHECK(cudaFree(dev_lens));
    free(lens), free(kept);
}

/*
 * MiniCache's upper layer: sequence s reads merged[s] rows of its pair's lower layer (scaled by
 * their ratios), then its own cached[s] rows and new_tokens[s] new ones.
 */
static void run_merged_case(int n_head, const int *cached, const int *new_tokens, const int *merged,
                            int n_seqs, uint64_t *rng) {
    int own[16], kept[16];
    for (int s = 0; s < n_seqs; s++) {
        own[s] = cached[s] + new_tokens[s];
        kept[s] = own[s] + merged[s];
    }
    paged_kv_fixture kv;
    int32_t *dev_lens = paged_kv_fixture_create_merged(&kv, n_head, 256, own, merged, n_seqs, rng);
    check_prefill(&kv, dev_lens, kept, new_tokens, n_seqs, rng);
    paged_kv_fixture_destroy(&kv);
    CUDA_CHECK(cudaFree(dev_lens));
}

int main(void) {
    if (gpt2_cuda_device_count() == 0) {
        printf("test_attention_prefill_gpu: no CUDA device, skipped\n");
        return SKIP_EXIT_CODE;
    }
    uint64_t rng = gpu_test_seed("test_attention_prefill_gpu");
    /* Fresh prompts of odd lengths, one longer than two query tiles. */
    const int fresh_cached[] = {0, 0, 0, 0}, fresh_new[] = {1, 17, 33, 70};
    run_case(2, 16, fresh_cached, fresh_new, 4, 0, NULL, &rng);
    /* Chunks on top of cached prefixes, at 12 heads: a single token, a page boundary, a long one. */
    const int chunk_cached[] = {5, 16, 31, 100, 0, 47}, chunk_new[] = {1, 16, 40, 29, 64, 3};
    run_case(12, 16, chunk_cached, chunk_new, 6, 0, NULL, &rng);
    const int page32_cached[] = {32, 1}, page32_new[] = {33, 95};
    run_case(3, 32, page32_cached, page32_new, 2, 0, NULL, &rng);
    /* Chunks over evicted prefixes: a window (no sinks), then 4 sinks. */
    const int hole_cached[] = {40, 100, 17}, hole_new[] = {5, 33, 1}, window_holes[] = {20, 70, 16};
    run_case(2, 16, hole_cached, hole_new, 3, 0, window_holes, &rng);
    const int sink_holes[] = {30, 15, 13};
    run_case(2, 16, hole_cached, hole_new, 3, 4, sink_holes, &rng);
    /* Chunks over MiniCache's merged rows: none merged, some, a long merged prefix. */
    const int merged_cached[] = {10, 0, 33}, merged_new[] = {40, 7, 1}, merged_rows[] = {0, 20, 150};
    run_merged_case(2, merged_cached, merged_new, merged_rows, 3, &rng);
    return check_finish("test_attention_prefill_gpu");
}
