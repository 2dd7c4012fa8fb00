/*
 * The paged KV pool's bookkeeping under a random workload: blocks (one layer's page each) are
 * never owned twice or lost, every layer of a sequence holds its own blocks, reservations are
 * all or nothing across layers, release frees at once, slots are distinct and in range; its
 * sizing in FP16 and INT8; and eviction (sinks plus the most recent tokens, per layer): kept
 * positions keep their slots, memory really drops, and what stays held is within two blocks of
 * what the kept tokens need.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/kv_pool.h"
#include "model/sampler.h"
#include "tests/check.h"

#define N_SEQS 24
#define MAX_TOKENS 1024

/* Every block is free or owned by exactly one layer of one sequence, and in_use says which. */
static void check_ownership(const kv_block_allocator *alloc, const kv_sequence *seqs, int n) {
    const int num_blocks = alloc->shape.num_blocks, B = alloc->shape.block_size;
    int *owners = calloc((size_t)num_blocks, sizeof(int));
    for (int i = 0; i < alloc->n_free; i++) owners[alloc->free_ids[i]]++;
    for (int s = 0; s < n; s++) {
        for (int l = 0; l < seqs[s].n_layer; l++) {
            CHECK(seqs[s].n_blocks[l] == (seqs[s].n_tokens + B - 1) / B,
                  "sequence %d layer %d: %d blocks for %d tokens", s, l, seqs[s].n_blocks[l],
                  seqs[s].n_tokens);
            const int32_t *table = kv_sequence_table(&seqs[s], l);
            for (int b = 0; b < seqs[s].n_blocks[l]; b++) {
                CHECK(alloc->in_use[table[b]], "block %d owned but not marked in use", table[b]);
                owners[table[b]]++;
            }
        }
    }
    for (int id = 0; id < num_blocks; id++)
        CHECK(owners[id] == 1, "block %d has %d owners", id, owners[id]);
    free(owners);
}

/* Slots of every reserved position in every layer are distinct, in range, and on that layer's blocks. */
static void check_slots(const kv_block_allocator *alloc, const kv_sequence *seqs, int n) {
    const int B = alloc->shape.block_size;
    const int64_t n_slots = (int64_t)alloc->shape.num_blocks * B;
    unsigned char *seen = calloc((size_t)n_slots, 1);
    for (int s = 0; s < n; s++) {
        for (int l = 0; l < seqs[s].n_layer; l++) {
            const int32_t *table = kv_sequence_table(&seqs[s], l);
            for (int pos = 0; pos < seqs[s].n_tokens; pos++) {
                int64_t slot = kv_sequence_slot(&seqs[s], l, pos);
                CHECK(slot >= 0 && slot < n_slots, "slot %lld out of range", (long long)slot);
                if (slot < 0 || slot >= n_slots) continue;
                CHECK(!seen[slot], "slot %lld used twice", (long long)slot);
                CHECK(slot / B == table[pos / B] && slot % B == pos % B,
                      "slot %lld is not on block %d", (long long)slot, table[pos / B]);
                seen[slot] = 1;
            }
        }
    }
    free(seen);
}

static void check_random_workload(uint64_t *rng) {
    kv_pool_shape shape = {
        .n_layer = 3, .n_head = 2, .block_size = 16, .num_blocks = 600, .format = KV_FORMAT_FP16};
    kv_block_allocator alloc;
    kv_sequence seqs[N_SEQS];
    CHECK(kv_block_allocator_create(&alloc, &shape) == 0, "allocator");
    for (int s = 0; s < N_SEQS; s++) kv_sequence_create(&seqs[s], shape.n_layer, MAX_TOKENS, shape.block_size);
    int full = 0, too_long = 0, reserved = 0;
    for (int step = 0; step < 5000; step++) {
        kv_sequence *seq = &seqs[(int)(sampler_next_uniform(rng) * N_SEQS)];
        if (sampler_next_uniform(rng) < 0.1f) {
            int before = alloc.n_free;
            int held = seq->n_layer * seq->n_blocks[0];
            kv_sequence_release(&alloc, seq);
            CHECK(alloc.n_free == before + held && seq->n_blocks[0] == 0 && seq->n_tokens == 0,
                  "release did not return %d blocks at once", held);
            continue;
        }
        int n_new = sampler_next_uniform(rng) < 0.7f ? 1 : (int)(sampler_next_uniform(rng) * 300);
        const int tokens_before = seq->n_tokens, blocks_before = seq->n_blocks[0];
        const int predicted = kv_sequence_blocks_needed(seq, n_new);
        int32_t first_free = alloc.n_free ? alloc.free_ids[alloc.n_free - 1] : -1;
        int free_before = alloc.n_free;
        kv_reserve_status status = kv_sequence_reserve(&alloc, seq, n_new);
        if (status == KV_RESERVED) {
            reserved++;
            CHECK(seq->n_tokens == tokens_before + n_new, "reserved tokens");
            CHECK(alloc.n_free == free_before - predicted, "took %d blocks, predicted %d",
                  free_before - alloc.n_free, predicted);
        } else {
            full += status == KV_POOL_FULL;
            too_long += status == KV_TOO_LONG;
            CHECK(seq->n_tokens == tokens_before && seq->n_blocks[0] == blocks_before &&
                  alloc.n_free == free_before &&
                  (alloc.n_free == 0 || alloc.free_ids[alloc.n_free - 1] == first_free),
                  "a refused reservation changed the pool");
            int need = shape.n_layer * ((tokens_before + n_new + 15) / 16 - blocks_before);
            if (status == KV_POOL_FULL)
                CHECK(need > free_before, "refused %d blocks with %d free", need, free_before);
            else
                CHECK(tokens_before + n_new > MAX_TOKENS, "refused as too long at %d tokens",
                      tokens_before + n_new);
        }
        if (step % 50 == 0) {
            check_ownership(&alloc, seqs, N_SEQS);
            check_slots(&alloc, seqs, N_SEQS);
        }
    }
    printf("workload: %d reserved, %d pool-full, %d too-long\n", reserved, full, too_long);
    CHECK(full > 0 && too_long > 0 && reserved > 0, "the workload missed a case");
    for (int s = 0; s < N_SEQS; s++) {
        kv_sequence_release(&alloc, &seqs[s]);
        kv_sequence_destroy(&seqs[s]);
    }
    CHECK(alloc.n_free == shape.num_blocks, "blocks lost: %d of %d free", alloc.n_free, shape.num_blocks);
    kv_block_allocator_destroy(&alloc);
}

/*
 * GPT-2 124M: K and V, 12 layers x 768 features x 2 bytes = 36,864 bytes per token; a block is
 * one layer's page of 16 tokens, 16 x 3,072 bytes.
 */
static void check_sizing(void) {
    kv_pool_shape shape = {.n_layer = 12, .n_head = 12, .block_size = 16, .format = KV_FORMAT_FP16};
    CHECK(kv_pool_bytes_per_token(&shape) == 36864, "bytes per token %zu",
          kv_pool_bytes_per_token(&shape));
    CHECK(kv_pool_bytes_per_block(&shape) == 16 * 3072, "bytes per block %zu",
          kv_pool_bytes_per_block(&shape));
    CHECK(kv_pool_blocks_for_budget(&shape, (size_t)1 << 30) == (1 << 30) / (16 * 3072),
          "blocks in 1 GiB");
    CHECK(kv_pool_blocks_for_budget(&shape, 16 * 3072 - 1) == 0, "a partial block counted");
    shape.num_blocks = 12 * 64 + 11; /* 64 blocks in every layer; 11 left over hold no token */
    CHECK(kv_pool_tokens_per_sequence(&shape) == 1024, "tokens per sequence %d",
          kv_pool_tokens_per_sequence(&shape));
}

/*
 * GPT-2 124M in INT8: per token, K and V x 12 layers x 12 heads x (64 int8 codes + a 2-byte fp16
 * scale) = 19,008 bytes, against 36,864 in fp16. For the same budget the INT8 pool holds at least
 * 1.9x the tokens, whole blocks counted (1 GiB: 42366 one-layer blocks against 21845, 1.94x).
 */
static void check_int8_capacity(void) {
    const size_t int8_token_bytes = 2 * 12 * 12 * (64 + 2), fp16_token_bytes = 36864;
    kv_pool_shape fp16 = {.n_layer = 12, .n_head = 12, .block_size = 16, .format = KV_FORMAT_FP16};
    kv_pool_shape int8 = fp16;
    int8.format = KV_FORMAT_INT8;
    CHECK(kv_pool_bytes_per_token(&int8) == int8_token_bytes, "int8 bytes per token %zu",
          kv_pool_bytes_per_token(&int8));
    CHECK(kv_pool_bytes_per_block(&int8) == 16 * int8_token_bytes / 12, "int8 bytes per block %zu",
          kv_pool_bytes_per_block(&int8));
    const size_t budgets[] = {(size_t)64 << 20, (size_t)1 << 30, (size_t)80 << 30};
    for (size_t i = 0; i < sizeof budgets / sizeof budgets[0]; i++) {
        const int fp16_blocks = kv_pool_blocks_for_budget(&fp16, budgets[i]);
        const int int8_blocks = kv_pool_blocks_for_budget(&int8, budgets[i]);
        CHECK(int8_blocks == (int)(budgets[i] / (16 * int8_token_bytes / 12)) &&
                  fp16_blocks == (int)(budgets[i] / (16 * fp16_token_bytes / 12)),
              "blocks in %zu bytes: int8 %d, fp16 %d", budgets[i], int8_blocks, fp16_blocks);
        CHECK(int8_blocks >= 1.9 * fp16_blocks, "%zu bytes: int8 holds %d blocks, fp16 %d (%.3fx)",
              budgets[i], int8_blocks, fp16_blocks, (double)int8_blocks / fp16_blocks);
        if (i == 1)
            printf("1 GiB holds %d int8 blocks against %d fp16 (%.3fx the tokens)\n", int8_blocks,
                   fp16_blocks, (double)int8_blocks / fp16_blocks);
    }
}

/*
 * Capacity by admission: 124M sequences of T tokens in a budget, against the arithmetic (whole
 * blocks: 12 layers x ceil(T / 16) per sequence), and INT8 admitting >= 1.9x the sequences.
 */
static void check_capacity_by_admission(void) {
    kv_pool_shape fp16 = {.n_layer = 12, .n_head = 12, .block_size = 16, .format = KV_FORMAT_FP16};
    kv_pool_shape int8 = fp16;
    int8.format = KV_FORMAT_INT8;
    const size_t budget = (size_t)1 << 30;
    const int lengths[] = {1, 17, 1024};
    for (size_t i = 0; i < sizeof lengths / sizeof *lengths; i++) {
        const int T = lengths[i], per_seq = 12 * ((T + 15) / 16);
        const int want16 = (int)(budget / (16 * 3072)) / per_seq;
        const int want8 = (int)(budget / (16 * 1584)) / per_seq;
        const int got16 = kv_pool_sequences_that_fit(&fp16, budget, T);
        const int got8 = kv_pool_sequences_that_fit(&int8, budget, T);
        CHECK(got16 == want16 && got8 == want8, "T %d: %d fp16 / %d int8 sequences admitted, "
              "arithmetic %d / %d", T, got16, got8, want16, want8);
        CHECK(got8 >= 1.9 * got16, "T %d: int8 admits %d sequences, fp16 %d", T, got8, got16);
        if (T == 1024)
            printf("1 GiB admits %d sequences of 1024 tokens in int8, %d in fp16 (%.2fx)\n", got8,
                   got16, (double)got8 / got16);
    }
    CHECK(kv_pool_sequences_that_fit(&fp16, 100, 16) == 0, "a budget below one block admits none");
}

static void check_rejects_bad_sequences(void) {
    kv_sequence seq;
    CHECK(kv_sequence_create(&seq, 2, 1024, 0) == -1, "block size 0 accepted");
    CHECK(kv_sequence_create(&seq, 2, 0, 16) == -1, "max_tokens 0 accepted");
    CHECK(kv_sequence_create(&seq, 2, -5, 16) == -1, "negative max_tokens accepted");
    CHECK(kv_sequence_create(&seq, 0, 1024, 16) == -1, "0 layers accepted");
    CHECK(kv_sequence_create(&seq, 2, 17, 16) == 0 && seq.capacity == 2, "17 tokens need 2 blocks");
    kv_sequence_destroy(&seq);
}

/*
 * One sequence of 3 layers grows by random chunks; after each, layer l evicts to its own budget
 * (sinks S, keep K_l). Against bookkeeping kept here: the slot of every kept position is the one
 * it got when written, the blocks held are exactly those the kept rows and the hole's partial
 * blocks span, and every freed block is back in the pool.
 */
static void check_eviction(uint64_t *rng) {
    enum { L = 3, B = 16, T = 600 };
    const kv_pool_shape shape = {.n_layer = L, .n_head = 2, .block_size = B, .num_blocks = 200,
                                 .format = KV_FORMAT_FP16};
    for (int trial = 0; trial < 40; trial++) {
        kv_block_allocator alloc;
        kv_sequence seq;
        CHECK(kv_block_allocator_create(&alloc, &shape) == 0 &&
              kv_sequence_create(&seq, L, T, B) == 0, "eviction set-up");
        const int sinks = trial % 3 == 0 ? 0 : 1 + (int)(sampler_next_uniform(rng) * 20);
        int keep[L];
        for (int l = 0; l < L; l++) keep[l] = sinks + 1 + (int)(sampler_next_uniform(rng) * 90);
        static int64_t slot_of[L][T];
        int n = 0;
        while (n < T) {
            int chunk = 1 + (int)(sampler_next_uniform(rng) * (n == 0 ? 120 : 6));
            if (n + chunk > T) chunk = T - n;
            CHECK(kv_sequence_reserve(&alloc, &seq, chunk) == KV_RESERVED, "trial %d: reserve", trial);
            for (int l = 0; l < L; l++)
                for (int p = n; p < n + chunk; p++) slot_of[l][p] = kv_sequence_slot(&seq, l, p);
            n += chunk;
            int held = 0;
            for (int l = 0; l < L; l++) {
                kv_sequence_evict(&alloc, &seq, l, n, sinks, keep[l]);
                const int kept = n < keep[l] ? n : keep[l];
                CHECK(kv_sequence_kept(&seq, l, n) == kept, "trial %d layer %d: %d kept, want %d",
                      trial, l, kv_sequence_kept(&seq, l, n), kept);
                const int hole = kv_sequence_hole_rows(&seq, l);
                /* Rows in the table: the kept ones and the hole's; whole blocks of it are gone. */
                CHECK(seq.n_blocks[l] == (kept + hole + B - 1) / B, "trial %d layer %d: %d blocks "
                      "for %d kept + %d hole rows", trial, l, seq.n_blocks[l], kept, hole);
                CHECK(hole < 2 * B, "trial %d layer %d: %d hole rows left", trial, l, hole);
                for (int p = 0; p < n; p++)
                    if (p < sinks || p >= n - (kept - (sinks < kept ? sinks : kept)))
                        CHECK(kv_sequence_slot(&seq, l, p) == slot_of[l][p],
                              "trial %d layer %d: position %d moved", trial, l, p);
                held += seq.n_blocks[l];
            }
            CHECK(alloc.n_free == shape.num_blocks - held, "trial %d: %d free, %d held of %d",
                  trial, alloc.n_free, held, shape.num_blocks);
        }
        kv_sequence_release(&alloc, &seq);
        CHECK(alloc.n_free == shape.num_blocks, "trial %d: blocks lost after release", trial);
        kv_sequence_destroy(&seq);
        kv_block_allocator_destroy(&alloc);
    }
}

/*
 * Capacity under eviction, by admission, against arithmetic: the full policy as
 * kv_pool_sequences_that_fit; a window of W tokens (W % 16 == 0) that straddles a block
 * boundary while it slides holds W / 16 + 1 blocks per layer; h2o's compacted H + W rows plus
 * the step's new one, before compaction, ceil((H + W + 1) / 16); under share:0 on 4 layers only
 * 2 layers hold blocks.
 */
static void check_capacity_under_policies(void) {
    const kv_pool_shape shape = {.n_layer = 4, .n_head = 2, .block_size = 16,
                                 .format = KV_FORMAT_FP16};
    const size_t budget = (size_t)1000 * kv_pool_bytes_per_block(&shape);
    kv_policy full = {.kind = KV_POLICY_FULL}, window = {.kind = KV_POLICY_WINDOW, .window = 64};
    kv_policy share = {.kind = KV_POLICY_SHARE, .first_layer = 0};
    CHECK(kv_pool_sequences_that_fit_policy(&shape, budget, 300, &full, 1024) ==
          kv_pool_sequences_that_fit(&shape, budget, 300), "full policy: both measures agree");
    const int want_window = 1000 / (4 * (64 / 16 + 1));
    CHECK(kv_pool_sequences_that_fit_policy(&shape, budget, 300, &window, 1024) == want_window,
          "window:64: %d sequences of 300 tokens fit, arithmetic %d",
          kv_pool_sequences_that_fit_policy(&shape, budget, 300, &window, 1024), want_window);
    CHECK(kv_pool_sequences_that_fit_policy(&shape, budget, 60, &window, 1024) == 1000 / (4 * 4),
          "window:64 never evicts 60 tokens: 4 blocks per layer");
    kv_policy h2o = {.kind = KV_POLICY_H2O, .heavy = 40, .window = 24}; /* 64 rows, compacted */
    CHECK(kv_pool_sequences_that_fit_policy(&shape, budget, 300, &h2o, 1024) == 1000 / (4 * 5),
          "h2o:40,window:24: 64 rows, and the step's new one before compaction: 5 blocks");
    const int want_share = 1000 / (2 * ((300 + 15) / 16));
    CHECK(kv_pool_sequences_that_fit_policy(&shape, budget, 300, &share, 1024) == want_share,
          "share:0: %d sequences fit, arithmetic %d",
          kv_pool_sequences_that_fit_policy(&shape, budget, 300, &share, 1024), want_share);
}

/* A layer that stores nothing gets no blocks and no slots. */
static void check_non_storing_layer(void) {
    const kv_pool_shape shape = {.n_layer = 2, .n_head = 1, .block_size = 16, .num_blocks = 8,
                                 .format = KV_FORMAT_FP16};
    kv_block_allocator alloc;
    kv_sequence seq;
    CHECK(kv_block_allocator_create(&alloc, &shape) == 0 && kv_sequence_create(&seq, 2, 64, 16) == 0,
          "set-up");
    const bool stores[2] = {true, false};
    kv_sequence_set_stores(&seq, stores);
    CHECK(kv_sequence_blocks_needed(&seq, 40) == 3, "40 tokens in one storing layer need 3 blocks");
    CHECK(kv_sequence_reserve(&alloc, &seq, 40) == KV_RESERVED && alloc.n_free == 5 &&
          seq.n_blocks[1] == 0 && kv_sequence_slot(&seq, 1, 39) == -1, "the borrower holds nothing");
    kv_sequence_release(&alloc, &seq);
    kv_sequence_destroy(&seq);
    kv_block_allocator_destroy(&alloc);
}

int main(void) {
    uint64_t rng = 12345;
    check_rejects_bad_sequences();
    check_random_workload(&rng);
    check_sizing();
    check_int8_capacity();
    check_capacity_by_admission();
    check_eviction(&rng);
    check_non_storing_layer();
    check_capacity_under_policies();
    return check_finish("test_kv_pool");
}
