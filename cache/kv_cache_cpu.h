/*
 * The CPU reference backend's KV cache: one contiguous fp32 buffer per K and V, every layer,
 * every position. Simple on purpose: it is the oracle that the paged GPU pool is checked against.
 */
#ifndef GPT2_KV_CACHE_CPU_H
#define GPT2_KV_CACHE_CPU_H

#include <stddef.h>

typedef struct {
    int n_layer;
    int max_tokens;
    int n_embd;
    int len;  /* positions [0, len) hold valid K and V */
    float *k; /* [n_layer, max_tokens, n_embd] */
    float *v; /* [n_layer, max_tokens, n_embd] */
} kv_cache_cpu;

/* Returns 0, or -1 when the buffers cannot be allocated. */
int kv_cache_cpu_create(kv_cache_cpu *cache, int n_layer, int max_tokens, int n_embd);
void kv_cache_cpu_destroy(kv_cache_cpu *cache);

/* Row of position pos in layer `layer`: [n_embd] floats. */
float *kv_cache_cpu_k_row(const kv_cache_cpu *cache, int layer, int pos);
float *kv_cache_cpu_v_row(const kv_cache_cpu *cache, int layer, int pos);

#endif
