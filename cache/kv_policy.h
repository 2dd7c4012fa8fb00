/*
 * KV cache policies (`--kv-policy`): which tokens' K and V each layer keeps, and which layer's
 * cache each layer reads. This header parses and describes them. The pool and the attention
 * kernels enforce them.
 *
 *   full                  every token, every layer (the default)
 *   window:W              the last W tokens
 *   sinks:S,window:W      the first S tokens (StreamingLLM's attention sinks) and the last W
 *   h2o:H,window:W        the H heaviest hitters (accumulated attention probability) and the last W
 *   pyramid:r0,r1,...     per-layer budgets shrinking with depth (PyramidKV): the layers split
 *                         into as many equal groups as ratios, first to last, and group g keeps
 *                         r_g of the budget (the most recent tokens)
 *   minicache:L0          layers L0.. merged pairwise, MiniCache's way
 *   share:L0[,qalign]     pairs (L0, L0+1), (L0+2, L0+3), ..: the upper layer reads the lower
 *                         one's K and V and stores none; qalign also gives it the owner's query
 *
 * A policy evicts after each forward call: the cache then holds at most the budget (W, S + W,
 * H + W, or pyramid's share), and the next call's tokens attend to what it holds and to each
 * other. Inside one call nothing is evicted, so a long prompt's prefill attends to all of it.
 *
 * Tokens keep the absolute positions they were embedded at: GPT-2's positions are learned and
 * added to the input, so a kept row's K and V already carry theirs, and a new token takes the
 * next position of the sequence whatever was evicted (so the context still ends at n_positions).
 */
#ifndef GPT2_KV_POLICY_H
#define GPT2_KV_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#define KV_POLICY_MAX_GROUPS 64 /* pyramid ratios */

typedef enum {
    KV_POLICY_FULL,
    KV_POLICY_WINDOW,
    KV_POLICY_SINKS,
    KV_POLICY_H2O,
    KV_POLICY_PYRAMID,
    KV_POLICY_MINICACHE,
    KV_POLICY_SHARE,
} kv_policy_kind;

typedef struct {
    kv_policy_kind kind;
    int window;     /* WINDOW, SINKS, H2O: the most recent tokens kept, >= 1 */
    int sinks;      /* SINKS: the first tokens kept, >= 1 */
    int heavy;      /* H2O: heavy hitters kept, >= 1 */
    int n_ratios;   /* PYRAMID: groups of layers */
    float ratios[KV_POLICY_MAX_GROUPS]; /* PYRAMID: each in (0, 1] */
    int first_layer; /* MINICACHE, SHARE: L0 */
    bool qalign;    /* SHARE */
} kv_policy;

/*
 * Parses a policy as written above (no spaces). Returns 0, or -1 with one line in err naming
 * what is wrong.
 */
int kv_policy_parse(const char *text, kv_policy *out, char *err, size_t err_len);

/* The canonical text of a policy, which kv_policy_parse reads back to the same policy. */
void kv_policy_format(const kv_policy *policy, char *out, size_t out_len);

/*
 * Checks the policy against a model of n_layer layers: a pyramid with more groups than layers,
 * or an L0 outside [0, n_layer - 1) for the pairwise policies, is refused. Returns 0, or -1
 * with one line in err.
 */
int kv_policy_check(const kv_policy *policy, int n_layer, char *err, size_t err_len);

/*
 * The most tokens layer `layer` keeps of one sequence: budget_tokens under pyramid (scaled by
 * its group's ratio, at least 1), W (+ S or H) under the window policies, and budget_tokens for
 * the others. The group of layer l is l * n_ratios / n_layer.
 */
int kv_policy_layer_budget(const kv_policy *policy, int layer, int n_layer, int budget_tokens);

/* The layer whose K and V layer `layer` reads: itself, or under share its pair's lower layer. */
int kv_policy_kv_source(const kv_policy *policy, int layer);

#endif
