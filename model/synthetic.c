#include "model/synthetic.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/sampler.h"

int gpt2_config_preset(const char *name, gpt2_config *config) {
    static const struct {
        const char *name;
        int n_layer, n_head;
    } presets[] = {{"124M", 12, 12}, {"355M", 24, 16}, {"774M", 36, 20}, {"1558M", 48, 25}};
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
        if (strcmp(name, presets[i].name) != 0) continue;
        *config = (gpt2_config){.n_layer = presets[i].n_layer,
                                .n_head = presets[i].n_head,
                                .n_embd = presets[i].n_head * GPT2_HEAD_SIZE,
                                .n_positions = 1024,
                                .vocab_size = 50257,
                                .layer_norm_eps = 1e-5f};
        return 0;
    }
    return -1;
}

/* One tensor of the synthetic file. */
typedef struct {
    char name[64];
    int ndim;
    int64_t shape[2];
    double offset, scale;
} synthetic_tensor;

enum { MATRIX, BIAS, NORM_WEIGHT, NORM_BIAS };
static const double kind_offset[] = {0.0, 0.0, 1.0, 0.0};
static const double kind_scale[] = {0.035, 0.02, 0.1, 0.02};

static synthetic_tensor make_tensor(const char *name, int kind, int64_t rows, int64_t cols) {
    synthetic_tensor t = {.ndim = cols ? 2 : 1, .shape = {rows, cols},
                          .offset = kind_offset[kind], .scale = kind_scale[kind]};
    snprintf(t.name, sizeof t.name, "%s", name);
    return t;
}

/* Lists the tensors in file order into out (room for 2 + 12 * n_layer + 2). Returns the count. */
static int list_tensors(const gpt2_config *c, synthetic_tensor *out) {
    const int64_t C = c->n_embd;
    int n = 0;
    out[n++] = make_tensor("wte.weight", MATRIX, c->vocab_size, C);
    out[n++] = make_tensor("wpe.weight", MATRIX, c->n_positions, C);
    for (int l = 0; l < c->n_layer; l++) {
        static const struct {
            const char *suffix;
            int kind, rows_c, cols_c; /* shape in units of C; cols 0 means a vector */
        } layer[] = {
            {"ln_1.weight", NORM_WEIGHT, 1, 0}, {"ln_1.bias", NORM_BIAS, 1, 0},
            {"attn.c_attn.weight", MATRIX, 1, 3}, {"attn.c_attn.bias", BIAS, 3, 0},
            {"attn.c_proj.weight", MATRIX, 1, 1}, {"attn.c_proj.bias", BIAS, 1, 0},
            {"ln_2.weight", NORM_WEIGHT, 1, 0}, {"ln_2.bias", NORM_BIAS, 1, 0},
            {"mlp.c_fc.weight", MATRIX, 1, 4}, {"mlp.c_fc.bias", BIAS, 4, 0},
            {"mlp.c_proj.weight", MATRIX, 4, 1}, {"mlp.c_proj.bias", BIAS, 1, 0},
        };
        for (size_t j = 0; j < sizeof layer / sizeof layer[0]; j++) {
            char name[64];
            snprintf(name, sizeof name, "h.%d.%s", l, layer[j].suffix);
            out[n++] = make_tensor(name, layer[j].kind, layer[j].rows_c * C, layer[j].cols_c * C);
        }
    }
    out[n++] = make_tensor("ln_f.weight", NORM_WEIGHT, C, 0);
    out[n++] = make_tensor("ln_f.bias", NORM_BIAS, C, 0);
    return n;
}

static int64_t tensor_numel(const synthetic_tensor *t) {
    return t->ndim == 2 ? t->shape[0] * t->shape[1] : t->shape[0];
}

static float synthetic_value(uint64_t seed, int k, int64_t i, const synthetic_tensor *t) {
    uint64_t h = splitmix64_mix(seed + ((uint64_t)k << 40) + (uint64_t)i);
    double u = (double)(h >> 40) / 16777216.0;
    return (float)(t->offset + t->scale * (2.0 * u - 1.0));
}

/* Appends formatted text into a fixed buffer; remembers an overflow instead of writing past it. */
typedef struct {
    char *text;
    size_t len, cap;
    bool overflow;
} text_buffer;

static void append(text_buffer *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void append(text_buffer *b, const char *fmt, ...) {
    if (b->overflow) return;
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(b->text + b->len, b->cap - b->len, fmt, args);
    va_end(args);
    if (n < 0 || (size_t)n >= b->cap - b->len) b->overflow = true;
    else b->len += (size_t)n;
}

/* The safetensors header: JSON padded with spaces to a multiple of 8 bytes. Caller frees. */
static char *build_header(const synthetic_tensor *tensors, int n, size_t *header_len) {
    text_buffer b = {.cap = 64 + (size_t)n * 256}; /* an entry is at most ~200 bytes */
    b.text = malloc(b.cap);
    if (!b.text) return NULL;
    append(&b, "{\"__metadata__\":{\"format\":\"pt\"}");
    uint64_t offset = 0;
    for (int k = 0; k < n; k++) {
        const synthetic_tensor *t = &tensors[k];
        uint64_t bytes = (uint64_t)tensor_numel(t) * sizeof(float);
        append(&b, ",\"%s\":{\"dtype\":\"F32\",\"shape\":[%lld", t->name, (long long)t->shape[0]);
        if (t->ndim == 2) append(&b, ",%lld", (long long)t->shape[1]);
        append(&b, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)offset,
               (unsigned long long)(offset + bytes));
        offset += bytes;
    }
    append(&b, "}");
    while (!b.overflow && b.len % 8) append(&b, " ");
    if (b.overflow) {
        free(b.text);
        return NULL;
    }
    *header_len = b.len;
    return b.text;
}

static int write_tensor_data(FILE *f, const synthetic_tensor *t, int k, uint64_t seed) {
    enum { CHUNK = 1 << 16 };
    float *buffer = malloc(CHUNK * sizeof(float));
    int64_t numel = tensor_numel(t);
    int rc = buffer ? 0 : -1;
    for (int64_t start = 0; rc == 0 && start < numel; start += CHUNK) {
        int64_t count = numel - start < CHUNK ? numel - start : CHUNK;
        for (int64_t i = 0; i < count; i++) buffer[i] = synthetic_value(seed, k, start + i, t);
        if (fwrite(buffer, sizeof(float), (size_t)count, f) != (size_t)count) rc = -1;
    }
    free(buffer);
    return rc;
}

static int write_safetensors(const char *path, const gpt2_config *c, uint64_t seed) {
    synthetic_tensor *tensors = malloc((size_t)(4 + 12 * c->n_layer) * sizeof *tensors);
    if (!tensors) return -1;
    int n = list_tensors(c, tensors);
    size_t header_len = 0;
    char *header = build_header(tensors, n, &header_len);
    FILE *f = header ? fopen(path, "wb") : NULL;
    int rc = f ? 0 : -1;
    if (f) {
        uint8_t len_le[8];
        for (int b = 0; b < 8; b++) len_le[b] = (uint8_t)((uint64_t)header_len >> (8 * b));
        if (fwrite(len_le, 1, 8, f) != 8 || fwrite(header, 1, header_len, f) != header_len) rc = -1;
        for (int k = 0; k < n && rc == 0; k++) rc = write_tensor_data(f, &tensors[k], k, seed);
        if (fclose(f) != 0) rc = -1;
    }
    free(header);
    free(tensors);
    return rc;
}

static int write_config(const char *path, const gpt2_config *c) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fprintf(f,
            "{\n  \"model_type\": \"gpt2\",\n  \"architectures\": [\"GPT2LMHeadModel\"],\n"
            "  \"activation_function\": \"gelu_new\",\n  \"n_layer\": %d,\n  \"n_head\": %d,\n"
            "  \"n_embd\": %d,\n  \"n_positions\": %d,\n  \"n_ctx\": %d,\n  \"vocab_size\": %d,\n"
            "  \"layer_norm_epsilon\": %g,\n  \"tie_word_embeddings\": true\n}\n",
            c->n_layer, c->n_head, c->n_embd, c->n_positions, c->n_positions, c->vocab_size,
            (double)c->layer_norm_eps);
    return fclose(f) == 0 ? 0 : -1;
}

int synthetic_checkpoint_write(const char *dir, const gpt2_config *config, uint64_t seed,
                               char *err, size_t err_len) {
    const gpt2_config *c = config;
    if (c->n_layer < 1 || c->n_layer > 1024 || c->n_head < 1 || c->n_head > 1024 ||
        c->n_embd != c->n_head * GPT2_HEAD_SIZE || c->n_positions < 1 || c->vocab_size < 1 ||
        !(c->layer_norm_eps > 0.0f)) {
        snprintf(err, err_len, "synthetic checkpoint: invalid shape (%d layers, %d heads, n_embd %d, "
                 "%d positions, vocab %d)", c->n_layer, c->n_head, c->n_embd, c->n_positions,
                 c->vocab_size);
        return -1;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (write_config(path, config) != 0) goto fail;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (write_safetensors(path, config, seed) != 0) goto fail;
    return 0;
fail:
    snprintf(err, err_len, "%s: cannot write synthetic checkpoint: %s", path, strerror(errno));
    return -1;
}
