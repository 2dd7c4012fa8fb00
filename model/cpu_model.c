#include "model/cpu_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/cpu_ops.h"

/* ---------------------------------------------------------------------------------------------
 * Weights: every tensor converted to fp32 into one allocation.
 */

static size_t weights_floats(const gpt2_config *c) {
    size_t C = (size_t)c->n_embd, V = (size_t)c->vocab_size, P = (size_t)c->n_positions;
    size_t per_layer = 2 * C + C * 3 * C + 3 * C + C * C + C + 2 * C + C * 4 * C + 4 * C +
                       4 * C * C + C;
    return V * C + P * C + (size_t)c->n_layer * per_layer + 2 * C;
}

/* Hands out consecutive slices of the storage and fills each from its tensor. */
typedef struct {
    float *next;
} weight_carver;

static float *carve(weight_carver *carver, const gpt2_tensor *t) {
    float *slice = carver->next;
    gpt2_tensor_to_f32(t, slice);
    carver->next += t->numel;
    return slice;
}

static int load_weights(cpu_weights *w, const gpt2_checkpoint *ckpt) {
    const gpt2_config *c = &ckpt->config;
    size_t extra = ckpt->lm_head_tied ? 0 : (size_t)c->vocab_size * (size_t)c->n_embd;
    w->storage = malloc((weights_floats(c) + extra) * sizeof(float));
    w->layers = calloc((size_t)c->n_layer, sizeof(cpu_layer_weights));
    if (!w->storage || !w->layers) return -1;

    weight_carver carver = {w->storage};
    w->wte = carve(&carver, &ckpt->wte);
    w->wpe = carve(&carver, &ckpt->wpe);
    for (int l = 0; l < c->n_layer; l++) {
        const gpt2_layer_tensors *src = &ckpt->layers[l];
        cpu_layer_weights *dst = &w->layers[l];
        dst->ln_1_w = carve(&carver, &src->ln_1_w);
        dst->ln_1_b = carve(&carver, &src->ln_1_b);
        dst->attn_w = carve(&carver, &src->attn_w);
        dst->attn_b = carve(&carver, &src->attn_b);
        dst->attn_proj_w = carve(&carver, &src->attn_proj_w);
        dst->attn_proj_b = carve(&carver, &src->attn_proj_b);
        dst->ln_2_w = carve(&carver, &src->ln_2_w);
        dst->ln_2_b = carve(&carver, &src->ln_2_b);
        dst->fc_w = carve(&carver, &src->fc_w);
        dst->fc_b = carve(&carver, &src->fc_b);
        dst->mlp_proj_w = carve(&carver, &src->mlp_proj_w);
        dst->mlp_proj_b = carve(&carver, &src->mlp_proj_b);
    }
    w->ln_f_w = carve(&carver, &ckpt->ln_f_w);
    w->ln_f_b = carve(&carver, &ckpt->ln_f_b);
    w->lm_head = ckpt->lm_head_tied ? w->wte : carve(&carver, &ckpt->lm_head);
    return 0;
}

static void free_weights(cpu_weights *w) {
    free(w->storage);
    free(w->layers);
    *w = (cpu_weights){0};
}

/* ---------------------------------------------------------------------------------------------
 * The model.
 */

static int alloc_activations(cpu_activations *a, const gpt2_config *c, int max_chunk) {
    size_t T = (size_t)max_chunk, C = (size_t)c->n_embd;
    a->max_chunk = max_chunk;
    a->residual = malloc(T * C * sizeof(float));
    a->normed = malloc(T * C * sizeof(float));
    a->qkv = malloc(T * 3 * C * sizeof(float));
    a->attn_out = malloc(T * C * sizeof(float));
    a->hidden = malloc(T * 4 * C * sizeof(float));
    a->scores = malloc((size_t)c->n_positions * sizeof(float));
    a->k_rows = malloc((size_t)c->n_positions * sizeof *a->k_rows);
    a->v_rows = malloc((size_t)c->n_positions * sizeof *a->v_rows);
    if (!a->residual || !a->normed || !a->qkv || !a->attn_out || !a->hidden || !a->scores ||
        !a->k_rows || !a->v_rows)
        return -1;
    return 0;
}

static void free_activations(cpu_activations *a) {
    free(a->residual);
    free(a->normed);
    free(a->qkv);
    free(a->attn_out);
    free(a->hidden);
    free(a->scores);
    free(a->k_rows);
    free(a->v_rows);
    *a = (cpu_activations){0};
}

int cpu_model_create(cpu_model *model, const gpt2_checkpoint *ckpt, int max_chunk,
                     kv_format kv_storage, char *err, size_t err_len) {
    const gpt2_config *c = &ckpt->config;
    *model = (cpu_model){.config = *c};
    if (max_chunk < 1 || max_chunk > c->n_positions) max_chunk = c->n_positions;
    if (load_weights(&model->weights, ckpt) != 0 ||
        kv_cache_cpu_create(&model->cache, c->n_layer, c->n_positions, c->n_embd,
                            kv_storage) != 0 ||
        alloc_activations(&model->act, c, max_chunk) != 0 ||
        !(model->selection.kept = malloc((size_t)c->n_layer * c->n_positions * sizeof(int))) ||
        !(model->selection.n_kept = calloc((size_t)c->n_layer, sizeof(int)))) {
        snprintf(err, err_len, "cpu backend: out of host memory for a %d-layer, %d-wide model",
                 c->n_layer, c->n_embd);
        cpu_model_destroy(model);
        return -1;
    }
    model->selection.policy = (kv_policy){.kind = KV_POLICY_FULL};
    model->selection.budget_tokens = c->n_positions;
    return 0;
}

void cpu_model_destroy(cpu_model *model) {
    free_weights(&model->weights);
    kv_cache_cpu_destroy(&model->cache);
    free_activations(&model->act);
    free(model->selection.kept);
    free(model->selection.n_kept);
}

void cpu_model_reset(cpu_model *model) {
    model->cache.len = 0;
    for (int l = 0; l < model->config.n_layer; l++) model->selection.n_kept[l] = 0;
}

void cpu_model_set_kv_format(cpu_model *model, kv_format format) {
    model->cache.format = format;
    cpu_model_reset(model);
}

int cpu_model_set_kv_policy(cpu_model *model, const kv_policy *policy, int budget_tokens,
                            char *err, size_t err_len) {
    const kv_policy_kind k = policy->kind;
    if (k != KV_POLICY_FULL && k != KV_POLICY_WINDOW && k != KV_POLICY_SINKS && k != KV_POLICY_PYRAMID) {
        char name[64];
        kv_policy_format(policy, name, sizeof name);
        return snprintf(err, err_len, "cpu backend: KV policy %s is not implemented yet (full, "
                        "window, sinks and pyramid are)", name), -1;
    }
    if (kv_policy_check(policy, model->config.n_layer, err, err_len) != 0) return -1;
    if (budget_tokens < 1 || budget_tokens > model->config.n_positions)
        return snprintf(err, err_len, "cpu backend: a KV budget of %d tokens, expected 1..%d",
                        budget_tokens, model->config.n_positions), -1;
    model->selection.policy = *policy;
    model->selection.budget_tokens = budget_tokens;
    cpu_model_reset(model);
    return 0;
}

/*
 * After a forward call: layer `layer` appends the call's positions [pos0, pos0 + n) to its
 * kept list, then drops what its policy does not keep: all but the most recent budget tokens
 * (window, pyramid), and under sinks all but the first S and the most recent W.
 */
static void evict(cpu_model *model, int layer, int pos0, int n) {
    cpu_kv_selection *sel = &model->selection;
    const int L = model->config.n_layer;
    int *kept = sel->kept + (size_t)layer * model->config.n_positions;
    int count = sel->n_kept[layer];
    for (int t = 0; t < n; t++) kept[count++] = pos0 + t;
    const kv_policy *p = &sel->policy;
    const int budget = kv_policy_layer_budget(p, layer, L, sel->budget_tokens);
    if (p->kind == KV_POLICY_FULL || count <= budget) {
        sel->n_kept[layer] = count;
        return;
    }
    const int sinks = p->kind == KV_POLICY_SINKS ? p->sinks : 0; /* the first positions kept */
    const int recent = budget - sinks;
    memmove(kept + sinks, kept + count - recent, (size_t)recent * sizeof *kept);
    sel->n_kept[layer] = budget;
}

static int check_forward_args(const cpu_model *model, const int32_t *tokens, int n, char *err,
                              size_t err_len) {
    const gpt2_config *c = &model->config;
    if (n < 1 || n > model->act.max_chunk) {
        snprintf(err, err_len, "cpu backend: %d tokens in one call, expected 1..%d", n,
                 model->act.max_chunk);
        return -1;
    }
    if (model->cache.len + n > c->n_positions) {
        snprintf(err, err_len, "cpu backend: %d cached + %d new tokens exceed n_positions = %d",
                 model->cache.len, n, c->n_positions);
        return -1;
    }
    for (int t = 0; t < n; t++) {
        if (tokens[t] < 0 || tokens[t] >= c->vocab_size) {
            snprintf(err, err_len, "cpu backend: token id %d out of range [0, %d)", tokens[t],
                     c->vocab_size);
            return -1;
        }
    }
    return 0;
}

static void embed(cpu_model *model, const int32_t *tokens, int n, int pos0) {
    const int C = model->config.n_embd;
    for (int t = 0; t < n; t++) {
        const float *tok = model->weights.wte + (size_t)tokens[t] * C;
        const float *pos = model->weights.wpe + (size_t)(pos0 + t) * C;
        float *x = model->act.residual + (size_t)t * C;
        for (int i = 0; i < C; i++) x[i] = tok[i] + pos[i];
    }
}

static void store_kv(cpu_model *model, int layer, int pos0, int n) {
    const int C = model->config.n_embd;
    for (int t = 0; t < n; t++) {
        const float *row = model->act.qkv + (size_t)t * 3 * C; /* [q | k | v], C each */
        kv_cache_cpu_store(&model->cache, layer, pos0 + t, row + C, row + 2 * C);
    }
}

/* One transformer block on n rows of the residual stream. */
static void block_forward(cpu_model *model, int layer, int pos0, int n) {
    const gpt2_config *c = &model->config;
    const cpu_layer_weights *w = &model->weights.layers[layer];
    cpu_activations *a = &model->act;
    const int C = c->n_embd;

    cpu_layernorm(a->normed, a->residual, w->ln_1_w, w->ln_1_b, n, C, c->layer_norm_eps);
    cpu_matmul_bias(a->qkv, a->normed, w->attn_w, w->attn_b, n, C, 3 * C);
    store_kv(model, layer, pos0, n);
    /* The kept positions, then the new ones: the new tokens see all kept and each other causally. */
    const int *kept = model->selection.kept + (size_t)layer * c->n_positions;
    const int n_kept = model->selection.n_kept[layer];
    for (int i = 0; i < n_kept + n; i++) {
        const int pos = i < n_kept ? kept[i] : pos0 + (i - n_kept);
        a->k_rows[i] = kv_cache_cpu_k_row(&model->cache, layer, pos);
        a->v_rows[i] = kv_cache_cpu_v_row(&model->cache, layer, pos);
    }
    cpu_causal_attention(a->attn_out, a->qkv, 3 * C, a->k_rows, a->v_rows, n_kept, n, c->n_head,
                         a->scores);
    cpu_matmul_bias(a->normed, a->attn_out, w->attn_proj_w, w->attn_proj_b, n, C, C);
    cpu_add_inplace(a->residual, a->normed, (size_t)n * C);

    cpu_layernorm(a->normed, a->residual, w->ln_2_w, w->ln_2_b, n, C, c->layer_norm_eps);
    cpu_matmul_bias(a->hidden, a->normed, w->fc_w, w->fc_b, n, C, 4 * C);
    cpu_gelu_tanh(a->hidden, (size_t)n * 4 * C);
    cpu_matmul_bias(a->normed, a->hidden, w->mlp_proj_w, w->mlp_proj_b, n, 4 * C, C);
    cpu_add_inplace(a->residual, a->normed, (size_t)n * C);
}

int cpu_model_forward(cpu_model *model, const int32_t *tokens, int n, bool all_positions,
                      float *logits, char *err, size_t err_len) {
    if (check_forward_args(model, tokens, n, err, err_len) != 0) return -1;
    const gpt2_config *c = &model->config;
    const int C = c->n_embd, V = c->vocab_size, pos0 = model->cache.len;

    embed(model, tokens, n, pos0);
    for (int l = 0; l < c->n_layer; l++) block_forward(model, l, pos0, n);
    for (int l = 0; l < c->n_layer; l++) evict(model, l, pos0, n);
    cpu_layernorm(model->act.normed, model->act.residual, model->weights.ln_f_w,
              model->weights.ln_f_b, n, C, c->layer_norm_eps);
    int first = all_positions ? 0 : n - 1;
    for (int t = first; t < n; t++)
        cpu_lm_head_row(logits + (size_t)(t - first) * V, model->act.normed + (size_t)t * C,
                    model->weights.lm_head, V, C);
    model->cache.len += n;
    return 0;
}

int cpu_model_forward_sequence(void *model, const int32_t *tokens, int n, float *logits,
                               char *err, size_t err_len) {
    cpu_model_reset(model);
    return cpu_model_forward(model, tokens, n, true, logits, err, err_len);
}

/* The fewest tokens any layer keeps under the model's policy. */
static int smallest_layer_budget(const cpu_model *model) {
    int smallest = model->config.n_positions;
    for (int l = 0; l < model->config.n_layer; l++) {
        const int b = kv_policy_layer_budget(&model->selection.policy, l, model->config.n_layer,
                                             model->selection.budget_tokens);
        if (b < smallest) smallest = b;
    }
    return smallest;
}

int cpu_model_forward_decoded(void *model_ptr, const int32_t *tokens, int n, float *logits,
                              char *err, size_t err_len) {
    cpu_model *model = model_ptr;
    if (model->selection.policy.kind == KV_POLICY_FULL)
        return cpu_model_forward_sequence(model, tokens, n, logits, err, err_len);
    cpu_model_reset(model);
    const int V = model->config.vocab_size;
    int first = smallest_layer_budget(model);
    if (first > n) first = n;
    if (first > model->act.max_chunk) first = model->act.max_chunk;
    if (cpu_model_forward(model, tokens, first, true, logits, err, err_len) != 0) return -1;
    for (int t = first; t < n; t++)
        if (cpu_model_forward(model, tokens + t, 1, false, logits + (size_t)t * V, err, err_len) != 0)
            return -1;
    return 0;
}
