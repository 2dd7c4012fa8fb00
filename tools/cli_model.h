/*
 * The model behind the subcommands, on either backend: the CPU reference (fp32, the oracle) or
 * the CUDA engine (a GPU, or the SIMT emulator in the emulation build). One set of calls, so
 * that generate, logits and ppl do not care which one runs.
 */
#ifndef GPT2_CLI_MODEL_H
#define GPT2_CLI_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "model/cpu_model.h"
#include "model/cuda_model.h"
#include "model/perplexity.h"
#include "model/sampler.h"
#include "tools/cli.h"

typedef struct {
    cli_backend backend;
    kv_format kv;
    gpt2_config config;
    cpu_model cpu;   /* BACKEND_CPU */
    cuda_model cuda; /* BACKEND_CUDA */
} cli_model;

/*
 * Resolves BACKEND_AUTO: $GPT2_BACKEND when set (cpu or cuda), else cpu when fp32_kv (--kv fp32
 * is the CPU reference's), else cuda when there is a device (or the emulator), else cpu, with
 * one line on stderr saying so. Returns 0, or 1 after printing the error ($GPT2_BACKEND bad).
 */
int cli_backend_resolve(const char *cmd, cli_backend *backend, bool fp32_kv);

/* "cpu" or "cuda". */
const char *cli_backend_name(cli_backend backend);

/*
 * Opens the checkpoint and builds the model on `backend` (resolved: not BACKEND_AUTO), for one
 * sequence at a time. kv_given says whether --kv was on the command line: without it the CPU
 * stores fp32 and CUDA fp16; CUDA refuses fp32.
 * Returns 0, or 1 after printing the error.
 */
int cli_model_load(const char *cmd, const char *model_dir, cli_backend backend, kv_format kv,
                   bool kv_given, const cli_cuda_flags *cuda_flags /* may be NULL */,
                   cli_model *model);
/*
 * The same with all of the CUDA engine's settings (the KV budget, batch, eager decode, unfused,
 * device); on the CPU, --unfused and --device are errors and the others are ignored. int8_kv
 * is set from the format.
 */
int cli_model_load_with(const char *cmd, const char *model_dir, cli_backend backend, kv_format kv,
                        bool kv_given, const cuda_model_options *cuda_options, cli_model *model);
void cli_model_destroy(cli_model *model);

/* Forgets the sequence: the next forward starts again at position 0. */
void cli_model_reset(cli_model *model);

/*
 * Whether the KV cache can hold `tokens` tokens of one sequence: always on the CPU (its cache
 * spans the context), within the pool's blocks on CUDA. Returns 0, or 1 after printing the error
 * with the --kv-mem that would do.
 */
int cli_model_check_kv(const char *cmd, const cli_model *model, size_t tokens);

/* Runs n new tokens of the current sequence; logits [n, V] (all_positions) or [V] on the host. */
int cli_model_forward(cli_model *model, const int32_t *tokens, int n, bool all_positions,
                      float *logits, char *err, size_t err_len);

/*
 * Runs n new tokens and draws the next id with smp, consuming its uniforms exactly as
 * sampler_sample does; on CUDA the draw happens on the device and only the id comes back.
 * logits_scratch: [V] host memory for the CPU backend. A NaN or an infinity among the logits
 * the draw reads is an error on both backends (the tokens stay in the cache).
 */
int cli_model_next_id(cli_model *model, const int32_t *tokens, int n, sampler *smp,
                      float *logits_scratch, int32_t *id, char *err, size_t err_len);

/*
 * Sets the KV policy of the model (flags from cli_kv_policy_flag): cpu_model_set_kv_policy or
 * cuda_model_set_kv_policy, whose refusals (minicache on cuda, say) print as the command's
 * error. Returns 0, or 1 after printing the error.
 */
int cli_model_set_kv_policy(const char *cmd, cli_model *model, const cli_kv_policy_flags *flags);

/*
 * The whole-sequence forward for model/perplexity.h, and the handle to pass it: under a KV
 * policy other than full, teacher-forced decode (cpu_model_forward_decoded).
 */
perplexity_forward_fn cli_model_sequence_fn(const cli_model *model);
void *cli_model_handle(cli_model *model);

#endif
