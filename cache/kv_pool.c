#include "cache/kv_pool.h"

#include <stdio.h>
#include <stdlib.h>

size_t kv_pool_bytes_per_block(const kv_pool_shape *shape) {
    const size_t k_and_v = 2;
    return k_and_v * (size_t)shape->n_head * (size_t)shape->block_size *
           kv_format_bytes_per_head(shape->format);
}

size_t kv_pool_bytes_per_token(const kv_pool_shape *shape) {
    const size_t k_and_v = 2;
    return k_and_v * (size_t)shape->n_layer * (size_t)shape->n_head *
           kv_format_bytes_per_head(shape->format);
}

int kv_pool_blocks_for_budget(const kv_pool_shape *shape, size_t budget_bytes) {
    size_t per_block = kv_pool_bytes_per_block(shape);
    size_t blocks = per_block ? budget_bytes / per_block : 0;
    return blocks > INT32_MAX ? INT32_MAX : (int)blocks;
}

int kv_pool_tokens_per_sequence(const kv_pool_shape *shape) {
    if (shape->n_layer < 1) return 0;
    const int64_t tokens = (int64_t)(shape->num_blocks / shape->n_layer) * shape->block_size;
    return tokens > INT32_MAX ? INT32_MAX : (int)tokens;
}

int kv_block_allocator_create(kv_block_allocator *alloc, const kv_pool_shape *shape) {
    *alloc = (kv_block_allocator){.shape = *shape};
    if (shape->num_blocks < 1 || shape->block_size < 1 || shape->n_layer < 1) return -1;
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

int kv_sequence_create(kv_sequence *seq, int n_layer, int max_tokens, int block_size) {
    *seq = (kv_sequence){0};
    if (n_layer < 1 || max_tokens < 1 || block_size < 1) return -1;
    seq->n_layer = n_layer;
    seq->block_size = block_size;
    seq->capacity = (int)(((int64_t)max_tokens + block_size - 1) / block_size);
    seq->block_ids = malloc((size_t)n_layer * seq->capacity * sizeof(int32_t));
    seq->n_blocks = calloc((size_t)n_layer, sizeof(int));
    if (seq->block_ids && seq->n_blocks) return 0;
    kv_sequence_destroy(seq);
    return -1;
}

void kv_sequence_destroy(kv_sequence *seq) {
    free(seq->block_ids);
    free(seq->n_blocks);
    *seq = (kv_sequence){0};
}

/* Blocks each layer must hold for n_tokens tokens under the full policy. */
static int64_t blocks_for_tokens(const kv_sequence *seq, int64_t n_tokens) {
    return (n_tokens + seq->block_size - 1) / seq->block_size;
}

int kv_sequence_blocks_needed(const kv_sequence *seq, int n_new) {
    const int64_t per_layer = blocks_for_tokens(seq, (int64_t)seq->n_tokens + n_new);
    int64_t needed = 0;
    for (int l = 0; l < seq->n_layer; l++)
        if (per_layer > seq->n_blocks[l]) needed += per_layer - seq->n_blocks[l];
    return needed > INT32_MAX ? INT32_MAX : (int)needed;
}

kv_reserve_status kv_sequence_reserve(kv_block_allocator *alloc, kv_sequence *seq, int n_new) {
    if (seq->block_size != alloc->shape.block_size || seq->n_layer != alloc->shape.n_layer)
        engine_bug("sequence shape differs from the pool's", seq->block_size);
    const int64_t n_tokens = (int64_t)seq->n_tokens + n_new;
    const int64_t per_layer = blocks_for_tokens(seq, n_tokens);
    if (n_new < 0 || per_layer > seq->capacity) return KV_TOO_LONG;
    if (kv_sequence_blocks_needed(seq, n_new) > alloc->n_free) return KV_POOL_FULL;
    for (int l = 0; l < seq->n_layer; l++) {
        int32_t *table = seq->block_ids + (size_t)l * seq->capacity;
        while (seq->n_blocks[l] < per_layer) {
            int32_t id = alloc->free_ids[--alloc->n_free];
            alloc->in_use[id] = true;
            table[seq->n_blocks[l]++] = id;
        }
    }
    seq->n_tokens = (int)n_tokens;
    return KV_RESERVED;
}

void kv_sequence_release(kv_block_allocator *alloc, kv_sequence *seq) {
    for (int l = 0; l < seq->n_layer; l++) {
        const int32_t *table = kv_sequence_table(seq, l);
        for (int i = 0; i < seq->n_blocks[l]; i++) {
            int32_t id = table[i];
            if (id < 0 || id >= alloc->shape.num_blocks || !alloc->in_use[id])
                engine_bug("block released but not in use", id);
            alloc->in_use[id] = false;
            alloc->free_ids[alloc->n_free++] = id;
        }
        seq->n_blocks[l] = 0;
    }
    seq->n_tokens = 0;
}

const int32_t *kv_sequence_table(const kv_sequence *seq, int layer) {
    if (layer < 0 || layer >= seq->n_layer) engine_bug("table asked for a layer outside the sequence", layer);
    return seq->block_ids + (size_t)layer * seq->capacity;
}

int64_t kv_sequence_slot(const kv_sequence *seq, int layer, int pos) {
    if (pos < 0 || pos >= seq->n_tokens) engine_bug("slot asked for a position not reserved", pos);
    const int32_t *table = kv_sequence_table(seq, layer);
    /* 64-bit before the multiply: num_blocks * block_size can pass INT32_MAX on large pools. */
    return (int64_t)table[pos / seq->block_size] * seq->block_size + pos % seq->block_size;
}

int kv_pool_sequences_that_fit(const kv_pool_shape *shape, size_t budget_bytes, int seq_tokens) {
    kv_pool_shape budgeted = *shape;
    budgeted.num_blocks = kv_pool_blocks_for_budget(shape, budget_bytes);
    if (seq_tokens < 1) return -1;
    if (budgeted.num_blocks < 1) return 0;
    kv_block_allocator alloc;
    kv_sequence seq;
    if (kv_block_allocator_create(&alloc, &budgeted) != 0) return -1;
    if (kv_sequence_create(&seq, shape->n_layer, seq_tokens, shape->block_size) != 0) {
        kv_block_allocator_destroy(&alloc);
        return -1;
    }
    int admitted = 0;
    while (kv_sequence_reserve(&alloc, &seq, seq_tokens) == KV_RESERVED) {
        admitted++;
        seq.n_tokens = 0; /* its blocks stay taken: the next sequence needs blocks of its own */
        for (int l = 0; l < seq.n_layer; l++) seq.n_blocks[l] = 0;
    }
    kv_sequence_destroy(&seq);
    kv_block_allocator_destroy(&alloc);
    return admitted;
}
