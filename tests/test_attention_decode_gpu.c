/*
 * launch_attention_decode against cpu_causal_attention (model/cpu_ops), on fresh random inputs
 * over a paged pool with shuffled, non-contiguous pages (tests/gpu_test_util.h). The output is
 * poisoned before the launch and has a guard row after it. Lengths cover 1 token, page
 * boundaries +-1, one partition, several partitions, and 0 (an idle slot: a zero row); and
 * eviction holes (kv.hole_rows, kv.sink_rows): the kernel reads the kept rows only, the first
 * sink_rows and those past each sequence's hole, whose pages hold rows it must skip; and a
 * MiniCache pair's upper layer, whose first kept rows are its lower layer's, scaled per row and
 * head by their ratios (kv.merged_tables, merged_rows, k_ratios, v_ratios).
 *
 * Tolerance: the kernel reads the same fp16 K, V and q as the reference and accumulates in
 * fp32, so the difference is the fp16 rounding of the output (2^-11 relative) plus fp32
 * summation order and __expf error (about 1e-6 relative): |gpu - cpu| <= 1e-3 |cpu| + 1e-4
 * for values of magnitude up to 1.
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

/* The reference output of sequence s: attention of one query over its n_kept rows (0: zeros). */
static void reference_row(float *out /* [C] */, const float *q /* [C] */,
                          const paged_kv_fixture *kv, int seq, int n_kept) {
    if (n_kept == 0) memset(out, 0, (size_t)kv->n_head * HEAD * sizeof *out);
    else paged_kv_fixture_attention(kv, seq, n_kept, q, kv->n_head * HEAD, 1, out);
}

/*
 * Launches the decode attention over sequences [0, n_seqs) of kv, of kept lengths kept[s]
 * (dev_lens on the device), and checks each against its reference row and the guard row.
 */
static void check_decode(paged_kv_fixture *kv, const int32_t *dev_lens, const int *kept,
                         int n_seqs, int max_seq_len, uint64_t *rng) {
    const int n_head = kv->n_head, C = n_head * HEAD, q_stride = 3 * C; /* q inside a qkv row */
    uint16_t *q = random_halves((size_t)n_seqs * q_stride, 1.0f, rng);
    gpt2_f16 *dev_q = device_copy(q, (size_t)n_seqs * q_stride * 2);
    const size_t workspace_bytes = attention_decode_workspace_bytes(n_seqs, n_head, max_seq_len);
    float *workspace = NULL;
    if (workspace_bytes) CUDA_CHECK(cudaMalloc((void **)&workspace, workspace_bytes));
    const size_t out_elems = (size_t)n_seqs * C;
    gpt2_f16 *dev_out;
    CUDA_CHECK(cudaMalloc((void **)&dev_out, (out_elems + C) * 2));
    CUDA_CHECK(cudaMemset(dev_out, 0xFF, (out_elems + C) * 2)); /* poison, and a guard row */

    launch_attention_decode(dev_out, workspace, workspace_bytes, dev_q, q_stride, kv->device,
                            dev_lens, n_seqs, max_seq_len, 0);
    uint16_t *out = malloc((out_elems + C) * 2);
    CUDA_CHECK(cudaMemcpy(out, dev_out, (out_elems + C) * 2, cudaMemcpyDeviceToHost));

    float *ref = malloc((size_t)C * sizeof *ref);
    for (int s = 0; s < n_seqs; s++) {
        float *q_row = halves_to_floats(q + (size_t)s * q_stride, (size_t)C);
        reference_row(ref, q_row, kv, s, kept[s]);
        int bad = 0;
        double worst = 0.0;
        for (int i = 0; i < C; i++) {
            const double err = fabs((double)half_to_float(out[(size_t)s * C + i]) - ref[i]);
            if (!(err <= 1e-3 * fabs(ref[i]) + 1e-4)) bad++;
            if (!(err <= worst)) worst = err;
        }
        CHECK(bad == 0, "%d heads, block %d, max_len %d: sequence %d (%d kept): %d of %d values "
              "off, worst |err| %g", n_head, kv->block_size, max_seq_len, s, kept[s], bad, C, worst);
        free(q_row);
    }
    int guard_bad = 0;
    for (int i = 0; i < C; i++) guard_bad += out[out_elems + i] != 0xFFFF;
    CHECK(guard_bad == 0, "the kernel wrote %d values past the output", guard_bad);
    CUDA_CHECK(cudaFree(dev_q));
    CUDA_CHECK(cudaFree(dev_out));
    if (workspace) CUDA_CHECK(cudaFree(workspace));
    free(q), free(out), free(ref);
}

/* holes NULL: no eviction; else sequence s's table rows [sinks, sinks + holes[s]) are evicted. */
static void run_case(int n_head, int block_size, int max_seq_len, const int *seq_lens, int n_seqs,
                     int sinks, const int *holes, uint64_t *rng) {
    paged_kv_fixture kv;
    paged_kv_fixture_create(&kv, n_head, block_size, max_seq_len, seq_lens, n_seqs, rng);
    int32_t *dev_lens = paged_kv_fixture_set_holes(&kv, seq_lens, sinks, holes);
    int *kept = malloc((size_t)n_seqs * sizeof *kept);
    for (int s = 0; s < n_seqs; s++) kept[s] = seq_lens[s] - (holes ? holes[s] : 0);
    check_decode(&kv, dev_lens, kept, n_seqs, max_seq_len, rng);
    paged_kv_fixture_destroy(&kv);
    CUDA_CHECK(cudaFree(dev_lens));
    free(kept);
}

/*
 * MiniCache's upper layer: sequence s reads merged[s] rows of its pair's lower layer (scaled by
 * their ratios) and then own_lens[s] rows of its own, tables 0 .. n - 1 and n .. 2n - 1 of one pool.
 */
static void run_merged_case(int n_head, int max_seq_len, const int *own_lens, const int *merged,
                            int n_seqs, uint64_t *rng) {
    int kept[16];
    for (int s = 0; s < n_seqs; s++) kept[s] = own_lens[s] + merged[s];
    paged_kv_fixture kv;
    int32_t *dev_lens = paged_kv_fixture_create_merged(&kv, n_head, max_seq_len, own_lens, merged,
                                                       n_seqs, rng);
    check_decode(&kv, dev_lens, kept, n_seqs, max_seq_len, rng);
    paged_kv_fixture_destroy(&kv);
    CUDA_CHECK(cudaFree(dev_lens));
}

int main(void) {
    if (gpt2_cuda_device_count() == 0) {
        printf("test_attention_decode_gpu: no CUDA device, skipped\n");
        return SKIP_EXIT_CODE;
    }
    uint64_t rng = gpu_test_seed("test_attention_decode_gpu");
    /* One partition (max_seq_len <= 256): the partition kernel writes the output itself. */
    const int short_lens[] = {1, 15, 16, 17, 0, 255, 33};
    run_case(2, 16, 256, short_lens, 7, 0, NULL, &rng);
    /* Several partitions and the reduce kernel, at GPT-2 124M's 12 heads. */
    const int long_lens[] = {700, 1, 256, 257, 1024, 0, 513};
    run_case(12, 16, 1024, long_lens, 7, 0, NULL, &rng);
    /* Pages of 32 tokens, lengths around their boundaries. */
    const int page32_lens[] = {31, 32, 33, 600};
    run_case(3, 32, 640, page32_lens, 4, 0, NULL, &rng);
    /* Eviction holes: a window (no sinks) and sinks, across pages and partitions; a sequence
       whose kept rows are all sinks, and one evicted down to nothing but its hole's neighbours. */
    const int window_lens[] = {40, 300, 17, 900}, window_holes[] = {9, 15, 1, 600};
    run_case(2, 16, 1024, window_lens, 4, 0, window_holes, &rng);
    const int sink_lens[] = {60, 700, 20, 35}, sink_holes[] = {27, 400, 16, 0};
    run_case(4, 16, 1024, sink_lens, 4, 4, sink_holes, &rng);
    /* MiniCache's merged rows: none, some, all; across pages and partitions (one, then several). */
    const int own_short[] = {20, 3, 0, 17, 1}, merged_short[] = {0, 30, 16, 1, 200};
    run_merged_case(2, 256, own_short, merged_short, 5, &rng);
    const int own_long[] = {100, 600, 5}, merged_long[] = {400, 300, 700};
    run_merged_case(3, 1024, own_long, merged_long, 3, &rng);
    return check_finish("test_attention_decode_gpu");
}
