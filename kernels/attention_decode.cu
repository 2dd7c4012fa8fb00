/*
 * Decode attention: one new query token per sequence against every cached key and value of that
 * sequence, read straight from the paged KV pool through its block table (no gather).
 *
 * Work split. One thread block per (head, sequence, partition); a partition is PARTITION_TOKENS
 * consecutive positions, so a single long sequence still spreads over many blocks. Inside a
 * block, 8 lanes own one 64-wide row (one 16-byte load each), so the 128 threads walk 16 tokens
 * per step: 16 rows of one head are 2 KB of contiguous page memory.
 *
 *   1. scores[t] = q . k[t] / 8 for the partition's tokens (fp32, into shared memory);
 *   2. m = max score, p[t] = exp(scores[t] - m), l = sum p[t];
 *   3. o = sum p[t] v[t] (each lane group accumulates 8 dims of its tokens, then the 16 groups
 *      are summed through shared memory).
 * With one partition the block writes o / l as fp16 and is done. With more, it writes (o, m, l)
 * to a workspace and attention_decode_reduce_kernel merges the partitions of each (sequence,
 * head) with the usual rescaling: out = sum_p e^(m_p - M) o_p / sum_p e^(m_p - M) l_p.
 *
 * A sequence of length 0 (an idle slot of a padded batch) gets a zero row. Positions are a
 * sequence's kept ones, read past its eviction hole (kernels/paged_kv.cuh); at a MiniCache pair's
 * upper layer a merged row is the lower layer's, and its ratio scales the score (K) and the
 * probability it weighs V with, so the loads stay as they are.
 *
 * H2O (kv.h2o_scores set): the launch has a single partition of H2O_PARTITION_TOKENS, so each
 * probability p[t] / l is final where it is computed, and the block adds it to its row's
 * accumulated score right there: no second pass, and each (row, head) has one writer.
 *
 * Both page formats run the same kernel, templated on how a row is read: FP16 pages as 8 halves
 * per lane (16 bytes), INT8 pages as 8 codes per lane (8 bytes) and the row's fp16 scale,
 * dequantized to code * scale in fp32 right after the load.
 */
#include <math.h>
#include <stdint.h>

#include "kernels/cuda_check.h"
#include "kernels/kernels.h"
#include "kernels/launch.h"
#include "kernels/paged_kv.cuh"
#include "kernels/half8.cuh"
#include "kernels/reduce.cuh"

#define HEAD_SIZE 64
#define THREADS 128
#define LANES_PER_ROW 8                          /* 8 lanes x 8 halves = one 64-wide row */
#define ROWS_PER_STEP (THREADS / LANES_PER_ROW)  /* 16 tokens per step */
#define PARTITION_TOKENS 256
#define H2O_PARTITION_TOKENS 1024                /* H2O: the whole context in one partition */
#define SCORE_SCALE 0.125f                       /* 1 / sqrt(HEAD_SIZE) */

/* ---- kernels ---- */

/* The sum over each aligned group of LANES_PER_ROW lanes (the lanes of one row), in every lane. */
static __device__ __forceinline__ float row_sum(float value) {
    for (int offset = LANES_PER_ROW / 2; offset > 0; offset /= 2)
        value += __shfl_xor_sync(FULL_WARP_MASK, value, offset, LANES_PER_ROW);
    return value;
}

/* K or V of a layer in fp16 pages. */
struct fp16_rows {
    const __half *pages; /* [num_blocks, n_head, block_size, 64] */
};

/* K or V of a layer in int8 pages, with a scale per row. */
struct int8_rows {
    const int8_t *codes;  /* [num_blocks, n_head, block_size, 64] */
    const __half *scales; /* [num_blocks, n_head, block_size] */
};

/* Dims [part * 8, part * 8 + 8) of page row `row`, in fp32. */
static __device__ __forceinline__ void load_row_part(fp16_rows src, int64_t row, int part,
                                                     float (&out)[8]) {
    unpack_half8(load_half8(src.pages + row * HEAD_SIZE + part * 8), out);
}

static __device__ __forceinline__ void load_row_part(int8_rows src, int64_t row, int part,
                                                     float (&out)[8]) {
    const int8x8 codes = load_int8x8(src.codes + row * HEAD_SIZE + part * 8);
    dequantize_int8x8(codes, __half2float(src.scales[row]), out);
}

/*
 * Rows: fp16_rows or int8_rows, K and V of the layer whose tables and geometry kv gives;
 * Partition: the tokens of one partition (PARTITION_TOKENS, or H2O_PARTITION_TOKENS).
 */
template <class Rows, int Partition>
static __global__ void __launch_bounds__(THREADS)
attention_decode_partition_kernel(__half *out /* [n_seqs, n_head * 64], one partition only */,
                                  float *partial_out /* [n_seqs, n_head, n_partitions, 64] */,
                                  float *partial_max /* [n_seqs, n_head, n_partitions] */,
                                  float *partial_sum /* [n_seqs, n_head, n_partitions] */,
                                  const __half *q /* [n_seqs, q_stride], head h at h * 64 */,
                                  int q_stride, Rows k_rows, Rows v_rows, paged_kv_layer kv,
                                  const int32_t *seq_lens /* [n_seqs] */) {
    const int head = blockIdx.x, seq = blockIdx.y, partition = blockIdx.z;
    const int n_partitions = gridDim.z;
    const int group = threadIdx.x / LANES_PER_ROW, part = threadIdx.x % LANES_PER_ROW;
    const sequence_rows rows = sequence_view(kv, seq);
    const int n_tokens = min(seq_lens[seq], kept_capacity(kv, rows));
    const int begin = partition * Partition;
    const int end = min(begin + Partition, n_tokens);
    __half *out_row = out + ((int64_t)seq * kv.n_head + head) * HEAD_SIZE;
    if (begin >= end) { /* past this sequence's end; a length-0 sequence gets a zero row */
        if (n_partitions == 1 && threadIdx.x < HEAD_SIZE) out_row[threadIdx.x] = __float2half_rn(0.0f);
        return;
    }
    __shared__ float scores[Partition];
    __shared__ float max_scratch[32], sum_scratch[32];
    __shared__ float group_out[ROWS_PER_STEP][HEAD_SIZE];

    float qv[8];
    unpack_half8(load_half8(q + (int64_t)seq * q_stride + head * HEAD_SIZE + part * 8), qv);
    float local_max = -INFINITY;
    for (int step = begin; step < end; step += ROWS_PER_STEP) { /* uniform trip count: shuffles */
        const int t = step + group;
        float dot = 0.0f;
        if (t < end) {
            float k8[8];
            const kv_row r = page_row(rows, t, head, kv.n_head, kv.block_size);
            load_row_part(k_rows, r.row, part, k8);
            for (int i = 0; i < 8; i++) dot += qv[i] * k8[i];
            dot *= kv_row_factor(kv.k_ratios, r);
        }
        const float score = row_sum(dot) * SCORE_SCALE;
        if (t < end) {
            if (part == 0) scores[t - begin] = score;
            local_max = fmaxf(local_max, score);
        }
    }
    const float max_score = block_reduce(local_max, max_scratch, max_op());
    float local_sum = 0.0f;
    for (int i = threadIdx.x; i < end - begin; i += THREADS) {
        const float p = __expf(scores[i] - max_score);
        scores[i] = p;
        local_sum += p;
    }
    const float sum = block_reduce(local_sum, sum_scratch, sum_op()); /* barrier: p[] visible */
    if (kv.h2o_scores) /* one partition: p / sum is the row's final probability */
        for (int i = threadIdx.x; i < end - begin; i += THREADS)
            kv.h2o_scores[page_row(rows, begin + i, head, kv.n_head, kv.block_size).row] += scores[i] / sum;

    float acc[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    for (int t = begin + group; t < end; t += ROWS_PER_STEP) {
        float v8[8];
        const kv_row r = page_row(rows, t, head, kv.n_head, kv.block_size);
        load_row_part(v_rows, r.row, part, v8);
        const float p = scores[t - begin] * kv_row_factor(kv.v_ratios, r);
        for (int i = 0; i < 8; i++) acc[i] += p * v8[i];
    }
    for (int i = 0; i < 8; i++) group_out[group][part * 8 + i] = acc[i];
    __syncthreads();
    if (threadIdx.x >= HEAD_SIZE) return;
    float o = 0.0f;
    for (int g = 0; g < ROWS_PER_STEP; g++) o += group_out[g][threadIdx.x];
    if (n_partitions == 1) {
        out_row[threadIdx.x] = __float2half_rn(o / sum);
        return;
    }
    const int64_t slot = ((int64_t)seq * kv.n_head + head) * n_partitions + partition;
    partial_out[slot * HEAD_SIZE + threadIdx.x] = o;
    if (threadIdx.x == 0) {
        partial_max[slot] = max_score;
        partial_sum[slot] = sum;
    }
}

/* One block of 64 threads per (head, sequence): thread d merges dim d over the partitions. */
static __global__ void __launch_bounds__(HEAD_SIZE)
attention_decode_reduce_kernel(__half *out /* [n_seqs, n_head * 64] */,
                               const float *partial_out /* [n_seqs, n_head, n_partitions, 64] */,
                               const float *partial_max /* [n_seqs, n_head, n_partitions] */,
                               const float *partial_sum /* [n_seqs, n_head, n_partitions] */,
                               const int32_t *seq_lens /* [n_seqs] */, int max_tokens) {
    const int head = blockIdx.x, seq = blockIdx.y, n_head = gridDim.x;
    const int n_partitions_grid = (max_tokens + PARTITION_TOKENS - 1) / PARTITION_TOKENS;
    const int n_tokens = min(seq_lens[seq], max_tokens);
    const int n_used = n_tokens > 0 ? (n_tokens + PARTITION_TOKENS - 1) / PARTITION_TOKENS : 0;
    const int64_t first = ((int64_t)seq * n_head + head) * n_partitions_grid;
    float global_max = -INFINITY;
    for (int p = 0; p < n_used; p++) global_max = fmaxf(global_max, partial_max[first + p]);
    float numerator = 0.0f, denominator = 0.0f;
    for (int p = 0; p < n_used; p++) {
        const float weight = __expf(partial_max[first + p] - global_max);
        numerator += weight * partial_out[(first + p) * HEAD_SIZE + threadIdx.x];
        denominator += weight * partial_sum[first + p];
    }
    out[((int64_t)seq * n_head + head) * HEAD_SIZE + threadIdx.x] =
        __float2half_rn(n_used ? numerator / denominator : 0.0f);
}

/* ---- launchers ---- */

static int decode_partitions(int max_seq_len) { return CEIL_DIV(max_seq_len, PARTITION_TOKENS); }

/* H2O: one partition per (head, sequence), accumulating each row's probability. */
static void launch_h2o_decode(gpt2_f16 *out, const gpt2_f16 *q, int q_stride, const paged_kv_layer &kv,
                              const int32_t *seq_lens, int n_seqs, int max_seq_len,
                              cudaStream_t stream) {
    LAUNCH_REQUIRE(max_seq_len <= H2O_PARTITION_TOKENS, "attention_decode (h2o)");
    const dim3 grid((unsigned)kv.n_head, (unsigned)n_seqs, 1);
    if (kv.format == PAGED_KV_INT8) {
        const int8_rows k_rows = {kv.k_codes, kv.k_scales}, v_rows = {kv.v_codes, kv.v_scales};
        LAUNCH_KERNEL((attention_decode_partition_kernel<int8_rows, H2O_PARTITION_TOKENS>), grid,
                      THREADS, 0, stream, (__half *)out, (float *)NULL, (float *)NULL,
                      (float *)NULL, (const __half *)q, q_stride, k_rows, v_rows, kv, seq_lens);
    } else {
        const fp16_rows k_rows = {kv.k}, v_rows = {kv.v};
        LAUNCH_KERNEL((attention_decode_partition_kernel<fp16_rows, H2O_PARTITION_TOKENS>), grid,
                      THREADS, 0, stream, (__half *)out, (float *)NULL, (float *)NULL,
                      (float *)NULL, (const __half *)q, q_stride, k_rows, v_rows, kv, seq_lens);
    }
    LAUNCH_CHECK("attention_decode_h2o", stream);
}

extern "C" size_t attention_decode_workspace_bytes(int n_seqs, int n_head, int max_seq_len) {
    const int n_partitions = decode_partitions(max_seq_len);
    if (n_partitions <= 1) return 0;
    return (size_t)n_seqs * n_head * n_partitions * (HEAD_SIZE + 2) * sizeof(float);
}

extern "C" void launch_attention_decode(gpt2_f16 *out, float *workspace, size_t workspace_bytes,
                                        const gpt2_f16 *q, int q_stride, paged_kv_layer kv,
                                        const int32_t *seq_lens, int n_seqs, int max_seq_len,
                                        cudaStream_t stream) {
    const char *op = "attention_decode";
    LAUNCH_REQUIRE(n_seqs >= 1 && kv.n_head >= 1 && max_seq_len >= 1, op);
    LAUNCH_REQUIRE(kv.block_size >= 1 && kv.max_blocks_per_seq >= 1, op);
    LAUNCH_REQUIRE(max_seq_len <= kv.max_blocks_per_seq * kv.block_size, op);
    LAUNCH_REQUIRE(out && q && kv.block_tables && seq_lens, op);
    LAUNCH_REQUIRE(kv_pages_ok(kv), op);
    LAUNCH_REQUIRE(q_stride >= kv.n_head * HEAD_SIZE && q_stride % 8 == 0, op);
    LAUNCH_REQUIRE((uintptr_t)q % 16 == 0, op);
    if (kv.h2o_scores) {
        launch_h2o_decode(out, q, q_stride, kv, seq_lens, n_seqs, max_seq_len, stream);
        return;
    }
    const int n_partitions = decode_partitions(max_seq_len);
    LAUNCH_REQUIRE(workspace_bytes >= attention_decode_workspace_bytes(n_seqs, kv.n_head, max_seq_len), op);
    LAUNCH_REQUIRE(n_partitions == 1 || workspace != NULL, op);
    const size_t n_slots = (size_t)n_seqs * kv.n_head * n_partitions;
    float *partial_out = workspace;
    float *partial_max = n_partitions > 1 ? workspace + n_slots * HEAD_SIZE : NULL;
    float *partial_sum = n_partitions > 1 ? partial_max + n_slots : NULL;
    const dim3 grid((unsigned)kv.n_head, (unsigned)n_seqs, (unsigned)n_partitions);
    if (kv.format == PAGED_KV_INT8) {
        const int8_rows k_rows = {kv.k_codes, kv.k_scales}, v_rows = {kv.v_codes, kv.v_scales};
        LAUNCH_KERNEL((attention_decode_partition_kernel<int8_rows, PARTITION_TOKENS>), grid, THREADS, 0, stream,
                      (__half *)out, partial_out, partial_max, partial_sum, (const __half *)q,
                      q_stride, k_rows, v_rows, kv, seq_lens);
    } else {
        const fp16_rows k_rows = {kv.k}, v_rows = {kv.v};
        LAUNCH_KERNEL((attention_decode_partition_kernel<fp16_rows, PARTITION_TOKENS>), grid, THREADS, 0, stream,
                      (__half *)out, partial_out, partial_max, partial_sum, (const __half *)q,
                      q_stride, k_rows, v_rows, kv, seq_lens);
    }
    LAUNCH_CHECK("attention_decode_partition", stream);
    if (n_partitions == 1) return;
    LAUNCH_KERNEL(attention_decode_reduce_kernel, dim3((unsigned)kv.n_head, (unsigned)n_seqs),
                  HEAD_SIZE, 0, stream, (__half *)out, partial_out, partial_max, partial_sum,
                  seq_lens, n_partitions * PARTITION_TOKENS);
    LAUNCH_CHECK("attention_decode_reduce", stream);
}
