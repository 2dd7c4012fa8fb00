/*
 * launch_gemv_f16 / launch_gemv_f32_out against model/cpu_ops (cpu_matmul_bias, cpu_gelu_tanh,
 * cpu_add_inplace) on fresh random fp16 inputs, for 1 to 8 rows and beyond (groups of 8), every
 * epilogue, GPT-2's real decode shapes and odd N (a tail block), with padded row strides; and
 * batch invariance (a row's bits do not depend on the rows beside it). Outputs are poisoned first and
 * the padding between rows must stay poisoned.
 *
 * Tolerance: both sides read the same fp16 inputs; the kernel sums in fp32 in another order than
 * the reference (relative error about K * 2^-24 of the sum of |terms|) and rounds the output to
 * fp16 (2^-11 relative), so |gpu - cpu| <= 2^-10 |cpu| + 1e-3 * sqrt(K / 768) on values whose
 * terms are products of numbers in [-1, 1].
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

#define STRIDE_PAD 8 /* halves of padding after every row of x, y and the residual */

/* ref[r, n] = epilogue(bias + x w^T) through cpu_ops, with w given output-major [N, K]. */
static float *reference(const float *x, int x_stride, const float *w, const float *bias,
                        const float *residual, int residual_stride, int rows, int K, int N,
                        linear_epilogue epilogue) {
    float *w_in_out = malloc((size_t)K * N * sizeof *w_in_out), *x_dense = malloc((size_t)rows * K * 4);
    float *ref = malloc((size_t)rows * N * sizeof *ref), *zero_bias = calloc((size_t)N, sizeof *zero_bias);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) w_in_out[(size_t)k * N + n] = w[(size_t)n * K + k];
    for (int r = 0; r < rows; r++) memcpy(x_dense + (size_t)r * K, x + (size_t)r * x_stride, (size_t)K * 4);
    cpu_matmul_bias(ref, x_dense, w_in_out, bias ? bias : zero_bias, rows, K, N);
    if (epilogue == LINEAR_GELU) cpu_gelu_tanh(ref, (size_t)rows * N);
    if (epilogue == LINEAR_RESIDUAL)
        for (int r = 0; r < rows; r++) cpu_add_inplace(ref + (size_t)r * N, residual + (size_t)r * residual_stride, (size_t)N);
    free(w_in_out), free(x_dense), free(zero_bias);
    return ref;
}

static int count_bad(const float *got, int got_stride, const float *ref, int rows, int K, int N) {
    const double abs_tol = 1e-3 * sqrt((double)K / 768.0);
    int bad = 0;
    for (int r = 0; r < rows; r++)
        for (int n = 0; n < N; n++) {
            const double err = fabs((double)got[(size_t)r * got_stride + n] - ref[(size_t)r * N + n]);
            if (!(err <= ldexp(fabs(ref[(size_t)r * N + n]), -10) + abs_tol)) bad++;
        }
    return bad;
}

static void check_f16(int rows, int K, int N, linear_epilogue epilogue, uint64_t *rng) {
    const int xs = K + STRIDE_PAD, ys = N + STRIDE_PAD;
    uint16_t *x = random_halves((size_t)rows * xs, 1.0f, rng), *w = random_halves((size_t)N * K, 1.0f, rng);
    uint16_t *bias = random_halves((size_t)N, 1.0f, rng), *res = random_halves((size_t)rows * ys, 4.0f, rng);
    gpt2_f16 *dx = device_copy(x, (size_t)rows * xs * 2), *dw = device_copy(w, (size_t)N * K * 2);
    gpt2_f16 *dbias = device_copy(bias, (size_t)N * 2), *dres = device_copy(res, (size_t)rows * ys * 2);
    gpt2_f16 *dy;
    CUDA_CHECK(cudaMalloc((void **)&dy, (size_t)rows * ys * 2));
    CUDA_CHECK(cudaMemset(dy, 0xFF, (size_t)rows * ys * 2));
    launch_gemv_f16(dy, ys, dx, xs, dw, dbias, dres, ys, rows, K, N, epilogue, 0);
    uint16_t *y = malloc((size_t)rows * ys * 2);
    CUDA_CHECK(cudaMemcpy(y, dy, (size_t)rows * ys * 2, cudaMemcpyDeviceToHost));

    float *xf = halves_to_floats(x, (size_t)rows * xs), *wf = halves_to_floats(w, (size_t)N * K);
    float *bf = halves_to_floats(bias, (size_t)N), *rf = halves_to_floats(res, (size_t)rows * ys), *yf = halves_to_floats(y, (size_t)rows * ys);
    float *ref = reference(xf, xs, wf, bf, rf, ys, rows, K, N, epilogue);
    const int bad = count_bad(yf, ys, ref, rows, K, N);
    CHECK(bad == 0, "gemv_f16 rows %d K %d N %d epilogue %d: %d of %d outputs off", rows, K, N,
          (int)epilogue, bad, rows * N);
    int pad_bad = 0;
    for (int r = 0; r < rows; r++)
        for (int i = N; i < ys; i++) pad_bad += y[(size_t)r * ys + i] != 0xFFFF;
    CHECK(pad_bad == 0, "gemv_f16 rows %d N %d: %d padding elements written", rows, N, pad_bad);

    CUDA_CHECK(cudaFree(dx));
    CUDA_CHECK(cudaFree(dw));
    CUDA_CHECK(cudaFree(dbias));
    CUDA_CHECK(cudaFree(dres));
    CUDA_CHECK(cudaFree(dy));
    free(x), free(w), free(bias), free(res), free(y), free(xf), free(wf), free(bf), free(rf), free(yf), free(ref);
}

/* The LM head's form: fp32 logits, no bias. */
static void check_f32_out(int rows, int K, int N, uint64_t *rng) {
    const int xs = K + STRIDE_PAD, ys = N + STRIDE_PAD;
    uint16_t *x = random_halves((size_t)rows * xs, 1.0f, rng), *w = random_halves((size_t)N * K, 1.0f, rng);
    gpt2_f16 *dx = device_copy(x, (size_t)rows * xs * 2), *dw = device_copy(w, (size_t)N * K * 2);
    float *dy;
    CUDA_CHECK(cudaMalloc((void **)&dy, (size_t)rows * ys * 4));
    CUDA_CHECK(cudaMemset(dy, 0xFF, (size_t)rows * ys * 4));
    launch_gemv_f32_out(dy, ys, dx, xs, dw, rows, K, N, 0);
    float *y = malloc((size_t)rows * ys * 4);
    CUDA_CHECK(cudaMemcpy(y, dy, (size_t)rows * ys * 4, cudaMemcpyDeviceToHost));
    float *xf = halves_to_floats(x, (size_t)rows * xs), *wf = halves_to_floats(w, (size_t)N * K);
    float *ref = reference(xf, xs, wf, NULL, NULL, 0, rows, K, N, LINEAR_PLAIN);
    const int bad = count_bad(y, ys, ref, rows, K, N);
    CHECK(bad == 0, "gemv_f32_out rows %d K %d N %d: %d of %d logits off", rows, K, N, bad, rows * N);
    int pad_bad = 0;
    for (int r = 0; r < rows; r++)
        for (int i = N; i < ys; i++) pad_bad += !isnan(y[(size_t)r * ys + i]);
    CHECK(pad_bad == 0, "gemv_f32_out rows %d N %d: %d padding elements written", rows, N, pad_bad);
    CUDA_CHECK(cudaFree(dx));
    CUDA_CHECK(cudaFree(dw));
    CUDA_CHECK(cudaFree(dy));
    free(x), free(w), free(y), free(xf), free(wf), free(ref);
}

/*
 * Batch invariance: each row of a many-row call (groups of 8 and a tail) is bit-identical to
 * the same row computed alone, so a decode step's result does not depend on its batch.
 */
static void check_batch_invariance(int rows, int K, int N, uint64_t *rng) {
    uint16_t *x = random_halves((size_t)rows * K, 1.0f, rng), *w = random_halves((size_t)N * K, 1.0f, rng);
    uint16_t *bias = random_halves((size_t)N, 1.0f, rng);
    gpt2_f16 *dx = device_copy(x, (size_t)rows * K * 2), *dw = device_copy(w, (size_t)N * K * 2);
    gpt2_f16 *dbias = device_copy(bias, (size_t)N * 2), *dy_all, *dy_one;
    CUDA_CHECK(cudaMalloc((void **)&dy_all, (size_t)rows * N * 2));
    CUDA_CHECK(cudaMalloc((void **)&dy_one, (size_t)rows * N * 2));
    CUDA_CHECK(cudaMemset(dy_all, 0xFF, (size_t)rows * N * 2));
    CUDA_CHECK(cudaMemset(dy_one, 0xFF, (size_t)rows * N * 2));
    launch_gemv_f16(dy_all, N, dx, K, dw, dbias, NULL, 0, rows, K, N, LINEAR_GELU, 0);
    for (int r = 0; r < rows; r++)
        launch_gemv_f16(dy_one + (size_t)r * N, N, dx + (size_t)r * K, K, dw, dbias, NULL, 0, 1, K,
                        N, LINEAR_GELU, 0);
    uint16_t *all = malloc((size_t)rows * N * 2), *one = malloc((size_t)rows * N * 2);
    CUDA_CHECK(cudaMemcpy(all, dy_all, (size_t)rows * N * 2, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(one, dy_one, (size_t)rows * N * 2, cudaMemcpyDeviceToHost));
    int differ = 0;
    for (size_t i = 0; i < (size_t)rows * N; i++) differ += all[i] != one[i] || all[i] == 0xFFFF;
    CHECK(differ == 0, "gemv rows %d: %d outputs differ from the same rows alone (or unwritten)",
          rows, differ);
    CUDA_CHECK(cudaFree(dx));
    CUDA_CHECK(cudaFree(dw));
    CUDA_CHECK(cudaFree(dbias));
    CUDA_CHECK(cudaFree(dy_all));
    CUDA_CHECK(cudaFree(dy_one));
    free(x), free(w), free(bias), free(all), free(one);
}

int main(void) {
    if (gpt2_cuda_device_count() == 0) {
        printf("test_gemv_gpu: no CUDA device, skipped\n");
        return SKIP_EXIT_CODE;
    }
    uint64_t rng = gpu_test_seed("test_gemv_gpu");
    for (int rows = 1; rows <= 8; rows++) check_f16(rows, 768, 2304, LINEAR_PLAIN, &rng); /* QKV */
    check_f16(1, 768, 3072, LINEAR_GELU, &rng);     /* MLP fc */
    check_f16(4, 3072, 768, LINEAR_RESIDUAL, &rng); /* MLP proj */
    check_f16(3, 1600, 1600, LINEAR_RESIDUAL, &rng); /* 1.5B attention out: K not a multiple of 256 */
    check_f16(2, 8, 17, LINEAR_GELU, &rng);         /* the smallest K, a tail block */
    check_f16(8, 136, 33, LINEAR_PLAIN, &rng);
    check_f32_out(1, 128, 50257, &rng);           /* the LM head's vocabulary, a narrow model */
    check_f32_out(5, 64, 1001, &rng);
    check_f16(21, 264, 70, LINEAR_RESIDUAL, &rng); /* two groups of 8 and a tail of 5 */
    check_f32_out(16, 128, 333, &rng);
    check_batch_invariance(19, 768, 96, &rng);
    return check_finish("test_gemv_gpu");
}
