#include "test_util.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

char *read_whole_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *data = NULL;
    size_t n = 0, cap = 0, got;
    do {
        if (n + 1 >= cap) {
            cap = cap ? cap * 2 : 1 << 16;
            char *grown = realloc(data, cap);
            if (!grown) {
                free(data);
                fclose(f);
                return NULL;
            }
            data = grown;
        }
        got = fread(data + n, 1, cap - n - 1, f);
        n += got;
    } while (got > 0);
    bool failed = ferror(f);
    fclose(f);
    if (failed) {
        free(data);
        return NULL;
    }
    data[n] = '\0';
    *len = n;
    return data;
}

char *read_file_argument(int argc, char **argv, const char *file_arg, size_t *len) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s %s\n", argc > 0 ? argv[0] : "test", file_arg);
        return NULL;
    }
    char *text = read_whole_file(argv[1], len);
    if (!text) fprintf(stderr, "%s: cannot read\n", argv[1]);
    return text;
}
