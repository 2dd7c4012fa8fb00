/*
 * gpt2 bench ops (tools/bench_ops.c), and the pieces of tools/cmd_bench.c that both benchmarks
 * share: sample statistics, the device as the tables and titles name it, the statistics' JSON
 * members, and the drawing of a saved result's charts.
 */
#ifndef GPT2_BENCH_OPS_H
#define GPT2_BENCH_OPS_H

#include <stdbool.h>

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

/* ---- bench ops ---- */

/*
 * `gpt2 bench ops ARGS`: argc/argv are the arguments after "ops"; record_argc/record_argv the
 * arguments after "bench" (what the result's command line records). Returns the exit code.
 */
int cmd_bench_ops(int argc, char **argv, int record_argc, char **record_argv);

#endif
