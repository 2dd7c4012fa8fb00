/*
 * The test oracle for fp16 rounding, by arithmetic on neighbours: h is the correctly rounded
 * fp16 of x (nearest, ties to even) when no fp16 neighbour of h is closer to x and, on a tie,
 * h is the even one. Shared by the host conversion's test and the GPU conversion kernel's test.
 */
#ifndef GPT2_TEST_HALF_ORACLE_H
#define GPT2_TEST_HALF_ORACLE_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>

#include "kernels/half.h"

#define HALF_OVERFLOW_THRESHOLD 65520.0f /* halfway from 65504 (the largest fp16) to 2^16 */

/* Whether `neighbour` (a finite fp16) is closer to x than err, or as close while h is odd. */
static inline bool half_neighbour_wins(float x, uint16_t h, double err, uint16_t neighbour) {
    const float value = half_to_float(neighbour);
    if (!isfinite(value)) return false;
    const double neighbour_err = fabs((double)value - x);
    return neighbour_err < err || (neighbour_err == err && (h & 1));
}

/* True when h is float_to_half(x) as IEEE round-to-nearest-even defines it. */
static inline bool half_is_nearest(float x, uint16_t h) {
    const bool sign_ok = (h >> 15) == (signbit(x) ? 1u : 0u);
    if (isnan(x)) return sign_ok && isnan(half_to_float(h));
    if (fabsf(x) >= HALF_OVERFLOW_THRESHOLD) return sign_ok && (h & 0x7FFF) == 0x7C00;
    const float value = half_to_float(h);
    if (!sign_ok || !isfinite(value)) return false;
    const double err = fabs((double)value - x);
    return !half_neighbour_wins(x, h, err, (uint16_t)(h + 1)) &&
           !half_neighbour_wins(x, h, err, (uint16_t)(h - 1));
}

/*
 * The most that rounding a finite float of magnitude up to `magnitude` to fp16 can move it:
 * half an ulp, 2^-11 relative among normal fp16s and 2^-25 absolute among subnormals.
 */
static inline double half_rounding_bound(double magnitude) { return ldexp(fabs(magnitude), -11) + 0x1p-25; }

#endif
