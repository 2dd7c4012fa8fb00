/*
 * Result files of the gpt2 subcommands that save results (analyze now; bench later): a
 * streaming JSON writer, the run record every result carries, and the number format its CSV
 * shares with the JSON. Drawing the charts a result embeds is tools/result_charts.h, in the
 * gpt2 executable.
 *
 * The writer's layout: each object member on a line of its own, indented two spaces a level;
 * numbers and strings inside an array on one line, nested arrays and objects on lines of their
 * own, so that a matrix prints one row a line.
 */
#ifndef GPT2_RESULT_H
#define GPT2_RESULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#define RESULT_MAX_DEPTH 32
#define RESULT_NUMBER_LEN 32

/* Writes s[0..len) as a JSON string literal, quotes included; invalid UTF-8 bytes become U+FFFD. */
void result_json_string(FILE *out, const char *s, size_t len);

/*
 * The shortest decimal that reads back as exactly value ("0.1", "1500", "3e+12", "-0"), or ""
 * for NaN and infinities. Returns buf.
 */
const char *result_format_number(double value, char buf[RESULT_NUMBER_LEN]);

typedef struct {
    bool is_object;
    bool has_items;
    bool multiline; /* its items went on lines of their own, so its closing bracket does too */
} result_level;

/*
 * One JSON document being written to a stream. Misuse (a value where a key is due, a second
 * top-level value, unbalanced ends, nesting deeper than RESULT_MAX_DEPTH) is remembered, leaves
 * the rest unwritten, and makes result_writer_finish fail.
 */
typedef struct {
    FILE *out;
    int depth;                          /* containers open */
    result_level open[RESULT_MAX_DEPTH]; /* [depth] */
    bool after_key;                     /* an object member's key was written; its value is due */
    bool complete;                      /* the top-level value has been written */
    bool misused;
} result_writer;

void result_writer_init(result_writer *w, FILE *out);
void result_begin_object(result_writer *w);
void result_end_object(result_writer *w);
void result_begin_array(result_writer *w);
void result_end_array(result_writer *w);
/* The key of the next member of the innermost object (NUL-terminated, escaped as a string). */
void result_key(result_writer *w, const char *key);
void result_string(result_writer *w, const char *s);
void result_string_n(result_writer *w, const char *s, size_t len); /* may hold NUL bytes */
/* A number (result_format_number), or null for NaN and infinities. */
void result_number(result_writer *w, double value);
void result_int(result_writer *w, long long value);
void result_bool(result_writer *w, bool value);
void result_null(result_writer *w);
/* An array of n numbers. */
void result_number_array(result_writer *w, const double *values, size_t n);

/* A key and its value in one call. */
void result_member_string(result_writer *w, const char *key, const char *s);
void result_member_number(result_writer *w, const char *key, double value);
void result_member_int(result_writer *w, const char *key, long long value);

/*
 * Ends the document: flushes the stream. Returns 0 when one complete value was written without
 * misuse or I/O error, else -1.
 */
int result_writer_finish(result_writer *w);

/*
 * Writes the record of this run as an object value:
 *   "command_line":    "gpt2 CMD ARG...", arguments shell-quoted where they need it
 *   "date_utc":        "2025-01-31T12:00:00Z"
 *   "host":            the host name
 *   "engine_revision": `git describe --always --dirty` of the source tree at build time, or null
 *   "gpu":             {"name": "none"} without a CUDA device; otherwise the current device's
 *                      "name", "compute_capability" ("9.0"), "multiprocessors", "memory_gib",
 *                      "sm_clock_max_mhz", "memory_clock_max_mhz" (peak clocks the driver
 *                      reports, not the clocks of the moment), "driver_version" and
 *                      "runtime_version" ("13.0")
 * cmd is the subcommand and argc/argv the arguments after it.
 */
void result_write_run_info(result_writer *w, const char *cmd, int argc, char **argv);

#endif
