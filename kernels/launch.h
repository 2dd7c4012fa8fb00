/*
 * Kernel launch and dynamic shared memory, written once for both builds.
 *
 * Under nvcc, LAUNCH_KERNEL is a plain <<<grid, block, shared_bytes, stream>>> launch. In the
 * emulation build (GPT2_CUDA_EMULATION, kernels/emu/), the same .cu sources are compiled as host
 * C++ and LAUNCH_KERNEL runs the kernel on the SIMT emulator. A kernel template with several
 * arguments goes in parentheses: LAUNCH_KERNEL((kernel<128, true>), grid, block, 0, stream, ...).
 *
 * DYNAMIC_SHARED(type, name) inside a kernel declares `type *name`, pointing at the block's
 * dynamic shared memory (the launch's shared_bytes), aligned to 16 bytes.
 */
#ifndef GPT2_LAUNCH_H
#define GPT2_LAUNCH_H

#ifdef GPT2_CUDA_EMULATION
#include "kernels/emu/emu.h"
#define LAUNCH_KERNEL(kernel, grid, block, shared_bytes, stream, ...) \
    emu_launch(#kernel, kernel, (grid), (block), (shared_bytes), (stream), ##__VA_ARGS__)
#define DYNAMIC_SHARED(type, name) type *name = reinterpret_cast<type *>(emu_dynamic_shared())
#else
#define LAUNCH_KERNEL(kernel, grid, block, shared_bytes, stream, ...) \
    kernel<<<(grid), (block), (shared_bytes), (stream)>>>(__VA_ARGS__)
#define DYNAMIC_SHARED(type, name)                            \
    extern __shared__ __align__(16) unsigned char name##_raw[]; \
    type *name = reinterpret_cast<type *>(name##_raw)
#endif

#endif
