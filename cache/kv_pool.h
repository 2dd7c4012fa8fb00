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
 *
 * Eviction (the KV policies of cache/kv_policy.h) works per layer on the positions a layer
 * holds: it keeps the first `sinks` positions and the most recent ones, and evicts the range
 * between them, one contiguous hole. Every block that falls wholly inside the hole goes back to
 * the pool at once and leaves the table (the later entries move up), so memory really drops; the
 * hole's rows left in partly used blocks (fewer than two blocks' worth) are skipped by the
 * attention kernels (paged_kv_layer.hole_rows). Kept rows never move, so no copy is needed.
 */
#ifndef GPT2_KV_POOL_H
#define GPT2_KV_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cache/kv_policy.h"
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
    int sinks;          /* the first positions eviction keeps (the last kv_sequence_evict's) */
    int *evicted;       /* [n_layer] positions [sinks, sinks + evicted) are gone from the layer */
    int *dropped;       /* [n_layer] of them, those whose blocks left the table (whole blocks):
                           position pos >= sinks + evicted sits at table row pos - dropped */
    bool *stores;       /* [n_layer] false: the layer keeps no KV of its own (it reads another
                           layer's, cross-layer sharing) and is given no blocks */
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

/*
 * The same under a KV policy that evicts (window, sinks, pyramid, h2o compacted; share's
 * borrowers hold nothing): n sequences decode together from a first prefilled chunk
 * (kv_policy_first_chunk) to seq_tokens, one token each per round; each round reserves every
 * sequence's next token, as a batched decode step does, then every layer evicts. The count is
 * the largest n the allocator carries all the way, peaks included: a window that straddles a
 * block boundary holds one block more, and every policy holds its new token's row before it
 * evicts. budget_tokens scales pyramid's ratios. Returns the count, or -1 when out of host
 * memory, seq_tokens < 1, or under minicache (what a merged pair holds depends on its data).
 */
int kv_pool_sequences_that_fit_policy(const kv_pool_shape *shape, size_t budget_bytes,
                                      int seq_tokens, const kv_policy *policy, int budget_tokens);

/*
 * The pool slot (block_id * block_size + offset) of position pos in a layer, 0 <= pos <
 * n_tokens, pos not evicted; -1 in a layer that stores nothing.
 */
int64_t kv_sequence_slot(const kv_sequence *seq, int layer, int pos);

/* Marks which layers keep KV of their own (all, at creation). Only on an empty sequence. */
void kv_sequence_set_stores(kv_sequence *seq, const bool *stores /* [n_layer] */);

/*
 * Layer `layer` of a sequence whose positions [0, n_cached) were written keeps the first
 * `sinks` and the most recent keep - sinks of them (keep >= sinks + 1; nothing happens while
 * n_cached <= keep). Blocks wholly inside the evicted range go back to the pool.
 */
void kv_sequence_evict(kv_block_allocator *alloc, kv_sequence *seq, int layer, int n_cached,
                       int sinks, int keep);

/*
 * Eviction after the device compacted the layer's rows (H2O's launch_kv_h2o_evict, MiniCache's
 * launch_kv_minicache_merge at a pair's upper layer, kernels.h): of positions [0, n_cached) the
 * layer keeps `keep` >= 0 (any of them) in table rows 0 .. keep - 1; the blocks past those rows
 * go back to the pool, and the next position takes row keep. Nothing happens while n_cached -
 * evicted <= keep.
 */
void kv_sequence_compact(kv_block_allocator *alloc, kv_sequence *seq, int layer, int n_cached,
                         int keep);

/* Positions layer `layer` holds of the n_cached written: n_cached - evicted. */
int kv_sequence_kept(const kv_sequence *seq, int layer, int n_cached);

/* Evicted rows still in the table of layer `layer` (the kernels' hole_rows): evicted - dropped. */
int kv_sequence_hole_rows(const kv_sequence *seq, int layer);

#endif
