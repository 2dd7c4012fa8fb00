/*
 * The CPU reference backend against golden logits from an independent oracle, the KV cache
 * against full recomputation, and (on small fixtures) the FP16 and INT8 cache formats: cached
 * decode against recompute in the same format, and logits close to the exact FP32 cache.
 *
 * usage: test_cpu_forward [--checkpoint DIR] FIXTURE_DIR NAME...
 *   By default each fixture's synthetic checkpoint is written by model/synthetic.c; with
 *   --checkpoint, the (single) fixture runs on DIR instead: a checkpoint of the same weights
 *   written by another program (HF's save_pretrained), which checks the loader on its files.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/cpu_model.h"
#include "model/logit_compare.h"
#include "model/sampler.h"
#include "tests/check.h"
#include "tests/golden.h"

#define GOLDEN_TOLERANCE 1e-4 /* max |ours - oracle| / max |oracle|, per position */
#define CACHE_TOLERANCE 1e-5  /* cached decode against recompute: same arithmetic, other order */
/*
 * Rounding K and V perturbs the logits (relative to max |logit|, per position, against the FP32
 * cache) by about the per-value error times a small gain through the layers. FP16 rounds each
 * value by at most 2^-11 relative; INT8 by at most scale / 2 = max|head| / 254. The bounds allow
 * about 8x that per-value error. Measured on the tiny fixture: 1.9e-4 (fp16) and 5.8e-3 (int8),
 * KL from the fp32 cache's distribution below 1e-6 nats; cached decode equals recompute exactly.
 */
#define FP16_KV_TOLERANCE 4e-3 /* 8 x 2^-11 */
#define INT8_KV_TOLERANCE 3e-2 /* 8 / 254 */
#define SMALL_MODEL_LAYERS 2   /* fixtures small enough to recompute every prefix */

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

/* Logits [T, V] of every position of the fixture's tokens, or NULL after a failed check. */
static float *all_logits(cpu_model *model, const golden_fixture *g) {
    char err[GPT2_ERR_LEN];
    float *logits = malloc((size_t)g->n_tokens * g->config.vocab_size * sizeof(float));
    if (cpu_model_forward_sequence(model, g->tokens, g->n_tokens, logits, err, sizeof err) == 0)
        return logits;
    CHECK(0, "forward failed: %s", err);
    free(logits);
    return NULL;
}

/* The format's logits against the FP32 cache's at every position: relative error and KL. */
static void check_close_to_fp32(cpu_model *model, const float *exact, const golden_fixture *g,
                                const char *label, double tolerance) {
    const int V = g->config.vocab_size;
    float *logits = all_logits(model, g);
    if (!logits) return;
    logit_comparison cmp = {0};
    double worst = 0.0;
    for (int t = 0; t < g->n_tokens; t++) {
        const double rel = relative_error(logits + (size_t)t * V, exact + (size_t)t * V, V);
        if (!(rel <= worst)) worst = rel;
        logit_comparison_add(&cmp, exact + (size_t)t * V, logits + (size_t)t * V, V);
    }
    printf("%s against the fp32 cache over %d positions: max relative error %.3g, "
           "KL mean %.3g max %.3g, top-1 agreement %lld/%lld\n",
           label, g->n_tokens, worst, logit_comparison_mean_kl(&cmp), cmp.kl_max, cmp.top1_agree,
           cmp.rows);
    CHECK(worst <= tolerance, "%s: relative error %.3g against the fp32 cache", label, worst);
    CHECK(worst > 0.0, "%s: logits equal to the fp32 cache's: the format was not applied", label);
    free(logits);
}

/* Each quantized format: cached decode equals recompute in that format, and stays near FP32. */
static void check_kv_formats(cpu_model *exact_model, const gpt2_checkpoint *ckpt,
                             const golden_fixture *g, const char *name) {
    const struct {
        kv_format format;
        double tolerance;
    } formats[] = {{KV_FORMAT_FP16, FP16_KV_TOLERANCE}, {KV_FORMAT_INT8, INT8_KV_TOLERANCE}};
    float *exact = all_logits(exact_model, g);
    for (size_t f = 0; exact && f < sizeof formats / sizeof formats[0]; f++) {
        char label[96], err[GPT2_ERR_LEN];
        snprintf(label, sizeof label, "%s, kv %s", name, kv_format_name(formats[f].format));
        cpu_model model;
        if (cpu_model_create(&model, ckpt, 0, formats[f].format, err, sizeof err) != 0) {
            CHECK(0, "%s: %s", label, err);
            continue;
        }
        check_cache_equals_recompute(&model, g, label);
        check_close_to_fp32(&model, exact, g, label, formats[f].tolerance);
        cpu_model_destroy(&model);
    }
    free(exact);
}

static void run_model_checks(const gpt2_checkpoint *ckpt, const golden_fixture *g,
                             const char *name) {
    char err[GPT2_ERR_LEN];
    cpu_model model;
    if (cpu_model_create(&model, ckpt, 0, KV_FORMAT_FP32, err, sizeof err) != 0) {
        CHECK(0, "%s: %s", name, err);
        return;
    }
    check_against_golden(&model, g, name);
    if (g->config.n_layer <= SMALL_MODEL_LAYERS) {
        check_cache_equals_recompute(&model, g, name);
        check_kv_formats(&model, ckpt, g, name);
    }
    check_rejects_bad_input(&model, g);
    cpu_model_destroy(&model);
}

/* Opens the checkpoint and runs every check of one fixture on it. */
static void check_fixture_on(const golden_fixture *g, const char *name, const char *ckpt_dir) {
    char err[GPT2_ERR_LEN];
    gpt2_checkpoint ckpt;
    if (gpt2_checkpoint_open(&ckpt, ckpt_dir, err, sizeof err) != 0) {
        CHECK(0, "%s", err);
        return;
    }
    run_model_checks(&ckpt, g, name);
    gpt2_checkpoint_close(&ckpt);
}

/* On checkpoint_dir when given, else on the fixture's synthetic checkpoint written afresh. */
static void run_fixture(const char *dir, const char *name, const char *checkpoint_dir) {
    golden_fixture g;
    char ckpt_dir[64];
    if (golden_load(&g, dir, name) != 0) {
        CHECK(0, "cannot load fixture %s", name);
        return;
    }
    if (checkpoint_dir) {
        check_fixture_on(&g, name, checkpoint_dir);
    } else if (golden_write_checkpoint(&g, ckpt_dir) == 0) {
        check_fixture_on(&g, name, ckpt_dir);
        golden_remove_checkpoint(ckpt_dir);
    }
    golden_free(&g);
}

int main(int argc, char **argv) {
    const char *checkpoint_dir = NULL;
    if (argc > 2 && strcmp(argv[1], "--checkpoint") == 0) {
        checkpoint_dir = argv[2];
        argc -= 2;
        argv += 2;
    }
    if (argc < 3 || (checkpoint_dir && argc != 3)) {
        fprintf(stderr, "usage: test_cpu_forward [--checkpoint DIR] FIXTURE_DIR NAME...\n");
        return EXIT_FAILURE;
    }
    for (int i = 2; i < argc; i++) run_fixture(argv[1], argv[i], checkpoint_dir);
    return check_finish("test_cpu_forward");
}
