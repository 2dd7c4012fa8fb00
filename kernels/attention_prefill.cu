/*
 * Prefill attention: causal attention for a varlen batch of query chunks, each on top of the
 * tokens its sequence has already cached. Keys and values are read straight from the paged KV
 * pool through the sequence's block table (the chunk's own K and V are written there first).
 *
 * Sequence s contributes rows [query_starts[s], query_starts[s + 1]) of q and out: n_new query
 * tokens at positions pos0 .. pos0 + n_new - 1, with pos0 = context_lens[s] - n_new. Query i
 * attends to positions [0, pos0 + i].
 *
 * Work split: one block per (head, tile of QUERY_TILE queries, sequence), 4 warps of 8 queries.
 * The block walks the keys in tiles of KEY_TILE, staged in shared memory, with an online
 * softmax (flash-attention style) in fp32:
 *   1. lane j scores key j of the tile against the warp's 8 queries (q . k / 8; masked past
 *      each query's position);
 *   2. per query: new max m', rescale factor e^(m - m'), p_j = e^(s_j - m'), running sum l;
 *   3. the warp's probabilities go through shared memory, and lane l accumulates dims 2l, 2l+1
 *      of p . V for its 8 queries.
 * At the end out = acc / l, as fp16. Plain SIMT fp32 FMAs; a tensor-core (mma) version is the
 * planned speed-up once it can be measured against this one.
 */
#include <math.h>
#include <stdint.h>

#include "kernels/cuda_check.h"
#include "kernels/half8.cuh"
#include "kernels/kernels.h"
#include "kernels/launch.h"
#include "kernels/reduce.cuh"

#define HEAD_SIZE 64
#define WARPS 4
#define THREADS (WARPS * 32)
#define QUERIES_PER_WARP 8
#define QUERY_TILE (WARPS * QUERIES_PER_WARP) /* 32 */
#define KEY_TILE 32                           /* one key per lane */
#define K_ROW_STRIDE (HEAD_SIZE + 2)          /* halves; lane j reads row j: odd word stride, no bank conflicts */
#define SCORE_SCALE 0.125f                    /* 1 / sqrt(HEAD_SIZE) */

/* ---- kernels ---- */

/* Position t's 64-wide row of one head in a layer's pages. */
static __device__ __forceinline__ const __half *page_row(const __half *pages /* [blocks, H, B, 64] */,
                                                         const int32_t *table /* [max_blocks] */,
                                                         int t, int head, int n_head, int block_size) {
    const int64_t block = table[t / block_size]; /* 64-bit before any stride multiplication */
    return pages + ((block * n_head + head) * block_size + t % block_size) * HEAD_SIZE;
}

/* Stages keys [first, first + KEY_TILE) of one head into shared memory; rows past n_keys are 0. */
static __device__ void stage_key_tile(__half (*k_tile)[K_ROW_STRIDE], __half (*v_tile)[HEAD_SIZE],
                                      const paged_kv_layer &kv, const int32_t *table, int head,
                                      int first, int n_keys) {
    for (int chunk = threadIdx.x; chunk < KEY_TILE * HEAD_SIZE / 8; chunk += THREADS) {
        const int row = chunk / (HEAD_SIZE / 8), col = chunk % (HEAD_SIZE / 8) * 8;
        const int t = first + row;
        half8 k = {}, v = {};
        if (t < n_keys) {
            k = load_half8(page_row(kv.k, table, t, head, kv.n_head, kv.block_size) + col);
            v = load_half8(page_row(kv.v, table, t, head, kv.n_head, kv.block_size) + col);
        }
        for (int j = 0; j < 4; j++) /* 4-byte stores: K rows are only 4-byte aligned */
            *reinterpret_cast<__half2 *>(&k_tile[row][col + 2 * j]) = k.h[j];
        store_half8(&v_tile[row][col], v);
    }
}

static __global__ void __launch_bounds__(THREADS)
attention_prefill_kernel(__half *out /* [n_tokens, out_stride] */, int out_stride,
                         const __half *q /* [n_tokens, q_stride], head h at h * 64 */, int q_stride,
                         paged_kv_layer kv, const int32_t *query_starts /* [n_seqs + 1] */,
                         const int32_t *context_lens /* [n_seqs] */) {
    const int head = blockIdx.x, tile = blockIdx.y, seq = blockIdx.z;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int row0 = query_starts[seq], n_new = query_starts[seq + 1] - row0;
    const int first_query = tile * QUERY_TILE;
    if (first_query >= n_new) return; /* block-uniform */
    const int n_queries = min(QUERY_TILE, n_new - first_query);
    const int pos0 = context_lens[seq] - n_new;
    const int n_keys = min(pos0 + first_query + n_queries, /* the last query's causal horizon, */
                           kv.max_blocks_per_seq * kv.block_size); /* never past the table */
    const int32_t *table = kv.block_tables + (int64_t)seq * kv.max_blocks_per_seq;

    __shared__ float q_tile[QUERY_TILE][HEAD_SIZE];
    __shared__ __half k_tile[KEY_TILE][K_ROW_STRIDE];
    __shared__ __align__(16) __half v_tile[KEY_TILE][HEAD_SIZE];
    __shared__ float p_tile[WARPS][QUERIES_PER_WARP][KEY_TILE];
    for (int i = threadIdx.x; i < QUERY_TILE * HEAD_SIZE; i += THREADS) {
        const int qi = i / HEAD_SIZE, d = i % HEAD_SIZE;
        q_tile[qi][d] = qi < n_queries
            ? __half2float(q[(int64_t)(row0 + first_query + qi) * q_stride + head * HEAD_SIZE + d]) * SCORE_SCALE
            : 0.0f;
    }

    float running_max[QUERIES_PER_WARP], running_sum[QUERIES_PER_WARP], acc[QUERIES_PER_WARP][2];
    for (int i = 0; i < QUERIES_PER_WARP; i++) {
        running_max[i] = -INFINITY;
        running_sum[i] = 0.0f;
        acc[i][0] = acc[i][1] = 0.0f;
    }
    const int my_first = warp * QUERIES_PER_WARP; /* this warp's queries in the tile */

    for (int key0 = 0; key0 < n_keys; key0 += KEY_TILE) {
        __syncthreads(); /* the previous tile is consumed (and q_tile written, the first time) */
        stage_key_tile(k_tile, v_tile, kv, table, head, key0, n_keys);
        __syncthreads();

        float score[QUERIES_PER_WARP];
        for (int i = 0; i < QUERIES_PER_WARP; i++) score[i] = 0.0f;
        for (int d = 0; d < HEAD_SIZE; d += 2) {
            const float2 k = __half22float2(*reinterpret_cast<const __half2 *>(&k_tile[lane][d]));
            for (int i = 0; i < QUERIES_PER_WARP; i++)
                score[i] += q_tile[my_first + i][d] * k.x + q_tile[my_first + i][d + 1] * k.y;
        }
        const int key = key0 + lane;
        for (int i = 0; i < QUERIES_PER_WARP; i++) {
            const int qi = my_first + i;
            const bool visible = qi < n_queries && key <= pos0 + first_query + qi;
            const float s = visible ? score[i] : -INFINITY;
            const float new_max = fmaxf(running_max[i], warp_reduce(s, max_op()));
            /* A query that has seen no visible key yet keeps max -inf: p = 0, nothing to rescale. */
            const float p = visible ? __expf(s - new_max) : 0.0f;
            const float rescale = new_max == -INFINITY ? 1.0f : __expf(running_max[i] - new_max);
            running_sum[i] = running_sum[i] * rescale + warp_reduce(p, sum_op());
            acc[i][0] *= rescale;
            acc[i][1] *= rescale;
            running_max[i] = new_max;
            p_tile[warp][i][lane] = p;
        }
        __syncwarp();
        for (int j = 0; j < KEY_TILE; j++) {
            const float2 v = __half22float2(*reinterpret_cast<const __half2 *>(&v_tile[j][2 * lane]));
            for (int i = 0; i < QUERIES_PER_WARP; i++) {
                acc[i][0] += p_tile[warp][i][j] * v.x;
                acc[i][1] += p_tile[warp][i][j] * v.y;
            }
        }
        __syncwarp(); /* p_tile is rewritten next tile */
    }

    for (int i = 0; i < QUERIES_PER_WARP; i++) {
        const int qi = my_first + i;
        if (qi >= n_queries) break;
        __half2 *dst = reinterpret_cast<__half2 *>(
            out + (int64_t)(row0 + first_query + qi) * out_stride + head * HEAD_SIZE + 2 * lane);
        *dst = __floats2half2_rn(acc[i][0] / running_sum[i], acc[i][1] / running_sum[i]);
    }
}

/* ---- launchers ---- */

extern "C" void launch_attention_prefill(gpt2_f16 *out, int out_stride, const gpt2_f16 *q,
                                         int q_stride, paged_kv_layer kv,
                                         const int32_t *query_starts, const int32_t *context_lens,
                                         int n_seqs, int max_new_tokens, cudaStream_t stream) {
    const char *op = "attention_prefill";
    LAUNCH_REQUIRE(n_seqs >= 1 && max_new_tokens >= 1 && kv.n_head >= 1, op);
    LAUNCH_REQUIRE(kv.block_size >= 1 && kv.max_blocks_per_seq >= 1, op);
    LAUNCH_REQUIRE(out && q && kv.k && kv.v && kv.block_tables && query_starts && context_lens, op);
    LAUNCH_REQUIRE(q_stride >= kv.n_head * HEAD_SIZE && out_stride >= kv.n_head * HEAD_SIZE, op);
    LAUNCH_REQUIRE(out_stride % 2 == 0 && (uintptr_t)out % 4 == 0, op);
    LAUNCH_REQUIRE((uintptr_t)kv.k % 16 == 0 && (uintptr_t)kv.v % 16 == 0, op);
    const dim3 grid((unsigned)kv.n_head, (unsigned)CEIL_DIV(max_new_tokens, QUERY_TILE), (unsigned)n_seqs);
    LAUNCH_KERNEL(attention_prefill_kernel, grid, THREADS, 0, stream, (__half *)out, out_stride,
                  (const __half *)q, q_stride, kv, query_starts, context_lens);
    LAUNCH_CHECK("attention_prefill", stream);
}
