/*
 * IEEE binary16 (fp16) on the host: exact conversions between fp16 bits and float, the same
 * results as CUDA's __half2float and __float2half_rn. Header-only C11, so that the checkpoint
 * loader, the KV quantization format and the tests share one definition.
 */
#ifndef GPT2_HALF_H
#define GPT2_HALF_H

#include <stdint.h>
#include <string.h>

/* The float whose IEEE binary32 bits are `bits`. */
static inline float float_from_bits(uint32_t bits) {
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* fp16 to float; exact for every input, subnormals, infinities and NaN payloads included. */
static inline float half_to_float(uint16_t bits) {
    const uint32_t sign = (uint32_t)(bits & 0x8000) << 16;
    const uint32_t exponent = (bits >> 10) & 0x1F;
    const uint32_t mantissa = bits & 0x3FF;
    if (exponent == 0x1F) return float_from_bits(sign | 0x7F800000 | (mantissa << 13));
    if (exponent == 0) { /* zero or subnormal: mantissa * 2^-24, exact in float */
        const float magnitude = (float)mantissa * 0x1p-24f;
        return sign ? -magnitude : magnitude;
    }
    return float_from_bits(sign | ((exponent + 127 - 15) << 23) | (mantissa << 13));
}

/* value >> shift (1 <= shift <= 31), rounded to nearest, ties to even. */
static inline uint32_t half_shift_right_rne(uint32_t value, uint32_t shift) {
    const uint32_t kept = value >> shift, dropped = value & ((1u << shift) - 1);
    const uint32_t halfway = 1u << (shift - 1);
    return kept + (dropped > halfway || (dropped == halfway && (kept & 1)));
}

/*
 * float to fp16, rounded to nearest with ties to even. Magnitudes from 65520 up become
 * infinity; NaN stays NaN (quiet, sign and the top payload bits kept).
 */
static inline uint16_t float_to_half(float x) {
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    const uint16_t sign = (uint16_t)((bits >> 16) & 0x8000);
    const uint32_t magnitude = bits & 0x7FFFFFFF;
    if (magnitude > 0x7F800000) /* NaN */
        return (uint16_t)(sign | 0x7E00 | ((magnitude >> 13) & 0x3FF));
    if (magnitude >= 0x47800000) return (uint16_t)(sign | 0x7C00); /* >= 2^16, or infinity */
    if (magnitude >= 0x38800000) {                                 /* >= 2^-14: a normal half */
        /* Re-bias the exponent, round the mantissa to 10 bits; a carry may reach infinity. */
        const uint32_t rebased = magnitude - ((uint32_t)(127 - 15) << 23);
        return (uint16_t)(sign | half_shift_right_rne(rebased, 13));
    }
    const uint32_t exponent = magnitude >> 23;
    if (exponent < 102) return sign; /* below 2^-25: rounds to zero */
    /* A subnormal half counts units of 2^-24: the value is m * 2^(exponent - 150). */
    const uint32_t m = (magnitude & 0x7FFFFF) | 0x800000;
    return (uint16_t)(sign | half_shift_right_rne(m, 126 - exponent));
}

#endif
