#include "tools/cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "model/json.h"

int cli_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "gpt2 %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

bool cli_has_next(const cli_args *args) { return !args->failed && args->next < args->argc; }

bool cli_flag(cli_args *args, const char *flag) {
    if (args->next >= args->argc || strcmp(args->argv[args->next], flag) != 0) return false;
    args->next++;
    return true;
}

const char *cli_value(cli_args *args) {
    if (args->next >= args->argc) {
        cli_error(args->cmd, "flag '%s' needs a value", args->argv[args->next - 1]);
        args->failed = true;
        return NULL;
    }
    return args->argv[args->next++];
}

static bool fail_value(cli_args *args, const char *value, const char *expected) {
    cli_error(args->cmd, "flag '%s': '%s' is not %s", args->argv[args->next - 2], value, expected);
    args->failed = true;
    return false;
}

bool cli_int(cli_args *args, long min, long max, int *out) {
    const char *value = cli_value(args);
    if (!value) return false;
    char *end;
    errno = 0;
    long v = strtol(value, &end, 10);
    char expected[96];
    snprintf(expected, sizeof expected, "an integer in [%ld, %ld]", min, max);
    if (errno || end == value || *end || v < min || v > max) return fail_value(args, value, expected);
    *out = (int)v;
    return true;
}

bool cli_float(cli_args *args, double min, double max, float *out) {
    const char *value = cli_value(args);
    if (!value) return false;
    char *end;
    errno = 0;
    double v = strtod(value, &end);
    char expected[96];
    snprintf(expected, sizeof expected, "a number in [%g, %g]", min, max);
    if (errno || end == value || *end || !(v >= min && v <= max))
        return fail_value(args, value, expected);
    *out = (float)v;
    return true;
}

bool cli_bytes(cli_args *args, size_t *out) {
    const char *value = cli_value(args);
    if (!value) return false;
    const size_t digits = strspn(value, "0123456789");
    const char *suffix = value + digits;
    const int shift = !*suffix ? 0 : !strcmp(suffix, "K") ? 10 : !strcmp(suffix, "M") ? 20
                    : !strcmp(suffix, "G") ? 30 : -1;
    errno = 0;
    const unsigned long long n = digits ? strtoull(value, NULL, 10) : 0;
    if (shift < 0 || n == 0 || errno || n > (SIZE_MAX >> shift))
        return fail_value(args, value, "a byte count above 0 (digits, then optionally K, M or G)");
    *out = (size_t)n << shift;
    return true;
}

bool cli_u64(cli_args *args, unsigned long long *out) {
    const char *value = cli_value(args);
    if (!value) return false;
    /* Digits only: strtoull would skip leading blanks and negate after a sign (" -1" is 2^64-1). */
    if (!*value || strspn(value, "0123456789") != strlen(value))
        return fail_value(args, value, "a non-negative integer");
    char *end;
    errno = 0;
    unsigned long long v = strtoull(value, &end, 10);
    if (errno || *end) return fail_value(args, value, "a non-negative integer");
    *out = v;
    return true;
}

int cli_unknown(cli_args *args) {
    args->failed = true;
    return cli_error(args->cmd, "unknown argument '%s' (see gpt2 %s --help)",
                     args->argv[args->next], args->cmd);
}

/* Reads f to its end into *text (NUL-terminated). Returns 0, ENOMEM, or the read's errno. */
static int read_stream(FILE *f, char **text, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) return ENOMEM;
    for (;;) {
        errno = 0;
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        char *grown = realloc(buf, 2 * cap + 1);
        if (!grown) {
            free(buf);
            return ENOMEM;
        }
        buf = grown;
        cap *= 2;
    }
    if (ferror(f)) {
        int err = errno ? errno : EIO;
        free(buf);
        return err;
    }
    buf[n] = '\0';
    *text = buf;
    *len = n;
    return 0;
}

char *cli_read_text(const char *cmd, const char *prompt, const char *path, size_t *len) {
    if (prompt && path) {
        cli_error(cmd, "give the text with -p or -f, not both");
        return NULL;
    }
    if (prompt) {
        *len = strlen(prompt);
        char *copy = malloc(*len + 1);
        if (copy) memcpy(copy, prompt, *len + 1);
        else cli_error(cmd, "out of memory for %zu bytes of text", *len);
        return copy;
    }
    FILE *f = path ? fopen(path, "rb") : stdin;
    if (!path && isatty(STDIN_FILENO)) /* a person is typing, or waiting for something to happen */
        fprintf(stderr, "gpt2 %s: reading the text from the terminal; end it with Ctrl-D (or pass "
                        "-p TEXT or -f FILE)\n", cmd);
    if (!f) {
        cli_error(cmd, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *text = NULL;
    int err = read_stream(f, &text, len);
    if (err == ENOMEM) cli_error(cmd, "%s: out of memory", path ? path : "stdin");
    else if (err) cli_error(cmd, "%s: cannot read: %s", path ? path : "stdin", strerror(err));
    if (path) fclose(f);
    return text;
}

int cli_encode_file(const char *cmd, const char *path, int vocab_size, token_ids *ids) {
    size_t len = 0;
    char *text = cli_read_text(cmd, NULL, path, &len);
    if (!text) return 1;
    tokenizer *tok = tokenizer_create();
    int rc = tok && tokenizer_encode(tok, text, len, false, ids) == 0
                 ? 0
                 : cli_error(cmd, "out of memory");
    tokenizer_destroy(tok);
    free(text);
    for (size_t i = 0; rc == 0 && i < ids->len; i++)
        if (ids->ids[i] >= vocab_size)
            rc = cli_error(cmd, "%s: token id %d is outside this model's vocabulary of %d", path,
                           ids->ids[i], vocab_size);
    return rc;
}

static bool is_id_separator(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',';
}

int cli_parse_ids(const char *cmd, const char *text, size_t len, int vocab_size, token_ids *out) {
    const char *p = text, *limit = text + len;
    for (;;) {
        while (p < limit && is_id_separator(*p)) p++;
        if (p == limit) return 0;
        const char *word_end = p;
        while (word_end < limit && !is_id_separator(*word_end)) word_end++;
        /* Digits only, read within the word (text need not be NUL-terminated, and strtol would
         * take blanks and signs); the value saturates at vocab_size, which is out of range. */
        long long id = 0; /* below vocab_size, times 10, plus 9: fits */
        bool digits = true;
        for (const char *q = p; q < word_end && digits; q++) {
            digits = *q >= '0' && *q <= '9';
            if (digits && id < vocab_size) id = id * 10 + (*q - '0');
        }
        if (!digits || id >= vocab_size) {
            char shown[64];
            json_printable(p, (size_t)(word_end - p), shown, sizeof shown);
            if (!digits) cli_error(cmd, "'%s' is not a token id", shown);
            else cli_error(cmd, "token id %s out of range [0, %d)", shown, vocab_size);
            return -1;
        }
        if (token_ids_push(out, (int32_t)id) != 0) {
            cli_error(cmd, "out of memory");
            return -1;
        }
        p = word_end;
    }
}

bool cli_backend_parse(cli_args *args, cli_backend *out) {
    const char *value = cli_value(args);
    if (!value) return false;
    if (strcmp(value, "cpu") == 0 || strcmp(value, "cuda") == 0) {
        *out = strcmp(value, "cpu") == 0 ? BACKEND_CPU : BACKEND_CUDA;
        return true;
    }
    args->failed = true;
    cli_error(args->cmd, "unknown backend '%s' (expected cpu or cuda)", value);
    return false;
}

bool cli_kv_policy_flag(cli_args *args, cli_kv_policy_flags *flags) {
    if (cli_flag(args, "--kv-budget")) {
        cli_int(args, 1, 1 << 30, &flags->budget_tokens);
        return true;
    }
    if (!cli_flag(args, "--kv-policy")) return false;
    const char *value = cli_value(args);
    char err[256];
    if (value && kv_policy_parse(value, &flags->policy, err, sizeof err) != 0) {
        cli_error(args->cmd, "flag '--kv-policy': %s", err);
        args->failed = true;
    }
    return true;
}

bool cli_cuda_flag(cli_args *args, cli_cuda_flags *flags) {
    if (cli_flag(args, "--unfused")) flags->unfused = true;
    else if (cli_flag(args, "--device")) cli_int(args, 0, 1 << 16, &flags->device);
    else return false;
    flags->given = true;
    return true;
}

bool cli_kv_format_parse(cli_args *args, kv_format *out) {
    const char *value = cli_value(args);
    if (!value) return false;
    if (kv_format_parse(value, out)) return true;
    return fail_value(args, value, "a KV format (fp32, fp16 or int8)");
}

bool cli_is_model_dir(const char *path) {
    size_t len = strlen(path) + sizeof "/config.json";
    char *config = malloc(len);
    if (!config) return false;
    snprintf(config, len, "%s/config.json", path);
    struct stat st;
    bool found = stat(config, &st) == 0 && S_ISREG(st.st_mode);
    free(config);
    return found;
}

const char *cli_model_dir(const char *cmd, const char *flag_value) {
    if (flag_value) return flag_value;
    const char *env = getenv("GPT2_MODEL");
    if (env && *env) return env;
    static const char *const defaults[] = {GPT2_SOURCE_DIR "/weights/default",
                                           GPT2_SOURCE_DIR "/weights/gpt2"};
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
        if (cli_is_model_dir(defaults[i])) return defaults[i]; /* an empty folder is no model */
    cli_error(cmd, "no model: pass -m DIR (a HuggingFace GPT-2 folder with config.json and "
                   "model.safetensors) or set GPT2_MODEL; weights/download.sh gpt2 fetches "
                   "GPT-2 124M into weights/gpt2, which is then used by default (needs internet)");
    return NULL;
}

int cli_resolve_ctx(const char *cmd, int *ctx, const gpt2_config *config) {
    if (*ctx == 0) *ctx = config->n_positions;
    if (*ctx <= config->n_positions) return 0;
    return cli_error(cmd, "--ctx %d exceeds the model's context of %d", *ctx, config->n_positions);
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int cli_make_folders(const char *path) {
    size_t len = strlen(path);
    char *partial = malloc(len + 1);
    if (!partial) return -1;
    int rc = 0;
    for (size_t i = 1; i <= len && rc == 0; i++) {
        if (path[i] != '/' && path[i] != '\0') continue;
        memcpy(partial, path, i);
        partial[i] = '\0';
        if (mkdir(partial, 0777) != 0 && errno != EEXIST) rc = -1;
    }
    struct stat st;
    if (rc == 0 && stat(path, &st) != 0) rc = -1;
    if (rc == 0 && !S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        rc = -1;
    }
    int saved = errno;
    free(partial);
    errno = saved;
    return rc;
}
