/*
 * The whole CUDA forward (model/cuda_model) against the CPU reference backend (model/cpu_model,
 * itself checked against HF transformers), on a checkpoint given on the command line.
 *
 * - Prefill: logits of every position of a random prompt, in one call and in chunks on top of
 *   the cache (prefill attention over a cached prefix, crossing pages).
 * - Decode: one token at a time after a prompt, logits of each step.
 * - Sampling on the device: for given uniforms, the id equals what sampler_pick makes of the
 *   same (device) logits on the host; greedy ids equal the CPU's argmax except where the CPU's
 *   top-1 margin is below 0.1 logits: the "near-tie" rule.
 * - Graph replay: decode steps for their ids only run as a captured CUDA graph; the ids equal
 *   those of the same steps launched eagerly, greedy and sampled.
 * - Every engine form: FP16 and INT8 KV, each fused and unfused (separate bias, GELU, residual
 *   and INT8 quantize/dequantize kernels), against the CPU reference storing K and V in the same
 *   format (cache/kv_quant.h's INT8, bit for bit on the CPU).
 * The bound is the "fp16 noise": max |dlogit| <= 1% of max |logit| per call. The test
 * prints the measured ratio and the teacher-forced top-1 agreement.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "model/cpu_model.h"
#include "model/cuda_model.h"
#include "model/sampler.h"
#include "tests/check.h"
#include "tests/gpu_test_util.h"

#define NEAR_TIE 0.1f

typedef struct {
    double worst_ratio;           /* max over calls of max|dlogit| / max|logit| */
    long top1_agree, top1_total;
} agreement;

/* The largest logit minus the second largest. */
static float top1_margin(const float *logits, int V) {
    const int best = sampler_argmax(logits, V);
    float second = -INFINITY;
    for (int i = 0; i < V; i++)
        if (i != best && logits[i] > second) second = logits[i];
    return logits[best] - second;
}

/* Compares rows of CUDA logits with CPU logits. */
static void compare_rows(agreement *a, const float *gpu, const float *cpu, int rows, int V,
                         const char *what) {
    for (int r = 0; r < rows; r++) {
        const float *g = gpu + (size_t)r * V, *c = cpu + (size_t)r * V;
        double max_err = 0.0, max_abs = 0.0;
        for (int i = 0; i < V; i++) {
            const double err = fabs((double)g[i] - c[i]);
            if (!(err <= max_err)) max_err = err; /* NaN sticks */
            if (fabs(c[i]) > max_abs) max_abs = fabs(c[i]);
        }
        const double ratio = max_err / (max_abs > 0 ? max_abs : 1.0);
        if (!(ratio <= a->worst_ratio)) a->worst_ratio = ratio;
        CHECK(ratio <= 0.01, "%s row %d: max |dlogit| %g is %.3g%% of max |logit| %g", what, r,
              max_err, 100 * ratio, max_abs);
        const bool same = sampler_argmax(g, V) == sampler_argmax(c, V);
        a->top1_agree += same;
        a->top1_total++;
        CHECK(same || top1_margin(c, V) < NEAR_TIE, "%s row %d: top-1 differs with margin %g", what,
              r, top1_margin(c, V));
    }
}

static void check_prefill(cuda_model *gpu, cpu_model *cpu, const int32_t *ids, int n, int chunk,
                          agreement *a) {
    const int V = cpu->config.vocab_size;
    float *want = malloc((size_t)n * V * sizeof *want), *got = malloc((size_t)n * V * sizeof *got);
    char err[GPT2_ERR_LEN];
    cpu_model_reset(cpu);
    CHECK(cpu_model_forward(cpu, ids, n, true, want, err, sizeof err) == 0, "cpu: %s", err);
    cuda_model_reset(gpu);
    for (int first = 0; first < n; first += chunk) {
        const int m = n - first < chunk ? n - first : chunk;
        CHECK(cuda_model_forward(gpu, 0, ids + first, m, true, got + (size_t)first * V, NULL, 0.0f,
                                 NULL, err, sizeof err) == 0, "cuda: %s", err);
    }
    char what[64];
    snprintf(what, sizeof what, "prefill %d in chunks of %d", n, chunk);
    compare_rows(a, got, want, n, V, what);
    free(want), free(got);
}

/* Prompt, then decode steps; each step's logits and device-sampled id against the CPU's. */
static void check_decode(cuda_model *gpu, cpu_model *cpu, const int32_t *ids, int prompt, int steps,
                         sampler *smp, uint64_t *rng, agreement *a) {
    const int V = cpu->config.vocab_size;
    float *want = malloc((size_t)V * sizeof *want), *got = malloc((size_t)V * sizeof *got);
    char err[GPT2_ERR_LEN];
    cpu_model_reset(cpu);
    cuda_model_reset(gpu);
    for (int step = 0; step <= steps; step++) {
        const int32_t *tokens = step == 0 ? ids : ids + prompt + step - 1;
        const int n = step == 0 ? prompt : 1;
        const float uniform = sampler_next_uniform(rng);
        int32_t id = -1;
        CHECK(cpu_model_forward(cpu, tokens, n, false, want, err, sizeof err) == 0, "cpu: %s", err);
        CHECK(cuda_model_forward(gpu, 0, tokens, n, false, got, smp, uniform, &id, err, sizeof err) == 0,
              "cuda: %s", err);
        compare_rows(a, got, want, 1, V, step == 0 ? "decode prompt" : "decode step");
        const int32_t host_pick = sampler_pick(smp, got, uniform); /* the same logits, on the host */
        CHECK(id == host_pick, "step %d: device sampled %d, sampler_pick of its logits %d", step,
              id, host_pick);
        const bool greedy = smp->params.temperature <= 0.0f;
        CHECK(!greedy || id == sampler_argmax(want, V) || top1_margin(want, V) < NEAR_TIE,
              "step %d: device greedy id %d, cpu %d", step, id, sampler_argmax(want, V));
    }
    free(want), free(got);
}

/* Decode steps for their ids only: the graph replay gives the same ids as eager launches. */
static void check_graph_replay(cuda_model *graphed, cuda_model *eager, const int32_t *prompt, int n,
                               int steps, sampler *smp, uint64_t *rng) {
    char err[GPT2_ERR_LEN];
    cuda_model_reset(graphed);
    cuda_model_reset(eager);
    int32_t id_graph = prompt[0], id_eager = prompt[0];
    for (int step = 0; step <= steps; step++) {
        const float uniform = sampler_next_uniform(rng);
        const int32_t *in_graph = step == 0 ? prompt : &id_graph, *in_eager = step == 0 ? prompt : &id_eager;
        const int m = step == 0 ? n : 1;
        CHECK(cuda_model_forward(graphed, 0, in_graph, m, false, NULL, smp, uniform, &id_graph, err,
                                 sizeof err) == 0, "graph: %s", err);
        CHECK(cuda_model_forward(eager, 0, in_eager, m, false, NULL, smp, uniform, &id_eager, err,
                                 sizeof err) == 0, "eager: %s", err);
        CHECK(id_graph == id_eager, "step %d: graph replay drew %d, eager launches %d", step,
              id_graph, id_eager);
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]);
        return 2;
    }
    if (gpt2_cuda_device_count() == 0) {
        printf("test_cuda_forward_gpu: no CUDA device, skipped\n");
        return SKIP_EXIT_CODE;
    }
    uint64_t rng = gpu_test_seed("test_cuda_forward_gpu");
    char err[GPT2_ERR_LEN];
    gpt2_checkpoint ckpt;
    if (gpt2_checkpoint_open(&ckpt, argv[1], err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    cpu_model cpu;
    cuda_model gpu, gpu_eager;
    const cuda_model_options options = {.kv_mem_bytes = 4u << 20};
    const cuda_model_options eager_options = {.kv_mem_bytes = 4u << 20, .eager_decode = true};
    if (cpu_model_create(&cpu, &ckpt, 0, KV_FORMAT_FP16, err, sizeof err) != 0 ||
        cuda_model_create(&gpu_eager, &ckpt, &eager_options, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    const int V = ckpt.config.vocab_size, P = ckpt.config.n_positions;
    int32_t *ids = malloc((size_t)P * sizeof *ids);
    for (int i = 0; i < P; i++) ids[i] = (int32_t)(splitmix64_mix(rng + (uint64_t)i) % (uint64_t)V);
    sampler greedy, sampled;
    sampler_create(&greedy, V, (sampler_params){.temperature = 0.0f, .top_p = 1.0f});
    sampler_create(&sampled, V, (sampler_params){.temperature = 0.9f, .top_k = 40, .top_p = 0.95f});

    const struct { const char *name; bool int8, unfused; } forms[] = {
        {"fp16", false, false}, {"fp16 unfused", false, true},
        {"int8", true, false}, {"int8 unfused", true, true}};
    for (size_t f = 0; f < sizeof forms / sizeof *forms; f++) {
        cuda_model_options form = options;
        form.int8_kv = forms[f].int8;
        form.unfused = forms[f].unfused;
        if (cuda_model_create(&gpu, &ckpt, &form, err, sizeof err) != 0) {
            fprintf(stderr, "%s: %s\n", forms[f].name, err);
            return 1;
        }
        cpu_model_set_kv_format(&cpu, forms[f].int8 ? KV_FORMAT_INT8 : KV_FORMAT_FP16);
        agreement a = {0};
        check_prefill(&gpu, &cpu, ids, P, P, &a);      /* the whole context at once */
        check_prefill(&gpu, &cpu, ids, P - 3, 13, &a); /* chunks on top of the cache */
        check_decode(&gpu, &cpu, ids, 5, 20, &greedy, &rng, &a);
        check_decode(&gpu, &cpu, ids, 17, 12, &sampled, &rng, &a);
        if (f == 0) {
            check_graph_replay(&gpu, &gpu_eager, ids, 9, 30, &greedy, &rng);
            check_graph_replay(&gpu, &gpu_eager, ids, 4, 30, &sampled, &rng); /* new settings */
        }
        printf("test_cuda_forward_gpu %s: worst max|dlogit| / max|logit| %.3g%%, top-1 agreement "
               "%ld / %ld\n", forms[f].name, 100 * a.worst_ratio, a.top1_agree, a.top1_total);
        cuda_model_destroy(&gpu);
    }

    sampler_destroy(&greedy);
    sampler_destroy(&sampled);
    free(ids);
    cuda_model_destroy(&gpu_eager);
    cpu_model_destroy(&cpu);
    gpt2_checkpoint_close(&ckpt);
    return check_finish("test_cuda_forward_gpu");
}
