/*
 * Writes a synthetic checkpoint (model/synthetic.h) for the command-line tests.
 * usage: write_synthetic DIR N_LAYER N_HEAD N_POSITIONS VOCAB_SIZE SEED
 */
#include <stdio.h>
#include <stdlib.h>

#include "model/synthetic.h"

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: %s DIR N_LAYER N_HEAD N_POSITIONS VOCAB_SIZE SEED\n", argv[0]);
        return EXIT_FAILURE;
    }
    gpt2_config config = {.n_layer = atoi(argv[2]),
                          .n_head = atoi(argv[3]),
                          .n_embd = atoi(argv[3]) * GPT2_HEAD_SIZE,
                          .n_positions = atoi(argv[4]),
                          .vocab_size = atoi(argv[5]),
                          .layer_norm_eps = 1e-5f};
    char err[GPT2_ERR_LEN];
    if (synthetic_checkpoint_write(argv[1], &config, strtoull(argv[6], NULL, 10), err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        return EXIT_FAILURE;
    }
    return EXIT_SUCCESS;
}
