/*
 * MiniCache's merge in the pool (kernels/kv_minicache.cu, launch_kv_minicache_merge) on fresh
 * random pools over shuffled pages, in both page formats, with 3 heads and with 25 (GPT-2 1.5B:
 * 50 slices, more than the kernel's 32 lane groups, so that they loop).
 *
 * Five layers, pairs (1, 2) and (3, 4) (first_lower 1; layer 0 is in none), five sequences:
 * decode steps (n = 1) that merge or retain, calls of 12 and 20 tokens over block boundaries (one
 * on an empty cache, M = N = R = 0, so that merges start in place), one with R != N - M, idle
 * ones (n = 0, and context_lens[o] < n). The call's rows are built per head, K and V, at a chosen
 * cosine: merging tokens (0.75 .. 1 in every head, or 0.6 .. 0.65, just above the threshold),
 * retained ones (every head unrelated), one head alone at 0.35 or 0.4, a head whose two rows are
 * both zero (it merges: a zero row, ratio 0), a head with one zero row (retained).
 *
 * Expected: kernels.h's contract simulated on the host, move by move, on a copy of the pool:
 * decisions in double from the rows as stored (each cosine at least 1e-3 from the threshold, so
 * the device's fp32 decides the same, or the test says so), raw moves bit for bit, merged rows in
 * double. Checked: merged_tokens of every (pair, sequence), and no other entry written; every page
 * row of every layer bit for bit against the simulation, except merged rows and what the contract
 * leaves free (u's own rows past those kept, the ratios of o's rows not merged by the call and of
 * u's rows); merged rows: fp16 within half an fp16 ulp of the exact value (plus 1e-5 relative for
 * the device's fp32), INT8 scale within one fp16 step and codes within 1 of kv_quantize_head of
 * the exact values, each code * scale within 0.501 scale of the exact value; ratios within 1e-5
 * relative. Unowned pages hold poison (NaN halves, code 127 with a NaN scale, NaN ratios), so a
 * read of them spreads NaN into what is checked, and any write to them shows.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/kv_policy.h"
#include "cache/kv_quant.h"
#include "kernels/cuda_check.h"
#include "kernels/half.h"
#include "kernels/kernels.h"
#include "model/sampler.h"
#include "tests/check.h"
#include "tests/gpu_test_util.h"

#define HEAD 64
#define B 16
#define N_LAYER 5
#define FIRST_LOWER 1
#define N_PAIRS 2
#define N_SEQS 5
#define MAX_BLOCKS 6
#define NUM_BLOCKS 48
#define MAX_N_HEAD 25
#define NO_BLOCK (1 << 30)
#define POISON_HALF 0x7E00u
#define UNWRITTEN (-7) /* merged_tokens before the launch */

/* The call's length per sequence, and per pair and sequence M, N, R on entry (N = -1: idle). */
static const int call_lens[N_SEQS] = {1, 1, 12, 20, 0};
static const int entry[N_PAIRS][N_SEQS][3] = {
    {{3, 10, 7}, {0, 5, 5}, {2, 20, 18}, {0, 0, 0}, {1, 4, 3}},
    {{0, 0, 0}, {0, -1, 0}, {7, 9, 5}, {10, 30, 20}, {2, 5, 3}},
};
/*
 * The call's tokens: m merges (every head at cos 0.75 .. 1), n merges near the threshold (0.6 ..
 * 0.65), r retained (every head unrelated), l: m but one head at 0.35, L: n but one head at 0.4,
 * z: m but one head's rows both zero, o / b: m but one head's a / b zero.
 */
static const char *const kinds[N_PAIRS][N_SEQS] = {
    {"m", "r", "mrlmzonmrmbl", "mmrmzmlnmrrmmLmomzmm", ""},
    {"m", "m", "rmnmlzmmbrmm", "mrmmlmmnzrmomLmmrmbm", ""},
};

/* One pool: both formats' arrays on the host, the launch using one of them. */
typedef struct {
    int n_head;
    bool int8;
    size_t rows;         /* page rows: NUM_BLOCKS * n_head * B, (block, head, offset) */
    uint16_t *halves[2]; /* [K | V][rows * 64] fp16 pages */
    int8_t *codes[2];    /* [K | V][rows * 64] int8 pages */
    uint16_t *scales[2]; /* [K | V][rows] */
    float *ratios[2];    /* [K | V][rows] */
} pool;

/* What the contract says of a page row (or of its ratio) after the call. */
typedef enum { ROW_EXACT, ROW_MERGED, ROW_FREE } row_state;

/* The simulated pool, what each row must hold, and the merged rows' exact values. */
typedef struct {
    pool p;
    row_state *values[2]; /* [K | V][rows] */
    row_state *ratios[2]; /* [K | V][rows] */
    double *merged[2];    /* [K | V][rows * 64] exact merged values of ROW_MERGED rows */
    double *ratio[2];     /* [K | V][rows] exact ratios of ROW_MERGED ratios */
    int32_t merged_tokens[N_LAYER * N_SEQS];
    int merges, moved_merges, retains, moved_retains, zero_heads; /* what the case exercised */
} expectation;

static void *alloc_or_die(size_t bytes) {
    void *p = calloc(1, bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "out of host memory (%zu bytes)\n", bytes);
        exit(EXIT_FAILURE);
    }
    return p;
}

static void pool_alloc(pool *p, int n_head, bool int8) {
    p->n_head = n_head;
    p->int8 = int8;
    p->rows = (size_t)NUM_BLOCKS * n_head * B;
    for (int side = 0; side < 2; side++) {
        p->halves[side] = alloc_or_die(p->rows * HEAD * sizeof(uint16_t));
        p->codes[side] = alloc_or_die(p->rows * HEAD);
        p->scales[side] = alloc_or_die(p->rows * sizeof(uint16_t));
        p->ratios[side] = alloc_or_die(p->rows * sizeof(float));
    }
}

static void pool_copy(pool *to, const pool *from) {
    for (int side = 0; side < 2; side++) {
        memcpy(to->halves[side], from->halves[side], from->rows * HEAD * sizeof(uint16_t));
        memcpy(to->codes[side], from->codes[side], from->rows * HEAD);
        memcpy(to->scales[side], from->scales[side], from->rows * sizeof(uint16_t));
        memcpy(to->ratios[side], from->ratios[side], from->rows * sizeof(float));
    }
}

static void pool_free(pool *p) {
    for (int side = 0; side < 2; side++) {
        free(p->halves[side]);
        free(p->codes[side]);
        free(p->scales[side]);
        free(p->ratios[side]);
    }
}

static double uniform(uint64_t *rng) { return sampler_next_uniform(rng); }

/* Page row of table row `row`, head `head`: (block * n_head + head) * B + offset. */
static size_t page_row(const pool *p, const int32_t *table, int row, int head) {
    return ((size_t)table[row / B] * p->n_head + head) * B + (size_t)(row % B);
}

/* A page row's 64 values as stored (INT8: code * scale, exact in fp32). */
static void read_row(const pool *p, int side, size_t row, double x[HEAD]) {
    const float scale = half_to_float(p->scales[side][row]);
    for (int d = 0; d < HEAD; d++)
        x[d] = p->int8 ? (double)((float)p->codes[side][row * HEAD + d] * scale)
                       : half_to_float(p->halves[side][row * HEAD + d]);
}

/* Stores 64 values in the pool's format: fp16 to nearest, or kv_quantize_head. */
static void store_row(pool *p, int side, size_t row, const float x[HEAD]) {
    if (p->int8) kv_quantize_head(p->codes[side] + row * HEAD, &p->scales[side][row], x);
    else
        for (int d = 0; d < HEAD; d++) p->halves[side][row * HEAD + d] = float_to_half(x[d]);
}

/* Moves a row as stored (fp16 halves, or codes and scale); the ratio stays. */
static void copy_row(pool *p, int side, size_t to, size_t from) {
    memcpy(p->halves[side] + to * HEAD, p->halves[side] + from * HEAD, HEAD * sizeof(uint16_t));
    memcpy(p->codes[side] + to * HEAD, p->codes[side] + from * HEAD, HEAD);
    p->scales[side][to] = p->scales[side][from];
}

/* Random bits everywhere, then poison in the blocks nobody owns (owned[b] false). */
static void fill_pool(pool *p, const bool *owned, uint64_t *rng) {
    for (int side = 0; side < 2; side++)
        for (size_t r = 0; r < p->rows; r++) {
            const bool poison = !owned[r / ((size_t)p->n_head * B)];
            for (int d = 0; d < HEAD; d++) {
                const uint64_t bits = splitmix64_mix((*rng)++);
                const int8_t code = (int8_t)((int)(bits >> 20 & 0xFF) % 255 - 127);
                p->halves[side][r * HEAD + d] = poison ? POISON_HALF : (uint16_t)(bits & 0x3BFF);
                p->codes[side][r * HEAD + d] = poison ? 127 : code;
            }
            const uint16_t scale = (uint16_t)(0x1C00 + (splitmix64_mix((*rng)++) & 0x7FF));
            p->scales[side][r] = poison ? POISON_HALF : scale;
            p->ratios[side][r] = poison ? NAN : (float)(4.0 * uniform(rng));
        }
}

/*
 * One head's a and b at cosine c (|a| and |b| / |a| random), then a and/or b zeroed (zero: 1 a,
 * 2 b, 3 both).
 */
static void make_head(float a[HEAD], float b[HEAD], double c, int zero, uint64_t *rng) {
    double u[HEAD], w[HEAD], nu = 0.0, uw = 0.0, nw = 0.0;
    for (int d = 0; d < HEAD; d++) {
        u[d] = 2.0 * uniform(rng) - 1.0;
        w[d] = 2.0 * uniform(rng) - 1.0;
        nu += u[d] * u[d];
    }
    for (int d = 0; d < HEAD; d++) {
        u[d] /= sqrt(nu);
        uw += u[d] * w[d];
    }
    for (int d = 0; d < HEAD; d++) { /* w orthogonal to u */
        w[d] -= uw * u[d];
        nw += w[d] * w[d];
    }
    const double norm_a = 0.5 + 20.0 * uniform(rng), norm_b = norm_a * (0.25 + 2.0 * uniform(rng));
    for (int d = 0; d < HEAD; d++) {
        a[d] = (zero & 1) ? 0.0f : (float)(norm_a * u[d]);
        b[d] = (zero & 2) ? 0.0f : (float)(norm_b * (c * u[d] + sqrt(1.0 - c * c) * w[d] / sqrt(nw)));
    }
}

/* Builds token `kind`'s rows: a at page rows a_rows[side * n_head + h] of o, b likewise of u. */
static void make_token(pool *p, char kind, const size_t *a_rows, const size_t *b_rows,
                       uint64_t *rng) {
    const int slices = 2 * p->n_head, odd = (int)(uniform(rng) * slices); /* the one head apart */
    for (int s = 0; s < slices; s++) {
        const bool near = kind == 'n' || kind == 'L';
        double c = near ? 0.6 + 0.05 * uniform(rng) : 0.75 + 0.249 * uniform(rng);
        int zero = 0;
        if (kind == 'r') c = -0.6 + 0.9 * uniform(rng);
        if (s == odd && kind == 'l') c = 0.35;
        if (s == odd && kind == 'L') c = 0.4;
        if (s == odd && kind == 'z') zero = 3;
        if (s == odd && kind == 'o') zero = 1;
        if (s == odd && kind == 'b') zero = 2;
        float a[HEAD], b[HEAD];
        make_head(a, b, c, zero, rng);
        store_row(p, s / p->n_head, a_rows[s], a);
        store_row(p, s / p->n_head, b_rows[s], b);
    }
}

/* Page rows of table row `row` for every slice (side * n_head + head). */
static void slice_rows(const pool *p, const int32_t *table, int row, size_t *out) {
    for (int s = 0; s < 2 * p->n_head; s++) out[s] = page_row(p, table, row, s % p->n_head);
}

/* The contract's decision for a and b at these page rows: retained (cosines checked clear). */
static bool retained(expectation *e, const size_t *a_rows, const size_t *b_rows) {
    bool retain = false;
    for (int s = 0; s < 2 * e->p.n_head; s++) {
        double a[HEAD], b[HEAD], aa = 0.0, bb = 0.0, ab = 0.0;
        read_row(&e->p, s / e->p.n_head, a_rows[s], a);
        read_row(&e->p, s / e->p.n_head, b_rows[s], b);
        for (int d = 0; d < HEAD; d++) aa += a[d] * a[d], bb += b[d] * b[d], ab += a[d] * b[d];
        if (aa == 0.0 || bb == 0.0) {
            retain = retain || (aa == 0.0) != (bb == 0.0);
            continue;
        }
        const double cosine = ab / sqrt(aa * bb);
        CHECK(fabs(cosine - KV_MINICACHE_RETAIN_COS) > 1e-3, "a cosine %.6f too close to the threshold",
              cosine);
        retain = retain || cosine < KV_MINICACHE_RETAIN_COS;
    }
    return retain;
}

/* Merged token: o's row at m_rows moves to a_rows, m_rows gets |a| d and the ratio |b| / |a|. */
static void merge(expectation *e, const size_t *a_rows, const size_t *b_rows, const size_t *m_rows) {
    for (int s = 0; s < 2 * e->p.n_head; s++) {
        const int side = s / e->p.n_head;
        double a[HEAD], b[HEAD], mid[HEAD], na = 0.0, nb = 0.0, nm = 0.0;
        read_row(&e->p, side, a_rows[s], a); /* before the move may overwrite it */
        read_row(&e->p, side, b_rows[s], b);
        for (int d = 0; d < HEAD; d++) na += a[d] * a[d], nb += b[d] * b[d];
        na = sqrt(na), nb = sqrt(nb);
        for (int d = 0; d < HEAD; d++) {
            mid[d] = na > 0.0 ? a[d] / na + b[d] / nb : 0.0;
            nm += mid[d] * mid[d];
        }
        e->zero_heads += na == 0.0;
        if (a_rows[s] != m_rows[s]) {
            copy_row(&e->p, side, a_rows[s], m_rows[s]);
            e->values[side][a_rows[s]] = e->values[side][m_rows[s]];
        }
        const size_t m = m_rows[s];
        float x[HEAD];
        for (int d = 0; d < HEAD; d++) {
            e->merged[side][m * HEAD + d] = nm > 0.0 ? na * mid[d] / sqrt(nm) : 0.0;
            x[d] = (float)e->merged[side][m * HEAD + d];
        }
        store_row(&e->p, side, m, x); /* for the INT8 codes' comparison */
        e->values[side][m] = ROW_MERGED;
        e->ratios[side][m] = ROW_MERGED;
        e->ratio[side][m] = na > 0.0 ? nb / na : 0.0;
    }
}

/* The call of pair `pair`, sequence `seq` on the simulated pool, as kernels.h says. */
static void simulate(expectation *e, const int32_t *tables, int pair, int seq) {
    const int lower = FIRST_LOWER + 2 * pair, n = call_lens[seq];
    const int32_t *lo = tables + ((size_t)lower * N_SEQS + seq) * MAX_BLOCKS;
    const int32_t *up = lo + (size_t)N_SEQS * MAX_BLOCKS;
    const int M = entry[pair][seq][0], N = entry[pair][seq][1], R = entry[pair][seq][2];
    e->merged_tokens[lower * N_SEQS + seq] = 0;
    if (n < 1 || N < 0) return; /* idle */
    size_t a_rows[2 * MAX_N_HEAD], b_rows[2 * MAX_N_HEAD], m_rows[2 * MAX_N_HEAD];
    size_t own_rows[2 * MAX_N_HEAD];
    int merged = M, own = R;
    for (int i = 0; i < n; i++) {
        slice_rows(&e->p, lo, N + i, a_rows);
        slice_rows(&e->p, up, R + i, b_rows);
        if (retained(e, a_rows, b_rows)) {
            slice_rows(&e->p, up, own, own_rows);
            for (int s = 0; own != R + i && s < 2 * e->p.n_head; s++) {
                copy_row(&e->p, s / e->p.n_head, own_rows[s], b_rows[s]);
                e->values[s / e->p.n_head][own_rows[s]] = e->values[s / e->p.n_head][b_rows[s]];
            }
            e->retains++;
            e->moved_retains += own != R + i;
            own++;
            continue;
        }
        slice_rows(&e->p, lo, merged, m_rows);
        merge(e, a_rows, b_rows, m_rows);
        e->merges++;
        e->moved_merges += merged != N + i;
        merged++;
    }
    e->merged_tokens[lower * N_SEQS + seq] = merged - M;
    for (int s = 0; s < 2 * e->p.n_head; s++) { /* what the contract leaves free */
        const int side = s / e->p.n_head, head = s % e->p.n_head;
        for (int r = own; r < R + n; r++) e->values[side][page_row(&e->p, up, r, head)] = ROW_FREE;
        for (int r = 0; r < R + n; r++) e->ratios[side][page_row(&e->p, up, r, head)] = ROW_FREE;
        for (int r = merged; r < N + n; r++) e->ratios[side][page_row(&e->p, lo, r, head)] = ROW_FREE;
    }
}

/* fp16's spacing at |x| (subnormals: 2^-24). */
static double half_ulp(double x) {
    int exponent;
    frexp(fabs(x), &exponent); /* |x| = m 2^exponent, m in [0.5, 1) */
    return fabs(x) < 0x1p-14 ? 0x1p-24 : ldexp(1.0, exponent - 11);
}

/* Whether a merged row on the device is the exact one, within the format's rounding. */
static bool merged_row_ok(const pool *got, const expectation *e, int side, size_t row,
                          int *inexact) {
    const double *x = e->merged[side] + row * HEAD;
    bool ok = true;
    if (!got->int8) {
        double norm = 0.0; /* the device's fp32 error is relative to the row's norm (cancellation) */
        for (int d = 0; d < HEAD; d++) norm += x[d] * x[d];
        for (int d = 0; d < HEAD; d++) {
            const uint16_t h = got->halves[side][row * HEAD + d];
            ok = ok && fabs(half_to_float(h) - x[d]) <= 0.5 * half_ulp(x[d]) + 1e-6 * sqrt(norm);
            *inexact += h != float_to_half((float)x[d]);
        }
        return ok;
    }
    const int scale_bits = got->scales[side][row], want_bits = e->p.scales[side][row];
    const double scale = half_to_float((uint16_t)scale_bits);
    ok = abs(scale_bits - want_bits) <= 1 && !isnan(scale);
    *inexact += scale_bits != want_bits;
    for (int d = 0; d < HEAD; d++) {
        const int code = got->codes[side][row * HEAD + d], want = e->p.codes[side][row * HEAD + d];
        ok = ok && abs(code - want) <= 1 && fabs(code * scale - x[d]) <= 0.501 * scale;
        *inexact += code != want;
    }
    return ok;
}

/* Every page row of every layer against the expectation; counts of what was wrong. */
static void check_pool(const pool *got, const expectation *e, const char *what) {
    int bad_exact = 0, bad_merged = 0, bad_ratio = 0, inexact = 0;
    size_t first_bad = (size_t)-1;
    for (int side = 0; side < 2; side++)
        for (size_t r = 0; r < got->rows; r++) {
            bool ok = true;
            if (e->values[side][r] == ROW_MERGED) {
                const bool merged_ok = merged_row_ok(got, e, side, r, &inexact);
                bad_merged += !merged_ok;
                ok = merged_ok;
            } else if (e->values[side][r] == ROW_EXACT) {
                const bool same =
                    got->int8
                        ? !memcmp(got->codes[side] + r * HEAD, e->p.codes[side] + r * HEAD, HEAD) &&
                              got->scales[side][r] == e->p.scales[side][r]
                        : !memcmp(got->halves[side] + r * HEAD, e->p.halves[side] + r * HEAD,
                                  HEAD * sizeof(uint16_t));
                bad_exact += !same;
                ok = same;
            }
            const float ratio = got->ratios[side][r];
            if (e->ratios[side][r] == ROW_MERGED) {
                const bool ratio_ok = fabs(ratio - e->ratio[side][r]) <= 1e-5 * e->ratio[side][r];
                bad_ratio += !ratio_ok;
                ok = ok && ratio_ok;
            } else if (e->ratios[side][r] == ROW_EXACT) {
                const bool same = !memcmp(&ratio, &e->p.ratios[side][r], sizeof ratio);
                bad_ratio += !same;
                ok = ok && same;
            }
            if (!ok && first_bad == (size_t)-1) first_bad = (size_t)side * got->rows + r;
        }
    CHECK(bad_exact == 0 && bad_merged == 0 && bad_ratio == 0,
          "%s: %d rows moved or kept wrong, %d merged rows wrong, %d ratios wrong (first: %s row %zu)",
          what, bad_exact, bad_merged, bad_ratio, first_bad / got->rows ? "V" : "K",
          first_bad % got->rows);
    printf("%s: %d merged values or scales not the nearest (within the tolerance)\n", what, inexact);
}

/* Table rows each (layer, sequence) holds: what its pages must cover. */
static int rows_held(int layer, int seq) {
    if (layer < FIRST_LOWER) return 10 + 3 * seq;
    const int pair = (layer - FIRST_LOWER) / 2, n = call_lens[seq];
    const int *st = entry[pair][seq];
    const int rows = (layer - FIRST_LOWER) % 2 == 0 ? st[1] + n : st[2] + n;
    return rows > 0 ? rows : 1;
}

static void check_merge(bool int8, int n_head, uint64_t *rng) {
    char what[64];
    snprintf(what, sizeof what, "%s, %d heads", int8 ? "int8" : "fp16", n_head);
    /* Tables over shuffled blocks; entries past a sequence's blocks a huge id. */
    int32_t tables[N_LAYER * N_SEQS * MAX_BLOCKS], ids[NUM_BLOCKS];
    bool owned[NUM_BLOCKS] = {false};
    for (int i = 0; i < NUM_BLOCKS; i++) ids[i] = i;
    for (int i = NUM_BLOCKS - 1; i > 0; i--) {
        const int j = (int)(uniform(rng) * (i + 1)), t = ids[i];
        ids[i] = ids[j], ids[j] = t;
    }
    int next = 0;
    for (int l = 0; l < N_LAYER; l++)
        for (int s = 0; s < N_SEQS; s++)
            for (int b = 0; b < MAX_BLOCKS; b++) {
                const bool used = b * B < rows_held(l, s);
                tables[(l * N_SEQS + s) * MAX_BLOCKS + b] = used ? ids[next] : NO_BLOCK;
                if (used) owned[ids[next++]] = true;
            }
    CHECK(next < NUM_BLOCKS, "the pool has no unowned page left (%d of %d)", next, NUM_BLOCKS);

    /* Lengths as staged: o holds N + n rows, u merged + R + n positions; elsewhere garbage. */
    int32_t context_lens[N_LAYER * N_SEQS], merged_rows[N_LAYER * N_SEQS], query_starts[N_SEQS + 1];
    int32_t merged_tokens[N_LAYER * N_SEQS];
    query_starts[0] = 0;
    for (int s = 0; s < N_SEQS; s++) query_starts[s + 1] = query_starts[s] + call_lens[s];
    for (int i = 0; i < N_LAYER * N_SEQS; i++) {
        context_lens[i] = rows_held(i / N_SEQS, i % N_SEQS);
        merged_rows[i] = 1000 + i; /* read at upper layers only */
        merged_tokens[i] = UNWRITTEN;
    }
    for (int p = 0; p < N_PAIRS; p++)
        for (int s = 0; s < N_SEQS; s++) {
            const int o = FIRST_LOWER + 2 * p, *st = entry[p][s];
            context_lens[o * N_SEQS + s] = st[1] + call_lens[s];
            context_lens[(o + 1) * N_SEQS + s] = st[0] + st[2] + call_lens[s];
            merged_rows[(o + 1) * N_SEQS + s] = st[0];
        }

    static pool before, got;
    static expectation e;
    pool_alloc(&before, n_head, int8);
    pool_alloc(&got, n_head, int8);
    pool_alloc(&e.p, n_head, int8);
    fill_pool(&before, owned, rng);
    for (int p = 0; p < N_PAIRS; p++) /* the call's rows */
        for (int s = 0; s < N_SEQS; s++) {
            const int o = FIRST_LOWER + 2 * p, N = entry[p][s][1], R = entry[p][s][2];
            const int32_t *lo = tables + (o * N_SEQS + s) * MAX_BLOCKS, *up = lo + N_SEQS * MAX_BLOCKS;
            CHECK((int)strlen(kinds[p][s]) == call_lens[s], "kinds of pair %d sequence %d", p, s);
            if (N < 0) continue;
            for (int i = 0; i < call_lens[s]; i++) {
                size_t a_rows[2 * MAX_N_HEAD], b_rows[2 * MAX_N_HEAD];
                slice_rows(&before, lo, N + i, a_rows);
                slice_rows(&before, up, R + i, b_rows);
                make_token(&before, kinds[p][s][i], a_rows, b_rows, rng);
            }
        }
    pool_copy(&e.p, &before);
    for (int side = 0; side < 2; side++) {
        e.values[side] = alloc_or_die(e.p.rows * sizeof(row_state)); /* ROW_EXACT */
        e.ratios[side] = alloc_or_die(e.p.rows * sizeof(row_state));
        e.merged[side] = alloc_or_die(e.p.rows * HEAD * sizeof(double));
        e.ratio[side] = alloc_or_die(e.p.rows * sizeof(double));
    }
    for (int i = 0; i < N_LAYER * N_SEQS; i++) e.merged_tokens[i] = UNWRITTEN;
    e.merges = e.moved_merges = e.retains = e.moved_retains = e.zero_heads = 0;
    for (int p = 0; p < N_PAIRS; p++)
        for (int s = 0; s < N_SEQS; s++) simulate(&e, tables, p, s);

    /* The launch, on the pages of the format only. */
    const size_t value_bytes = before.rows * HEAD * (int8 ? 1 : 2), row_bytes = before.rows * 2;
    kv_minicache_pages pages = {0};
    void *dev_values[2];
    for (int side = 0; side < 2; side++)
        dev_values[side] = device_copy(int8 ? (void *)before.codes[side] : (void *)before.halves[side],
                                       value_bytes);
    if (int8) {
        pages.k_codes = dev_values[0], pages.v_codes = dev_values[1];
        pages.k_scales = device_copy(before.scales[0], row_bytes);
        pages.v_scales = device_copy(before.scales[1], row_bytes);
    } else {
        pages.k = dev_values[0], pages.v = dev_values[1];
    }
    pages.k_ratios = device_copy(before.ratios[0], before.rows * sizeof(float));
    pages.v_ratios = device_copy(before.ratios[1], before.rows * sizeof(float));
    int32_t *dev_tables = device_copy(tables, sizeof tables);
    int32_t *dev_lens = device_copy(context_lens, sizeof context_lens);
    int32_t *dev_merged_rows = device_copy(merged_rows, sizeof merged_rows);
    int32_t *dev_starts = device_copy(query_starts, sizeof query_starts);
    int32_t *dev_merged_tokens = device_copy(merged_tokens, sizeof merged_tokens);
    launch_kv_minicache_merge(pages, int8 ? PAGED_KV_INT8 : PAGED_KV_FP16, dev_tables, MAX_BLOCKS,
                              n_head, B, dev_lens, dev_merged_rows, dev_starts, FIRST_LOWER,
                              N_PAIRS, N_SEQS, dev_merged_tokens, 0);
    CUDA_CHECK(cudaDeviceSynchronize());

    pool_copy(&got, &before);
    for (int side = 0; side < 2; side++) {
        void *host = int8 ? (void *)got.codes[side] : (void *)got.halves[side];
        CUDA_CHECK(cudaMemcpy(host, dev_values[side], value_bytes, cudaMemcpyDeviceToHost));
        CUDA_CHECK(cudaMemcpy(got.ratios[side], side ? pages.v_ratios : pages.k_ratios,
                              got.rows * sizeof(float), cudaMemcpyDeviceToHost));
    }
    if (int8) {
        CUDA_CHECK(cudaMemcpy(got.scales[0], pages.k_scales, row_bytes, cudaMemcpyDeviceToHost));
        CUDA_CHECK(cudaMemcpy(got.scales[1], pages.v_scales, row_bytes, cudaMemcpyDeviceToHost));
    }
    CUDA_CHECK(cudaMemcpy(merged_tokens, dev_merged_tokens, sizeof merged_tokens,
                          cudaMemcpyDeviceToHost));

    for (int i = 0; i < N_LAYER * N_SEQS; i++)
        CHECK(merged_tokens[i] == e.merged_tokens[i],
              "%s: merged_tokens[layer %d, sequence %d] = %d, expected %d", what, i / N_SEQS,
              i % N_SEQS, merged_tokens[i], e.merged_tokens[i]);
    check_pool(&got, &e, what);
    /* The case must have exercised each path (the construction, not the kernel, is checked). */
    CHECK(e.merges > 0 && e.moved_merges > 0 && e.merges > e.moved_merges && e.retains > 0 &&
              e.moved_retains > 0 && e.zero_heads > 0,
          "%s: %d merges (%d moving a row), %d retained (%d moved), %d zero heads merged", what,
          e.merges, e.moved_merges, e.retains, e.moved_retains, e.zero_heads);

    for (int side = 0; side < 2; side++) {
        CUDA_CHECK(cudaFree(dev_values[side]));
        free(e.values[side]), free(e.ratios[side]), free(e.merged[side]), free(e.ratio[side]);
    }
    if (int8) {
        CUDA_CHECK(cudaFree(pages.k_scales));
        CUDA_CHECK(cudaFree(pages.v_scales));
    }
    CUDA_CHECK(cudaFree(pages.k_ratios)); CUDA_CHECK(cudaFree(pages.v_ratios));
    CUDA_CHECK(cudaFree(dev_tables)); CUDA_CHECK(cudaFree(dev_lens));
    CUDA_CHECK(cudaFree(dev_merged_rows)); CUDA_CHECK(cudaFree(dev_starts));
    CUDA_CHECK(cudaFree(dev_merged_tokens));
    pool_free(&before), pool_free(&got), pool_free(&e.p);
}

int main(void) {
    if (gpt2_cuda_device_count() == 0) {
        printf("test_kv_minicache_gpu: no CUDA device, skipped\n");
        return SKIP_EXIT_CODE;
    }
    uint64_t rng = gpu_test_seed("test_kv_minicache_gpu");
    static const int heads[] = {3, 25};
    for (int h = 0; h < 2; h++) {
        check_merge(false, heads[h], &rng);
        check_merge(true, heads[h], &rng);
    }
    return check_finish("test_kv_minicache_gpu");
}
