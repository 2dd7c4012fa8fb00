/*
 * gpt2 bench e2e: the CUDA engine end to end, for one KV setting or (--compare-kv) for fp16, int8
 * fused and int8 unfused in turn, each on a model of its own built from the same checkpoint
 * (its KV pool sized to hold every sequence of the run, no more). For each:
 *  - TTFT: the prefill of one sequence of --context random tokens plus its first draw on the
 *    device (cuda_model_forward), after one untimed run, the median over --ttft-runs;
 *  - for each batch size B: B sequences of --context random tokens are prefilled one by one
 *    (slots 0..B-1), then --warmup untimed and --steps timed decode steps of all B together
 *    (cuda_model_decode, greedy, each step fed the ids the last one drew), then --phase-steps
 *    more steps launch by launch with CUDA events at every phase (cuda_model.phases), then
 *    every sequence is released. A step is timed with the host's monotonic clock around
 *    cuda_model_decode, which returns only after the stream has synchronized and the ids are
 *    back on the host: the time a caller waits per step, graph launch and staging copies
 *    included. Per batch: the median and p90 step time, us per token (step / B), tok/s
 *    (B / step). TPOT is the median step at batch 1 (or the cached run below when batch 1 is
 *    not listed);
 *  - the phases of a decode step: per eager step the events give each phase's device time
 *    (attention: qkv, KV write, attention, out projection; MLP: fc, proj; layernorm: ln_1,
 *    ln_2; LM head: ln_f, logits and sampling) and "other" is the rest of the host-timed step
 *    (embedding, the input and output copies, launch gaps before the first phase and host
 *    work); the median of each over the steps;
 *  - no cache against the KV cache, measured directly: a 1-token prompt, then for generated
 *    token i = 1..T (T the largest of --cache-tokens) the no-cache run releases the sequence and
 *    prefills all i tokens it has (cuda_model_forward, the draw on the device), and the cached
 *    run decodes one token (cuda_model_decode at batch 1; token 1 is the prompt's prefill in
 *    both). Both are fed the same random tokens, so they do the same work whatever they draw.
 *    --cache-runs runs of each; per position the median, per T the median over runs of the
 *    total of tokens 1..T, and the speedup of the cache.
 *
 * With -o DIR it writes DIR/bench_e2e.json (tools/result.h: the run record with the device and
 * its clocks, the settings, every sample; docs/bench/README.md has the schema, which
 * tools/bench_peers.py writes too) and the charts its "charts" array describes, drawn the way
 * `gpt2 plot DIR/bench_e2e.json` redraws them. On the emulation build the timings are CPU times
 * of the SIMT emulator: the table says so, the JSON has "emulated": true and the chart titles
 * begin with "emulated: not GPU timings".
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/kv_pool.h"
#include "kernels/cuda_check.h"
#include "kernels/kernels.h"
#include "model/checkpoint.h"
#include "model/cuda_model.h"
#include "model/sampler.h"
#include "model/synthetic.h"
#include "tools/bench_ops.h"
#include "tools/cli.h"
#include "tools/result.h"

#define CMD "bench"
#define MAX_BATCHES 32
#define MAX_BATCH 4096          /* sequences in one decode step */
#define MAX_CACHE_TOKENS 16
#define MAX_VARIANTS 3
#define DEFAULT_BATCHES "1,8,64,256"
#define DEFAULT_CACHE_TOKENS "16,64,256,1024"
#define RESULT_FILE "bench_e2e.json"
#define THROUGHPUT_CHART "bench_e2e_throughput.png"
#define LATENCY_CHART "bench_e2e_step_latency.png"
#define POSITION_CHART "bench_e2e_cache_by_position.png"
#define CACHE_TOTAL_CHART "bench_e2e_cache_total.png"
#define CACHE_SPEEDUP_CHART "bench_e2e_cache_speedup.png"
#define PHASE_CHART "bench_e2e_phases.png"
#define PARETO_CHART "bench_e2e_memory_latency.png"

const char bench_e2e_help[] =
    "usage: gpt2 bench e2e [--model-config 124M|355M|774M|1558M | -m DIR] [options]\n"
    "  the CUDA engine end to end: TTFT; for each batch size B, B prompts of --context random\n"
    "  tokens prefilled, then --steps timed greedy decode steps of all B together (after\n"
    "  --warmup untimed ones), each timed on the host clock around the engine's synchronous\n"
    "  decode call, then --phase-steps eager steps timed phase by phase with CUDA events; then\n"
    "  no cache against the KV cache over --cache-tokens generated tokens. Prints step time\n"
    "  (median, p90), us per token, tok/s, TTFT and TPOT, the phases, and the cache's speedup.\n"
    "  --model-config NAME  random weights (seeded) at a real GPT-2 shape: 124M, 355M, 774M or\n"
    "                     1558M, written to a temporary folder under $TMPDIR (else /tmp), loaded,\n"
    "                     and deleted\n"
    "  -m DIR             a model folder instead (default: $GPT2_MODEL, else weights/default or\n"
    "                     weights/gpt2)\n"
    "  --seed N           seed of the random weights and prompt tokens (default 1)\n"
    "  --batch LIST       batch sizes, comma-separated (default " DEFAULT_BATCHES ")\n"
    "  --context T        prompt tokens before the timed decode (default 128)\n"
    "  --steps N          timed decode steps per batch size (default 64)\n"
    "  --warmup N         untimed decode steps before them (default 4; the first step of a batch\n"
    "                     size captures its CUDA graph)\n"
    "  --ttft-runs N      timed prefills of one sequence for TTFT (default 5)\n"
    "  --phase-steps N    eager decode steps per batch size timed phase by phase (default 8;\n"
    "                     0: no breakdown)\n"
    "  --cache-tokens LIST  generated tokens T for no cache against the KV cache (default\n"
    "                     " DEFAULT_CACHE_TOKENS ", each at most the model's context)\n"
    "  --cache-runs N     runs of the no-cache and the cached generation (default 3; 0: none)\n"
    "  --no-graph         decode steps launch by launch instead of CUDA graph replays\n"
    "  --unfused          bias, GELU, residual adds and INT8 (de)quantization as kernels of their\n"
    "                     own (the baseline)\n"
    "  --kv FORMAT        fp16 (default) or int8: the KV pool's format\n"
    "  --compare-kv       all of it for fp16 KV, int8 KV fused and int8 KV unfused in turn, the\n"
    "                     charts comparing them (instead of --kv and --unfused)\n"
    "  -o DIR             also write DIR/" RESULT_FILE " (run record, settings, every sample) and\n"
    "                     its charts: DIR/" THROUGHPUT_CHART ", " LATENCY_CHART ",\n"
    "                     " POSITION_CHART ", " CACHE_TOTAL_CHART ",\n"
    "                     " CACHE_SPEEDUP_CHART ", " PHASE_CHART " and " PARETO_CHART "\n"
    "  On the emulation build the numbers are CPU times of the SIMT emulator, not GPU timings.";

/* One KV setting of the engine that a run measures. */
typedef struct {
    bool int8_kv, unfused;
} kv_variant;

typedef struct {
    const char *model_flag, *model_config, *out_dir;
    unsigned long long seed;
    int batches[MAX_BATCHES]; /* [n_batches] in the order given */
    int n_batches, max_batch;
    int cache_tokens[MAX_CACHE_TOKENS]; /* [n_cache_tokens] ascending */
    int n_cache_tokens;
    int context, steps, warmup, ttft_runs, phase_steps, cache_runs;
    bool no_graph, compare_kv, kv_given;
    kv_variant variants[MAX_VARIANTS]; /* [n_variants]: one, or the three of --compare-kv */
    int n_variants;
} e2e_options;

/* --kv: fp16 or int8 (fp32 is the CPU reference's). */
static void parse_kv(cli_args *args, e2e_options *opt) {
    kv_format format;
    opt->kv_given = true;
    if (!cli_kv_format_parse(args, &format)) return;
    if (format == KV_FORMAT_FP32) {
        args->failed = true;
        cli_error(CMD, "--kv fp32 is the CPU reference's; the engine's pool is fp16 or int8");
        return;
    }
    opt->variants[0].int8_kv = format == KV_FORMAT_INT8;
}

static int compare_ints(const void *a, const void *b) {
    const int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static void set_default_list(int *out, int *n, const int *values, int count) {
    memcpy(out, values, (size_t)count * sizeof *out);
    *n = count;
}

/* The variants to run: --compare-kv's three, else the one --kv and --unfused describe. */
static int settle_variants(e2e_options *opt) {
    if (!opt->compare_kv) {
        opt->n_variants = 1;
        return 0;
    }
    if (opt->kv_given || opt->variants[0].unfused)
        return cli_error(CMD, "--compare-kv runs fp16, int8 fused and int8 unfused: give it "
                         "without --kv and --unfused");
    static const kv_variant all[MAX_VARIANTS] = {{false, false}, {true, false}, {true, true}};
    memcpy(opt->variants, all, sizeof all);
    opt->n_variants = MAX_VARIANTS;
    return 0;
}

/* Returns 0 to run, 1 for an error already printed, 2 when help was printed. */
static int parse_options(int argc, char **argv, e2e_options *opt) {
    *opt = (e2e_options){.seed = 1, .context = 128, .steps = 64, .warmup = 4, .ttft_runs = 5,
                         .phase_steps = 8, .cache_runs = 3};
    cli_args args = {.cmd = CMD, .argc = argc, .argv = argv};
    bool batches_given = false, tokens_given = false;
    while (cli_has_next(&args)) {
        if (cli_flag(&args, "-h") || cli_flag(&args, "--help")) {
            puts(bench_e2e_help);
            return 2;
        } else if (cli_flag(&args, "-m")) opt->model_flag = cli_value(&args);
        else if (cli_flag(&args, "--model-config")) opt->model_config = cli_value(&args);
        else if (cli_flag(&args, "--seed")) cli_u64(&args, &opt->seed);
        else if (cli_flag(&args, "--batch"))
            batches_given = bench_parse_int_list(&args, "--batch", 1, MAX_BATCH, MAX_BATCHES,
                                                 opt->batches, &opt->n_batches);
        else if (cli_flag(&args, "--context")) cli_int(&args, 1, 1 << 20, &opt->context);
        else if (cli_flag(&args, "--steps")) cli_int(&args, 1, 1 << 20, &opt->steps);
        else if (cli_flag(&args, "--warmup")) cli_int(&args, 0, 1 << 20, &opt->warmup);
        else if (cli_flag(&args, "--ttft-runs")) cli_int(&args, 1, 1000, &opt->ttft_runs);
        else if (cli_flag(&args, "--phase-steps")) cli_int(&args, 0, 1 << 16, &opt->phase_steps);
        else if (cli_flag(&args, "--cache-tokens"))
            tokens_given = bench_parse_int_list(&args, "--cache-tokens", 1, 1 << 20,
                                                MAX_CACHE_TOKENS, opt->cache_tokens,
                                                &opt->n_cache_tokens);
        else if (cli_flag(&args, "--cache-runs")) cli_int(&args, 0, 1000, &opt->cache_runs);
        else if (cli_flag(&args, "--no-graph")) opt->no_graph = true;
        else if (cli_flag(&args, "--unfused")) opt->variants[0].unfused = true;
        else if (cli_flag(&args, "--kv")) parse_kv(&args, opt);
        else if (cli_flag(&args, "--compare-kv")) opt->compare_kv = true;
        else if (cli_flag(&args, "-o")) opt->out_dir = cli_value(&args);
        else return cli_unknown(&args);
    }
    if (args.failed) return 1;
    if (opt->model_flag && opt->model_config)
        return cli_error(CMD, "give -m DIR or --model-config NAME, not both");
    if (settle_variants(opt) != 0) return 1;
    if (!batches_given) {
        static const int defaults[] = {1, 8, 64, 256};
        set_default_list(opt->batches, &opt->n_batches, defaults, 4);
    }
    if (!tokens_given) {
        static const int defaults[] = {16, 64, 256, 1024};
        set_default_list(opt->cache_tokens, &opt->n_cache_tokens, defaults, 4);
    }
    qsort(opt->cache_tokens, (size_t)opt->n_cache_tokens, sizeof *opt->cache_tokens, compare_ints);
    for (int i = 0; i < opt->n_batches; i++)
        if (opt->batches[i] > opt->max_batch) opt->max_batch = opt->batches[i];
    return 0;
}

/* The tokens a sequence holds at the end of a batch: its prompt, then every decode step. */
static long tokens_per_sequence(const e2e_options *opt) {
    return (long)opt->context + opt->warmup + opt->steps + opt->phase_steps;
}

/* The longest generation of the cache comparison (0 without one). */
static int max_cache_tokens(const e2e_options *opt) {
    return opt->cache_runs > 0 ? opt->cache_tokens[opt->n_cache_tokens - 1] : 0;
}

/* --cache-tokens past the model's context become the context (once), with a note. */
static void cap_cache_tokens(e2e_options *opt, const gpt2_config *c) {
    int n = 0;
    for (int i = 0; i < opt->n_cache_tokens; i++) {
        int t = opt->cache_tokens[i];
        if (t > c->n_positions) {
            fprintf(stderr, "gpt2 %s: --cache-tokens %d: capped at the model's context, %d\n",
                    CMD, t, c->n_positions);
            t = c->n_positions;
        }
        if (n == 0 || opt->cache_tokens[n - 1] != t) opt->cache_tokens[n++] = t;
    }
    opt->n_cache_tokens = n;
}

static int check_lengths(e2e_options *opt, const gpt2_config *c) {
    if (tokens_per_sequence(opt) > c->n_positions)
        return cli_error(CMD, "--context %d + --warmup %d + --steps %d + --phase-steps %d = %ld "
                         "tokens exceed the model's context of %d", opt->context, opt->warmup,
                         opt->steps, opt->phase_steps, tokens_per_sequence(opt), c->n_positions);
    cap_cache_tokens(opt, c);
    return 0;
}

/* ---- the model: a synthetic checkpoint at a preset shape, or a folder ---- */

typedef struct {
    char synthetic_dir[4096]; /* the temporary folder, "" once removed (or when -m) */
    const char *model_dir;
    gpt2_config config;
    double write_seconds;     /* synthetic_checkpoint_write; 0 with -m */
    double open_seconds;      /* gpt2_checkpoint_open */
    size_t weight_bytes;      /* the engine's fp16 weights on the device */
    gpt2_checkpoint ckpt;     /* open for the whole run: every variant's model is built from it */
    bool opened;
} bench_model;

/* Deletes the synthetic checkpoint's files and folder (once; a no-op with -m). */
static void remove_synthetic(bench_model *m) {
    if (!m->synthetic_dir[0]) return;
    static const char *const files[] = {"config.json", "model.safetensors"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[sizeof m->synthetic_dir + 32];
        snprintf(path, sizeof path, "%s/%s", m->synthetic_dir, files[i]);
        unlink(path);
    }
    if (rmdir(m->synthetic_dir) != 0)
        fprintf(stderr, "gpt2 %s: warning: cannot remove %s: %s\n", CMD, m->synthetic_dir,
                strerror(errno));
    m->synthetic_dir[0] = '\0';
}

/* Writes the preset's random weights into a fresh temporary folder. Returns 0, or 1 + error. */
static int write_synthetic(e2e_options *opt, bench_model *m) {
    if (gpt2_config_preset(opt->model_config, &m->config) != 0)
        return cli_error(CMD, "--model-config '%s': expected 124M, 355M, 774M or 1558M",
                         opt->model_config);
    if (check_lengths(opt, &m->config) != 0) return 1;
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !*tmp) tmp = "/tmp";
    int len = snprintf(m->synthetic_dir, sizeof m->synthetic_dir, "%s/gpt2-bench-XXXXXX", tmp);
    if (len < 0 || (size_t)len >= sizeof m->synthetic_dir) {
        m->synthetic_dir[0] = '\0';
        return cli_error(CMD, "$TMPDIR is too long a path");
    }
    if (!mkdtemp(m->synthetic_dir)) {
        int e = errno;
        char shown[sizeof m->synthetic_dir];
        snprintf(shown, sizeof shown, "%s", m->synthetic_dir);
        m->synthetic_dir[0] = '\0';
        return cli_error(CMD, "cannot create a temporary folder %s: %s", shown, strerror(e));
    }
    fprintf(stderr, "gpt2 %s: writing random %s weights (seed %llu) to %s\n", CMD,
            opt->model_config, opt->seed, m->synthetic_dir);
    char err[GPT2_ERR_LEN];
    const double start = cli_now();
    if (synthetic_checkpoint_write(m->synthetic_dir, &m->config, opt->seed, err, sizeof err) != 0) {
        remove_synthetic(m);
        return cli_error(CMD, "%s", err);
    }
    m->write_seconds = cli_now() - start;
    m->model_dir = m->synthetic_dir;
    return 0;
}

/* Opens the checkpoint for the whole run. Returns 0, or 1 after the error. */
static int open_model(e2e_options *opt, bench_model *m) {
    char err[GPT2_ERR_LEN];
    const double start = cli_now();
    if (gpt2_checkpoint_open(&m->ckpt, m->model_dir, err, sizeof err) != 0)
        return cli_error(CMD, "%s", err);
    m->opened = true;
    m->open_seconds = cli_now() - start;
    remove_synthetic(m); /* the mapping stays readable, and nothing is left behind on failure */
    m->config = m->ckpt.config;
    return check_lengths(opt, &m->config);
}

static void bench_model_close(bench_model *m) {
    if (m->opened) gpt2_checkpoint_close(&m->ckpt);
    m->opened = false;
    remove_synthetic(m);
}

/* Blocks of KV for a sequence of n tokens, as the pool allocates them. */
static size_t kv_bytes(const kv_pool_shape *shape, long n) {
    const long blocks = (n + shape->block_size - 1) / shape->block_size;
    return (size_t)blocks * shape->block_size * kv_pool_bytes_per_token(shape);
}

/* The pool's budget: max_batch sequences of the run's length, or the cache comparison's one. */
static size_t kv_budget(const e2e_options *opt, const kv_variant *v, const gpt2_config *c) {
    const kv_pool_shape shape = {.n_layer = c->n_layer, .n_head = c->n_head,
                                 .block_size = KV_DEFAULT_BLOCK_SIZE,
                                 .format = v->int8_kv ? KV_FORMAT_INT8 : KV_FORMAT_FP16};
    const size_t batches = (size_t)opt->max_batch * kv_bytes(&shape, tokens_per_sequence(opt));
    const size_t cache = kv_bytes(&shape, max_cache_tokens(opt));
    return batches > cache ? batches : cache;
}

/* Builds the engine for one variant. Returns 0, or 1 after the error. */
static int create_engine(const e2e_options *opt, bench_model *m, const kv_variant *v,
                         cuda_model *cuda, double *load_seconds) {
    char err[GPT2_ERR_LEN];
    const int cache_rows = max_cache_tokens(opt);
    const cuda_model_options options = {.kv_mem_bytes = kv_budget(opt, v, &m->config),
                                        .max_tokens = opt->context > cache_rows ? opt->context
                                                                                : cache_rows,
                                        .max_seqs = opt->max_batch,
                                        .eager_decode = opt->no_graph,
                                        .unfused = v->unfused,
                                        .int8_kv = v->int8_kv};
    const double start = cli_now();
    if (cuda_model_create(cuda, &m->ckpt, &options, err, sizeof err) != 0)
        return cli_error(CMD, "%s", err);
    *load_seconds = cli_now() - start;
    m->weight_bytes = cuda->weights.bytes;
    if (cuda->max_seqs < opt->max_batch) {
        cuda_model_destroy(cuda);
        return cli_error(CMD, "the engine took %d sequences at once, fewer than --batch %d",
                         cuda->max_seqs, opt->max_batch);
    }
    return 0;
}
/* ---- the phases of a decode step ---- */

typedef enum {
    PHASE_ATTENTION,
    PHASE_MLP,
    PHASE_LAYERNORM,
    PHASE_HEAD,
    PHASE_OTHER,
    N_PHASES
} phase_kind;

static const char *const phase_keys[N_PHASES] = {"attention", "mlp", "layernorm",
                                                 "lm_head_sampling", "other"};
static const char *const phase_names[N_PHASES] = {
    "attention (qkv, KV write, attention, out proj)", "MLP (fc + GELU, proj)",
    "layernorm (ln_1, ln_2)", "LM head (ln_f, logits) + sampling",
    "other (embedding, copies, launch gaps, host)"};

/* The ranges the engine times (cuda_phase_timer in model/cuda_model.h), and their phases. */
#define N_RANGES 11
static const char *const range_names[N_RANGES] = {"embedding", "ln_1", "qkv", "kv_write",
                                                  "attention", "attn_proj", "ln_2", "mlp_fc",
                                                  "mlp_proj", "lm_head", "sample"};
static const phase_kind range_phase[N_RANGES] = {
    PHASE_OTHER, PHASE_LAYERNORM, PHASE_ATTENTION, PHASE_ATTENTION, PHASE_ATTENTION,
    PHASE_ATTENTION, PHASE_LAYERNORM, PHASE_MLP, PHASE_MLP, PHASE_HEAD, PHASE_HEAD};

/* The eager steps of one batch size, timed phase by phase. */
typedef struct {
    int steps;
    double *host_us;              /* [steps] each step on the host clock */
    double *phase_us[N_PHASES];   /* [steps] */
    double *range_us[N_RANGES];   /* [steps] each range summed over the layers */
    double *storage;              /* all of the above */
    sample_stats host;
    double phase_median[N_PHASES], range_median[N_RANGES]; /* over the steps */
} phase_result;

typedef struct {
    int batch;
    double prefill_ms;    /* the B prefills together, one sequence at a time */
    double *step_us;      /* [steps] each timed decode step */
    sample_stats step;    /* over step_us */
    double us_per_token;  /* step.median / batch */
    double tok_per_s;     /* batch / step.median */
    long nonfinite_rows;  /* rows whose logits held a NaN or an infinity (their id was replaced) */
    phase_result phases;
} batch_result;

/* No cache against the KV cache: runs x tokens samples each way. */
typedef struct {
    int runs, tokens;                  /* tokens: the longest --cache-tokens */
    double *no_cache_us, *cached_us;   /* [runs, tokens]: generated token i of run r at r T + i */
    double *no_cache_median, *cached_median; /* [tokens] per position, over the runs */
    double no_cache_total_ms[MAX_CACHE_TOKENS]; /* per --cache-tokens T: the median over the runs */
    double cached_total_ms[MAX_CACHE_TOKENS];   /* of the total of tokens 1..T */
    long same_ids;                     /* draws where the two runs picked the same id */
    double *storage;
} cache_result;

typedef struct {
    kv_variant kv;
    double load_seconds;               /* cuda_model_create: upload and sizing */
    int kv_pool_blocks, block_size, max_seqs;
    size_t kv_pool_bytes;
    size_t kv_bytes_per_token;         /* one token of one sequence, every layer, K and V */
    double *ttft_ms;                   /* [ttft_runs] */
    sample_stats ttft;
    batch_result batches[MAX_BATCHES];
    int n_done;                        /* batch sizes measured */
    cache_result cache;
    bool cache_done;
    double tpot_us;                    /* the median decode step at batch 1; NaN without one */
    const char *tpot_source;           /* which steps it is the median of */
} variant_result;

typedef struct {
    variant_result variants[MAX_VARIANTS];
    int n_done;
} e2e_result;

static void *alloc_doubles(size_t n) {
    double *p = calloc(n ? n : 1, sizeof *p);
    if (!p) cli_error(CMD, "out of memory");
    return p;
}

static void free_variant(variant_result *v) {
    for (int i = 0; i < MAX_BATCHES; i++) {
        free(v->batches[i].step_us);
        free(v->batches[i].phases.storage);
    }
    free(v->ttft_ms);
    free(v->cache.storage);
}

/* Token t of sequence seq's prompt: uniform over the vocabulary, from the seed. */
static int32_t prompt_token(uint64_t seed, int seq, int t, int vocab_size) {
    const uint64_t stream = splitmix64_mix(seed ^ 0x62656e6368ULL); /* "bench" */
    const uint64_t h = splitmix64_mix(stream + ((uint64_t)seq << 32) + (uint64_t)t);
    return (int32_t)(h % (uint64_t)vocab_size);
}

static void fill_prompt(int32_t *tokens, uint64_t seed, int seq, int n, int vocab_size) {
    for (int t = 0; t < n; t++) tokens[t] = prompt_token(seed, seq, t, vocab_size);
}

/* Prefill of sequence seq's prompt with the first draw, on the device. Returns 0 or 1 + error. */
static int prefill(cuda_model *model, int seq, const int32_t *prompt, int n, const sampler *smp,
                   int32_t *first_id) {
    char err[GPT2_ERR_LEN];
    if (cuda_model_forward(model, seq, prompt, n, false, NULL, smp, 0.0f, first_id, err,
                           sizeof err) != 0)
        return cli_error(CMD, "prefill of sequence %d: %s", seq, err);
    return 0;
}

/* One untimed prefill, then ttft_runs timed ones, each of a fresh sequence 0. */
static int measure_ttft(const e2e_options *opt, cuda_model *model, const sampler *smp,
                        const int32_t *prompt, variant_result *r, double *scratch) {
    int32_t id;
    for (int run = -1; run < opt->ttft_runs; run++) {
        const double start = cli_now();
        if (prefill(model, 0, prompt, opt->context, smp, &id) != 0) return 1;
        const double seconds = cli_now() - start;
        cuda_model_release(model, 0);
        if (run >= 0) r->ttft_ms[run] = 1e3 * seconds;
    }
    r->ttft = bench_stats_of(r->ttft_ms, opt->ttft_runs, scratch);
    return 0;
}

/* b sequences decoded together, each step fed the ids the last one drew. */
typedef struct {
    int b, steps_done;
    int *seqs;                   /* [b] */
    int32_t *tokens, *next;      /* [b] */
    float *uniforms;             /* [b] greedy: unused, 0 */
    bool *nonfinite;             /* [b] */
    long nonfinite_rows;
} decode_batch;

static int decode_step(const e2e_options *opt, cuda_model *model, const sampler *smp,
                       decode_batch *d, double *us) {
    char err[GPT2_ERR_LEN];
    const double start = cli_now();
    if (cuda_model_decode(model, d->b, d->seqs, d->tokens, smp, d->uniforms, d->next, d->nonfinite,
                          err, sizeof err) != 0)
        return cli_error(CMD, "batch %d, decode step %d: %s", d->b, d->steps_done, err);
    *us = 1e6 * (cli_now() - start);
    for (int i = 0; i < d->b; i++) {
        if (d->nonfinite[i]) d->nonfinite_rows++;
        d->tokens[i] = d->nonfinite[i] ? prompt_token(opt->seed, i, opt->context + d->steps_done,
                                                      model->config.vocab_size)
                                       : d->next[i];
    }
    d->steps_done++;
    return 0;
}

static int range_of(const char *name) {
    for (int r = 0; name && r < N_RANGES; r++)
        if (strcmp(range_names[r], name) == 0) return r;
    return -1;
}

/*
 * Step `step` of p from the events of one eager step: each range's device time, summed over the
 * layers, and "other": the embedding plus the host time outside the events' span.
 */
static int read_phases(const cuda_phase_timer *t, double host_us, phase_result *p, int step) {
    if (t->dropped || t->n < 2 || t->names[t->n - 1] != NULL)
        return cli_error(CMD, "phase timing: %d events recorded, %d dropped, %s", t->n,
                         t->dropped, t->n && !t->names[t->n - 1] ? "the end marked"
                                                                : "the end not marked");
    double range[N_RANGES] = {0}, span_us = 0;
    for (int i = 0; i + 1 < t->n; i++) {
        const int r = range_of(t->names[i]);
        if (r < 0) return cli_error(CMD, "phase timing: an unnamed or unknown range");
        float ms = 0.0f;
        CUDA_CHECK(cudaEventElapsedTime(&ms, t->events[i], t->events[i + 1]));
        range[r] += 1e3 * (double)ms;
        span_us += 1e3 * (double)ms;
    }
    p->host_us[step] = host_us;
    for (int k = 0; k < N_PHASES; k++) p->phase_us[k][step] = 0;
    for (int r = 0; r < N_RANGES; r++) {
        p->range_us[r][step] = range[r];
        p->phase_us[range_phase[r]][step] += range[r];
    }
    p->phase_us[PHASE_OTHER][step] += host_us - span_us;
    return 0;
}

static int alloc_phases(phase_result *p, int steps) {
    p->steps = steps;
    p->storage = alloc_doubles((size_t)steps * (1 + N_PHASES + N_RANGES));
    if (!p->storage) return 1;
    p->host_us = p->storage;
    for (int k = 0; k < N_PHASES; k++) p->phase_us[k] = p->storage + (size_t)(1 + k) * steps;
    for (int r = 0; r < N_RANGES; r++)
        p->range_us[r] = p->storage + (size_t)(1 + N_PHASES + r) * steps;
    return 0;
}

/* Eager decode steps with the phase timer attached (graph replays record no events). */
static int measure_phases(const e2e_options *opt, cuda_model *model, const sampler *smp,
                          decode_batch *d, cuda_phase_timer *timer, phase_result *p,
                          double *scratch) {
    if (alloc_phases(p, opt->phase_steps) != 0) return 1;
    const bool eager = model->eager_decode;
    model->eager_decode = true;
    model->phases = timer;
    int rc = 0;
    for (int s = 0; rc == 0 && s < p->steps; s++) {
        timer->n = timer->dropped = 0;
        double us = 0;
        rc = decode_step(opt, model, smp, d, &us);
        if (rc == 0) rc = read_phases(timer, us, p, s);
    }
    model->phases = NULL;
    model->eager_decode = eager;
    if (rc != 0) return rc;
    p->host = bench_stats_of(p->host_us, p->steps, scratch);
    for (int k = 0; k < N_PHASES; k++)
        p->phase_median[k] = bench_stats_of(p->phase_us[k], p->steps, scratch).median;
    for (int r = 0; r < N_RANGES; r++)
        p->range_median[r] = bench_stats_of(p->range_us[r], p->steps, scratch).median;
    return 0;
}

static int alloc_decode_batch(decode_batch *d, int b) {
    *d = (decode_batch){.b = b, .seqs = malloc((size_t)b * sizeof *d->seqs),
                        .tokens = malloc((size_t)b * sizeof *d->tokens),
                        .next = malloc((size_t)b * sizeof *d->next),
                        .uniforms = calloc((size_t)b, sizeof *d->uniforms),
                        .nonfinite = malloc((size_t)b * sizeof *d->nonfinite)};
    return d->seqs && d->tokens && d->next && d->uniforms && d->nonfinite
               ? 0 : cli_error(CMD, "out of memory");
}

static void free_decode_batch(decode_batch *d) {
    free(d->seqs);
    free(d->tokens);
    free(d->next);
    free(d->uniforms);
    free(d->nonfinite);
}

/*
 * Prefills b sequences, times the decode steps of all b together, then times --phase-steps
 * eager ones phase by phase; releases them all.
 */
static int measure_batch(const e2e_options *opt, cuda_model *model, const sampler *smp,
                         int32_t *prompt /* [context] scratch */, int b, batch_result *out,
                         cuda_phase_timer *timer, double *scratch) {
    decode_batch d;
    int rc = alloc_decode_batch(&d, b);
    out->batch = b;
    out->step_us = rc == 0 ? alloc_doubles((size_t)opt->steps) : NULL;
    if (!out->step_us) rc = 1;
    const double prefill_start = cli_now();
    for (int i = 0; rc == 0 && i < b; i++) {
        d.seqs[i] = i;
        fill_prompt(prompt, opt->seed, i, opt->context, model->config.vocab_size);
        rc = prefill(model, i, prompt, opt->context, smp, &d.tokens[i]);
    }
    out->prefill_ms = 1e3 * (cli_now() - prefill_start);
    for (int step = 0; rc == 0 && step < opt->warmup + opt->steps; step++) {
        double us = 0;
        rc = decode_step(opt, model, smp, &d, &us);
        if (step >= opt->warmup) out->step_us[step - opt->warmup] = us;
    }
    if (rc == 0 && opt->phase_steps > 0)
        rc = measure_phases(opt, model, smp, &d, timer, &out->phases, scratch);
    if (rc == 0) {
        out->step = bench_stats_of(out->step_us, opt->steps, scratch);
        out->us_per_token = out->step.median / b;
        out->tok_per_s = b / (1e-6 * out->step.median);
        out->nonfinite_rows = d.nonfinite_rows;
        if (out->nonfinite_rows)
            fprintf(stderr, "gpt2 %s: warning: batch %d: %ld rows of logits were not finite "
                    "(random weights); their ids were replaced, the timings stand\n", CMD, b,
                    out->nonfinite_rows);
    }
    cuda_model_reset(model);
    free_decode_batch(&d);
    return rc;
}

/* ---- no cache against the KV cache ---- */

/*
 * One run each way over generated tokens 1..T of a sequence holding tokens[0, i) when token i
 * is drawn: no_cache[i - 1] prefills all of them into a released sequence, cached[i - 1]
 * decodes tokens[i - 1] after the rest (token 1, the prompt's prefill, is the same call in both).
 */
static int cache_run(cuda_model *model, const sampler *smp, const int32_t *tokens /* [T] */,
                     int T, double *no_cache /* [T] */, double *cached /* [T] */,
                     int32_t *ids /* [T] scratch */, long *same_ids) {
    char err[GPT2_ERR_LEN];
    for (int i = 1; i <= T; i++) {
        cuda_model_release(model, 0);
        const double start = cli_now();
        if (cuda_model_forward(model, 0, tokens, i, false, NULL, smp, 0.0f, &ids[i - 1], err,
                               sizeof err) != 0)
            return cli_error(CMD, "no cache, generated token %d: %s", i, err);
        no_cache[i - 1] = 1e6 * (cli_now() - start);
    }
    cuda_model_release(model, 0);
    const int seq = 0;
    const float uniform = 0.0f;
    for (int i = 1; i <= T; i++) {
        int32_t id = -1;
        bool nonfinite = false;
        const double start = cli_now();
        const int rc = i == 1 ? cuda_model_forward(model, 0, tokens, 1, false, NULL, smp, 0.0f,
                                                   &id, err, sizeof err)
                              : cuda_model_decode(model, 1, &seq, &tokens[i - 1], smp, &uniform,
                                                  &id, &nonfinite, err, sizeof err);
        if (rc != 0) return cli_error(CMD, "KV cache, generated token %d: %s", i, err);
        cached[i - 1] = 1e6 * (cli_now() - start);
        *same_ids += !nonfinite && id == ids[i - 1];
    }
    cuda_model_release(model, 0);
    return 0;
}

static int alloc_cache(cache_result *c, int runs, int T) {
    *c = (cache_result){.runs = runs, .tokens = T};
    const size_t samples = (size_t)runs * T;
    c->storage = alloc_doubles(2 * samples + 2 * (size_t)T);
    if (!c->storage) return 1;
    c->no_cache_us = c->storage;
    c->cached_us = c->no_cache_us + samples;
    c->no_cache_median = c->cached_us + samples;
    c->cached_median = c->no_cache_median + T;
    return 0;
}

/* Per position the median over the runs; per --cache-tokens T the median total of 1..T. */
static void summarize_cache(const e2e_options *opt, cache_result *c, double *scratch) {
    const int T = c->tokens, R = c->runs;
    double column[2][1000];
    for (int i = 0; i < T; i++) {
        for (int r = 0; r < R; r++) {
            column[0][r] = c->no_cache_us[(size_t)r * T + i];
            column[1][r] = c->cached_us[(size_t)r * T + i];
        }
        c->no_cache_median[i] = bench_stats_of(column[0], R, scratch).median;
        c->cached_median[i] = bench_stats_of(column[1], R, scratch).median;
    }
    for (int k = 0; k < opt->n_cache_tokens; k++) {
        for (int r = 0; r < R; r++) {
            column[0][r] = column[1][r] = 0;
            for (int i = 0; i < opt->cache_tokens[k]; i++) {
                column[0][r] += 1e-3 * c->no_cache_us[(size_t)r * T + i];
                column[1][r] += 1e-3 * c->cached_us[(size_t)r * T + i];
            }
        }
        c->no_cache_total_ms[k] = bench_stats_of(column[0], R, scratch).median;
        c->cached_total_ms[k] = bench_stats_of(column[1], R, scratch).median;
    }
}

static int measure_cache(const e2e_options *opt, cuda_model *model, const sampler *smp,
                         cache_result *c, double *scratch) {
    const int T = max_cache_tokens(opt);
    int32_t *tokens = malloc((size_t)T * sizeof *tokens), *ids = malloc((size_t)T * sizeof *ids);
    int rc = tokens && ids ? alloc_cache(c, opt->cache_runs, T) : cli_error(CMD, "out of memory");
    if (rc == 0) fill_prompt(tokens, opt->seed, MAX_BATCH, T, model->config.vocab_size);
    for (int r = 0; rc == 0 && r < c->runs; r++)
        rc = cache_run(model, smp, tokens, T, c->no_cache_us + (size_t)r * T,
                       c->cached_us + (size_t)r * T, ids, &c->same_ids);
    if (rc == 0) summarize_cache(opt, c, scratch);
    free(tokens);
    free(ids);
    return rc;
}

/* TPOT: the batch-1 decode steps, else the cached run's decode steps (tokens 2..T). */
static void settle_tpot(variant_result *v, double *scratch) {
    v->tpot_us = NAN;
    v->tpot_source = "none (no batch 1, no cache comparison)";
    for (int i = 0; i < v->n_done; i++)
        if (v->batches[i].batch == 1) {
            v->tpot_us = v->batches[i].step.median;
            v->tpot_source = "decode steps at batch 1";
            return;
        }
    const cache_result *c = &v->cache;
    if (!v->cache_done || c->tokens < 2) return;
    double *steps = alloc_doubles((size_t)c->runs * (c->tokens - 1));
    double *sorted = alloc_doubles((size_t)c->runs * (c->tokens - 1));
    int n = 0;
    for (int r = 0; steps && sorted && r < c->runs; r++)
        for (int i = 1; i < c->tokens; i++) steps[n++] = c->cached_us[(size_t)r * c->tokens + i];
    if (n > 0) {
        v->tpot_us = bench_stats_of(steps, n, sorted).median;
        v->tpot_source = "the KV cache run's decode steps (batch 1)";
    }
    free(steps);
    free(sorted);
}
/* ---- the table ---- */

/* "fp16 KV, fused kernels", "int8 KV, unfused kernels". */
static void variant_label(const kv_variant *v, char *out, size_t len) {
    snprintf(out, len, "%s KV, %s kernels", v->int8_kv ? "int8" : "fp16",
             v->unfused ? "unfused" : "fused");
}

/* "124M (random weights, seed 1)" or the folder. */
static void describe_model(const e2e_options *opt, const bench_model *m, char *out, size_t len) {
    if (opt->model_config)
        snprintf(out, len, "%s (random weights, seed %llu)", opt->model_config, opt->seed);
    else
        snprintf(out, len, "%s", m->model_dir);
}

static void describe_settings(const e2e_options *opt, char *out, size_t len) {
    snprintf(out, len, "context %d, %d timed decode steps after %d warm-up, %s, greedy",
             opt->context, opt->steps, opt->warmup,
             opt->no_graph ? "eager launches" : "CUDA graphs");
}

static void print_phases(const e2e_options *opt, const variant_result *v) {
    if (opt->phase_steps == 0) return;
    printf("phases of an eager decode step (median over %d steps; us): device time from CUDA "
           "events, other = the rest of the host-timed step\n", opt->phase_steps);
    printf("%7s %12s %10s %10s %10s %10s %10s\n", "batch", "eager step", "attention", "mlp",
           "layernorm", "lm head", "other");
    for (int i = 0; i < v->n_done; i++) {
        const phase_result *p = &v->batches[i].phases;
        printf("%7d %12.1f", v->batches[i].batch, p->host.median);
        for (int k = 0; k < N_PHASES; k++) printf(" %10.1f", p->phase_median[k]);
        putchar('\n');
    }
}

static void print_cache(const e2e_options *opt, const variant_result *v) {
    if (!v->cache_done) return;
    const cache_result *c = &v->cache;
    printf("no cache against the KV cache (1-token prompt, median of %d runs): total ms to "
           "generate T tokens\n", c->runs);
    printf("%7s %14s %14s %10s\n", "T", "no cache ms", "KV cache ms", "speedup");
    for (int k = 0; k < opt->n_cache_tokens; k++)
        printf("%7d %14.2f %14.2f %9.2fx\n", opt->cache_tokens[k], c->no_cache_total_ms[k],
               c->cached_total_ms[k], c->no_cache_total_ms[k] / c->cached_total_ms[k]);
    printf("the two drew the same id at %ld of %d tokens (fp16 sums in another order may "
           "differ)\n", c->same_ids, c->runs * c->tokens);
}

static void print_variant(const e2e_options *opt, const variant_result *v) {
    char label[64];
    variant_label(&v->kv, label, sizeof label);
    printf("\n== %s: KV pool of %d blocks of %d tokens (%.1f MiB), load %.2f s\n", label,
           v->kv_pool_blocks, v->block_size, v->kv_pool_bytes / 1048576.0, v->load_seconds);
    printf("TTFT (prefill of %d tokens + first draw): median %.3f ms, p90 %.3f ms over %d runs\n",
           opt->context, v->ttft.median, v->ttft.p90, opt->ttft_runs);
    if (isfinite(v->tpot_us))
        printf("TPOT: %.1f us (median of the %s), %.1f tok/s for one sequence\n", v->tpot_us,
               v->tpot_source, 1e6 / v->tpot_us);
    printf("%7s %16s %13s %12s %13s %14s\n", "batch", "step median us", "step p90 us", "us/token",
           "tok/s", "prefill ms");
    for (int i = 0; i < v->n_done; i++) {
        const batch_result *b = &v->batches[i];
        printf("%7d %16.1f %13.1f %12.2f %13.1f %14.2f\n", b->batch, b->step.median, b->step.p90,
               b->us_per_token, b->tok_per_s, b->prefill_ms);
    }
    print_phases(opt, v);
    print_cache(opt, v);
}

static void print_table(const e2e_options *opt, const bench_model *m, const device_info *d,
                        const e2e_result *r) {
    char model[4200], settings[256];
    describe_model(opt, m, model, sizeof model);
    describe_settings(opt, settings, sizeof settings);
    if (bench_emulated)
        printf("note: emulation build: these are CPU timings of the SIMT emulator, "
               "not GPU timings\n");
    printf("gpt2 bench e2e: %s; %d layers, n_embd %d, vocab %d\n", model, m->config.n_layer,
           m->config.n_embd, m->config.vocab_size);
    printf("device: %s, %d SMs", d->name, d->sm_count);
    if (d->sm_clock_mhz > 0) printf(", SM clock max %d MHz", d->sm_clock_mhz);
    if (d->memory_clock_mhz > 0) printf(", memory clock max %d MHz", d->memory_clock_mhz);
    putchar('\n');
    printf("settings: %s\n", settings);
    if (m->write_seconds > 0) printf("synthetic checkpoint written in %.1f s\n", m->write_seconds);
    printf("checkpoint opened in %.2f s\n", m->open_seconds);
    for (int i = 0; i < r->n_done; i++) print_variant(opt, &r->variants[i]);
}

/* ---- the result JSON ---- */

static void write_phases(result_writer *w, const variant_result *v) {
    result_begin_array(w);
    for (int i = 0; i < v->n_done; i++) {
        const phase_result *p = &v->batches[i].phases;
        result_begin_object(w);
        result_member_int(w, "batch", v->batches[i].batch);
        result_member_int(w, "steps", p->steps);
        bench_write_stats(w, "step_us", &p->host);
        result_key(w, "phase_us");
        result_begin_object(w);
        for (int k = 0; k < N_PHASES; k++) result_member_number(w, phase_keys[k], p->phase_median[k]);
        result_end_object(w);
        result_key(w, "range_us");
        result_begin_object(w);
        for (int k = 0; k < N_RANGES; k++) result_member_number(w, range_names[k], p->range_median[k]);
        result_end_object(w);
        result_key(w, "step_samples_us");
        result_number_array(w, p->host_us, (size_t)p->steps);
        result_end_object(w);
    }
    result_end_array(w);
}

static void write_sample_rows(result_writer *w, const double *samples, int runs, int tokens) {
    result_begin_array(w);
    for (int r = 0; r < runs; r++) result_number_array(w, samples + (size_t)r * tokens, (size_t)tokens);
    result_end_array(w);
}

static void write_cache(result_writer *w, const e2e_options *opt, const cache_result *c) {
    result_begin_object(w);
    result_member_int(w, "prompt_tokens", 1);
    result_member_int(w, "runs", c->runs);
    result_member_int(w, "tokens", c->tokens);
    result_key(w, "no_cache_us");
    result_number_array(w, c->no_cache_median, (size_t)c->tokens);
    result_key(w, "cached_us");
    result_number_array(w, c->cached_median, (size_t)c->tokens);
    result_key(w, "no_cache_samples_us");
    write_sample_rows(w, c->no_cache_us, c->runs, c->tokens);
    result_key(w, "cached_samples_us");
    write_sample_rows(w, c->cached_us, c->runs, c->tokens);
    result_key(w, "totals");
    result_begin_array(w);
    for (int k = 0; k < opt->n_cache_tokens; k++) {
        result_begin_object(w);
        result_member_int(w, "tokens", opt->cache_tokens[k]);
        result_member_number(w, "no_cache_ms", c->no_cache_total_ms[k]);
        result_member_number(w, "cached_ms", c->cached_total_ms[k]);
        result_member_number(w, "speedup", c->no_cache_total_ms[k] / c->cached_total_ms[k]);
        result_end_object(w);
    }
    result_end_array(w);
    result_member_int(w, "same_ids", c->same_ids);
    result_end_object(w);
}

static void write_decode(result_writer *w, const e2e_options *opt, const variant_result *v) {
    result_begin_array(w);
    for (int i = 0; i < v->n_done; i++) {
        const batch_result *b = &v->batches[i];
        result_begin_object(w);
        result_member_int(w, "batch", b->batch);
        bench_write_stats(w, "step_us", &b->step);
        result_member_number(w, "us_per_token", b->us_per_token);
        result_member_number(w, "tok_per_s", b->tok_per_s);
        result_member_number(w, "prefill_ms", b->prefill_ms);
        result_member_int(w, "nonfinite_rows", b->nonfinite_rows);
        result_key(w, "step_us");
        result_number_array(w, b->step_us, (size_t)opt->steps);
        result_end_object(w);
    }
    result_end_array(w);
}

static void write_variant(result_writer *w, const e2e_options *opt, const variant_result *v) {
    char label[64], name[96];
    variant_label(&v->kv, label, sizeof label);
    snprintf(name, sizeof name, "gpt2-cuda, %s", label);
    result_begin_object(w);
    result_member_string(w, "name", name);
    result_member_string(w, "engine", "gpt2-cuda");
    result_member_string(w, "kv_format", v->kv.int8_kv ? "int8" : "fp16");
    result_key(w, "fused");
    result_bool(w, !v->kv.unfused);
    result_key(w, "decode_graph");
    result_bool(w, !opt->no_graph);
    result_member_number(w, "load_s", v->load_seconds);
    result_member_int(w, "block_size", v->block_size);
    result_member_int(w, "kv_pool_blocks", v->kv_pool_blocks);
    result_member_int(w, "kv_pool_bytes", (long long)v->kv_pool_bytes);
    result_member_int(w, "max_seqs", v->max_seqs);
    result_key(w, "ttft");
    result_begin_object(w);
    result_member_int(w, "prompt_tokens", opt->context);
    bench_write_stats(w, "ms", &v->ttft);
    result_key(w, "samples_ms");
    result_number_array(w, v->ttft_ms, (size_t)opt->ttft_runs);
    result_end_object(w);
    result_key(w, "tpot");
    result_begin_object(w);
    result_member_number(w, "median_us", v->tpot_us);
    result_member_number(w, "tok_per_s", 1e6 / v->tpot_us);
    result_member_string(w, "source", v->tpot_source);
    result_end_object(w);
    result_key(w, "decode");
    write_decode(w, opt, v);
    result_key(w, "phases");
    write_phases(w, v);
    result_key(w, "cache");
    if (v->cache_done) write_cache(w, opt, &v->cache);
    else result_null(w);
    result_end_object(w);
}

/* ---- the charts ---- */

typedef struct {
    const e2e_options *opt;
    const e2e_result *r;
    char subtitle[4800];
} chart_context;

/* The series name of variant v: "fp16 KV, fused kernels" plus a suffix ("" or ", no cache"). */
static void series_name(const variant_result *v, const char *suffix, char *out, size_t len) {
    char label[64];
    variant_label(&v->kv, label, sizeof label);
    snprintf(out, len, "gpt2-cuda, %s%s", label, suffix);
}

static void write_series(result_writer *w, const char *name, const double *x, const double *y,
                         int n) {
    result_begin_object(w);
    result_member_string(w, "name", name);
    if (x) {
        result_key(w, "x");
        result_number_array(w, x, (size_t)n);
    }
    result_key(w, "y");
    result_number_array(w, y, (size_t)n);
    result_end_object(w);
}

static void log_axes(result_writer *w, bool x_log, bool y_log) {
    result_key(w, "x_log");
    result_bool(w, x_log);
    result_key(w, "y_log");
    result_bool(w, y_log);
}

/* tok/s (which 0) or median step ms (which 1) against batch size, a line per variant. */
static void batch_chart(result_writer *w, const chart_context *cc, int which) {
    const e2e_options *opt = cc->opt;
    if (which == 0)
        bench_chart_begin(w, THROUGHPUT_CHART, "line", "decode throughput against batch size",
                          cc->subtitle, "batch size (sequences decoded together, log scale)",
                          "tokens/s (all sequences, log scale)");
    else
        bench_chart_begin(w, LATENCY_CHART, "line", "decode step time against batch size",
                          cc->subtitle, "batch size (sequences decoded together, log scale)",
                          "median step time, ms (log scale)");
    log_axes(w, true, true);
    double x[MAX_BATCHES], y[MAX_BATCHES];
    for (int i = 0; i < opt->n_batches; i++) x[i] = opt->batches[i];
    result_key(w, "x_ticks");
    result_number_array(w, x, (size_t)opt->n_batches);
    result_key(w, "series");
    result_begin_array(w);
    for (int k = 0; k < cc->r->n_done; k++) {
        const variant_result *v = &cc->r->variants[k];
        for (int i = 0; i < v->n_done; i++)
            y[i] = which == 0 ? v->batches[i].tok_per_s : 1e-3 * v->batches[i].step.median;
        char name[128];
        series_name(v, "", name, sizeof name);
        write_series(w, name, x, y, v->n_done);
    }
    result_end_array(w);
    result_end_object(w);
}

/* Stacked bars: each batch size's eager step split into its phases, per variant. */
static void phase_chart(result_writer *w, const chart_context *cc) {
    const e2e_result *r = cc->r;
    bench_chart_begin(w, PHASE_CHART, "bar", "where a decode step's time goes, by phase",
                      cc->subtitle, r->n_done > 1 ? "batch size, KV setting" : "batch size",
                      "us per decode step (eager launches; median per phase)");
    result_key(w, "categories");
    result_begin_array(w);
    for (int k = 0; k < r->n_done; k++)
        for (int i = 0; i < r->variants[k].n_done; i++) {
            char name[96], label[64];
            variant_label(&r->variants[k].kv, label, sizeof label);
            if (r->n_done > 1)
                snprintf(name, sizeof name, "batch %d, %s", r->variants[k].batches[i].batch, label);
            else
                snprintf(name, sizeof name, "batch %d", r->variants[k].batches[i].batch);
            result_string(w, name);
        }
    result_end_array(w);
    result_key(w, "stacked");
    result_bool(w, true);
    result_key(w, "series");
    result_begin_array(w);
    for (int p = 0; p < N_PHASES; p++) {
        result_begin_object(w);
        result_member_string(w, "name", phase_names[p]);
        result_key(w, "y");
        result_begin_array(w);
        for (int k = 0; k < r->n_done; k++)
            for (int i = 0; i < r->variants[k].n_done; i++)
                result_number(w, r->variants[k].batches[i].phases.phase_median[p]);
        result_end_array(w);
        result_end_object(w);
    }
    result_end_array(w);
    result_end_object(w);
}

/* Per generated token, its time by position: a no-cache and a KV cache line per variant. */
static void position_chart(result_writer *w, const chart_context *cc) {
    const e2e_result *r = cc->r;
    const int T = r->variants[0].cache.tokens;
    bench_chart_begin(w, POSITION_CHART, "line",
                      "time per generated token by position: no cache against the KV cache",
                      cc->subtitle, "tokens in the sequence when the token is drawn (log scale)",
                      "us per generated token (median over runs, log scale)");
    log_axes(w, true, true);
    double *x = alloc_doubles((size_t)T);
    for (int i = 0; x && i < T; i++) x[i] = i + 1;
    result_key(w, "series");
    result_begin_array(w);
    for (int k = 0; x && k < r->n_done; k++) {
        char name[128];
        series_name(&r->variants[k], ", no cache (prefill of the whole prefix)", name, sizeof name);
        write_series(w, name, x, r->variants[k].cache.no_cache_median, T);
        series_name(&r->variants[k], ", KV cache (one decode step)", name, sizeof name);
        write_series(w, name, x, r->variants[k].cache.cached_median, T);
    }
    result_end_array(w);
    result_end_object(w);
    free(x);
}

/* Total time for T tokens both ways (which 0), or the cache's speedup (which 1), against T. */
static void cache_total_chart(result_writer *w, const chart_context *cc, int which) {
    const e2e_options *opt = cc->opt;
    const e2e_result *r = cc->r;
    if (which == 0)
        bench_chart_begin(w, CACHE_TOTAL_CHART, "line",
                          "time to generate T tokens: no cache against the KV cache",
                          cc->subtitle, "generated tokens T (log scale)",
                          "total ms (median over runs, log scale)");
    else
        bench_chart_begin(w, CACHE_SPEEDUP_CHART, "line",
                          "speedup of the KV cache over recomputing the prefix", cc->subtitle,
                          "generated tokens T (log scale)",
                          "no-cache time / KV cache time (times faster, log scale)");
    log_axes(w, true, true);
    if (which == 1) {
        result_key(w, "reference_lines");
        result_begin_array(w);
        result_begin_object(w);
        result_member_number(w, "y", 1.0);
        result_member_string(w, "label", "1x: no speedup");
        result_end_object(w);
        result_end_array(w);
    }
    double x[MAX_CACHE_TOKENS], y[MAX_CACHE_TOKENS];
    for (int i = 0; i < opt->n_cache_tokens; i++) x[i] = opt->cache_tokens[i];
    result_key(w, "x_ticks");
    result_number_array(w, x, (size_t)opt->n_cache_tokens);
    result_key(w, "series");
    result_begin_array(w);
    for (int k = 0; k < r->n_done; k++) {
        const cache_result *c = &r->variants[k].cache;
        char name[128];
        for (int side = 0; side < (which == 0 ? 2 : 1); side++) {
            for (int i = 0; i < opt->n_cache_tokens; i++)
                y[i] = which == 1 ? c->no_cache_total_ms[i] / c->cached_total_ms[i]
                       : side == 0 ? c->no_cache_total_ms[i] : c->cached_total_ms[i];
            series_name(&r->variants[k], which == 1 ? "" : side == 0 ? ", no cache" : ", KV cache",
                        name, sizeof name);
            write_series(w, name, x, y, opt->n_cache_tokens);
        }
    }
    result_end_array(w);
    result_end_object(w);
}

/*
 * The memory-latency pareto: per variant, each batch size at (the KV its sequences hold at the
 * end of the run, the time per generated token). Lower and to the left is better.
 */
static void pareto_chart(result_writer *w, const chart_context *cc) {
    const long tokens = tokens_per_sequence(cc->opt);
    bench_chart_begin(w, PARETO_CHART, "line",
                      "KV memory against time per token, a point per batch size",
                      cc->subtitle, "KV held by the batch's sequences, MiB (log scale)",
                      "us per generated token (median step / batch, log scale)");
    log_axes(w, true, true);
    result_key(w, "series");
    result_begin_array(w);
    for (int k = 0; k < cc->r->n_done; k++) {
        const variant_result *v = &cc->r->variants[k];
        double x[MAX_BATCHES], y[MAX_BATCHES];
        for (int i = 0; i < v->n_done; i++) {
            x[i] = (double)v->batches[i].batch * tokens * v->kv_bytes_per_token / (1024.0 * 1024.0);
            y[i] = v->batches[i].us_per_token;
        }
        char name[128];
        series_name(v, "", name, sizeof name);
        write_series(w, name, x, y, v->n_done);
    }
    result_end_array(w);
    result_end_object(w);
}

static void write_charts(result_writer *w, const chart_context *cc) {
    result_begin_array(w);
    batch_chart(w, cc, 0);
    batch_chart(w, cc, 1);
    pareto_chart(w, cc);
    if (cc->opt->phase_steps > 0) phase_chart(w, cc);
    if (cc->r->variants[0].cache_done) {
        position_chart(w, cc);
        cache_total_chart(w, cc, 0);
        cache_total_chart(w, cc, 1);
    }
    result_end_array(w);
}

static void write_model(result_writer *w, const e2e_options *opt, const bench_model *m) {
    result_begin_object(w);
    result_key(w, "config");
    if (opt->model_config) result_string(w, opt->model_config);
    else result_null(w);
    result_key(w, "dir");
    if (opt->model_config) result_null(w);
    else result_string(w, m->model_dir);
    result_key(w, "seed");
    if (opt->model_config) bench_write_seed(w, opt->seed);
    else result_null(w);
    result_member_int(w, "n_layer", m->config.n_layer);
    result_member_int(w, "n_head", m->config.n_head);
    result_member_int(w, "n_embd", m->config.n_embd);
    result_member_int(w, "n_positions", m->config.n_positions);
    result_member_int(w, "vocab_size", m->config.vocab_size);
    result_member_int(w, "weight_bytes", (long long)m->weight_bytes);
    result_member_number(w, "synthetic_write_s", m->write_seconds);
    result_member_number(w, "open_s", m->open_seconds);
    result_end_object(w);
}

static void write_settings(result_writer *w, const e2e_options *opt) {
    result_begin_object(w);
    result_member_int(w, "context", opt->context);
    result_member_int(w, "steps", opt->steps);
    result_member_int(w, "warmup", opt->warmup);
    result_member_int(w, "ttft_runs", opt->ttft_runs);
    result_member_int(w, "phase_steps", opt->phase_steps);
    result_member_int(w, "cache_runs", opt->cache_runs);
    result_key(w, "cache_tokens");
    bench_write_int_array(w, opt->cache_tokens, opt->n_cache_tokens);
    result_key(w, "batches");
    bench_write_int_array(w, opt->batches, opt->n_batches);
    result_key(w, "prompt_seed");
    bench_write_seed(w, opt->seed);
    result_key(w, "decode_graph");
    result_bool(w, !opt->no_graph);
    result_key(w, "compare_kv");
    result_bool(w, opt->compare_kv);
    result_member_string(w, "sampler", "greedy, on the device");
    result_member_string(w, "clock", "host monotonic clock (clock_gettime) around each call; "
                         "phases: CUDA events inside eager steps");
    result_end_object(w);
}

static void write_result(result_writer *w, const e2e_options *opt, const bench_model *m,
                         const device_info *d, const e2e_result *r, int argc, char **argv) {
    chart_context cc = {.opt = opt, .r = r};
    char model[4200], settings[256];
    describe_model(opt, m, model, sizeof model);
    describe_settings(opt, settings, sizeof settings);
    snprintf(cc.subtitle, sizeof cc.subtitle, "%s; gpt2-cuda, %s; %s", d->name, model, settings);
    bench_begin_result(w, "e2e", NULL,
                       "the engine end to end: TTFT (one sequence's prefill plus its first draw "
                       "on the device); per batch size, the prompts prefilled one by one, then "
                       "greedy decode steps of all of them together, each timed on the host's "
                       "monotonic clock around cuda_model_decode, which returns after the stream "
                       "synchronizes and the ids are on the host; then eager steps with CUDA "
                       "events at each phase; then no cache (the whole prefix prefilled per "
                       "token) against the KV cache (one decode step per token) from a 1-token "
                       "prompt",
                       argc, argv);
    result_member_int(w, "schema", 2);
    result_key(w, "model");
    write_model(w, opt, m);
    result_key(w, "settings");
    write_settings(w, opt);
    result_key(w, "variants");
    result_begin_array(w);
    for (int i = 0; i < r->n_done; i++) write_variant(w, opt, &r->variants[i]);
    result_end_array(w);
    result_key(w, "charts");
    write_charts(w, &cc);
    result_end_object(w);
}

/* What write_result needs, as bench_save_result passes it. */
typedef struct {
    const e2e_options *opt;
    const bench_model *m;
    const device_info *d;
    const e2e_result *r;
    int argc;
    char **argv;
} e2e_output;

static void write_output(result_writer *w, const void *ctx) {
    const e2e_output *o = ctx;
    write_result(w, o->opt, o->m, o->d, o->r, o->argc, o->argv);
}

/* ---- bench e2e ---- */

/* Events for one step's phases: embedding, 8 per layer, lm_head, sample, the end. */
static int create_phase_timer(cuda_phase_timer *t, int n_layer) {
    *t = (cuda_phase_timer){.capacity = 8 * n_layer + 8};
    t->events = calloc((size_t)t->capacity, sizeof *t->events);
    t->names = calloc((size_t)t->capacity, sizeof *t->names);
    if (!t->events || !t->names) return cli_error(CMD, "out of memory");
    for (int i = 0; i < t->capacity; i++) CUDA_CHECK(cudaEventCreate(&t->events[i]));
    return 0;
}

static void destroy_phase_timer(cuda_phase_timer *t) {
    for (int i = 0; t->events && i < t->capacity; i++)
        if (t->events[i]) CUDA_CHECK(cudaEventDestroy(t->events[i]));
    free(t->events);
    free(t->names);
}

/* Everything for one variant, on a model of its own. */
static int measure_variant(const e2e_options *opt, bench_model *m, const kv_variant *kv,
                           const sampler *smp, int32_t *prompt, variant_result *v,
                           double *scratch) {
    cuda_model cuda;
    *v = (variant_result){.kv = *kv};
    if (create_engine(opt, m, kv, &cuda, &v->load_seconds) != 0) return 1;
    const kv_pool_shape *pool = &cuda.kv.shape;
    v->block_size = pool->block_size;
    v->kv_pool_blocks = pool->num_blocks;
    v->kv_pool_bytes = (size_t)pool->num_blocks * kv_pool_bytes_per_block(pool);
    v->kv_bytes_per_token = kv_pool_bytes_per_token(pool);
    v->max_seqs = cuda.max_seqs;
    cuda_phase_timer timer = {0};
    v->ttft_ms = alloc_doubles((size_t)opt->ttft_runs);
    int rc = v->ttft_ms ? create_phase_timer(&timer, m->config.n_layer) : 1;
    if (rc == 0) {
        fill_prompt(prompt, opt->seed, 0, opt->context, m->config.vocab_size);
        rc = measure_ttft(opt, &cuda, smp, prompt, v, scratch);
    }
    for (int i = 0; rc == 0 && i < opt->n_batches; i++) {
        rc = measure_batch(opt, &cuda, smp, prompt, opt->batches[i], &v->batches[i], &timer,
                           scratch);
        if (rc == 0) v->n_done = i + 1;
    }
    if (rc == 0 && opt->cache_runs > 0) {
        rc = measure_cache(opt, &cuda, smp, &v->cache, scratch);
        v->cache_done = rc == 0;
    }
    if (rc == 0) settle_tpot(v, scratch);
    destroy_phase_timer(&timer);
    cuda_model_destroy(&cuda);
    return rc;
}

static int run_e2e(const e2e_options *opt, bench_model *m, e2e_result *r, int argc, char **argv) {
    sampler smp;
    const sampler_params greedy = {.temperature = 0.0f, .top_k = 0, .top_p = 1.0f,
                                   .seed = opt->seed};
    int n_scratch = opt->steps > opt->ttft_runs ? opt->steps : opt->ttft_runs;
    if (opt->phase_steps > n_scratch) n_scratch = opt->phase_steps;
    if (opt->cache_runs > n_scratch) n_scratch = opt->cache_runs;
    double *scratch = malloc((size_t)n_scratch * sizeof *scratch);
    int32_t *prompt = malloc((size_t)opt->context * sizeof *prompt);
    if (!scratch || !prompt || sampler_create(&smp, m->config.vocab_size, greedy) != 0) {
        free(scratch);
        free(prompt);
        return cli_error(CMD, "out of memory"); /* sampler_create is last: nothing of it to free */
    }
    int rc = 0;
    for (int i = 0; rc == 0 && i < opt->n_variants; i++) {
        rc = measure_variant(opt, m, &opt->variants[i], &smp, prompt, &r->variants[i], scratch);
        if (rc == 0) r->n_done = i + 1;
    }
    if (rc == 0) {
        const device_info d = bench_read_device();
        print_table(opt, m, &d, r);
        const e2e_output out = {opt, m, &d, r, argc, argv};
        if (opt->out_dir) rc = bench_save_result(opt->out_dir, RESULT_FILE, write_output, &out);
    }
    sampler_destroy(&smp);
    free(scratch);
    free(prompt);
    return rc;
}

int cmd_bench_e2e(int argc, char **argv, int record_argc, char **record_argv) {
    e2e_options opt;
    int rc = parse_options(argc, argv, &opt);
    if (rc) return rc == 2 ? 0 : rc;
    if (gpt2_cuda_device_count() == 0)
        return cli_error(CMD, "no CUDA device (and this is not the emulation build)");
    /* The output folder before any work: a bad -o fails at once. */
    if (opt.out_dir && cli_make_folders(opt.out_dir) != 0)
        return cli_error(CMD, "cannot create %s: %s", opt.out_dir, strerror(errno));
    bench_model m = {0};
    if (opt.model_config) rc = write_synthetic(&opt, &m);
    else if (!(m.model_dir = cli_model_dir(CMD, opt.model_flag))) rc = 1;
    if (rc == 0) rc = open_model(&opt, &m);
    e2e_result r = {0};
    if (rc == 0) rc = run_e2e(&opt, &m, &r, record_argc, record_argv);
    for (int i = 0; i < MAX_VARIANTS; i++) free_variant(&r.variants[i]);
    bench_model_close(&m);
    return rc;
}
