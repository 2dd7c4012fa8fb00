/* Safetensors header parsing and validation, on in-memory files. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/safetensors.h"
#include "tests/check.h"

/* An in-memory safetensors file: 8-byte length, header text, data_len zero bytes. */
typedef struct {
    unsigned char *bytes; /* [len], exactly sized so over-reads trip ASan/valgrind */
    size_t len;
} memory_file;

static memory_file make_file_with_length(uint64_t header_len_field, const char *header,
                                         size_t data_len) {
    size_t header_len = strlen(header);
    memory_file f = {malloc(8 + header_len + data_len), 8 + header_len + data_len};
    if (!f.bytes) {
        fprintf(stderr, "out of memory\n");
        exit(EXIT_FAILURE);
    }
    for (int i = 0; i < 8; i++) f.bytes[i] = (unsigned char)(header_len_field >> (8 * i));
    memcpy(f.bytes + 8, header, header_len);
    memset(f.bytes + 8 + header_len, 0, data_len);
    return f;
}

static memory_file make_file(const char *header, size_t data_len) {
    return make_file_with_length(strlen(header), header, data_len);
}

static void expect_error_in(memory_file f, const char *what, const char *message) {
    char err[512] = "";
    safetensors_header h;
    int rc = safetensors_parse_header(&h, f.bytes, f.len, err, sizeof err);
    CHECK(rc == -1, "%s: accepted", what);
    CHECK(strstr(err, message) != NULL, "%s: error '%s' lacks '%s'", what, err, message);
    CHECK(strchr(err, '\n') == NULL, "%s: error is not one line: %s", what, err);
    CHECK(h.tensors == NULL && h.doc == NULL && h.n_tensors == 0, "%s: header not emptied", what);
    free(f.bytes);
}

static void expect_error(const char *header, size_t data_len, const char *message) {
    expect_error_in(make_file(header, data_len), header, message);
}

static void test_valid_header(void) {
    const char *header =
        "{\"__metadata__\": {\"format\": \"pt\"},"
        " \"b\": {\"dtype\": \"F16\", \"shape\": [2, 3], \"data_offsets\": [16, 28]},"
        " \"a\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]},"
        " \"scalar\": {\"dtype\": \"I64\", \"shape\": [], \"data_offsets\": [28, 36]},"
        " \"empty\": {\"dtype\": \"BF16\", \"shape\": [0, 5], \"data_offsets\": [28, 28]},"
        " \"mask\": {\"dtype\": \"BOOL\", \"shape\": [1, 1, 2, 2], \"data_offsets\": [36, 40],"
        "          \"extra\": \"ignored\"}}   ";
    memory_file f = make_file(header, 40); /* the tensors cover the data section exactly */
    char err[512] = "";
    safetensors_header h;
    int rc = safetensors_parse_header(&h, f.bytes, f.len, err, sizeof err);
    CHECK(rc == 0, "valid header rejected: %s", err);
    if (rc == 0) {
        size_t data_offset = 8 + strlen(header);
        CHECK(h.data_offset == data_offset, "data offset %zu", h.data_offset);
        CHECK(h.n_tensors == 5, "tensor count %zu", h.n_tensors);
        CHECK(h.metadata && json_get_string(json_object_get(h.metadata, "format"), NULL),
              "metadata");
        const safetensors_tensor *b = safetensors_find(&h, "b");
        CHECK(b && b->dtype == SAFETENSORS_F16 && b->rank == 2 && b->shape[0] == 2 &&
                  b->shape[1] == 3 && b->numel == 6 && b->offset == data_offset + 16 &&
                  b->nbytes == 12,
              "tensor b");
        const safetensors_tensor *s = safetensors_find(&h, "scalar");
        CHECK(s && s->rank == 0 && s->numel == 1 && s->nbytes == 8, "scalar");
        const safetensors_tensor *e = safetensors_find(&h, "empty");
        CHECK(e && e->numel == 0 && e->nbytes == 0, "empty tensor");
        CHECK(safetensors_find(&h, "mask") != NULL, "mask");
        CHECK(safetensors_find(&h, "__metadata__") == NULL, "metadata is not a tensor");
        CHECK(safetensors_find(&h, "c") == NULL, "absent tensor");
        for (size_t i = 1; i < h.n_tensors; i++)
            CHECK(strcmp(h.tensors[i - 1].name, h.tensors[i].name) < 0, "sorted by name");
    }
    safetensors_free_header(&h);
    free(f.bytes);

    f = make_file("{}", 0);
    rc = safetensors_parse_header(&h, f.bytes, f.len, err, sizeof err);
    CHECK(rc == 0 && h.n_tensors == 0 && safetensors_find(&h, "a") == NULL, "empty table");
    safetensors_free_header(&h);
    free(f.bytes);
}

static void test_dtypes(void) {
    static const struct {
        const char *name;
        safetensors_dtype dtype;
        size_t size;
    } expected[] = {
        {"BOOL", SAFETENSORS_BOOL, 1},       {"U8", SAFETENSORS_U8, 1},
        {"I8", SAFETENSORS_I8, 1},           {"F8_E4M3", SAFETENSORS_F8_E4M3, 1},
        {"F8_E5M2", SAFETENSORS_F8_E5M2, 1}, {"F8_E8M0", SAFETENSORS_F8_E8M0, 1},
        {"I16", SAFETENSORS_I16, 2},         {"U16", SAFETENSORS_U16, 2},
        {"F16", SAFETENSORS_F16, 2},         {"BF16", SAFETENSORS_BF16, 2},
        {"I32", SAFETENSORS_I32, 4},         {"U32", SAFETENSORS_U32, 4},
        {"F32", SAFETENSORS_F32, 4},         {"I64", SAFETENSORS_I64, 8},
        {"U64", SAFETENSORS_U64, 8},         {"F64", SAFETENSORS_F64, 8},
    };
    for (size_t i = 0; i < sizeof expected / sizeof expected[0]; i++) {
        char header[160];
        snprintf(header, sizeof header,
                 "{\"t\": {\"dtype\": \"%s\", \"shape\": [3], \"data_offsets\": [0, %zu]}}",
                 expected[i].name, 3 * expected[i].size);
        memory_file f = make_file(header, 3 * expected[i].size);
        char err[512] = "";
        safetensors_header h;
        int rc = safetensors_parse_header(&h, f.bytes, f.len, err, sizeof err);
        CHECK(rc == 0, "dtype %s rejected: %s", expected[i].name, err);
        if (rc == 0) {
            CHECK(h.tensors[0].dtype == expected[i].dtype, "dtype %s", expected[i].name);
            CHECK(safetensors_dtype_size(h.tensors[0].dtype) == expected[i].size, "size of %s",
                  expected[i].name);
            CHECK(strcmp(safetensors_dtype_name(h.tensors[0].dtype), expected[i].name) == 0,
                  "name of %s", expected[i].name);
        }
        safetensors_free_header(&h);
        free(f.bytes);
    }
}

static void test_file_framing_errors(void) {
    memory_file f = {malloc(5), 5};
    memset(f.bytes, 0, 5);
    expect_error_in(f, "5-byte file", "too short for the 8-byte header length");
    f = (memory_file){malloc(1), 0};
    expect_error_in(f, "empty file", "file is 0 bytes");
    expect_error_in(make_file_with_length(1000, "{}", 10), "header past EOF",
                    "header length 1000 runs past the end of the file (20 bytes)");
    expect_error_in(make_file_with_length(UINT64_MAX, "{}", 0), "absurd header length",
                    "header length 18446744073709551615 exceeds the limit");
    expect_error_in(make_file_with_length((uint64_t)1 << 40, "{}", 0), "huge header length",
                    "exceeds the limit");
    expect_error_in(make_file_with_length(0, "{}", 0), "zero header length",
                    "header is not valid JSON");
}

static void test_header_errors(void) {
    expect_error("not json", 0, "header is not valid JSON: line 1, column 1");
    expect_error("{\"a\": 1", 0, "header is not valid JSON");
    expect_error("[1, 2]", 0, "header is a JSON array, expected an object");
    expect_error("{\"a\": 1, \"a\": 2}", 0, "duplicate key \"a\"");
    expect_error("{\"t\": [1]}", 0, "tensor 't': entry is a JSON array, expected an object");
    expect_error("{\"__metadata__\": [1]}", 0, "'__metadata__' is a JSON array");
    expect_error("{\"__metadata__\": {\"k\": 1}}", 0, "'__metadata__' entry 'k' is a JSON number");
    expect_error("{\"a\\nb\": {}}", 0, "tensor 'a?b': name contains a control character");
    expect_error("{\"a\\u0000b\": {}}", 0, "tensor 'a?b': name contains a control character");
}

static void test_tensor_entry_errors(void) {
#define ENTRY(dtype, shape, offsets)                                                               \
    "{\"t\": {\"dtype\": " dtype ", \"shape\": " shape ", \"data_offsets\": " offsets "}}"
    expect_error(ENTRY("\"F32\"", "[2]", "[0, 8]"), 4, "data_offsets [0, 8] run past the end");
    expect_error("{\"t\": {\"shape\": [2], \"data_offsets\": [0, 8]}}", 8,
                 "tensor 't': 'dtype' is missing");
    expect_error(ENTRY("32", "[2]", "[0, 8]"), 8, "tensor 't': 'dtype' is missing or not a string");
    expect_error(ENTRY("\"F99\"", "[2]", "[0, 8]"), 8, "tensor 't': unknown dtype 'F99'");
    expect_error(ENTRY("\"f32\"", "[2]", "[0, 8]"), 8, "unknown dtype 'f32'");
    expect_error(ENTRY("\"F32\"", "\"2\"", "[0, 8]"), 8,
                 "tensor 't': 'shape' is missing or not an array");
    expect_error("{\"t\": {\"dtype\": \"F32\", \"data_offsets\": [0, 8]}}", 8,
                 "'shape' is missing");
    expect_error(ENTRY("\"F32\"", "[-2]", "[0, 8]"), 8,
                 "tensor 't': shape[0] is not a non-negative integer");
    expect_error(ENTRY("\"F32\"", "[2, 1.5]", "[0, 8]"), 8,
                 "shape[1] is not a non-negative integer");
    expect_error(ENTRY("\"F32\"", "[2, \"1\"]", "[0, 8]"), 8,
                 "shape[1] is not a non-negative integer");
    expect_error(ENTRY("\"F32\"", "[99999999999999999999]", "[0, 8]"), 8,
                 "shape[0] is not a non-negative integer");
    expect_error(ENTRY("\"F32\"", "[1,1,1,1,1,1,1,1,1]", "[0, 4]"), 4,
                 "rank 9 exceeds the supported 8");
    expect_error(ENTRY("\"F32\"", "[4294967296, 4294967296]", "[0, 8]"), 8,
                 "shape [4294967296, 4294967296] has more elements than int64 can count");
    expect_error(ENTRY("\"F32\"", "[4611686018427387904]", "[0, 8]"), 8,
                 "shape [4611686018427387904] of F32 is too large in bytes");
    expect_error(ENTRY("\"F32\"", "[0, 4294967296, 4294967296]", "[0, 8]"), 8,
                 "hold 8 bytes but shape [0, 4294967296, 4294967296] of F32 needs 0");
    expect_error(ENTRY("\"F32\"", "[2]", "\"0-8\""), 8,
                 "tensor 't': 'data_offsets' is not an array of two");
    expect_error("{\"t\": {\"dtype\": \"F32\", \"shape\": [2]}}", 8,
                 "'data_offsets' is not an array");
    expect_error(ENTRY("\"F32\"", "[2]", "[0, 8, 16]"), 16,
                 "'data_offsets' is not an array of two");
    expect_error(ENTRY("\"F32\"", "[2]", "[0]"), 8, "'data_offsets' is not an array of two");
    expect_error(ENTRY("\"F32\"", "[2]", "[-8, 0]"), 8,
                 "'data_offsets' is not an array of two non-negative");
    expect_error(ENTRY("\"F32\"", "[2]", "[0.0, 8]"), 8, "'data_offsets' is not an array of two");
    expect_error(ENTRY("\"F32\"", "[2]", "[8, 0]"), 8,
                 "tensor 't': data_offsets [8, 0] end before they begin");
    expect_error(
        ENTRY("\"F32\"", "[2]", "[0, 9223372036854775807]"), 8,
        "data_offsets [0, 9223372036854775807] run past the end of the data section (8 bytes)");
    expect_error(ENTRY("\"F32\"", "[2]", "[0, 12]"), 12,
                 "tensor 't': data_offsets [0, 12] hold 12 bytes but shape [2] of F32 needs 8");
    expect_error(ENTRY("\"F16\"", "[2, 2]", "[0, 4]"), 8,
                 "hold 4 bytes but shape [2, 2] of F16 needs 8");
#undef ENTRY
}

/* The tensors must cover the data section exactly, as the reference implementation requires:
 * back to back from 0, with no overlap, no gap and no trailing bytes. */
static void test_coverage(void) {
    expect_error("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                 " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
                 12, "tensor 'b': data_offsets [4, 12] overlap the bytes of tensor 'a' [0, 8]");
    expect_error("{\"a\": {\"dtype\": \"F32\", \"shape\": [4], \"data_offsets\": [0, 16]},"
                 " \"b\": {\"dtype\": \"U8\", \"shape\": [2], \"data_offsets\": [4, 6]}}",
                 16, "overlap the bytes of tensor 'a'");
    /* c and d sit inside a */
    expect_error("{\"a\": {\"dtype\": \"U8\", \"shape\": [10], \"data_offsets\": [0, 10]},"
                 " \"c\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [1, 2]},"
                 " \"d\": {\"dtype\": \"U8\", \"shape\": [1], \"data_offsets\": [5, 6]}}",
                 10, "tensor 'c': data_offsets [1, 2] overlap the bytes of tensor 'a' [0, 10]");
    expect_error("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                 " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}",
                 8, "overlap the bytes of tensor");
    /* an empty tensor inside another one's bytes */
    expect_error("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                 " \"e\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [4, 4]}}",
                 8, "tensor 'e': data_offsets [4, 4] overlap the bytes of tensor 'a' [0, 8]");
    /* a gap between two tensors, and one before the first */
    expect_error("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                 " \"c\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [12, 16]}}",
                 16, "tensor 'c': data_offsets [12, 16] leave the data section's bytes [8, 12) to no tensor");
    expect_error("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
                 12, "tensor 'a': data_offsets [4, 12] leave the data section's bytes [0, 4) to no tensor");
    /* bytes after the last tensor */
    expect_error("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}", 9,
                 "1 trailing byte after the last tensor's data (which ends at byte 8 of the 9-byte "
                 "data section)");
    expect_error("{}", 3, "the header lists no tensor, but the data section holds 3 bytes");
    expect_error("{\"__metadata__\": {\"format\": \"pt\"}}", 1,
                 "no tensor, but the data section holds 1 byte");

    /* Back to back in any order in the header, with empty tensors at the boundaries. */
    memory_file f =
        make_file("{\"c\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [16, 20]},"
                  " \"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]},"
                  " \"z\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [20, 20]},"
                  " \"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [8, 16]},"
                  " \"e\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [8, 8]},"
                  " \"f\": {\"dtype\": \"F32\", \"shape\": [0, 3], \"data_offsets\": [0, 0]}}",
                  20);
    char err[512] = "";
    safetensors_header h;
    CHECK(safetensors_parse_header(&h, f.bytes, f.len, err, sizeof err) == 0,
          "back-to-back ranges rejected: %s", err);
    CHECK(h.n_tensors == 6 && safetensors_find(&h, "z") && safetensors_find(&h, "f"), "tensors");
    safetensors_free_header(&h);
    free(f.bytes);
    /* Only empty tensors, and no data. */
    f = make_file("{\"e\": {\"dtype\": \"F16\", \"shape\": [0], \"data_offsets\": [0, 0]}}", 0);
    CHECK(safetensors_parse_header(&h, f.bytes, f.len, err, sizeof err) == 0,
          "an empty tensor alone rejected: %s", err);
    safetensors_free_header(&h);
    free(f.bytes);
}

static void test_format_shape(void) {
    char buf[64];
    const int64_t shape[] = {768, 2304};
    CHECK(strcmp(safetensors_format_shape(shape, 2, buf, sizeof buf), "[768, 2304]") == 0, "2-D");
    CHECK(strcmp(safetensors_format_shape(shape, 0, buf, sizeof buf), "[]") == 0, "scalar");
    CHECK(strcmp(safetensors_format_shape(shape, 2, buf, 6), "[768,") == 0, "truncated: %s", buf);
}

int main(void) {
    test_valid_header();
    test_dtypes();
    test_file_framing_errors();
    test_header_errors();
    test_tensor_entry_errors();
    test_coverage();
    test_format_shape();
    return check_finish("test_safetensors");
}
