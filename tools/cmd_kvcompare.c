/*
 * gpt2 kvcompare: what a KV cache format costs in accuracy. The model runs the same tokens
 * twice, teacher-forced, with K and V stored in a baseline format (fp16) and in the format under
 * test (int8), and compares the next-token distributions at every position: KL(baseline ||
 * test), top-1 agreement and the largest logit error. On the CPU one model switches format
 * between the runs; on cuda two engines run side by side, one per format. It also reports what
 * each format buys: how many sequences of --ctx tokens a --kv-mem budget admits, by running the
 * pool's allocator (cache/kv_pool.h) until it refuses.
 */
#include <stdio.h>
#include <stdlib.h>

#include "cache/kv_pool.h"
#include "model/logit_compare.h"
#include "tools/cli.h"
#include "tools/cli_model.h"
#include "tools/commands.h"

typedef struct {
    const char *model_flag, *path;
    int positions; /* next-token distributions compared */
    int ctx;       /* tokens per window; 0: the model's context */
    kv_format kv, baseline;
    bool json;
    cli_backend backend;
    cli_cuda_flags cuda;
    size_t capacity_bytes; /* --kv-mem: the budget the capacity is counted in */
    cli_kv_policy_flags policy; /* the run under test's; the baseline keeps every token */
} kvcompare_options;

static void print_help(void) {
    puts("usage: gpt2 kvcompare [-m DIR] -f FILE [--positions N] [--ctx N] [--kv FORMAT]\n"
         "                      [--baseline FORMAT] [--json]\n"
         "  the CPU reference over the first N tokens of FILE, in fresh windows of --ctx tokens,\n"
         "  with K and V stored in --kv and in --baseline; at every position it compares the\n"
         "  next-token distributions: mean and max KL(baseline || kv), top-1 agreement, max abs\n"
         "  logit error.\n"
         "  --positions N      positions compared (default 1000; FILE must hold N tokens)\n"
         "  --ctx N            window length (default: the model's context)\n"
         "  --kv FORMAT        format under test: fp32, fp16 or int8 (default int8)\n"
         "  --baseline FORMAT  reference format (default fp16)\n"
         "  --kv-mem BYTES     the budget the capacity lines count sequences of --ctx tokens in\n"
         "                     (default 1G; K, M, G: powers of 1024)\n"
         CLI_BACKEND_HELP
         CLI_KV_POLICY_HELP
         "                     (kvcompare: the run under test's; the baseline keeps every token,\n"
         "                     and both run teacher-forced, one token per call after the first)\n"
         "  --json             print one JSON object on stdout");
}

/* Returns 0 to run, 1 for an error already printed, 2 when help was printed. */
static int parse_options(int argc, char **argv, kvcompare_options *opt) {
    *opt = (kvcompare_options){.positions = 1000, .kv = KV_FORMAT_INT8, .baseline = KV_FORMAT_FP16,
                               .backend = BACKEND_AUTO, .capacity_bytes = (size_t)1 << 30};
    cli_args args = {.cmd = "kvcompare", .argc = argc, .argv = argv};
    while (cli_has_next(&args)) {
        if (cli_flag(&args, "-h") || cli_flag(&args, "--help")) {
            print_help();
            return 2;
        } else if (cli_flag(&args, "-m")) opt->model_flag = cli_value(&args);
        else if (cli_flag(&args, "-f")) opt->path = cli_value(&args);
        else if (cli_flag(&args, "--positions")) cli_int(&args, 1, 1 << 24, &opt->positions);
        else if (cli_flag(&args, "--ctx")) cli_int(&args, 1, 1 << 20, &opt->ctx);
        else if (cli_flag(&args, "--kv")) cli_kv_format_parse(&args, &opt->kv);
        else if (cli_flag(&args, "--baseline")) cli_kv_format_parse(&args, &opt->baseline);
        else if (cli_flag(&args, "--json")) opt->json = true;
        else if (cli_flag(&args, "--kv-mem")) cli_bytes(&args, &opt->capacity_bytes);
        else if (cli_flag(&args, "--backend")) cli_backend_parse(&args, &opt->backend);
        else if (cli_cuda_flag(&args, &opt->cuda)) continue;
        else if (cli_kv_policy_flag(&args, &opt->policy)) continue;
        else return cli_unknown(&args);
    }
    if (args.failed ||
        cli_backend_resolve("kvcompare", &opt->backend,
                            opt->kv == KV_FORMAT_FP32 || opt->baseline == KV_FORMAT_FP32) != 0)
        return 1;
    if (!opt->path) return cli_error("kvcompare", "missing -f FILE");
    return 0;
}

/* The model in both formats (one CPU model switching, or two CUDA engines), and a window of logits from each. */
typedef struct {
    cli_model baseline;      /* on cpu, the one model */
    cli_model test;          /* cuda only */
    kv_format baseline_format, test_format;
    cli_kv_policy_flags full, test_policy;
    float *baseline_logits;  /* [ctx, V] */
    float *test_logits;      /* [ctx, V] */
} kv_comparison_run;

/* Logits [len, V] of a fresh window in the baseline format, or in the format under test. */
static int run_window(kv_comparison_run *run, bool test, const int32_t *ids, int len, float *logits,
                      char *err, size_t err_len) {
    cli_model *model = run->baseline.backend == BACKEND_CUDA && test ? &run->test : &run->baseline;
    if (model->backend == BACKEND_CUDA) /* the engine under test holds the policy */
        return cuda_model_forward_decoded(&model->cuda, ids, len, logits, err, err_len);
    cpu_model_set_kv_format(&model->cpu, test ? run->test_format : run->baseline_format);
    if (cli_model_set_kv_policy("kvcompare", model, test ? &run->test_policy : &run->full) != 0)
        return snprintf(err, err_len, "the KV policy was refused"), -1;
    return cpu_model_forward_decoded(&model->cpu, ids, len, logits, err, err_len);
}

/* Runs the model in both formats over windows of ctx tokens until `positions` rows are compared. */
static int compare_windows(kv_comparison_run *run, const int32_t *ids, int positions, int ctx,
                           logit_comparison *cmp, int *windows) {
    const int V = run->baseline.config.vocab_size;
    char err[GPT2_ERR_LEN];
    for (int begin = 0; begin < positions; begin += ctx) {
        const int len = positions - begin < ctx ? positions - begin : ctx;
        int rc = run_window(run, false, ids + begin, len, run->baseline_logits, err, sizeof err);
        if (rc == 0) rc = run_window(run, true, ids + begin, len, run->test_logits, err, sizeof err);
        if (rc != 0) return cli_error("kvcompare", "%s", err);
        for (int t = 0; t < len; t++)
            logit_comparison_add(cmp, run->baseline_logits + (size_t)t * V,
                                 run->test_logits + (size_t)t * V, V);
        (*windows)++;
    }
    return 0;
}

/* Sequences of ctx tokens that the budget admits in a format; 0 for fp32 (not a pool format). */
static int sequences_that_fit(const kvcompare_options *opt, const gpt2_config *c, kv_format format) {
    if (format == KV_FORMAT_FP32) return 0;
    const kv_pool_shape shape = {.n_layer = c->n_layer, .n_head = c->n_head,
                                 .block_size = KV_DEFAULT_BLOCK_SIZE, .format = format};
    return kv_pool_sequences_that_fit(&shape, opt->capacity_bytes, opt->ctx);
}

static void print_result(const kvcompare_options *opt, const gpt2_config *c,
                         const logit_comparison *cmp, int windows, double seconds) {
    const char *kv = kv_format_name(opt->kv), *baseline = kv_format_name(opt->baseline);
    const char *backend = cli_backend_name(opt->backend);
    char policy[256];
    kv_policy_format(&opt->policy.policy, policy, sizeof policy);
    const int fit_kv = sequences_that_fit(opt, c, opt->kv);
    const int fit_baseline = sequences_that_fit(opt, c, opt->baseline);
    if (opt->json) {
        printf("{\"kv\":\"%s\",\"baseline\":\"%s\",\"kv_policy\":\"%s\",\"positions\":%lld,\"windows\":%d,\"ctx\":%d,"
               "\"kl_mean\":%.9g,\"kl_max\":%.9g,\"top1_agreement\":%.6f,"
               "\"max_abs_logit_error\":%.9g,\"backend\":\"%s\",\"unfused\":%s,\"seconds\":%.3f,"
               "\"capacity\":{\"budget_bytes\":%zu,\"seq_tokens\":%d,\"kv_sequences\":%d,"
               "\"baseline_sequences\":%d}}\n",
               kv, baseline, policy, cmp->rows, windows, opt->ctx, logit_comparison_mean_kl(cmp),
               cmp->kl_max, logit_comparison_top1(cmp), cmp->max_abs_error, backend,
               opt->cuda.unfused ? "true" : "false", seconds, opt->capacity_bytes, opt->ctx, fit_kv,
               fit_baseline);
        return;
    }
    printf("kv %s (policy %s) against %s (every token) over %lld positions (%d windows of up to "
           "%d tokens):\n"
           "  KL(%s || %s) mean %.4g nats, max %.4g nats\n"
           "  top-1 agreement %.2f%% (%lld of %lld)\n"
           "  max abs logit error %.4g\n",
           kv, policy, baseline, cmp->rows, windows, opt->ctx, baseline, kv,
           logit_comparison_mean_kl(cmp), cmp->kl_max, 100.0 * logit_comparison_top1(cmp),
           cmp->top1_agree, cmp->rows, cmp->max_abs_error);
    printf("  a KV pool of %zu bytes admits %d sequences of %d tokens in %s, %d in %s "
           "(the allocator, run until it refuses)\n", opt->capacity_bytes, fit_kv, opt->ctx, kv,
           fit_baseline, baseline);
    fprintf(stderr, "gpt2 kvcompare: %.2f s, backend %s%s\n", seconds, backend,
            opt->cuda.unfused ? ", unfused" : "");
}

/* Checks --ctx against the model (filling in its default) and the file against --positions. */
static int check_sizes(kvcompare_options *opt, const gpt2_config *c, size_t n_tokens) {
    if (cli_resolve_ctx("kvcompare", &opt->ctx, c) != 0) return 1;
    if (n_tokens < (size_t)opt->positions)
        return cli_error("kvcompare", "%s: %zu tokens, fewer than --positions %d", opt->path,
                         n_tokens, opt->positions);
    return 0;
}

static int run_comparison(kvcompare_options *opt, kv_comparison_run *run, const token_ids *ids) {
    const gpt2_config *c = &run->baseline.config;
    int rc = check_sizes(opt, c, ids->len);
    if (rc) return rc;
    const size_t window_logits = (size_t)opt->ctx * (size_t)c->vocab_size;
    run->baseline_logits = malloc(window_logits * sizeof(float));
    run->test_logits = malloc(window_logits * sizeof(float));
    if (!run->baseline_logits || !run->test_logits)
        return cli_error("kvcompare", "out of memory for 2 x %zu logits", window_logits);
    logit_comparison cmp = {0};
    int windows = 0;
    const double start = cli_now();
    rc = compare_windows(run, ids->ids, opt->positions, opt->ctx, &cmp, &windows);
    if (rc == 0) print_result(opt, c, &cmp, windows, cli_now() - start);
    return rc;
}

/* The baseline model, and on cuda the engine in the format under test. Returns 0, or 1. */
static int load_models(const kvcompare_options *opt, const char *model_dir, kv_comparison_run *run) {
    if (cli_model_load("kvcompare", model_dir, opt->backend, opt->baseline, true, &opt->cuda,
                       &run->baseline) != 0)
        return 1;
    if (opt->backend == BACKEND_CPU) return 0;
    if (cli_model_load("kvcompare", model_dir, opt->backend, opt->kv, true, &opt->cuda, &run->test) == 0)
        return 0;
    cli_model_destroy(&run->baseline);
    return 1;
}

int cmd_kvcompare(int argc, char **argv) {
    kvcompare_options opt;
    int rc = parse_options(argc, argv, &opt);
    if (rc) return rc == 2 ? 0 : rc;
    const char *model_dir = cli_model_dir("kvcompare", opt.model_flag);
    if (!model_dir) return 1;
    kv_comparison_run run = {.baseline_format = opt.baseline, .test_format = opt.kv,
                             .full = {.policy = {.kind = KV_POLICY_FULL}}, .test_policy = opt.policy};
    if (load_models(&opt, model_dir, &run) != 0) return 1;
    if (cli_model_set_kv_policy("kvcompare", opt.backend == BACKEND_CUDA ? &run.test : &run.baseline,
                                &opt.policy) != 0) {
        cli_model_destroy(&run.baseline);
        if (opt.backend == BACKEND_CUDA) cli_model_destroy(&run.test);
        return 1;
    }
    token_ids ids = {0};
    rc = cli_encode_file("kvcompare", opt.path, run.baseline.config.vocab_size, &ids);
    if (rc == 0) rc = run_comparison(&opt, &run, &ids);
    token_ids_free(&ids);
    free(run.baseline_logits);
    free(run.test_logits);
    cli_model_destroy(&run.baseline);
    if (opt.backend == BACKEND_CUDA) cli_model_destroy(&run.test);
    return rc;
}
