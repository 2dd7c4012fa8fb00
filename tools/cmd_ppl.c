/* gpt2 ppl: sliding-window perplexity of a text file, the way HF's perplexity guide computes it. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/perplexity.h"
#include "tools/cli.h"
#include "tools/cli_model.h"
#include "tools/commands.h"

typedef struct {
    const char *model_flag, *path;
    int ctx, stride; /* 0: the model's context, and half of ctx */
    bool json;
    cli_backend backend;
    kv_format kv;
    bool kv_given;
    cli_cuda_flags cuda;
    cli_kv_policy_flags policy;
} ppl_options;

static void print_help(void) {
    puts("usage: gpt2 ppl [-m DIR] -f FILE [--ctx N] [--stride S] [--kv FORMAT] [--backend B]\n"
         "                [--json]\n"
         "  sliding-window perplexity over the tokens of FILE (HF's perplexity guide):\n"
         "  windows of --ctx tokens (default: the model's context) every --stride tokens\n"
         "  (default ctx/2); only the tokens new to each window are scored.\n"
         CLI_KV_HELP
         CLI_BACKEND_HELP
         CLI_KV_POLICY_HELP
         "                     (under a policy other than full each window runs teacher-forced:\n"
         "                     its first tokens in one call, then one token per call, evicting)\n"
         "  --json             print {\"ppl\", \"tokens\", \"nll\", \"windows\", \"kv\", ...}");
}

static int parse_options(int argc, char **argv, ppl_options *opt) {
    *opt = (ppl_options){.backend = BACKEND_AUTO, .kv = KV_FORMAT_FP32};
    cli_args args = {.cmd = "ppl", .argc = argc, .argv = argv};
    while (cli_has_next(&args)) {
        if (cli_flag(&args, "-h") || cli_flag(&args, "--help")) {
            print_help();
            return 2;
        } else if (cli_flag(&args, "-m")) opt->model_flag = cli_value(&args);
        else if (cli_flag(&args, "-f")) opt->path = cli_value(&args);
        else if (cli_flag(&args, "--ctx")) cli_int(&args, 2, 1 << 20, &opt->ctx);
        else if (cli_flag(&args, "--stride")) cli_int(&args, 1, 1 << 20, &opt->stride);
        else if (cli_flag(&args, "--kv")) opt->kv_given = cli_kv_format_parse(&args, &opt->kv);
        else if (cli_flag(&args, "--backend")) cli_backend_parse(&args, &opt->backend);
        else if (cli_cuda_flag(&args, &opt->cuda)) continue;
        else if (cli_kv_policy_flag(&args, &opt->policy)) continue;
        else if (cli_flag(&args, "--json")) opt->json = true;
        else return cli_unknown(&args);
    }
    if (args.failed ||
        cli_backend_resolve("ppl", &opt->backend, opt->kv_given && opt->kv == KV_FORMAT_FP32) != 0)
        return 1;
    if (!opt->path) return cli_error("ppl", "missing -f FILE");
    return 0;
}

/* Checks --ctx and --stride against the model and fills in their defaults. */
static int resolve_windows(ppl_options *opt, const gpt2_config *c) {
    if (cli_resolve_ctx("ppl", &opt->ctx, c) != 0) return 1;
    if (opt->stride == 0) opt->stride = opt->ctx / 2;
    if (opt->stride > opt->ctx)
        return cli_error("ppl", "--stride %d exceeds --ctx %d", opt->stride, opt->ctx);
    return 0;
}

static void print_result(const ppl_options *opt, const cli_model *model,
                         const perplexity_result *r, size_t n_ids, double seconds) {
    const char *backend = cli_backend_name(model->backend), *kv = kv_format_name(model->kv);
    double rate = seconds > 0 ? n_ids / seconds : 0.0;
    char policy[256];
    kv_policy_format(&opt->policy.policy, policy, sizeof policy);
    if (opt->json) {
        printf("{\"ppl\":%.6f,\"tokens\":%lld,\"file_tokens\":%zu,\"nll\":%.6f,\"windows\":%d,"
               "\"ctx\":%d,\"stride\":%d,\"backend\":\"%s\",\"kv\":\"%s\",\"kv_policy\":\"%s\","
               "\"unfused\":%s,\"seconds\":%.3f,\"tok_per_s\":%.1f}\n",
               r->ppl, r->tokens, n_ids, r->nll_sum / (double)r->tokens, r->windows, opt->ctx,
               opt->stride, backend, kv, policy, opt->cuda.unfused ? "true" : "false", seconds, rate);
        return;
    }
    printf("ppl %.4f over %lld scored tokens (%zu in the file, %d windows, ctx %d, stride %d)\n",
           r->ppl, r->tokens, n_ids, r->windows, opt->ctx, opt->stride);
    fprintf(stderr, "gpt2 ppl: %.2f s, %.1f tok/s, backend %s, kv %s, kv policy %s\n", seconds,
            rate, backend, kv, policy);
}

int cmd_ppl(int argc, char **argv) {
    ppl_options opt;
    int rc = parse_options(argc, argv, &opt);
    if (rc) return rc == 2 ? 0 : rc;
    const char *model_dir = cli_model_dir("ppl", opt.model_flag);
    if (!model_dir) return 1;
    cli_model model;
    if (cli_model_load("ppl", model_dir, opt.backend, opt.kv, opt.kv_given, &opt.cuda, &model) != 0)
        return 1;
    const gpt2_config config = model.config;
    token_ids ids = {0};
    rc = cli_model_set_kv_policy("ppl", &model, &opt.policy);
    if (rc == 0) rc = resolve_windows(&opt, &config);
    if (rc == 0) rc = cli_encode_file("ppl", opt.path, config.vocab_size, &ids);
    if (rc == 0 && ids.len < 2) rc = cli_error("ppl", "%s: fewer than 2 tokens", opt.path);
    if (rc == 0) {
        char err[GPT2_ERR_LEN];
        perplexity_result result;
        double start = cli_now();
        if (perplexity_sliding_window(ids.ids, ids.len, opt.ctx, opt.stride, config.vocab_size,
                                      cli_model_sequence_fn(&model), cli_model_handle(&model),
                                      &result, err, sizeof err))
            rc = cli_error("ppl", "%s", err);
        else if (!isfinite(result.nll_sum))
            /* Never "ppl nan" with exit 0: a non-finite score is the model's failure. */
            rc = cli_error("ppl", "the perplexity is not finite (summed NLL %g over %lld tokens "
                                  "in %d windows): the model gives non-finite logits",
                           result.nll_sum, result.tokens, result.windows);
        else if (!isfinite(result.ppl))
            rc = cli_error("ppl", "the perplexity overflows a double (mean NLL %g nats over %lld "
                                  "tokens)", result.nll_sum / (double)result.tokens, result.tokens);
        else
            print_result(&opt, &model, &result, ids.len, cli_now() - start);
    }
    token_ids_free(&ids);
    cli_model_destroy(&model);
    return rc;
}
