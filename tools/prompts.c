#include "tools/prompts.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Lines in bytes[0, n): one per '\n', plus an unterminated last one. */
static size_t count_lines(const char *bytes, size_t n) {
    size_t lines = 0;
    for (const char *p = bytes, *end = bytes + n; p < end; lines++) {
        const char *newline = memchr(p, '\n', (size_t)(end - p));
        p = newline ? newline + 1 : end;
    }
    return lines;
}

int prompt_list_parse(prompt_list *out, const char *bytes, size_t n, char *err, size_t err_len) {
    *out = (prompt_list){0};
    const size_t lines = count_lines(bytes, n);
    if (lines > PROMPTS_MAX)
        return snprintf(err, err_len, "%zu lines, more than the %d prompts one run takes", lines,
                        PROMPTS_MAX), -1;
    if (lines == 0) return 0;
    out->text = malloc(lines * sizeof *out->text);
    out->len = malloc(lines * sizeof *out->len);
    if (!out->text || !out->len) {
        prompt_list_free(out);
        return snprintf(err, err_len, "out of memory for %zu prompts", lines), -1;
    }
    for (const char *p = bytes, *end = bytes + n; p < end; out->count++) {
        const char *newline = memchr(p, '\n', (size_t)(end - p));
        size_t len = (size_t)((newline ? newline : end) - p);
        if (newline && len > 0 && p[len - 1] == '\r') len--;
        out->text[out->count] = p;
        out->len[out->count] = len;
        p = newline ? newline + 1 : end;
    }
    return 0;
}

void prompt_list_free(prompt_list *list) {
    free(list->text);
    free(list->len);
    *list = (prompt_list){0};
}
