/*
 * KV cache formats, and the INT8 quantization format that the CPU reference applies now and the
 * CUDA KV-write and attention kernels must reproduce bit for bit.
 *
 * INT8: symmetric, one scale per (token, head) over the head's 64 values.
 *   scale = the smallest fp16 >= min(max|x| / 127, 65504)   (fp32 division, then round up)
 *   q[i]  = clamp(rint(x[i] / scale), -127, 127)           (fp32 division, ties to even)
 *   x'[i] = q[i] * scale                                   (in fp32: exact, 7 + 11 bits)
 * A head whose scale is 0 (all zeros, or max|x| below 127 * 2^-150) stores q = 0.
 *
 * Why these choices:
 * - The scale is stored as fp16 bits: 64 + 2 bytes per token and head against fp16's 128, so a
 *   KV budget holds 128 / 66 = 1.94x the tokens of fp16 (an fp32 scale would give 1.88x, below
 *   the 1.9x the pool must reach).
 * - Rounding the scale up, not to nearest, keeps |x / scale| <= 127, so no value is clamped and
 *   |x - x'| <= scale / 2 holds for every element (up to fp32 rounding: a factor 1 + 2^-10
 *   covers it), fp16-subnormal scales included. To nearest, max|x| could exceed 127 * scale and
 *   be clipped by up to 127 * 2^-25 when the scale is subnormal.
 * - rint (ties to even) is the default IEEE rounding, so the GPU gets it without a special mode.
 * The CUDA side must compute exactly: __float2half_ru(fminf(__fdiv_rn(amax, 127.f), 65504.f))
 * for the scale and fmaxf(-127, fminf(rintf(__fdiv_rn(x, scale)), 127)) for q (plain `/` is not
 * IEEE division under --use_fast_math; the fminf/fmaxf clamp sends a NaN to 127 as the C code
 * here does, where __float2int_rn would give 0). Dequantization is q * scale in fp32.
 * Inputs are finite (K and V of a sane forward pass); a non-finite value gets a saturated code,
 * never undefined behaviour.
 */
#ifndef GPT2_KV_QUANT_H
#define GPT2_KV_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KV_HEAD_SIZE 64
#define KV_INT8_MAX_CODE 127

/* How K and V are stored. FP32 is the CPU reference's exact cache; the GPU pool has FP16, INT8. */
typedef enum { KV_FORMAT_FP32, KV_FORMAT_FP16, KV_FORMAT_INT8 } kv_format;

/* "fp32", "fp16" or "int8". */
const char *kv_format_name(kv_format format);
/* Parses one of those names; false for anything else. */
bool kv_format_parse(const char *name, kv_format *out);
/* Bytes that one token's head of K (or of V) takes, scale included: 256, 128 or 66. */
size_t kv_format_bytes_per_head(kv_format format);

/* Quantizes one head of one token: codes q and the fp16 bits of its scale. */
void kv_quantize_head(int8_t q[KV_HEAD_SIZE], uint16_t *scale, const float x[KV_HEAD_SIZE]);
/* out[i] = q[i] * scale, in fp32. */
void kv_dequantize_head(float out[KV_HEAD_SIZE], const int8_t q[KV_HEAD_SIZE], uint16_t scale);

#endif
