/*
 * GPT-2 byte-level BPE tokenizer, identical to tiktoken's "gpt2" encoding.
 *
 * The vocabulary (OpenAI's vocab.bpe, ranks derived as tiktoken derives them) is compiled into
 * the library at build time, so no file is needed at run time. This module depends on nothing
 * else in the project. A tokenizer is only read after tokenizer_create, so one can serve many
 * threads at once.
 */
#ifndef GPT2_TOKENIZER_H
#define GPT2_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TOKENIZER_VOCAB_SIZE 50257
#define TOKENIZER_EOT_ID 50256 /* <|endoftext|> */

typedef struct tokenizer tokenizer;

/* Builds the lookup tables from the embedded vocabulary. NULL only when out of memory. */
tokenizer *tokenizer_create(void);
void tokenizer_destroy(tokenizer *tok);

/* A growable array of token ids. Start from (token_ids){0}; release with token_ids_free. */
typedef struct {
    int32_t *ids; /* [len] */
    size_t len;
    size_t cap;
} token_ids;

void token_ids_free(token_ids *ids);
/* Appends one id. Returns 0, or -1 when out of memory. */
int token_ids_push(token_ids *ids, int32_t id);

/*
 * Appends the ids of text[0..len) to out. With allow_special, the literal text "<|endoftext|>"
 * becomes TOKENIZER_EOT_ID; without it, that text is encoded as ordinary text.
 * Returns 0, or -1 when out of memory (then out is as it was).
 *
 * Any bytes are accepted. tiktoken only ever sees well-formed text (a string); for other input
 * the rule here is: a byte that does not begin a well-formed UTF-8 character (a stray
 * continuation byte, a cut-short sequence, an overlong form, a surrogate, anything above
 * U+10FFFF) counts as a character of its own that is neither a letter, a number nor white
 * space, so it joins a run of punctuation. Decoding the ids gives the bytes back exactly.
 */
int tokenizer_encode(const tokenizer *tok, const char *text, size_t len, bool allow_special,
                     token_ids *out);

/* The exact bytes of one token (not NUL-terminated). NULL and *len = 0 for an id out of range. */
const uint8_t *tokenizer_token_bytes(const tokenizer *tok, int32_t id, size_t *len);

/*
 * Decodes ids into a malloc'd buffer of *out_len bytes (NUL-terminated for convenience).
 * Returns 0, or -1 when an id is out of [0, TOKENIZER_VOCAB_SIZE); then *bad_index names it
 * (bad_index may be NULL). Out of memory also returns -1, with *bad_index = n.
 */
int tokenizer_decode(const tokenizer *tok, const int32_t *ids, size_t n, char **out,
                     size_t *out_len, size_t *bad_index);

/*
 * Streaming decode: feeds one id at a time and hands back only bytes that end on a complete
 * UTF-8 character. An incomplete trailing character is held back until later ids complete it;
 * bytes that can never become valid UTF-8 are released as they are, so the concatenated output
 * always equals tokenizer_decode of the same ids.
 */
typedef struct {
    uint8_t pending[4]; /* held-back prefix of an incomplete UTF-8 character */
    size_t n_pending;
} tokenizer_stream;

/*
 * Writes the releasable bytes into out (capacity out_cap, which must be at least the token's
 * length + 4) and returns how many, or -1 for an out-of-range id or a too-small buffer.
 */
int tokenizer_stream_push(const tokenizer *tok, tokenizer_stream *stream, int32_t id, char *out,
                          size_t out_cap);
/* Releases whatever is still held back (at most 4 bytes). Returns the count. */
size_t tokenizer_stream_flush(tokenizer_stream *stream, char *out);

#endif
