/* Reads the golden-logit fixtures described in tests/fixtures/fixtures.py. */
#ifndef GPT2_TEST_GOLDEN_H
#define GPT2_TEST_GOLDEN_H

#include <stdint.h>

#include "model/checkpoint.h"

typedef struct {
    char oracle[256];
    gpt2_config config;
    uint64_t seed;
    int n_tokens;
    int32_t *tokens;   /* [n_tokens] */
    int n_positions;
    int32_t *positions; /* [n_positions] */
    float *logits;     /* [n_positions, vocab_size] */
} golden_fixture;

/* Loads fixture_dir/NAME.txt and NAME.logits.f32. Returns 0, or -1 after printing why. */
int golden_load(golden_fixture *g, const char *fixture_dir, const char *name);
void golden_free(golden_fixture *g);

/* Writes the fixture's synthetic checkpoint into a new temp dir (path into dir_out, 64 bytes). */
int golden_write_checkpoint(const golden_fixture *g, char *dir_out);
/* Removes the files golden_write_checkpoint made and the dir. */
void golden_remove_checkpoint(const char *dir);

/* max |a - b| / max |ref| over n values: the relative error the tests bound. */
double relative_error(const float *a, const float *ref, int n);

#endif
