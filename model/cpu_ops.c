#include "model/cpu_ops.h"

#include <math.h>
#include <string.h>

#include "model/checkpoint.h"

void cpu_layernorm(float *out, const float *x, const float *weight, const float *bias, int T,
                      int C, float eps) {
    for (int t = 0; t < T; t++) {
        const float *row = x + (size_t)t * C;
        double mean = 0.0, var = 0.0;
        for (int i = 0; i < C; i++) mean += row[i];
        mean /= C;
        for (int i = 0; i < C; i++) var += (row[i] - mean) * (row[i] - mean);
        var /= C;
        float inv_std = (float)(1.0 / sqrt(var + eps));
        for (int i = 0; i < C; i++)
            out[(size_t)t * C + i] = (float)(row[i] - mean) * inv_std * weight[i] + bias[i];
    }
}

/*
 * out[t, o] = bias[o] + sum_i x[t, i] * w[i, o]. Threads split rows and column blocks, so a
 * single decode row still spreads across cores; the inner loop runs along w's rows.
 */
void cpu_matmul_bias(float *out, const float *x, const float *w, const float *bias, int T,
                        int in, int outs) {
    cpu_matmul_bias_columns(out, x, w, outs, bias, T, in, outs);
}

void cpu_matmul_bias_columns(float *out, const float *x, const float *w, int w_stride,
                             const float *bias, int T, int in, int outs) {
    enum { COLUMN_BLOCK = 256 };
    const int n_blocks = (outs + COLUMN_BLOCK - 1) / COLUMN_BLOCK;
#pragma omp parallel for collapse(2) schedule(static)
    for (int t = 0; t < T; t++) {
        for (int b = 0; b < n_blocks; b++) {
            const int o0 = b * COLUMN_BLOCK, o1 = o0 + COLUMN_BLOCK < outs ? o0 + COLUMN_BLOCK : outs;
            float *dst = out + (size_t)t * outs;
            for (int o = o0; o < o1; o++) dst[o] = bias[o];
            for (int i = 0; i < in; i++) {
                const float xi = x[(size_t)t * in + i];
                const float *w_row = w + (size_t)i * w_stride;
                for (int o = o0; o < o1; o++) dst[o] += xi * w_row[o];
            }
        }
    }
}

void cpu_gelu_tanh(float *x, size_t n) {
    const float sqrt_2_over_pi = 0.7978845608028654f;
    for (size_t i = 0; i < n; i++) {
        float v = x[i];
        x[i] = 0.5f * v * (1.0f + tanhf(sqrt_2_over_pi * (v + 0.044715f * v * v * v)));
    }
}

void cpu_add_inplace(float *x, const float *y, size_t n) {
    for (size_t i = 0; i < n; i++) x[i] += y[i];
}

void cpu_causal_attention(float *out, const float *q, int q_stride,
                          const float *const *k_rows, const float *const *v_rows, int pos0, int T,
                          int n_head, float *scores) {
    cpu_causal_attention_scored(out, q, q_stride, k_rows, v_rows, pos0, T, n_head, scores, NULL);
}

void cpu_causal_attention_scored(float *out, const float *q, int q_stride,
                                 const float *const *k_rows, const float *const *v_rows, int pos0,
                                 int T, int n_head, float *scores, float *prob_sums) {
    const int D = GPT2_HEAD_SIZE, C = n_head * D;
    const float scale = 1.0f / sqrtf((float)D);
    for (int t = 0; t < T; t++) {
        const int n_ctx = pos0 + t + 1;
        for (int h = 0; h < n_head; h++) {
            const float *q_head = q + (size_t)t * q_stride + h * D;
            float max_score = -INFINITY;
            for (int p = 0; p < n_ctx; p++) {
                const float *k = k_rows[p] + h * D;
                float dot = 0.0f;
                for (int d = 0; d < D; d++) dot += q_head[d] * k[d];
                scores[p] = dot * scale;
                if (scores[p] > max_score) max_score = scores[p];
            }
            float sum = 0.0f;
            for (int p = 0; p < n_ctx; p++) {
                scores[p] = expf(scores[p] - max_score);
                sum += scores[p];
            }
            float *o = out + (size_t)t * C + h * D;
            memset(o, 0, D * sizeof(float));
            for (int p = 0; p < n_ctx; p++) {
                const float *v = v_rows[p] + h * D;
                const float weight = scores[p] / sum;
                for (int d = 0; d < D; d++) o[d] += weight * v[d];
                if (prob_sums) prob_sums[p] += weight;
            }
        }
    }
}

double cpu_norm(const float *x, int n) {
    double sum = 0.0;
    for (int i = 0; i < n; i++) sum += (double)x[i] * x[i];
    return sqrt(sum);
}

double cpu_cosine(const float *a, const float *b, int n) {
    const double na = cpu_norm(a, n), nb = cpu_norm(b, n);
    if (na == 0.0 || nb == 0.0) return 1.0;
    double dot = 0.0;
    for (int i = 0; i < n; i++) dot += (double)a[i] * b[i];
    return dot / (na * nb);
}

void cpu_slerp_merge(float *a, float *b, int n) {
    const double na = cpu_norm(a, n), nb = cpu_norm(b, n);
    double mid_norm = 0.0; /* |a/|a| + b/|b||, zero rows left out */
    for (int i = 0; i < n; i++) {
        const double m = (na > 0.0 ? a[i] / na : 0.0) + (nb > 0.0 ? b[i] / nb : 0.0);
        mid_norm += m * m;
    }
    mid_norm = sqrt(mid_norm);
    if (mid_norm == 0.0) return;
    for (int i = 0; i < n; i++) {
        const double m = ((na > 0.0 ? a[i] / na : 0.0) + (nb > 0.0 ? b[i] / nb : 0.0)) / mid_norm;
        a[i] = (float)(na * m);
        b[i] = (float)(nb * m);
    }
}

void cpu_lm_head_row(float *logits, const float *x, const float *lm_head, int V, int C) {
#pragma omp parallel for schedule(static)
    for (int v = 0; v < V; v++) {
        const float *w = lm_head + (size_t)v * C;
        float dot = 0.0f;
        for (int i = 0; i < C; i++) dot += x[i] * w[i];
        logits[v] = dot;
    }
}
