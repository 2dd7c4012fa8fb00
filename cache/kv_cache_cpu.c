#include "cache/kv_cache_cpu.h"

#include <stdlib.h>
#include <string.h>

#include "kernels/half.h"

int kv_cache_cpu_create(kv_cache_cpu *cache, int n_layer, int max_tokens, int n_embd,
                        kv_format format) {
    size_t n = (size_t)n_layer * (size_t)max_tokens * (size_t)n_embd;
    *cache = (kv_cache_cpu){
        .n_layer = n_layer, .max_tokens = max_tokens, .n_embd = n_embd, .format = format};
    cache->k = malloc(n * sizeof(float));
    cache->v = malloc(n * sizeof(float));
    if (!cache->k || !cache->v) {
        kv_cache_cpu_destroy(cache);
        return -1;
    }
    return 0;
}

void kv_cache_cpu_destroy(kv_cache_cpu *cache) {
    free(cache->k);
    free(cache->v);
    *cache = (kv_cache_cpu){0};
}

static size_t row_offset(const kv_cache_cpu *cache, int layer, int pos) {
    return ((size_t)layer * (size_t)cache->max_tokens + (size_t)pos) * (size_t)cache->n_embd;
}

/* dst = src as the format stores it, read back as fp32. */
static void store_row(float *dst /* [n] */, const float *src /* [n] */, int n, kv_format format) {
    switch (format) {
    case KV_FORMAT_FP32: memcpy(dst, src, (size_t)n * sizeof(float)); return;
    case KV_FORMAT_FP16:
        for (int i = 0; i < n; i++) dst[i] = half_to_float(float_to_half(src[i]));
        return;
    case KV_FORMAT_INT8:
        for (int h = 0; h < n / KV_HEAD_SIZE; h++) {
            int8_t codes[KV_HEAD_SIZE];
            uint16_t scale;
            kv_quantize_head(codes, &scale, src + h * KV_HEAD_SIZE);
            kv_dequantize_head(dst + h * KV_HEAD_SIZE, codes, scale);
        }
        return;
    }
}

void kv_cache_cpu_store(kv_cache_cpu *cache, int layer, int pos, const float *k, const float *v) {
    const size_t offset = row_offset(cache, layer, pos);
    store_row(cache->k + offset, k, cache->n_embd, cache->format);
    store_row(cache->v + offset, v, cache->n_embd, cache->format);
}

const float *kv_cache_cpu_k_row(const kv_cache_cpu *cache, int layer, int pos) {
    return cache->k + row_offset(cache, layer, pos);
}

const float *kv_cache_cpu_v_row(const kv_cache_cpu *cache, int layer, int pos) {
    return cache->v + row_offset(cache, layer, pos);
}
