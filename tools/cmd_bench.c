/*
 * gpt2 bench: the engine's benchmarks (issue 14). This file has the first of them, and the
 * dispatch to the others (bench ops: tools/bench_ops.c, which shares the helpers that
 * tools/bench_ops.h declares; bench kv: tools/bench_kv.c):
 *
 * bench e2e: decode speed of the CUDA engine against batch size. One model is built for the
 * largest batch (its KV pool sized to hold every sequence of the run, no more). Then:
 *  - TTFT: the prefill of one sequence of --context random tokens plus its first draw on the
 *    device (cuda_model_forward), after one untimed run, the median over --ttft-runs;
 *  - for each batch size B: B sequences of --context random tokens are prefilled one by one
 *    (slots 0..B-1), then --warmup untimed and --steps timed decode steps of all B together
 *    (cuda_model_decode, greedy, each step fed the ids the last one drew), then every sequence
 *    is released. A step is timed with the host's monotonic clock around cuda_model_decode,
 *    which returns only after the stream has synchronized and the ids are back on the host: the
 *    time a caller waits per step, graph launch and staging copies included.
 * Per batch: the median and p90 step time, µs per token (step / B) and tok/s (B / step).
 *
 * With -o DIR it writes DIR/bench_e2e.json (tools/result.h: the run record with the device and
 * its clocks, the settings, every sample) and the charts its "charts" array describes, drawn the
 * way `gpt2 plot DIR/bench_e2e.json` redraws them. On the emulation build the timings are CPU
 * times of the SIMT emulator: the table says so, the JSON has "emulated": true and the chart
 * titles begin with "emulated: not GPU timings".
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache/kv_pool.h"
#include "kernels/kernels.h"
#include "model/checkpoint.h"
#include "model/cuda_model.h"
#include "model/json.h"
#include "model/sampler.h"
#include "model/synthetic.h"
#include "tools/bench_kv.h"
#include "tools/bench_ops.h"
#include "tools/cli.h"
#include "tools/commands.h"
#include "tools/result.h"
#include "tools/result_charts.h"

#define CMD "bench"
#define MAX_BATCHES 32
#define MAX_BATCH 4096          /* sequences in one decode step */
#define DEFAULT_BATCHES "1,8,64,256"
#define RESULT_FILE "bench_e2e.json"
#define THROUGHPUT_CHART "bench_e2e_throughput.png"
#define LATENCY_CHART "bench_e2e_step_latency.png"

#ifdef GPT2_CUDA_EMULATION
const bool bench_emulated = true;
#else
const bool bench_emulated = false;
#endif

static const char help[] =
    "usage: gpt2 bench e2e [--model-config 124M|355M|774M|1558M | -m DIR] [options]\n"
    "  decode speed of the CUDA engine against batch size: TTFT, then for each batch size B,\n"
    "  B prompts of --context random tokens prefilled, then --steps timed greedy decode steps\n"
    "  of all B together (after --warmup untimed ones), each timed on the host clock around the\n"
    "  engine's synchronous decode call. Prints step time (median, p90), us per token and tok/s.\n"
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
    "  --no-graph         decode steps launch by launch instead of CUDA graph replays\n"
    "  --unfused          bias, GELU, residual adds and INT8 (de)quantization as kernels of their\n"
    "                     own (the baseline)\n"
    "  --kv FORMAT        fp16 (default) or int8: the KV pool's format\n"
    "  -o DIR             also write DIR/" RESULT_FILE " (run record, settings, every sample) and\n"
    "                     the charts DIR/" THROUGHPUT_CHART " and DIR/" LATENCY_CHART "\n"
    "  On the emulation build the numbers are CPU times of the SIMT emulator, not GPU timings.";

typedef struct {
    const char *model_flag, *model_config, *out_dir;
    unsigned long long seed;
    int batches[MAX_BATCHES]; /* [n_batches] in the order given */
    int n_batches, max_batch;
    int context, steps, warmup, ttft_runs;
    bool no_graph, unfused;
    bool int8_kv;             /* --kv int8 */
} e2e_options;

/* --kv: fp16 or int8 (fp32 is the CPU reference's). */
static void parse_kv(cli_args *args, e2e_options *opt) {
    kv_format format;
    if (!cli_kv_format_parse(args, &format)) return;
    if (format == KV_FORMAT_FP32) {
        args->failed = true;
        cli_error(CMD, "--kv fp32 is the CPU reference's; the engine's pool is fp16 or int8");
        return;
    }
    opt->int8_kv = format == KV_FORMAT_INT8;
}

/* Parses "1,8,64" into opt->batches. Prints the error and returns false when it is not one. */
static bool parse_batches(cli_args *args, e2e_options *opt) {
    const char *text = cli_value(args);
    if (!text) return false;
    opt->n_batches = 0;
    const char *p = text;
    bool ok = *p != '\0';
    while (ok && *p) {
        size_t digits = strspn(p, "0123456789");
        long value = 0;
        for (size_t i = 0; i < digits && value <= MAX_BATCH; i++) value = 10 * value + (p[i] - '0');
        ok = digits > 0 && value >= 1 && value <= MAX_BATCH && opt->n_batches < MAX_BATCHES &&
             (p[digits] == '\0' || (p[digits] == ',' && p[digits + 1] != '\0'));
        for (int i = 0; ok && i < opt->n_batches; i++) ok = opt->batches[i] != value;
        if (ok) opt->batches[opt->n_batches++] = (int)value;
        p += digits + (p[digits] == ',');
    }
    if (!ok) {
        cli_error(args->cmd, "flag '--batch': '%s' is not a list of distinct batch sizes in "
                  "[1, %d] separated by commas (at most %d), e.g. 1,8,64", text, MAX_BATCH,
                  MAX_BATCHES);
        args->failed = true;
    }
    return ok;
}

/* Returns 0 to run, 1 for an error already printed, 2 when help was printed. */
static int parse_options(int argc, char **argv, e2e_options *opt) {
    *opt = (e2e_options){.seed = 1, .context = 128, .steps = 64, .warmup = 4, .ttft_runs = 5};
    cli_args args = {.cmd = CMD, .argc = argc, .argv = argv};
    bool batches_given = false;
    while (cli_has_next(&args)) {
        if (cli_flag(&args, "-h") || cli_flag(&args, "--help")) {
            puts(help);
            return 2;
        } else if (cli_flag(&args, "-m")) opt->model_flag = cli_value(&args);
        else if (cli_flag(&args, "--model-config")) opt->model_config = cli_value(&args);
        else if (cli_flag(&args, "--seed")) cli_u64(&args, &opt->seed);
        else if (cli_flag(&args, "--batch")) batches_given = parse_batches(&args, opt);
        else if (cli_flag(&args, "--context")) cli_int(&args, 1, 1 << 20, &opt->context);
        else if (cli_flag(&args, "--steps")) cli_int(&args, 1, 1 << 20, &opt->steps);
        else if (cli_flag(&args, "--warmup")) cli_int(&args, 0, 1 << 20, &opt->warmup);
        else if (cli_flag(&args, "--ttft-runs")) cli_int(&args, 1, 1000, &opt->ttft_runs);
        else if (cli_flag(&args, "--no-graph")) opt->no_graph = true;
        else if (cli_flag(&args, "--unfused")) opt->unfused = true;
        else if (cli_flag(&args, "--kv")) parse_kv(&args, opt);
        else if (cli_flag(&args, "-o")) opt->out_dir = cli_value(&args);
        else return cli_unknown(&args);
    }
    if (args.failed) return 1;
    if (opt->model_flag && opt->model_config)
        return cli_error(CMD, "give -m DIR or --model-config NAME, not both");
    if (!batches_given) {
        static const int defaults[] = {1, 8, 64, 256};
        opt->n_batches = (int)(sizeof defaults / sizeof defaults[0]);
        memcpy(opt->batches, defaults, sizeof defaults);
    }
    for (int i = 0; i < opt->n_batches; i++)
        if (opt->batches[i] > opt->max_batch) opt->max_batch = opt->batches[i];
    return 0;
}

/* The tokens a sequence holds at the end of a batch: its prompt, then every decode step. */
static long tokens_per_sequence(const e2e_options *opt) {
    return (long)opt->context + opt->warmup + opt->steps;
}

static int check_lengths(const e2e_options *opt, const gpt2_config *c) {
    if (tokens_per_sequence(opt) > c->n_positions)
        return cli_error(CMD, "--context %d + --warmup %d + --steps %d = %ld tokens exceed the "
                         "model's context of %d", opt->context, opt->warmup, opt->steps,
                         tokens_per_sequence(opt), c->n_positions);
    return 0;
}

/* ---- the model: a synthetic checkpoint at a preset shape, or a folder ---- */

typedef struct {
    char synthetic_dir[4096]; /* the temporary folder, "" once removed (or when -m) */
    const char *model_dir;
    gpt2_config config;
    double write_seconds;     /* synthetic_checkpoint_write; 0 with -m */
    double load_seconds;      /* checkpoint open + cuda_model_create (weight upload) */
    cuda_model cuda;
    bool created;
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
static int write_synthetic(const e2e_options *opt, bench_model *m) {
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

/* KV bytes for max_batch sequences of the run's length, whole blocks: the pool holds them all. */
static size_t kv_budget(const e2e_options *opt, const gpt2_config *c) {
    const kv_pool_shape shape = {.n_layer = c->n_layer, .n_head = c->n_head,
                                 .block_size = KV_DEFAULT_BLOCK_SIZE,
                                 .format = opt->int8_kv ? KV_FORMAT_INT8 : KV_FORMAT_FP16};
    const long blocks = (tokens_per_sequence(opt) + shape.block_size - 1) / shape.block_size;
    return (size_t)opt->max_batch * (size_t)blocks * shape.block_size *
           kv_pool_bytes_per_token(&shape);
}

/* Opens the checkpoint and builds the engine for the run. Returns 0, or 1 after the error. */
static int load_model(const e2e_options *opt, bench_model *m) {
    char err[GPT2_ERR_LEN];
    gpt2_checkpoint ckpt;
    const double start = cli_now();
    if (gpt2_checkpoint_open(&ckpt, m->model_dir, err, sizeof err) != 0)
        return cli_error(CMD, "%s", err);
    remove_synthetic(m); /* the mapping stays readable, and nothing is left behind on failure */
    m->config = ckpt.config;
    if (check_lengths(opt, &m->config) != 0) {
        gpt2_checkpoint_close(&ckpt);
        return 1;
    }
    const cuda_model_options options = {.kv_mem_bytes = kv_budget(opt, &m->config),
                                        .max_tokens = opt->context,
                                        .max_seqs = opt->max_batch,
                                        .eager_decode = opt->no_graph,
                                        .unfused = opt->unfused,
                                        .int8_kv = opt->int8_kv};
    const int rc = cuda_model_create(&m->cuda, &ckpt, &options, err, sizeof err);
    gpt2_checkpoint_close(&ckpt);
    if (rc != 0) return cli_error(CMD, "%s", err);
    m->created = true;
    m->load_seconds = cli_now() - start;
    if (m->cuda.max_seqs < opt->max_batch)
        return cli_error(CMD, "the engine took %d sequences at once, fewer than --batch %d",
                         m->cuda.max_seqs, opt->max_batch);
    return 0;
}

static void bench_model_destroy(bench_model *m) {
    if (m->created) cuda_model_destroy(&m->cuda);
    remove_synthetic(m);
    m->created = false;
}

/* ---- timing ---- */

static int compare_doubles(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median (the mean of the middle two for even n), p90 (nearest rank), min, max, mean; n >= 1. */
bool bench_parse_int_list(cli_args *args, const char *flag, long min, long max, int capacity,
                          int *out, int *n) {
    const char *text = cli_value(args);
    if (!text) return false;
    *n = 0;
    const char *p = text;
    bool ok = *p != '\0';
    while (ok && *p) {
        size_t digits = strspn(p, "0123456789");
        long value = 0;
        for (size_t i = 0; i < digits && value <= max; i++) value = 10 * value + (p[i] - '0');
        ok = digits > 0 && value >= min && value <= max && *n < capacity &&
             (p[digits] == '\0' || (p[digits] == ',' && p[digits + 1] != '\0'));
        for (int i = 0; ok && i < *n; i++) ok = out[i] != value;
        if (ok) out[(*n)++] = (int)value;
        p += digits + (p[digits] == ',');
    }
    if (!ok) {
        cli_error(args->cmd, "flag '%s': '%s' is not a list of distinct integers in [%ld, %ld] "
                  "separated by commas (at most %d)", flag, text, min, max, capacity);
        args->failed = true;
    }
    return ok;
}

void bench_begin_result(result_writer *w, const char *bench, const char *note,
                        const char *description, int argc, char **argv) {
    result_begin_object(w);
    result_member_string(w, "bench", bench);
    result_key(w, "emulated");
    result_bool(w, bench_emulated);
    if (bench_emulated)
        result_member_string(w, "note", note ? note : EMULATED_NOTE ": CPU times of the SIMT emulator");
    result_member_string(w, "description", description);
    result_key(w, "run");
    result_write_run_info(w, CMD, argc, argv);
}

void bench_chart_begin(result_writer *w, const char *file, const char *kind, const char *title,
                       const char *subtitle, const char *x_label, const char *y_label) {
    char full[320];
    snprintf(full, sizeof full, "%s%s", bench_emulated ? EMULATED_NOTE ": " : "", title);
    result_begin_object(w);
    result_member_string(w, "file", file);
    result_member_string(w, "kind", kind);
    result_member_string(w, "title", full);
    result_member_string(w, "subtitle", subtitle);
    if (x_label) result_member_string(w, "x_label", x_label);
    result_member_string(w, "y_label", y_label);
}

sample_stats bench_stats_of(const double *samples, int n, double *scratch /* [n] */) {
    memcpy(scratch, samples, (size_t)n * sizeof *scratch);
    qsort(scratch, (size_t)n, sizeof *scratch, compare_doubles);
    double sum = 0;
    for (int i = 0; i < n; i++) sum += scratch[i];
    const int p90_rank = (int)ceil(0.9 * n); /* 1-based */
    const double median = n % 2 ? scratch[n / 2] : 0.5 * (scratch[n / 2 - 1] + scratch[n / 2]);
    return (sample_stats){.median = median, .p90 = scratch[(p90_rank < 1 ? 1 : p90_rank) - 1],
                          .min = scratch[0], .max = scratch[n - 1], .mean = sum / n};
}

typedef struct {
    int batch;
    double prefill_ms;    /* the B prefills together, one sequence at a time */
    double *step_us;      /* [steps] each timed decode step */
    sample_stats step;    /* over step_us */
    double us_per_token;  /* step.median / batch */
    double tok_per_s;     /* batch / step.median */
    long nonfinite_rows;  /* rows whose logits held a NaN or an infinity (their id was replaced) */
} batch_result;

typedef struct {
    double *ttft_ms;      /* [ttft_runs] */
    sample_stats ttft;
    batch_result batches[MAX_BATCHES];
    int n_done;
} e2e_result;

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
                        const int32_t *prompt, e2e_result *r, double *scratch) {
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

/* Prefills b sequences, then times the decode steps of all b together; releases them all. */
static int measure_batch(const e2e_options *opt, cuda_model *model, const sampler *smp,
                         int32_t *prompt /* [context] scratch */, int b, batch_result *out,
                         double *scratch) {
    int *seqs = malloc((size_t)b * sizeof *seqs);
    int32_t *tokens = malloc((size_t)b * sizeof *tokens), *next = malloc((size_t)b * sizeof *next);
    float *uniforms = calloc((size_t)b, sizeof *uniforms); /* greedy: unused, 0 */
    bool *nonfinite = malloc((size_t)b * sizeof *nonfinite);
    const int vocab = model->config.vocab_size;
    int rc = seqs && tokens && next && uniforms && nonfinite ? 0 : cli_error(CMD, "out of memory");
    out->batch = b;
    const double prefill_start = cli_now();
    for (int i = 0; rc == 0 && i < b; i++) {
        seqs[i] = i;
        fill_prompt(prompt, opt->seed, i, opt->context, vocab);
        rc = prefill(model, i, prompt, opt->context, smp, &tokens[i]);
    }
    out->prefill_ms = 1e3 * (cli_now() - prefill_start);
    char err[GPT2_ERR_LEN];
    for (int step = 0; rc == 0 && step < opt->warmup + opt->steps; step++) {
        const double start = cli_now();
        if (cuda_model_decode(model, b, seqs, tokens, smp, uniforms, next, nonfinite, err,
                              sizeof err) != 0) {
            rc = cli_error(CMD, "batch %d, decode step %d: %s", b, step, err);
            break;
        }
        const double seconds = cli_now() - start;
        if (step >= opt->warmup) out->step_us[step - opt->warmup] = 1e6 * seconds;
        for (int i = 0; i < b; i++) {
            if (nonfinite[i]) out->nonfinite_rows++;
            tokens[i] = nonfinite[i] ? prompt_token(opt->seed, i, opt->context + step, vocab)
                                     : next[i];
        }
    }
    if (rc == 0) {
        out->step = bench_stats_of(out->step_us, opt->steps, scratch);
        out->us_per_token = out->step.median / b;
        out->tok_per_s = b / (1e-6 * out->step.median);
        if (out->nonfinite_rows)
            fprintf(stderr, "gpt2 %s: warning: batch %d: %ld rows of logits were not finite "
                    "(random weights); their ids were replaced, the timings stand\n", CMD, b,
                    out->nonfinite_rows);
    }
    cuda_model_reset(model);
    free(seqs);
    free(tokens);
    free(next);
    free(uniforms);
    free(nonfinite);
    return rc;
}

/* ---- the device, as the table and the titles name it ---- */

device_info bench_read_device(void) {
    device_info d = {.name = "unknown device"};
    int device = 0, khz = 0;
    struct cudaDeviceProp prop;
    if (cudaGetDevice(&device) == cudaSuccess &&
        cudaGetDeviceProperties(&prop, device) == cudaSuccess) {
        snprintf(d.name, sizeof d.name, "%s", prop.name);
        d.sm_count = prop.multiProcessorCount;
    }
    if (cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, device) == cudaSuccess)
        d.sm_clock_mhz = khz / 1000;
    if (cudaDeviceGetAttribute(&khz, cudaDevAttrMemoryClockRate, device) == cudaSuccess)
        d.memory_clock_mhz = khz / 1000;
    cudaGetLastError();
    return d;
}

/* ---- the table ---- */

/* "124M (random weights, seed 1)" or the folder. */
static void describe_model(const e2e_options *opt, const bench_model *m, char *out, size_t len) {
    if (opt->model_config)
        snprintf(out, len, "%s (random weights, seed %llu)", opt->model_config, opt->seed);
    else
        snprintf(out, len, "%s", m->model_dir);
}

static void describe_settings(const e2e_options *opt, char *out, size_t len) {
    snprintf(out, len, "context %d, %d timed decode steps after %d warm-up, %s, %s kernels, "
             "%s KV, greedy", opt->context, opt->steps, opt->warmup,
             opt->no_graph ? "eager launches" : "CUDA graphs", opt->unfused ? "unfused" : "fused",
             opt->int8_kv ? "int8" : "fp16");
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
    printf("load (open + upload + sizing): %.2f s\n", m->load_seconds);
    printf("TTFT (prefill of %d tokens + first draw): median %.3f ms, p90 %.3f ms over %d runs\n",
           opt->context, r->ttft.median, r->ttft.p90, opt->ttft_runs);
    printf("%7s %16s %13s %12s %13s %14s\n", "batch", "step median us", "step p90 us", "us/token",
           "tok/s", "prefill ms");
    for (int i = 0; i < r->n_done; i++) {
        const batch_result *b = &r->batches[i];
        printf("%7d %16.1f %13.1f %12.2f %13.1f %14.2f\n", b->batch, b->step.median, b->step.p90,
               b->us_per_token, b->tok_per_s, b->prefill_ms);
    }
}

/* ---- the result JSON ---- */

void bench_write_stats(result_writer *w, const char *unit, const sample_stats *s) {
    char key[32];
    static const char *const names[] = {"median", "p90", "min", "max", "mean"};
    const double values[] = {s->median, s->p90, s->min, s->max, s->mean};
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof key, "%s_%s", names[i], unit);
        result_member_number(w, key, values[i]);
    }
}

/* A seed as an exact integer (a double would round seeds past 2^53). */
static void write_seed(result_writer *w, unsigned long long seed) {
    if (seed <= (unsigned long long)LLONG_MAX) result_int(w, (long long)seed);
    else result_number(w, (double)seed);
}

static void write_batch_values(result_writer *w, const e2e_result *r, int which) {
    result_begin_array(w);
    for (int i = 0; i < r->n_done; i++) {
        const batch_result *b = &r->batches[i];
        result_number(w, which == 0 ? b->batch : which == 1 ? b->tok_per_s : 1e-3 * b->step.median);
    }
    result_end_array(w);
}

typedef struct {
    const char *file, *title, *y_label;
    int y_values; /* write_batch_values' `which`: 1 tok/s, 2 step ms */
    bool y_log;
} chart_spec;

static void write_chart(result_writer *w, const e2e_result *r, const chart_spec *c,
                        const char *subtitle, const char *series_name) {
    char title[256];
    snprintf(title, sizeof title, "%s%s", bench_emulated ? EMULATED_NOTE ": " : "", c->title);
    result_begin_object(w);
    result_member_string(w, "file", c->file);
    result_member_string(w, "kind", "line");
    result_member_string(w, "title", title);
    result_member_string(w, "subtitle", subtitle);
    result_member_string(w, "x_label", "batch size (sequences decoded together, log scale)");
    result_member_string(w, "y_label", c->y_label);
    result_key(w, "x_log");
    result_bool(w, true);
    result_key(w, "y_log");
    result_bool(w, c->y_log);
    result_key(w, "x_ticks");
    write_batch_values(w, r, 0);
    result_key(w, "series");
    result_begin_array(w);
    result_begin_object(w);
    result_member_string(w, "name", series_name);
    result_key(w, "x");
    write_batch_values(w, r, 0);
    result_key(w, "y");
    write_batch_values(w, r, c->y_values);
    result_end_object(w);
    result_end_array(w);
    result_end_object(w);
}

static void write_result(result_writer *w, const e2e_options *opt, const bench_model *m,
                         const device_info *d, const e2e_result *r, int argc, char **argv) {
    char model[4200], settings[256], subtitle[4800], series[64];
    describe_model(opt, m, model, sizeof model);
    describe_settings(opt, settings, sizeof settings);
    snprintf(subtitle, sizeof subtitle, "%s; gpt2-cuda, %s; %s", d->name, model, settings);
    snprintf(series, sizeof series, "gpt2-cuda (%s, %s, %s KV)",
             opt->no_graph ? "eager" : "CUDA graphs", opt->unfused ? "unfused" : "fused",
             opt->int8_kv ? "int8" : "fp16");
    bench_begin_result(w, "e2e", NULL,
                         "decode speed against batch size: per batch size, the prompts prefilled "
                         "one by one, then greedy decode steps of all of them together, each "
                         "timed on the host's monotonic clock around cuda_model_decode, which "
                         "returns after the stream synchronizes and the ids are on the host; "
                         "TTFT is one sequence's prefill plus its first draw on the device",
                       argc, argv);
    result_key(w, "model");
    result_begin_object(w);
    result_key(w, "config");
    if (opt->model_config) result_string(w, opt->model_config);
    else result_null(w);
    result_key(w, "dir");
    if (opt->model_config) result_null(w);
    else result_string(w, m->model_dir);
    result_key(w, "seed");
    if (opt->model_config) write_seed(w, opt->seed);
    else result_null(w);
    result_member_int(w, "n_layer", m->config.n_layer);
    result_member_int(w, "n_head", m->config.n_head);
    result_member_int(w, "n_embd", m->config.n_embd);
    result_member_int(w, "n_positions", m->config.n_positions);
    result_member_int(w, "vocab_size", m->config.vocab_size);
    result_member_int(w, "weight_bytes", (long long)m->cuda.weights.bytes);
    result_member_number(w, "synthetic_write_s", m->write_seconds);
    result_member_number(w, "load_s", m->load_seconds);
    result_end_object(w);
    result_key(w, "settings");
    result_begin_object(w);
    result_member_int(w, "context", opt->context);
    result_member_int(w, "steps", opt->steps);
    result_member_int(w, "warmup", opt->warmup);
    result_member_int(w, "ttft_runs", opt->ttft_runs);
    result_key(w, "prompt_seed");
    write_seed(w, opt->seed);
    result_key(w, "decode_graph");
    result_bool(w, !opt->no_graph);
    result_key(w, "fused");
    result_bool(w, !opt->unfused);
    result_member_string(w, "kv_format", opt->int8_kv ? "int8" : "fp16");
    result_member_int(w, "block_size", m->cuda.kv.shape.block_size);
    result_member_int(w, "kv_pool_blocks", m->cuda.kv.shape.num_blocks);
    const kv_pool_shape *pool = &m->cuda.kv.shape;
    result_member_int(w, "kv_pool_bytes",
                      (long long)((size_t)pool->num_blocks * kv_pool_bytes_per_block(pool)));
    result_member_int(w, "max_seqs", m->cuda.max_seqs);
    result_member_string(w, "sampler", "greedy, on the device");
    result_member_string(w, "clock", "host monotonic clock (clock_gettime) around each call");
    result_end_object(w);
    result_key(w, "ttft");
    result_begin_object(w);
    result_member_int(w, "prompt_tokens", opt->context);
    bench_write_stats(w, "ms", &r->ttft);
    result_key(w, "samples_ms");
    result_number_array(w, r->ttft_ms, (size_t)opt->ttft_runs);
    result_end_object(w);
    result_key(w, "decode");
    result_begin_array(w);
    for (int i = 0; i < r->n_done; i++) {
        const batch_result *b = &r->batches[i];
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
    static const chart_spec charts[] = {
        {THROUGHPUT_CHART, "decode throughput against batch size",
         "tokens/s (all sequences, log scale)", 1, true},
        {LATENCY_CHART, "decode step time against batch size", "median step time, ms (log scale)",
         2, true},
    };
    result_key(w, "charts");
    result_begin_array(w);
    for (size_t i = 0; i < sizeof charts / sizeof charts[0]; i++)
        write_chart(w, r, &charts[i], subtitle, series);
    result_end_array(w);
    result_end_object(w);
}

static int save_json(const char *path, const e2e_options *opt, const bench_model *m,
                     const device_info *d, const e2e_result *r, int argc, char **argv) {
    FILE *f = fopen(path, "w");
    if (!f) return cli_error(CMD, "%s: %s", path, strerror(errno));
    result_writer w;
    result_writer_init(&w, f);
    write_result(&w, opt, m, d, r, argc, argv);
    int rc = result_writer_finish(&w);
    if (fclose(f) != 0) rc = -1;
    return rc == 0 ? 0 : cli_error(CMD, "%s: cannot write the result", path);
}

/* Reads the saved JSON back and draws its charts, as `gpt2 plot` would; lists the files. */
int bench_draw_saved_charts(const char *json_path, const char *out_dir) {
    size_t len = 0;
    char *text = cli_read_text(CMD, NULL, json_path, &len);
    if (!text) return 1;
    char err[256];
    json_document *doc = json_parse(text, len, err, sizeof err);
    int rc = doc ? result_draw_charts(CMD, json_path, json_root(doc), out_dir, stdout)
                 : cli_error(CMD, "%s: %s", json_path, err);
    json_free(doc);
    free(text);
    return rc;
}

static int save_outputs(const e2e_options *opt, const bench_model *m, const device_info *d,
                        const e2e_result *r, int argc, char **argv) {
    const size_t len = strlen(opt->out_dir) + sizeof RESULT_FILE + 1;
    char *path = malloc(len);
    if (!path) return cli_error(CMD, "out of memory");
    snprintf(path, len, "%s/%s", opt->out_dir, RESULT_FILE);
    int rc = save_json(path, opt, m, d, r, argc, argv);
    if (rc == 0) printf("%s\n", path);
    if (rc == 0) rc = bench_draw_saved_charts(path, opt->out_dir);
    free(path);
    return rc;
}

/* ---- bench e2e ---- */

static int run_e2e(const e2e_options *opt, bench_model *m, e2e_result *r, int argc, char **argv) {
    sampler smp;
    const sampler_params greedy = {.temperature = 0.0f, .top_k = 0, .top_p = 1.0f,
                                   .seed = opt->seed};
    const int n_scratch = opt->steps > opt->ttft_runs ? opt->steps : opt->ttft_runs;
    double *scratch = malloc((size_t)n_scratch * sizeof *scratch);
    int32_t *prompt = malloc((size_t)opt->context * sizeof *prompt);
    r->ttft_ms = malloc((size_t)opt->ttft_runs * sizeof *r->ttft_ms);
    if (!scratch || !prompt || !r->ttft_ms ||
        sampler_create(&smp, m->config.vocab_size, greedy) != 0) {
        free(scratch);
        free(prompt);
        return cli_error(CMD, "out of memory"); /* sampler_create is last: nothing of it to free */
    }
    fill_prompt(prompt, opt->seed, 0, opt->context, m->config.vocab_size);
    int rc = measure_ttft(opt, &m->cuda, &smp, prompt, r, scratch);
    for (int i = 0; rc == 0 && i < opt->n_batches; i++) {
        batch_result *b = &r->batches[i];
        b->step_us = malloc((size_t)opt->steps * sizeof *b->step_us);
        if (!b->step_us) rc = cli_error(CMD, "out of memory");
        else rc = measure_batch(opt, &m->cuda, &smp, prompt, opt->batches[i], b, scratch);
        if (rc == 0) r->n_done = i + 1;
    }
    if (rc == 0) {
        const device_info d = bench_read_device();
        print_table(opt, m, &d, r);
        if (opt->out_dir) rc = save_outputs(opt, m, &d, r, argc, argv);
    }
    sampler_destroy(&smp);
    free(scratch);
    free(prompt);
    return rc;
}

static int cmd_bench_e2e(int argc, char **argv, int record_argc, char **record_argv) {
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
    if (rc == 0) rc = load_model(&opt, &m);
    e2e_result r = {0};
    if (rc == 0) rc = run_e2e(&opt, &m, &r, record_argc, record_argv);
    for (int i = 0; i < opt.n_batches; i++) free(r.batches[i].step_us);
    free(r.ttft_ms);
    bench_model_destroy(&m);
    return rc;
}

int cmd_bench(int argc, char **argv) {
    if (argc > 0 && (strcmp(argv[0], "-h") == 0 || strcmp(argv[0], "--help") == 0)) {
        puts(help);
        puts("\nusage: gpt2 bench ops [options]   kernels side by side: fused against unfused, INT8\n"
             "  against FP16 KV, the decode GEMV against cuBLASLt (gpt2 bench ops --help)");
        puts("usage: gpt2 bench kv [options]    KV bytes per token, serving capacity by format and\n"
             "  policy from the pool's allocator, memory against length (gpt2 bench kv --help)");
        return 0;
    }
    if (argc == 0)
        return cli_error(CMD, "missing benchmark: e2e, ops or kv (see gpt2 bench --help)");
    if (strcmp(argv[0], "ops") == 0) return cmd_bench_ops(argc - 1, argv + 1, argc, argv);
    if (strcmp(argv[0], "kv") == 0) return cmd_bench_kv(argc - 1, argv + 1, argc, argv);
    if (strcmp(argv[0], "e2e") != 0)
        return cli_error(CMD, "unknown benchmark '%s' (expected e2e, ops or kv; roofline is not "
                         "written yet)", argv[0]);
    return cmd_bench_e2e(argc - 1, argv + 1, argc, argv);
}
