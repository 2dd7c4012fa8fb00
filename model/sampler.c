#include "model/sampler.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

int sampler_create(sampler *s, int vocab_size, sampler_params params) {
    *s = (sampler){.params = params, .rng_state = params.seed, .vocab_size = vocab_size};
    s->candidates = malloc((size_t)vocab_size * sizeof(sampler_candidate));
    return s->candidates ? 0 : -1;
}

void sampler_destroy(sampler *s) {
    free(s->candidates);
    s->candidates = NULL;
}

int32_t sampler_argmax(const float *logits, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (logits[i] > logits[best]) best = i;
    return best;
}

uint64_t splitmix64_mix(uint64_t x) {
    uint64_t z = x + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* splitmix64: the state is a counter advanced by the golden gamma, hashed on the way out. */
static uint64_t splitmix64(uint64_t *state) {
    uint64_t out = splitmix64_mix(*state);
    *state += 0x9E3779B97F4A7C15ull;
    return out;
}

float sampler_next_uniform(uint64_t *state) {
    return (float)(splitmix64(state) >> 40) * (1.0f / 16777216.0f); /* 24 random bits */
}

/* Most probable first; equal probabilities keep the smaller id first. */
static int by_prob_desc(const void *a, const void *b) {
    const sampler_candidate *ca = a, *cb = b;
    if (ca->prob != cb->prob) return ca->prob > cb->prob ? -1 : 1;
    return (ca->id > cb->id) - (ca->id < cb->id);
}

/* candidates[i] = (softmax(logits / temperature)[i], i). */
static void softmax_with_temperature(sampler_candidate *candidates, const float *logits, int n,
                                     float temperature) {
    float max_logit = logits[sampler_argmax(logits, n)];
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        candidates[i] = (sampler_candidate){expf((logits[i] - max_logit) / temperature), i};
        sum += candidates[i].prob;
    }
    for (int i = 0; i < n; i++) candidates[i].prob = (float)(candidates[i].prob / sum);
}

/*
 * Sorts the candidates and returns how many survive top-k and then top-p. Top-p keeps the
 * smallest prefix whose mass reaches p of the top-k mass (always at least one token).
 */
static int apply_top_k_top_p(sampler_candidate *candidates, int n, int top_k, float top_p) {
    qsort(candidates, (size_t)n, sizeof(sampler_candidate), by_prob_desc);
    int kept = (top_k > 0 && top_k < n) ? top_k : n;
    if (top_p < 1.0f) {
        double mass = 0.0;
        for (int i = 0; i < kept; i++) mass += candidates[i].prob;
        double cumulative = 0.0;
        for (int i = 0; i < kept; i++) {
            cumulative += candidates[i].prob;
            if (cumulative >= top_p * mass) return i + 1;
        }
    }
    return kept;
}

int32_t sampler_draw(const sampler_candidate *candidates, int n, float uniform) {
    double mass = 0.0;
    for (int i = 0; i < n; i++) mass += candidates[i].prob;
    double target = uniform * mass;
    double cumulative = 0.0;
    for (int i = 0; i < n; i++) {
        cumulative += candidates[i].prob;
        if (target < cumulative) return candidates[i].id;
    }
    return candidates[n - 1].id;
}

static bool is_greedy(const sampler_params *p) { return p->temperature <= 0.0f || p->top_k == 1; }

int sampler_candidates(sampler *s, const float *logits) {
    const sampler_params *p = &s->params;
    softmax_with_temperature(s->candidates, logits, s->vocab_size, p->temperature);
    if (p->top_k > 0 || p->top_p < 1.0f)
        return apply_top_k_top_p(s->candidates, s->vocab_size, p->top_k, p->top_p);
    return s->vocab_size;
}

int32_t sampler_pick(sampler *s, const float *logits, float uniform) {
    if (is_greedy(&s->params)) return sampler_argmax(logits, s->vocab_size);
    return sampler_draw(s->candidates, sampler_candidates(s, logits), uniform);
}

float sampler_take_uniform(sampler *s) { return sampler_stream_uniform(&s->params, &s->rng_state); }

float sampler_stream_uniform(const sampler_params *params, uint64_t *state) {
    return is_greedy(params) ? 0.0f : sampler_next_uniform(state);
}

int32_t sampler_sample(sampler *s, const float *logits) {
    return sampler_pick(s, logits, sampler_take_uniform(s));
}
