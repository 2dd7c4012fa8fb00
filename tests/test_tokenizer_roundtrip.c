/*
 * Properties that hold for any input, checked on many seeded random byte strings (invalid UTF-8
 * included): decode(encode(x)) == x in both special-token modes; every id is in range; the
 * streaming decoder's output, concatenated, equals the plain decode and, for well-formed text,
 * breaks only between characters. Also: out-of-range ids are rejected, and encode appends.
 */
#include <string.h>

#include "check.h"
#include "tokenizer/tokenizer.h"

#define N_TEXTS 3000
#define MAX_TEXT_LEN 3000

static uint64_t rng_state = 0x853C49E6748FEA9Bu;

static uint32_t next_random(void) { /* xorshift64* */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545F4914F6CDD1Du) >> 32);
}

static uint32_t random_below(uint32_t n) { return next_random() % n; }

static size_t append_utf8(uint8_t *out, uint32_t cp) {
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | cp >> 6);
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | cp >> 12);
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | cp >> 18);
    out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* A well-formed character, mostly ASCII, with every plane represented. */
static uint32_t random_code_point(void) {
    static const uint32_t ascii_heavy[] = {' ', ' ', '\n', '\'', 's', 't', '1', '.', '<', '|'};
    switch (random_below(6)) {
    case 0: return ascii_heavy[random_below(sizeof ascii_heavy / sizeof ascii_heavy[0])];
    case 1: return 0x20 + random_below(0x5F);
    case 2: return random_below(0x80);
    case 3: return 0x80 + random_below(0x780);
    case 4: {
        uint32_t cp = 0x800 + random_below(0x10000 - 0x800);
        return cp >= 0xD800 && cp <= 0xDFFF ? 0x3000 : cp;
    }
    default: return 0x10000 + random_below(0x100000);
    }
}

typedef enum { UNIFORM_BYTES, WELL_FORMED, MOSTLY_WELL_FORMED, WITH_END_OF_TEXT } text_kind;

/* Fills text with a random string of the kind; returns its length. */
static size_t random_text(uint8_t *text, size_t max_len, text_kind kind) {
    /* Stops within 16 bytes of max_len: the longest step adds 13. */
    uint32_t room = (uint32_t)(max_len - 16);
    size_t len = 0, target = random_below(5) == 0 ? random_below(8) : random_below(room);
    while (len < target) {
        if (kind == UNIFORM_BYTES) {
            text[len++] = (uint8_t)random_below(256);
        } else if (kind == MOSTLY_WELL_FORMED && random_below(16) == 0) {
            text[len++] = (uint8_t)(0x80 + random_below(0x80)); /* a stray or cut-short byte */
        } else if (kind == WITH_END_OF_TEXT && random_below(40) == 0) {
            memcpy(text + len, "<|endoftext|>", 13);
            len += 13;
        } else {
            len += append_utf8(text + len, random_code_point());
        }
    }
    return len;
}

/*
 * Decodes ids through the streaming decoder into out. With a well-formed expected text, also
 * checks that every chunk ends between two of its characters.
 */
static size_t stream_decode(const tokenizer *tok, const token_ids *ids,
                            const uint8_t *well_formed_text, size_t text_len, char *out) {
    tokenizer_stream stream = {0};
    size_t len = 0;
    char chunk[4096];
    for (size_t i = 0; i < ids->len; i++) {
        int n = tokenizer_stream_push(tok, &stream, ids->ids[i], chunk, sizeof chunk);
        CHECK(n >= 0, "stream_push failed on id %d", (int)ids->ids[i]);
        if (n < 0) return len;
        CHECK(stream.n_pending <= 3, "%zu bytes held back", stream.n_pending);
        memcpy(out + len, chunk, (size_t)n);
        len += (size_t)n;
        if (well_formed_text)
            CHECK(len >= text_len || (well_formed_text[len] & 0xC0) != 0x80,
                  "a chunk ends inside a character, at byte %zu", len);
    }
    len += tokenizer_stream_flush(&stream, out + len);
    return len;
}

static void check_round_trip(const tokenizer *tok, const uint8_t *text, size_t len,
                             bool allow_special, bool well_formed) {
    token_ids ids = {0};
    CHECK(tokenizer_encode(tok, (const char *)text, len, allow_special, &ids) == 0,
          "encode failed");
    for (size_t i = 0; i < ids.len; i++)
        CHECK(ids.ids[i] >= 0 && ids.ids[i] < TOKENIZER_VOCAB_SIZE, "id %d out of range",
              (int)ids.ids[i]);
    if (!allow_special)
        for (size_t i = 0; i < ids.len; i++)
            CHECK(ids.ids[i] != TOKENIZER_EOT_ID, "special token without allow_special");

    char *decoded = NULL;
    size_t decoded_len = 0, bad = 0;
    CHECK(tokenizer_decode(tok, ids.ids, ids.len, &decoded, &decoded_len, &bad) == 0,
          "decode failed");
    CHECK(decoded && decoded_len == len && memcmp(decoded, text, len) == 0 &&
              decoded[decoded_len] == '\0',
          "decode(encode(x)) != x for a text of %zu bytes", len);

    static char streamed[MAX_TEXT_LEN + 64];
    size_t streamed_len = stream_decode(tok, &ids, well_formed ? text : NULL, len, streamed);
    CHECK(streamed_len == decoded_len && memcmp(streamed, decoded, decoded_len) == 0,
          "streamed decode differs from decode");
    free(decoded);
    token_ids_free(&ids);
}

static void check_random_texts(const tokenizer *tok) {
    static uint8_t text[MAX_TEXT_LEN];
    for (int i = 0; i < N_TEXTS; i++) {
        text_kind kind = (text_kind)(i % 4);
        size_t len = random_text(text, sizeof text, kind);
        bool well_formed = kind == WELL_FORMED || kind == WITH_END_OF_TEXT;
        check_round_trip(tok, text, len, false, well_formed);
        check_round_trip(tok, text, len, true, well_formed);
    }
}

/* Random ids (special token included) decode the same whole and streamed. */
static void check_random_ids(const tokenizer *tok) {
    static char streamed[64 * 256];
    for (int round = 0; round < 500; round++) {
        token_ids ids = {0};
        int32_t buf[64];
        ids.ids = buf;
        ids.len = random_below(64);
        for (size_t i = 0; i < ids.len; i++)
            buf[i] = (int32_t)(random_below(4) == 0 ? random_below(256)
                                                     : random_below(TOKENIZER_VOCAB_SIZE));
        char *decoded = NULL;
        size_t decoded_len = 0, bad = 0;
        CHECK(tokenizer_decode(tok, buf, ids.len, &decoded, &decoded_len, &bad) == 0,
              "decode failed");
        size_t streamed_len = stream_decode(tok, &ids, NULL, 0, streamed);
        CHECK(decoded && streamed_len == decoded_len &&
                  memcmp(streamed, decoded, decoded_len) == 0,
              "streamed decode of random ids differs from decode");
        free(decoded);
    }
}

static void check_out_of_range_ids(const tokenizer *tok) {
    const int32_t bad_ids[] = {-1, TOKENIZER_VOCAB_SIZE, INT32_MAX, INT32_MIN};
    for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
        int32_t ids[3] = {31373, 995, bad_ids[i]};
        char *text = (char *)"untouched";
        size_t len = 99, bad = 99;
        CHECK(tokenizer_decode(tok, ids, 3, &text, &len, &bad) == -1 && bad == 2 && !text &&
                  len == 0,
              "decode accepted id %d", (int)bad_ids[i]);

        tokenizer_stream stream = {0};
        char out[64];
        CHECK(tokenizer_stream_push(tok, &stream, bad_ids[i], out, sizeof out) == -1,
              "stream_push accepted id %d", (int)bad_ids[i]);
    }
    /* A buffer shorter than the token plus what is held back. */
    tokenizer_stream stream = {0};
    char out[64];
    size_t len;
    tokenizer_token_bytes(tok, 31373, &len);
    CHECK(tokenizer_stream_push(tok, &stream, 31373, out, len - 1) == -1, "short buffer");
    CHECK(tokenizer_stream_push(tok, &stream, 31373, out, len) == (int)len, "exact buffer");
}

static void check_stream_holds_back(const tokenizer *tok) {
    /* "€" is three bytes; pushing its single-byte tokens releases it only when complete. */
    static const uint8_t euro[3] = {0xE2, 0x82, 0xAC};
    tokenizer_stream stream = {0};
    char out[16];
    token_ids ids = {0};
    for (int i = 0; i < 3; i++) {
        CHECK(tokenizer_encode(tok, (const char *)&euro[i], 1, false, &ids) == 0, "encode");
        int n = tokenizer_stream_push(tok, &stream, ids.ids[i], out, sizeof out);
        CHECK(n == (i < 2 ? 0 : 3), "after byte %d of a 3-byte character: %d released", i, n);
    }
    CHECK(memcmp(out, euro, 3) == 0 && stream.n_pending == 0, "the character comes out whole");
    /* A cut-short character is flushed as it is at the end. */
    CHECK(tokenizer_stream_push(tok, &stream, ids.ids[0], out, sizeof out) == 0, "held");
    CHECK(tokenizer_stream_flush(&stream, out) == 1 && (uint8_t)out[0] == 0xE2, "flushed");
    token_ids_free(&ids);
}

static void check_encode_appends(const tokenizer *tok) {
    token_ids ids = {0}, hello = {0};
    CHECK(tokenizer_encode(tok, "Hello", 5, false, &hello) == 0, "encode");
    CHECK(tokenizer_encode(tok, "Hello", 5, false, &ids) == 0, "encode");
    CHECK(tokenizer_encode(tok, "Hello", 5, false, &ids) == 0, "encode");
    CHECK(ids.len == 2 * hello.len && memcmp(ids.ids + hello.len, hello.ids,
                                             hello.len * sizeof *ids.ids) == 0,
          "a second encode appends");
    CHECK(tokenizer_encode(tok, NULL, 0, true, &ids) == 0 && ids.len == 2 * hello.len,
          "an empty text adds nothing");
    token_ids_free(&ids);
    token_ids_free(&hello);
}

int main(void) {
    tokenizer *tok = tokenizer_create();
    if (!tok) {
        fprintf(stderr, "tokenizer_create failed\n");
        return EXIT_FAILURE;
    }
    check_random_texts(tok);
    check_random_ids(tok);
    check_out_of_range_ids(tok);
    check_stream_holds_back(tok);
    check_encode_appends(tok);
    printf("%d random texts round-tripped in both special-token modes\n", N_TEXTS);
    tokenizer_destroy(tok);
    return check_finish("test_tokenizer_roundtrip");
}
