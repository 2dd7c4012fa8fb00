/*
 * libFuzzer harness for --prompts files (prompt_list_parse in tools/prompts.c): one prompt per
 * line. An oracle written here independently, as a byte-by-byte state machine that holds a '\r'
 * back until it sees what follows, says where each line starts and how long it is; the parser
 * must agree exactly (count, every view's offset and length). Past PROMPTS_MAX lines it must
 * fail with one line in err instead (out of reach at the sizes run.sh fuzzes with).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tools/prompts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * The oracle: the lines of data[0, size) go to start[0..count) and len[0..count) (room for
 * size + 1). One pass, one byte at a time: `open` says a line has begun, `held` that a '\r' was
 * read and not yet counted as text (a '\n' next drops it; anything else, or the end, keeps it).
 */
static size_t oracle(const uint8_t *data, size_t size, size_t *start, size_t *len) {
    size_t count = 0, line_len = 0;
    bool open = false, held = false;
    for (size_t i = 0; i < size; i++) {
        if (!open) {
            start[count] = i;
            line_len = 0;
            open = true;
        }
        const uint8_t c = data[i];
        if (c == '\n') {
            len[count++] = line_len; /* a held '\r' is dropped */
            open = held = false;
            continue;
        }
        if (held) line_len++; /* the '\r' held back was text after all */
        held = c == '\r';
        if (!held) line_len++;
    }
    if (open) len[count++] = line_len + (held ? 1 : 0);
    return count;
}

static void check(const uint8_t *data, size_t size, size_t *start, size_t *len) {
    const size_t count = oracle(data, size, start, len);
    char err[256] = "";
    prompt_list list;
    const int rc = prompt_list_parse(&list, (const char *)data, size, err, sizeof err);
    if (count > PROMPTS_MAX) {
        if (rc != -1 || list.count != 0 || err[0] == '\0' || strchr(err, '\n')) abort();
        return;
    }
    if (rc != 0 || list.count < 0 || (size_t)list.count != count) abort();
    for (size_t i = 0; i < count; i++)
        if (list.text[i] != (const char *)data + start[i] || list.len[i] != len[i]) abort();
    prompt_list_free(&list);
    if (list.count != 0 || list.text || list.len) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    size_t *start = malloc((size + 1) * sizeof *start);
    size_t *len = malloc((size + 1) * sizeof *len);
    if (start && len) check(data, size, start, len);
    free(start);
    free(len);
    return 0;
}
