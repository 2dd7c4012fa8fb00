/*
 * H2O's kernels (kernels/kv_h2o.cu) on fresh random pools, in both page formats.
 *
 * launch_kv_h2o_evict: sequences of random dense rows over shuffled pages, random per-head
 * scores of few values (so that the summed scores often tie) and distinct positions, the newest last. Expected, by
 * sorting rather than by the kernel's repeated minimum: the kept positions are the `window` most
 * recent and, of the older, those with the highest head-summed score (ties: the more recent
 * kept). Then every kept row must carry its token's own K, V (codes and scales), scores and
 * position, bit for bit, in rows 0 .. target - 1; a sequence at or under its target, and every
 * page no sequence owns, must be untouched.
 *
 * launch_kv_h2o_init: the rows of given slots get score 0 in every head and their positions;
 * slot -1 and the rest of the pool are untouched.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda_check.h"
#include "kernels/kernels.h"
#include "model/sampler.h"
#include "tests/check.h"
#include "tests/gpu_test_util.h"

#define HEAD 64
#define B 16
#define N_HEAD 3
#define NUM_BLOCKS 24
#define MAX_BLOCKS 8
#define N_SEQS 4
#define WINDOW 6
#define ROWS (NUM_BLOCKS * B)

typedef struct {
    uint16_t k[ROWS * N_HEAD * HEAD], v[ROWS * N_HEAD * HEAD]; /* fp16 pages, or int8 codes */
    uint16_t k_scales[ROWS * N_HEAD], v_scales[ROWS * N_HEAD];
    float scores[ROWS * N_HEAD];
    int32_t positions[ROWS];
} pool;

static int64_t slot_of(const int32_t *table, int row) { return (int64_t)table[row / B] * B + row % B; }

/* Index of (slot, head) in the [num_blocks, n_head, B] layout. */
static size_t head_row(int64_t slot, int head) {
    return ((size_t)(slot / B) * N_HEAD + head) * B + (size_t)(slot % B);
}

static float summed_score(const pool *p, int64_t slot) {
    float s = 0.0f;
    for (int h = 0; h < N_HEAD; h++) s += p->scores[head_row(slot, h)];
    return s;
}

/* The kept set by sorting: 1 for each row (of n) that survives eviction to `target`. */
static void expected_kept(const pool *p, const int32_t *table, int n, int target, bool *kept) {
    const int newest = p->positions[slot_of(table, n - 1)];
    int order[MAX_BLOCKS * B], n_old = 0;
    for (int r = 0; r < n; r++) {
        kept[r] = p->positions[slot_of(table, r)] > newest - WINDOW;
        if (!kept[r]) order[n_old++] = r;
    }
    /* Older rows by score, highest first; equal scores: the more recent first. */
    for (int i = 1; i < n_old; i++)
        for (int j = i; j > 0; j--) {
            const int64_t a = slot_of(table, order[j - 1]), b = slot_of(table, order[j]);
            const float sa = summed_score(p, a), sb = summed_score(p, b);
            if (sb > sa || (sb == sa && p->positions[b] > p->positions[a])) {
                const int t = order[j];
                order[j] = order[j - 1];
                order[j - 1] = t;
            }
        }
    const int keep_old = target - (n - n_old);
    for (int i = 0; i < n_old; i++) kept[order[i]] = i < keep_old;
}

/* Fresh rows: random K and V, and scores of few values, so that summed scores often tie. */
static void fill_pool(pool *p, uint64_t *rng) {
    for (size_t i = 0; i < sizeof p->k / sizeof *p->k; i++) {
        p->k[i] = (uint16_t)(splitmix64_mix((*rng)++) & 0x3BFF); /* finite halves, or int8 pairs */
        p->v[i] = (uint16_t)(splitmix64_mix((*rng)++) & 0x3BFF);
    }
    for (int i = 0; i < ROWS * N_HEAD; i++) {
        p->k_scales[i] = (uint16_t)(0x2000 + i);
        p->v_scales[i] = (uint16_t)(0x2400 + i);
        p->scores[i] = (float)(int)(3 * sampler_next_uniform(rng)) / 4; /* 0, 1/4, 1/2: many ties */
    }
    for (int i = 0; i < ROWS; i++) p->positions[i] = -1;
}

/* A row's bytes: K and V of every head, the INT8 scales, the scores, equal in a and b. */
static bool same_row(const pool *a, int64_t sa, const pool *b, int64_t sb, bool int8) {
    for (int h = 0; h < N_HEAD; h++) {
        const size_t ra = head_row(sa, h), rb = head_row(sb, h);
        const size_t bytes = int8 ? HEAD : HEAD * 2; /* int8 codes use half the fp16 bytes */
        if (memcmp((const char *)a->k + ra * bytes, (const char *)b->k + rb * bytes, bytes) ||
            memcmp((const char *)a->v + ra * bytes, (const char *)b->v + rb * bytes, bytes) ||
            a->scores[ra] != b->scores[rb] ||
            (int8 && (a->k_scales[ra] != b->k_scales[rb] || a->v_scales[ra] != b->v_scales[rb])))
            return false;
    }
    return true;
}

static void check_evict(bool int8, uint64_t *rng) {
    static pool before, after;
    fill_pool(&before, rng);
    static const int lens[N_SEQS] = {50, 20, 37, 9}, targets[N_SEQS] = {30, 25, 10, 0};
    int32_t tables[N_SEQS * MAX_BLOCKS];
    int ids[NUM_BLOCKS];
    for (int i = 0; i < NUM_BLOCKS; i++) ids[i] = i;
    for (int i = NUM_BLOCKS - 1; i > 0; i--) { /* shuffled pages */
        const int j = (int)(sampler_next_uniform(rng) * (i + 1)), t = ids[i];
        ids[i] = ids[j];
        ids[j] = t;
    }
    int next = 0;
    for (int s = 0; s < N_SEQS; s++) {
        for (int b = 0; b < MAX_BLOCKS; b++) tables[s * MAX_BLOCKS + b] = b * B < lens[s] ? ids[next++] : 1 << 30;
        for (int r = 0; r < lens[s]; r++) /* distinct positions, the newest last */
            before.positions[slot_of(tables + s * MAX_BLOCKS, r)] =
                r == lens[s] - 1 ? 1000 : (int)((size_t)(r * 37 + s * 11) % 997);
    }
    kv_h2o_pages pages = {0};
    char *dev_k = device_copy(before.k, sizeof before.k), *dev_v = device_copy(before.v, sizeof before.v);
    if (int8) pages.k_codes = (int8_t *)dev_k, pages.v_codes = (int8_t *)dev_v;
    else pages.k = (gpt2_f16 *)dev_k, pages.v = (gpt2_f16 *)dev_v;
    pages.k_scales = device_copy(before.k_scales, sizeof before.k_scales);
    pages.v_scales = device_copy(before.v_scales, sizeof before.v_scales);
    pages.h2o_scores = device_copy(before.scores, sizeof before.scores);
    pages.h2o_positions = device_copy(before.positions, sizeof before.positions);
    int32_t *dev_tables = device_copy(tables, sizeof tables);
    int32_t *dev_lens = device_copy(lens, sizeof lens), *dev_targets = device_copy(targets, sizeof targets);
    launch_kv_h2o_evict(pages, int8 ? PAGED_KV_INT8 : PAGED_KV_FP16, dev_tables, MAX_BLOCKS, N_HEAD, B,
                        dev_lens, dev_targets, WINDOW, N_SEQS, 0);
    CUDA_CHECK(cudaMemcpy(after.k, dev_k, sizeof after.k, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(after.v, dev_v, sizeof after.v, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(after.k_scales, pages.k_scales, sizeof after.k_scales, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(after.v_scales, pages.v_scales, sizeof after.v_scales, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(after.scores, pages.h2o_scores, sizeof after.scores, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(after.positions, pages.h2o_positions, sizeof after.positions, cudaMemcpyDeviceToHost));

    const char *form = int8 ? "int8" : "fp16";
    for (int s = 0; s < N_SEQS; s++) {
        const int32_t *table = tables + s * MAX_BLOCKS;
        const int n = lens[s], kept_rows = targets[s] >= 1 && targets[s] < n ? targets[s] : n;
        bool kept[MAX_BLOCKS * B];
        if (kept_rows < n) expected_kept(&before, table, n, kept_rows, kept);
        else for (int r = 0; r < n; r++) kept[r] = true;
        int found = 0;
        for (int r = 0; r < kept_rows; r++) { /* each kept row holds one wanted token, intact */
            const int64_t slot = slot_of(table, r);
            int origin = -1;
            for (int o = 0; o < n; o++)
                if (before.positions[slot_of(table, o)] == after.positions[slot]) origin = o;
            CHECK(origin >= 0 && kept[origin], "%s sequence %d row %d: position %d should have gone",
                  form, s, r, after.positions[slot]);
            if (origin < 0) continue;
            kept[origin] = false; /* found once */
            found++;
            CHECK(same_row(&after, slot, &before, slot_of(table, origin), int8),
                  "%s sequence %d: position %d's row did not move intact", form, s, after.positions[slot]);
        }
        CHECK(found == kept_rows, "%s sequence %d: %d of %d kept tokens found", form, s, found, kept_rows);
    }
    for (int b = next; b < NUM_BLOCKS; b++) /* pages nobody owns */
        for (int o = 0; o < B; o++)
            CHECK(same_row(&after, (int64_t)ids[b] * B + o, &before, (int64_t)ids[b] * B + o, int8) &&
                  after.positions[ids[b] * B + o] == before.positions[ids[b] * B + o],
                  "%s: an unowned page was written", form);
    CUDA_CHECK(cudaFree(dev_k)); CUDA_CHECK(cudaFree(dev_v));
    CUDA_CHECK(cudaFree(pages.k_scales)); CUDA_CHECK(cudaFree(pages.v_scales));
    CUDA_CHECK(cudaFree(pages.h2o_scores)); CUDA_CHECK(cudaFree(pages.h2o_positions));
    CUDA_CHECK(cudaFree(dev_tables)); CUDA_CHECK(cudaFree(dev_lens)); CUDA_CHECK(cudaFree(dev_targets));
}

static void check_init(uint64_t *rng) {
    static pool p;
    fill_pool(&p, rng);
    const int64_t slots[] = {3, -1, 77, 200, ROWS - 1};
    const int32_t positions[] = {10, 11, 12, 13, 14};
    const int n = (int)(sizeof slots / sizeof *slots);
    float *dev_scores = device_copy(p.scores, sizeof p.scores);
    int32_t *dev_positions = device_copy(p.positions, sizeof p.positions);
    int64_t *dev_slots = device_copy(slots, sizeof slots);
    int32_t *dev_token_positions = device_copy(positions, sizeof positions);
    launch_kv_h2o_init(dev_scores, dev_positions, dev_slots, dev_token_positions, n, N_HEAD, B,
                       NUM_BLOCKS, 0);
    static float scores[ROWS * N_HEAD];
    int32_t got[ROWS];
    CUDA_CHECK(cudaMemcpy(scores, dev_scores, sizeof scores, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(got, dev_positions, sizeof got, cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int64_t slot = 0; slot < ROWS; slot++) {
        int token = -1;
        for (int i = 0; i < n; i++)
            if (slots[i] == slot) token = i;
        bad += got[slot] != (token >= 0 ? positions[token] : p.positions[slot]);
        for (int h = 0; h < N_HEAD; h++)
            bad += scores[head_row(slot, h)] != (token >= 0 ? 0.0f : p.scores[head_row(slot, h)]);
    }
    CHECK(bad == 0, "kv_h2o_init: %d values wrong", bad);
    CUDA_CHECK(cudaFree(dev_scores)); CUDA_CHECK(cudaFree(dev_positions));
    CUDA_CHECK(cudaFree(dev_slots)); CUDA_CHECK(cudaFree(dev_token_positions));
}

int main(void) {
    if (gpt2_cuda_device_count() == 0) {
        printf("test_kv_h2o_gpu: no CUDA device, skipped\n");
        return SKIP_EXIT_CODE;
    }
    uint64_t rng = gpu_test_seed("test_kv_h2o_gpu");
    for (int trial = 0; trial < 3; trial++) {
        check_evict(false, &rng);
        check_evict(true, &rng);
    }
    check_init(&rng);
    return check_finish("test_kv_h2o_gpu");
}
