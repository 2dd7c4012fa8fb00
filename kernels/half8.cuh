/*
 * Eight fp16 values moved as one 128-bit access, for the bandwidth-bound kernels. Callers
 * guarantee 16-byte alignment (row strides that are multiples of 8 halves on aligned buffers).
 * Also eight int8 codes of the INT8 KV format (cache/kv_quant.h) as one 64-bit access, 8-byte
 * aligned, and their dequantization.
 */
#ifndef GPT2_HALF8_CUH
#define GPT2_HALF8_CUH

#include <stdint.h>
#include <string.h>

#include <cuda_fp16.h>

struct half8 {
    __half2 h[4];
};

/* Whether a pointer may be used for half8 accesses (launchers check their operands with it). */
static inline bool half8_aligned(const void *p) { return (uintptr_t)p % 16 == 0; }

/* Through uint4, the type that compiles to one 128-bit load or store (a struct of __half2 does not). */
static __device__ __forceinline__ half8 load_half8(const __half *p /* [8], 16-byte aligned */) {
    const uint4 raw = *reinterpret_cast<const uint4 *>(p);
    half8 v;
    memcpy(&v, &raw, sizeof v);
    return v;
}

static __device__ __forceinline__ void store_half8(__half *p /* [8], 16-byte aligned */, half8 v) {
    uint4 raw;
    memcpy(&raw, &v, sizeof raw);
    *reinterpret_cast<uint4 *>(p) = raw;
}

static __device__ __forceinline__ void unpack_half8(half8 v, float (&out)[8]) {
    for (int j = 0; j < 4; j++) {
        const float2 f = __half22float2(v.h[j]);
        out[2 * j] = f.x;
        out[2 * j + 1] = f.y;
    }
}

/* Rounds to nearest even. */
static __device__ __forceinline__ half8 pack_half8(const float (&in)[8]) {
    half8 v;
    for (int j = 0; j < 4; j++) v.h[j] = __floats2half2_rn(in[2 * j], in[2 * j + 1]);
    return v;
}

struct int8x8 {
    int8_t c[8];
};

static __device__ __forceinline__ int8x8 load_int8x8(const int8_t *p /* [8], 8-byte aligned */) {
    const uint2 raw = *reinterpret_cast<const uint2 *>(p);
    int8x8 v;
    memcpy(&v, &raw, sizeof v);
    return v;
}

static __device__ __forceinline__ void store_int8x8(int8_t *p /* [8], 8-byte aligned */, int8x8 v) {
    uint2 raw;
    memcpy(&raw, &v, sizeof raw);
    *reinterpret_cast<uint2 *>(p) = raw;
}

/* out[i] = code[i] * scale in fp32: exact (7 + 11 significant bits), as kv_dequantize_head. */
static __device__ __forceinline__ void dequantize_int8x8(int8x8 v, float scale, float (&out)[8]) {
    for (int i = 0; i < 8; i++) out[i] = (float)v.c[i] * scale;
}

#endif
