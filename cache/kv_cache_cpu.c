#include "cache/kv_cache_cpu.h"

#include <stdlib.h>

int kv_cache_cpu_create(kv_cache_cpu *cache, int n_layer, int max_tokens, int n_embd) {
    size_t n = (size_t)n_layer * (size_t)max_tokens * (size_t)n_embd;
    *cache = (kv_cache_cpu){.n_layer = n_layer, .max_tokens = max_tokens, .n_embd = n_embd};
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

float *kv_cache_cpu_k_row(const kv_cache_cpu *cache, int layer, int pos) {
    return cache->k + row_offset(cache, layer, pos);
}

float *kv_cache_cpu_v_row(const kv_cache_cpu *cache, int layer, int pos) {
    return cache->v + row_offset(cache, layer, pos);
}
