/*
 * The KV policies in the CUDA pool (model/cuda_model with cache/kv_pool eviction) against the
 * CPU reference running the same policy (model/cpu_model, itself checked against a masked
 * oracle in test_kv_policy_cpu), on a checkpoint given on the command line.
 *
 * For each policy (h2o among them: scores accumulated in the decode attention, rows compacted
 * by kernels/kv_h2o.cu) in FP16, and those whose code differs by format in INT8 and INT8
 * unfused (the dequantize kernel reads past the hole too; h2o is refused there), over a random
 * sequence of the whole context, teacher-forced (the first chunk prefilled, then one token per
 * step, evicting after each):
 * - logits: max |dlogit| <= 1% of max |logit| at every position, the "fp16 noise" bound of
 *   test_cuda_forward_gpu;
 * - memory: the blocks the sequence holds at the end, against arithmetic: a layer keeping b
 *   tokens (b < context) holds at most ceil(b / 16) + 1 blocks (+ 1 more with sinks, whose block
 *   stays partly used), exactly ceil(b / 16) under h2o (compacted), a borrower under share
 *   none, and all go back on release.
 * Then a batch: sequences of different prompts decode together (graph replays) under sinks and
 * under h2o, and each draws the ids it draws alone.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/kv_policy.h"
#include "kernels/kernels.h"
#include "model/cpu_model.h"
#include "model/cuda_model.h"
#include "model/sampler.h"
#include "tests/check.h"
#include "tests/gpu_test_util.h"

#define BUDGET 24 /* pyramid's budget_tokens */

/* The worst max|dlogit| / max|logit| over rows, checked against 1% row by row. */
static double compare_logits(const float *gpu, const float *cpu, int rows, int V, const char *what) {
    double worst = 0.0;
    for (int r = 0; r < rows; r++) {
        double max_err = 0.0, max_abs = 0.0;
        for (int i = 0; i < V; i++) {
            const double err = fabs((double)gpu[(size_t)r * V + i] - cpu[(size_t)r * V + i]);
            if (!(err <= max_err)) max_err = err;
            if (fabs(cpu[(size_t)r * V + i]) > max_abs) max_abs = fabs(cpu[(size_t)r * V + i]);
        }
        const double ratio = max_err / (max_abs > 0 ? max_abs : 1.0);
        CHECK(ratio <= 0.01, "%s position %d: max |dlogit| is %.3g%% of max |logit|", what, r,
              100 * ratio);
        if (!(ratio <= worst)) worst = ratio;
    }
    return worst;
}

/* The most blocks the policy lets sequence 0 hold after n tokens: arithmetic, per layer. */
static int blocks_bound(const kv_policy *p, int n_layer, int n, int block_size) {
    int bound = 0;
    for (int l = 0; l < n_layer; l++) {
        if (kv_policy_kv_source(p, l) != l) continue; /* a borrower holds nothing */
        const int budget = kv_policy_layer_budget(p, l, n_layer, BUDGET);
        if (p->kind == KV_POLICY_FULL || p->kind == KV_POLICY_SHARE || budget >= n) {
            bound += (n + block_size - 1) / block_size;
            continue;
        }
        const int straddles = p->kind == KV_POLICY_H2O ? 0 : 1 + (p->kind == KV_POLICY_SINKS);
        bound += (budget + block_size - 1) / block_size + straddles; /* h2o's rows are dense */
    }
    return bound;
}

static void check_policy(cuda_model *gpu, cpu_model *cpu, const char *text, const int32_t *ids,
                         int n, const char *form) {
    char err[GPT2_ERR_LEN], what[128];
    kv_policy policy;
    CHECK(kv_policy_parse(text, &policy, err, sizeof err) == 0, "%s: %s", text, err);
    const int V = gpu->config.vocab_size, L = gpu->config.n_layer;
    float *gpu_logits = malloc((size_t)n * V * sizeof *gpu_logits);
    float *cpu_logits = malloc((size_t)n * V * sizeof *cpu_logits);
    if (cuda_model_set_kv_policy(gpu, &policy, BUDGET, err, sizeof err) != 0 ||
        cpu_model_set_kv_policy(cpu, &policy, BUDGET, err, sizeof err) != 0 ||
        cuda_model_forward_decoded(gpu, ids, n, gpu_logits, err, sizeof err) != 0 ||
        cpu_model_forward_decoded(cpu, ids, n, cpu_logits, err, sizeof err) != 0) {
        CHECK(false, "%s %s: %s", text, form, err);
        free(gpu_logits), free(cpu_logits);
        return;
    }
    snprintf(what, sizeof what, "%s %s", text, form);
    const double worst = compare_logits(gpu_logits, cpu_logits, n, V, what);
    const int held = cuda_model_held_blocks(gpu, 0), bound = blocks_bound(&policy, L, n, 16);
    const int full = L * ((n + 15) / 16);
    CHECK(held <= bound, "%s: %d blocks held, the policy allows %d", what, held, bound);
    if (policy.kind == KV_POLICY_SHARE || policy.kind == KV_POLICY_H2O)
        CHECK(held == bound, "%s: %d blocks held, exactly %d expected", what, held, bound);
    const int free_before = cuda_model_free_blocks(gpu);
    cuda_model_release(gpu, 0);
    CHECK(cuda_model_free_blocks(gpu) == free_before + held, "%s: release returned %d of %d blocks",
          what, cuda_model_free_blocks(gpu) - free_before, held);
    printf("test_kv_policy_gpu %s: worst max|dlogit| / max|logit| %.3g%%, %d blocks held (full: %d)\n",
           what, 100 * worst, held, full);
    free(gpu_logits), free(cpu_logits);
}

/* H2O's scores live beside the pool's pages: the unfused INT8 copy cannot carry them. */
static void check_h2o_refused(cuda_model *gpu) {
    char err[GPT2_ERR_LEN] = "";
    const kv_policy h2o = {.kind = KV_POLICY_H2O, .heavy = 4, .window = 4};
    CHECK(cuda_model_set_kv_policy(gpu, &h2o, BUDGET, err, sizeof err) == -1 &&
          strstr(err, "unfused INT8"), "h2o on the unfused INT8 baseline: '%s'", err);
}

/* n_seqs prompts decode `steps` greedy steps together; each must draw what it draws alone. */
static void check_batch(cuda_model *gpu, const char *text, const int32_t *ids, int steps) {
    enum { N_SEQS = 3 };
    static const int prompt_lens[N_SEQS] = {5, 20, 11};
    char err[GPT2_ERR_LEN];
    kv_policy policy;
    CHECK(kv_policy_parse(text, &policy, err, sizeof err) == 0 &&
          cuda_model_set_kv_policy(gpu, &policy, BUDGET, err, sizeof err) == 0, "%s: %s", text, err);
    sampler greedy;
    sampler_create(&greedy, gpu->config.vocab_size, (sampler_params){.temperature = 0.0f, .top_p = 1.0f});
    int32_t alone[N_SEQS][64], together[N_SEQS][64];
    for (int s = 0; s < N_SEQS; s++) { /* alone, in slot 0 */
        const int32_t *prompt = ids + 7 * s;
        CHECK(cuda_model_forward(gpu, 0, prompt, prompt_lens[s], false, NULL, &greedy, 0.0f,
                                 &alone[s][0], err, sizeof err) == 0, "%s", err);
        for (int t = 1; t < steps; t++)
            CHECK(cuda_model_forward(gpu, 0, &alone[s][t - 1], 1, false, NULL, &greedy, 0.0f,
                                     &alone[s][t], err, sizeof err) == 0, "%s", err);
        cuda_model_release(gpu, 0);
    }
    int seqs[N_SEQS];
    float uniforms[N_SEQS] = {0};
    for (int s = 0; s < N_SEQS; s++) {
        seqs[s] = s;
        CHECK(cuda_model_forward(gpu, s, ids + 7 * s, prompt_lens[s], false, NULL, &greedy, 0.0f,
                                 &together[s][0], err, sizeof err) == 0, "%s", err);
    }
    for (int t = 1; t < steps; t++) {
        int32_t tokens[N_SEQS], next[N_SEQS];
        bool nonfinite[N_SEQS];
        for (int s = 0; s < N_SEQS; s++) tokens[s] = together[s][t - 1];
        CHECK(cuda_model_decode(gpu, N_SEQS, seqs, tokens, &greedy, uniforms, next, nonfinite, err,
                                sizeof err) == 0, "%s", err);
        for (int s = 0; s < N_SEQS; s++) together[s][t] = next[s];
    }
    for (int s = 0; s < N_SEQS; s++)
        CHECK(memcmp(alone[s], together[s], (size_t)steps * sizeof(int32_t)) == 0,
              "%s: sequence %d draws other ids in the batch than alone", text, s);
    cuda_model_reset(gpu);
    sampler_destroy(&greedy);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]);
        return 2;
    }
    if (gpt2_cuda_device_count() == 0) {
        printf("test_kv_policy_gpu: no CUDA device, skipped\n");
        return SKIP_EXIT_CODE;
    }
    uint64_t rng = gpu_test_seed("test_kv_policy_gpu");
    char err[GPT2_ERR_LEN];
    gpt2_checkpoint ckpt;
    if (gpt2_checkpoint_open(&ckpt, argv[1], err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    const int V = ckpt.config.vocab_size, P = ckpt.config.n_positions;
    int32_t *ids = malloc((size_t)P * sizeof *ids);
    for (int i = 0; i < P; i++) ids[i] = (int32_t)(splitmix64_mix(rng + (uint64_t)i) % (uint64_t)V);
    /* Every policy in fp16; in the INT8 forms, those whose code differs by format: the hole
       (sinks; and the unfused dequantize's copy), h2o's row moves, share's borrowed rows. */
    static const char *const fp16_policies[] = {"window:9", "sinks:3,window:10", "pyramid:1,0.5",
                                                "share:0", "share:0,qalign", "h2o:6,window:8", NULL};
    static const char *const int8_policies[] = {"sinks:3,window:10", "h2o:6,window:8", "share:0", NULL};
    static const char *const unfused_policies[] = {"sinks:3,window:10", "pyramid:1,0.5",
                                                   "share:0,qalign", NULL};
    const struct { const char *name; bool int8, unfused; const char *const *policies; } forms[] = {
        {"fp16", false, false, fp16_policies}, {"int8", true, false, int8_policies},
        {"int8 unfused", true, true, unfused_policies}};
    for (size_t f = 0; f < sizeof forms / sizeof *forms; f++) {
        const cuda_model_options options = {.kv_mem_bytes = 4u << 20, .max_seqs = 4,
                                            .int8_kv = forms[f].int8, .unfused = forms[f].unfused};
        cuda_model gpu;
        cpu_model cpu;
        if (cuda_model_create(&gpu, &ckpt, &options, err, sizeof err) != 0 ||
            cpu_model_create(&cpu, &ckpt, 0, forms[f].int8 ? KV_FORMAT_INT8 : KV_FORMAT_FP16, err,
                             sizeof err) != 0) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
        for (const char *const *p = forms[f].policies; *p; p++)
            check_policy(&gpu, &cpu, *p, ids, P, forms[f].name);
        if (forms[f].unfused) check_h2o_refused(&gpu);
        if (f == 0) {
            check_batch(&gpu, "sinks:2,window:7", ids, 30);
            check_batch(&gpu, "h2o:4,window:6", ids, 30);
        }
        cuda_model_destroy(&gpu);
        cpu_model_destroy(&cpu);
    }
    free(ids);
    gpt2_checkpoint_close(&ckpt);
    return check_finish("test_kv_policy_gpu");
}
