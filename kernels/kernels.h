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
 * One layer of the paged KV pool, as the attention kernels read it. A block id names one page
 * of this layer; the table row of sequence s maps its logical blocks to block ids (int32 ids,
 * widened to 64 bits before any stride multiplication). Per-layer tables may alias one table.
 */
typedef struct {
    const gpt2_f16 *k;           /* [num_blocks, n_head, block_size, 64] this layer's K pages */
    const gpt2_f16 *v;           /* [num_blocks, n_head, block_size, 64] this layer's V pages */
    const int32_t *block_tables; /* [n_seqs, max_blocks_per_seq] block id of each logical block */
    int max_blocks_per_seq;
    int block_size;              /* tokens per page */
    int n_head;                  /* heads of 64 */
} paged_kv_layer;

/* ---- device.cu: the device, as the host driver needs to know it ---- */

/* Number of usable CUDA devices; 0 when there is no device or no driver. */
int gpt2_cuda_device_count(void);

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
 * positions context_lens[s] - n_new + i, whose K and V (with every earlier position's) are
 * already in the pages. Each query attends causally to positions [0, its own]. max_new_tokens
 * bounds every n_new (it sizes the grid). fp32 online softmax and accumulation; fp16 out.
 */
void launch_attention_prefill(gpt2_f16 *out /* [n_tokens, out_stride], head h at h * 64 */,
                              int out_stride,
                              const gpt2_f16 *q /* [n_tokens, q_stride], head h at h * 64 */,
                              int q_stride, paged_kv_layer kv,
                              const int32_t *query_starts /* [n_seqs + 1] */,
                              const int32_t *context_lens /* [n_seqs] cached + new tokens */,
                              int n_seqs, int max_new_tokens, cudaStream_t stream);

/* ---- gemv.cu: the skinny GEMMs of a decode step (1 to 8 rows) ---- */

/*
 * What follows the bias in a fused linear layer (GEMV here, cuBLASLt in gemm.c): nothing, GPT-2's
 * GELU (tanh form), or a residual add.
 */
typedef enum { LINEAR_PLAIN, LINEAR_GELU, LINEAR_RESIDUAL } linear_epilogue;

/*
 * y[r, n] = epilogue(bias[n] + sum_k x[r, k] * w[n, k]) for r < rows (1..8), n < N; bias may be
 * NULL; LINEAR_RESIDUAL adds residual[r, n] last (y may be residual itself: each element is read
 * before it is written by the same thread). Weights are output-major, w[n, k] = Conv1D weight
 * [k, n]. K % 8 == 0; x, w 16-byte aligned. fp32 accumulation, fp16 out.
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

/* ---- attention_decode.cu: one new token per sequence against its paged K and V ---- */

/* Bytes of workspace launch_attention_decode needs (0 when max_seq_len fits one partition). */
size_t attention_decode_workspace_bytes(int n_seqs, int n_head, int max_seq_len);

/*
 * out[s, h*64 : h*64+64] = softmax(q_s,h . K_s,h^T / 8) V_s,h over positions [0, seq_lens[s]) of
 * sequence s, K and V read from the pages (the new token's K/V already written there).
 * seq_lens[s] <= max_seq_len for every s (the grid is sized by max_seq_len); a length of 0 gives
 * a zero row. fp32 scores, softmax and accumulation; fp16 out.
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
