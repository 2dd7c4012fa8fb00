/*
 * The result writer (tools/result.h): a document with every kind of value and hostile strings
 * (quotes, backslashes, control bytes, invalid UTF-8, NUL inside) is parsed back with
 * model/json.h and every value checked; numbers read back exactly; the layout is pinned; misuse
 * is reported; the run record has its fields.
 */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "model/json.h"
#include "tests/check.h"
#include "tools/result.h"

/* A writer into memory: start with memory_writer_open, end with memory_writer_close. */
typedef struct {
    result_writer w;
    FILE *stream;
    char *text;
    size_t len;
} memory_writer;

static bool memory_writer_open(memory_writer *m) {
    *m = (memory_writer){0};
    m->stream = open_memstream(&m->text, &m->len);
    CHECK(m->stream != NULL, "open_memstream failed");
    if (m->stream) result_writer_init(&m->w, m->stream);
    return m->stream != NULL;
}

/* Finishes the document; returns what result_writer_finish said. m->text holds the text. */
static int memory_writer_close(memory_writer *m) {
    int rc = result_writer_finish(&m->w);
    fclose(m->stream);
    return rc;
}

static json_document *parse_text(const memory_writer *m) {
    char err[256] = "";
    json_document *doc = json_parse(m->text, m->len, err, sizeof err);
    CHECK(doc != NULL, "the writer's output does not parse: %s\n%s", err, m->text);
    return doc;
}

/* ---- every value kind ---- */

typedef struct {
    const char *bytes;
    size_t len;
    const char *decoded; /* what a JSON reader must get back */
    size_t decoded_len;
} string_case;

#define BYTES(literal) literal, sizeof(literal) - 1
#define REPLACEMENT "\xef\xbf\xbd"
static const string_case strings[] = {
    {BYTES(""), BYTES("")},
    {BYTES("plain ascii"), BYTES("plain ascii")},
    {BYTES("quote \" backslash \\ slash /"), BYTES("quote \" backslash \\ slash /")},
    {BYTES("\x01\x1f\b\f\n\r\t\x7f"), BYTES("\x01\x1f\b\f\n\r\t\x7f")},
    {BYTES("Caf\xc3\xa9 \xf0\x9f\x98\x80 \xe4\xbd\xa0"),
     BYTES("Caf\xc3\xa9 \xf0\x9f\x98\x80 \xe4\xbd\xa0")},
    /* a stray byte, a lead byte without its continuation, a surrogate, past U+10FFFF, an
       overlong form, and a sequence cut short by the end */
    {BYTES("\xff|\xc3(|\xed\xa0\x80|\xf4\x90\x80\x80|\xc0\xaf|\xe2\x82"),
     BYTES(REPLACEMENT "|" REPLACEMENT "(|" REPLACEMENT REPLACEMENT REPLACEMENT "|" REPLACEMENT
           REPLACEMENT REPLACEMENT REPLACEMENT "|" REPLACEMENT REPLACEMENT "|" REPLACEMENT
           REPLACEMENT)},
    {BYTES("a\0b"), BYTES("a\0b")},
};
#define N_STRINGS (sizeof strings / sizeof strings[0])

static const double exact_numbers[] = {
    0.0, -0.0, 1.0, -1.0, 0.1, 1.0 / 3.0, 2.0 / 3.0, 1e300, -1e-300, 5e-324, DBL_MAX,
    -DBL_MIN, 123456789012345678.0, 3.0e12, 0.759342193603515625, 100.0, 1500.0, -2e5,
    999999.0, 1e21, 1e-7,
};
#define N_NUMBERS (sizeof exact_numbers / sizeof exact_numbers[0])

static const char hostile_key[] = "key \"with\"\\ \n control \x01";

static void write_every_kind(result_writer *w) {
    result_begin_object(w);
    result_key(w, "strings");
    result_begin_array(w);
    for (size_t i = 0; i < N_STRINGS; i++) result_string_n(w, strings[i].bytes, strings[i].len);
    result_end_array(w);
    result_member_string(w, "terminated", "a \"C\" string");
    result_key(w, hostile_key);
    result_string(w, "hostile key");
    result_key(w, "numbers");
    result_number_array(w, exact_numbers, N_NUMBERS);
    result_key(w, "not_finite");
    result_begin_array(w);
    result_number(w, NAN);
    result_number(w, INFINITY);
    result_number(w, -INFINITY);
    result_end_array(w);
    result_member_number(w, "member_number", 0.25);
    result_member_int(w, "int_min", LLONG_MIN);
    result_member_int(w, "int_max", LLONG_MAX);
    result_key(w, "bools");
    result_begin_array(w);
    result_bool(w, true);
    result_bool(w, false);
    result_end_array(w);
    result_key(w, "null");
    result_null(w);
    result_key(w, "empty_object");
    result_begin_object(w);
    result_end_object(w);
    result_key(w, "empty_array");
    result_begin_array(w);
    result_end_array(w);
    result_key(w, "objects");
    result_begin_array(w);
    for (int i = 0; i < 2; i++) {
        result_begin_object(w);
        result_member_int(w, "i", i);
        result_end_object(w);
    }
    result_end_array(w);
    result_end_object(w);
}

static void check_strings(const json_value *root) {
    const json_value *array = json_object_get(root, "strings");
    CHECK(json_length(array) == N_STRINGS, "strings: %zu, expected %zu", json_length(array),
          N_STRINGS);
    for (size_t i = 0; i < N_STRINGS && i < json_length(array); i++) {
        size_t len = 0;
        const char *got = json_get_string(json_array_at(array, i), &len);
        CHECK(got && len == strings[i].decoded_len &&
                  memcmp(got, strings[i].decoded, len) == 0,
              "strings[%zu]: read back %zu bytes, not the %zu expected", i, got ? len : 0,
              strings[i].decoded_len);
    }
    CHECK(json_string_equals(json_object_get(root, "terminated"), "a \"C\" string"), "terminated");
    CHECK(json_string_equals(json_object_get(root, hostile_key), "hostile key"), "hostile key");
}

static void check_numbers(const json_value *root) {
    const json_value *array = json_object_get(root, "numbers");
    CHECK(json_length(array) == N_NUMBERS, "numbers: %zu", json_length(array));
    for (size_t i = 0; i < N_NUMBERS && i < json_length(array); i++) {
        double got = NAN;
        CHECK(json_get_double(json_array_at(array, i), &got) && got == exact_numbers[i] &&
                  signbit(got) == signbit(exact_numbers[i]),
              "numbers[%zu]: %.17g read back as %.17g", i, exact_numbers[i], got);
    }
    const json_value *not_finite = json_object_get(root, "not_finite");
    CHECK(json_length(not_finite) == 3, "not_finite");
    for (size_t i = 0; i < json_length(not_finite); i++)
        CHECK(json_array_at(not_finite, i)->type == JSON_NULL, "not_finite[%zu] is not null", i);
    double quarter = 0;
    CHECK(json_get_double(json_object_get(root, "member_number"), &quarter) && quarter == 0.25,
          "member_number");
    int64_t min = 0, max = 0;
    CHECK(json_get_int64(json_object_get(root, "int_min"), &min) && min == LLONG_MIN, "int_min");
    CHECK(json_get_int64(json_object_get(root, "int_max"), &max) && max == LLONG_MAX, "int_max");
}

static void check_other_kinds(const json_value *root) {
    const json_value *bools = json_object_get(root, "bools");
    bool first = false, second = true;
    CHECK(json_get_bool(json_array_at(bools, 0), &first) && first, "bools[0]");
    CHECK(json_get_bool(json_array_at(bools, 1), &second) && !second, "bools[1]");
    const json_value *null = json_object_get(root, "null");
    CHECK(null && null->type == JSON_NULL, "null");
    const json_value *empty_object = json_object_get(root, "empty_object");
    CHECK(empty_object && empty_object->type == JSON_OBJECT && json_length(empty_object) == 0,
          "empty_object");
    const json_value *empty_array = json_object_get(root, "empty_array");
    CHECK(empty_array && empty_array->type == JSON_ARRAY && json_length(empty_array) == 0,
          "empty_array");
    const json_value *objects = json_object_get(root, "objects");
    for (size_t i = 0; i < 2; i++) {
        int64_t got = -1;
        CHECK(json_get_int64(json_object_get(json_array_at(objects, i), "i"), &got) &&
                  got == (int64_t)i,
              "objects[%zu].i", i);
    }
    CHECK(json_length(root) == 13, "root has %zu members", json_length(root));
}

static void test_every_value_kind(void) {
    memory_writer m;
    if (!memory_writer_open(&m)) return;
    write_every_kind(&m.w);
    CHECK(memory_writer_close(&m) == 0, "a complete document did not finish cleanly");
    json_document *doc = parse_text(&m);
    if (doc) {
        check_strings(json_root(doc));
        check_numbers(json_root(doc));
        check_other_kinds(json_root(doc));
    }
    json_free(doc);
    free(m.text);
}

/* ---- layout, number format, misuse ---- */

static void test_layout(void) {
    memory_writer m;
    if (!memory_writer_open(&m)) return;
    static const double row0[] = {1, 0.5}, row1[] = {-2};
    result_begin_object(&m.w);
    result_key(&m.w, "a");
    result_number_array(&m.w, row0, 2);
    result_key(&m.w, "m");
    result_begin_array(&m.w);
    result_number_array(&m.w, row0, 2);
    result_number_array(&m.w, row1, 1);
    result_end_array(&m.w);
    result_key(&m.w, "e");
    result_begin_object(&m.w);
    result_end_object(&m.w);
    result_key(&m.w, "o");
    result_begin_object(&m.w);
    result_key(&m.w, "x");
    result_null(&m.w);
    result_end_object(&m.w);
    result_end_object(&m.w);
    CHECK(memory_writer_close(&m) == 0, "layout document");
    static const char expected[] = "{\n"
                                   "  \"a\": [1, 0.5],\n"
                                   "  \"m\": [\n"
                                   "    [1, 0.5],\n"
                                   "    [-2]\n"
                                   "  ],\n"
                                   "  \"e\": {},\n"
                                   "  \"o\": {\n"
                                   "    \"x\": null\n"
                                   "  }\n"
                                   "}\n";
    CHECK(strcmp(m.text, expected) == 0, "layout:\n%s\nexpected:\n%s", m.text, expected);
    free(m.text);
}

static void test_number_format(void) {
    static const struct {
        double value;
        const char *text;
    } cases[] = {
        {0.1, "0.1"},         {3e12, "3e+12"},     {100, "100"},
        {-1500, "-1500"},     {1e6, "1e+06"},      {1234567, "1234567"},
        {2.5e-5, "2.5e-05"},  {-0.0, "-0"},        {1.0 / 3.0, "0.3333333333333333"},
        {NAN, ""},            {-INFINITY, ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[RESULT_NUMBER_LEN];
        result_format_number(cases[i].value, buf);
        CHECK(strcmp(buf, cases[i].text) == 0, "%.17g formats as '%s', expected '%s'",
              cases[i].value, buf, cases[i].text);
    }
}

typedef enum {
    VALUE_WITHOUT_KEY,
    KEY_IN_ARRAY,
    TWO_TOP_LEVEL_VALUES,
    WRONG_END,
    UNFINISHED,
    TOO_DEEP,
    N_MISUSES
} misuse_case;

static void commit_misuse(result_writer *w, misuse_case c) {
    switch (c) {
    case VALUE_WITHOUT_KEY:
        result_begin_object(w);
        result_int(w, 1);
        result_end_object(w);
        break;
    case KEY_IN_ARRAY:
        result_begin_array(w);
        result_key(w, "k");
        result_end_array(w);
        break;
    case TWO_TOP_LEVEL_VALUES:
        result_null(w);
        result_null(w);
        break;
    case WRONG_END:
        result_begin_array(w);
        result_end_object(w);
        break;
    case UNFINISHED:
        result_begin_object(w);
        result_key(w, "k");
        break;
    case TOO_DEEP:
        for (int i = 0; i <= RESULT_MAX_DEPTH; i++) result_begin_array(w);
        for (int i = 0; i <= RESULT_MAX_DEPTH; i++) result_end_array(w);
        break;
    case N_MISUSES: break;
    }
}

static void test_misuse(void) {
    for (misuse_case c = 0; c < N_MISUSES; c++) {
        memory_writer m;
        if (!memory_writer_open(&m)) return;
        commit_misuse(&m.w, c);
        CHECK(memory_writer_close(&m) != 0, "misuse %d finished cleanly: %s", (int)c, m.text);
        free(m.text);
    }
}

/* ---- the run record ---- */

static bool is_utc_date(const char *s) {
    static const char pattern[] = "dddd-dd-ddTdd:dd:ddZ";
    if (!s || strlen(s) != strlen(pattern)) return false;
    for (size_t i = 0; pattern[i]; i++)
        if (pattern[i] == 'd' ? s[i] < '0' || s[i] > '9' : s[i] != pattern[i]) return false;
    return true;
}

static void check_gpu(const json_value *gpu) {
    const char *name = json_get_string(json_object_get(gpu, "name"), NULL);
    CHECK(gpu && gpu->type == JSON_OBJECT && name && *name, "run.gpu.name");
    if (!name || strcmp(name, "none") == 0) {
        CHECK(json_length(gpu) == 1, "run.gpu has more than a name without a device");
        return;
    }
    static const char *const numbers[] = {"multiprocessors", "memory_gib", "sm_clock_max_mhz",
                                          "memory_clock_max_mhz"};
    /* The SIMT emulator (kernels/emu/) has no clocks: it reports them as unavailable. */
    const bool emulator = strstr(name, "(not a GPU)") != NULL;
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++) {
        const json_value *number = json_object_get(gpu, numbers[i]);
        double v = 0;
        if (emulator && strstr(numbers[i], "clock"))
            CHECK(number && number->type == JSON_NULL, "run.gpu.%s is not null on the emulator", numbers[i]);
        else
            CHECK(json_get_double(number, &v) && v > 0, "run.gpu.%s", numbers[i]);
    }
    CHECK(json_get_string(json_object_get(gpu, "compute_capability"), NULL), "compute capability");
    printf("test_result: GPU %s\n", name);
}

static void test_run_info(void) {
    memory_writer m;
    if (!memory_writer_open(&m)) return;
    char *argv[] = {"similarity", "-m", "dir with space", "it's", "", "a=b,c:d/e.f_g-h@1%+"};
    result_write_run_info(&m.w, "analyze", sizeof argv / sizeof argv[0], argv);
    CHECK(memory_writer_close(&m) == 0, "run info");
    json_document *doc = parse_text(&m);
    const json_value *run = doc ? json_root(doc) : NULL;
    if (run) {
        const json_value *command = json_object_get(run, "command_line");
        CHECK(json_string_equals(command, "gpt2 analyze similarity -m 'dir with space' 'it'\\''s' "
                                          "'' a=b,c:d/e.f_g-h@1%+"),
              "command_line: %s", json_get_string(command, NULL));
        const char *date = json_get_string(json_object_get(run, "date_utc"), NULL);
        CHECK(is_utc_date(date), "date_utc: %s", date ? date : "missing");
        const char *host = json_get_string(json_object_get(run, "host"), NULL);
        CHECK(host && *host, "host");
        const json_value *revision = json_object_get(run, "engine_revision");
        CHECK(revision && (revision->type == JSON_NULL || revision->type == JSON_STRING),
              "engine_revision");
        check_gpu(json_object_get(run, "gpu"));
        CHECK(json_length(run) == 5, "run has %zu members", json_length(run));
    }
    json_free(doc);
    free(m.text);
}

int main(void) {
    test_every_value_kind();
    test_layout();
    test_number_format();
    test_misuse();
    test_run_info();
    return check_finish("test_result");
}
