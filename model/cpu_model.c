#include "model/cpu_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/kv_pool.h"
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
    a->pair_rows = malloc(4 * C * sizeof(float));
    if (!a->residual || !a->normed || !a->qkv || !a->attn_out || !a->hidden || !a->scores ||
        !a->k_rows || !a->v_rows || !a->pair_rows)
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
    free(a->pair_rows);
    *a = (cpu_activations){0};
}

static int alloc_selection(cpu_kv_selection *sel, const gpt2_config *c) {
    const size_t L = (size_t)c->n_layer, P = (size_t)c->n_positions;
    sel->kept = malloc(L * P * sizeof *sel->kept);
    sel->n_kept = calloc(L, sizeof *sel->n_kept);
    sel->score = malloc(L * P * sizeof *sel->score);
    sel->rank = malloc(P * sizeof *sel->rank);
    sel->n_merged = calloc(L, sizeof *sel->n_merged);
    return sel->kept && sel->n_kept && sel->score && sel->rank && sel->n_merged ? 0 : -1;
}

static void free_selection(cpu_kv_selection *sel) {
    free(sel->kept);
    free(sel->n_kept);
    free(sel->score);
    free(sel->rank);
    free(sel->n_merged);
    *sel = (cpu_kv_selection){0};
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
        alloc_selection(&model->selection, c) != 0) {
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
    free_selection(&model->selection);
}

void cpu_model_reset(cpu_model *model) {
    model->cache.len = 0;
    for (int l = 0; l < model->config.n_layer; l++)
        model->selection.n_kept[l] = model->selection.n_merged[l] = 0;
}

void cpu_model_set_kv_format(cpu_model *model, kv_format format) {
    model->cache.format = format;
    cpu_model_reset(model);
}

int cpu_model_set_kv_policy(cpu_model *model, const kv_policy *policy, int budget_tokens,
                            char *err, size_t err_len) {
    if (kv_policy_check(policy, model->config.n_layer, err, err_len) != 0) return -1;
    if (budget_tokens < 1 || budget_tokens > model->config.n_positions)
        return snprintf(err, err_len, "cpu backend: a KV budget of %d tokens, expected 1..%d",
                        budget_tokens, model->config.n_positions), -1;
    model->selection.policy = *policy;
    model->selection.budget_tokens = budget_tokens;
    cpu_model_reset(model);
    return 0;
}

/* Whether a layer under the policy keeps every token it writes (it may merge, never evict). */
static bool keeps_every_token(kv_policy_kind kind) {
    return kind == KV_POLICY_FULL || kind == KV_POLICY_SHARE || kind == KV_POLICY_MINICACHE;
}

/* Whether layer `layer` is the lower layer of a minicache pair (its partner is layer + 1). */
static bool merges_with_next(const kv_policy *p, int layer, int n_layer) {
    return p->kind == KV_POLICY_MINICACHE && layer >= p->first_layer &&
           (layer - p->first_layer) % 2 == 0 && layer + 1 < n_layer;
}

/* H2O's order: the higher score first, and of equal scores the more recent (higher index). */
static int by_score_then_recency(const void *a, const void *b) {
    const cpu_ranked_row *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return y->index - x->index;
}

static int by_index(const void *a, const void *b) {
    return ((const cpu_ranked_row *)a)->index - ((const cpu_ranked_row *)b)->index;
}

/*
 * H2O on one layer's list of count > heavy + window tokens: keeps, in position order, the
 * `heavy` highest-scored of the older ones and the `window` most recent, with their scores.
 */
static void keep_heavy_hitters(cpu_kv_selection *sel, int *kept /* [count] */,
                               float *score /* [count] */, int count, int heavy, int window) {
    const int older = count - window;
    cpu_ranked_row *rank = sel->rank;
    for (int i = 0; i < older; i++) rank[i] = (cpu_ranked_row){.score = score[i], .index = i};
    qsort(rank, (size_t)older, sizeof *rank, by_score_then_recency);
    qsort(rank, (size_t)heavy, sizeof *rank, by_index);
    for (int j = 0; j < heavy; j++) { /* rank[j].index >= j: compacting in place is safe */
        kept[j] = kept[rank[j].index];
        score[j] = score[rank[j].index];
    }
    memmove(kept + heavy, kept + older, (size_t)window * sizeof *kept);
    memmove(score + heavy, score + older, (size_t)window * sizeof *score);
}

/*
 * After a forward call: layer `layer` appends the call's positions [pos0, pos0 + n) to its
 * kept list (their H2O scores are in place already: the attention accumulated them there),
 * then drops what its policy does not keep: all but the most recent budget tokens (window,
 * pyramid), under sinks all but the first S and the most recent W, under h2o all but the
 * heavy hitters and the most recent W. A share borrower keeps no list of its own.
 */
static void evict(cpu_model *model, int layer, int pos0, int n) {
    cpu_kv_selection *sel = &model->selection;
    const kv_policy *p = &sel->policy;
    if (kv_policy_kv_source(p, layer) != layer) return;
    const int L = model->config.n_layer;
    int *kept = sel->kept + (size_t)layer * model->config.n_positions;
    int count = sel->n_kept[layer];
    for (int t = 0; t < n; t++) kept[count++] = pos0 + t;
    const int budget = kv_policy_layer_budget(p, layer, L, sel->budget_tokens);
    sel->n_kept[layer] = count;
    if (keeps_every_token(p->kind) || count <= budget) return;
    sel->n_kept[layer] = budget;
    if (p->kind == KV_POLICY_H2O) {
        float *score = sel->score + (size_t)layer * model->config.n_positions;
        keep_heavy_hitters(sel, kept, score, count, p->heavy, p->window);
        return;
    }
    const int sinks = p->kind == KV_POLICY_SINKS ? p->sinks : 0; /* the first positions kept */
    const int recent = budget - sinks;
    memmove(kept + sinks, kept + count - recent, (size_t)recent * sizeof *kept);
}

/*
 * minicache after a call: merges the pair (lower, lower + 1) at position pos (kv_policy.h),
 * from the rows as stored, and stores each layer's reconstructed rows through the format; or
 * leaves the token unmerged when a head's directions are too far apart.
 */
static void merge_token(cpu_model *model, int lower, int pos) {
    kv_cache_cpu *cache = &model->cache;
    const int C = model->config.n_embd, D = GPT2_HEAD_SIZE;
    float *rows = model->act.pair_rows; /* K, V of the lower layer, then of the upper one */
    memcpy(rows, kv_cache_cpu_k_row(cache, lower, pos), C * sizeof(float));
    memcpy(rows + C, kv_cache_cpu_v_row(cache, lower, pos), C * sizeof(float));
    memcpy(rows + 2 * C, kv_cache_cpu_k_row(cache, lower + 1, pos), C * sizeof(float));
    memcpy(rows + 3 * C, kv_cache_cpu_v_row(cache, lower + 1, pos), C * sizeof(float));
    for (int i = 0; i < 2 * C; i += D)
        if (cpu_cosine(rows + i, rows + 2 * C + i, D) < KV_MINICACHE_RETAIN_COS ||
            (cpu_norm(rows + i, D) == 0.0) != (cpu_norm(rows + 2 * C + i, D) == 0.0))
            return;
    for (int i = 0; i < 2 * C; i += D) cpu_slerp_merge(rows + i, rows + 2 * C + i, D);
    kv_cache_cpu_store(cache, lower, pos, rows, rows + C);
    kv_cache_cpu_store(cache, lower + 1, pos, rows + 2 * C, rows + 3 * C);
    model->selection.n_merged[lower]++;
}

/* What follows each forward call of n tokens at pos0: eviction, or minicache's merging. */
static void after_call(cpu_model *model, int pos0, int n) {
    const int L = model->config.n_layer;
    for (int l = 0; l < L; l++) {
        evict(model, l, pos0, n);
        if (merges_with_next(&model->selection.policy, l, L))
            for (int t = 0; t < n; t++) merge_token(model, l, pos0 + t);
    }
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

/*
 * The query of n new tokens into act.qkv, and for a layer that owns its cache their K and V,
 * stored. Returns the query's row stride: 3C ([q | k | v] rows), or C for a share borrower,
 * which projects its query only (with qalign through its owner's Wq, bq).
 */
static int project_qkv(cpu_model *model, int layer, int source, int pos0, int n) {
    const int C = model->config.n_embd;
    cpu_activations *a = &model->act;
    if (source == layer) {
        const cpu_layer_weights *w = &model->weights.layers[layer];
        cpu_matmul_bias(a->qkv, a->normed, w->attn_w, w->attn_b, n, C, 3 * C);
        store_kv(model, layer, pos0, n);
        return 3 * C;
    }
    const cpu_layer_weights *wq =
        &model->weights.layers[model->selection.policy.qalign ? source : layer];
    cpu_matmul_bias_columns(a->qkv, a->normed, wq->attn_w, 3 * C, wq->attn_b, n, C, C);
    return C;
}

/* One transformer block on n rows of the residual stream. */
static void block_forward(cpu_model *model, int layer, int pos0, int n) {
    const gpt2_config *c = &model->config;
    const cpu_layer_weights *w = &model->weights.layers[layer];
    cpu_activations *a = &model->act;
    const int C = c->n_embd;

    cpu_kv_selection *sel = &model->selection;
    const int source = kv_policy_kv_source(&sel->policy, layer); /* whose cache it reads */

    cpu_layernorm(a->normed, a->residual, w->ln_1_w, w->ln_1_b, n, C, c->layer_norm_eps);
    const int q_stride = project_qkv(model, layer, source, pos0, n);
    /* The kept positions, then the new ones: the new tokens see all kept and each other causally. */
    const int *kept = sel->kept + (size_t)source * c->n_positions;
    const int n_kept = sel->n_kept[source];
    for (int i = 0; i < n_kept + n; i++) {
        const int pos = i < n_kept ? kept[i] : pos0 + (i - n_kept);
        a->k_rows[i] = kv_cache_cpu_k_row(&model->cache, source, pos);
        a->v_rows[i] = kv_cache_cpu_v_row(&model->cache, source, pos);
    }
    /* H2O: the scores of the kept rows, then the new rows' from 0, in kept-list order. */
    float *score = sel->policy.kind == KV_POLICY_H2O ? sel->score + (size_t)layer * c->n_positions
                                                      : NULL;
    if (score) memset(score + n_kept, 0, (size_t)n * sizeof *score);
    cpu_causal_attention_scored(a->attn_out, a->qkv, q_stride, a->k_rows, a->v_rows, n_kept, n,
                                c->n_head, a->scores, score);
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
    after_call(model, pos0, n);
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

int cpu_model_decode(cpu_model *model, const int32_t *tokens, int n, int first, float *logits,
                     cpu_kv_usage *held, char *err, size_t err_len) {
    const gpt2_config *c = &model->config;
    if (first == 0)
        first = kv_policy_first_chunk(&model->selection.policy, c->n_layer,
                                      model->selection.budget_tokens, model->act.max_chunk, n);
    if (n < 1 || first < 1 || first > n)
        return snprintf(err, err_len, "cpu backend: a first call of %d of %d tokens", first, n), -1;
    cpu_model_reset(model);
    const int V = c->vocab_size;
    if (cpu_model_forward(model, tokens, first, true, logits, err, err_len) != 0) return -1;
    for (int t = 0; held && t < first; t++) held[t] = cpu_model_kv_usage(model);
    for (int t = first; t < n; t++) {
        if (cpu_model_forward(model, tokens + t, 1, false, logits + (size_t)t * V, err, err_len) != 0)
            return -1;
        if (held) held[t] = cpu_model_kv_usage(model);
    }
    return 0;
}

int cpu_model_forward_decoded(void *model, const int32_t *tokens, int n, float *logits,
                              char *err, size_t err_len) {
    return cpu_model_decode(model, tokens, n, 0, logits, NULL, err, err_len);
}

/* Adds `rows` tokens held in one layer's pages, of row_bytes each, to the usage. */
static void hold_rows(cpu_kv_usage *u, long long rows, long long row_bytes) {
    u->rows += rows;
    u->pages += (rows + KV_DEFAULT_BLOCK_SIZE - 1) / KV_DEFAULT_BLOCK_SIZE;
    u->bytes += rows * row_bytes;
}

cpu_kv_usage cpu_model_kv_usage(const cpu_model *model) {
    const gpt2_config *c = &model->config;
    const cpu_kv_selection *sel = &model->selection;
    const long long row_bytes =
        2LL * c->n_head * (long long)kv_format_bytes_per_head(model->cache.format);
    /* a merged token's norm ratios: K and V, each head */
    const long long ratio_bytes = 2LL * c->n_head * KV_MINICACHE_RATIO_BYTES;
    cpu_kv_usage u = {0};
    for (int l = 0; l < c->n_layer; l++) {
        if (kv_policy_kv_source(&sel->policy, l) != l) continue; /* a share borrower */
        if (!merges_with_next(&sel->policy, l, c->n_layer)) {
            hold_rows(&u, sel->n_kept[l], row_bytes);
            continue;
        }
        const int merged = sel->n_merged[l], retained = sel->n_kept[l] - merged;
        hold_rows(&u, merged + retained, row_bytes); /* the lower layer: every token */
        u.bytes += merged * ratio_bytes;              /* beside its merged rows */
        hold_rows(&u, retained, row_bytes);           /* the upper layer: its retained ones */
        l++;
    }
    return u;
}
