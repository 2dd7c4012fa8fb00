/*
 * Writes a synthetic checkpoint (model/synthetic.h) for tests and benchmarks.
 * usage: write_synthetic DIR N_LAYER N_HEAD N_POSITIONS VOCAB_SIZE SEED
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "model/synthetic.h"

/* A decimal integer in [min, max] filling the whole argument, or -1 after printing why. */
static long long parse_arg(const char *text, const char *what, long long min, long long max) {
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno || end == text || *end || v < min || v > max) {
        fprintf(stderr, "write_synthetic: %s '%s' is not an integer in [%lld, %lld]\n", what, text,
                min, max);
        return -1;
    }
    return v;
}

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s DIR N_LAYER N_HEAD N_POSITIONS VOCAB_SIZE SEED\n", argv[0]);
        return EXIT_FAILURE;
    }
    long long n_layer = parse_arg(argv[2], "N_LAYER", 1, 1024);
    long long n_head = parse_arg(argv[3], "N_HEAD", 1, 1024);
    long long n_positions = parse_arg(argv[4], "N_POSITIONS", 1, 1 << 20);
    long long vocab_size = parse_arg(argv[5], "VOCAB_SIZE", 1, 1 << 24);
    long long seed = parse_arg(argv[6], "SEED", 0, (1LL << 62));
    if (n_layer < 0 || n_head < 0 || n_positions < 0 || vocab_size < 0 || seed < 0)
        return EXIT_FAILURE;
    gpt2_config config = {.n_layer = (int)n_layer,
                          .n_head = (int)n_head,
                          .n_embd = (int)n_head * GPT2_HEAD_SIZE,
                          .n_positions = (int)n_positions,
                          .vocab_size = (int)vocab_size,
                          .layer_norm_eps = 1e-5f};
    char err[GPT2_ERR_LEN];
    if (synthetic_checkpoint_write(argv[1], &config, (uint64_t)seed, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return EXIT_FAILURE;
    }
    return EXIT_SUCCESS;
}
