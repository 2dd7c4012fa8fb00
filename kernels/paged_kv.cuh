/*
 * Reading a sequence's K and V rows through its block table (kernels.h, paged_kv_layer), shared
 * by the attention kernels and the unfused INT8 dequantize.
 *
 * A sequence's kept positions are numbered 0, 1, .. in order (the attention kernels' "t"): the
 * first kv.sink_rows sit at table rows 0 .. sink_rows - 1, the rest after the hole that eviction
 * left, hole_rows[seq] rows further on. Without eviction (hole_rows NULL, or 0) kept position t
 * is table row t, which is position t. At a MiniCache pair's upper layer the first merged_rows[seq]
 * kept positions are the lower layer's rows instead (kernels.h), their values scaled per head.
 */
#ifndef GPT2_PAGED_KV_CUH
#define GPT2_PAGED_KV_CUH

#include <stdint.h>

#include "kernels/kernels.h"

/* One sequence's view of a layer: its table row, its hole, and (MiniCache) its merged rows. */
struct sequence_rows {
    const int32_t *table;        /* [max_blocks_per_seq] block id of each logical block */
    int sinks, hole;             /* kept positions >= sinks sit hole rows further on */
    const int32_t *merged_table; /* [max_blocks_per_seq] the pair's lower layer's, or NULL */
    int merged;                  /* kept positions < merged are its rows, scaled by the ratios */
};

static __device__ __forceinline__ sequence_rows sequence_view(const paged_kv_layer &kv, int seq) {
    const int64_t table = (int64_t)seq * kv.max_blocks_per_seq;
    const bool merges = kv.merged_tables != NULL;
    const int merged = merges ? min(max(kv.merged_rows[seq], 0), kv.max_blocks_per_seq * kv.block_size) : 0;
    return sequence_rows{kv.block_tables + table, kv.sink_rows, kv.hole_rows ? kv.hole_rows[seq] : 0,
                         merges ? kv.merged_tables + table : NULL, merged};
}

/* The most kept positions the sequence's tables can hold: any length past it is clamped. */
static __device__ __forceinline__ int kept_capacity(const paged_kv_layer &kv, const sequence_rows &rows) {
    return kv.max_blocks_per_seq * kv.block_size - rows.hole + rows.merged;
}

/* The table row of kept position t (of its own table; positions before `merged` excepted). */
static __device__ __forceinline__ int table_row(const sequence_rows &rows, int t) {
    return t < rows.sinks ? t : t + rows.hole;
}

/* A kept position's page row of one head, (block * n_head + head) * block_size + offset. */
struct kv_row {
    int64_t row;
    bool merged; /* in the lower layer's pages: scale by the ratios (kv_row_factor) */
};

static __device__ __forceinline__ int64_t block_row(const int32_t *table, int row, int head,
                                                    int n_head, int block_size) {
    const int64_t block = table[row / block_size]; /* 64-bit before any stride multiply */
    return (block * n_head + head) * block_size + row % block_size;
}

static __device__ __forceinline__ kv_row page_row(const sequence_rows &rows, int t, int head,
                                                  int n_head, int block_size) {
    if (t < rows.merged) return kv_row{block_row(rows.merged_table, t, head, n_head, block_size), true};
    return kv_row{block_row(rows.table, table_row(rows, t - rows.merged), head, n_head, block_size),
                  false};
}

/* What a row's K or V values are multiplied by: its ratio when merged, else 1. */
static __device__ __forceinline__ float kv_row_factor(const float *ratios /* [rows] */, kv_row r) {
    return r.merged ? ratios[r.row] : 1.0f;
}

/*
 * The pages of kv's format are there and aligned for their loads (16 bytes fp16, 8 int8), and
 * merged rows come with their counts and ratios.
 */
static inline bool kv_pages_ok(const paged_kv_layer &kv) {
    if (kv.merged_tables && !(kv.merged_rows && kv.k_ratios && kv.v_ratios)) return false;
    if (kv.format == PAGED_KV_FP16)
        return kv.k && kv.v && (uintptr_t)kv.k % 16 == 0 && (uintptr_t)kv.v % 16 == 0;
    return kv.format == PAGED_KV_INT8 && kv.k_codes && kv.v_codes && kv.k_scales && kv.v_scales &&
           (uintptr_t)kv.k_codes % 8 == 0 && (uintptr_t)kv.v_codes % 8 == 0;
}

#endif
