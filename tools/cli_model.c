#include "tools/cli_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/kernels.h"

const char *cli_backend_name(cli_backend backend) { return backend == BACKEND_CUDA ? "cuda" : "cpu"; }

int cli_backend_resolve(const char *cmd, cli_backend *backend, bool fp32_kv) {
    if (*backend != BACKEND_AUTO) return 0;
    const char *env = getenv("GPT2_BACKEND");
    if (env && *env) {
        if (strcmp(env, "cpu") != 0 && strcmp(env, "cuda") != 0)
            return cli_error(cmd, "$GPT2_BACKEND is '%s'; expected cpu or cuda", env);
        *backend = strcmp(env, "cpu") == 0 ? BACKEND_CPU : BACKEND_CUDA;
        return 0;
    }
    if (fp32_kv) *backend = BACKEND_CPU;
    else if (gpt2_cuda_device_count() > 0) *backend = BACKEND_CUDA;
    else {
        *backend = BACKEND_CPU;
        fprintf(stderr, "gpt2 %s: no CUDA device, so the cpu backend runs (the fp32 reference, "
                        "slow); --backend cpu says so and hides this line\n", cmd);
    }
    return 0;
}

static int resolve_kv(const char *cmd, cli_backend backend, bool kv_given, kv_format *kv) {
    if (backend == BACKEND_CPU) return 0;
    if (!kv_given) *kv = KV_FORMAT_FP16;
    if (*kv != KV_FORMAT_FP32) return 0;
    return cli_error(cmd, "--kv fp32 is the CPU reference's; the cuda backend stores fp16 or int8");
}

int cli_model_load(const char *cmd, const char *model_dir, cli_backend backend, kv_format kv,
                   bool kv_given, const cli_cuda_flags *cuda_flags, cli_model *model) {
    const cuda_model_options options = {.max_seqs = 1, /* one sequence at a time */
                                        .unfused = cuda_flags && cuda_flags->unfused,
                                        .device = cuda_flags ? cuda_flags->device : 0};
    return cli_model_load_with(cmd, model_dir, backend, kv, kv_given, &options, model);
}

/* Whether the device the options name exists. Returns 0, or 1 after printing the error. */
static int check_device(const char *cmd, int device) {
    const int count = gpt2_cuda_device_count();
    if (count == 0)
        return cli_error(cmd, "--backend cuda: no CUDA device (and this is not the emulation build)");
    if (device >= count)
        return cli_error(cmd, "--device %d: there %s %d CUDA device%s (0..%d)", device,
                         count == 1 ? "is" : "are", count, count == 1 ? "" : "s", count - 1);
    return 0;
}

int cli_model_load_with(const char *cmd, const char *model_dir, cli_backend backend, kv_format kv,
                        bool kv_given, const cuda_model_options *cuda_options, cli_model *model) {
    *model = (cli_model){.backend = backend, .kv = kv};
    if (resolve_kv(cmd, backend, kv_given, &model->kv) != 0) return 1;
    if (backend == BACKEND_CPU && (cuda_options->unfused || cuda_options->device))
        return cli_error(cmd, "--unfused and --device are the cuda backend's (--backend cuda)");
    if (backend == BACKEND_CUDA && check_device(cmd, cuda_options->device) != 0) return 1;
    cuda_model_options options = *cuda_options;
    options.int8_kv = model->kv == KV_FORMAT_INT8;
    char err[GPT2_ERR_LEN];
    gpt2_checkpoint ckpt;
    if (gpt2_checkpoint_open(&ckpt, model_dir, err, sizeof err) != 0) return cli_error(cmd, "%s", err);
    model->config = ckpt.config;
    const int rc = backend == BACKEND_CPU
                       ? cpu_model_create(&model->cpu, &ckpt, 0, model->kv, err, sizeof err)
                       : cuda_model_create(&model->cuda, &ckpt, &options, err, sizeof err);
    gpt2_checkpoint_close(&ckpt);
    return rc == 0 ? 0 : cli_error(cmd, "%s", err);
}

void cli_model_destroy(cli_model *model) {
    if (model->backend == BACKEND_CPU) cpu_model_destroy(&model->cpu);
    else cuda_model_destroy(&model->cuda);
}

void cli_model_reset(cli_model *model) {
    if (model->backend == BACKEND_CPU) cpu_model_reset(&model->cpu);
    else cuda_model_reset(&model->cuda);
}

int cli_model_check_kv(const char *cmd, const cli_model *model, size_t tokens) {
    if (model->backend == BACKEND_CPU || tokens <= (size_t)cuda_model_kv_capacity(&model->cuda))
        return 0;
    const kv_pool_shape *shape = &model->cuda.kv.shape;
    const size_t block_bytes = kv_pool_bytes_per_block(shape);
    const size_t blocks = (size_t)shape->n_layer * ((tokens + shape->block_size - 1) / shape->block_size);
    return cli_error(cmd, "the KV pool holds %d tokens of one sequence (%zu bytes per layer's block "
                          "of %d tokens), but the prompt and -n need %zu: give --kv-mem %zu or more",
                     cuda_model_kv_capacity(&model->cuda), block_bytes, shape->block_size, tokens,
                     blocks * block_bytes);
}

int cli_model_forward(cli_model *model, const int32_t *tokens, int n, bool all_positions,
                      float *logits, char *err, size_t err_len) {
    if (model->backend == BACKEND_CPU)
        return cpu_model_forward(&model->cpu, tokens, n, all_positions, logits, err, err_len);
    return cuda_model_forward(&model->cuda, 0, tokens, n, all_positions, logits, NULL, 0.0f, NULL,
                              err, err_len);
}

/* Whether every one of x[0, n) is finite: what the device checks before its draw, too. */
static bool all_finite(const float *x, int n) {
    for (int i = 0; i < n; i++)
        if (!isfinite(x[i])) return false;
    return true;
}

int cli_model_next_id(cli_model *model, const int32_t *tokens, int n, sampler *smp,
                      float *logits_scratch, int32_t *id, char *err, size_t err_len) {
    if (model->backend == BACKEND_CPU) {
        if (cpu_model_forward(&model->cpu, tokens, n, false, logits_scratch, err, err_len) != 0)
            return -1;
        if (!all_finite(logits_scratch, smp->vocab_size))
            return snprintf(err, err_len, "cpu backend: the logits at the sampled position are not "
                            "finite (NaN or inf)"), -1;
        *id = sampler_sample(smp, logits_scratch);
        return 0;
    }
    const float uniform = sampler_take_uniform(smp);
    return cuda_model_forward(&model->cuda, 0, tokens, n, false, NULL, smp, uniform, id, err, err_len);
}

int cli_model_set_kv_policy(const char *cmd, cli_model *model, const cli_kv_policy_flags *flags) {
    const int budget = flags->budget_tokens ? flags->budget_tokens : model->config.n_positions;
    char err[GPT2_ERR_LEN];
    if (model->backend == BACKEND_CPU)
        return cpu_model_set_kv_policy(&model->cpu, &flags->policy, budget, err, sizeof err) == 0
                   ? 0 : cli_error(cmd, "%s", err);
    return cuda_model_set_kv_policy(&model->cuda, &flags->policy, budget, err, sizeof err) == 0
               ? 0 : cli_error(cmd, "%s", err);
}

perplexity_forward_fn cli_model_sequence_fn(const cli_model *model) {
    return model->backend == BACKEND_CPU ? cpu_model_forward_decoded : cuda_model_forward_decoded;
}

void *cli_model_handle(cli_model *model) {
    return model->backend == BACKEND_CPU ? (void *)&model->cpu : (void *)&model->cuda;
}
