#include "model/safetensors.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/error_sink.h"

#define HEADER_LENGTH_BYTES 8
#define MESSAGE_NAME_LEN 160 /* longest tensor name quoted in an error message */
#define SHAPE_TEXT_LEN 192   /* "[d0, ..., d7]" with 19-digit dimensions */

static const struct {
    const char *name;
    size_t size;
} dtype_table[] = {
    [SAFETENSORS_BOOL] = {"BOOL", 1},       [SAFETENSORS_U8] = {"U8", 1},
    [SAFETENSORS_I8] = {"I8", 1},           [SAFETENSORS_F8_E4M3] = {"F8_E4M3", 1},
    [SAFETENSORS_F8_E5M2] = {"F8_E5M2", 1}, [SAFETENSORS_F8_E8M0] = {"F8_E8M0", 1},
    [SAFETENSORS_I16] = {"I16", 2},         [SAFETENSORS_U16] = {"U16", 2},
    [SAFETENSORS_F16] = {"F16", 2},         [SAFETENSORS_BF16] = {"BF16", 2},
    [SAFETENSORS_I32] = {"I32", 4},         [SAFETENSORS_U32] = {"U32", 4},
    [SAFETENSORS_F32] = {"F32", 4},         [SAFETENSORS_I64] = {"I64", 8},
    [SAFETENSORS_U64] = {"U64", 8},         [SAFETENSORS_F64] = {"F64", 8},
};
#define DTYPE_COUNT (sizeof dtype_table / sizeof dtype_table[0])

const char *safetensors_dtype_name(safetensors_dtype dtype) {
    return (size_t)dtype < DTYPE_COUNT ? dtype_table[dtype].name : "?";
}

size_t safetensors_dtype_size(safetensors_dtype dtype) {
    return (size_t)dtype < DTYPE_COUNT ? dtype_table[dtype].size : 0;
}

static bool dtype_from_name(const char *name, size_t len, safetensors_dtype *out) {
    for (size_t i = 0; i < DTYPE_COUNT; i++) {
        if (strlen(dtype_table[i].name) == len && memcmp(dtype_table[i].name, name, len) == 0) {
            *out = (safetensors_dtype)i;
            return true;
        }
    }
    return false;
}

const char *safetensors_format_shape(const int64_t *shape, int rank, char *buf, size_t buf_len) {
    size_t n = (size_t)snprintf(buf, buf_len, "[");
    for (int i = 0; i < rank && n < buf_len; i++)
        n += (size_t)snprintf(buf + n, buf_len - n, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (n < buf_len) snprintf(buf + n, buf_len - n, "]");
    return buf;
}

/* ---- Error reporting ---- */

/* Writes "tensor '<name>': <message>"; always returns -1. */
static int fail_tensor(error_sink *sink, const char *name, const char *fmt, ...) {
    char printable[MESSAGE_NAME_LEN], prefix[MESSAGE_NAME_LEN + 16];
    json_printable(name, strlen(name), printable, sizeof printable);
    snprintf(prefix, sizeof prefix, "tensor '%s': ", printable);
    va_list args;
    va_start(args, fmt);
    sink_failv(sink, prefix, fmt, args);
    va_end(args);
    return -1;
}

/* ---- One tensor entry ---- */

static bool has_control_bytes(const char *s, size_t len) {
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) return true;
    }
    return false;
}

static int parse_dtype(error_sink *sink, safetensors_tensor *t, const json_value *entry) {
    const json_value *dtype = json_object_get(entry, "dtype");
    size_t len;
    const char *name = json_get_string(dtype, &len);
    if (!name) return fail_tensor(sink, t->name, "'dtype' is missing or not a string");
    if (!dtype_from_name(name, len, &t->dtype)) {
        char printable[32];
        return fail_tensor(sink, t->name, "unknown dtype '%s'",
                           json_printable(name, len, printable, sizeof printable));
    }
    return 0;
}

static int parse_shape(error_sink *sink, safetensors_tensor *t, const json_value *entry) {
    const json_value *shape = json_object_get(entry, "shape");
    if (!shape || shape->type != JSON_ARRAY)
        return fail_tensor(sink, t->name, "'shape' is missing or not an array");
    size_t rank = json_length(shape);
    if (rank > SAFETENSORS_MAX_RANK)
        return fail_tensor(sink, t->name, "rank %zu exceeds the supported %d", rank,
                           SAFETENSORS_MAX_RANK);
    t->rank = (int)rank;
    t->numel = 1;
    for (size_t i = 0; i < rank; i++) {
        int64_t dim;
        if (!json_get_int64(json_array_at(shape, i), &dim) || dim < 0)
            return fail_tensor(sink, t->name, "shape[%zu] is not a non-negative integer", i);
        t->shape[i] = dim;
    }
    for (size_t i = 0; i < rank; i++) {
        if (t->shape[i] != 0 && t->numel > INT64_MAX / t->shape[i]) {
            char dims[SHAPE_TEXT_LEN];
            return fail_tensor(sink, t->name, "shape %s has more elements than int64 can count",
                               safetensors_format_shape(t->shape, t->rank, dims, sizeof dims));
        }
        t->numel *= t->shape[i];
    }
    size_t element_size = safetensors_dtype_size(t->dtype);
    const uint64_t max_bytes = (uint64_t)INT64_MAX < SIZE_MAX ? (uint64_t)INT64_MAX : SIZE_MAX;
    if ((uint64_t)t->numel > max_bytes / element_size) {
        char dims[SHAPE_TEXT_LEN];
        return fail_tensor(sink, t->name, "shape %s of %s is too large in bytes",
                           safetensors_format_shape(t->shape, t->rank, dims, sizeof dims),
                           safetensors_dtype_name(t->dtype));
    }
    t->nbytes = (size_t)t->numel * element_size;
    return 0;
}

/* Checks data_offsets against the byte size and the data section of data_len bytes. */
static int parse_data_offsets(error_sink *sink, safetensors_tensor *t, const json_value *entry,
                              size_t data_offset, size_t data_len) {
    const json_value *offsets = json_object_get(entry, "data_offsets");
    int64_t begin, end;
    if (!offsets || offsets->type != JSON_ARRAY || json_length(offsets) != 2 ||
        !json_get_int64(json_array_at(offsets, 0), &begin) ||
        !json_get_int64(json_array_at(offsets, 1), &end) || begin < 0 || end < 0)
        return fail_tensor(sink, t->name,
                           "'data_offsets' is not an array of two non-negative integers");
    if (end < begin)
        return fail_tensor(sink, t->name, "data_offsets [%lld, %lld] end before they begin",
                           (long long)begin, (long long)end);
    if ((uint64_t)end > data_len)
        return fail_tensor(sink, t->name,
                           "data_offsets [%lld, %lld] run past the end of the data section "
                           "(%zu bytes)",
                           (long long)begin, (long long)end, data_len);
    if ((uint64_t)(end - begin) != t->nbytes) {
        char dims[SHAPE_TEXT_LEN];
        return fail_tensor(sink, t->name,
                           "data_offsets [%lld, %lld] hold %lld bytes but shape %s of %s "
                           "needs %zu",
                           (long long)begin, (long long)end, (long long)(end - begin),
                           safetensors_format_shape(t->shape, t->rank, dims, sizeof dims),
                           safetensors_dtype_name(t->dtype), t->nbytes);
    }
    t->offset = data_offset + (size_t)begin;
    return 0;
}

static int parse_tensor(error_sink *sink, safetensors_tensor *t, const json_member *m,
                        size_t data_offset, size_t data_len) {
    t->name = m->key;
    if (has_control_bytes(m->key, m->key_len)) {
        char printable[MESSAGE_NAME_LEN];
        return sink_fail(sink, "tensor '%s': name contains a control character",
                    json_printable(m->key, m->key_len, printable, sizeof printable));
    }
    if (m->value.type != JSON_OBJECT)
        return fail_tensor(sink, t->name, "entry is a JSON %s, expected an object",
                           json_type_name(m->value.type));
    if (parse_dtype(sink, t, &m->value) < 0) return -1;
    if (parse_shape(sink, t, &m->value) < 0) return -1;
    return parse_data_offsets(sink, t, &m->value, data_offset, data_len);
}

/* ---- The whole table ---- */

static int validate_metadata(error_sink *sink, const json_value *metadata) {
    if (metadata->type != JSON_OBJECT)
        return sink_fail(sink, "'__metadata__' is a JSON %s, expected an object of strings",
                    json_type_name(metadata->type));
    for (size_t i = 0; i < metadata->as.object.count; i++) {
        const json_member *m = &metadata->as.object.members[i];
        if (m->value.type != JSON_STRING) {
            char key[MESSAGE_NAME_LEN];
            return sink_fail(sink, "'__metadata__' entry '%s' is a JSON %s, expected a string",
                        json_printable(m->key, m->key_len, key, sizeof key),
                        json_type_name(m->value.type));
        }
    }
    return 0;
}

/* By where the bytes start; an empty tensor before a non-empty one at the same place. */
static int compare_by_offset(const void *a, const void *b) {
    const safetensors_tensor *ta = a, *tb = b;
    if (ta->offset != tb->offset) return ta->offset > tb->offset ? 1 : -1;
    return (ta->nbytes > tb->nbytes) - (ta->nbytes < tb->nbytes);
}

static int compare_by_name(const void *a, const void *b) {
    return strcmp(((const safetensors_tensor *)a)->name, ((const safetensors_tensor *)b)->name);
}

/*
 * As the reference implementation requires, the tensors sorted by offset must cover the data
 * section exactly: the first starts at 0, each starts where the one before it ends, and the last
 * ends at the end of the file. So no byte of the file is unaccounted for (no trailing bytes, no
 * gaps) and no two tensors share one. Sorts the tensors by offset.
 */
static int check_coverage(error_sink *sink, safetensors_tensor *tensors, size_t n,
                          size_t data_offset, size_t data_len) {
    if (n > 1) qsort(tensors, n, sizeof *tensors, compare_by_offset);
    size_t covered = 0; /* the data section's bytes [0, covered) belong to the tensors so far */
    for (size_t i = 0; i < n; i++) {
        const safetensors_tensor *t = &tensors[i];
        const size_t begin = t->offset - data_offset;
        if (begin < covered) { /* then i > 0, and tensor i - 1 holds bytes past begin */
            const safetensors_tensor *before = &tensors[i - 1];
            char printable[MESSAGE_NAME_LEN];
            json_printable(before->name, strlen(before->name), printable, sizeof printable);
            return fail_tensor(sink, t->name,
                               "data_offsets [%zu, %zu] overlap the bytes of tensor '%s' [%zu, %zu]",
                               begin, begin + t->nbytes, printable, before->offset - data_offset,
                               covered);
        }
        if (begin > covered)
            return fail_tensor(sink, t->name,
                               "data_offsets [%zu, %zu] leave the data section's bytes [%zu, %zu) "
                               "to no tensor (the tensors must cover it back to back)",
                               begin, begin + t->nbytes, covered, begin);
        covered = begin + t->nbytes;
    }
    if (n == 0 && data_len > 0)
        return sink_fail(sink, "the header lists no tensor, but the data section holds %zu byte%s",
                         data_len, data_len == 1 ? "" : "s");
    if (covered != data_len)
        return sink_fail(sink, "%zu trailing byte%s after the last tensor's data (which ends at "
                               "byte %zu of the %zu-byte data section)",
                         data_len - covered, data_len - covered == 1 ? "" : "s", covered, data_len);
    return 0;
}

static int parse_tensor_table(error_sink *sink, safetensors_header *h, size_t data_len) {
    const json_value *root = json_root(h->doc);
    size_t n_entries = root->as.object.count;
    h->tensors = n_entries ? calloc(n_entries, sizeof *h->tensors) : NULL;
    if (n_entries && !h->tensors) return sink_fail(sink, "out of memory for %zu tensors", n_entries);
    for (size_t i = 0; i < n_entries; i++) {
        const json_member *m = &root->as.object.members[i];
        if (strcmp(m->key, "__metadata__") == 0 && m->key_len == strlen("__metadata__")) {
            if (validate_metadata(sink, &m->value) < 0) return -1;
            h->metadata = &m->value;
            continue;
        }
        safetensors_tensor *t = &h->tensors[h->n_tensors];
        if (parse_tensor(sink, t, m, h->data_offset, data_len) < 0) return -1;
        h->n_tensors++;
    }
    if (check_coverage(sink, h->tensors, h->n_tensors, h->data_offset, data_len) < 0) return -1;
    if (h->n_tensors > 1) qsort(h->tensors, h->n_tensors, sizeof *h->tensors, compare_by_name);
    return 0;
}

static uint64_t read_u64_le(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = HEADER_LENGTH_BYTES - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* Reads the header length and checks that the header fits in the file. */
static int read_header_length(error_sink *sink, const unsigned char *file, size_t file_len,
                              size_t *header_len) {
    if (file_len < HEADER_LENGTH_BYTES)
        return sink_fail(sink, "file is %zu bytes, too short for the 8-byte header length", file_len);
    uint64_t len = read_u64_le(file);
    if (len > SAFETENSORS_MAX_HEADER_LEN)
        return sink_fail(sink, "header length %llu exceeds the limit of %llu bytes",
                    (unsigned long long)len, (unsigned long long)SAFETENSORS_MAX_HEADER_LEN);
    if (len > file_len - HEADER_LENGTH_BYTES)
        return sink_fail(sink, "header length %llu runs past the end of the file (%zu bytes)",
                    (unsigned long long)len, file_len);
    *header_len = (size_t)len;
    return 0;
}

static int parse(error_sink *sink, safetensors_header *h, const unsigned char *file,
                 size_t file_len) {
    size_t header_len = 0;
    if (read_header_length(sink, file, file_len, &header_len) < 0) return -1;
    const char *json_text = (const char *)file + HEADER_LENGTH_BYTES;
    char json_err[256];
    h->doc = json_parse(json_text, header_len, json_err, sizeof json_err);
    if (!h->doc) return sink_fail(sink, "header is not valid JSON: %s", json_err);
    const json_value *root = json_root(h->doc);
    if (root->type != JSON_OBJECT)
        return sink_fail(sink, "header is a JSON %s, expected an object", json_type_name(root->type));
    h->data_offset = HEADER_LENGTH_BYTES + header_len;
    return parse_tensor_table(sink, h, file_len - h->data_offset);
}

int safetensors_parse_header(safetensors_header *header, const void *file, size_t file_len,
                             char *err, size_t err_len) {
    error_sink sink = {err, err_len};
    memset(header, 0, sizeof *header);
    if (parse(&sink, header, file, file_len) < 0) {
        safetensors_free_header(header);
        return -1;
    }
    return 0;
}

void safetensors_free_header(safetensors_header *header) {
    free(header->tensors);
    json_free(header->doc);
    memset(header, 0, sizeof *header);
}

const safetensors_tensor *safetensors_find(const safetensors_header *header, const char *name) {
    safetensors_tensor key = {.name = name};
    if (header->n_tensors == 0) return NULL;
    return bsearch(&key, header->tensors, header->n_tensors, sizeof *header->tensors,
                   compare_by_name);
}
