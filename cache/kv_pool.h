/*
 * The paged KV pool's bookkeeping, on the host: a block allocator and, for each sequence, one
 * block table per layer. A block is one layer's page of block_size tokens; its id indexes the
 * pool's pages, which every layer shares. The device memory it describes is one allocation:
 *   FP16:  K pages:  [num_blocks][n_head][block_size][64]   fp16
 *          V pages:  [num_blocks][n_head][block_size][64]   fp16
 *   INT8:  K pages:  [num_blocks][n_head][block_size][64]   int8 codes
 *          K scales: [num_blocks][n_head][block_size]       fp16, one per token and head
 *          V pages and V scales: the same
 * Scales sit beside the pages and are addressed by the same block id; cache/kv_quant.h defines
 * the INT8 format. A sequence's layer l holds its own blocks, listed in table l, so a layer can
 * give pages back without the others (the per-layer budgets of later KV policies). Under the
 * full policy every layer holds the same number of blocks: ceil(n_tokens / block_size).
 *
 * Running out of blocks is an ordinary outcome: a reservation either gets every block it asks
 * for, in every layer, or none, so the caller can make the sequence wait, preempt another, or
 * refuse it. Nothing here touches device memory, so it is all tested on the CPU.
 */
#ifndef GPT2_KV_POOL_H
#define GPT2_KV_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/kv_quant.h"

#define KV_DEFAULT_BLOCK_SIZE 16

typedef struct {
    int n_layer;
    int n_head;
    int block_size; /* tokens per block */
    int num_blocks; /* pages in the pool, all layers together */
    kv_format format; /* KV_FORMAT_FP16 or KV_FORMAT_INT8 on the GPU */
} kv_pool_shape;

/* Bytes of one block, one layer's page of K and V, in the shape's format (INT8: scales included). */
size_t kv_pool_bytes_per_block(const kv_pool_shape *shape);
/* Bytes one token of one sequence takes in every layer, K and V (INT8: scales included). */
size_t kv_pool_bytes_per_token(const kv_pool_shape *shape);
/* How many blocks a budget of bytes holds (0 when not even one fits). */
int kv_pool_blocks_for_budget(const kv_pool_shape *shape, size_t budget_bytes);
/* Tokens of one sequence that num_blocks blocks hold under the full policy (every layer). */
int kv_pool_tokens_per_sequence(const kv_pool_shape *shape);

typedef struct {
    kv_pool_shape shape;
    int32_t *free_ids; /* [num_blocks] stack of free block ids; the top is free_ids[n_free - 1] */
    int n_free;
    bool *in_use;      /* [num_blocks] guards against double frees */
} kv_block_allocator;

/* Returns 0, or -1 when out of host memory or the shape is invalid. All blocks start free. */
int kv_block_allocator_create(kv_block_allocator *alloc, const kv_pool_shape *shape);
void kv_block_allocator_destroy(kv_block_allocator *alloc);

/* One sequence's blocks, per layer in logical order, and how many token slots it has reserved. */
typedef struct {
    int32_t *block_ids; /* [n_layer, capacity] physical block of each layer's logical block */
    int *n_blocks;      /* [n_layer] blocks each layer holds */
    int n_layer;
    int block_size;     /* tokens per block, as in the pool's shape */
    int capacity;       /* most blocks one layer may hold (the context limit) */
    int n_tokens;       /* token slots reserved: positions [0, n_tokens) */
} kv_sequence;

/*
 * n_layer and block_size must be the pool's; max_tokens bounds the sequence (the model's
 * context). Returns 0, or -1 when any is below 1 or out of memory.
 */
int kv_sequence_create(kv_sequence *seq, int n_layer, int max_tokens, int block_size);
void kv_sequence_destroy(kv_sequence *seq);

typedef enum {
    KV_RESERVED = 0,   /* every needed block was allocated */
    KV_POOL_FULL = 1,  /* not enough free blocks: nothing changed, retry after others finish */
    KV_TOO_LONG = 2,   /* the sequence would pass its max_tokens: nothing changed */
} kv_reserve_status;

/* Blocks (all layers) that reserving n_new more tokens would take from the pool. */
int kv_sequence_blocks_needed(const kv_sequence *seq, int n_new);

/*
 * Reserves slots for n_new more tokens in every layer, all or nothing. The sequence must have
 * the pool's block size and layer count.
 */
kv_reserve_status kv_sequence_reserve(kv_block_allocator *alloc, kv_sequence *seq, int n_new);

/* Returns every block of the sequence, in every layer, to the pool at once and empties it. */
void kv_sequence_release(kv_block_allocator *alloc, kv_sequence *seq);

/* Layer `layer`'s block table: [capacity] ids, the first n_blocks[layer] valid. */
const int32_t *kv_sequence_table(const kv_sequence *seq, int layer);

/*
 * Serving capacity, measured rather than computed: how many sequences of seq_tokens tokens a
 * pool of budget_bytes admits, by running the allocator (every block the budget holds, in the
 * shape's format) and reserving whole sequences until it refuses. shape->num_blocks is ignored.
 * Returns the count, or -1 when out of host memory or seq_tokens < 1.
 */
int kv_pool_sequences_that_fit(const kv_pool_shape *shape, size_t budget_bytes, int seq_tokens);

/* The pool slot (block_id * block_size + offset) of position pos in a layer, 0 <= pos < n_tokens. */
int64_t kv_sequence_slot(const kv_sequence *seq, int layer, int pos);

#endif
