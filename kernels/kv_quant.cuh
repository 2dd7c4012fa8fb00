/*
 * cache/kv_quant.h's INT8 format on the device, for a 64-wide row held by an aligned group of
 * 8 lanes, 8 values each (part = lane % 8): the quantizer of the INT8 KV write (kv_quant.cu) and
 * of MiniCache's merged rows (kv_minicache.cu), so that both store what kv_quantize_head would:
 *   scale = __float2half_ru(fminf(__fdiv_rn(max|x|, 127), 65504))
 *   q[i]  = fmaxf(-127, fminf(rintf(__fdiv_rn(x[i], scale)), 127)), or 0 when the scale is 0
 * (IEEE division, rounding up, ties to even, the clamp in fp32: even a non-finite value gets the
 * CPU's code, +-inf and NaN saturating).
 */
#ifndef GPT2_KV_QUANT_CUH
#define GPT2_KV_QUANT_CUH

#include <math.h>
#include <stdint.h>

#include <cuda_fp16.h>

#include "kernels/half8.cuh"
#include "kernels/reduce.cuh"

#define LANES_PER_ROW 8 /* x 8 values = one 64-wide row */
#define MAX_CODE 127.0f
#define HALF_MAX 65504.0f

/* The mask of the calling lane's group: the LANES_PER_ROW lanes that hold its row. */
static __device__ __forceinline__ unsigned row_lanes_mask() {
    return ((1u << LANES_PER_ROW) - 1) << (threadIdx.x % 32 / LANES_PER_ROW * LANES_PER_ROW);
}

/* op over the row's lanes, in each of them; the group reaches it together, other groups need not. */
template <class T, class Op> static __device__ __forceinline__ T row_lanes_reduce(T v, Op op) {
    const unsigned group = row_lanes_mask();
    for (int offset = LANES_PER_ROW / 2; offset > 0; offset /= 2)
        v = op(v, __shfl_xor_sync(group, v, offset, LANES_PER_ROW));
    return v;
}

/* The code of x at a nonzero scale, as kv_quantize_head computes it. */
static __device__ __forceinline__ int8_t quantize_value(float x, float scale) {
    return (int8_t)fmaxf(-MAX_CODE, fminf(rintf(__fdiv_rn(x, scale)), MAX_CODE));
}

/* One lane's share of quantizing a row (its lanes reach it together): v its 8 values, part which. */
static __device__ __forceinline__ void quantize_row_part(int8_t *codes /* [64] the row's codes */,
                                                         __half *scale /* [1] the row's scale */,
                                                         const float (&v)[8], int part) {
    float amax = 0.0f; /* fmaxf drops a NaN, as the CPU's does: no lane's amax is NaN */
    for (int i = 0; i < 8; i++) amax = fmaxf(amax, fabsf(v[i]));
    amax = row_lanes_reduce(amax, max_op());
    const __half s = __float2half_ru(fminf(__fdiv_rn(amax, MAX_CODE), HALF_MAX));
    const float s_f = __half2float(s);
    int8x8 q;
    for (int i = 0; i < 8; i++) q.c[i] = s_f == 0.0f ? 0 : quantize_value(v[i], s_f);
    store_int8x8(codes + part * 8, q);
    if (part == 0) *scale = s;
}

/* The same for 8 fp16 values (exact in fp32). */
static __device__ __forceinline__ void quantize_row_part(int8_t *codes /* [64] the row's codes */,
                                                         __half *scale /* [1] the row's scale */,
                                                         half8 x, int part) {
    float v[8];
    unpack_half8(x, v);
    quantize_row_part(codes, scale, v, part);
}

#endif
