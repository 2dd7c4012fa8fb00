/*
 * The CPU reference backend's KV cache: one contiguous fp32 buffer per K and V, every layer,
 * every position. Simple on purpose: it is the oracle that the paged GPU pool is checked against.
 *
 * Rows are stored through the cache's format (cache/kv_quant.h): FP32 keeps them exact, FP16
 * rounds each value through fp16, INT8 quantizes each head and keeps the dequantized values.
 * Reading the stored fp32 rows is then numerically what a GPU kernel gets by dequantizing the
 * same format in registers, which is what its tests compare against.
 */
#ifndef GPT2_KV_CACHE_CPU_H
#define GPT2_KV_CACHE_CPU_H

#include <stddef.h>

#include "cache/kv_quant.h"

typedef struct {
    int n_layer;
    int max_tokens;
    int n_embd;       /* n_head * KV_HEAD_SIZE */
    kv_format format; /* applied when a row is stored */
    int len;          /* positions [0, len) hold valid K and V */
    float *k;         /* [n_layer, max_tokens, n_embd] */
    float *v;         /* [n_layer, max_tokens, n_embd] */
} kv_cache_cpu;

/* n_embd must be a multiple of KV_HEAD_SIZE. Returns 0, or -1 when out of memory. */
int kv_cache_cpu_create(kv_cache_cpu *cache, int n_layer, int max_tokens, int n_embd,
                        kv_format format);
void kv_cache_cpu_destroy(kv_cache_cpu *cache);

/* Stores the K and V rows of position pos in layer `layer`, through the cache's format. */
void kv_cache_cpu_store(kv_cache_cpu *cache, int layer, int pos, const float *k /* [n_embd] */,
                        const float *v /* [n_embd] */);

/* The stored row of position pos in layer `layer`: [n_embd] floats. */
const float *kv_cache_cpu_k_row(const kv_cache_cpu *cache, int layer, int pos);
const float *kv_cache_cpu_v_row(const kv_cache_cpu *cache, int layer, int pos);

#endif
