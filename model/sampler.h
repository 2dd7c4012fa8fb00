/*
 * Next-token sampling on the host: greedy, temperature, top-k and top-p (nucleus), seeded so
 * that the same seed gives the same tokens.
 */
#ifndef GPT2_SAMPLER_H
#define GPT2_SAMPLER_H

#include <stdint.h>

typedef struct {
    float temperature; /* 0 means greedy (argmax) */
    int top_k;         /* 0 means no top-k cut */
    float top_p;       /* 1 means no nucleus cut */
    uint64_t seed;
} sampler_params;

/* One candidate token with its probability. */
typedef struct {
    float prob;
    int32_t id;
} sampler_candidate;

typedef struct {
    sampler_params params;
    uint64_t rng_state;
    int vocab_size;
    sampler_candidate *candidates; /* [vocab_size] scratch */
} sampler;

/* Returns 0, or -1 when out of memory. */
int sampler_create(sampler *s, int vocab_size, sampler_params params);
void sampler_destroy(sampler *s);

/* The index of the largest logit (the first one on ties). */
int32_t sampler_argmax(const float *logits, int n);

/* Draws the next token id from logits[vocab_size]: sampler_pick with sampler_take_uniform. */
int32_t sampler_sample(sampler *s, const float *logits);

/*
 * The uniform the next draw uses, taken from the generator: none is taken when greedy (0 is
 * returned), so a seed gives the same stream of draws wherever the pick itself runs.
 */
float sampler_take_uniform(sampler *s);

/*
 * The same draw from a stream of its own, state starting at params->seed: what many sequences
 * under one set of parameters use, one stream each, without a sampler each.
 */
float sampler_stream_uniform(const sampler_params *params, uint64_t *state);

/*
 * The token that `uniform` (in [0, 1)) draws from logits[vocab_size] under s->params; argmax
 * when greedy (temperature <= 0 or top_k == 1). The device sampler (launch_sample) matches it.
 */
int32_t sampler_pick(sampler *s, const float *logits, float uniform);

/*
 * The steps of a non-greedy pick, for tests. sampler_candidates fills s->candidates with
 * softmax(logits / temperature) and returns how many survive top-k and top-p, in the order the
 * draw walks them: by id without a cut, else most probable first (ties: smaller id first).
 * sampler_draw returns the first of candidates[0, n) whose cumulative probability exceeds
 * uniform times their total (the last one if none does).
 */
int sampler_candidates(sampler *s, const float *logits);
int32_t sampler_draw(const sampler_candidate *candidates, int n, float uniform);

/* The splitmix64 output function: a well-mixed 64-bit hash of x (synthetic weights use it too). */
uint64_t splitmix64_mix(uint64_t x);

/* A uniform float in [0, 1) from the sampler's generator (exposed for tests). */
float sampler_next_uniform(uint64_t *state);

#endif
