/*
 * Prefill attention: causal attention for a varlen batch of query chunks, each on top of the
 * tokens its sequence has already cached. Keys and values are read straight from the paged KV
 * pool through the sequence's block table (the chunk's own K and V are written there first).
 *
 * Sequence s contributes rows [query_starts[s], query_starts[s + 1]) of q and out: n_new query
 * tokens at positions pos0 .. pos0 + n_new - 1, with pos0 = context_lens[s] - n_new. Query i
 * attends to positions [0, pos0 + i]. Positions are a sequence's kept ones, read past its
 * eviction hole (kernels/paged_kv.cuh); a MiniCache pair's merged rows are staged as stored, and
 * their ratios scale the score (K) and the probability that weighs V.
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
 *
 * Both page formats run the same kernel, templated on how a row is staged: FP16 pages as they
 * are (halves in shared memory), INT8 pages dequantized to code * scale in fp32 right after the
 * 8-byte load of 8 codes and staged as fp32, so the int8 path rounds nothing.
 */
#include <math.h>
#include <stdint.h>

#include "kernels/cuda_check.h"
#include "kernels/half8.cuh"
#include "kernels/kernels.h"
#include "kernels/launch.h"
#include "kernels/paged_kv.cuh"
#include "kernels/reduce.cuh"

#define HEAD_SIZE 64
#define WARPS 4
#define THREADS (WARPS * 32)
#define QUERIES_PER_WARP 8
#define QUERY_TILE (WARPS * QUERIES_PER_WARP) /* 32 */
#define KEY_TILE 32                           /* one key per lane */
#define K_ROW_STRIDE (HEAD_SIZE + 2)          /* lane j reads row j: no bank conflicts (halves: odd
                                                 word stride; floats: 8-byte reads, even stride) */
#define SCORE_SCALE 0.125f                    /* 1 / sqrt(HEAD_SIZE) */

/* ---- kernels ---- */

/* K and V of a layer in fp16 pages, staged into shared memory as halves. */
struct fp16_rows {
    typedef __half tile_t;
    const __half *k, *v; /* [num_blocks, n_head, block_size, 64] */
};

/* K and V of a layer in int8 pages with a scale per row, staged dequantized as fp32. */
struct int8_rows {
    typedef float tile_t;
    const int8_t *k_codes, *v_codes;   /* [num_blocks, n_head, block_size, 64] */
    const __half *k_scales, *v_scales; /* [num_blocks, n_head, block_size] */
};

/* Columns [col, col + 8) of K and V page row `row` into tile rows. */
static __device__ __forceinline__ void stage_chunk(__half *k_dst /* [8], 4-byte aligned */,
                                                   __half *v_dst /* [8], 16-byte aligned */,
                                                   const fp16_rows &src, int64_t row, int col) {
    const half8 k = load_half8(src.k + row * HEAD_SIZE + col);
    const half8 v = load_half8(src.v + row * HEAD_SIZE + col);
    for (int j = 0; j < 4; j++) /* 4-byte stores: K rows are only 4-byte aligned */
        *reinterpret_cast<__half2 *>(k_dst + 2 * j) = k.h[j];
    store_half8(v_dst, v);
}

static __device__ __forceinline__ void stage_chunk(float *k_dst /* [8], 8-byte aligned */,
                                                   float *v_dst /* [8], 16-byte aligned */,
                                                   const int8_rows &src, int64_t row, int col) {
    const int64_t at = row * HEAD_SIZE + col;
    float k[8], v[8];
    dequantize_int8x8(load_int8x8(src.k_codes + at), __half2float(src.k_scales[row]), k);
    dequantize_int8x8(load_int8x8(src.v_codes + at), __half2float(src.v_scales[row]), v);
    for (int j = 0; j < 4; j++) /* 8-byte stores: K rows are only 8-byte aligned */
        *reinterpret_cast<float2 *>(k_dst + 2 * j) = make_float2(k[2 * j], k[2 * j + 1]);
    for (int j = 0; j < 8; j += 4)
        *reinterpret_cast<float4 *>(v_dst + j) = make_float4(v[j], v[j + 1], v[j + 2], v[j + 3]);
}

/* Zeros for tile rows past the keys (T() is 0 for __half and float). */
template <class T>
static __device__ __forceinline__ void zero_chunk(T *k_dst /* [8] */, T *v_dst /* [8] */) {
    for (int i = 0; i < 8; i++) k_dst[i] = v_dst[i] = T();
}

/* Two consecutive tile values as floats. */
static __device__ __forceinline__ float2 load_pair(const __half *p /* [2], 4-byte aligned */) {
    return __half22float2(*reinterpret_cast<const __half2 *>(p));
}

static __device__ __forceinline__ float2 load_pair(const float *p /* [2], 8-byte aligned */) {
    return *reinterpret_cast<const float2 *>(p);
}

/*
 * Stages keys [first, first + KEY_TILE) of one head into shared memory; rows past n_keys are 0.
 * Each key's factors (kv_row_factor: 1 but for a MiniCache pair's merged rows) go beside it, for
 * its score and its probability: the staged values stay as stored.
 */
template <class T, class Rows>
static __device__ void stage_key_tile(T (*k_tile)[K_ROW_STRIDE], T (*v_tile)[HEAD_SIZE],
                                      float *k_factors /* [KEY_TILE] */,
                                      float *v_factors /* [KEY_TILE] */, const Rows &src,
                                      const paged_kv_layer &kv, const sequence_rows &rows,
                                      int head, int first, int n_keys) {
    for (int chunk = threadIdx.x; chunk < KEY_TILE * HEAD_SIZE / 8; chunk += THREADS) {
        const int row = chunk / (HEAD_SIZE / 8), col = chunk % (HEAD_SIZE / 8) * 8;
        const int t = first + row;
        if (t >= n_keys) { /* factors of 1: a masked key's p of 0 stays 0 */
            zero_chunk(&k_tile[row][col], &v_tile[row][col]);
            if (col == 0) k_factors[row] = v_factors[row] = 1.0f;
            continue;
        }
        const kv_row r = page_row(rows, t, head, kv.n_head, kv.block_size);
        stage_chunk(&k_tile[row][col], &v_tile[row][col], src, r.row, col);
        if (col == 0) {
            k_factors[row] = kv_row_factor(kv.k_ratios, r);
            v_factors[row] = kv_row_factor(kv.v_ratios, r);
        }
    }
}

/* Rows: fp16_rows or int8_rows, K and V of the layer whose tables and geometry kv gives. */
template <class Rows>
static __global__ void __launch_bounds__(THREADS)
attention_prefill_kernel(__half *out /* [n_tokens, out_stride] */, int out_stride,
                         const __half *q /* [n_tokens, q_stride], head h at h * 64 */, int q_stride,
                         Rows src, paged_kv_layer kv,
                         const int32_t *query_starts /* [n_seqs + 1] */,
                         const int32_t *context_lens /* [n_seqs] */) {
    typedef typename Rows::tile_t T;
    const int head = blockIdx.x, tile = blockIdx.y, seq = blockIdx.z;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int row0 = query_starts[seq], n_new = query_starts[seq + 1] - row0;
    const int first_query = tile * QUERY_TILE;
    if (first_query >= n_new) return; /* block-uniform */
    const int n_queries = min(QUERY_TILE, n_new - first_query);
    const int pos0 = context_lens[seq] - n_new;
    const sequence_rows rows = sequence_view(kv, seq);
    const int n_keys = min(pos0 + first_query + n_queries, /* the last query's causal horizon, */
                           kept_capacity(kv, rows));             /* in the tables */

    __shared__ float q_tile[QUERY_TILE][HEAD_SIZE];
    __shared__ __align__(16) T k_tile[KEY_TILE][K_ROW_STRIDE];
    __shared__ __align__(16) T v_tile[KEY_TILE][HEAD_SIZE];
    __shared__ float p_tile[WARPS][QUERIES_PER_WARP][KEY_TILE];
    __shared__ float k_factors[KEY_TILE], v_factors[KEY_TILE];
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
        stage_key_tile(k_tile, v_tile, k_factors, v_factors, src, kv, rows, head, key0, n_keys);
        __syncthreads();

        float score[QUERIES_PER_WARP];
        for (int i = 0; i < QUERIES_PER_WARP; i++) score[i] = 0.0f;
        for (int d = 0; d < HEAD_SIZE; d += 2) {
            const float2 k = load_pair(&k_tile[lane][d]);
            for (int i = 0; i < QUERIES_PER_WARP; i++)
                score[i] += q_tile[my_first + i][d] * k.x + q_tile[my_first + i][d + 1] * k.y;
        }
        const int key = key0 + lane;
        const float k_factor = k_factors[lane], v_factor = v_factors[lane];
        for (int i = 0; i < QUERIES_PER_WARP; i++) {
            const int qi = my_first + i;
            const bool visible = qi < n_queries && key <= pos0 + first_query + qi;
            const float s = visible ? score[i] * k_factor : -INFINITY;
            const float new_max = fmaxf(running_max[i], warp_reduce(s, max_op()));
            /* A query that has seen no visible key yet keeps max -inf: p = 0, nothing to rescale. */
            const float p = visible ? __expf(s - new_max) : 0.0f;
            const float rescale = new_max == -INFINITY ? 1.0f : __expf(running_max[i] - new_max);
            running_sum[i] = running_sum[i] * rescale + warp_reduce(p, sum_op());
            acc[i][0] *= rescale;
            acc[i][1] *= rescale;
            running_max[i] = new_max;
            p_tile[warp][i][lane] = p * v_factor; /* V's weight; the sum takes p itself */
        }
        __syncwarp();
        for (int j = 0; j < KEY_TILE; j++) {
            const float2 v = load_pair(&v_tile[j][2 * lane]);
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
    LAUNCH_REQUIRE(out && q && kv.block_tables && query_starts && context_lens, op);
    LAUNCH_REQUIRE(kv_pages_ok(kv), op);
    LAUNCH_REQUIRE(!kv.h2o_scores, op); /* H2O scores accumulate in the decode kernel only */
    LAUNCH_REQUIRE(q_stride >= kv.n_head * HEAD_SIZE && out_stride >= kv.n_head * HEAD_SIZE, op);
    LAUNCH_REQUIRE(out_stride % 2 == 0 && (uintptr_t)out % 4 == 0, op);
    const dim3 grid((unsigned)kv.n_head, (unsigned)CEIL_DIV(max_new_tokens, QUERY_TILE), (unsigned)n_seqs);
    if (kv.format == PAGED_KV_INT8) {
        const int8_rows src = {kv.k_codes, kv.v_codes, kv.k_scales, kv.v_scales};
        LAUNCH_KERNEL(attention_prefill_kernel<int8_rows>, grid, THREADS, 0, stream, (__half *)out,
                      out_stride, (const __half *)q, q_stride, src, kv, query_starts, context_lens);
    } else {
        const fp16_rows src = {kv.k, kv.v};
        LAUNCH_KERNEL(attention_prefill_kernel<fp16_rows>, grid, THREADS, 0, stream, (__half *)out,
                      out_stride, (const __half *)q, q_stride, src, kv, query_starts, context_lens);
    }
    LAUNCH_CHECK("attention_prefill", stream);
}
