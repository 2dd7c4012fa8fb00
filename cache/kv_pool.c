#include "cache/kv_pool.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    seq->evicted = calloc((size_t)n_layer, sizeof(int));
    seq->dropped = calloc((size_t)n_layer, sizeof(int));
    seq->stores = malloc((size_t)n_layer * sizeof(bool));
    if (seq->block_ids && seq->n_blocks && seq->evicted && seq->dropped && seq->stores) {
        for (int l = 0; l < n_layer; l++) seq->stores[l] = true;
        return 0;
    }
    kv_sequence_destroy(seq);
    return -1;
}

void kv_sequence_destroy(kv_sequence *seq) {
    free(seq->block_ids);
    free(seq->n_blocks);
    free(seq->evicted);
    free(seq->dropped);
    free(seq->stores);
    *seq = (kv_sequence){0};
}

/* Blocks layer `layer` must hold for positions [0, n_tokens): their rows, less those dropped. */
static int64_t layer_blocks_for_tokens(const kv_sequence *seq, int layer, int64_t n_tokens) {
    if (!seq->stores[layer]) return 0;
    return (n_tokens - seq->dropped[layer] + seq->block_size - 1) / seq->block_size;
}

int kv_sequence_blocks_needed(const kv_sequence *seq, int n_new) {
    const int64_t n_tokens = (int64_t)seq->n_tokens + n_new;
    int64_t needed = 0;
    for (int l = 0; l < seq->n_layer; l++) {
        const int64_t blocks = layer_blocks_for_tokens(seq, l, n_tokens);
        if (blocks > seq->n_blocks[l]) needed += blocks - seq->n_blocks[l];
    }
    return needed > INT32_MAX ? INT32_MAX : (int)needed;
}

kv_reserve_status kv_sequence_reserve(kv_block_allocator *alloc, kv_sequence *seq, int n_new) {
    if (seq->block_size != alloc->shape.block_size || seq->n_layer != alloc->shape.n_layer)
        engine_bug("sequence shape differs from the pool's", seq->block_size);
    const int64_t n_tokens = (int64_t)seq->n_tokens + n_new;
    if (n_new < 0 || n_tokens > (int64_t)seq->capacity * seq->block_size) return KV_TOO_LONG;
    if (kv_sequence_blocks_needed(seq, n_new) > alloc->n_free) return KV_POOL_FULL;
    for (int l = 0; l < seq->n_layer; l++) {
        int32_t *table = seq->block_ids + (size_t)l * seq->capacity;
        const int64_t blocks = layer_blocks_for_tokens(seq, l, n_tokens);
        while (seq->n_blocks[l] < blocks) {
            int32_t id = alloc->free_ids[--alloc->n_free];
            alloc->in_use[id] = true;
            table[seq->n_blocks[l]++] = id;
        }
    }
    seq->n_tokens = (int)n_tokens;
    return KV_RESERVED;
}

static void free_block(kv_block_allocator *alloc, int32_t id) {
    if (id < 0 || id >= alloc->shape.num_blocks || !alloc->in_use[id])
        engine_bug("block released but not in use", id);
    alloc->in_use[id] = false;
    alloc->free_ids[alloc->n_free++] = id;
}

void kv_sequence_release(kv_block_allocator *alloc, kv_sequence *seq) {
    for (int l = 0; l < seq->n_layer; l++) {
        const int32_t *table = kv_sequence_table(seq, l);
        for (int i = 0; i < seq->n_blocks[l]; i++) free_block(alloc, table[i]);
        seq->n_blocks[l] = 0;
        seq->evicted[l] = 0;
        seq->dropped[l] = 0;
    }
    seq->n_tokens = 0;
    seq->sinks = 0;
}

void kv_sequence_set_stores(kv_sequence *seq, const bool *stores) {
    if (seq->n_tokens != 0) engine_bug("stores changed on a sequence in use", seq->n_tokens);
    for (int l = 0; l < seq->n_layer; l++) seq->stores[l] = stores[l];
}

void kv_sequence_evict(kv_block_allocator *alloc, kv_sequence *seq, int layer, int n_cached,
                       int sinks, int keep) {
    if (n_cached > seq->n_tokens || sinks < 0 || keep <= sinks)
        engine_bug("eviction outside the reserved positions", n_cached);
    kv_sequence_table(seq, layer);
    if (!seq->stores[layer] || n_cached - seq->evicted[layer] <= keep) return;
    if (seq->evicted[layer] > 0 && sinks != seq->sinks) engine_bug("sinks changed mid-sequence", sinks);
    seq->sinks = sinks;
    seq->evicted[layer] = n_cached - keep;
    /* The hole's rows are [sinks, sinks + evicted - dropped); the first block that can lie
       wholly inside it starts at the first block boundary at or after sinks. */
    const int B = seq->block_size, first = (sinks + B - 1) / B;
    int32_t *table = seq->block_ids + (size_t)layer * seq->capacity;
    while (first < seq->n_blocks[layer] &&
           (first + 1) * B <= sinks + seq->evicted[layer] - seq->dropped[layer]) {
        free_block(alloc, table[first]);
        seq->n_blocks[layer]--;
        memmove(table + first, table + first + 1,
                (size_t)(seq->n_blocks[layer] - first) * sizeof(int32_t));
        seq->dropped[layer] += B;
    }
}

void kv_sequence_compact(kv_block_allocator *alloc, kv_sequence *seq, int layer, int n_cached,
                         int keep) {
    if (n_cached > seq->n_tokens || keep < 0 || seq->sinks != 0)
        engine_bug("compaction outside the reserved positions", n_cached);
    kv_sequence_table(seq, layer);
    if (!seq->stores[layer] || n_cached - seq->evicted[layer] <= keep) return;
    seq->evicted[layer] = seq->dropped[layer] = n_cached - keep;
    const int blocks = (keep + seq->block_size - 1) / seq->block_size;
    const int32_t *table = seq->block_ids + (size_t)layer * seq->capacity;
    while (seq->n_blocks[layer] > blocks) free_block(alloc, table[--seq->n_blocks[layer]]);
}

int kv_sequence_kept(const kv_sequence *seq, int layer, int n_cached) {
    return n_cached - seq->evicted[layer];
}

int kv_sequence_hole_rows(const kv_sequence *seq, int layer) {
    return seq->evicted[layer] - seq->dropped[layer];
}

const int32_t *kv_sequence_table(const kv_sequence *seq, int layer) {
    if (layer < 0 || layer >= seq->n_layer) engine_bug("table asked for a layer outside the sequence", layer);
    return seq->block_ids + (size_t)layer * seq->capacity;
}

int64_t kv_sequence_slot(const kv_sequence *seq, int layer, int pos) {
    if (pos < 0 || pos >= seq->n_tokens) engine_bug("slot asked for a position not reserved", pos);
    const int32_t *table = kv_sequence_table(seq, layer);
    if (!seq->stores[layer]) return -1;
    if (pos >= seq->sinks && pos < seq->sinks + seq->evicted[layer])
        engine_bug("slot asked for an evicted position", pos);
    const int row = pos < seq->sinks ? pos : pos - seq->dropped[layer];
    /* 64-bit before the multiply: num_blocks * block_size can pass INT32_MAX on large pools. */
    return (int64_t)table[row / seq->block_size] * seq->block_size + row % seq->block_size;
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

/* n sequences' bookkeeping, each storing only in the layers the policy has keep their own KV. */
static kv_sequence *create_sequences(int n, const kv_pool_shape *shape, int seq_tokens,
                                     const kv_policy *policy) {
    kv_sequence *seqs = calloc((size_t)(n > 0 ? n : 1), sizeof *seqs);
    bool *stores = malloc((size_t)shape->n_layer * sizeof *stores);
    bool ok = seqs && stores;
    for (int l = 0; ok && l < shape->n_layer; l++) stores[l] = kv_policy_kv_source(policy, l) == l;
    for (int i = 0; ok && i < n; i++) {
        ok = kv_sequence_create(&seqs[i], shape->n_layer, seq_tokens, shape->block_size) == 0;
        if (ok) kv_sequence_set_stores(&seqs[i], stores);
    }
    free(stores);
    if (ok) return seqs;
    for (int i = 0; seqs && i < n; i++) kv_sequence_destroy(&seqs[i]);
    free(seqs);
    return NULL;
}

/* Every layer of seq evicts what the policy does not keep once n_cached tokens are in. */
static void evict_by_policy(kv_block_allocator *alloc, kv_sequence *seq, const kv_policy *policy,
                            int budget_tokens, int n_cached) {
    if (policy->kind == KV_POLICY_FULL || policy->kind == KV_POLICY_SHARE) return;
    const int sinks = policy->kind == KV_POLICY_SINKS ? policy->sinks : 0;
    for (int l = 0; l < seq->n_layer; l++) {
        const int keep = kv_policy_layer_budget(policy, l, seq->n_layer, budget_tokens);
        if (policy->kind == KV_POLICY_H2O) kv_sequence_compact(alloc, seq, l, n_cached, keep);
        else kv_sequence_evict(alloc, seq, l, n_cached, sinks, keep);
    }
}

/* Whether n sequences decoding in lockstep to seq_tokens all fit: 1, 0, or -1 (out of memory). */
static int lockstep_fits(const kv_pool_shape *shape, int n, int seq_tokens, const kv_policy *policy,
                         int budget_tokens) {
    kv_block_allocator alloc;
    if (kv_block_allocator_create(&alloc, shape) != 0) return -1;
    kv_sequence *seqs = create_sequences(n, shape, seq_tokens, policy);
    if (!seqs) {
        kv_block_allocator_destroy(&alloc);
        return -1;
    }
    const int first = kv_policy_first_chunk(policy, shape->n_layer, budget_tokens, seq_tokens, seq_tokens);
    int fits = 1;
    for (int n_cached = 0; fits && n_cached < seq_tokens;) { /* one batched step per round */
        const int step = n_cached == 0 ? first : 1;
        for (int i = 0; fits && i < n; i++) /* every sequence's room first, as a decode step */
            fits = kv_sequence_reserve(&alloc, &seqs[i], step) == KV_RESERVED;
        for (int i = 0; fits && i < n; i++)
            evict_by_policy(&alloc, &seqs[i], policy, budget_tokens, n_cached + step);
        n_cached += step;
    }
    for (int i = 0; i < n; i++) kv_sequence_destroy(&seqs[i]);
    free(seqs);
    kv_block_allocator_destroy(&alloc);
    return fits;
}

int kv_pool_sequences_that_fit_policy(const kv_pool_shape *shape, size_t budget_bytes,
                                      int seq_tokens, const kv_policy *policy, int budget_tokens) {
    if (seq_tokens < 1 || policy->kind == KV_POLICY_MINICACHE) return -1;
    kv_pool_shape budgeted = *shape;
    budgeted.num_blocks = kv_pool_blocks_for_budget(shape, budget_bytes);
    if (budgeted.num_blocks < 1) return 0;
    /* Binary search: lo sequences fit, hi do not. A sequence ends holding at least the blocks of
       what each layer keeps, so no more than num_blocks / that many fit. */
    int64_t end_blocks = 0;
    for (int l = 0; l < shape->n_layer; l++) {
        if (kv_policy_kv_source(policy, l) != l) continue;
        int kept = kv_policy_layer_budget(policy, l, shape->n_layer, budget_tokens);
        if (policy->kind == KV_POLICY_FULL || policy->kind == KV_POLICY_SHARE || kept > seq_tokens)
            kept = seq_tokens;
        end_blocks += (kept + shape->block_size - 1) / shape->block_size;
    }
    int lo = 0, hi = (int)(budgeted.num_blocks / end_blocks) + 1;
    while (hi - lo > 1) {
        const int mid = lo + (hi - lo) / 2;
        const int fits = lockstep_fits(&budgeted, mid, seq_tokens, policy, budget_tokens);
        if (fits < 0) return -1;
        if (fits) lo = mid;
        else hi = mid;
    }
    return lo;
}
