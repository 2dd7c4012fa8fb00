/*
 * The CPU reference's KV policies (window, sinks, pyramid) against an independent formulation:
 * a whole-sequence forward whose attention takes an explicit mask per layer. Teacher-forced
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
 * usage: test_kv_policy_cpu MODEL_DIR
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    kv_policy share;
    kv_policy_parse("share:0", &share, err, sizeof err);
    CHECK(cpu_model_set_kv_policy(&m, &share, 64, err, sizeof err) == -1 && strstr(err, "not implemented yet"),
          "share accepted by the cpu backend: '%s'", err);
    cpu_model_destroy(&m);
    return check_finish("test_kv_policy_cpu");
}
