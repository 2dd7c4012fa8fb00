/*
 * launch_add_bias, launch_bias_gelu and launch_residual_add on fresh random fp16 data, with a
 * poisoned guard vector past the end that must stay poisoned.
 *
 * The adds are one fp32 add of two fp16 values and one rounding, the same in C: bit for bit.
 * GELU against cpu_gelu_tanh on v = x + bias (the same fp32 add): the kernel's fp32 may differ
 * by FMA contraction (4 ulp of the tanh argument) and tanhf's 2 ulp, together below
 * e32 = 2^-22 * (|v| + |y|) (|d tanh| <= 3e-7, times 0.5 |v|, plus the last products' rounding);
 * then the fp16 rounding: |out - y| <= half_rounding_bound(|y| + e32) + e32.
 * Exits 77 where there is no CUDA device.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda_check.h"
#include "kernels/half.h"
#include "kernels/kernels.h"
#include "model/cpu_ops.h"
#include "tests/check.h"
#include "tests/gpu_test_util.h"
#include "tests/half_oracle.h"

#define GUARD 8
#define POISON 0xFFFF

typedef enum { OP_ADD_BIAS, OP_BIAS_GELU, OP_RESIDUAL_ADD } op_kind;

static const char *op_names[] = {"add_bias", "bias_gelu", "residual_add"};

/* x ([rows, cols] fp16) uploaded with a poisoned guard after it. */
static gpt2_f16 *upload_guarded(const uint16_t *x, size_t n) {
    gpt2_f16 *dev;
    CUDA_CHECK(cudaMalloc((void **)&dev, (n + GUARD) * 2));
    CUDA_CHECK(cudaMemset(dev, 0xFF, (n + GUARD) * 2));
    CUDA_CHECK(cudaMemcpy(dev, x, n * 2, cudaMemcpyHostToDevice));
    return dev;
}

/* Whether got is the op's result on x and y[i % y_len] (see the top of the file). */
static int element_ok(op_kind op, uint16_t got, uint16_t x, uint16_t y) {
    const float v = half_to_float(x) + half_to_float(y);
    if (op != OP_BIAS_GELU) return got == float_to_half(v);
    float ref = v;
    cpu_gelu_tanh(&ref, 1);
    const double e32 = 0x1p-22 * (fabs(v) + fabs(ref));
    return fabs((double)half_to_float(got) - ref) <= half_rounding_bound(fabs(ref) + e32) + e32;
}

/* rows x cols elements; y has cols elements (a bias) or rows * cols (the residual add). */
static void check_op(op_kind op, int rows, int cols, float x_scale, uint64_t *rng) {
    const size_t n = (size_t)rows * cols, y_len = op == OP_RESIDUAL_ADD ? n : (size_t)cols;
    uint16_t *x = random_halves(n, x_scale, rng), *y = random_halves(y_len, 1.0f, rng);
    gpt2_f16 *dev_x = upload_guarded(x, n), *dev_y = device_copy(y, y_len * 2);
    switch (op) {
    case OP_ADD_BIAS: launch_add_bias(dev_x, dev_y, rows, cols, 0); break;
    case OP_BIAS_GELU: launch_bias_gelu(dev_x, dev_y, rows, cols, 0); break;
    case OP_RESIDUAL_ADD: launch_residual_add(dev_x, dev_y, n, 0); break;
    }
    uint16_t *out = malloc((n + GUARD) * 2);
    CUDA_CHECK(cudaMemcpy(out, dev_x, (n + GUARD) * 2, cudaMemcpyDeviceToHost));
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += !element_ok(op, out[i], x[i], y[i % y_len]);
    int guard_hit = 0;
    for (int g = 0; g < GUARD; g++) guard_hit += out[n + g] != POISON;
    CHECK(bad == 0, "%s %dx%d: %zu of %zu elements wrong", op_names[op], rows, cols, bad, n);
    CHECK(guard_hit == 0, "%s %dx%d: the kernel wrote past the end", op_names[op], rows, cols);
    CUDA_CHECK(cudaFree(dev_x));
    CUDA_CHECK(cudaFree(dev_y));
    free(x);
    free(y);
    free(out);
}

int main(void) {
    if (gpt2_cuda_device_count() == 0) {
        printf("test_elementwise_gpu: no CUDA device, skipped\n");
        return SKIP_EXIT_CODE;
    }
    uint64_t rng = gpu_test_seed("test_elementwise_gpu");
    /* GPT-2's bias widths (C, 3C, 4C at 124M and 1.5B), the smallest, odd row counts. */
    const int shapes[][2] = {{1, 768}, {7, 2304}, {3, 3072}, {5, 6400}, {33, 1600}, {1, 8}, {9, 4800}};
    for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++) {
        check_op(OP_ADD_BIAS, shapes[s][0], shapes[s][1], 4.0f, &rng);
        check_op(OP_BIAS_GELU, shapes[s][0], shapes[s][1], 6.0f, &rng); /* GELU's tails too */
        check_op(OP_RESIDUAL_ADD, shapes[s][0], shapes[s][1], 4.0f, &rng);
    }
    /* More vectors than the capped grid has threads, with C not dividing the grid stride. */
    check_op(OP_ADD_BIAS, 8500, 1000, 4.0f, &rng);
    check_op(OP_RESIDUAL_ADD, 1, 8388608 + 8 * 37, 4.0f, &rng);
    return check_finish("test_elementwise_gpu");
}
