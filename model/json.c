#include "model/json.h"

#include <errno.h>
#include <math.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/utf8.h"

/* ---- Arena: every node and string of a document lives in a chain of blocks. ---- */

#define ARENA_BLOCK_SIZE ((size_t)64 * 1024)

typedef struct arena_block {
    struct arena_block *next;
    size_t used;
    size_t capacity;
    max_align_t data[]; /* [capacity bytes] */
} arena_block;

struct json_document {
    arena_block *blocks; /* newest first */
    json_value root;
};

static size_t round_up_to_alignment(size_t n) {
    size_t a = alignof(max_align_t);
    return (n + a - 1) / a * a;
}

/* Returns size bytes aligned for any type, or NULL when out of memory. */
static void *arena_alloc(json_document *doc, size_t size) {
    if (size > SIZE_MAX / 2) return NULL;
    size = round_up_to_alignment(size);
    arena_block *block = doc->blocks;
    if (!block || block->capacity - block->used < size) {
        size_t capacity = size > ARENA_BLOCK_SIZE ? size : ARENA_BLOCK_SIZE;
        block = malloc(sizeof(arena_block) + capacity);
        if (!block) return NULL;
        block->next = doc->blocks;
        block->used = 0;
        block->capacity = capacity;
        doc->blocks = block;
    }
    void *p = (char *)block->data + block->used;
    block->used += size;
    return p;
}

void json_free(json_document *doc) {
    if (!doc) return;
    arena_block *block = doc->blocks;
    while (block) {
        arena_block *next = block->next;
        free(block);
        block = next;
    }
    free(doc);
}

/* ---- Parser state ---- */

typedef struct {
    json_member member; /* key unused for array items */
    size_t key_pos;     /* where an object member's key starts, for error messages */
} pending_child;

typedef struct {
    const unsigned char *text; /* [len] */
    size_t len;
    size_t pos;
    json_document *doc;
    /* Children of the containers being parsed; each container pops its own on close. */
    pending_child *pending; /* [pending_count] */
    size_t pending_count;
    size_t pending_capacity;
    char *err;
    size_t err_len;
} parser;

/* Writes "line L, column C: message" for the current position; always returns false. */
static bool fail(parser *p, const char *fmt, ...) {
    if (!p->err || p->err_len == 0) return false;
    size_t line = 1, column = 1;
    for (size_t i = 0; i < p->pos && i < p->len; i++) {
        if (p->text[i] == '\n') {
            line++;
            column = 1;
        } else {
            column++;
        }
    }
    int n = snprintf(p->err, p->err_len, "line %zu, column %zu: ", line, column);
    if (n >= 0 && (size_t)n < p->err_len) {
        va_list args;
        va_start(args, fmt);
        vsnprintf(p->err + n, p->err_len - (size_t)n, fmt, args);
        va_end(args);
    }
    return false;
}

static bool out_of_memory(parser *p) { return fail(p, "out of memory"); }

static bool at_end(const parser *p) { return p->pos >= p->len; }

static int peek(const parser *p) { return at_end(p) ? -1 : p->text[p->pos]; }

static void skip_whitespace(parser *p) {
    while (!at_end(p)) {
        unsigned char c = p->text[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') break;
        p->pos++;
    }
}

/* Describes the character at the current position for error messages. */
static const char *describe_current(const parser *p, char *buf, size_t buf_len) {
    int c = peek(p);
    if (c < 0) return "end of input";
    if (c >= 0x20 && c < 0x7f)
        snprintf(buf, buf_len, "'%c'", c);
    else
        snprintf(buf, buf_len, "byte 0x%02x", c);
    return buf;
}

static bool expect_char(parser *p, char expected) {
    if (peek(p) == (unsigned char)expected) {
        p->pos++;
        return true;
    }
    char buf[16];
    return fail(p, "expected '%c' but found %s", expected, describe_current(p, buf, sizeof buf));
}

static bool push_pending(parser *p, const json_member *m, size_t key_pos) {
    if (p->pending_count == p->pending_capacity) {
        size_t capacity = p->pending_capacity ? p->pending_capacity * 2 : 64;
        if (capacity > SIZE_MAX / sizeof(pending_child)) return out_of_memory(p);
        pending_child *grown = realloc(p->pending, capacity * sizeof(pending_child));
        if (!grown) return out_of_memory(p);
        p->pending = grown;
        p->pending_capacity = capacity;
    }
    p->pending[p->pending_count++] = (pending_child){*m, key_pos};
    return true;
}

static bool parse_value(parser *p, int depth, json_value *out);

/* ---- Literals ---- */

static bool parse_literal(parser *p, const char *word, json_value *out, json_type type, bool b) {
    size_t n = strlen(word);
    if (p->len - p->pos < n || memcmp(p->text + p->pos, word, n) != 0)
        return fail(p, "invalid literal (expected '%s')", word);
    p->pos += n;
    out->type = type;
    out->as.boolean = b;
    return true;
}

/* ---- Numbers ---- */

static bool is_digit(int c) { return c >= '0' && c <= '9'; }

static size_t skip_digits(parser *p) {
    size_t start = p->pos;
    while (is_digit(peek(p))) p->pos++;
    return p->pos - start;
}

/* Exact value of an integer token [-]digits, when it fits in int64. */
static bool integer_value(const unsigned char *token, size_t len, int64_t *out) {
    bool negative = token[0] == '-';
    uint64_t limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t magnitude = 0;
    for (size_t i = negative ? 1 : 0; i < len; i++) {
        uint64_t digit = (uint64_t)(token[i] - '0');
        if (magnitude > (limit - digit) / 10) return false;
        magnitude = magnitude * 10 + digit;
    }
    if (negative)
        *out = magnitude == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)magnitude;
    else
        *out = (int64_t)magnitude;
    return true;
}

/* strtod needs a NUL-terminated copy of the token. */
static bool token_to_double(parser *p, const unsigned char *token, size_t len, double *out) {
    char small[64];
    char *copy = len < sizeof small ? small : malloc(len + 1);
    if (!copy) return out_of_memory(p);
    memcpy(copy, token, len);
    copy[len] = '\0';
    errno = 0;
    *out = strtod(copy, NULL);
    bool overflow = errno == ERANGE && isinf(*out);
    if (copy != small) free(copy);
    if (overflow) return fail(p, "number out of range of double");
    return true;
}

static bool parse_number(parser *p, json_value *out) {
    size_t start = p->pos;
    if (peek(p) == '-') p->pos++;
    if (peek(p) == '0') {
        p->pos++;
        if (is_digit(peek(p))) return fail(p, "leading zeros are not allowed");
    } else if (skip_digits(p) == 0) {
        return fail(p, "expected a digit");
    }
    bool integral = true;
    if (peek(p) == '.') {
        integral = false;
        p->pos++;
        if (skip_digits(p) == 0) return fail(p, "expected a digit after the decimal point");
    }
    if (peek(p) == 'e' || peek(p) == 'E') {
        integral = false;
        p->pos++;
        if (peek(p) == '+' || peek(p) == '-') p->pos++;
        if (skip_digits(p) == 0) return fail(p, "expected a digit in the exponent");
    }
    const unsigned char *token = p->text + start;
    size_t len = p->pos - start;
    out->type = JSON_NUMBER;
    out->as.number.int_value = 0;
    out->as.number.is_int = integral && integer_value(token, len, &out->as.number.int_value);
    return token_to_double(p, token, len, &out->as.number.value);
}

/* ---- Strings ---- */

static int hex_digit_value(int c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Reads the XXXX of a \uXXXX escape whose backslash-u has been consumed. */
static bool parse_hex4(parser *p, uint32_t *out) {
    uint32_t value = 0;
    for (int i = 0; i < 4; i++) {
        if (at_end(p)) return fail(p, "truncated \\u escape");
        int digit = hex_digit_value(p->text[p->pos]);
        if (digit < 0) return fail(p, "invalid hex digit in \\u escape");
        value = value * 16 + (uint32_t)digit;
        p->pos++;
    }
    *out = value;
    return true;
}

static size_t encode_utf8(uint32_t cp, char *dst) {
    if (cp < 0x80) {
        dst[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        dst[0] = (char)(0xC0 | (cp >> 6));
        dst[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        dst[0] = (char)(0xE0 | (cp >> 12));
        dst[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        dst[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    dst[0] = (char)(0xF0 | (cp >> 18));
    dst[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    dst[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    dst[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes the code point of a \u escape (its backslash consumed), joining surrogate pairs. */
static bool parse_unicode_escape(parser *p, uint32_t *cp) {
    p->pos++; /* the 'u' */
    if (!parse_hex4(p, cp)) return false;
    if (*cp >= 0xDC00 && *cp <= 0xDFFF) return fail(p, "unpaired low surrogate in \\u escape");
    if (*cp < 0xD800 || *cp > 0xDBFF) return true;
    if (p->len - p->pos < 2 || p->text[p->pos] != '\\' || p->text[p->pos + 1] != 'u')
        return fail(p, "high surrogate not followed by a \\u low surrogate");
    p->pos += 2;
    uint32_t low;
    if (!parse_hex4(p, &low)) return false;
    if (low < 0xDC00 || low > 0xDFFF)
        return fail(p, "high surrogate not followed by a low surrogate");
    *cp = 0x10000 + ((*cp - 0xD800) << 10) + (low - 0xDC00);
    return true;
}

/* Appends the character of the escape at p->pos (after its backslash) to dst. */
static bool decode_escape(parser *p, char *dst, size_t *dst_len) {
    unsigned char c = p->text[p->pos];
    char simple;
    switch (c) {
    case '"': simple = '"'; break;
    case '\\': simple = '\\'; break;
    case '/': simple = '/'; break;
    case 'b': simple = '\b'; break;
    case 'f': simple = '\f'; break;
    case 'n': simple = '\n'; break;
    case 'r': simple = '\r'; break;
    case 't': simple = '\t'; break;
    case 'u': {
        uint32_t cp;
        if (!parse_unicode_escape(p, &cp)) return false;
        *dst_len += encode_utf8(cp, dst + *dst_len);
        return true;
    }
    default: return fail(p, "invalid escape '\\%c'", c >= 0x20 && c < 0x7f ? c : '?');
    }
    dst[(*dst_len)++] = simple;
    p->pos++;
    return true;
}

/* Position of the closing quote of the string whose body starts at p->pos, or len if none. */
static size_t find_string_end(const parser *p) {
    size_t i = p->pos;
    while (i < p->len && p->text[i] != '"') i += p->text[i] == '\\' ? 2 : 1;
    return i < p->len ? i : p->len;
}

/* Parses a string at p->pos (on its opening quote) into arena memory. */
static bool parse_string(parser *p, const char **chars, size_t *len) {
    if (!expect_char(p, '"')) return false;
    size_t end = find_string_end(p);
    if (end == p->len) {
        p->pos = p->len;
        return fail(p, "unterminated string");
    }
    /* Decoding never lengthens: escapes shrink and raw bytes copy one to one. */
    char *dst = arena_alloc(p->doc, end - p->pos + 1);
    if (!dst) return out_of_memory(p);
    size_t n = 0;
    while (p->pos < end) {
        unsigned char c = p->text[p->pos];
        if (c == '\\') {
            p->pos++;
            if (!decode_escape(p, dst, &n)) return false;
        } else if (c < 0x20) {
            return fail(p, "unescaped control character 0x%02x in string", c);
        } else {
            size_t seq = utf8_valid_length((const uint8_t *)p->text + p->pos, end - p->pos);
            if (seq == 0) return fail(p, "invalid UTF-8 in string");
            memcpy(dst + n, p->text + p->pos, seq);
            n += seq;
            p->pos += seq;
        }
    }
    p->pos++; /* the closing quote */
    dst[n] = '\0';
    *chars = dst;
    *len = n;
    return true;
}

/* ---- Containers ---- */

static int compare_keys(const char *a, size_t a_len, const char *b, size_t b_len) {
    int c = memcmp(a, b, a_len < b_len ? a_len : b_len);
    if (c != 0) return c;
    return (a_len > b_len) - (a_len < b_len);
}

static int compare_member_ptrs(const void *a, const void *b) {
    const json_member *ma = *(const json_member *const *)a;
    const json_member *mb = *(const json_member *const *)b;
    return compare_keys(ma->key, ma->key_len, mb->key, mb->key_len);
}

/* Reports a duplicate key at the later of its two occurrences. */
static bool fail_duplicate_key(parser *p, size_t first, const json_member *members,
                               const json_member *a, const json_member *b) {
    size_t pos_a = p->pending[first + (size_t)(a - members)].key_pos;
    size_t pos_b = p->pending[first + (size_t)(b - members)].key_pos;
    p->pos = pos_a > pos_b ? pos_a : pos_b;
    char key[80];
    return fail(p, "duplicate key \"%s\" in object",
                json_printable(a->key, a->key_len, key, sizeof key));
}

/* Moves the pending children from index first on into arena arrays of a new object. */
static bool finish_object(parser *p, size_t first, json_value *out) {
    size_t count = p->pending_count - first;
    json_member *members = NULL;
    const json_member **by_key = NULL;
    if (count > 0) {
        members = arena_alloc(p->doc, count * sizeof *members);
        by_key = arena_alloc(p->doc, count * sizeof *by_key);
        if (!members || !by_key) return out_of_memory(p);
        for (size_t i = 0; i < count; i++) {
            members[i] = p->pending[first + i].member;
            by_key[i] = &members[i];
        }
        qsort(by_key, count, sizeof *by_key, compare_member_ptrs);
        for (size_t i = 1; i < count; i++) {
            if (compare_member_ptrs(&by_key[i - 1], &by_key[i]) == 0)
                return fail_duplicate_key(p, first, members, by_key[i - 1], by_key[i]);
        }
    }
    p->pending_count = first;
    out->type = JSON_OBJECT;
    out->as.object.members = members;
    out->as.object.by_key = by_key;
    out->as.object.count = count;
    return true;
}

static bool finish_array(parser *p, size_t first, json_value *out) {
    size_t count = p->pending_count - first;
    json_value *items = NULL;
    if (count > 0) {
        items = arena_alloc(p->doc, count * sizeof *items);
        if (!items) return out_of_memory(p);
        for (size_t i = 0; i < count; i++) items[i] = p->pending[first + i].member.value;
    }
    p->pending_count = first;
    out->type = JSON_ARRAY;
    out->as.array.items = items;
    out->as.array.count = count;
    return true;
}

/* After a container element: consumes ',' or the closing character (then *closed is true). */
static bool expect_separator(parser *p, char close, bool *closed) {
    skip_whitespace(p);
    int c = peek(p);
    *closed = c == close;
    if (c == ',' || c == close) {
        p->pos++;
        return true;
    }
    char buf[16];
    return fail(p, "expected ',' or '%c' but found %s", close,
                describe_current(p, buf, sizeof buf));
}

static bool parse_object(parser *p, int depth, json_value *out) {
    size_t first = p->pending_count;
    p->pos++; /* '{' */
    skip_whitespace(p);
    if (peek(p) == '}') {
        p->pos++;
        return finish_object(p, first, out);
    }
    for (;;) {
        json_member m;
        bool closed;
        skip_whitespace(p);
        if (peek(p) != '"') {
            char buf[16];
            return fail(p, "expected a string key but found %s",
                        describe_current(p, buf, sizeof buf));
        }
        size_t key_pos = p->pos;
        if (!parse_string(p, &m.key, &m.key_len)) return false;
        skip_whitespace(p);
        if (!expect_char(p, ':')) return false;
        if (!parse_value(p, depth, &m.value)) return false;
        if (!push_pending(p, &m, key_pos)) return false;
        if (!expect_separator(p, '}', &closed)) return false;
        if (closed) return finish_object(p, first, out);
    }
}

static bool parse_array(parser *p, int depth, json_value *out) {
    size_t first = p->pending_count;
    p->pos++; /* '[' */
    skip_whitespace(p);
    if (peek(p) == ']') {
        p->pos++;
        return finish_array(p, first, out);
    }
    for (;;) {
        json_member item = {.key = NULL, .key_len = 0};
        bool closed;
        if (!parse_value(p, depth, &item.value)) return false;
        if (!push_pending(p, &item, 0)) return false;
        if (!expect_separator(p, ']', &closed)) return false;
        if (closed) return finish_array(p, first, out);
    }
}

/* Parses one value after optional whitespace; depth counts the enclosing containers. */
static bool parse_value(parser *p, int depth, json_value *out) {
    skip_whitespace(p);
    int c = peek(p);
    switch (c) {
    case '{':
    case '[':
        if (depth >= JSON_MAX_DEPTH) return fail(p, "nesting deeper than %d", JSON_MAX_DEPTH);
        return c == '{' ? parse_object(p, depth + 1, out) : parse_array(p, depth + 1, out);
    case '"':
        out->type = JSON_STRING;
        return parse_string(p, &out->as.string.chars, &out->as.string.len);
    case 't': return parse_literal(p, "true", out, JSON_BOOL, true);
    case 'f': return parse_literal(p, "false", out, JSON_BOOL, false);
    case 'n': return parse_literal(p, "null", out, JSON_NULL, false);
    default:
        if (c == '-' || is_digit(c)) return parse_number(p, out);
        char buf[16];
        return fail(p, "expected a value but found %s", describe_current(p, buf, sizeof buf));
    }
}

json_document *json_parse(const char *text, size_t len, char *err, size_t err_len) {
    json_document *doc = calloc(1, sizeof *doc);
    parser p = {.text = (const unsigned char *)text,
                .len = len,
                .doc = doc,
                .err = err,
                .err_len = err_len};
    if (!doc) {
        out_of_memory(&p);
        return NULL;
    }
    bool ok = parse_value(&p, 0, &doc->root);
    if (ok) {
        skip_whitespace(&p);
        if (!at_end(&p)) ok = fail(&p, "unexpected data after the JSON value");
    }
    free(p.pending);
    if (!ok) {
        json_free(doc);
        return NULL;
    }
    return doc;
}

const json_value *json_root(const json_document *doc) { return &doc->root; }

/* ---- Accessors ---- */

const char *json_type_name(json_type type) {
    switch (type) {
    case JSON_NULL: return "null";
    case JSON_BOOL: return "boolean";
    case JSON_NUMBER: return "number";
    case JSON_STRING: return "string";
    case JSON_ARRAY: return "array";
    case JSON_OBJECT: return "object";
    }
    return "unknown";
}

typedef struct {
    const char *key;
    size_t len;
} key_ref;

static int compare_key_to_member(const void *key, const void *member_ptr) {
    const key_ref *k = key;
    const json_member *m = *(const json_member *const *)member_ptr;
    return compare_keys(k->key, k->len, m->key, m->key_len);
}

const json_value *json_object_get(const json_value *obj, const char *key) {
    if (!obj || obj->type != JSON_OBJECT || obj->as.object.count == 0) return NULL;
    key_ref k = {key, strlen(key)};
    const json_member *const *found = bsearch(&k, obj->as.object.by_key, obj->as.object.count,
                                              sizeof *obj->as.object.by_key, compare_key_to_member);
    return found ? &(*found)->value : NULL;
}

const json_value *json_array_at(const json_value *arr, size_t index) {
    if (!arr || arr->type != JSON_ARRAY || index >= arr->as.array.count) return NULL;
    return &arr->as.array.items[index];
}

size_t json_length(const json_value *v) {
    if (!v) return 0;
    if (v->type == JSON_ARRAY) return v->as.array.count;
    if (v->type == JSON_OBJECT) return v->as.object.count;
    return 0;
}

bool json_get_bool(const json_value *v, bool *out) {
    if (!v || v->type != JSON_BOOL) return false;
    *out = v->as.boolean;
    return true;
}

bool json_get_double(const json_value *v, double *out) {
    if (!v || v->type != JSON_NUMBER) return false;
    *out = v->as.number.value;
    return true;
}

bool json_get_int64(const json_value *v, int64_t *out) {
    if (!v || v->type != JSON_NUMBER || !v->as.number.is_int) return false;
    *out = v->as.number.int_value;
    return true;
}

const char *json_get_string(const json_value *v, size_t *len) {
    if (!v || v->type != JSON_STRING) return NULL;
    if (len) *len = v->as.string.len;
    return v->as.string.chars;
}

bool json_string_equals(const json_value *v, const char *s) {
    size_t len;
    const char *chars = json_get_string(v, &len);
    return chars && len == strlen(s) && memcmp(chars, s, len) == 0;
}

const char *json_printable(const char *s, size_t len, char *buf, size_t buf_len) {
    static const char ellipsis[] = "...";
    size_t room = buf_len - 1;
    bool cut = len > room;
    size_t n = cut ? room - (sizeof ellipsis - 1) : len;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    if (cut) {
        memcpy(buf + n, ellipsis, sizeof ellipsis - 1);
        n += sizeof ellipsis - 1;
    }
    buf[n] = '\0';
    return buf;
}
