/*
 * Inside the SIMT emulator: what its parts (the .cpp files of kernels/emu/) share, and no kernel sees.
 *   emu_simt.cpp     runs a checked launch: worker threads, fibers, barriers, warps, faults
 *   emu_runtime.cpp  the CUDA runtime API, part 1: errors, the device, memory
 *   emu_stream.cpp   the CUDA runtime API, part 2: streams, capture, graphs, events, launches
 *   emu_cublas.cpp   the cuBLAS(Lt) subset, which puts its GEMMs on streams through enqueue()
 */
#ifndef GPT2_EMU_INTERNAL_H
#define GPT2_EMU_INTERNAL_H

#include "kernels/emu/emu.h"

namespace emu {

/* The limits a launch is checked against: an H100/H200 (compute capability 9.0). */
constexpr unsigned max_threads_per_block = 1024;
constexpr unsigned max_block_dim[3] = {1024, 1024, 64};
constexpr unsigned max_grid_dim[3] = {2147483647u, 65535, 65535};
constexpr size_t default_dynamic_shared = 48 * 1024; /* without cudaFuncSetAttribute */
constexpr size_t optin_dynamic_shared = 227 * 1024;  /* cudaDevAttrMaxSharedMemoryPerBlockOptin */

/* ---- emu_simt.cpp ---- */

/* Runs every block of a launch that passed the launch checks; returns when all have finished. */
void run_grid(const kernel_launch &launch);

/* ---- emu_runtime.cpp ---- */

/* Fills [p, p + bytes) with the 16-bit pattern 0x7FFF (bytes FF 7F): NaN in fp16, bf16 and
 * fp32, a huge positive integer, never a valid id and never -1. */
void poison(void *p, size_t bytes);

/* Records `error` as the calling host thread's last error (cudaGetLastError) and returns it. */
cudaError_t set_error(cudaError_t error);

/* Whether [p, p + bytes) lies inside one live device allocation. */
bool device_range(const void *p, size_t bytes);

/* The most dynamic shared memory a launch of `function` may ask for (cudaFuncSetAttribute). */
size_t dynamic_shared_limit(const void *function);

/* ---- emu_stream.cpp ---- */

/*
 * One operation on a stream: run at once (emulated streams execute eagerly, in call order), or,
 * while the stream is being captured, recorded into the graph and run at each replay. Returns
 * the operation's status, or the capture's; a failure also becomes the thread's last error.
 */
using stream_op = std::function<cudaError_t()>;
cudaError_t enqueue(cudaStream_t stream, const char *what, stream_op op);

/*
 * Calls that a stream capture in progress forbids, as on a GPU:
 *   unsafe_call    cudaMalloc, cudaFree: during a global capture, or a thread-local one of this
 *                  thread, unless this thread's capture mode is relaxed;
 *   legacy_stream  work on the legacy stream (cudaMemcpy, cudaMemset...): while a blocking
 *                  stream is capturing;
 *   synchronize    cudaDeviceSynchronize: during any capture.
 * A forbidden call invalidates the captures concerned, prints why and returns the error
 * (cudaErrorStreamCaptureUnsupported or cudaErrorStreamCaptureImplicit); else cudaSuccess.
 */
enum class capture_rule { unsafe_call, legacy_stream, synchronize };
cudaError_t capture_forbids(const char *api, capture_rule rule);

} // namespace emu

#endif
