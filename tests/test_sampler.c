/*
 * The host sampler: greedy is argmax; top-k and top-p never pick outside the sets computed
 * here independently; frequencies follow the softmax; the same seed gives the same draws.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "model/sampler.h"
#include "tests/check.h"

#define VOCAB 64
#define DRAWS 200000

static void fill_logits(float *logits, uint64_t *state) {
    for (int i = 0; i < VOCAB; i++) logits[i] = 6.0f * sampler_next_uniform(state) - 3.0f;
}

static double softmax_prob(const float *logits, int id, float temperature) {
    double sum = 0.0;
    for (int i = 0; i < VOCAB; i++) sum += exp((double)logits[i] / temperature);
    return exp((double)logits[id] / temperature) / sum;
}

/* Number of logits strictly greater than logits[id]: its rank, 0 for the largest. */
static int rank_of(const float *logits, int id) {
    int rank = 0;
    for (int i = 0; i < VOCAB; i++) rank += logits[i] > logits[id];
    return rank;
}

static void check_greedy(const float *logits) {
    float best = -INFINITY;
    for (int i = 0; i < VOCAB; i++) best = fmaxf(best, logits[i]);
    sampler s;
    sampler_create(&s, VOCAB, (sampler_params){.temperature = 0.0f, .top_p = 1.0f});
    CHECK(logits[sampler_sample(&s, logits)] == best, "greedy did not pick the max");
    sampler_destroy(&s);
    sampler_create(&s, VOCAB, (sampler_params){.temperature = 1.0f, .top_k = 1, .top_p = 1.0f});
    CHECK(logits[sampler_sample(&s, logits)] == best, "top-k 1 did not pick the max");
    sampler_destroy(&s);
}

/* Chi-square of observed counts against softmax probabilities, full vocabulary, T = 0.7. */
static void check_frequencies(const float *logits) {
    const float temperature = 0.7f;
    sampler s;
    sampler_create(&s, VOCAB, (sampler_params){.temperature = temperature, .top_p = 1.0f, .seed = 7});
    int counts[VOCAB] = {0};
    for (int i = 0; i < DRAWS; i++) counts[sampler_sample(&s, logits)]++;
    double chi2 = 0.0;
    for (int i = 0; i < VOCAB; i++) {
        double expected = DRAWS * softmax_prob(logits, i, temperature);
        chi2 += (counts[i] - expected) * (counts[i] - expected) / expected;
    }
    /* 63 degrees of freedom: the 99.9th percentile is about 103. */
    CHECK(chi2 < 103.0, "frequencies do not follow softmax: chi2 = %.1f", chi2);
    sampler_destroy(&s);
}

static void check_top_k(const float *logits) {
    sampler s;
    sampler_create(&s, VOCAB, (sampler_params){.temperature = 1.0f, .top_k = 5, .top_p = 1.0f, .seed = 3});
    int seen[VOCAB] = {0};
    for (int i = 0; i < 20000; i++) seen[sampler_sample(&s, logits)] = 1;
    int distinct = 0;
    for (int i = 0; i < VOCAB; i++) {
        if (!seen[i]) continue;
        distinct++;
        CHECK(rank_of(logits, i) < 5, "top-k 5 picked id %d of rank %d", i, rank_of(logits, i));
    }
    CHECK(distinct == 5, "top-k 5 drew %d distinct ids in 20000 draws", distinct);
    sampler_destroy(&s);
}

/* The nucleus: ids by descending probability until the cumulative mass reaches p. */
static void check_top_p(const float *logits) {
    const float top_p = 0.5f;
    double mass_above[VOCAB]; /* mass of all ids ranked strictly above each id */
    for (int id = 0; id < VOCAB; id++) {
        mass_above[id] = 0.0;
        for (int j = 0; j < VOCAB; j++)
            if (logits[j] > logits[id]) mass_above[id] += softmax_prob(logits, j, 1.0f);
    }
    sampler s;
    sampler_create(&s, VOCAB, (sampler_params){.temperature = 1.0f, .top_p = top_p, .seed = 11});
    for (int i = 0; i < 20000; i++) {
        int id = sampler_sample(&s, logits);
        CHECK(mass_above[id] < top_p, "top-p %.2f picked id %d with %.3f mass above it", top_p,
              id, mass_above[id]);
    }
    sampler_destroy(&s);
}

static void check_seed_repeats(const float *logits) {
    sampler a, b, c;
    sampler_params p = {.temperature = 1.0f, .top_k = 40, .top_p = 0.9f, .seed = 42};
    sampler_create(&a, VOCAB, p);
    sampler_create(&b, VOCAB, p);
    p.seed = 43;
    sampler_create(&c, VOCAB, p);
    int same = 1, differs = 0;
    for (int i = 0; i < 1000; i++) {
        int x = sampler_sample(&a, logits), y = sampler_sample(&b, logits), z = sampler_sample(&c, logits);
        same &= x == y;
        differs |= x != z;
    }
    CHECK(same, "the same seed gave different draws");
    CHECK(differs, "different seeds gave identical draws over 1000 samples");
    sampler_destroy(&a);
    sampler_destroy(&b);
    sampler_destroy(&c);
}

int main(void) {
    uint64_t state = 2024;
    float logits[VOCAB];
    for (int round = 0; round < 3; round++) {
        fill_logits(logits, &state);
        check_greedy(logits);
        check_frequencies(logits);
        check_top_k(logits);
        check_top_p(logits);
        check_seed_repeats(logits);
    }
    return check_finish("test_sampler");
}
