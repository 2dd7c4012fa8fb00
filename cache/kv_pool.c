#include "cache/kv_pool.h"

#include <stdio.h>
#include <stdlib.h>

size_t kv_pool_bytes_per_block(const kv_pool_shape *shape) {
    const size_t k_and_v = 2;
    return k_and_v * (size_t)shape->n_layer * (size_t)shape->n_head * (size_t)shape->block_size *
           kv_format_bytes_per_head(shape->format);
}

int kv_pool_blocks_for_budget(const kv_pool_shape *shape, size_t budget_bytes) {
    size_t per_block = kv_pool_bytes_per_block(shape);
    size_t blocks = per_block ? budget_bytes / per_block : 0;
    return blocks > INT32_MAX ? INT32_MAX : (int)blocks;
}

int kv_block_allocator_create(kv_block_allocator *alloc, const kv_pool_shape *shape) {
    *alloc = (kv_block_allocator){.shape = *shape};
    if (shape->num_blocks < 1 || shape->block_size < 1) return -1;
    alloc->free_ids = malloc((size_t)shape->num_blocks * sizeof(int32_t));
    alloc->in_use = calloc((size_t)shape->num_blocks, sizeof(bool));
    if (!alloc->free_ids || !alloc->in_use) {
        kv_block_allocator_destroy(alloc);
        return -1;
    }
    /* Stack order: block 0 is handed out first. */
    for (int i = 0; i < shape->num_blocks; i++) alloc->free_ids[i] = shape->num_blocks - 1 - i;
    alloc->n_free = shape->num_blocks;
    return 0;
}

void kv_block_allocator_destroy(kv_block_allocator *alloc) {
    free(alloc->free_ids);
    free(alloc->in_use);
    *alloc = (kv_block_allocator){0};
}

/* A broken invariant of the engine itself, not bad input: report it and stop. */
static void engine_bug(const char *what, int value) {
    fprintf(stderr, "kv pool: %s (%d): an engine bug\n", what, value);
    abort();
}

int kv_sequence_create(kv_sequence *seq, int max_tokens, int block_size) {
    *seq = (kv_sequence){0};
    if (max_tokens < 1 || block_size < 1) return -1;
    seq->block_size = block_size;
    seq->capacity = (int)(((int64_t)max_tokens + block_size - 1) / block_size);
    seq->block_ids = malloc((size_t)seq->capacity * sizeof(int32_t));
    return seq->block_ids ? 0 : -1;
}

void kv_sequence_destroy(kv_sequence *seq) {
    free(seq->block_ids);
    *seq = (kv_sequence){0};
}

kv_reserve_status kv_sequence_reserve(kv_block_allocator *alloc, kv_sequence *seq, int n_new) {
    const int block_size = alloc->shape.block_size;
    if (seq->block_size != block_size) engine_bug("sequence block size differs from the pool's", seq->block_size);
    const int64_t n_tokens = (int64_t)seq->n_tokens + n_new;
    const int64_t blocks_needed = (n_tokens + block_size - 1) / block_size;
    if (n_new < 0 || blocks_needed > seq->capacity) return KV_TOO_LONG;
    if (blocks_needed - seq->n_blocks > alloc->n_free) return KV_POOL_FULL;
    while (seq->n_blocks < blocks_needed) {
        int32_t id = alloc->free_ids[--alloc->n_free];
        alloc->in_use[id] = true;
        seq->block_ids[seq->n_blocks++] = id;
    }
    seq->n_tokens = (int)n_tokens;
    return KV_RESERVED;
}

void kv_sequence_release(kv_block_allocator *alloc, kv_sequence *seq) {
    for (int i = 0; i < seq->n_blocks; i++) {
        int32_t id = seq->block_ids[i];
        if (id < 0 || id >= alloc->shape.num_blocks || !alloc->in_use[id])
            engine_bug("block released but not in use", id);
        alloc->in_use[id] = false;
        alloc->free_ids[alloc->n_free++] = id;
    }
    seq->n_blocks = 0;
    seq->n_tokens = 0;
}

int64_t kv_sequence_slot(const kv_sequence *seq, int pos) {
    if (pos < 0 || pos >= seq->n_tokens) engine_bug("slot asked for a position not reserved", pos);
    /* 64-bit before the multiply: num_blocks * block_size can pass INT32_MAX on large pools. */
    return (int64_t)seq->block_ids[pos / seq->block_size] * seq->block_size + pos % seq->block_size;
}
