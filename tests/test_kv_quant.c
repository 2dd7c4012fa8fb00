/*
 * The INT8 KV format (cache/kv_quant.h) and the CPU cache that applies the formats:
 * - round trip: |x - dequant(quant(x))| <= scale / 2 * (1 + 2^-10) + 2^-142 for every element of
 *   random heads of every magnitude, with outliers, zeros and float subnormals; the scale is the
 *   smallest fp16 >= max|x| / 127, so a normal scale always uses the code 127;
 * - exactness: values that are integer multiples of an fp16 scale come back exactly;
 * - edge cases: an all-zero head, saturation, the format names and sizes;
 * - kv_cache_cpu_store: fp32 exact, fp16 rounded per value, int8 dequantized per head.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache/kv_cache_cpu.h"
#include "cache/kv_quant.h"
#include "kernels/half.h"
#include "model/sampler.h"
#include "tests/check.h"

#define D KV_HEAD_SIZE
#define N_HEADS 200000
#define ROUND_TRIP_SLACK 0x1p-10 /* fp32 rounding of x / scale, relative to scale / 2 */
#define UNDERFLOW_BOUND 0x1p-142 /* max|x| whose max|x| / 127 rounds to 0 in fp32: scale 0 */

static float uniform_pm1(uint64_t *rng) { return 2.0f * sampler_next_uniform(rng) - 1.0f; }

/*
 * A random head, sometimes with an outlier, sometimes with zeros. Magnitudes: mostly 2^-30 .. 2^12
 * (normal and fp16-subnormal scales), a fifth 2^-150 .. 2^-30 (float subnormals, scale 0).
 */
static void random_head(float x[D], uint64_t *rng) {
    const int exponent = sampler_next_uniform(rng) < 0.8f
                             ? (int)(sampler_next_uniform(rng) * 42) - 30
                             : (int)(sampler_next_uniform(rng) * 120) - 150;
    const float magnitude = ldexpf(1.0f, exponent);
    for (int i = 0; i < D; i++) x[i] = magnitude * uniform_pm1(rng);
    if (sampler_next_uniform(rng) < 0.3f) x[(int)(sampler_next_uniform(rng) * D)] *= 100.0f;
    if (sampler_next_uniform(rng) < 0.3f)
        for (int i = 0; i < D; i += 3) x[i] = 0.0f;
}

static float max_abs(const float x[D]) {
    float amax = 0.0f;
    for (int i = 0; i < D; i++) amax = fmaxf(amax, fabsf(x[i]));
    return amax;
}

/* Checks one head's quantization; returns the number of broken properties. */
static int check_head(const float x[D]) {
    int8_t q[D];
    uint16_t scale_bits;
    float back[D];
    kv_quantize_head(q, &scale_bits, x);
    kv_dequantize_head(back, q, scale_bits);
    const float amax = max_abs(x), scale = half_to_float(scale_bits);
    const float wanted = amax / KV_INT8_MAX_CODE;
    int broken = 0;
    /* The scale: the smallest fp16 at or above max|x| / 127. */
    broken += !(scale >= wanted) || (scale_bits > 0 && half_to_float(scale_bits - 1) >= wanted);
    const double bound = scale / 2.0 * (1.0 + ROUND_TRIP_SLACK) + UNDERFLOW_BOUND;
    int max_code = 0;
    for (int i = 0; i < D; i++) {
        broken += !(fabs((double)x[i] - back[i]) <= bound);
        broken += q[i] < -KV_INT8_MAX_CODE; /* -128 is never used: the codes are symmetric */
        if (abs(q[i]) > max_code) max_code = abs(q[i]);
    }
    if (scale >= 0x1p-14f) broken += max_code != KV_INT8_MAX_CODE; /* a normal scale */
    return broken;
}

static void check_round_trip_bound(uint64_t *rng) {
    int broken = 0, zero_scales = 0, subnormal_scales = 0;
    for (int h = 0; h < N_HEADS; h++) {
        float x[D];
        random_head(x, rng);
        const int head_broken = check_head(x);
        if (head_broken && broken < 5) fprintf(stderr, "head with max|x| %a broken\n", max_abs(x));
        broken += head_broken;
        const float wanted = max_abs(x) / KV_INT8_MAX_CODE;
        zero_scales += wanted == 0.0f;
        subnormal_scales += wanted > 0.0f && wanted < 0x1p-14f;
    }
    printf("round trip: %d heads (%d with scale 0, %d with an fp16-subnormal scale)\n", N_HEADS,
           zero_scales, subnormal_scales);
    CHECK(broken == 0, "%d properties broken over %d random heads", broken, N_HEADS);
    CHECK(zero_scales > 0 && subnormal_scales > 0, "the random heads missed the small scales");
}

/* x = k * s for fp16 s and codes k with max |k| = 127: q == k, the scale is s, x comes back. */
static void check_exact_multiples(uint64_t *rng) {
    int wrong = 0;
    for (int n = 0; n < 20000; n++) {
        /* Any positive finite fp16, 2^-24 .. 65504. */
        const uint16_t s_bits = (uint16_t)(1 + sampler_next_uniform(rng) * 0x7BFE);
        const float s = half_to_float(s_bits);
        int8_t k[D], q[D];
        float x[D], back[D];
        for (int i = 0; i < D; i++) k[i] = (int8_t)((int)(sampler_next_uniform(rng) * 255) - 127);
        k[(int)(sampler_next_uniform(rng) * D)] = sampler_next_uniform(rng) < 0.5f ? 127 : -127;
        for (int i = 0; i < D; i++) x[i] = (float)k[i] * s; /* 7 + 11 bits: exact */
        uint16_t scale_bits;
        kv_quantize_head(q, &scale_bits, x);
        kv_dequantize_head(back, q, scale_bits);
        wrong += scale_bits != s_bits || memcmp(q, k, D) != 0 || memcmp(back, x, sizeof x) != 0;
    }
    CHECK(wrong == 0, "%d of 20000 heads of exact multiples did not come back exactly", wrong);
}

static void check_edge_cases(void) {
    float x[D] = {0}, back[D];
    int8_t q[D];
    uint16_t scale = 0xFFFF;
    memset(q, 1, sizeof q);
    kv_quantize_head(q, &scale, x);
    kv_dequantize_head(back, q, scale);
    int nonzero = 0;
    for (int i = 0; i < D; i++) nonzero += q[i] != 0 || back[i] != 0.0f;
    CHECK(scale == 0 && nonzero == 0, "an all-zero head: scale 0x%04x, %d nonzero", scale, nonzero);

    x[5] = 1e7f; /* above 127 * 65504: the scale saturates at 65504, the code at 127 */
    x[6] = -3.0f * 65504.0f;
    kv_quantize_head(q, &scale, x);
    CHECK(scale == 0x7BFF && q[5] == 127 && q[6] == -3 && q[0] == 0,
          "saturation: scale 0x%04x, q %d %d", scale, q[5], q[6]);

    kv_format format;
    CHECK(kv_format_parse("int8", &format) && format == KV_FORMAT_INT8 &&
              kv_format_parse("fp16", &format) && format == KV_FORMAT_FP16 &&
              kv_format_parse("fp32", &format) && format == KV_FORMAT_FP32,
          "format names");
    CHECK(!kv_format_parse("INT8", &format) && !kv_format_parse("", &format) &&
              !kv_format_parse("bf16", &format),
          "bad format names accepted");
    CHECK(strcmp(kv_format_name(KV_FORMAT_INT8), "int8") == 0, "int8 name");
    CHECK(kv_format_bytes_per_head(KV_FORMAT_FP32) == 256 &&
              kv_format_bytes_per_head(KV_FORMAT_FP16) == 128 &&
              kv_format_bytes_per_head(KV_FORMAT_INT8) == 66,
          "bytes per head");
}

/* What each format must store for a row of two heads. */
static void expected_row(float out[2 * D], const float row[2 * D], kv_format format) {
    for (int i = 0; i < 2 * D; i++)
        out[i] = format == KV_FORMAT_FP16 ? half_to_float(float_to_half(row[i])) : row[i];
    if (format != KV_FORMAT_INT8) return;
    for (int h = 0; h < 2; h++) {
        int8_t q[D];
        uint16_t scale;
        kv_quantize_head(q, &scale, row + h * D);
        kv_dequantize_head(out + h * D, q, scale);
    }
}

static void check_cpu_cache_formats(uint64_t *rng) {
    const kv_format formats[] = {KV_FORMAT_FP32, KV_FORMAT_FP16, KV_FORMAT_INT8};
    float k[2 * D], v[2 * D], want_k[2 * D], want_v[2 * D];
    for (int i = 0; i < 2 * D; i++) {
        k[i] = 3.0f * uniform_pm1(rng);
        v[i] = (i < D ? 0.01f : 50.0f) * uniform_pm1(rng); /* heads of different magnitude */
    }
    for (int f = 0; f < 3; f++) {
        kv_cache_cpu cache;
        CHECK(kv_cache_cpu_create(&cache, 2, 3, 2 * D, formats[f]) == 0, "cache");
        kv_cache_cpu_store(&cache, 1, 2, k, v);
        expected_row(want_k, k, formats[f]);
        expected_row(want_v, v, formats[f]);
        CHECK(memcmp(kv_cache_cpu_k_row(&cache, 1, 2), want_k, sizeof want_k) == 0 &&
                  memcmp(kv_cache_cpu_v_row(&cache, 1, 2), want_v, sizeof want_v) == 0,
              "%s: the stored row is not the format's", kv_format_name(formats[f]));
        CHECK((formats[f] == KV_FORMAT_FP32) == (memcmp(want_v, v, sizeof v) == 0),
              "%s: fp32 must keep the row exactly, fp16 and int8 must round it",
              kv_format_name(formats[f]));
        kv_cache_cpu_destroy(&cache);
    }
}

int main(void) {
    uint64_t rng = (uint64_t)time(NULL);
    printf("test_kv_quant: seed %llu\n", (unsigned long long)rng);
    check_round_trip_bound(&rng);
    check_exact_multiples(&rng);
    check_edge_cases();
    check_cpu_cache_formats(&rng);
    return check_finish("test_kv_quant");
}
