/*
 * A small, strict JSON (RFC 8259) parser that builds a read-only DOM.
 *
 * Input is (buf, len) and need not be NUL-terminated; every read is bounds-checked. Strings must
 * be valid UTF-8; escapes (including \u surrogate pairs) are decoded. Nesting is limited to
 * JSON_MAX_DEPTH. Duplicate keys within one object are rejected, so lookups are unambiguous.
 * Numbers keep a double value and, when written as an integer that fits, an exact int64; the
 * double comes from strtod, so the process must keep the default "C" LC_NUMERIC locale.
 *
 * All nodes and strings live in the document and stay valid until json_free.
 */
#ifndef GPT2_JSON_H
#define GPT2_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define JSON_MAX_DEPTH 64

typedef enum { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT } json_type;

typedef struct json_value json_value;
typedef struct json_member json_member;
typedef struct json_document json_document;

struct json_value {
    json_type type;
    union {
        bool boolean;
        struct {
            double value;
            int64_t int_value; /* exact; meaningful only when is_int */
            bool is_int;       /* written without fraction or exponent, and fits in int64 */
        } number;
        struct {
            const char *chars; /* decoded UTF-8, NUL-terminated; may also contain NUL (\u0000) */
            size_t len;
        } string;
        struct {
            const json_value *items; /* [count] */
            size_t count;
        } array;
        struct {
            const json_member *members;       /* [count], in document order */
            const json_member *const *by_key; /* [count], the same members sorted by key */
            size_t count;
        } object;
    } as;
};

struct json_member {
    const char *key; /* decoded UTF-8, NUL-terminated */
    size_t key_len;
    json_value value;
};

/*
 * Parses text[0..len). Returns NULL on error and writes one line into err
 * ("line L, column C: what went wrong"); err may be NULL.
 */
json_document *json_parse(const char *text, size_t len, char *err, size_t err_len);
void json_free(json_document *doc);
const json_value *json_root(const json_document *doc);

const char *json_type_name(json_type type);

/* The member named key (exact bytes), or NULL when absent or when obj is not an object. */
const json_value *json_object_get(const json_value *obj, const char *key);
/* Element index of an array, or NULL when out of range or when arr is not an array. */
const json_value *json_array_at(const json_value *arr, size_t index);
/* Element count of an array or member count of an object; 0 for anything else. */
size_t json_length(const json_value *v);

/* Typed getters: return false (leaving *out alone) when v is NULL or of another type. */
bool json_get_bool(const json_value *v, bool *out);
bool json_get_double(const json_value *v, double *out);
bool json_get_int64(const json_value *v, int64_t *out); /* only numbers with is_int */
/* The string's bytes (and length, when len is not NULL), or NULL when v is not a string. */
const char *json_get_string(const json_value *v, size_t *len);
/* Whether v is a string holding exactly the bytes of s. */
bool json_string_equals(const json_value *v, const char *s);

/*
 * Copies s[0..len) into buf (buf_len > 4) so that it fits on one line of an error message:
 * control bytes become '?' and text that does not fit is cut short with "...". Returns buf.
 */
const char *json_printable(const char *s, size_t len, char *buf, size_t buf_len);

#endif
