/*
 * gpt2 bench kv: what the KV cache costs and how many sequences a budget serves (issue 14). All of
 * it comes from the pool's own allocator (cache/kv_pool.h) at the model's shape, on the host:
 *  - KV bytes per token by format: kv_pool_bytes_per_token, fp16, and int8 with its fp16 scales;
 *  - serving capacity: for each format, policy and length T, the sequences of T tokens that a
 *    pool of --kv-mem bytes carries to T tokens, all decoding together with every layer
 *    evicting after each step as the engine does (kv_pool_sequences_that_fit_policy: the
 *    allocator itself, peaks included). The formula, blocks / (n_layer peak blocks per layer),
 *    is kept beside it as a cross-check only;
 *  - memory against T: the KV pool's blocks in use once one sequence of T tokens is reserved,
 *    times the bytes of a block; with --allocate also the weights and the activations as the
 *    engine allocated them (cuda weights.bytes and act.bytes). The engine sizes its activations
 *    once at load, for n_positions prefill rows and max_seqs decode rows, so they do not grow
 *    with T.
 * Policies: full; window:W and sinks:S,window:W, under which a sequence of T tokens holds
 * min(T, budget) tokens (kv_policy_layer_budget) once a call's eviction has run. Eviction frees
 * whole blocks, so a window that does not start on a block boundary holds one block more: the
 * measured capacity counts it, and so does the formula (peak_blocks). Pyramid and share are in gpt2 bench
 * policies.
 *
 * Without --allocate nothing touches a device, and no weights are needed: --model-config takes
 * the preset's shape, -m DIR reads DIR/config.json. With --allocate, for each format a CUDA
 * engine is created with kv_mem_bytes = the budget and max_seqs = one more than the largest
 * full-policy capacity; its pool's block count is reported, and for every T the capacity is
 * confirmed in the engine's own pool: that many sequences reserve T tokens each and the next one
 * is refused. Under --model-config the weights uploaded are zeros at the real shapes (their bytes
 * are what matters here); under -m DIR they are the checkpoint's.
 *
 * The counts are not timings: they are the same on any machine, emulator included. With -o DIR:
 * DIR/bench_kv.json (tools/result.h) and its charts. On the emulation build the JSON has
 * "emulated": true and the chart titles begin with "emulated: not GPU timings", as every bench's.
 */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/kv_policy.h"
#include "cache/kv_pool.h"
#include "kernels/kernels.h"
#include "model/checkpoint.h"
#include "model/config.h"
#include "model/cuda_model.h"
#include "model/synthetic.h"
#include "tools/bench_kv.h"
#include "tools/bench_ops.h"
#include "tools/cli.h"
#include "tools/result.h"

#define CMD "bench"
#define RESULT_FILE "bench_kv.json"
#define MAX_LENGTHS 32
#define N_FORMATS 2 /* fp16, int8 */
#define N_POLICIES 3 /* full, window, sinks + window */
#define MAX_SEQS (1 << (CUDA_GRAPH_BUCKETS - 1)) /* the engine's largest max_seqs */
#define MIB (1024.0 * 1024.0)


static const char *const format_names[N_FORMATS] = {"fp16", "int8"};

static const char help[] =
    "usage: gpt2 bench kv [--model-config 124M|355M|774M|1558M | -m DIR] [options]\n"
    "  the KV cache by format (fp16, int8 with fp16 scales) from the pool's own allocator: bytes\n"
    "  per token, how many sequences of each length fit in a budget (admitted until the\n"
    "  allocator refuses) by format and policy, and memory against length. Counts, not\n"
    "  timings: the same on any machine. Only --allocate touches the device.\n"
    "  --model-config NAME  the shape of GPT-2 124M, 355M, 774M or 1558M (no weights needed)\n"
    "  -m DIR             a model folder's config.json instead (default: $GPT2_MODEL, else\n"
    "                     weights/default or weights/gpt2)\n"
    "  --kv-mem BYTES     the KV budget, K, M or G suffix (default 1G)\n"
    "  --lengths LIST     sequence lengths, comma-separated (default 128,256,512,1024)\n"
    "  --window W         the window policies' recent tokens (default 256)\n"
    "  --sinks S          sinks:S,window:W's first tokens (default 4)\n"
    "  --allocate         also create the CUDA engine per format with that budget and confirm\n"
    "                     each capacity in its pool; reports weights and activations\n"
    "  -o DIR             also write DIR/" RESULT_FILE " and its charts (PNG)";

typedef struct {
    const char *model_flag, *model_config, *out_dir;
    size_t kv_mem;
    int lengths[MAX_LENGTHS], n_lengths;
    int window, sinks;
    bool allocate;
} kv_options;

/* Returns 0 to run, 1 for an error already printed, 2 when help was printed. */
static int parse_options(int argc, char **argv, kv_options *opt) {
    *opt = (kv_options){.kv_mem = (size_t)1 << 30, .window = 256, .sinks = 4,
                        .lengths = {128, 256, 512, 1024}, .n_lengths = 4};
    cli_args args = {.cmd = CMD, .argc = argc, .argv = argv};
    while (cli_has_next(&args)) {
        if (cli_flag(&args, "-h") || cli_flag(&args, "--help")) {
            puts(help);
            return 2;
        } else if (cli_flag(&args, "-m")) opt->model_flag = cli_value(&args);
        else if (cli_flag(&args, "--model-config")) opt->model_config = cli_value(&args);
        else if (cli_flag(&args, "--kv-mem")) cli_bytes(&args, &opt->kv_mem);
        else if (cli_flag(&args, "--lengths"))
            bench_parse_int_list(&args, "--lengths", 1, 1 << 24, MAX_LENGTHS, opt->lengths,
                                 &opt->n_lengths);
        else if (cli_flag(&args, "--window")) cli_int(&args, 1, 1 << 24, &opt->window);
        else if (cli_flag(&args, "--sinks")) cli_int(&args, 1, 1 << 24, &opt->sinks);
        else if (cli_flag(&args, "--allocate")) opt->allocate = true;
        else if (cli_flag(&args, "-o")) opt->out_dir = cli_value(&args);
        else return cli_unknown(&args);
    }
    if (args.failed) return 1;
    if (opt->model_flag && opt->model_config)
        return cli_error(CMD, "give -m DIR or --model-config NAME, not both");
    return 0;
}

/* ---- the model's shape: a preset, or a folder's config.json ---- */

static int load_config(const kv_options *opt, const char **dir, gpt2_config *c) {
    *dir = NULL;
    if (opt->model_config) {
        if (gpt2_config_preset(opt->model_config, c) == 0) return 0;
        return cli_error(CMD, "--model-config '%s': expected 124M, 355M, 774M or 1558M",
                         opt->model_config);
    }
    if (!(*dir = cli_model_dir(CMD, opt->model_flag))) return 1;
    char path[4200], err[GPT2_ERR_LEN];
    snprintf(path, sizeof path, "%s/config.json", *dir);
    size_t len = 0;
    char *text = cli_read_text(CMD, NULL, path, &len);
    if (!text) return 1;
    const int rc = gpt2_config_parse(c, text, len, err, sizeof err);
    free(text);
    return rc == 0 ? 0 : cli_error(CMD, "%s: %s", path, err);
}

/* ---- the allocator's numbers ---- */

typedef struct {
    bool done;
    int max_seqs, num_blocks;
    size_t pool_bytes, weight_bytes, activation_bytes;
    bool confirmed[MAX_LENGTHS]; /* capacity[f][full][i] reserved in the engine's pool, no more */
} allocation;

typedef struct {
    const kv_options *opt;
    const char *dir;                   /* -m's folder, NULL under --model-config */
    gpt2_config config;
    kv_pool_shape shape[N_FORMATS];    /* num_blocks: what the budget holds */
    kv_policy policies[N_POLICIES];
    char policy_names[N_POLICIES][64];
    int held[N_POLICIES][MAX_LENGTHS]; /* tokens a sequence of length T keeps */
    int capacity[N_FORMATS][N_POLICIES][MAX_LENGTHS]; /* by running the allocator */
    int formula[N_FORMATS][N_POLICIES][MAX_LENGTHS];  /* the cross-check */
    int used_blocks[N_FORMATS][MAX_LENGTHS]; /* one sequence of T; -1: it does not fit */
    allocation alloc[N_FORMATS];
    char device[256];
} kv_run;

static size_t block_bytes(const kv_run *run, int f) {
    return kv_pool_bytes_per_block(&run->shape[f]);
}

/* Blocks in use once one sequence of T tokens is reserved in a fresh pool; -1: it does not fit. */
static int blocks_in_use(const kv_pool_shape *shape, int T) {
    kv_block_allocator alloc;
    kv_sequence seq;
    if (kv_block_allocator_create(&alloc, shape) != 0) return -2;
    if (kv_sequence_create(&seq, shape->n_layer, T, shape->block_size) != 0) {
        kv_block_allocator_destroy(&alloc);
        return -2;
    }
    const int used = kv_sequence_reserve(&alloc, &seq, T) == KV_RESERVED
                         ? shape->num_blocks - alloc.n_free : -1;
    kv_sequence_release(&alloc, &seq);
    kv_sequence_destroy(&seq);
    kv_block_allocator_destroy(&alloc);
    return used;
}

/*
 * The formula's blocks per layer at a sequence's peak: ceil(held / block) without eviction;
 * with it, the kept rows plus the widest hole eviction leaves in partly used blocks (the sinks'
 * block's unused tail and up to block - 1 rows before the window), plus the step's new token,
 * whose row is reserved before the step evicts.
 */
static int peak_blocks(const kv_policy *policy, int held, int T) {
    const int B = KV_DEFAULT_BLOCK_SIZE;
    if (held >= T) return (held + B - 1) / B;
    const int sinks = policy->kind == KV_POLICY_SINKS ? policy->sinks : 0;
    const int rows = held + (sinks + B - 1) / B * B - sinks + B - 1 + 1; /* + the new token */
    return (rows + B - 1) / B;
}

static int set_policies(kv_run *run) {
    const kv_options *opt = run->opt;
    snprintf(run->policy_names[0], sizeof run->policy_names[0], "full");
    snprintf(run->policy_names[1], sizeof run->policy_names[1], "window:%d", opt->window);
    snprintf(run->policy_names[2], sizeof run->policy_names[2], "sinks:%d,window:%d", opt->sinks,
             opt->window);
    for (int p = 0; p < N_POLICIES; p++) {
        char err[256];
        if (kv_policy_parse(run->policy_names[p], &run->policies[p], err, sizeof err) != 0)
            return cli_error(CMD, "%s", err);
        kv_policy_format(&run->policies[p], run->policy_names[p], sizeof run->policy_names[p]);
        for (int i = 0; i < opt->n_lengths; i++) {
            const int T = opt->lengths[i];
            const int budget = kv_policy_layer_budget(&run->policies[p], 0, run->config.n_layer, T);
            run->held[p][i] = budget < T ? budget : T;
        }
    }
    return 0;
}

static int measure(kv_run *run) {
    const kv_options *opt = run->opt;
    const gpt2_config *c = &run->config;
    for (int i = 0; i < opt->n_lengths; i++)
        if (opt->lengths[i] > c->n_positions)
            return cli_error(CMD, "--lengths: %d is past the model's context of %d tokens",
                             opt->lengths[i], c->n_positions);
    for (int f = 0; f < N_FORMATS; f++) {
        kv_pool_shape *s = &run->shape[f];
        *s = (kv_pool_shape){.n_layer = c->n_layer, .n_head = c->n_head,
                             .block_size = KV_DEFAULT_BLOCK_SIZE,
                             .format = f ? KV_FORMAT_INT8 : KV_FORMAT_FP16};
        s->num_blocks = kv_pool_blocks_for_budget(s, opt->kv_mem);
        if (s->num_blocks < c->n_layer)
            return cli_error(CMD, "--kv-mem %zu: holds %d %s blocks of %zu bytes, and a token "
                             "needs one in each of the %d layers", opt->kv_mem, s->num_blocks,
                             format_names[f], block_bytes(run, f), c->n_layer);
    }
    if (set_policies(run) != 0) return 1;
    for (int f = 0; f < N_FORMATS; f++)
        for (int i = 0; i < opt->n_lengths; i++) {
            for (int p = 0; p < N_POLICIES; p++) {
                const int per_seq = c->n_layer * peak_blocks(&run->policies[p], run->held[p][i],
                                                             opt->lengths[i]);
                run->formula[f][p][i] = run->shape[f].num_blocks / per_seq;
                run->capacity[f][p][i] = kv_pool_sequences_that_fit_policy(
                    &run->shape[f], opt->kv_mem, opt->lengths[i], &run->policies[p],
                    c->n_positions);
                if (run->capacity[f][p][i] < 0) return cli_error(CMD, "out of memory");
            }
            run->used_blocks[f][i] = blocks_in_use(&run->shape[f], opt->lengths[i]);
            if (run->used_blocks[f][i] < -1) return cli_error(CMD, "out of memory");
        }
    return 0;
}

/* ---- --allocate: the engine's own pool ---- */

/*
 * A checkpoint at the config's shape whose every tensor views one zeroed fp16 buffer: what
 * --allocate uploads under --model-config. The bytes the engine allocates are those of real
 * weights; their values do not matter to an allocation. Returns 0, or -1 out of memory.
 */
static gpt2_tensor zero_tensor(const void *zeros, int64_t rows, int64_t cols /* 0: a vector */) {
    return (gpt2_tensor){.data = zeros, .dtype = GPT2_F16, .ndim = cols ? 2 : 1,
                         .shape = {rows, cols}, .numel = cols ? rows * cols : rows,
                         .name = "zeros"};
}

static int zero_checkpoint(gpt2_checkpoint *ckpt, void **zeros, const gpt2_config *c) {
    const int64_t C = c->n_embd, V = c->vocab_size, P = c->n_positions;
    int64_t rows = V > P ? V : P; /* of the largest tensor, C wide */
    if (4 * C > rows) rows = 4 * C;
    *ckpt = (gpt2_checkpoint){.config = *c, .lm_head_tied = true};
    *zeros = calloc((size_t)(rows * C), 2);
    ckpt->layers = calloc((size_t)c->n_layer, sizeof *ckpt->layers);
    if (!*zeros || !ckpt->layers) return -1;
    ckpt->wte = zero_tensor(*zeros, V, C);
    ckpt->wpe = zero_tensor(*zeros, P, C);
    ckpt->ln_f_w = ckpt->ln_f_b = zero_tensor(*zeros, C, 0);
    ckpt->lm_head = ckpt->wte;
    for (int l = 0; l < c->n_layer; l++) {
        gpt2_layer_tensors *t = &ckpt->layers[l];
        t->ln_1_w = t->ln_1_b = t->ln_2_w = t->ln_2_b = t->attn_proj_b = t->mlp_proj_b =
            zero_tensor(*zeros, C, 0);
        t->attn_w = zero_tensor(*zeros, C, 3 * C);
        t->attn_b = zero_tensor(*zeros, 3 * C, 0);
        t->attn_proj_w = zero_tensor(*zeros, C, C);
        t->fc_w = zero_tensor(*zeros, C, 4 * C);
        t->fc_b = zero_tensor(*zeros, 4 * C, 0);
        t->mlp_proj_w = zero_tensor(*zeros, 4 * C, C);
    }
    return 0;
}

/* Creates the engine for format f and confirms each full-policy capacity in its pool. */
static int allocate_format(kv_run *run, int f, const gpt2_checkpoint *ckpt) {
    const kv_options *opt = run->opt;
    allocation *a = &run->alloc[f];
    int most = 0;
    for (int i = 0; i < opt->n_lengths; i++)
        if (run->capacity[f][0][i] > most) most = run->capacity[f][0][i];
    /* One slot more than the most that fit: the sequence the pool must refuse. */
    const cuda_model_options o = {.kv_mem_bytes = opt->kv_mem, .int8_kv = f == 1,
                                  .max_seqs = most < MAX_SEQS ? most + 1 : MAX_SEQS};
    cuda_model m;
    char err[GPT2_ERR_LEN];
    if (cuda_model_create(&m, ckpt, &o, err, sizeof err) != 0)
        return cli_error(CMD, "--allocate, %s KV: %s", format_names[f], err);
    *a = (allocation){.done = true, .max_seqs = m.max_seqs, .num_blocks = m.kv.shape.num_blocks,
                      .pool_bytes = (size_t)m.kv.shape.num_blocks *
                                    kv_pool_bytes_per_block(&m.kv.shape),
                      .weight_bytes = m.weights.bytes, .activation_bytes = m.act.bytes};
    for (int i = 0; i < opt->n_lengths; i++) {
        const int cap = run->capacity[f][0][i], T = opt->lengths[i];
        bool ok = cap < m.max_seqs;
        for (int s = 0; ok && s < cap; s++) ok = cuda_model_reserve(&m, s, T) == KV_RESERVED;
        a->confirmed[i] = ok && cuda_model_reserve(&m, cap, T) == KV_POOL_FULL;
        cuda_model_reset(&m);
    }
    cuda_model_destroy(&m);
    return 0;
}

static int allocate(kv_run *run) {
    if (gpt2_cuda_device_count() == 0)
        return cli_error(CMD, "--allocate: no CUDA device (and this is not the emulation build)");
    const device_info d = bench_read_device();
    snprintf(run->device, sizeof run->device, "%s", d.name);
    gpt2_checkpoint ckpt;
    void *zeros = NULL;
    char err[GPT2_ERR_LEN];
    int rc = 0;
    if (run->dir) {
        if (gpt2_checkpoint_open(&ckpt, run->dir, err, sizeof err) != 0)
            return cli_error(CMD, "%s", err);
    } else if (zero_checkpoint(&ckpt, &zeros, &run->config) != 0) {
        rc = cli_error(CMD, "out of memory");
    }
    for (int f = 0; rc == 0 && f < N_FORMATS; f++) rc = allocate_format(run, f, &ckpt);
    if (run->dir) {
        gpt2_checkpoint_close(&ckpt);
    } else {
        free(ckpt.layers);
        free(zeros);
    }
    return rc;
}

/* ---- the table ---- */

static void describe_model(const kv_run *run, char *out, size_t len) {
    if (run->opt->model_config)
        snprintf(out, len, "%s (the preset shape)", run->opt->model_config);
    else
        snprintf(out, len, "%s", run->dir);
}

/* Bytes of weights and activations from format f's engine, NAN without --allocate. */
static double engine_bytes(const kv_run *run, int f, bool weights) {
    const allocation *a = &run->alloc[f];
    return !a->done ? NAN : (double)(weights ? a->weight_bytes : a->activation_bytes);
}

static double kv_used_bytes(const kv_run *run, int f, int i) {
    const int used = run->used_blocks[f][i];
    return used < 0 ? NAN : (double)used * (double)block_bytes(run, f);
}

static void print_mib(double bytes) {
    if (isnan(bytes)) printf(" %11s", "-");
    else printf(" %11.2f", bytes / MIB);
}

static void print_table(const kv_run *run) {
    const kv_options *opt = run->opt;
    const gpt2_config *c = &run->config;
    char model[4200];
    describe_model(run, model, sizeof model);
    if (bench_emulated)
        printf("note: emulation build; these are allocator counts, not timings, and the same on "
               "any machine (only --allocate touches the emulated device)\n");
    printf("gpt2 bench kv: %s; %d layers, %d heads, n_embd %d, context %d\n", model, c->n_layer,
           c->n_head, c->n_embd, c->n_positions);
    printf("KV budget %zu bytes (%.2f MiB), blocks of %d tokens\n", opt->kv_mem,
           opt->kv_mem / MIB, KV_DEFAULT_BLOCK_SIZE);
    printf("%-6s %16s %16s %14s\n", "format", "bytes per token", "bytes per block",
           "budget blocks");
    for (int f = 0; f < N_FORMATS; f++)
        printf("%-6s %16zu %16zu %14d\n", format_names[f], kv_pool_bytes_per_token(&run->shape[f]),
               block_bytes(run, f), run->shape[f].num_blocks);
    printf("serving capacity: sequences of T tokens the allocator admitted before refusing\n");
    printf("%-6s %-22s", "format", "policy");
    for (int i = 0; i < opt->n_lengths; i++) {
        char label[32];
        snprintf(label, sizeof label, "T=%d", opt->lengths[i]);
        printf(" %10s", label);
    }
    putchar('\n');
    int mismatches = 0;
    for (int f = 0; f < N_FORMATS; f++)
        for (int p = 0; p < N_POLICIES; p++) {
            printf("%-6s %-22s", format_names[f], run->policy_names[p]);
            for (int i = 0; i < opt->n_lengths; i++) {
                printf(" %10d", run->capacity[f][p][i]);
                mismatches += run->capacity[f][p][i] != run->formula[f][p][i];
            }
            putchar('\n');
        }
    printf("cross-check: blocks / (n_layer blocks held at the peak) %s\n",
           mismatches ? "DISAGREES with the allocator (see the JSON)" : "agrees everywhere");
    printf("memory against T, one sequence (MiB): the KV pool's blocks in use (allocator)%s\n",
           run->alloc[0].done ? "; weights and activations as the engine allocated them" : "");
    printf("%7s %11s %11s %11s %11s %11s\n", "T", "weights", "KV fp16", "KV int8", "act fp16",
           "act int8");
    for (int i = 0; i < opt->n_lengths; i++) {
        printf("%7d", opt->lengths[i]);
        print_mib(engine_bytes(run, 0, true));
        print_mib(kv_used_bytes(run, 0, i));
        print_mib(kv_used_bytes(run, 1, i));
        print_mib(engine_bytes(run, 0, false));
        print_mib(engine_bytes(run, 1, false));
        putchar('\n');
    }
    for (int f = 0; f < N_FORMATS; f++) {
        const allocation *a = &run->alloc[f];
        if (!a->done) continue;
        printf("allocated on %s, %s KV: pool of %d blocks (%zu bytes), max_seqs %d; capacity "
               "confirmed in the engine's pool at T =", run->device, format_names[f],
               a->num_blocks, a->pool_bytes, a->max_seqs);
        for (int i = 0; i < opt->n_lengths; i++)
            printf(" %d:%s", opt->lengths[i], a->confirmed[i] ? "yes" : "NO");
        putchar('\n');
    }
    if (!run->alloc[0].done) printf("weights and activations: with --allocate\n");
}

/* ---- the result JSON and its charts ---- */

static void member_string_or_null(result_writer *w, const char *key, const char *s) {
    result_key(w, key);
    if (s) result_string(w, s);
    else result_null(w);
}

static void write_int_array(result_writer *w, const int *values, int n) {
    result_begin_array(w);
    for (int i = 0; i < n; i++) result_int(w, values[i]);
    result_end_array(w);
}


static void series_begin(result_writer *w, const char *name) {
    result_begin_object(w);
    result_member_string(w, "name", name);
    result_key(w, "y");
    result_begin_array(w);
}

static void series_end(result_writer *w) {
    result_end_array(w);
    result_end_object(w);
}

static void write_charts(result_writer *w, const kv_run *run, const char *subtitle) {
    const kv_options *opt = run->opt;
    char title[160], name[96];
    result_begin_array(w);
    snprintf(title, sizeof title, "serving capacity in %.0f MiB of KV, by format and policy",
             opt->kv_mem / MIB);
    bench_chart_begin(w, "bench_kv_capacity.png", "bar", title, subtitle, "sequence length T",
                "sequences of T tokens that fit (allocator)");
    result_key(w, "categories");
    result_begin_array(w);
    for (int i = 0; i < opt->n_lengths; i++) {
        snprintf(name, sizeof name, "T = %d", opt->lengths[i]);
        result_string(w, name);
    }
    result_end_array(w);
    result_key(w, "series");
    result_begin_array(w);
    for (int p = 0; p < N_POLICIES; p++)
        for (int f = 0; f < N_FORMATS; f++) {
            snprintf(name, sizeof name, "%s, %s", format_names[f], run->policy_names[p]);
            series_begin(w, name);
            for (int i = 0; i < opt->n_lengths; i++) result_int(w, run->capacity[f][p][i]);
            series_end(w);
        }
    result_end_array(w);
    result_key(w, "value_labels");
    result_bool(w, opt->n_lengths * N_FORMATS * N_POLICIES <= 36);
    result_end_object(w);

    bench_chart_begin(w, "bench_kv_bytes_per_token.png", "bar",
                "KV bytes per token (every layer, K and V), by format", subtitle, NULL,
                "bytes per token");
    result_key(w, "categories");
    result_begin_array(w);
    result_string(w, "fp16");
    result_string(w, "int8 (fp16 scale per token and head)");
    result_end_array(w);
    result_key(w, "series");
    result_begin_array(w);
    series_begin(w, "bytes per token");
    for (int f = 0; f < N_FORMATS; f++) result_int(w, (long long)kv_pool_bytes_per_token(&run->shape[f]));
    series_end(w);
    result_end_array(w);
    result_key(w, "value_labels");
    result_bool(w, true);
    result_end_object(w);

    bench_chart_begin(w, "bench_kv_memory.png", "line",
                "memory against sequence length, one sequence", subtitle,
                "sequence length T (tokens)", "bytes (log scale)");
    result_key(w, "x_ticks");
    write_int_array(w, opt->lengths, opt->n_lengths);
    result_key(w, "y_log");
    result_bool(w, true);
    result_key(w, "series");
    result_begin_array(w);
    static const char *const names[5] = {"weights", "KV pool in use, fp16", "KV pool in use, int8",
                                         "activations (fp16 engine)", "activations (int8 engine)"};
    for (int k = 0; k < 5; k++) {
        if (k != 1 && k != 2 && !run->alloc[0].done) continue; /* only the engine knows these */
        series_begin(w, names[k]);
        for (int i = 0; i < opt->n_lengths; i++)
            result_number(w, k == 0 ? engine_bytes(run, 0, true)
                             : k < 3 ? kv_used_bytes(run, k - 1, i)
                                     : engine_bytes(run, k - 3, false));
        result_end_array(w);
        result_key(w, "x");
        write_int_array(w, opt->lengths, opt->n_lengths);
        result_end_object(w);
    }
    result_end_array(w);
    result_end_object(w);
    result_end_array(w);
}

static void write_result(result_writer *w, const kv_run *run, int argc, char **argv) {
    const kv_options *opt = run->opt;
    const gpt2_config *c = &run->config;
    char model[4200], subtitle[4800];
    describe_model(run, model, sizeof model);
    snprintf(subtitle, sizeof subtitle, "gpt2-cuda pool allocator, %s; budget %zu bytes, blocks of "
             "%d tokens; counts, not timings: the same on any machine%s%s", model, opt->kv_mem,
             KV_DEFAULT_BLOCK_SIZE, run->alloc[0].done ? "; engine allocated on " : "",
             run->alloc[0].done ? run->device : "");
    bench_begin_result(w, "kv",
                       EMULATED_NOTE ": but these are allocator counts, not timings, exact on "
                       "any machine; only --allocate touched the (emulated) device",
                         "the KV cache from the pool's own allocator at the model's shape: bytes "
                         "per token by format; serving capacity, the sequences of T tokens a "
                         "pool of the budget admits by reserving whole sequences until the "
                         "allocator refuses (the formula only as a cross-check); memory against "
                         "T, the blocks one sequence of T tokens takes, and with --allocate the "
                         "engine's weight and activation bytes and each capacity confirmed in "
                         "the engine's own pool",
                       argc, argv);
    result_key(w, "model");
    result_begin_object(w);
    member_string_or_null(w, "config", opt->model_config);
    member_string_or_null(w, "dir", run->dir);
    result_member_int(w, "n_layer", c->n_layer);
    result_member_int(w, "n_head", c->n_head);
    result_member_int(w, "n_embd", c->n_embd);
    result_member_int(w, "n_positions", c->n_positions);
    result_member_int(w, "vocab_size", c->vocab_size);
    result_end_object(w);
    result_key(w, "settings");
    result_begin_object(w);
    result_member_int(w, "kv_mem_bytes", (long long)opt->kv_mem);
    result_member_int(w, "block_size", KV_DEFAULT_BLOCK_SIZE);
    result_key(w, "lengths");
    write_int_array(w, opt->lengths, opt->n_lengths);
    result_member_int(w, "window", opt->window);
    result_member_int(w, "sinks", opt->sinks);
    result_key(w, "allocate");
    result_bool(w, opt->allocate);
    result_end_object(w);
    result_key(w, "formats");
    result_begin_array(w);
    for (int f = 0; f < N_FORMATS; f++) {
        result_begin_object(w);
        result_member_string(w, "format", format_names[f]);
        result_member_int(w, "bytes_per_token", (long long)kv_pool_bytes_per_token(&run->shape[f]));
        result_member_int(w, "bytes_per_block", (long long)block_bytes(run, f));
        result_member_int(w, "budget_blocks", run->shape[f].num_blocks);
        result_end_object(w);
    }
    result_end_array(w);
    result_key(w, "capacity");
    result_begin_array(w);
    for (int f = 0; f < N_FORMATS; f++)
        for (int p = 0; p < N_POLICIES; p++)
            for (int i = 0; i < opt->n_lengths; i++) {
                result_begin_object(w);
                result_member_string(w, "format", format_names[f]);
                result_member_string(w, "policy", run->policy_names[p]);
                result_member_int(w, "length", opt->lengths[i]);
                result_member_int(w, "tokens_held", run->held[p][i]);
                result_member_int(w, "sequences", run->capacity[f][p][i]);
                result_member_int(w, "formula_sequences", run->formula[f][p][i]);
                result_end_object(w);
            }
    result_end_array(w);
    result_key(w, "memory");
    result_begin_array(w);
    for (int i = 0; i < opt->n_lengths; i++) {
        result_begin_object(w);
        result_member_int(w, "length", opt->lengths[i]);
        for (int f = 0; f < N_FORMATS; f++) {
            char key[64];
            snprintf(key, sizeof key, "kv_%s_blocks", format_names[f]); /* null: no room */
            result_key(w, key);
            if (run->used_blocks[f][i] < 0) result_null(w);
            else result_int(w, run->used_blocks[f][i]);
            snprintf(key, sizeof key, "kv_%s_bytes", format_names[f]);
            result_member_number(w, key, kv_used_bytes(run, f, i));
            snprintf(key, sizeof key, "activations_%s_bytes", format_names[f]);
            result_member_number(w, key, engine_bytes(run, f, false));
        }
        result_member_number(w, "weights_bytes", engine_bytes(run, 0, true));
        result_end_object(w);
    }
    result_end_array(w);
    result_key(w, "allocation");
    if (!run->alloc[0].done) {
        result_null(w);
    } else {
        result_begin_array(w);
        for (int f = 0; f < N_FORMATS; f++) {
            const allocation *a = &run->alloc[f];
            result_begin_object(w);
            result_member_string(w, "format", format_names[f]);
            result_key(w, "allocated");
            result_bool(w, a->done);
            result_member_int(w, "max_seqs", a->max_seqs);
            result_member_int(w, "num_blocks", a->num_blocks);
            result_member_int(w, "pool_bytes", (long long)a->pool_bytes);
            result_member_int(w, "weight_bytes", (long long)a->weight_bytes);
            result_member_int(w, "activation_bytes", (long long)a->activation_bytes);
            result_key(w, "confirmed");
            result_begin_array(w);
            for (int i = 0; i < opt->n_lengths; i++) result_bool(w, a->confirmed[i]);
            result_end_array(w);
            result_end_object(w);
        }
        result_end_array(w);
    }
    result_key(w, "charts");
    write_charts(w, run, subtitle);
    result_end_object(w);
}

/* What write_result needs, as bench_save_result passes it. */
typedef struct {
    const kv_run *run;
    int argc;
    char **argv;
} kv_output;

static void write_output(result_writer *w, const void *ctx) {
    const kv_output *o = ctx;
    write_result(w, o->run, o->argc, o->argv);
}

static int save_outputs(const kv_run *run, int argc, char **argv) {
    const kv_output out = {run, argc, argv};
    return bench_save_result(run->opt->out_dir, RESULT_FILE, write_output, &out);
}

/* ---- bench kv ---- */

int cmd_bench_kv(int argc, char **argv, int record_argc, char **record_argv) {
    kv_options opt;
    int rc = parse_options(argc, argv, &opt);
    if (rc) return rc == 2 ? 0 : rc;
    if (opt.out_dir && cli_make_folders(opt.out_dir) != 0)
        return cli_error(CMD, "cannot create %s: %s", opt.out_dir, strerror(errno));
    kv_run *run = calloc(1, sizeof *run);
    if (!run) return cli_error(CMD, "out of memory");
    run->opt = &opt;
    rc = load_config(&opt, &run->dir, &run->config);
    if (rc == 0) rc = measure(run);
    if (rc == 0 && opt.allocate) rc = allocate(run);
    if (rc == 0) {
        print_table(run);
        if (opt.out_dir) rc = save_outputs(run, record_argc, record_argv);
        for (int f = 0; rc == 0 && f < N_FORMATS; f++)
            for (int i = 0; rc == 0 && opt.allocate && i < opt.n_lengths; i++)
                if (!run->alloc[f].confirmed[i])
                    rc = cli_error(CMD, "--allocate, %s KV: the engine's pool did not admit "
                                   "exactly %d sequences of %d tokens, as the allocator did",
                                   format_names[f], run->capacity[f][0][i], opt.lengths[i]);
    }
    free(run);
    return rc;
}
