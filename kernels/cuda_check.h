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

/* After a kernel launch: the launch error always, the execution error in sync-check builds. */
#ifdef GPT2_SYNC_CHECK
#define LAUNCH_CHECK(op_name)                                                                \
    do {                                                                                     \
        CUDA_CHECK(cudaGetLastError());                                                      \
        cudaError_t sync_ = cudaDeviceSynchronize();                                         \
        if (sync_ != cudaSuccess) {                                                          \
            fprintf(stderr, "CUDA error %s in op %s\n", cudaGetErrorString(sync_), op_name); \
            exit(EXIT_FAILURE);                                                              \
        }                                                                                    \
    } while (0)
#else
#define LAUNCH_CHECK(op_name) CUDA_CHECK(cudaGetLastError())
#endif

#define CEIL_DIV(a, b) (((a) + (b) - 1) / (b))

#endif
