/* The JSON parser: grammar, escapes, numbers, limits and lookups. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/json.h"
#include "tests/check.h"

/* Parses an exact-size heap copy of text, so that any read past the end trips ASan/valgrind. */
static json_document *parse_exact(const char *text, size_t len, char *err, size_t err_len) {
    char *copy = malloc(len ? len : 1);
    if (!copy) return NULL;
    memcpy(copy, text, len);
    json_document *doc = json_parse(copy, len, err, err_len);
    free(copy);
    return doc;
}

static json_document *parse(const char *text, char *err, size_t err_len) {
    return parse_exact(text, strlen(text), err, err_len);
}

static void expect_invalid_n(const char *text, size_t len, const char *message) {
    char err[256] = "";
    json_document *doc = parse_exact(text, len, err, sizeof err);
    CHECK(doc == NULL, "accepted invalid JSON %s", text);
    CHECK(strstr(err, message) != NULL, "for %s: error '%s' lacks '%s'", text, err, message);
    CHECK(strchr(err, '\n') == NULL, "error is not one line: %s", err);
    json_free(doc);
}

static void expect_invalid(const char *text, const char *message) {
    expect_invalid_n(text, strlen(text), message);
}

static void test_literals_and_structure(void) {
    char err[256] = "";
    json_document *doc = parse(
        " {\"a\": [true, false, null, 1, \"s\"], \"b\": {}, \"c\": []}\r\n\t", err, sizeof err);
    CHECK(doc != NULL, "valid document rejected: %s", err);
    if (!doc) return;
    const json_value *root = json_root(doc);
    CHECK(root->type == JSON_OBJECT && json_length(root) == 3, "root");
    CHECK(strcmp(root->as.object.members[0].key, "a") == 0, "members keep document order");
    CHECK(strcmp(root->as.object.members[2].key, "c") == 0, "members keep document order");
    const json_value *a = json_object_get(root, "a");
    CHECK(a && a->type == JSON_ARRAY && json_length(a) == 5, "array a");
    bool b = false;
    CHECK(json_get_bool(json_array_at(a, 0), &b) && b, "true");
    CHECK(json_get_bool(json_array_at(a, 1), &b) && !b, "false");
    CHECK(json_array_at(a, 2)->type == JSON_NULL, "null");
    CHECK(json_array_at(a, 5) == NULL, "index past the end");
    CHECK(json_array_at(root, 0) == NULL, "array_at on an object");
    CHECK(json_object_get(a, "x") == NULL, "object_get on an array");
    CHECK(json_object_get(root, "missing") == NULL, "absent key");
    CHECK(json_object_get(NULL, "a") == NULL, "NULL object");
    CHECK(json_length(json_object_get(root, "b")) == 0, "empty object");
    CHECK(json_length(json_object_get(root, "c")) == 0, "empty array");
    CHECK(json_get_string(json_array_at(a, 4), NULL) != NULL, "string getter");
    CHECK(json_get_string(json_array_at(a, 3), NULL) == NULL, "string getter on a number");
    CHECK(json_string_equals(json_array_at(a, 4), "s"), "string_equals");
    CHECK(!json_string_equals(json_array_at(a, 4), "st"), "string_equals, longer");
    CHECK(!json_string_equals(json_array_at(a, 3), "1"), "string_equals on a number");
    int64_t i = 0;
    CHECK(!json_get_int64(json_array_at(a, 4), &i), "int getter on a string");
    CHECK(!json_get_bool(NULL, &b), "getter on NULL");
    json_free(doc);

    doc = parse("\"just a string\"", err, sizeof err);
    CHECK(doc && json_root(doc)->type == JSON_STRING, "scalar root");
    json_free(doc);
    json_free(NULL);
}

static void test_object_lookup_many_keys(void) {
    /* {"k0":0,"k1":1,...} with keys out of sorted order, looked up by binary search */
    enum { N = 500 };
    size_t cap = 16 * N;
    char *text = malloc(cap);
    CHECK(text != NULL, "out of memory");
    if (!text) return;
    size_t n = 0;
    n += (size_t)snprintf(text + n, cap - n, "{");
    for (int k = N - 1; k >= 0; k--)
        n += (size_t)snprintf(text + n, cap - n, "\"k%d\":%d%s", k, k, k ? "," : "}");
    char err[256] = "";
    json_document *doc = parse(text, err, sizeof err);
    CHECK(doc != NULL, "many keys: %s", err);
    for (int k = 0; doc && k < N; k++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", k);
        int64_t v = -1;
        CHECK(json_get_int64(json_object_get(json_root(doc), key), &v) && v == k, "lookup %s", key);
    }
    json_free(doc);
    free(text);
}

static void expect_number(const char *text, double value, bool is_int, int64_t int_value) {
    char err[256] = "";
    json_document *doc = parse(text, err, sizeof err);
    CHECK(doc != NULL, "number %s rejected: %s", text, err);
    if (!doc) return;
    const json_value *v = json_root(doc);
    double d = 0;
    CHECK(json_get_double(v, &d) && d == value, "%s: got %.17g", text, d);
    int64_t i = 0;
    CHECK(json_get_int64(v, &i) == is_int, "%s: is_int", text);
    CHECK(!is_int || i == int_value, "%s: int value %lld", text, (long long)i);
    json_free(doc);
}

static void test_numbers(void) {
    expect_number("0", 0, true, 0);
    expect_number("-0", 0, true, 0);
    expect_number("768", 768, true, 768);
    expect_number("-12", -12, true, -12);
    expect_number("1e-05", 1e-5, false, 0);
    expect_number("1.5E+3", 1500, false, 0);
    expect_number("2.0", 2, false, 0);
    expect_number("9223372036854775807", 9223372036854775807.0, true, INT64_MAX);
    expect_number("-9223372036854775808", -9223372036854775808.0, true, INT64_MIN);
    expect_number("9223372036854775808", 9223372036854775808.0, false, 0);
    expect_number("-9223372036854775809", -9223372036854775809.0, false, 0);
    expect_number("123456789012345678901234567890", 123456789012345678901234567890.0, false, 0);
    expect_number("1e-400", 0, false, 0);
    expect_invalid("1e400", "out of range");
    expect_invalid("01", "leading zeros");
    expect_invalid("-", "expected a digit");
    expect_invalid("1.", "after the decimal point");
    expect_invalid(".5", "expected a value");
    expect_invalid("+1", "expected a value");
    expect_invalid("1e", "exponent");
    expect_invalid("1e+", "exponent");
    expect_invalid("NaN", "expected a value");
    expect_invalid("-Infinity", "expected a digit");
}

static void expect_string(const char *json, const char *bytes, size_t len) {
    char err[256] = "";
    json_document *doc = parse(json, err, sizeof err);
    CHECK(doc != NULL, "string %s rejected: %s", json, err);
    if (!doc) return;
    size_t got_len = 0;
    const char *got = json_get_string(json_root(doc), &got_len);
    CHECK(got && got_len == len && memcmp(got, bytes, len) == 0 && got[len] == '\0',
          "string %s decoded wrongly", json);
    json_free(doc);
}

static void test_strings(void) {
    expect_string("\"\"", "", 0);
    expect_string("\"plain\"", "plain", 5);
    expect_string("\"\\\" \\\\ \\/ \\b \\f \\n \\r \\t\"", "\" \\ / \b \f \n \r \t", 15);
    expect_string("\"\\u0041\\u00e9\\u20AC\"", "A\xc3\xa9\xe2\x82\xac", 6);
    expect_string("\"\\ud83d\\ude00\"", "\xf0\x9f\x98\x80", 4); /* surrogate pair */
    expect_string("\"\\uDBFF\\uDFFF\"", "\xf4\x8f\xbf\xbf", 4); /* U+10FFFF */
    expect_string("\"a\\u0000b\"", "a\0b", 3);                  /* embedded NUL */
    expect_string("\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"",
                  "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9);
    expect_string("\"\x7f\"", "\x7f", 1);

    expect_invalid("\"abc", "unterminated string");
    expect_invalid("\"abc\\\"", "unterminated string");
    expect_invalid("\"\\x\"", "invalid escape");
    expect_invalid("\"\\u12\"", "invalid hex digit");
    expect_invalid("\"\\u12", "unterminated string");
    expect_invalid("\"\\u12G4\"", "invalid hex digit");
    expect_invalid("\"\\ud83d\"", "high surrogate");
    expect_invalid("\"\\ud83dx\"", "high surrogate");
    expect_invalid("\"\\ud83d\\u0041\"", "low surrogate");
    expect_invalid("\"\\ude00\"", "unpaired low surrogate");
    expect_invalid("\"tab\there\"", "control character");
    expect_invalid_n("\"nul\0\"", 6, "control character");
    expect_invalid("\"\x80\"", "invalid UTF-8");             /* lone continuation byte */
    expect_invalid("\"\xc0\x80\"", "invalid UTF-8");         /* overlong NUL */
    expect_invalid("\"\xe0\x80\xaf\"", "invalid UTF-8");     /* overlong '/' */
    expect_invalid("\"\xed\xa0\x80\"", "invalid UTF-8");     /* encoded surrogate */
    expect_invalid("\"\xf4\x90\x80\x80\"", "invalid UTF-8"); /* above U+10FFFF */
    expect_invalid("\"\xe2\x82\"", "invalid UTF-8");         /* truncated sequence */
    expect_invalid("\"\xff\"", "invalid UTF-8");
}

static void test_structure_errors(void) {
    expect_invalid("", "end of input");
    expect_invalid("   ", "end of input");
    expect_invalid("[1, 2", "expected ',' or ']' but found end of input");
    expect_invalid("[1, 2,]", "expected a value");
    expect_invalid("[1 2]", "expected ',' or ']' but found '2'");
    expect_invalid("{\"a\": 1,}", "expected a string key");
    expect_invalid("{\"a\" 1}", "expected ':'");
    expect_invalid("{\"a\": }", "expected a value");
    expect_invalid("{a: 1}", "expected a string key");
    expect_invalid("{\"a\": 1", "expected ',' or '}'");
    expect_invalid("{\"a\": 1} x", "after the JSON value");
    expect_invalid("[] []", "after the JSON value");
    expect_invalid("tru", "invalid literal");
    expect_invalid("nulL", "invalid literal");
    expect_invalid("{\"a\": 1, \"b\": 2, \"a\": 3}", "column 18: duplicate key \"a\"");
    expect_invalid("{\"x\\u0000y\": 1, \"x\\u0000y\": 2}", "duplicate key \"x?y\"");
    expect_invalid("[1,\n 2,\n x]", "line 3, column 2");
}

static void test_depth_limit(void) {
    char text[2 * (JSON_MAX_DEPTH + 1) + 1];
    for (int depth = JSON_MAX_DEPTH; depth <= JSON_MAX_DEPTH + 1; depth++) {
        memset(text, '[', (size_t)depth);
        memset(text + depth, ']', (size_t)depth);
        text[2 * depth] = '\0';
        char err[256] = "";
        json_document *doc = parse(text, err, sizeof err);
        if (depth <= JSON_MAX_DEPTH)
            CHECK(doc != NULL, "depth %d rejected: %s", depth, err);
        else
            CHECK(doc == NULL && strstr(err, "nesting deeper"), "depth %d accepted", depth);
        json_free(doc);
    }
}

static void test_printable(void) {
    char buf[12];
    CHECK(strcmp(json_printable("ab\ncd", 5, buf, sizeof buf), "ab?cd") == 0, "control byte");
    CHECK(strcmp(json_printable("0123456789abcdef", 16, buf, sizeof buf), "01234567...") == 0,
          "cut: %s", buf);
    CHECK(strcmp(json_printable("0123456789a", 11, buf, sizeof buf), "0123456789a") == 0, "fits");
}

int main(void) {
    test_literals_and_structure();
    test_object_lookup_many_keys();
    test_numbers();
    test_strings();
    test_structure_errors();
    test_depth_limit();
    test_printable();
    return check_finish("test_json");
}
