/*
 * gpt2 bench ops: the engine's kernels side by side, in one process on one device (issue 14's
 * per-op harness; issue 13's decode attention and KV write speed). For each op every variant is
 * first checked against the CPU reference (model/cpu_ops.h, cache/kv_quant.h) on fresh random
 * inputs with poisoned outputs, then timed on the same inputs. A failed check is an error: that
 * variant is not timed, and the command exits 1 after the table.
 *
 * Ceilings, measured first in the same run:
 *  - copy: cudaMemcpyAsync device to device of --copy-mib MiB (default 1 GiB, far above any
 *    L2; 8 MiB on the emulator), counted as bytes read plus bytes written;
 *  - GEMM: launch_linear (cuBLASLt, fp16 in and out, fp32 compute) on a --gemm-size square
 *    (default 8192; 128 on the emulator), 2 n^3 FLOPs.
 *
 * Timing (time_op, the one helper every op goes through): the op's launches are captured once
 * into a CUDA graph, so that host work between its kernels (cuBLASLt descriptors, launch
 * overhead) stays out of the numbers, as in the engine's decode graphs. The graph is replayed
 * --warmup times, then --repeats times, each replay after an L2 flush (a cudaMemsetAsync of
 * 2 x cudaDeviceProp.l2CacheSize bytes, outside the timed region) and between two CUDA events.
 * The median over the repeats is the op's time. Achieved GB/s counts the bytes the variant must
 * move through device memory, each input read once and each output written once (the formula
 * sits beside each op below; intermediates an unfused variant writes and reads back count, since
 * that traffic is what fusion removes); it is also given as a % of the measured copy bandwidth.
 * GEMMs and GEMVs also report TFLOP/s (2 rows K N) and a % of the GEMM ceiling.
 *
 * Ops (--only selects groups):
 *  - attention: decode attention over a paged pool (block 16, shuffled pages) in three forms:
 *    fp16 pages; int8 pages dequantized in registers (fused); launch_kv_dequantize into an fp16
 *    scratch then the fp16 kernel (unfused, timed together, as the engine's --unfused runs it).
 *    Every --batches x (--contexts and --long-context) pair, --heads heads of 64.
 *  - kv-write: the new tokens' K and V into the pages: fp16, int8 quantized on the way (fused),
 *    fp16 into staging pages then launch_kv_quantize (unfused, as the engine's --unfused). One
 *    token per sequence for each batch size (decode), and --rows tokens of one sequence (prefill).
 *  - gemv: the decode GEMV (launch_gemv_f16 with bias; launch_gemv_f32_out for the LM head)
 *    against cuBLASLt on the same shapes and row counts. launch_linear sends <= 8 rows to the
 *    GEMV, so the cuBLASLt side is launch_linear_cublaslt (its path past 8 rows, forced); its
 *    descriptors and heuristic run on the host while the graph is captured, so the replays
 *    time the kernels alone.
 *  - layernorm: launch_residual_layernorm against launch_residual_add then launch_layernorm.
 *  - gemm: launch_linear with LINEAR_GELU (cuBLASLt's GELU_BIAS epilogue) against a bare
 *    launch_linear then launch_bias_gelu, at --rows rows (a prefill).
 *  - sample: the next id from fp32 logits [rows, V] (V the LM head's, --batches rows):
 *    launch_argmax (greedy) against sampler_argmax, and launch_sample (temperature 0.8, top-k
 *    50, top-p 0.95, a uniform per row) against sampler_pick with the same uniforms.
 *
 * With -o DIR: DIR/bench_ops.json (tools/result.h: the run record with the device and its clocks,
 * the settings, the ceilings, every op's numbers and samples, the speedups) and the charts its
 * "charts" array describes. On the emulation build the timings are CPU times of the SIMT
 * emulator: the table says so, the JSON has "emulated": true and every chart title begins with
 * "emulated: not GPU timings".
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#include "cache/kv_pool.h"
#include "cache/kv_quant.h"
#include "kernels/cuda_check.h"
#include "kernels/half.h"
#include "kernels/kernels.h"
#include "model/cpu_ops.h"
#include "model/sampler.h"
#include "model/synthetic.h"
#include "tools/bench_ops.h"
#include "tools/cli.h"
#include "tools/result.h"

#define CMD "bench"
#define RESULT_FILE "bench_ops.json"
#define HEAD 64
#define BLOCK_SIZE KV_DEFAULT_BLOCK_SIZE
#define MAX_LIST 32
#define MAX_BATCH 4096
#define MAX_GEMV_ROWS GEMM_GEMV_MAX_ROWS
#define LN_EPS 1e-5f
#define GEMM_CHECK_ROWS 32             /* rows of a prefill GEMM checked against the CPU */
#define CEILING_CHECK_POINTS 64        /* outputs of the ceiling GEMM checked */
#define POISON_BYTE 0xFF               /* fp16 and fp32 NaN, int8 -1 */
#define POISON_HALF 0xFFFFu

#ifdef GPT2_CUDA_EMULATION
#define FLUSH_CAP_BYTES ((size_t)1 << 20) /* the emulator has no cache: a token flush */
#else
#define FLUSH_CAP_BYTES SIZE_MAX
#endif

#ifdef _OPENMP
#define PARALLEL_FOR _Pragma("omp parallel for schedule(static)")
#else
#define PARALLEL_FOR
#endif

static const char help[] =
    "usage: gpt2 bench ops [options]\n"
    "  kernels side by side on one device: each variant checked against the CPU reference on\n"
    "  random inputs, then timed (CUDA events around a graph replay, after warm-up, an L2 flush\n"
    "  before every repeat, the median), reported as us, GB/s and % of the copy bandwidth\n"
    "  measured in the same run (GEMMs also TFLOP/s and % of the measured cuBLASLt GEMM rate)\n"
    "  --only LIST         groups to run, comma-separated (default all): attention, kv-write,\n"
    "                      gemv, layernorm, gemm, sample\n"
    "  --model-config NAME GPT-2 shape for --heads, --embd, --gemv-shapes and --lm-head:\n"
    "                      124M, 355M, 774M or 1558M (the flags override it)\n"
    "  --heads N           attention and KV write heads of 64 (default 12, GPT-2 124M)\n"
    "  --contexts LIST     decode attention context lengths (default 128,256,512,1024)\n"
    "  --long-context T    one more, longer synthetic context at kernel level (default 4096;\n"
    "                      0: none)\n"
    "  --batches LIST      decode batch sizes: attention sequences, KV write and layernorm rows\n"
    "                      (default 1,8,32,64,256)\n"
    "  --check-seqs N      attention sequences per launch checked against the CPU (default 8,\n"
    "                      spread over the batch; every output row is checked to be written)\n"
    "  --embd C            layernorm width, and the prefill GEMM's C x 4C (default 768)\n"
    "  --rows N            prefill rows: layernorm, KV write and GEMM + bias + GELU (default 512)\n"
    "  --gemv-rows LIST    decode GEMV row counts, each 1 to 8 (default 1,8)\n"
    "  --gemv-shapes LIST  GEMV shapes KxN, input by output (default 768x2304,768x3072,3072x768,\n"
    "                      1600x6400,6400x1600: GPT-2 124M and 1.5B projections)\n"
    "  --lm-head KxV       the LM head's shape, fp32 logits (default 768x50257; 0: none)\n"
    "  --warmup N          untimed replays before the timed ones (default 5; 1 bench_emulated)\n"
    "  --repeats N         timed replays per op (default 30; 3 bench_emulated)\n"
    "  --copy-mib N        the copy ceiling's buffer (default 1024; 8 bench_emulated)\n"
    "  --gemm-size N       the GEMM ceiling's square size (default 8192; 128 bench_emulated)\n"
    "  --seed N            seed of the random inputs (default 1)\n"
    "  --corrupt GROUP     for tests: change one output value of every variant of GROUP before\n"
    "                      its check, which must then fail\n"
    "  -o DIR              also write DIR/" RESULT_FILE " and its charts (PNG)\n"
    "  On the emulation build the numbers are CPU times of the SIMT emulator, not GPU timings.";

/* ---- options ---- */

typedef enum {
    GROUP_ATTENTION,
    GROUP_KV_WRITE,
    GROUP_GEMV,
    GROUP_LAYERNORM,
    GROUP_GEMM,
    GROUP_SAMPLE,
    N_GROUPS
} op_group;

static const char *const group_flags[N_GROUPS] = {"attention", "kv-write", "gemv", "layernorm",
                                                  "gemm", "sample"};
static const char *const group_names[N_GROUPS] = {"decode_attention", "kv_write", "gemv",
                                                  "residual_layernorm", "gemm_bias_gelu",
                                                  "sampling"};
static const char *const group_titles[N_GROUPS] = {
    "decode attention", "KV write", "decode GEMV against cuBLASLt",
    "residual add + layernorm", "GEMM + bias + GELU", "sampling"};

typedef struct {
    int k, n; /* input features, output features */
} gemv_shape;

typedef struct {
    const char *model_config, *out_dir;
    unsigned long long seed;
    bool run_group[N_GROUPS];
    int corrupt; /* a group, or -1 */
    int contexts[MAX_LIST], n_contexts, long_context;
    int batches[MAX_LIST], n_batches;
    int gemv_rows[MAX_LIST], n_gemv_rows;
    gemv_shape gemv[MAX_LIST];
    int n_gemv;
    gemv_shape lm_head; /* n == 0: none */
    int n_head, embd, rows, check_seqs;
    int warmup, repeats, copy_mib, gemm_size;
} ops_options;

/* "768x2304" into a shape: K a multiple of 8 in [8, 65536], N in [1, 1 << 20]. */
static bool parse_shape_text(const char *text, size_t len, gemv_shape *out) {
    char buf[64];
    if (len == 0 || len >= sizeof buf) return false;
    memcpy(buf, text, len);
    buf[len] = '\0';
    char *x = strchr(buf, 'x');
    if (!x || x == buf || !x[1]) return false;
    *x = '\0';
    if (strspn(buf, "0123456789") != strlen(buf) || strspn(x + 1, "0123456789") != strlen(x + 1))
        return false;
    if (strlen(buf) > 7 || strlen(x + 1) > 8) return false;
    const long k = strtol(buf, NULL, 10), n = strtol(x + 1, NULL, 10);
    if (k < 8 || k > 65536 || k % 8 != 0 || n < 1 || n > (1L << 20)) return false;
    *out = (gemv_shape){(int)k, (int)n};
    return true;
}

static bool parse_shapes(cli_args *args, ops_options *opt) {
    const char *text = cli_value(args);
    if (!text) return false;
    opt->n_gemv = 0;
    bool ok = *text != '\0';
    for (const char *p = text; ok && *p;) {
        const size_t len = strcspn(p, ",");
        ok = opt->n_gemv < MAX_LIST && parse_shape_text(p, len, &opt->gemv[opt->n_gemv]) &&
             (p[len] == '\0' || p[len + 1] != '\0');
        if (ok) opt->n_gemv++;
        p += len + (p[len] == ',');
    }
    if (!ok) {
        cli_error(CMD, "flag '--gemv-shapes': '%s' is not a list of shapes KxN separated by "
                  "commas (K a multiple of 8 in [8, 65536], N in [1, 1048576], at most %d)", text,
                  MAX_LIST);
        args->failed = true;
    }
    return ok;
}

static bool parse_lm_head(cli_args *args, ops_options *opt) {
    const char *text = cli_value(args);
    if (!text) return false;
    if (strcmp(text, "0") == 0) {
        opt->lm_head = (gemv_shape){0, 0};
        return true;
    }
    if (parse_shape_text(text, strlen(text), &opt->lm_head)) return true;
    cli_error(CMD, "flag '--lm-head': '%s' is not a shape KxV (K a multiple of 8) or 0", text);
    args->failed = true;
    return false;
}

/* A group's flag name to its index, or -1. */
static int group_of(const char *name, size_t len) {
    for (int g = 0; g < N_GROUPS; g++)
        if (strlen(group_flags[g]) == len && strncmp(group_flags[g], name, len) == 0) return g;
    return -1;
}

static bool parse_only(cli_args *args, ops_options *opt) {
    const char *text = cli_value(args);
    if (!text) return false;
    for (int g = 0; g < N_GROUPS; g++) opt->run_group[g] = false;
    bool ok = *text != '\0';
    for (const char *p = text; ok && *p;) {
        const size_t len = strcspn(p, ",");
        const int g = group_of(p, len);
        ok = g >= 0 && (p[len] == '\0' || p[len + 1] != '\0');
        if (ok) opt->run_group[g] = true;
        p += len + (p[len] == ',');
    }
    if (!ok) {
        cli_error(CMD, "flag '--only': '%s' is not a list of attention, kv-write, gemv, "
                  "layernorm, gemm, sample", text);
        args->failed = true;
    }
    return ok;
}

static bool parse_corrupt(cli_args *args, ops_options *opt) {
    const char *text = cli_value(args);
    if (!text) return false;
    opt->corrupt = group_of(text, strlen(text));
    if (opt->corrupt >= 0) return true;
    cli_error(CMD, "flag '--corrupt': '%s' is not one of attention, kv-write, gemv, layernorm, "
              "gemm, sample", text);
    args->failed = true;
    return false;
}

/* Returns 0 to run, 1 for an error already printed, 2 when help was printed. */
static int parse_options(int argc, char **argv, ops_options *opt) {
    *opt = (ops_options){.seed = 1, .corrupt = -1, .long_context = 4096, .lm_head = {768, 50257},
                         .n_head = 12, .embd = 768, .rows = 512, .check_seqs = 8,
                         .warmup = BENCH_DEFAULT_WARMUP, .repeats = BENCH_DEFAULT_REPEATS,
                         .copy_mib = BENCH_DEFAULT_COPY_MIB, .gemm_size = BENCH_DEFAULT_GEMM_SIZE};
    for (int g = 0; g < N_GROUPS; g++) opt->run_group[g] = true;
    cli_args args = {.cmd = CMD, .argc = argc, .argv = argv};
    bool contexts = false, batches = false, gemv_rows = false, shapes = false, lm = false;
    bool heads = false, embd = false;
    while (cli_has_next(&args)) {
        if (cli_flag(&args, "-h") || cli_flag(&args, "--help")) {
            puts(help);
            return 2;
        } else if (cli_flag(&args, "--only")) parse_only(&args, opt);
        else if (cli_flag(&args, "--model-config")) opt->model_config = cli_value(&args);
        else if (cli_flag(&args, "--heads")) heads = cli_int(&args, 1, 128, &opt->n_head);
        else if (cli_flag(&args, "--contexts"))
            contexts = bench_parse_int_list(&args, "--contexts", 1, 1 << 20, MAX_LIST,
                                            opt->contexts, &opt->n_contexts);
        else if (cli_flag(&args, "--long-context")) cli_int(&args, 0, 1 << 20, &opt->long_context);
        else if (cli_flag(&args, "--batches"))
            batches = bench_parse_int_list(&args, "--batches", 1, MAX_BATCH, MAX_LIST,
                                           opt->batches, &opt->n_batches);
        else if (cli_flag(&args, "--check-seqs")) cli_int(&args, 1, MAX_BATCH, &opt->check_seqs);
        else if (cli_flag(&args, "--embd")) embd = cli_int(&args, 8, 8192, &opt->embd);
        else if (cli_flag(&args, "--rows")) cli_int(&args, MAX_GEMV_ROWS + 1, 1 << 16, &opt->rows);
        else if (cli_flag(&args, "--gemv-rows"))
            gemv_rows = bench_parse_int_list(&args, "--gemv-rows", 1, MAX_GEMV_ROWS, MAX_LIST,
                                             opt->gemv_rows, &opt->n_gemv_rows);
        else if (cli_flag(&args, "--gemv-shapes")) shapes = parse_shapes(&args, opt);
        else if (cli_flag(&args, "--lm-head")) lm = parse_lm_head(&args, opt);
        else if (cli_flag(&args, "--warmup")) cli_int(&args, 0, 10000, &opt->warmup);
        else if (cli_flag(&args, "--repeats")) cli_int(&args, 1, 10000, &opt->repeats);
        else if (cli_flag(&args, "--copy-mib")) cli_int(&args, 1, 1 << 16, &opt->copy_mib);
        else if (cli_flag(&args, "--gemm-size")) cli_int(&args, 16, 32768, &opt->gemm_size);
        else if (cli_flag(&args, "--seed")) cli_u64(&args, &opt->seed);
        else if (cli_flag(&args, "--corrupt")) parse_corrupt(&args, opt);
        else if (cli_flag(&args, "-o")) opt->out_dir = cli_value(&args);
        else return cli_unknown(&args);
    }
    if (args.failed) return 1;
    if (opt->embd % 8 != 0) return cli_error(CMD, "--embd %d: must be a multiple of 8", opt->embd);
    if (opt->gemm_size % 8 != 0)
        return cli_error(CMD, "--gemm-size %d: must be a multiple of 8", opt->gemm_size);
    if (opt->model_config) {
        gpt2_config c;
        if (gpt2_config_preset(opt->model_config, &c) != 0)
            return cli_error(CMD, "--model-config '%s': expected 124M, 355M, 774M or 1558M",
                             opt->model_config);
        const int C = c.n_embd;
        if (!heads) opt->n_head = c.n_head;
        if (!embd) opt->embd = C;
        if (!shapes) {
            const gemv_shape preset[] = {{C, 3 * C}, {C, C}, {C, 4 * C}, {4 * C, C}};
            opt->n_gemv = 4;
            memcpy(opt->gemv, preset, sizeof preset);
        }
        if (!lm) opt->lm_head = (gemv_shape){C, c.vocab_size};
    }
    if (!contexts) {
        static const int defaults[] = {128, 256, 512, 1024};
        opt->n_contexts = 4;
        memcpy(opt->contexts, defaults, sizeof defaults);
    }
    if (!batches) {
        static const int defaults[] = {1, 8, 32, 64, 256};
        opt->n_batches = 5;
        memcpy(opt->batches, defaults, sizeof defaults);
    }
    if (!gemv_rows) {
        opt->n_gemv_rows = 2;
        opt->gemv_rows[0] = 1;
        opt->gemv_rows[1] = 8;
    }
    if (!shapes && !opt->model_config) {
        static const gemv_shape defaults[] = {{768, 2304}, {768, 3072}, {3072, 768},
                                              {1600, 6400}, {6400, 1600}};
        opt->n_gemv = 5;
        memcpy(opt->gemv, defaults, sizeof defaults);
    }
    if (opt->corrupt >= 0 && !opt->run_group[opt->corrupt])
        return cli_error(CMD, "--corrupt %s: that group is not run (see --only)",
                         group_flags[opt->corrupt]);
    return 0;
}

static int max_of(const int *values, int n) {
    int m = 0;
    for (int i = 0; i < n; i++)
        if (values[i] > m) m = values[i];
    return m;
}

/* The decode attention contexts: --contexts, then --long-context when it is not among them. */
static int attention_contexts(const ops_options *opt, int *out /* [MAX_LIST + 1] */) {
    int n = opt->n_contexts;
    memcpy(out, opt->contexts, (size_t)n * sizeof *out);
    bool listed = false;
    for (int i = 0; i < n; i++) listed |= out[i] == opt->long_context;
    if (opt->long_context > 0 && !listed) out[n++] = opt->long_context;
    return n;
}

/* ---- host and device memory ---- */

void *bench_xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "gpt2 %s: out of host memory (%.1f MiB)\n", CMD, bytes / 1048576.0);
        exit(EXIT_FAILURE);
    }
    return p;
}

void *bench_device_alloc(size_t bytes, const char *what) {
    void *p = NULL;
    const cudaError_t e = cudaMalloc(&p, bytes ? bytes : 16);
    if (e != cudaSuccess) {
        fprintf(stderr, "gpt2 %s: cannot allocate %.1f MiB of device memory for %s: %s\n", CMD,
                bytes / 1048576.0, what, cudaGetErrorString(e));
        exit(EXIT_FAILURE);
    }
    return p;
}

void *bench_device_upload(const void *host, size_t bytes, const char *what) {
    void *p = bench_device_alloc(bytes, what);
    if (bytes) CUDA_CHECK(cudaMemcpy(p, host, bytes, cudaMemcpyHostToDevice));
    return p;
}

static void download(void *host, const void *dev, size_t bytes) {
    CUDA_CHECK(cudaMemcpy(host, dev, bytes, cudaMemcpyDeviceToHost));
}

/* ---- random inputs: the same values for a seed whatever the number of threads ---- */

#define RANDOM_CHUNK 65536

/* The generator state of chunk `chunk` of input stream `stream`. */
static uint64_t chunk_state(uint64_t seed, uint64_t stream, size_t chunk) {
    return splitmix64_mix(seed ^ splitmix64_mix((stream << 40) + chunk));
}

/* A uniform float in [0, 1) from the i-th hash of a state. */
static float uniform_at(uint64_t state, size_t i) {
    return (float)(splitmix64_mix(state + i) >> 40) * 0x1p-24f;
}

/* What fill_random writes: fp16 in [-scale, scale], int8 codes, or INT8 per-row scales. */
typedef enum { RANDOM_HALVES, RANDOM_CODES, RANDOM_SCALES } random_kind;

/*
 * out[0..n) from input stream `stream` of the seed, in chunks (one generator state each, so
 * the values do not depend on the threads): RANDOM_HALVES fp16 uniform in [-scale, scale];
 * RANDOM_CODES int8 codes uniform in [-127, 127]; RANDOM_SCALES fp16 scales 2^u / 127 for u in
 * [-2, 2] (INT8 pages' per-row scales).
 */
static void fill_random(void *out, size_t n, random_kind kind, float scale, uint64_t seed,
                        uint64_t stream) {
    const long chunks = (long)((n + RANDOM_CHUNK - 1) / RANDOM_CHUNK);
    PARALLEL_FOR
    for (long c = 0; c < chunks; c++) {
        const uint64_t state = chunk_state(seed, stream, (size_t)c);
        const size_t begin = (size_t)c * RANDOM_CHUNK;
        const size_t end = begin + RANDOM_CHUNK < n ? begin + RANDOM_CHUNK : n;
        for (size_t i = begin; i < end; i++) {
            const float u = uniform_at(state, i - begin);
            if (kind == RANDOM_CODES)
                ((int8_t *)out)[i] = (int8_t)((int)(splitmix64_mix(state + (i - begin)) % 255) - 127);
            else if (kind == RANDOM_SCALES)
                ((uint16_t *)out)[i] = float_to_half(exp2f(4.0f * u - 2.0f) / 127.0f);
            else
                ((uint16_t *)out)[i] = float_to_half(scale * (2.0f * u - 1.0f));
        }
    }
}

static void fill_halves(uint16_t *h, size_t n, float scale, uint64_t seed, uint64_t stream) {
    fill_random(h, n, RANDOM_HALVES, scale, seed, stream);
}

void *bench_device_random(size_t n, float scale, uint64_t seed, uint64_t stream,
                          const char *what) {
    uint16_t *h = bench_xmalloc(n * sizeof *h);
    fill_halves(h, n, scale, seed, stream);
    void *dev = bench_device_upload(h, n * sizeof *h, what);
    free(h);
    return dev;
}

/* A random permutation of [0, n). */
static int32_t *shuffled_ids(int n, uint64_t seed, uint64_t stream) {
    int32_t *ids = bench_xmalloc((size_t)n * sizeof *ids);
    for (int i = 0; i < n; i++) ids[i] = i;
    const uint64_t state = chunk_state(seed, stream, 0);
    for (int i = n - 1; i > 0; i--) {
        const int j = (int)(splitmix64_mix(state + (uint64_t)i) % (uint64_t)(i + 1));
        const int32_t t = ids[i];
        ids[i] = ids[j];
        ids[j] = t;
    }
    return ids;
}

static float *floats_of(const uint16_t *h, size_t n) {
    float *f = bench_xmalloc(n * sizeof *f);
    for (size_t i = 0; i < n; i++) f[i] = half_to_float(h[i]);
    return f;
}

/* ---- results ---- */

#define MAX_DIMS 4

/* One variant of one op at one shape: what it must move, its check, its timing. */
typedef struct {
    op_group group;
    const char *variant;          /* "fp16", "int8_fused", "fused", "gemv", "cublaslt", ... */
    const char *tag;              /* a word before the dimensions ("lm head"), or NULL */
    bool ceiling;                 /* one of the two ceilings, not of a group */
    const char *dim_names[MAX_DIMS];
    long dims[MAX_DIMS];
    int n_dims;
    char key[96];                 /* the shape in words: pairs the variants of one shape */
    double bytes;                 /* that must move through device memory */
    double flops;                 /* 0 where not reported */
    bool passed;                  /* the check against the CPU reference */
    char check[320];              /* what was compared, and how it came out */
    bool timed;
    double *samples_us;           /* [repeats] when timed */
    sample_stats us;
    double gb_per_s, pct_copy, tflop_per_s, pct_gemm;
} op_result;

typedef struct {
    const ops_options *opt;
    bench_timer timer;
    device_info device;
    op_result *ops;
    int n_ops, cap;
    op_result copy, gemm;       /* the ceilings */
    double copy_bytes_per_s;    /* of copy.us.median */
    double gemm_flops_per_s;    /* of gemm.us.median */
    int failures;               /* variants whose check failed */
    gemm_context *gemm_ctx;
} ops_run;

static op_result *new_op(ops_run *run, op_group group, const char *variant) {
    if (run->n_ops == run->cap) {
        run->cap = run->cap ? 2 * run->cap : 64;
        run->ops = realloc(run->ops, (size_t)run->cap * sizeof *run->ops);
        if (!run->ops) {
            fprintf(stderr, "gpt2 %s: out of host memory\n", CMD);
            exit(EXIT_FAILURE);
        }
    }
    op_result *r = &run->ops[run->n_ops++];
    *r = (op_result){.group = group, .variant = variant};
    return r;
}

/* Names the op's shape before its dimensions: the key becomes "lm head, rows 1, ...". */
static void op_tag(op_result *r, const char *tag) {
    r->tag = tag;
    snprintf(r->key, sizeof r->key, "%s", tag);
}

/* Appends a named dimension to the op's shape and to its key ("batch 8, context 1024"). */
static void op_dim(op_result *r, const char *name, long value) {
    if (r->n_dims == MAX_DIMS) return;
    r->dim_names[r->n_dims] = name;
    r->dims[r->n_dims++] = value;
    const size_t len = strlen(r->key);
    snprintf(r->key + len, sizeof r->key - len, "%s%s %ld", len ? ", " : "", name, value);
}

static const op_result *find_op(const ops_run *run, op_group group, const char *key,
                                const char *variant) {
    for (int i = 0; i < run->n_ops; i++) {
        const op_result *r = &run->ops[i];
        if (r->group == group && strcmp(r->key, key) == 0 && strcmp(r->variant, variant) == 0)
            return r;
    }
    return NULL;
}

static double op_us(const op_result *r) { return r && r->timed ? r->us.median : NAN; }

/* How many times faster `of` ran than `over`: over's median / of's median (NaN if either lacks). */
static double speedup(const op_result *of, const op_result *over) {
    return op_us(over) / op_us(of);
}

/* ---- timing: one helper for every op ---- */

sample_stats bench_time_op(bench_timer *t, bench_op_launch launch, const void *op,
                            double *samples_us /* [t->repeats] */) {
    cudaGraph_t graph;
    cudaGraphExec_t exec;
    CUDA_CHECK(cudaStreamBeginCapture(t->stream, cudaStreamCaptureModeThreadLocal));
    launch(op, t->stream);
    CUDA_CHECK(cudaStreamEndCapture(t->stream, &graph));
    CUDA_CHECK(cudaGraphInstantiate(&exec, graph, 0));
    CUDA_CHECK(cudaGraphDestroy(graph));
    for (int i = 0; i < t->warmup; i++) CUDA_CHECK(cudaGraphLaunch(exec, t->stream));
    for (int i = 0; i < t->repeats; i++) {
        CUDA_CHECK(cudaMemsetAsync(t->flush, i & 0x7F, t->flush_bytes, t->stream));
        CUDA_CHECK(cudaEventRecord(t->start, t->stream));
        CUDA_CHECK(cudaGraphLaunch(exec, t->stream));
        CUDA_CHECK(cudaEventRecord(t->stop, t->stream));
        CUDA_CHECK(cudaEventSynchronize(t->stop));
        float ms = 0.0f;
        CUDA_CHECK(cudaEventElapsedTime(&ms, t->start, t->stop));
        samples_us[i] = 1e3 * (double)ms;
    }
    CUDA_CHECK(cudaStreamSynchronize(t->stream));
    CUDA_CHECK(cudaGraphExecDestroy(exec));
    return bench_stats_of(samples_us, t->repeats, t->scratch);
}

/* Times a checked variant and derives its rates against the ceilings. */
static void measure(ops_run *run, op_result *r, bench_op_launch launch, const void *op) {
    r->samples_us = bench_xmalloc((size_t)run->timer.repeats * sizeof *r->samples_us);
    r->us = bench_time_op(&run->timer, launch, op, r->samples_us);
    r->timed = true;
    const double seconds = 1e-6 * r->us.median;
    r->gb_per_s = r->bytes / seconds / 1e9;
    r->pct_copy = run->copy_bytes_per_s > 0 ? 100.0 * r->bytes / seconds / run->copy_bytes_per_s
                                            : NAN;
    r->tflop_per_s = r->flops > 0 ? r->flops / seconds / 1e12 : NAN;
    r->pct_gemm = r->flops > 0 && run->gemm_flops_per_s > 0
                      ? 100.0 * r->flops / seconds / run->gemm_flops_per_s : NAN;
}

/* Runs the op once, eagerly, on the timer's stream, and waits for it. */
static void run_once(ops_run *run, bench_op_launch launch, const void *op) {
    launch(op, run->timer.stream);
    CUDA_CHECK(cudaStreamSynchronize(run->timer.stream));
}

/* ---- checks ---- */

typedef struct {
    long compared, bad;
    double worst; /* max |got - want| / tolerance (inf for NaN) */
} tally;

static void tally_close(tally *t, double got, double want, double tol) {
    const double err = fabs(got - want);
    const double ratio = err <= tol ? err / tol : (isnan(err) ? INFINITY : err / tol);
    t->compared++;
    t->bad += !(err <= tol);
    if (ratio > t->worst) t->worst = ratio;
}

static void tally_exact(tally *t, bool equal) {
    t->compared++;
    t->bad += !equal;
    if (!equal) t->worst = INFINITY;
}

/* Records a check's outcome on the op; a failure is printed at once and counted. */
static bool finish_check(ops_run *run, op_result *r, const tally *t, const char *what) {
    r->passed = t->bad == 0 && t->compared > 0;
    if (isinf(t->worst))
        snprintf(r->check, sizeof r->check, "%s: %ld of %ld values off", what, t->bad,
                 t->compared);
    else
        snprintf(r->check, sizeof r->check, "%s: %ld of %ld values off (worst %.3g of the "
                 "tolerance)", what, t->bad, t->compared, t->worst);
    if (!r->passed) {
        run->failures++;
        fprintf(stderr, "gpt2 %s: check failed: %s %s, %s: %s\n", CMD,
                r->ceiling ? "ceiling" : group_names[r->group], r->variant, r->key, r->check);
    }
    return r->passed;
}

/* ---- ceilings ---- */

typedef struct {
    void *dst;
    const void *src;
    size_t bytes;
} copy_op;

static void launch_copy(const void *p, cudaStream_t stream) {
    const copy_op *op = p;
    CUDA_CHECK(cudaMemcpyAsync(op->dst, op->src, op->bytes, cudaMemcpyDeviceToDevice, stream));
}

/* launch_linear's contract, as one op (the GEMM ceiling, and the fused GEMM + bias + GELU). */
typedef struct {
    gemm_context *ctx;
    gpt2_f16 *y;             /* [rows, N] */
    const gpt2_f16 *x, *w;   /* [rows, K], [N, K] */
    const gpt2_f16 *bias;    /* [N] or NULL */
    int rows, K, N;
    linear_epilogue epilogue;
} linear_op;

static void launch_linear_op(const void *p, cudaStream_t stream) {
    const linear_op *op = p;
    launch_linear(op->ctx, op->y, op->N, op->x, op->K, op->w, op->bias, NULL, 0, op->rows, op->K,
                  op->N, op->epilogue, stream);
}

static void measure_copy_ceiling(ops_run *run) {
    const size_t bytes = (size_t)run->opt->copy_mib << 20;
    copy_op op = {.dst = bench_device_alloc(bytes, "the copy ceiling"), .bytes = bytes};
    void *src = bench_device_alloc(bytes, "the copy ceiling");
    CUDA_CHECK(cudaMemset(src, 0x5A, bytes));
    op.src = src;
    op_result *r = &run->copy;
    *r = (op_result){.variant = "cudaMemcpyAsync", .ceiling = true, .passed = true};
    op_dim(r, "mib", run->opt->copy_mib);
    r->bytes = 2.0 * (double)bytes; /* read plus write */
    snprintf(r->check, sizeof r->check, "not checked (cudaMemcpyAsync)");
    run->copy_bytes_per_s = 0;
    measure(run, r, launch_copy, &op);
    run->copy_bytes_per_s = r->bytes / (1e-6 * r->us.median);
    r->pct_copy = 100.0;
    CUDA_CHECK(cudaFree(op.dst));
    CUDA_CHECK(cudaFree(src));
}

/* A few outputs of y = x w^T (fp16 [n, n] each) against double sums: the ceiling ran the GEMM. */
static bool check_ceiling_gemm(ops_run *run, op_result *r, const uint16_t *x, const uint16_t *w,
                               const gpt2_f16 *dev_y, int n) {
    tally t = {0};
    const uint64_t state = chunk_state(run->opt->seed, 99, 0);
    uint16_t got;
    for (int i = 0; i < CEILING_CHECK_POINTS; i++) {
        const int row = (int)(splitmix64_mix(state + 2 * (uint64_t)i) % (uint64_t)n);
        const int col = (int)(splitmix64_mix(state + 2 * (uint64_t)i + 1) % (uint64_t)n);
        double want = 0;
        for (int k = 0; k < n; k++)
            want += (double)half_to_float(x[(size_t)row * n + k]) *
                    half_to_float(w[(size_t)col * n + k]);
        download(&got, dev_y + (size_t)row * n + col, 2);
        tally_close(&t, half_to_float(got), want, ldexp(fabs(want), -10) + 1e-3 * sqrt(n / 768.0));
    }
    char what[96];
    snprintf(what, sizeof what, "%d random outputs against double sums", CEILING_CHECK_POINTS);
    return finish_check(run, r, &t, what);
}

static void measure_gemm_ceiling(ops_run *run) {
    const int n = run->opt->gemm_size;
    const size_t elems = (size_t)n * n;
    uint16_t *x = bench_xmalloc(elems * 2), *w = bench_xmalloc(elems * 2);
    fill_halves(x, elems, 1.0f, run->opt->seed, 1);
    fill_halves(w, elems, 1.0f, run->opt->seed, 2);
    linear_op op = {.ctx = run->gemm_ctx, .x = bench_device_upload(x, elems * 2, "the GEMM ceiling"),
                    .w = bench_device_upload(w, elems * 2, "the GEMM ceiling"),
                    .y = bench_device_alloc(elems * 2, "the GEMM ceiling"), .rows = n, .K = n, .N = n,
                    .epilogue = LINEAR_PLAIN};
    op_result *r = &run->gemm;
    *r = (op_result){.variant = "launch_linear (cuBLASLt)", .ceiling = true};
    op_dim(r, "m", n);
    op_dim(r, "n", n);
    op_dim(r, "k", n);
    r->bytes = 3.0 * (double)elems * 2; /* x and w read, y written */
    r->flops = 2.0 * (double)n * n * n;
    CUDA_CHECK(cudaMemset(op.y, POISON_BYTE, elems * 2));
    run_once(run, launch_linear_op, &op);
    if (check_ceiling_gemm(run, r, x, w, op.y, n)) {
        measure(run, r, launch_linear_op, &op);
        run->gemm_flops_per_s = r->flops / (1e-6 * r->us.median);
        r->pct_gemm = 100.0;
    }
    CUDA_CHECK(cudaFree((void *)op.x));
    CUDA_CHECK(cudaFree((void *)op.w));
    CUDA_CHECK(cudaFree(op.y));
    free(x);
    free(w);
}

void bench_measure_ceilings(bench_timer *t, gemm_context *gemm, int copy_mib, int gemm_size,
                            unsigned long long seed, bench_ceilings *out) {
    ops_options opt = {.copy_mib = copy_mib, .gemm_size = gemm_size, .seed = seed, .corrupt = -1};
    ops_run run = {.opt = &opt, .timer = *t, .gemm_ctx = gemm};
    measure_copy_ceiling(&run);
    measure_gemm_ceiling(&run);
    *out = (bench_ceilings){.copy_bytes_per_s = run.copy_bytes_per_s,
                            .gemm_flops_per_s = run.gemm_flops_per_s,
                            .copy_us = run.copy.us.median,
                            .gemm_us = run.gemm.timed ? run.gemm.us.median : NAN,
                            .copy_mib = copy_mib, .gemm_size = gemm_size};
    free(run.copy.samples_us);
    free(run.gemm.samples_us);
}

/* ---- decode attention ---- */

typedef enum { ATTN_FP16, ATTN_INT8_FUSED, ATTN_INT8_UNFUSED, N_ATTN } attn_variant;
static const char *const attn_names[N_ATTN] = {"fp16", "int8_fused", "int8_unfused"};

/*
 * One layer's pool holding max_seqs sequences of max_len tokens, in both formats (independent
 * random data), its pages handed out in a shuffled order; each (batch, context) pair uses the
 * first `batch` sequences at length `context`. Host copies are kept for the CPU reference.
 */
typedef struct {
    int n_head, max_seqs, max_len, max_blocks, num_blocks;
    uint16_t *k16, *v16;        /* [num_blocks, n_head, B, 64] host fp16 pages */
    int8_t *k8, *v8;            /* [num_blocks, n_head, B, 64] host int8 codes */
    uint16_t *ks, *vs;          /* [num_blocks, n_head, B] host int8 scales */
    int32_t *tables;            /* [max_seqs, max_blocks] host block tables */
    uint16_t *q;                /* [max_seqs, 3C] host queries (inside a qkv row) */
    paged_kv_layer fp16, int8;  /* the device pool, one table for both formats */
    paged_kv_layer scratch;     /* unfused: fp16 scratch pages, compact tables */
    int scratch_blocks;         /* max_seqs * max_blocks */
    gpt2_f16 *dev_q, *out;      /* [max_seqs, 3C], [max_seqs, C] */
    float *workspace;           /* [workspace_bytes / 4] */
    size_t workspace_bytes;
    int32_t *lens;              /* [max_seqs] device sequence lengths */
} attention_pool;

/* Device bytes attention_pool_create allocates. */
static double attention_pool_bytes(int n_head, int max_seqs, int max_len) {
    const double blocks = (double)max_seqs * CEIL_DIV(max_len, BLOCK_SIZE);
    const double rows = blocks * n_head * BLOCK_SIZE;
    return rows * HEAD * (2 * 2 + 2 * 1 + 2 * 2) + rows * 2 * 2 + blocks * 4 * 2 +
           (double)attention_decode_workspace_bytes(max_seqs, n_head, max_len) +
           (double)max_seqs * n_head * HEAD * 2 * 4;
}

static void attention_pool_create(attention_pool *p, const ops_options *opt, int max_seqs,
                                  int max_len) {
    const int H = opt->n_head, C = H * HEAD;
    *p = (attention_pool){.n_head = H, .max_seqs = max_seqs, .max_len = max_len,
                          .max_blocks = CEIL_DIV(max_len, BLOCK_SIZE)};
    p->num_blocks = p->scratch_blocks = max_seqs * p->max_blocks;
    const size_t rows = (size_t)p->num_blocks * H * BLOCK_SIZE, elems = rows * HEAD;
    const uint64_t seed = opt->seed;
    p->k16 = bench_xmalloc(elems * 2);
    p->v16 = bench_xmalloc(elems * 2);
    p->k8 = bench_xmalloc(elems);
    p->v8 = bench_xmalloc(elems);
    p->ks = bench_xmalloc(rows * 2);
    p->vs = bench_xmalloc(rows * 2);
    fill_halves(p->k16, elems, 1.0f, seed, 10);
    fill_halves(p->v16, elems, 1.0f, seed, 11);
    fill_random(p->k8, elems, RANDOM_CODES, 0.0f, seed, 12);
    fill_random(p->v8, elems, RANDOM_CODES, 0.0f, seed, 13);
    fill_random(p->ks, rows, RANDOM_SCALES, 0.0f, seed, 14);
    fill_random(p->vs, rows, RANDOM_SCALES, 0.0f, seed, 15);
    p->tables = shuffled_ids(p->num_blocks, seed, 16); /* row s: the blocks of sequence s */
    p->q = bench_xmalloc((size_t)max_seqs * 3 * C * 2);
    fill_halves(p->q, (size_t)max_seqs * 3 * C, 1.0f, seed, 17);
    const size_t table_bytes = (size_t)p->num_blocks * sizeof *p->tables;
    const int32_t *dev_tables = bench_device_upload(p->tables, table_bytes, "block tables");
    p->fp16 = (paged_kv_layer){.k = bench_device_upload(p->k16, elems * 2, "fp16 K pages"),
                               .v = bench_device_upload(p->v16, elems * 2, "fp16 V pages"),
                               .block_tables = dev_tables, .max_blocks_per_seq = p->max_blocks,
                               .block_size = BLOCK_SIZE, .n_head = H, .format = PAGED_KV_FP16};
    p->int8 = (paged_kv_layer){.block_tables = dev_tables, .max_blocks_per_seq = p->max_blocks,
                               .block_size = BLOCK_SIZE, .n_head = H, .format = PAGED_KV_INT8,
                               .k_codes = bench_device_upload(p->k8, elems, "int8 K codes"),
                               .v_codes = bench_device_upload(p->v8, elems, "int8 V codes"),
                               .k_scales = bench_device_upload(p->ks, rows * 2, "int8 K scales"),
                               .v_scales = bench_device_upload(p->vs, rows * 2, "int8 V scales")};
    /* The unfused path's scratch, as the engine's: block s * max_blocks + b for sequence s. */
    int32_t *compact = bench_xmalloc(table_bytes);
    for (int i = 0; i < p->num_blocks; i++) compact[i] = i;
    p->scratch = (paged_kv_layer){.k = bench_device_alloc(elems * 2, "the unfused fp16 K scratch"),
                                  .v = bench_device_alloc(elems * 2, "the unfused fp16 V scratch"),
                                  .block_tables = bench_device_upload(compact, table_bytes, "tables"),
                                  .max_blocks_per_seq = p->max_blocks, .block_size = BLOCK_SIZE,
                                  .n_head = H, .format = PAGED_KV_FP16};
    free(compact);
    p->dev_q = bench_device_upload(p->q, (size_t)max_seqs * 3 * C * 2, "queries");
    p->out = bench_device_alloc((size_t)max_seqs * C * 2, "attention output");
    p->workspace_bytes = attention_decode_workspace_bytes(max_seqs, H, max_len);
    p->workspace = p->workspace_bytes ? bench_device_alloc(p->workspace_bytes, "attention workspace")
                                      : NULL;
    p->lens = bench_device_alloc((size_t)max_seqs * sizeof(int32_t), "sequence lengths");
}

static void attention_pool_destroy(attention_pool *p) {
    const void *dev[] = {p->fp16.k, p->fp16.v, p->fp16.block_tables, p->int8.k_codes,
                         p->int8.v_codes, p->int8.k_scales, p->int8.v_scales, p->scratch.k,
                         p->scratch.v, p->scratch.block_tables, p->dev_q, p->out, p->workspace,
                         p->lens};
    for (size_t i = 0; i < sizeof dev / sizeof *dev; i++)
        if (dev[i]) CUDA_CHECK(cudaFree((void *)dev[i]));
    free(p->k16), free(p->v16), free(p->k8), free(p->v8), free(p->ks), free(p->vs);
    free(p->tables), free(p->q);
}

typedef struct {
    const attention_pool *p;
    int batch, context;
} attention_op;

static void launch_attention_with(const attention_op *op, paged_kv_layer kv, cudaStream_t s) {
    const attention_pool *p = op->p;
    launch_attention_decode(p->out, p->workspace, p->workspace_bytes, p->dev_q,
                            3 * p->n_head * HEAD, kv, p->lens, op->batch, op->context, s);
}

static void launch_attention_fp16(const void *o, cudaStream_t s) {
    const attention_op *op = o;
    launch_attention_with(op, op->p->fp16, s);
}

static void launch_attention_int8(const void *o, cudaStream_t s) {
    const attention_op *op = o;
    launch_attention_with(op, op->p->int8, s);
}

static void launch_attention_unfused(const void *o, cudaStream_t s) {
    const attention_op *op = o;
    const attention_pool *p = op->p;
    launch_kv_dequantize((gpt2_f16 *)p->scratch.k, (gpt2_f16 *)p->scratch.v,
                         p->scratch.block_tables, p->scratch_blocks, p->int8, p->lens, op->batch,
                         op->context, s);
    launch_attention_with(op, p->scratch, s);
}

static const bench_op_launch attn_launchers[N_ATTN] = {launch_attention_fp16, launch_attention_int8,
                                                 launch_attention_unfused};

/*
 * Bytes each variant must move, for `batch` sequences of `context` tokens, H heads:
 *   every variant: q and out (batch * H * 64 * 2 each), the block tables
 *     (batch * ceil(context / 16) * 4) and the lengths (batch * 4);
 *   fp16:         + K and V pages, batch * context * H * 64 * 2 each;
 *   int8 fused:   + K and V codes and scales, batch * context * H * (64 + 2) each;
 *   int8 unfused: + the dequantize's read of the codes and scales and its write of the fp16
 *                 scratch (and its own tables and lengths), then the fp16 kernel's read of that
 *                 scratch: batch * context * H * (66 + 128 + 128) each for K and V.
 * The decode kernel's partial results (its workspace, above 256 tokens) are not counted.
 */
static double attention_bytes(attn_variant v, int batch, int context, int H) {
    const double rows = (double)batch * context * H; /* (token, head) rows of K, and of V */
    const double tables = (double)batch * CEIL_DIV(context, BLOCK_SIZE) * 4 + batch * 4.0;
    const double common = 2.0 * batch * H * HEAD * 2 + tables;
    switch (v) {
    case ATTN_FP16: return common + 2 * rows * HEAD * 2;
    case ATTN_INT8_FUSED: return common + 2 * rows * (HEAD + 2);
    default: return common + tables + 2 * rows * ((HEAD + 2) + 2 * HEAD * 2);
    }
}

/* Rows [0, n) of sequence s as variant v's kernels see them, in fp32, all heads side by side. */
static void attention_rows(const attention_pool *p, attn_variant v, int s, int n,
                           float *k /* [n, C] */, float *vv /* [n, C] */) {
    const int H = p->n_head, C = H * HEAD;
    for (int t = 0; t < n; t++) {
        const int64_t block = p->tables[(size_t)s * p->max_blocks + t / BLOCK_SIZE];
        for (int h = 0; h < H; h++) {
            const size_t row = (size_t)((block * H + h) * BLOCK_SIZE + t % BLOCK_SIZE);
            float *kd = k + (size_t)t * C + h * HEAD, *vd = vv + (size_t)t * C + h * HEAD;
            if (v == ATTN_FP16) {
                for (int d = 0; d < HEAD; d++) {
                    kd[d] = half_to_float(p->k16[row * HEAD + d]);
                    vd[d] = half_to_float(p->v16[row * HEAD + d]);
                }
                continue;
            }
            kv_dequantize_head(kd, p->k8 + row * HEAD, p->ks[row]);
            kv_dequantize_head(vd, p->v8 + row * HEAD, p->vs[row]);
            if (v == ATTN_INT8_UNFUSED) /* the scratch holds them rounded to fp16 */
                for (int d = 0; d < HEAD; d++) {
                    kd[d] = half_to_float(float_to_half(kd[d]));
                    vd[d] = half_to_float(float_to_half(vd[d]));
                }
        }
    }
}

/* The i-th of n sequences checked out of batch: 0, batch - 1 and evenly between. */
static int checked_seq(int i, int n, int batch) {
    return n <= 1 ? 0 : (int)((double)i * (batch - 1) / (n - 1) + 0.5);
}

/*
 * Every output row written (the poison gone), and the checked sequences against
 * cpu_causal_attention of the last position over the rows the variant reads. Tolerance, as in
 * tests/test_attention_decode_gpu.c: |gpu - cpu| <= 1e-3 |cpu| + 1e-4.
 */
static bool check_attention(ops_run *run, const attention_pool *p, attn_variant v,
                            const attention_op *op, op_result *r) {
    const int H = p->n_head, C = H * HEAD, B = op->batch, T = op->context;
    CUDA_CHECK(cudaMemset(p->out, POISON_BYTE, (size_t)B * C * 2));
    if (v == ATTN_INT8_UNFUSED)
        CUDA_CHECK(cudaMemset((void *)p->scratch.k, POISON_BYTE,
                              (size_t)B * p->max_blocks * H * BLOCK_SIZE * HEAD * 2));
    run_once(run, attn_launchers[v], op);
    uint16_t *out = bench_xmalloc((size_t)B * C * 2);
    download(out, p->out, (size_t)B * C * 2);
    if (run->opt->corrupt == GROUP_ATTENTION) out[0] = float_to_half(half_to_float(out[0]) + 1.0f);
    long unwritten = 0; /* rows with a value still poisoned */
    for (int s = 0; s < B; s++) {
        bool poisoned = false;
        for (int c = 0; c < C; c++) poisoned |= out[(size_t)s * C + c] == POISON_HALF;
        unwritten += poisoned;
    }
    tally t = {0};
    const int n_checked = B < run->opt->check_seqs ? B : run->opt->check_seqs;
    float *k = bench_xmalloc((size_t)T * C * 4), *vv = bench_xmalloc((size_t)T * C * 4);
    const float **k_rows = bench_xmalloc((size_t)T * sizeof *k_rows);
    const float **v_rows = bench_xmalloc((size_t)T * sizeof *v_rows);
    float *scores = bench_xmalloc((size_t)T * 4), q[8192], want[8192];
    for (int i = 0; i < n_checked; i++) {
        const int s = checked_seq(i, n_checked, B);
        attention_rows(p, v, s, T, k, vv);
        for (int j = 0; j < T; j++) k_rows[j] = k + (size_t)j * C, v_rows[j] = vv + (size_t)j * C;
        for (int c = 0; c < C; c++) q[c] = half_to_float(p->q[(size_t)s * 3 * C + c]);
        cpu_causal_attention(want, q, C, k_rows, v_rows, T - 1, 1, H, scores);
        for (int c = 0; c < C; c++)
            tally_close(&t, half_to_float(out[(size_t)s * C + c]), want[c],
                        1e-3 * fabs(want[c]) + 1e-4);
    }
    t.bad += unwritten;
    char what[160];
    snprintf(what, sizeof what, "%d of %d sequences against cpu_causal_attention (%s rows), "
             "%ld of %d rows unwritten", n_checked, B,
             v == ATTN_FP16 ? "fp16" : v == ATTN_INT8_FUSED ? "dequantized" : "dequantized, fp16",
             unwritten, B);
    free(out), free(k), free(vv), free(k_rows), free(v_rows), free(scores);
    return finish_check(run, r, &t, what);
}

static int run_attention(ops_run *run) {
    const ops_options *opt = run->opt;
    int contexts[MAX_LIST + 1];
    const int n_contexts = attention_contexts(opt, contexts);
    const int max_seqs = max_of(opt->batches, opt->n_batches);
    const int max_len = max_of(contexts, n_contexts);
    if (opt->n_head * HEAD > 8192)
        return cli_error(CMD, "--heads %d: at most 128 heads of 64", opt->n_head);
    size_t free_bytes = 0, total_bytes = 0;
    CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
    const double need = attention_pool_bytes(opt->n_head, max_seqs, max_len);
    if (need > 0.9 * (double)free_bytes)
        return cli_error(CMD, "decode attention at batch %d and context %d needs %.1f GiB of "
                         "device memory, %.1f GiB are free: lower --batches or --long-context",
                         max_seqs, max_len, need / 1073741824.0, free_bytes / 1073741824.0);
    fprintf(stderr, "gpt2 %s: decode attention: a pool of %d sequences x %d tokens, %d heads "
            "(%.2f GiB on the device)\n", CMD, max_seqs, max_len, opt->n_head,
            need / 1073741824.0);
    attention_pool p;
    attention_pool_create(&p, opt, max_seqs, max_len);
    int32_t *lens = bench_xmalloc((size_t)max_seqs * sizeof *lens);
    for (int ci = 0; ci < n_contexts; ci++)
        for (int bi = 0; bi < opt->n_batches; bi++) {
            const attention_op op = {&p, opt->batches[bi], contexts[ci]};
            for (int i = 0; i < op.batch; i++) lens[i] = op.context;
            CUDA_CHECK(cudaMemcpy(p.lens, lens, (size_t)op.batch * sizeof *lens,
                                  cudaMemcpyHostToDevice));
            for (int v = 0; v < N_ATTN; v++) {
                op_result *r = new_op(run, GROUP_ATTENTION, attn_names[v]);
                op_dim(r, "batch", op.batch);
                op_dim(r, "context", op.context);
                r->bytes = attention_bytes((attn_variant)v, op.batch, op.context, opt->n_head);
                if (check_attention(run, &p, (attn_variant)v, &op, r))
                    measure(run, r, attn_launchers[v], &op);
            }
        }
    free(lens);
    attention_pool_destroy(&p);
    return 0;
}

/* ---- KV write ---- */

typedef enum { WRITE_FP16, WRITE_INT8_FUSED, WRITE_INT8_UNFUSED, N_WRITE } write_variant;
static const char *const write_names[N_WRITE] = {"fp16", "int8_fused", "int8_unfused"};

typedef struct {
    int n_head, num_blocks, staged_blocks, n_tokens;
    const gpt2_f16 *qkv;          /* [n_tokens, 3C] */
    const int64_t *slots;         /* [n_tokens] destination slots */
    const int64_t *row_slots;     /* [n_tokens] i -> i: the unfused path's staging slots */
    gpt2_f16 *k16, *v16;          /* [num_blocks, H, B, 64] fp16 pool */
    int8_t *k8, *v8;              /* [num_blocks, H, B, 64] int8 pool */
    gpt2_f16 *ks, *vs;            /* [num_blocks, H, B] its scales */
    gpt2_f16 *staged_k, *staged_v; /* [staged_blocks, H, B, 64] unfused staging */
} kv_write_op;

static void launch_write_fp16(const void *o, cudaStream_t s) {
    const kv_write_op *op = o;
    launch_kv_write_fp16(op->k16, op->v16, op->qkv, 3 * op->n_head * HEAD, op->slots, op->n_tokens,
                         op->n_head, BLOCK_SIZE, op->num_blocks, s);
}

static void launch_write_int8(const void *o, cudaStream_t s) {
    const kv_write_op *op = o;
    launch_kv_write_int8(op->k8, op->ks, op->v8, op->vs, op->qkv, 3 * op->n_head * HEAD, op->slots,
                         op->n_tokens, op->n_head, BLOCK_SIZE, op->num_blocks, s);
}

static void launch_write_unfused(const void *o, cudaStream_t s) {
    const kv_write_op *op = o;
    launch_kv_write_fp16(op->staged_k, op->staged_v, op->qkv, 3 * op->n_head * HEAD, op->row_slots,
                         op->n_tokens, op->n_head, BLOCK_SIZE, op->staged_blocks, s);
    launch_kv_quantize(op->k8, op->ks, op->v8, op->vs, op->num_blocks, op->staged_k, op->staged_v,
                       op->staged_blocks, op->row_slots, op->slots, op->n_tokens, op->n_head,
                       BLOCK_SIZE, s);
}

static const bench_op_launch write_launchers[N_WRITE] = {launch_write_fp16, launch_write_int8,
                                                   launch_write_unfused};

/*
 * Bytes for n tokens, C = 64 H:
 *   fp16:         K and V read from qkv (n * 2C * 2), written to the pages (n * 2C * 2), slots
 *                 (n * 8);
 *   int8 fused:   the same read, codes and scales written (n * 2 * (C + 2H)), slots;
 *   int8 unfused: the fp16 write into staging pages (n * 2C * 2 read, n * 2C * 2 written, n * 8),
 *                 then the quantize's read of them (n * 2C * 2), its write of codes and scales
 *                 (n * 2 * (C + 2H)) and its two slot lists (n * 16).
 */
static double write_bytes(write_variant v, int n, int H) {
    const double C = (double)H * HEAD, fp16_rows = (double)n * 2 * C * 2;
    const double int8_rows = (double)n * 2 * (C + 2.0 * H);
    switch (v) {
    case WRITE_FP16: return 2 * fp16_rows + n * 8.0;
    case WRITE_INT8_FUSED: return fp16_rows + int8_rows + n * 8.0;
    default: return 3 * fp16_rows + int8_rows + n * 24.0;
    }
}

/* The whole pool after the write, bit for bit: poison except at the tokens' rows. */
static bool check_write(ops_run *run, const kv_write_op *op, write_variant v, const uint16_t *qkv,
                        const int64_t *slots, op_result *r) {
    const int H = op->n_head, C = H * HEAD;
    const size_t rows = (size_t)op->num_blocks * H * BLOCK_SIZE, elems = rows * HEAD;
    const bool fp16 = v == WRITE_FP16;
    if (fp16) {
        CUDA_CHECK(cudaMemset(op->k16, POISON_BYTE, elems * 2));
        CUDA_CHECK(cudaMemset(op->v16, POISON_BYTE, elems * 2));
    } else {
        CUDA_CHECK(cudaMemset(op->k8, POISON_BYTE, elems));
        CUDA_CHECK(cudaMemset(op->v8, POISON_BYTE, elems));
        CUDA_CHECK(cudaMemset(op->ks, POISON_BYTE, rows * 2));
        CUDA_CHECK(cudaMemset(op->vs, POISON_BYTE, rows * 2));
    }
    run_once(run, write_launchers[v], op);
    const size_t value_bytes = fp16 ? 2 : 1;
    unsigned char *got[2], *want[2];
    uint16_t *got_scales[2], *want_scales[2];
    for (int kv = 0; kv < 2; kv++) {
        got[kv] = bench_xmalloc(elems * value_bytes);
        want[kv] = bench_xmalloc(elems * value_bytes);
        memset(want[kv], POISON_BYTE, elems * value_bytes);
        got_scales[kv] = bench_xmalloc(rows * 2);
        want_scales[kv] = bench_xmalloc(rows * 2);
        memset(want_scales[kv], POISON_BYTE, rows * 2);
        if (fp16) {
            download(got[kv], kv ? (void *)op->v16 : (void *)op->k16, elems * 2);
            memset(got_scales[kv], POISON_BYTE, rows * 2);
        } else {
            download(got[kv], kv ? (void *)op->v8 : (void *)op->k8, elems);
            download(got_scales[kv], kv ? op->vs : op->ks, rows * 2);
        }
    }
    for (int i = 0; i < op->n_tokens; i++) {
        const int64_t block = slots[i] / BLOCK_SIZE, offset = slots[i] % BLOCK_SIZE;
        for (int kv = 0; kv < 2; kv++)
            for (int h = 0; h < H; h++) {
                const size_t row = (size_t)((block * H + h) * BLOCK_SIZE + offset);
                const uint16_t *src = qkv + (size_t)i * 3 * C + (size_t)(1 + kv) * C + h * HEAD;
                if (fp16) {
                    memcpy(want[kv] + row * HEAD * 2, src, HEAD * 2);
                    continue;
                }
                float x[HEAD];
                for (int d = 0; d < HEAD; d++) x[d] = half_to_float(src[d]);
                kv_quantize_head((int8_t *)want[kv] + row * HEAD, &want_scales[kv][row], x);
            }
    }
    if (run->opt->corrupt == GROUP_KV_WRITE) {
        const int64_t row = (slots[0] / BLOCK_SIZE * H) * BLOCK_SIZE + slots[0] % BLOCK_SIZE;
        got[0][(size_t)row * HEAD * value_bytes] ^= 1;
    }
    tally t = {0};
    for (int kv = 0; kv < 2; kv++) {
        for (size_t i = 0; i < elems * value_bytes; i++) tally_exact(&t, got[kv][i] == want[kv][i]);
        for (size_t i = 0; !fp16 && i < rows; i++)
            tally_exact(&t, got_scales[kv][i] == want_scales[kv][i]);
        free(got[kv]), free(want[kv]), free(got_scales[kv]), free(want_scales[kv]);
    }
    char what[160];
    snprintf(what, sizeof what, "the whole pool bit for bit against %s (poison elsewhere)",
             fp16 ? "the page layout" : "kv_quantize_head");
    return finish_check(run, r, &t, what);
}

static int run_kv_write(ops_run *run) {
    const ops_options *opt = run->opt;
    const int H = opt->n_head, C = H * HEAD;
    const int max_batch = max_of(opt->batches, opt->n_batches);
    const int max_tokens = max_batch > opt->rows ? max_batch : opt->rows;
    const int span = max_batch > CEIL_DIV(opt->rows, BLOCK_SIZE) ? max_batch
                                                                 : CEIL_DIV(opt->rows, BLOCK_SIZE);
    kv_write_op op = {.n_head = H, .num_blocks = 2 * span + 1,
                   .staged_blocks = CEIL_DIV(max_tokens, BLOCK_SIZE)};
    const size_t rows = (size_t)op.num_blocks * H * BLOCK_SIZE, elems = rows * HEAD;
    const size_t staged = (size_t)op.staged_blocks * H * BLOCK_SIZE * HEAD;
    uint16_t *qkv = bench_xmalloc((size_t)max_tokens * 3 * C * 2);
    fill_halves(qkv, (size_t)max_tokens * 3 * C, 4.0f, opt->seed, 20);
    int64_t *slots = bench_xmalloc((size_t)max_tokens * sizeof *slots);
    int64_t *row_slots = bench_xmalloc((size_t)max_tokens * sizeof *row_slots);
    for (int i = 0; i < max_tokens; i++) row_slots[i] = i;
    op.qkv = bench_device_upload(qkv, (size_t)max_tokens * 3 * C * 2, "qkv rows");
    op.row_slots = bench_device_upload(row_slots, (size_t)max_tokens * 8, "staging slots");
    int64_t *dev_slots = bench_device_alloc((size_t)max_tokens * 8, "slots");
    op.slots = dev_slots;
    op.k16 = bench_device_alloc(elems * 2, "fp16 K pages");
    op.v16 = bench_device_alloc(elems * 2, "fp16 V pages");
    op.k8 = bench_device_alloc(elems, "int8 K codes");
    op.v8 = bench_device_alloc(elems, "int8 V codes");
    op.ks = bench_device_alloc(rows * 2, "int8 K scales");
    op.vs = bench_device_alloc(rows * 2, "int8 V scales");
    op.staged_k = bench_device_alloc(staged * 2, "staging K pages");
    op.staged_v = bench_device_alloc(staged * 2, "staging V pages");
    int32_t *blocks = shuffled_ids(op.num_blocks, opt->seed, 21);
    /* Decode: one token per sequence, each in a block of its own; prefill: one sequence's rows. */
    for (int m = 0; m <= opt->n_batches; m++) {
        const bool prefill = m == opt->n_batches;
        op.n_tokens = prefill ? opt->rows : opt->batches[m];
        for (int i = 0; i < op.n_tokens; i++)
            slots[i] = prefill ? (int64_t)blocks[i / BLOCK_SIZE] * BLOCK_SIZE + i % BLOCK_SIZE
                               : (int64_t)blocks[i] * BLOCK_SIZE +
                                     (int64_t)(splitmix64_mix((uint64_t)i) % BLOCK_SIZE);
        CUDA_CHECK(cudaMemcpy(dev_slots, slots, (size_t)op.n_tokens * 8, cudaMemcpyHostToDevice));
        for (int v = 0; v < N_WRITE; v++) {
            op_result *r = new_op(run, GROUP_KV_WRITE, write_names[v]);
            op_dim(r, prefill ? "prefill tokens" : "decode tokens", op.n_tokens);
            r->bytes = write_bytes((write_variant)v, op.n_tokens, H);
            if (check_write(run, &op, (write_variant)v, qkv, slots, r))
                measure(run, r, write_launchers[v], &op);
        }
    }
    const void *dev[] = {op.qkv, op.row_slots, dev_slots, op.k16, op.v16, op.k8, op.v8, op.ks,
                         op.vs, op.staged_k, op.staged_v};
    for (size_t i = 0; i < sizeof dev / sizeof *dev; i++) CUDA_CHECK(cudaFree((void *)dev[i]));
    free(qkv), free(slots), free(row_slots), free(blocks);
    return 0;
}

/* ---- the decode GEMV against cuBLASLt ---- */

typedef struct {
    void *y;                 /* [rows, N] fp16, or fp32 for the LM head */
    const gpt2_f16 *x, *w;   /* [rows, K], [N, K] */
    const gpt2_f16 *bias;    /* [N]; unused by the LM head */
    int rows, K, N;
    bool logits;             /* the LM head: fp32 out, no bias */
    gemm_context *ctx;       /* for the cuBLASLt variant */
} gemv_op;

static void launch_gemv_op(const void *o, cudaStream_t stream) {
    const gemv_op *op = o;
    if (op->logits)
        launch_gemv_f32_out(op->y, op->N, op->x, op->K, op->w, op->rows, op->K, op->N, stream);
    else
        launch_gemv_f16(op->y, op->N, op->x, op->K, op->w, op->bias, NULL, 0, op->rows, op->K,
                        op->N, LINEAR_PLAIN, stream);
}

/* The same product through cuBLASLt, configured as launch_linear configures it past 8 rows. */
static void launch_cublaslt_op(const void *o, cudaStream_t stream) {
    const gemv_op *op = o;
    if (op->logits)
        launch_linear_f32_out_cublaslt(op->ctx, op->y, op->N, op->x, op->K, op->w, op->rows, op->K,
                                       op->N, stream);
    else
        launch_linear_cublaslt(op->ctx, op->y, op->N, op->x, op->K, op->w, op->bias, NULL, 0,
                               op->rows, op->K, op->N, LINEAR_PLAIN, stream);
}

/*
 * Against cpu_matmul_bias over the same fp16 inputs, tolerance as tests/test_gemv_gpu.c:
 * |gpu - cpu| <= 2^-10 |cpu| + 1e-3 sqrt(K / 768) (fp32 sums in another order, fp16 out).
 */
static bool check_gemv(ops_run *run, op_result *r, const void *dev_y, bool logits, int rows, int K,
                       int N, const float *ref /* [>= rows, N] */) {
    const size_t n = (size_t)rows * N;
    tally t = {0};
    const double abs_tol = 1e-3 * sqrt(K / 768.0);
    if (logits) {
        float *y = bench_xmalloc(n * 4);
        download(y, dev_y, n * 4);
        if (run->opt->corrupt == GROUP_GEMV) y[0] += 1.0f;
        for (size_t i = 0; i < n; i++)
            tally_close(&t, y[i], ref[i], ldexp(fabs(ref[i]), -10) + abs_tol);
        free(y);
    } else {
        uint16_t *y = bench_xmalloc(n * 2);
        download(y, dev_y, n * 2);
        if (run->opt->corrupt == GROUP_GEMV) y[0] = float_to_half(half_to_float(y[0]) + 1.0f);
        for (size_t i = 0; i < n; i++)
            tally_close(&t, half_to_float(y[i]), ref[i], ldexp(fabs(ref[i]), -10) + abs_tol);
        free(y);
    }
    return finish_check(run, r, &t, "every output against cpu_matmul_bias");
}

/* Bytes: the weights (N K 2), x (rows K 2), the bias (N 2, not for the LM head), y (rows N 2, 4
 * for logits). FLOPs: 2 rows K N. */
static void gemv_shape_run(ops_run *run, gemv_shape shape, bool logits) {
    const ops_options *opt = run->opt;
    const int K = shape.k, N = shape.n, max_rows = max_of(opt->gemv_rows, opt->n_gemv_rows);
    const size_t out_size = logits ? 4 : 2, w_elems = (size_t)N * K;
    uint16_t *x = bench_xmalloc((size_t)max_rows * K * 2), *w = bench_xmalloc(w_elems * 2);
    uint16_t *bias = bench_xmalloc((size_t)N * 2);
    const uint64_t stream = 30 + 4 * (uint64_t)(K + 7 * (uint64_t)N);
    fill_halves(x, (size_t)max_rows * K, 1.0f, opt->seed, stream);
    fill_halves(w, w_elems, 1.0f, opt->seed, stream + 1);
    fill_halves(bias, (size_t)N, 1.0f, opt->seed, stream + 2);
    /* The reference, every row at once: w as cpu_ops' [in, out]. */
    float *xf = floats_of(x, (size_t)max_rows * K), *bf = floats_of(bias, (size_t)N);
    float *wt = bench_xmalloc(w_elems * 4), *ref = bench_xmalloc((size_t)max_rows * N * 4);
    PARALLEL_FOR
    for (long k = 0; k < K; k++)
        for (int n = 0; n < N; n++) wt[(size_t)k * N + n] = half_to_float(w[(size_t)n * K + k]);
    if (logits) memset(bf, 0, (size_t)N * 4);
    cpu_matmul_bias(ref, xf, wt, bf, max_rows, K, N);
    free(wt), free(xf), free(bf);

    gemv_op op = {.ctx = run->gemm_ctx,
                  .x = bench_device_upload(x, (size_t)max_rows * K * 2, "GEMV input"),
                  .w = bench_device_upload(w, w_elems * 2, "GEMV weights"),
                  .bias = logits ? NULL : bench_device_upload(bias, (size_t)N * 2, "GEMV bias"),
                  .y = bench_device_alloc((size_t)max_rows * N * out_size, "GEMV output"), .K = K,
                  .N = N, .logits = logits};
    for (int ri = 0; ri < opt->n_gemv_rows; ri++) {
        op.rows = opt->gemv_rows[ri];
        const double bytes = (double)w_elems * 2 + (double)op.rows * K * 2 +
                             (logits ? 0.0 : N * 2.0) + (double)op.rows * N * out_size;
        for (int v = 0; v < 2; v++) {
            op_result *r = new_op(run, GROUP_GEMV, v == 0 ? "gemv" : "cublaslt");
            if (logits) op_tag(r, "lm head");
            op_dim(r, "rows", op.rows);
            op_dim(r, "k", K);
            op_dim(r, "n", N);
            r->bytes = bytes;
            r->flops = 2.0 * op.rows * K * N;
            CUDA_CHECK(cudaMemset(op.y, POISON_BYTE, (size_t)op.rows * N * out_size));
            const bench_op_launch launch = v == 0 ? launch_gemv_op : launch_cublaslt_op;
            run_once(run, launch, &op);
            if (check_gemv(run, r, op.y, logits, op.rows, K, N, ref)) measure(run, r, launch, &op);
        }
    }
    CUDA_CHECK(cudaFree((void *)op.x));
    CUDA_CHECK(cudaFree((void *)op.w));
    if (op.bias) CUDA_CHECK(cudaFree((void *)op.bias));
    CUDA_CHECK(cudaFree(op.y));
    free(x), free(w), free(bias), free(ref);
}

static int run_gemv(ops_run *run) {
    for (int i = 0; i < run->opt->n_gemv; i++) gemv_shape_run(run, run->opt->gemv[i], false);
    if (run->opt->lm_head.n > 0) gemv_shape_run(run, run->opt->lm_head, true);
    return 0;
}

/* ---- residual add + layernorm ---- */

typedef struct {
    gpt2_f16 *residual, *normed;     /* [T, C] */
    const gpt2_f16 *x, *gamma, *beta; /* [T, C], [C], [C] */
    int T, C;
} layernorm_op;

static void launch_ln_fused(const void *o, cudaStream_t s) {
    const layernorm_op *op = o;
    launch_residual_layernorm(op->residual, op->normed, op->x, op->gamma, op->beta, op->T, op->C,
                              LN_EPS, s);
}

static void launch_ln_unfused(const void *o, cudaStream_t s) {
    const layernorm_op *op = o;
    launch_residual_add(op->residual, op->x, (size_t)op->T * op->C, s);
    launch_layernorm(op->normed, op->residual, op->gamma, op->beta, op->T, op->C, LN_EPS, s);
}

/*
 * The new residual bit for bit (fp16 of the fp32 sum), and the normed rows against
 * cpu_layernorm (double statistics) of that residual, within the bound of
 * tests/test_layernorm_gpu.c: e32 = 1e-5 (|gamma| (|xhat| + mean|x| / std) + |beta|) for the fp32
 * statistics, plus half an fp16 ulp of the output (2^-11 |y| + 2^-25).
 */
static bool check_layernorm(ops_run *run, op_result *r, bench_op_launch launch, const layernorm_op *op,
                            const uint16_t *residual, const uint16_t *x, const uint16_t *gamma,
                            const uint16_t *beta) {
    const int T = op->T, C = op->C;
    const size_t n = (size_t)T * C;
    CUDA_CHECK(cudaMemcpy(op->residual, residual, n * 2, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemset(op->normed, POISON_BYTE, n * 2));
    run_once(run, launch, op);
    uint16_t *got_r = bench_xmalloc(n * 2), *got_n = bench_xmalloc(n * 2);
    download(got_r, op->residual, n * 2);
    download(got_n, op->normed, n * 2);
    if (run->opt->corrupt == GROUP_LAYERNORM)
        got_n[0] = float_to_half(half_to_float(got_n[0]) + 1.0f);
    tally t = {0};
    float *sum = bench_xmalloc(n * 4), *ref = bench_xmalloc(n * 4), *xhat = bench_xmalloc(n * 4);
    float *g = floats_of(gamma, (size_t)C), *b = floats_of(beta, (size_t)C);
    float *ones = bench_xmalloc((size_t)C * 4), *zeros = calloc((size_t)C, 4);
    for (int c = 0; c < C; c++) ones[c] = 1.0f;
    for (size_t i = 0; i < n; i++) {
        const uint16_t want = float_to_half(half_to_float(residual[i]) + half_to_float(x[i]));
        tally_exact(&t, got_r[i] == want);
        sum[i] = half_to_float(want);
    }
    cpu_layernorm(ref, sum, g, b, T, C, LN_EPS);
    cpu_layernorm(xhat, sum, ones, zeros, T, C, LN_EPS);
    for (int row = 0; row < T; row++) {
        const float *s = sum + (size_t)row * C;
        double mean = 0, mean_abs = 0, var = 0;
        for (int c = 0; c < C; c++) mean += s[c], mean_abs += fabs(s[c]);
        mean /= C;
        for (int c = 0; c < C; c++) var += (s[c] - mean) * (s[c] - mean);
        const double scale = mean_abs / C / sqrt(var / C + LN_EPS);
        for (int c = 0; c < C; c++) {
            const size_t i = (size_t)row * C + c;
            const double e32 = 1e-5 * (fabs(g[c]) * (fabs(xhat[i]) + scale) + fabs(b[c]));
            const double tol = ldexp(fabs(ref[i]) + e32, -11) + 0x1p-25 + e32;
            tally_close(&t, half_to_float(got_n[i]), ref[i], tol);
        }
    }
    free(got_r), free(got_n), free(sum), free(ref), free(xhat), free(g), free(b), free(ones),
        free(zeros);
    return finish_check(run, r, &t, "the residual bit for bit, every normed row against "
                                    "cpu_layernorm");
}

/*
 * Bytes for T rows of C: fused reads the residual and x and writes the residual and the normed
 * rows (4 T C 2), plus gamma and beta (2 C 2); unfused adds (reads both, writes the residual:
 * 3 T C 2), then normalizes (reads the residual, writes the normed rows: 2 T C 2), plus gamma and
 * beta.
 */
static int run_layernorm(ops_run *run) {
    const ops_options *opt = run->opt;
    const int C = opt->embd;
    int Ts[MAX_LIST + 1], n_T = 0;
    for (int i = 0; i < opt->n_batches; i++) Ts[n_T++] = opt->batches[i];
    bool listed = false;
    for (int i = 0; i < n_T; i++) listed |= Ts[i] == opt->rows;
    if (!listed) Ts[n_T++] = opt->rows;
    const int T_max = max_of(Ts, n_T);
    const size_t n = (size_t)T_max * C;
    uint16_t *residual = bench_xmalloc(n * 2), *x = bench_xmalloc(n * 2);
    uint16_t *gamma = bench_xmalloc((size_t)C * 2), *beta = bench_xmalloc((size_t)C * 2);
    fill_halves(residual, n, 1.0f, opt->seed, 40);
    fill_halves(x, n, 2.0f, opt->seed, 41);
    fill_halves(gamma, (size_t)C, 0.5f, opt->seed, 42);
    fill_halves(beta, (size_t)C, 0.5f, opt->seed, 43);
    const uint64_t state = chunk_state(opt->seed, 44, 0);
    for (int t = 0; t < T_max; t++) { /* an offset per row, so that the mean matters */
        const float offset = 8.0f * uniform_at(state, (size_t)t) - 4.0f;
        for (int c = 0; c < C; c++) {
            uint16_t *h = &x[(size_t)t * C + c];
            *h = float_to_half(half_to_float(*h) + offset);
        }
    }
    for (int c = 0; c < C; c++) gamma[c] = float_to_half(1.0f + half_to_float(gamma[c]));
    layernorm_op op = {.residual = bench_device_alloc(n * 2, "the residual"),
                       .normed = bench_device_alloc(n * 2, "the normed rows"),
                       .x = bench_device_upload(x, n * 2, "layernorm input"),
                       .gamma = bench_device_upload(gamma, (size_t)C * 2, "gamma"),
                       .beta = bench_device_upload(beta, (size_t)C * 2, "beta"), .C = C};
    for (int i = 0; i < n_T; i++) {
        op.T = Ts[i];
        for (int v = 0; v < 2; v++) {
            op_result *r = new_op(run, GROUP_LAYERNORM, v == 0 ? "fused" : "unfused");
            op_dim(r, "rows", op.T);
            op_dim(r, "c", C);
            r->bytes = (v == 0 ? 4.0 : 5.0) * op.T * C * 2 + 2.0 * C * 2;
            const bench_op_launch launch = v == 0 ? launch_ln_fused : launch_ln_unfused;
            if (check_layernorm(run, r, launch, &op, residual, x, gamma, beta))
                measure(run, r, launch, &op); /* the residual keeps growing by x: harmless */
        }
    }
    const void *dev[] = {op.residual, op.normed, op.x, op.gamma, op.beta};
    for (size_t i = 0; i < sizeof dev / sizeof *dev; i++) CUDA_CHECK(cudaFree((void *)dev[i]));
    free(residual), free(x), free(gamma), free(beta);
    return 0;
}

/* ---- GEMM + bias + GELU ---- */

static void launch_gemm_unfused(const void *o, cudaStream_t s) {
    const linear_op *op = o;
    launch_linear(op->ctx, op->y, op->N, op->x, op->K, op->w, NULL, NULL, 0, op->rows, op->K,
                  op->N, LINEAR_PLAIN, s);
    launch_bias_gelu(op->y, op->bias, op->rows, op->N, s);
}

/*
 * Every output written (no poison left), and GEMM_CHECK_ROWS rows spread over the batch against
 * cpu_matmul_bias + cpu_gelu_tanh: |gpu - cpu| <= 2^-10 |cpu| + 1e-3 sqrt(K / 768) as for the
 * GEMV, plus, for the unfused path that rounds the bare GEMM to fp16 before the bias and GELU,
 * up to max |gelu'| (< 1.13) times half an ulp of that product: 1.2 * 2^-11 |x w^T|.
 */
static bool check_gemm(ops_run *run, op_result *r, bench_op_launch launch, const linear_op *op,
                       const uint16_t *x, const float *wt /* [K, N] */, const float *bias) {
    const int R = op->rows, K = op->K, N = op->N;
    CUDA_CHECK(cudaMemset(op->y, POISON_BYTE, (size_t)R * N * 2));
    run_once(run, launch, op);
    uint16_t *y = bench_xmalloc((size_t)R * N * 2);
    download(y, op->y, (size_t)R * N * 2);
    if (run->opt->corrupt == GROUP_GEMM) y[0] = float_to_half(half_to_float(y[0]) + 1.0f);
    tally t = {0};
    for (size_t i = 0; i < (size_t)R * N; i++) tally_exact(&t, y[i] != POISON_HALF);
    const long unwritten = t.bad;
    t = (tally){0};
    const int n_rows = R < GEMM_CHECK_ROWS ? R : GEMM_CHECK_ROWS;
    float *xs = bench_xmalloc((size_t)n_rows * K * 4), *ref = bench_xmalloc((size_t)n_rows * N * 4);
    float *bare = bench_xmalloc((size_t)n_rows * N * 4), *zero = calloc((size_t)N, 4);
    for (int i = 0; i < n_rows; i++) {
        const int row = checked_seq(i, n_rows, R);
        for (int k = 0; k < K; k++) xs[(size_t)i * K + k] = half_to_float(x[(size_t)row * K + k]);
    }
    cpu_matmul_bias(ref, xs, wt, bias, n_rows, K, N);
    cpu_matmul_bias(bare, xs, wt, zero, n_rows, K, N);
    cpu_gelu_tanh(ref, (size_t)n_rows * N);
    const double abs_tol = 1e-3 * sqrt(K / 768.0);
    for (int i = 0; i < n_rows; i++) {
        const int row = checked_seq(i, n_rows, R);
        for (int c = 0; c < N; c++) {
            const double want = ref[(size_t)i * N + c];
            const double tol = ldexp(fabs(want), -10) + abs_tol +
                               (launch == launch_gemm_unfused
                                    ? 1.2 * ldexp(fabs(bare[(size_t)i * N + c]), -11) : 0.0);
            tally_close(&t, half_to_float(y[(size_t)row * N + c]), want, tol);
        }
    }
    t.bad += unwritten;
    char what[160];
    snprintf(what, sizeof what, "%d of %d rows against cpu_matmul_bias + cpu_gelu_tanh, %ld "
             "outputs unwritten", n_rows, R, unwritten);
    free(y), free(xs), free(ref), free(bare), free(zero);
    return finish_check(run, r, &t, what);
}

/*
 * Bytes at R rows, C x 4C: fused reads x (R K 2), w (N K 2), the bias (N 2) and writes y
 * (R N 2); unfused writes the bare product (R N 2), then the bias + GELU kernel reads it back and
 * writes it again (2 R N 2) and reads the bias. FLOPs: 2 R K N (the GELU's are not counted).
 */
static int run_gemm(ops_run *run) {
    const ops_options *opt = run->opt;
    const int R = opt->rows, K = opt->embd, N = 4 * opt->embd;
    uint16_t *x = bench_xmalloc((size_t)R * K * 2), *w = bench_xmalloc((size_t)N * K * 2);
    uint16_t *bias = bench_xmalloc((size_t)N * 2);
    fill_halves(x, (size_t)R * K, 1.0f, opt->seed, 50);
    fill_halves(w, (size_t)N * K, 1.0f, opt->seed, 51);
    fill_halves(bias, (size_t)N, 1.0f, opt->seed, 52);
    float *wt = bench_xmalloc((size_t)N * K * 4), *bf = floats_of(bias, (size_t)N);
    for (int k = 0; k < K; k++)
        for (int n = 0; n < N; n++) wt[(size_t)k * N + n] = half_to_float(w[(size_t)n * K + k]);
    linear_op op = {.ctx = run->gemm_ctx, .x = bench_device_upload(x, (size_t)R * K * 2, "GEMM input"),
                    .w = bench_device_upload(w, (size_t)N * K * 2, "GEMM weights"),
                    .bias = bench_device_upload(bias, (size_t)N * 2, "GEMM bias"),
                    .y = bench_device_alloc((size_t)R * N * 2, "GEMM output"), .rows = R, .K = K, .N = N,
                    .epilogue = LINEAR_GELU};
    const double fused_bytes = (double)R * K * 2 + (double)N * K * 2 + N * 2.0 + (double)R * N * 2;
    for (int v = 0; v < 2; v++) {
        op_result *r = new_op(run, GROUP_GEMM, v == 0 ? "fused" : "unfused");
        op_dim(r, "rows", R);
        op_dim(r, "k", K);
        op_dim(r, "n", N);
        r->bytes = fused_bytes + (v == 0 ? 0.0 : 3.0 * R * N * 2 + N * 2.0);
        r->flops = 2.0 * R * K * N;
        const bench_op_launch launch = v == 0 ? launch_linear_op : launch_gemm_unfused;
        if (check_gemm(run, r, launch, &op, x, wt, bf)) measure(run, r, launch, &op);
    }
    const void *dev[] = {op.x, op.w, op.bias, op.y};
    for (size_t i = 0; i < sizeof dev / sizeof *dev; i++) CUDA_CHECK(cudaFree((void *)dev[i]));
    free(x), free(w), free(bias), free(wt), free(bf);
    return 0;
}

/* ---- sampling ---- */

#define SAMPLE_TEMPERATURE 0.8f
#define SAMPLE_TOP_K 50
#define SAMPLE_TOP_P 0.95f
#define GPT2_VOCAB 50257

typedef struct {
    int32_t *ids;            /* [rows] */
    const float *logits;     /* [rows, V] */
    const float *uniforms;   /* [rows] */
    float *probs;            /* [rows, V] launch_sample's scratch: the logits stay as they are */
    int rows, V;
} sample_op;

static void launch_argmax_op(const void *o, cudaStream_t s) {
    const sample_op *op = o;
    launch_argmax(op->ids, op->logits, op->rows, op->V, s);
}

static void launch_sample_op(const void *o, cudaStream_t s) {
    const sample_op *op = o;
    launch_sample(op->ids, op->logits, op->uniforms, op->probs, op->rows, op->V,
                  SAMPLE_TEMPERATURE, SAMPLE_TOP_K, SAMPLE_TOP_P, s);
}

/* The vocabulary the sampling runs over: the LM head's (GPT-2's without one). */
static int sample_vocab(const ops_options *opt) {
    return opt->lm_head.n > 0 ? opt->lm_head.n : GPT2_VOCAB;
}

/*
 * Every row's id, exactly: against sampler_argmax (greedy), or against sampler_pick with the
 * same uniform (a uniform within ~1e-6 of a boundary of the cumulative distribution could round
 * the other way, kernels.h says: at these settings a chance of about 1e-4 per row).
 */
static bool check_sample(ops_run *run, op_result *r, bench_op_launch launch, const sample_op *op,
                         const float *logits /* [rows, V] */, const float *uniforms /* [rows] */,
                         sampler *smp) {
    CUDA_CHECK(cudaMemset(op->ids, POISON_BYTE, (size_t)op->rows * sizeof *op->ids));
    run_once(run, launch, op);
    int32_t *ids = bench_xmalloc((size_t)op->rows * sizeof *ids);
    download(ids, op->ids, (size_t)op->rows * sizeof *ids);
    if (run->opt->corrupt == GROUP_SAMPLE) ids[0] = (ids[0] + 1) % op->V;
    const bool draw = launch == launch_sample_op;
    tally t = {0};
    for (int row = 0; row < op->rows; row++) {
        const float *l = logits + (size_t)row * op->V;
        const int32_t want = draw ? sampler_pick(smp, l, uniforms[row]) : sampler_argmax(l, op->V);
        tally_exact(&t, ids[row] == want);
    }
    free(ids);
    return finish_check(run, r, &t, draw ? "every row's id against sampler_pick (same uniforms)"
                                         : "every row's id against sampler_argmax");
}

/*
 * Bytes: the logits read once (rows V 4) and the ids written (rows 4), plus the uniforms for a
 * draw (rows 4): the least any sampler moves; launch_sample's passes over its probabilities
 * scratch are not counted.
 */
static int run_sample(ops_run *run) {
    const ops_options *opt = run->opt;
    const int V = sample_vocab(opt), max_rows = max_of(opt->batches, opt->n_batches);
    const size_t n = (size_t)max_rows * V;
    const sampler_params params = {.temperature = SAMPLE_TEMPERATURE, .top_k = SAMPLE_TOP_K,
                                   .top_p = SAMPLE_TOP_P, .seed = opt->seed};
    sampler smp;
    if (sampler_create(&smp, V, params) != 0) return cli_error(CMD, "out of host memory");
    uint16_t *halves = bench_xmalloc(n * sizeof *halves);
    fill_halves(halves, n, 4.0f, opt->seed, 60);
    float *logits = floats_of(halves, n), *uniforms = bench_xmalloc((size_t)max_rows * 4);
    const uint64_t state = chunk_state(opt->seed, 61, 0);
    for (int i = 0; i < max_rows; i++) uniforms[i] = uniform_at(state, (size_t)i);
    sample_op op = {.ids = bench_device_alloc((size_t)max_rows * 4, "sampled ids"),
                    .logits = bench_device_upload(logits, n * 4, "logits"),
                    .uniforms = bench_device_upload(uniforms, (size_t)max_rows * 4, "uniforms"),
                    .probs = bench_device_alloc(n * 4, "sampling scratch"), .V = V};
    for (int i = 0; i < opt->n_batches; i++) {
        op.rows = opt->batches[i];
        for (int v = 0; v < 2; v++) {
            op_result *r = new_op(run, GROUP_SAMPLE, v == 0 ? "argmax" : "top_k_top_p");
            op_dim(r, "rows", op.rows);
            op_dim(r, "v", V);
            r->bytes = (double)op.rows * V * 4 + op.rows * (v == 0 ? 4.0 : 8.0);
            const bench_op_launch launch = v == 0 ? launch_argmax_op : launch_sample_op;
            if (check_sample(run, r, launch, &op, logits, uniforms, &smp))
                measure(run, r, launch, &op);
        }
    }
    const void *dev[] = {op.ids, op.logits, op.uniforms, op.probs};
    for (size_t i = 0; i < sizeof dev / sizeof *dev; i++) CUDA_CHECK(cudaFree((void *)dev[i]));
    free(halves), free(logits), free(uniforms);
    sampler_destroy(&smp);
    return 0;
}

/* ---- speedups: which variant is compared with which ---- */

typedef struct {
    op_group group;
    const char *of, *over, *label; /* speedup of `of` over `over`: over's time / of's time */
} speedup_spec;

static const speedup_spec speedups[] = {
    {GROUP_ATTENTION, "int8_fused", "fp16", "int8 fused over fp16"},
    {GROUP_ATTENTION, "int8_fused", "int8_unfused", "int8 fused over int8 unfused"},
    {GROUP_KV_WRITE, "int8_fused", "fp16", "int8 fused over fp16"},
    {GROUP_KV_WRITE, "int8_fused", "int8_unfused", "int8 fused over int8 unfused"},
    {GROUP_GEMV, "gemv", "cublaslt", "hand-written GEMV over cuBLASLt"},
    {GROUP_LAYERNORM, "fused", "unfused", "fused over unfused"},
    {GROUP_GEMM, "fused", "unfused", "fused over unfused"},
};
#define N_SPEEDUPS (sizeof speedups / sizeof speedups[0])

/* ---- the table ---- */

static void describe_settings(const ops_options *opt, const bench_timer *t, char *out, size_t len) {
    snprintf(out, len, "CUDA events around a graph replay, %d warm-up and %d timed replays, each "
             "after an L2 flush of %.0f MiB, median; %d heads of 64, block %d, C %d, prefill %d "
             "rows, seed %llu", t->warmup, t->repeats, t->flush_bytes / 1048576.0, opt->n_head,
             BLOCK_SIZE, opt->embd, opt->rows, opt->seed);
}

/* A number in a column: fixed decimals, or two significant digits when it would print as 0. */
static void print_number(double value, int width, int precision) {
    if (!isfinite(value)) printf(" %*s", width, "-");
    else if (value != 0 && fabs(value) < 0.5 * pow(10, -precision)) printf(" %*.2g", width, value);
    else printf(" %*.*f", width, precision, value);
}

static void print_attention_table(const ops_run *run) {
    const ops_options *opt = run->opt;
    int contexts[MAX_LIST + 1];
    const int n_contexts = attention_contexts(opt, contexts);
    printf("\ndecode attention: median us, GB/s on the bytes each path moves, %% of the copy "
           "bandwidth; speedups of int8 fused\n");
    printf("%6s %8s %10s %8s %6s %10s %8s %6s %10s %8s %6s %8s %8s\n", "batch", "context",
           "fp16 us", "GB/s", "%copy", "int8 us", "GB/s", "%copy", "unfused us", "GB/s", "%copy",
           "vs fp16", "vs unf.");
    for (int ci = 0; ci < n_contexts; ci++)
        for (int bi = 0; bi < opt->n_batches; bi++) {
            char key[96];
            snprintf(key, sizeof key, "batch %d, context %d", opt->batches[bi], contexts[ci]);
            const op_result *v[N_ATTN];
            for (int i = 0; i < N_ATTN; i++)
                v[i] = find_op(run, GROUP_ATTENTION, key, attn_names[i]);
            printf("%6d %8d", opt->batches[bi], contexts[ci]);
            for (int i = 0; i < N_ATTN; i++) {
                const bool ok = v[i] && v[i]->timed;
                print_number(op_us(v[i]), 10, 1);
                print_number(ok ? v[i]->gb_per_s : NAN, 8, 1);
                print_number(ok ? v[i]->pct_copy : NAN, 6, 1);
            }
            print_number(speedup(v[ATTN_INT8_FUSED], v[ATTN_FP16]), 8, 2);
            print_number(speedup(v[ATTN_INT8_FUSED], v[ATTN_INT8_UNFUSED]), 8, 2);
            putchar('\n');
        }
}

/* The speedup printed beside the op's row, when it is the `of` side of a comparison. */
static void speedup_text(const ops_run *run, const op_result *r, char *out, size_t len) {
    out[0] = '\0';
    for (size_t i = 0; i < N_SPEEDUPS; i++) {
        if (speedups[i].group != r->group || strcmp(speedups[i].of, r->variant) != 0) continue;
        const double s = speedup(r, find_op(run, r->group, r->key, speedups[i].over));
        const size_t used = strlen(out);
        if (isfinite(s))
            snprintf(out + used, len - used, "%sx%.2f vs %s", used ? ", " : "", s,
                     speedups[i].over);
    }
}

static void print_table(const ops_run *run) {
    const ops_options *opt = run->opt;
    char settings[512];
    describe_settings(opt, &run->timer, settings, sizeof settings);
    if (bench_emulated)
        printf("note: emulation build: these are CPU timings of the SIMT emulator, "
               "not GPU timings\n");
    printf("gpt2 bench ops: %s\n", settings);
    printf("device: %s, %d SMs", run->device.name, run->device.sm_count);
    if (run->device.sm_clock_mhz > 0) printf(", SM clock max %d MHz", run->device.sm_clock_mhz);
    if (run->device.memory_clock_mhz > 0)
        printf(", memory clock max %d MHz", run->device.memory_clock_mhz);
    printf(", L2 %.0f MiB\n", run->timer.l2_bytes / 1048576.0);
    printf("ceilings: copy of %d MiB: %.4g GB/s (read + write, median %.1f us); ", opt->copy_mib,
           run->copy_bytes_per_s / 1e9, run->copy.us.median);
    if (run->gemm.timed)
        printf("GEMM %d^3 fp16 (launch_linear, cuBLASLt): %.4g TFLOP/s (median %.1f us)\n",
               opt->gemm_size, run->gemm_flops_per_s / 1e12, run->gemm.us.median);
    else
        printf("GEMM: failed its check, not timed\n");
    if (opt->run_group[GROUP_ATTENTION]) print_attention_table(run);
    printf("\n%-18s %-12s %-44s %10s %8s %6s %8s %6s  %s\n", "op", "variant", "shape",
           "median us", "GB/s", "%copy", "TFLOP/s", "%gemm", "speedup");
    for (int i = 0; i < run->n_ops; i++) {
        const op_result *r = &run->ops[i];
        if (r->group == GROUP_ATTENTION) continue;
        char extra[160];
        speedup_text(run, r, extra, sizeof extra);
        printf("%-18s %-12s %-44s", group_names[r->group], r->variant, r->key);
        print_number(op_us(r), 10, 1);
        print_number(r->timed ? r->gb_per_s : NAN, 8, 1);
        print_number(r->timed ? r->pct_copy : NAN, 6, 1);
        print_number(r->timed ? r->tflop_per_s : NAN, 8, 3);
        print_number(r->timed ? r->pct_gemm : NAN, 6, 1);
        printf("  %s%s\n", r->passed ? "" : "CHECK FAILED ", extra);
    }
    const int n_passed = run->n_ops - run->failures;
    printf("\ncorrectness: %d of %d variants matched their CPU reference before timing%s\n",
           n_passed, run->n_ops, run->failures ? "; the failures were not timed" : "");
}

/* ---- the result JSON ---- */

static void write_op(result_writer *w, const ops_run *run, const op_result *r, bool with_group) {
    result_begin_object(w);
    if (with_group) result_member_string(w, "group", group_names[r->group]);
    result_member_string(w, "variant", r->variant);
    result_member_string(w, "shape_text", r->key);
    result_key(w, "shape");
    result_begin_object(w);
    if (r->tag) result_member_string(w, "kind", r->tag);
    for (int i = 0; i < r->n_dims; i++) result_member_int(w, r->dim_names[i], r->dims[i]);
    result_end_object(w);
    result_member_number(w, "bytes", r->bytes);
    result_key(w, "flops");
    if (r->flops > 0) result_number(w, r->flops);
    else result_null(w);
    result_key(w, "check");
    result_begin_object(w);
    result_key(w, "passed");
    result_bool(w, r->passed);
    result_member_string(w, "detail", r->check);
    result_end_object(w);
    result_key(w, "timed");
    result_bool(w, r->timed);
    if (r->timed) {
        bench_write_stats(w, "us", &r->us);
        result_member_number(w, "gb_per_s", r->gb_per_s);
        result_member_number(w, "pct_copy", r->pct_copy);
        result_member_number(w, "tflop_per_s", r->tflop_per_s);
        result_member_number(w, "pct_gemm", r->pct_gemm);
        result_key(w, "samples_us");
        result_number_array(w, r->samples_us, (size_t)run->timer.repeats);
    }
    result_end_object(w);
}

static void write_speedups(result_writer *w, const ops_run *run) {
    result_begin_array(w);
    for (int i = 0; i < run->n_ops; i++) {
        const op_result *r = &run->ops[i];
        for (size_t k = 0; k < N_SPEEDUPS; k++) {
            if (speedups[k].group != r->group || strcmp(speedups[k].of, r->variant) != 0) continue;
            const op_result *over = find_op(run, r->group, r->key, speedups[k].over);
            if (!over) continue;
            result_begin_object(w);
            result_member_string(w, "group", group_names[r->group]);
            result_member_string(w, "shape_text", r->key);
            result_key(w, "shape");
            result_begin_object(w);
            for (int d = 0; d < r->n_dims; d++) result_member_int(w, r->dim_names[d], r->dims[d]);
            result_end_object(w);
            result_member_string(w, "of", speedups[k].of);
            result_member_string(w, "over", speedups[k].over);
            result_member_number(w, "speedup", speedup(r, over));
            result_end_object(w);
        }
    }
    result_end_array(w);
}

/* ---- the charts ---- */

typedef struct {
    const ops_run *run;
    char subtitle[1024];
} chart_context;

static void chart_begin_cc(result_writer *w, const chart_context *cc, const char *file,
                           const char *kind, const char *title, const char *x_label,
                           const char *y_label) {
    bench_chart_begin(w, file, kind, title, cc->subtitle, x_label, y_label);
}


static void reference_line(result_writer *w, double y, const char *label) {
    result_begin_object(w);
    result_member_number(w, "y", y);
    result_member_string(w, "label", label);
    result_end_object(w);
}

/* Decode attention us against context for one batch size, a line per variant. */
static void attention_latency_chart(result_writer *w, const chart_context *cc, int batch) {
    const ops_run *run = cc->run;
    int contexts[MAX_LIST + 1];
    const int n = attention_contexts(run->opt, contexts);
    char file[64], title[128];
    snprintf(file, sizeof file, "bench_ops_attention_batch%d.png", batch);
    snprintf(title, sizeof title, "decode attention, batch %d: kernel time against context",
             batch);
    char x_label[160];
    const ops_options *opt = run->opt;
    snprintf(x_label, sizeof x_label, "context (tokens per sequence, log scale)");
    if (opt->long_context > max_of(opt->contexts, opt->n_contexts))
        snprintf(x_label, sizeof x_label, "context (tokens per sequence, log scale; %d is "
                 "synthetic, kernel level only)", run->opt->long_context);
    chart_begin_cc(w, cc, file, "line", title, x_label, "median us per launch (log scale)");
    result_key(w, "x_log");
    result_bool(w, true);
    result_key(w, "y_log");
    result_bool(w, true);
    result_key(w, "x_ticks");
    bench_write_int_array(w, contexts, n);
    result_key(w, "series");
    result_begin_array(w);
    static const char *const names[N_ATTN] = {"fp16 KV", "int8 KV, fused (dequantized in "
                                              "registers)", "int8 KV, unfused (dequantize, then "
                                              "fp16 attention)"};
    for (int v = 0; v < N_ATTN; v++) {
        result_begin_object(w);
        result_member_string(w, "name", names[v]);
        result_key(w, "x");
        bench_write_int_array(w, contexts, n);
        result_key(w, "y");
        result_begin_array(w);
        for (int i = 0; i < n; i++) {
            char key[96];
            snprintf(key, sizeof key, "batch %d, context %d", batch, contexts[i]);
            result_number(w, op_us(find_op(run, GROUP_ATTENTION, key, attn_names[v])));
        }
        result_end_array(w);
        result_end_object(w);
    }
    result_end_array(w);
    result_end_object(w);
}

/* Bars of a speedup of int8 fused by context, a series per batch size. */
static void attention_speedup_chart(result_writer *w, const chart_context *cc, const char *over,
                                    const char *file, const char *title, double target,
                                    const char *target_label) {
    const ops_run *run = cc->run;
    const ops_options *opt = run->opt;
    int contexts[MAX_LIST + 1];
    const int n = attention_contexts(opt, contexts);
    chart_begin_cc(w, cc, file, "bar", title, "context (tokens per sequence)",
                "speedup of int8 fused (times faster)");
    result_key(w, "categories");
    result_begin_array(w);
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof name, "%d", contexts[i]);
        result_string(w, name);
    }
    result_end_array(w);
    result_key(w, "series");
    result_begin_array(w);
    for (int b = 0; b < opt->n_batches; b++) {
        char name[32];
        snprintf(name, sizeof name, "batch %d", opt->batches[b]);
        result_begin_object(w);
        result_member_string(w, "name", name);
        result_key(w, "y");
        result_begin_array(w);
        for (int i = 0; i < n; i++) {
            char key[96];
            snprintf(key, sizeof key, "batch %d, context %d", opt->batches[b], contexts[i]);
            result_number(w, speedup(find_op(run, GROUP_ATTENTION, key, "int8_fused"),
                                     find_op(run, GROUP_ATTENTION, key, over)));
        }
        result_end_array(w);
        result_end_object(w);
    }
    result_end_array(w);
    result_key(w, "reference_lines");
    result_begin_array(w);
    reference_line(w, 1.0, "1x");
    reference_line(w, target, target_label);
    result_end_array(w);
    result_end_object(w);
}

/* The representative shapes of the summary charts: one or two per group. */
typedef struct {
    op_group group;
    char key[96], label[128];
} summary_op;

static int summary_ops(const ops_run *run, summary_op *out /* [16] */) {
    const ops_options *opt = run->opt;
    const int max_batch = max_of(opt->batches, opt->n_batches);
    const int context = max_of(opt->contexts, opt->n_contexts);
    int n = 0;
    if (opt->run_group[GROUP_ATTENTION]) {
        out[n] = (summary_op){.group = GROUP_ATTENTION};
        snprintf(out[n].key, sizeof out[n].key, "batch %d, context %d", max_batch, context);
        snprintf(out[n++].label, sizeof out[0].label, "attention b%d ctx %d", max_batch, context);
    }
    if (opt->run_group[GROUP_KV_WRITE]) {
        out[n] = (summary_op){.group = GROUP_KV_WRITE};
        snprintf(out[n].key, sizeof out[n].key, "decode tokens %d", max_batch);
        snprintf(out[n++].label, sizeof out[0].label, "KV write %d (decode)", max_batch);
        out[n] = (summary_op){.group = GROUP_KV_WRITE};
        snprintf(out[n].key, sizeof out[n].key, "prefill tokens %d", opt->rows);
        snprintf(out[n++].label, sizeof out[0].label, "KV write %d (prefill)", opt->rows);
    }
    if (opt->run_group[GROUP_LAYERNORM]) {
        out[n] = (summary_op){.group = GROUP_LAYERNORM};
        snprintf(out[n].key, sizeof out[n].key, "rows %d, c %d", opt->rows, opt->embd);
        snprintf(out[n++].label, sizeof out[0].label, "residual + LN %dx%d", opt->rows, opt->embd);
    }
    if (opt->run_group[GROUP_GEMM]) {
        out[n] = (summary_op){.group = GROUP_GEMM};
        snprintf(out[n].key, sizeof out[n].key, "rows %d, k %d, n %d", opt->rows, opt->embd,
                 4 * opt->embd);
        snprintf(out[n++].label, sizeof out[0].label, "GEMM+bias+GELU %dx%dx%d", opt->rows,
                 opt->embd, 4 * opt->embd);
    }
    return n;
}

/* The variant of a group that plays each summary series: fused, unfused, fp16 KV. */
static const char *summary_variant(op_group g, int series) {
    static const char *const kv[3] = {"int8_fused", "int8_unfused", "fp16"};
    static const char *const gemv[3] = {"gemv", "cublaslt", NULL};
    static const char *const plain[3] = {"fused", "unfused", NULL};
    if (g == GROUP_ATTENTION || g == GROUP_KV_WRITE) return kv[series];
    return g == GROUP_GEMV ? gemv[series] : plain[series];
}

/*
 * Fused against unfused (us, log) or % of the copy bandwidth, at the summary shapes; the
 * bandwidth chart adds the GEMV shapes at the first --gemv-rows count.
 */
static void summary_chart(result_writer *w, const chart_context *cc, bool bandwidth) {
    const ops_run *run = cc->run;
    const ops_options *opt = run->opt;
    summary_op ops[16 + MAX_LIST + 1];
    int n = summary_ops(run, ops);
    if (bandwidth && opt->run_group[GROUP_GEMV]) {
        for (int i = 0; i <= opt->n_gemv; i++) {
            const bool lm = i == opt->n_gemv;
            if (lm && opt->lm_head.n == 0) break;
            const gemv_shape s = lm ? opt->lm_head : opt->gemv[i];
            ops[n] = (summary_op){.group = GROUP_GEMV};
            snprintf(ops[n].key, sizeof ops[n].key, "%srows %d, k %d, n %d",
                     lm ? "lm head, " : "", opt->gemv_rows[0], s.k, s.n);
            snprintf(ops[n++].label, sizeof ops[0].label, "%s %dx%d, %d row%s",
                     lm ? "LM head" : "GEMV", s.k, s.n, opt->gemv_rows[0],
                     opt->gemv_rows[0] == 1 ? "" : "s");
        }
    }
    if (bandwidth)
        chart_begin_cc(w, cc, "bench_ops_bandwidth.png", "bar",
                    "achieved bandwidth per op, as % of the measured copy bandwidth", NULL,
                    "% of the measured copy bandwidth");
    else
        chart_begin_cc(w, cc, "bench_ops_fused_unfused.png", "bar",
                    "fused against unfused kernels: time per op", NULL,
                    "median us per launch (log scale)");
    result_key(w, "categories");
    result_begin_array(w);
    for (int i = 0; i < n; i++) result_string(w, ops[i].label);
    result_end_array(w);
    static const char *const names[3] = {"fused (int8 KV for attention and KV write; "
                                         "hand-written GEMV)", "unfused (int8 KV; cuBLASLt for "
                                         "the GEMV)", "fp16 KV"};
    result_key(w, "series");
    result_begin_array(w);
    for (int s = 0; s < 3; s++) {
        result_begin_object(w);
        result_member_string(w, "name", names[s]);
        result_key(w, "y");
        result_begin_array(w);
        for (int i = 0; i < n; i++) {
            const char *variant = summary_variant(ops[i].group, s);
            const op_result *r = variant ? find_op(run, ops[i].group, ops[i].key, variant) : NULL;
            result_number(w, !r || !r->timed ? NAN : bandwidth ? r->pct_copy : r->us.median);
        }
        result_end_array(w);
        result_end_object(w);
    }
    result_end_array(w);
    result_key(w, "value_labels");
    result_bool(w, true);
    if (bandwidth) {
        char label[96];
        snprintf(label, sizeof label, "copy bandwidth, %.0f GB/s", run->copy_bytes_per_s / 1e9);
        result_key(w, "reference_lines");
        result_begin_array(w);
        reference_line(w, 100.0, label);
        result_end_array(w);
    } else {
        result_key(w, "y_log");
        result_bool(w, true);
    }
    result_end_object(w);
}

/* The decode GEMV against cuBLASLt: us per shape, a series per (implementation, rows). */
static void gemv_chart(result_writer *w, const chart_context *cc) {
    const ops_run *run = cc->run;
    const ops_options *opt = run->opt;
    const int n = opt->n_gemv + (opt->lm_head.n > 0);
    chart_begin_cc(w, cc, "bench_ops_gemv.png", "bar",
                "decode GEMV (hand-written) against cuBLASLt, same shapes",
                "shape: input features K x output features N (LM head: fp32 logits)",
                "median us per launch (log scale)");
    result_key(w, "categories");
    result_begin_array(w);
    for (int i = 0; i < n; i++) {
        const bool lm = i == opt->n_gemv;
        const gemv_shape s = lm ? opt->lm_head : opt->gemv[i];
        char name[64];
        snprintf(name, sizeof name, "%s%d x %d", lm ? "LM head " : "", s.k, s.n);
        result_string(w, name);
    }
    result_end_array(w);
    result_key(w, "series");
    result_begin_array(w);
    for (int ri = 0; ri < opt->n_gemv_rows; ri++)
        for (int v = 0; v < 2; v++) {
            const int rows = opt->gemv_rows[ri];
            char name[64];
            snprintf(name, sizeof name, "%s, %d row%s", v == 0 ? "hand-written GEMV" : "cuBLASLt",
                     rows, rows == 1 ? "" : "s");
            result_begin_object(w);
            result_member_string(w, "name", name);
            result_key(w, "y");
            result_begin_array(w);
            for (int i = 0; i < n; i++) {
                const bool lm = i == opt->n_gemv;
                const gemv_shape s = lm ? opt->lm_head : opt->gemv[i];
                char key[96];
                snprintf(key, sizeof key, "%srows %d, k %d, n %d", lm ? "lm head, " : "", rows,
                         s.k, s.n);
                const char *variant = v == 0 ? "gemv" : "cublaslt";
                result_number(w, op_us(find_op(run, GROUP_GEMV, key, variant)));
            }
            result_end_array(w);
            result_end_object(w);
        }
    result_end_array(w);
    result_key(w, "y_log");
    result_bool(w, true);
    result_key(w, "value_labels");
    result_bool(w, n * opt->n_gemv_rows * 2 <= 24);
    result_end_object(w);
}

/* Sampling: us per launch by rows, argmax beside the top-k/top-p draw. */
static void sample_chart(result_writer *w, const chart_context *cc) {
    const ops_run *run = cc->run;
    const ops_options *opt = run->opt;
    char title[128];
    snprintf(title, sizeof title, "sampling the next id from fp32 logits, V = %d",
             sample_vocab(opt));
    chart_begin_cc(w, cc, "bench_ops_sampling.png", "bar", title,
                   "rows of logits (sequences in the decode step)",
                   "median us per launch (log scale)");
    result_key(w, "categories");
    result_begin_array(w);
    for (int i = 0; i < opt->n_batches; i++) {
        char name[32];
        snprintf(name, sizeof name, "%d", opt->batches[i]);
        result_string(w, name);
    }
    result_end_array(w);
    static const char *const variants[2] = {"argmax", "top_k_top_p"};
    static const char *const names[2] = {"launch_argmax (greedy)",
                                         "launch_sample (temperature 0.8, top-k 50, top-p 0.95)"};
    result_key(w, "series");
    result_begin_array(w);
    for (int v = 0; v < 2; v++) {
        result_begin_object(w);
        result_member_string(w, "name", names[v]);
        result_key(w, "y");
        result_begin_array(w);
        for (int i = 0; i < opt->n_batches; i++) {
            char key[96];
            snprintf(key, sizeof key, "rows %d, v %d", opt->batches[i], sample_vocab(opt));
            result_number(w, op_us(find_op(run, GROUP_SAMPLE, key, variants[v])));
        }
        result_end_array(w);
        result_end_object(w);
    }
    result_end_array(w);
    result_key(w, "y_log");
    result_bool(w, true);
    result_key(w, "value_labels");
    result_bool(w, opt->n_batches <= 8);
    result_end_object(w);
}

static void write_charts(result_writer *w, const ops_run *run) {
    const ops_options *opt = run->opt;
    chart_context cc = {.run = run};
    snprintf(cc.subtitle, sizeof cc.subtitle, "%s; gpt2-cuda kernels; %d warm-up + %d timed "
             "graph replays each after an L2 flush, median; %d heads of 64, block %d",
             run->device.name, run->timer.warmup, run->timer.repeats, opt->n_head, BLOCK_SIZE);
    result_begin_array(w);
    if (opt->run_group[GROUP_ATTENTION]) {
        for (int b = 0; b < opt->n_batches; b++) attention_latency_chart(w, &cc, opt->batches[b]);
        attention_speedup_chart(w, &cc, "fp16", "bench_ops_attention_speedup_fp16.png",
                                "decode attention: int8 KV (fused) against fp16 KV",
                                1.6, "issue 13 target at batch >= 32, context >= 512: 1.6x");
        attention_speedup_chart(w, &cc, "int8_unfused", "bench_ops_attention_speedup_unfused.png",
                                "decode attention: int8 KV, fused against unfused",
                                2.5, "issue 13 target at batch >= 32, context >= 512: 2.5x");
    }
    if (opt->run_group[GROUP_GEMV]) gemv_chart(w, &cc);
    if (opt->run_group[GROUP_SAMPLE]) sample_chart(w, &cc);
    int n_summary;
    {
        summary_op scratch[16];
        n_summary = summary_ops(run, scratch);
    }
    if (n_summary > 0) summary_chart(w, &cc, false);
    summary_chart(w, &cc, true); /* always something: the ops that ran */
    result_end_array(w);
}

static void write_result(result_writer *w, const ops_run *run, int argc, char **argv) {
    const ops_options *opt = run->opt;
    char settings[512];
    describe_settings(opt, &run->timer, settings, sizeof settings);
    bench_begin_result(w, "ops", NULL,
                         "kernels side by side on one device: every variant checked against the "
                         "CPU reference on random inputs, then its launches captured in a CUDA "
                         "graph and timed with CUDA events around each replay, after warm-up "
                         "replays, an L2 flush before each timed replay, the median over them; "
                         "GB/s on the bytes the variant must move through device memory (each "
                         "input read once, each output and intermediate written once), as a % of "
                         "the copy bandwidth measured in the same run; TFLOP/s as a % of the "
                         "measured cuBLASLt GEMM rate",
                       argc, argv);
    result_key(w, "device");
    result_begin_object(w);
    result_member_string(w, "name", run->device.name);
    result_member_int(w, "multiprocessors", run->device.sm_count);
    result_key(w, "sm_clock_max_mhz");
    if (run->device.sm_clock_mhz > 0) result_int(w, run->device.sm_clock_mhz);
    else result_null(w);
    result_key(w, "memory_clock_max_mhz");
    if (run->device.memory_clock_mhz > 0) result_int(w, run->device.memory_clock_mhz);
    else result_null(w);
    result_member_int(w, "l2_bytes", (long long)run->timer.l2_bytes);
    result_end_object(w);
    result_key(w, "settings");
    result_begin_object(w);
    result_member_string(w, "summary", settings);
    result_member_int(w, "warmup", run->timer.warmup);
    result_member_int(w, "repeats", run->timer.repeats);
    result_member_int(w, "flush_bytes", (long long)run->timer.flush_bytes);
    result_member_string(w, "clock", "CUDA events around each graph replay");
    result_key(w, "seed");
    bench_write_seed(w, opt->seed);
    result_key(w, "groups");
    result_begin_array(w);
    for (int g = 0; g < N_GROUPS; g++)
        if (opt->run_group[g]) result_string(w, group_names[g]);
    result_end_array(w);
    result_member_int(w, "n_head", opt->n_head);
    result_member_int(w, "block_size", BLOCK_SIZE);
    result_key(w, "contexts");
    bench_write_int_array(w, opt->contexts, opt->n_contexts);
    result_member_int(w, "long_context", opt->long_context);
    result_key(w, "batches");
    bench_write_int_array(w, opt->batches, opt->n_batches);
    result_member_int(w, "check_seqs", opt->check_seqs);
    result_member_int(w, "embd", opt->embd);
    result_member_int(w, "rows", opt->rows);
    result_key(w, "gemv_rows");
    bench_write_int_array(w, opt->gemv_rows, opt->n_gemv_rows);
    result_key(w, "model_config");
    if (opt->model_config) result_string(w, opt->model_config);
    else result_null(w);
    result_end_object(w);
    result_key(w, "ceilings");
    result_begin_object(w);
    result_key(w, "copy");
    write_op(w, run, &run->copy, false);
    result_member_number(w, "copy_bytes_per_s", run->copy_bytes_per_s);
    result_key(w, "gemm");
    write_op(w, run, &run->gemm, false);
    result_member_number(w, "gemm_flops_per_s", run->gemm_flops_per_s);
    result_end_object(w);
    result_key(w, "checks_passed");
    result_bool(w, run->failures == 0);
    result_member_int(w, "checks_failed", run->failures);
    result_key(w, "ops");
    result_begin_array(w);
    for (int i = 0; i < run->n_ops; i++) write_op(w, run, &run->ops[i], true);
    result_end_array(w);
    result_key(w, "speedups");
    write_speedups(w, run);
    result_key(w, "charts");
    write_charts(w, run);
    result_end_object(w);
}

/* What write_result needs, as bench_save_result passes it. */
typedef struct {
    const ops_run *run;
    int argc;
    char **argv;
} ops_output;

static void write_output(result_writer *w, const void *ctx) {
    const ops_output *o = ctx;
    write_result(w, o->run, o->argc, o->argv);
}

/* ---- bench ops ---- */

void bench_timer_create(bench_timer *t, int warmup, int repeats) {
    int device = 0;
    struct cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDevice(&device));
    CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
    t->l2_bytes = prop.l2CacheSize > 0 ? (size_t)prop.l2CacheSize : (size_t)64 << 20;
    t->flush_bytes = 2 * t->l2_bytes < FLUSH_CAP_BYTES ? 2 * t->l2_bytes : FLUSH_CAP_BYTES;
    t->flush = bench_device_alloc(t->flush_bytes, "the L2 flush");
    t->warmup = warmup;
    t->repeats = repeats;
    t->scratch = bench_xmalloc((size_t)repeats * sizeof *t->scratch);
    /*
     * A blocking stream: the set-up's cudaMemcpy and cudaMemset run on the legacy stream, and
     * every launch here must see them done (a non-blocking stream would race them).
     */
    CUDA_CHECK(cudaStreamCreateWithFlags(&t->stream, cudaStreamDefault));
    CUDA_CHECK(cudaEventCreate(&t->start));
    CUDA_CHECK(cudaEventCreate(&t->stop));
}

void bench_timer_destroy(bench_timer *t) {
    CUDA_CHECK(cudaEventDestroy(t->start));
    CUDA_CHECK(cudaEventDestroy(t->stop));
    CUDA_CHECK(cudaStreamDestroy(t->stream));
    CUDA_CHECK(cudaFree(t->flush));
    free(t->scratch);
}

int cmd_bench_ops(int argc, char **argv, int record_argc, char **record_argv) {
    ops_options opt;
    int rc = parse_options(argc, argv, &opt);
    if (rc) return rc == 2 ? 0 : rc;
    if (gpt2_cuda_device_count() == 0)
        return cli_error(CMD, "no CUDA device (and this is not the emulation build)");
    if (opt.out_dir && cli_make_folders(opt.out_dir) != 0)
        return cli_error(CMD, "cannot create %s: %s", opt.out_dir, strerror(errno));
    ops_run run = {.opt = &opt};
    bench_timer_create(&run.timer, opt.warmup, opt.repeats);
    run.device = bench_read_device();
    run.gemm_ctx = gemm_context_create();
    if (!run.gemm_ctx) return cli_error(CMD, "out of memory");
    if (bench_emulated)
        fprintf(stderr, "gpt2 %s: emulation build: the timings below are CPU times of the SIMT "
                "emulator, not GPU timings\n", CMD);
    fprintf(stderr, "gpt2 %s: ceilings: copy of %d MiB, GEMM %d^3\n", CMD, opt.copy_mib,
            opt.gemm_size);
    measure_copy_ceiling(&run);
    measure_gemm_ceiling(&run);
    int (*const runners[N_GROUPS])(ops_run *) = {run_attention, run_kv_write, run_gemv,
                                                 run_layernorm, run_gemm, run_sample};
    for (int g = 0; rc == 0 && g < N_GROUPS; g++) {
        if (!opt.run_group[g]) continue;
        fprintf(stderr, "gpt2 %s: %s\n", CMD, group_titles[g]);
        rc = runners[g](&run);
    }
    if (rc == 0) {
        print_table(&run);
        const ops_output out = {&run, record_argc, record_argv};
        if (opt.out_dir) rc = bench_save_result(opt.out_dir, RESULT_FILE, write_output, &out);
        if (rc == 0 && run.failures)
            rc = cli_error(CMD, "%d variant%s failed the check against the CPU reference (see "
                           "above); they were not timed", run.failures,
                           run.failures == 1 ? "" : "s");
    }
    for (int i = 0; i < run.n_ops; i++) free(run.ops[i].samples_us);
    free(run.ops);
    free(run.copy.samples_us);
    free(run.gemm.samples_us);
    gemm_context_destroy(run.gemm_ctx);
    bench_timer_destroy(&run.timer);
    return rc;
}
