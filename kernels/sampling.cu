/*
 * Sampling on the device, one block per row of fp32 logits [rows, V] (any V >= 1): argmax, and
 * temperature + top-k + top-p drawn with a given uniform u in [0, 1) per row. With the same
 * uniform it picks the same id as model/sampler.c (sampler_pick), without sorting the row.
 *
 * The algorithm, per row:
 *  1. probs = softmax(logits / T) exactly as the CPU computes it: max-subtracted expf in fp32,
 *     the sum in fp64, prob = (float)(e / sum), written to a scratch row.
 *  2. The draw order is a key: with a cut (top_k > 0 or top_p < 1), key = prob bits above
 *     (V - 1 - id), so a larger key is a more probable token, ties to the smaller id, and every
 *     key is distinct; without a cut the CPU draws in id order, and key = V - 1 - id. "The first
 *     n candidates" is then the set {key >= K} for some threshold K.
 *  3. Every cut is one search, select_prefix: the smallest prefix of the order whose weight
 *     reaches a need. The weight is 1 per token for top-k (need = k), and the probability in
 *     fixed point (2^-62 units, integer sums: exact and independent of the summation order) for
 *     top-p (need = ceil(top_p * top-k mass)) and for the draw (need = floor(u * kept mass) + 1,
 *     the first token whose cumulative mass exceeds u times the kept mass). The search is a
 *     radix descent on the key, 10 bits per pass from the top: a shared-memory histogram of
 *     counts and masses of the tokens that match the prefix decided so far, then one warp scans
 *     the bins from the top to the one where the running weight reaches the need. It stops as
 *     soon as the chosen bin holds one token (or, for counts, exactly the tokens still needed).
 *  4. Once the kept set has at most LIST_CAP tokens, it is gathered into shared memory and the
 *     remaining searches run there instead of over the whole row.
 *  5. The drawn token is the smallest key of the final prefix.
 * Where it can differ from the CPU: the CPU's fp64 running sums round (about 1e-12 here), and
 * on a GPU expf is CUDA's (at most 2 ulp from the host's), which moves boundaries of the
 * cumulative distribution by up to ~2.4e-7 relative and may swap two probabilities within
 * 2 ulp of each other. Only uniforms (or a top-p mass) that close to a boundary draw
 * differently; on the emulator the probabilities are the CPU's bit for bit.
 *
 * Temperature <= 0 or top_k == 1 is argmax (the first index of the largest logit), like the CPU.
 * NaN logits give some in-range id, not necessarily the CPU's; find_nonfinite, a separate pass
 * over the row before the draw, is how a caller learns that the id means nothing.
 */
#include <math.h>
#include <stdint.h>

#include "kernels/cuda_check.h"
#include "kernels/kernels.h"
#include "kernels/launch.h"
#include "kernels/reduce.cuh"

#define SAMPLE_THREADS 1024
#define RADIX_BITS 10
#define RADIX_BINS (1 << RADIX_BITS)
#define LIST_CAP 2048
#define PROB_KEY_BITS 30 /* probabilities in [0, 1]: their float bits are below 2^30 */
#define SAMPLE_MAX_V (1 << 30)

/* ---- kernels ---- */

typedef unsigned long long u64;

/* The kept set {key >= key} and how many tokens it holds. */
struct selection {
    u64 key;
    unsigned count;
};

/* What warp 0 decided about a histogram pass, for the whole block. */
struct bin_choice {
    int digit;
    unsigned count_above, bin_count; /* tokens in earlier bins; in the chosen bin */
    u64 need_left, bin_weight;       /* need minus the weight of earlier bins; the bin's weight */
};

/* The block's scratch for an argmax. */
struct argmax_shared {
    float value[32];
    int index[32];
};

struct sample_shared {
    unsigned count[RADIX_BINS];
    u64 mass[RADIX_BINS];
    float list_prob[LIST_CAP];
    int list_id[LIST_CAP];
    unsigned list_size;
    bin_choice choice;
    u64 reduce_u64[32];
    double reduce_f64[32];
    argmax_shared argmax;
};

/* The draw order of tokens as 64-bit keys, larger first (see the top of the file). */
struct draw_order {
    int V, id_bits; /* id_bits: bits of V - 1 */
    bool by_prob;

    __device__ u64 key(float prob, int id) const {
        const u64 rank = (u64)(V - 1 - id);
        return by_prob ? ((u64)__float_as_uint(prob) << id_bits) | rank : rank;
    }
    __device__ int key_bits() const { return by_prob ? PROB_KEY_BITS + id_bits : id_bits; }
    __device__ int id_of(u64 key) const { return V - 1 - (int)(key & ((1ull << id_bits) - 1)); }
};

/* The whole row in global memory: token i has probability prob[i]. */
struct row_view {
    const float *prob; /* [n] */
    int n;
    __device__ float prob_at(int i) const { return prob[i]; }
    __device__ int id_at(int i) const { return i; }
};

/* A gathered subset in shared memory. */
struct list_view {
    const float *prob; /* [n] */
    const int *id;     /* [n] */
    int n;
    __device__ float prob_at(int i) const { return prob[i]; }
    __device__ int id_at(int i) const { return id[i]; }
};

/* A probability in units of 2^-62: exact for p >= 2^-39, and a row's sum stays below 2^63. */
static __device__ __forceinline__ u64 fixed_mass(float p) { return (u64)(p * 0x1p62f); }

struct arg_best {
    float value;
    int index;
};

/* The larger value, the smaller index on ties; NaN ranks below everything (a total order). */
static __device__ arg_best arg_better(arg_best a, arg_best b) {
    const float va = isnan(a.value) ? -INFINITY : a.value, vb = isnan(b.value) ? -INFINITY : b.value;
    return (vb > va || (vb == va && b.index < a.index)) ? b : a;
}

/* The first index of the largest logit, and that logit, in every thread. */
static __device__ arg_best row_argmax(const float *logits /* [V] */, int V, argmax_shared &sh) {
    arg_best best = {-INFINITY, SAMPLE_MAX_V};
    for (int i = threadIdx.x; i < V; i += blockDim.x) best = arg_better(best, arg_best{logits[i], i});
    for (int offset = 16; offset > 0; offset >>= 1) {
        const arg_best other = {__shfl_xor_sync(FULL_WARP_MASK, best.value, offset),
                                __shfl_xor_sync(FULL_WARP_MASK, best.index, offset)};
        best = arg_better(best, other);
    }
    if ((threadIdx.x & 31) == 0) {
        sh.value[threadIdx.x >> 5] = best.value;
        sh.index[threadIdx.x >> 5] = best.index;
    }
    __syncthreads();
    best = arg_best{sh.value[0], sh.index[0]};
    for (unsigned w = 1; w < blockDim.x >> 5; w++)
        best = arg_better(best, arg_best{sh.value[w], sh.index[w]});
    __syncthreads();
    return best;
}

/* block_reduce, then a barrier so that the scratch can be reused at once. */
template <class T, class Op> static __device__ T block_reduce_sync(T v, T *scratch /* [32] */, Op op) {
    const T result = block_reduce(v, scratch, op);
    __syncthreads();
    return result;
}

/* probs[i] = softmax(logits / temperature)[i], as the CPU sampler computes it. */
static __device__ void softmax_row(float *probs /* [V] */, const float *logits /* [V] */, int V,
                                   float temperature, sample_shared &sh) {
    const float max_logit = row_argmax(logits, V, sh.argmax).value;
    double sum = 0.0;
    for (int i = threadIdx.x; i < V; i += blockDim.x) {
        const float e = expf(__fdiv_rn(logits[i] - max_logit, temperature));
        probs[i] = e; /* may overwrite logits[i]: this thread has read it for the last time */
        sum += e;
    }
    sum = block_reduce_sync(sum, sh.reduce_f64, sum_op());
    for (int i = threadIdx.x; i < V; i += blockDim.x) /* clamped, so that NaN keys stay in range */
        probs[i] = fminf(fmaxf((float)((double)probs[i] / sum), 0.0f), 1.0f);
    __syncthreads();
}

/* The histogram of one radix pass over the tokens of the set whose key matches prefix above hi. */
template <bool BY_MASS, class View>
static __device__ void histogram(const View &view, const draw_order &order, u64 set_key, u64 prefix,
                                 int hi, int lo, sample_shared &sh) {
    const int bins = 1 << (hi - lo);
    for (int b = threadIdx.x; b < bins; b += blockDim.x) {
        sh.count[b] = 0;
        if (BY_MASS) sh.mass[b] = 0;
    }
    __syncthreads();
    for (int i = threadIdx.x; i < view.n; i += blockDim.x) {
        const float p = view.prob_at(i);
        const u64 key = order.key(p, view.id_at(i));
        if (key < set_key || (key >> hi) != (prefix >> hi)) continue;
        const int digit = (int)(key >> lo) & (bins - 1);
        atomicAdd(&sh.count[digit], 1u);
        if (BY_MASS) atomicAdd(&sh.mass[digit], fixed_mass(p));
    }
    __syncthreads();
}

template <bool BY_MASS> static __device__ __forceinline__ u64 bin_weight(const sample_shared &sh, int d) {
    return BY_MASS ? sh.mass[d] : (u64)sh.count[d];
}

/*
 * Warp 0: walks the bins from the top digit down to the first non-empty bin where the running
 * weight reaches need (need is first clamped to the total, so there always is one), and
 * publishes it in sh.choice. Lane l sums a contiguous run of bins; a warp scan finds the lane.
 */
template <bool BY_MASS> static __device__ void choose_bin(int bins, u64 need, sample_shared &sh) {
    const int lane = threadIdx.x, per_lane = CEIL_DIV(bins, 32), first = bins - 1 - lane * per_lane;
    u64 weight = 0;
    unsigned count = 0;
    for (int j = 0; j < per_lane && first - j >= 0; j++) {
        weight += bin_weight<BY_MASS>(sh, first - j);
        count += sh.count[first - j];
    }
    u64 weight_incl = weight;
    unsigned count_incl = count;
    for (int offset = 1; offset < 32; offset <<= 1) {
        const u64 w = __shfl_up_sync(FULL_WARP_MASK, weight_incl, offset);
        const unsigned c = __shfl_up_sync(FULL_WARP_MASK, count_incl, offset);
        if (lane >= offset) {
            weight_incl += w;
            count_incl += c;
        }
    }
    const u64 total = __shfl_sync(FULL_WARP_MASK, weight_incl, 31);
    if (need > total) need = total;
    const unsigned hits = __ballot_sync(FULL_WARP_MASK, count > 0 && weight_incl >= need);
    if (hits == 0 || lane != __ffs(hits) - 1) return;
    u64 above = weight_incl - weight;
    unsigned count_above = count_incl - count;
    for (int d = first; d > first - per_lane && d >= 0; d--) {
        const u64 w = bin_weight<BY_MASS>(sh, d);
        if (sh.count[d] > 0 && above + w >= need) {
            sh.choice = bin_choice{d, count_above, sh.count[d], need - above, w};
            return;
        }
        above += w;
        count_above += sh.count[d];
    }
}

/*
 * The smallest prefix, in draw order, of the set whose weight (1 per token, or the fixed-point
 * mass) reaches need; the whole set when need exceeds its weight.
 */
template <bool BY_MASS, class View>
static __device__ selection select_prefix(const View &view, const draw_order &order, selection set,
                                          u64 need, sample_shared &sh) {
    u64 prefix = 0;
    unsigned count_above = 0;
    for (int hi = order.key_bits(); hi > 0; hi -= RADIX_BITS) {
        const int lo = hi > RADIX_BITS ? hi - RADIX_BITS : 0;
        histogram<BY_MASS>(view, order, set.key, prefix, hi, lo, sh);
        if (threadIdx.x < 32) choose_bin<BY_MASS>(1 << (hi - lo), need, sh);
        __syncthreads();
        const bin_choice c = sh.choice;
        prefix |= (u64)c.digit << lo;
        count_above += c.count_above;
        need = c.need_left;
        const bool whole_bin = !BY_MASS && need == c.bin_weight;
        if (c.bin_count == 1 || whole_bin) {
            set.key = prefix > set.key ? prefix : set.key;
            set.count = count_above + c.bin_count;
            break;
        }
    }
    __syncthreads(); /* sh.choice and the bins are free again */
    return set;
}

/* The fixed-point mass of the set, in every thread. */
template <class View>
static __device__ u64 set_mass(const View &view, const draw_order &order, u64 set_key, sample_shared &sh) {
    u64 mass = 0;
    for (int i = threadIdx.x; i < view.n; i += blockDim.x) {
        const float p = view.prob_at(i);
        if (order.key(p, view.id_at(i)) >= set_key) mass += fixed_mass(p);
    }
    return block_reduce_sync(mass, sh.reduce_u64, sum_op());
}

/* Top-p: the smallest prefix of the set whose mass reaches top_p of the set's mass. */
template <class View>
static __device__ selection top_p_cut(const View &view, const draw_order &order, selection set,
                                      float top_p, sample_shared &sh) {
    const double target = (double)top_p * (double)set_mass(view, order, set.key, sh);
    const u64 need = target > 0.0 ? (u64)ceil(target) : 0;
    return select_prefix<true>(view, order, set, need, sh);
}

/* The token of the set that uniform u draws: the first whose cumulative mass exceeds u * mass. */
template <class View>
static __device__ int draw(const View &view, const draw_order &order, selection set, float u,
                           sample_shared &sh) {
    const double target = (double)fminf(fmaxf(u, 0.0f), 1.0f) * (double)set_mass(view, order, set.key, sh);
    const selection drawn = select_prefix<true>(view, order, set, (u64)floor(target) + 1, sh);
    u64 smallest = ~0ull;
    for (int i = threadIdx.x; i < view.n; i += blockDim.x) {
        const u64 key = order.key(view.prob_at(i), view.id_at(i));
        if (key >= drawn.key && key < smallest) smallest = key;
    }
    const int id = order.id_of(block_reduce_sync(smallest, sh.reduce_u64, min_op()));
    return id < 0 ? 0 : id; /* only a NaN row could get here with no token left */
}

/* Gathers the set (at most LIST_CAP tokens) into shared memory, in no particular order. */
static __device__ list_view gather(const row_view &row, const draw_order &order, u64 set_key,
                                   sample_shared &sh) {
    if (threadIdx.x == 0) sh.list_size = 0;
    __syncthreads();
    for (int i = threadIdx.x; i < row.n; i += blockDim.x) {
        const float p = row.prob[i];
        if (order.key(p, i) < set_key) continue;
        const unsigned slot = atomicAdd(&sh.list_size, 1u);
        if (slot >= LIST_CAP) continue; /* cannot happen: the set's count is exact */
        sh.list_prob[slot] = p;
        sh.list_id[slot] = i;
    }
    __syncthreads();
    return list_view{sh.list_prob, sh.list_id, sh.list_size < LIST_CAP ? (int)sh.list_size : LIST_CAP};
}

static __global__ void __launch_bounds__(SAMPLE_THREADS)
argmax_kernel(int32_t *ids /* [rows] */, const float *logits /* [rows, V] */, int V) {
    __shared__ argmax_shared sh;
    const arg_best best = row_argmax(logits + (size_t)blockIdx.x * V, V, sh);
    if (threadIdx.x == 0) ids[blockIdx.x] = best.index;
}

/* flags[r] = 1 when row r holds a NaN or an infinity, else 0: every thread reads, one vote. */
static __global__ void __launch_bounds__(SAMPLE_THREADS)
nonfinite_kernel(int32_t *flags /* [rows] */, const float *logits /* [rows, V] */, int V) {
    const float *row = logits + (size_t)blockIdx.x * V;
    int bad = 0;
    for (int i = threadIdx.x; i < V; i += blockDim.x) bad |= !isfinite(row[i]);
    bad = __syncthreads_or(bad);
    if (threadIdx.x == 0) flags[blockIdx.x] = bad != 0;
}

static __global__ void __launch_bounds__(SAMPLE_THREADS)
sample_kernel(int32_t *ids /* [rows] */, const float *logits /* [rows, V] */,
              const float *uniforms /* [rows] */, float *probs /* [rows, V] */, int V, int id_bits,
              float temperature, int top_k, float top_p) {
    __shared__ sample_shared sh;
    float *row_probs = probs + (size_t)blockIdx.x * V;
    softmax_row(row_probs, logits + (size_t)blockIdx.x * V, V, temperature, sh);
    const row_view row = {row_probs, V};
    const draw_order order = {V, id_bits, top_k > 0 || top_p < 1.0f};
    selection set = {0, (unsigned)V};
    if (top_k > 0 && top_k < V) set = select_prefix<false>(row, order, set, (u64)top_k, sh);
    bool top_p_left = top_p < 1.0f;
    if (top_p_left && set.count > LIST_CAP) {
        set = top_p_cut(row, order, set, top_p, sh);
        top_p_left = false;
    }
    const float u = uniforms[blockIdx.x];
    int id;
    if (set.count <= LIST_CAP) {
        const list_view list = gather(row, order, set.key, sh);
        if (top_p_left) set = top_p_cut(list, order, set, top_p, sh);
        id = draw(list, order, set, u, sh);
    } else {
        id = draw(row, order, set, u, sh);
    }
    if (threadIdx.x == 0) ids[blockIdx.x] = id;
}

/* ---- launchers ---- */

static void require_rows(int32_t *ids, const float *logits, int rows, int V, const char *op) {
    LAUNCH_REQUIRE(rows >= 0 && V >= 1 && V <= SAMPLE_MAX_V, op);
    LAUNCH_REQUIRE(rows == 0 || (ids != NULL && logits != NULL), op);
}

/* A thread per token up to SAMPLE_THREADS, in whole warps: small vocabularies need few. */
static int sample_threads(int V) { return V < SAMPLE_THREADS ? 32 * CEIL_DIV(V, 32) : SAMPLE_THREADS; }

extern "C" void launch_argmax(int32_t *ids, const float *logits, int rows, int V, cudaStream_t stream) {
    const char *op = "argmax";
    require_rows(ids, logits, rows, V, op);
    if (rows == 0) return;
    LAUNCH_KERNEL(argmax_kernel, rows, sample_threads(V), 0, stream, ids, logits, V);
    LAUNCH_CHECK(op, stream);
}

extern "C" void launch_find_nonfinite(int32_t *flags, const float *logits, int rows, int V,
                                      cudaStream_t stream) {
    const char *op = "find_nonfinite";
    require_rows(flags, logits, rows, V, op);
    if (rows == 0) return;
    LAUNCH_KERNEL(nonfinite_kernel, rows, sample_threads(V), 0, stream, flags, logits, V);
    LAUNCH_CHECK(op, stream);
}

/* Bits needed for the values 0..V-1. */
static int id_bits_of(int V) {
    int bits = 0;
    while (bits < 31 && (1u << bits) < (unsigned)V) bits++;
    return bits;
}

extern "C" void launch_sample(int32_t *ids, const float *logits, const float *uniforms, float *probs,
                              int rows, int V, float temperature, int top_k, float top_p,
                              cudaStream_t stream) {
    const char *op = "sample";
    require_rows(ids, logits, rows, V, op);
    LAUNCH_REQUIRE(top_k >= 0, op);
    if (temperature <= 0.0f || top_k == 1) {
        launch_argmax(ids, logits, rows, V, stream);
        return;
    }
    if (rows == 0) return;
    LAUNCH_REQUIRE(uniforms != NULL && probs != NULL, op);
    LAUNCH_KERNEL(sample_kernel, rows, sample_threads(V), 0, stream, ids, logits, uniforms, probs, V,
                  id_bits_of(V), temperature, top_k, top_p);
    LAUNCH_CHECK(op, stream);
}
