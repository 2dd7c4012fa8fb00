/*
 * The character classes that GPT-2's pre-tokenizer pattern distinguishes, looked up from tables
 * generated from the Unicode Character Database (tokenizer/gen_unicode_tables.py writes
 * tokenizer/unicode_tables.c). Internal to the tokenizer; tests include it too.
 */
#ifndef GPT2_TOKENIZER_UNICODE_CLASS_H
#define GPT2_TOKENIZER_UNICODE_CLASS_H

#include <stdint.h>

typedef enum {
    CHAR_OTHER = 0,  /* none of the below: punctuation, symbols, marks, controls, unassigned */
    CHAR_LETTER = 1, /* \p{L}: general categories Lu Ll Lt Lm Lo */
    CHAR_NUMBER = 2, /* \p{N}: Nd Nl No */
    CHAR_SPACE = 3,  /* \s: the White_Space property */
} char_class;

#define UNICODE_MAX_CODE_POINT 0x10FFFF
#define UNICODE_BLOCK_SHIFT 8
#define UNICODE_BLOCK_SIZE (1 << UNICODE_BLOCK_SHIFT)
#define UNICODE_BLOCK_COUNT ((UNICODE_MAX_CODE_POINT + 1) >> UNICODE_BLOCK_SHIFT)

/* The Unicode version the tables were generated from, e.g. "15.0.0". */
extern const char unicode_tables_version[];
/* Two-level table: block number of each 256-code-point block, then the class of each member. */
extern const uint8_t unicode_block_index[UNICODE_BLOCK_COUNT];
extern const uint8_t unicode_block_classes[][UNICODE_BLOCK_SIZE];

/* The class of an ASCII character. Block 0 is always U+0000..U+00FF (the generator numbers blocks
 * in order of first appearance), so this skips the first level. */
static inline char_class unicode_ascii_class(uint8_t c) {
    return (char_class)unicode_block_classes[0][c & 0x7F];
}

/* The class of a code point; anything above U+10FFFF is CHAR_OTHER. */
static inline char_class unicode_class_of(uint32_t cp) {
    if (cp > UNICODE_MAX_CODE_POINT) return CHAR_OTHER;
    uint8_t block = unicode_block_index[cp >> UNICODE_BLOCK_SHIFT];
    return (char_class)unicode_block_classes[block][cp & (UNICODE_BLOCK_SIZE - 1)];
}

#endif
