/*
 * Error checks for CUDA and cuBLAS calls, usable from C and CUDA sources.
 *
 * Each failure prints the failing statement, the file and the line, and exits: a failed CUDA
 * call leaves the context in an unknown state, so there is nothing sensible to continue with.
 * Build with -DGPT2_SYNC_CHECK (CMake option GPT2_SYNC_CHECK) to synchronize after every launch,
 * so that an asynchronous fault is reported against the op that caused it.
 */
#ifndef GPT2_CUDA_CHECK_H
#define GPT2_CUDA_CHECK_H

#include <stdio.h>
#include <stdlib.h>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#define CUDA_CHECK(call)                                                                     \
    do {                                                                                     \
        cudaError_t status_ = (call);                                                        \
        if (status_ != cudaSuccess) {                                                        \
            fprintf(stderr, "CUDA error %s at %s:%d in %s\n", cudaGetErrorString(status_),   \
                    __FILE__, __LINE__, #call);                                              \
            exit(EXIT_FAILURE);                                                              \
        }                                                                                    \
    } while (0)

#define CUBLAS_CHECK(call)                                                                   \
    do {                                                                                     \
        cublasStatus_t status_ = (call);                                                     \
        if (status_ != CUBLAS_STATUS_SUCCESS) {                                              \
            fprintf(stderr, "cuBLAS error %s at %s:%d in %s\n", cublasGetStatusString(status_), \
                    __FILE__, __LINE__, #call);                                              \
            exit(EXIT_FAILURE);                                                              \
        }                                                                                    \
    } while (0)

/*
 * After a kernel launch on `stream`: the launch error always; in sync-check builds also the
 * execution error, by synchronizing the stream, except while the stream is being captured into
 * a CUDA graph (a sync there would invalidate the capture).
 */
#ifdef GPT2_SYNC_CHECK
#define LAUNCH_CHECK(op_name, stream)                                                        \
    do {                                                                                     \
        CUDA_CHECK(cudaGetLastError());                                                      \
        cudaStreamCaptureStatus capture_ = cudaStreamCaptureStatusNone;                      \
        CUDA_CHECK(cudaStreamIsCapturing((stream), &capture_));                              \
        cudaError_t sync_ = capture_ == cudaStreamCaptureStatusNone                          \
                                ? cudaStreamSynchronize(stream) : cudaSuccess;               \
        if (sync_ != cudaSuccess) {                                                          \
            fprintf(stderr, "CUDA error %s in op %s\n", cudaGetErrorString(sync_), op_name); \
            exit(EXIT_FAILURE);                                                              \
        }                                                                                    \
    } while (0)
#else
#define LAUNCH_CHECK(op_name, stream) CUDA_CHECK(cudaGetLastError())
#endif

/* A launcher's precondition: when it fails, the op and the broken condition are printed. */
#define LAUNCH_REQUIRE(cond, op_name)                                                        \
    do {                                                                                     \
        if (!(cond)) {                                                                       \
            fprintf(stderr, "%s: precondition failed: %s (%s:%d)\n", op_name, #cond,         \
                    __FILE__, __LINE__);                                                     \
            exit(EXIT_FAILURE);                                                              \
        }                                                                                    \
    } while (0)

#define CEIL_DIV(a, b) (((a) + (b) - 1) / (b))

#endif
