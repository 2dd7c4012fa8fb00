#include "cache/kv_quant.h"

#include <math.h>
#include <string.h>

#include "kernels/half.h"

#define HALF_MAX 65504.0f

static const char *const format_names[] = {
    [KV_FORMAT_FP32] = "fp32", [KV_FORMAT_FP16] = "fp16", [KV_FORMAT_INT8] = "int8"};

const char *kv_format_name(kv_format format) {
    size_t index = (size_t)format;
    return index < sizeof format_names / sizeof format_names[0] ? format_names[index] : "unknown";
}

bool kv_format_parse(const char *name, kv_format *out) {
    for (size_t i = 0; i < sizeof format_names / sizeof format_names[0]; i++) {
        if (strcmp(name, format_names[i]) == 0) {
            *out = (kv_format)i;
            return true;
        }
    }
    return false;
}

size_t kv_format_bytes_per_head(kv_format format) {
    switch (format) {
    case KV_FORMAT_FP32: return KV_HEAD_SIZE * sizeof(float);
    case KV_FORMAT_FP16: return KV_HEAD_SIZE * sizeof(uint16_t);
    case KV_FORMAT_INT8: return KV_HEAD_SIZE * sizeof(int8_t) + sizeof(uint16_t);
    }
    return 0;
}

/* The smallest fp16 >= a, for a in [0, 65504]: to nearest, then one step up when below a. */
static uint16_t half_round_up(float a) {
    const uint16_t nearest = float_to_half(a);
    return half_to_float(nearest) < a ? (uint16_t)(nearest + 1) : nearest;
}

void kv_quantize_head(int8_t q[KV_HEAD_SIZE], uint16_t *scale, const float x[KV_HEAD_SIZE]) {
    float amax = 0.0f;
    for (int i = 0; i < KV_HEAD_SIZE; i++) amax = fmaxf(amax, fabsf(x[i]));
    *scale = half_round_up(fminf(amax / KV_INT8_MAX_CODE, HALF_MAX));
    const float s = half_to_float(*scale);
    if (s == 0.0f) {
        memset(q, 0, KV_HEAD_SIZE);
        return;
    }
    for (int i = 0; i < KV_HEAD_SIZE; i++) {
        const float code = rintf(x[i] / s);
        q[i] = (int8_t)fmaxf(-KV_INT8_MAX_CODE, fminf(code, KV_INT8_MAX_CODE));
    }
}

void kv_dequantize_head(float out[KV_HEAD_SIZE], const int8_t q[KV_HEAD_SIZE], uint16_t scale) {
    const float s = half_to_float(scale);
    for (int i = 0; i < KV_HEAD_SIZE; i++) out[i] = (float)q[i] * s;
}
