/*
 * The CPU reference backend: a plain fp32 GPT-2 forward over a contiguous KV cache.
 *
 * It is the oracle for every GPU kernel and for the whole CUDA forward pass, so it favours
 * clarity over speed: one function per op, the forward pass in order on one screen. Its cache
 * stores K and V exactly (KV_FORMAT_FP32, the oracle) or through the GPU's FP16 or INT8 format,
 * so that it also serves as the reference for the quantized cache.
 */
#ifndef GPT2_CPU_MODEL_H
#define GPT2_CPU_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/kv_cache_cpu.h"
#include "cache/kv_policy.h"
#include "model/checkpoint.h"

typedef struct {
    float *ln_1_w, *ln_1_b;     /* [C] */
    float *attn_w;              /* [C, 3C] */
    float *attn_b;              /* [3C] */
    float *attn_proj_w;         /* [C, C] */
    float *attn_proj_b;         /* [C] */
    float *ln_2_w, *ln_2_b;     /* [C] */
    float *fc_w;                /* [C, 4C] */
    float *fc_b;                /* [4C] */
    float *mlp_proj_w;          /* [4C, C] */
    float *mlp_proj_b;          /* [C] */
} cpu_layer_weights;

typedef struct {
    float *wte;                 /* [V, C] */
    float *wpe;                 /* [n_positions, C] */
    cpu_layer_weights *layers;  /* [n_layer] */
    float *ln_f_w, *ln_f_b;     /* [C] */
    float *lm_head;             /* [V, C]; points at wte when tied */
    float *storage;             /* the one allocation every pointer above lives in */
} cpu_weights;

/* Activations for up to max_chunk new tokens at once. */
typedef struct {
    int max_chunk;
    float *residual;      /* [max_chunk, C] */
    float *normed;        /* [max_chunk, C] */
    float *qkv;           /* [max_chunk, 3C] */
    float *attn_out;      /* [max_chunk, C] */
    float *hidden;        /* [max_chunk, 4C] */
    float *scores;        /* [n_positions] */
    const float **k_rows; /* [n_positions] -> the cache row of each position, for attention */
    const float **v_rows; /* [n_positions] */
    float *pair_rows;     /* [4, C] minicache: a token's K, V in a pair's lower layer, then upper */
} cpu_activations;

/* H2O's ranking of a layer's older tokens: a kept token's score and its index in the kept list. */
typedef struct {
    float score;
    int index;
} cpu_ranked_row;

/*
 * Which cached positions each layer attends to: all of them under the full policy, or what
 * the KV policy keeps (cache/kv_policy.h). The cache itself stays contiguous (it is the
 * oracle's); a policy only changes the lists, after every forward call: a call's new tokens
 * attend to the kept positions and to each other, then the policy evicts (or, under minicache,
 * merges). Under share a borrowing layer reads its owner's list and keeps none of its own.
 */
typedef struct {
    kv_policy policy;
    int budget_tokens;    /* the budget pyramid's ratios scale */
    int *kept;            /* [n_layer, n_positions] kept positions of each layer, in order */
    int *n_kept;          /* [n_layer] */
    float *score;         /* [n_layer, n_positions] h2o: the score of kept[l][i] (kv_policy.h) */
    cpu_ranked_row *rank; /* [n_positions] h2o: scratch */
    int *n_merged;        /* [n_layer] minicache: at a pair's lower layer, its tokens held merged */
} cpu_kv_selection;

/*
 * What the cache holds under the policy, counted as the paged pool would hold it: each layer's
 * kept rows (K and V of one token) times the bytes of a row in the format, in pages of
 * KV_DEFAULT_BLOCK_SIZE tokens per layer. A share borrower holds nothing; a minicache pair holds
 * every token in its lower layer's pages, its merged ones with their norm ratios beside them
 * (kv_policy.h), and its retained tokens in the upper layer's pages too, as the CUDA pool does.
 */
typedef struct {
    long long rows;  /* token rows over all layers, a merged pair's token counted once */
    long long pages;
    long long bytes;
} cpu_kv_usage;

typedef struct {
    gpt2_config config;
    cpu_weights weights;
    kv_cache_cpu cache;
    cpu_kv_selection selection;
    cpu_activations act;
} cpu_model;

/*
 * Converts the checkpoint's weights to fp32 (the checkpoint may be closed afterwards) and
 * sizes the cache for n_positions tokens, stored in kv_storage. max_chunk bounds the tokens of
 * one forward call (0: n_positions). Returns 0, or -1 with a message in err.
 */
int cpu_model_create(cpu_model *model, const gpt2_checkpoint *ckpt, int max_chunk,
                     kv_format kv_storage, char *err, size_t err_len);
void cpu_model_destroy(cpu_model *model);

/* Switches how K and V are stored (the cache is emptied): one model serves several formats. */
void cpu_model_set_kv_format(cpu_model *model, kv_format format);

/*
 * Sets the KV policy (the cache is emptied): every policy of cache/kv_policy.h, with the
 * semantics written there; pyramid's layer groups keep their share of budget_tokens, the most
 * recent. Returns -1 with one line in err for a policy the model's layers refuse or a budget
 * outside [1, n_positions]. Positions stay absolute: a new token takes the next position
 * whatever was evicted, so the context still ends at n_positions.
 */
int cpu_model_set_kv_policy(cpu_model *model, const kv_policy *policy, int budget_tokens,
                            char *err, size_t err_len);

/*
 * Logits [n, V] of every position of a fresh sequence, teacher-forced the way generation runs
 * under the model's KV policy: kv_policy_first_chunk's tokens in one call (the smallest layer
 * budget, so that no layer ever attends past it; all n under full and share; 1 under
 * minicache), then one token per call, the policy evicting after each, so that eviction happens
 * exactly as in generation. Fits perplexity_forward_fn (model is a cpu_model *).
 */
int cpu_model_forward_decoded(void *model, const int32_t *tokens, int n, float *logits,
                              char *err, size_t err_len);

/*
 * The same with the first call's tokens given (first in [1, n]; 0: kv_policy_first_chunk's),
 * and, when held is not NULL, held[t] = what the cache holds after the call that ran token t.
 */
int cpu_model_decode(cpu_model *model, const int32_t *tokens, int n, int first,
                     float *logits /* [n, V] */, cpu_kv_usage *held /* [n] or NULL */, char *err,
                     size_t err_len);

/* What the cache holds now (cpu_kv_usage). */
cpu_kv_usage cpu_model_kv_usage(const cpu_model *model);

/* Forgets every cached position: the next forward starts a new sequence at position 0. */
void cpu_model_reset(cpu_model *model);

/*
 * Runs n new tokens at positions [cache.len, cache.len + n), appends their K and V to the cache
 * and writes logits: [n, V] when all_positions, else [V] for the last token only.
 * Returns 0, or -1 with a message in err when n is out of [1, max_chunk], the context would
 * pass n_positions, or a token id is out of range.
 */
int cpu_model_forward(cpu_model *model, const int32_t *tokens, int n, bool all_positions,
                      float *logits, char *err, size_t err_len);

/*
 * Logits [n, V] of every position of a fresh sequence tokens[0..n): reset, then one forward.
 * The signature fits perplexity_forward_fn (model is a cpu_model *).
 */
int cpu_model_forward_sequence(void *model, const int32_t *tokens, int n, float *logits,
                               char *err, size_t err_len);

#endif
