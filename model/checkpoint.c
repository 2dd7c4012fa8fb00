#include "model/checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kernels/half.h"
#include "model/config.h"
#include "model/error_sink.h"
#include "model/safetensors.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; this loader reads it in place"
#endif

#define CONFIG_FILE "config.json"
#define WEIGHTS_FILE "model.safetensors"
#define MAX_CONFIG_BYTES ((size_t)16 << 20)
#define MAX_TENSOR_NAME 160

struct gpt2_mapped_file {
    const unsigned char *base; /* [size] read-only mapping of model.safetensors */
    size_t size;
    safetensors_header header;
};

/* Writes "<path>: <message>" into err; always returns -1. */
static int fail(char *err, size_t err_len, const char *path, const char *fmt, ...) {
    char prefix[PATH_MAX + 8];
    snprintf(prefix, sizeof prefix, "%s: ", path);
    error_sink sink = {err, err_len};
    va_list args;
    va_start(args, fmt);
    sink_failv(&sink, prefix, fmt, args);
    va_end(args);
    return -1;
}

/* model_dir + "/" + file_name in a new allocation, or NULL when out of memory. */
static char *join_path(const char *model_dir, const char *file_name) {
    size_t dir_len = strlen(model_dir);
    bool has_slash = dir_len > 0 && model_dir[dir_len - 1] == '/';
    size_t len = dir_len + (has_slash ? 0 : 1) + strlen(file_name);
    char *path = malloc(len + 1);
    if (!path) return NULL;
    snprintf(path, len + 1, "%s%s%s", model_dir, has_slash ? "" : "/", file_name);
    return path;
}

/* Opens path read-only and checks that it is a regular file; returns the fd or -1. */
static int open_regular_file(const char *path, size_t *size, char *err, size_t err_len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return fail(err, err_len, path, "cannot open: %s", strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (uintmax_t)st.st_size > SIZE_MAX) {
        close(fd);
        return fail(err, err_len, path, "not a regular file");
    }
    *size = (size_t)st.st_size;
    return fd;
}

/* ---- config.json ---- */

static int read_whole_file(const char *path, char **text, size_t *len, char *err, size_t err_len) {
    size_t size;
    int fd = open_regular_file(path, &size, err, err_len);
    if (fd < 0) return -1;
    if (size > MAX_CONFIG_BYTES) {
        close(fd);
        return fail(err, err_len, path, "%zu bytes is too large for a config file", size);
    }
    char *buf = malloc(size ? size : 1);
    if (!buf) {
        close(fd);
        return fail(err, err_len, path, "out of memory");
    }
    size_t done = 0;
    while (done < size) {
        ssize_t n = read(fd, buf + done, size - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            close(fd);
            free(buf);
            return fail(err, err_len, path, "read failed: %s",
                        n < 0 ? strerror(errno) : "unexpected end of file");
        }
        done += (size_t)n;
    }
    close(fd);
    *text = buf;
    *len = size;
    return 0;
}

static int load_config(gpt2_config *config, const char *model_dir, char *err, size_t err_len) {
    char *path = join_path(model_dir, CONFIG_FILE);
    if (!path) return fail(err, err_len, model_dir, "out of memory");
    char *text = NULL;
    size_t len = 0;
    int rc = read_whole_file(path, &text, &len, err, err_len);
    if (rc == 0) {
        char why[GPT2_ERR_LEN];
        rc = gpt2_config_parse(config, text, len, why, sizeof why);
        if (rc < 0) fail(err, err_len, path, "%s", why);
    }
    free(text);
    free(path);
    return rc;
}

/* ---- model.safetensors ---- */

static void close_weights(gpt2_mapped_file *file) {
    if (!file) return;
    safetensors_free_header(&file->header);
    if (file->size > 0) munmap((void *)file->base, file->size);
    free(file);
}

/* Maps the whole file read-only; an empty file has no mapping (NULL). */
static int map_whole_file(const char *path, const unsigned char **base, size_t *size, char *err,
                          size_t err_len) {
    int fd = open_regular_file(path, size, err, err_len);
    if (fd < 0) return -1;
    *base = NULL;
    if (*size > 0) {
        void *mapping = mmap(NULL, *size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (mapping == MAP_FAILED) {
            int mmap_errno = errno;
            close(fd);
            return fail(err, err_len, path, "mmap failed: %s", strerror(mmap_errno));
        }
        *base = mapping;
    }
    close(fd);
    return 0;
}

/* Maps the weights file and validates its safetensors header. */
static gpt2_mapped_file *open_weights(const char *path, char *err, size_t err_len) {
    gpt2_mapped_file *file = calloc(1, sizeof *file);
    if (!file) {
        fail(err, err_len, path, "out of memory");
        return NULL;
    }
    if (map_whole_file(path, &file->base, &file->size, err, err_len) < 0) {
        free(file);
        return NULL;
    }
    char why[GPT2_ERR_LEN];
    if (safetensors_parse_header(&file->header, file->base, file->size, why, sizeof why) < 0) {
        fail(err, err_len, path, "%s", why);
        close_weights(file);
        return NULL;
    }
    return file;
}

/* ---- Binding tensors by name ---- */

typedef struct {
    int rank;
    int64_t dims[2];
} expected_shape;

static expected_shape vector_shape(int64_t n) { return (expected_shape){1, {n, 0}}; }

static expected_shape matrix_shape(int64_t rows, int64_t cols) {
    return (expected_shape){2, {rows, cols}};
}

typedef struct {
    const gpt2_mapped_file *file;
    const char *path;   /* of model.safetensors, for messages */
    const char *prefix; /* "" or "transformer." */
    char *err;
    size_t err_len;
} binder;

/* Writes "<path>: tensor '<name>': <message>"; always returns -1. */
static int fail_tensor(const binder *b, const char *name, const char *fmt, ...) {
    char message[GPT2_ERR_LEN];
    va_list args;
    va_start(args, fmt);
    vsnprintf(message, sizeof message, fmt, args);
    va_end(args);
    return fail(b->err, b->err_len, b->path, "tensor '%s': %s", name, message);
}

static bool to_gpt2_dtype(safetensors_dtype dtype, gpt2_dtype *out) {
    switch (dtype) {
    case SAFETENSORS_F32: *out = GPT2_F32; return true;
    case SAFETENSORS_F16: *out = GPT2_F16; return true;
    case SAFETENSORS_BF16: *out = GPT2_BF16; return true;
    default: return false;
    }
}

static bool shape_matches(const safetensors_tensor *t, expected_shape shape) {
    if (t->rank != shape.rank) return false;
    for (int i = 0; i < shape.rank; i++)
        if (t->shape[i] != shape.dims[i]) return false;
    return true;
}

/* Binds the tensor called name after checking its dtype and shape; hint follows a shape error. */
static int bind_named(const binder *b, gpt2_tensor *out, const char *name, expected_shape shape,
                      const char *hint) {
    const safetensors_tensor *t = safetensors_find(&b->file->header, name);
    if (!t) return fail_tensor(b, name, "not found");
    gpt2_dtype dtype;
    if (!to_gpt2_dtype(t->dtype, &dtype))
        return fail_tensor(b, name, "dtype %s is unsupported (expected F32, F16 or BF16)",
                           safetensors_dtype_name(t->dtype));
    if (!shape_matches(t, shape)) {
        char got[128], want[128];
        return fail_tensor(b, name, "shape %s expected %s%s",
                           safetensors_format_shape(t->shape, t->rank, got, sizeof got),
                           safetensors_format_shape(shape.dims, shape.rank, want, sizeof want),
                           hint ? hint : "");
    }
    *out = (gpt2_tensor){.data = b->file->base + t->offset,
                         .dtype = dtype,
                         .ndim = t->rank,
                         .numel = t->numel,
                         .name = t->name};
    memcpy(out->shape, t->shape, (size_t)t->rank * sizeof t->shape[0]);
    return 0;
}

/* Binds prefix + name. */
static int bind(const binder *b, gpt2_tensor *out, const char *name, expected_shape shape) {
    char full_name[MAX_TENSOR_NAME];
    snprintf(full_name, sizeof full_name, "%s%s", b->prefix, name);
    return bind_named(b, out, full_name, shape, NULL);
}

/* Binds prefix + "h.<layer>." + name. */
static int bind_in_layer(const binder *b, gpt2_tensor *out, int layer, const char *name,
                         expected_shape shape) {
    char full_name[MAX_TENSOR_NAME];
    snprintf(full_name, sizeof full_name, "%sh.%d.%s", b->prefix, layer, name);
    return bind_named(b, out, full_name, shape, NULL);
}

static int bind_layer(const binder *b, int layer, int64_t C, gpt2_layer_tensors *out) {
    const struct {
        gpt2_tensor *tensor;
        const char *name;
        expected_shape shape;
    } tensors[] = {
        {&out->ln_1_w, "ln_1.weight", vector_shape(C)},
        {&out->ln_1_b, "ln_1.bias", vector_shape(C)},
        {&out->attn_w, "attn.c_attn.weight", matrix_shape(C, 3 * C)},
        {&out->attn_b, "attn.c_attn.bias", vector_shape(3 * C)},
        {&out->attn_proj_w, "attn.c_proj.weight", matrix_shape(C, C)},
        {&out->attn_proj_b, "attn.c_proj.bias", vector_shape(C)},
        {&out->ln_2_w, "ln_2.weight", vector_shape(C)},
        {&out->ln_2_b, "ln_2.bias", vector_shape(C)},
        {&out->fc_w, "mlp.c_fc.weight", matrix_shape(C, 4 * C)},
        {&out->fc_b, "mlp.c_fc.bias", vector_shape(4 * C)},
        {&out->mlp_proj_w, "mlp.c_proj.weight", matrix_shape(4 * C, C)},
        {&out->mlp_proj_b, "mlp.c_proj.bias", vector_shape(C)},
    };
    for (size_t i = 0; i < sizeof tensors / sizeof tensors[0]; i++) {
        if (bind_in_layer(b, tensors[i].tensor, layer, tensors[i].name, tensors[i].shape) < 0)
            return -1;
    }
    return 0;
}

/* HF files name the body either "wte.weight" (GPT2Model) or "transformer.wte.weight". */
static int detect_prefix(binder *b) {
    if (safetensors_find(&b->file->header, "transformer.wte.weight")) {
        b->prefix = "transformer.";
    } else if (safetensors_find(&b->file->header, "wte.weight")) {
        b->prefix = "";
    } else {
        return fail_tensor(b, "wte.weight", "not found (nor 'transformer.wte.weight')");
    }
    return 0;
}

/* The embeddings' shapes come straight from config.json, so their errors say so. */
static int bind_embeddings(const binder *b, gpt2_checkpoint *ckpt) {
    const gpt2_config *c = &ckpt->config;
    char name[MAX_TENSOR_NAME], hint[128];
    snprintf(name, sizeof name, "%swte.weight", b->prefix);
    snprintf(hint, sizeof hint, " (vocab_size %d, n_embd %d in %s)", c->vocab_size, c->n_embd,
             CONFIG_FILE);
    if (bind_named(b, &ckpt->wte, name, matrix_shape(c->vocab_size, c->n_embd), hint) < 0)
        return -1;
    snprintf(name, sizeof name, "%swpe.weight", b->prefix);
    snprintf(hint, sizeof hint, " (n_positions %d, n_embd %d in %s)", c->n_positions, c->n_embd,
             CONFIG_FILE);
    return bind_named(b, &ckpt->wpe, name, matrix_shape(c->n_positions, c->n_embd), hint);
}

/* The N of a "<prefix>h.N.<rest>" name (saturating at INT_MAX), or -1 for other names. */
static int64_t layer_index(const char *name, const char *prefix) {
    size_t prefix_len = strlen(prefix);
    if (strncmp(name, prefix, prefix_len) != 0 || strncmp(name + prefix_len, "h.", 2) != 0)
        return -1;
    const char *p = name + prefix_len + 2;
    int64_t index = 0;
    size_t digits = 0;
    for (; *p >= '0' && *p <= '9'; p++, digits++)
        if (index <= INT_MAX) index = index * 10 + (*p - '0');
    if (digits == 0 || *p != '.') return -1;
    return index < INT_MAX ? index : INT_MAX;
}

/* Compares the h.N layers present in the file with n_layer from config.json. */
static int check_layer_count(const binder *b, int n_layer) {
    const safetensors_header *header = &b->file->header;
    const char *deepest = NULL; /* a tensor of the highest layer */
    int64_t layers_held = 0;
    for (size_t i = 0; i < header->n_tensors; i++) {
        int64_t index = layer_index(header->tensors[i].name, b->prefix);
        if (index >= layers_held) {
            layers_held = index + 1;
            deepest = header->tensors[i].name;
        }
    }
    if (layers_held > n_layer)
        return fail_tensor(b, deepest, "layer %lld is beyond n_layer %d in %s",
                           (long long)layers_held - 1, n_layer, CONFIG_FILE);
    if (layers_held < n_layer) {
        char name[MAX_TENSOR_NAME];
        snprintf(name, sizeof name, "%sh.%lld.ln_1.weight", b->prefix, (long long)layers_held);
        return fail_tensor(b, name, "not found: the file holds %lld layers but n_layer is %d in %s",
                           (long long)layers_held, n_layer, CONFIG_FILE);
    }
    return 0;
}

/* A separate lm_head.weight (never prefixed) wins; otherwise the head shares wte. */
static int bind_lm_head(const binder *b, gpt2_checkpoint *ckpt) {
    static const char lm_head_name[] = "lm_head.weight";
    if (!safetensors_find(&b->file->header, lm_head_name)) {
        ckpt->lm_head = ckpt->wte;
        ckpt->lm_head_tied = true;
        return 0;
    }
    ckpt->lm_head_tied = false;
    const gpt2_config *c = &ckpt->config;
    return bind_named(b, &ckpt->lm_head, lm_head_name, matrix_shape(c->vocab_size, c->n_embd),
                      NULL);
}

static int bind_model(gpt2_checkpoint *ckpt, const char *path, char *err, size_t err_len) {
    binder b = {.file = ckpt->file, .path = path, .err = err, .err_len = err_len};
    const gpt2_config *c = &ckpt->config;
    const int64_t C = c->n_embd;
    if (detect_prefix(&b) < 0 || bind_embeddings(&b, ckpt) < 0 ||
        check_layer_count(&b, c->n_layer) < 0)
        return -1;
    ckpt->layers = calloc((size_t)c->n_layer, sizeof *ckpt->layers);
    if (!ckpt->layers) return fail(err, err_len, path, "out of memory for %d layers", c->n_layer);
    for (int layer = 0; layer < c->n_layer; layer++)
        if (bind_layer(&b, layer, C, &ckpt->layers[layer]) < 0) return -1;
    if (bind(&b, &ckpt->ln_f_w, "ln_f.weight", vector_shape(C)) < 0 ||
        bind(&b, &ckpt->ln_f_b, "ln_f.bias", vector_shape(C)) < 0)
        return -1;
    return bind_lm_head(&b, ckpt);
}

/* ---- Non-finite weights ---- */

/* Whether the element at p of dtype is NaN or infinite: its exponent bits are all ones. */
static bool non_finite_at(const unsigned char *p, gpt2_dtype dtype) {
    uint32_t bits = 0;
    switch (dtype) {
    case GPT2_F32: memcpy(&bits, p, 4); return (bits & 0x7F800000u) == 0x7F800000u;
    case GPT2_F16: memcpy(&bits, p, 2); return (bits & 0x7C00u) == 0x7C00u;
    case GPT2_BF16: memcpy(&bits, p, 2); return (bits & 0x7F80u) == 0x7F80u;
    }
    return false;
}

/* The index of t's first NaN or infinity, or -1. One pass over the bits, in blocks whose
 * verdict is a branch-free OR (which vectorizes); only a flagged block is searched. */
static int64_t first_non_finite(const gpt2_tensor *t) {
    const unsigned char *bytes = t->data;
    const size_t size = t->dtype == GPT2_F32 ? 4 : 2, n = (size_t)t->numel, block = 4096;
    for (size_t start = 0; start < n; start += block) {
        const size_t end = n - start < block ? n : start + block;
        unsigned flagged = 0;
        if (t->dtype == GPT2_F32) {
            for (size_t i = start; i < end; i++) {
                uint32_t bits;
                memcpy(&bits, bytes + 4 * i, 4);
                flagged |= (bits & 0x7F800000u) == 0x7F800000u;
            }
        } else {
            const uint16_t mask = t->dtype == GPT2_F16 ? 0x7C00u : 0x7F80u;
            for (size_t i = start; i < end; i++) {
                uint16_t bits;
                memcpy(&bits, bytes + 2 * i, 2);
                flagged |= (bits & mask) == mask;
            }
        }
        if (!flagged) continue;
        for (size_t i = start; i < end; i++)
            if (non_finite_at(bytes + size * i, t->dtype)) return (int64_t)i;
    }
    return -1;
}

/* Fails when t holds a NaN or an infinity, naming it and the element. */
static int check_tensor_finite(const gpt2_tensor *t, const char *path, char *err, size_t err_len) {
    const int64_t at = first_non_finite(t);
    if (at < 0) return 0;
    float value;
    gpt2_tensor one = *t;
    one.data = (const unsigned char *)t->data + (size_t)at * (t->dtype == GPT2_F32 ? 4 : 2);
    one.numel = 1;
    gpt2_tensor_to_f32(&one, &value);
    char shape[128];
    return fail(err, err_len, path,
                "tensor '%s': element %lld of %s is %s: the checkpoint holds a non-finite weight",
                t->name, (long long)at, safetensors_format_shape(t->shape, t->ndim, shape, sizeof shape),
                isnan(value) ? "NaN" : value > 0 ? "+inf" : "-inf");
}

/* Fails on the first bound tensor holding a NaN or an infinity: such a checkpoint (a broken
 * conversion, a diverged training run) can only give garbage. Tensors the model does not use
 * (the old causal-mask buffers) are not read. */
static int check_finite(const gpt2_checkpoint *ckpt, const char *path, char *err, size_t err_len) {
    if (check_tensor_finite(&ckpt->wte, path, err, err_len) < 0 ||
        check_tensor_finite(&ckpt->wpe, path, err, err_len) < 0)
        return -1;
    for (int layer = 0; layer < ckpt->config.n_layer; layer++) {
        const gpt2_layer_tensors *l = &ckpt->layers[layer];
        const gpt2_tensor *in_layer[] = {&l->ln_1_w, &l->ln_1_b, &l->attn_w, &l->attn_b,
                                         &l->attn_proj_w, &l->attn_proj_b, &l->ln_2_w, &l->ln_2_b,
                                         &l->fc_w, &l->fc_b, &l->mlp_proj_w, &l->mlp_proj_b};
        for (size_t i = 0; i < sizeof in_layer / sizeof in_layer[0]; i++)
            if (check_tensor_finite(in_layer[i], path, err, err_len) < 0) return -1;
    }
    if (check_tensor_finite(&ckpt->ln_f_w, path, err, err_len) < 0 ||
        check_tensor_finite(&ckpt->ln_f_b, path, err, err_len) < 0)
        return -1;
    return ckpt->lm_head_tied ? 0 : check_tensor_finite(&ckpt->lm_head, path, err, err_len);
}

/* ---- Public API ---- */

int gpt2_checkpoint_open(gpt2_checkpoint *ckpt, const char *model_dir, char *err, size_t err_len) {
    memset(ckpt, 0, sizeof *ckpt);
    struct stat st;
    if (stat(model_dir, &st) != 0)
        return fail(err, err_len, model_dir, "cannot open model directory: %s", strerror(errno));
    if (!S_ISDIR(st.st_mode)) return fail(err, err_len, model_dir, "not a directory");
    if (load_config(&ckpt->config, model_dir, err, err_len) < 0) return -1;
    char *path = join_path(model_dir, WEIGHTS_FILE);
    if (!path) return fail(err, err_len, model_dir, "out of memory");
    ckpt->file = open_weights(path, err, err_len);
    int rc = ckpt->file ? bind_model(ckpt, path, err, err_len) : -1;
    if (rc == 0) rc = check_finite(ckpt, path, err, err_len);
    free(path);
    if (rc < 0) gpt2_checkpoint_close(ckpt);
    return rc;
}

void gpt2_checkpoint_close(gpt2_checkpoint *ckpt) {
    close_weights(ckpt->file);
    free(ckpt->layers);
    memset(ckpt, 0, sizeof *ckpt);
}

/* ---- Conversion ---- */

static float bf16_to_f32(uint16_t b) { return float_from_bits((uint32_t)b << 16); }

/* out[i] = to_f32(the i-th 16-bit value at src), for src possibly unaligned. */
static void convert_16bit(float *out /* [n] */, const unsigned char *src /* [2n] */, size_t n,
                          float (*to_f32)(uint16_t)) {
    for (size_t i = 0; i < n; i++) {
        uint16_t bits;
        memcpy(&bits, src + 2 * i, sizeof bits);
        out[i] = to_f32(bits);
    }
}

void gpt2_tensor_to_f32(const gpt2_tensor *t, float *out) {
    const unsigned char *src = t->data; /* possibly unaligned: loads go through memcpy */
    size_t n = (size_t)t->numel;
    if (n == 0) return;
    switch (t->dtype) {
    case GPT2_F32: memcpy(out, src, n * sizeof(float)); return;
    case GPT2_F16: convert_16bit(out, src, n, half_to_float); return;
    case GPT2_BF16: convert_16bit(out, src, n, bf16_to_f32); return;
    }
}
