#include "tools/result.h"

#include <cuda_runtime.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kernels/kernels.h"
#include "tokenizer/utf8.h"
#include "tools/git_revision.h" /* generated at build time: GPT2_GIT_REVISION, "" when unknown */

/* ---- JSON strings and numbers ---- */

void result_json_string(FILE *out, const char *s, size_t len) {
    const unsigned char *u = (const unsigned char *)s;
    fputc('"', out);
    for (size_t i = 0; i < len;) {
        size_t n = utf8_valid_length(u + i, len - i);
        if (n == 0) { /* JSON text is UTF-8: a stray byte becomes U+FFFD */
            fputs("\\ufffd", out);
            i++;
            continue;
        }
        unsigned char c = u[i];
        if (c == '"' || c == '\\') fprintf(out, "\\%c", c);
        else if (c == '\n') fputs("\\n", out);
        else if (c == '\r') fputs("\\r", out);
        else if (c == '\t') fputs("\\t", out);
        else if (c < 0x20) fprintf(out, "\\u%04x", c);
        else fwrite(u + i, 1, n, out);
        i += n;
    }
    fputc('"', out);
}

const char *result_format_number(double value, char buf[RESULT_NUMBER_LEN]) {
    buf[0] = '\0';
    if (!isfinite(value)) return buf;
    /* %.17g always reads back exactly; fewer digits often do, and read better. */
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(buf, RESULT_NUMBER_LEN, "%.*g", digits, value);
        if (strtod(buf, NULL) == value) break;
    }
    /* %g turns round numbers such as 1500 into 1.5e+03; below a million they are integers that
       doubles hold exactly, so print them plainly. */
    if (strchr(buf, 'e') && fabs(value) >= 1 && fabs(value) < 1e6)
        snprintf(buf, RESULT_NUMBER_LEN, "%.0f", value);
    return buf;
}

/* ---- the streaming writer ---- */

void result_writer_init(result_writer *w, FILE *out) { *w = (result_writer){.out = out}; }

static bool misuse(result_writer *w) {
    w->misused = true;
    return false;
}

static void new_line(result_writer *w, int depth) {
    fputc('\n', w->out);
    for (int i = 0; i < depth; i++) fputs("  ", w->out);
}

/* Writes what precedes a value in its container. False (misuse) where no value may go. */
static bool begin_value(result_writer *w, bool is_container) {
    if (w->misused || w->complete) return misuse(w);
    if (w->depth == 0) return true;
    result_level *level = &w->open[w->depth - 1];
    if (level->is_object) {
        if (!w->after_key) return misuse(w);
        w->after_key = false;
        return true;
    }
    if (level->has_items) fputc(',', w->out);
    if (is_container || level->multiline) {
        new_line(w, w->depth);
        level->multiline = true;
    } else if (level->has_items) {
        fputc(' ', w->out);
    }
    level->has_items = true;
    return true;
}

/* After a value: at the top level it completes the document. */
static void end_value(result_writer *w) {
    if (w->depth > 0) return;
    w->complete = true;
    fputc('\n', w->out);
}

static void begin_container(result_writer *w, bool is_object) {
    if (w->depth == RESULT_MAX_DEPTH) {
        misuse(w);
        return;
    }
    if (!begin_value(w, true)) return;
    fputc(is_object ? '{' : '[', w->out);
    w->open[w->depth++] = (result_level){.is_object = is_object};
}

static void end_container(result_writer *w, bool is_object) {
    if (w->misused || w->depth == 0 || w->open[w->depth - 1].is_object != is_object ||
        w->after_key) {
        misuse(w);
        return;
    }
    result_level level = w->open[--w->depth];
    if (level.multiline) new_line(w, w->depth);
    fputc(is_object ? '}' : ']', w->out);
    end_value(w);
}

void result_begin_object(result_writer *w) { begin_container(w, true); }
void result_end_object(result_writer *w) { end_container(w, true); }
void result_begin_array(result_writer *w) { begin_container(w, false); }
void result_end_array(result_writer *w) { end_container(w, false); }

void result_key(result_writer *w, const char *key) {
    if (w->misused || w->depth == 0 || !w->open[w->depth - 1].is_object || w->after_key) {
        misuse(w);
        return;
    }
    result_level *level = &w->open[w->depth - 1];
    if (level->has_items) fputc(',', w->out);
    new_line(w, w->depth);
    level->has_items = level->multiline = true;
    result_json_string(w->out, key, strlen(key));
    fputs(": ", w->out);
    w->after_key = true;
}

/* Writes a scalar's literal text as the next value. */
static void write_scalar(result_writer *w, const char *text) {
    if (!begin_value(w, false)) return;
    fputs(text, w->out);
    end_value(w);
}

void result_string_n(result_writer *w, const char *s, size_t len) {
    if (!begin_value(w, false)) return;
    result_json_string(w->out, s, len);
    end_value(w);
}

void result_string(result_writer *w, const char *s) { result_string_n(w, s, strlen(s)); }

void result_number(result_writer *w, double value) {
    char buf[RESULT_NUMBER_LEN];
    write_scalar(w, isfinite(value) ? result_format_number(value, buf) : "null");
}

void result_int(result_writer *w, long long value) {
    char buf[RESULT_NUMBER_LEN];
    snprintf(buf, sizeof buf, "%lld", value);
    write_scalar(w, buf);
}

void result_bool(result_writer *w, bool value) { write_scalar(w, value ? "true" : "false"); }
void result_null(result_writer *w) { write_scalar(w, "null"); }

void result_number_array(result_writer *w, const double *values, size_t n) {
    result_begin_array(w);
    for (size_t i = 0; i < n; i++) result_number(w, values[i]);
    result_end_array(w);
}

void result_member_string(result_writer *w, const char *key, const char *s) {
    result_key(w, key);
    result_string(w, s);
}

void result_member_number(result_writer *w, const char *key, double value) {
    result_key(w, key);
    result_number(w, value);
}

void result_member_int(result_writer *w, const char *key, long long value) {
    result_key(w, key);
    result_int(w, value);
}

int result_writer_finish(result_writer *w) {
    bool flushed = fflush(w->out) == 0;
    return w->complete && !w->misused && flushed && !ferror(w->out) ? 0 : -1;
}

/* ---- the run record ---- */

/* Writes word so that a POSIX shell reads it back as one argument. */
static void write_shell_word(FILE *out, const char *word) {
    static const char safe[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                               "@%+=:,./_-";
    if (*word && strspn(word, safe) == strlen(word)) {
        fputs(word, out);
        return;
    }
    fputc('\'', out);
    for (const char *p = word; *p; p++)
        if (*p == '\'') fputs("'\\''", out);
        else fputc(*p, out);
    fputc('\'', out);
}

static void write_command_line(result_writer *w, const char *cmd, int argc, char **argv) {
    char *text = NULL;
    size_t len = 0;
    FILE *line = open_memstream(&text, &len);
    if (line) {
        fprintf(line, "gpt2 %s", cmd);
        for (int i = 0; i < argc; i++) {
            fputc(' ', line);
            write_shell_word(line, argv[i]);
        }
    }
    if (line && fclose(line) == 0) result_string_n(w, text, len);
    else result_null(w); /* out of memory */
    free(text);
}

static void write_date_utc(result_writer *w) {
    time_t now = time(NULL);
    struct tm utc;
    char date[32];
    if (now != (time_t)-1 && gmtime_r(&now, &utc) &&
        strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &utc) > 0)
        result_string(w, date);
    else
        result_null(w);
}

static void write_host(result_writer *w) {
    char host[256];
    if (gethostname(host, sizeof host) == 0) {
        host[sizeof host - 1] = '\0'; /* POSIX leaves a truncated name unterminated */
        result_string(w, host);
    } else {
        result_null(w);
    }
}

/* A CUDA version number (13000) as "13.0". */
static void member_cuda_version(result_writer *w, const char *key, cudaError_t rc, int version) {
    char text[32];
    snprintf(text, sizeof text, "%d.%d", version / 1000, version % 1000 / 10);
    result_key(w, key);
    if (rc == cudaSuccess) result_string(w, text);
    else result_null(w);
}

/* A clock attribute of the device, reported in kHz, as MHz (null when unavailable). */
static void member_clock_mhz(result_writer *w, const char *key, enum cudaDeviceAttr attribute,
                             int device) {
    int khz = 0;
    result_key(w, key);
    if (cudaDeviceGetAttribute(&khz, attribute, device) == cudaSuccess && khz > 0)
        result_int(w, khz / 1000);
    else
        result_null(w);
}

static void write_gpu(result_writer *w) {
    int device = 0;
    struct cudaDeviceProp prop;
    result_begin_object(w);
    if (gpt2_cuda_device_count() == 0 || cudaGetDevice(&device) != cudaSuccess ||
        cudaGetDeviceProperties(&prop, device) != cudaSuccess) {
        cudaGetLastError(); /* no device is not an error that later CUDA calls should see */
        result_member_string(w, "name", "none");
        result_end_object(w);
        return;
    }
    char capability[16];
    snprintf(capability, sizeof capability, "%d.%d", prop.major, prop.minor);
    result_member_string(w, "name", prop.name);
    result_member_string(w, "compute_capability", capability);
    result_member_int(w, "multiprocessors", prop.multiProcessorCount);
    result_member_number(w, "memory_gib", (double)prop.totalGlobalMem / (1 << 30));
    member_clock_mhz(w, "sm_clock_max_mhz", cudaDevAttrClockRate, device);
    member_clock_mhz(w, "memory_clock_max_mhz", cudaDevAttrMemoryClockRate, device);
    int driver = 0, runtime = 0;
    member_cuda_version(w, "driver_version", cudaDriverGetVersion(&driver), driver);
    member_cuda_version(w, "runtime_version", cudaRuntimeGetVersion(&runtime), runtime);
    result_end_object(w);
}

void result_write_run_info(result_writer *w, const char *cmd, int argc, char **argv) {
    result_begin_object(w);
    result_key(w, "command_line");
    write_command_line(w, cmd, argc, argv);
    result_key(w, "date_utc");
    write_date_utc(w);
    result_key(w, "host");
    write_host(w);
    result_key(w, "engine_revision");
    if (GPT2_GIT_REVISION[0]) result_string(w, GPT2_GIT_REVISION);
    else result_null(w);
    result_key(w, "gpu");
    write_gpu(w);
    result_end_object(w);
}
