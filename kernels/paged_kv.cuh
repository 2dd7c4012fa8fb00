/*
 * Reading a sequence's K and V rows through its block table (kernels.h, paged_kv_layer), shared
 * by the attention kernels and the unfused INT8 dequantize.
 *
 * A sequence's kept positions are numbered 0, 1, .. in order (the attention kernels' "t"): the
 * first kv.sink_rows sit at table rows 0 .. sink_rows - 1, the rest after the hole that eviction
 * left, hole_rows[seq] rows further on. Without eviction (hole_rows NULL, or 0) kept position t
 * is table row t, which is position t.
 */
#ifndef GPT2_PAGED_KV_CUH
#define GPT2_PAGED_KV_CUH

#include <stdint.h>

#include "kernels/kernels.h"

/* One sequence's view of a layer: its table row and its hole. */
struct sequence_rows {
    const int32_t *table; /* [max_blocks_per_seq] block id of each logical block */
    int sinks, hole;      /* kept positions >= sinks sit hole rows further on */
};

static __device__ __forceinline__ sequence_rows sequence_view(const paged_kv_layer &kv, int seq) {
    return sequence_rows{kv.block_tables + (int64_t)seq * kv.max_blocks_per_seq, kv.sink_rows,
                         kv.hole_rows ? kv.hole_rows[seq] : 0};
}

/* The table row of kept position t. */
static __device__ __forceinline__ int table_row(const sequence_rows &rows, int t) {
    return t < rows.sinks ? t : t + rows.hole;
}

/* The page row (block * n_head + head) * block_size + offset of kept position t of one head. */
static __device__ __forceinline__ int64_t page_row(const sequence_rows &rows, int t, int head,
                                                   int n_head, int block_size) {
    const int row = table_row(rows, t);
    const int64_t block = rows.table[row / block_size]; /* 64-bit before any stride multiply */
    return (block * n_head + head) * block_size + row % block_size;
}

/* The pages of kv's format are there and aligned for their loads (16 bytes fp16, 8 int8). */
static inline bool kv_pages_ok(const paged_kv_layer &kv) {
    if (kv.format == PAGED_KV_FP16)
        return kv.k && kv.v && (uintptr_t)kv.k % 16 == 0 && (uintptr_t)kv.v % 16 == 0;
    return kv.format == PAGED_KV_INT8 && kv.k_codes && kv.v_codes && kv.k_scales && kv.v_scales &&
           (uintptr_t)kv.k_codes % 8 == 0 && (uintptr_t)kv.v_codes % 8 == 0;
}

#endif
