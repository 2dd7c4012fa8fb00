/*
 * The fp32 CPU ops of the reference backend, public so that every GPU kernel test checks
 * against the same code that the CPU forward pass runs. Row-major activations; Conv1D weights
 * in HF's [in, out] layout. Plain loops, written to be read.
 */
#ifndef GPT2_CPU_OPS_H
#define GPT2_CPU_OPS_H

#include <stddef.h>

/* out[t, :] = LayerNorm(x[t, :]) * weight + bias over C features; statistics in double. */
void cpu_layernorm(float *out /* [T, C] */, const float *x /* [T, C] */,
                   const float *weight /* [C] */, const float *bias /* [C] */, int T, int C,
                   float eps);

/* out[t, o] = bias[o] + sum_i x[t, i] * w[i, o]. */
void cpu_matmul_bias(float *out /* [T, outs] */, const float *x /* [T, in] */,
                     const float *w /* [in, outs] */, const float *bias /* [outs] */, int T,
                     int in, int outs);

/* The same over the first outs columns of a wider weight (a query out of a QKV projection). */
void cpu_matmul_bias_columns(float *out /* [T, outs] */, const float *x /* [T, in] */,
                             const float *w /* [in, w_stride] */, int w_stride,
                             const float *bias /* [>= outs] */, int T, int in, int outs);

/* GPT-2's GELU, the tanh approximation ("gelu_new"), in place. */
void cpu_gelu_tanh(float *x /* [n] */, size_t n);

/* x += y. */
void cpu_add_inplace(float *x /* [n] */, const float *y /* [n] */, size_t n);

/*
 * Causal multi-head attention (head size 64) of T new tokens at positions [pos0, pos0 + T).
 * Token t attends to positions [0, pos0 + t]; the key and value of position p are the rows
 * k_rows[p] and v_rows[p] ([C] each), wherever they live (a contiguous cache or pages).
 * Query t is q[t * q_stride .. + C).
 */
void cpu_causal_attention(float *out /* [T, C] */, const float *q /* [T, q_stride] */,
                          int q_stride, const float *const *k_rows /* [pos0 + T] -> [C] */,
                          const float *const *v_rows /* [pos0 + T] -> [C] */, int pos0, int T,
                          int n_head, float *scores /* [pos0 + T] scratch */);

/*
 * The same, and prob_sums[p] += the softmax probability that each query gives row p, summed
 * over the queries and over the heads (H2O's accumulated score), inside the loop that weighs V.
 */
void cpu_causal_attention_scored(float *out /* [T, C] */, const float *q /* [T, q_stride] */,
                                 int q_stride, const float *const *k_rows /* [pos0 + T] -> [C] */,
                                 const float *const *v_rows /* [pos0 + T] -> [C] */, int pos0,
                                 int T, int n_head, float *scores /* [pos0 + T] scratch */,
                                 float *prob_sums /* [pos0 + T], added to */);

/* |x|, accumulated in double. */
double cpu_norm(const float *x /* [n] */, int n);

/* The cosine of the angle between a and b; 1 when either is zero (it has no direction). */
double cpu_cosine(const float *a /* [n] */, const float *b /* [n] */, int n);

/*
 * MiniCache's merge of two rows, in place: each becomes its own norm times their SLERP
 * midpoint direction (t = 0.5), which for unit vectors u, v at any angle is
 * (u + v) / |u + v|. A zero row stays zero (the other keeps its direction). Opposite directions
 * have no midpoint: both rows are left as they are.
 */
void cpu_slerp_merge(float *a /* [n] */, float *b /* [n] */, int n);

/* logits[v] = dot(x, lm_head[v, :]). */
void cpu_lm_head_row(float *logits /* [V] */, const float *x /* [C] */,
                     const float *lm_head /* [V, C] */, int V, int C);

#endif
