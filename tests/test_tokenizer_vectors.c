/*
 * Encodes every case of tests/tiktoken/edge_cases.jsonl (ids made by tiktoken, see
 * make_edge_cases.mjs there) and compares the ids one by one; decoding the ids must give the
 * text back.
 *
 * Usage: test_tokenizer_vectors EDGE_CASES_JSONL
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "model/json.h"
#include "test_util.h"
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
    const char *text; /* in the line's document */
    size_t text_len;
    bool special;
    int32_t *ids;
    size_t n_ids;
} edge_case;

/*
 * Reads {"text": ..., "special": ..., "ids": [...]} (those three members and no other). On
 * success ec->ids is the caller's to free.
 */
static bool read_case(const json_value *obj, edge_case *ec) {
    const json_value *ids = json_object_get(obj, "ids");
    ec->text = json_get_string(json_object_get(obj, "text"), &ec->text_len);
    if (json_length(obj) != 3 || !ec->text ||
        !json_get_bool(json_object_get(obj, "special"), &ec->special) || !ids ||
        ids->type != JSON_ARRAY)
        return false;
    ec->n_ids = json_length(ids);
    ec->ids = malloc((ec->n_ids ? ec->n_ids : 1) * sizeof *ec->ids);
    if (!ec->ids) return false;
    for (size_t i = 0; i < ec->n_ids; i++) {
        int64_t id;
        if (!json_get_int64(json_array_at(ids, i), &id) || id < INT32_MIN || id > INT32_MAX) {
            free(ec->ids);
            ec->ids = NULL;
            return false;
        }
        ec->ids[i] = (int32_t)id;
    }
    return true;
}

/* Returns whether the case passed. */
static bool check_case(const tokenizer *tok, const edge_case *ec, int line) {
    token_ids got = {0};
    int status = tokenizer_encode(tok, ec->text, ec->text_len, ec->special, &got);
    bool same = status == 0 && got.len == ec->n_ids &&
                (got.len == 0 || memcmp(got.ids, ec->ids, got.len * sizeof *got.ids) == 0);
    CHECK(same, "line %d: the ids differ from tiktoken's", line);
    if (!same) {
        fprintf(stderr, "  text (special=%d): ", ec->special);
        print_escaped(stderr, (const uint8_t *)ec->text, ec->text_len);
        fputc('\n', stderr);
        print_ids(stderr, "tiktoken", ec->ids, ec->n_ids);
        print_ids(stderr, "ours    ", got.ids, got.len);
    }

    char *text = NULL;
    size_t text_len = 0, bad = 0;
    bool round_trip = tokenizer_decode(tok, ec->ids, ec->n_ids, &text, &text_len, &bad) == 0 &&
                      text_len == ec->text_len &&
                      (text_len == 0 || memcmp(text, ec->text, text_len) == 0);
    CHECK(round_trip, "line %d: decoding tiktoken's ids does not give the text", line);
    free(text);
    token_ids_free(&got);
    return same && round_trip;
}

int main(int argc, char **argv) {
    size_t len;
    char *jsonl = read_file_argument(argc, argv, "EDGE_CASES_JSONL", &len);
    if (!jsonl) return EXIT_FAILURE;
    tokenizer *tok = tokenizer_create();
    if (!tok) {
        fprintf(stderr, "tokenizer_create failed\n");
        return EXIT_FAILURE;
    }

    int n_cases = 0, n_passed = 0, line = 0;
    for (const char *p = jsonl, *end = jsonl + len; p < end;) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        const char *start = p;
        p = eol + (eol < end);
        line++;
        if (start + strspn(start, " \t\r") >= eol) continue; /* a blank line */
        char err[256];
        json_document *doc = json_parse(start, (size_t)(eol - start), err, sizeof err);
        edge_case ec = {0};
        if (!doc || !read_case(json_root(doc), &ec)) {
            CHECK(false, "line %d: malformed case%s%s", line, doc ? "" : ": ", doc ? "" : err);
        } else {
            n_cases++;
            n_passed += check_case(tok, &ec, line);
            free(ec.ids);
        }
        json_free(doc);
    }
    CHECK(n_cases > 0, "no cases read");
    printf("edge cases: %d of %d match tiktoken\n", n_passed, n_cases);

    tokenizer_destroy(tok);
    free(jsonl);
    return check_finish("test_tokenizer_vectors");
}
