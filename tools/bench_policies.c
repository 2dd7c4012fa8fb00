/*
 * gpt2 bench policies: every KV policy (cache/kv_policy.h) at equal KV budgets on a held-out
 * text, for quality and memory together (issue 15).
 *
 * The text (by default the model folder's heldout.txt, its first --bytes bytes) is tokenized
 * and cut into consecutive segments of the model's context (the last one shorter); each segment
 * is a fresh sequence. Every run decodes each segment teacher-forced, one token per call from
 * the first (cpu_model_decode with a first call of one token: the same logits as the larger
 * first call of `gpt2 ppl`, since no policy evicts or merges before its budget fills), so that
 * eviction, scoring and merging happen exactly as in generation. Every position but a segment's
 * last is scored: perplexity is exp of the mean next-token NLL (what `gpt2 ppl --ctx N --stride
 * N` gives at N = the context), and against the full cache's logits at the same positions, the
 * mean KL(full || policy) and top-1 agreement (model/logit_compare.h).
 *
 * Budgets are shares of the context (--budgets, percent). At a budget of B tokens:
 *   window:B;  sinks:4,window:B-4;  h2o:B/2,window:B-B/2 (heavy hitters and window halve it);
 *   pyramid:RATIOS with the --kv-budget that makes the mean over layers of the per-layer budgets
 *     B: floor(B * n_layer / sum over layers of the layer's ratio), at most the context (so at
 *     100% a pyramid holds less than B: its top groups cannot keep more than every token).
 * full, share:L0 and share:L0,qalign (also with an int8 cache when the run's is not), and
 * minicache:L0 have no budget: they keep every token, so their memory is fixed by the layers
 * they pair (L0 defaults to n_layer / 2). They are run once and sit on the pareto chart.
 *
 * Memory is what the CPU reference holds, counted as the paged pool would hold it
 * (cpu_model_kv_usage): kept rows per layer times the bytes of a row in the format, pages of 16
 * tokens per layer; a share borrower holds none; a minicache pair holds every token in its lower
 * layer, a merged one with its norm ratios beside it, and only its retained tokens in the upper
 * layer. The table gives each run's peak over every call; the memory chart, the bytes held after
 * each token of the first segment at one budget.
 *
 * --backend cuda runs the same on the CUDA pool, one engine per KV format, a token per
 * cuda_model_forward call; its memory is what the pool's allocator really holds, pages times the
 * bytes of a page (and minicache's ratios of its merged tokens), after each call. On a GPU (not
 * the emulator) each run is then also timed: one sequence decodes the whole context greedily
 * from a one-token prompt, ids drawn on the device (decode graphs), and decode_tok_per_s is
 * tokens over the wall time; the cpu backend and the emulator report no speed. Also on cuda,
 * each window and sinks run that keeps fewer tokens than the context decodes --past tokens
 * past it, restarting as generate does, and reports its restarts (on a GPU their mean time and
 * the tok/s with them). With -o DIR: DIR/bench_policies.json (tools/result.h) and its three
 * charts.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/kv_policy.h"
#include "cache/kv_pool.h"
#include "model/cpu_model.h"
#include "model/cuda_model.h"
#include "model/logit_compare.h"
#include "tools/bench_ops.h"
#include "tools/cli.h"
#include "tools/cli_model.h"
#include "tools/commands.h"
#include "tools/result.h"

#define CMD "bench"
#define RESULT_FILE "bench_policies.json"
#define MAX_BUDGETS 8
#define N_BUDGETED 4 /* window, sinks, h2o, pyramid */
#define MAX_RUNS (N_BUDGETED * MAX_BUDGETS + 6)
#define SINKS 4
#define TRACE_POINTS 128 /* the memory chart's points per run, at most */
#define KIB 1024.0
#define MIB (1024.0 * 1024.0)

#define N_FAMILIES 8
/* The budgeted families first, then those of fixed memory. */
static const char *const families[N_FAMILIES] = {"window", "sinks", "h2o", "pyramid",
                                                 "full", "share", "share qalign", "minicache"};

static const char help[] =
    "usage: gpt2 bench policies [-m DIR] [options]\n"
    "  every KV policy at equal KV budgets on held-out text, on the cpu backend: perplexity,\n"
    "  mean KL and top-1 agreement against the full cache, KV bytes and pages held. Each\n"
    "  segment of the context's length is decoded teacher-forced, one token per call.\n"
    "  At a budget of B tokens: window:B, sinks:4,window:B-4, h2o:B/2,window:B-B/2, and pyramid\n"
    "  with the budget whose per-layer mean is B; full, share and minicache keep every token\n"
    "  (fixed memory) and run once.\n"
    "  -m DIR             the model (default: $GPT2_MODEL, else weights/default or weights/gpt2)\n"
    "  -f FILE            the text (default: DIR/heldout.txt)\n"
    "  --bytes N          its first N bytes only (default 8000; 0: all of it)\n"
    "  --budgets LIST     KV budgets, percent of the context, comma-separated (default 25,50,100)\n"
    "  --memory-budget P  the budget of the memory chart (default: the first of --budgets)\n"
    "  --pyramid LIST     pyramid's ratios (default 1,1,0.5,0.25; at most one per layer)\n"
    "  --share-l0 N       share's first pair (default n_layer / 2)\n"
    "  --minicache-l0 N   minicache's first pair (default n_layer / 2)\n"
    "  --kv FORMAT        the cache's format for every run: fp32 (the cpu default), fp16 (the\n"
    "                     cuda default) or int8\n"
    "  --backend B        cpu (default) or cuda: the CUDA pool, timed on a GPU\n"
    "  --past N           cuda, window and sinks: also decode N tokens from a one-token prompt,\n"
    "                     past the context, restarting it as generate does (default: 3 x the\n"
    "                     context on a GPU, 0 on the emulator)\n"
    "  -o DIR             also write DIR/" RESULT_FILE " and its charts (PNG)";

typedef struct {
    const char *model_flag, *text_path, *out_dir, *pyramid;
    size_t bytes;
    int budgets[MAX_BUDGETS], n_budgets; /* percent */
    int memory_budget;                   /* percent; 0: budgets[0] */
    int share_l0, minicache_l0;          /* -1: n_layer / 2 */
    kv_format kv;
    bool kv_given;
    cli_backend backend;
    int past;                            /* tokens decoded past the context; -1: the default */
} policies_options;

/* Returns 0 to run, 1 for an error already printed, 2 when help was printed. */
static int parse_options(int argc, char **argv, policies_options *opt) {
    *opt = (policies_options){.bytes = 8000, .budgets = {25, 50, 100}, .n_budgets = 3,
                              .pyramid = "1,1,0.5,0.25", .share_l0 = -1, .minicache_l0 = -1,
                              .kv = KV_FORMAT_FP32, .past = -1};
    cli_args args = {.cmd = CMD, .argc = argc, .argv = argv};
    opt->backend = BACKEND_CPU;
    int bytes = -1;
    while (cli_has_next(&args)) {
        if (cli_flag(&args, "-h") || cli_flag(&args, "--help")) {
            puts(help);
            return 2;
        } else if (cli_flag(&args, "-m")) opt->model_flag = cli_value(&args);
        else if (cli_flag(&args, "-f")) opt->text_path = cli_value(&args);
        else if (cli_flag(&args, "--bytes")) cli_int(&args, 0, 1 << 30, &bytes);
        else if (cli_flag(&args, "--budgets"))
            bench_parse_int_list(&args, "--budgets", 1, 100, MAX_BUDGETS, opt->budgets,
                                 &opt->n_budgets);
        else if (cli_flag(&args, "--memory-budget")) cli_int(&args, 1, 100, &opt->memory_budget);
        else if (cli_flag(&args, "--pyramid")) opt->pyramid = cli_value(&args);
        else if (cli_flag(&args, "--share-l0")) cli_int(&args, 0, 1 << 20, &opt->share_l0);
        else if (cli_flag(&args, "--minicache-l0")) cli_int(&args, 0, 1 << 20, &opt->minicache_l0);
        else if (cli_flag(&args, "--kv")) opt->kv_given = cli_kv_format_parse(&args, &opt->kv);
        else if (cli_flag(&args, "--backend")) cli_backend_parse(&args, &opt->backend);
        else if (cli_flag(&args, "--past")) cli_int(&args, 0, 1 << 24, &opt->past);
        else if (cli_flag(&args, "-o")) opt->out_dir = cli_value(&args);
        else return cli_unknown(&args);
    }
    if (args.failed) return 1;
    if (bytes >= 0) opt->bytes = (size_t)bytes;
    if (opt->backend == BACKEND_CUDA && !opt->kv_given) opt->kv = KV_FORMAT_FP16;
    if (opt->backend == BACKEND_CUDA && opt->kv == KV_FORMAT_FP32)
        return cli_error(CMD, "--kv fp32 is the cpu backend's; the CUDA pool is fp16 or int8");
    if (!opt->memory_budget) opt->memory_budget = opt->budgets[0];
    if (opt->past > 0 && opt->backend != BACKEND_CUDA)
        return cli_error(CMD, "--past decodes on the CUDA pool (--backend cuda)");
    for (int i = 0; i < opt->n_budgets; i++)
        if (opt->budgets[i] == opt->memory_budget) return 0;
    return cli_error(CMD, "--memory-budget %d is not one of --budgets", opt->memory_budget);
}

/* ---- the runs ---- */

typedef struct {
    char name[96];           /* the policy as --kv-policy writes it, + a format not the run's */
    const char *family;      /* window, sinks, h2o, pyramid, full, share, share qalign, minicache */
    kv_policy policy;
    kv_format format;
    int budget_percent;      /* 0: fixed memory (it keeps every token) */
    int budget_tokens;       /* cpu_model_set_kv_policy's */
    double nll_sum;          /* over the scored positions */
    long long scored;
    logit_comparison cmp;    /* against full at the same positions */
    cpu_kv_usage peak;       /* the most bytes held after any call */
    cpu_kv_usage *trace;     /* [trace_len]: held after each token of the first segment */
    int trace_len;
    double decode_tok_per_s; /* cuda on a GPU: the whole context decoded greedily; else 0 */
    int past_tokens;         /* cuda, window and sinks: tokens decoded past the context (--past) */
    int restarts;            /* the context restarts that took */
    double restart_ms;       /* on a GPU: their mean time; else 0 */
    double past_tok_per_s;   /* on a GPU: past_tokens over the whole time, restarts included */
} policy_run;

typedef struct {
    const policies_options *opt;
    const char *model_dir;
    char text_path[4200];
    const gpt2_config *config;
    cli_model engines[2];    /* cpu: [0]; cuda: by format, [0] fp16, [1] int8 (loaded when used) */
    bool loaded[2];
    token_ids ids;
    int n_segments;
    policy_run runs[MAX_RUNS];
    int n_runs;
    int past;                /* cuda: tokens each window or sinks run decodes past the context */
} policies_bench;

/* The budget in tokens of a share of the context. */
static int budget_tokens_of(const policies_bench *b, int percent) {
    return (int)((long long)percent * b->config->n_positions / 100);
}

static int add_run(policies_bench *b, const char *text, const char *family, kv_format format,
                   int percent, int budget_tokens) {
    policy_run *r = &b->runs[b->n_runs];
    char err[256];
    *r = (policy_run){.family = family, .format = format, .budget_percent = percent,
                      .budget_tokens = budget_tokens};
    if (kv_policy_parse(text, &r->policy, err, sizeof err) != 0 ||
        kv_policy_check(&r->policy, b->config->n_layer, err, sizeof err) != 0)
        return cli_error(CMD, "%s", err);
    kv_policy_format(&r->policy, r->name, sizeof r->name);
    if (format != b->opt->kv)
        snprintf(r->name + strlen(r->name), sizeof r->name - strlen(r->name), " (%s)",
                 kv_format_name(format));
    b->n_runs++;
    return 0;
}

/* pyramid's budget_tokens for a mean per-layer budget of B (the top of this file). */
static int pyramid_budget(const policies_bench *b, const kv_policy *p, int B) {
    const int L = b->config->n_layer, N = b->config->n_positions;
    double ratio_sum = 0.0;
    for (int l = 0; l < L; l++) ratio_sum += p->ratios[(long long)l * p->n_ratios / L];
    const double tokens = floor(B * L / ratio_sum);
    return tokens < 1 ? 1 : tokens > N ? N : (int)tokens;
}

static int add_budgeted_runs(policies_bench *b, int percent) {
    const int B = budget_tokens_of(b, percent), N = b->config->n_positions;
    if (B < 2 * SINKS)
        return cli_error(CMD, "--budgets %d: %d tokens of a %d-token context; the sinks policy "
                         "needs at least %d", percent, B, N, 2 * SINKS);
    const kv_format f = b->opt->kv;
    char text[160];
    snprintf(text, sizeof text, "window:%d", B);
    if (add_run(b, text, "window", f, percent, N) != 0) return 1;
    snprintf(text, sizeof text, "sinks:%d,window:%d", SINKS, B - SINKS);
    if (add_run(b, text, "sinks", f, percent, N) != 0) return 1;
    snprintf(text, sizeof text, "h2o:%d,window:%d", B / 2, B - B / 2);
    if (add_run(b, text, "h2o", f, percent, N) != 0) return 1;
    snprintf(text, sizeof text, "pyramid:%s", b->opt->pyramid);
    if (add_run(b, text, "pyramid", f, percent, N) != 0) return 1;
    policy_run *pyramid = &b->runs[b->n_runs - 1];
    pyramid->budget_tokens = pyramid_budget(b, &pyramid->policy, B);
    snprintf(pyramid->name + strlen(pyramid->name), sizeof pyramid->name - strlen(pyramid->name),
             ", kv-budget %d", pyramid->budget_tokens);
    return 0;
}

/* The first pair of share and minicache: the flag's, else the upper half of the layers. */
static int first_pair(int flag, int n_layer) { return flag >= 0 ? flag : n_layer / 2; }

static int plan_runs(policies_bench *b) {
    const policies_options *opt = b->opt;
    const int L = b->config->n_layer, N = b->config->n_positions;
    const kv_format f = opt->kv;
    if (add_run(b, "full", "full", f, 0, N) != 0) return 1; /* runs[0]: the reference */
    for (int i = 0; i < opt->n_budgets; i++)
        if (add_budgeted_runs(b, opt->budgets[i]) != 0) return 1;
    char text[96];
    for (int q = 0; q < 2; q++)
        for (int int8 = 0; int8 < (f == KV_FORMAT_INT8 ? 1 : 2); int8++) {
            snprintf(text, sizeof text, "share:%d%s", first_pair(opt->share_l0, L),
                     q ? ",qalign" : "");
            const kv_format format = int8 ? KV_FORMAT_INT8 : f;
            if (add_run(b, text, q ? "share qalign" : "share", format, 0, N) != 0) return 1;
        }
    snprintf(text, sizeof text, "minicache:%d", first_pair(opt->minicache_l0, L));
    return add_run(b, text, "minicache", f, 0, N);
}

/* ---- measuring ---- */


/* Scores one segment's logits [n, V] of run r against the reference's. */
static void score_segment(policy_run *r, const int32_t *ids, int n, const float *logits,
                          const float *reference, int V) {
    for (int t = 0; t + 1 < n; t++) {
        const float *row = logits + (size_t)t * V;
        r->nll_sum += logits_log_sum_exp(row, V) - row[ids[t + 1]];
        r->scored++;
        logit_comparison_add(&r->cmp, reference + (size_t)t * V, row, V);
    }
}

/* The engine that runs a format: the cpu model, or the CUDA engine of that format (loaded once). */
static cli_model *engine_for(policies_bench *b, kv_format format) {
    const int i = b->opt->backend == BACKEND_CUDA && format == KV_FORMAT_INT8;
    if (!b->loaded[i]) {
        if (cli_model_load(CMD, b->model_dir, b->opt->backend, format, true, NULL, &b->engines[i]) != 0)
            return NULL;
        b->loaded[i] = true;
        b->config = &b->engines[i].config;
    }
    return &b->engines[i];
}

/*
 * The CUDA pool's holdings of sequence 0: the pages the allocator handed out, and their bytes,
 * with the norm ratios (K and V, per head) of the tokens minicache holds merged.
 */
static cpu_kv_usage pool_usage(const cuda_model *m) {
    const long long pages = cuda_model_held_blocks(m, 0);
    const long long ratio_bytes = 2LL * m->config.n_head * KV_MINICACHE_RATIO_BYTES;
    return (cpu_kv_usage){.rows = cuda_model_held_rows(m, 0), .pages = pages,
                          .bytes = pages * (long long)kv_pool_bytes_per_block(&m->kv.shape) +
                                   cuda_model_merged_tokens(m, 0) * ratio_bytes};
}

/* cpu_model_decode's contract on the CUDA pool: one token per call from the first. */
static int cuda_decode(cuda_model *m, const int32_t *ids, int n, float *logits, cpu_kv_usage *held,
                       char *err, size_t err_len) {
    const int V = m->config.vocab_size;
    cuda_model_release(m, 0);
    for (int t = 0; t < n; t++) {
        if (cuda_model_forward(m, 0, ids + t, 1, false, logits + (size_t)t * V, NULL, 0.0f, NULL,
                               err, err_len) != 0)
            return -1;
        held[t] = pool_usage(m);
    }
    return 0;
}

/* Decodes one segment under run r: its logits into `logits`, its memory after every call. */
static int run_segment(policies_bench *b, policy_run *r, int segment, const int32_t *ids, int n,
                       float *logits, cpu_kv_usage *held) {
    char err[GPT2_ERR_LEN];
    cli_model *engine = engine_for(b, r->format);
    if (!engine) return 1;
    int rc;
    if (engine->backend == BACKEND_CUDA)
        rc = cuda_model_set_kv_policy(&engine->cuda, &r->policy, r->budget_tokens, err, sizeof err) != 0 ||
             cuda_decode(&engine->cuda, ids, n, logits, held, err, sizeof err) != 0;
    else {
        cpu_model_set_kv_format(&engine->cpu, r->format);
        rc = cpu_model_set_kv_policy(&engine->cpu, &r->policy, r->budget_tokens, err, sizeof err) != 0 ||
             cpu_model_decode(&engine->cpu, ids, n, 1, logits, held, err, sizeof err) != 0;
    }
    if (rc) return cli_error(CMD, "%s: %s", r->name, err);
    for (int t = 0; t < n; t++)
        if (held[t].bytes > r->peak.bytes) r->peak = held[t];
    if (segment == 0) {
        r->trace_len = n;
        memcpy(r->trace, held, (size_t)n * sizeof *held);
    }
    return 0;
}

static int measure(policies_bench *b) {
    const int N = b->config->n_positions, V = b->config->vocab_size;
    float *reference = malloc((size_t)N * V * sizeof(float));
    float *logits = malloc((size_t)N * V * sizeof(float));
    cpu_kv_usage *held = malloc((size_t)N * sizeof *held);
    int rc = reference && logits && held ? 0 : cli_error(CMD, "out of memory");
    for (int r = 0; rc == 0 && r < b->n_runs; r++)
        if (!(b->runs[r].trace = malloc((size_t)N * sizeof *held)))
            rc = cli_error(CMD, "out of memory");
    for (int s = 0; rc == 0 && s < b->n_segments; s++) {
        const size_t start = (size_t)s * N, left = b->ids.len - start;
        const int32_t *ids = b->ids.ids + start;
        const int n = left < (size_t)N ? (int)left : N;
        fprintf(stderr, "gpt2 bench policies: segment %d of %d (%d tokens), %d runs\n", s + 1,
                b->n_segments, n, b->n_runs);
        rc = run_segment(b, &b->runs[0], s, ids, n, reference, held);
        if (rc == 0) score_segment(&b->runs[0], ids, n, reference, reference, V);
        for (int r = 1; rc == 0 && r < b->n_runs; r++) {
            rc = run_segment(b, &b->runs[r], s, ids, n, logits, held);
            if (rc == 0) score_segment(&b->runs[r], ids, n, logits, reference, V);
        }
    }
    free(reference);
    free(logits);
    free(held);
    return rc;
}

/*
 * On a GPU: each run's decode speed, one sequence from a one-token prompt (the text's first)
 * through the whole context, greedy, every id drawn on the device by a graph replay.
 */
static int time_decodes(policies_bench *b) {
    char err[GPT2_ERR_LEN];
    const int N = b->config->n_positions;
    sampler greedy;
    if (sampler_create(&greedy, b->config->vocab_size, (sampler_params){.temperature = 0.0f, .top_p = 1.0f}) != 0)
        return cli_error(CMD, "out of memory");
    int rc = 0;
    for (int i = 0; rc == 0 && i < b->n_runs; i++) {
        policy_run *r = &b->runs[i];
        cuda_model *m = &engine_for(b, r->format)->cuda;
        if (cuda_model_set_kv_policy(m, &r->policy, r->budget_tokens, err, sizeof err) != 0)
            return sampler_destroy(&greedy), cli_error(CMD, "%s: %s", r->name, err);
        int32_t id = b->ids.ids[0];
        const double start = cli_now();
        for (int t = 0; rc == 0 && t < N - 1; t++)
            rc = cuda_model_forward(m, 0, &id, 1, false, NULL, &greedy, 0.0f, &id, err, sizeof err);
        r->decode_tok_per_s = rc == 0 ? (N - 1) / (cli_now() - start) : 0.0;
        cuda_model_release(m, 0);
        if (rc != 0) rc = cli_error(CMD, "%s: %s", r->name, err);
    }
    sampler_destroy(&greedy);
    return rc;
}

/*
 * Past the context (cuda, window and sinks): one sequence decodes --past tokens greedily from a
 * one-token prompt; each time its context outgrows n_positions, the tokens the policy keeps are
 * prefilled again at fresh positions (kv_policy_restart_context), as generate does. Counts the
 * restarts and, on a GPU, times them and the whole run.
 */
static int decode_past_context(policies_bench *b, policy_run *r, const sampler *greedy) {
    char err[GPT2_ERR_LEN];
    const int N = b->config->n_positions;
    cuda_model *m = &engine_for(b, r->format)->cuda;
    int32_t *context = malloc((size_t)(N + 1) * sizeof *context), id = b->ids.ids[0];
    if (!context) return cli_error(CMD, "out of memory");
    int len = 1, rc = cuda_model_set_kv_policy(m, &r->policy, r->budget_tokens, err, sizeof err);
    context[0] = id;
    double restart_seconds = 0.0;
    const double start = cli_now();
    if (rc == 0) rc = cuda_model_forward(m, 0, &id, 1, false, NULL, greedy, 0.0f, &id, err, sizeof err);
    for (int t = 1; rc == 0 && t < b->past; t++) {
        context[len++] = id;
        if (len <= N) {
            rc = cuda_model_forward(m, 0, &id, 1, false, NULL, greedy, 0.0f, &id, err, sizeof err);
            continue;
        }
        const double restart = cli_now();
        len = kv_policy_restart_context(&r->policy, context, len);
        cuda_model_release(m, 0);
        rc = cuda_model_forward(m, 0, context, len, false, NULL, greedy, 0.0f, &id, err, sizeof err);
        restart_seconds += cli_now() - restart;
        r->restarts++;
    }
    const double seconds = cli_now() - start;
    cuda_model_release(m, 0);
    free(context);
    if (rc != 0) return cli_error(CMD, "%s past the context: %s", r->name, err);
    r->past_tokens = b->past;
    if (!bench_emulated) {
        r->restart_ms = r->restarts ? 1e3 * restart_seconds / r->restarts : 0.0;
        r->past_tok_per_s = r->past_tokens / seconds;
    }
    return 0;
}

/* Every run that can go past the context (it keeps fewer tokens than the context) does. */
static int decode_past_contexts(policies_bench *b) {
    sampler greedy;
    if (sampler_create(&greedy, b->config->vocab_size, (sampler_params){.temperature = 0.0f, .top_p = 1.0f}) != 0)
        return cli_error(CMD, "out of memory");
    int rc = 0;
    for (int i = 0; rc == 0 && i < b->n_runs; i++) {
        const int kept = kv_policy_restart_keeps(&b->runs[i].policy);
        if (kept > 0 && kept < b->config->n_positions) rc = decode_past_context(b, &b->runs[i], &greedy);
    }
    sampler_destroy(&greedy);
    return rc;
}

/* ---- the text ---- */

static int load_text(policies_bench *b) {
    const policies_options *opt = b->opt;
    if (opt->text_path) snprintf(b->text_path, sizeof b->text_path, "%s", opt->text_path);
    else snprintf(b->text_path, sizeof b->text_path, "%s/heldout.txt", b->model_dir);
    size_t len = 0;
    char *text = cli_read_text(CMD, NULL, b->text_path, &len);
    if (!text) return 1;
    if (opt->bytes && len > opt->bytes) len = opt->bytes;
    tokenizer *tok = tokenizer_create();
    int rc = tok && tokenizer_encode(tok, text, len, false, &b->ids) == 0
                 ? 0 : cli_error(CMD, "out of memory");
    tokenizer_destroy(tok);
    free(text);
    const int V = b->config->vocab_size, N = b->config->n_positions;
    for (size_t i = 0; rc == 0 && i < b->ids.len; i++)
        if (b->ids.ids[i] >= V)
            rc = cli_error(CMD, "%s: token id %d is outside this model's vocabulary of %d",
                           b->text_path, b->ids.ids[i], V);
    if (rc == 0 && b->ids.len < 2) rc = cli_error(CMD, "%s: fewer than 2 tokens", b->text_path);
    /* Segments of N tokens; a last one of a single token has nothing to score and is dropped. */
    b->n_segments = (int)((b->ids.len + N - 1) / N);
    if (rc == 0 && b->ids.len % N == 1) b->ids.len--, b->n_segments--;
    return rc;
}

/* ---- the table ---- */

static double ppl_of(const policy_run *r) { return exp(r->nll_sum / (double)r->scored); }

static void budget_label(const policies_bench *b, const policy_run *r, char *out, size_t len) {
    if (r->budget_percent)
        snprintf(out, len, "%d%% (%d)", r->budget_percent, budget_tokens_of(b, r->budget_percent));
    else
        snprintf(out, len, "fixed");
}

static void print_table(const policies_bench *b) {
    const gpt2_config *c = b->config;
    const policy_run *full = &b->runs[0];
    const bool timed = full->decode_tok_per_s > 0;
    printf("gpt2 bench policies: %s, %d layers, %d heads, n_embd %d, context %d; %s backend%s, "
           "KV %s\n", b->model_dir, c->n_layer, c->n_head, c->n_embd, c->n_positions,
           cli_backend_name(b->opt->backend), bench_emulated && b->opt->backend == BACKEND_CUDA
           ? " (emulated: no timings)" : "", kv_format_name(b->opt->kv));
    printf("text %s: %zu tokens in %d segment%s, %lld positions scored; teacher-forced, one "
           "token per call\n", b->text_path, b->ids.len, b->n_segments,
           b->n_segments == 1 ? "" : "s", full->scored);
    printf("%-36s %-11s %12s %7s %7s %10s %8s %10s %7s%s\n", "policy", "budget", "peak KV B",
           "pages", "of full", "ppl", "change", "mean KL", "top-1", timed ? "  decode tok/s" : "");
    for (int i = 0; i < b->n_runs; i++) {
        const policy_run *r = &b->runs[i];
        char budget[32];
        budget_label(b, r, budget, sizeof budget);
        printf("%-36s %-11s %12lld %7lld %6.1f%% %10.4f %+7.2f%% %10.3g %6.1f%%", r->name, budget,
               r->peak.bytes, r->peak.pages, 100.0 * r->peak.bytes / full->peak.bytes, ppl_of(r),
               100.0 * (ppl_of(r) / ppl_of(full) - 1.0), logit_comparison_mean_kl(&r->cmp),
               100.0 * logit_comparison_top1(&r->cmp));
        if (timed) printf(" %13.0f", r->decode_tok_per_s);
        putchar('\n');
    }
    for (int i = 0; i < b->n_runs; i++) {
        const policy_run *r = &b->runs[i];
        if (!r->past_tokens) continue;
        printf("past the context, %s: %d tokens decoded, %d restarts of %d tokens", r->name,
               r->past_tokens, r->restarts, kv_policy_restart_keeps(&r->policy));
        if (r->past_tok_per_s > 0)
            printf(", %.3f ms each, %.0f tok/s overall", r->restart_ms, r->past_tok_per_s);
        putchar('\n');
    }
}

/* ---- the result JSON and its charts ---- */

static void write_series(result_writer *w, const char *name, const double *x, const double *y,
                         int n) {
    result_begin_object(w);
    result_member_string(w, "name", name);
    result_key(w, "x");
    result_number_array(w, x, (size_t)n);
    result_key(w, "y");
    result_number_array(w, y, (size_t)n);
    result_end_object(w);
}

/* The charts' unit of memory: MiB once full holds 4 MiB or more, else KiB. */
static double memory_unit(const policies_bench *b, const char **name) {
    const bool mib = b->runs[0].peak.bytes >= 4 * MIB;
    *name = mib ? "MiB" : "KiB";
    return mib ? MIB : KIB;
}

/*
 * The runs of one family in the order run (budgets, or formats): x from `xs` (0: budget
 * percent, 1: peak bytes in memory_unit), y perplexity; name: the family, or for a fixed one
 * its policy and the formats it ran in.
 */
static int family_points(const policies_bench *b, int family, int xs, double *x, double *y,
                         char *name, size_t name_len) {
    int n = 0;
    const char *unit_name;
    const double unit = memory_unit(b, &unit_name);
    snprintf(name, name_len, "%s", families[family]);
    for (int i = 0; i < b->n_runs; i++) {
        const policy_run *r = &b->runs[i];
        if (strcmp(r->family, families[family]) != 0) continue;
        if (family >= N_BUDGETED && n == 0) kv_policy_format(&r->policy, name, name_len);
        if (family >= N_BUDGETED && n == 1)
            snprintf(name + strlen(name), name_len - strlen(name), " (KV %s, %s)",
                     kv_format_name(b->opt->kv), kv_format_name(r->format));
        x[n] = xs == 0 ? r->budget_percent : r->peak.bytes / unit;
        y[n++] = ppl_of(r);
    }
    return n;
}

/* The "series" member: one per family of the first n_families, x as family_points' xs. */
static void write_family_series(result_writer *w, const policies_bench *b, int n_families, int xs) {
    double x[MAX_RUNS], y[MAX_RUNS];
    char name[128];
    result_key(w, "series");
    result_begin_array(w);
    for (int f = 0; f < n_families; f++) {
        const int n = family_points(b, f, xs, x, y, name, sizeof name);
        write_series(w, name, x, y, n);
    }
    result_end_array(w);
}

static void chart_ppl(result_writer *w, const policies_bench *b, const char *subtitle) {
    double x[MAX_BUDGETS];
    bench_chart_begin(w, "bench_policies_ppl.png", "line", "perplexity against the KV budget",
                      subtitle, "KV budget, % of the context (tokens each layer keeps)",
                      "perplexity");
    for (int i = 0; i < b->opt->n_budgets; i++) x[i] = b->opt->budgets[i];
    result_key(w, "x_ticks");
    result_number_array(w, x, (size_t)b->opt->n_budgets);
    write_family_series(w, b, N_BUDGETED, 0);
    result_key(w, "reference_lines");
    result_begin_array(w);
    result_begin_object(w);
    result_member_number(w, "y", ppl_of(&b->runs[0]));
    result_member_string(w, "label", "full cache");
    result_end_object(w);
    result_end_array(w);
    result_end_object(w);
}

static void chart_memory(result_writer *w, const policies_bench *b, const char *subtitle) {
    char title[160], y_label[64];
    const char *unit_name;
    const double unit = memory_unit(b, &unit_name);
    snprintf(title, sizeof title, "KV memory held against tokens decoded, budget %d%% (%d tokens)",
             b->opt->memory_budget, budget_tokens_of(b, b->opt->memory_budget));
    snprintf(y_label, sizeof y_label, "KV held, %s", unit_name);
    bench_chart_begin(w, "bench_policies_memory.png", "line", title, subtitle,
                      "tokens decoded, first segment (window, sinks and h2o hold alike; "
                      "share's qalign holds what share holds)", y_label);
    result_key(w, "series");
    result_begin_array(w);
    double x[TRACE_POINTS + 1], y[TRACE_POINTS + 1];
    for (int i = 0; i < b->n_runs; i++) {
        const policy_run *r = &b->runs[i];
        if ((r->budget_percent && r->budget_percent != b->opt->memory_budget) ||
            strcmp(r->family, "share qalign") == 0)
            continue;
        const int step = (r->trace_len + TRACE_POINTS - 1) / TRACE_POINTS;
        int n = 0;
        for (int t = 0; t < r->trace_len; t += step, n++)
            x[n] = t + 1, y[n] = r->trace[t].bytes / unit;
        if (x[n - 1] != r->trace_len)
            x[n] = r->trace_len, y[n++] = r->trace[r->trace_len - 1].bytes / unit;
        write_series(w, r->name, x, y, n);
    }
    result_end_array(w);
    result_end_object(w);
}

static void chart_pareto(result_writer *w, const policies_bench *b, const char *subtitle) {
    char x_label[64];
    const char *unit_name;
    memory_unit(b, &unit_name);
    snprintf(x_label, sizeof x_label, "peak KV held, %s", unit_name);
    bench_chart_begin(w, "bench_policies_pareto.png", "line",
                      "perplexity against KV memory (lower left is better)", subtitle, x_label,
                      "perplexity");
    write_family_series(w, b, N_FAMILIES, 1);
    result_end_object(w);
}

static void write_run(result_writer *w, const policies_bench *b, const policy_run *r) {
    const policy_run *full = &b->runs[0];
    result_begin_object(w);
    result_member_string(w, "policy", r->name);
    result_member_string(w, "family", r->family);
    result_member_string(w, "kv", kv_format_name(r->format));
    if (r->budget_percent) {
        result_member_int(w, "budget_percent", r->budget_percent);
        result_member_int(w, "budget_tokens", budget_tokens_of(b, r->budget_percent));
    }
    if (r->policy.kind == KV_POLICY_PYRAMID) result_member_int(w, "kv_budget", r->budget_tokens);
    result_member_number(w, "ppl", ppl_of(r));
    result_member_number(w, "ppl_change", ppl_of(r) / ppl_of(full) - 1.0);
    result_member_number(w, "mean_kl", logit_comparison_mean_kl(&r->cmp));
    result_member_number(w, "max_kl", r->cmp.kl_max);
    result_member_number(w, "top1_agreement", logit_comparison_top1(&r->cmp));
    result_member_int(w, "scored_positions", r->scored);
    result_member_int(w, "peak_kv_bytes", r->peak.bytes);
    result_member_int(w, "peak_kv_pages", r->peak.pages);
    result_member_int(w, "peak_kv_rows", r->peak.rows);
    result_member_number(w, "kv_bytes_of_full", (double)r->peak.bytes / (double)full->peak.bytes);
    if (r->decode_tok_per_s > 0) result_member_number(w, "decode_tok_per_s", r->decode_tok_per_s);
    if (r->past_tokens) {
        result_key(w, "past_context");
        result_begin_object(w);
        result_member_int(w, "tokens", r->past_tokens);
        result_member_int(w, "restarts", r->restarts);
        result_member_int(w, "restart_tokens", kv_policy_restart_keeps(&r->policy));
        if (r->past_tok_per_s > 0) {
            result_member_number(w, "restart_ms_mean", r->restart_ms);
            result_member_number(w, "tok_per_s", r->past_tok_per_s);
        }
        result_end_object(w);
    }
    result_end_object(w);
}

static void write_settings(result_writer *w, const policies_bench *b) {
    const policies_options *opt = b->opt;
    double budgets[MAX_BUDGETS];
    result_key(w, "settings");
    result_begin_object(w);
    result_member_string(w, "text", b->text_path);
    result_member_int(w, "bytes", (long long)opt->bytes);
    result_member_int(w, "tokens", (long long)b->ids.len);
    result_member_int(w, "segments", b->n_segments);
    result_member_string(w, "backend", cli_backend_name(opt->backend));
    if (b->past > 0) result_member_int(w, "past_tokens", b->past);
    result_member_string(w, "kv", kv_format_name(opt->kv));
    for (int i = 0; i < opt->n_budgets; i++) budgets[i] = opt->budgets[i];
    result_key(w, "budgets_percent");
    result_number_array(w, budgets, (size_t)opt->n_budgets);
    result_member_int(w, "memory_budget_percent", opt->memory_budget);
    result_member_int(w, "sinks", SINKS);
    result_member_string(w, "pyramid_ratios", opt->pyramid);
    result_member_int(w, "first_call_tokens", 1);
    result_member_int(w, "page_tokens", KV_DEFAULT_BLOCK_SIZE);
    result_member_number(w, "minicache_retain_cos", KV_MINICACHE_RETAIN_COS);
    result_end_object(w);
}

static void write_result(result_writer *w, const policies_bench *b, int argc, char **argv) {
    const gpt2_config *c = b->config;
    char subtitle[4800];
    snprintf(subtitle, sizeof subtitle, "gpt2-cuda cpu reference, %s, KV %s; %zu tokens of %s, "
             "teacher-forced one token per call", b->model_dir, kv_format_name(b->opt->kv),
             b->ids.len, b->text_path);
    bench_begin_result(w, "policies", EMULATED_NOTE ": but this bench runs the CPU reference "
                       "only, and has no timings",
                       "every KV policy at equal KV budgets (shares of the context) on held-out "
                       "text, decoded teacher-forced one token per call on the CPU reference: "
                       "perplexity, mean KL(full || policy) and top-1 agreement at the same "
                       "positions, and the KV bytes and pages held as the paged pool would hold "
                       "them (peak over the run)", argc, argv);
    result_key(w, "model");
    result_begin_object(w);
    result_member_string(w, "dir", b->model_dir);
    result_member_int(w, "n_layer", c->n_layer);
    result_member_int(w, "n_head", c->n_head);
    result_member_int(w, "n_embd", c->n_embd);
    result_member_int(w, "n_positions", c->n_positions);
    result_member_int(w, "vocab_size", c->vocab_size);
    result_end_object(w);
    write_settings(w, b);
    result_key(w, "runs");
    result_begin_array(w);
    for (int i = 0; i < b->n_runs; i++) write_run(w, b, &b->runs[i]);
    result_end_array(w);
    result_key(w, "charts");
    result_begin_array(w);
    chart_ppl(w, b, subtitle);
    chart_memory(w, b, subtitle);
    chart_pareto(w, b, subtitle);
    result_end_array(w);
    result_end_object(w);
}

/* What write_result needs, as bench_save_result passes it. */
typedef struct {
    const policies_bench *b;
    int argc;
    char **argv;
} policies_output;

static void write_output(result_writer *w, const void *ctx) {
    const policies_output *o = ctx;
    write_result(w, o->b, o->argc, o->argv);
}

static int save_outputs(const policies_bench *b, int argc, char **argv) {
    const policies_output out = {b, argc, argv};
    return bench_save_result(b->opt->out_dir, RESULT_FILE, write_output, &out);
}

/* ---- bench policies ---- */

static int run_bench(policies_bench *b, int record_argc, char **record_argv) {
    if (!engine_for(b, b->opt->kv)) return 1;
    int rc = load_text(b);
    if (rc == 0) rc = plan_runs(b);
    if (rc == 0) rc = measure(b);
    if (rc == 0 && b->opt->backend == BACKEND_CUDA && !bench_emulated) rc = time_decodes(b);
    if (rc == 0 && b->opt->backend == BACKEND_CUDA) {
        const int N = b->config->n_positions;
        b->past = b->opt->past >= 0 ? b->opt->past : bench_emulated ? 0 : 3 * N;
        if (b->past > 0) rc = decode_past_contexts(b);
    }
    if (rc == 0) print_table(b);
    if (rc == 0 && b->opt->out_dir) rc = save_outputs(b, record_argc, record_argv);
    for (int r = 0; r < b->n_runs; r++) free(b->runs[r].trace);
    token_ids_free(&b->ids);
    for (int i = 0; i < 2; i++)
        if (b->loaded[i]) cli_model_destroy(&b->engines[i]);
    return rc;
}

int cmd_bench_policies(int argc, char **argv, int record_argc, char **record_argv) {
    policies_options opt;
    int rc = parse_options(argc, argv, &opt);
    if (rc) return rc == 2 ? 0 : rc;
    if (opt.out_dir && cli_make_folders(opt.out_dir) != 0)
        return cli_error(CMD, "cannot create %s: %s", opt.out_dir, strerror(errno));
    policies_bench *b = calloc(1, sizeof *b);
    if (!b) return cli_error(CMD, "out of memory");
    b->opt = &opt;
    b->model_dir = cli_model_dir(CMD, opt.model_flag);
    rc = b->model_dir ? run_bench(b, record_argc, record_argv) : 1;
    free(b);
    return rc;
}
