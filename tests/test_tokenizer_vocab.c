/*
 * The vocabulary compiled into the library against OpenAI's weights/encoder.json: every entry
 * there (token string -> id) must name exactly the bytes that tokenizer_token_bytes returns, and
 * together they must cover every id once.
 *
 * Usage: test_tokenizer_vocab ENCODER_JSON
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "model/json.h"
#include "test_util.h"
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

/*
 * Turns the UTF-8 of an encoder.json key into the token bytes it stands for. out has room for
 * key_len bytes (every character stands for one byte and takes at least one).
 */
static bool key_to_bytes(const char *key, size_t key_len, const int byte_of_char[512],
                         uint8_t *out, size_t *out_len) {
    const uint8_t *k = (const uint8_t *)key;
    size_t n = 0;
    for (size_t i = 0; i < key_len;) {
        int c;
        if (k[i] < 0x80) {
            c = k[i];
            i += 1;
        } else if ((k[i] & 0xE0) == 0xC0 && i + 1 < key_len) {
            c = ((k[i] & 0x1F) << 6) | (k[i + 1] & 0x3F);
            i += 2;
        } else {
            return false;
        }
        if (c >= 512 || byte_of_char[c] < 0) return false;
        out[n++] = (uint8_t)byte_of_char[c];
    }
    *out_len = n;
    return true;
}

/* Checks one entry (token string -> id) against the compiled vocabulary. */
static void check_entry(const tokenizer *tok, const json_member *m, const int byte_of_char[512],
                        bool seen[TOKENIZER_VOCAB_SIZE]) {
    char shown[64];
    int64_t id;
    if (!json_get_int64(&m->value, &id) || id < INT32_MIN || id > INT32_MAX) {
        CHECK(false, "entry \"%s\": the id is not a 32-bit integer",
              json_printable(m->key, m->key_len, shown, sizeof shown));
        return;
    }
    uint8_t *key = malloc(m->key_len ? m->key_len : 1);
    size_t key_len = 0;
    CHECK(key, "out of memory");
    if (!key) return;
    CHECK(key_to_bytes(m->key, m->key_len, byte_of_char, key, &key_len),
          "entry %" PRId64 ": a character outside the alphabet", id);
    size_t len;
    const uint8_t *bytes = tokenizer_token_bytes(tok, (int32_t)id, &len);
    CHECK(bytes && len == key_len && memcmp(bytes, key, len) == 0,
          "id %" PRId64 ": the compiled token differs from encoder.json", id);
    if (id >= 0 && id < TOKENIZER_VOCAB_SIZE) {
        CHECK(!seen[id], "id %" PRId64 " appears twice", id);
        seen[id] = true;
    }
    free(key);
}

/* Checks every member of encoder.json, in document order; returns how many there are. */
static size_t check_entries(const tokenizer *tok, const json_value *root) {
    static bool seen[TOKENIZER_VOCAB_SIZE];
    int byte_of_char[512];
    build_byte_of_char(byte_of_char);
    CHECK(root->type == JSON_OBJECT, "encoder.json holds a %s, not an object",
          json_type_name(root->type));
    size_t n = json_length(root);
    for (size_t i = 0; i < n; i++) check_entry(tok, &root->as.object.members[i], byte_of_char, seen);
    return n;
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
    size_t len;
    char *json = read_file_argument(argc, argv, "ENCODER_JSON", &len);
    if (!json) return EXIT_FAILURE;
    char err[256];
    json_document *doc = json_parse(json, len, err, sizeof err);
    CHECK(doc, "%s: %s", argv[1], err);
    tokenizer *tok = tokenizer_create();
    if (!tok) {
        fprintf(stderr, "tokenizer_create failed\n");
        return EXIT_FAILURE;
    }

    size_t n_entries = doc ? check_entries(tok, json_root(doc)) : 0;
    CHECK(n_entries == TOKENIZER_VOCAB_SIZE, "%zu entries, expected %d", n_entries,
          TOKENIZER_VOCAB_SIZE);
    check_out_of_range(tok);
    printf("encoder.json: %zu entries compared\n", n_entries);

    json_free(doc);
    tokenizer_destroy(tok);
    free(json);
    return check_finish("test_tokenizer_vocab");
}
