/*
 * GPT-2's pre-tokenizer: splits text into the pieces that BPE then encodes one by one. It is a
 * hand-written matcher for tiktoken's gpt2 pattern
 *
 *     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 *
 * with the same leftmost-first, backtracking semantics (see pretokenize.c for the rules).
 * Internal to the tokenizer; tests include it too.
 *
 * Input is any bytes. A byte that does not begin a well-formed UTF-8 character counts as one
 * character of its own that is neither a letter, a number nor white space, so it joins
 * punctuation runs. Well-formed text never meets this rule.
 */
#ifndef GPT2_TOKENIZER_PRETOKENIZE_H
#define GPT2_TOKENIZER_PRETOKENIZE_H

#include <stddef.h>
#include <stdint.h>

/* The end of the piece that starts at text[start] (start < len): always > start. */
size_t pretoken_end(const uint8_t *text, size_t len, size_t start);

#endif
