/*
 * The well-formed UTF-8 rules (RFC 3629, as Rust's str and tiktoken enforce them): no overlong
 * forms, no surrogates, nothing above U+10FFFF. Used by the pre-tokenizer to decode characters,
 * by the streaming decoder to recognise an incomplete character, and by the JSON reader and
 * writer to validate text. The tokenizer depends on nothing, so anyone may include this.
 */
#ifndef GPT2_TOKENIZER_UTF8_H
#define GPT2_TOKENIZER_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* What a first byte says about the sequence it starts. */
typedef struct {
    uint8_t length;     /* bytes in the sequence; 0 when this byte cannot start one */
    uint8_t second_min; /* range of the second byte, which excludes overlong forms, */
    uint8_t second_max; /* surrogates and code points above U+10FFFF */
} utf8_lead;

static inline utf8_lead utf8_lead_of(uint8_t b) {
    if (b < 0x80) return (utf8_lead){1, 0, 0};
    if (b < 0xC2) return (utf8_lead){0, 0, 0}; /* a continuation byte, or overlong C0/C1 */
    if (b < 0xE0) return (utf8_lead){2, 0x80, 0xBF};
    if (b == 0xE0) return (utf8_lead){3, 0xA0, 0xBF};
    if (b == 0xED) return (utf8_lead){3, 0x80, 0x9F};
    if (b < 0xF0) return (utf8_lead){3, 0x80, 0xBF};
    if (b == 0xF0) return (utf8_lead){4, 0x90, 0xBF};
    if (b < 0xF4) return (utf8_lead){4, 0x80, 0xBF};
    if (b == 0xF4) return (utf8_lead){4, 0x80, 0x8F};
    return (utf8_lead){0, 0, 0};
}

/*
 * How many of the avail bytes at s (avail >= 1) agree with a well-formed sequence starting at
 * s[0]: lead.length for a complete character, fewer when it is cut short or broken, 0 when s[0]
 * starts none.
 */
static inline size_t utf8_matching_prefix(const uint8_t *s, size_t avail, utf8_lead lead) {
    if (lead.length == 0) return 0;
    if (lead.length == 1 || avail < 2) return 1;
    if (s[1] < lead.second_min || s[1] > lead.second_max) return 1;
    size_t k = 2;
    while (k < lead.length && k < avail && (s[k] & 0xC0) == 0x80) k++;
    return k;
}

/* Length of the complete, well-formed character at s[0..avail) (avail >= 1), or 0 if none. */
static inline size_t utf8_valid_length(const uint8_t *s, size_t avail) {
    utf8_lead lead = utf8_lead_of(s[0]);
    return lead.length != 0 && utf8_matching_prefix(s, avail, lead) == lead.length ? lead.length : 0;
}

/* The code point of a complete, well-formed sequence of length n. */
static inline uint32_t utf8_code_point(const uint8_t *s, size_t n) {
    static const uint8_t lead_bits[5] = {0, 0x7F, 0x1F, 0x0F, 0x07};
    uint32_t cp = s[0] & lead_bits[n];
    for (size_t i = 1; i < n; i++) cp = (cp << 6) | (s[i] & 0x3F);
    return cp;
}

#endif
