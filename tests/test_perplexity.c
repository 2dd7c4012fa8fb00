/*
 * Sliding-window perplexity on the CPU backend against the independent oracle's value
 * (tests/fixtures/tiny.ppl.txt), plus argument checks.
 * usage: test_perplexity FIXTURE_DIR
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "model/cpu_model.h"
#include "model/perplexity.h"
#include "tests/check.h"
#include "tests/golden.h"

typedef struct {
    char oracle[256];
    int ctx, stride, n_tokens;
    int32_t ids[4096];
    double ppl;
    long long scored;
} ppl_fixture;

static int read_ppl_fixture(const char *dir, ppl_fixture *f) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tiny.ppl.txt", dir);
    FILE *in = fopen(path, "r");
    int ok = in && fscanf(in, "oracle %255[^\n]\n", f->oracle) == 1 &&
             fscanf(in, "ctx %d\nstride %d\ntokens %d", &f->ctx, &f->stride, &f->n_tokens) == 3 &&
             f->n_tokens > 0 && f->n_tokens <= 4096;
    for (int i = 0; ok && i < f->n_tokens; i++) ok = fscanf(in, "%" SCNd32, &f->ids[i]) == 1;
    ok = ok && fscanf(in, " ppl %lf n_tokens %lld", &f->ppl, &f->scored) == 2;
    if (in) fclose(in);
    if (!ok) fprintf(stderr, "%s: cannot read\n", path);
    return ok ? 0 : -1;
}

static void check_ppl(cpu_model *model, const ppl_fixture *f) {
    char err[GPT2_ERR_LEN];
    perplexity_result r;
    int rc = perplexity_sliding_window(f->ids, (size_t)f->n_tokens, f->ctx, f->stride,
                                       model->config.vocab_size, cpu_model_forward_sequence,
                                       model, &r, err, sizeof err);
    CHECK(rc == 0, "%s", err);
    if (rc != 0) return;
    double rel = fabs(r.ppl - f->ppl) / f->ppl;
    printf("ppl %.6f vs %s %.6f (relative error %.2g), %lld tokens, %d windows\n", r.ppl,
           f->oracle, f->ppl, rel, r.tokens, r.windows);
    CHECK(rel <= 1e-5, "ppl %.8f differs from the oracle's %.8f", r.ppl, f->ppl);
    CHECK(r.tokens == f->scored, "scored %lld tokens, the oracle %lld", r.tokens, f->scored);
}

static void check_rejects_bad_arguments(cpu_model *model, const ppl_fixture *f) {
    char err[GPT2_ERR_LEN];
    perplexity_result r;
    const int V = model->config.vocab_size;
    CHECK(perplexity_sliding_window(f->ids, 1, 8, 4, V, cpu_model_forward_sequence, model, &r,
                                    err, sizeof err) == -1, "one token accepted");
    CHECK(perplexity_sliding_window(f->ids, 10, 8, 9, V, cpu_model_forward_sequence, model, &r,
                                    err, sizeof err) == -1, "stride > ctx accepted");
    CHECK(perplexity_sliding_window(f->ids, 10, 8, 0, V, cpu_model_forward_sequence, model, &r,
                                    err, sizeof err) == -1, "stride 0 accepted");
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s FIXTURE_DIR\n", argv[0]);
        return EXIT_FAILURE;
    }
    static ppl_fixture f;
    golden_fixture g;
    char dir[64], err[GPT2_ERR_LEN];
    if (read_ppl_fixture(argv[1], &f) != 0 || golden_load(&g, argv[1], "tiny") != 0)
        return EXIT_FAILURE;
    gpt2_checkpoint ckpt;
    cpu_model model;
    CHECK(golden_write_checkpoint(&g, dir) == 0, "cannot write the checkpoint");
    CHECK(gpt2_checkpoint_open(&ckpt, dir, err, sizeof err) == 0, "%s", err);
    CHECK(cpu_model_create(&model, &ckpt, 0, KV_FORMAT_FP32, err, sizeof err) == 0, "%s", err);
    gpt2_checkpoint_close(&ckpt);
    golden_remove_checkpoint(dir);
    if (check_failures == 0) {
        check_ppl(&model, &f);
        check_rejects_bad_arguments(&model, &f);
        cpu_model_destroy(&model);
    }
    golden_free(&g);
    return check_finish("test_perplexity");
}
