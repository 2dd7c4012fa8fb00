/*
 * launch_layernorm and launch_residual_layernorm on fresh random rows (with a random offset per
 * row, so the mean matters), outputs poisoned first, against cpu_layernorm (double statistics)
 * on the same fp16 inputs.
 *
 * Tolerance, per element, around the fp32 reference y = xhat * gamma + beta:
 *   e32 = 1e-5 * (|gamma| * (|xhat| + mean|x| / std) + |beta|)
 * covers the kernel's fp32 statistics (tree sums of at most 8 + 5 + 32 terms in a row, about
 * 2.7e-6 relative to mean|x|, and rsqrtf's 2 ulp) with a factor ~2 to spare; then the output's
 * rounding to fp16 adds half an ulp: |out - y| <= half_rounding_bound(|y| + e32) + e32.
 * The fused kernel's new residual must be fp16(residual + x) bit for bit. A guard vector past
 * each output must stay poisoned. Exits 77 where there is no CUDA device.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda_check.h"
#include "kernels/half.h"
#include "kernels/kernels.h"
#include "model/cpu_ops.h"
#include "model/sampler.h"
#include "tests/check.h"
#include "tests/gpu_test_util.h"
#include "tests/half_oracle.h"

#define GUARD 8
#define POISON 0xFFFF
#define EPS 1e-5f

typedef struct {
    int T, C;
    uint16_t *x, *residual, *gamma, *beta; /* host fp16: [T, C], [T, C], [C], [C] */
} case_data;

/* Random rows: values in [-2, 2] plus an offset per row in [-4, 4]; gamma near 1, beta small. */
static case_data make_case(int T, int C, uint64_t *rng) {
    case_data d = {.T = T, .C = C};
    d.x = random_halves((size_t)T * C, 2.0f, rng);
    d.residual = random_halves((size_t)T * C, 1.0f, rng);
    d.gamma = random_halves(C, 0.5f, rng);
    d.beta = random_halves(C, 0.5f, rng);
    for (int t = 0; t < T; t++) {
        const float offset = 8.0f * sampler_next_uniform(rng) - 4.0f;
        for (int c = 0; c < C; c++) {
            uint16_t *h = &d.x[(size_t)t * C + c];
            *h = float_to_half(half_to_float(*h) + offset);
        }
    }
    for (int c = 0; c < C; c++) d.gamma[c] = float_to_half(1.0f + half_to_float(d.gamma[c]));
    return d;
}

static void free_case(case_data *d) {
    free(d->x);
    free(d->residual);
    free(d->gamma);
    free(d->beta);
}

/* A device buffer of n fp16 values plus a guard, all poisoned, then `init` copied in (if any). */
static gpt2_f16 *poisoned_device(const uint16_t *init, size_t n) {
    gpt2_f16 *dev;
    CUDA_CHECK(cudaMalloc((void **)&dev, (n + GUARD) * 2));
    CUDA_CHECK(cudaMemset(dev, 0xFF, (n + GUARD) * 2));
    if (init) CUDA_CHECK(cudaMemcpy(dev, init, n * 2, cudaMemcpyHostToDevice));
    return dev;
}

/* n values and the guard back from the device; counts guard values that lost their poison. */
static uint16_t *download(const gpt2_f16 *dev, size_t n, int *guard_hit) {
    uint16_t *h = malloc((n + GUARD) * 2);
    CUDA_CHECK(cudaMemcpy(h, dev, (n + GUARD) * 2, cudaMemcpyDeviceToHost));
    *guard_hit = 0;
    for (int g = 0; g < GUARD; g++) *guard_hit += h[n + g] != POISON;
    return h;
}

/* Counts elements of got outside the tolerance around cpu_layernorm of `in` (fp16 rows). */
static int count_layernorm_errors(const uint16_t *got, const uint16_t *in, const case_data *d,
                                  double *worst) {
    const int T = d->T, C = d->C;
    float *x = halves_to_floats(in, (size_t)T * C), *gamma = halves_to_floats(d->gamma, C),
          *beta = halves_to_floats(d->beta, C), *ref = malloc((size_t)T * C * sizeof *ref);
    float *ones = malloc(C * sizeof *ones), *zeros = calloc(C, sizeof *zeros);
    float *xhat = malloc((size_t)T * C * sizeof *xhat);
    for (int c = 0; c < C; c++) ones[c] = 1.0f;
    cpu_layernorm(ref, x, gamma, beta, T, C, EPS);
    cpu_layernorm(xhat, x, ones, zeros, T, C, EPS);
    int bad = 0;
    for (int t = 0; t < T; t++) {
        double mean_abs = 0.0, mean = 0.0, var = 0.0;
        for (int c = 0; c < C; c++) mean += x[(size_t)t * C + c];
        mean /= C;
        for (int c = 0; c < C; c++) {
            const double v = x[(size_t)t * C + c];
            mean_abs += fabs(v);
            var += (v - mean) * (v - mean);
        }
        const double scale = mean_abs / C / sqrt(var / C + EPS);
        for (int c = 0; c < C; c++) {
            const size_t i = (size_t)t * C + c;
            const double e32 = 1e-5 * (fabs(gamma[c]) * (fabs(xhat[i]) + scale) + fabs(beta[c]));
            const double err = fabs((double)half_to_float(got[i]) - ref[i]);
            const double tol = half_rounding_bound(fabs(ref[i]) + e32) + e32;
            if (!(err <= tol)) bad++;
            if (err / tol > *worst || isnan(err)) *worst = err / tol;
        }
    }
    free(x);
    free(gamma);
    free(beta);
    free(ref);
    free(ones);
    free(zeros);
    free(xhat);
    return bad;
}

static void check_layernorm(int T, int C, int in_place, uint64_t *rng) {
    case_data d = make_case(T, C, rng);
    const size_t n = (size_t)T * C;
    gpt2_f16 *dev_x = poisoned_device(d.x, n), *dev_out = in_place ? dev_x : poisoned_device(NULL, n);
    gpt2_f16 *dev_gamma = device_copy(d.gamma, C * 2), *dev_beta = device_copy(d.beta, C * 2);
    launch_layernorm(dev_out, dev_x, dev_gamma, dev_beta, T, C, EPS, 0);
    int guard_hit;
    uint16_t *out = download(dev_out, n, &guard_hit);
    double worst = 0.0;
    const int bad = count_layernorm_errors(out, d.x, &d, &worst);
    CHECK(bad == 0, "layernorm T=%d C=%d%s: %d of %zu outside tolerance (worst %.2f x tol)", T, C,
          in_place ? " in place" : "", bad, n, worst);
    CHECK(guard_hit == 0, "layernorm T=%d C=%d: the kernel wrote past the end", T, C);
    if (!in_place) CUDA_CHECK(cudaFree(dev_out));
    CUDA_CHECK(cudaFree(dev_x));
    CUDA_CHECK(cudaFree(dev_gamma));
    CUDA_CHECK(cudaFree(dev_beta));
    free(out);
    free_case(&d);
}

/* normed_is_x: normed written over x (allowed by the launcher). */
static void check_residual_layernorm(int T, int C, int normed_is_x, uint64_t *rng) {
    case_data d = make_case(T, C, rng);
    const size_t n = (size_t)T * C;
    gpt2_f16 *dev_residual = poisoned_device(d.residual, n), *dev_x = poisoned_device(d.x, n);
    gpt2_f16 *dev_normed = normed_is_x ? dev_x : poisoned_device(NULL, n);
    gpt2_f16 *dev_gamma = device_copy(d.gamma, C * 2), *dev_beta = device_copy(d.beta, C * 2);
    launch_residual_layernorm(dev_residual, dev_normed, dev_x, dev_gamma, dev_beta, T, C, EPS, 0);
    int guard_residual, guard_normed;
    uint16_t *residual = download(dev_residual, n, &guard_residual);
    uint16_t *normed = download(dev_normed, n, &guard_normed);
    int wrong_residual = 0;
    for (size_t i = 0; i < n; i++)
        wrong_residual += residual[i] != float_to_half(half_to_float(d.residual[i]) + half_to_float(d.x[i]));
    double worst = 0.0;
    const int bad = count_layernorm_errors(normed, residual, &d, &worst);
    CHECK(wrong_residual == 0, "residual_layernorm T=%d C=%d: %d residuals differ from fp16(r + x)", T, C,
          wrong_residual);
    CHECK(bad == 0, "residual_layernorm T=%d C=%d%s: %d of %zu normed outside tolerance (worst %.2f x tol)",
          T, C, normed_is_x ? " (normed = x)" : "", bad, n, worst);
    CHECK(guard_residual == 0 && guard_normed == 0, "residual_layernorm T=%d C=%d: wrote past the end",
          T, C);
    if (!normed_is_x) CUDA_CHECK(cudaFree(dev_normed));
    CUDA_CHECK(cudaFree(dev_residual));
    CUDA_CHECK(cudaFree(dev_x));
    CUDA_CHECK(cudaFree(dev_gamma));
    CUDA_CHECK(cudaFree(dev_beta));
    free(residual);
    free(normed);
    free_case(&d);
}

int main(void) {
    if (gpt2_cuda_device_count() == 0) {
        printf("test_layernorm_gpu: no CUDA device, skipped\n");
        return SKIP_EXIT_CODE;
    }
    uint64_t rng = gpu_test_seed("test_layernorm_gpu");
    const int widths[] = {768, 1024, 1280, 1600, 8, 8192}; /* GPT-2's, and the smallest and largest C */
    const int rows[] = {1, 7, 64};
    for (size_t w = 0; w < sizeof widths / sizeof *widths; w++)
        for (size_t r = 0; r < sizeof rows / sizeof *rows; r++) {
            check_layernorm(rows[r], widths[w], 0, &rng);
            check_residual_layernorm(rows[r], widths[w], 0, &rng);
        }
    check_layernorm(5, 768, 1, &rng);
    check_residual_layernorm(3, 1600, 1, &rng);
    return check_finish("test_layernorm_gpu");
}
