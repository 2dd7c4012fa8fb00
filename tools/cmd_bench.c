/*
 * gpt2 bench: the dispatch to the engine's benchmarks (bench e2e: tools/bench_e2e.c; bench ops:
 * tools/bench_ops.c; bench kv: tools/bench_kv.c; bench policies: tools/bench_policies.c; bench
 * roofline: tools/bench_roofline.c), and the pieces they share, which tools/bench_ops.h
 * declares: integer lists, sample statistics, the device as the tables and titles name it, the
 * result's opening and its statistics' JSON members, and the saving of a result with the
 * drawing of its charts.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>

#include "model/json.h"
#include "tools/bench_kv.h"
#include "tools/bench_ops.h"
#include "tools/cli.h"
#include "tools/commands.h"
#include "tools/result.h"
#include "tools/result_charts.h"

#define CMD "bench"

#ifdef GPT2_CUDA_EMULATION
const bool bench_emulated = true;
#else
const bool bench_emulated = false;
#endif

/* ---- timing ---- */

static int compare_doubles(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

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

/* Median (the mean of the middle two for even n), p90 (nearest rank), min, max, mean; n >= 1. */
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

/* ---- result JSON pieces ---- */

void bench_write_stats(result_writer *w, const char *unit, const sample_stats *s) {
    char key[32];
    static const char *const names[] = {"median", "p90", "min", "max", "mean"};
    const double values[] = {s->median, s->p90, s->min, s->max, s->mean};
    for (int i = 0; i < 5; i++) {
        snprintf(key, sizeof key, "%s_%s", names[i], unit);
        result_member_number(w, key, values[i]);
    }
}

void bench_write_seed(result_writer *w, unsigned long long seed) {
    if (seed <= (unsigned long long)LLONG_MAX) result_int(w, (long long)seed);
    else result_number(w, (double)seed);
}

void bench_write_int_array(result_writer *w, const int *values, int n) {
    result_begin_array(w);
    for (int i = 0; i < n; i++) result_int(w, values[i]);
    result_end_array(w);
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

int bench_save_result(const char *out_dir, const char *file,
                      void (*write)(result_writer *w, const void *ctx), const void *ctx) {
    const size_t len = strlen(out_dir) + strlen(file) + 2;
    char *path = malloc(len);
    if (!path) return cli_error(CMD, "out of memory");
    snprintf(path, len, "%s/%s", out_dir, file);
    FILE *f = fopen(path, "w");
    int rc = f ? 0 : cli_error(CMD, "%s: %s", path, strerror(errno));
    if (f) {
        result_writer w;
        result_writer_init(&w, f);
        write(&w, ctx);
        int wrc = result_writer_finish(&w);
        if (fclose(f) != 0) wrc = -1;
        if (wrc != 0) rc = cli_error(CMD, "%s: cannot write the result", path);
    }
    if (rc == 0) printf("%s\n", path);
    if (rc == 0) rc = bench_draw_saved_charts(path, out_dir);
    free(path);
    return rc;
}

int cmd_bench(int argc, char **argv) {
    if (argc > 0 && (strcmp(argv[0], "-h") == 0 || strcmp(argv[0], "--help") == 0)) {
        puts(bench_e2e_help);
        puts("\nusage: gpt2 bench ops [options]   kernels side by side: fused against unfused, INT8\n"
             "  against FP16 KV, the decode GEMV against cuBLASLt (gpt2 bench ops --help)");
        puts("usage: gpt2 bench kv [options]    KV bytes per token, serving capacity by format and\n"
             "  policy from the pool's allocator, memory against length (gpt2 bench kv --help)");
        puts("usage: gpt2 bench policies [options]  every KV policy at equal KV budgets: perplexity,\n"
             "  KL and top-1 against full, KV bytes held (gpt2 bench policies --help)");
        puts("usage: gpt2 bench roofline [options]  each kernel of a decode step and a prefill:\n"
             "  arithmetic intensity and achieved rate against the measured ceilings\n"
             "  (gpt2 bench roofline --help)");
        return 0;
    }
    if (argc == 0)
        return cli_error(CMD, "missing benchmark: e2e, ops, kv, roofline or policies (see gpt2 bench "
                         "--help)");
    if (strcmp(argv[0], "ops") == 0) return cmd_bench_ops(argc - 1, argv + 1, argc, argv);
    if (strcmp(argv[0], "kv") == 0) return cmd_bench_kv(argc - 1, argv + 1, argc, argv);
    if (strcmp(argv[0], "policies") == 0) return cmd_bench_policies(argc - 1, argv + 1, argc, argv);
    if (strcmp(argv[0], "roofline") == 0)
        return cmd_bench_roofline(argc - 1, argv + 1, argc, argv);
    if (strcmp(argv[0], "e2e") != 0)
        return cli_error(CMD, "unknown benchmark '%s' (expected e2e, ops, kv, roofline or "
                         "policies)", argv[0]);
    return cmd_bench_e2e(argc - 1, argv + 1, argc, argv);
}
