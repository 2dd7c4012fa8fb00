/*
 * Shared pieces of the GPU kernel tests: the seed, device copies, random fp16 data, and a paged
 * KV pool with shuffled pages for the attention tests. Host-side C; any failure exits.
 */
#ifndef GPT2_GPU_TEST_UTIL_H
#define GPT2_GPU_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"

/* The test's seed: $GPT2_TEST_SEED, else the time; printed so that a failure can be replayed. */
uint64_t gpu_test_seed(const char *test_name);

/* A device copy of bytes of host memory (cudaMalloc + cudaMemcpy). */
void *device_copy(const void *host, size_t bytes);

/* n fp16 bit patterns of values uniform in [-scale, scale]. */
uint16_t *random_halves(size_t n, float scale, uint64_t *rng);

/* fp16 bits to floats. */
float *halves_to_floats(const uint16_t *h, size_t n);

/*
 * One layer of a paged pool holding n_seqs sequences of seq_lens[s] tokens with random K and V.
 * Physical blocks are handed out in a random order, so every sequence's pages are scattered;
 * pages nobody owns hold fp16 NaN, and table entries past a sequence's blocks hold a huge id,
 * so a read outside a sequence's own pages shows up.
 */
typedef struct {
    int n_head, block_size, max_blocks_per_seq, num_blocks, n_seqs;
    uint16_t *k_pages, *v_pages; /* [num_blocks, n_head, block_size, 64] host copies */
    int32_t *tables;             /* [n_seqs, max_blocks_per_seq] host copy */
    int sinks;                   /* set_holes: kept positions before each hole */
    int32_t *holes;              /* [n_seqs] set_holes: host copy, or NULL */
    int n_upper;                 /* set_merged: sequences [0, n_upper) read merged rows */
    int32_t *merged;             /* [n_upper] set_merged: host copy, or NULL */
    float *k_ratios, *v_ratios;  /* [num_blocks, n_head, block_size] set_merged: host copies */
    paged_kv_layer device;       /* the same on the device */
} paged_kv_fixture;

void paged_kv_fixture_create(paged_kv_fixture *f, int n_head, int block_size, int max_tokens,
                             const int *seq_lens /* [n_seqs] */, int n_seqs, uint64_t *rng);
void paged_kv_fixture_destroy(paged_kv_fixture *f);

/*
 * Gives the fixture eviction holes: table rows [sinks, sinks + holes[s]) of sequence s are
 * evicted (f->device.hole_rows, sink_rows; holes NULL: none). Returns the lengths the kernels
 * take, seq_lens[s] - holes[s] kept positions, on the device (the caller frees them).
 */
int32_t *paged_kv_fixture_set_holes(paged_kv_fixture *f, const int *seq_lens /* [n_seqs] */,
                                    int sinks, const int *holes /* [n_seqs] or NULL */);

/*
 * A fixture for MiniCache at a pair's upper layer: sequence s < n_seqs reads first merged[s]
 * rows of the lower layer (table n_seqs + s, each (row, head) of K and of V scaled by a random
 * ratio in [1/4, 4]: f->device.merged_tables, merged_rows, k_ratios, v_ratios; unowned rows'
 * ratios are NaN), then own_lens[s] rows of its own (table s), in pages of 16 tokens. Returns
 * the kernels' lengths merged[s] + own_lens[s] on the device (the caller frees them).
 */
int32_t *paged_kv_fixture_create_merged(paged_kv_fixture *f, int n_head, int max_tokens,
                                        const int *own_lens /* [n_seqs] */,
                                        const int *merged /* [n_seqs] */, int n_seqs,
                                        uint64_t *rng);

/*
 * Kept positions [0, n_kept) of sequence seq as the kernels must read them, fp32, all heads
 * side by side: past its hole (set_holes), after its merged rows scaled by their ratios
 * (set_merged).
 */
void paged_kv_fixture_kept_rows(const paged_kv_fixture *f, int seq, int n_kept,
                                float *k /* [n_kept, n_head * 64] */,
                                float *v /* [n_kept, n_head * 64] */);

/*
 * The reference attention of sequence seq: cpu_causal_attention (model/cpu_ops) of n_new queries,
 * those of its last n_new kept positions, over its n_kept kept rows (paged_kv_fixture_kept_rows).
 */
void paged_kv_fixture_attention(const paged_kv_fixture *f, int seq, int n_kept,
                                const float *q /* [n_new, q_stride] */, int q_stride, int n_new,
                                float *out /* [n_new, n_head * 64] */);

/* Rows [0, n_tokens) of sequence seq as fp32, all heads side by side: what cpu_ops reads. */
void paged_kv_fixture_rows(const paged_kv_fixture *f, int seq, int n_tokens,
                           float *k /* [n_tokens, n_head * 64] */,
                           float *v /* [n_tokens, n_head * 64] */);

/*
 * The same pool in the INT8 format (cache/kv_quant.h): every row of f's owned pages, times a
 * random factor in [1/4, 4] (so that rows have scales of their own), quantized by
 * kv_quantize_head on the host. Rows of pages nobody owns hold code 127 and a NaN scale, so a
 * read outside a sequence's pages shows up. device is the INT8 layer, on f's device tables.
 */
typedef struct {
    int8_t *k_codes, *v_codes;     /* [num_blocks, n_head, block_size, 64] host copies */
    uint16_t *k_scales, *v_scales; /* [num_blocks, n_head, block_size] host copies */
    paged_kv_layer device;
} paged_kv_int8_fixture;

void paged_kv_int8_fixture_create(paged_kv_int8_fixture *q, const paged_kv_fixture *f,
                                  uint64_t *rng);
void paged_kv_int8_fixture_destroy(paged_kv_int8_fixture *q);

/* Rows [0, n_tokens) of sequence seq dequantized (kv_dequantize_head), all heads side by side. */
void paged_kv_int8_fixture_rows(const paged_kv_int8_fixture *q, const paged_kv_fixture *f, int seq,
                                int n_tokens, float *k /* [n_tokens, n_head * 64] */,
                                float *v /* [n_tokens, n_head * 64] */);

#endif
