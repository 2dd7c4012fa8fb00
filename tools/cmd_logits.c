/* gpt2 logits: raw little-endian float32 logits [T][vocab] of every position, for checks by anyone. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/cli.h"
#include "tools/cli_model.h"
#include "tools/commands.h"
#include "tools/result.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gpt2 logits writes the host's float32 bytes, which must be little-endian"
#endif

typedef struct {
    const char *model_flag, *prompt, *prompt_file, *ids_text, *out_path;
    bool allow_special, json;
    cli_backend backend;
    kv_format kv;
    bool kv_given;
    cli_cuda_flags cuda;
} logits_options;

static void print_help(void) {
    puts("usage: gpt2 logits [-m DIR] (-p TEXT | -f FILE | --ids \"464 3290 ...\") -o FILE [options]\n"
         "  writes little-endian float32 logits [T][vocab_size], one row per input position\n"
         "  --special          read <|endoftext|> in the text as the special token\n"
         CLI_BACKEND_HELP
         CLI_KV_HELP
         "  --json             print a JSON summary (tokens, vocab, file) on stdout");
}

static int parse_options(int argc, char **argv, logits_options *opt) {
    *opt = (logits_options){.backend = BACKEND_AUTO, .kv = KV_FORMAT_FP32};
    cli_args args = {.cmd = "logits", .argc = argc, .argv = argv};
    while (cli_has_next(&args)) {
        if (cli_flag(&args, "-h") || cli_flag(&args, "--help")) {
            print_help();
            return 2;
        } else if (cli_flag(&args, "-m")) opt->model_flag = cli_value(&args);
        else if (cli_flag(&args, "-p")) opt->prompt = cli_value(&args);
        else if (cli_flag(&args, "-f")) opt->prompt_file = cli_value(&args);
        else if (cli_flag(&args, "--ids")) opt->ids_text = cli_value(&args);
        else if (cli_flag(&args, "-o")) opt->out_path = cli_value(&args);
        else if (cli_flag(&args, "--special")) opt->allow_special = true;
        else if (cli_flag(&args, "--backend")) cli_backend_parse(&args, &opt->backend);
        else if (cli_cuda_flag(&args, &opt->cuda)) continue;
        else if (cli_flag(&args, "--kv")) opt->kv_given = cli_kv_format_parse(&args, &opt->kv);
        else if (cli_flag(&args, "--json")) opt->json = true;
        else return cli_unknown(&args);
    }
    if (args.failed ||
        cli_backend_resolve("logits", &opt->backend, opt->kv_given && opt->kv == KV_FORMAT_FP32) != 0)
        return 1;
    if (!opt->out_path) return cli_error("logits", "missing -o FILE");
    if (!opt->ids_text == !(opt->prompt || opt->prompt_file))
        return cli_error("logits", "give the input as text (-p or -f) or as --ids, exactly one");
    return 0;
}

/* The input ids: from --ids (checked against the model's vocabulary) or by encoding text. */
static int input_ids(const logits_options *opt, const gpt2_config *c, token_ids *ids) {
    if (opt->ids_text)
        return cli_parse_ids("logits", opt->ids_text, strlen(opt->ids_text), c->vocab_size, ids)
                   ? 1 : 0;
    size_t len = 0;
    char *text = cli_read_text("logits", opt->prompt, opt->prompt_file, &len);
    if (!text) return 1;
    tokenizer *tok = tokenizer_create();
    int rc = tok ? tokenizer_encode(tok, text, len, opt->allow_special, ids) : -1;
    tokenizer_destroy(tok);
    free(text);
    if (rc != 0) return cli_error("logits", "out of memory");
    for (size_t i = 0; i < ids->len; i++)
        if (ids->ids[i] >= c->vocab_size)
            return cli_error("logits", "token id %d out of range [0, %d) for this model",
                             ids->ids[i], c->vocab_size);
    return 0;
}

static int write_logits(const char *path, const float *logits, size_t count) {
    FILE *f = fopen(path, "wb");
    if (!f) return cli_error("logits", "%s: cannot open for writing: %s", path, strerror(errno));
    errno = 0;
    size_t written = fwrite(logits, sizeof(float), count, f);
    int err = written != count ? errno : 0;
    if (fclose(f) != 0 && !err) err = errno ? errno : EIO;
    if (written != count || err)
        return cli_error("logits", "%s: write failed: %s", path, strerror(err ? err : EIO));
    return 0;
}

static int run(const logits_options *opt, cli_model *model, const token_ids *ids) {
    const gpt2_config *c = &model->config;
    if (ids->len == 0) return cli_error("logits", "the input has no tokens");
    if (ids->len > (size_t)c->n_positions)
        return cli_error("logits", "%zu tokens exceed the model's context of %d", ids->len,
                         c->n_positions);
    char err[GPT2_ERR_LEN];
    size_t count = ids->len * (size_t)c->vocab_size;
    float *logits = malloc(count * sizeof(float));
    if (!logits) return cli_error("logits", "out of memory for %zu logits", count);
    int rc = cli_model_forward(model, ids->ids, (int)ids->len, true, logits, err, sizeof err)
                 ? cli_error("logits", "%s", err)
                 : write_logits(opt->out_path, logits, count);
    free(logits);
    if (rc == 0 && opt->json) {
        printf("{\"tokens\":%zu,\"vocab_size\":%d,\"backend\":\"%s\",\"kv\":\"%s\",\"file\":",
               ids->len, c->vocab_size, cli_backend_name(model->backend), kv_format_name(model->kv));
        result_json_string(stdout, opt->out_path, strlen(opt->out_path));
        printf("}\n");
    } else if (rc == 0) {
        fprintf(stderr, "gpt2 logits: wrote %zu x %d float32 logits to %s\n", ids->len,
                c->vocab_size, opt->out_path);
    }
    return rc;
}

int cmd_logits(int argc, char **argv) {
    logits_options opt;
    int rc = parse_options(argc, argv, &opt);
    if (rc) return rc == 2 ? 0 : rc;
    const char *model_dir = cli_model_dir("logits", opt.model_flag);
    if (!model_dir) return 1;
    cli_model model;
    if (cli_model_load("logits", model_dir, opt.backend, opt.kv, opt.kv_given, &opt.cuda, &model) != 0)
        return 1;
    token_ids ids = {0};
    rc = input_ids(&opt, &model.config, &ids);
    if (rc == 0) rc = run(&opt, &model, &ids);
    token_ids_free(&ids);
    cli_model_destroy(&model);
    return rc;
}
