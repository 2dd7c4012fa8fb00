/*
 * Checkpoint loading end to end: tiny checkpoints written into a temporary directory load in
 * F32, F16 and BF16, with and without the "transformer." prefix, tied and untied, aligned or
 * not, and read back exactly; every kind of bad directory, config or safetensors file is
 * rejected with one error line naming the file and, where one is at fault, the tensor.
 */
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "model/checkpoint.h"
#include "tests/check.h"

enum { N_LAYER = 2, N_HEAD = 2, N_EMBD = 128, N_POSITIONS = 32, VOCAB = 100 };
#define MAX_SPEC_TENSORS 64

/* ---- A growable text buffer ---- */

typedef struct {
    char *data;
    size_t len, cap;
} text_buf;

static void die(const char *what) {
    fprintf(stderr, "test_checkpoint: %s\n", what);
    exit(EXIT_FAILURE);
}

static void appendf(text_buf *b, const char *fmt, ...) {
    va_list args;
    va_start(args, fmt);
    int n = vsnprintf(NULL, 0, fmt, args);
    va_end(args);
    if (n < 0) die("vsnprintf failed");
    if (b->cap - b->len <= (size_t)n) {
        size_t cap = 2 * (b->len + (size_t)n) + 64;
        char *grown = realloc(b->data, cap);
        if (!grown) die("out of memory");
        b->data = grown;
        b->cap = cap;
    }
    va_start(args, fmt);
    vsnprintf(b->data + b->len, b->cap - b->len, fmt, args);
    va_end(args);
    b->len += (size_t)n;
}

/* ---- Checkpoint specs and their writer ---- */

typedef enum { STORE_F32, STORE_F16, STORE_BF16, STORE_BYTE } storage;

typedef struct {
    char name[64];
    storage store;
    const char *dtype; /* written in the header; normally the storage's name */
    int rank;
    int64_t shape[4];
    const char *header_shape; /* written instead of shape when set, e.g. "[-1]" */
    bool custom_offsets;      /* write offsets instead of the real byte range */
    int64_t offsets[2];
    bool header_omitted;      /* its bytes are written, but no header entry for them */
    bool has_special;         /* element special_index is special_value (NaN, inf) */
    int64_t special_index;
    float special_value;
} spec_tensor;

typedef struct {
    spec_tensor tensors[MAX_SPEC_TENSORS]; /* [count], in file order */
    int count;
    bool misaligned; /* data section starts at an odd file offset */
} model_spec;

static size_t storage_size(storage s) {
    static const size_t sizes[] = {
        [STORE_F32] = 4, [STORE_F16] = 2, [STORE_BF16] = 2, [STORE_BYTE] = 1};
    return sizes[s];
}

static const char *storage_dtype(storage s) {
    static const char *names[] = {
        [STORE_F32] = "F32", [STORE_F16] = "F16", [STORE_BF16] = "BF16", [STORE_BYTE] = "U8"};
    return names[s];
}

static int64_t spec_numel(const spec_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++) n *= t->shape[i];
    return n;
}

/* Value j of tensor number index: k/64 with |k| <= 127, exact in F16 and BF16. */
static float spec_value(int index, int64_t j) {
    return (float)((index * 37 + j * 11) % 255 - 127) / 64.0f;
}

static uint32_t f32_bits(float f) {
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    return bits;
}

/* Only for zero and normal halves, which is all spec_value produces. */
static uint16_t f16_from_exact_f32(float f) {
    uint32_t bits = f32_bits(f);
    uint16_t sign = (uint16_t)((bits >> 16) & 0x8000);
    if ((bits & 0x7FFFFFFF) == 0) return sign;
    uint32_t exponent = ((bits >> 23) & 0xFF) - 127 + 15;
    return (uint16_t)(sign | (exponent << 10) | ((bits >> 13) & 0x3FF));
}

static void encode(float v, storage s, unsigned char *dst) {
    uint16_t half = 0;
    switch (s) {
    case STORE_F32: memcpy(dst, &v, 4); return;
    case STORE_F16:
        half = isnan(v)   ? 0x7E00
               : isinf(v) ? (uint16_t)(v > 0 ? 0x7C00 : 0xFC00)
                          : f16_from_exact_f32(v);
        break;
    case STORE_BF16: half = (uint16_t)(f32_bits(v) >> 16); break;
    case STORE_BYTE: *dst = 1; return;
    }
    memcpy(dst, &half, 2);
}

static spec_tensor *spec_add(model_spec *spec, const char *prefix, const char *name, storage store,
                             int rank, int64_t d0, int64_t d1) {
    if (spec->count == MAX_SPEC_TENSORS) die("too many tensors");
    spec_tensor *t = &spec->tensors[spec->count++];
    *t = (spec_tensor){
        .store = store, .dtype = storage_dtype(store), .rank = rank, .shape = {d0, d1}};
    snprintf(t->name, sizeof t->name, "%s%s", prefix, name);
    return t;
}

static spec_tensor *spec_find(model_spec *spec, const char *name) {
    for (int i = 0; i < spec->count; i++)
        if (strcmp(spec->tensors[i].name, name) == 0) return &spec->tensors[i];
    die("spec_find: no such tensor");
    return NULL;
}

static int spec_index(const model_spec *spec, const char *name) {
    for (int i = 0; i < spec->count; i++)
        if (strcmp(spec->tensors[i].name, name) == 0) return i;
    return -1;
}

static void spec_remove(model_spec *spec, const char *name) {
    spec_tensor *t = spec_find(spec, name);
    int i = (int)(t - spec->tensors);
    memmove(t, t + 1, (size_t)(spec->count - i - 1) * sizeof *t);
    spec->count--;
}

/* The tensors of one layer, with their shapes in units of C. */
static const struct {
    size_t field; /* offset in gpt2_layer_tensors */
    const char *name;
    int rows, cols; /* multiples of C; cols 0 for vectors */
} layer_tensors[] = {
    {offsetof(gpt2_layer_tensors, ln_1_w), "ln_1.weight", 1, 0},
    {offsetof(gpt2_layer_tensors, ln_1_b), "ln_1.bias", 1, 0},
    {offsetof(gpt2_layer_tensors, attn_w), "attn.c_attn.weight", 1, 3},
    {offsetof(gpt2_layer_tensors, attn_b), "attn.c_attn.bias", 3, 0},
    {offsetof(gpt2_layer_tensors, attn_proj_w), "attn.c_proj.weight", 1, 1},
    {offsetof(gpt2_layer_tensors, attn_proj_b), "attn.c_proj.bias", 1, 0},
    {offsetof(gpt2_layer_tensors, ln_2_w), "ln_2.weight", 1, 0},
    {offsetof(gpt2_layer_tensors, ln_2_b), "ln_2.bias", 1, 0},
    {offsetof(gpt2_layer_tensors, fc_w), "mlp.c_fc.weight", 1, 4},
    {offsetof(gpt2_layer_tensors, fc_b), "mlp.c_fc.bias", 4, 0},
    {offsetof(gpt2_layer_tensors, mlp_proj_w), "mlp.c_proj.weight", 4, 1},
    {offsetof(gpt2_layer_tensors, mlp_proj_b), "mlp.c_proj.bias", 1, 0},
};
#define N_LAYER_TENSORS (sizeof layer_tensors / sizeof layer_tensors[0])

/* A complete tiny GPT-2 with the old causal-mask buffers that loaders must ignore. */
static model_spec make_spec(storage store, const char *prefix, bool untied, bool misaligned) {
    model_spec spec = {.misaligned = misaligned};
    const int64_t C = N_EMBD;
    spec_add(&spec, prefix, "wte.weight", store, 2, VOCAB, C);
    spec_add(&spec, prefix, "wpe.weight", store, 2, N_POSITIONS, C);
    for (int layer = 0; layer < N_LAYER; layer++) {
        char name[64];
        for (size_t i = 0; i < N_LAYER_TENSORS; i++) {
            snprintf(name, sizeof name, "h.%d.%s", layer, layer_tensors[i].name);
            int rank = layer_tensors[i].cols ? 2 : 1;
            spec_add(&spec, prefix, name, store, rank, layer_tensors[i].rows * C,
                     layer_tensors[i].cols * C);
        }
        snprintf(name, sizeof name, "h.%d.attn.bias", layer);
        spec_tensor *mask = spec_add(&spec, prefix, name, layer ? STORE_BYTE : STORE_F32, 4, 1, 1);
        mask->shape[2] = mask->shape[3] = N_POSITIONS;
        if (layer) mask->dtype = "BOOL";
        snprintf(name, sizeof name, "h.%d.attn.masked_bias", layer);
        spec_add(&spec, prefix, name, layer ? STORE_BYTE : STORE_F32, 0, 0, 0);
    }
    spec_add(&spec, prefix, "ln_f.weight", store, 1, C, 0);
    spec_add(&spec, prefix, "ln_f.bias", store, 1, C, 0);
    if (untied) spec_add(&spec, "", "lm_head.weight", store, 2, VOCAB, C);
    return spec;
}

static char *join(const char *dir, const char *name) {
    size_t len = strlen(dir) + strlen(name) + 2;
    char *path = malloc(len);
    if (!path) die("out of memory");
    snprintf(path, len, "%s/%s", dir, name);
    return path;
}

static void write_bytes(const char *path, const void *bytes, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f || (len && fwrite(bytes, 1, len, f) != len) || fclose(f) != 0) die("cannot write file");
}

static void write_text_file(const char *dir, const char *name, const char *text) {
    char *path = join(dir, name);
    write_bytes(path, text, strlen(text));
    free(path);
}

/* Writes dir/model.safetensors as an 8-byte length, header_text, then data[data_len]. */
static void write_raw_safetensors(const char *dir, uint64_t header_len, const char *header_text,
                                  const unsigned char *data, size_t data_len) {
    size_t text_len = strlen(header_text);
    unsigned char *file = malloc(8 + text_len + data_len);
    if (!file) die("out of memory");
    for (int i = 0; i < 8; i++) file[i] = (unsigned char)(header_len >> (8 * i));
    memcpy(file + 8, header_text, text_len);
    if (data_len) memcpy(file + 8 + text_len, data, data_len);
    char *path = join(dir, "model.safetensors");
    write_bytes(path, file, 8 + text_len + data_len);
    free(path);
    free(file);
}

static void write_safetensors(const char *dir, const model_spec *spec) {
    text_buf header = {0};
    size_t data_len = 0;
    appendf(&header, "{\"__metadata__\": {\"format\": \"pt\"}");
    for (int i = 0; i < spec->count; i++) {
        const spec_tensor *t = &spec->tensors[i];
        size_t nbytes = (size_t)spec_numel(t) * storage_size(t->store);
        if (t->header_omitted) {
            data_len += nbytes;
            continue;
        }
        appendf(&header, ", \"%s\": {\"dtype\": \"%s\", \"shape\": ", t->name, t->dtype);
        if (t->header_shape) {
            appendf(&header, "%s", t->header_shape);
        } else {
            appendf(&header, "[");
            for (int d = 0; d < t->rank; d++)
                appendf(&header, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
            appendf(&header, "]");
        }
        if (t->custom_offsets)
            appendf(&header, ", \"data_offsets\": [%lld, %lld]}", (long long)t->offsets[0],
                    (long long)t->offsets[1]);
        else
            appendf(&header, ", \"data_offsets\": [%zu, %zu]}", data_len, data_len + nbytes);
        data_len += nbytes;
    }
    appendf(&header, "}");
    /* Pad with spaces so that the data starts 8-aligned, or deliberately one byte past that. */
    size_t target = spec->misaligned ? 1 : 0;
    while ((8 + header.len) % 8 != target) appendf(&header, " ");

    unsigned char *data = malloc(data_len ? data_len : 1);
    if (!data) die("out of memory");
    unsigned char *p = data;
    for (int i = 0; i < spec->count; i++) {
        const spec_tensor *t = &spec->tensors[i];
        for (int64_t j = 0; j < spec_numel(t); j++, p += storage_size(t->store))
            encode(t->has_special && j == t->special_index ? t->special_value : spec_value(i, j),
                   t->store, p);
    }
    write_raw_safetensors(dir, header.len, header.data, data, data_len);
    free(data);
    free(header.data);
}

typedef struct {
    int n_layer, n_head, n_embd, n_positions, vocab_size;
    const char *extra; /* more members, each starting with ", " */
} config_fields;

static const config_fields default_config = {N_LAYER, N_HEAD, N_EMBD, N_POSITIONS, VOCAB, ""};

static void write_config(const char *dir, config_fields c) {
    char text[1024];
    snprintf(text, sizeof text,
             "{\n  \"model_type\": \"gpt2\",\n  \"n_layer\": %d,\n  \"n_head\": %d,\n"
             "  \"n_embd\": %d,\n  \"n_positions\": %d,\n  \"vocab_size\": %d%s\n}\n",
             c.n_layer, c.n_head, c.n_embd, c.n_positions, c.vocab_size, c.extra);
    write_text_file(dir, "config.json", text);
}

/* ---- Checking a loaded checkpoint ---- */

static void verify_tensor(const gpt2_tensor *t, const model_spec *spec, const char *expected_name) {
    CHECK(t->name && strcmp(t->name, expected_name) == 0, "bound '%s' as '%s'", expected_name,
          t->name ? t->name : "(null)");
    int index = spec_index(spec, expected_name);
    if (index < 0 || !t->name) return;
    const spec_tensor *s = &spec->tensors[index];
    static const gpt2_dtype dtypes[] = {
        [STORE_F32] = GPT2_F32, [STORE_F16] = GPT2_F16, [STORE_BF16] = GPT2_BF16};
    CHECK(t->dtype == dtypes[s->store], "%s: dtype %d", expected_name, (int)t->dtype);
    CHECK(t->ndim == s->rank && t->numel == spec_numel(s), "%s: rank or numel", expected_name);
    for (int d = 0; d < s->rank && d < t->ndim; d++)
        CHECK(t->shape[d] == s->shape[d], "%s: dim %d", expected_name, d);
    float *values = malloc((size_t)t->numel * sizeof *values);
    if (!values) die("out of memory");
    gpt2_tensor_to_f32(t, values);
    int64_t wrong = 0;
    for (int64_t j = 0; j < t->numel; j++) wrong += values[j] != spec_value(index, j);
    CHECK(wrong == 0, "%s: %lld values differ from those written", expected_name, (long long)wrong);
    free(values);
}

static void verify_checkpoint(const gpt2_checkpoint *ckpt, const model_spec *spec,
                              const char *prefix, bool untied) {
    const gpt2_config *c = &ckpt->config;
    CHECK(c->n_layer == N_LAYER && c->n_head == N_HEAD && c->n_embd == N_EMBD &&
              c->n_positions == N_POSITIONS && c->vocab_size == VOCAB,
          "config fields");
    CHECK(c->layer_norm_eps == 1e-5f, "default layer_norm_eps %g", c->layer_norm_eps);
    CHECK(ckpt->lm_head_tied == !untied, "lm_head_tied");
    char name[64];
    snprintf(name, sizeof name, "%swte.weight", prefix);
    verify_tensor(&ckpt->wte, spec, name);
    snprintf(name, sizeof name, "%swpe.weight", prefix);
    verify_tensor(&ckpt->wpe, spec, name);
    for (int layer = 0; layer < N_LAYER; layer++) {
        for (size_t i = 0; i < N_LAYER_TENSORS; i++) {
            const gpt2_tensor *t =
                (const gpt2_tensor *)((const char *)&ckpt->layers[layer] + layer_tensors[i].field);
            snprintf(name, sizeof name, "%sh.%d.%s", prefix, layer, layer_tensors[i].name);
            verify_tensor(t, spec, name);
        }
    }
    snprintf(name, sizeof name, "%sln_f.weight", prefix);
    verify_tensor(&ckpt->ln_f_w, spec, name);
    snprintf(name, sizeof name, "%sln_f.bias", prefix);
    verify_tensor(&ckpt->ln_f_b, spec, name);
    if (untied) {
        verify_tensor(&ckpt->lm_head, spec, "lm_head.weight");
    } else {
        CHECK(ckpt->lm_head.data == ckpt->wte.data && ckpt->lm_head.numel == ckpt->wte.numel,
              "tied lm_head is not the wte view");
    }
}

static void test_valid_checkpoints(const char *dir) {
    static const storage stores[] = {STORE_F32, STORE_F16, STORE_BF16};
    int variant = 0;
    for (size_t s = 0; s < 3; s++) {
        for (int prefixed = 0; prefixed < 2; prefixed++) {
            for (int untied = 0; untied < 2; untied++, variant++) {
                const char *prefix = prefixed ? "transformer." : "";
                bool misaligned = variant % 2 == 1;
                model_spec spec = make_spec(stores[s], prefix, untied, misaligned);
                write_config(dir, default_config);
                write_safetensors(dir, &spec);
                gpt2_checkpoint ckpt;
                char err[GPT2_ERR_LEN] = "";
                int rc = gpt2_checkpoint_open(&ckpt, dir, err, sizeof err);
                CHECK(rc == 0, "%s prefix='%s' untied=%d misaligned=%d rejected: %s",
                      storage_dtype(stores[s]), prefix, untied, misaligned, err);
                if (rc == 0) verify_checkpoint(&ckpt, &spec, prefix, untied);
                gpt2_checkpoint_close(&ckpt);
            }
        }
    }
}

/* Optional config members that are accepted, and what they do. */
static void test_config_variants(const char *dir) {
    model_spec spec = make_spec(STORE_F32, "", false, false);
    write_safetensors(dir, &spec);
    static const char *accepted[] = {
        ", \"activation_function\": \"gelu_new\", \"scale_attn_weights\": true",
        ", \"activation_function\": \"gelu_pytorch_tanh\"",
        ", \"scale_attn_by_inverse_layer_idx\": false, \"reorder_and_upcast_attn\": false",
        ", \"n_inner\": null, \"n_ctx\": 32",
        ", \"n_inner\": 512",
        ", \"layer_norm_epsilon\": 1e-06",
    };
    for (size_t i = 0; i < sizeof accepted / sizeof accepted[0]; i++) {
        config_fields c = default_config;
        c.extra = accepted[i];
        write_config(dir, c);
        gpt2_checkpoint ckpt;
        char err[GPT2_ERR_LEN] = "";
        int rc = gpt2_checkpoint_open(&ckpt, dir, err, sizeof err);
        CHECK(rc == 0, "config with%s rejected: %s", accepted[i], err);
        if (rc == 0 && strstr(accepted[i], "1e-06"))
            CHECK(ckpt.config.layer_norm_eps == 1e-6f, "layer_norm_epsilon %g",
                  ckpt.config.layer_norm_eps);
        gpt2_checkpoint_close(&ckpt);
    }
    /* Older configs name the context n_ctx only. */
    write_text_file(
        dir, "config.json",
        "{\"n_layer\": 2, \"n_head\": 2, \"n_embd\": 128, \"n_ctx\": 32, \"vocab_size\": 100}");
    gpt2_checkpoint ckpt;
    char err[GPT2_ERR_LEN] = "";
    CHECK(gpt2_checkpoint_open(&ckpt, dir, err, sizeof err) == 0 && ckpt.config.n_positions == 32,
          "n_ctx-only config rejected: %s", err);
    gpt2_checkpoint_close(&ckpt);
}

/* ---- Bad inputs ---- */

/* Opens dir and expects failure with one line holding every non-NULL fragment. */
static void expect_failure(const char *dir, const char *case_name, const char *file,
                           const char *tensor, const char *message) {
    gpt2_checkpoint ckpt;
    char err[GPT2_ERR_LEN] = "";
    int rc = gpt2_checkpoint_open(&ckpt, dir, err, sizeof err);
    CHECK(rc == -1, "%s: accepted", case_name);
    if (rc == 0) gpt2_checkpoint_close(&ckpt);
    CHECK(ckpt.file == NULL && ckpt.layers == NULL, "%s: checkpoint not left empty", case_name);
    char *path = file ? join(dir, file) : NULL;
    CHECK(strchr(err, '\n') == NULL, "%s: more than one line: %s", case_name, err);
    CHECK(!path || strncmp(err, path, strlen(path)) == 0,
          "%s: '%s' does not start with the path %s", case_name, err, path);
    if (tensor) {
        char quoted[96];
        snprintf(quoted, sizeof quoted, "tensor '%s", tensor); /* tensor may be a name's prefix */
        CHECK(strstr(err, quoted) != NULL, "%s: '%s' does not name %s", case_name, err, quoted);
    }
    CHECK(strstr(err, message) != NULL, "%s: '%s' lacks '%s'", case_name, err, message);
    free(path);
}

static void expect_config_failure(const char *dir, const char *config_text, const char *message) {
    write_text_file(dir, "config.json", config_text);
    expect_failure(dir, config_text, "config.json", NULL, message);
}

static void test_bad_config(const char *dir) {
    model_spec spec = make_spec(STORE_F32, "", false, false);
    write_safetensors(dir, &spec);
    expect_config_failure(dir, "", "not valid JSON");
    expect_config_failure(dir, "{\"n_layer\": 2,}", "not valid JSON: line 1, column 15");
    expect_config_failure(dir, "[2, 2, 128]", "expected a JSON object, found a JSON array");
    expect_config_failure(
        dir, "{\"n_head\": 2, \"n_embd\": 128, \"n_positions\": 32, \"vocab_size\": 100}",
        "'n_layer' is missing");
    expect_config_failure(dir,
                          "{\"n_layer\": 2, \"n_head\": 2, \"n_embd\": 128, \"vocab_size\": 100}",
                          "'n_positions' (or 'n_ctx') is missing");
    expect_config_failure(dir,
                          "{\"n_layer\": 2, \"n_head\": \"2\", \"n_embd\": 128, \"n_positions\": "
                          "32, \"vocab_size\": 100}",
                          "'n_head' must be a positive integer");

    static const struct {
        config_fields fields;
        const char *message;
    } cases[] = {
        {{0, N_HEAD, N_EMBD, N_POSITIONS, VOCAB, ""}, "'n_layer' must be a positive integer"},
        {{N_LAYER, N_HEAD, N_EMBD, -32, VOCAB, ""}, "'n_positions' must be a positive integer"},
        {{N_LAYER, 4, N_EMBD, N_POSITIONS, VOCAB, ""}, "n_embd 128 is not 64 * n_head 4"},
        {{N_LAYER, 1, N_EMBD, N_POSITIONS, VOCAB, ""}, "only head size 64 is supported"},
        {{N_LAYER, N_HEAD, N_EMBD, N_POSITIONS, VOCAB, ", \"vocab_size\": 7"},
         "not valid JSON: line 7, column 22: duplicate key \"vocab_size\""},
        {{N_LAYER, N_HEAD, N_EMBD, N_POSITIONS, VOCAB, ", \"layer_norm_epsilon\": \"1e-5\""},
         "'layer_norm_epsilon' must be a number"},
        {{N_LAYER, N_HEAD, N_EMBD, N_POSITIONS, VOCAB, ", \"layer_norm_epsilon\": -1"},
         "'layer_norm_epsilon' must be a number"},
        /* found by fuzzing: it used to round to a zero float */
        {{N_LAYER, N_HEAD, N_EMBD, N_POSITIONS, VOCAB, ", \"layer_norm_epsilon\": 1e-50"},
         "'layer_norm_epsilon' must be a number in [1e-30, 1]"},
        {{N_LAYER, N_HEAD, N_EMBD, N_POSITIONS, VOCAB, ", \"activation_function\": \"relu\""},
         "activation_function 'relu' is unsupported"},
        {{N_LAYER, N_HEAD, N_EMBD, N_POSITIONS, VOCAB, ", \"activation_function\": \"gelu\""},
         "activation_function 'gelu' is unsupported"},
        {{N_LAYER, N_HEAD, N_EMBD, N_POSITIONS, VOCAB,
          ", \"activation_function\": \"gelu_new\\u0000\""},
         "activation_function 'gelu_new?' is unsupported"},
        {{N_LAYER, N_HEAD, N_EMBD, N_POSITIONS, VOCAB, ", \"activation_function\": 1"},
         "'activation_function' must be a string"},
        {{N_LAYER, N_HEAD, N_EMBD, N_POSITIONS, VOCAB,
          ", \"scale_attn_by_inverse_layer_idx\": true"},
         "scale_attn_by_inverse_layer_idx=true is unsupported"},
        {{N_LAYER, N_HEAD, N_EMBD, N_POSITIONS, VOCAB, ", \"scale_attn_weights\": false"},
         "scale_attn_weights=false is unsupported"},
        {{N_LAYER, N_HEAD, N_EMBD, N_POSITIONS, VOCAB, ", \"scale_attn_weights\": 0"},
         "'scale_attn_weights' must be true or false"},
        {{N_LAYER, N_HEAD, N_EMBD, N_POSITIONS, VOCAB, ", \"n_inner\": 256"},
         "'n_inner' must be null or 4 * n_embd (512)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_config(dir, cases[i].fields);
        expect_failure(dir, cases[i].message, "config.json", NULL, cases[i].message);
    }
    write_text_file(dir, "config.json",
                    "{\"n_layer\": 3000000000, \"n_head\": 2, \"n_embd\": 128, \"n_positions\": "
                    "32, \"vocab_size\": 100}");
    expect_failure(dir, "n_layer above INT_MAX", "config.json", NULL, "below 2^31");
}

/* The config is valid on its own but disagrees with the tensors. */
static void test_config_tensor_disagreement(const char *dir) {
    model_spec spec = make_spec(STORE_F32, "", false, false);
    write_safetensors(dir, &spec);
    static const struct {
        config_fields fields;
        const char *tensor, *message;
    } cases[] = {
        {{N_LAYER, 3, 192, N_POSITIONS, VOCAB, ""},
         "wte.weight",
         "shape [100, 128] expected [100, 192] (vocab_size 100, n_embd 192 in config.json)"},
        {{N_LAYER, N_HEAD, N_EMBD, N_POSITIONS, 101, ""}, "wte.weight", "expected [101, 128]"},
        {{N_LAYER, N_HEAD, N_EMBD, 64, VOCAB, ""},
         "wpe.weight",
         "shape [32, 128] expected [64, 128] (n_positions 64, n_embd 128 in config.json)"},
        {{3, N_HEAD, N_EMBD, N_POSITIONS, VOCAB, ""},
         "h.2.ln_1.weight",
         "not found: the file holds 2 layers but n_layer is 3 in config.json"},
        {{1, N_HEAD, N_EMBD, N_POSITIONS, VOCAB, ""},
         "h.1.",
         "layer 1 is beyond n_layer 1 in config.json"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_config(dir, cases[i].fields);
        expect_failure(dir, cases[i].message, "model.safetensors", cases[i].tensor,
                       cases[i].message);
    }
    write_config(dir, default_config);
}

/* One tensor of an otherwise valid checkpoint is broken by mutate. */
static void expect_tensor_failure(const char *dir, const char *prefix, const char *tensor,
                                  void (*mutate)(model_spec *, spec_tensor *),
                                  const char *message) {
    model_spec spec = make_spec(STORE_F16, prefix, true, true);
    mutate(&spec, spec_find(&spec, tensor));
    write_safetensors(dir, &spec);
    expect_failure(dir, message, "model.safetensors", tensor, message);
}

static void drop(model_spec *spec, spec_tensor *t) { spec_remove(spec, t->name); }
static void unknown_dtype(model_spec *spec, spec_tensor *t) { t->dtype = "F99"; }
static void integer_dtype(model_spec *spec, spec_tensor *t) { t->dtype = "I16"; }
static void wider_dtype(model_spec *spec, spec_tensor *t) { t->dtype = "F32"; }
static void one_column_short(model_spec *spec, spec_tensor *t) { t->shape[1]--; }
static void transposed(model_spec *spec, spec_tensor *t) {
    int64_t rows = t->shape[0];
    t->shape[0] = t->shape[1];
    t->shape[1] = rows;
}
static void as_row_matrix(model_spec *spec, spec_tensor *t) {
    t->rank = 2;
    t->shape[1] = t->shape[0];
    t->shape[0] = 1;
}
static void negative_dim(model_spec *spec, spec_tensor *t) { t->header_shape = "[-128]"; }
static void huge_dims(model_spec *spec, spec_tensor *t) {
    t->header_shape = "[9223372036854775807, 9223372036854775807]";
}
static void fractional_dim(model_spec *spec, spec_tensor *t) { t->header_shape = "[128.0]"; }
static void set_offsets(spec_tensor *t, int64_t begin, int64_t end) {
    t->custom_offsets = true;
    t->offsets[0] = begin;
    t->offsets[1] = end;
}
static void reversed_offsets(model_spec *spec, spec_tensor *t) { set_offsets(t, 256, 0); }
static void offsets_past_end(model_spec *spec, spec_tensor *t) {
    set_offsets(t, 100000000, 100000256);
}
static void offsets_one_short(model_spec *spec, spec_tensor *t) { set_offsets(t, 0, 255); }
static void offsets_on_wte(model_spec *spec, spec_tensor *t) { set_offsets(t, 64, 64 + 256); }

static void test_bad_tensors(const char *dir) {
    write_config(dir, default_config);
    expect_tensor_failure(dir, "", "h.1.mlp.c_fc.bias", drop, "not found");
    expect_tensor_failure(dir, "transformer.", "transformer.ln_f.weight", drop, "not found");
    expect_tensor_failure(dir, "", "h.0.attn.c_attn.weight", one_column_short,
                          "shape [128, 383] expected [128, 384]");
    expect_tensor_failure(dir, "", "h.1.mlp.c_proj.weight", transposed,
                          "shape [128, 512] expected [512, 128]");
    expect_tensor_failure(dir, "", "lm_head.weight", transposed,
                          "shape [128, 100] expected [100, 128]");
    expect_tensor_failure(dir, "", "h.0.ln_1.weight", as_row_matrix,
                          "shape [1, 128] expected [128]");
    expect_tensor_failure(dir, "", "h.0.ln_2.bias", unknown_dtype, "unknown dtype 'F99'");
    expect_tensor_failure(dir, "", "h.0.ln_2.bias", integer_dtype, "dtype I16 is unsupported");
    expect_tensor_failure(dir, "", "h.1.attn.c_proj.bias", wider_dtype,
                          "hold 256 bytes but shape [128] of F32 needs 512");
    expect_tensor_failure(dir, "", "h.1.ln_1.bias", negative_dim,
                          "shape[0] is not a non-negative integer");
    expect_tensor_failure(dir, "", "h.1.ln_1.bias", fractional_dim,
                          "shape[0] is not a non-negative integer");
    expect_tensor_failure(dir, "", "ln_f.bias", huge_dims,
                          "has more elements than int64 can count");
    expect_tensor_failure(dir, "", "h.0.ln_1.bias", reversed_offsets,
                          "data_offsets [256, 0] end before they begin");
    expect_tensor_failure(dir, "", "h.0.ln_1.bias", offsets_past_end,
                          "run past the end of the data section");
    expect_tensor_failure(dir, "", "h.0.ln_1.bias", offsets_one_short,
                          "hold 255 bytes but shape [128] of F16 needs 256");
    expect_tensor_failure(dir, "", "ln_f.weight", offsets_on_wte,
                          "data_offsets [64, 320] overlap the bytes of tensor 'wte.weight' [0, 25600]");
    expect_tensor_failure(dir, "", "wte.weight", drop, "not found (nor 'transformer.wte.weight')");
}

/* The tensors must cover the data section exactly (the reference implementation's rule): bytes
 * that no header entry accounts for are refused, between tensors or after the last one. */
static void test_uncovered_bytes(const char *dir) {
    write_config(dir, default_config);
    model_spec spec = make_spec(STORE_F16, "", true, true);
    spec_find(&spec, "h.1.mlp.c_fc.bias")->header_omitted = true; /* a gap where it was */
    write_safetensors(dir, &spec);
    expect_failure(dir, "a gap between tensors", "model.safetensors", "h.1.mlp.c_proj.weight",
                   "leave the data section's bytes [");
    spec = make_spec(STORE_F32, "transformer.", true, false);
    spec_find(&spec, "lm_head.weight")->header_omitted = true; /* trailing bytes */
    write_safetensors(dir, &spec);
    expect_failure(dir, "bytes after the last tensor", "model.safetensors", NULL,
                   "51200 trailing bytes after the last tensor's data");
    spec = make_spec(STORE_BF16, "", false, false);
    write_safetensors(dir, &spec);
    char *weights = join(dir, "model.safetensors");
    FILE *f = fopen(weights, "ab");
    if (!f || fwrite("x", 1, 1, f) != 1 || fclose(f) != 0) die("cannot append");
    expect_failure(dir, "one byte appended", "model.safetensors", NULL,
                   "1 trailing byte after the last tensor's data");
    free(weights);
}

/* A NaN or an infinity in a tensor the model uses is refused at open, naming it and the
 * element; one in a tensor it ignores (the causal-mask buffer) is not its business. */
static void test_non_finite_weights(const char *dir) {
    write_config(dir, default_config);
    static const struct {
        storage store;
        const char *tensor;
        int64_t index;
        float value;
        const char *message;
    } cases[] = {
        {STORE_F32, "ln_f.weight", 3, NAN, "element 3 of [128] is NaN"},
        {STORE_F16, "h.1.attn.c_attn.weight", 128 * 384 - 1, INFINITY, "element 49151 of [128, 384] is +inf"},
        {STORE_BF16, "wte.weight", 0, -INFINITY, "element 0 of [100, 128] is -inf"},
        {STORE_F16, "lm_head.weight", 12799, NAN, "element 12799 of [100, 128] is NaN"},
        {STORE_BF16, "h.0.mlp.c_proj.bias", 64, NAN, "element 64 of [128] is NaN"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        model_spec spec = make_spec(cases[i].store, "", true, i % 2 == 1);
        spec_tensor *t = spec_find(&spec, cases[i].tensor);
        t->has_special = true;
        t->special_index = cases[i].index;
        t->special_value = cases[i].value;
        write_safetensors(dir, &spec);
        expect_failure(dir, cases[i].message, "model.safetensors", cases[i].tensor,
                       cases[i].message);
    }
    model_spec spec = make_spec(STORE_F32, "", false, false);
    spec_tensor *mask = spec_find(&spec, "h.0.attn.bias");
    mask->has_special = true;
    mask->special_index = 5;
    mask->special_value = NAN;
    write_safetensors(dir, &spec);
    gpt2_checkpoint ckpt;
    char err[GPT2_ERR_LEN] = "";
    CHECK(gpt2_checkpoint_open(&ckpt, dir, err, sizeof err) == 0,
          "a NaN in the unused causal-mask buffer rejected: %s", err);
    gpt2_checkpoint_close(&ckpt);
}

static void test_bad_files(const char *dir) {
    write_config(dir, default_config);
    model_spec spec = make_spec(STORE_BF16, "", false, false);
    write_safetensors(dir, &spec);
    char *weights = join(dir, "model.safetensors");
    struct stat st;
    if (stat(weights, &st) != 0) die("stat failed");
    const off_t full_size = st.st_size;

    if (truncate(weights, full_size - 1) != 0) die("truncate failed");
    expect_failure(dir, "truncated by one byte", "model.safetensors", "ln_f.bias",
                   "run past the end of the data section");
    if (truncate(weights, full_size / 2) != 0) die("truncate failed");
    expect_failure(dir, "truncated by half", "model.safetensors", NULL,
                   "run past the end of the data section");
    if (truncate(weights, 100) != 0) die("truncate failed");
    expect_failure(dir, "truncated in the header", "model.safetensors", NULL,
                   "runs past the end of the file (100 bytes)");
    if (truncate(weights, 5) != 0) die("truncate failed");
    expect_failure(dir, "truncated to 5 bytes", "model.safetensors", NULL,
                   "file is 5 bytes, too short");
    if (truncate(weights, 0) != 0) die("truncate failed");
    expect_failure(dir, "empty file", "model.safetensors", NULL, "file is 0 bytes");

    static const struct {
        uint64_t header_len; /* 0: the text's own length */
        const char *text, *message;
    } headers[] = {
        {0, "not json at all", "header is not valid JSON: line 1, column 1"},
        {0, "[\"wte.weight\"]", "header is a JSON array, expected an object"},
        {0, "{\"wte.weight\": \"F32\"}", "tensor 'wte.weight': entry is a JSON string"},
        {0, "{\"wte.weight\": {\"dtype\": 32, \"shape\": [1], \"data_offsets\": [0, 4]}}",
         "'dtype' is missing or not a string"},
        {0, "{\"wte.weight\": {\"dtype\": \"F32\", \"shape\": {}, \"data_offsets\": [0, 4]}}",
         "'shape' is missing or not an array"},
        {0, "{\"wte.weight\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, 4, 8]}}",
         "'data_offsets' is not an array of two"},
        {0, "{\"__metadata__\": \"pt\"}", "'__metadata__' is a JSON string"},
        {0, "{\"a\": {}, \"a\": {}}", "duplicate key \"a\""},
        {1u << 30, "{}", "header length 1073741824 exceeds the limit"},
        {UINT64_MAX - 3, "{}", "header length 18446744073709551612 exceeds the limit"},
        {4096, "{}", "header length 4096 runs past the end of the file (10 bytes)"},
        {1, "{}", "header is not valid JSON"},
    };
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        uint64_t len = headers[i].header_len ? headers[i].header_len : strlen(headers[i].text);
        write_raw_safetensors(dir, len, headers[i].text, NULL, 0);
        expect_failure(dir, headers[i].text, "model.safetensors", NULL, headers[i].message);
    }

    if (unlink(weights) != 0) die("unlink failed");
    expect_failure(dir, "no model.safetensors", "model.safetensors", NULL,
                   "cannot open: No such file");
    if (mkdir(weights, 0700) != 0) die("mkdir failed");
    expect_failure(dir, "model.safetensors is a directory", "model.safetensors", NULL,
                   "not a regular file");
    if (rmdir(weights) != 0) die("rmdir failed");

    char *config = join(dir, "config.json");
    if (unlink(config) != 0) die("unlink failed");
    expect_failure(dir, "no config.json", "config.json", NULL, "cannot open: No such file");
    free(config);

    char *missing_dir = join(dir, "no-such-model");
    expect_failure(missing_dir, "missing directory", NULL, NULL, "cannot open model directory");
    CHECK(strstr(missing_dir, "no-such-model") != NULL, "path");
    free(missing_dir);
    write_text_file(dir, "plain-file", "x");
    char *plain = join(dir, "plain-file");
    expect_failure(plain, "model dir is a file", NULL, NULL, "not a directory");
    unlink(plain);
    free(plain);
    free(weights);
}

/* ---- dtype conversion ---- */

static float reference_f16(uint16_t h) {
    int exponent = (h >> 10) & 0x1F, mantissa = h & 0x3FF;
    float magnitude;
    if (exponent == 0x1F)
        magnitude = mantissa ? NAN : INFINITY;
    else if (exponent == 0)
        magnitude = ldexpf((float)mantissa, -24);
    else
        magnitude = ldexpf((float)(mantissa | 0x400), exponent - 25);
    return (h & 0x8000) ? -magnitude : magnitude;
}

/* Every F16 and BF16 bit pattern, read from a deliberately misaligned buffer. */
static void test_conversions(void) {
    enum { N = 65536 };
    unsigned char *bytes = malloc(2 * N + 1);
    float *out = malloc(N * sizeof *out);
    if (!bytes || !out) die("out of memory");
    for (uint32_t i = 0; i < N; i++) {
        uint16_t h = (uint16_t)i;
        memcpy(bytes + 1 + 2 * i, &h, 2);
    }
    gpt2_tensor t = {.data = bytes + 1, .dtype = GPT2_F16, .ndim = 1, .shape = {N}, .numel = N};
    gpt2_tensor_to_f32(&t, out);
    int wrong = 0;
    for (uint32_t i = 0; i < N; i++) {
        float expected = reference_f16((uint16_t)i);
        uint32_t got = f32_bits(out[i]);
        if (isnan(expected))
            wrong +=
                !isnan(out[i]) || (got >> 31) != (i >> 15) || ((got >> 13) & 0x3FF) != (i & 0x3FF);
        else
            wrong += got != f32_bits(expected);
    }
    CHECK(wrong == 0, "%d F16 values converted wrongly", wrong);
    CHECK(out[0x0001] == 0x1p-24f && out[0x03FF] == 0x3FFp-24f && out[0x7BFF] == 65504.0f &&
              out[0xFC00] == -INFINITY && f32_bits(out[0x8000]) == 0x80000000u,
          "F16 landmarks");

    t.dtype = GPT2_BF16;
    gpt2_tensor_to_f32(&t, out);
    wrong = 0;
    for (uint32_t i = 0; i < N; i++) wrong += f32_bits(out[i]) != i << 16;
    CHECK(wrong == 0, "%d BF16 values converted wrongly", wrong);
    CHECK(out[0x3F80] == 1.0f && out[0xC000] == -2.0f && isnan(out[0x7FC0]), "BF16 landmarks");

    const float f32[3] = {1.5f, -0.0f, 3e38f};
    memcpy(bytes + 1, f32, sizeof f32);
    t = (gpt2_tensor){.data = bytes + 1, .dtype = GPT2_F32, .ndim = 1, .shape = {3}, .numel = 3};
    gpt2_tensor_to_f32(&t, out);
    CHECK(memcmp(out, f32, sizeof f32) == 0, "F32 copy");
    free(bytes);
    free(out);
}

static void remove_file(const char *dir, const char *name) {
    char *path = join(dir, name);
    unlink(path);
    free(path);
}

int main(void) {
    const char *tmp = getenv("TMPDIR");
    char *dir = join(tmp && *tmp ? tmp : "/tmp", "test_checkpoint_XXXXXX");
    if (!mkdtemp(dir)) die("mkdtemp failed");

    test_conversions();
    test_valid_checkpoints(dir);
    test_config_variants(dir);
    test_bad_config(dir);
    test_config_tensor_disagreement(dir);
    test_bad_tensors(dir);
    test_uncovered_bytes(dir);
    test_non_finite_weights(dir);
    test_bad_files(dir);

    remove_file(dir, "config.json");
    remove_file(dir, "model.safetensors");
    if (rmdir(dir) != 0) perror("rmdir");
    free(dir);
    return check_finish("test_checkpoint");
}
