/*
 * The cuBLAS and cuBLASLt subset the engine calls, emulated: one reference GEMM with cuBLAS's
 * documented semantics, linked in place of libcublas and libcublasLt in the emulation build. The
 * functions keep the toolkit headers' signatures and C linkage (cublas_v2.h renames some to
 * *_v2, which is what is defined here).
 *
 * What it computes, column-major as cuBLAS, for each matrix of a batch:
 *   D = epilogue(alpha * op(A) * op(B) + beta * C)
 * op(A) is [m x k], op(B) [k x n], C and D [m x n]; op(X) is X or X^T (CUBLAS_OP_T, and CUBLAS_OP_C,
 * which is the same for real data). cublasGemmEx writes D over C. Epilogues, cuBLASLt only:
 *   - BIAS adds bias[i] to row i of D: one value per output feature (row of the column-major D),
 *     broadcast over the n columns, added before the activation (cublasLt.h,
 *     CUBLASLT_EPILOGUE_BIAS: "Bias vector length must match matrix D rows"). The bias has D's type.
 *   - GELU applies the tanh form 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))); GELU_BIAS adds
 *     the bias, then applies it. NVIDIA's documentation says only "x := GELU(x)"; the tanh form is
 *     what NVIDIA's own nvmath-python tests check CUBLASLT_EPILOGUE_GELU against
 *     (tests/nvmath_tests/linalg/advanced/matmul/test_epilog.py), and what PyTorch substitutes for
 *     it (aten/src/ATen/native/cuda/Blas.cpp: at::gelu_(result, "tanh") where the epilogue is not
 *     available). tests/test_cublas_gpu.c checks the real library against the same formula, and
 *     that its outputs lie closer to it than to the erf form.
 *
 * Numerics: A and B fp16; C and D both fp16 or both fp32; compute type CUBLAS_COMPUTE_32F or
 * CUBLAS_COMPUTE_32F_FAST_16F (the same here); alpha and beta fp32 host values. Each output sums
 * its k products in fp32 in the order p = 0 .. k-1 (a product of two fp16 values is exact in fp32);
 * alpha, beta * C, the bias and GELU follow in fp32, and the result is rounded once, to nearest
 * even, to D's type. Real cuBLAS splits and orders its sums its own way (and may reduce split-k
 * partials in fp16), so results agree within rounding, not bit for bit. With beta == 0, C is never
 * read: it may hold NaN.
 *
 * Streams: the GEMM is an emulated kernel, launched with LAUNCH_KERNEL on the handle's stream
 * (cuBLAS) or the call's stream (cuBLASLt). It is ordered with the stream's other work, and
 * recorded like any kernel while the stream is being captured into a graph. Scalars and
 * descriptor attributes are read when the function is called, as cuBLAS reads host-mode scalars.
 *
 * Outside this subset a call returns CUBLAS_STATUS_NOT_SUPPORTED and prints on stderr what it
 * lacks. Malformed calls (negative sizes, leading dimensions below the rows, NULL scalars) return
 * CUBLAS_STATUS_INVALID_VALUE, as cuBLAS does. Math modes, algorithms, workspaces and preferences
 * are accepted and change nothing: the reference GEMM has one algorithm and needs no workspace.
 */
#include "kernels/launch.h" /* first: the emulator's header must come before the CUDA headers */

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <new>

#include <cublasLt.h>
#include <cublas_v2.h>

#include "kernels/cuda_check.h"
#include "kernels/half.h"

/* ---- the reference GEMM kernel ---- */

#define GEMM_THREADS 64        /* one output row per thread */
#define GEMM_COLS_PER_THREAD 8 /* columns of that row per thread */
#define GRID_YZ_MAX 65535      /* CUDA's limit on gridDim.y and gridDim.z */

/* One call, by value into the kernel. Matrices are column-major; offsets are in elements; fp16
 * values are their IEEE bits (kernels/half.h converts them exactly, as __half2float does, and
 * faster on the host). */
struct emu_gemm {
    int m, n, k, batch_count;
    bool trans_a, trans_b;
    float alpha, beta;
    const uint16_t *a; /* [k x m] (trans_a) or [m x k], per batch */
    int64_t lda, stride_a;
    const uint16_t *b; /* [n x k] (trans_b) or [k x n], per batch */
    int64_t ldb, stride_b;
    const void *c; /* [m x n] per batch, D's type; read only when beta != 0 */
    int64_t ldc, stride_c;
    void *d; /* [m x n] per batch */
    int64_t ldd, stride_d;
    bool out_f32;     /* C, D and the bias are fp32, else fp16 */
    const void *bias; /* [m], or NULL */
    bool gelu;
};

static __device__ float load_out(const void *p, int64_t i, bool f32) {
    return f32 ? static_cast<const float *>(p)[i] : half_to_float(static_cast<const uint16_t *>(p)[i]);
}

static __device__ void store_out(void *p, int64_t i, bool f32, float v) {
    if (f32)
        static_cast<float *>(p)[i] = v;
    else
        static_cast<uint16_t *>(p)[i] = float_to_half(v); /* nearest even, as __float2half_rn */
}

static __device__ float gelu_tanh(float x) {
    const float sqrt_2_over_pi = 0.7978845608028654f;
    return 0.5f * x * (1.0f + tanhf(sqrt_2_over_pi * (x + 0.044715f * x * x * x)));
}

/* Thread (x, y, z) computes row blockIdx.x * GEMM_THREADS + threadIdx.x of D, columns
 * blockIdx.y * GEMM_COLS_PER_THREAD .. + GEMM_COLS_PER_THREAD - 1, of batch blockIdx.z. */
static __global__ void cublas_reference_gemm(emu_gemm g) {
    const int64_t i = (int64_t)blockIdx.x * GEMM_THREADS + threadIdx.x;
    const int64_t j0 = (int64_t)blockIdx.y * GEMM_COLS_PER_THREAD, z = blockIdx.z;
    if (i >= g.m) return;
    const int cols = (int)(g.n - j0 < GEMM_COLS_PER_THREAD ? g.n - j0 : GEMM_COLS_PER_THREAD);
    /* op(A)[i][p] = a[i * a_row + p * a_col], op(B)[p][j] = b[p * b_row + j * b_col] */
    const int64_t a_row = g.trans_a ? g.lda : 1, a_col = g.trans_a ? 1 : g.lda;
    const int64_t b_row = g.trans_b ? g.ldb : 1, b_col = g.trans_b ? 1 : g.ldb;
    const uint16_t *a = g.a + z * g.stride_a + i * a_row, *b = g.b + z * g.stride_b + j0 * b_col;
    int64_t b_offset[GEMM_COLS_PER_THREAD]; /* past the last column, repeat it: a fixed-size loop */
    for (int jj = 0; jj < GEMM_COLS_PER_THREAD; jj++)
        b_offset[jj] = (jj < cols ? jj : cols - 1) * b_col;
    float acc[GEMM_COLS_PER_THREAD] = {};
    for (int64_t p = 0; p < g.k; p++) {
        const float a_ip = half_to_float(a[p * a_col]);
        for (int jj = 0; jj < GEMM_COLS_PER_THREAD; jj++)
            acc[jj] += a_ip * half_to_float(b[p * b_row + b_offset[jj]]);
    }
    for (int jj = 0; jj < cols; jj++) {
        const int64_t j = j0 + jj;
        float v = g.alpha * acc[jj];
        if (g.beta != 0.0f) v += g.beta * load_out(g.c, z * g.stride_c + i + j * g.ldc, g.out_f32);
        if (g.bias) v += load_out(g.bias, i, g.out_f32);
        if (g.gelu) v = gelu_tanh(v);
        store_out(g.d, z * g.stride_d + i + j * g.ldd, g.out_f32, v);
    }
}

/* ---- checking and launching a call ---- */

/* Prints what the emulation lacks and returns CUBLAS_STATUS_NOT_SUPPORTED. */
static cublasStatus_t not_supported(const char *function, const char *format, ...) {
    va_list args;
    va_start(args, format);
    fprintf(stderr, "emulated cuBLAS: %s: not supported: ", function);
    vfprintf(stderr, format, args);
    fputc('\n', stderr);
    va_end(args);
    return CUBLAS_STATUS_NOT_SUPPORTED;
}

/* Prints why a call is malformed and returns CUBLAS_STATUS_INVALID_VALUE. */
static cublasStatus_t invalid_value(const char *function, const char *format, ...) {
    va_list args;
    va_start(args, format);
    fprintf(stderr, "emulated cuBLAS: %s: invalid value: ", function);
    vfprintf(stderr, format, args);
    fputc('\n', stderr);
    va_end(args);
    return CUBLAS_STATUS_INVALID_VALUE;
}

/* op as "transposed or not"; false from *ok for values that are not an operation. */
static bool is_transposed(cublasOperation_t op, bool *ok) {
    *ok = op == CUBLAS_OP_N || op == CUBLAS_OP_T || op == CUBLAS_OP_C;
    return op != CUBLAS_OP_N;
}

static bool compute_type_supported(int32_t compute_type) {
    return compute_type == CUBLAS_COMPUTE_32F || compute_type == CUBLAS_COMPUTE_32F_FAST_16F;
}

/* The types, sizes and leading dimensions of g, checked against what the kernel computes. */
static cublasStatus_t check_gemm(const char *function, const emu_gemm &g, cudaDataType a_type,
                                 cudaDataType b_type, cudaDataType out_type) {
    if (a_type != CUDA_R_16F || b_type != CUDA_R_16F)
        return not_supported(function, "A and B of types %d and %d (only CUDA_R_16F)", a_type,
                             b_type);
    if (out_type != CUDA_R_16F && out_type != CUDA_R_32F)
        return not_supported(function, "C and D of type %d (only CUDA_R_16F or CUDA_R_32F)",
                             out_type);
    if (g.m < 0 || g.n < 0 || g.k < 0 || g.batch_count < 0)
        return invalid_value(function, "m %d, n %d, k %d, batch %d", g.m, g.n, g.k, g.batch_count);
    const int64_t a_rows = g.trans_a ? g.k : g.m, b_rows = g.trans_b ? g.n : g.k;
    if (g.lda < (a_rows > 1 ? a_rows : 1) || g.ldb < (b_rows > 1 ? b_rows : 1) ||
        g.ldc < (g.m > 1 ? g.m : 1) || g.ldd < (g.m > 1 ? g.m : 1))
        return invalid_value(function, "leading dimensions %lld, %lld, %lld, %lld for m %d, n %d, "
                             "k %d", (long long)g.lda, (long long)g.ldb, (long long)g.ldc,
                             (long long)g.ldd, g.m, g.n, g.k);
    if (CEIL_DIV((int64_t)g.n, GEMM_COLS_PER_THREAD) > GRID_YZ_MAX || g.batch_count > GRID_YZ_MAX)
        return not_supported(function, "n %d or batch %d past the emulated grid", g.n, g.batch_count);
    return CUBLAS_STATUS_SUCCESS;
}

/* Runs a checked g on the stream. */
static cublasStatus_t launch_gemm(const char *function, const emu_gemm &g, cudaStream_t stream) {
    if (g.m == 0 || g.n == 0 || g.batch_count == 0) return CUBLAS_STATUS_SUCCESS;
    dim3 grid((unsigned)CEIL_DIV(g.m, GEMM_THREADS), (unsigned)CEIL_DIV(g.n, GEMM_COLS_PER_THREAD),
              (unsigned)g.batch_count);
    LAUNCH_KERNEL(cublas_reference_gemm, grid, GEMM_THREADS, 0, stream, g);
    cudaError_t status = cudaGetLastError();
    if (status != cudaSuccess) {
        fprintf(stderr, "emulated cuBLAS: %s: launch failed: %s\n", function,
                cudaGetErrorString(status));
        return CUBLAS_STATUS_EXECUTION_FAILED;
    }
    return CUBLAS_STATUS_SUCCESS;
}

/* ---- cuBLAS: handle, stream, modes ---- */

struct cublasContext {
    cudaStream_t stream;
};

extern "C" cublasStatus_t cublasCreate_v2(cublasHandle_t *handle) {
    if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
    *handle = new (std::nothrow) cublasContext{0};
    return *handle ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}

extern "C" cublasStatus_t cublasDestroy_v2(cublasHandle_t handle) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t stream) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    handle->stream = stream;
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasGetStream_v2(cublasHandle_t handle, cudaStream_t *stream) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!stream) return CUBLAS_STATUS_INVALID_VALUE;
    *stream = handle->stream;
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    const int base = mode & ~CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION;
    if (base != CUBLAS_DEFAULT_MATH && base != CUBLAS_TENSOR_OP_MATH && base != CUBLAS_PEDANTIC_MATH &&
        base != CUBLAS_TF32_TENSOR_OP_MATH)
        return invalid_value("cublasSetMathMode", "mode %d", mode);
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t handle, void *workspace,
                                                size_t workspace_bytes) {
    return handle ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_INITIALIZED;
}

/* ---- cuBLAS: GEMMs ---- */

/* The parts of a cuBLAS GEMM call that both entry points share, checked and run. */
static cublasStatus_t run_cublas_gemm(const char *function, cublasHandle_t handle, emu_gemm &g,
                                      cublasOperation_t transa, cublasOperation_t transb,
                                      const void *alpha, const void *beta, cudaDataType a_type,
                                      cudaDataType b_type, cudaDataType c_type,
                                      cublasComputeType_t compute_type) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    bool ok_a, ok_b;
    g.trans_a = is_transposed(transa, &ok_a);
    g.trans_b = is_transposed(transb, &ok_b);
    if (!ok_a || !ok_b) return invalid_value(function, "operations %d, %d", transa, transb);
    if (!alpha || !beta) return invalid_value(function, "alpha or beta is NULL");
    if (!compute_type_supported(compute_type))
        return not_supported(function, "compute type %d (only CUBLAS_COMPUTE_32F and "
                             "CUBLAS_COMPUTE_32F_FAST_16F)", compute_type);
    g.alpha = *static_cast<const float *>(alpha);
    g.beta = *static_cast<const float *>(beta);
    g.ldd = g.ldc;
    g.stride_d = g.stride_c;
    g.out_f32 = c_type == CUDA_R_32F;
    cublasStatus_t status = check_gemm(function, g, a_type, b_type, c_type);
    if (status != CUBLAS_STATUS_SUCCESS) return status;
    return launch_gemm(function, g, handle->stream);
}

extern "C" cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa,
                                       cublasOperation_t transb, int m, int n, int k,
                                       const void *alpha, const void *A, cudaDataType Atype, int lda,
                                       const void *B, cudaDataType Btype, int ldb, const void *beta,
                                       void *C, cudaDataType Ctype, int ldc,
                                       cublasComputeType_t computeType, cublasGemmAlgo_t algo) {
    emu_gemm g = {};
    g.m = m;
    g.n = n;
    g.k = k;
    g.batch_count = 1;
    g.a = static_cast<const uint16_t *>(A);
    g.lda = lda;
    g.b = static_cast<const uint16_t *>(B);
    g.ldb = ldb;
    g.c = C;
    g.d = C;
    g.ldc = ldc;
    return run_cublas_gemm("cublasGemmEx", handle, g, transa, transb, alpha, beta, Atype, Btype,
                           Ctype, computeType);
}

extern "C" cublasStatus_t cublasGemmStridedBatchedEx(
    cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k,
    const void *alpha, const void *A, cudaDataType Atype, int lda, long long int strideA,
    const void *B, cudaDataType Btype, int ldb, long long int strideB, const void *beta, void *C,
    cudaDataType Ctype, int ldc, long long int strideC, int batchCount,
    cublasComputeType_t computeType, cublasGemmAlgo_t algo) {
    emu_gemm g = {};
    g.m = m;
    g.n = n;
    g.k = k;
    g.batch_count = batchCount;
    g.a = static_cast<const uint16_t *>(A);
    g.lda = lda;
    g.stride_a = strideA;
    g.b = static_cast<const uint16_t *>(B);
    g.ldb = ldb;
    g.stride_b = strideB;
    g.c = C;
    g.d = C;
    g.ldc = ldc;
    g.stride_c = strideC;
    return run_cublas_gemm("cublasGemmStridedBatchedEx", handle, g, transa, transb, alpha, beta,
                           Atype, Btype, Ctype, computeType);
}

/* ---- cuBLAS: status names ---- */

extern "C" const char *cublasGetStatusName(cublasStatus_t status) {
    switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_LICENSE_ERROR: return "CUBLAS_STATUS_LICENSE_ERROR";
    }
    return "CUBLAS_STATUS_UNKNOWN";
}

extern "C" const char *cublasGetStatusString(cublasStatus_t status) {
    switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "the resource allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE: return "an invalid numeric value was used as an argument";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "an absent device architectural feature is required";
    case CUBLAS_STATUS_MAPPING_ERROR: return "an access to GPU memory space failed";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "the GPU program failed to execute";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "an internal operation failed";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported";
    case CUBLAS_STATUS_LICENSE_ERROR: return "licensing error";
    }
    return "unknown error";
}

/* ---- cuBLASLt: handle and descriptors ---- */
/* The opaque handles point at these structs, allocated by the *Create functions. */

struct cublasLtContext {}; /* nothing to keep: work goes to the stream each call names */

struct emu_matmul_desc {
    int32_t compute_type; /* cublasComputeType_t */
    int32_t scale_type;   /* cudaDataType of alpha and beta */
    int32_t pointer_mode; /* cublasLtPointerMode_t */
    int32_t trans_a, trans_b; /* cublasOperation_t */
    uint32_t epilogue;    /* cublasLtEpilogue_t */
    const void *bias;     /* [m] device pointer */
    int32_t bias_type;    /* cudaDataType; -1: D's type */
};

struct emu_matrix_layout {
    uint32_t type; /* cudaDataType */
    int32_t order; /* cublasLtOrder_t */
    uint64_t rows, cols;
    int64_t ld;
    int32_t batch_count;
    int64_t batch_stride; /* elements between consecutive matrices */
};

struct emu_matmul_preference {}; /* nothing to keep: the reference GEMM needs no workspace */

static emu_matmul_desc *as_desc(cublasLtMatmulDesc_t desc) {
    return reinterpret_cast<emu_matmul_desc *>(desc);
}

static emu_matrix_layout *as_layout(cublasLtMatrixLayout_t layout) {
    return reinterpret_cast<emu_matrix_layout *>(layout);
}

/* Copies an attribute value of field_size bytes into field, as the *SetAttribute functions do. */
static cublasStatus_t set_field(void *field, size_t field_size, const void *buf, size_t size) {
    if (!buf || size != field_size) return CUBLAS_STATUS_INVALID_VALUE;
    memcpy(field, buf, size);
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasLtCreate(cublasLtHandle_t *handle) {
    if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
    *handle = new (std::nothrow) cublasLtContext;
    return *handle ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}

extern "C" cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) {
    if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t *desc,
                                                   cublasComputeType_t computeType,
                                                   cudaDataType_t scaleType) {
    if (!desc) return CUBLAS_STATUS_INVALID_VALUE;
    emu_matmul_desc *d = new (std::nothrow) emu_matmul_desc{
        (int32_t)computeType, (int32_t)scaleType, CUBLASLT_POINTER_MODE_HOST, CUBLAS_OP_N,
        CUBLAS_OP_N, CUBLASLT_EPILOGUE_DEFAULT, nullptr, -1};
    *desc = reinterpret_cast<cublasLtMatmulDesc_t>(d);
    return d ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}

extern "C" cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
    delete as_desc(desc);
    return CUBLAS_STATUS_SUCCESS;
}

/* The descriptor field behind attr and its size, or NULL for attributes not emulated. */
static void *desc_field(emu_matmul_desc *d, cublasLtMatmulDescAttributes_t attr, size_t *size) {
    switch (attr) {
    case CUBLASLT_MATMUL_DESC_COMPUTE_TYPE: *size = sizeof d->compute_type; return &d->compute_type;
    case CUBLASLT_MATMUL_DESC_SCALE_TYPE: *size = sizeof d->scale_type; return &d->scale_type;
    case CUBLASLT_MATMUL_DESC_POINTER_MODE: *size = sizeof d->pointer_mode; return &d->pointer_mode;
    case CUBLASLT_MATMUL_DESC_TRANSA: *size = sizeof d->trans_a; return &d->trans_a;
    case CUBLASLT_MATMUL_DESC_TRANSB: *size = sizeof d->trans_b; return &d->trans_b;
    case CUBLASLT_MATMUL_DESC_EPILOGUE: *size = sizeof d->epilogue; return &d->epilogue;
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER: *size = sizeof d->bias; return &d->bias;
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: *size = sizeof d->bias_type; return &d->bias_type;
    default: return nullptr;
    }
}

extern "C" cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc,
                                                         cublasLtMatmulDescAttributes_t attr,
                                                         const void *buf, size_t sizeInBytes) {
    if (!desc) return CUBLAS_STATUS_INVALID_VALUE;
    size_t field_size;
    void *field = desc_field(as_desc(desc), attr, &field_size);
    if (!field) return not_supported("cublasLtMatmulDescSetAttribute", "attribute %d", attr);
    return set_field(field, field_size, buf, sizeInBytes);
}

extern "C" cublasStatus_t cublasLtMatmulDescGetAttribute(cublasLtMatmulDesc_t desc,
                                                         cublasLtMatmulDescAttributes_t attr,
                                                         void *buf, size_t sizeInBytes,
                                                         size_t *sizeWritten) {
    if (!desc) return CUBLAS_STATUS_INVALID_VALUE;
    size_t field_size;
    const void *field = desc_field(as_desc(desc), attr, &field_size);
    if (!field) return not_supported("cublasLtMatmulDescGetAttribute", "attribute %d", attr);
    if (sizeInBytes == 0) { /* a query of the size */
        if (!sizeWritten) return CUBLAS_STATUS_INVALID_VALUE;
        *sizeWritten = field_size;
        return CUBLAS_STATUS_SUCCESS;
    }
    if (!buf || sizeInBytes != field_size) return CUBLAS_STATUS_INVALID_VALUE;
    memcpy(buf, field, field_size);
    if (sizeWritten) *sizeWritten = field_size;
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t *layout,
                                                     cudaDataType type, uint64_t rows,
                                                     uint64_t cols, int64_t ld) {
    if (!layout) return CUBLAS_STATUS_INVALID_VALUE;
    emu_matrix_layout *l = new (std::nothrow) emu_matrix_layout{
        (uint32_t)type, CUBLASLT_ORDER_COL, rows, cols, ld, 1, 0};
    *layout = reinterpret_cast<cublasLtMatrixLayout_t>(l);
    return l ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}

extern "C" cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout) {
    delete as_layout(layout);
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t layout,
                                                           cublasLtMatrixLayoutAttribute_t attr,
                                                           const void *buf, size_t sizeInBytes) {
    if (!layout) return CUBLAS_STATUS_INVALID_VALUE;
    emu_matrix_layout *l = as_layout(layout);
    switch (attr) {
    case CUBLASLT_MATRIX_LAYOUT_TYPE: return set_field(&l->type, sizeof l->type, buf, sizeInBytes);
    case CUBLASLT_MATRIX_LAYOUT_ORDER: return set_field(&l->order, sizeof l->order, buf, sizeInBytes);
    case CUBLASLT_MATRIX_LAYOUT_ROWS: return set_field(&l->rows, sizeof l->rows, buf, sizeInBytes);
    case CUBLASLT_MATRIX_LAYOUT_COLS: return set_field(&l->cols, sizeof l->cols, buf, sizeInBytes);
    case CUBLASLT_MATRIX_LAYOUT_LD: return set_field(&l->ld, sizeof l->ld, buf, sizeInBytes);
    case CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT:
        return set_field(&l->batch_count, sizeof l->batch_count, buf, sizeInBytes);
    case CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET:
        return set_field(&l->batch_stride, sizeof l->batch_stride, buf, sizeInBytes);
    default: return not_supported("cublasLtMatrixLayoutSetAttribute", "attribute %d", attr);
    }
}

extern "C" cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t *pref) {
    if (!pref) return CUBLAS_STATUS_INVALID_VALUE;
    *pref = reinterpret_cast<cublasLtMatmulPreference_t>(new (std::nothrow) emu_matmul_preference);
    return *pref ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}

extern "C" cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
    delete reinterpret_cast<emu_matmul_preference *>(pref);
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasLtMatmulPreferenceSetAttribute(
    cublasLtMatmulPreference_t pref, cublasLtMatmulPreferenceAttributes_t attr, const void *buf,
    size_t sizeInBytes) {
    if (!pref) return CUBLAS_STATUS_INVALID_VALUE;
    if (attr != CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES)
        return not_supported("cublasLtMatmulPreferenceSetAttribute", "attribute %d", attr);
    return buf && sizeInBytes == sizeof(uint64_t) ? CUBLAS_STATUS_SUCCESS
                                                  : CUBLAS_STATUS_INVALID_VALUE;
}

/* ---- cuBLASLt: matmul ---- */

/* op(X)'s rows and columns, from X's layout. */
static void op_shape(const emu_matrix_layout *l, bool trans, uint64_t *rows, uint64_t *cols) {
    *rows = trans ? l->cols : l->rows;
    *cols = trans ? l->rows : l->cols;
}

/* The GEMM that a descriptor and four layouts describe, without its pointers and scalars: the
 * checks that cublasLtMatmulAlgoGetHeuristic and cublasLtMatmul share. */
static cublasStatus_t describe_matmul(const char *function, const emu_matmul_desc *d,
                                      const emu_matrix_layout *la, const emu_matrix_layout *lb,
                                      const emu_matrix_layout *lc, const emu_matrix_layout *ld,
                                      emu_gemm *g) {
    if (!d || !la || !lb || !lc || !ld) return invalid_value(function, "a descriptor is NULL");
    if (!compute_type_supported(d->compute_type) || d->scale_type != CUDA_R_32F)
        return not_supported(function, "compute type %d with scale type %d (only "
                             "CUBLAS_COMPUTE_32F[_FAST_16F] with CUDA_R_32F)", d->compute_type,
                             d->scale_type);
    if (d->pointer_mode != CUBLASLT_POINTER_MODE_HOST)
        return not_supported(function, "pointer mode %d (only CUBLASLT_POINTER_MODE_HOST)",
                             d->pointer_mode);
    const uint32_t epilogue = d->epilogue;
    if (epilogue != CUBLASLT_EPILOGUE_DEFAULT && epilogue != CUBLASLT_EPILOGUE_BIAS &&
        epilogue != CUBLASLT_EPILOGUE_GELU && epilogue != CUBLASLT_EPILOGUE_GELU_BIAS)
        return not_supported(function, "epilogue %u (only DEFAULT, BIAS, GELU, GELU_BIAS)", epilogue);
    if (la->order != CUBLASLT_ORDER_COL || lb->order != CUBLASLT_ORDER_COL ||
        lc->order != CUBLASLT_ORDER_COL || ld->order != CUBLASLT_ORDER_COL)
        return not_supported(function, "a matrix order other than CUBLASLT_ORDER_COL");
    if (lc->type != ld->type)
        return not_supported(function, "C of type %u and D of type %u", lc->type, ld->type);
    if (d->bias_type != -1 && (uint32_t)d->bias_type != ld->type)
        return not_supported(function, "a bias of type %d with D of type %u", d->bias_type, ld->type);
    if (la->batch_count != ld->batch_count || lb->batch_count != ld->batch_count ||
        lc->batch_count != ld->batch_count)
        return not_supported(function, "batch counts %d, %d, %d, %d that differ", la->batch_count,
                             lb->batch_count, lc->batch_count, ld->batch_count);

    bool ok_a, ok_b;
    g->trans_a = is_transposed((cublasOperation_t)d->trans_a, &ok_a);
    g->trans_b = is_transposed((cublasOperation_t)d->trans_b, &ok_b);
    if (!ok_a || !ok_b) return invalid_value(function, "operations %d, %d", d->trans_a, d->trans_b);
    uint64_t a_rows, a_cols, b_rows, b_cols;
    op_shape(la, g->trans_a, &a_rows, &a_cols);
    op_shape(lb, g->trans_b, &b_rows, &b_cols);
    if (a_rows != ld->rows || b_cols != ld->cols || a_cols != b_rows || lc->rows != ld->rows ||
        lc->cols != ld->cols)
        return invalid_value(function, "op(A) %llux%llu, op(B) %llux%llu, C %llux%llu, D %llux%llu "
                             "do not fit", (unsigned long long)a_rows, (unsigned long long)a_cols,
                             (unsigned long long)b_rows, (unsigned long long)b_cols,
                             (unsigned long long)lc->rows, (unsigned long long)lc->cols,
                             (unsigned long long)ld->rows, (unsigned long long)ld->cols);
    if (ld->rows > INT32_MAX || ld->cols > INT32_MAX || a_cols > INT32_MAX)
        return not_supported(function, "sizes past 2^31 - 1");
    g->m = (int)ld->rows;
    g->n = (int)ld->cols;
    g->k = (int)a_cols;
    g->batch_count = ld->batch_count;
    g->lda = la->ld;
    g->stride_a = la->batch_stride;
    g->ldb = lb->ld;
    g->stride_b = lb->batch_stride;
    g->ldc = lc->ld;
    g->stride_c = lc->batch_stride;
    g->ldd = ld->ld;
    g->stride_d = ld->batch_stride;
    g->out_f32 = ld->type == CUDA_R_32F;
    g->gelu = epilogue == CUBLASLT_EPILOGUE_GELU || epilogue == CUBLASLT_EPILOGUE_GELU_BIAS;
    return check_gemm(function, *g, (cudaDataType)la->type, (cudaDataType)lb->type,
                      (cudaDataType)ld->type);
}

extern "C" cublasStatus_t cublasLtMatmulAlgoGetHeuristic(
    cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t operationDesc, cublasLtMatrixLayout_t Adesc,
    cublasLtMatrixLayout_t Bdesc, cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc,
    cublasLtMatmulPreference_t preference, int requestedAlgoCount,
    cublasLtMatmulHeuristicResult_t heuristicResultsArray[], int *returnAlgoCount) {
    const char *function = "cublasLtMatmulAlgoGetHeuristic";
    if (!lightHandle) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (requestedAlgoCount <= 0 || !heuristicResultsArray || !returnAlgoCount || !preference)
        return invalid_value(function, "no room for results");
    emu_gemm g = {};
    cublasStatus_t status = describe_matmul(function, as_desc(operationDesc), as_layout(Adesc),
                                            as_layout(Bdesc), as_layout(Cdesc), as_layout(Ddesc), &g);
    if (status != CUBLAS_STATUS_SUCCESS) return status;
    memset(&heuristicResultsArray[0], 0, sizeof heuristicResultsArray[0]); /* the one algorithm */
    heuristicResultsArray[0].state = CUBLAS_STATUS_SUCCESS;
    heuristicResultsArray[0].wavesCount = 1.0f;
    *returnAlgoCount = 1;
    return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasLtMatmul(cublasLtHandle_t lightHandle,
                                         cublasLtMatmulDesc_t computeDesc, const void *alpha,
                                         const void *A, cublasLtMatrixLayout_t Adesc, const void *B,
                                         cublasLtMatrixLayout_t Bdesc, const void *beta,
                                         const void *C, cublasLtMatrixLayout_t Cdesc, void *D,
                                         cublasLtMatrixLayout_t Ddesc,
                                         const cublasLtMatmulAlgo_t *algo, void *workspace,
                                         size_t workspaceSizeInBytes, cudaStream_t stream) {
    const char *function = "cublasLtMatmul";
    if (!lightHandle) return CUBLAS_STATUS_NOT_INITIALIZED;
    emu_gemm g = {};
    const emu_matmul_desc *d = as_desc(computeDesc);
    cublasStatus_t status = describe_matmul(function, d, as_layout(Adesc), as_layout(Bdesc),
                                            as_layout(Cdesc), as_layout(Ddesc), &g);
    if (status != CUBLAS_STATUS_SUCCESS) return status;
    if (!alpha || !beta) return invalid_value(function, "alpha or beta is NULL");
    g.alpha = *static_cast<const float *>(alpha);
    g.beta = *static_cast<const float *>(beta);
    g.a = static_cast<const uint16_t *>(A);
    g.b = static_cast<const uint16_t *>(B);
    g.c = C;
    g.d = D;
    if (g.beta != 0.0f && !C) return invalid_value(function, "C is NULL with beta != 0");
    if (C == D && (g.ldc != g.ldd || g.stride_c != g.stride_d))
        return not_supported(function, "C == D (in place) with different layouts");
    const uint32_t epilogue = d->epilogue;
    if (epilogue == CUBLASLT_EPILOGUE_BIAS || epilogue == CUBLASLT_EPILOGUE_GELU_BIAS) {
        if (!d->bias) return invalid_value(function, "a bias epilogue with no bias pointer");
        g.bias = d->bias;
    }
    return launch_gemm(function, g, stream);
}
