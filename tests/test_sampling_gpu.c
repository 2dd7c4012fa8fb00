/*
 * launch_argmax and launch_sample against model/sampler.c on the same logits and uniforms:
 * flat, peaked, tied and masked (-inf) rows, GPT-2's V = 50257 and small odd V, with and
 * without every cut (top_k = 0, top_p = 1, both, k above the kernel's shared-memory list), ids
 * poisoned first and a guard id past the end.
 *
 * Argmax must match sampler_argmax exactly. A draw must match sampler_pick, except:
 *  - near a boundary: the uniform lies within 1e-5 of the edges of the interval of the CPU's
 *    cumulative distribution (in draw order) that the device's id owns: fp64 running sums on
 *    the CPU and exact sums on the device may round a boundary differently (issue 10);
 *  - near the cut: the top-k mass times top_p lies within 1e-5 (relative) of the cumulative
 *    mass where the CPU's top-p cut fell, so the kept set itself may differ by one token; the
 *    device's id must then still be one of the top-k tokens.
 * Both are counted and printed. Exits 77 where there is no CUDA device.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cuda_check.h"
#include "kernels/kernels.h"
#include "model/sampler.h"
#include "tests/check.h"
#include "tests/gpu_test_util.h"

#define NEAR 1e-5
#define GPT2_V 50257

typedef enum { FLAT, PEAKED, TIED, MASKED } logits_kind;

static const char *kind_names[] = {"flat", "peaked", "tied", "masked"};

typedef struct {
    int V, rows;
    logits_kind kind;
    float temperature;
    int top_k;
    float top_p;
    int in_place; /* the probabilities overwrite the logits */
} sample_case;

typedef struct {
    long rows, exact, near_boundary, near_cut;
} tally;

/*
 * One row: flat in [-4, 4]; peaked adds 1 to 4 spikes of +6..+14; tied takes 4 levels; masked
 * is flat with about half the logits -inf (probability exactly 0), the first one always, the
 * last one never (V > 1).
 */
static void fill_logits(float *row, int V, logits_kind kind, uint64_t *rng) {
    for (int i = 0; i < V; i++) {
        const float u = sampler_next_uniform(rng);
        row[i] = kind == TIED ? floorf(4.0f * u) : 8.0f * u - 4.0f;
    }
    if (kind == MASKED) {
        for (int i = 0; i < V - 1; i++)
            if (i == 0 || sampler_next_uniform(rng) < 0.5f) row[i] = -INFINITY;
    }
    if (kind != PEAKED) return;
    const int spikes = 1 + (int)(4.0f * sampler_next_uniform(rng));
    for (int s = 0; s < spikes; s++) {
        const int id = (int)(sampler_next_uniform(rng) * V);
        row[id] += 6.0f + 8.0f * sampler_next_uniform(rng);
    }
}

/* Index of id among candidates[0, n), or -1. */
static int position_of(const sampler_candidate *c, int n, int32_t id) {
    for (int i = 0; i < n; i++)
        if (c[i].id == id) return i;
    return -1;
}

/*
 * Whether u lies within NEAR of the CPU's interval (cumulative, as sampler_draw sums) for c[j].
 * A token of probability 0 has no interval: no draw may pick it.
 */
static int near_interval(const sampler_candidate *c, int n, int j, float u) {
    if (!(c[j].prob > 0.0f)) return 0;
    double mass = 0.0, below = 0.0;
    for (int i = 0; i < n; i++) mass += c[i].prob;
    for (int i = 0; i < j; i++) below += c[i].prob;
    const double lo = below / mass, hi = (below + c[j].prob) / mass;
    return u > lo - NEAR && u < hi + NEAR;
}

/*
 * Whether the CPU's top-p cut (n kept) is within NEAR of flipping, and the device's id is one
 * of the top-k tokens. The top-k list comes from a sampler with the same top_k and no top-p.
 */
static int near_cut(const float *row, const sample_case *sc, int n, int32_t got) {
    if (!(sc->top_p < 1.0f)) return 0;
    sampler s;
    sampler_create(&s, sc->V, (sampler_params){.temperature = sc->temperature,
                                                .top_k = sc->top_k > 0 ? sc->top_k : sc->V,
                                                .top_p = 1.0f});
    const int kept = sampler_candidates(&s, row);
    double mass = 0.0, cumulative = 0.0;
    for (int i = 0; i < kept; i++) mass += s.candidates[i].prob;
    const double target = sc->top_p * mass;
    int near = 0;
    for (int i = 0; i < n; i++) {
        cumulative += s.candidates[i].prob;
        if (i >= n - 2 && fabs(cumulative - target) < NEAR * mass) near = 1;
    }
    near = near && position_of(s.candidates, kept, got) >= 0;
    sampler_destroy(&s);
    return near;
}

/* Checks the device's id for one row against the CPU's draw with the same uniform. */
static void check_draw(const float *row, const sample_case *sc, float u, int32_t got, int r, tally *t) {
    sampler s;
    sampler_create(&s, sc->V, (sampler_params){.temperature = sc->temperature, .top_k = sc->top_k,
                                                .top_p = sc->top_p});
    const int32_t want = sampler_pick(&s, row, u);
    t->rows++;
    if (got == want) {
        t->exact++;
    } else if (sc->temperature <= 0.0f || sc->top_k == 1) {
        CHECK(0, "V=%d %s row %d: argmax %d, device %d", sc->V, kind_names[sc->kind], r, want, got);
    } else {
        const int n = sampler_candidates(&s, row), j = position_of(s.candidates, n, got);
        if (j >= 0 && near_interval(s.candidates, n, j, u)) {
            t->near_boundary++;
        } else if (near_cut(row, sc, n, got)) {
            t->near_cut++;
        } else {
            CHECK(0, "V=%d %s T=%g k=%d p=%g row %d u=%.9g: CPU %d, device %d (kept %d, at %d)", sc->V,
                  kind_names[sc->kind], sc->temperature, sc->top_k, sc->top_p, r, u, want, got, n, j);
        }
    }
    sampler_destroy(&s);
}

static void run_case(const sample_case *sc, uint64_t *rng, tally *t) {
    const size_t n = (size_t)sc->rows * sc->V;
    float *logits = malloc(n * sizeof *logits), *uniforms = malloc(sc->rows * sizeof *uniforms);
    for (int r = 0; r < sc->rows; r++) {
        fill_logits(logits + (size_t)r * sc->V, sc->V, sc->kind, rng);
        uniforms[r] = sampler_next_uniform(rng);
    }
    uniforms[0] = 0.0f; /* both ends of [0, 1) */
    if (sc->rows > 1) uniforms[1] = 0x1.fffffep-1f;
    float *dev_logits = device_copy(logits, n * sizeof *logits);
    float *dev_uniforms = device_copy(uniforms, sc->rows * sizeof *uniforms), *dev_probs = dev_logits;
    if (!sc->in_place) CUDA_CHECK(cudaMalloc((void **)&dev_probs, n * sizeof *logits));
    int32_t *dev_ids, *ids = malloc((sc->rows + 1) * sizeof *ids);
    CUDA_CHECK(cudaMalloc((void **)&dev_ids, (sc->rows + 1) * sizeof *ids));
    CUDA_CHECK(cudaMemset(dev_ids, 0xFF, (sc->rows + 1) * sizeof *ids));
    launch_sample(dev_ids, dev_logits, dev_uniforms, dev_probs, sc->rows, sc->V, sc->temperature,
                  sc->top_k, sc->top_p, 0);
    CUDA_CHECK(cudaMemcpy(ids, dev_ids, (sc->rows + 1) * sizeof *ids, cudaMemcpyDeviceToHost));
    for (int r = 0; r < sc->rows; r++)
        check_draw(logits + (size_t)r * sc->V, sc, uniforms[r], ids[r], r, t);
    CHECK(ids[sc->rows] == -1, "V=%d: the kernel wrote an id past the end", sc->V);
    if (!sc->in_place) CUDA_CHECK(cudaFree(dev_probs));
    CUDA_CHECK(cudaFree(dev_logits));
    CUDA_CHECK(cudaFree(dev_uniforms));
    CUDA_CHECK(cudaFree(dev_ids));
    free(logits);
    free(uniforms);
    free(ids);
}

/* launch_argmax alone: tied rows (the first index must win) and flat ones. */
static void check_argmax(int V, int rows, logits_kind kind, uint64_t *rng) {
    const size_t n = (size_t)rows * V;
    float *logits = malloc(n * sizeof *logits);
    for (int r = 0; r < rows; r++) fill_logits(logits + (size_t)r * V, V, kind, rng);
    float *dev_logits = device_copy(logits, n * sizeof *logits);
    int32_t *dev_ids, *ids = malloc((rows + 1) * sizeof *ids);
    CUDA_CHECK(cudaMalloc((void **)&dev_ids, (rows + 1) * sizeof *ids));
    CUDA_CHECK(cudaMemset(dev_ids, 0xFF, (rows + 1) * sizeof *ids));
    launch_argmax(dev_ids, dev_logits, rows, V, 0);
    CUDA_CHECK(cudaMemcpy(ids, dev_ids, (rows + 1) * sizeof *ids, cudaMemcpyDeviceToHost));
    int wrong = 0;
    for (int r = 0; r < rows; r++) wrong += ids[r] != sampler_argmax(logits + (size_t)r * V, V);
    CHECK(wrong == 0, "argmax V=%d %s: %d of %d rows differ from sampler_argmax", V, kind_names[kind],
          wrong, rows);
    CHECK(ids[rows] == -1, "argmax V=%d: the kernel wrote an id past the end", V);
    CUDA_CHECK(cudaFree(dev_logits));
    CUDA_CHECK(cudaFree(dev_ids));
    free(logits);
    free(ids);
}

int main(void) {
    if (gpt2_cuda_device_count() == 0) {
        printf("test_sampling_gpu: no CUDA device, skipped\n");
        return SKIP_EXIT_CODE;
    }
    uint64_t rng = gpu_test_seed("test_sampling_gpu");
    check_argmax(GPT2_V, 8, TIED, &rng);
    check_argmax(GPT2_V, 4, FLAT, &rng);
    check_argmax(1, 3, FLAT, &rng);
    check_argmax(37, 64, TIED, &rng);
    check_argmax(37, 16, MASKED, &rng);

    const sample_case cases[] = {
        /* GPT-2's vocabulary */
        {GPT2_V, 6, FLAT, 1.0f, 0, 1.0f, 0},     /* no cut: drawn in id order over the row */
        {GPT2_V, 16, PEAKED, 1.0f, 0, 1.0f, 0},
        {GPT2_V, 16, PEAKED, 0.8f, 50, 1.0f, 0}, /* top-k, then the list in shared memory */
        {GPT2_V, 4, FLAT, 1.0f, 0, 0.9f, 0},     /* top-p over the row, a kept set > the list */
        {GPT2_V, 16, PEAKED, 0.7f, 40, 0.95f, 1}, /* both cuts, probabilities over the logits */
        {GPT2_V, 4, FLAT, 1.3f, 3000, 0.99f, 0}, /* k above the list: top-p over the row */
        {GPT2_V, 3, FLAT, 1.0f, GPT2_V, 1.0f, 0}, /* k = V: no cut, but in probability order */
        {GPT2_V, 4, TIED, 1.0f, 100, 0.9f, 0},   /* thousands of ties at the k-th value */
        {GPT2_V, 4, FLAT, 0.0f, 0, 1.0f, 0},     /* greedy */
        {GPT2_V, 2, PEAKED, 1.0f, 1, 1.0f, 0},   /* top-k 1 is greedy */
        /* small odd vocabularies */
        {1, 5, FLAT, 1.0f, 0, 1.0f, 0},
        {1, 5, FLAT, 1.0f, 5, 0.5f, 0},
        {3, 64, TIED, 1.0f, 0, 1.0f, 0},
        {3, 64, TIED, 0.5f, 2, 0.7f, 0},
        {37, 64, FLAT, 1.0f, 0, 1.0f, 0},
        {37, 64, PEAKED, 0.9f, 5, 1.0f, 0},
        {37, 64, TIED, 1.0f, 0, 0.6f, 1},
        {37, 64, FLAT, 2.0f, 10, 0.8f, 0},
        {37, 32, FLAT, 1.0f, 0, 0.0f, 0},        /* top_p 0 keeps the most probable token */
        {1001, 32, FLAT, 1.0f, 7, 1.0f, 0},
        {1001, 32, PEAKED, 1.0f, 0, 0.8f, 0},
        {2049, 16, FLAT, 1.0f, 0, 1.0f, 0},      /* just above the list: no cut over the row */
        {2049, 16, FLAT, 1.0f, 2048, 0.9f, 0},   /* k fills the list exactly */
        {2049, 16, TIED, 1.0f, 0, 0.5f, 0},
        /* zero probabilities: u = 0 must skip them, k may include them */
        {GPT2_V, 4, MASKED, 1.0f, 0, 1.0f, 0},
        {37, 64, MASKED, 1.0f, 0, 1.0f, 0},
        {37, 64, MASKED, 1.0f, 30, 1.0f, 0},
        {1001, 16, MASKED, 0.8f, 0, 0.9f, 0},
    };
    tally t = {0};
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) run_case(&cases[c], &rng, &t);
    printf("test_sampling_gpu: %ld draws, %ld exact, %ld excused near a boundary, %ld near the cut\n",
           t.rows, t.exact, t.near_boundary, t.near_cut);
    return check_finish("test_sampling_gpu");
}
