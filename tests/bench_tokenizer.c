/*
 * Encoding speed on one file: best of several runs, in MB/s (10^6 bytes of input per second of
 * CLOCK_MONOTONIC time), special tokens off as in tiktoken's encode_ordinary. Not a test.
 * tests/tiktoken/bench.sh runs it beside tiktoken on the same file.
 *
 * Usage: bench_tokenizer FILE [RUNS]
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "tests/test_util.h"
#include "tokenizer/tokenizer.h"

static double now_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s FILE [RUNS]\n", argv[0]);
        return EXIT_FAILURE;
    }
    int runs = argc == 3 ? atoi(argv[2]) : 5;
    size_t len = 0;
    char *text = read_whole_file(argv[1], &len);
    if (!text || runs < 1) {
        fprintf(stderr, "%s: cannot read (or RUNS < 1)\n", argv[1]);
        return EXIT_FAILURE;
    }

    double start = now_seconds();
    tokenizer *tok = tokenizer_create();
    double create_ms = 1e3 * (now_seconds() - start);
    if (!tok) {
        fprintf(stderr, "tokenizer_create failed\n");
        return EXIT_FAILURE;
    }

    double best = 1e30;
    size_t n_tokens = 0;
    for (int run = 0; run < runs; run++) {
        token_ids ids = {0};
        start = now_seconds();
        int status = tokenizer_encode(tok, text, len, false, &ids);
        double seconds = now_seconds() - start;
        if (status != 0) {
            fprintf(stderr, "encode failed\n");
            return EXIT_FAILURE;
        }
        if (seconds < best) best = seconds;
        n_tokens = ids.len;
        token_ids_free(&ids);
    }
    printf("encode: %.1f MB/s (best of %d, %.3f s), %zu bytes -> %zu tokens; create %.1f ms\n",
           (double)len / best / 1e6, runs, best, len, n_tokens, create_ms);

    tokenizer_destroy(tok);
    free(text);
    return EXIT_SUCCESS;
}
