/*
 * INT8 KV: the device side of cache/kv_quant.h's format, bit for bit, in three kernels.
 *
 * - The fused KV write: the K and V rows that the QKV GEMM produced, quantized on their way into
 *   one layer's int8 pages through the slot mapping (launch_kv_write_fp16's contract). No fp16
 *   copy of the rows is made.
 * - The unfused path, kept as the baseline the benchmarks compare against: a quantize of rows
 *   that launch_kv_write_fp16 stored in fp16 pages, and a dequantize that materializes the int8
 *   rows of a set of sequences as fp16 pages, for the fp16 attention kernels.
 *
 * Layout per layer: codes [num_blocks][n_head][block_size][64] int8, scales
 * [num_blocks][n_head][block_size] fp16: page row r (= (block * n_head + head) * block_size +
 * offset) has its codes at r * 64 and its scale at r. Per row of 64 values x:
 *   scale = __float2half_ru(fminf(__fdiv_rn(max|x|, 127), 65504))
 *   q[i]  = fmaxf(-127, fminf(rintf(__fdiv_rn(x[i], scale)), 127)), or 0 when the scale is 0
 * which is kv_quantize_head's arithmetic step for step (IEEE division, rounding up, ties to even,
 * the clamp in fp32), so even a non-finite value gets the CPU's code: +-inf and NaN saturate.
 *
 * Work split: 8 lanes own one 64-wide row, 8 values each (one 16-byte fp16 access and one 8-byte
 * code access); the row's max|x| is a 3-step butterfly inside that aligned group of lanes.
 * A group always has the same token and head, so it returns or goes on as a whole.
 */
#include <math.h>
#include <stdint.h>

#include "kernels/cuda_check.h"
#include "kernels/half8.cuh"
#include "kernels/kernels.h"
#include "kernels/kv_quant.cuh"
#include "kernels/launch.h"
#include "kernels/paged_kv.cuh"

#define HEAD_SIZE 64
#define THREADS 256

/* ---- kernels ---- */

/* The page row of a (slot, head): block slot / block_size, offset slot % block_size. */
static __device__ __forceinline__ int64_t slot_row(int64_t slot, int head, int n_head,
                                                   int block_size) {
    return (slot / block_size * n_head + head) * block_size + slot % block_size;
}

static __global__ void __launch_bounds__(THREADS)
kv_write_int8_kernel(int8_t *k_codes /* [num_blocks, n_head, block_size, 64] */,
                     __half *k_scales /* [num_blocks, n_head, block_size] */,
                     int8_t *v_codes /* [num_blocks, n_head, block_size, 64] */,
                     __half *v_scales /* [num_blocks, n_head, block_size] */,
                     const __half *qkv /* [n_tokens, qkv_stride]: q | k | v, each n_head * 64 */,
                     int qkv_stride, const int64_t *slot_mapping /* [n_tokens] */, int n_tokens,
                     int n_head, int block_size, int64_t n_slots) {
    const int64_t chunk = (int64_t)blockIdx.x * THREADS + threadIdx.x;
    const int64_t chunks_per_token = (int64_t)n_head * LANES_PER_ROW;
    if (chunk >= n_tokens * chunks_per_token) return;
    const int token = (int)(chunk / chunks_per_token);
    const int within = (int)(chunk % chunks_per_token); /* head * 8 + part */
    const int64_t slot = slot_mapping[token];
    if (slot < 0 || slot >= n_slots) return;
    const int head = within / LANES_PER_ROW, part = within % LANES_PER_ROW;
    const int64_t row = slot_row(slot, head, n_head, block_size);
    const __half *src = qkv + (int64_t)token * qkv_stride + head * HEAD_SIZE + part * 8;
    const int64_t c = (int64_t)n_head * HEAD_SIZE; /* K starts after Q, V after K */
    quantize_row_part(k_codes + row * HEAD_SIZE, k_scales + row, load_half8(src + c), part);
    quantize_row_part(v_codes + row * HEAD_SIZE, v_scales + row, load_half8(src + 2 * c), part);
}

static __global__ void __launch_bounds__(THREADS)
kv_quantize_kernel(int8_t *k_codes /* [num_blocks, n_head, block_size, 64] */,
                   __half *k_scales /* [num_blocks, n_head, block_size] */,
                   int8_t *v_codes /* [num_blocks, n_head, block_size, 64] */,
                   __half *v_scales /* [num_blocks, n_head, block_size] */, int64_t n_slots,
                   const __half *k_pages /* [num_src_blocks, n_head, block_size, 64] */,
                   const __half *v_pages /* [num_src_blocks, n_head, block_size, 64] */,
                   int64_t n_src_slots, const int64_t *src_slots /* [n_tokens] */,
                   const int64_t *dst_slots /* [n_tokens] */, int n_tokens, int n_head,
                   int block_size) {
    const int64_t chunk = (int64_t)blockIdx.x * THREADS + threadIdx.x;
    const int64_t chunks_per_token = (int64_t)n_head * LANES_PER_ROW;
    if (chunk >= n_tokens * chunks_per_token) return;
    const int token = (int)(chunk / chunks_per_token);
    const int within = (int)(chunk % chunks_per_token); /* head * 8 + part */
    const int64_t src_slot = src_slots[token], dst_slot = dst_slots[token];
    if (src_slot < 0 || src_slot >= n_src_slots || dst_slot < 0 || dst_slot >= n_slots) return;
    const int head = within / LANES_PER_ROW, part = within % LANES_PER_ROW;
    const int64_t src = slot_row(src_slot, head, n_head, block_size) * HEAD_SIZE + part * 8;
    const int64_t row = slot_row(dst_slot, head, n_head, block_size);
    quantize_row_part(k_codes + row * HEAD_SIZE, k_scales + row, load_half8(k_pages + src), part);
    quantize_row_part(v_codes + row * HEAD_SIZE, v_scales + row, load_half8(v_pages + src), part);
}

/* One lane's 8 values of int8 row `row` as fp16 at `dst` (rounded to nearest). */
static __device__ __forceinline__ void dequantize_part(__half *dst /* [8] */,
                                                       const int8_t *codes /* [rows, 64] */,
                                                       const __half *scales /* [rows] */,
                                                       int64_t row, int part) {
    float x[8];
    const int8x8 q = load_int8x8(codes + row * HEAD_SIZE + part * 8);
    dequantize_int8x8(q, __half2float(scales[row]), x);
    store_half8(dst, pack_half8(x));
}

/*
 * Grid (chunks of the longest sequence, n_seqs). Chunks go part fastest, then offset in the
 * block, then head, then logical block: consecutive threads walk the contiguous rows of a page.
 */
static __global__ void __launch_bounds__(THREADS)
kv_dequantize_kernel(__half *k_out /* [num_out_blocks, n_head, block_size, 64] */,
                     __half *v_out /* [num_out_blocks, n_head, block_size, 64] */,
                     const int32_t *out_tables /* [n_seqs, kv.max_blocks_per_seq] */,
                     int num_out_blocks, paged_kv_layer kv,
                     const int32_t *seq_lens /* [n_seqs] */) {
    const int seq = blockIdx.y, B = kv.block_size;
    const int64_t chunk = (int64_t)blockIdx.x * THREADS + threadIdx.x;
    const int64_t chunks_per_block = (int64_t)kv.n_head * B * LANES_PER_ROW;
    const int logical = (int)(chunk / chunks_per_block);
    const int within = (int)(chunk % chunks_per_block);
    const int head = within / (B * LANES_PER_ROW), offset = within / LANES_PER_ROW % B;
    const int part = within % LANES_PER_ROW;
    const sequence_rows rows = sequence_view(kv, seq);
    const int row = logical * B + offset; /* a table row */
    const int n_rows = min(seq_lens[seq] + rows.hole, kv.max_blocks_per_seq * B);
    if (row >= n_rows || (row >= rows.sinks && row < rows.sinks + rows.hole)) return;
    const int64_t table_index = (int64_t)seq * kv.max_blocks_per_seq + logical;
    const int64_t out_block = out_tables[table_index]; /* 64-bit before any stride multiplication */
    if (out_block < 0 || out_block >= num_out_blocks) return;
    const int64_t src = ((int64_t)rows.table[logical] * kv.n_head + head) * B + offset;
    const int64_t dst = ((out_block * kv.n_head + head) * B + offset) * HEAD_SIZE + part * 8;
    dequantize_part(k_out + dst, kv.k_codes, kv.k_scales, src, part);
    dequantize_part(v_out + dst, kv.v_codes, kv.v_scales, src, part);
}

/* ---- launchers ---- */

/* The checks every INT8 page set of a launch passes: codes 8-byte aligned, scales present. */
static bool int8_pages_ok(const void *k_codes, const void *k_scales, const void *v_codes,
                          const void *v_scales) {
    return k_codes && k_scales && v_codes && v_scales && (uintptr_t)k_codes % 8 == 0 &&
           (uintptr_t)v_codes % 8 == 0 && (uintptr_t)k_scales % 2 == 0 &&
           (uintptr_t)v_scales % 2 == 0;
}

extern "C" void launch_kv_write_int8(int8_t *k_codes, gpt2_f16 *k_scales, int8_t *v_codes,
                                     gpt2_f16 *v_scales, const gpt2_f16 *qkv, int qkv_stride,
                                     const int64_t *slot_mapping, int n_tokens, int n_head,
                                     int block_size, int num_blocks, cudaStream_t stream) {
    const char *op = "kv_write_int8";
    LAUNCH_REQUIRE(n_tokens >= 0 && n_head >= 1 && block_size >= 1 && num_blocks >= 1, op);
    if (n_tokens == 0) return;
    LAUNCH_REQUIRE(int8_pages_ok(k_codes, k_scales, v_codes, v_scales), op);
    LAUNCH_REQUIRE(qkv && slot_mapping, op);
    LAUNCH_REQUIRE(qkv_stride >= 3 * n_head * HEAD_SIZE && qkv_stride % 8 == 0, op);
    LAUNCH_REQUIRE(half8_aligned(qkv), op);
    const int64_t n_chunks = (int64_t)n_tokens * n_head * LANES_PER_ROW;
    LAUNCH_KERNEL(kv_write_int8_kernel, (unsigned)CEIL_DIV(n_chunks, (int64_t)THREADS), THREADS, 0,
                  stream, k_codes, (__half *)k_scales, v_codes, (__half *)v_scales,
                  (const __half *)qkv, qkv_stride, slot_mapping, n_tokens, n_head, block_size,
                  (int64_t)num_blocks * block_size);
    LAUNCH_CHECK(op, stream);
}

extern "C" void launch_kv_quantize(int8_t *k_codes, gpt2_f16 *k_scales, int8_t *v_codes,
                                   gpt2_f16 *v_scales, int num_blocks, const gpt2_f16 *k_pages,
                                   const gpt2_f16 *v_pages, int num_src_blocks,
                                   const int64_t *src_slots, const int64_t *dst_slots,
                                   int n_tokens, int n_head, int block_size, cudaStream_t stream) {
    const char *op = "kv_quantize";
    LAUNCH_REQUIRE(n_tokens >= 0 && n_head >= 1 && block_size >= 1, op);
    LAUNCH_REQUIRE(num_blocks >= 1 && num_src_blocks >= 1, op);
    if (n_tokens == 0) return;
    LAUNCH_REQUIRE(int8_pages_ok(k_codes, k_scales, v_codes, v_scales), op);
    LAUNCH_REQUIRE(k_pages && v_pages && src_slots && dst_slots, op);
    LAUNCH_REQUIRE(half8_aligned(k_pages) && half8_aligned(v_pages), op);
    const int64_t n_chunks = (int64_t)n_tokens * n_head * LANES_PER_ROW;
    LAUNCH_KERNEL(kv_quantize_kernel, (unsigned)CEIL_DIV(n_chunks, (int64_t)THREADS), THREADS, 0,
                  stream, k_codes, (__half *)k_scales, v_codes, (__half *)v_scales,
                  (int64_t)num_blocks * block_size, (const __half *)k_pages,
                  (const __half *)v_pages, (int64_t)num_src_blocks * block_size, src_slots,
                  dst_slots, n_tokens, n_head, block_size);
    LAUNCH_CHECK(op, stream);
}

extern "C" void launch_kv_dequantize(gpt2_f16 *k_out, gpt2_f16 *v_out, const int32_t *out_tables,
                                     int num_out_blocks, paged_kv_layer kv,
                                     const int32_t *seq_lens, int n_seqs, int max_seq_len,
                                     cudaStream_t stream) {
    const char *op = "kv_dequantize";
    LAUNCH_REQUIRE(kv.format == PAGED_KV_INT8, op);
    LAUNCH_REQUIRE(n_seqs >= 1 && n_seqs <= 65535 && max_seq_len >= 1 && num_out_blocks >= 1, op);
    LAUNCH_REQUIRE(kv.n_head >= 1 && kv.block_size >= 1 && kv.max_blocks_per_seq >= 1, op);
    LAUNCH_REQUIRE(max_seq_len <= kv.max_blocks_per_seq * kv.block_size, op);
    LAUNCH_REQUIRE(int8_pages_ok(kv.k_codes, kv.k_scales, kv.v_codes, kv.v_scales), op);
    LAUNCH_REQUIRE(kv.block_tables && out_tables && seq_lens, op);
    LAUNCH_REQUIRE(!kv.merged_tables, op); /* it copies one table's rows: none merged */
    LAUNCH_REQUIRE(k_out && v_out && half8_aligned(k_out) && half8_aligned(v_out), op);
    const int max_rows = kv.hole_rows ? kv.max_blocks_per_seq * kv.block_size : max_seq_len;
    const int64_t n_chunks =
        (int64_t)CEIL_DIV(max_rows, kv.block_size) * kv.n_head * kv.block_size * LANES_PER_ROW;
    const dim3 grid((unsigned)CEIL_DIV(n_chunks, (int64_t)THREADS), (unsigned)n_seqs);
    LAUNCH_KERNEL(kv_dequantize_kernel, grid, THREADS, 0, stream, (__half *)k_out, (__half *)v_out,
                  out_tables, num_out_blocks, kv, seq_lens);
    LAUNCH_CHECK(op, stream);
}
