/*
 * The C launcher API of every kernel in kernels/. Launchers take device pointers and a stream,
 * check their preconditions and their launch, and never synchronize.
 */
#ifndef GPT2_KERNELS_H
#define GPT2_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime.h>

/* An IEEE binary16 value: __half inside CUDA sources, its raw bits from C. Same size and layout. */
#ifdef __CUDACC__
#include <cuda_fp16.h>
typedef __half gpt2_f16;
#else
typedef uint16_t gpt2_f16;
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- device.cu: the device, as the host driver needs to know it ---- */

/* Number of usable CUDA devices; 0 when there is no device or no driver. */
int gpt2_cuda_device_count(void);

/* ---- convert.cu: checkpoint dtypes to the engine's fp16 weights ---- */

typedef enum { CONVERT_FROM_F32, CONVERT_FROM_F16, CONVERT_FROM_BF16 } convert_source;

/*
 * out[i] = fp16(in[i]) for i < n, rounding to nearest even; in holds n elements of the source
 * dtype (the raw checkpoint bytes, copied to the device), aligned to its element size.
 */
void launch_convert_to_f16(gpt2_f16 *out /* [n] */, const void *in /* [n] */, convert_source from,
                           size_t n, cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif
