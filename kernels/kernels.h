/*
 * The C launcher API of every kernel in kernels/. Launchers take device pointers and a stream,
 * check their preconditions and their launch, and never synchronize.
 */
#ifndef GPT2_KERNELS_H
#define GPT2_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime.h>

/*
 * An IEEE binary16 value: __half inside CUDA sources (nvcc, or the emulation build's host C++),
 * its raw bits from C. Same size and layout.
 */
#if defined(__CUDACC__) || (defined(GPT2_CUDA_EMULATION) && defined(__cplusplus))
#include <cuda_fp16.h>
typedef __half gpt2_f16;
#else
typedef uint16_t gpt2_f16;
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the paged KV pool as kernels see it (cache/ owns the bookkeeping) ---- */

/*
 * How a layer's K and V pages are stored. INT8 is cache/kv_quant.h's format: int8 codes in the
 * fp16 page layout, and one fp16 scale per (token, head) row beside them, addressed by the same
 * block id; a row's values are code * scale in fp32. Zero is FP16, so a layer set up without
 * naming its format is FP16.
 */
typedef enum { PAGED_KV_FP16 = 0, PAGED_KV_INT8 = 1 } paged_kv_format;

/*
 * One layer of the paged KV pool, as the attention kernels read it. A block id names one page
 * of this layer; the table row of sequence s maps its logical blocks to block ids (int32 ids,
 * widened to 64 bits before any stride multiplication). Per-layer tables may alias one table.
 * FP16 pages are 16-byte aligned, INT8 codes 8-byte aligned; the pointers of the other format
 * are not read (they may be NULL).
 *
 * Eviction (cache/kv_pool.h) leaves one hole per sequence: the kernels read a sequence's kept
 * positions t = 0, 1, .. (the lengths they are given count kept positions) at table rows t for
 * t < sink_rows and t + hole_rows[s] after. hole_rows NULL: no hole, kept position t is row t.
 */
typedef struct {
    const gpt2_f16 *k;           /* FP16: [num_blocks, n_head, block_size, 64] K pages */
    const gpt2_f16 *v;           /* FP16: [num_blocks, n_head, block_size, 64] V pages */
    const int32_t *block_tables; /* [n_seqs, max_blocks_per_seq] block id of each logical block */
    int max_blocks_per_seq;
    int block_size;              /* tokens per page */
    int n_head;                  /* heads of 64 */
    paged_kv_format format;      /* PAGED_KV_FP16 (0) or PAGED_KV_INT8 */
    const int8_t *k_codes;       /* INT8: [num_blocks, n_head, block_size, 64] K codes */
    const int8_t *v_codes;       /* INT8: [num_blocks, n_head, block_size, 64] V codes */
    const gpt2_f16 *k_scales;    /* INT8: [num_blocks, n_head, block_size] scale of each K row */
    const gpt2_f16 *v_scales;    /* INT8: [num_blocks, n_head, block_size] scale of each V row */
    const int32_t *hole_rows;    /* [n_seqs] evicted rows skipped after the sinks, or NULL */
    int sink_rows;               /* kept positions before the hole */
    float *h2o_scores;           /* [num_blocks, n_head, block_size] H2O: each row's accumulated
                                    attention probability, per head; NULL: not kept */
    /* MiniCache, at a pair's upper layer (NULL elsewhere): kept positions t < merged_rows[s] are
       the lower layer's rows t, read through merged_tables and scaled per head by the ratios;
       later ones are this layer's own rows t - merged_rows[s] (no hole under MiniCache). */
    const int32_t *merged_tables; /* [n_seqs, max_blocks_per_seq] the lower layer's tables */
    const int32_t *merged_rows;   /* [n_seqs] positions held merged */
    const float *k_ratios;        /* [num_blocks, n_head, block_size] |upper K| / |lower K| of a
                                     merged row, addressed by the lower layer's block */
    const float *v_ratios;        /* [num_blocks, n_head, block_size] the same for V */
} paged_kv_layer;

/* ---- device.cu: the device, as the host driver needs to know it ---- */

/* Number of usable CUDA devices; 0 when there is no device or no driver. */
int gpt2_cuda_device_count(void);
/* Makes device `device` current for this thread. Returns 0, or -1 when it cannot be used. */
int gpt2_cuda_set_device(int device);

/* ---- convert.cu: checkpoint dtypes to the engine's fp16 weights ---- */

typedef enum { CONVERT_FROM_F32, CONVERT_FROM_F16, CONVERT_FROM_BF16 } convert_source;

/*
 * out[i] = fp16(in[i]) for i < n, rounding to nearest even; in holds n elements of the source
 * dtype (the raw checkpoint bytes, copied to the device), aligned to its element size.
 */
void launch_convert_to_f16(gpt2_f16 *out /* [n] */, const void *in /* [n] */, convert_source from,
                           size_t n, cudaStream_t stream);

/* ---- attention_prefill.cu: causal attention of query chunks over their paged K and V ---- */

/*
 * Sequence s owns rows [query_starts[s], query_starts[s+1]) of q and out: n_new query tokens at
 * kept positions context_lens[s] - n_new + i, whose K and V (with every earlier kept
 * position's) are already in the pages. Each query attends causally to kept positions [0, its own]. max_new_tokens
 * bounds every n_new (it sizes the grid). fp32 online softmax and accumulation; fp16 out.
 * Pages of either format (kv.format); INT8 rows are dequantized in registers as they are loaded.
 */
void launch_attention_prefill(gpt2_f16 *out /* [n_tokens, out_stride], head h at h * 64 */,
                              int out_stride,
                              const gpt2_f16 *q /* [n_tokens, q_stride], head h at h * 64 */,
                              int q_stride, paged_kv_layer kv,
                              const int32_t *query_starts /* [n_seqs + 1] */,
                              const int32_t *context_lens /* [n_seqs] cached + new tokens */,
                              int n_seqs, int max_new_tokens, cudaStream_t stream);

/* ---- gemv.cu: the skinny GEMMs of a decode step (built for 1 to 8 rows, takes any number) ---- */

/*
 * What follows the bias in a fused linear layer (GEMV here, cuBLASLt in gemm.c): nothing, GPT-2's
 * GELU (tanh form), or a residual add.
 */
typedef enum { LINEAR_PLAIN, LINEAR_GELU, LINEAR_RESIDUAL } linear_epilogue;

/*
 * y[r, n] = epilogue(bias[n] + sum_k x[r, k] * w[n, k]) for r < rows, n < N; bias may be NULL;
 * LINEAR_RESIDUAL adds residual[r, n] last (y may be residual itself: each element is read
 * before it is written by the same thread). Weights are output-major, w[n, k] = Conv1D weight
 * [k, n]. K % 8 == 0; x, w 16-byte aligned. fp32 accumulation, fp16 out. Built for 1 to 8 rows
 * (the weights are streamed once); more rows go in groups of 8, and each row's result is
 * bit-identical whatever `rows` is: a decode step is batch-invariant.
 */
void launch_gemv_f16(gpt2_f16 *y /* [rows, y_stride] */, int y_stride,
                     const gpt2_f16 *x /* [rows, x_stride] */, int x_stride,
                     const gpt2_f16 *w /* [N, K] */, const gpt2_f16 *bias /* [N] or NULL */,
                     const gpt2_f16 *residual /* [rows, residual_stride] or NULL */,
                     int residual_stride, int rows, int K, int N, linear_epilogue epilogue,
                     cudaStream_t stream);

/* The same with fp32 out and no bias or epilogue: the LM head's logits, w = wte [V, C]. */
void launch_gemv_f32_out(float *y /* [rows, y_stride] */, int y_stride,
                         const gpt2_f16 *x /* [rows, x_stride] */, int x_stride,
                         const gpt2_f16 *w /* [N, K] */, int rows, int K, int N,
                         cudaStream_t stream);

/* ---- gemm.c: linear layers, by shape: the GEMV above for few rows, cuBLASLt for more ---- */

#define GEMM_GEMV_MAX_ROWS 8 /* up to this many rows a linear layer runs on the GEMV */

/* A cuBLASLt handle and its device workspace, one per stream that runs linear layers. */
typedef struct gemm_context gemm_context;
gemm_context *gemm_context_create(void); /* NULL when out of host memory */
void gemm_context_destroy(gemm_context *ctx);

/*
 * y[r, n] = epilogue(bias[n] + sum_k x[r, k] * w[n, k]), the contract of launch_gemv_f16, for
 * any number of rows. With LINEAR_RESIDUAL y may be the residual itself.
 */
void launch_linear(gemm_context *ctx, gpt2_f16 *y /* [rows, y_stride] */, int y_stride,
                   const gpt2_f16 *x /* [rows, x_stride] */, int x_stride,
                   const gpt2_f16 *w /* [N, K] */, const gpt2_f16 *bias /* [N] or NULL */,
                   const gpt2_f16 *residual /* [rows, residual_stride] or NULL */,
                   int residual_stride, int rows, int K, int N, linear_epilogue epilogue,
                   cudaStream_t stream);

/*
 * The cuBLASLt path of launch_linear and launch_linear_f32_out, at any number of rows (fp16
 * operands, fp32 compute, bias and GELU in the epilogue): what the decode GEMV is benchmarked
 * against on its own shapes.
 */
void launch_linear_cublaslt(gemm_context *ctx, gpt2_f16 *y /* [rows, y_stride] */, int y_stride,
                            const gpt2_f16 *x /* [rows, x_stride] */, int x_stride,
                            const gpt2_f16 *w /* [N, K] */, const gpt2_f16 *bias /* [N] or NULL */,
                            const gpt2_f16 *residual /* [rows, residual_stride] or NULL */,
                            int residual_stride, int rows, int K, int N, linear_epilogue epilogue,
                            cudaStream_t stream);
void launch_linear_f32_out_cublaslt(gemm_context *ctx, float *y /* [rows, y_stride] */,
                                    int y_stride, const gpt2_f16 *x /* [rows, x_stride] */,
                                    int x_stride, const gpt2_f16 *w /* [N, K] */, int rows, int K,
                                    int N, cudaStream_t stream);

/* fp32 out, no bias: logits = x wte^T for any number of rows. */
void launch_linear_f32_out(gemm_context *ctx, float *y /* [rows, y_stride] */, int y_stride,
                           const gpt2_f16 *x /* [rows, x_stride] */, int x_stride,
                           const gpt2_f16 *w /* [N, K] */, int rows, int K, int N,
                           cudaStream_t stream);

/* ---- kv_write.cu: new K and V rows into a layer's pages ---- */

/*
 * For each token i with slot_mapping[i] in [0, num_blocks * block_size): K and V of token i
 * (columns [C, 2C) and [2C, 3C) of its qkv row, C = n_head * 64) are stored at that slot, i.e.
 * block slot / block_size, offset slot % block_size. Slot -1 (or any slot outside the pool) is
 * skipped.
 */
void launch_kv_write_fp16(gpt2_f16 *k_pages /* [num_blocks, n_head, block_size, 64] */,
                          gpt2_f16 *v_pages /* [num_blocks, n_head, block_size, 64] */,
                          const gpt2_f16 *qkv /* [n_tokens, qkv_stride] */, int qkv_stride,
                          const int64_t *slot_mapping /* [n_tokens] */, int n_tokens, int n_head,
                          int block_size, int num_blocks, cudaStream_t stream);

/* ---- kv_quant.cu: INT8 KV: the fused write, the unfused path's quantize and dequantize ---- */

/*
 * launch_kv_write_fp16's contract (the same slots, -1 and slots past the pool skipped), with K
 * and V stored in the INT8 format: each (token, head) row of 64 values quantized as
 * kv_quantize_head does it, bit for bit, on its way into the pages. No fp16 copy is made.
 */
void launch_kv_write_int8(int8_t *k_codes /* [num_blocks, n_head, block_size, 64] */,
                          gpt2_f16 *k_scales /* [num_blocks, n_head, block_size] */,
                          int8_t *v_codes /* [num_blocks, n_head, block_size, 64] */,
                          gpt2_f16 *v_scales /* [num_blocks, n_head, block_size] */,
                          const gpt2_f16 *qkv /* [n_tokens, qkv_stride] */, int qkv_stride,
                          const int64_t *slot_mapping /* [n_tokens] */, int n_tokens, int n_head,
                          int block_size, int num_blocks, cudaStream_t stream);

/*
 * The unfused path's quantize, after launch_kv_write_fp16 wrote the tokens' rows into fp16
 * pages: for each token i, the K and V rows of every head at slot src_slots[i] of the fp16 pages
 * are quantized (as kv_quantize_head) into slot dst_slots[i] of the int8 pages. A token is
 * skipped when either slot is -1 or past its pages. Both page sets have block_size and n_head;
 * the fp16 ones may be a scratch set for the batch only (src_slots[i] = i, say) or pool-sized
 * (src_slots = dst_slots).
 */
void launch_kv_quantize(int8_t *k_codes /* [num_blocks, n_head, block_size, 64] */,
                        gpt2_f16 *k_scales /* [num_blocks, n_head, block_size] */,
                        int8_t *v_codes /* [num_blocks, n_head, block_size, 64] */,
                        gpt2_f16 *v_scales /* [num_blocks, n_head, block_size] */, int num_blocks,
                        const gpt2_f16 *k_pages /* [num_src_blocks, n_head, block_size, 64] */,
                        const gpt2_f16 *v_pages /* [num_src_blocks, n_head, block_size, 64] */,
                        int num_src_blocks, const int64_t *src_slots /* [n_tokens] */,
                        const int64_t *dst_slots /* [n_tokens] */, int n_tokens, int n_head,
                        int block_size, cudaStream_t stream);

/*
 * The unfused path's dequantize: kept positions [0, seq_lens[s]) of each sequence s, read from
 * the INT8 layer kv through its block table, written as fp16 (code * scale rounded to nearest)
 * into the same table row of out_tables[s] in the fp16 pages k_out, v_out (so the copy has kv's
 * hole too). Then the fp16
 * attention runs on (paged_kv_layer){.k = k_out, .v = v_out, .block_tables = out_tables, ...}
 * with kv's geometry and hole. out_tables may be kv.block_tables itself (pool-sized k_out, v_out) or a
 * compact numbering of a scratch buffer; an id outside [0, num_out_blocks) is skipped. Rows past
 * a sequence's length are left as they are. seq_lens[s] <= max_seq_len; n_seqs <= 65535; kv
 * has no MiniCache merged rows (merged_tables NULL).
 */
void launch_kv_dequantize(gpt2_f16 *k_out /* [num_out_blocks, n_head, block_size, 64] */,
                          gpt2_f16 *v_out /* [num_out_blocks, n_head, block_size, 64] */,
                          const int32_t *out_tables /* [n_seqs, kv.max_blocks_per_seq] */,
                          int num_out_blocks, paged_kv_layer kv /* format PAGED_KV_INT8 */,
                          const int32_t *seq_lens /* [n_seqs] */, int n_seqs, int max_seq_len,
                          cudaStream_t stream);

/* ---- kv_h2o.cu: H2O's per-row state and its eviction, in the pool ---- */

/* The pool's pages, writable, with H2O's state beside them (the pointers of the other format unused). */
typedef struct {
    gpt2_f16 *k, *v;               /* FP16: [num_blocks, n_head, block_size, 64] */
    int8_t *k_codes, *v_codes;     /* INT8: [num_blocks, n_head, block_size, 64] */
    gpt2_f16 *k_scales, *v_scales; /* INT8: [num_blocks, n_head, block_size] */
    float *h2o_scores;             /* [num_blocks, n_head, block_size] accumulated probability */
    int32_t *h2o_positions;        /* [num_blocks, block_size] the position of each row's token */
} kv_h2o_pages;

/*
 * For each token i with slot_mapping[i] a slot of the pool (others skipped): its row starts
 * with score 0 in every head and position token_positions[i]. Run after the KV write, before
 * the attention that accumulates into the scores.
 */
void launch_kv_h2o_init(float *scores /* [num_blocks, n_head, block_size] */,
                        int32_t *positions /* [num_blocks, block_size] */,
                        const int64_t *slot_mapping /* [n_tokens] */,
                        const int32_t *token_positions /* [n_tokens] */, int n_tokens, int n_head,
                        int block_size, int num_blocks, cudaStream_t stream);

/*
 * Sequence s holds kept_lens[s] dense rows (table rows 0 .. n - 1, the last one its newest
 * token). While n > targets[s] (targets[s] < 1: never), the row with the least score summed
 * over heads among those whose position is at least `window` older than the newest (ties: the
 * older position) is evicted: the last row moves into its place (K, V, scores, position) and n
 * drops by one. Afterwards rows 0 .. targets[s] - 1 hold the kept tokens, and the blocks past
 * them are free to go back to the pool.
 */
void launch_kv_h2o_evict(kv_h2o_pages pages, paged_kv_format format,
                         const int32_t *block_tables /* [n_seqs, max_blocks_per_seq] */,
                         int max_blocks_per_seq, int n_head, int block_size,
                         const int32_t *kept_lens /* [n_seqs] */,
                         const int32_t *targets /* [n_seqs] */, int window, int n_seqs,
                         cudaStream_t stream);

/* ---- kv_minicache.cu: MiniCache's merge of layer pairs, in the pool ---- */

/* The pool's pages, writable, with MiniCache's norm ratios beside them (other format unused). */
typedef struct {
    gpt2_f16 *k, *v;               /* FP16: [num_blocks, n_head, block_size, 64] */
    int8_t *k_codes, *v_codes;     /* INT8: [num_blocks, n_head, block_size, 64] */
    gpt2_f16 *k_scales, *v_scales; /* INT8: [num_blocks, n_head, block_size] */
    float *k_ratios, *v_ratios;    /* [num_blocks, n_head, block_size] |upper| / |lower| per head
                                      of a merged row, at the lower layer's row */
} kv_minicache_pages;

/*
 * MiniCache after a forward call (cache/kv_policy.h), for pairs p = 0 .. n_pairs - 1 of layers
 * o = first_lower + 2p and u = o + 1, and each sequence s whose call wrote n = query_starts[s+1]
 * - query_starts[s] >= 1 new tokens (a sequence with context_lens[o, s] < n is idle: skipped,
 * merged_tokens[o, s] = 0). Tables, lengths and merged_rows are the call's staged ones.
 *
 * On entry, with M = merged_rows[u, s], N = context_lens[o, s] - n and R = context_lens[u, s] -
 * M - n: o's table rows 0 .. M - 1 hold merged tokens (|o row| times the pair's direction, the
 * upper's ratios beside them), rows M .. N - 1 retained tokens, rows N .. N + n - 1 the call's
 * tokens in order; u's rows 0 .. R - 1 hold retained tokens, R .. R + n - 1 the call's.
 *
 * Token i of the call, in order, is a = o's row N + i and b = u's row R + i, as stored (INT8:
 * code * scale in fp32). It is retained when, for any head, of K or of V, cos(a_h, b_h) <
 * KV_MINICACHE_RETAIN_COS or exactly one of |a_h|, |b_h| is 0: then u's row moves down to the
 * next own row (rows stay dense). Otherwise it merges: o's row M moves to row N + i (a retained
 * row to the freed place), and row M gets, per head, |a_h| d_h with d_h = (a_h/|a_h| +
 * b_h/|b_h|) / |a_h/|a_h| + b_h/|b_h|| (stored in the format: fp16, or requantized), the ratio
 * |b_h| / |a_h| (0 when both are 0); M grows by one. merged_tokens[o, s] = the tokens merged.
 * Afterwards u's own rows past R + (n - merged) hold nothing needed.
 */
void launch_kv_minicache_merge(kv_minicache_pages pages, paged_kv_format format,
                               const int32_t *block_tables /* [n_layer, n_seqs, max_blocks_per_seq] */,
                               int max_blocks_per_seq, int n_head, int block_size,
                               const int32_t *context_lens /* [n_layer, n_seqs] */,
                               const int32_t *merged_rows /* [n_layer, n_seqs] */,
                               const int32_t *query_starts /* [n_seqs + 1] */, int first_lower,
                               int n_pairs, int n_seqs,
                               int32_t *merged_tokens /* [n_layer, n_seqs] out, at lower layers */,
                               cudaStream_t stream);

/* ---- attention_decode.cu: one new token per sequence against its paged K and V ---- */

/* Bytes of workspace launch_attention_decode needs (0 when max_seq_len fits one partition). */
size_t attention_decode_workspace_bytes(int n_seqs, int n_head, int max_seq_len);

/*
 * out[s, h*64 : h*64+64] = softmax(q_s,h . K_s,h^T / 8) V_s,h over kept positions [0, seq_lens[s])
 * of sequence s, K and V read from the pages (the new token's K/V already written there).
 * seq_lens[s] <= max_seq_len for every s (the grid is sized by max_seq_len); a length of 0 gives
 * a zero row. fp32 scores, softmax and accumulation; fp16 out. Pages of either format
 * (kv.format); INT8 rows are dequantized in registers as they are loaded. With kv.h2o_scores,
 * each row's probability (per head) is also added to its score there, in one partition covering
 * the context (max_seq_len <= 1024; no workspace used).
 */
void launch_attention_decode(gpt2_f16 *out /* [n_seqs, n_head * 64] */,
                             float *workspace /* [attention_decode_workspace_bytes / 4] */,
                             size_t workspace_bytes,
                             const gpt2_f16 *q /* [n_seqs, q_stride], head h at h * 64 */,
                             int q_stride, paged_kv_layer kv,
                             const int32_t *seq_lens /* [n_seqs] */, int n_seqs, int max_seq_len,
                             cudaStream_t stream);

/* ---- embedding.cu: token + position embedding ---- */

/*
 * out[i, :] = wte[ids[i], :] + wpe[positions[i], :] for the N pairs, the add in fp32.
 * C % 8 == 0; out, wte and wpe 16-byte aligned. Ids and positions must be valid; a pair with
 * an id outside [0, V) or a position outside [0, P) reads nothing and gets a row of fp16 NaN.
 */
void launch_embedding(gpt2_f16 *out /* [N, C] */, const int32_t *ids /* [N] */,
                      const int32_t *positions /* [N] */, const gpt2_f16 *wte /* [V, C] */,
                      const gpt2_f16 *wpe /* [P, C] */, int N, int C, int V, int P,
                      cudaStream_t stream);

/* ---- layernorm.cu: LayerNorm, and residual add + LayerNorm ---- */

/*
 * out[t, :] = (x[t, :] - mean) / sqrt(var + eps) * gamma + beta, statistics in fp32 (two-pass,
 * biased variance). C % 8 == 0, C <= 8192; every pointer 16-byte aligned. out may be x.
 */
void launch_layernorm(gpt2_f16 *out /* [T, C] */, const gpt2_f16 *x /* [T, C] */,
                      const gpt2_f16 *gamma /* [C] */, const gpt2_f16 *beta /* [C] */, int T, int C,
                      float eps, cudaStream_t stream);

/*
 * residual[t, :] += x[t, :] (fp32 add, stored as fp16), then normed[t, :] = LayerNorm of the
 * stored residual row, as launch_layernorm. Same shape rules; normed may be x, not residual.
 */
void launch_residual_layernorm(gpt2_f16 *residual /* [T, C] */, gpt2_f16 *normed /* [T, C] */,
                               const gpt2_f16 *x /* [T, C] */, const gpt2_f16 *gamma /* [C] */,
                               const gpt2_f16 *beta /* [C] */, int T, int C, float eps,
                               cudaStream_t stream);

/* ---- elementwise.cu: bias, bias + GELU, residual add (the unfused path) ---- */

/* x[t, :] += bias, in fp32. C % 8 == 0; x and bias 16-byte aligned (so for every launcher here). */
void launch_add_bias(gpt2_f16 *x /* [T, C] */, const gpt2_f16 *bias /* [C] */, int T, int C,
                     cudaStream_t stream);

/* x[t, :] = gelu_tanh(x[t, :] + bias), GPT-2's gelu_new in fp32 (as cpu_gelu_tanh). */
void launch_bias_gelu(gpt2_f16 *x /* [T, C] */, const gpt2_f16 *bias /* [C] */, int T, int C,
                      cudaStream_t stream);

/* x += y, in fp32. n % 8 == 0. */
void launch_residual_add(gpt2_f16 *x /* [n] */, const gpt2_f16 *y /* [n] */, size_t n,
                         cudaStream_t stream);

/* ---- sampling.cu: next-token ids from fp32 logits, one row per sequence ---- */

/* ids[r] = the first index of the largest logits[r, :]. 1 <= V <= 2^30. */
void launch_argmax(int32_t *ids /* [rows] */, const float *logits /* [rows, V] */, int rows, int V,
                   cudaStream_t stream);

/*
 * flags[r] = 1 when logits[r, :] holds a NaN or an infinity, else 0: run it before a draw whose
 * probabilities overwrite the logits. 1 <= V <= 2^30.
 */
void launch_find_nonfinite(int32_t *flags /* [rows] */, const float *logits /* [rows, V] */,
                           int rows, int V, cudaStream_t stream);

/*
 * ids[r] = the token that uniforms[r] (in [0, 1)) draws from softmax(logits[r, :] / temperature)
 * cut to the top_k most probable (0: no cut), then to the smallest prefix holding top_p of
 * their mass (1: no cut): the same id as sampler_pick in model/sampler.h, except for uniforms
 * within ~1e-6 of a boundary of its cumulative distribution (sampling.cu says why).
 * temperature <= 0 or top_k == 1 is launch_argmax (uniforms and probs unused, may be NULL).
 * top_k >= 0, any size; 1 <= V <= 2^30. probs is scratch for the probabilities; it may be the
 * logits buffer itself, which is then overwritten.
 */
void launch_sample(int32_t *ids /* [rows] */, const float *logits /* [rows, V] */,
                   const float *uniforms /* [rows] */, float *probs /* [rows, V] scratch */,
                   int rows, int V, float temperature, int top_k, float top_p,
                   cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
