/*
 * launch_find_nonfinite against a plain C scan: rows of finite logits (huge ones included, and
 * -FLT_MAX) with a NaN, +inf or -inf planted in some, at the first, the last or a random index;
 * GPT-2's V = 50257 and small odd V; flags poisoned first, and a guard flag past the end.
 * Exits 77 where there is no CUDA device.
 */
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "kernels/cuda_check.h"
#include "kernels/kernels.h"
#include "model/sampler.h"
#include "tests/check.h"
#include "tests/gpu_test_util.h"

#define GUARD 0x5A5A5A5A

/* Row r: finite values in [-1e30, 1e30] with FLT_MAX and -FLT_MAX among them; every third row
 * clean, the others with one NaN, +inf or -inf at the start, the end or a random index. */
static void fill_row(float *row, int V, int r, uint64_t *rng) {
    for (int i = 0; i < V; i++) row[i] = (2.0f * sampler_next_uniform(rng) - 1.0f) * 1e30f;
    row[(int)(sampler_next_uniform(rng) * V)] = FLT_MAX;
    row[(int)(sampler_next_uniform(rng) * V)] = -FLT_MAX;
    if (r % 3 == 0) return;
    const float bad[] = {NAN, INFINITY, -INFINITY};
    const int where = r % 4 == 1 ? 0 : r % 4 == 2 ? V - 1 : (int)(sampler_next_uniform(rng) * V);
    row[where] = bad[(r / 3) % 3];
}

static int host_flag(const float *row, int V) {
    for (int i = 0; i < V; i++)
        if (!isfinite(row[i])) return 1;
    return 0;
}

static void check_rows(int V, int rows, uint64_t *rng) {
    const size_t n = (size_t)rows * V;
    float *logits = malloc(n * sizeof *logits);
    for (int r = 0; r < rows; r++) fill_row(logits + (size_t)r * V, V, r, rng);
    float *dev_logits = device_copy(logits, n * sizeof *logits);
    int32_t *flags = malloc((rows + 1) * sizeof *flags), *dev_flags;
    for (int r = 0; r <= rows; r++) flags[r] = GUARD;
    dev_flags = device_copy(flags, (rows + 1) * sizeof *flags);
    launch_find_nonfinite(dev_flags, dev_logits, rows, V, 0);
    CUDA_CHECK(cudaMemcpy(flags, dev_flags, (rows + 1) * sizeof *flags, cudaMemcpyDeviceToHost));
    int wrong = 0;
    for (int r = 0; r < rows; r++) wrong += flags[r] != host_flag(logits + (size_t)r * V, V);
    CHECK(wrong == 0, "V=%d: %d of %d rows flagged wrongly", V, wrong, rows);
    CHECK(flags[rows] == GUARD, "V=%d: the kernel wrote a flag past the end", V);
    CUDA_CHECK(cudaFree(dev_logits));
    CUDA_CHECK(cudaFree(dev_flags));
    free(logits);
    free(flags);
}

int main(void) {
    if (gpt2_cuda_device_count() == 0) {
        printf("test_nonfinite_gpu: no CUDA device, skipped\n");
        return SKIP_EXIT_CODE;
    }
    uint64_t rng = gpu_test_seed("test_nonfinite_gpu");
    check_rows(50257, 12, &rng);
    check_rows(1000, 12, &rng);
    check_rows(37, 24, &rng);
    check_rows(1, 6, &rng);
    return check_finish("test_nonfinite_gpu");
}
