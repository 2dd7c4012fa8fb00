#include "test_tokenizer_json.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool byte_buffer_append(byte_buffer *b, const void *bytes, size_t n) {
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + n) cap *= 2;
        uint8_t *grown = realloc(b->bytes, cap);
        if (!grown) return false;
        b->bytes = grown;
        b->cap = cap;
    }
    memcpy(b->bytes + b->len, bytes, n);
    b->len += n;
    return true;
}

void byte_buffer_free(byte_buffer *b) {
    free(b->bytes);
    *b = (byte_buffer){0};
}

static void skip_space(json_cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

bool json_accept(json_cursor *c, char ch) {
    skip_space(c);
    if (c->p == c->end || *c->p != ch) return false;
    c->p++;
    return true;
}

bool json_at_end(json_cursor *c) {
    skip_space(c);
    return c->p == c->end;
}

static bool read_hex4(json_cursor *c, uint32_t *value) {
    if (c->end - c->p < 4) return false;
    *value = 0;
    for (int i = 0; i < 4; i++) {
        char h = *c->p++;
        int digit = h >= '0' && h <= '9'   ? h - '0'
                    : h >= 'a' && h <= 'f' ? h - 'a' + 10
                    : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                           : -1;
        if (digit < 0) return false;
        *value = *value * 16 + (uint32_t)digit;
    }
    return true;
}

/* \uXXXX, with a following \uXXXX when the first is a high surrogate. */
static bool read_unicode_escape(json_cursor *c, uint32_t *cp) {
    if (!read_hex4(c, cp)) return false;
    if (*cp < 0xD800 || *cp > 0xDBFF) return *cp < 0xDC00 || *cp > 0xDFFF;
    uint32_t low;
    if (c->end - c->p < 2 || c->p[0] != '\\' || c->p[1] != 'u') return false;
    c->p += 2;
    if (!read_hex4(c, &low) || low < 0xDC00 || low > 0xDFFF) return false;
    *cp = 0x10000 + ((*cp - 0xD800) << 10) + (low - 0xDC00);
    return true;
}

static bool append_utf8(byte_buffer *out, uint32_t cp) {
    uint8_t b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (uint8_t)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (uint8_t)(0xC0 | cp >> 6);
        b[1] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (uint8_t)(0xE0 | cp >> 12);
        b[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (uint8_t)(0xF0 | cp >> 18);
        b[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (uint8_t)(0x80 | (cp & 0x3F));
        n = 4;
    }
    return byte_buffer_append(out, b, n);
}

static bool read_escape(json_cursor *c, byte_buffer *out) {
    if (c->p == c->end) return false;
    char e = *c->p++;
    static const char plain[] = "\"\\/bfnrt", meaning[] = "\"\\/\b\f\n\r\t";
    const char *known = strchr(plain, e);
    if (e != '\0' && known) return byte_buffer_append(out, &meaning[known - plain], 1);
    uint32_t cp;
    return e == 'u' && read_unicode_escape(c, &cp) && append_utf8(out, cp);
}

bool json_string(json_cursor *c, byte_buffer *out) {
    out->len = 0;
    if (!json_accept(c, '"')) return false;
    while (c->p < c->end) {
        char ch = *c->p++;
        if (ch == '"') return true;
        bool ok = ch == '\\' ? read_escape(c, out) : byte_buffer_append(out, &ch, 1);
        if (!ok) return false;
    }
    return false;
}

bool json_int(json_cursor *c, long *value) {
    skip_space(c);
    bool negative = c->p < c->end && *c->p == '-';
    if (negative) c->p++;
    if (c->p == c->end || *c->p < '0' || *c->p > '9') return false;
    long v = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        if (v > 1000000000L) return false; /* far beyond any token id */
        v = v * 10 + (*c->p++ - '0');
    }
    *value = negative ? -v : v;
    return true;
}

bool json_bool(json_cursor *c, bool *value) {
    skip_space(c);
    size_t left = (size_t)(c->end - c->p);
    if (left >= 4 && memcmp(c->p, "true", 4) == 0) {
        c->p += 4;
        *value = true;
        return true;
    }
    if (left >= 5 && memcmp(c->p, "false", 5) == 0) {
        c->p += 5;
        *value = false;
        return true;
    }
    return false;
}

char *read_whole_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *data = NULL;
    size_t n = 0, cap = 0, got;
    do {
        if (n + 1 >= cap) {
            cap = cap ? cap * 2 : 1 << 16;
            char *grown = realloc(data, cap);
            if (!grown) {
                free(data);
                fclose(f);
                return NULL;
            }
            data = grown;
        }
        got = fread(data + n, 1, cap - n - 1, f);
        n += got;
    } while (got > 0);
    bool failed = ferror(f);
    fclose(f);
    if (failed) {
        free(data);
        return NULL;
    }
    data[n] = '\0';
    *len = n;
    return data;
}
