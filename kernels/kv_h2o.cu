/*
 * H2O (heavy hitters, cache/kv_policy.h) in the paged pool: the per-row state its eviction reads,
 * and the eviction itself, which compacts a sequence's kept rows so that whole pages go back.
 *
 * Each row of a layer's pages has, beside its K and V, the attention probability it has
 * accumulated per head (h2o_scores, added by the decode attention kernel as it computes them)
 * and the position of its token (h2o_positions). The rows of a sequence under H2O are dense:
 * kept positions 0 .. n - 1 of its table, in no particular order of position.
 *
 * launch_kv_h2o_init: the new tokens' rows start at score 0 with their positions; it runs after
 * the KV write and before attention adds the new probabilities.
 *
 * launch_kv_h2o_evict: one block per sequence. While the sequence holds more rows than its
 * target, the block finds the victim, the row with the least score summed over heads among
 * those older than the `window` most recent positions (ties: the older position goes), and
 * moves the sequence's last row into its place: K and V of every head (fp16, or int8 codes and
 * scales), the scores and the position. Then the last row is free; n drops by one. A decode
 * step evicts at most one row; the end of a prompt evicts what it brought in over the target.
 * The summed scores are read once per eviction: n rows of n_head floats, a small fraction of
 * what attention reads.
 */
#include <math.h>
#include <stdint.h>

#include "kernels/cuda_check.h"
#include "kernels/kernels.h"
#include "kernels/launch.h"

#define HEAD_SIZE 64
#define THREADS 256
#define INIT_THREADS 128

/* ---- kernels ---- */

/* One thread per (token, head): the new row's score 0 and, once per token, its position. */
static __global__ void __launch_bounds__(INIT_THREADS)
kv_h2o_init_kernel(float *scores /* [num_blocks, n_head, block_size] */,
                   int32_t *positions /* [num_blocks, block_size] */,
                   const int64_t *slot_mapping /* [n_tokens] */,
                   const int32_t *token_positions /* [n_tokens] */, int n_tokens, int n_head,
                   int block_size, int64_t n_slots) {
    const int64_t i = (int64_t)blockIdx.x * INIT_THREADS + threadIdx.x;
    if (i >= (int64_t)n_tokens * n_head) return;
    const int token = (int)(i / n_head), head = (int)(i % n_head);
    const int64_t slot = slot_mapping[token];
    if (slot < 0 || slot >= n_slots) return;
    const int64_t block = slot / block_size, offset = slot % block_size;
    scores[(block * n_head + head) * block_size + offset] = 0.0f;
    if (head == 0) positions[slot] = token_positions[token];
}

/* Where row t of a sequence's table lives: its block and its offset in it (32-bit division only). */
struct row_ref {
    int64_t block;
    int offset;
};

static __device__ __forceinline__ row_ref table_row_ref(const int32_t *table, int t, int block_size) {
    return row_ref{table[t / block_size], t % block_size};
}

/* Index of (row, head) in the [num_blocks, n_head, block_size] layout, and of the row in positions. */
static __device__ __forceinline__ int64_t head_row(row_ref r, int head, int n_head, int block_size) {
    return (r.block * n_head + head) * block_size + r.offset;
}

static __device__ __forceinline__ int64_t position_index(row_ref r, int block_size) {
    return r.block * block_size + r.offset;
}

/* A candidate for eviction, row -1 for none: the lesser score, then the older position, wins. */
struct victim {
    float score;
    int position, row;
};

static __device__ __forceinline__ bool better_victim(victim a, victim b) {
    if (a.row < 0) return false;
    return b.row < 0 || a.score < b.score || (a.score == b.score && a.position < b.position);
}

/* The victim among rows [0, n) no newer than threshold, reduced over the block: in every thread. */
static __device__ __forceinline__ victim find_victim(victim *scratch /* [THREADS] */,
                                                     const kv_h2o_pages &pages,
                                                     const int32_t *table, int n, int threshold,
                                                     int n_head, int block_size) {
    victim best = {0.0f, 0, -1};
    for (int t = threadIdx.x; t < n; t += THREADS) {
        const row_ref r = table_row_ref(table, t, block_size);
        const int position = pages.h2o_positions[position_index(r, block_size)];
        float score = 0.0f;
        for (int h = 0; h < n_head; h++) score += pages.h2o_scores[head_row(r, h, n_head, block_size)];
        const victim v = {score, position, position <= threshold ? t : -1}; /* newer: kept */
        if (better_victim(v, best)) best = v;
    }
    scratch[threadIdx.x] = best;
    __syncthreads();
    for (int stride = THREADS / 2; stride > 0; stride /= 2) {
        if (threadIdx.x < stride && better_victim(scratch[threadIdx.x + stride], scratch[threadIdx.x]))
            scratch[threadIdx.x] = scratch[threadIdx.x + stride];
        __syncthreads();
    }
    const victim chosen = scratch[0];
    __syncthreads(); /* scratch is reused by the next search */
    return chosen;
}

/* Elements [from, from + 8) of a page set onto [to, to + 8), as one access of type Chunk. */
template <class Chunk, class T>
static __device__ __forceinline__ void copy_chunk(T *pages, int64_t to, int64_t from) {
    *reinterpret_cast<Chunk *>(pages + to) = *reinterpret_cast<const Chunk *>(pages + from);
}

/* Moves row `from` of every head (K, V, scores, position) onto row `to`. */
static __device__ __forceinline__ void move_row(const kv_h2o_pages &pages, paged_kv_format format,
                                                row_ref from, row_ref to, int n_head,
                                                int block_size) {
    for (int i = threadIdx.x; i < n_head * (HEAD_SIZE / 8 + 1); i += THREADS) {
        const int head = i / (HEAD_SIZE / 8 + 1), part = i % (HEAD_SIZE / 8 + 1);
        const int64_t src = head_row(from, head, n_head, block_size);
        const int64_t dst = head_row(to, head, n_head, block_size);
        if (part == HEAD_SIZE / 8) { /* the row's per-head extras */
            pages.h2o_scores[dst] = pages.h2o_scores[src];
            if (format == PAGED_KV_INT8) {
                pages.k_scales[dst] = pages.k_scales[src];
                pages.v_scales[dst] = pages.v_scales[src];
            }
            continue;
        }
        const int64_t src_at = src * HEAD_SIZE + part * 8, dst_at = dst * HEAD_SIZE + part * 8;
        if (format == PAGED_KV_INT8) { /* 8 codes: 8 bytes */
            copy_chunk<uint2>(pages.k_codes, dst_at, src_at);
            copy_chunk<uint2>(pages.v_codes, dst_at, src_at);
        } else { /* 8 halves: 16 bytes */
            copy_chunk<uint4>(pages.k, dst_at, src_at);
            copy_chunk<uint4>(pages.v, dst_at, src_at);
        }
    }
    if (threadIdx.x == 0) {
        int32_t *positions = pages.h2o_positions;
        positions[position_index(to, block_size)] = positions[position_index(from, block_size)];
    }
    __syncthreads();
}

static __global__ void __launch_bounds__(THREADS)
kv_h2o_evict_kernel(kv_h2o_pages pages, paged_kv_format format,
                    const int32_t *block_tables /* [n_seqs, max_blocks_per_seq] */,
                    int max_blocks_per_seq, int n_head, int block_size,
                    const int32_t *kept_lens /* [n_seqs] */, const int32_t *targets /* [n_seqs] */,
                    int window) {
    __shared__ victim scratch[THREADS];
    const int seq = blockIdx.x;
    const int32_t *table = block_tables + (int64_t)seq * max_blocks_per_seq;
    const int target = targets[seq];
    const int n = min(kept_lens[seq], max_blocks_per_seq * block_size);
    if (n <= target || target < 1) return; /* block-uniform */
    /* The newest token is the last row: a call appends its tokens after the kept ones. */
    const row_ref newest = table_row_ref(table, n - 1, block_size);
    const int threshold = pages.h2o_positions[position_index(newest, block_size)] - window;
    for (int last = n - 1; last >= target; last--) {
        const victim chosen =
            find_victim(scratch, pages, table, last + 1, threshold, n_head, block_size);
        if (chosen.row < 0) break; /* nothing old enough: the window holds every row */
        if (chosen.row != last)
            move_row(pages, format, table_row_ref(table, last, block_size),
                     table_row_ref(table, chosen.row, block_size), n_head, block_size);
    }
}

/* ---- launchers ---- */

extern "C" void launch_kv_h2o_init(float *scores, int32_t *positions, const int64_t *slot_mapping,
                                   const int32_t *token_positions, int n_tokens, int n_head,
                                   int block_size, int num_blocks, cudaStream_t stream) {
    const char *op = "kv_h2o_init";
    LAUNCH_REQUIRE(n_tokens >= 0 && n_head >= 1 && block_size >= 1 && num_blocks >= 1, op);
    if (n_tokens == 0) return;
    LAUNCH_REQUIRE(scores && positions && slot_mapping && token_positions, op);
    const int64_t n_threads = (int64_t)n_tokens * n_head;
    LAUNCH_KERNEL(kv_h2o_init_kernel, (unsigned)CEIL_DIV(n_threads, (int64_t)INIT_THREADS),
                  INIT_THREADS, 0, stream, scores, positions, slot_mapping, token_positions,
                  n_tokens, n_head, block_size, (int64_t)num_blocks * block_size);
    LAUNCH_CHECK(op, stream);
}

extern "C" void launch_kv_h2o_evict(kv_h2o_pages pages, paged_kv_format format,
                                    const int32_t *block_tables, int max_blocks_per_seq,
                                    int n_head, int block_size, const int32_t *kept_lens,
                                    const int32_t *targets, int window, int n_seqs,
                                    cudaStream_t stream) {
    const char *op = "kv_h2o_evict";
    LAUNCH_REQUIRE(n_seqs >= 1 && n_head >= 1 && block_size >= 1 && max_blocks_per_seq >= 1, op);
    LAUNCH_REQUIRE(window >= 1 && block_tables && kept_lens && targets, op);
    LAUNCH_REQUIRE(pages.h2o_scores && pages.h2o_positions, op);
    if (format == PAGED_KV_INT8)
        LAUNCH_REQUIRE(pages.k_codes && pages.v_codes && pages.k_scales && pages.v_scales &&
                           (uintptr_t)pages.k_codes % 8 == 0 && (uintptr_t)pages.v_codes % 8 == 0, op);
    else
        LAUNCH_REQUIRE(format == PAGED_KV_FP16 && pages.k && pages.v && (uintptr_t)pages.k % 16 == 0 &&
                           (uintptr_t)pages.v % 16 == 0, op);
    LAUNCH_KERNEL(kv_h2o_evict_kernel, (unsigned)n_seqs, THREADS, 0, stream, pages, format,
                  block_tables, max_blocks_per_seq, n_head, block_size, kept_lens, targets, window);
    LAUNCH_CHECK(op, stream);
}
