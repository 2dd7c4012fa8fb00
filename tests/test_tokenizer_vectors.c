/*
 * Encodes every case of tests/tiktoken/edge_cases.jsonl (ids made by tiktoken, see
 * make_edge_cases.mjs there) and compares the ids one by one; decoding the ids must give the
 * text back.
 *
 * Usage: test_tokenizer_vectors EDGE_CASES_JSONL
 */
#include <string.h>

#include "check.h"
#include "test_tokenizer_json.h"
#include "tokenizer/tokenizer.h"

/* Prints a text with everything outside printable ASCII escaped. */
static void print_escaped(FILE *f, const uint8_t *text, size_t len) {
    const size_t shown = len < 200 ? len : 200;
    fputc('"', f);
    for (size_t i = 0; i < shown; i++) {
        if (text[i] >= 0x20 && text[i] < 0x7F && text[i] != '"' && text[i] != '\\')
            fputc(text[i], f);
        else
            fprintf(f, "\\x%02x", text[i]);
    }
    fprintf(f, "%s\"", shown < len ? "..." : "");
}

static void print_ids(FILE *f, const char *label, const int32_t *ids, size_t n) {
    fprintf(f, "  %s (%zu):", label, n);
    for (size_t i = 0; i < n && i < 40; i++) fprintf(f, " %d", (int)ids[i]);
    fprintf(f, "%s\n", n > 40 ? " ..." : "");
}

typedef struct {
    byte_buffer text;
    bool special;
    int32_t *ids;
    size_t n_ids, cap_ids;
} edge_case;

/* Reads {"text": ..., "special": ..., "ids": [...]} from one line. */
static bool read_case(json_cursor *c, edge_case *ec) {
    byte_buffer name = {0};
    bool ok = json_accept(c, '{') && json_string(c, &name) && json_accept(c, ':') &&
              json_string(c, &ec->text) && json_accept(c, ',') && json_string(c, &name) &&
              json_accept(c, ':') && json_bool(c, &ec->special) && json_accept(c, ',') &&
              json_string(c, &name) && json_accept(c, ':') && json_accept(c, '[');
    byte_buffer_free(&name);
    ec->n_ids = 0;
    if (!ok) return false;
    if (json_accept(c, ']')) return json_accept(c, '}');
    do {
        long id;
        if (!json_int(c, &id)) return false;
        if (ec->n_ids == ec->cap_ids) {
            size_t cap = ec->cap_ids ? 2 * ec->cap_ids : 64;
            int32_t *grown = realloc(ec->ids, cap * sizeof *grown);
            if (!grown) return false;
            ec->ids = grown;
            ec->cap_ids = cap;
        }
        ec->ids[ec->n_ids++] = (int32_t)id;
    } while (json_accept(c, ','));
    return json_accept(c, ']') && json_accept(c, '}');
}

/* Returns whether the case passed. */
static bool check_case(const tokenizer *tok, const edge_case *ec, int line) {
    token_ids got = {0};
    int status = tokenizer_encode(tok, (const char *)ec->text.bytes, ec->text.len, ec->special,
                                  &got);
    bool same = status == 0 && got.len == ec->n_ids &&
                (got.len == 0 || memcmp(got.ids, ec->ids, got.len * sizeof *got.ids) == 0);
    CHECK(same, "line %d: the ids differ from tiktoken's", line);
    if (!same) {
        fprintf(stderr, "  text (special=%d): ", ec->special);
        print_escaped(stderr, ec->text.bytes, ec->text.len);
        fputc('\n', stderr);
        print_ids(stderr, "tiktoken", ec->ids, ec->n_ids);
        print_ids(stderr, "ours    ", got.ids, got.len);
    }

    char *text = NULL;
    size_t text_len = 0, bad = 0;
    bool round_trip = tokenizer_decode(tok, ec->ids, ec->n_ids, &text, &text_len, &bad) == 0 &&
                      text_len == ec->text.len &&
                      (text_len == 0 || memcmp(text, ec->text.bytes, text_len) == 0);
    CHECK(round_trip, "line %d: decoding tiktoken's ids does not give the text", line);
    free(text);
    token_ids_free(&got);
    return same && round_trip;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s EDGE_CASES_JSONL\n", argv[0]);
        return EXIT_FAILURE;
    }
    size_t len;
    char *jsonl = read_whole_file(argv[1], &len);
    if (!jsonl) {
        fprintf(stderr, "%s: cannot read\n", argv[1]);
        return EXIT_FAILURE;
    }
    tokenizer *tok = tokenizer_create();
    if (!tok) {
        fprintf(stderr, "tokenizer_create failed\n");
        return EXIT_FAILURE;
    }

    edge_case ec = {0};
    int n_cases = 0, n_passed = 0;
    json_cursor c = {jsonl, jsonl + len};
    for (int line = 1; !json_at_end(&c); line++) {
        if (!read_case(&c, &ec)) {
            CHECK(false, "line %d: malformed case", line);
            break;
        }
        n_cases++;
        n_passed += check_case(tok, &ec, line);
    }
    CHECK(n_cases > 0, "no cases read");
    printf("edge cases: %d of %d match tiktoken\n", n_passed, n_cases);

    byte_buffer_free(&ec.text);
    free(ec.ids);
    tokenizer_destroy(tok);
    free(jsonl);
    return check_finish("test_tokenizer_vectors");
}
