/*
 * Continuous batching (model/scheduler) on the CUDA engine, as a bounded soak: random mixes of
 * prompts, lengths, token budgets, sampling settings, KV formats (fp16, int8, each fused or
 * unfused), batch limits and KV pool sizes, pools that force waiting and preemption included. For every request of every mix:
 * - it ends DONE with exactly its budget of tokens (nothing truncated; EOT does not stop these),
 * - its tokens equal, bit for bit, the same request run alone with its seed (one sequence,
 *   prefill then one-token forwards, as `gpt2 generate -p` runs it): no output is mixed between
 *   sequences, and batching and preemption change nothing;
 * and after each mix every block is back in the pool. A request that can never fit is refused
 * with one line, before anything runs. The mix count and the preemptions seen are printed.
 *
 * usage: test_batch_gpu MODEL_DIR [MIXES]   (GPT2_TEST_SEED picks the mixes)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"
#include "model/cuda_model.h"
#include "model/sampler.h"
#include "model/scheduler.h"
#include "tests/check.h"
#include "tests/gpu_test_util.h"

#define DEFAULT_MIXES 10
#define MAX_REQUESTS 9

typedef struct {
    int n_requests;
    int32_t *prompts[MAX_REQUESTS];
    batch_request requests[MAX_REQUESTS];
    sampler_params sampling;
    size_t kv_mem_bytes;
    int max_seqs;
    int form;            /* index into FORMS */
} mix;

/* The engine forms a mix may run in: KV format, fused or not. */
static const struct { const char *name; bool int8, unfused; } FORMS[] = {
    {"fp16", false, false}, {"fp16 unfused", false, true},
    {"int8", true, false}, {"int8 unfused", true, true}};
#define N_FORMS (int)(sizeof FORMS / sizeof *FORMS)

static int uniform_int(uint64_t *rng, int lo, int hi) { /* in [lo, hi] */
    return lo + (int)(sampler_next_uniform(rng) * (float)(hi - lo + 1)) % (hi - lo + 1);
}

/* Bytes of KV for `tokens` tokens of one sequence, whole blocks in every layer. */
static size_t kv_bytes_for(const gpt2_config *c, int tokens, bool int8) {
    const kv_pool_shape shape = {.n_layer = c->n_layer, .n_head = c->n_head,
                                 .block_size = KV_DEFAULT_BLOCK_SIZE,
                                 .format = int8 ? KV_FORMAT_INT8 : KV_FORMAT_FP16};
    const size_t blocks = (size_t)c->n_layer * ((tokens + KV_DEFAULT_BLOCK_SIZE - 1) / KV_DEFAULT_BLOCK_SIZE);
    return blocks * kv_pool_bytes_per_block(&shape);
}

/*
 * Mix 0 is built to preempt: requests of 4 prompt tokens and 30 to draw (33 cached at most, 3
 * blocks per layer) in a pool of 4 blocks per layer. Two are admitted (the headroom keeps out a
 * third); each needs a third block in every layer at 33 tokens, and the second is preempted.
 */
static void make_mix(mix *m, const gpt2_config *c, uint64_t *rng, int index) {
    const bool preempting = index == 0;
    *m = (mix){.n_requests = preempting ? 3 : uniform_int(rng, 6, MAX_REQUESTS),
               .form = uniform_int(rng, 0, N_FORMS - 1)};
    const bool int8 = FORMS[m->form].int8;
    const int P = c->n_positions;
    int peak = 1; /* the largest cache any request needs */
    for (int i = 0; i < m->n_requests; i++) {
        batch_request *r = &m->requests[i];
        r->prompt_len = preempting ? 4 : uniform_int(rng, 1, P / 2);
        r->max_new = preempting ? 30 : uniform_int(rng, 0, P - r->prompt_len);
        if (r->max_new > 16 && !preempting) r->max_new = uniform_int(rng, 0, 16); /* bounded time */
        r->seed = splitmix64_mix(*rng + (uint64_t)i);
        m->prompts[i] = malloc((size_t)r->prompt_len * sizeof(int32_t));
        for (int t = 0; t < r->prompt_len; t++)
            m->prompts[i][t] = (int32_t)(splitmix64_mix(r->seed + (uint64_t)t) % (uint64_t)c->vocab_size);
        r->prompt = m->prompts[i];
        r->generated = malloc((size_t)(r->max_new + 1) * sizeof(int32_t));
        const int needed = r->prompt_len + (r->max_new > 0 ? r->max_new - 1 : 0);
        if (needed > peak) peak = needed;
    }
    const int kind = uniform_int(rng, 0, 2);
    m->sampling = kind == 0 ? (sampler_params){.temperature = 0.0f, .top_p = 1.0f}
                : kind == 1 ? (sampler_params){.temperature = 0.9f, .top_k = 40, .top_p = 0.95f}
                            : (sampler_params){.temperature = 1.3f, .top_k = 0, .top_p = 1.0f};
    /* From just the largest request (everything waits) to room for all. */
    m->kv_mem_bytes = preempting ? kv_bytes_for(c, 4 * KV_DEFAULT_BLOCK_SIZE, int8)
                                 : kv_bytes_for(c, peak, int8) * (size_t)uniform_int(rng, 1, 4);
    m->max_seqs = preempting ? 8 : uniform_int(rng, 1, 8);
}

static void free_mix(mix *m) {
    for (int i = 0; i < m->n_requests; i++) {
        free(m->prompts[i]);
        free(m->requests[i].generated);
    }
}

/* The request alone, as `gpt2 generate -p` runs it: prefill and draw, then one token at a time. */
static void run_alone(cuda_model *model, const batch_request *r, const sampler *smp, int32_t *out) {
    char err[GPT2_ERR_LEN];
    uint64_t stream = r->seed;
    cuda_model_release(model, 0);
    int32_t id = -1;
    for (int i = 0; i < r->max_new; i++) {
        const int32_t *tokens = i == 0 ? r->prompt : &id;
        const float uniform = sampler_stream_uniform(&smp->params, &stream);
        CHECK(cuda_model_forward(model, 0, tokens, i == 0 ? r->prompt_len : 1, false, NULL, smp,
                                 uniform, &id, err, sizeof err) == 0, "alone: %s", err);
        out[i] = id;
    }
    cuda_model_release(model, 0);
}

/* One mix through the scheduler; returns its preemptions. */
static int check_mix(const gpt2_checkpoint *ckpt, cuda_model *alone_models, mix *m, int index) {
    char err[GPT2_ERR_LEN];
    const cuda_model_options options = {.kv_mem_bytes = m->kv_mem_bytes, .max_seqs = m->max_seqs,
                                        .int8_kv = FORMS[m->form].int8,
                                        .unfused = FORMS[m->form].unfused};
    cuda_model *alone_model = &alone_models[m->form];
    cuda_model model;
    if (cuda_model_create(&model, ckpt, &options, err, sizeof err) != 0) {
        CHECK(false, "mix %d: %s", index, err);
        return 0;
    }
    sampler smp;
    sampler_create(&smp, ckpt->config.vocab_size, m->sampling);
    batch_stats stats;
    const int rc = batch_run(&model, m->requests, m->n_requests, &smp, false, 0, &stats, err, sizeof err);
    CHECK(rc == 0, "mix %d: %s", index, err);
    CHECK(cuda_model_free_blocks(&model) == model.kv.shape.num_blocks,
          "mix %d: %d of %d blocks free after the run", index, cuda_model_free_blocks(&model),
          model.kv.shape.num_blocks);
    int32_t want[64];
    for (int i = 0; rc == 0 && i < m->n_requests; i++) {
        const batch_request *r = &m->requests[i];
        CHECK(r->state == REQUEST_DONE && r->n_generated == r->max_new,
              "mix %d request %d: state %d, %d of %d tokens (%s)", index, i, (int)r->state,
              r->n_generated, r->max_new, r->error);
        run_alone(alone_model, r, &smp, want);
        int first_diff = -1;
        for (int t = 0; t < r->n_generated && first_diff < 0; t++)
            if (r->generated[t] != want[t]) first_diff = t;
        CHECK(first_diff < 0, "mix %d request %d (prompt %d, budget %d): token %d is %d batched, "
              "%d alone", index, i, r->prompt_len, r->max_new, first_diff,
              first_diff >= 0 ? r->generated[first_diff] : 0, first_diff >= 0 ? want[first_diff] : 0);
    }
    printf("mix %d (%s): %d requests, max_seqs %d, pool %d blocks, %d prefills, %d decode steps, "
           "largest batch %d, %d preemptions\n", index, FORMS[m->form].name, m->n_requests, m->max_seqs,
           model.kv.shape.num_blocks, stats.prefills, stats.decode_steps, stats.largest_batch,
           stats.preemptions);
    sampler_destroy(&smp);
    cuda_model_destroy(&model);
    return stats.preemptions;
}

/* A request that can never fit the pool is refused, whole, with one line. */
static void check_refusal(const gpt2_checkpoint *ckpt) {
    const gpt2_config *c = &ckpt->config;
    char err[GPT2_ERR_LEN] = "";
    const cuda_model_options options = {.kv_mem_bytes = kv_bytes_for(c, KV_DEFAULT_BLOCK_SIZE, false)};
    cuda_model model;
    CHECK(cuda_model_create(&model, ckpt, &options, err, sizeof err) == 0, "%s", err);
    int32_t prompt[KV_DEFAULT_BLOCK_SIZE + 1] = {0}, out[2][4];
    batch_request requests[2] = {
        {.prompt = prompt, .prompt_len = 3, .max_new = 4, .generated = out[0]},
        {.prompt = prompt, .prompt_len = KV_DEFAULT_BLOCK_SIZE + 1, .max_new = 2, .generated = out[1]},
    };
    sampler smp;
    sampler_create(&smp, c->vocab_size, (sampler_params){.temperature = 0.0f, .top_p = 1.0f});
    batch_stats stats;
    CHECK(batch_run(&model, requests, 2, &smp, false, 0, &stats, err, sizeof err) == -1 &&
              strstr(err, "prompt 1 needs 18 tokens of KV cache") && stats.prefills == 0,
          "a request larger than the pool: '%s', %d prefills", err, stats.prefills);
    sampler_destroy(&smp);
    cuda_model_destroy(&model);
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s MODEL_DIR [MIXES]\n", argv[0]);
        return 2;
    }
    if (gpt2_cuda_device_count() == 0) {
        printf("test_batch_gpu: no CUDA device, skipped\n");
        return SKIP_EXIT_CODE;
    }
    const int mixes = argc == 3 ? atoi(argv[2]) : DEFAULT_MIXES;
    uint64_t rng = gpu_test_seed("test_batch_gpu");
    char err[GPT2_ERR_LEN];
    gpt2_checkpoint ckpt;
    if (gpt2_checkpoint_open(&ckpt, argv[1], err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    CHECK(ckpt.config.n_positions <= 64, "the soak expects a small fixture (n_positions %d)",
          ckpt.config.n_positions);
    cuda_model alone[N_FORMS]; /* each request run alone, in each form */
    for (int f = 0; f < N_FORMS; f++) {
        const cuda_model_options alone_options = {.max_seqs = 1, .int8_kv = FORMS[f].int8,
                                                  .unfused = FORMS[f].unfused};
        if (cuda_model_create(&alone[f], &ckpt, &alone_options, err, sizeof err) != 0) {
            fprintf(stderr, "%s\n", err);
            return 1;
        }
    }
    check_refusal(&ckpt);
    int preemptions = 0;
    for (int i = 0; i < mixes; i++) {
        mix m;
        make_mix(&m, &ckpt.config, &rng, i);
        preemptions += check_mix(&ckpt, alone, &m, i);
        free_mix(&m);
    }
    printf("test_batch_gpu: %d mixes, %d preemptions\n", mixes, preemptions);
    CHECK(mixes < 1 || preemptions > 0, "no mix preempted: the soak missed that path");
    for (int f = 0; f < N_FORMS; f++) cuda_model_destroy(&alone[f]);
    gpt2_checkpoint_close(&ckpt);
    return check_finish("test_batch_gpu");
}
