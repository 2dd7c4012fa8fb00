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

/*
 * Top-k then top-p: the kept set is the top_k most probable ids, cut to the smallest prefix
 * whose mass reaches top_p of theirs. Every kept id must be drawn in proportion to its
 * renormalized probability (chi-square), and nothing else drawn at all.
 */
static void check_nucleus(const float *logits, int top_k, float top_p) {
    double prob[VOCAB], kept_mass = 0.0, topk_mass = 0.0;
    int kept[VOCAB] = {0};
    for (int id = 0; id < VOCAB; id++) prob[id] = softmax_prob(logits, id, 1.0f);
    for (int id = 0; id < VOCAB; id++)
        if (rank_of(logits, id) < top_k) topk_mass += prob[id];
    for (int id = 0; id < VOCAB; id++) {
        double mass_above = 0.0; /* of the top-k ids ranked above id */
        for (int j = 0; j < VOCAB; j++)
            if (logits[j] > logits[id] && rank_of(logits, j) < top_k) mass_above += prob[j];
        kept[id] = rank_of(logits, id) < top_k && mass_above < top_p * topk_mass;
        if (kept[id]) kept_mass += prob[id];
    }
    sampler s;
    sampler_create(&s, VOCAB, (sampler_params){.temperature = 1.0f, .top_k = top_k, .top_p = top_p, .seed = 11});
    int counts[VOCAB] = {0};
    for (int i = 0; i < DRAWS; i++) counts[sampler_sample(&s, logits)]++;
    double chi2 = 0.0;
    int n_kept = 0;
    for (int id = 0; id < VOCAB; id++) {
        if (!kept[id]) {
            CHECK(counts[id] == 0, "top-k %d top-p %.2f drew id %d outside the kept set", top_k, top_p, id);
            continue;
        }
        n_kept++;
        double expected = DRAWS * prob[id] / kept_mass;
        chi2 += (counts[id] - expected) * (counts[id] - expected) / expected;
    }
    /* n_kept - 1 degrees of freedom; 4 x dof + 20 is far past the 99.9th percentile for dof < 64. */
    CHECK(n_kept >= 2, "the test needs a nucleus of 2 or more ids, got %d", n_kept);
    CHECK(chi2 < 4.0 * (n_kept - 1) + 20.0, "top-k %d top-p %.2f: frequencies off the renormalized "
          "probabilities, chi2 = %.1f over %d ids", top_k, top_p, chi2, n_kept);
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
        check_nucleus(logits, VOCAB, 0.5f);
        check_nucleus(logits, 12, 0.8f);
        check_seed_repeats(logits);
    }
    return check_finish("test_sampler");
}
