/*
 * The CPU reference's KV policies against two independent formulations.
 *
 * Window, sinks and pyramid: a whole-sequence forward whose attention takes an explicit mask
 * per layer. Teacher-forced
 * decode under a policy (cpu_model_forward_decoded: a first chunk as large as the smallest
 * layer budget, then one token per call, evicting after each) means that token t of layer l
 * attends to:
 *   t inside the first chunk: every position 0..t (nothing is evicted inside a call);
 *   after it: itself and what layer l kept after the call before: the last B_l positions
 *   (window:W: B = W; pyramid: B_l = its group's share of the budget), and under
 *   sinks:S,window:W also positions 0..S-1.
 * The oracle builds those masks from the grammar alone and runs GPT-2 with them, reusing only
 * the primitive ops (model/cpu_ops, checked against HF); its logits must equal the model's.
 * Full is checked too: one masked pass against one-shot causal logits.
 *
 * H2O, share and minicache: a step-by-step oracle written here from cache/kv_policy.h's text,
 * one token at a time, with its own bookkeeping: kept flags per layer and position, H2O scores
 * in double added from its own attention's probabilities and evicted by removing the lowest
 * (older first) until the budget holds, share's borrower attending over the owner's flags and
 * rows, minicache's merge as SLERP's sine formula and its retention as an angle, rows stored
 * through the format by the quantizer itself. It runs the first `first` tokens as one call
 * (evicting and merging only once they are all in), so that a prompt's prefill is checked too.
 * Besides the logits: H2O's kept positions, the bytes and pages held against arithmetic, share
 * against full (it must differ), and minicache on a model built so that a pair's rows are
 * identical (every token merges and reconstructs its rows exactly) and nearly so (both merged
 * and retained tokens occur).
 *
 * usage: test_kv_policy_cpu MODEL_DIR
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/half.h"
#include "model/cpu_model.h"
#include "model/cpu_ops.h"
#include "model/sampler.h"
#include "tests/check.h"

#define N_TOKENS 50

/* Whether token t of layer l attends to position j under the policy (see the top). */
static bool attends(const kv_policy *p, int layer, int n_layer, int budget, int first, int t, int j) {
    if (j > t) return false;
    if (t < first || p->kind == KV_POLICY_FULL) return true;
    const int b = kv_policy_layer_budget(p, layer, n_layer, budget);
    const int sinks = p->kind == KV_POLICY_SINKS ? p->sinks : 0;
    return j == t || j >= t - (b - sinks) || j < sinks;
}

/* Masked multi-head attention over the whole sequence: out[t] from q, k, v rows [T, 3C]. */
static void masked_attention(float *out, const float *qkv, int T, int C, int n_head,
                             const kv_policy *p, int layer, int n_layer, int budget, int first) {
    float *w = malloc((size_t)T * sizeof *w);
    for (int t = 0; t < T; t++)
        for (int h = 0; h < n_head; h++) {
            const float *q = qkv + (size_t)t * 3 * C + h * 64;
            double max = -INFINITY, sum = 0.0;
            for (int j = 0; j < T; j++) {
                w[j] = -INFINITY;
                if (!attends(p, layer, n_layer, budget, first, t, j)) continue;
                const float *k = qkv + (size_t)j * 3 * C + C + h * 64;
                double dot = 0.0;
                for (int d = 0; d < 64; d++) dot += (double)q[d] * k[d];
                w[j] = (float)(dot / 8.0);
                if (w[j] > max) max = w[j];
            }
            for (int j = 0; j < T; j++) sum += w[j] == -INFINITY ? 0.0 : exp(w[j] - max);
            for (int d = 0; d < 64; d++) {
                double acc = 0.0;
                for (int j = 0; j < T; j++)
                    if (w[j] != -INFINITY) acc += exp(w[j] - max) * qkv[(size_t)j * 3 * C + 2 * C + h * 64 + d];
                out[(size_t)t * C + h * 64 + d] = (float)(acc / sum);
            }
        }
    free(w);
}

/* The masked whole-sequence forward: logits [T, V]. */
static void oracle_logits(const cpu_model *m, const int32_t *ids, int T, const kv_policy *p,
                          int budget, int first, float *logits) {
    const gpt2_config *c = &m->config;
    const int C = c->n_embd, V = c->vocab_size, L = c->n_layer;
    float *x = malloc((size_t)T * C * 4), *h = malloc((size_t)T * C * 4);
    float *qkv = malloc((size_t)T * 3 * C * 4), *att = malloc((size_t)T * C * 4);
    float *mlp = malloc((size_t)T * 4 * C * 4);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < C; i++)
            x[(size_t)t * C + i] = m->weights.wte[(size_t)ids[t] * C + i] + m->weights.wpe[(size_t)t * C + i];
    for (int l = 0; l < L; l++) {
        const cpu_layer_weights *w = &m->weights.layers[l];
        cpu_layernorm(h, x, w->ln_1_w, w->ln_1_b, T, C, c->layer_norm_eps);
        cpu_matmul_bias(qkv, h, w->attn_w, w->attn_b, T, C, 3 * C);
        masked_attention(att, qkv, T, C, c->n_head, p, l, L, budget, first);
        cpu_matmul_bias(h, att, w->attn_proj_w, w->attn_proj_b, T, C, C);
        cpu_add_inplace(x, h, (size_t)T * C);
        cpu_layernorm(h, x, w->ln_2_w, w->ln_2_b, T, C, c->layer_norm_eps);
        cpu_matmul_bias(mlp, h, w->fc_w, w->fc_b, T, C, 4 * C);
        cpu_gelu_tanh(mlp, (size_t)T * 4 * C);
        cpu_matmul_bias(h, mlp, w->mlp_proj_w, w->mlp_proj_b, T, 4 * C, C);
        cpu_add_inplace(x, h, (size_t)T * C);
    }
    cpu_layernorm(h, x, m->weights.ln_f_w, m->weights.ln_f_b, T, C, c->layer_norm_eps);
    for (int t = 0; t < T; t++) cpu_lm_head_row(logits + (size_t)t * V, h + (size_t)t * C, m->weights.lm_head, V, C);
    free(x), free(h), free(qkv), free(att), free(mlp);
}

static void check_policy(cpu_model *m, const int32_t *ids, const char *text, int budget, int first) {
    char err[256];
    kv_policy p;
    CHECK(kv_policy_parse(text, &p, err, sizeof err) == 0, "%s: %s", text, err);
    CHECK(cpu_model_set_kv_policy(m, &p, budget, err, sizeof err) == 0, "%s: %s", text, err);
    const int V = m->config.vocab_size;
    float *got = malloc((size_t)N_TOKENS * V * 4), *want = malloc((size_t)N_TOKENS * V * 4);
    CHECK(cpu_model_forward_decoded(m, ids, N_TOKENS, got, err, sizeof err) == 0, "%s: %s", text, err);
    oracle_logits(m, ids, N_TOKENS, &p, budget, first, want);
    double worst = 0.0, scale = 0.0;
    for (size_t i = 0; i < (size_t)N_TOKENS * V; i++) {
        if (fabs(want[i]) > scale) scale = fabs(want[i]);
        if (!(fabs(got[i] - want[i]) <= worst)) worst = fabs(got[i] - want[i]);
    }
    CHECK(worst <= 1e-4 * scale, "%s: max |dlogit| %g against the masked oracle (max |logit| %g)",
          text, worst, scale);
    printf("%-22s max |dlogit| against the masked oracle %.3g (max |logit| %.3g)\n", text, worst, scale);
    free(got), free(want);
}

/* ---- the step-by-step oracle (h2o, share, minicache) ---- */

typedef struct {
    const cpu_model *m;
    kv_policy p;
    kv_format format;
    float *k, *v;   /* [L, N_TOKENS, C] rows as stored */
    bool *kept;     /* [L, N_TOKENS] */
    double *score;  /* [L, N_TOKENS] h2o */
    int merged[8];  /* [L] minicache: tokens merged, at a pair's lower layer */
} step_oracle;

/* The bytes of one head of K or V in each format, from kv_quant.h's text. */
static long long head_bytes(kv_format f) {
    return f == KV_FORMAT_FP32 ? 256 : f == KV_FORMAT_FP16 ? 128 : 64 + 2;
}

static void store_through(float *dst, const float *src, int C, kv_format f) {
    for (int h = 0; h < C / 64; h++) {
        int8_t q[64];
        uint16_t scale;
        const float *x = src + h * 64;
        if (f == KV_FORMAT_INT8) kv_quantize_head(q, &scale, x), kv_dequantize_head(dst + h * 64, q, scale);
        for (int d = 0; f != KV_FORMAT_INT8 && d < 64; d++)
            dst[h * 64 + d] = f == KV_FORMAT_FP16 ? half_to_float(float_to_half(x[d])) : x[d];
    }
}

/* share: an upper layer of a pair reads the layer below it. */
static int oracle_source(const kv_policy *p, int l) {
    const bool upper = l >= p->first_layer && (l - p->first_layer) % 2 == 1;
    return p->kind == KV_POLICY_SHARE && upper ? l - 1 : l;
}

static float *row_at(float *base, int l, int t, int C) { return base + ((size_t)l * N_TOKENS + t) * C; }

/* Token t's attention in layer l over the kept rows of layer src (t's own is kept by now). */
static void oracle_attend(step_oracle *o, int l, int src, const float *q, int t, float *out) {
    const int C = o->m->config.n_embd;
    double w[N_TOKENS];
    for (int h = 0; h < C / 64; h++) {
        double max = -INFINITY, sum = 0.0;
        for (int j = 0; j <= t; j++) {
            if (!o->kept[src * N_TOKENS + j]) continue;
            double dot = 0.0;
            const float *k = row_at(o->k, src, j, C) + h * 64;
            for (int d = 0; d < 64; d++) dot += (double)q[h * 64 + d] * k[d];
            w[j] = dot / 8.0;
            if (w[j] > max) max = w[j];
        }
        for (int j = 0; j <= t; j++)
            if (o->kept[src * N_TOKENS + j]) sum += w[j] = exp(w[j] - max);
        for (int d = 0; d < 64; d++) {
            double acc = 0.0;
            for (int j = 0; j <= t; j++)
                if (o->kept[src * N_TOKENS + j])
                    acc += w[j] / sum * row_at(o->v, src, j, C)[h * 64 + d];
            out[h * 64 + d] = (float)acc;
        }
        for (int j = 0; o->p.kind == KV_POLICY_H2O && j <= t; j++)
            if (o->kept[l * N_TOKENS + j]) o->score[l * N_TOKENS + j] += w[j] / sum;
    }
}

/* H2O after a call ending at token t: drop the lowest score (the older of equals) of the tokens
 * older than the W most recent kept, until H + W remain. */
static void oracle_h2o_evict(step_oracle *o, int l, int t) {
    bool *kept = o->kept + l * N_TOKENS;
    for (;;) {
        int count = 0;
        for (int j = 0; j <= t; j++) count += kept[j];
        if (count <= o->p.heavy + o->p.window) return;
        int recent = 0, boundary = t + 1; /* positions >= boundary are the W most recent kept */
        while (recent < o->p.window) recent += kept[--boundary];
        const double *score = o->score + l * N_TOKENS;
        int victim = -1;
        for (int j = 0; j < boundary; j++)
            if (kept[j] && (victim < 0 || score[j] < score[victim])) victim = j;
        kept[victim] = false;
    }
}

/* The angle between two heads, and their SLERP at t = 0.5 by the sine formula, in double. */
static double head_angle(const float *a, const float *b) {
    double ab = 0, aa = 0, bb = 0;
    for (int d = 0; d < 64; d++)
        ab += (double)a[d] * b[d], aa += (double)a[d] * a[d], bb += (double)b[d] * b[d];
    double c = aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 1.0;
    return acos(c > 1 ? 1 : c < -1 ? -1 : c);
}

static void slerp_half(float *a, float *b) {
    double aa = 0, bb = 0;
    for (int d = 0; d < 64; d++) aa += (double)a[d] * a[d], bb += (double)b[d] * b[d];
    const double na = sqrt(aa), nb = sqrt(bb), omega = head_angle(a, b);
    const double wgt = omega < 1e-6 ? 0.5 : sin(omega / 2) / sin(omega); /* each direction's weight */
    for (int d = 0; d < 64; d++) {
        const double e = wgt * (a[d] / na + b[d] / nb);
        a[d] = (float)(na * e), b[d] = (float)(nb * e);
    }
}

static bool zero_head(const float *a /* [64] */) {
    for (int d = 0; d < 64; d++)
        if (a[d] != 0.0f) return false;
    return true;
}

/*
 * minicache after the call of token t: the pair (o, o + 1) merged unless a head is too far
 * apart, or has a direction in one layer only.
 */
static void oracle_merge(step_oracle *o, int lower, int t) {
    const int C = o->m->config.n_embd;
    float *rows[2][2] = {{row_at(o->k, lower, t, C), row_at(o->k, lower + 1, t, C)},
                         {row_at(o->v, lower, t, C), row_at(o->v, lower + 1, t, C)}};
    for (int kv = 0; kv < 2; kv++)
        for (int h = 0; h < C / 64; h++)
            if (head_angle(rows[kv][0] + h * 64, rows[kv][1] + h * 64) > acos(KV_MINICACHE_RETAIN_COS) ||
                zero_head(rows[kv][0] + h * 64) != zero_head(rows[kv][1] + h * 64))
                return;
    for (int kv = 0; kv < 2; kv++)
        for (int h = 0; h < C / 64; h++) slerp_half(rows[kv][0] + h * 64, rows[kv][1] + h * 64);
    for (int kv = 0; kv < 2; kv++)
        for (int side = 0; side < 2; side++)
            store_through(rows[kv][side], rows[kv][side], C, o->format);
    o->merged[lower]++;
}

/* The policy's work once the call of tokens [t0, t1] is over. */
static void oracle_after_call(step_oracle *o, int t0, int t1) {
    const int L = o->m->config.n_layer;
    for (int l = 0; l < L; l++) {
        if (o->p.kind == KV_POLICY_H2O) oracle_h2o_evict(o, l, t1);
        const bool lower = l >= o->p.first_layer && (l - o->p.first_layer) % 2 == 0 && l + 1 < L;
        for (int t = t0; o->p.kind == KV_POLICY_MINICACHE && lower && t <= t1; t++)
            oracle_merge(o, l, t);
    }
}

/* One token at position t through every layer: its last hidden state into x [C]. */
static void oracle_token(step_oracle *o, int32_t id, int t, float *x) {
    const cpu_model *m = o->m;
    const gpt2_config *c = &m->config;
    const int C = c->n_embd;
    float h[512], qkv[3 * 512], att[512], mlp[4 * 512];
    for (int i = 0; i < C; i++)
        x[i] = m->weights.wte[(size_t)id * C + i] + m->weights.wpe[(size_t)t * C + i];
    for (int l = 0; l < c->n_layer; l++) {
        const cpu_layer_weights *w = &m->weights.layers[l];
        const int src = oracle_source(&o->p, l);
        const cpu_layer_weights *wq = src != l && o->p.qalign ? &m->weights.layers[src] : w;
        cpu_layernorm(h, x, w->ln_1_w, w->ln_1_b, 1, C, c->layer_norm_eps);
        cpu_matmul_bias(qkv, h, wq->attn_w, wq->attn_b, 1, C, 3 * C); /* a borrower uses only q */
        if (src == l) {
            store_through(row_at(o->k, l, t, C), qkv + C, C, o->format);
            store_through(row_at(o->v, l, t, C), qkv + 2 * C, C, o->format);
            o->kept[l * N_TOKENS + t] = true;
            o->score[l * N_TOKENS + t] = 0.0;
        }
        oracle_attend(o, l, src, qkv, t, att);
        cpu_matmul_bias(h, att, w->attn_proj_w, w->attn_proj_b, 1, C, C);
        cpu_add_inplace(x, h, C);
        cpu_layernorm(h, x, w->ln_2_w, w->ln_2_b, 1, C, c->layer_norm_eps);
        cpu_matmul_bias(mlp, h, w->fc_w, w->fc_b, 1, C, 4 * C);
        cpu_gelu_tanh(mlp, 4 * C);
        cpu_matmul_bias(h, mlp, w->mlp_proj_w, w->mlp_proj_b, 1, 4 * C, C);
        cpu_add_inplace(x, h, C);
    }
}

/* Logits [N_TOKENS, V]: tokens [0, first) as one call, then one token per call. */
static void oracle_run(step_oracle *o, const int32_t *ids, int first, float *logits) {
    const gpt2_config *c = &o->m->config;
    const int C = c->n_embd, V = c->vocab_size;
    float x[512], h[512];
    for (int t = 0; t < N_TOKENS; t++) {
        oracle_token(o, ids[t], t, x);
        if (t + 1 >= first) oracle_after_call(o, t + 1 == first ? 0 : t, t);
        cpu_layernorm(h, x, o->m->weights.ln_f_w, o->m->weights.ln_f_b, 1, C, c->layer_norm_eps);
        cpu_lm_head_row(logits + (size_t)t * V, h, o->m->weights.lm_head, V, C);
    }
}

static void oracle_init(step_oracle *o, const cpu_model *m, const kv_policy *p, kv_format format) {
    const size_t L = (size_t)m->config.n_layer, C = (size_t)m->config.n_embd;
    *o = (step_oracle){.m = m, .p = *p, .format = format};
    o->k = calloc(L * N_TOKENS * C, sizeof(float));
    o->v = calloc(L * N_TOKENS * C, sizeof(float));
    o->kept = calloc(L * N_TOKENS, sizeof(bool));
    o->score = calloc(L * N_TOKENS, sizeof(double));
}

static void oracle_free(step_oracle *o) { free(o->k), free(o->v), free(o->kept), free(o->score); }

/* max |a - b| over n, and in *scale the largest |a| (what it is judged against). */
static double max_diff(const float *a, const float *b, size_t n, double *scale) {
    double worst = 0.0;
    *scale = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (fabs(a[i]) > *scale) *scale = fabs(a[i]);
        if (!(fabs(a[i] - b[i]) <= worst)) worst = fabs(a[i] - b[i]);
    }
    return worst;
}

/*
 * Runs the policy `text` in `format` (tokens [0, first) in one call; 0: the model's own first
 * chunk, which must decode as token by token does) on the model and on the oracle: their
 * logits must agree. Leaves the model's state, and the oracle for the caller's checks (it frees
 * it); got: the model's logits [N_TOKENS, V].
 */
static void check_stepwise(cpu_model *m, step_oracle *o, const int32_t *ids, const char *text,
                           kv_format format, int first, float *got) {
    char err[256];
    kv_policy p;
    CHECK(kv_policy_parse(text, &p, err, sizeof err) == 0, "%s: %s", text, err);
    cpu_model_set_kv_format(m, format);
    CHECK(cpu_model_set_kv_policy(m, &p, m->config.n_positions, err, sizeof err) == 0, "%s: %s",
          text, err);
    const int V = m->config.vocab_size;
    float *want = malloc((size_t)N_TOKENS * V * 4);
    CHECK(cpu_model_decode(m, ids, N_TOKENS, first, got, NULL, err, sizeof err) == 0, "%s: %s",
          text, err);
    oracle_init(o, m, &p, format);
    oracle_run(o, ids, first ? first : 1, want);
    double scale, worst = max_diff(want, got, (size_t)N_TOKENS * V, &scale);
    CHECK(worst <= 1e-4 * scale, "%s (%s, first call %d): max |dlogit| %g against the step oracle "
          "(max |logit| %g)", text, kv_format_name(format), first, worst, scale);
    printf("%-22s %s, first call %2d: max |dlogit| against the step oracle %.3g (max |logit| %.3g)\n",
           text, kv_format_name(format), first, worst, scale);
    free(want);
}

/* What the model's cache holds against the arithmetic's rows, pages and bytes. */
static void check_usage(const cpu_model *m, const char *what, long long rows, long long pages,
                        long long bytes) {
    const cpu_kv_usage u = cpu_model_kv_usage(m);
    CHECK(u.rows == rows && u.pages == pages && u.bytes == bytes,
          "%s: holds %lld rows, %lld pages, %lld bytes; expected %lld, %lld, %lld", what, u.rows,
          u.pages, u.bytes, rows, pages, bytes);
}

static long long pages_of(long long rows) { return (rows + 15) / 16; }

/* H2O: logits, and the kept positions of every layer, against the oracle's; the bytes held. */
static void check_h2o(cpu_model *m, const int32_t *ids, const char *text, int first, float *got) {
    step_oracle o;
    check_stepwise(m, &o, ids, text, KV_FORMAT_FP32, first, got);
    const int L = m->config.n_layer, budget = o.p.heavy + o.p.window;
    for (int l = 0; l < L; l++) {
        int n = 0;
        bool same = m->selection.n_kept[l] == budget;
        for (int t = 0; t < N_TOKENS; t++)
            if (o.kept[l * N_TOKENS + t])
                same = same && n < budget && m->selection.kept[l * m->config.n_positions + n++] == t;
        CHECK(same && n == budget, "%s, first call %d: layer %d keeps other positions than the oracle",
              text, first, l);
    }
    const long long row = 2 * m->config.n_head * head_bytes(KV_FORMAT_FP32);
    check_usage(m, text, (long long)L * budget, L * pages_of(budget), (long long)L * budget * row);
    oracle_free(&o);
}

/* share on a 2-layer model: layer 1 borrows layer 0; only layer 0 holds rows; it is not full. */
static void check_share(cpu_model *m, const int32_t *ids, const char *text, kv_format format,
                        const float *full, float *got) {
    step_oracle o;
    check_stepwise(m, &o, ids, text, format, 0, got);
    oracle_free(&o);
    const long long row = 2 * m->config.n_head * head_bytes(format);
    check_usage(m, text, N_TOKENS, pages_of(N_TOKENS), N_TOKENS * row);
    double scale, gap = max_diff(full, got, (size_t)N_TOKENS * m->config.vocab_size, &scale);
    CHECK(gap > 1e-2 * scale, "%s: max |dlogit| against full only %g (max |logit| %g)", text, gap,
          scale);
}

/* minicache:0 on a 2-layer model: logits and tokens merged against the oracle; the bytes held. */
static int check_minicache(cpu_model *m, const int32_t *ids, kv_format format, int first, float *got) {
    step_oracle o;
    check_stepwise(m, &o, ids, "minicache:0", format, first, got);
    const int merged = m->selection.n_merged[0], retained = N_TOKENS - merged;
    CHECK(merged == o.merged[0], "minicache:0: %d tokens merged, the oracle %d", merged, o.merged[0]);
    oracle_free(&o);
    const long long H = m->config.n_head, row = 2 * H * head_bytes(format);
    const long long ratio_bytes = 2 /* K, V */ * H * 4 /* fp32 */;
    /* the lower layer holds every token, the upper one its retained ones */
    check_usage(m, "minicache:0", merged + 2LL * retained, pages_of(N_TOKENS) + pages_of(retained),
                (long long)N_TOKENS * row + merged * ratio_bytes + retained * row);
    return merged;
}

/*
 * Makes layer 1 read what layer 0 reads: its LN_1 and QKV weights become layer 0's, and layer
 * 0's writes into the residual are scaled by eps (0: it adds nothing, so both layers see the
 * same input and store identical K and V).
 */
static void pair_layers(cpu_model *m, float eps) {
    const size_t C = (size_t)m->config.n_embd;
    cpu_layer_weights *w0 = &m->weights.layers[0], *w1 = &m->weights.layers[1];
    memcpy(w1->ln_1_w, w0->ln_1_w, C * 4), memcpy(w1->ln_1_b, w0->ln_1_b, C * 4);
    memcpy(w1->attn_w, w0->attn_w, C * 3 * C * 4), memcpy(w1->attn_b, w0->attn_b, 3 * C * 4);
    for (size_t i = 0; i < C * C; i++) w0->attn_proj_w[i] *= eps;
    for (size_t i = 0; i < 4 * C * C; i++) w0->mlp_proj_w[i] *= eps;
    for (size_t i = 0; i < C; i++) w0->attn_proj_b[i] *= eps, w0->mlp_proj_b[i] *= eps;
}

/* Identical pair layers: every token merges, and its rows come back as a full run stores them. */
static void check_exact_reconstruction(cpu_model *m, const int32_t *ids, float *logits) {
    const size_t n = (size_t)2 * m->cache.max_tokens * m->config.n_embd; /* both layers' rows */
    float *rows = malloc(2 * n * 4);
    char err[256];
    kv_policy full = {.kind = KV_POLICY_FULL};
    cpu_model_set_kv_format(m, KV_FORMAT_FP32);
    CHECK(cpu_model_set_kv_policy(m, &full, m->config.n_positions, err, sizeof err) == 0 &&
          cpu_model_forward_decoded(m, ids, N_TOKENS, logits, err, sizeof err) == 0, "%s", err);
    memcpy(rows, m->cache.k, n * 4), memcpy(rows + n, m->cache.v, n * 4);
    const int merged = check_minicache(m, ids, KV_FORMAT_FP32, 0, logits);
    CHECK(merged == N_TOKENS, "identical layers: %d of %d tokens merged", merged, N_TOKENS);
    double worst = 0.0, scale = 0.0;
    for (int l = 0; l < 2; l++)
        for (size_t i = 0; i < (size_t)N_TOKENS * m->config.n_embd; i++)
            for (int kv = 0; kv < 2; kv++) {
                const size_t at = (size_t)l * m->cache.max_tokens * m->config.n_embd + i;
                const float want = rows[kv * n + at], got = (kv ? m->cache.v : m->cache.k)[at];
                if (fabs(want) > scale) scale = fabs(want);
                if (!(fabs(want - got) <= worst)) worst = fabs(want - got);
            }
    CHECK(worst <= 1e-6 * scale, "identical layers: merged rows off by %g (max |row| %g)", worst,
          scale);
    printf("identical layers: %d of %d tokens merged, rows reconstructed within %.3g (max %.3g)\n",
           merged, N_TOKENS, worst, scale);
    free(rows);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]);
        return 2;
    }
    char err[GPT2_ERR_LEN];
    gpt2_checkpoint ckpt;
    cpu_model m;
    if (gpt2_checkpoint_open(&ckpt, argv[1], err, sizeof err) != 0 ||
        cpu_model_create(&m, &ckpt, 0, KV_FORMAT_FP32, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    gpt2_checkpoint_close(&ckpt);
    int32_t ids[N_TOKENS];
    for (int i = 0; i < N_TOKENS; i++) ids[i] = (int32_t)(splitmix64_mix(777 + (uint64_t)i) % (uint64_t)m.config.vocab_size);
    check_policy(&m, ids, "full", m.config.n_positions, N_TOKENS);
    check_policy(&m, ids, "window:7", m.config.n_positions, 7);
    check_policy(&m, ids, "sinks:3,window:5", m.config.n_positions, 8);
    check_policy(&m, ids, "pyramid:1,0.25", 20, 5); /* layer 0 keeps 20 tokens, layer 1 keeps 5 */
    const size_t V = (size_t)m.config.vocab_size;
    float *full = malloc(N_TOKENS * V * 4), *got = malloc(N_TOKENS * V * 4);
    float *qalign = malloc(N_TOKENS * V * 4);
    CHECK(cpu_model_forward_sequence(&m, ids, N_TOKENS, full, err, sizeof err) == 0, "%s", err);
    check_h2o(&m, ids, "h2o:5,window:4", 0, got);
    check_h2o(&m, ids, "h2o:3,window:9", 30, got); /* a prefill of 30 scores with all of them */
    check_h2o(&m, ids, "h2o:1,window:1", 1, got);
    const kv_format formats[3] = {KV_FORMAT_FP32, KV_FORMAT_FP16, KV_FORMAT_INT8};
    for (int f = 0; f < 3; f++) {
        check_share(&m, ids, "share:0", formats[f], full, got);
        check_share(&m, ids, "share:0,qalign", formats[f], full, qalign);
        double scale, gap = max_diff(got, qalign, N_TOKENS * V, &scale);
        CHECK(gap > 1e-2 * scale, "share:0 and share:0,qalign differ by only %g", gap);
    }
    pair_layers(&m, 0.6f);
    for (int f = 0; f < 3; f++) {
        const int merged = check_minicache(&m, ids, formats[f], 0, got);
        CHECK(merged > 0 && merged < N_TOKENS, "nearly paired layers, %s: %d of %d tokens merged "
              "(both kinds must occur)", kv_format_name(formats[f]), merged, N_TOKENS);
        printf("nearly paired layers, %s: %d of %d tokens merged\n", kv_format_name(formats[f]),
               merged, N_TOKENS);
    }
    check_minicache(&m, ids, KV_FORMAT_FP32, 20, got); /* a prompt of 20, merged after its call */
    pair_layers(&m, 0.0f);
    check_exact_reconstruction(&m, ids, got);
    free(full), free(got), free(qalign);
    cpu_model_destroy(&m);

    return check_finish("test_kv_policy_cpu");
}
