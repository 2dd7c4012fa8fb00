/*
 * KV cache policies (`--kv-policy`): which tokens' K and V each layer keeps, and which layer's
 * cache each layer reads. This header parses and describes them. The CPU reference
 * (model/cpu_model) runs each; so does the CUDA pool (cache/kv_pool, model/cuda_model, the
 * attention kernels, kernels/kv_h2o.cu and kernels/kv_minicache.cu), freeing pages as it evicts.
 *
 *   full                  every token, every layer (the default)
 *   window:W              the last W tokens
 *   sinks:S,window:W      the first S tokens (StreamingLLM's attention sinks) and the last W
 *   h2o:H,window:W        the H heaviest hitters (accumulated attention probability) and the last W
 *                         (below)
 *   pyramid:r0,r1,...     per-layer budgets shrinking with depth (PyramidKV): the layers split
 *                         into as many equal groups as ratios, first to last, and group g keeps
 *                         r_g of the budget (the most recent tokens)
 *   minicache:L0          layers L0.. merged pairwise, MiniCache's way (below)
 *   share:L0[,qalign]     pairs (L0, L0+1), (L0+2, L0+3), ..: the upper layer reads the lower
 *                         one's K and V and stores none; qalign also gives it the owner's query
 *                         (below)
 *
 * H2O. Each layer keeps a score for each token it holds: the softmax probability that every
 * query which attended to it gave it, summed over those queries (from the call that wrote it,
 * the token's own query included, on) and over the heads. After each call a layer holding more
 * than H + W keeps its W most recent tokens and, of the older ones, the H of highest score (ties
 * to the more recent); an evicted token's score is forgotten. A prompt's prefill scores with
 * every query before it evicts. The score is summed over heads, not kept per head, because a
 * pool page holds every head of its tokens: a token can give its page slot back only when it
 * leaves for all heads at once, and per-head kept sets would leave holes that never free.
 *
 * share. In each pair the lower layer o owns the cache, the upper layer u computes no K or V and
 * attends over o's rows: the same kept positions, the call's new tokens included (o wrote them
 * earlier in the same forward). u's query is LN_1(x_u) @ Wq_u + bq_u, or with qalign
 * LN_1(x_u) @ Wq_o + bq_o (o's query projection). Only owner layers hold KV memory; K and V stay
 * in the cache's format (--kv fp32, fp16, int8). Nothing is evicted.
 *
 * minicache. For each pair (o, o + 1) from L0 up (a last layer left without a partner keeps its
 * own rows), the call's tokens are merged once the call ends (before it, both layers attend to
 * their exact rows, as a prefill attends to all before eviction). Per token, K and V separately,
 * per head: the two layers' rows a, b become one direction, their SLERP midpoint at t = 0.5,
 * (a/|a| + b/|b|) / |a/|a| + b/|b||, and each layer keeps its own norm; reading layer l's row
 * gives |row_l| times that direction. A token is retained unmerged, both layers keeping their
 * exact rows, when any of its heads (K or V) has a cosine below KV_MINICACHE_RETAIN_COS between
 * the two layers, or exactly one of the two is zero: a fixed threshold, decided per token from
 * its own rows at merge time, so it needs no statistics over other tokens. Nothing is evicted.
 * Memory, as the CUDA pool holds it: the lower layer keeps a row for every token (a merged one
 * stores |lower| times the direction, in the cache's format) and the upper layer a row for each
 * retained token only; a merged token adds, per head, the upper layer's norm ratio |upper| /
 * |lower| for K and for V (2 x n_head fp32), which turns the lower row into the upper one.
 *
 * A policy evicts after each forward call: the cache then holds at most the budget (W, S + W,
 * H + W, or pyramid's share), and the next call's tokens attend to what it holds and to each
 * other. Inside one call nothing is evicted, so a long prompt's prefill attends to all of it.
 *
 * Tokens keep the absolute positions they were embedded at: GPT-2's positions are learned and
 * added to the input, so a kept row's K and V already carry theirs, and a new token takes the
 * next position of the sequence whatever was evicted (so the context still ends at n_positions;
 * `gpt2 generate` goes past it under window and sinks by prefilling the kept tokens again at
 * positions from 0 when the context fills). Per policy: window, sinks, h2o and pyramid leave gaps between the positions they keep (sinks
 * keep 0..S-1, heavy hitters theirs, wherever they were); share's borrower reads the owner's
 * rows, made from the same token at the same position; minicache's merged rows mix two layers'
 * rows of one token, so they carry its one position; full keeps 0..len-1.
 */
#ifndef GPT2_KV_POLICY_H
#define GPT2_KV_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KV_POLICY_MAX_GROUPS 64 /* pyramid ratios */
/* minicache: a token whose two layers' heads (K or V) have a cosine below this stays unmerged. */
#define KV_MINICACHE_RETAIN_COS 0.5
#define KV_MINICACHE_RATIO_BYTES 4 /* a merged head's norm ratio, of K or of V: fp32 */

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

/*
 * The tokens a teacher-forced run (ppl, kvcompare under a policy) prefills before it goes one
 * token per step: the fewest any layer keeps, so that the prefill itself evicts nothing; at
 * most max_chunk and n. Under minicache 1: it merges after every call, so a prefill of more
 * would read exact rows where decoding reads merged ones.
 */
int kv_policy_first_chunk(const kv_policy *policy, int n_layer, int budget_tokens, int max_chunk,
                          int n);

/*
 * Past n_positions (window and sinks only): the tokens a restart keeps, the first S and the
 * last W of the context, which the next call prefills afresh at positions 0 .. S + W - 1 (GPT-2's
 * positions are learned and absolute, so kept tokens cannot keep theirs). kv_policy_restart_keeps
 * returns S + W, or 0 for a policy that cannot run past the context. kv_policy_restart_context
 * moves the kept tokens of ids[0, len) (len > S + W) to its front and returns S + W.
 */
int kv_policy_restart_keeps(const kv_policy *policy);
int kv_policy_restart_context(const kv_policy *policy, int32_t *ids /* [len] */, int len);

/* The layer whose K and V layer `layer` reads: itself, or under share its pair's lower layer. */
int kv_policy_kv_source(const kv_policy *policy, int layer);

#endif
