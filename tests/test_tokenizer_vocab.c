/*
 * The vocabulary compiled into the library against OpenAI's weights/encoder.json: every entry
 * there (token string -> id) must name exactly the bytes that tokenizer_token_bytes returns, and
 * together they must cover every id once.
 *
 * Usage: test_tokenizer_vocab ENCODER_JSON
 */
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "test_tokenizer_json.h"
#include "tokenizer/tokenizer.h"

/*
 * GPT-2's bytes_to_unicode, inverted: encoder.json writes each byte as one character, a
 * printable byte as itself and the n-th other byte as U+0100 + n.
 */
static void build_byte_of_char(int byte_of_char[512]) {
    for (int c = 0; c < 512; c++) byte_of_char[c] = -1;
    int n_other = 0;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
        byte_of_char[printable ? b : 256 + n_other++] = b;
    }
}

/* Turns the UTF-8 of an encoder.json key into the token bytes it stands for, in place. */
static bool key_to_bytes(byte_buffer *key, const int byte_of_char[512]) {
    size_t out = 0;
    for (size_t i = 0; i < key->len;) {
        uint8_t b = key->bytes[i];
        int c;
        if (b < 0x80) {
            c = b;
            i += 1;
        } else if ((b & 0xE0) == 0xC0 && i + 1 < key->len) {
            c = ((b & 0x1F) << 6) | (key->bytes[i + 1] & 0x3F);
            i += 2;
        } else {
            return false;
        }
        if (c >= 512 || byte_of_char[c] < 0) return false;
        key->bytes[out++] = (uint8_t)byte_of_char[c];
    }
    key->len = out;
    return true;
}

static void check_entries(const tokenizer *tok, json_cursor *c, int *n_entries) {
    static bool seen[TOKENIZER_VOCAB_SIZE];
    int byte_of_char[512];
    build_byte_of_char(byte_of_char);
    byte_buffer key = {0};
    CHECK(json_accept(c, '{'), "encoder.json does not open with {");
    do {
        long id;
        if (!json_string(c, &key) || !json_accept(c, ':') || !json_int(c, &id)) {
            CHECK(false, "malformed entry after %d entries", *n_entries);
            break;
        }
        (*n_entries)++;
        CHECK(key_to_bytes(&key, byte_of_char), "entry %ld: a character outside the alphabet",
              id);
        size_t len;
        const uint8_t *bytes = tokenizer_token_bytes(tok, (int32_t)id, &len);
        CHECK(bytes && len == key.len && memcmp(bytes, key.bytes, len) == 0,
              "id %ld: the compiled token differs from encoder.json", id);
        if (id >= 0 && id < TOKENIZER_VOCAB_SIZE) {
            CHECK(!seen[id], "id %ld appears twice", id);
            seen[id] = true;
        }
    } while (json_accept(c, ','));
    CHECK(json_accept(c, '}'), "encoder.json does not close with }");
    byte_buffer_free(&key);
}

static void check_out_of_range(const tokenizer *tok) {
    const int32_t bad[] = {-1, TOKENIZER_VOCAB_SIZE, INT32_MAX, INT32_MIN};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        size_t len = 123;
        CHECK(tokenizer_token_bytes(tok, bad[i], &len) == NULL && len == 0,
              "id %d should be out of range", (int)bad[i]);
    }
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s ENCODER_JSON\n", argv[0]);
        return EXIT_FAILURE;
    }
    size_t len;
    char *json = read_whole_file(argv[1], &len);
    if (!json) {
        fprintf(stderr, "%s: cannot read\n", argv[1]);
        return EXIT_FAILURE;
    }
    tokenizer *tok = tokenizer_create();
    if (!tok) {
        fprintf(stderr, "tokenizer_create failed\n");
        return EXIT_FAILURE;
    }

    json_cursor c = {json, json + len};
    int n_entries = 0;
    check_entries(tok, &c, &n_entries);
    CHECK(n_entries == TOKENIZER_VOCAB_SIZE, "%d entries, expected %d", n_entries,
          TOKENIZER_VOCAB_SIZE);
    check_out_of_range(tok);
    printf("encoder.json: %d entries compared\n", n_entries);

    tokenizer_destroy(tok);
    free(json);
    return check_finish("test_tokenizer_vocab");
}
