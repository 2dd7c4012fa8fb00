/*
 * libFuzzer harness for --ids lists (cli_parse_ids in tools/cli.c): token ids separated by
 * spaces, tabs, newlines, carriage returns or commas. An oracle written here independently says
 * which inputs are valid (every word all digits, below the vocabulary size) and which ids they
 * hold; the parser must agree exactly, for two vocabulary sizes. Errors print one line on stderr
 * (run it with -close_fd_mask=2 to keep them quiet).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tools/cli.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool separator(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ','; }

/* The oracle: true when data is a valid list for vocab; the ids go to expected[0..*count). */
static bool oracle(const uint8_t *data, size_t size, int vocab, int32_t *expected, size_t *count) {
    *count = 0;
    for (size_t i = 0; i < size;) {
        if (separator(data[i])) {
            i++;
            continue;
        }
        uint64_t value = 0;
        for (; i < size && !separator(data[i]); i++) {
            if (data[i] < '0' || data[i] > '9') return false;
            value = value * 10 + (data[i] - '0');
            if (value >= (uint64_t)vocab) value = (uint64_t)vocab; /* saturates: out of range */
        }
        if (value >= (uint64_t)vocab) return false;
        expected[(*count)++] = (int32_t)value;
    }
    return true;
}

static void check(const uint8_t *data, size_t size, int vocab, int32_t *expected) {
    size_t count;
    const bool valid = oracle(data, size, vocab, expected, &count);
    token_ids ids = {0};
    const int rc = cli_parse_ids("fuzz", (const char *)data, size, vocab, &ids);
    if ((rc == 0) != valid) abort();
    if (valid && (ids.len != count || (count && memcmp(ids.ids, expected, count * sizeof *expected))))
        abort();
    token_ids_free(&ids);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int32_t *expected = malloc((size / 2 + 1) * sizeof *expected); /* a word and a separator each */
    if (!expected) return 0;
    check(data, size, 50257, expected);
    check(data, size, 7, expected);
    free(expected);
    return 0;
}
