/*
 * The SIMT emulator, device side: what a kernel sees in the emulation build (GPT2_CUDA_EMULATION).
 *
 * CMake force-includes this header (-include) into every .cu source, which g++ then compiles as
 * C++17. It gives CUDA's qualifiers a host meaning, brings in the toolkit's own headers (types,
 * the runtime API's declarations, fp16 and bf16), and declares the built-in variables, the
 * intrinsics (emu_device.h) and emu_launch, which kernels/launch.h's LAUNCH_KERNEL expands to.
 * kernels/emu/README.md describes the execution model and its limits.
 */
#ifndef GPT2_EMU_H
#define GPT2_EMU_H

#ifndef __cplusplus
#error "kernels/emu/emu.h is C++: the emulation build compiles .cu sources as C++17"
#endif

/*
 * ---- CUDA's qualifiers ----
 * Defined before the toolkit's headers, whose crt/host_defines.h keeps them when they exist.
 * A kernel is a plain function. __shared__ storage is one copy per OS thread, and every block
 * runs wholly on one worker thread before that thread starts another block, so it is one copy
 * per running block (kernels/emu/README.md, "Shared memory").
 */
#define __global__
#define __device__
#define __host__
#define __constant__
#define __managed__
#define __grid_constant__
#define __shared__ static thread_local
#define __launch_bounds__(...)

#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

/*
 * ---- built-in variables ----
 * Variables, not macros, so that the toolkit's struct fields and parameters of the same names
 * (driver_types.h has gridDim and blockDim fields) stay untouched. The scheduler sets them for
 * the thread it resumes; a fiber never leaves its worker thread, so thread_local is per thread.
 */
inline thread_local uint3 threadIdx;
inline thread_local uint3 blockIdx;
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;
constexpr int warpSize = 32;

/* ---- the launch interface (LAUNCH_KERNEL in kernels/launch.h) ---- */

namespace emu {

/* One kernel launch, as the runtime checks, runs or records it into a graph. */
struct kernel_launch {
    const char *name;       /* the kernel as written at the launch, for messages */
    const void *function;   /* the kernel's address, as cudaFuncSetAttribute names it */
    dim3 grid, block;
    size_t shared_bytes;    /* dynamic shared memory per block */
    std::function<void()> body; /* one thread: calls the kernel with a copy of the arguments */
};

/* Checks the launch as a GPU would, then runs it on `stream` (or records it while capturing). */
void launch(kernel_launch launch, cudaStream_t stream);

} // namespace emu

/*
 * kernel<<<grid, block, shared_bytes, stream>>>(args...): each argument is converted to its
 * parameter's type once, at the launch, as nvcc does; every thread then gets its own copy.
 */
template <typename... Params, typename... Args>
void emu_launch(const char *name, void (*kernel)(Params...), dim3 grid, dim3 block,
                size_t shared_bytes, cudaStream_t stream, Args &&...args) {
    static_assert(sizeof...(Params) == sizeof...(Args), "wrong number of kernel arguments");
    std::tuple<std::decay_t<Params>...> values(std::forward<Args>(args)...);
    emu::launch({name, reinterpret_cast<const void *>(kernel), grid, block, shared_bytes,
                 [kernel, values]() { std::apply(kernel, values); }},
                stream);
}

/* The running block's dynamic shared memory (DYNAMIC_SHARED), 16-byte aligned. */
void *emu_dynamic_shared(void);

#include "kernels/emu/emu_device.h"

#endif
