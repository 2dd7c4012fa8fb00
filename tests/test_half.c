/*
 * kernels/half.h, the host fp16 conversions: every fp16 value round-trips exactly, every
 * midpoint between neighbouring fp16 values rounds to the even one (and a float either side of
 * it to the nearer one), and random floats of every magnitude round to a nearest fp16 with ties
 * to even (oracle: arithmetic on neighbours, tests/half_oracle.h).
 */
#include <math.h>
#include <stdio.h>
#include <time.h>

#include "kernels/half.h"
#include "model/sampler.h"
#include "tests/check.h"
#include "tests/half_oracle.h"

#define N_RANDOM 2000000

/* Every finite and infinite fp16 comes back bit for bit; NaN stays NaN with sign and payload. */
static void check_every_half_round_trips(void) {
    int wrong = 0;
    for (uint32_t i = 0; i <= 0xFFFF; i++) {
        const uint16_t h = (uint16_t)i;
        const uint16_t back = float_to_half(half_to_float(h));
        const bool is_nan = (h & 0x7C00) == 0x7C00 && (h & 0x3FF);
        wrong += is_nan ? back != (h | 0x200) : back != h; /* NaN comes back quiet */
    }
    CHECK(wrong == 0, "%d of 65536 fp16 values did not round-trip", wrong);
}

/* Between each pair of neighbouring positive fp16 values a < b, and the same negated. */
static void check_midpoints(void) {
    int wrong = 0;
    for (uint16_t a = 0; a < 0x7C00; a++) {
        const uint16_t b = (uint16_t)(a + 1); /* 0x7C00: the midpoint 65520 rounds to infinity */
        const double upper = b == 0x7C00 ? 65536.0 : half_to_float(b);
        const float mid = (float)((half_to_float(a) + upper) / 2); /* 12 bits: exact */
        const uint16_t even = (a & 1) ? b : a;
        for (int s = 0; s < 2; s++) {
            const float sign = s ? -1.0f : 1.0f;
            const uint16_t sign_bit = s ? 0x8000 : 0;
            wrong += float_to_half(sign * mid) != (even | sign_bit);
            wrong += float_to_half(sign * nextafterf(mid, 0.0f)) != (a | sign_bit);
            wrong += float_to_half(sign * nextafterf(mid, INFINITY)) != (b | sign_bit);
        }
    }
    CHECK(wrong == 0, "%d midpoint cases rounded wrongly", wrong);
}

/* Any 32-bit pattern (NaN, huge, float subnormals) and log-uniform magnitudes in fp16's range. */
static void check_random_floats(uint64_t *rng) {
    int wrong = 0;
    for (int i = 0; i < N_RANDOM; i++) {
        float x;
        if (i % 2) {
            uint32_t bits = (uint32_t)(sampler_next_uniform(rng) * 65536.0f) << 16 |
                            (uint32_t)(sampler_next_uniform(rng) * 65536.0f);
            memcpy(&x, &bits, sizeof x);
        } else {
            const float sign = sampler_next_uniform(rng) < 0.5f ? -1.0f : 1.0f;
            const int exponent = (int)(sampler_next_uniform(rng) * 44) - 27; /* 2^-27 .. 2^17 */
            x = sign * ldexpf(1.0f + sampler_next_uniform(rng), exponent);
        }
        const uint16_t h = float_to_half(x);
        if (!half_is_nearest(x, h)) {
            if (wrong < 5) fprintf(stderr, "%a -> 0x%04x\n", x, h);
            wrong++;
        }
    }
    CHECK(wrong == 0, "%d of %d random floats did not round to a nearest fp16", wrong, N_RANDOM);
}

static void check_landmarks(void) {
    CHECK(float_to_half(65504.0f) == 0x7BFF && float_to_half(nextafterf(65520.0f, 0)) == 0x7BFF,
          "the largest fp16");
    CHECK(float_to_half(65520.0f) == 0x7C00 && float_to_half(-1e30f) == 0xFC00 &&
              float_to_half(INFINITY) == 0x7C00,
          "overflow to infinity");
    CHECK(float_to_half(0x1p-24f) == 0x0001 && float_to_half(0x1p-25f) == 0x0000 &&
              float_to_half(0x1.000002p-25f) == 0x0001 && float_to_half(-0x1p-26f) == 0x8000,
          "the subnormal edge");
    CHECK(float_to_half(-0.0f) == 0x8000 && float_to_half(1.0f) == 0x3C00 &&
              float_to_half(0x1p-14f) == 0x0400,
          "zero, one, the smallest normal");
    const uint16_t nan = float_to_half(-NAN);
    CHECK((nan & 0xFC00) == 0xFC00 && (nan & 0x3FF) != 0, "NaN -> 0x%04x", nan);
    CHECK(half_to_float(0x3555) == 0x1.554p-2f && half_to_float(0x8001) == -0x1p-24f,
          "half_to_float landmarks");
}

int main(void) {
    uint64_t rng = (uint64_t)time(NULL);
    printf("test_half: seed %llu\n", (unsigned long long)rng);
    check_every_half_round_trips();
    check_midpoints();
    check_random_floats(&rng);
    check_landmarks();
    return check_finish("test_half");
}
