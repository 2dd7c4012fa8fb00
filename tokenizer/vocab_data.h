/*
 * The GPT-2 vocabulary as compiled into the library: token id -> bytes. The source file is
 * generated at build time from weights/vocab.bpe by tokenizer/vocab_gen.c. Ids equal BPE ranks,
 * as in tiktoken: ids 0..255 are the single bytes, 256..50255 one per merge line, and
 * TOKENIZER_EOT_ID is the text "<|endoftext|>". Internal to the tokenizer.
 */
#ifndef GPT2_TOKENIZER_VOCAB_DATA_H
#define GPT2_TOKENIZER_VOCAB_DATA_H

#include <stdint.h>

#include "tokenizer/tokenizer.h"

/* The bytes of token id are tokenizer_vocab_bytes[offsets[id] .. offsets[id + 1]). */
extern const uint32_t tokenizer_vocab_offsets[TOKENIZER_VOCAB_SIZE + 1];
extern const uint8_t tokenizer_vocab_bytes[];

#endif
