/*
 * gpt2 bench roofline: each kernel of one decode step and of one prefill, at a model's shapes,
 * placed against the ceilings measured in the same run (issue 14).
 *
 * The kernels are the engine's launchers with the arguments the engine gives them
 * (model/cuda_model.c): layernorm, the QKV projection, the KV write, attention, the attention
 * and MLP projections, the MLP's fc + GELU, the LM head and the greedy draw (the non-finite
 * check and argmax). A decode step runs --batch sequences of --context cached tokens through the
 * decode GEMV and decode attention; a prefill runs --rows tokens of one sequence through
 * cuBLASLt (launch_linear) and the prefill attention, and the LM head and the draw on its last
 * row only, as the engine does. Weights, activations and pages are random fp16 (the values do
 * not change these kernels' work); the pages are fp16, the pool's default format. bench ops
 * checks the same launchers against the CPU reference; here they are only timed.
 *
 * Each kernel is timed as bench ops times it (bench_time_op: a CUDA graph replayed between
 * events after an L2 flush, warm-up first, the median), against the copy bandwidth and the
 * cuBLASLt GEMM rate measured first (bench_measure_ceilings). Bytes and FLOPs come from the
 * shapes, written out beside each kernel below: bytes count every input read once and every
 * output written once; FLOPs count the multiply-adds (2 each) and, for layernorm, softmax and the
 * draw, the elementwise operations named there. Arithmetic intensity is FLOPs / bytes. The KV
 * write moves bytes only: it is in the table and the bandwidth chart, not on the roofline.
 *
 * With -o DIR: DIR/bench_roofline.json (tools/result.h) and its charts: the roofline
 * (plot_roofline) and each kernel's bandwidth as a % of the copy ceiling. On the emulation
 * build the times are CPU times of the SIMT emulator and every title says so.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/kv_pool.h"
#include "kernels/cuda_check.h"
#include "kernels/kernels.h"
#include "model/config.h"
#include "model/synthetic.h"
#include "tools/bench_ops.h"
#include "tools/cli.h"
#include "tools/result.h"

#define CMD "bench"
#define RESULT_FILE "bench_roofline.json"
#define ROOFLINE_CHART "bench_roofline.png"
#define BANDWIDTH_CHART "bench_roofline_bandwidth.png"
#define HEAD 64
#define BLOCK_SIZE KV_DEFAULT_BLOCK_SIZE
#define LN_EPS 1e-5f
#define WEIGHT_SCALE 0.05f /* keeps the residual finite over every replay */

static const char help[] =
    "usage: gpt2 bench roofline [--model-config 124M|355M|774M|1558M | -m DIR] [options]\n"
    "  each kernel of one decode step and one prefill at the model's shapes: bytes moved, FLOPs,\n"
    "  arithmetic intensity and the achieved rate (CUDA events around a graph replay, after\n"
    "  warm-up, an L2 flush before every repeat, the median), against the copy bandwidth and the\n"
    "  cuBLASLt GEMM rate measured in the same run\n"
    "  --model-config NAME  a GPT-2 shape: 124M (default), 355M, 774M or 1558M\n"
    "  -m DIR             the shape of a model folder's config.json instead\n"
    "  --batch B          sequences in the decode step (default 1)\n"
    "  --context T        tokens each of them has cached (default 512)\n"
    "  --rows N           tokens of the prefill (default 512)\n"
    "  --warmup N         untimed replays before the timed ones (default 5; 1 emulated)\n"
    "  --repeats N        timed replays per kernel (default 30; 3 emulated)\n"
    "  --copy-mib N       the copy ceiling's buffer (default 1024; 8 emulated)\n"
    "  --gemm-size N      the GEMM ceiling's square size (default 8192; 128 emulated)\n"
    "  --seed N           seed of the random inputs (default 1)\n"
    "  -o DIR             also write DIR/" RESULT_FILE ", DIR/" ROOFLINE_CHART " and\n"
    "                     DIR/" BANDWIDTH_CHART "\n"
    "  On the emulation build the numbers are CPU times of the SIMT emulator, not GPU timings.";

typedef struct {
    const char *model_config, *model_dir, *out_dir;
    unsigned long long seed;
    int batch, context, rows;
    int warmup, repeats, copy_mib, gemm_size;
} roofline_options;

/* The shape from --model-config or DIR/config.json. Returns 0, or 1 after the error. */
static int read_shape(const roofline_options *opt, gpt2_config *c) {
    if (!opt->model_dir) {
        const char *name = opt->model_config ? opt->model_config : "124M";
        if (gpt2_config_preset(name, c) == 0) return 0;
        return cli_error(CMD, "--model-config '%s': expected 124M, 355M, 774M or 1558M", name);
    }
    const size_t len = strlen(opt->model_dir) + sizeof "/config.json";
    char *path = bench_xmalloc(len);
    snprintf(path, len, "%s/config.json", opt->model_dir);
    size_t n = 0;
    char *text = cli_read_text(CMD, NULL, path, &n), err[GPT2_ERR_LEN];
    int rc = text ? 0 : 1;
    if (text && gpt2_config_parse(c, text, n, err, sizeof err) != 0)
        rc = cli_error(CMD, "%s: %s", path, err);
    free(text);
    free(path);
    return rc;
}

/* Returns 0 to run, 1 for an error already printed, 2 when help was printed. */
static int parse_options(int argc, char **argv, roofline_options *opt, gpt2_config *c) {
    *opt = (roofline_options){.seed = 1, .batch = 1, .context = 512, .rows = 512,
                              .warmup = BENCH_DEFAULT_WARMUP, .repeats = BENCH_DEFAULT_REPEATS,
                              .copy_mib = BENCH_DEFAULT_COPY_MIB,
                              .gemm_size = BENCH_DEFAULT_GEMM_SIZE};
    cli_args args = {.cmd = CMD, .argc = argc, .argv = argv};
    while (cli_has_next(&args)) {
        if (cli_flag(&args, "-h") || cli_flag(&args, "--help")) {
            puts(help);
            return 2;
        } else if (cli_flag(&args, "--model-config")) opt->model_config = cli_value(&args);
        else if (cli_flag(&args, "-m")) opt->model_dir = cli_value(&args);
        else if (cli_flag(&args, "--batch")) cli_int(&args, 1, 4096, &opt->batch);
        else if (cli_flag(&args, "--context")) cli_int(&args, 1, 1 << 16, &opt->context);
        else if (cli_flag(&args, "--rows")) cli_int(&args, 2, 1 << 16, &opt->rows);
        else if (cli_flag(&args, "--warmup")) cli_int(&args, 0, 10000, &opt->warmup);
        else if (cli_flag(&args, "--repeats")) cli_int(&args, 1, 10000, &opt->repeats);
        else if (cli_flag(&args, "--copy-mib")) cli_int(&args, 1, 1 << 16, &opt->copy_mib);
        else if (cli_flag(&args, "--gemm-size")) cli_int(&args, 16, 32768, &opt->gemm_size);
        else if (cli_flag(&args, "--seed")) cli_u64(&args, &opt->seed);
        else if (cli_flag(&args, "-o")) opt->out_dir = cli_value(&args);
        else return cli_unknown(&args);
    }
    if (args.failed) return 1;
    if (opt->model_dir && opt->model_config)
        return cli_error(CMD, "give -m DIR or --model-config NAME, not both");
    if (opt->gemm_size % 8 != 0)
        return cli_error(CMD, "--gemm-size %d: must be a multiple of 8", opt->gemm_size);
    if (read_shape(opt, c) != 0) return 1;
    if (c->n_embd % HEAD != 0 || c->n_embd / HEAD != c->n_head)
        return cli_error(CMD, "n_embd %d with %d heads: the kernels take heads of 64", c->n_embd,
                         c->n_head);
    if (opt->context > c->n_positions || opt->rows > c->n_positions)
        return cli_error(CMD, "--context %d and --rows %d must be at most the model's context "
                         "of %d", opt->context, opt->rows, c->n_positions);
    return 0;
}

/* ---- the buffers: one layer's weights, the activations, one layer's pages ---- */

typedef struct {
    int C, V, H, max_rows;
    gemm_context *gemm;
    gpt2_f16 *gamma, *beta;             /* [C] */
    gpt2_f16 *attn_w, *attn_b;          /* [3C, C], [3C] */
    gpt2_f16 *proj_w, *proj_b;          /* [C, C], [C] */
    gpt2_f16 *fc_w, *fc_b;              /* [4C, C], [4C] */
    gpt2_f16 *mlp_proj_w, *mlp_proj_b;  /* [C, 4C], [C] */
    gpt2_f16 *wte;                      /* [V, C] */
    gpt2_f16 *residual, *normed, *attn_out; /* [max_rows, C] */
    gpt2_f16 *qkv;                      /* [max_rows, 3C] */
    gpt2_f16 *hidden;                   /* [max_rows, 4C] */
    float *logits;                      /* [max_rows, V] */
    int32_t *ids, *flags;               /* [max_rows] */
    gpt2_f16 *k_pages, *v_pages;        /* [num_blocks, H, 16, 64] */
    int num_blocks, decode_blocks;      /* decode sequences first, then the prefill's */
    int max_blocks;                     /* table width: ceil(max(context, rows) / 16) */
    int32_t *decode_tables;             /* [batch, max_blocks] */
    int32_t *prefill_table;             /* [1, max_blocks] */
    int32_t *decode_lens;               /* [batch] all context */
    int32_t *prefill_starts, *prefill_lens; /* [2] {0, rows}, [1] {rows} */
    int64_t *decode_slots, *prefill_slots; /* [batch], [rows] */
    float *workspace;                   /* [workspace_bytes / 4] decode attention */
    size_t workspace_bytes;
} roof_buffers;

static void *random_halves(const roofline_options *opt, size_t n, uint64_t stream,
                           const char *what) {
    return bench_device_random(n, WEIGHT_SCALE, opt->seed, stream, what);
}

static void *upload_ints(const void *host, size_t bytes, const char *what) {
    return bench_device_upload(host, bytes, what);
}

/* Tables, lengths and slots: decode sequence s owns blocks [s mb, (s + 1) mb), the prefill the
 * blocks after them; the new decode token of s sits at position context - 1. */
static void create_maps(roof_buffers *b, const roofline_options *opt) {
    const int mb = b->max_blocks, B = opt->batch, N = opt->rows;
    int32_t *tables = bench_xmalloc((size_t)(B + 1) * mb * sizeof *tables);
    for (int i = 0; i < (B + 1) * mb; i++) tables[i] = i;
    int32_t *lens = bench_xmalloc((size_t)B * sizeof *lens);
    int64_t *slots = bench_xmalloc((size_t)(B > N ? B : N) * sizeof *slots);
    for (int s = 0; s < B; s++) {
        lens[s] = opt->context;
        slots[s] = (int64_t)s * mb * BLOCK_SIZE + opt->context - 1;
    }
    b->decode_tables = upload_ints(tables, (size_t)B * mb * 4, "decode block tables");
    b->prefill_table = upload_ints(tables + (size_t)B * mb, (size_t)mb * 4, "prefill table");
    b->decode_lens = upload_ints(lens, (size_t)B * 4, "decode lengths");
    b->decode_slots = upload_ints(slots, (size_t)B * 8, "decode slots");
    for (int i = 0; i < N; i++) slots[i] = (int64_t)B * mb * BLOCK_SIZE + i;
    b->prefill_slots = upload_ints(slots, (size_t)N * 8, "prefill slots");
    const int32_t starts[2] = {0, N}, prefill_len = N;
    b->prefill_starts = upload_ints(starts, sizeof starts, "prefill query starts");
    b->prefill_lens = upload_ints(&prefill_len, sizeof prefill_len, "prefill length");
    free(tables), free(lens), free(slots);
}

static void create_buffers(roof_buffers *b, const roofline_options *opt, const gpt2_config *c) {
    const int C = c->n_embd, V = c->vocab_size;
    *b = (roof_buffers){.C = C, .V = V, .H = c->n_head,
                        .max_rows = opt->batch > opt->rows ? opt->batch : opt->rows,
                        .gemm = gemm_context_create()};
    if (!b->gemm) {
        fprintf(stderr, "gpt2 %s: out of host memory\n", CMD);
        exit(EXIT_FAILURE);
    }
    const size_t R = (size_t)b->max_rows;
    b->gamma = random_halves(opt, C, 1, "ln gamma");
    b->beta = random_halves(opt, C, 2, "ln beta");
    b->attn_w = random_halves(opt, (size_t)3 * C * C, 3, "qkv weights");
    b->attn_b = random_halves(opt, (size_t)3 * C, 4, "qkv bias");
    b->proj_w = random_halves(opt, (size_t)C * C, 5, "attention projection");
    b->proj_b = random_halves(opt, C, 6, "attention projection bias");
    b->fc_w = random_halves(opt, (size_t)4 * C * C, 7, "mlp fc weights");
    b->fc_b = random_halves(opt, (size_t)4 * C, 8, "mlp fc bias");
    b->mlp_proj_w = random_halves(opt, (size_t)4 * C * C, 9, "mlp projection");
    b->mlp_proj_b = random_halves(opt, C, 10, "mlp projection bias");
    b->wte = random_halves(opt, (size_t)V * C, 11, "wte");
    b->residual = random_halves(opt, R * C, 12, "the residual");
    b->normed = random_halves(opt, R * C, 13, "normed rows");
    b->attn_out = random_halves(opt, R * C, 14, "attention output");
    b->qkv = random_halves(opt, R * 3 * C, 15, "qkv rows");
    b->hidden = random_halves(opt, R * 4 * C, 16, "mlp hidden rows");
    b->logits = bench_device_alloc(R * V * sizeof(float), "logits");
    CUDA_CHECK(cudaMemset(b->logits, 0, R * V * sizeof(float)));
    b->ids = bench_device_alloc(R * sizeof(int32_t), "ids");
    b->flags = bench_device_alloc(R * sizeof(int32_t), "non-finite flags");
    const int longest = opt->context > opt->rows ? opt->context : opt->rows;
    b->max_blocks = CEIL_DIV(longest, BLOCK_SIZE);
    b->decode_blocks = opt->batch * b->max_blocks;
    b->num_blocks = b->decode_blocks + b->max_blocks;
    const size_t page_halves = (size_t)b->num_blocks * b->H * BLOCK_SIZE * HEAD;
    b->k_pages = random_halves(opt, page_halves, 17, "K pages");
    b->v_pages = random_halves(opt, page_halves, 18, "V pages");
    create_maps(b, opt);
    b->workspace_bytes = attention_decode_workspace_bytes(opt->batch, b->H, opt->context);
    b->workspace = b->workspace_bytes ? bench_device_alloc(b->workspace_bytes, "attention "
                                                           "workspace") : NULL;
}

static void destroy_buffers(roof_buffers *b) {
    const void *dev[] = {b->gamma, b->beta, b->attn_w, b->attn_b, b->proj_w, b->proj_b, b->fc_w,
                         b->fc_b, b->mlp_proj_w, b->mlp_proj_b, b->wte, b->residual, b->normed,
                         b->attn_out, b->qkv, b->hidden, b->logits, b->ids, b->flags, b->k_pages,
                         b->v_pages, b->decode_tables, b->prefill_table, b->decode_lens,
                         b->prefill_starts, b->prefill_lens, b->decode_slots, b->prefill_slots,
                         b->workspace};
    for (size_t i = 0; i < sizeof dev / sizeof *dev; i++)
        if (dev[i]) CUDA_CHECK(cudaFree((void *)dev[i]));
    gemm_context_destroy(b->gemm);
}

/* ---- the kernels, launched as model/cuda_model.c launches them ---- */

typedef struct {
    const roof_buffers *b;
    bool prefill;
    int rows; /* new tokens: the decode batch, or the prefill's rows */
    int context;
} roof_op;

/* The pool as one layer's kernels see it, with the decode or the prefill tables. */
static paged_kv_layer pages(const roof_op *op) {
    const roof_buffers *b = op->b;
    return (paged_kv_layer){.k = b->k_pages, .v = b->v_pages,
                            .block_tables = op->prefill ? b->prefill_table : b->decode_tables,
                            .max_blocks_per_seq = b->max_blocks, .block_size = BLOCK_SIZE,
                            .n_head = b->H, .format = PAGED_KV_FP16};
}

/* The engine's linear(): the GEMV in a decode step, launch_linear in a prefill. */
static void linear(const roof_op *op, gpt2_f16 *y, const gpt2_f16 *x, const gpt2_f16 *w,
                   const gpt2_f16 *bias, int K, int N, linear_epilogue epilogue, cudaStream_t s) {
    const gpt2_f16 *residual = epilogue == LINEAR_RESIDUAL ? y : NULL;
    if (op->prefill)
        launch_linear(op->b->gemm, y, N, x, K, w, bias, residual, N, op->rows, K, N, epilogue, s);
    else
        launch_gemv_f16(y, N, x, K, w, bias, residual, N, op->rows, K, N, epilogue, s);
}

static void launch_ln(const void *o, cudaStream_t s) {
    const roof_op *op = o;
    const roof_buffers *b = op->b;
    launch_layernorm(b->normed, b->residual, b->gamma, b->beta, op->rows, b->C, LN_EPS, s);
}

static void launch_qkv(const void *o, cudaStream_t s) {
    const roof_op *op = o;
    const roof_buffers *b = op->b;
    linear(op, b->qkv, b->normed, b->attn_w, b->attn_b, b->C, 3 * b->C, LINEAR_PLAIN, s);
}

static void launch_kv(const void *o, cudaStream_t s) {
    const roof_op *op = o;
    const roof_buffers *b = op->b;
    launch_kv_write_fp16(b->k_pages, b->v_pages, b->qkv, 3 * b->C,
                         op->prefill ? b->prefill_slots : b->decode_slots, op->rows, b->H,
                         BLOCK_SIZE, b->num_blocks, s);
}

static void launch_attn(const void *o, cudaStream_t s) {
    const roof_op *op = o;
    const roof_buffers *b = op->b;
    if (op->prefill)
        launch_attention_prefill(b->attn_out, b->C, b->qkv, 3 * b->C, pages(op), b->prefill_starts,
                                 b->prefill_lens, 1, op->rows, s);
    else
        launch_attention_decode(b->attn_out, b->workspace, b->workspace_bytes, b->qkv, 3 * b->C,
                                pages(op), b->decode_lens, op->rows, op->context, s);
}

static void launch_proj(const void *o, cudaStream_t s) {
    const roof_op *op = o;
    const roof_buffers *b = op->b;
    linear(op, b->residual, b->attn_out, b->proj_w, b->proj_b, b->C, b->C, LINEAR_RESIDUAL, s);
}

static void launch_fc(const void *o, cudaStream_t s) {
    const roof_op *op = o;
    const roof_buffers *b = op->b;
    linear(op, b->hidden, b->normed, b->fc_w, b->fc_b, b->C, 4 * b->C, LINEAR_GELU, s);
}

static void launch_mlp_proj(const void *o, cudaStream_t s) {
    const roof_op *op = o;
    const roof_buffers *b = op->b;
    linear(op, b->residual, b->hidden, b->mlp_proj_w, b->mlp_proj_b, 4 * b->C, b->C,
           LINEAR_RESIDUAL, s);
}

/* The LM head on the rows that are drawn from: every decode row, a prefill's last. */
static int head_rows(const roof_op *op) { return op->prefill ? 1 : op->rows; }

static void launch_head(const void *o, cudaStream_t s) {
    const roof_op *op = o;
    const roof_buffers *b = op->b;
    if (op->prefill)
        launch_linear_f32_out(b->gemm, b->logits, b->V, b->normed, b->C, b->wte, 1, b->C, b->V, s);
    else
        launch_gemv_f32_out(b->logits, b->V, b->normed, b->C, b->wte, op->rows, b->C, b->V, s);
}

/* The engine's greedy draw: the non-finite check, then launch_sample, which is argmax. */
static void launch_draw(const void *o, cudaStream_t s) {
    const roof_op *op = o;
    const roof_buffers *b = op->b;
    launch_find_nonfinite(b->flags, b->logits, head_rows(op), b->V, s);
    launch_sample(b->ids, b->logits, NULL, b->logits, head_rows(op), b->V, 0.0f, 0, 1.0f, s);
}

/* ---- bytes and FLOPs of each kernel ---- */

typedef struct {
    double bytes, flops;
} traffic;

/*
 * A linear layer of R rows, K in, N out: the weights (N K 2), x (R K 2), the bias (N 2), y
 * (R N 2), and the residual read (R N 2) when it adds one; 2 R K N FLOPs.
 */
static traffic linear_traffic(double R, double K, double N, bool residual) {
    return (traffic){N * K * 2 + R * K * 2 + N * 2 + R * N * 2 * (residual ? 2 : 1),
                     2 * R * K * N};
}

/*
 * Attention over the pages, C = 64 H: q and out (R C 2 each), and K and V read once (P C 2 each)
 * for P cached positions a sequence reads: decode, R sequences of T: P = R T, 4 T C FLOPs per
 * row (q.K and p.V) plus 5 per score (scale, max, exp, sum, divide); prefill, one causal
 * sequence of R: P = R, R (R + 1) / 2 scores. Tables and lengths are left out.
 */
static traffic attention_traffic(bool prefill, double R, double T, double C, double H) {
    const double cached = prefill ? R : R * T;
    const double scores = prefill ? R * (R + 1) / 2 * H : R * T * H;
    return (traffic){2 * R * C * 2 + 2 * cached * C * 2, scores * (4 * HEAD + 5)};
}

static traffic kernel_traffic(bench_op_launch launch, const roof_op *op) {
    const double R = op->rows, C = op->b->C, V = op->b->V, H = op->b->H;
    const double D = head_rows(op);
    /* layernorm: x read, y written (R C 2 each), gamma and beta (2 C 2); 7 R C FLOPs (the sums
     * for the mean and the variance, then (x - mean) rstd gamma + beta). */
    if (launch == launch_ln) return (traffic){2 * R * C * 2 + 2 * C * 2, 7 * R * C};
    if (launch == launch_qkv) return linear_traffic(R, C, 3 * C, false);
    /* KV write: K and V read from qkv and written to the pages (2 R C 2 each), the slots (R 8). */
    if (launch == launch_kv) return (traffic){4 * R * C * 2 + R * 8, 0};
    if (launch == launch_attn) return attention_traffic(op->prefill, R, op->context, C, H);
    if (launch == launch_proj) return linear_traffic(R, C, C, true);
    if (launch == launch_fc) return linear_traffic(R, C, 4 * C, false);
    if (launch == launch_mlp_proj) return linear_traffic(R, 4 * C, C, true);
    /* LM head over D rows: wte (V C 2), x (D C 2), fp32 logits (D V 4); 2 D C V FLOPs. */
    if (launch == launch_head) return (traffic){V * C * 2 + D * C * 2 + D * V * 4, 2 * D * C * V};
    /* The draw: the logits read twice (check, argmax: 2 D V 4), the flags and ids written;
     * 2 D V comparisons. */
    return (traffic){2 * D * V * 4 + D * 8, 2 * D * V};
}

/* ---- the run ---- */

typedef struct {
    const char *name, *launcher;
    bench_op_launch launch;
} kernel_spec;

static const kernel_spec kernels[] = {
    {"layernorm", "launch_layernorm", launch_ln},
    {"qkv", "linear (GEMV / cuBLASLt)", launch_qkv},
    {"kv_write", "launch_kv_write_fp16", launch_kv},
    {"attention", "launch_attention_decode / _prefill", launch_attn},
    {"attn_proj", "linear + residual", launch_proj},
    {"mlp_fc", "linear + GELU", launch_fc},
    {"mlp_proj", "linear + residual", launch_mlp_proj},
    {"lm_head", "launch_gemv_f32_out / launch_linear_f32_out", launch_head},
    {"sample", "launch_find_nonfinite + launch_sample (greedy)", launch_draw},
};
#define N_KERNELS (sizeof kernels / sizeof kernels[0])

typedef struct {
    const kernel_spec *spec;
    bool prefill;
    int rows;
    traffic t;
    double *samples_us;     /* [repeats] */
    sample_stats us;
    double gb_per_s, tflop_per_s, intensity, pct_copy, pct_gemm;
} kernel_result;

typedef struct {
    const roofline_options *opt;
    gpt2_config config;
    device_info device;
    bench_timer timer;
    bench_ceilings ceilings;
    kernel_result results[2 * N_KERNELS]; /* decode, then prefill */
} roofline_run;

static void measure_kernel(roofline_run *run, const roof_op *op, const kernel_spec *k,
                           kernel_result *r) {
    const bool head = k->launch == launch_head || k->launch == launch_draw;
    *r = (kernel_result){.spec = k, .prefill = op->prefill, .rows = head ? head_rows(op) : op->rows,
                         .t = kernel_traffic(k->launch, op)};
    r->samples_us = bench_xmalloc((size_t)run->timer.repeats * sizeof *r->samples_us);
    r->us = bench_time_op(&run->timer, k->launch, op, r->samples_us);
    const double seconds = 1e-6 * r->us.median;
    const bench_ceilings *c = &run->ceilings;
    r->gb_per_s = r->t.bytes / seconds / 1e9;
    r->tflop_per_s = r->t.flops / seconds / 1e12;
    r->intensity = r->t.flops / r->t.bytes;
    r->pct_copy = 100.0 * r->t.bytes / seconds / c->copy_bytes_per_s;
    r->pct_gemm = c->gemm_flops_per_s > 0 ? 100.0 * r->t.flops / seconds / c->gemm_flops_per_s
                                          : NAN;
}

static void measure_all(roofline_run *run, const roof_buffers *b) {
    const roofline_options *opt = run->opt;
    for (int phase = 0; phase < 2; phase++) {
        const roof_op op = {.b = b, .prefill = phase == 1,
                            .rows = phase == 1 ? opt->rows : opt->batch, .context = opt->context};
        fprintf(stderr, "gpt2 %s: roofline: %s kernels\n", CMD, phase ? "prefill" : "decode");
        for (size_t k = 0; k < N_KERNELS; k++)
            measure_kernel(run, &op, &kernels[k], &run->results[phase * N_KERNELS + k]);
    }
}

/* ---- the table ---- */

static void print_value(double v, int width, int precision) {
    if (isfinite(v)) printf(" %*.*f", width, precision, v);
    else printf(" %*s", width, "-");
}

static void print_table(const roofline_run *run) {
    const roofline_options *opt = run->opt;
    const bench_ceilings *c = &run->ceilings;
    if (bench_emulated)
        printf("note: emulation build: these are CPU timings of the SIMT emulator, "
               "not GPU timings\n");
    printf("gpt2 bench roofline: %d layers, n_embd %d, %d heads, vocab %d; decode: batch %d, "
           "context %d; prefill: %d rows\n", run->config.n_layer, run->config.n_embd,
           run->config.n_head, run->config.vocab_size, opt->batch, opt->context, opt->rows);
    printf("device: %s, %d SMs; ceilings: copy %.4g GB/s (read + write), GEMM %d^3 %.4g "
           "TFLOP/s\n", run->device.name, run->device.sm_count, c->copy_bytes_per_s / 1e9,
           c->gemm_size, c->gemm_flops_per_s / 1e12);
    printf("%-8s %-10s %6s %10s %12s %10s %9s %6s %9s %6s\n", "phase", "kernel", "rows",
           "median us", "MB moved", "FLOP/byte", "GB/s", "%copy", "TFLOP/s", "%gemm");
    for (size_t i = 0; i < 2 * N_KERNELS; i++) {
        const kernel_result *r = &run->results[i];
        printf("%-8s %-10s %6d", r->prefill ? "prefill" : "decode", r->spec->name, r->rows);
        print_value(r->us.median, 10, 1);
        print_value(r->t.bytes / 1e6, 12, 3);
        print_value(r->intensity, 10, 2);
        print_value(r->gb_per_s, 9, 1);
        print_value(r->pct_copy, 6, 1);
        print_value(r->tflop_per_s, 9, 3);
        print_value(r->pct_gemm, 6, 1);
        putchar('\n');
    }
}

/* ---- the result JSON ---- */

static void write_kernel(result_writer *w, const roofline_run *run, const kernel_result *r) {
    result_begin_object(w);
    result_member_string(w, "phase", r->prefill ? "prefill" : "decode");
    result_member_string(w, "kernel", r->spec->name);
    result_member_string(w, "launcher", r->spec->launcher);
    result_member_int(w, "rows", r->rows);
    result_member_number(w, "bytes", r->t.bytes);
    result_member_number(w, "flops", r->t.flops);
    result_member_number(w, "intensity", r->intensity);
    bench_write_stats(w, "us", &r->us);
    result_member_number(w, "gb_per_s", r->gb_per_s);
    result_member_number(w, "pct_copy", r->pct_copy);
    result_member_number(w, "tflop_per_s", r->tflop_per_s);
    result_member_number(w, "pct_gemm", r->pct_gemm);
    result_key(w, "samples_us");
    result_number_array(w, r->samples_us, (size_t)run->timer.repeats);
    result_end_object(w);
}

static void roofline_chart(result_writer *w, const roofline_run *run, const char *subtitle) {
    const bench_ceilings *c = &run->ceilings;
    bench_chart_begin(w, ROOFLINE_CHART, "roofline",
                      "roofline: each kernel of a decode step and a prefill", subtitle,
                      "arithmetic intensity (FLOP per byte moved, log scale)",
                      "achieved FLOP/s (log scale)");
    result_key(w, "ceilings");
    result_begin_object(w);
    result_member_number(w, "bandwidth_bytes_per_s", c->copy_bytes_per_s);
    result_member_number(w, "flops_per_s", c->gemm_flops_per_s);
    result_member_string(w, "bandwidth_label", "measured copy");
    result_member_string(w, "flops_label", "measured cuBLASLt GEMM");
    result_end_object(w);
    result_key(w, "points");
    result_begin_array(w);
    for (size_t i = 0; i < 2 * N_KERNELS; i++) {
        const kernel_result *r = &run->results[i];
        if (r->t.flops <= 0) continue; /* the KV write: bytes only */
        char name[64];
        snprintf(name, sizeof name, "%s %s", r->prefill ? "prefill" : "decode", r->spec->name);
        result_begin_object(w);
        result_member_string(w, "name", name);
        result_member_number(w, "intensity", r->intensity);
        result_member_number(w, "flops_per_s", r->tflop_per_s * 1e12);
        result_end_object(w);
    }
    result_end_array(w);
    result_end_object(w);
}

static void bandwidth_chart(result_writer *w, const roofline_run *run, const char *subtitle) {
    bench_chart_begin(w, BANDWIDTH_CHART, "bar",
                      "achieved bandwidth per kernel, as % of the measured copy bandwidth",
                      subtitle, NULL, "% of the measured copy bandwidth");
    result_key(w, "categories");
    result_begin_array(w);
    for (size_t k = 0; k < N_KERNELS; k++) result_string(w, kernels[k].name);
    result_end_array(w);
    result_key(w, "series");
    result_begin_array(w);
    for (int phase = 0; phase < 2; phase++) {
        char name[64];
        snprintf(name, sizeof name, phase ? "prefill, %d rows" : "decode step, batch %d",
                 phase ? run->opt->rows : run->opt->batch);
        result_begin_object(w);
        result_member_string(w, "name", name);
        result_key(w, "y");
        result_begin_array(w);
        for (size_t k = 0; k < N_KERNELS; k++)
            result_number(w, run->results[phase * N_KERNELS + k].pct_copy);
        result_end_array(w);
        result_end_object(w);
    }
    result_end_array(w);
    result_key(w, "value_labels");
    result_bool(w, true);
    result_end_object(w);
}

static void write_result(result_writer *w, const roofline_run *run, int argc, char **argv) {
    const roofline_options *opt = run->opt;
    const bench_ceilings *c = &run->ceilings;
    char subtitle[512];
    snprintf(subtitle, sizeof subtitle, "%s; gpt2-cuda kernels at n_embd %d, %d heads; decode "
             "batch %d, context %d; prefill %d rows; graph replays after an L2 flush, median of "
             "%d", run->device.name, run->config.n_embd, run->config.n_head, opt->batch,
             opt->context, opt->rows, run->timer.repeats);
    bench_begin_result(w, "roofline", NULL,
                       "each kernel of one decode step and one prefill at the model's shapes, "
                       "timed as bench ops times them (CUDA events around a graph replay after "
                       "an L2 flush, the median), bytes and FLOPs from the shapes, against the "
                       "copy bandwidth and the cuBLASLt GEMM rate measured in the same run",
                       argc, argv);
    result_key(w, "model");
    result_begin_object(w);
    result_key(w, "config");
    if (opt->model_config || !opt->model_dir)
        result_string(w, opt->model_config ? opt->model_config : "124M");
    else result_null(w);
    result_key(w, "dir");
    if (opt->model_dir) result_string(w, opt->model_dir);
    else result_null(w);
    result_member_int(w, "n_layer", run->config.n_layer);
    result_member_int(w, "n_head", run->config.n_head);
    result_member_int(w, "n_embd", run->config.n_embd);
    result_member_int(w, "vocab_size", run->config.vocab_size);
    result_end_object(w);
    result_key(w, "settings");
    result_begin_object(w);
    result_member_int(w, "batch", opt->batch);
    result_member_int(w, "context", opt->context);
    result_member_int(w, "rows", opt->rows);
    result_member_int(w, "warmup", run->timer.warmup);
    result_member_int(w, "repeats", run->timer.repeats);
    result_member_int(w, "flush_bytes", (long long)run->timer.flush_bytes);
    result_member_string(w, "kv_format", "fp16");
    result_end_object(w);
    result_key(w, "ceilings");
    result_begin_object(w);
    result_member_number(w, "copy_bytes_per_s", c->copy_bytes_per_s);
    result_member_number(w, "copy_median_us", c->copy_us);
    result_member_int(w, "copy_mib", c->copy_mib);
    result_member_number(w, "gemm_flops_per_s", c->gemm_flops_per_s);
    result_member_number(w, "gemm_median_us", c->gemm_us);
    result_member_int(w, "gemm_size", c->gemm_size);
    result_end_object(w);
    result_key(w, "kernels");
    result_begin_array(w);
    for (size_t i = 0; i < 2 * N_KERNELS; i++) write_kernel(w, run, &run->results[i]);
    result_end_array(w);
    result_key(w, "charts");
    result_begin_array(w);
    roofline_chart(w, run, subtitle);
    bandwidth_chart(w, run, subtitle);
    result_end_array(w);
    result_end_object(w);
}

/* What write_result needs, as bench_save_result passes it. */
typedef struct {
    const roofline_run *run;
    int argc;
    char **argv;
} roofline_output;

static void write_output(result_writer *w, const void *ctx) {
    const roofline_output *o = ctx;
    write_result(w, o->run, o->argc, o->argv);
}

int cmd_bench_roofline(int argc, char **argv, int record_argc, char **record_argv) {
    roofline_options opt;
    roofline_run run = {.opt = &opt};
    int rc = parse_options(argc, argv, &opt, &run.config);
    if (rc) return rc == 2 ? 0 : rc;
    if (gpt2_cuda_device_count() == 0)
        return cli_error(CMD, "no CUDA device (and this is not the emulation build)");
    if (opt.out_dir && cli_make_folders(opt.out_dir) != 0)
        return cli_error(CMD, "cannot create %s: %s", opt.out_dir, strerror(errno));
    if (bench_emulated)
        fprintf(stderr, "gpt2 %s: emulation build: the timings below are CPU times of the SIMT "
                "emulator, not GPU timings\n", CMD);
    bench_timer_create(&run.timer, opt.warmup, opt.repeats);
    run.device = bench_read_device();
    roof_buffers b;
    create_buffers(&b, &opt, &run.config);
    fprintf(stderr, "gpt2 %s: ceilings: copy of %d MiB, GEMM %d^3\n", CMD, opt.copy_mib,
            opt.gemm_size);
    bench_measure_ceilings(&run.timer, b.gemm, opt.copy_mib, opt.gemm_size, opt.seed,
                           &run.ceilings);
    if (run.ceilings.gemm_flops_per_s <= 0)
        rc = cli_error(CMD, "the GEMM ceiling failed its check against the CPU: no roofline");
    if (rc == 0) {
        measure_all(&run, &b);
        print_table(&run);
        const roofline_output out = {&run, record_argc, record_argv};
        if (opt.out_dir) rc = bench_save_result(opt.out_dir, RESULT_FILE, write_output, &out);
    }
    for (size_t i = 0; i < 2 * N_KERNELS; i++) free(run.results[i].samples_us);
    destroy_buffers(&b);
    bench_timer_destroy(&run.timer);
    return rc;
}
