/*
 * The CPU reference backend against golden logits from an independent oracle, and the KV
 * cache against full recomputation.
 *
 * usage: test_cpu_forward FIXTURE_DIR NAME...
 */
#include <stdio.h>
#include <stdlib.h>

#include "model/cpu_model.h"
#include "model/sampler.h"
#include "tests/check.h"
#include "tests/golden.h"

#define GOLDEN_TOLERANCE 1e-4 /* max |ours - oracle| / max |oracle|, per position */
#define CACHE_TOLERANCE 1e-5  /* cached decode against recompute: same arithmetic, other order */

/* Prefill of the whole fixture in one call, compared at the golden positions. */
static void check_against_golden(cpu_model *model, const golden_fixture *g, const char *name) {
    const int V = g->config.vocab_size;
    char err[GPT2_ERR_LEN];
    float *logits = malloc((size_t)g->n_tokens * V * sizeof(float));
    cpu_model_reset(model);
    int rc = cpu_model_forward(model, g->tokens, g->n_tokens, true, logits, err, sizeof err);
    CHECK(rc == 0, "%s: forward failed: %s", name, err);
    double worst = 0.0;
    int top1_agree = 0;
    for (int i = 0; i < g->n_positions && rc == 0; i++) {
        const float *ours = logits + (size_t)g->positions[i] * V;
        const float *ref = g->logits + (size_t)i * V;
        double rel = relative_error(ours, ref, V);
        if (rel > worst) worst = rel;
        CHECK(rel <= GOLDEN_TOLERANCE, "%s: position %d: relative error %.3g", name,
              g->positions[i], rel);
        top1_agree += sampler_argmax(ours, V) == sampler_argmax(ref, V);
    }
    printf("%s: %d positions against %s: max relative error %.3g, top-1 agreement %d/%d\n", name,
           g->n_positions, g->oracle, worst, top1_agree, g->n_positions);
    CHECK(top1_agree == g->n_positions, "%s: top-1 disagreement", name);
    free(logits);
}

/*
 * Token-by-token decode against the cache, and prefill in uneven chunks, both against the
 * last row of a fresh full-prefix forward at every position.
 */
static void check_cache_equals_recompute(cpu_model *model, const golden_fixture *g,
                                         const char *name) {
    const int V = g->config.vocab_size, T = g->n_tokens;
    char err[GPT2_ERR_LEN];
    float *recomputed = malloc((size_t)T * V * sizeof(float));
    float *step = malloc((size_t)V * sizeof(float));
    for (int t = 0; t < T; t++) {
        cpu_model_reset(model);
        cpu_model_forward(model, g->tokens, t + 1, false, recomputed + (size_t)t * V, err,
                          sizeof err);
    }
    cpu_model_reset(model);
    double worst = 0.0;
    for (int t = 0; t < T; t++) {
        CHECK(cpu_model_forward(model, &g->tokens[t], 1, false, step, err, sizeof err) == 0,
              "%s", err);
        double rel = relative_error(step, recomputed + (size_t)t * V, V);
        if (rel > worst) worst = rel;
        CHECK(rel <= CACHE_TOLERANCE, "%s: decode step %d: relative error %.3g", name, t, rel);
    }
    cpu_model_reset(model);
    for (int t = 0, chunk = 1; t < T; t += chunk, chunk = chunk % 5 + 2) {
        int n = t + chunk > T ? T - t : chunk;
        CHECK(cpu_model_forward(model, &g->tokens[t], n, false, step, err, sizeof err) == 0,
              "%s", err);
        double rel = relative_error(step, recomputed + (size_t)(t + n - 1) * V, V);
        CHECK(rel <= CACHE_TOLERANCE, "%s: chunk ending at %d: relative error %.3g", name,
              t + n - 1, rel);
    }
    printf("%s: cached decode vs recompute over %d positions: max relative error %.3g\n", name, T,
           worst);
    free(recomputed);
    free(step);
}

static void check_rejects_bad_input(cpu_model *model, const golden_fixture *g) {
    char err[GPT2_ERR_LEN];
    float *logits = malloc((size_t)g->config.vocab_size * sizeof(float));
    int32_t bad_ids[] = {-1, g->config.vocab_size};
    for (int i = 0; i < 2; i++) {
        cpu_model_reset(model);
        CHECK(cpu_model_forward(model, &bad_ids[i], 1, false, logits, err, sizeof err) == -1,
              "token id %d accepted", bad_ids[i]);
    }
    cpu_model_reset(model);
    model->cache.len = g->config.n_positions;
    CHECK(cpu_model_forward(model, g->tokens, 1, false, logits, err, sizeof err) == -1,
          "a token past n_positions accepted");
    cpu_model_reset(model);
    free(logits);
}

static void run_fixture(const char *dir, const char *name) {
    golden_fixture g;
    char ckpt_dir[64], err[GPT2_ERR_LEN];
    if (golden_load(&g, dir, name) != 0) {
        CHECK(0, "cannot load fixture %s", name);
        return;
    }
    gpt2_checkpoint ckpt;
    cpu_model model;
    if (golden_write_checkpoint(&g, ckpt_dir) == 0) {
        int opened = gpt2_checkpoint_open(&ckpt, ckpt_dir, err, sizeof err) == 0;
        CHECK(opened, "%s", err);
        if (opened && cpu_model_create(&model, &ckpt, 0, err, sizeof err) == 0) {
            gpt2_checkpoint_close(&ckpt);
            check_against_golden(&model, &g, name);
            if (g.config.n_layer <= 2) check_cache_equals_recompute(&model, &g, name);
            check_rejects_bad_input(&model, &g);
            cpu_model_destroy(&model);
        } else if (opened) {
            CHECK(0, "%s", err);
            gpt2_checkpoint_close(&ckpt);
        }
        golden_remove_checkpoint(ckpt_dir);
    }
    golden_free(&g);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s FIXTURE_DIR NAME...\n", argv[0]);
        return EXIT_FAILURE;
    }
    for (int i = 2; i < argc; i++) run_fixture(argv[1], argv[i]);
    return check_finish("test_cpu_forward");
}
