/*
 * cuBLAS and cuBLASLt as the engine calls them, on fresh random fp16 inputs with poisoned outputs,
 * each call against a plain double-precision GEMM on the host:
 *   - cublasGemmEx with every N/T pairing, odd m, n, k, padded leading dimensions, alpha and beta
 *     cases, fp16 and fp32 C, CUBLAS_COMPUTE_32F and CUBLAS_COMPUTE_32F_FAST_16F;
 *   - cublasGemmStridedBatchedEx with gaps between the matrices of the batch;
 *   - cublasLtMatmul with the DEFAULT, BIAS, GELU and GELU_BIAS epilogues, in place (C == D) and
 *     with a separate C, and batched. GELU is the tanh form; with an fp32 D the outputs must also
 *     lie closer to it than to the erf form (0.5 x (1 + erf(x / sqrt 2))).
 * beta == 0 must not read C: C then holds NaN. Elements outside the matrices (padding rows, A and
 * B included, and gaps between batches) hold NaN, and those of the output must keep their bytes.
 * On a GPU this checks cuBLAS itself, which holds the emulation (kernels/emu/emu_cublas.cpp) to
 * the same semantics. Exits 77 where there is no CUDA device.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cublasLt.h>
#include <cublas_v2.h>

#include "kernels/cuda_check.h"
#include "kernels/half.h"
#include "kernels/kernels.h"
#include "model/sampler.h"
#include "tests/check.h"

#define LT_WORKSPACE_BYTES (1 << 20)

typedef enum { API_GEMM_EX, API_GEMM_STRIDED_BATCHED, API_LT_MATMUL } gemm_api;

/* One call: D = epilogue(alpha op(A) op(B) + beta C) for each matrix of a batch, column-major. */
typedef struct {
    const char *name;
    gemm_api api;
    int trans_a, trans_b; /* op(X) = X^T */
    int m, n, k, batch;
    int lda, ldb, ldc, ldd; /* ldd: cuBLASLt only (cuBLAS writes D over C) */
    int gap;                /* elements between one matrix of a batch and the next */
    float alpha, beta;
    cudaDataType out_type; /* of C, D and the bias: CUDA_R_16F or CUDA_R_32F */
    cublasComputeType_t compute;
    cublasLtEpilogue_t epilogue; /* cuBLASLt only; cuBLAS calls have DEFAULT */
    int c_is_d;                  /* C and D are one buffer and layout (always, for cuBLAS) */
} gemm_case;

static const gemm_case cases[] = {
    {"GemmEx N/N", API_GEMM_EX, 0, 0, 37, 29, 45, 1, 40, 50, 44, 0, 0, 1.0f, 0.0f, CUDA_R_16F,
     CUBLAS_COMPUTE_32F, CUBLASLT_EPILOGUE_DEFAULT, 1},
    {"GemmEx T/N, fp32 C", API_GEMM_EX, 1, 0, 33, 17, 71, 1, 72, 71, 35, 0, 0, 0.5f, 0.0f,
     CUDA_R_32F, CUBLAS_COMPUTE_32F, CUBLASLT_EPILOGUE_DEFAULT, 1},
    {"GemmEx N/T, beta", API_GEMM_EX, 0, 1, 19, 41, 23, 1, 19, 47, 20, 0, 0, 1.25f, -0.75f,
     CUDA_R_16F, CUBLAS_COMPUTE_32F, CUBLASLT_EPILOGUE_DEFAULT, 1},
    {"GemmEx T/T, fp32 C, beta 1, FAST_16F", API_GEMM_EX, 1, 1, 8, 1, 130, 1, 132, 3, 8, 0, 0,
     1.0f, 1.0f, CUDA_R_32F, CUBLAS_COMPUTE_32F_FAST_16F, CUBLASLT_EPILOGUE_DEFAULT, 1},
    {"GemmStridedBatchedEx T/N", API_GEMM_STRIDED_BATCHED, 1, 0, 13, 11, 64, 5, 64, 67, 15, 0, 9,
     0.125f, 0.0f, CUDA_R_16F, CUBLAS_COMPUTE_32F, CUBLASLT_EPILOGUE_DEFAULT, 1},
    {"GemmStridedBatchedEx N/N, fp32 C, beta", API_GEMM_STRIDED_BATCHED, 0, 0, 16, 24, 17, 3, 17,
     18, 17, 0, 5, 1.0f, 0.5f, CUDA_R_32F, CUBLAS_COMPUTE_32F, CUBLASLT_EPILOGUE_DEFAULT, 1},
    {"LtMatmul T/N, BIAS, in place", API_LT_MATMUL, 1, 0, 45, 7, 33, 1, 40, 40, 48, 48, 0, 1.0f,
     0.0f, CUDA_R_16F, CUBLAS_COMPUTE_32F, CUBLASLT_EPILOGUE_BIAS, 1},
    {"LtMatmul N/N, GELU_BIAS, in place", API_LT_MATMUL, 0, 0, 40, 9, 50, 1, 48, 56, 40, 40, 0,
     1.0f, 0.0f, CUDA_R_16F, CUBLAS_COMPUTE_32F, CUBLASLT_EPILOGUE_GELU_BIAS, 1},
    {"LtMatmul T/N, GELU", API_LT_MATMUL, 1, 0, 30, 5, 20, 1, 24, 24, 32, 32, 0, 1.0f, 0.0f,
     CUDA_R_16F, CUBLAS_COMPUTE_32F, CUBLASLT_EPILOGUE_GELU, 0},
    {"LtMatmul T/N, GELU, fp32", API_LT_MATMUL, 1, 0, 30, 16, 24, 1, 24, 24, 32, 32, 0, 1.0f, 0.0f,
     CUDA_R_32F, CUBLAS_COMPUTE_32F, CUBLASLT_EPILOGUE_GELU, 1},
    {"LtMatmul T/N, BIAS plus a residual C", API_LT_MATMUL, 1, 0, 24, 13, 40, 1, 40, 48, 32, 24, 0,
     1.0f, 1.0f, CUDA_R_16F, CUBLAS_COMPUTE_32F, CUBLASLT_EPILOGUE_BIAS, 0},
    {"LtMatmul N/T, batched, fp32", API_LT_MATMUL, 0, 1, 21, 10, 16, 4, 24, 16, 24, 32, 6, 0.75f,
     0.0f, CUDA_R_32F, CUBLAS_COMPUTE_32F, CUBLASLT_EPILOGUE_DEFAULT, 0},
};

/* ---- host buffers ---- */

/* A column-major matrix of a batch: rows x cols with leading dimension ld, `stride` elements from
 * one matrix to the next. */
typedef struct {
    int rows, cols, ld;
    long long stride;
    size_t elements; /* of the whole buffer */
} matrix_shape;

static matrix_shape shape_of(int rows, int cols, int ld, int gap, int batch) {
    matrix_shape s = {rows, cols, ld, (long long)ld * cols + gap, 0};
    s.elements = (size_t)s.stride * (size_t)batch;
    return s;
}

/* The buffer index of element (i, j) of matrix z; -1 for positions outside every matrix. */
static long long index_of(const matrix_shape *s, long long position) {
    const long long z = position / s->stride, within = position % s->stride;
    const long long i = within % s->ld, j = within / s->ld;
    return i < s->rows && j < s->cols ? z * s->stride + j * s->ld + i : -1;
}

static size_t out_size(cudaDataType type) {
    return type == CUDA_R_32F ? sizeof(float) : sizeof(uint16_t);
}

static double out_get(const unsigned char *buf, size_t i, cudaDataType type) {
    if (type == CUDA_R_32F) {
        float v;
        memcpy(&v, buf + 4 * i, 4);
        return v;
    }
    uint16_t h;
    memcpy(&h, buf + 2 * i, 2);
    return half_to_float(h);
}

static void out_set(unsigned char *buf, size_t i, cudaDataType type, float v) {
    if (type == CUDA_R_32F) {
        memcpy(buf + 4 * i, &v, 4);
        return;
    }
    const uint16_t h = float_to_half(v);
    memcpy(buf + 2 * i, &h, 2);
}

/* elements of `size` bytes: NaN (all bits set) outside the matrices of s, and inside them random
 * values in [-1, 1) where `fill`, else NaN too. */
static unsigned char *make_buffer(const matrix_shape *s, cudaDataType type, int fill, uint64_t *rng) {
    const size_t size = out_size(type);
    unsigned char *buf = malloc(s->elements * size);
    memset(buf, 0xFF, s->elements * size);
    if (!fill) return buf;
    for (size_t p = 0; p < s->elements; p++)
        if (index_of(s, (long long)p) >= 0)
            out_set(buf, p, type, 2.0f * sampler_next_uniform(rng) - 1.0f);
    return buf;
}

static void *device_copy(const void *host, size_t bytes) {
    void *dev;
    CUDA_CHECK(cudaMalloc(&dev, bytes));
    CUDA_CHECK(cudaMemcpy(dev, host, bytes, cudaMemcpyHostToDevice));
    return dev;
}

/* ---- the host reference ---- */

static double gelu_tanh(double x) {
    const double sqrt_2_over_pi = 0.79788456080286536;
    return 0.5 * x * (1.0 + tanh(sqrt_2_over_pi * (x + 0.044715 * x * x * x)));
}

static double gelu_erf(double x) { return 0.5 * x * (1.0 + erf(x * 0.70710678118654752)); }

static int has_bias(cublasLtEpilogue_t e) {
    return e == CUBLASLT_EPILOGUE_BIAS || e == CUBLASLT_EPILOGUE_GELU_BIAS;
}

static int has_gelu(cublasLtEpilogue_t e) {
    return e == CUBLASLT_EPILOGUE_GELU || e == CUBLASLT_EPILOGUE_GELU_BIAS;
}

/* The host copies of one call's operands; sa..sd describe a..d. */
typedef struct {
    matrix_shape sa, sb, sc, sd;
    unsigned char *a, *b; /* fp16 */
    unsigned char *c, *d; /* out_type; d == c when c_is_d */
    unsigned char *bias;  /* [m], out_type */
} operands;

/* Element (i, j) of D for matrix z before the activation, and the sum of magnitudes of its terms
 * in *magnitude. */
static double reference(const gemm_case *t, const operands *o, int z, int i, int j,
                        double *magnitude) {
    const long long a_base = z * o->sa.stride, b_base = z * o->sb.stride;
    const long long lda = o->sa.ld, ldb = o->sb.ld;
    double sum = 0, mag = 0;
    for (long long p = 0; p < t->k; p++) { /* op(A)[i][p] * op(B)[p][j] */
        const long long ia = a_base + (t->trans_a ? p + i * lda : i + p * lda);
        const long long ib = b_base + (t->trans_b ? j + p * ldb : p + j * ldb);
        const double term =
            out_get(o->a, (size_t)ia, CUDA_R_16F) * out_get(o->b, (size_t)ib, CUDA_R_16F);
        sum += term;
        mag += fabs(term);
    }
    double v = t->alpha * sum;
    *magnitude = fabs(t->alpha) * mag;
    if (t->beta != 0.0f) {
        const size_t ic = (size_t)(z * o->sc.stride + (long long)j * o->sc.ld + i);
        const double c = t->beta * out_get(o->c, ic, t->out_type);
        v += c;
        *magnitude += fabs(c);
    }
    if (has_bias(t->epilogue)) {
        const double bias = out_get(o->bias, (size_t)i, t->out_type);
        v += bias;
        *magnitude += fabs(bias);
    }
    return v;
}

/*
 * Every output element against the reference; every other element of D's buffer unchanged. With
 * GELU and an fp32 D, also which GELU: the outputs must lie closer to the tanh form than to the erf
 * form, which differ by up to 4.7e-4 (more than fp32 noise, less than fp16 rounding).
 */
static void check_result(const gemm_case *t, const operands *o, const unsigned char *before,
                         const unsigned char *after) {
    const size_t size = out_size(t->out_type);
    /* fp16 output: its rounding, and cuBLAS's split-k partials may be rounded to fp16 too */
    const double rel = t->out_type == CUDA_R_16F ? 1e-3 : 2e-5;
    const double abs_tol = has_gelu(t->epilogue) ? 2e-3 : 1e-6; /* an approximate tanh on the GPU */
    int bad = 0, clobbered = 0;
    double tanh_error = 0, erf_error = 0; /* sums of squares */
    for (size_t p = 0; p < o->sd.elements; p++) {
        const long long at = index_of(&o->sd, (long long)p);
        if (at < 0) {
            clobbered += memcmp(before + p * size, after + p * size, size) != 0;
            continue;
        }
        const int z = (int)(at / o->sd.stride), i = (int)(at % o->sd.stride % o->sd.ld),
                  j = (int)(at % o->sd.stride / o->sd.ld);
        double magnitude;
        const double pre = reference(t, o, z, i, j, &magnitude), got = out_get(after, p, t->out_type);
        const double want = has_gelu(t->epilogue) ? gelu_tanh(pre) : pre;
        tanh_error += (got - want) * (got - want);
        erf_error += (got - gelu_erf(pre)) * (got - gelu_erf(pre));
        if (!(fabs(got - want) <= rel * (magnitude + fabs(want)) + abs_tol)) {
            if (bad == 0)
                fprintf(stderr, "%s: D[%d][%d] of matrix %d is %g, want %g\n", t->name, i, j, z, got,
                        want);
            bad++;
        }
    }
    CHECK(bad == 0, "%s: %d of %d outputs wrong", t->name, bad, t->m * t->n * t->batch);
    CHECK(clobbered == 0, "%s: %d elements outside D were written", t->name, clobbered);
    if (has_gelu(t->epilogue) && t->out_type == CUDA_R_32F)
        CHECK(tanh_error < erf_error, "%s: GELU is closer to the erf form (rms %g) than to the tanh "
              "form (rms %g)", t->name, sqrt(erf_error / (t->m * t->n * t->batch)),
              sqrt(tanh_error / (t->m * t->n * t->batch)));
}

/* ---- the calls ---- */

static cublasOperation_t op(int trans) { return trans ? CUBLAS_OP_T : CUBLAS_OP_N; }

static void run_cublas(const gemm_case *t, const operands *o, cublasHandle_t handle, const void *a,
                       const void *b, void *c) {
    if (t->api == API_GEMM_EX)
        CUBLAS_CHECK(cublasGemmEx(handle, op(t->trans_a), op(t->trans_b), t->m, t->n, t->k, &t->alpha,
                                  a, CUDA_R_16F, t->lda, b, CUDA_R_16F, t->ldb, &t->beta, c,
                                  t->out_type, t->ldc, t->compute, CUBLAS_GEMM_DEFAULT));
    else
        CUBLAS_CHECK(cublasGemmStridedBatchedEx(
            handle, op(t->trans_a), op(t->trans_b), t->m, t->n, t->k, &t->alpha, a, CUDA_R_16F,
            t->lda, o->sa.stride, b, CUDA_R_16F, t->ldb, o->sb.stride, &t->beta, c, t->out_type,
            t->ldc, o->sc.stride, t->batch, t->compute, CUBLAS_GEMM_DEFAULT));
}

static cublasLtMatrixLayout_t lt_layout(cudaDataType type, const matrix_shape *s, int batch) {
    cublasLtMatrixLayout_t layout;
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&layout, type, (uint64_t)s->rows, (uint64_t)s->cols,
                                            s->ld));
    if (batch > 1) {
        const int32_t count = batch;
        const int64_t stride = s->stride;
        CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(layout, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
                                                      &count, sizeof count));
        CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(
            layout, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride));
    }
    return layout;
}

static void set_desc(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr, const void *v,
                     size_t size) {
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc, attr, v, size));
}

static void run_lt(const gemm_case *t, const operands *o, cublasLtHandle_t lt, cudaStream_t stream,
                   const void *a, const void *b, const void *c, void *d, const void *bias,
                   void *workspace) {
    cublasLtMatmulDesc_t desc;
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc, t->compute, CUDA_R_32F));
    const int32_t trans_a = op(t->trans_a), trans_b = op(t->trans_b);
    const uint32_t epilogue = t->epilogue;
    set_desc(desc, CUBLASLT_MATMUL_DESC_TRANSA, &trans_a, sizeof trans_a);
    set_desc(desc, CUBLASLT_MATMUL_DESC_TRANSB, &trans_b, sizeof trans_b);
    set_desc(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue);
    if (has_bias(t->epilogue)) set_desc(desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
    uint32_t read_back = 0;
    size_t written = 0;
    CUBLAS_CHECK(cublasLtMatmulDescGetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &read_back,
                                                sizeof read_back, &written));
    CHECK(read_back == epilogue && written == sizeof read_back, "%s: the epilogue reads back as %u",
          t->name, read_back);

    cublasLtMatrixLayout_t la = lt_layout(CUDA_R_16F, &o->sa, t->batch);
    cublasLtMatrixLayout_t lb = lt_layout(CUDA_R_16F, &o->sb, t->batch);
    cublasLtMatrixLayout_t ld = lt_layout(t->out_type, &o->sd, t->batch);
    cublasLtMatrixLayout_t lc = t->c_is_d ? ld : lt_layout(t->out_type, &o->sc, t->batch);
    cublasLtMatmulPreference_t pref;
    const uint64_t max_workspace = LT_WORKSPACE_BYTES;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                      &max_workspace, sizeof max_workspace));
    cublasLtMatmulHeuristicResult_t heuristic;
    int found = 0;
    CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(lt, desc, la, lb, lc, ld, pref, 1, &heuristic,
                                                &found));
    CHECK(found == 1 && heuristic.state == CUBLAS_STATUS_SUCCESS, "%s: no algorithm", t->name);
    if (found == 1)
        CUBLAS_CHECK(cublasLtMatmul(lt, desc, &t->alpha, a, la, b, lb, &t->beta, c, lc, d, ld,
                                    &heuristic.algo, workspace, LT_WORKSPACE_BYTES, stream));
    CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
    if (lc != ld) CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(lc));
    CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(ld));
    CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(lb));
    CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(la));
    CUBLAS_CHECK(cublasLtMatmulDescDestroy(desc));
}

/* One case: fresh operands, the call on `stream`, the check. */
static void check_case(const gemm_case *t, cublasHandle_t handle, cublasLtHandle_t lt,
                       cudaStream_t stream, void *workspace, uint64_t *rng) {
    operands o;
    o.sa = shape_of(t->trans_a ? t->k : t->m, t->trans_a ? t->m : t->k, t->lda, t->gap, t->batch);
    o.sb = shape_of(t->trans_b ? t->n : t->k, t->trans_b ? t->k : t->n, t->ldb, t->gap, t->batch);
    o.sc = shape_of(t->m, t->n, t->ldc, t->gap, t->batch);
    o.sd = t->c_is_d ? o.sc : shape_of(t->m, t->n, t->ldd, t->gap, t->batch);
    o.a = make_buffer(&o.sa, CUDA_R_16F, 1, rng);
    o.b = make_buffer(&o.sb, CUDA_R_16F, 1, rng);
    o.c = make_buffer(&o.sc, t->out_type, t->beta != 0.0f, rng); /* NaN where beta == 0 */
    o.d = t->c_is_d ? o.c : make_buffer(&o.sd, t->out_type, 0, rng);
    const matrix_shape s_bias = shape_of(t->m, 1, t->m, 0, 1);
    o.bias = make_buffer(&s_bias, t->out_type, 1, rng);

    const size_t size = out_size(t->out_type), d_bytes = o.sd.elements * size;
    void *dev_a = device_copy(o.a, o.sa.elements * 2), *dev_b = device_copy(o.b, o.sb.elements * 2);
    void *dev_c = device_copy(o.c, o.sc.elements * size);
    void *dev_d = t->c_is_d ? dev_c : device_copy(o.d, d_bytes);
    void *dev_bias = device_copy(o.bias, (size_t)t->m * size);
    if (t->api == API_LT_MATMUL)
        run_lt(t, &o, lt, stream, dev_a, dev_b, dev_c, dev_d, dev_bias, workspace);
    else
        run_cublas(t, &o, handle, dev_a, dev_b, dev_c);
    unsigned char *after = malloc(d_bytes);
    CUDA_CHECK(cudaMemcpyAsync(after, dev_d, d_bytes, cudaMemcpyDeviceToHost, stream));
    CUDA_CHECK(cudaStreamSynchronize(stream));
    check_result(t, &o, o.d, after);

    if (!t->c_is_d) cudaFree(dev_d);
    cudaFree(dev_a);
    cudaFree(dev_b);
    cudaFree(dev_c);
    cudaFree(dev_bias);
    if (!t->c_is_d) free(o.d);
    free(o.a);
    free(o.b);
    free(o.c);
    free(o.bias);
    free(after);
}

int main(void) {
    if (gpt2_cuda_device_count() == 0) {
        printf("test_cublas_gpu: no CUDA device, skipped\n");
        return SKIP_EXIT_CODE;
    }
    uint64_t rng = (uint64_t)time(NULL);
    printf("test_cublas_gpu: seed %llu\n", (unsigned long long)rng);
    cudaStream_t stream;
    cublasHandle_t handle;
    cublasLtHandle_t lt;
    void *workspace;
    CUDA_CHECK(cudaStreamCreate(&stream));
    CUDA_CHECK(cudaMalloc(&workspace, LT_WORKSPACE_BYTES));
    CUBLAS_CHECK(cublasCreate(&handle));
    CUBLAS_CHECK(cublasSetStream(handle, stream));
    CUBLAS_CHECK(cublasSetWorkspace(handle, workspace, LT_WORKSPACE_BYTES));
    CUBLAS_CHECK(cublasSetMathMode(handle, CUBLAS_DEFAULT_MATH));
    cudaStream_t got_stream = NULL;
    CUBLAS_CHECK(cublasGetStream(handle, &got_stream));
    CHECK(got_stream == stream, "cublasGetStream gives another stream");
    CUBLAS_CHECK(cublasLtCreate(&lt));
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(&cases[i], handle, lt, stream, workspace, &rng);
    CHECK(strcmp(cublasGetStatusName(CUBLAS_STATUS_NOT_SUPPORTED), "CUBLAS_STATUS_NOT_SUPPORTED") == 0,
          "cublasGetStatusName(CUBLAS_STATUS_NOT_SUPPORTED) is %s",
          cublasGetStatusName(CUBLAS_STATUS_NOT_SUPPORTED));
    CUBLAS_CHECK(cublasLtDestroy(lt));
    CUBLAS_CHECK(cublasDestroy(handle));
    CUDA_CHECK(cudaFree(workspace));
    CUDA_CHECK(cudaStreamDestroy(stream));
    return check_finish("test_cublas_gpu");
}
