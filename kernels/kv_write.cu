/*
 * KV write: the K and V rows that the QKV GEMM produced for a batch of tokens, stored into one
 * layer's pages of the paged KV pool through a slot mapping.
 *
 * Token i goes to slot slot_mapping[i] = block * block_size + offset (int64; -1 means "skip":
 * padding, or a token whose KV is not kept). A slot past the pool's end is never written either,
 * so a bad mapping cannot corrupt memory outside the pages. Page layout per layer:
 * [num_blocks][n_head][block_size][64], so one (token, head) row is 64 contiguous halves.
 * Each thread moves one 16-byte chunk (8 halves) of K and the same chunk of V: a pure copy, as
 * wide as the loads go, with consecutive threads on consecutive chunks of a row.
 */
#include <stdint.h>

#include "kernels/cuda_check.h"
#include "kernels/kernels.h"
#include "kernels/launch.h"

#define HEAD_SIZE 64
#define CHUNKS_PER_ROW (HEAD_SIZE / 8) /* 16-byte chunks per 64-wide row */
#define THREADS 256

/* ---- kernels ---- */

static __global__ void __launch_bounds__(THREADS)
kv_write_fp16_kernel(__half *k_pages /* [num_blocks, n_head, block_size, 64] */,
                     __half *v_pages /* [num_blocks, n_head, block_size, 64] */,
                     const __half *qkv /* [n_tokens, qkv_stride]: q | k | v, each n_head * 64 */,
                     int qkv_stride, const int64_t *slot_mapping /* [n_tokens] */, int n_tokens,
                     int n_head, int block_size, int64_t n_slots) {
    const int64_t chunk = (int64_t)blockIdx.x * THREADS + threadIdx.x;
    const int64_t chunks_per_token = (int64_t)n_head * CHUNKS_PER_ROW;
    if (chunk >= n_tokens * chunks_per_token) return;
    const int token = (int)(chunk / chunks_per_token);
    const int within = (int)(chunk % chunks_per_token); /* head * 8 + chunk of the row */
    const int64_t slot = slot_mapping[token];
    if (slot < 0 || slot >= n_slots) return;
    const int head = within / CHUNKS_PER_ROW, part = within % CHUNKS_PER_ROW;
    const int64_t block = slot / block_size, offset = slot % block_size;
    const int64_t dst = ((block * n_head + head) * block_size + offset) * HEAD_SIZE + part * 8;
    const __half *row = qkv + (int64_t)token * qkv_stride + head * HEAD_SIZE + part * 8;
    const int64_t c = (int64_t)n_head * HEAD_SIZE; /* K starts after Q, V after K */
    *reinterpret_cast<uint4 *>(k_pages + dst) = *reinterpret_cast<const uint4 *>(row + c);
    *reinterpret_cast<uint4 *>(v_pages + dst) = *reinterpret_cast<const uint4 *>(row + 2 * c);
}

/* ---- launchers ---- */

extern "C" void launch_kv_write_fp16(gpt2_f16 *k_pages, gpt2_f16 *v_pages, const gpt2_f16 *qkv,
                                     int qkv_stride, const int64_t *slot_mapping, int n_tokens,
                                     int n_head, int block_size, int num_blocks,
                                     cudaStream_t stream) {
    const char *op = "kv_write_fp16";
    LAUNCH_REQUIRE(n_tokens >= 0 && n_head >= 1 && block_size >= 1 && num_blocks >= 1, op);
    if (n_tokens == 0) return;
    LAUNCH_REQUIRE(k_pages && v_pages && qkv && slot_mapping, op);
    LAUNCH_REQUIRE(qkv_stride >= 3 * n_head * HEAD_SIZE && qkv_stride % 8 == 0, op);
    LAUNCH_REQUIRE((uintptr_t)qkv % 16 == 0 && (uintptr_t)k_pages % 16 == 0 &&
                       (uintptr_t)v_pages % 16 == 0, op);
    const int64_t n_chunks = (int64_t)n_tokens * n_head * CHUNKS_PER_ROW;
    LAUNCH_KERNEL(kv_write_fp16_kernel, (unsigned)CEIL_DIV(n_chunks, (int64_t)THREADS), THREADS, 0,
                  stream, (__half *)k_pages, (__half *)v_pages, (const __half *)qkv, qkv_stride,
                  slot_mapping, n_tokens, n_head, block_size, (int64_t)num_blocks * block_size);
    LAUNCH_CHECK("kv_write_fp16", stream);
}
