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
 *
 * minicache (merged rows read through the lower layer's table, kernels/kv_minicache.cu) runs on
 * the checkpoint with its two layers made nearly a pair (layer 1 reads layer 0's LN_1 and QKV
 * weights, layer 0 adds a fraction of its output), so that some tokens merge and some stay: in
 * fp16 and int8, logits as above, and the rows held against the CPU reference's (which counts
 * them as the pool holds them; a token whose cosine sits at the threshold may decide otherwise
 * under fp16 noise, so 2 rows either way are allowed), both kinds of token present; then the
 * batch. The unfused INT8 baseline refuses it, as it refuses h2o.
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
        if (p->kind == KV_POLICY_FULL || p->kind == KV_POLICY_SHARE ||
            p->kind == KV_POLICY_MINICACHE || budget >= n) {
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

/* H2O's scores and MiniCache's ratios live beside the pool's pages: the unfused INT8 copy has none. */
static void check_refused_unfused(cuda_model *gpu) {
    const kv_policy refused[] = {{.kind = KV_POLICY_H2O, .heavy = 4, .window = 4},
                                 {.kind = KV_POLICY_MINICACHE, .first_layer = 0}};
    for (int i = 0; i < 2; i++) {
        char err[GPT2_ERR_LEN] = "";
        CHECK(cuda_model_set_kv_policy(gpu, &refused[i], BUDGET, err, sizeof err) == -1 &&
              strstr(err, "unfused INT8"), "policy %d on the unfused INT8 baseline: '%s'", i, err);
    }
}

/*
 * Sequence 0 decodes `steps` greedy steps from `prompt` into out: replayed from the decode
 * graphs, or (eager) launch by launch, its logits asked for too.
 */
static void decode_alone(cuda_model *gpu, const sampler *greedy, const int32_t *prompt, int n,
                         int steps, bool eager, int32_t *out) {
    char err[GPT2_ERR_LEN];
    float *logits = eager ? malloc((size_t)gpu->config.vocab_size * sizeof *logits) : NULL;
    CHECK(cuda_model_forward(gpu, 0, prompt, n, false, logits, greedy, 0.0f, &out[0], err,
                             sizeof err) == 0, "%s", err);
    for (int t = 1; t < steps; t++)
        CHECK(cuda_model_forward(gpu, 0, &out[t - 1], 1, false, logits, greedy, 0.0f, &out[t], err,
                                 sizeof err) == 0, "%s", err);
    cuda_model_release(gpu, 0);
    free(logits);
}

/*
 * n_seqs prompts decode `steps` greedy steps together; each must draw what it draws alone, and
 * alone from the graphs what it draws launch by launch (a graph captured under another policy,
 * replayed, would not).
 */
static void check_batch(cuda_model *gpu, const char *text, const int32_t *ids, int steps) {
    enum { N_SEQS = 3 };
    static const int prompt_lens[N_SEQS] = {5, 20, 11};
    char err[GPT2_ERR_LEN];
    kv_policy policy;
    CHECK(kv_policy_parse(text, &policy, err, sizeof err) == 0 &&
          cuda_model_set_kv_policy(gpu, &policy, BUDGET, err, sizeof err) == 0, "%s: %s", text, err);
    sampler greedy;
    sampler_create(&greedy, gpu->config.vocab_size, (sampler_params){.temperature = 0.0f, .top_p = 1.0f});
    int32_t alone[N_SEQS][64], eager[N_SEQS][64], together[N_SEQS][64];
    for (int s = 0; s < N_SEQS; s++) { /* alone, in slot 0 */
        decode_alone(gpu, &greedy, ids + 7 * s, prompt_lens[s], steps, false, alone[s]);
        decode_alone(gpu, &greedy, ids + 7 * s, prompt_lens[s], steps, true, eager[s]);
        CHECK(memcmp(alone[s], eager[s], (size_t)steps * sizeof(int32_t)) == 0,
              "%s: sequence %d draws other ids from the decode graphs than launch by launch",
              text, s);
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

/*
 * Layers 0 and 1 made nearly a pair, as test_kv_policy_cpu's pair_layers does: layer 1's LN_1
 * and QKV tensors become views of layer 0's, and layer 0's projections into the residual are
 * scaled by eps (copies in *storage, which the caller frees; the tensors are fp32).
 */
static void pair_layers(gpt2_checkpoint *ckpt, float eps, float **storage) {
    gpt2_layer_tensors *l0 = &ckpt->layers[0], *l1 = &ckpt->layers[1];
    l1->ln_1_w = l0->ln_1_w, l1->ln_1_b = l0->ln_1_b, l1->attn_w = l0->attn_w, l1->attn_b = l0->attn_b;
    gpt2_tensor *scaled[] = {&l0->attn_proj_w, &l0->attn_proj_b, &l0->mlp_proj_w, &l0->mlp_proj_b};
    size_t total = 0;
    for (int i = 0; i < 4; i++) total += (size_t)scaled[i]->numel;
    float *next = *storage = malloc(total * sizeof(float));
    for (int i = 0; i < 4; i++) {
        CHECK(scaled[i]->dtype == GPT2_F32, "pair_layers: %s is not fp32", scaled[i]->name);
        memcpy(next, scaled[i]->data, (size_t)scaled[i]->numel * sizeof(float));
        for (int64_t j = 0; j < scaled[i]->numel; j++) next[j] *= eps;
        scaled[i]->data = next;
        next += scaled[i]->numel;
    }
}

/* minicache:0 on the paired checkpoint, in fp16 and int8: logits, rows held, and a batch. */
static void check_minicache(const gpt2_checkpoint *paired, const int32_t *ids) {
    const int P = paired->config.n_positions;
    for (int int8 = 0; int8 < 2; int8++) {
        char err[GPT2_ERR_LEN];
        const cuda_model_options options = {.kv_mem_bytes = 4u << 20, .max_seqs = 4, .int8_kv = int8};
        cuda_model gpu;
        cpu_model cpu;
        if (cuda_model_create(&gpu, paired, &options, err, sizeof err) != 0 ||
            cpu_model_create(&cpu, paired, 0, int8 ? KV_FORMAT_INT8 : KV_FORMAT_FP16, err,
                             sizeof err) != 0) {
            CHECK(false, "%s", err);
            return;
        }
        const char *form = int8 ? "int8" : "fp16";
        check_policy(&gpu, &cpu, "minicache:0", ids, P, form);
        /* again, to read the rows held before check_policy's release */
        float *logits = malloc((size_t)P * gpu.config.vocab_size * sizeof *logits);
        CHECK(cuda_model_forward_decoded(&gpu, ids, P, logits, err, sizeof err) == 0, "%s", err);
        const long long gpu_rows = cuda_model_held_rows(&gpu, 0);
        const long long cpu_rows = cpu_model_kv_usage(&cpu).rows; /* merged + 2 x retained */
        CHECK(llabs(gpu_rows - cpu_rows) <= 2, "minicache:0 %s: %lld rows held, the CPU reference "
              "%lld", form, gpu_rows, cpu_rows);
        CHECK(cpu_rows > P && cpu_rows < 2LL * P, "minicache:0 %s: %lld rows of %d tokens: merged "
              "and retained tokens must both occur", form, cpu_rows, P);
        printf("test_kv_policy_gpu minicache:0 %s: %lld rows held (cpu %lld; full %d), %d tokens "
               "merged\n", form, gpu_rows, cpu_rows, 2 * P, (int)(2 * P - gpu_rows));
        free(logits);
        if (!int8) check_batch(&gpu, "minicache:0", ids, 30);
        cuda_model_destroy(&gpu);
        cpu_model_destroy(&cpu);
    }
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
        if (forms[f].unfused) check_refused_unfused(&gpu);
        if (f == 0) {
            check_batch(&gpu, "sinks:2,window:7", ids, 30);
            check_batch(&gpu, "h2o:4,window:6", ids, 30);
        }
        cuda_model_destroy(&gpu);
        cpu_model_destroy(&cpu);
    }
    float *paired_storage;
    pair_layers(&ckpt, 0.6f, &paired_storage);
    /* Fixed ids, not the seed's: a token whose cosine sits at the merge threshold can be decided
       otherwise under fp16 (int8) noise, and then every later logit differs by more than noise;
       these ids keep every token's decision the same on both backends. */
    for (int i = 0; i < P; i++) ids[i] = (int32_t)(splitmix64_mix(777 + (uint64_t)i) % (uint64_t)V);
    check_minicache(&ckpt, ids);
    free(paired_storage);
    free(ids);
    gpt2_checkpoint_close(&ckpt);
    return check_finish("test_kv_policy_gpu");
}
