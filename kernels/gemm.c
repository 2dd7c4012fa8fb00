/*
 * Linear layers: y = epilogue(x w^T + bias), the engine's one entry point for every dense
 * product, which picks the path by shape:
 * - 1 to GEMM_GEMV_MAX_ROWS rows (a decode step at small batch): the hand-written GEMV
 *   (gemv.cu), which streams the weights at the copy bandwidth;
 * - more rows (prefill, large batches): cuBLASLt, fp16 in, fp32 compute, with the bias and GELU
 *   in its epilogue and the residual as its C matrix (beta = 1, in place: C == D).
 *
 * Layouts. Activations are row-major [rows, stride]; weights are output-major [N, K]. In
 * cuBLAS's column-major terms a row-major [rows, N] output is an N x rows matrix, so
 *   D (N x rows) = op(W) (N x K) * X (K x rows),  W stored K x N column-major (ld K), op = T.
 * The bias then runs along D's rows, one value per output feature, as cuBLASLt defines it.
 *
 * Descriptors are created per call: host work of a few microseconds, negligible beside a
 * prefill GEMM, and never on the decode path at small batch.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cublasLt.h>

#include "kernels/cuda_check.h"
#include "kernels/kernels.h"

#define GEMM_WORKSPACE_BYTES (32u << 20) /* cuBLASLt's recommendation for Hopper */

struct gemm_context {
    cublasLtHandle_t handle;
    void *workspace; /* [GEMM_WORKSPACE_BYTES] device scratch for cuBLASLt */
};

gemm_context *gemm_context_create(void) {
    gemm_context *ctx = calloc(1, sizeof *ctx);
    if (!ctx) return NULL;
    CUBLAS_CHECK(cublasLtCreate(&ctx->handle));
    CUDA_CHECK(cudaMalloc(&ctx->workspace, GEMM_WORKSPACE_BYTES));
    return ctx;
}

void gemm_context_destroy(gemm_context *ctx) {
    if (!ctx) return;
    CUDA_CHECK(cudaFree(ctx->workspace));
    CUBLAS_CHECK(cublasLtDestroy(ctx->handle));
    free(ctx);
}

static void set_attribute(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr,
                          const void *value, size_t size) {
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, attr, value, size));
}

static cublasLtEpilogue_t lt_epilogue(linear_epilogue epilogue, bool has_bias) {
    if (epilogue == LINEAR_GELU) return has_bias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU;
    return has_bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
}

/* D = epilogue(W^T-product + bias) [+ C], out_type CUDA_R_16F or CUDA_R_32F (bias of that type). */
static void lt_matmul(gemm_context *ctx, void *y, int y_stride, const gpt2_f16 *x, int x_stride,
                      const gpt2_f16 *w, const void *bias, const void *residual,
                      int residual_stride, int rows, int K, int N, linear_epilogue epilogue,
                      cudaDataType_t out_type, cudaStream_t stream) {
    cublasLtMatmulDesc_t desc;
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t transpose = CUBLAS_OP_T, keep = CUBLAS_OP_N;
    set_attribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &transpose, sizeof transpose);
    set_attribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &keep, sizeof keep);
    const cublasLtEpilogue_t lt = lt_epilogue(epilogue, bias != NULL);
    set_attribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &lt, sizeof lt);
    if (bias) set_attribute(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);

    cublasLtMatrixLayout_t a, b, c, d;
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&a, CUDA_R_16F, K, N, K));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&b, CUDA_R_16F, K, rows, x_stride));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&d, out_type, N, rows, y_stride));
    const bool add_residual = epilogue == LINEAR_RESIDUAL;
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&c, out_type, N, rows,
                                            add_residual ? residual_stride : y_stride));

    cublasLtMatmulPreference_t preference;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&preference));
    const size_t workspace_bytes = GEMM_WORKSPACE_BYTES;
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(preference,
                                                      CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                      &workspace_bytes, sizeof workspace_bytes));
    cublasLtMatmulHeuristicResult_t heuristic;
    int found = 0;
    CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(ctx->handle, desc, a, b, c, d, preference, 1,
                                                &heuristic, &found));
    if (found == 0) {
        fprintf(stderr, "cuBLASLt: no algorithm for a %d x %d x %d linear layer\n", rows, K, N);
        exit(EXIT_FAILURE);
    }
    const float alpha = 1.0f, beta = add_residual ? 1.0f : 0.0f;
    CUBLAS_CHECK(cublasLtMatmul(ctx->handle, desc, &alpha, w, a, x, b, &beta,
                                add_residual ? residual : y, c, y, d, &heuristic.algo,
                                ctx->workspace, GEMM_WORKSPACE_BYTES, stream));
    CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(preference));
    CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(a));
    CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(b));
    CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(c));
    CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(d));
    CUBLAS_CHECK(cublasLtMatmulDescDestroy(desc));
}

void launch_linear(gemm_context *ctx, gpt2_f16 *y, int y_stride, const gpt2_f16 *x, int x_stride,
                   const gpt2_f16 *w, const gpt2_f16 *bias, const gpt2_f16 *residual,
                   int residual_stride, int rows, int K, int N, linear_epilogue epilogue,
                   cudaStream_t stream) {
    LAUNCH_REQUIRE(ctx != NULL && rows >= 1, "linear");
    if (rows <= GEMM_GEMV_MAX_ROWS)
        launch_gemv_f16(y, y_stride, x, x_stride, w, bias, residual, residual_stride, rows, K, N,
                        epilogue, stream);
    else
        launch_linear_cublaslt(ctx, y, y_stride, x, x_stride, w, bias, residual, residual_stride,
                               rows, K, N, epilogue, stream);
}

void launch_linear_cublaslt(gemm_context *ctx, gpt2_f16 *y, int y_stride, const gpt2_f16 *x,
                            int x_stride, const gpt2_f16 *w, const gpt2_f16 *bias,
                            const gpt2_f16 *residual, int residual_stride, int rows, int K, int N,
                            linear_epilogue epilogue, cudaStream_t stream) {
    LAUNCH_REQUIRE(ctx != NULL && rows >= 1, "linear_cublaslt");
    LAUNCH_REQUIRE(epilogue != LINEAR_RESIDUAL || (residual && residual_stride >= N), "linear_cublaslt");
    lt_matmul(ctx, y, y_stride, x, x_stride, w, bias, residual, residual_stride, rows, K, N,
              epilogue, CUDA_R_16F, stream);
}

void launch_linear_f32_out_cublaslt(gemm_context *ctx, float *y, int y_stride, const gpt2_f16 *x,
                                    int x_stride, const gpt2_f16 *w, int rows, int K, int N,
                                    cudaStream_t stream) {
    LAUNCH_REQUIRE(ctx != NULL && rows >= 1, "linear_f32_out_cublaslt");
    lt_matmul(ctx, y, y_stride, x, x_stride, w, NULL, NULL, 0, rows, K, N, LINEAR_PLAIN,
              CUDA_R_32F, stream);
}

void launch_linear_f32_out(gemm_context *ctx, float *y, int y_stride, const gpt2_f16 *x,
                           int x_stride, const gpt2_f16 *w, int rows, int K, int N,
                           cudaStream_t stream) {
    LAUNCH_REQUIRE(ctx != NULL && rows >= 1, "linear_f32_out");
    if (rows <= GEMM_GEMV_MAX_ROWS) launch_gemv_f32_out(y, y_stride, x, x_stride, w, rows, K, N, stream);
    else launch_linear_f32_out_cublaslt(ctx, y, y_stride, x, x_stride, w, rows, K, N, stream);
}
