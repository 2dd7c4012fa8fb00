/* Decoding: token ids back to bytes, whole or streamed one id at a time. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"
#include "tokenizer/vocab_data.h"

static inline bool id_in_range(int32_t id) { return id >= 0 && id < TOKENIZER_VOCAB_SIZE; }

const uint8_t *tokenizer_token_bytes(const tokenizer *tok, int32_t id, size_t *len) {
    (void)tok; /* the vocabulary is compiled in */
    if (!id_in_range(id)) {
        *len = 0;
        return NULL;
    }
    *len = tokenizer_vocab_offsets[id + 1] - tokenizer_vocab_offsets[id];
    return tokenizer_vocab_bytes + tokenizer_vocab_offsets[id];
}

int tokenizer_decode(const tokenizer *tok, const int32_t *ids, size_t n, char **out,
                     size_t *out_len, size_t *bad_index) {
    *out = NULL;
    *out_len = 0;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (!id_in_range(ids[i])) {
            if (bad_index) *bad_index = i;
            return -1;
        }
        total += tokenizer_vocab_offsets[ids[i] + 1] - tokenizer_vocab_offsets[ids[i]];
    }
    char *text = malloc(total + 1);
    if (!text) {
        if (bad_index) *bad_index = n;
        return -1;
    }
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len;
        const uint8_t *bytes = tokenizer_token_bytes(tok, ids[i], &len);
        memcpy(text + at, bytes, len);
        at += len;
    }
    text[at] = '\0';
    *out = text;
    *out_len = at;
    return 0;
}

/*
 * How many bytes at the end of text[0..n) are the beginning of a UTF-8 character that more bytes
 * could still complete: 0 when the text ends on a complete character or on bytes that no
 * continuation can make well-formed.
 */
static size_t incomplete_tail(const uint8_t *text, size_t n) {
    /* A character is at most 4 bytes, so its incomplete start is among the last 3. */
    for (size_t back = 1; back <= 3 && back <= n; back++) {
        const uint8_t *start = text + n - back;
        utf8_lead lead = utf8_lead_of(*start);
        if (lead.length == 0) continue; /* a continuation byte: look further back */
        bool incomplete = back < lead.length && utf8_matching_prefix(start, back, lead) == back;
        return incomplete ? back : 0;
    }
    return 0;
}

int tokenizer_stream_push(const tokenizer *tok, tokenizer_stream *stream, int32_t id, char *out,
                          size_t out_cap) {
    size_t len;
    const uint8_t *bytes = tokenizer_token_bytes(tok, id, &len);
    if (!bytes || stream->n_pending > sizeof stream->pending) return -1;
    size_t total = stream->n_pending + len;
    if (total > out_cap || total > INT_MAX) return -1;

    memcpy(out, stream->pending, stream->n_pending);
    memcpy(out + stream->n_pending, bytes, len);
    size_t held = incomplete_tail((const uint8_t *)out, total);
    memcpy(stream->pending, out + total - held, held);
    stream->n_pending = held;
    return (int)(total - held);
}

size_t tokenizer_stream_flush(tokenizer_stream *stream, char *out) {
    size_t n = stream->n_pending <= sizeof stream->pending ? stream->n_pending : 0;
    memcpy(out, stream->pending, n);
    stream->n_pending = 0;
    return n;
}
