/*
 * MiniCache (cache/kv_policy.h) in the paged pool: after a forward call, each layer pair (o,
 * u = o + 1) merges the call's tokens into o's pages, or retains them in both layers.
 *
 * A sequence's rows (kernels.h): o's table rows 0 .. M - 1 hold merged tokens, M .. N - 1
 * retained ones, N .. N + n - 1 the call's; u's rows 0 .. R - 1 its retained ones, R .. R + n - 1
 * the call's. Token i compares a = o's row N + i with b = u's row R + i, per head, K and V. Merged,
 * o's first retained row (M) moves to the token's place N + i and row M gets the merged row
 * |a| (a/|a| + b/|b|) / |a/|a| + b/|b|| with the ratio |b| / |a| beside it; retained, u's row
 * R + i moves down to u's next own row. Rows stay dense, so pages past them can go back.
 *
 * Work split: one block per (sequence, pair), grid (n_seqs, n_pairs), THREADS threads. The block
 * walks the call's tokens in order, since token i's moves read rows that earlier tokens' moves
 * wrote. A token's row of one head, of K or of V (a slice; 2 n_head of them) belongs to a group
 * of 8 lanes, 8 values each (one 16-byte fp16 or 8-byte code access, kv_quant.cuh's layout), the
 * same group for every token: the 32 groups loop over the slices. Per token:
 *   1. each group reads its slices of a and b (INT8: code * scale in fp32), reduces a.b, |a|^2
 *      and |b|^2 over its lanes and votes retain; __syncthreads_or decides for the block. That
 *      is the only barrier, and there is no shared memory, whatever n_head.
 *   2. retained: each group copies its slices of u's row (raw: halves, or codes and scale).
 *      Merged: each group reads a and b again (rather than hold 2 n_head slices in registers or
 *      shared memory), moves o's row M to N + i (raw) and writes row M's merged values and ratio.
 *      fp16 rows are rounded to nearest; INT8 rows are requantized from the fp32 merged values
 *      with a fresh scale (quantize_row_part, the INT8 KV write's arithmetic), not rounded to
 *      fp16 first.
 * Why one barrier suffices: a slice's values, scale and ratio are only ever touched by its group,
 * and step 1 reads o's row N + i and u's row R + i, which no earlier token's step 2 wrote (they
 * write o's rows <= N + i - 1 and u's rows <= R + i - 1). Inside a group, the scale that lane 0
 * writes is read by all 8 lanes: a __syncwarp orders that within a token, the next token's
 * barrier across tokens.
 */
#include <math.h>
#include <stdint.h>

#include "cache/kv_policy.h"
#include "kernels/cuda_check.h"
#include "kernels/half8.cuh"
#include "kernels/kernels.h"
#include "kernels/kv_quant.cuh"
#include "kernels/launch.h"
#include "kernels/paged_kv.cuh"
#include "kernels/reduce.cuh"

#define HEAD_SIZE 64
#define THREADS 256
#define GROUPS (THREADS / LANES_PER_ROW) /* slices in flight at once */

/* ---- kernels ---- */

/* One layer pool's K or V side, in the launch's format (the other format's pointers unused). */
struct side_pages {
    __half *values; /* FP16: [num_blocks, n_head, block_size, 64] */
    int8_t *codes;  /* INT8: [num_blocks, n_head, block_size, 64] */
    __half *scales; /* INT8: [num_blocks, n_head, block_size] */
    float *ratios;  /* [num_blocks, n_head, block_size] */
};

static __device__ __forceinline__ side_pages side_of(const kv_minicache_pages &p, bool v) {
    return v ? side_pages{(__half *)p.v, p.v_codes, (__half *)p.v_scales, p.v_ratios}
             : side_pages{(__half *)p.k, p.k_codes, (__half *)p.k_scales, p.k_ratios};
}

/* This lane's 8 values of page row `row` as stored, in fp32 (INT8: code * scale, exact). */
static __device__ __forceinline__ void load_part(const side_pages &p, bool int8, int64_t row,
                                                 int part, float (&x)[8]) {
    const int64_t at = row * HEAD_SIZE + part * 8;
    if (int8) dequantize_int8x8(load_int8x8(p.codes + at), __half2float(p.scales[row]), x);
    else unpack_half8(load_half8(p.values + at), x);
}

/* This lane's share of copying page row `from` onto `to` as stored; lane 0 of the row its scale. */
static __device__ __forceinline__ void copy_part(const side_pages &p, bool int8, int64_t to,
                                                 int64_t from, int part) {
    const int64_t dst = to * HEAD_SIZE + part * 8, src = from * HEAD_SIZE + part * 8;
    if (int8) {
        store_int8x8(p.codes + dst, load_int8x8(p.codes + src));
        if (part == 0) p.scales[to] = p.scales[from];
    } else {
        store_half8(p.values + dst, load_half8(p.values + src));
    }
}

/* The sum of x[j] y[j] over the row, in each of its lanes. */
static __device__ __forceinline__ float row_dot(const float (&x)[8], const float (&y)[8]) {
    float sum = 0.0f;
    for (int j = 0; j < 8; j++) sum += x[j] * y[j];
    return row_lanes_reduce(sum, sum_op());
}

/* Whether a slice keeps the token unmerged: cos(a, b) < the threshold, or exactly one norm 0. */
static __device__ __forceinline__ bool retains(const float (&a)[8], const float (&b)[8]) {
    const float aa = row_dot(a, a), bb = row_dot(b, b), ab = row_dot(a, b);
    if (aa == 0.0f || bb == 0.0f) return (aa == 0.0f) != (bb == 0.0f);
    return ab < (float)KV_MINICACHE_RETAIN_COS * sqrtf(aa) * sqrtf(bb); /* cos < threshold */
}

/*
 * One slice of a merged token: a at page row a_row of o, b at b_row of u; o's row m_row moves to
 * a_row (unless they are one), then m_row gets |a| times the pair's direction and |b| / |a|.
 */
static __device__ __forceinline__ void merge_slice(const side_pages &p, bool int8, int64_t a_row,
                                                   int64_t b_row, int64_t m_row, int part) {
    float a[8], b[8], x[8];
    load_part(p, int8, a_row, part, a);
    load_part(p, int8, b_row, part, b);
    const float norm_a = sqrtf(row_dot(a, a)), norm_b = sqrtf(row_dot(b, b));
    /* Both norms are 0 or neither (else retained); both 0: a zero row, ratio 0. */
    const float inv_a = norm_a > 0.0f ? 1.0f / norm_a : 0.0f;
    const float inv_b = norm_b > 0.0f ? 1.0f / norm_b : 0.0f;
    for (int j = 0; j < 8; j++) x[j] = a[j] * inv_a + b[j] * inv_b;
    const float norm_mid = sqrtf(row_dot(x, x)); /* 0 only for opposite directions: retained */
    const float factor = norm_mid > 0.0f ? norm_a / norm_mid : 0.0f;
    for (int j = 0; j < 8; j++) x[j] *= factor;
    __syncwarp(row_lanes_mask()); /* every lane has read a's scale before lane 0 overwrites it */
    if (a_row != m_row) copy_part(p, int8, a_row, m_row, part);
    if (int8) quantize_row_part(p.codes + m_row * HEAD_SIZE, p.scales + m_row, x, part);
    else store_half8(p.values + m_row * HEAD_SIZE + part * 8, pack_half8(x));
    if (part == 0) p.ratios[m_row] = norm_a > 0.0f ? norm_b / norm_a : 0.0f;
}

static __global__ void __launch_bounds__(THREADS)
kv_minicache_merge_kernel(kv_minicache_pages pages, paged_kv_format format,
                          const int32_t *block_tables /* [n_layer, n_seqs, max_blocks_per_seq] */,
                          int max_blocks_per_seq, int n_head, int block_size,
                          const int32_t *context_lens /* [n_layer, n_seqs] */,
                          const int32_t *merged_rows /* [n_layer, n_seqs] */,
                          const int32_t *query_starts /* [n_seqs + 1] */, int first_lower,
                          int32_t *merged_tokens /* [n_layer, n_seqs] */) {
    const int seq = blockIdx.x, n_seqs = gridDim.x;
    const int lower = first_lower + 2 * (int)blockIdx.y;
    const int64_t at_lower = (int64_t)lower * n_seqs + seq, at_upper = at_lower + n_seqs;
    const int n = query_starts[seq + 1] - query_starts[seq];
    const int merged0 = merged_rows[at_upper];
    const int N = context_lens[at_lower] - n, R = context_lens[at_upper] - merged0 - n;
    const int capacity = max_blocks_per_seq * block_size;
    /* Idle (block-uniform); also lengths the tables cannot hold, rather than rows outside them. */
    if (n < 1 || merged0 < 0 || N < merged0 || R < 0 || N + n > capacity || R + n > capacity) {
        if (threadIdx.x == 0) merged_tokens[at_lower] = 0;
        return;
    }
    const int32_t *lower_table = block_tables + at_lower * max_blocks_per_seq;
    const int32_t *upper_table = block_tables + at_upper * max_blocks_per_seq;
    const bool int8 = format == PAGED_KV_INT8;
    const int group = threadIdx.x / LANES_PER_ROW, part = threadIdx.x % LANES_PER_ROW;
    int merged = merged0, own = R; /* o's next merged row, u's next own row */
    for (int i = 0; i < n; i++) {
        bool retain = false;
        for (int slice = group; slice < 2 * n_head; slice += GROUPS) { /* head, then K | V */
            const int head = slice / 2;
            const side_pages p = side_of(pages, slice % 2);
            float a[8], b[8];
            load_part(p, int8, block_row(lower_table, N + i, head, n_head, block_size), part, a);
            load_part(p, int8, block_row(upper_table, R + i, head, n_head, block_size), part, b);
            retain = retains(a, b) || retain;
        }
        if (__syncthreads_or(retain)) { /* block-uniform */
            for (int slice = group; own != R + i && slice < 2 * n_head; slice += GROUPS) {
                const int head = slice / 2;
                copy_part(side_of(pages, slice % 2), int8,
                          block_row(upper_table, own, head, n_head, block_size),
                          block_row(upper_table, R + i, head, n_head, block_size), part);
            }
            own++;
            continue;
        }
        for (int slice = group; slice < 2 * n_head; slice += GROUPS) {
            const int head = slice / 2;
            merge_slice(side_of(pages, slice % 2), int8,
                        block_row(lower_table, N + i, head, n_head, block_size),
                        block_row(upper_table, R + i, head, n_head, block_size),
                        block_row(lower_table, merged, head, n_head, block_size), part);
        }
        merged++;
    }
    if (threadIdx.x == 0) merged_tokens[at_lower] = merged - merged0;
}

/* ---- launchers ---- */

extern "C" void launch_kv_minicache_merge(kv_minicache_pages pages, paged_kv_format format,
                                          const int32_t *block_tables, int max_blocks_per_seq,
                                          int n_head, int block_size, const int32_t *context_lens,
                                          const int32_t *merged_rows, const int32_t *query_starts,
                                          int first_lower, int n_pairs, int n_seqs,
                                          int32_t *merged_tokens, cudaStream_t stream) {
    const char *op = "kv_minicache_merge";
    LAUNCH_REQUIRE(n_pairs >= 1 && n_pairs <= 65535 && n_seqs >= 1 && first_lower >= 0, op);
    LAUNCH_REQUIRE(n_head >= 1 && block_size >= 1 && max_blocks_per_seq >= 1, op);
    LAUNCH_REQUIRE(block_tables && context_lens && merged_rows && query_starts && merged_tokens, op);
    LAUNCH_REQUIRE(pages.k_ratios && pages.v_ratios, op);
    if (format == PAGED_KV_INT8)
        LAUNCH_REQUIRE(pages.k_codes && pages.v_codes && pages.k_scales && pages.v_scales &&
                           (uintptr_t)pages.k_codes % 8 == 0 && (uintptr_t)pages.v_codes % 8 == 0, op);
    else
        LAUNCH_REQUIRE(format == PAGED_KV_FP16 && pages.k && pages.v && half8_aligned(pages.k) &&
                           half8_aligned(pages.v), op);
    LAUNCH_KERNEL(kv_minicache_merge_kernel, dim3((unsigned)n_seqs, (unsigned)n_pairs), THREADS, 0,
                  stream, pages, format, block_tables, max_blocks_per_seq, n_head, block_size,
                  context_lens, merged_rows, query_starts, first_lower, merged_tokens);
    LAUNCH_CHECK(op, stream);
}
