/*
 * Just enough JSON for the tokenizer tests: a cursor over a text that reads strings (with the
 * standard escapes and \uXXXX, surrogate pairs included, written out as UTF-8), integers and
 * booleans, in the order the caller expects them. Not a general parser: it checks only the
 * shapes the tests read (weights/encoder.json, tests/tiktoken/edge_cases.jsonl).
 */
#ifndef GPT2_TEST_TOKENIZER_JSON_H
#define GPT2_TEST_TOKENIZER_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    const char *p, *end;
} json_cursor;

/* A growable byte buffer. */
typedef struct {
    uint8_t *bytes;
    size_t len, cap;
} byte_buffer;

bool byte_buffer_append(byte_buffer *b, const void *bytes, size_t n);
void byte_buffer_free(byte_buffer *b);

/* Skips white space; true when the next character is c (then consumed). */
bool json_accept(json_cursor *c, char ch);
/* Skips white space; true when nothing is left. */
bool json_at_end(json_cursor *c);
/* Reads a string into out (replacing its contents). */
bool json_string(json_cursor *c, byte_buffer *out);
bool json_int(json_cursor *c, long *value);
bool json_bool(json_cursor *c, bool *value);

/* The whole file, NUL-terminated, or NULL when it cannot be read. */
char *read_whole_file(const char *path, size_t *len);

#endif
