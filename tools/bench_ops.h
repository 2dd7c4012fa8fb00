/*
 * gpt2 bench ops, bench roofline and bench e2e (tools/bench_ops.c, tools/bench_roofline.c,
 * tools/bench_e2e.c), and the pieces that the benchmarks share: from tools/cmd_bench.c integer
 * lists, sample statistics, the device as the tables and titles name it, the statistics' JSON
 * members, and the drawing of a saved result's charts; from tools/bench_ops.c the per-op timing
 * (a CUDA graph replayed between events after an L2 flush) and the ceilings it is measured
 * against.
 */
#ifndef GPT2_BENCH_OPS_H
#define GPT2_BENCH_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/kernels.h"
#include "tools/cli.h"
#include "tools/result.h"

/* ---- shared by every benchmark (defined in cmd_bench.c) ---- */

/* Every table, JSON and chart title of the emulation build says so: its times are CPU times. */
#define EMULATED_NOTE "emulated: not GPU timings"
extern const bool bench_emulated; /* built with -DGPT2_CUDA_EMULATION */

/*
 * Opens a bench's result object: "bench", "emulated" (and on the emulator a "note": note, or
 * EMULATED_NOTE ": CPU times of the SIMT emulator" when note is NULL), "description", and the
 * run record ("run": the command line, device, clocks).
 */
void bench_begin_result(result_writer *w, const char *bench, const char *note /* or NULL */,
                        const char *description, int argc, char **argv);

/* A chart's opening members; its title begins with EMULATED_NOTE on the emulator. */
void bench_chart_begin(result_writer *w, const char *file, const char *kind, const char *title,
                       const char *subtitle, const char *x_label /* or NULL */,
                       const char *y_label);

/*
 * The value of `flag` as distinct integers in [min, max] separated by commas, at most
 * capacity of them, into out[0, *n). Prints the error and returns false for anything else.
 */
bool bench_parse_int_list(cli_args *args, const char *flag, long min, long max, int capacity,
                          int *out, int *n);

typedef struct {
    double median, p90, min, max, mean;
} sample_stats;

/* Median (the mean of the middle two for even n), p90 (nearest rank), min, max, mean; n >= 1. */
sample_stats bench_stats_of(const double *samples, int n, double *scratch /* [n] */);

typedef struct {
    char name[256];
    int sm_count, sm_clock_mhz, memory_clock_mhz;
} device_info;

/* The current device's name, SM count and peak clocks ("unknown device" and zeros if unread). */
device_info bench_read_device(void);

/* The members "median_UNIT", "p90_UNIT", "min_UNIT", "max_UNIT", "mean_UNIT" of an object. */
void bench_write_stats(result_writer *w, const char *unit, const sample_stats *s);

/* Reads the saved result JSON back and draws its charts into out_dir, listing them on stdout. */
int bench_draw_saved_charts(const char *json_path, const char *out_dir);

/* A seed as an exact integer (a double would round seeds past 2^53); an array of ints. */
void bench_write_seed(result_writer *w, unsigned long long seed);
void bench_write_int_array(result_writer *w, const int *values, int n);

/*
 * Writes out_dir/file through write(w, ctx), prints its path, then draws its charts there.
 * Returns 0, or 1 after one error line.
 */
int bench_save_result(const char *out_dir, const char *file,
                      void (*write)(result_writer *w, const void *ctx), const void *ctx);

/* ---- per-op timing, shared by bench ops and bench roofline (defined in bench_ops.c) ---- */

#ifdef GPT2_CUDA_EMULATION
#define BENCH_DEFAULT_COPY_MIB 8
#define BENCH_DEFAULT_GEMM_SIZE 128
#define BENCH_DEFAULT_WARMUP 1
#define BENCH_DEFAULT_REPEATS 3
#else
#define BENCH_DEFAULT_COPY_MIB 1024
#define BENCH_DEFAULT_GEMM_SIZE 8192
#define BENCH_DEFAULT_WARMUP 5
#define BENCH_DEFAULT_REPEATS 30
#endif

/* malloc, cudaMalloc, or cudaMalloc + copy, each or a clear line and exit (nothing to report). */
void *bench_xmalloc(size_t bytes);
void *bench_device_alloc(size_t bytes, const char *what);
void *bench_device_upload(const void *host, size_t bytes, const char *what);
/* n fp16 values uniform in [-scale, scale] from stream `stream` of the seed, on the device. */
void *bench_device_random(size_t n, float scale, uint64_t seed, uint64_t stream,
                          const char *what);

/* The L2 flush and the events of bench_time_op. */
typedef struct {
    cudaStream_t stream;
    cudaEvent_t start, stop;
    void *flush;        /* [flush_bytes] written before every timed repeat */
    size_t flush_bytes, l2_bytes;
    int warmup, repeats;
    double *scratch;    /* [repeats] */
} bench_timer;

void bench_timer_create(bench_timer *t, int warmup, int repeats);
void bench_timer_destroy(bench_timer *t);

/* An op's launches on a stream; op is its own struct of arguments. */
typedef void (*bench_op_launch)(const void *op, cudaStream_t stream);

/*
 * Captures launch(op) into a CUDA graph, replays it t->warmup times, then t->repeats times:
 * each replay after the L2 flush, between two events. Fills samples_us and returns their
 * statistics. The flush and the host's enqueueing run before the start event: the device is
 * busy with the flush while the host enqueues the replay.
 */
sample_stats bench_time_op(bench_timer *t, bench_op_launch launch, const void *op,
                           double *samples_us /* [t->repeats] */);

/* The two ceilings of a run, measured as bench ops measures them. */
typedef struct {
    double copy_bytes_per_s;   /* cudaMemcpyAsync device to device, read plus write */
    double gemm_flops_per_s;   /* launch_linear on a square; 0 when it failed its check */
    double copy_us, gemm_us;   /* their medians (gemm_us NaN when not timed) */
    int copy_mib, gemm_size;
} bench_ceilings;

void bench_measure_ceilings(bench_timer *t, gemm_context *gemm, int copy_mib, int gemm_size,
                            unsigned long long seed, bench_ceilings *out);

/* ---- bench ops ---- */

/*
 * `gpt2 bench ops ARGS`: argc/argv are the arguments after "ops"; record_argc/record_argv the
 * arguments after "bench" (what the result's command line records). Returns the exit code.
 */
int cmd_bench_ops(int argc, char **argv, int record_argc, char **record_argv);

/* ---- bench roofline (tools/bench_roofline.c), called the same way ---- */

int cmd_bench_roofline(int argc, char **argv, int record_argc, char **record_argv);

/* ---- bench e2e (tools/bench_e2e.c), called the same way, and its usage text ---- */

int cmd_bench_e2e(int argc, char **argv, int record_argc, char **record_argv);
extern const char bench_e2e_help[];

#endif
