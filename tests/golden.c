#include "tests/golden.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/synthetic.h"

static int read_int_list(FILE *f, const char *key, int *count, int32_t **values) {
    char word[32];
    if (fscanf(f, "%31s %d", word, count) != 2 || strcmp(word, key) != 0 || *count < 1) return -1;
    *values = malloc((size_t)*count * sizeof(int32_t));
    if (!*values) return -1;
    for (int i = 0; i < *count; i++)
        if (fscanf(f, "%" SCNd32, &(*values)[i]) != 1) return -1;
    return 0;
}

static int read_header(golden_fixture *g, FILE *f) {
    gpt2_config *c = &g->config;
    unsigned long long seed = 0;
    if (fscanf(f, "oracle %255[^\n]\n", g->oracle) != 1) return -1;
    if (fscanf(f, "config %d %d %d %d %d\n", &c->n_layer, &c->n_head, &c->n_embd,
               &c->n_positions, &c->vocab_size) != 5)
        return -1;
    if (fscanf(f, "seed %llu\n", &seed) != 1) return -1;
    c->layer_norm_eps = 1e-5f;
    g->seed = seed;
    if (read_int_list(f, "tokens", &g->n_tokens, &g->tokens) != 0) return -1;
    return read_int_list(f, "positions", &g->n_positions, &g->positions);
}

static int read_logits(golden_fixture *g, const char *path) {
    size_t n = (size_t)g->n_positions * (size_t)g->config.vocab_size;
    FILE *f = fopen(path, "rb");
    g->logits = malloc(n * sizeof(float));
    int ok = f && g->logits && fread(g->logits, sizeof(float), n, f) == n && fgetc(f) == EOF;
    if (f) fclose(f);
    return ok ? 0 : -1;
}

int golden_load(golden_fixture *g, const char *fixture_dir, const char *name) {
    char path[4096];
    *g = (golden_fixture){0};
    snprintf(path, sizeof path, "%s/%s.txt", fixture_dir, name);
    FILE *f = fopen(path, "r");
    int rc = f ? read_header(g, f) : -1;
    if (f) fclose(f);
    if (rc == 0) {
        snprintf(path, sizeof path, "%s/%s.logits.f32", fixture_dir, name);
        rc = read_logits(g, path);
    }
    if (rc != 0) {
        fprintf(stderr, "%s: cannot read golden fixture\n", path);
        golden_free(g);
    }
    return rc;
}

void golden_free(golden_fixture *g) {
    free(g->tokens);
    free(g->positions);
    free(g->logits);
    *g = (golden_fixture){0};
}

int golden_write_checkpoint(const golden_fixture *g, char *dir_out) {
    char err[GPT2_ERR_LEN];
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(dir_out, 64, "%.40s/gpt2-ckpt-XXXXXX", tmp);
    if (!mkdtemp(dir_out)) {
        perror("mkdtemp");
        return -1;
    }
    if (synthetic_checkpoint_write(dir_out, &g->config, g->seed, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        golden_remove_checkpoint(dir_out);
        return -1;
    }
    return 0;
}

void golden_remove_checkpoint(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    rmdir(dir);
}

double relative_error(const float *a, const float *ref, int n) {
    double max_diff = 0.0, max_ref = 0.0;
    for (int i = 0; i < n; i++) {
        double diff = fabs((double)a[i] - (double)ref[i]);
        if (!(diff <= max_diff)) max_diff = diff; /* NaN propagates as a failure */
        if (fabs((double)ref[i]) > max_ref) max_ref = fabs((double)ref[i]);
    }
    return max_ref > 0.0 ? max_diff / max_ref : max_diff;
}
