/*
 * Shared plumbing of the gpt2 subcommands: flag parsing with one-line errors, reading text
 * input, loading the model for the chosen backend, and JSON string output.
 */
#ifndef GPT2_CLI_H
#define GPT2_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "model/checkpoint.h"
#include "model/cpu_model.h"
#include "tokenizer/tokenizer.h"

/* Prints "gpt2 <cmd>: <message>" on stderr. Always returns 1, the exit code for errors. */
int cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Walks argv; flags take their value from the next argument. */
typedef struct {
    const char *cmd;
    int argc;
    char **argv;
    int next;
    bool failed; /* an error has been printed */
} cli_args;

bool cli_has_next(const cli_args *args);
/* True and consumes the current argument when it equals flag. */
bool cli_flag(cli_args *args, const char *flag);
/* The value after a flag just matched; prints an error and returns NULL when it is missing. */
const char *cli_value(cli_args *args);
/* Parses the value after a flag into an int / float within [min, max]. */
bool cli_int(cli_args *args, long min, long max, int *out);
bool cli_float(cli_args *args, double min, double max, float *out);
bool cli_u64(cli_args *args, unsigned long long *out);
/* A byte count above 0: digits, then optionally K, M or G (powers of 1024), within a size_t. */
bool cli_bytes(cli_args *args, size_t *out);
/* Reports the current argument as unknown. Always returns 1. */
int cli_unknown(cli_args *args);

/*
 * Returns malloc'd text from -p (prompt), -f (file) or, when both are NULL, stdin (when stdin is
 * a terminal, a line on stderr says how to end the text); *len is set and the text is
 * NUL-terminated. NULL after printing an error.
 */
char *cli_read_text(const char *cmd, const char *prompt, const char *path, size_t *len);

/*
 * Encodes the text of the file at path (special tokens as plain text) into ids, each checked
 * against the model's vocab_size. Returns 0, or 1 after printing an error.
 */
int cli_encode_file(const char *cmd, const char *path, int vocab_size, token_ids *ids);

/*
 * Parses the token ids in text[0..len), separated by spaces, tabs, newlines or commas, each
 * all digits and in [0, vocab_size); any other byte, NUL included, is an error. Returns 0, or
 * -1 after printing an error.
 */
int cli_parse_ids(const char *cmd, const char *text, size_t len, int vocab_size, token_ids *out);

/* BACKEND_AUTO: no --backend given; cli_backend_resolve (tools/cli_model.h) picks one. */
typedef enum { BACKEND_AUTO, BACKEND_CPU, BACKEND_CUDA } cli_backend;
/* Parses --backend's value (cpu or cuda); prints an error and returns false for others. */
bool cli_backend_parse(cli_args *args, cli_backend *out);


/* Parses --kv's value (fp32, fp16 or int8); prints an error and returns false for others. */
bool cli_kv_format_parse(cli_args *args, kv_format *out);
#define CLI_KV_HELP                                                                           \
    "  --kv FORMAT        KV cache format: fp32 (exact, the cpu default; cpu only), fp16 (the cuda\n" \
    "                     default), or int8 (per token and head, fp16 scale)\n"
#define CLI_BACKEND_HELP                                                                      \
    "  --backend B        cuda (a GPU, or the SIMT emulator in the emulation build; the default\n" \
    "                     where there is one) or cpu (the fp32 reference; the default without a\n" \
    "                     device, and with --kv fp32). $GPT2_BACKEND sets the default\n"       \
    "  --unfused          cuda: bias, GELU, residual adds and INT8 (de)quantization each as a\n"  \
    "                     kernel of its own (the baseline of fused against unfused)\n"           \
    "  --device N         cuda: the GPU to run on (default 0)\n"

/*
 * --kv-policy P and --kv-budget TOKENS (cache/kv_policy.h): which tokens the cache keeps.
 * budget_tokens 0 means the model's context.
 */
typedef struct {
    kv_policy policy;
    int budget_tokens;
} cli_kv_policy_flags;
/*
 * Parses the current argument when it is --kv-policy or --kv-budget (true: consumed, and
 * args->failed says whether its value was bad); false for any other argument.
 */
bool cli_kv_policy_flag(cli_args *args, cli_kv_policy_flags *flags);
#define CLI_KV_POLICY_HELP                                                                    \
    "  --kv-policy P      which tokens the KV cache keeps: full (default), window:W,\n"         \
    "                     sinks:S,window:W, h2o:H,window:W, pyramid:r0,r1,.., minicache:L0,\n"  \
    "                     share:L0[,qalign] (cache/kv_policy.h), on either backend\n"           \
    "  --kv-budget N      the tokens pyramid's ratios scale (default: the model's context)\n"

/* The CUDA engine's flags that every model command takes: --unfused and --device. */
typedef struct {
    bool unfused;
    int device;
    bool given; /* any of them was on the command line */
} cli_cuda_flags;
/*
 * Parses the current argument when it is --unfused or --device N (true: consumed, and
 * args->failed says whether its value was bad); false for any other argument.
 */
bool cli_cuda_flag(cli_args *args, cli_cuda_flags *flags);

/*
 * The model directory: -m when given, else $GPT2_MODEL, else the first of weights/default and
 * weights/gpt2 (in the source tree) that holds a config.json (so that a folder a failed download
 * left behind does not hide the "no model" help). NULL after printing what is needed.
 */
const char *cli_model_dir(const char *cmd, const char *flag_value);
/* Whether path is a folder with a config.json in it (a regular file). */
bool cli_is_model_dir(const char *path);

/*
 * Resolves a --ctx value against the model: 0 becomes its context, a longer one is refused.
 * Returns 0, or 1 after printing the error.
 */
int cli_resolve_ctx(const char *cmd, int *ctx, const gpt2_config *config);

/* Seconds on a monotonic clock. */
double cli_now(void);

/* mkdir -p: creates path and its missing parents. Returns 0, or -1 with errno set. */
int cli_make_folders(const char *path);

#endif
